"""One double-DQN learner for every method of the family (flat and hierarchical levels).

:class:`QLearner` trains a network that maps all agents' inputs ``[B, n, D]`` to per-agent values
``[B, n, A]``. Without a mixer each agent has its own TD target (independent Q-learning: flat
IQL, Ind-hDQN's high level, the low-level controller, and hCom whose CommNet couples the agents'
values); with a :class:`~adaptlearn.marl.networks.QMixer` the target is on ``Q_tot`` (flat QMIX,
hQmix).

Targets are semi-MDP targets over a duration ``tau`` (``tau = 1`` for primitive steps)::

    U_i = (1 - beta_i) Q_i^-(o'_i, a_i) + beta_i Q_i^-(o'_i, argmax_{a in mask'} Q_i(o'_i, a))
    independent:  y_i = R_i + gamma^tau_i (1 - done_i) U_i
    mixed:        y   = R + gamma^tau (1 - done) Q_tot^-(U_1..U_n; s')

``beta_i = 1`` (the usual max) unless agent ``i``'s subgoal is still running at the end of a
squeezed joint transition (see :mod:`adaptlearn.marl.replay`). The argmax uses the online network
(double Q, as pymarl). Loss: mean squared TD error; Adam; gradient-norm clip; hard target copy.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from adaptlearn.core.validation import check_int, check_probability, check_range
from adaptlearn.marl.networks import QMixer

__all__ = ["QLearner", "epsilon_greedy"]


def epsilon_greedy(q: np.ndarray, mask: np.ndarray, epsilon: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Per-row epsilon-greedy choice among allowed entries.

    Args:
        q: values ``[n, A]``.
        mask: allowed entries ``[n, A]`` (bool; every row has one True).
        epsilon: probability of a uniform random allowed choice.
        rng: numpy generator.

    Returns:
        Chosen indices ``[n]`` (int64).
    """
    out = np.empty(q.shape[0], np.int64)
    for i in range(q.shape[0]):
        allowed = np.flatnonzero(mask[i])
        if rng.random() < epsilon:
            out[i] = allowed[rng.integers(len(allowed))]
        else:
            out[i] = allowed[np.argmax(q[i, allowed])]
    return out


class QLearner:
    """Double-DQN learner over per-agent values, with an optional QMIX mixer.

    Args:
        net: maps ``[B, n, D]`` to ``[B, n, A]``.
        mixer: a :class:`QMixer` (joint ``Q_tot`` target) or ``None`` (per-agent targets).
        gamma: discount per primitive step.
        lr: Adam learning rate.
        target_update_every: updates between hard target copies.
        grad_clip: max global gradient norm (pymarl: 10).
        device: where to train; ``net`` and ``mixer`` are moved there (default: the device of
            ``net``'s parameters).

    ``update(batch)`` takes tensors ``obs [B, n, D]``, ``action [B, n]`` (int64), ``reward
    [B, n]``, ``tau [B, n]``, ``next_obs [B, n, D]``, ``next_mask [B, n, A]``, ``beta [B, n]``,
    ``done [B, n]``, optionally ``valid [B, n]`` (rows of agents without a transition are
    ignored), and with a mixer ``state``/``next_state [B, S]``; tensors on another device
    (replay buffers keep CPU tensors) are moved to the learner's device.
    """

    def __init__(self, net: nn.Module, *, mixer: QMixer | None = None, gamma: float = 0.95,
                 lr: float = 5e-4, target_update_every: int = 200,
                 grad_clip: float = 10.0, device: torch.device | str | None = None) -> None:
        self.gamma = check_probability("gamma", gamma, owner="QLearner")
        check_range("lr", lr, 0.0, 1.0, low_inclusive=False, owner="QLearner")
        self.target_update_every = check_int("target_update_every", target_update_every, 1,
                                             owner="QLearner")
        check_range("grad_clip", grad_clip, 0.0, low_inclusive=False, owner="QLearner")
        self.lr, self.grad_clip = lr, grad_clip
        if device is None:
            first = next(net.parameters(), None)
            device = first.device if first is not None else torch.device("cpu")
        self.device = torch.device(device)
        net.to(self.device)
        if mixer is not None:
            mixer.to(self.device)
        self.net, self.mixer = net, mixer
        self.target_net = copy.deepcopy(net).requires_grad_(False)
        self.target_mixer = copy.deepcopy(mixer).requires_grad_(False) if mixer else None
        params = list(net.parameters()) + (list(mixer.parameters()) if mixer else [])
        self.params = params
        # foreach: many small tensors, where it is faster on CPU too (measured here).
        self.optimizer = torch.optim.Adam(params, lr=lr, foreach=True)
        self.n_updates = 0

    def __repr__(self) -> str:
        mix = "QMixer" if self.mixer is not None else "None"
        return (f"QLearner(net={type(self.net).__name__}, mixer={mix}, gamma={self.gamma}, "
                f"lr={self.lr}, target_update_every={self.target_update_every})")

    @torch.no_grad()
    def q_values(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """Online values ``[n, A]`` for one time step's inputs ``[n, D]``."""
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device).unsqueeze(0)
        return self.net(x)[0].cpu().numpy()

    def _on_device(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch's tensors on the learner's device (no copy for tensors already there)."""
        return {k: torch.as_tensor(v).to(self.device, non_blocking=True)
                for k, v in batch.items()}

    def td_targets(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``y [B, n]`` (independent) or ``[B, 1]`` (mixed), without gradient."""
        batch = self._on_device(batch)
        with torch.no_grad():
            next_online = self.net(batch["next_obs"])
            next_online = next_online.masked_fill(~batch["next_mask"].bool(), -torch.inf)
            greedy = next_online.argmax(dim=-1, keepdim=True)
            next_target = self.target_net(batch["next_obs"])
            best = next_target.gather(-1, greedy).squeeze(-1)
            current = next_target.gather(-1, batch["action"].unsqueeze(-1)).squeeze(-1)
            beta = batch["beta"]
            bootstrap = (1.0 - beta) * current + beta * best
            discount = self.gamma ** batch["tau"] * (1.0 - batch["done"])
            if self.target_mixer is None:
                return batch["reward"] + discount * bootstrap
            q_next = self.target_mixer(bootstrap, batch["next_state"])
            return batch["reward"][:, :1] + discount[:, :1] * q_next

    def loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared TD error of one batch."""
        batch = self._on_device(batch)
        q = self.net(batch["obs"]).gather(-1, batch["action"].unsqueeze(-1)).squeeze(-1)
        y = self.td_targets(batch)
        if self.mixer is not None:
            return ((self.mixer(q, batch["state"]) - y) ** 2).mean()
        err = (q - y) ** 2
        if "valid" in batch:
            valid = batch["valid"].float()
            return (err * valid).sum() / valid.sum().clamp_min(1.0)
        return err.mean()

    def update(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """One gradient step; returns ``{"loss": ...}``."""
        loss = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        self.n_updates += 1
        if self.n_updates % self.target_update_every == 0:
            self.sync_target()
        return {"loss": float(loss.detach())}

    def sync_target(self) -> None:
        """Hard copy online -> target."""
        self.target_net.load_state_dict(self.net.state_dict())
        if self.mixer is not None and self.target_mixer is not None:
            self.target_mixer.load_state_dict(self.mixer.state_dict())

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, optimizer and update count."""
        return {
            "net": self.net.state_dict(), "target_net": self.target_net.state_dict(),
            "mixer": self.mixer.state_dict() if self.mixer else {},
            "target_mixer": self.target_mixer.state_dict() if self.target_mixer else {},
            "optimizer": self.optimizer.state_dict(), "n_updates": self.n_updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.net.load_state_dict(state["net"])
        self.target_net.load_state_dict(state["target_net"])
        if self.mixer is not None and self.target_mixer is not None:
            self.mixer.load_state_dict(state["mixer"])
            self.target_mixer.load_state_dict(state["target_mixer"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.n_updates = int(state["n_updates"])
