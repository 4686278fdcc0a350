"""Device plumbing (issue 24): every network and learner of the family trains on ``any_device``.

One update of each learner (flat IQL, QMIX, Ind-hDQN's high level and controller, hCom's CommNet,
hQmix's mixer) from CPU minibatches, as the replay buffers hand them out, and a few hundred
environment steps of the training loop per method. The ``cuda`` cases run where CUDA exists.
"""

import numpy as np
import pytest
import torch

from adaptlearn.marl.learners import QLearner
from adaptlearn.marl.networks import AgentQNetwork, CommNetQNetwork, QMixer
from adaptlearn.marl.runner import TrainConfig, train

N, D, A, S, B = 2, 6, 5, 9, 8


def cpu_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """A joint minibatch of ``B`` rows on the CPU (where the replay buffers keep them)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(B, N, D, generator=g), "next_obs": torch.randn(B, N, D, generator=g),
        "action": torch.randint(0, A, (B, N), generator=g),
        "reward": torch.randn(B, N, generator=g), "tau": torch.randint(1, 4, (B, N)).float(),
        "next_mask": torch.ones(B, N, A, dtype=torch.bool), "beta": torch.ones(B, N),
        "done": torch.zeros(B, N), "valid": torch.ones(B, N, dtype=torch.bool),
        "state": torch.randn(B, S, generator=g), "next_state": torch.randn(B, S, generator=g),
    }


LEARNERS = {
    "iql / ind-hdqn high level": lambda dev: (AgentQNetwork(D, A, N, device=dev), None),
    "unshared per-agent nets": lambda dev: (AgentQNetwork(D, A, N, shared=False, device=dev),
                                            None),
    "hcom (CommNet)": lambda dev: (CommNetQNetwork(D, A, N, device=dev), None),
    "qmix / hqmix (mixer)": lambda dev: (AgentQNetwork(D, A, N, device=dev),
                                         QMixer(N, S, device=dev)),
}


@pytest.mark.parametrize("kind", list(LEARNERS))
def test_one_update_of_each_learner_on_the_device(any_device, kind):
    torch.manual_seed(0)
    net, mixer = LEARNERS[kind](any_device)
    assert all(p.device.type == any_device.type for p in net.parameters())
    learner = QLearner(net, mixer=mixer, target_update_every=1)
    assert learner.device.type == any_device.type
    before = [p.detach().clone() for p in learner.params]
    out = learner.update(cpu_batch())
    assert np.isfinite(out["loss"])
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, learner.params,
                                                                strict=True))
    # target copy happened on the device too
    for p, t in zip(learner.net.parameters(), learner.target_net.parameters(), strict=True):
        assert t.device == p.device and torch.equal(t, p)
    q = learner.q_values(np.zeros((N, D), np.float32))
    assert isinstance(q, np.ndarray) and q.shape == (N, A)


def test_learner_moves_a_cpu_network_to_the_requested_device(any_device):
    learner = QLearner(AgentQNetwork(D, A, N), mixer=QMixer(N, S), device=any_device)
    for module in (learner.net, learner.target_net, learner.mixer, learner.target_mixer):
        assert all(p.device.type == any_device.type for p in module.parameters())
    y = learner.td_targets(cpu_batch())
    assert y.device.type == any_device.type and y.shape == (B, 1)


def test_device_results_match_the_cpu(any_device):
    """Same initial weights and batch: the TD targets and loss agree across devices."""
    torch.manual_seed(0)
    net, mixer = AgentQNetwork(D, A, N), QMixer(N, S)
    ref = QLearner(net, mixer=mixer)
    other = QLearner(AgentQNetwork(D, A, N), mixer=QMixer(N, S), device=any_device)
    other.net.load_state_dict(net.state_dict())
    other.mixer.load_state_dict(mixer.state_dict())
    other.sync_target()
    ref.sync_target()
    batch = cpu_batch(1)
    assert torch.allclose(other.loss(batch).cpu(), ref.loss(batch), atol=1e-5)


@pytest.mark.parametrize("method,acer", [("iql", False), ("ind-hdqn", True), ("hqmix", False)])
def test_training_loop_runs_on_the_device(any_device, method, acer):
    cfg = TrainConfig(layout="tiny", total_steps=120, batch_size=8, train_every=2,
                      log_every=40, window=2, eval_episodes=1, subgoal_cap=4, acer=acer,
                      meta_pretrain_frac=0.0, use_masks=False)
    out = train(method, cfg, 0, device=any_device)
    assert np.isfinite(out["final"]["team_return"])
