"""The ``mainstream`` experiment's tiny preset end to end through the CLI."""

import csv
import json

from adaptlearn.cli import main


def test_tiny_preset_writes_every_output(tmp_path):
    assert main(["run", "mainstream", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "mainstream").iterdir()
    assert not run_dir.name.endswith(".partial")
    res = json.loads((run_dir / "results.json").read_text())
    assert res["verdict"] and res["supported"] in (True, False)
    for name in ("profiles", "layer_costs", "f1_vs_apps", "f1_vs_budget", "f1_model_validation"):
        assert (run_dir / "figures" / f"{name}.png").stat().st_size > 1000
    methods = res["methods"]
    assert {"mainstream", "no_sharing", "max_sharing", "mainstream_paper"} <= set(methods)
    # Mainstream (with restarts) is never below either static baseline, per seed
    for a, b, c in zip(methods["mainstream"]["mean_event_f1"]["values"],
                       methods["no_sharing"]["mean_event_f1"]["values"],
                       methods["max_sharing"]["mean_event_f1"]["values"], strict=True):
        assert a >= max(b, c) - 1e-9
    with (run_dir / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"n_apps", "budget", "mainstream", "no_sharing", "max_sharing"} <= set(rows[0])
    assert len(rows) == 2 * 2  # n_apps (1, 3) x budgets (0.25, 1.0), one seed
    report = (run_dir / "report.md").read_text()
    assert res["verdict"] in report
    mean = methods["mainstream"]["mean_event_f1"]["mean"]
    assert f"{mean:.4g}" in report
    gains = res["extra"]["gains"]
    assert gains["min_margin_vs_best_static"] >= -1e-9
    assert set(res["extra"]["profiling"]["0"]) >= {"base_accuracy", "f1_model_mae_stream"}
    # the intended (stream) hop basis predicts the real classifiers' event F1 better than legacy
    prof = res["extra"]["profiling"]["0"]
    assert prof["f1_model_mae_stream"] < prof["f1_model_mae_legacy"]


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
