"""Replay for DQN: time-major ``[S, B]`` storage of sampler batches, n-step returns, PER.

Rows are appended one sampler batch at a time (``T`` rows of ``B`` envs), as in rlpyt. The
n-step return from ``(s, b)`` is built when sampling: it sums rewards along env ``b``'s column
until an episode ends, then bootstraps from the observation ``n`` rows later, or, where the
episode was *truncated*, from the stored final observation (terminal steps do not bootstrap).
The newest ``n`` rows cannot be sampled until ``n`` later rows exist.

Prioritized replay (Schaul et al. 2016) keeps ``p^alpha`` in a sum tree; new transitions get the
largest priority seen so far; importance weights ``(N P)^-beta / max`` use the sampled minimum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from adaptlearn.core import check_int, check_range
from adaptlearn.rl.samplers import Samples

__all__ = ["PrioritizedReplay", "ReplayBatch", "SumTree", "UniformReplay"]


class SumTree:
    """Binary sum tree over ``capacity`` non-negative priorities (sampling ``O(log n)``)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = check_int("capacity", capacity, 1, owner="SumTree")
        self.size = 1
        while self.size < capacity:
            self.size *= 2
        self.tree = np.zeros(2 * self.size, dtype=np.float64)

    @property
    def total(self) -> float:
        """Sum of all priorities."""
        return float(self.tree[1])

    def set(self, idx: np.ndarray, value: np.ndarray) -> None:
        """Set priorities at ``idx`` (int array) to ``value``."""
        pos = np.asarray(idx, dtype=np.int64) + self.size
        self.tree[pos] = value
        pos = np.unique(pos // 2)
        while pos[0] >= 1:
            self.tree[pos] = self.tree[2 * pos] + self.tree[2 * pos + 1]
            if pos[0] == 1:
                break
            pos = np.unique(pos // 2)

    def get(self, idx: np.ndarray) -> np.ndarray:
        """Priorities at ``idx``."""
        return self.tree[np.asarray(idx, dtype=np.int64) + self.size]

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf index where the prefix sum first exceeds each ``mass`` (vectorised descent)."""
        mass = np.array(mass, dtype=np.float64)
        pos = np.ones(mass.shape, dtype=np.int64)
        while pos[0] < self.size:
            left = 2 * pos
            go_right = mass >= self.tree[left]
            mass = np.where(go_right, mass - self.tree[left], mass)
            pos = np.where(go_right, left + 1, left)
        return np.minimum(pos - self.size, self.capacity - 1)


class ReplayBatch(dict):
    """A sampled minibatch: ``obs, action, returns, discount, next_obs, weight, index``.

    ``discount`` is ``gamma^m`` for an ``m``-step return that bootstraps, 0 where it terminated.
    """


class UniformReplay:
    """Uniform n-step replay over ``capacity`` env steps in a ``[capacity // B, B]`` layout.

    Args:
        capacity: env steps kept (rounded down to a multiple of ``n_envs``).
        n_envs: ``B`` of the sampler batches appended.
        obs_shape, obs_dtype: observation layout.
        n_step: return horizon ``n``.
        gamma: discount.
        generator: NumPy generator for sampling.
    """

    def __init__(self, capacity: int, n_envs: int, obs_shape: tuple[int, ...],
                 obs_dtype: Any, *, n_step: int = 1, gamma: float = 0.99,
                 generator: np.random.Generator | None = None) -> None:
        owner = type(self).__name__
        self.n_envs = check_int("n_envs", n_envs, 1, owner=owner)
        self.n_step = check_int("n_step", n_step, 1, owner=owner)
        self.gamma = check_range("gamma", gamma, 0.0, 1.0, owner=owner)
        self.rows = check_int("capacity", capacity, n_envs * (n_step + 1), owner=owner) // n_envs
        b = n_envs
        self.obs = np.zeros((self.rows, b, *obs_shape), dtype=obs_dtype)
        self.action = np.zeros((self.rows, b), dtype=np.int64)
        self.reward = np.zeros((self.rows, b), dtype=np.float32)
        self.terminated = np.zeros((self.rows, b), dtype=np.bool_)
        self.done = np.zeros((self.rows, b), dtype=np.bool_)
        self.final_obs: dict[tuple[int, int], np.ndarray] = {}  # truncated steps only
        self.head = 0  # next physical row to write
        self.filled = 0  # rows written (<= rows)
        self.rng = generator if generator is not None else np.random.default_rng()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(capacity={self.rows * self.n_envs}, n_envs={self.n_envs}, "
                f"n_step={self.n_step}, size={len(self)})")

    def __len__(self) -> int:
        return self.filled * self.n_envs

    @property
    def n_valid_rows(self) -> int:
        """Rows that can start an n-step return (the newest ``n`` cannot yet)."""
        return max(0, self.filled - self.n_step)

    def _physical(self, logical: np.ndarray) -> np.ndarray:
        return (self.head - self.filled + logical) % self.rows

    def append(self, samples: Samples) -> None:
        """Store a sampler batch (copies it)."""
        if self.n_envs != samples.B:
            raise ValueError(f"batch has B={samples.B} envs; replay expects {self.n_envs}")
        obs, done = samples.obs.numpy(), samples.done.numpy()
        trunc = samples.truncated.numpy() & ~samples.terminated.numpy()
        for t in range(samples.T):
            s = self.head
            for key in [k for k in self.final_obs if k[0] == s]:
                del self.final_obs[key]
            self.obs[s] = obs[t]
            self.action[s] = samples.action[t].numpy()
            self.reward[s] = samples.reward[t].numpy()
            self.terminated[s] = samples.terminated[t].numpy()
            self.done[s] = done[t]
            for b in np.nonzero(trunc[t])[0]:
                self.final_obs[(s, int(b))] = samples.final_obs[t, b].numpy().copy()
            self.head = (s + 1) % self.rows
            self.filled = min(self.filled + 1, self.rows)
            self._on_write(s)

    def _on_write(self, row: int) -> None:
        """Hook for priorities (row ``row`` overwritten; the row ``n`` older became valid)."""

    def _sample_index(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self.rng.integers(0, self.n_valid_rows, size=batch_size)
        envs = self.rng.integers(0, self.n_envs, size=batch_size)
        return self._physical(rows), envs, np.ones(batch_size, dtype=np.float32)

    def sample(self, batch_size: int) -> ReplayBatch:
        """Sample ``batch_size`` n-step transitions (torch tensors)."""
        if self.n_valid_rows == 0:
            raise RuntimeError("replay has no complete n-step transition yet")
        rows, envs, weight = self._sample_index(batch_size)
        returns = np.zeros(batch_size, dtype=np.float32)
        discount = np.ones(batch_size, dtype=np.float32)
        alive = np.ones(batch_size, dtype=np.bool_)
        next_obs = self.obs[(rows + self.n_step) % self.rows, envs].copy()
        for k in range(self.n_step):
            r = (rows + k) % self.rows
            returns += np.where(alive, discount * self.reward[r, envs], 0.0)
            discount = np.where(alive, discount * self.gamma, discount)
            ended = alive & self.done[r, envs]
            for i in np.nonzero(ended)[0]:
                if self.terminated[r[i], envs[i]]:
                    discount[i] = 0.0
                else:
                    next_obs[i] = self.final_obs[(int(r[i]), int(envs[i]))]
            alive &= ~self.done[r, envs]
        # rows still alive after n steps bootstrap from obs n rows later (set above)
        return ReplayBatch(
            obs=torch.from_numpy(self.obs[rows, envs]), action=torch.from_numpy(
                self.action[rows, envs]), returns=torch.from_numpy(returns),
            discount=torch.from_numpy(discount), next_obs=torch.from_numpy(next_obs),
            weight=torch.from_numpy(weight), index=(rows, envs),
        )

    def update_priorities(self, index: tuple[np.ndarray, np.ndarray], td: np.ndarray) -> None:
        """No-op for uniform replay."""

    def state_dict(self) -> dict[str, Any]:
        """Buffer contents as tensors (checkpointable with ``weights_only=True``)."""
        keys = sorted(self.final_obs)
        return {
            "obs": torch.from_numpy(self.obs.copy()), "action": torch.from_numpy(self.action),
            "reward": torch.from_numpy(self.reward),
            "terminated": torch.from_numpy(self.terminated), "done": torch.from_numpy(self.done),
            "final_keys": [list(k) for k in keys],
            "final_obs": [torch.from_numpy(self.final_obs[k]) for k in keys],
            "head": self.head, "filled": self.filled,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.obs[...] = state["obs"].numpy()
        self.action[...] = state["action"].numpy()
        self.reward[...] = state["reward"].numpy()
        self.terminated[...] = state["terminated"].numpy()
        self.done[...] = state["done"].numpy()
        self.final_obs = {(int(k[0]), int(k[1])): v.numpy().copy()
                          for k, v in zip(state["final_keys"], state["final_obs"], strict=True)}
        self.head, self.filled = int(state["head"]), int(state["filled"])
        self.rng.bit_generator.state = state["rng"]


class PrioritizedReplay(UniformReplay):
    """Proportional prioritized replay (Schaul et al. 2016) over the same storage.

    Args:
        alpha: priority exponent.
        beta: importance-sampling exponent (set it from a schedule between updates).
        eps: added to ``|TD|`` so no priority is zero.
        (other arguments: see :class:`UniformReplay`)
    """

    def __init__(self, capacity: int, n_envs: int, obs_shape: tuple[int, ...],
                 obs_dtype: Any, *, n_step: int = 1, gamma: float = 0.99, alpha: float = 0.6,
                 beta: float = 0.4, eps: float = 1e-6,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__(capacity, n_envs, obs_shape, obs_dtype, n_step=n_step, gamma=gamma,
                         generator=generator)
        self.alpha = check_range("alpha", alpha, 0.0, owner="PrioritizedReplay")
        self.beta = check_range("beta", beta, 0.0, 1.0, owner="PrioritizedReplay")
        self.eps = check_range("eps", eps, 0.0, low_inclusive=False, owner="PrioritizedReplay")
        self.tree = SumTree(self.rows * n_envs)
        self.max_priority = 1.0

    def _on_write(self, row: int) -> None:
        b = np.arange(self.n_envs)
        self.tree.set(row * self.n_envs + b, np.zeros(self.n_envs))
        if self.filled > self.n_step:
            valid = (row - self.n_step) % self.rows
            self.tree.set(valid * self.n_envs + b,
                          np.full(self.n_envs, self.max_priority**self.alpha))

    def _sample_index(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        total = self.tree.total
        edges = np.linspace(0.0, total, batch_size + 1)
        mass = self.rng.uniform(edges[:-1], edges[1:])
        flat = self.tree.find(np.minimum(mass, np.nextafter(total, 0)))
        prob = self.tree.get(flat) / total
        n = self.n_valid_rows * self.n_envs
        weight = (n * np.maximum(prob, 1e-12)) ** (-self.beta)
        weight = (weight / weight.max()).astype(np.float32)
        return flat // self.n_envs, flat % self.n_envs, weight

    def update_priorities(self, index: tuple[np.ndarray, np.ndarray], td: np.ndarray) -> None:
        """Set the priorities of sampled transitions to ``(|td| + eps) ** alpha``."""
        rows, envs = index
        p = np.abs(np.asarray(td, dtype=np.float64)) + self.eps
        self.max_priority = max(self.max_priority, float(p.max()))
        self.tree.set(rows * self.n_envs + envs, p**self.alpha)

    def state_dict(self) -> dict[str, Any]:
        """Storage plus the sum tree and the largest priority."""
        state = super().state_dict()
        state["tree"] = torch.from_numpy(self.tree.tree.copy())
        state["max_priority"] = self.max_priority
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        super().load_state_dict(state)
        self.tree.tree[...] = state["tree"].numpy()
        self.max_priority = float(state["max_priority"])
