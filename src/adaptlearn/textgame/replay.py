"""A small replay buffer over an observation table (text observations repeat a lot).

Observations are interned: :class:`ObservationTable` maps each distinct token array to an integer
id, so transitions store two ints instead of two token arrays, and per-observation quantities
(AEN features, admissible sets) can be cached by id between AEN refreshes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from adaptlearn.core import check_int, check_probability

__all__ = ["ObservationTable", "ReplayBuffer"]


class ObservationTable:
    """Distinct observations -> ids; keeps token ids ``(n, L)`` and optional true masks ``(n, A)``.

    Args:
        obs_len: tokens per observation ``L``.
        n_actions: number of actions (size of the stored masks).
    """

    def __init__(self, obs_len: int, n_actions: int) -> None:
        self.obs_len = check_int("obs_len", obs_len, 1, owner="ObservationTable")
        self.n_actions = check_int("n_actions", n_actions, 1, owner="ObservationTable")
        self._ids: dict[bytes, int] = {}
        self.tokens = torch.zeros(64, obs_len, dtype=torch.long)
        self.masks = np.ones((64, n_actions), dtype=bool)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, obs: np.ndarray, mask: np.ndarray | None = None) -> int:
        """Id of ``obs`` (``(L,)`` int tokens), adding it if new; ``mask``: true admissible set."""
        key = np.ascontiguousarray(obs, dtype=np.int64).tobytes()
        idx = self._ids.get(key)
        if idx is None:
            idx = len(self._ids)
            if idx == self.tokens.shape[0]:
                self.tokens = torch.cat([self.tokens, torch.zeros_like(self.tokens)])
                self.masks = np.concatenate([self.masks, np.ones_like(self.masks)])
            self.tokens[idx] = torch.from_numpy(np.asarray(obs, dtype=np.int64))
            if mask is not None:
                self.masks[idx] = mask
            self._ids[key] = idx
        return idx

    def __repr__(self) -> str:
        return f"ObservationTable(size={len(self)}, obs_len={self.obs_len})"


class ReplayBuffer:
    """Ring buffer of ``(obs_id, action, reward, next_obs_id, terminated, e)`` transitions.

    Args:
        capacity: maximum number of transitions kept (oldest overwritten).
    """

    FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "elimination")

    def __init__(self, capacity: int) -> None:
        self.capacity = check_int("capacity", capacity, 1, owner="ReplayBuffer")
        self.obs = np.zeros(capacity, dtype=np.int64)
        self.action = np.zeros(capacity, dtype=np.int64)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.next_obs = np.zeros(capacity, dtype=np.int64)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.elimination = np.zeros(capacity, dtype=np.float32)
        self.size = 0
        self._pos = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: int, action: int, reward: float, next_obs: int, terminated: bool,
            elimination: int) -> None:
        """Store one transition."""
        i = self._pos
        self.obs[i], self.action[i], self.reward[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, terminated
        self.elimination[i] = elimination
        self._pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, gen: np.random.Generator) -> np.ndarray:
        """``(batch_size,)`` uniform indices of stored transitions (never unwritten slots)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty ReplayBuffer")
        return gen.integers(0, self.size, batch_size)

    def sample_balanced(self, batch_size: int, valid_fraction: float,
                        gen: np.random.Generator) -> np.ndarray:
        """Indices with ``valid_fraction`` of them drawn from ``e = 0`` transitions (if any).

        The reference code draws half of each AEN batch from valid transitions (spec pitfall 9).
        """
        check_probability("valid_fraction", valid_fraction, owner="ReplayBuffer")
        valid = np.flatnonzero(self.elimination[: self.size] == 0)
        n_valid = round(batch_size * valid_fraction) if len(valid) else 0
        rest = self.sample(batch_size - n_valid, gen)
        if n_valid == 0:
            return rest
        return np.concatenate([valid[gen.integers(0, len(valid), n_valid)], rest])

    def batch(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """The fields at ``idx``."""
        return {f: getattr(self, f)[idx] for f in self.FIELDS}

    def state_dict(self) -> dict[str, Any]:
        """Arrays as tensors plus the write position."""
        out: dict[str, Any] = {f: torch.from_numpy(getattr(self, f)[: self.size].copy())
                               for f in self.FIELDS}
        out["pos"] = self._pos
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        n = len(state["obs"])
        for f in self.FIELDS:
            getattr(self, f)[:n] = state[f].numpy()
        self.size, self._pos = n, int(state["pos"])

    def __repr__(self) -> str:
        return f"ReplayBuffer(size={self.size}, capacity={self.capacity})"
