"""Device plumbing (issue 24): the text CNNs, the bandit and the agent run on ``any_device``.

One update (Q-network, AEN, and a bandit refresh) of the agent in every mode on each device, the
bandit's bounds equal to the CPU's, and the training loop with evaluation and elimination
statistics. The ``cuda`` cases run where CUDA exists.
"""

import numpy as np
import pytest
import torch

from adaptlearn.textgame import (
    AEDQNAgent,
    AgentConfig,
    LinearContextualBandit,
    TextQuestEnv,
    elimination_stats,
    train_agent,
)
from adaptlearn.textgame.agent import MODES
from adaptlearn.textgame.networks import EliminationNetwork, QNetwork


def _env():
    return TextQuestEnv("egg", n_verbs=6, n_nouns=14, max_steps=30)


@pytest.mark.parametrize("net_cls", [QNetwork, EliminationNetwork])
def test_networks_forward_backward_on_the_device(any_device, net_cls):
    net = net_cls(50, 7, embed_dim=8, n_filters=4, device=any_device)
    assert all(p.device.type == any_device.type for p in net.parameters())
    tokens = torch.randint(1, 50, (5, 12), device=any_device)
    out = net(tokens)
    assert out.shape == (5, 7) and out.device.type == any_device.type
    out.sum().backward()
    assert all(p.grad is not None for p in net.head.parameters())


def test_bandit_on_the_device_matches_the_cpu(any_device):
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(300, 6, generator=g), dim=1)
    acts = torch.randint(0, 4, (300,), generator=g)
    e = (torch.rand(300, generator=g) < 0.7).double()
    ref = LinearContextualBandit(4, 6, beta=0.3).fit(x, acts, e)
    dev = LinearContextualBandit(4, 6, beta=0.3, device=any_device).fit(x, acts, e)
    assert dev.theta.device.type == any_device.type
    assert torch.allclose(dev.lower_bound(x).cpu(), ref.lower_bound(x), atol=1e-9)
    ref.update(x[0], 2, 1.0)
    dev.update(x[0], 2, 1.0)
    assert torch.allclose(dev.v_inv.cpu(), ref.v_inv, atol=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_one_update_of_the_agent_on_the_device(any_device, mode, fill):
    env = _env()
    cfg = AgentConfig(mode=mode, learn_start=0, batch_size=16, train_every=1, refresh_every=1,
                      target_every=1)
    agent = AEDQNAgent(len(env.vocab), env.obs_len, env.n_actions, cfg, seed=0,
                       device=any_device)
    assert agent.device.type == any_device.type
    fill(env, agent, 64)
    before = [p.detach().clone() for p in agent.q.parameters()]
    out = agent.update()  # Q step, AEN step and (AE-DQN) a bandit refresh
    assert np.isfinite(out["td_loss"])
    assert any(not torch.equal(b, p.detach())
               for b, p in zip(before, agent.q.parameters(), strict=True))
    adm = agent.admissible(np.arange(len(agent.table)))
    assert adm.device.type == any_device.type and adm.any(dim=1).all()
    if agent.uses_elimination:
        assert np.isfinite(out["aen_loss"]) and agent.n_refreshes == 1
        assert agent.bandit.theta.device.type == any_device.type
    targets = agent.bellman_targets(agent.replay.batch(np.arange(16)))
    assert targets.device.type == any_device.type and torch.isfinite(targets).all()
    assert 0 <= agent.act(0) < env.n_actions


def test_online_bandit_and_training_loop_on_the_device(any_device):
    env = _env()
    cfg = AgentConfig(mode="ae-dqn", learn_start=20, batch_size=16, refresh_every=50,
                      online_bandit=True)
    agent = AEDQNAgent(len(env.vocab), env.obs_len, env.n_actions, cfg, seed=0,
                       device=any_device)
    curve, summary = train_agent(env, agent, total_steps=120, eval_env=_env(), eval_every=60,
                                 eval_episodes=1, seed=0)
    assert len(curve) == 2 and np.isfinite(summary["final_return"])
    stats = elimination_stats(_env(), agent)
    assert 0.0 <= stats["false_elim_visited"] <= 1.0
