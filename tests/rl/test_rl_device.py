"""Device plumbing (issue #24): agents and algorithms run where they are told; and an optional
one-update parity check of PPO and A2C against Stable-Baselines3 (skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaptlearn.rl import (
    A2C,
    DQN,
    PPO,
    ActorCritic,
    CategoricalPgAgent,
    EnvFactory,
    EpsilonGreedyAgent,
    QNetwork,
    SerialSampler,
)


def _params_on(model: torch.nn.Module, device: torch.device) -> bool:
    return all(p.device.type == device.type for p in model.parameters())


@pytest.mark.parametrize("kind", ["a2c", "ppo", "dqn"])
def test_agents_and_algorithms_update_on_the_device(kind: str, any_device) -> None:
    torch.manual_seed(0)
    if kind == "dqn":
        agent = EpsilonGreedyAgent(QNetwork((4,), 4, hidden=16, dueling=True), seed=0)
        algo = DQN(agent, 4, batch_size=16, learn_start=0, prioritized=True, n_step=2,
                   double=True, replay_size=256, device=any_device)
    else:
        agent = CategoricalPgAgent(ActorCritic((4,), 4, hidden=16), seed=0)
        algo = (A2C(agent, device=any_device) if kind == "a2c" else
                PPO(agent, minibatches=2, device=any_device))
    assert _params_on(algo.model, any_device) and agent.device.type == any_device.type
    before = [p.detach().cpu().clone() for p in algo.model.parameters()]
    with SerialSampler(EnvFactory("Identity-v0"), 4, 8, seed=0) as sampler:
        for _ in range(3):
            samples = sampler.obtain_samples(agent)  # host buffers, actions from the device
            stats = algo.update(samples)
    assert samples.obs.device.type == "cpu"
    assert all(np.isfinite(v) for v in stats.values())
    after = [p.detach().cpu() for p in algo.model.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    if kind == "dqn":
        assert _params_on(algo.target, any_device) and algo.updates > 0


def test_model_device_argument_and_bad_device_message(any_device) -> None:
    model = ActorCritic((4, 10, 10), 6, arch="minatar", device=any_device)
    assert _params_on(model, any_device)
    logits, value = model(torch.zeros(2, 4, 10, 10, dtype=torch.uint8, device=any_device))
    assert logits.shape == (2, 6) and value.shape == (2,)
    q = QNetwork((4,), 2, device=any_device)
    assert _params_on(q, any_device)
    with pytest.raises(ValueError, match="`device` must be a torch device"):
        CategoricalPgAgent(ActorCritic((4,), 2), device="nonsense")


# ---- optional parity with Stable-Baselines3 --------------------------------------------------
def _sb3_setup(algo_name: str, n_envs: int, n_steps: int):
    """SB3 model with our network's weights, and our algorithm on the same initial weights."""
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)
    common = {"n_steps": n_steps, "gamma": 0.99, "ent_coef": 0.01, "vf_coef": 0.25,
              "max_grad_norm": 0.5, "seed": 0, "device": "cpu",
              "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [64, 64]},
                                "activation_fn": torch.nn.Tanh}}
    torch.manual_seed(0)
    ours = ActorCritic((4,), 2, arch="mlp")
    if algo_name == "ppo":
        model = sb3.PPO("MlpPolicy", venv, learning_rate=3e-4, batch_size=n_envs * n_steps,
                        n_epochs=1, gae_lambda=0.95, clip_range=0.2, normalize_advantage=True,
                        **common)
        model.policy.optimizer = torch.optim.Adam(model.policy.parameters(), lr=3e-4, eps=1e-5)
        algo = PPO(CategoricalPgAgent(ours, seed=0), lr=3e-4, gae_lambda=0.95, clip=0.2,
                   epochs=1, minibatches=1, value_coef=0.5, entropy_coef=0.01,
                   max_grad_norm=0.5, optimizer_eps=1e-5)
    else:
        model = sb3.A2C("MlpPolicy", venv, learning_rate=7e-4, gae_lambda=1.0,
                        use_rms_prop=False, normalize_advantage=False, **common)
        model.policy.optimizer = torch.optim.Adam(model.policy.parameters(), lr=7e-4, eps=1e-5)
        algo = A2C(CategoricalPgAgent(ours, seed=0), lr=7e-4, value_coef=0.5,
                   entropy_coef=0.01, max_grad_norm=0.5, optimizer_eps=1e-5)
    pol = model.policy
    pairs = [(pol.mlp_extractor.policy_net[0], ours.torso[1]),
             (pol.mlp_extractor.policy_net[2], ours.torso[3]),
             (pol.mlp_extractor.value_net[0], ours.critic_torso[1]),
             (pol.mlp_extractor.value_net[2], ours.critic_torso[3]),
             (pol.action_net, ours.pi), (pol.value_net, ours.v)]
    with torch.no_grad():
        for theirs, mine in pairs:
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)
    return model, algo, pairs


@pytest.mark.parametrize("algo_name", ["ppo", "a2c"])
def test_one_update_matches_stable_baselines3(algo_name: str) -> None:
    """SB3 collects a rollout; we update on the same data; parameters must agree.

    ``value_coef=0.5`` here equals SB3's ``vf_coef=0.25`` (ours multiplies ``0.5 * MSE``).
    """
    from adaptlearn.rl import Samples

    n_envs, n_steps = 4, 16
    model, algo, pairs = _sb3_setup(algo_name, n_envs, n_steps)
    _, callback = model._setup_learn(n_envs * n_steps, callback=None)
    callback.on_training_start(locals(), globals())
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=n_steps)
    buf = model.rollout_buffer
    obs = torch.as_tensor(buf.observations).float()  # [T, B, 4]
    action = torch.as_tensor(buf.actions).long().view(n_steps, n_envs)
    # SB3 folds time-limit bootstraps into the rewards, so our flags are all False and the
    # last value comes from SB3's own bootstrap (its returns = advantages + values)
    values = torch.as_tensor(buf.values).float().view(n_steps, n_envs)
    starts = torch.as_tensor(buf.episode_starts).bool().view(n_steps, n_envs)
    done = torch.cat([starts[1:], torch.as_tensor(model._last_episode_starts).bool()[None]])
    samples = Samples(obs=obs, action=action, reward=torch.as_tensor(buf.rewards).float(),
                      terminated=done, truncated=torch.zeros_like(done), final_obs=obs.clone(),
                      last_obs=torch.as_tensor(model._last_obs).float(),
                      agent_info={"value": values,
                                  "logp": torch.as_tensor(buf.log_probs).float()})
    model.train()
    algo.update(samples)
    for theirs, mine in pairs:
        torch.testing.assert_close(theirs.weight, mine.weight, atol=1e-5, rtol=1e-4)
