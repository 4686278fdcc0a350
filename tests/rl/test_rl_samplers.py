"""Samplers: identical trajectories across samplers, autoreset/bootstrapping, worker death."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from adaptlearn.rl import (
    A2C,
    ActorCritic,
    AlternatingSampler,
    CategoricalPgAgent,
    EnvFactory,
    EpsilonGreedyAgent,
    ParallelSampler,
    QNetwork,
    SerialSampler,
    WorkerDiedError,
    bootstrap_values,
    train,
)
from adaptlearn.rl.agents import EnvNoise
from adaptlearn.rl.runner import _pid_cpu_seconds, cpu_seconds


class RandomAgent:
    """Stochastic agent drawing from its own generator (one draw per batched call)."""

    def __init__(self, n_actions: int, seed: int = 0) -> None:
        self.n = n_actions
        self.gen = torch.Generator().manual_seed(seed)

    def step(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        action = torch.randint(self.n, (obs.shape[0],), generator=self.gen)
        return action, {"obs_sum": obs.float().flatten(1).sum(1)}


class ObsAgent:
    """Deterministic agent: the action is a function of the observation only."""

    def step(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return (obs[:, 2] > 0).long(), {}


def _collect(sampler, agent, n_batches: int = 3):
    with sampler:
        return [sampler.obtain_samples(agent).clone() for _ in range(n_batches)]


def _assert_same(a_list, b_list) -> None:
    for a, b in zip(a_list, b_list, strict=True):
        for name in ("obs", "action", "reward", "terminated", "truncated", "last_obs"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        done = a.done
        assert torch.equal(a.final_obs[done], b.final_obs[done])
        assert a.episodes == b.episodes
        for k in a.agent_info:  # a forward pass over 2 envs may round unlike one over 4
            torch.testing.assert_close(a.agent_info[k], b.agent_info[k])


def _our_agents(seed: int = 7):
    """The project's agents, freshly seeded: a stochastic policy and epsilon-greedy (eps 0.5)."""
    torch.manual_seed(seed)
    pg = CategoricalPgAgent(ActorCritic((4,), 2, hidden=16), seed=seed)
    eps = EpsilonGreedyAgent(QNetwork((4,), 2, hidden=16), epsilon=0.5, seed=seed)
    return [pg, eps, pg]


def _collect_ours(sampler):
    with sampler:
        return [sampler.obtain_samples(agent).clone() for agent in _our_agents()]


@pytest.mark.timeout(60)
def test_serial_parallel_alternating_identical_trajectories() -> None:
    env_fn = EnvFactory("CartPole-v1")
    serial = _collect_ours(SerialSampler(env_fn, 4, 40, seed=3))
    parallel = _collect_ours(ParallelSampler(env_fn, 4, 40, seed=3, n_workers=2))
    _assert_same(serial, parallel)
    # Episodes did end inside the batches, so autoreset was exercised across workers.
    assert sum(len(s.episodes) for s in serial) > 0
    # The alternating sampler calls the agent once per group; the agents draw each env's
    # noise from that env's own stream, so the trajectories still match.
    alt = _collect_ours(AlternatingSampler(env_fn, 4, 40, seed=3, n_workers=2))
    _assert_same(serial, alt)
    # the exploration noise mattered: the epsilon-greedy batch is not the greedy policy's
    q = _our_agents()[1].model
    greedy = q(serial[1].obs.flatten(0, 1)).argmax(-1).view(40, 4)
    assert (greedy != serial[1].action).float().mean() > 0.1


def test_env_noise_does_not_depend_on_grouping() -> None:
    a, b = EnvNoise(5, 2), EnvNoise(5, 2)
    together = np.concatenate([a.draw(np.arange(6)) for _ in range(300)])
    split = np.concatenate([np.concatenate([b.draw(np.arange(3)), b.draw(np.arange(3, 6))])
                            for _ in range(300)])
    np.testing.assert_array_equal(together, split)  # crosses the 256-step refill too
    assert together.std() > 0.25 and not np.array_equal(together[:6], together[6:12])
    state = a.state_dict()
    nxt = a.draw(np.arange(6))
    a.load_state_dict(state)
    np.testing.assert_array_equal(a.draw(np.arange(6)), nxt)


@pytest.mark.timeout(60)
def test_train_counts_cpu_of_live_worker_processes() -> None:
    torch.manual_seed(0)
    algo = A2C(CategoricalPgAgent(ActorCritic((4,), 2, hidden=8), seed=0))
    with ParallelSampler(EnvFactory("CartPole-v1"), 8, 50, seed=0, n_workers=2) as sampler:
        sampler.initialize()
        pids = sampler.worker_pids()
        assert len(pids) == 2
        w0, p0, old0 = sum(map(_pid_cpu_seconds, pids)), time.process_time(), cpu_seconds()
        curve = train(sampler, algo, 8 * 50 * 40)
        w1, p1, old1 = sum(map(_pid_cpu_seconds, pids)), time.process_time(), cpu_seconds()
    workers = w1 - w0
    # the workers did work well above the 10 ms clock tick while alive
    assert workers > 0.15
    # train's CPU seconds = this process + the live workers (/proc), to a few clock ticks
    assert curve[-1]["cpu_s"] == pytest.approx(p1 - p0 + workers, abs=0.04)
    # os.times' children fields (the old accounting) miss the still-running workers: it reads
    # this process alone, up to its own tick rounding (user and system: 2 ticks)
    assert old1 - old0 < p1 - p0 + 0.5 * workers
    assert old1 - old0 == pytest.approx(p1 - p0, abs=0.03)


@pytest.mark.timeout(60)
def test_alternating_advances_every_env_each_step() -> None:
    with AlternatingSampler(EnvFactory("Identity-v0", {"max_episode_steps": 7}), 6, 10, seed=0,
                            n_workers=2) as sampler:
        s = sampler.obtain_samples(RandomAgent(4))
        # Identity-v0 truncates every 7 steps: every env must have truncated at t = 6.
        assert s.truncated[6].all() and not s.truncated[:6].any()
        assert s.truncated.sum() == 6
        s2 = sampler.obtain_samples(RandomAgent(4))
        assert s2.truncated[3].all()  # 10 + 3 + 1 = 14 = 2 * 7


def test_same_seed_same_batches_different_seed_differs() -> None:
    env_fn = EnvFactory("CartPole-v1")
    a = _collect(SerialSampler(env_fn, 3, 20, seed=1), RandomAgent(2), 1)[0]
    b = _collect(SerialSampler(env_fn, 3, 20, seed=1), RandomAgent(2), 1)[0]
    c = _collect(SerialSampler(env_fn, 3, 20, seed=2), RandomAgent(2), 1)[0]
    assert torch.equal(a.obs, b.obs)
    assert not torch.equal(a.obs, c.obs)


def test_autoreset_final_obs_and_next_obs_at_truncation() -> None:
    length = 4
    env_fn = EnvFactory("Identity-v0", {"max_episode_steps": length})
    with SerialSampler(env_fn, 2, 6, seed=0) as sampler:
        s = sampler.obtain_samples(RandomAgent(4))
    t_end = length - 1
    assert s.truncated[t_end].all() and not s.terminated.any()
    # Reference: replay the same seeds and actions on plain envs.
    nxt = s.next_obs()
    for b, seed in enumerate(sampler.env_seeds):
        env = env_fn()
        obs, _ = env.reset(seed=seed)
        for t in range(s.T):
            assert torch.equal(s.obs[t, b], torch.from_numpy(obs))
            obs, _, term, trunc, info = env.step(int(s.action[t, b]))
            assert torch.equal(nxt[t, b], torch.from_numpy(obs))  # final obs where it ended
            if term or trunc:
                assert info["episode"]["l"] == length
                obs, _ = env.reset()
        assert torch.equal(s.last_obs[b], torch.from_numpy(obs))
    # Bootstrapping: V(final_obs) at truncation, V(s_{t+1}) elsewhere, V(last_obs) at the end.
    value_fn = lambda o: o.float().argmax(-1).float() + 1.0  # noqa: E731
    value = torch.stack([value_fn(s.obs[t]) for t in range(s.T)])
    boot = bootstrap_values(value_fn, s, value)
    assert torch.equal(boot, value_fn(nxt.flatten(0, 1)).view(s.T, s.B))


def test_bootstrap_is_zero_at_termination() -> None:
    env_fn = EnvFactory("CartPole-v1")
    with SerialSampler(env_fn, 2, 60, seed=0) as sampler:
        s = sampler.obtain_samples(RandomAgent(2))
    assert s.terminated.any()
    value_fn = lambda o: torch.ones(o.shape[0])  # noqa: E731
    boot = bootstrap_values(value_fn, s, torch.ones(s.T, s.B))
    assert (boot[s.terminated] == 0).all()
    assert (boot[~s.terminated] == 1).all()


@pytest.mark.timeout(60)
def test_worker_death_raises_quickly() -> None:
    env_fn = EnvFactory("CartPole-v1", crash_after_steps=5)
    sampler = ParallelSampler(env_fn, 4, 20, seed=0, n_workers=2, timeout_s=30)
    t0 = time.monotonic()
    with pytest.raises(WorkerDiedError, match="exit code 3"):
        sampler.obtain_samples(RandomAgent(2))
    assert time.monotonic() - t0 < 20
    assert all(not p.is_alive() for p in sampler._procs)
    sampler.close()


@pytest.mark.timeout(60)
def test_close_stops_workers_and_rejects_reuse() -> None:
    sampler = ParallelSampler(EnvFactory("CartPole-v1"), 2, 5, seed=0, n_workers=2)
    sampler.obtain_samples(RandomAgent(2))
    procs = list(sampler._procs)
    sampler.close()
    assert all(not p.is_alive() for p in procs)
    with pytest.raises(RuntimeError, match="closed"):
        sampler.obtain_samples(RandomAgent(2))


def test_sampler_validation_messages() -> None:
    with pytest.raises(ValueError, match="`n_envs` of SerialSampler"):
        SerialSampler(EnvFactory("CartPole-v1"), 0, 5)
    with pytest.raises(ValueError, match="`n_workers` of AlternatingSampler must be a multiple"):
        AlternatingSampler(EnvFactory("CartPole-v1"), 6, 5, n_workers=3)
    assert "n_workers=2" in repr(ParallelSampler(EnvFactory("CartPole-v1"), 4, 5, n_workers=2))


def test_decorrelation_is_seeded() -> None:
    env_fn = EnvFactory("CartPole-v1")
    a = _collect(SerialSampler(env_fn, 4, 5, seed=0, decorrelation_steps=20), RandomAgent(2), 1)
    b = _collect(SerialSampler(env_fn, 4, 5, seed=0, decorrelation_steps=20), RandomAgent(2), 1)
    c = _collect(SerialSampler(env_fn, 4, 5, seed=0), RandomAgent(2), 1)
    assert torch.equal(a[0].obs, b[0].obs)
    assert not torch.equal(a[0].obs, c[0].obs)
    assert np.isfinite(a[0].obs.numpy()).all()
