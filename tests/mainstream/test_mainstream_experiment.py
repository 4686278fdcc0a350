"""The ``mainstream`` experiment: tiny preset end to end, and a verdict that can go either way."""

import csv
import dataclasses
import json

import numpy as np
import pytest

from adaptlearn.cli import main
from adaptlearn.experiments.mainstream import (
    BASE_CHANCE,
    MARGIN,
    MainstreamConfig,
    claim_for,
    our_verdict,
    sweep,
    verdict,
    verdict_rows,
)
from adaptlearn.mainstream import event_f1

# the quick preset's design
N_APPS = MainstreamConfig().n_apps
BUDGETS = MainstreamConfig().budgets
GOOD_BASE = dict.fromkeys(range(5), 0.47)  # quick runs: 0.45-0.49 on the 36-way task


def test_tiny_preset_writes_every_output_and_is_plumbing_only(tmp_path):
    assert main(["run", "mainstream", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "mainstream").iterdir()
    assert not run_dir.name.endswith(".partial")
    res = json.loads((run_dir / "results.json").read_text())
    assert (res["verdict"]["outcome"], res["verdict"]["reason"]) == ("inconclusive",
                                                                     "plumbing-only")
    (ours,) = res["our_verdicts"]
    assert ours["ours"] and ours["reason"] == "plumbing-only"
    for name in ("profiles", "layer_costs", "f1_vs_apps", "f1_vs_budget", "f1_model_validation"):
        assert (run_dir / "figures" / f"{name}.png").stat().st_size > 1000
    assert {"mainstream_paper", "mainstream", "no_sharing", "max_sharing", "best_static",
            "mainstream_reference_repair"} <= set(res["methods"])
    with (run_dir / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"n_apps", "budget", "mainstream_paper", "best_static",
            "mainstream_paper_chosen", "cost_basis"} <= set(rows[0])
    # n_apps (1, 3) x budgets (0.25, 1.0), one seed, on both cost bases
    assert sorted(r["cost_basis"] for r in rows) == ["flops"] * 4 + ["time"] * 4
    prof = res["extra"]["profiling"]["0"]
    assert set(prof) >= {"base_accuracy", "f1_model_mae_stream"}
    # the intended (stream) hop basis predicts the real classifiers' event F1 better than legacy
    assert prof["f1_model_mae_stream"] < prof["f1_model_mae_legacy"]


# --- the verdict on rows of the real shape ------------------------------------------------------
def _cells(rng, n_seeds, gain_of_n, noise=0.02):
    """Sweep-shaped cells: best static F1 ~ 0.55 (quick runs), Mainstream ahead by gain_of_n(N).

    Seed noise: a shared per-seed shift plus per-cell noise of 0.02 for every method (the
    quick run's per-N seed sd of the gain is about 0.01-0.03).
    """
    cells = []
    for seed in range(n_seeds):
        seed_shift = noise * rng.normal()
        for n in N_APPS:
            for b in BUDGETS:
                static = 0.55 + seed_shift + noise * rng.normal()
                gain = gain_of_n(n)
                cells.append({
                    "seed": seed, "n_apps": n, "budget": b, "best_static": static,
                    "no_sharing": static - 0.1, "max_sharing": static,
                    "mainstream_paper": static + gain + noise * rng.normal(),
                    "mainstream": static + gain + noise * rng.normal(),
                    "mainstream_reference_repair": static + noise * rng.normal(),
                })
    return cells


def test_null_cells_are_never_supported():
    rng = np.random.default_rng(0)
    verdicts = [verdict(verdict_rows(_cells(rng, 5, lambda n: 0.0), GOOD_BASE))
                for _ in range(200)]
    assert "supported" not in {v.outcome for v in verdicts}
    # the missing gain at the largest N is detected as such in most draws
    assert sum(v.comparisons[0].status == "fails" for v in verdicts) > 150


def test_planted_growing_gain_is_supported():
    rng = np.random.default_rng(1)
    for _ in range(20):
        rows = verdict_rows(_cells(rng, 5, lambda n: 0.01 * n), GOOD_BASE)
        v = verdict(rows)
        assert (v.outcome, v.reason) == ("supported", "holds"), v.text
        assert our_verdict(rows).outcome == "supported"


def test_a_constant_gain_does_not_show_growth_with_n():
    rng = np.random.default_rng(2)
    v = verdict(verdict_rows(_cells(rng, 5, lambda n: 0.1), GOOD_BASE))
    assert v.outcome != "supported"
    assert v.comparisons[0].status == "holds"  # a real gain at N=10 ...
    assert v.comparisons[-1].status in ("fails", "unresolved")  # ... but no growth


def test_a_loss_at_few_apps_is_not_hidden_by_the_gain_at_many():
    rng = np.random.default_rng(5)
    v = verdict(verdict_rows(_cells(rng, 5, lambda n: 0.02 * n - 0.1), GOOD_BASE))
    assert v.outcome != "supported"
    assert any(c.status == "fails" for c in v.comparisons if c.comparison.margin == -MARGIN)


def test_the_paper_greedy_decides_not_our_multi_start():
    rng = np.random.default_rng(6)
    cells = _cells(rng, 5, lambda n: 0.01 * n)
    for c in cells:
        c["mainstream_paper"] = c["best_static"] + 0.002 * rng.normal()
    rows = verdict_rows(cells, GOOD_BASE)
    assert verdict(rows).outcome != "supported"
    ours = our_verdict(rows)
    assert ours.ours and ours.outcome == "supported"


def test_a_base_model_at_chance_makes_it_control_failed():
    rng = np.random.default_rng(3)
    tiny_run_base = dict.fromkeys(range(5), 0.015)  # the tiny run's base model (chance 0.028)
    for base in (dict.fromkeys(range(5), BASE_CHANCE), tiny_run_base):
        v = verdict(verdict_rows(_cells(rng, 5, lambda n: 0.01 * n), base))
        assert (v.outcome, v.reason) == ("inconclusive", "control-failed")


def test_static_policies_that_detect_nothing_make_it_control_failed():
    rng = np.random.default_rng(7)
    cells = _cells(rng, 5, lambda n: 0.01 * n)
    for c in cells:
        for m in ("best_static", "no_sharing", "max_sharing"):
            c[m] = 0.0
    v = verdict(verdict_rows(cells, GOOD_BASE))
    assert (v.outcome, v.reason) == ("inconclusive", "control-failed")


def test_two_seeds_or_one_shared_n_are_underpowered_and_tiny_is_plumbing_only():
    rng = np.random.default_rng(4)
    assert verdict(verdict_rows(_cells(rng, 2, lambda n: 0.01 * n), GOOD_BASE)).reason == (
        "underpowered")
    one_n = [c for c in _cells(rng, 5, lambda n: 0.01 * n) if c["n_apps"] in (1, 10)]
    assert verdict(verdict_rows(one_n, GOOD_BASE)).reason == "underpowered"
    assert verdict(verdict_rows(_cells(rng, 5, lambda n: 0.01 * n), GOOD_BASE),
                   preset="tiny").reason == "plumbing-only"


def test_claim_compares_per_number_of_apps():
    claim = claim_for(N_APPS)
    cells = [dict(c.where) for c in claim.comparisons if c.where]
    assert cells == [{"n_apps": 10}, {"n_apps": 2}, {"n_apps": 4}, {"n_apps": 6},
                     {"n_apps": 8}]
    assert all(c.baseline.startswith(("best_static", "mainstream_paper@"))
               for c in claim.comparisons)
    with pytest.raises(ValueError, match="N >= 2"):
        claim_for((1,))


# --- through the real sweep -----------------------------------------------------------------------
SWEEP_CFG = MainstreamConfig(n_apps=(2, 6), budgets=(0.25, 1.0), setups=2, exhaustive_max_apps=0)
SWEEP_APPS = ["red_triangle", "horizontal_bar", "small_blue"]
#: front-loaded layer costs, as measured (block 0 dominates)
SWEEP_LAYERS = [{"name": f"b{i}", "flops": c, "time_ms": c}
                for i, c in enumerate((10.0, 1.0, 0.1, 0.05, 0.01))]
#: a profile where sharing truly helps: sharing up to 3 blocks costs little accuracy, the
#: head-only classifier is poor
SHARING_HELPS = ((0.9, 0.05), (0.89, 0.05), (0.88, 0.06), (0.85, 0.07), (0.3, 0.3))


def _noise_profiles(rng):
    return {a: [[k, float(rng.uniform()), float(rng.uniform())] for k in range(5)]
            for a in SWEEP_APPS}


def _sharing_profiles(rng):
    return {a: [[k, float(np.clip(x + 0.01 * rng.normal(), 0, 1)),
                 float(np.clip(q + 0.005 * rng.normal(), 0, 1))]
                for k, (x, q) in enumerate(SHARING_HELPS)] for a in SWEEP_APPS}


def _sweep_verdict(rng, profiles):
    cells = []
    for seed in range(5):  # choosing and scoring profiles drawn independently
        cells += sweep(profiles(rng), SWEEP_LAYERS, SWEEP_CFG, seed, scoring=profiles(rng))
    return verdict(verdict_rows(cells, GOOD_BASE))


@pytest.mark.parametrize("trial", range(3))
def test_pure_noise_profiles_through_the_real_sweep_are_not_supported(trial):
    """The case that came out supported 5/5 when schedules were scored on their own profiles."""
    v = _sweep_verdict(np.random.default_rng(100 + trial), _noise_profiles)
    assert v.outcome != "supported", v.text


def test_profiles_where_sharing_helps_through_the_real_sweep_are_supported():
    v = _sweep_verdict(np.random.default_rng(200), _sharing_profiles)
    assert (v.outcome, v.reason) == ("supported", "holds"), v.text


def test_schedules_are_scored_on_the_held_out_profiles_not_the_choosing_ones():
    cfg = MainstreamConfig(n_apps=(2,), budgets=(1.0,), setups=1, exhaustive_max_apps=0)
    layers = [{"name": f"b{i}", "flops": 1e6, "time_ms": 0.1} for i in range(3)]
    looks_perfect = {"a": [[k, 1.0, 0.0] for k in range(3)]}
    measured_blind = {"a": [[k, 0.0, 0.0] for k in range(3)]}
    (cell,) = sweep(looks_perfect, layers, cfg, 0, scoring=measured_blind)
    assert cell["mainstream_paper_chosen"] > 0.9  # what the scheduler expected
    assert cell["mainstream_paper"] == cell["best_static"] == 0.0  # what its classifiers do


def test_mainstream_schedules_only_measured_classifiers():
    """The reference repair turns raw (0.00, 0.00) at k=1 into a perfect (1.00, 0.00)."""
    cfg = MainstreamConfig(n_apps=(2,), budgets=(0.5,), setups=1, exhaustive_max_apps=2)
    layers = [{"name": f"b{i}", "flops": 1.0, "time_ms": 1.0} for i in range(3)]
    raw = {"a": [[0, 0.6, 0.1], [1, 0.0, 0.0], [2, 1.0, 0.5]]}
    (cell,) = sweep(raw, layers, cfg, 0, scoring=raw)
    # scored on the very profiles that chose: only an invented classifier makes them differ
    for m in ("mainstream_paper", "mainstream", "exhaustive", "no_sharing", "max_sharing"):
        assert cell[m] == pytest.approx(cell[f"{m}_chosen"]), m
    assert cell["mainstream_reference_repair_chosen"] > cell["mainstream_reference_repair"] + 0.3
    # every option the paper greedy could have credited is a measured one
    best_real = max(event_f1(a, q, 1.0, 0.9, 0.1, 10.0, 10.0) for _, a, q in raw["a"])
    assert cell["mainstream_paper_chosen"] <= best_real + 1e-9


def test_config_validation_names_the_field():
    MainstreamConfig().validate()
    bad = {"apps": ("dog",), "cost_basis": "energy", "validation_fps": (3,), "budgets": (0.0,),
           "widths": (), "exhaustive_max_apps": 5}
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name):
            dataclasses.replace(MainstreamConfig(), **{name: value}).validate()
