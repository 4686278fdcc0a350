"""The ``mainstream`` experiment: tiny preset end to end, and a verdict that can go either way."""

import csv
import json

import numpy as np
import pytest

from adaptlearn.cli import main
from adaptlearn.experiments.mainstream import (
    BASE_CHANCE,
    MainstreamConfig,
    sweep,
    verdict,
    verdict_rows,
)

N_APPS = (1, 2, 4, 6, 8, 10)
BUDGETS = (0.1, 0.25, 0.5, 1.0, 2.0)


def test_tiny_preset_writes_every_output_and_is_plumbing_only(tmp_path):
    assert main(["run", "mainstream", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "mainstream").iterdir()
    assert not run_dir.name.endswith(".partial")
    res = json.loads((run_dir / "results.json").read_text())
    assert res["verdict"]["outcome"] == "inconclusive"
    assert res["verdict"]["reason"] == "plumbing-only"
    for name in ("profiles", "layer_costs", "f1_vs_apps", "f1_vs_budget", "f1_model_validation"):
        assert (run_dir / "figures" / f"{name}.png").stat().st_size > 1000
    methods = res["methods"]
    assert {"mainstream", "no_sharing", "max_sharing", "best_static"} <= set(methods)
    with (run_dir / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"n_apps", "budget", "mainstream", "best_static", "mainstream_chosen"} <= set(rows[0])
    assert len(rows) == 2 * 2  # n_apps (1, 3) x budgets (0.25, 1.0), one seed
    prof = res["extra"]["profiling"]["0"]
    assert set(prof) >= {"base_accuracy", "f1_model_mae_stream"}
    # the intended (stream) hop basis predicts the real classifiers' event F1 better than legacy
    assert prof["f1_model_mae_stream"] < prof["f1_model_mae_legacy"]


def _cells(rng, n_seeds, gain_per_app, noise=0.02):
    """Sweep-shaped cells: best static F1 ~ 0.5, Mainstream ahead by gain_per_app * N."""
    cells = []
    for seed in range(n_seeds):
        seed_shift = noise * rng.normal()
        for n in N_APPS:
            for b in BUDGETS:
                static = 0.5 + seed_shift + noise * rng.normal()
                ms = static + gain_per_app * n + noise * rng.normal()
                cells.append({"seed": seed, "n_apps": n, "budget": b, "mainstream": ms,
                              "no_sharing": static - 0.1, "max_sharing": static,
                              "mainstream_paper": ms, "best_static": static})
    return cells


GOOD_BASE = dict.fromkeys(range(5), 0.5)


def test_null_cells_are_never_supported():
    rng = np.random.default_rng(0)
    outcomes = {verdict(verdict_rows(_cells(rng, 5, 0.0), GOOD_BASE)).outcome for _ in range(200)}
    assert "supported" not in outcomes


def test_planted_growing_gain_is_supported():
    rng = np.random.default_rng(1)
    v = verdict(verdict_rows(_cells(rng, 5, 0.01), GOOD_BASE))
    assert (v.outcome, v.reason) == ("supported", "holds")


def test_a_constant_gain_does_not_show_growth_with_n():
    rng = np.random.default_rng(2)
    cells = _cells(rng, 5, 0.0)
    for c in cells:
        c["mainstream"] += 0.1  # a real gain, but the same at every N
    v = verdict(verdict_rows(cells, GOOD_BASE))
    assert v.outcome != "supported"
    assert v.comparisons[0].status == "holds"


def test_a_base_model_at_chance_makes_it_control_failed():
    rng = np.random.default_rng(3)
    v = verdict(verdict_rows(_cells(rng, 5, 0.01), dict.fromkeys(range(5), BASE_CHANCE)))
    assert (v.outcome, v.reason) == ("inconclusive", "control-failed")


def test_two_seeds_are_underpowered_and_tiny_is_plumbing_only():
    rng = np.random.default_rng(4)
    assert verdict(verdict_rows(_cells(rng, 2, 0.01), GOOD_BASE)).reason == "underpowered"
    assert verdict(verdict_rows(_cells(rng, 5, 0.01), GOOD_BASE), preset="tiny").reason == (
        "plumbing-only"
    )


def _noise_profiles(rng, apps, depths=5):
    return {a: [[k, float(rng.uniform()), float(rng.uniform())] for k in range(depths)]
            for a in apps}


@pytest.mark.parametrize("trial", range(3))
def test_pure_noise_profiles_through_the_real_sweep_are_not_supported(trial):
    """The case that came out supported 5/5 when schedules were scored on their own profiles."""
    rng = np.random.default_rng(100 + trial)
    cfg = MainstreamConfig(n_apps=(2, 6), budgets=(0.25, 1.0), setups=2,
                           exhaustive_max_apps=0)
    apps = ["red_triangle", "horizontal_bar", "small_blue"]
    layers = [{"name": f"b{i}", "flops": 1e6, "time_ms": 0.1} for i in range(5)]
    cells = []
    for seed in range(4):
        choose, score = _noise_profiles(rng, apps), _noise_profiles(rng, apps)
        cells += sweep(choose, layers, cfg, seed, scoring=score)
    v = verdict(verdict_rows(cells, GOOD_BASE))
    assert v.outcome != "supported", v.text


def test_schedules_are_scored_on_the_held_out_profiles_not_the_choosing_ones():
    cfg = MainstreamConfig(n_apps=(2,), budgets=(1.0,), setups=1, exhaustive_max_apps=0)
    layers = [{"name": f"b{i}", "flops": 1e6, "time_ms": 0.1} for i in range(3)]
    looks_perfect = {"a": [[k, 1.0, 0.0] for k in range(3)]}
    measured_blind = {"a": [[k, 0.0, 0.0] for k in range(3)]}
    (cell,) = sweep(looks_perfect, layers, cfg, 0, scoring=measured_blind)
    assert cell["mainstream_chosen"] > 0.9  # what the scheduler expected
    assert cell["mainstream"] == cell["best_static"] == 0.0  # what its classifiers would do


def test_config_validation_names_the_field():
    import dataclasses

    import pytest

    from adaptlearn.experiments.mainstream import MainstreamConfig

    MainstreamConfig().validate()
    bad = {"apps": ("dog",), "cost_basis": "energy", "validation_fps": (3,), "budgets": (0.0,),
           "widths": (), "exhaustive_max_apps": 5}
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name):
            dataclasses.replace(MainstreamConfig(), **{name: value}).validate()
