"""Agents: batched action selection for the samplers (model + action distribution + noise).

Exploration noise is drawn per environment (:class:`EnvNoise`): each env index has its own
random stream and consumes the same numbers per step however the sampler groups the envs
(all at once in :class:`~adaptlearn.rl.samplers.SerialSampler` and ``ParallelSampler``, one
group at a time in ``AlternatingSampler``), so the same agent, seed and env seeds give identical
trajectories on every sampler (Stooke & Abbeel 2018, arXiv 1803.02811, run the same algorithm on
every sampler; this makes that checkable).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from adaptlearn.core import check_int, check_probability
from adaptlearn.rl.models import ActorCritic, QNetwork, resolve_device

__all__ = ["CategoricalPgAgent", "EnvNoise", "EpsilonGreedyAgent"]


class EnvNoise:
    """Uniform numbers in ``[0, 1)``: one independent stream per environment index.

    ``draw(env_ids[b]) -> float64[b, width]``: env ``i`` gets the next ``width`` numbers of its
    own stream (seeded from ``(seed, i)``), whatever other envs are drawn in the same call. The
    streams are read in blocks of ``block`` steps, so a call costs one fancy-index.

    Args:
        seed: root seed (any non-negative int).
        width: numbers per env per call.
        block: steps pre-drawn per env at a time.
    """

    def __init__(self, seed: int, width: int, block: int = 256) -> None:
        self.seed = check_int("seed", seed, 0, owner="EnvNoise")
        self.width = check_int("width", width, 1, owner="EnvNoise")
        self.block = check_int("block", block, 1, owner="EnvNoise")
        self._rngs: list[np.random.Generator] = []
        self._buf = np.zeros((0, self.block, self.width))
        self._pos = np.zeros(0, dtype=np.int64)

    def __repr__(self) -> str:
        return f"EnvNoise(seed={self.seed}, width={self.width}, envs={len(self._rngs)})"

    def _grow(self, n: int) -> None:
        old = len(self._rngs)
        if n <= old:
            return
        self._rngs += [np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, i])))
                       for i in range(old, n)]
        self._buf = np.concatenate([self._buf, np.zeros((n - old, self.block, self.width))])
        self._pos = np.concatenate([self._pos, np.full(n - old, self.block, dtype=np.int64)])

    def draw(self, env_ids: np.ndarray) -> np.ndarray:
        """The next ``width`` numbers of each env in ``env_ids`` (distinct ints >= 0)."""
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            return np.zeros((0, self.width))
        if ids.min() < 0:
            raise ValueError(f"`env_ids` of EnvNoise must be >= 0; got {ids.min()}")
        self._grow(int(ids.max()) + 1)
        for i in ids[self._pos[ids] >= self.block]:
            self._buf[i] = self._rngs[i].random((self.block, self.width))
            self._pos[i] = 0
        out = self._buf[ids, self._pos[ids]]
        self._pos[ids] += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        """Stream states, unread blocks and positions (loadable with ``weights_only=True``)."""
        return {"seed": self.seed, "rngs": [g.bit_generator.state for g in self._rngs],
                "buf": torch.from_numpy(self._buf.copy()),
                "pos": torch.from_numpy(self._pos.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.seed = int(state["seed"])
        self._rngs = []
        for s in state["rngs"]:
            g = np.random.Generator(np.random.PCG64())
            g.bit_generator.state = s
            self._rngs.append(g)
        self._buf = state["buf"].numpy().copy()
        self._pos = state["pos"].numpy().copy()


def _env_ids(env_ids: Any, n: int) -> np.ndarray:
    if env_ids is None:
        return np.arange(n)
    ids = np.asarray(env_ids.cpu() if isinstance(env_ids, torch.Tensor) else env_ids,
                     dtype=np.int64).reshape(-1)
    if ids.size != n:
        raise ValueError(f"`env_ids` must name one env per observation: {ids.size} ids for "
                         f"{n} observations")
    return ids


def _noise_seed(seed: int | None, generator: torch.Generator | None) -> int:
    if seed is not None:
        return check_int("seed", seed, 0, owner="agent")
    return int(generator.initial_seed()) if generator is not None else 0


class CategoricalPgAgent:
    """Samples actions from the categorical policy of an :class:`ActorCritic`.

    ``step(obs[B, *obs_shape], env_ids[B] | None) -> (action int64[B], {"logp": float[B],
    "value": float[B]})`` on the model's device. The action is drawn by inverting the policy's
    CDF at a uniform number from env ``env_ids[i]``'s own stream (:class:`EnvNoise`; ``None``
    means envs ``0..B-1``). With ``greedy=True`` the argmax action is taken (evaluation).

    Args:
        model: the actor-critic network.
        generator: seeds the noise streams (``generator.initial_seed()``) when ``seed`` is None.
        greedy: argmax actions.
        seed: root seed of the per-env noise streams.
        device: where the model runs (``None``: where it already is).
    """

    def __init__(self, model: ActorCritic, *, generator: torch.Generator | None = None,
                 greedy: bool = False, seed: int | None = None,
                 device: torch.device | str | None = None) -> None:
        self.device = resolve_device(device, model)
        self.model = model.to(self.device)
        self.generator = generator if generator is not None else torch.Generator()
        self.greedy = greedy
        self.noise = EnvNoise(_noise_seed(seed, generator), 1)

    def __repr__(self) -> str:
        return (f"CategoricalPgAgent(greedy={self.greedy}, model={type(self.model).__name__}, "
                f"device={self.device})")

    def step(self, obs: torch.Tensor, env_ids: Any = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, value = self.model(obs.to(self.device))
        logp_all = torch.log_softmax(logits, dim=-1)
        if self.greedy:
            action = logits.argmax(dim=-1)
        else:
            u = torch.from_numpy(self.noise.draw(_env_ids(env_ids, obs.shape[0])))
            cdf = logp_all.double().exp().cumsum(-1)
            action = (cdf < u.to(cdf.device)).sum(-1).clamp_(max=logits.shape[-1] - 1)
        logp = logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        return action, {"logp": logp, "value": value}

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``V(obs)``: ``float[N]`` on the model's device."""
        return self.model(obs.to(self.device))[1]

    def state_dict(self) -> dict[str, Any]:
        """Noise-stream state (the model is saved by the algorithm)."""
        return {"generator": self.generator.get_state(), "noise": self.noise.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.generator.set_state(state["generator"])
        self.noise.load_state_dict(state["noise"])


class EpsilonGreedyAgent:
    """Epsilon-greedy over a :class:`QNetwork`; ``epsilon`` is set by the DQN schedule.

    ``step(obs[B, *obs_shape], env_ids[B] | None) -> (action int64[B], {})``: env ``i``
    explores when its first uniform number is below ``epsilon`` and then takes the action its
    second number picks; both come from its own stream (:class:`EnvNoise`), so trajectories do
    not depend on the sampler. Arguments as :class:`CategoricalPgAgent`.
    """

    def __init__(self, model: QNetwork, *, epsilon: float = 1.0,
                 generator: torch.Generator | None = None, seed: int | None = None,
                 device: torch.device | str | None = None) -> None:
        self.device = resolve_device(device, model)
        self.model = model.to(self.device)
        self.epsilon = check_probability("epsilon", epsilon, owner="EpsilonGreedyAgent")
        self.generator = generator if generator is not None else torch.Generator()
        self.noise = EnvNoise(_noise_seed(seed, generator), 2)

    def __repr__(self) -> str:
        return f"EpsilonGreedyAgent(epsilon={self.epsilon:.3g}, device={self.device})"

    def step(self, obs: torch.Tensor, env_ids: Any = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        q = self.model(obs.to(self.device))
        greedy = q.argmax(dim=-1)
        n_actions = q.shape[-1]
        u = torch.from_numpy(self.noise.draw(_env_ids(env_ids, q.shape[0]))).to(q.device)
        explore = u[:, 0] < self.epsilon
        random_action = (u[:, 1] * n_actions).long().clamp_(max=n_actions - 1)
        return torch.where(explore, random_action, greedy), {}

    def state_dict(self) -> dict[str, Any]:
        """Noise-stream state and epsilon."""
        return {"generator": self.generator.get_state(), "epsilon": self.epsilon,
                "noise": self.noise.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.generator.set_state(state["generator"])
        self.noise.load_state_dict(state["noise"])
        self.epsilon = float(state["epsilon"])
