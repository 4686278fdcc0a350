"""ACER: augmented, concurrent high-level transitions on a hand-built trajectory."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptlearn.marl.replay import EpisodeLog, ReplayBuffer, high_level_transitions

GAMMA = 0.9


def hand_built_log(terminated=True):
    """T = 8 steps, 2 agents. Agent 0 runs subgoals over [0, 3) and [3, 8); agent 1 over [0, 5)
    and [5, 8). Observations/states encode (agent, t) so each field can be traced."""
    big_t, n = 8, 2
    log = EpisodeLog(terminated=terminated)
    for t in range(big_t + 1):
        log.obs.append(np.array([[10 * i + t] for i in range(n)], np.float32))
        log.state.append(np.array([100 + t], np.float32))
        log.masks.append(np.ones((n, 3), bool))
        log.decide.append(np.array([t in (0, 3), t in (0, 5)]))
    log.decide[big_t] = np.array([True, True])
    log.goals = [np.array([0 if t < 3 else 1, 2 if t < 5 else 0]) for t in range(big_t)]
    log.rewards = [0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.5]
    return log


def suffix_return(rewards, j, end):
    return sum(GAMMA ** (k - j) * rewards[k] for k in range(j, end))


def test_augmentation_gives_exactly_the_suffix_transitions():
    log = hand_built_log()
    rows = high_level_transitions(log, GAMMA, augment=True, joint=False)
    assert [int(r["t"][0]) for r in rows] == list(range(8))  # one row per step (concurrent)
    seg = {0: [(0, 3), (3, 8)], 1: [(0, 5), (5, 8)]}
    for r in rows:
        t = int(r["t"][0])
        assert r["valid"].all()
        for i in (0, 1):
            t0, t1 = next(s for s in seg[i] if s[0] <= t < s[1])
            assert r["obs"][i, 0] == 10 * i + t
            assert r["goal"][i] == log.goals[t0][i]
            assert r["tau"][i] == t1 - t  # durations tau, tau-1, ..., 1
            assert r["next_obs"][i, 0] == 10 * i + t1  # same end observation for the segment
            assert r["reward"][i] == pytest.approx(suffix_return(log.rewards, t, t1))
            assert r["beta"][i] == 1.0
            assert r["done"][i] == float(t1 == 8)
    # agent 0's first segment: tau 3, 2, 1 and R = gamma^2 0.5, gamma 0.5, 0.5
    assert [r["tau"][0] for r in rows[:3]] == [3, 2, 1]
    assert [r["reward"][0] for r in rows[:3]] == pytest.approx([GAMMA**2 * 0.5, GAMMA * 0.5, 0.5])


def test_without_augmentation_one_transition_per_subgoal():
    log = hand_built_log(terminated=False)
    rows = high_level_transitions(log, GAMMA, augment=False, joint=False)
    starts = {(int(r["t"][0]), i) for r in rows for i in np.flatnonzero(r["valid"])}
    assert starts == {(0, 0), (0, 1), (3, 0), (5, 1)}
    first = rows[0]
    assert first["tau"].tolist() == [3, 5]
    assert first["reward"] == pytest.approx([GAMMA**2 * 0.5, GAMMA**2 * 0.5])
    assert not rows[-1]["done"].any()  # truncated: bootstrap


def test_joint_rows_squeeze_to_first_end_with_option_bootstrap():
    log = hand_built_log()
    rows = high_level_transitions(log, GAMMA, augment=False, joint=True)
    assert [int(r["t"][0]) for r in rows] == [0, 3, 5]
    expect = {0: (3, [1, 0]), 3: (5, [0, 1]), 5: (8, [1, 1])}
    for r in rows:
        t = int(r["t"][0])
        end, beta = expect[t]
        assert r["tau"].tolist() == [end - t] * 2
        assert r["beta"].tolist() == beta  # a still-running subgoal bootstraps Q(o', g)
        assert r["next_state"][0] == 100 + end and r["state"][0] == 100 + t
        assert r["reward"] == pytest.approx([suffix_return(log.rewards, t, end)] * 2)
    aug = high_level_transitions(log, GAMMA, augment=True, joint=True)
    assert len(aug) == 8
    assert [r["tau"][0] for r in aug] == [3, 2, 1, 2, 1, 3, 2, 1]


def test_concurrent_rows_never_mix_time_steps():
    rows = high_level_transitions(hand_built_log(), GAMMA, augment=True, joint=False)
    buf = ReplayBuffer(100, {"obs": (2, 1), "t": (1,)}, {"t": np.int64})
    buf.extend([{"obs": r["obs"], "t": r["t"]} for r in rows])
    batch = buf.sample(64, np.random.default_rng(0))
    t = batch["t"][:, 0]
    assert (batch["obs"][:, 0, 0] == t).all() and (batch["obs"][:, 1, 0] == 10 + t).all()


@given(capacity=st.integers(1, 20), n_added=st.integers(1, 60))
def test_ring_buffer_never_returns_unwritten_slots(capacity, n_added):
    buf = ReplayBuffer(capacity, {"x": (1,)})
    for k in range(n_added):
        buf.add({"x": [k + 1.0]})
    x = buf.sample(50, np.random.default_rng(capacity))["x"][:, 0]
    assert len(buf) == min(capacity, n_added)
    assert (x >= max(1, n_added - capacity + 1)).all() and (x <= n_added).all()


def test_buffer_state_dict_round_trip():
    buf = ReplayBuffer(5, {"x": (2,)})
    for k in range(7):
        buf.add({"x": [k, -k]})
    other = ReplayBuffer(5, {"x": (2,)})
    other.load_state_dict(buf.state_dict())
    assert np.array_equal(other.data["x"], buf.data["x"]) and other.cursor == buf.cursor
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, {"x": (1,)}).sample(1, np.random.default_rng(0))
