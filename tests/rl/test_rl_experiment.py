"""The accelerated-rl experiment end to end (tiny preset) and its config validation."""

from __future__ import annotations

import json

import pytest

from adaptlearn.cli import main
from adaptlearn.experiments.accelerated_rl import AcceleratedRLConfig


@pytest.mark.timeout(120)
def test_tiny_preset_writes_results_figures_and_verdict(tmp_path) -> None:
    code = main(["run", "accelerated-rl", "--preset", "tiny", "--out", str(tmp_path), "--quiet"])
    assert code in (0, None)
    (run_dir,) = [p for p in (tmp_path / "accelerated-rl").iterdir()
                  if not p.name.endswith(".partial")]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] and results["supported"] in (True, False)
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
    ("keep_fraction", 1.5, "`keep_fraction`"),
])
def test_config_validation_names_the_field(field, value, message) -> None:
    cfg = AcceleratedRLConfig(**{field: value})
    with pytest.raises(ValueError, match=message):
        cfg.validate()
