"""QMIX mixer monotonicity, hQmix decentralised-argmax consistency, CommNet structure."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from adaptlearn.marl.networks import AgentQNetwork, CommNetQNetwork, QMixer


@given(seed=st.integers(0, 10_000), n_agents=st.integers(1, 5), agent=st.integers(0, 4),
       delta=st.floats(0.0, 50.0), scale=st.floats(0.1, 20.0))
def test_raising_any_agent_q_never_lowers_q_tot(seed, n_agents, agent, delta, scale):
    torch.manual_seed(seed)
    mixer = QMixer(n_agents, 7, embed_dim=8, hypernet_embed=16)
    q = torch.randn(16, n_agents, dtype=torch.float64) * scale
    s = torch.randn(16, 7, dtype=torch.float64)
    mixer = mixer.double()
    raised = q.clone()
    raised[:, agent % n_agents] += delta
    with torch.no_grad():
        assert (mixer(raised, s) >= mixer(q, s) - 1e-9).all()


def test_mixer_weights_nonnegative_gradients_nonnegative_and_shape():
    torch.manual_seed(0)
    mixer = QMixer(3, 10)
    s = torch.randn(32, 10)
    w1, w2 = mixer.mixing_weights(s)
    assert (w1 >= 0).all() and (w2 >= 0).all()
    assert w1.shape == (32, 3, 32) and w2.shape == (32, 32, 1)
    q = torch.randn(32, 3, requires_grad=True)
    out = mixer(q, s)
    assert out.shape == (32, 1)
    (grad,) = torch.autograd.grad(out.sum(), q)
    assert (grad >= 0).all()


def test_per_agent_greedy_goals_maximise_q_tot():
    torch.manual_seed(1)
    n_goals = 6
    net = AgentQNetwork(5, n_goals, 2)
    mixer = QMixer(2, 4)
    obs, s = torch.randn(1, 2, 5), torch.randn(1, 4)
    with torch.no_grad():
        q = net(obs)[0]  # [2, G]
        greedy = q.argmax(dim=-1)
        joint = torch.tensor(list(itertools.product(range(n_goals), repeat=2)))
        chosen = torch.stack([q[0, joint[:, 0]], q[1, joint[:, 1]]], dim=-1)
        q_tot = mixer(chosen, s.expand(len(joint), -1))[:, 0]
    best = joint[q_tot.argmax()]
    assert torch.equal(best, greedy)


def test_commnet_is_permutation_equivariant_without_ids():
    torch.manual_seed(2)
    net = CommNetQNetwork(6, 4, 3, agent_ids=False)
    x = torch.randn(5, 3, 6)
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        assert torch.allclose(net(x)[:, perm], net(x[:, perm]), atol=1e-6)


def test_commnet_with_zero_communication_is_independent():
    torch.manual_seed(3)
    net = CommNetQNetwork(6, 4, 3)
    x = torch.randn(5, 3, 6)
    y = x.clone()
    y[:, 1:] = torch.randn(5, 2, 6)  # change the other agents only
    with torch.no_grad():
        assert not torch.allclose(net(x)[:, 0], net(y)[:, 0])  # agents do communicate
        for m in net.comm_maps:
            m.weight.zero_()
        assert torch.allclose(net(x)[:, 0], net(y)[:, 0])


@pytest.mark.parametrize("shared", [True, False])
def test_agent_network_outputs_depend_only_on_own_input(shared):
    torch.manual_seed(4)
    net = AgentQNetwork(6, 3, 2, shared=shared)
    x = torch.randn(4, 2, 6)
    y = x.clone()
    y[:, 1] += 1.0
    with torch.no_grad():
        assert torch.equal(net(x)[:, 0], net(y)[:, 0])
        assert net(x).shape == (4, 2, 3)
    assert "shared=" in repr(net)


def test_bad_hyperparameters_name_the_field():
    with pytest.raises(ValueError, match="n_agents"):
        QMixer(0, 4)
    with pytest.raises(ValueError, match="rounds"):
        CommNetQNetwork(3, 2, 2, rounds=-1)
    assert np.isfinite(QMixer(2, 3)(torch.zeros(1, 2), torch.zeros(1, 3)).item())
