"""The selective-backprop experiment end to end (tiny preset) and its pieces."""

import csv
import json
import math

import pytest

from adaptlearn.cli import main
from adaptlearn.experiments.selective_backprop import SelectiveBackpropConfig, time_to_target


def test_tiny_preset_writes_results_curves_figures_and_verdict(tmp_path):
    code = main(["run", "selective-backprop", "--preset", "tiny", "--out", str(tmp_path),
                 "--quiet"])
    assert code == 0
    (run_dir,) = (tmp_path / "selective-backprop").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] and results["supported"] in (True, False, None)
    methods = results["methods"]
    assert {"traditional@teacher", "sb@teacher", "stale-sb@teacher", "random@teacher",
            "adapt-sb@teacher+noise0.2"} <= set(methods)
    # SB-type methods backprop about 1/(beta+1) of the examples after priming
    rate = methods["sb@teacher"]["backward_rate"]["mean"]
    assert rate == pytest.approx(0.25, abs=0.05)
    assert methods["traditional@teacher"]["backward_rate"]["mean"] == 1.0
    # Stale-SB ran fewer selection forwards than SB
    assert (methods["stale-sb@teacher"]["selection_forwards"]["mean"]
            < methods["sb@teacher"]["selection_forwards"]["mean"])
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"method", "cpu_s", "backprops", "test_error", "epoch"} <= set(rows[0])
    figures = sorted(p.name for p in (run_dir / "figures").iterdir())
    assert "error_vs_time_teacher.png" in figures
    assert "error_vs_time_teacher_noise0.2.png" in figures
    report = (run_dir / "report.md").read_text()
    assert "Time to target error" in report


def test_time_to_target_is_first_crossing_or_nan():
    curve = [{"cpu_s": 0.0, "test_error": 0.5}, {"cpu_s": 1.0, "test_error": 0.2},
             {"cpu_s": 2.0, "test_error": 0.1}]
    assert time_to_target(curve, 0.2) == 1.0
    assert math.isnan(time_to_target(curve, 0.05))


@pytest.mark.parametrize(("field", "value", "match"), [
    ("datasets", ("mnist",), "`datasets` of SelectiveBackpropConfig must be one of"),
    ("beta", -1.0, "`beta` of SelectiveBackpropConfig"),
    ("noise_fraction", 1.5, "`noise_fraction`"),
    ("target_multipliers", (0.5,), "`target_multipliers`"),
])
def test_config_validation_names_the_field(field, value, match):
    cfg = SelectiveBackpropConfig(**{field: value})
    with pytest.raises(ValueError, match=match):
        cfg.validate()
