"""Cost model and schedulers: hand costs, budget and optimality properties, errors, profiles."""

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptlearn.mainstream import (
    AppSpec,
    CostModel,
    InfeasibleBudgetError,
    NonMonotoneProfileError,
    StemOption,
    max_sharing,
    no_sharing,
    schedule,
)

FPS = (1.0, 2.0, 5.0, 10.0)


def reference_cost(layer_costs, depths, fps):
    """The reference's segment formula (scheduler_util.get_cost_schedule), from the spec."""
    L = len(layer_costs)
    points = sorted(set(depths) | {L})
    total, prev = 0.0, 0
    for b in points:
        seg = sum(layer_costs[prev:b])
        own = sum(f for k, f in zip(depths, fps, strict=True) if k < b)
        sharers = [f for k, f in zip(depths, fps, strict=True) if k >= b]
        total += seg * (own + (max(sharers) if sharers else 0.0))
        prev = b
    return total


def test_cost_by_hand():
    cm = CostModel((1.0, 2.0, 3.0), stream_fps=10)
    # layer0 shared by both at max(10, 5); layer1 shared by app0 only (10) + app1 own 5;
    # layer2 own by both: 15
    assert cm.cost([2, 1], [10, 5]) == pytest.approx(10 * 1 + 15 * 2 + 15 * 3)
    assert cm.cost([0, 0], [10, 10]) == pytest.approx(2 * cm.full_model_cost)
    assert cm.cost([3, 3], [10, 1]) == pytest.approx(cm.full_model_cost)  # all shared


@given(
    costs=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=5),
    data=st.data(),
)
def test_cost_matches_reference_formula_and_batch(costs, data):
    n = data.draw(st.integers(1, 5))
    depths = data.draw(st.lists(st.integers(0, len(costs)), min_size=n, max_size=n))
    fps = data.draw(st.lists(st.sampled_from(FPS), min_size=n, max_size=n))
    cm = CostModel(tuple(costs), 10)
    expected = reference_cost(costs, depths, fps)
    assert cm.cost(depths, fps) == pytest.approx(expected, abs=1e-9)
    batch = cm.cost_batch(np.array([depths]), np.array([fps]))
    assert batch[0] == pytest.approx(expected, abs=1e-9)


@st.composite
def instances(draw, max_apps=3, n_layers=3):
    costs = tuple(draw(st.lists(st.floats(0.05, 3.0), min_size=n_layers, max_size=n_layers)))
    n = draw(st.integers(1, max_apps))
    apps = []
    for i in range(n):
        recalls = sorted(draw(st.lists(st.floats(0.05, 1.0), min_size=n_layers + 1,
                                       max_size=n_layers + 1)), reverse=True)
        fprs = draw(st.lists(st.floats(0.0, 0.3), min_size=n_layers + 1, max_size=n_layers + 1))
        pairs = enumerate(zip(recalls, fprs, strict=True))
        apps.append(AppSpec(
            f"app{i}", tuple(StemOption(k, r, q) for k, (r, q) in pairs),
            event_length_s=draw(st.sampled_from([0.2, 0.5, 1.0])),
            event_frequency=draw(st.sampled_from([0.1, 0.3, 0.7])),
            correlation=draw(st.sampled_from([0.1, 0.5, 0.9])),
        ))
    cm = CostModel(costs, 10)
    low = cm.cost([n_layers] * n, [FPS[0]] * n)
    frac = draw(st.floats(0.0, 1.0))
    budget = low + frac * (cm.full_model_cost * n - low)
    return apps, cm, budget


@given(instances())
def test_schedules_fit_the_budget_and_exhaustive_is_optimal(inst):
    apps, cm, budget = inst
    ex = schedule(apps, budget, cm, fps_options=FPS, search="exhaustive")
    for s in (schedule(apps, budget, cm, fps_options=FPS),
              schedule(apps, budget, cm, fps_options=FPS, multi_start=False),
              schedule(apps, budget, cm, fps_options=FPS, legacy_ratio=True), ex):
        assert s.cost <= budget + 1e-9
        assert s.cost == pytest.approx(cm.cost([c.frozen_layers for c in s.configs],
                                               [c.fps for c in s.configs]))
        assert s.objective <= ex.objective + 1e-9
    # greedy (with restarts) is near-optimal on small instances
    assert schedule(apps, budget, cm, fps_options=FPS).objective >= ex.objective - 0.06


def test_greedy_mean_gap_is_small():
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(40):
        cm = CostModel(tuple(rng.uniform(0.1, 3, 3)), 10)
        apps = []
        for i in range(int(rng.integers(2, 4))):
            a = np.sort(rng.uniform(0.2, 1, 4))[::-1]
            apps.append(AppSpec(f"a{i}", tuple(StemOption(k, float(a[k]), float(rng.uniform(0, .2)))
                                              for k in range(4)),
                                event_length_s=float(rng.uniform(0.2, 1)),
                                event_frequency=float(rng.uniform(0.1, 0.9)),
                                correlation=float(rng.uniform(0, 0.9))))
        budget = float(rng.uniform(0.2, 1.5)) * cm.full_model_cost
        try:
            ex = schedule(apps, budget, cm, fps_options=FPS, search="exhaustive")
        except InfeasibleBudgetError:
            continue
        gaps.append(ex.objective - schedule(apps, budget, cm, fps_options=FPS).objective)
    assert len(gaps) > 30
    assert np.mean(gaps) < 0.005


@given(instances(), st.floats(1.0, 3.0))
def test_more_budget_never_lowers_the_objective(inst, factor):
    apps, cm, budget = inst
    for kw in ({"search": "exhaustive"}, {}):
        lo = schedule(apps, budget, cm, fps_options=FPS, **kw).objective
        hi = schedule(apps, budget * factor, cm, fps_options=FPS, **kw).objective
        assert hi >= lo - 1e-9


@given(instances(max_apps=4))
def test_mainstream_never_below_static_baselines(inst):
    apps, cm, budget = inst
    ms = schedule(apps, budget, cm, fps_options=FPS).objective
    assert ms >= max_sharing(apps, budget, cm, fps_options=FPS).objective - 1e-9
    with contextlib.suppress(InfeasibleBudgetError):  # No-Sharing may not fit at all
        assert ms >= no_sharing(apps, budget, cm, fps_options=FPS).objective - 1e-9


def test_min_objective_is_max_min():
    apps = [AppSpec("good", (StemOption(0, 0.95, 0.0), StemOption(1, 0.9, 0.0))),
            AppSpec("poor", (StemOption(0, 0.6, 0.0), StemOption(1, 0.2, 0.0)))]
    cm = CostModel((5.0, 1.0), 10)
    budget = 70.0
    mean = schedule(apps, budget, cm, fps_options=FPS, search="exhaustive")
    fair = schedule(apps, budget, cm, fps_options=FPS, search="exhaustive", objective="min_f1")
    assert fair.min_f1 >= mean.min_f1 - 1e-12
    assert fair.objective == pytest.approx(fair.min_f1)
    assert mean.objective == pytest.approx(mean.mean_f1)


def test_budget_too_small_is_a_clear_error():
    apps = [AppSpec("a", (StemOption(0, 0.9, 0.1), StemOption(2, 0.5, 0.1)))]
    cm = CostModel((1.0, 1.0), 10)
    with pytest.raises(InfeasibleBudgetError, match=r"too small .* costs 2"):
        schedule(apps, 0.0, cm, fps_options=FPS)
    # head-only (depth 2) at 1 fps costs nothing beyond the shared stem: 2 * 1 = 2
    with pytest.raises(InfeasibleBudgetError) as info:
        schedule(apps, 1.5, cm, fps_options=FPS)
    assert info.value.min_cost == pytest.approx(2.0)
    assert schedule(apps, 2.0, cm, fps_options=FPS).cost <= 2.0


def test_other_bad_inputs():
    cm = CostModel((1.0, 1.0), 10)
    app = AppSpec("a", (StemOption(0, 0.9, 0.1), StemOption(1, 0.5, 0.1)))
    with pytest.raises(ValueError, match="at least one"):
        schedule([], 10.0, cm)
    with pytest.raises(ValueError, match="unique"):
        schedule([app, app], 10.0, cm)
    with pytest.raises(ValueError, match="search"):
        schedule([app], 10.0, cm, search="annealing")
    with pytest.raises(ValueError, match="fps_options"):
        schedule([app], 10.0, cm, fps_options=(20.0,))
    with pytest.raises(ValueError, match="beyond"):
        schedule([AppSpec("deep", (StemOption(5, 0.5, 0.1),))], 10.0, cm)
    with pytest.raises(ValueError, match="exceeds"):
        many = [AppSpec(f"a{i}", app.options) for i in range(8)]
        schedule(many, 1e9, cm, search="exhaustive")
    s = schedule([app], 10.0, cm, fps_options=FPS)
    with pytest.raises(KeyError, match="unknown app 'b'"):
        s["b"]
    assert s["a"].app == "a"
    with pytest.raises(KeyError, match="no profile at depth 3"):
        app.option(3)
    with pytest.raises(ValueError, match="stream_fps"):
        CostModel((1.0,), 0.0)
    with pytest.raises(ValueError, match=r"layer_costs\[1\]"):
        CostModel((1.0, -1.0))


def test_non_monotone_profiles_raise_or_are_repaired():
    bumpy = (StemOption(0, 0.8, 0.1), StemOption(1, 0.9, 0.1), StemOption(2, 0.5, 0.2))
    with pytest.raises(NonMonotoneProfileError, match="not monotone"):
        AppSpec("bumpy", bumpy)
    repaired = AppSpec("bumpy", bumpy, strict=False)
    assert [o.recall for o in repaired.options] == [0.9, 0.9, 0.5]  # a(k) = max(a(k), a(k+1))


# Released MobileNet profiles of angelajiang/mainstream (data/mpackages/*-mobilenets), re-typed in
# ../shared/specs/selective_backprop_mainstream.md: a(k) at k = 0 / 63 / 81 / 84, and the layer
# latencies as remaining-suffix costs 20.81 / 1.17 / 0.044 / 0.011 units per frame.
MOBILENET = {
    "cars": (0.948, 0.928, 0.897, 0.421),
    "pedestrian": (0.814, 0.844, 0.839, 0.633),
    "bus": (0.935, 0.909, 0.872, 0.576),
    "schoolbus": (0.833, 0.813, 0.785, 0.625),
    "flowers": (0.823, 0.811, 0.712, 0.178),
}
MOBILENET_LAYERS = (20.81 - 1.17, 1.17 - 0.044, 0.044 - 0.011, 0.011)


def _mobilenet_apps(n):
    names = list(MOBILENET)
    return [AppSpec(f"{names[i % 5]}{i}",
                    tuple(StemOption(k, a, 1 - a) for k, a in enumerate(MOBILENET[names[i % 5]])),
                    0.5, 0.3, 0.107, strict=False) for i in range(n)]


@pytest.mark.parametrize("budget", [50.0, 100.0, 200.0])
def test_released_profiles_qualitative_claim(budget):
    cm = CostModel(MOBILENET_LAYERS, 10)
    fps = tuple(float(f) for f in range(1, 11))
    results = {}
    for n in (1, 3, 5, 8):
        apps = _mobilenet_apps(n)
        ms = schedule(apps, budget, cm, fps_options=fps).mean_f1
        mx = max_sharing(apps, budget, cm, fps_options=fps).mean_f1
        try:
            no = no_sharing(apps, budget, cm, fps_options=fps).mean_f1
        except InfeasibleBudgetError:
            no = 0.0
        assert ms >= max(mx, no) - 1e-9
        results[n] = (ms, mx, no)
    # No-Sharing collapses as N grows; Mainstream stays high; Max-Sharing is flat and low
    assert results[8][2] < results[1][2] - 0.2
    assert results[8][0] > 0.7
    assert results[8][1] < 0.55


def test_mean_recall_objective_minimises_false_negatives():
    # a noisy detector: recall is highest at full rate, F1 prefers fewer false alarms
    noisy = AppSpec("noisy", (StemOption(0, 0.6, 0.3),), 0.5, 0.2, 0.2)
    cm = CostModel((1.0,), 10)
    by_recall = schedule([noisy], 100.0, cm, fps_options=FPS, objective="mean_recall",
                         search="exhaustive")
    by_f1 = schedule([noisy], 100.0, cm, fps_options=FPS, search="exhaustive")
    assert by_recall["noisy"].fps == 10.0
    assert by_recall.objective >= by_f1.objective  # recall at the recall-optimal rate
    assert by_f1.objective == pytest.approx(by_f1.mean_f1)
    greedy = schedule([noisy], 100.0, cm, fps_options=FPS, objective="mean_recall")
    assert greedy.objective == pytest.approx(by_recall.objective)


def test_executed_cost_equals_model_for_nested_rates_and_exceeds_it_otherwise():
    cm = CostModel((4.0, 1.0, 0.5), 10)
    nested = ([3, 2, 1], [10.0, 5.0, 1.0])
    assert cm.executed_cost(*nested) == pytest.approx(cm.cost(*nested))
    unshared = ([0, 0], [2.0, 5.0])
    assert cm.executed_cost(*unshared) == pytest.approx(cm.cost(*unshared))
    # 2 fps samples frames 0,5,10,..; 5 fps samples 0,2,4,..: their union is 6 frames/s, not 5
    shared = ([3, 3], [2.0, 5.0])
    assert cm.cost(*shared) == pytest.approx(5.0 * 5.5)
    assert cm.executed_cost(*shared) == pytest.approx(6.0 * 5.5)
