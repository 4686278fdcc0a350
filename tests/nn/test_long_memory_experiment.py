"""The ``long-memory`` experiment end to end (tiny preset) and its pieces."""

import csv
import json

import numpy as np
import pytest

from adaptlearn import cli
from adaptlearn.core import get_experiment
from adaptlearn.data.arfima import simulate_arfima
from adaptlearn.experiments.long_memory import (
    LongMemoryConfig,
    arfima_oracle_forecast,
    forecast_metrics,
)


def test_tiny_preset_through_the_cli(tmp_path):
    code = cli.main(["run", "long-memory", "--preset", "tiny", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    (run_dir,) = (tmp_path / "long-memory").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] and "pairs" in results["verdict"]
    methods = results["methods"]
    for m in (
        "rnn",
        "lstm",
        "mrnnf",
        "mrnn",
        "mlstmf",
        "mlstm",
        "arima",
        "arfima",
        "oracle",
        "mean",
    ):
        assert np.isfinite(methods[f"{m}@arfima"]["test_rmse"]["mean"])
    # the classical baselines are sane: the oracle beats predicting the mean by a wide margin
    oracle = methods["oracle@arfima"]["test_rmse"]["mean"]
    assert oracle < 0.8 * methods["mean@arfima"]["test_rmse"]["mean"]
    for fig in ("forecast_arfima", "val_rmse_arfima", "test_rmse"):
        assert (run_dir / "figures" / f"{fig}.png").stat().st_size > 1000
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} >= {"lstm", "mlstm"} and "val_rmse" in rows[0]
    report = (run_dir / "report.md").read_text()
    assert "Test forecasting error" in report
    lstm = methods["lstm@arfima"]["test_rmse"]["mean"]
    assert f"{lstm:.4g}" in report


def test_oracle_predictor_reaches_the_innovation_variance():
    x = simulate_arfima(4000, 0.4, ar=(0.5,), rng=0)
    pred = arfima_oracle_forecast(x, 0.4, (0.5,))
    rmse = forecast_metrics(pred[1999:-1], x[2000:])["rmse"]
    assert rmse == pytest.approx(1.0, abs=0.05)  # sigma_eps = 1


def test_metrics_and_config_validation():
    m = forecast_metrics(np.array([1.0, 2.0, 0.0]), np.array([2.0, 2.0, 0.0]))
    assert m["rmse"] == pytest.approx(np.sqrt(1 / 3))
    assert m["mae"] == pytest.approx(1 / 3)
    assert m["mape"] == pytest.approx(25.0)  # zero target skipped
    get_experiment("long-memory").make_config("full").validate()
    with pytest.raises(ValueError, match="`methods` of LongMemoryConfig"):
        LongMemoryConfig(methods=("gru",)).validate()
    with pytest.raises(ValueError, match="`warmup` of LongMemoryConfig"):
        LongMemoryConfig(window=10, warmup=10).validate()
