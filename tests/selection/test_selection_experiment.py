"""The selective-backprop experiment end to end (tiny preset) and its pieces."""

import csv
import json
import math

import numpy as np
import pytest
import torch

from adaptlearn.cli import main
from adaptlearn.experiments.selective_backprop import (
    TRAIN_STEP_FORWARDS,
    VERDICT_TARGETS,
    SelectiveBackpropConfig,
    load_dataset,
    our_verdict,
    race,
    speedup_table,
    target_key,
    time_to_target,
    verdict,
)
from adaptlearn.selection import make_teacher_classification


def test_tiny_preset_writes_results_curves_figures_and_verdict(tmp_path):
    code = main(["run", "selective-backprop", "--preset", "tiny", "--out", str(tmp_path),
                 "--quiet"])
    assert code == 0
    (run_dir,) = (tmp_path / "selective-backprop").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["verdict"]["outcome"], results["verdict"]["reason"]) == (
        "inconclusive", "plumbing-only")
    (ours,) = results["our_verdicts"]
    assert ours["ours"] and ours["reason"] == "plumbing-only" and "AdaptSB" in ours["statement"]
    methods = results["methods"]
    assert {"traditional@teacher", "sb@teacher", "stale-sb@teacher", "random@teacher",
            "kath18@teacher", "adapt-sb@teacher+noise0.2"} <= set(methods)
    # Kath18 trains uniformly until its variance-reduction test passes: rate in [1/4, 1]
    assert 0.25 - 1e-9 <= methods["kath18@teacher"]["backward_rate"]["mean"] <= 1.0
    # SB-type methods backprop about 1/(beta+1) of the examples after priming
    rate = methods["sb@teacher"]["backward_rate"]["mean"]
    assert rate == pytest.approx(0.25, abs=0.05)
    assert methods["traditional@teacher"]["backward_rate"]["mean"] == 1.0
    # Stale-SB ran fewer selection forwards than SB
    assert (methods["stale-sb@teacher"]["selection_forwards"]["mean"]
            < methods["sb@teacher"]["selection_forwards"]["mean"])
    assert "speedup_2x" in methods["sb@teacher"]
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"method", "cpu_s", "wall_s", "backprops", "cost_fpe", "test_error",
            "epoch"} <= set(rows[0])
    figures = sorted(p.name for p in (run_dir / "figures").iterdir())
    assert "error_vs_time_teacher.png" in figures
    assert "error_vs_time_teacher_noise0.2.png" in figures
    report = (run_dir / "report.md").read_text()
    assert "Time to target error" in report and "four currencies" in report
    assert results["extra"]["time_to_target"]["teacher"]["targets"]


def test_race_interleaving_does_not_change_what_each_method_computes():
    cfg = SelectiveBackpropConfig(hidden=16, evals_per_epoch=1, history_size=64)
    data = make_teacher_classification(600, 200, n_features=8, seed=0)
    alone = race(data, ["traditional"], cfg, seed=3, epochs=3)["traditional"]
    both = race(data, ["sb", "traditional", "stale-sb"], cfg, seed=3, epochs=3)
    errors = [row["test_error"] for row in alone["curve"]]
    assert [row["test_error"] for row in both["traditional"]["curve"]] == errors
    for method, result in both.items():
        assert len(result["epoch_cpu_s"]) == 3
        last = result["curve"][-1]
        assert last["epoch"] == 3.0
        assert last["cost_fpe"] == last["selection_forwards"] + TRAIN_STEP_FORWARDS * \
            last["backprops"]
        # every method starts from the same weights
        assert result["curve"][0]["test_error"] == errors[0], method
    # priming epoch is traditional training: identical up to the end of epoch 1, although SB
    # draws selection batches of 512 (it releases training batches of 128)
    assert cfg.selection_batch_size == 4 * cfg.batch_size
    assert both["sb"]["curve"][1]["test_error"] == errors[1]
    sb = both["sb"]["final"]
    assert sb["steps"] * cfg.batch_size >= sb["backprops"] > (sb["steps"] - 3) * cfg.batch_size
    assert both["stale-sb"]["final"]["selection_forwards"] < \
        both["sb"]["final"]["selection_forwards"]


def _fake_runs(scale_cpu, errors, epochs_per_point=0.5):
    curve = [{"epoch": i * epochs_per_point, "cpu_s": i * scale_cpu, "wall_s": i * scale_cpu,
              "backprops": i * 100 * scale_cpu, "cost_fpe": i * 300 * scale_cpu,
              "test_error": e} for i, e in enumerate(errors)]
    return {"curve": curve, "final": {"final_error": errors[-1]},
            "epoch_cpu_s": [2 * scale_cpu] * 4, "epoch_wall_s": [2 * scale_cpu] * 4}


def test_speedup_table_ratios_against_traditional():
    errors = [0.9, 0.4, 0.2, 0.11, 0.1]
    runs = {"traditional": [_fake_runs(1.0, errors)] * 2,
            "half": [_fake_runs(0.5, errors)] * 2,   # same curve per epoch, half the cost
            "worse": [_fake_runs(0.5, [0.9, 0.5, 0.3, 0.2, 0.15])] * 2}
    s = speedup_table(runs, (2.0, 1.1, 1.0))
    assert s["trad_final"] == pytest.approx(0.1)
    assert s["targets"][2.0] == pytest.approx(0.2)
    half, worse = s["methods"]["half"], s["methods"]["worse"]
    for mult in (2.0, 1.1, 1.0):
        for key in ("cpu_s", "wall_s", "cost_fpe", "backprops"):
            assert half[mult]["speedup_" + key] == pytest.approx(2.0)
        assert s["methods"]["traditional"][mult]["speedup_cpu_s"] == pytest.approx(1.0)
    assert half["epoch_speedup_cpu"] == pytest.approx(2.0)
    # traditional reaches 0.2 at point 2 (2 CPU s), "worse" at point 3 (1.5 CPU s)
    assert worse[2.0]["speedup_cpu_s"] == pytest.approx(2.0 / 1.5)
    assert math.isnan(worse[1.1]["speedup_cpu_s"]) and worse[1.1]["reached"] == 0


def test_time_to_target_is_first_crossing_or_nan():
    curve = [{"cpu_s": 0.0, "test_error": 0.5}, {"cpu_s": 1.0, "test_error": 0.2},
             {"cpu_s": 2.0, "test_error": 0.1}]
    assert time_to_target(curve, 0.2) == 1.0
    assert math.isnan(time_to_target(curve, 0.05))


def test_digits_are_the_main_dataset_and_load_flat():
    cfg = SelectiveBackpropConfig()
    assert cfg.datasets[0] == "digits"
    d = load_dataset("digits", cfg)
    assert d.x_train.shape[1] == 64 and d.x_train.dtype == torch.float32


@pytest.mark.parametrize(("field", "value", "match"), [
    ("datasets", ("mnist",), "`datasets` of SelectiveBackpropConfig must be one of"),
    ("beta", -1.0, "`beta` of SelectiveBackpropConfig"),
    ("noise_fraction", 1.5, "`noise_fraction`"),
    ("target_multipliers", (0.5,), "`target_multipliers`"),
    ("lr_decay", 0.0, "`lr_decay` of SelectiveBackpropConfig"),
    ("digits_epochs", 0, "`digits_epochs`"),
    ("selection_batch_size", 0, "`selection_batch_size` of SelectiveBackpropConfig"),
])
def test_config_validation_names_the_field(field, value, match):
    cfg = SelectiveBackpropConfig(**{field: value})
    with pytest.raises(ValueError, match=match):
        cfg.validate()


def _rows(rng, speedup, n_seeds=5, adapt_gain=0.0, trad_error=0.03, censor_trad=False):
    """Verdict rows of the real shape: digits clean + noisy, CPU seconds to each target."""
    rows = []
    for seed in range(n_seeds):
        base = 20.0 * (1 + 0.1 * rng.normal())
        for m in ("traditional", "sb", "stale-sb", "random", "kath18", "adapt-sb"):
            f = speedup if m == "sb" else 1.0
            row = {"method": m, "seed": seed, "dataset": "digits", "noise": 0.0,
                   "final_error": trad_error + 0.002 * rng.normal()}
            for mult in VERDICT_TARGETS:
                row[target_key(mult)] = base / f * (1 + 0.08 * rng.normal()) / mult
                row[target_key(mult) + "_censored"] = censor_trad and m == "traditional"
            rows.append(row)
        sb_noisy = 0.1 + 0.01 * rng.normal()
        for m, e in (("traditional", 0.12), ("sb", sb_noisy), ("adapt-sb", sb_noisy - adapt_gain)):
            rows.append({"method": m, "seed": seed, "dataset": "digits", "noise": 0.2,
                         "final_error": e + 0.005 * rng.normal()})
    return rows


def test_sb_verdict_null_is_never_supported():
    rng = np.random.default_rng(0)
    outcomes = {verdict(_rows(rng, 1.0), "digits").outcome for _ in range(200)}
    assert "supported" not in outcomes


def test_sb_verdict_planted_speedup_is_supported():
    v = verdict(_rows(np.random.default_rng(1), 2.0), "digits")
    assert (v.outcome, v.reason) == ("supported", "holds")
    assert all(c.comparison.scale == "ratio" for c in v.comparisons)


def test_sb_verdict_controls_and_power():
    rng = np.random.default_rng(2)
    assert verdict(_rows(rng, 2.0, trad_error=0.9), "digits").reason == "control-failed"
    assert verdict(_rows(rng, 2.0, censor_trad=True), "digits").reason == "underpowered"
    assert verdict(_rows(rng, 2.0, n_seeds=2), "digits").reason == "underpowered"
    assert verdict(_rows(rng, 2.0), "digits", preset="tiny").reason == "plumbing-only"


def test_adaptsb_losing_to_sb_cannot_change_the_papers_verdict():
    rng = np.random.default_rng(3)
    rows = _rows(rng, 2.0, adapt_gain=-0.05)  # AdaptSB clearly worse than SB
    assert verdict(rows, "digits").outcome == "supported"
    ours = our_verdict(rows, "digits", 0.2)
    assert ours.ours and ours.outcome == "not supported"
    better = our_verdict(_rows(rng, 1.0, adapt_gain=0.05), "digits", 0.2)
    assert better.outcome == "supported"
    null = {our_verdict(_rows(rng, 1.0), "digits", 0.2).outcome for _ in range(100)}
    assert "supported" not in null
