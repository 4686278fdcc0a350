"""Semi-MDP TD targets of QLearner (independent and mixed) and state_dict round trips."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from adaptlearn.marl.learners import QLearner, epsilon_greedy
from adaptlearn.marl.networks import AgentQNetwork, QMixer


class TableNet(nn.Module):
    """Q(o, .) = o (the observation *is* the value vector), so targets are hand-computable."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x + 0.0 * self.dummy


def batch(**kw):
    b = {"obs": torch.zeros(1, 1, 3), "action": torch.tensor([[0]]),
         "reward": torch.tensor([[0.5]]), "tau": torch.tensor([[3.0]]),
         "next_obs": torch.tensor([[[1.0, 4.0, 2.0]]]),
         "next_mask": torch.ones(1, 1, 3, dtype=bool),
         "beta": torch.ones(1, 1), "done": torch.zeros(1, 1)}
    b.update(kw)
    return b


def test_smdp_target_discounts_by_duration_and_done_zeroes_bootstrap():
    gamma = 0.9
    learner = QLearner(TableNet(), gamma=gamma)
    y = learner.td_targets(batch())
    assert y.item() == pytest.approx(0.5 + gamma**3 * 4.0)
    assert learner.td_targets(batch(done=torch.ones(1, 1))).item() == pytest.approx(0.5)
    # masked-out best subgoal is not bootstrapped from
    mask = torch.tensor([[[True, False, True]]])
    assert learner.td_targets(batch(next_mask=mask)).item() == pytest.approx(0.5 + gamma**3 * 2)
    # a subgoal still running (beta = 0) bootstraps its own value Q(o', g) = 1.0
    y_run = learner.td_targets(batch(beta=torch.zeros(1, 1)))
    assert y_run.item() == pytest.approx(0.5 + gamma**3 * 1.0)


def test_mixed_target_uses_target_mixer_on_bootstrap_values():
    torch.manual_seed(0)
    mixer = QMixer(2, 3)
    learner = QLearner(TableNet(), mixer=mixer, gamma=0.8)
    b = {"obs": torch.zeros(4, 2, 3), "action": torch.zeros(4, 2, dtype=torch.long),
         "reward": torch.full((4, 2), 0.25), "tau": torch.full((4, 2), 2.0),
         "next_obs": torch.randn(4, 2, 3), "next_mask": torch.ones(4, 2, 3, dtype=bool),
         "beta": torch.ones(4, 2), "done": torch.zeros(4, 2),
         "state": torch.randn(4, 3), "next_state": torch.randn(4, 3)}
    best = b["next_obs"].max(dim=-1).values
    with torch.no_grad():
        expect = 0.25 + 0.8**2 * mixer(best, b["next_state"])
    assert torch.allclose(learner.td_targets(b), expect)


def test_updates_reduce_loss_and_state_dict_round_trip():
    torch.manual_seed(0)
    learner = QLearner(AgentQNetwork(4, 3, 2), gamma=0.9, lr=1e-2, target_update_every=5)
    b = {"obs": torch.randn(32, 2, 4), "action": torch.randint(0, 3, (32, 2)),
         "reward": torch.randn(32, 2), "tau": torch.ones(32, 2), "next_obs": torch.randn(32, 2, 4),
         "next_mask": torch.ones(32, 2, 3, dtype=bool), "beta": torch.ones(32, 2),
         "done": torch.ones(32, 2)}
    first = learner.update(b)["loss"]
    for _ in range(100):
        last = learner.update(b)["loss"]
    assert last < 0.5 * first
    clone = QLearner(AgentQNetwork(4, 3, 2), gamma=0.9, lr=1e-2, target_update_every=5)
    clone.load_state_dict(copy.deepcopy(learner.state_dict()))  # as torch.save/load would
    learner.update(b)
    clone.update(b)
    for p, q in zip(learner.net.parameters(), clone.net.parameters(), strict=True):
        assert torch.equal(p, q)
    assert "QLearner(" in repr(learner)


def test_epsilon_greedy_respects_mask():
    rng = np.random.default_rng(0)
    q = np.array([[5.0, 1.0, 0.0], [0.0, 1.0, 9.0]])
    mask = np.array([[False, True, True], [True, True, False]])
    assert epsilon_greedy(q, mask, 0.0, rng).tolist() == [1, 1]
    picks = np.array([epsilon_greedy(q, mask, 1.0, rng) for _ in range(200)])
    assert set(picks[:, 0]) == {1, 2} and set(picks[:, 1]) == {0, 1}


def test_validation_messages():
    with pytest.raises(ValueError, match="gamma"):
        QLearner(TableNet(), gamma=1.5)
    with pytest.raises(ValueError, match="target_update_every"):
        QLearner(TableNet(), target_update_every=0)


class OffsetNet(nn.Module):
    """Q(o, .) = o + offset: online and target copies can be set to disagree."""

    def __init__(self):
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(3))

    def forward(self, x):
        return x + self.offset


def test_double_q_target_takes_the_online_argmax_and_the_target_value():
    """next_obs = [1, 4, 2]: the online net picks action 1; the target net values it at -6.
    A target-argmax (plain DQN) target would bootstrap 7, an online max 4."""
    gamma = 0.9
    learner = QLearner(OffsetNet(), gamma=gamma)
    with torch.no_grad():
        learner.target_net.offset.copy_(torch.tensor([0.0, -10.0, 5.0]))
    y = learner.td_targets(batch()).item()
    assert y == pytest.approx(0.5 + gamma**3 * -6.0)
    assert y != pytest.approx(0.5 + gamma**3 * 7.0) and y != pytest.approx(0.5 + gamma**3 * 4.0)
    # the same through the mixer: Q_tot^- of the target values at the online argmax
    torch.manual_seed(0)
    mixer = QMixer(1, 2)
    mixed = QLearner(OffsetNet(), mixer=mixer, gamma=gamma)
    with torch.no_grad():
        mixed.target_net.offset.copy_(torch.tensor([0.0, -10.0, 5.0]))
    state = torch.randn(1, 2)
    with torch.no_grad():
        expect = 0.5 + gamma**3 * mixer(torch.tensor([[-6.0]]), state)
    assert torch.allclose(mixed.td_targets(batch(state=state, next_state=state)), expect)
