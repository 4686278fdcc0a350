"""Closed-form checks of the learning rules with hand-set values: PER importance weights, the
DQN / double-DQN targets and the weighted Huber loss, and the separate actor-critic networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from adaptlearn.rl import DQN, ActorCritic, EpsilonGreedyAgent, PrioritizedReplay, Samples


def _samples(T: int, B: int) -> Samples:
    obs = torch.arange(T * B, dtype=torch.float32).view(T, B, 1)
    flags = torch.zeros(T, B, dtype=torch.bool)
    return Samples(obs=obs, action=torch.zeros(T, B, dtype=torch.long), reward=torch.ones(T, B),
                   terminated=flags, truncated=flags.clone(), final_obs=obs.clone(),
                   last_obs=torch.zeros(B, 1))


def test_prioritized_replay_importance_weights_are_closed_form() -> None:
    alpha, beta, eps = 0.5, 0.7, 1e-6
    replay = PrioritizedReplay(64, 2, (1,), np.float32, n_step=1, alpha=alpha, beta=beta,
                               eps=eps, generator=np.random.default_rng(0))
    replay.append(_samples(8, 2))  # rows 0..6 can start a 1-step return: 14 transitions
    rows, envs = np.repeat(np.arange(7), 2), np.tile([0, 1], 7)
    td = np.linspace(-3.0, 2.0, 14)
    replay.update_priorities((rows, envs), td)
    p = (np.abs(td) + eps) ** alpha
    prob = dict(zip(zip(rows.tolist(), envs.tolist(), strict=True), p / p.sum(), strict=True))
    batch = replay.sample(200)
    r, e = batch["index"]
    sampled = np.array([prob[(int(a), int(b))] for a, b in zip(r, e, strict=True)])
    # Schaul et al. (2016): w_i = (N P(i))^-beta / max_j w_j, over the sampled minibatch.
    w = (14 * sampled) ** -beta
    np.testing.assert_allclose(batch["weight"].numpy(), w / w.max(), rtol=1e-5)
    # the most likely transition is sampled and gets the smallest weight, the least likely the
    # largest (a flipped exponent would reverse this)
    assert batch["weight"][sampled.argmax()] < batch["weight"][sampled.argmin()]


class _TableQ(nn.Module):
    """``Q(s) = onehot(s) @ table``: a Q-network whose values are set by hand."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table.clone())
        self.obs_shape = (table.shape[0],)
        self.obs_scale = 1.0

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float() @ self.table


def _dqn_with_tables(online: list[list[float]], target: list[list[float]],
                     double: bool) -> DQN:
    agent = EpsilonGreedyAgent(_TableQ(torch.tensor(online)), seed=0)
    algo = DQN(agent, 1, double=double, replay_size=64, learn_start=0)
    with torch.no_grad():
        algo.target.table.copy_(torch.tensor(target))
    return algo


@pytest.mark.parametrize("double", [False, True])
def test_dqn_targets_and_weighted_huber_loss_are_closed_form(double: bool) -> None:
    # state 1 is the next state: online argmax is action 1, target argmax is action 0
    online = [[0.5, -2.0, 0.0], [1.0, 5.0, 2.0]]
    target = [[0.0, 0.0, 0.0], [4.0, 0.0, 3.0]]
    algo = _dqn_with_tables(online, target, double)
    s0, s1 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    batch = {"obs": torch.cat([s0, s0, s0]), "action": torch.tensor([0, 1, 2]),
             "returns": torch.tensor([1.0, 1.0, -1.0]), "discount": torch.tensor([0.5, 0.0, 0.5]),
             "next_obs": torch.cat([s1, s1, s1]), "weight": torch.tensor([1.0, 0.5, 0.25])}
    loss, td = algo.loss(batch)
    # double: Q_target(s', argmax_a Q(s', a)) = Q_target(s1, 1) = 0; plain: max_a Q_target = 4
    boot = 0.0 if double else 4.0
    y = torch.tensor([1.0 + 0.5 * boot, 1.0, -1.0 + 0.5 * boot])
    q = torch.tensor([0.5, -2.0, 0.0])
    torch.testing.assert_close(td, y - q)
    huber = torch.where((y - q).abs() <= 1, 0.5 * (y - q) ** 2, (y - q).abs() - 0.5)
    torch.testing.assert_close(loss, (batch["weight"] * huber).mean())


def test_separate_actor_critic_value_loss_leaves_the_actor_alone() -> None:
    model = ActorCritic((4,), 2, arch="mlp")
    assert not model.shared_torso  # default for vector observations (SB3 / CleanRL)
    _, v = model(torch.randn(8, 4))
    v.pow(2).mean().backward()
    actor = [p for n, p in model.named_parameters() if n.startswith(("torso", "pi"))]
    critic = [p for n, p in model.named_parameters() if n.startswith(("critic_torso", "v."))]
    assert actor and critic
    assert all(p.grad is None or not p.grad.any() for p in actor)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic)
    shared = ActorCritic((4, 10, 10), 6, arch="minatar")
    assert shared.shared_torso and shared.critic_torso is None  # image torsos stay shared
    n_shared = sum(p.numel() for p in ActorCritic((4,), 2, shared_torso=True).parameters())
    assert sum(p.numel() for p in model.parameters()) == n_shared + 4 * 64 + 64 + 64 * 64 + 64
