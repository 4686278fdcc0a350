"""Replay for the hierarchical MARL family: a ring buffer and ACER's high-level transitions.

ACER (Augmented Concurrent Experience Replay, Tang et al., arXiv 1809.09332) has two parts:

* **Augmented**: a subgoal ``g`` of agent ``i`` that ran from ``t0`` to ``t1`` gives not one
  high-level transition but one per intermediate step ``j in [t0, t1)``:
  ``(o_j, g, R_{j:t1}, t1 - j, o_{t1})`` with ``R_{j:t1} = sum_{k=j}^{t1-1} gamma^(k-j) r_k``.
  The goal-conditioned controller is Markov, so from ``o_j`` with goal ``g`` the rest of the
  segment is a valid sample of running ``g`` (the intra-option argument).
* **Concurrent**: the transitions of all agents that start at the same step ``t`` are stored as
  one row and sampled together (CERTs, Omidshafiei et al. 2017), so every sampled batch holds
  the agents' experiences from the same episode and time step.

:func:`high_level_transitions` builds those rows from an :class:`EpisodeLog`. Joint learners
(hCom, hQmix) use ``joint=True`` rows: a row starting at ``t`` ends at the first subgoal end of
*any* agent after ``t`` (``t' = t + min_i tau_i``); ``beta_i`` says whether agent ``i``'s subgoal
ended there, so the target bootstraps ``U_i = (1 - beta_i) Q_i(o', g_i) + beta_i max_g Q_i(o', g)``
(the option value of Sutton, Precup & Singh 1999).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from adaptlearn.core.validation import check_int, check_range

__all__ = ["EpisodeLog", "ReplayBuffer", "discounted_return", "high_level_transitions"]


class ReplayBuffer:
    """A fixed-capacity ring buffer of rows with named array fields.

    Args:
        capacity: maximum rows kept (the oldest are overwritten).
        shapes: per-field row shape, e.g. ``{"obs": (2, 126), "goal": (2,)}``.
        dtypes: per-field numpy dtype (default float32).

    ``sample(batch_size, rng)`` draws rows uniformly with replacement from the filled part only
    and returns ``float32``/``int64`` tensors ``[batch_size, *shape]``.
    """

    def __init__(self, capacity: int, shapes: Mapping[str, tuple[int, ...]],
                 dtypes: Mapping[str, Any] | None = None) -> None:
        self.capacity = check_int("capacity", capacity, 1, owner="ReplayBuffer")
        dtypes = dict(dtypes or {})
        self.shapes = {k: tuple(v) for k, v in shapes.items()}
        self.data = {k: np.zeros((capacity, *shape), dtypes.get(k, np.float32))
                     for k, shape in self.shapes.items()}
        self.size = 0
        self.cursor = 0

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return (f"ReplayBuffer(capacity={self.capacity}, size={self.size}, "
                f"fields={list(self.shapes)})")

    def add(self, row: Mapping[str, Any]) -> None:
        """Store one row (every field must be given)."""
        i = self.cursor
        for k, arr in self.data.items():
            arr[i] = row[k]
        self.cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def extend(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store several rows in order."""
        for row in rows:
            self.add(row)

    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform row indices among the filled slots."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty ReplayBuffer")
        return rng.integers(0, self.size, size=batch_size)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """A batch of whole rows as tensors ``[batch_size, *shape]``."""
        idx = self.sample_indices(batch_size, rng)
        return {k: torch.from_numpy(arr[idx]) for k, arr in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        """Contents and cursor, as tensors (``torch.load(weights_only=True)``-safe)."""
        return {"size": self.size, "cursor": self.cursor,
                "data": {k: torch.from_numpy(v[: self.size].copy()) for k, v in self.data.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.size, self.cursor = int(state["size"]), int(state["cursor"])
        for k, v in state["data"].items():
            self.data[k][: self.size] = v.numpy()


@dataclass
class EpisodeLog:
    """What the hierarchical runner records of one episode (``T`` steps, ``n`` agents).

    Attributes:
        obs: ``T+1`` arrays ``[n, obs_dim]`` (index ``T`` is the final observation).
        state: ``T+1`` global states ``[state_dim]``.
        masks: ``T+1`` subgoal-availability masks ``[n, n_goals]`` (bool).
        goals: ``T`` arrays ``[n]``: the subgoal each agent runs during step ``t``.
        decide: ``T+1`` arrays ``[n]`` (bool): agent ``i`` picked a new subgoal at ``t``;
            entry ``T`` says whether its subgoal had ended when the episode stopped.
        rewards: ``T`` team rewards.
        terminated: the episode ended in a terminal state (not a truncation).
    """

    obs: list[np.ndarray] = field(default_factory=list)
    state: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    goals: list[np.ndarray] = field(default_factory=list)
    decide: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminated: bool = False

    @property
    def length(self) -> int:
        """Number of steps ``T``."""
        return len(self.rewards)


def _segment_ends(decide: np.ndarray) -> np.ndarray:
    """``ends[t, i]``: first step ``> t`` at which agent ``i`` decides (or ``T``)."""
    t_plus_1, n = decide.shape
    big_t = t_plus_1 - 1
    ends = np.full((big_t, n), big_t, dtype=np.int64)
    nxt = np.full(n, big_t, dtype=np.int64)
    for t in range(big_t - 1, -1, -1):
        ends[t] = nxt
        nxt = np.where(decide[t], t, nxt)
    return ends


def discounted_return(rewards: np.ndarray, start: int, end: int, gamma: float) -> float:
    """``R_{start:end} = sum_{k=start}^{end-1} gamma^(k-start) r_k``."""
    seg = rewards[start:end]
    return float(np.dot(seg, gamma ** np.arange(len(seg), dtype=np.float64)))


def high_level_transitions(
    log: EpisodeLog, gamma: float, *, augment: bool, joint: bool
) -> list[dict[str, np.ndarray]]:
    """High-level rows of one episode (one row = every agent's transition from one step).

    Args:
        log: the episode.
        gamma: high-level discount ``gamma_h`` used inside ``R``.
        augment: ACER augmentation: a row starts at *every* step; otherwise only where a
            subgoal is picked (``joint``: any agent; else the rows hold only deciding agents,
            marked by ``valid``).
        joint: squeeze to a common horizon ``t' = min_i end_i(t)`` (hCom/hQmix); otherwise each
            agent's transition runs to its own subgoal end (Ind-hDQN).

    Returns:
        Rows with fields ``obs [n, D]``, ``state [S]``, ``goal [n]``, ``reward [n]``,
        ``tau [n]``, ``next_obs [n, D]``, ``next_state [S]`` (state at the earliest end),
        ``next_mask [n, G]``, ``beta [n]`` (the subgoal ended at the row's end), ``done [n]``
        (terminal at the row's end), ``valid [n]`` (agent ``i`` has a transition in this row)
        and ``t [1]`` (start step).
    """
    check_range("gamma", gamma, 0.0, 1.0, owner="high_level_transitions")
    big_t = log.length
    if big_t == 0:
        return []
    decide = np.stack(log.decide).astype(bool)
    if decide.shape[0] != big_t + 1:
        raise ValueError(f"`decide` needs T+1={big_t + 1} entries; got {decide.shape[0]}")
    n = decide.shape[1]
    ends = _segment_ends(decide)
    rewards = np.asarray(log.rewards, np.float64)
    obs, state, masks = log.obs, log.state, log.masks
    rows = []
    for t in range(big_t):
        starts = decide[t]
        if not augment and not starts.any():
            continue
        if joint:
            t_end = int(ends[t].min())
            agent_end = np.full(n, t_end)
            beta = decide[t_end] if t_end < big_t else decide[big_t]
            beta = (ends[t] == t_end) & beta
            valid = np.ones(n, bool)
        else:
            agent_end = ends[t]
            beta = decide[agent_end, np.arange(n)]
            valid = np.ones(n, bool) if augment else starts.copy()
        tau = agent_end - t
        reward = np.array([discounted_return(rewards, t, int(e), gamma) for e in agent_end])
        rows.append({
            "obs": obs[t],
            "state": state[t],
            "goal": log.goals[t].astype(np.int64),
            "reward": reward.astype(np.float32),
            "tau": tau.astype(np.float32),
            "next_obs": np.stack([obs[e][i] for i, e in enumerate(agent_end)]),
            "next_state": state[int(agent_end.min())],
            "next_mask": np.stack([masks[e][i] for i, e in enumerate(agent_end)]),
            "beta": beta.astype(np.float32),
            "done": ((agent_end == big_t) & log.terminated).astype(np.float32),
            "valid": valid,
            "t": np.array([t], np.int64),
        })
    return rows
