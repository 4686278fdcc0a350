"""Algorithms, replay, lr scaling and checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from adaptlearn.core import pin_threads
from adaptlearn.rl import (
    A2C,
    DQN,
    PPO,
    ActorCritic,
    CategoricalPgAgent,
    EnvFactory,
    EpsilonGreedyAgent,
    PrioritizedReplay,
    QNetwork,
    Samples,
    SerialSampler,
    SumTree,
    UniformReplay,
    dqn_updates_per_batch,
    gae_advantages,
    large_batch_preset,
    scale_lr,
    train,
)

pin_threads(1)


def _identity_sampler(seed: int = 0) -> SerialSampler:
    return SerialSampler(EnvFactory("Identity-v0"), 8, 8, seed=seed)


def _pg_agent(seed: int = 0) -> CategoricalPgAgent:
    torch.manual_seed(seed)
    return CategoricalPgAgent(ActorCritic((4,), 4, arch="mlp", hidden=32),
                              generator=torch.Generator().manual_seed(seed))


def _dqn(seed: int = 0, **kw) -> DQN:
    torch.manual_seed(seed)
    q = QNetwork((4,), 4, arch="mlp", hidden=32, dueling=kw.pop("dueling", True))
    agent = EpsilonGreedyAgent(q, generator=torch.Generator().manual_seed(seed))
    args = {"lr": 3e-3, "batch_size": 64, "n_step": 2, "double": True, "prioritized": True,
            "replay_ratio": 4.0, "target_update_steps": 256, "learn_start": 256,
            "eps_steps": 1200, "eps_end": 0.02, "replay_size": 5000, "seed": seed}
    args.update(kw)
    return DQN(agent, 8, **args)


# ---- returns -------------------------------------------------------------------------------
@given(st.integers(1, 8), st.integers(1, 4), st.integers(0, 10_000))
def test_gae_lambda_one_equals_nstep_returns(T: int, B: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    reward = torch.tensor(rng.normal(size=(T, B)), dtype=torch.float32)
    value = torch.tensor(rng.normal(size=(T, B)), dtype=torch.float32)
    done = torch.tensor(rng.random((T, B)) < 0.3)
    next_value = torch.tensor(rng.normal(size=(T, B)), dtype=torch.float32)
    # Inside an episode the next value is the next step's value (as bootstrap_values builds it).
    inside = ~done[:-1]
    next_value[:-1][inside] = value[1:][inside]
    gamma = 0.9
    adv = gae_advantages(reward, value, next_value, done, gamma, 1.0)
    # Naive: R_t = r_t + gamma * (next_value_t if done_t or t == T-1 else R_{t+1}).
    ret = torch.zeros(T, B)
    for b in range(B):
        for t in reversed(range(T)):
            follow = next_value[t, b] if (done[t, b] or t == T - 1) else ret[t + 1, b]
            ret[t, b] = reward[t, b] + gamma * follow
    assert torch.allclose(adv + value, ret, atol=1e-5)


def test_gae_lambda_zero_is_one_step_td() -> None:
    reward, value, nv = torch.rand(5, 3), torch.rand(5, 3), torch.rand(5, 3)
    done = torch.zeros(5, 3, dtype=torch.bool)
    adv = gae_advantages(reward, value, nv, done, 0.9, 0.0)
    assert torch.allclose(adv, reward + 0.9 * nv - value)


# ---- learning a tiny task ------------------------------------------------------------------
def _final_return(curve) -> float:
    return curve[-1]["return"]


def test_a2c_learns_identity() -> None:
    algo = A2C(_pg_agent(), lr=2e-2, gamma=0.5)
    with _identity_sampler() as sampler:
        curve = train(sampler, algo, 2_500, return_window=16)
    assert _final_return(curve) >= 17.0  # random policy: 5, optimum: 20


def test_ppo_learns_identity() -> None:
    algo = PPO(_pg_agent(), lr=1e-2, epochs=4, minibatches=2,
               generator=torch.Generator().manual_seed(0))
    with _identity_sampler() as sampler:
        curve = train(sampler, algo, 3_000, return_window=16)
    assert _final_return(curve) >= 12.0


def test_dqn_double_dueling_nstep_prioritized_learns_identity() -> None:
    algo = _dqn()
    with _identity_sampler() as sampler:
        curve = train(sampler, algo, 2_000, return_window=16)
    assert _final_return(curve) >= 14.0
    # Replay ratio held: updates = ratio * (env steps from learn_start on) / batch_size.
    expected = 4.0 * (algo.env_steps - 256 + 64) / 64
    assert abs(algo.updates - expected) <= 1


# ---- replay --------------------------------------------------------------------------------
def _fake_samples(T: int, B: int, terminated, truncated, offset: float = 0.0) -> Samples:
    obs = offset + torch.arange(T * B, dtype=torch.float32).view(T, B, 1)
    final = -1.0 - obs  # distinguishable "final observations"
    return Samples(obs=obs, action=torch.zeros(T, B, dtype=torch.long),
                   reward=torch.ones(T, B), terminated=torch.tensor(terminated),
                   truncated=torch.tensor(truncated), final_obs=final,
                   last_obs=torch.full((B, 1), 1000.0))


def _targets(replay: UniformReplay, draws: int = 60) -> dict[int, tuple[float, float, float]]:
    seen = {}
    for _ in range(draws):
        batch = replay.sample(16)
        for o, r, d, n in zip(batch["obs"][:, 0], batch["returns"], batch["discount"],
                              batch["next_obs"][:, 0], strict=True):
            seen[int(o)] = (float(r), float(d), float(n))
    return seen


def test_nstep_replay_targets_respect_episode_ends() -> None:
    T, B = 6, 1
    term = [[False], [False], [False], [True], [False], [False]]
    trunc = [[False], [False], [False], [False], [True], [False]]
    replay = UniformReplay(100, B, (1,), np.float32, n_step=3, gamma=0.5,
                           generator=np.random.default_rng(0))
    replay.append(_fake_samples(T, B, term, trunc))
    seen = _targets(replay)
    assert set(seen) == {0, 1, 2}  # the newest n rows cannot start a 3-step return yet
    assert seen[0] == (1.75, 0.125, 3.0)  # 3 full steps, bootstrap from obs 3
    assert seen[1][:2] == (1.75, 0.0)  # terminates at row 3: no bootstrap
    assert seen[2][:2] == (1.5, 0.0)
    replay.append(_fake_samples(T, B, [[False]] * T, [[False]] * T, offset=100.0))
    seen = _targets(replay)
    assert seen[3][:2] == (1.0, 0.0)
    assert seen[4] == (1.0, 0.5, -5.0)  # truncated: bootstrap from its final observation
    assert seen[5] == (1.75, 0.125, 102.0)  # crosses into the next batch
    assert len(replay) == 12 and replay.n_valid_rows == 9


def test_sum_tree_samples_proportionally() -> None:
    tree = SumTree(5)
    tree.set(np.arange(5), np.array([1.0, 0.0, 2.0, 3.0, 4.0]))
    assert tree.total == pytest.approx(10.0)
    rng = np.random.default_rng(0)
    idx = tree.find(rng.uniform(0, tree.total, size=20_000))
    freq = np.bincount(idx, minlength=5) / idx.size
    assert np.allclose(freq, [0.1, 0.0, 0.2, 0.3, 0.4], atol=0.015)


def test_prioritized_replay_prefers_large_td_and_weights_correct() -> None:
    replay = PrioritizedReplay(200, 2, (1,), np.float32, n_step=1, alpha=1.0, beta=1.0,
                               generator=np.random.default_rng(0))
    replay.append(_fake_samples(10, 2, [[False, False]] * 10, [[False, False]] * 10))
    batch = replay.sample(32)
    assert torch.allclose(batch["weight"], torch.ones(32))  # all at max priority
    rows, envs = batch["index"]
    td = np.where(envs == 0, 10.0, 0.1)
    replay.update_priorities((rows, envs), td)
    batch = replay.sample(512)
    chosen = batch["index"]
    hi = (chosen[1] == 0) & np.isin(chosen[0], rows[envs == 0])
    assert hi.mean() > 0.5
    assert batch["weight"].max() == pytest.approx(1.0)
    assert (batch["weight"][torch.from_numpy(hi)] <= batch["weight"].max()).all()


# ---- state dicts ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["a2c", "ppo", "dqn"])
def test_state_dict_round_trip_gives_identical_updates(kind: str) -> None:
    def build():
        if kind == "dqn":
            return _dqn(learn_start=0)
        agent = _pg_agent()
        if kind == "a2c":
            return A2C(agent, lr=1e-2)
        return PPO(agent, lr=1e-2, minibatches=2, generator=torch.Generator().manual_seed(1))

    with _identity_sampler() as sampler:
        a = build()
        for _ in range(3):
            a.update(sampler.obtain_samples(a.agent))
        state = a.state_dict()
        buf = __import__("io").BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        state = torch.load(buf, weights_only=True)
        b = build()
        b.load_state_dict(state)
        samples = sampler.obtain_samples(a.agent).clone()
    a.update(samples)
    b.update(samples)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)


# ---- large-batch settings ------------------------------------------------------------------
def test_scale_lr_rules() -> None:
    assert scale_lr(1e-3, 16, 128, "none") == pytest.approx(1e-3)
    assert scale_lr(1e-3, 16, 128, "sqrt") == pytest.approx(1e-3 * math.sqrt(8))
    assert scale_lr(1e-3, 16, 128, "linear") == pytest.approx(8e-3)
    with pytest.raises(ValueError, match="`rule` of scale_lr"):
        scale_lr(1e-3, 16, 128, "cubic")


def test_large_batch_presets_hold_replay_ratio_and_scale_lr() -> None:
    base = large_batch_preset("dqn", 1)
    big = large_batch_preset("dqn", 8, rule="linear")
    # Standard DQN bookkeeping: 8 * 4 steps / 32 = 1 update per env step group.
    assert dqn_updates_per_batch(1, 4, 32, 8.0) == 1.0
    # Updates per env step fall by k while the replay ratio stays 8.
    per_step = lambda p: dqn_updates_per_batch(p["n_envs"], p["horizon"],  # noqa: E731
                                               p["batch_size"]) / (p["n_envs"] * p["horizon"])
    assert per_step(big) == pytest.approx(per_step(base) / 8)
    assert big["lr"] == pytest.approx(8 * base["lr"])
    assert big["optimizer_eps"] == pytest.approx(0.01 / 256)
    ppo = large_batch_preset("ppo", 4, rule="sqrt")
    assert ppo["minibatches"] == 4 and ppo["n_envs"] == 32
    assert ppo["lr"] == pytest.approx(2 * 2.5e-4)


def test_algorithm_validation_names_fields() -> None:
    with pytest.raises(ValueError, match="`lr` of A2C"):
        A2C(_pg_agent(), lr=-1.0)
    with pytest.raises(ValueError, match="`clip` of PPO"):
        PPO(_pg_agent(), clip=0.0)
    with pytest.raises(ValueError, match="`n_step` of DQN"):
        _dqn(n_step=0)
    assert "double=True" in repr(_dqn())


def test_train_checkpoint_and_resume_continue_the_curve() -> None:
    saved: list[dict] = []

    def keep(state: dict) -> None:
        buf = __import__("io").BytesIO()
        torch.save(state, buf)  # must be loadable with weights_only=True
        buf.seek(0)
        saved.append(torch.load(buf, weights_only=True))

    with _identity_sampler() as sampler:
        algo = A2C(_pg_agent(), lr=1e-2)
        full = train(sampler, algo, 640, checkpoint=keep, checkpoint_every_steps=256)
    assert [s["batch"] for s in saved] == [4, 8]
    with _identity_sampler() as sampler:
        resumed_algo = A2C(_pg_agent(seed=9), lr=1e-2)
        resumed = train(sampler, resumed_algo, 640, resume_state=saved[0])
    assert [r["env_steps"] for r in resumed] == [r["env_steps"] for r in full]
    for a, b in zip(resumed[:4], full[:4], strict=True):  # restored rows
        np.testing.assert_equal(a, b)  # (nan == nan for the returns before any episode ended)
    assert resumed_algo.updates == algo.updates == 10
