"""Event-F1 model: hand computations, the Monte Carlo check, and the reference's hop-basis bug."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptlearn.mainstream import (
    empirical_event_f1,
    estimate_correlation,
    event_f1,
    event_miss_probability,
    event_precision_recall,
    simulate_event_miss,
)
from adaptlearn.mainstream.f1 import sampled_frames


def test_miss_probability_by_hand_stream_and_legacy():
    # a=.8, T=.5 s, c=.107, F=10, f=5: s=2; m = .2 + .8*.107 = .2856
    m = 0.2 + 0.8 * 0.107
    # stream basis: d = T*F = 5 frames -> 2.5 hops: r1=2, r2=3, w1=w2=.5
    stream = 0.5 * 0.2 * m + 0.5 * 0.2 * m**2
    assert event_miss_probability(0.8, 0.5, 0.107, 10, 5) == pytest.approx(stream, abs=1e-12)
    # legacy basis: d = T*f = 2.5 -> 1.25 hops: r1=1, r2=2, w2=.25
    legacy = 0.75 * 0.2 + 0.25 * 0.2 * m
    got = event_miss_probability(0.8, 0.5, 0.107, 10, 5, hop_basis="legacy")
    assert got == pytest.approx(legacy, abs=1e-12)
    assert got == pytest.approx(0.164, abs=5e-4)  # the spec's reference-code number


def test_short_event_branch():
    # T=.1 s at F=10 is one stream frame; f=2 -> stride 5 > d=1: hit only if sampled (1/5) and seen
    assert event_miss_probability(0.9, 0.1, 0.5, 10, 2) == pytest.approx(1 - 0.2 * 0.9)


def test_integer_hops_use_a_single_term():
    # d/s = 3 exactly: P_miss = (1-a) m^2 for every c
    a, c = 0.6, 0.3
    m = (1 - a) + a * c
    assert event_miss_probability(a, 0.3, c, 10, 10) == pytest.approx((1 - a) * m**2)


def test_f1_by_hand():
    # one-frame events sampled every frame: recall = a, false alarm = q
    a, q, rho = 0.5, 0.1, 0.3
    p = rho * a / (rho * a + (1 - rho) * q)
    assert event_precision_recall(a, q, 0.1, rho, 0.2, 10, 10) == pytest.approx((p, a))
    assert event_f1(a, q, 0.1, rho, 0.2, 10, 10) == pytest.approx(2 * p * a / (p + a))
    assert event_f1(1.0, 0.0, 0.5, 0.3, 0.5, 10, 2) == pytest.approx(1.0)  # 1 hop
    assert event_f1(1.0, 0.0, 0.5, 0.3, 0.5, 10, 1) == pytest.approx(2 * 0.5 / 1.5)  # half seen
    assert event_f1(0.0, 0.3, 0.5, 0.3, 0.5, 10, 10) == 0.0
    # no false alarms at all: precision is 1 even if nothing is detected
    assert event_precision_recall(0.0, 0.0, 0.5, 0.3, 0.5, 10, 10)[0] == 1.0


@pytest.mark.parametrize(
    ("a", "T", "c", "F", "f"),
    [(0.8, 0.5, 0.107, 10, 5), (0.8, 0.5, 0.107, 10, 2), (0.9, 1.0, 0.3, 30, 4),
     (0.7, 0.3, 0.5, 10, 3), (0.6, 0.35, 0.0, 10, 4), (0.5, 0.5, 0.9, 10, 10)],
)
def test_stream_basis_matches_monte_carlo(a, T, c, F, f):
    rng = np.random.default_rng(0)
    mc = simulate_event_miss(a, T, c, F, f, n_events=60_000, generator=rng)
    closed = event_miss_probability(a, T, c, F, f)
    assert mc == pytest.approx(closed, abs=4 * math.sqrt(closed * (1 - closed) / 60_000) + 1e-3)


def test_legacy_basis_is_wrong_below_full_rate_and_equal_at_full_rate():
    rng = np.random.default_rng(1)
    mc = simulate_event_miss(0.8, 0.5, 0.107, 10, 2, n_events=40_000, generator=rng)
    assert abs(event_miss_probability(0.8, 0.5, 0.107, 10, 2, hop_basis="legacy") - mc) > 0.5
    for basis in ("stream", "legacy"):
        assert event_miss_probability(0.8, 0.5, 0.107, 10, 10, hop_basis=basis) == pytest.approx(
            event_miss_probability(0.8, 0.5, 0.107, 10, 10)
        )


@given(
    a=st.floats(0.0, 1.0), c=st.floats(0.0, 1.0), T=st.floats(0.05, 2.0),
    f_lo=st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0]), f_hi=st.sampled_from([5.0, 6.0, 10.0]),
)
def test_miss_probability_is_a_probability_and_falls_with_rate(a, c, T, f_lo, f_hi):
    lo = event_miss_probability(a, T, c, 10, f_lo)
    hi = event_miss_probability(a, T, c, 10, f_hi)
    assert 0.0 <= hi <= 1.0 + 1e-12 and 0.0 <= lo <= 1.0 + 1e-12
    assert hi <= lo + 1e-9  # sampling more often never misses more events


@given(a=st.floats(0.0, 1.0), c1=st.floats(0.0, 1.0), c2=st.floats(0.0, 1.0))
def test_miss_probability_rises_with_correlation(a, c1, c2):
    lo, hi = sorted((c1, c2))
    lo_miss = event_miss_probability(a, 0.5, lo, 10, 5)
    assert lo_miss <= event_miss_probability(a, 0.5, hi, 10, 5) + 1e-12


def test_empirical_event_f1_by_hand():
    # 3 segments of 4 frames: event, non-event, event
    seg = np.repeat([0, 1, 2], 4)
    is_event = np.array([True, False, True])
    pred = np.array([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    # stride 1: event 0 detected, non-event 1 false alarm, event 2 missed
    assert empirical_event_f1(pred, seg, is_event, 1) == pytest.approx((0.5, 0.5, 0.5))
    # stride 2, phases 0 and 1: phase 0 samples frames 0,2,..: event0 hit, seg1 (frames 4,6) no
    # phase 1 samples 1,3,5,..: event0 miss, seg1 (frame 5) false alarm -> tp=1, fp=1, events=4
    p, r, f1 = empirical_event_f1(pred, seg, is_event, 2)
    assert (p, r) == pytest.approx((0.5, 0.25))
    assert f1 == pytest.approx(2 * 0.5 * 0.25 / 0.75)


def test_sampled_frames_integer_and_fractional_strides():
    # integer stride: every phase 0..s-1, exactly the frames phase + j s
    got = sampled_frames(10, 3)
    assert [list(x) for x in got] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    # 3 of 10 fps: s = 10/3, gaps of 3 or 4 frames, ~3 frames per 10 in every phase
    for idx in sampled_frames(1000, 10 / 3):
        assert set(np.diff(idx)) <= {3, 4}
        assert abs(idx.size - 300) <= 1
    with pytest.raises(ValueError, match="stride"):
        sampled_frames(10, 0.5)


@pytest.mark.parametrize(("frames_per_event", "stride"), [(2, 2.5), (2, 10 / 3), (5, 20.0),
                                                          (3, 2.0)])
def test_empirical_recall_of_a_perfect_detector_is_the_sampled_fraction(frames_per_event,
                                                                       stride):
    """A detector that fires on every event frame finds an event iff a sample falls in it:
    recall min(1, d / s) over a uniformly random phase, as the event model says for a = 1."""
    n_seg = 3000
    seg = np.repeat(np.arange(n_seg), frames_per_event)
    is_event = np.ones(n_seg, bool)
    p, r, _ = empirical_event_f1(np.ones(seg.size, bool), seg, is_event, stride)
    assert p == 1.0
    assert r == pytest.approx(min(1.0, frames_per_event / stride), abs=0.01)
    model = 1 - event_miss_probability(1.0, frames_per_event / 10, 0.0, 10, 10 / stride)
    assert r == pytest.approx(model, abs=0.01)


def test_estimate_correlation_recovers_markov_chain():
    rng = np.random.default_rng(0)
    a, c, length, n = 0.7, 0.4, 20, 4000
    m = (1 - a) + a * c
    p_miss_after_hit = (1 - a) * (1 - m) / a  # keeps the stationary recall at a
    pred = np.empty(n * length, dtype=bool)
    for e in range(n):
        miss = rng.random() < 1 - a
        for t in range(length):
            pred[e * length + t] = not miss
            miss = rng.random() < (m if miss else p_miss_after_hit)
    seg = np.repeat(np.arange(n), length)
    assert estimate_correlation(pred, np.ones_like(pred), seg) == pytest.approx(c, abs=0.03)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="per_frame_recall"):
        event_f1(1.5, 0.1, 0.5, 0.3, 0.1, 10, 5)
    with pytest.raises(ValueError, match="sample_fps"):
        event_f1(0.5, 0.1, 0.5, 0.3, 0.1, 10, 20)
    with pytest.raises(ValueError, match="hop_basis"):
        event_miss_probability(0.5, 0.5, 0.1, 10, 5, hop_basis="frames")
    with pytest.raises(ValueError, match="event_frequency"):
        event_f1(0.5, 0.1, 0.5, 0.0, 0.1, 10, 5)
    with pytest.raises(ValueError, match="stride"):
        empirical_event_f1(np.zeros(4, bool), np.zeros(4, int), np.zeros(1, bool), 0)
    with pytest.raises(ValueError, match="predictions"):
        empirical_event_f1(np.zeros(4, bool), np.zeros(5, int), np.zeros(1, bool), 1)
