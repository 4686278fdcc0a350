"""The accelerated-rl experiment end to end (tiny preset) and its config validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adaptlearn.cli import main
from adaptlearn.experiments.accelerated_rl import AcceleratedRLConfig, verdict


@pytest.mark.timeout(120)
def test_tiny_preset_writes_results_figures_and_verdict(tmp_path) -> None:
    code = main(["run", "accelerated-rl", "--preset", "tiny", "--out", str(tmp_path), "--quiet"])
    assert code in (0, None)
    (run_dir,) = [p for p in (tmp_path / "accelerated-rl").iterdir()
                  if not p.name.endswith(".partial")]
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["verdict"]["outcome"], results["verdict"]["reason"]) == (
        "inconclusive", "plumbing-only")
    assert results["extra"]["large_batch_rule_chosen_on_validation"]["a2c"] == "a2c-B8-linear"
    assert {"figures/throughput.png", "figures/learning_a2c.png"} <= set(results["figures"])
    for fig in results["figures"]:
        assert (run_dir / fig).stat().st_size > 1000
    metrics = (run_dir / "metrics.csv").read_text()
    assert "frames_per_s" in metrics and "env_steps" in metrics
    tp = results["extra"]["throughput"]
    assert {r["backend"] for r in tp} == {"serial", "gym_sync", "ale_vector"}
    assert all(r["steps_per_cpu_s"] > 0 for r in tp)
    assert results["methods"]["a2c-B4"]["final_return"]["n"] == 1


@pytest.mark.parametrize(("field", "value", "message"), [
    ("throughput_backends", ("serial", "envpool"), "`throughput_backends` of Accelerated"),
    ("throughput_workers", 3, "must be even"),
    ("lr_rules", ("cubic",), "`lr_rules`"),
    ("learn_sampler", "ray", "`learn_sampler`"),
    ("return_margin", -1.0, "`return_margin`"),
])
def test_config_validation_names_the_field(field, value, message) -> None:
    cfg = AcceleratedRLConfig(**{field: value})
    with pytest.raises(ValueError, match=message):
        cfg.validate()


def _rows(rng, speedup, return_gap, cpu_ratio, n=5, initial=20.0, updates=125):
    rows = []
    for i in range(n):
        serial = 800 * (1 + 0.05 * rng.normal())
        rows.append({"method": "serial", "n_envs": 8, "repeat": i, "steps_per_s": serial})
        rows.append({"method": "parallel", "n_envs": 8, "repeat": i,
                     "steps_per_s": serial * speedup * (1 + 0.03 * rng.normal())})
        rows.append({"method": "gym_sync", "n_envs": 8, "repeat": i, "steps_per_s": serial})
    for algo in ("a2c", "ppo"):
        for seed in range(n):
            small = 300 + 30 * rng.normal()
            cpu = 2.0 * (1 + 0.05 * rng.normal())
            rows.append({"method": f"{algo}-small", "algo": algo, "seed": seed,
                         "final_return": small, "cpu_s_per_1k_steps": cpu,
                         "initial_return": initial, "updates": 1000})
            rows.append({"method": f"{algo}-large", "algo": algo, "seed": seed,
                         "final_return": small - return_gap + 10 * rng.normal(),
                         "cpu_s_per_1k_steps": cpu / cpu_ratio, "initial_return": initial,
                         "updates": updates})
    return rows


def test_null_is_never_supported():
    rng = np.random.default_rng(0)
    outcomes = {verdict(_rows(rng, 1.0, 0.0, 1.0)).outcome for _ in range(200)}
    assert "supported" not in outcomes


def test_planted_effect_is_supported_and_negative_returns_are_differences():
    v = verdict(_rows(np.random.default_rng(1), 1.3, 0.0, 3.0))
    assert (v.outcome, v.reason) == ("supported", "holds")
    rows = _rows(np.random.default_rng(1), 1.3, 0.0, 3.0)
    for r in rows:
        if "final_return" in r:
            r["final_return"] -= 1000.0  # all returns negative: still a valid difference
            r["initial_return"] = -2000.0
    assert verdict(rows).outcome == "supported"


def test_a_large_batch_that_loses_return_fails_its_comparison():
    v = verdict(_rows(np.random.default_rng(2), 1.3, 150.0, 3.0))
    assert (v.outcome, v.reason) == ("inconclusive", "mixed")  # C1 holds, C2 fails
    assert {c.status for c in v.comparisons if "final return" in c.comparison.label} == {"fails"}
    v = verdict(_rows(np.random.default_rng(2), 0.9, 150.0, 3.0))
    assert v.outcome == "not supported"


def test_controls_and_power():
    rng = np.random.default_rng(3)
    assert verdict(_rows(rng, 1.3, 0.0, 3.0, initial=400.0)).reason == "control-failed"
    assert verdict(_rows(rng, 1.3, 0.0, 3.0, updates=5)).reason == "underpowered"
    assert verdict(_rows(rng, 1.3, 0.0, 3.0, n=2)).reason == "underpowered"
    assert verdict(_rows(rng, 1.3, 0.0, 3.0), preset="tiny").reason == "plumbing-only"
