"""Intervals name their kind, non-finite values are flagged, results are strict JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptlearn.core.io import atomic_write_json
from adaptlearn.core.stats import interval_of_mean, json_safe, summarize


def test_interval_kind_follows_n():
    assert interval_of_mean([1.0]).kind == "none"
    assert interval_of_mean([2.0, 2.0, 2.0]).kind == "exact"
    t = interval_of_mean([1.0, 2.0, 4.0])
    assert t.kind == "t"
    assert (t.low, t.high) != (1.0, 4.0)  # not the range, as a 3-value bootstrap would give
    assert t.low < 1.0 and t.high > 4.0  # df=2: a wide interval, honestly
    assert interval_of_mean(np.arange(10.0)).kind == "t"  # BCa under-covers below n = 20
    assert interval_of_mean(np.arange(20.0)).kind == "bca"


def test_bca_is_seeded_and_brackets_the_mean():
    x = np.random.default_rng(0).normal(3.0, 1.0, size=25)
    a, b = interval_of_mean(x, seed=1), interval_of_mean(x, seed=1)
    assert (a.low, a.high) == (b.low, b.high)
    assert a.low < x.mean() < a.high


def test_bca_coverage_is_near_nominal():
    rng = np.random.default_rng(5)
    hits = 0
    for i in range(200):
        x = rng.normal(1.0, 2.0, size=25)
        iv = interval_of_mean(x, seed=i, n_resamples=999)
        hits += iv.low <= 1.0 <= iv.high
    assert 0.85 <= hits / 200 <= 0.99


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=12))
def test_interval_contains_the_mean(values):
    iv = interval_of_mean(values)
    m = float(np.mean(values))
    tol = 1e-9 * max(1.0, abs(m))
    assert iv.low - tol <= m <= iv.high + tol


def test_non_finite_values_make_the_summary_non_finite():
    s = summarize([1.0, float("nan"), 3.0, None])
    assert s["mean"] is None and s["nonfinite"] == 2 and s["n"] == 4
    assert s["values"] == [1.0, None, 3.0, None]
    json.dumps(s, allow_nan=False)


def test_censored_values_are_left_out_of_the_mean():
    s = summarize([10.0, 20.0, 100.0, 100.0], censored=[False, False, True, True])
    assert s["mean"] == 15.0 and s["n_censored"] == 2 and s["censored_at"] == 100.0
    with pytest.raises(ValueError, match="censored"):
        summarize([1.0, 2.0], censored=[True])


def test_results_json_is_strict(tmp_path):
    path = atomic_write_json(tmp_path / "r.json", {"a": float("nan"), "b": [1.0, float("inf")]})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.0, None]}
    assert json_safe({"x": (np.float64("nan"), 2)}) == {"x": [None, 2]}


def test_bad_confidence_is_refused():
    with pytest.raises(ValueError, match="confidence"):
        interval_of_mean([1.0, 2.0], confidence=1.5)
    assert math.isnan(interval_of_mean([]).low)
