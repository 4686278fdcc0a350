"""Agents: batched action selection for the samplers (model + action distribution + generator)."""

from __future__ import annotations

from typing import Any

import torch

from adaptlearn.core import check_probability
from adaptlearn.rl.models import ActorCritic, QNetwork

__all__ = ["CategoricalPgAgent", "EpsilonGreedyAgent"]


class CategoricalPgAgent:
    """Samples actions from the categorical policy of an :class:`ActorCritic`.

    ``step(obs[B, *obs_shape]) -> (action int64[B], {"logp": float[B], "value": float[B]})``.
    Sampling uses ``generator`` only (seeded runs are reproducible across samplers). With
    ``greedy=True`` the argmax action is taken (evaluation).
    """

    def __init__(self, model: ActorCritic, *, generator: torch.Generator | None = None,
                 greedy: bool = False) -> None:
        self.model = model
        self.generator = generator if generator is not None else torch.Generator()
        self.greedy = greedy

    def __repr__(self) -> str:
        return f"CategoricalPgAgent(greedy={self.greedy}, model={type(self.model).__name__})"

    def step(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, value = self.model(obs)
        logp_all = torch.log_softmax(logits, dim=-1)
        if self.greedy:
            action = logits.argmax(dim=-1)
        else:
            action = torch.multinomial(logp_all.exp(), 1, generator=self.generator).squeeze(-1)
        logp = logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        return action, {"logp": logp, "value": value}

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``V(obs)``: ``float[N]``."""
        return self.model(obs)[1]

    def state_dict(self) -> dict[str, Any]:
        """Generator state (the model is saved by the algorithm)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.generator.set_state(state["generator"])


class EpsilonGreedyAgent:
    """Epsilon-greedy over a :class:`QNetwork`; ``epsilon`` is set by the DQN schedule.

    ``step(obs[B, *obs_shape]) -> (action int64[B], {})``.
    """

    def __init__(self, model: QNetwork, *, epsilon: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        self.model = model
        self.epsilon = check_probability("epsilon", epsilon, owner="EpsilonGreedyAgent")
        self.generator = generator if generator is not None else torch.Generator()

    def __repr__(self) -> str:
        return f"EpsilonGreedyAgent(epsilon={self.epsilon:.3g})"

    def step(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        q = self.model(obs)
        greedy = q.argmax(dim=-1)
        n = q.shape[0]
        explore = torch.rand(n, generator=self.generator) < self.epsilon
        random_action = torch.randint(q.shape[-1], (n,), generator=self.generator)
        return torch.where(explore, random_action, greedy), {}

    def state_dict(self) -> dict[str, Any]:
        """Generator state and epsilon."""
        return {"generator": self.generator.get_state(), "epsilon": self.epsilon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.generator.set_state(state["generator"])
        self.epsilon = float(state["epsilon"])
