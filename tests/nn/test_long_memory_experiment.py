"""The ``long-memory`` experiment: its verdict on synthetic rows, its pieces, the tiny preset."""

import json

import numpy as np
import pytest

from adaptlearn import cli
from adaptlearn.core import get_experiment
from adaptlearn.data.arfima import simulate_arfima
from adaptlearn.experiments.long_memory import (
    PREDICTORS,
    SHORT_MEMORY_OF,
    LongMemoryConfig,
    arfima_oracle_forecast,
    claim_for,
    count_parameters,
    forecast_metrics,
    matched_hidden_size,
    memory_length,
    network_methods,
    parse_network,
    size_matched_baselines,
    verdict,
)

QUICK = LongMemoryConfig()  # the quick preset is the default config
FIXED_RMSE = {"mean": 1.25, "last": 1.16, "arima": 1.03, "arfima": 1.03, "oracle": 1.02}


def make_rows(rng, *, long_rmse=1.06, short_rmse=1.06, sd=0.015, cfg=QUICK, **overrides):
    """Rows of a quick run's shape: networks x datasets x seeds, fixed predictors per seed.

    Test RMSE = mean + a per-seed term shared by every method (the seed's realisation of the
    simulated series: a hard test segment is hard for all) + a per-network term of sd ``sd``
    (initialisation); the sizes are the quick run's (sd over seeds 0.003-0.016, last value
    1.068, oracle 1.02). ``overrides`` maps a method to its mean RMSE.
    """
    rows = []
    for ds in cfg.datasets:
        scale = 1.0 if ds == "arfima" else 150.0  # Nile flows are in 1e8 m^3
        for seed in range(cfg.n_seeds):
            shared = 0.03 * rng.standard_normal() if ds == "arfima" else 0.0
            for m in network_methods(cfg):
                mu = long_rmse if m in SHORT_MEMORY_OF else short_rmse
                mu = overrides.get(m, mu) + shared
                kind, h = parse_network(m, cfg.hidden_size)
                rows.append(
                    {
                        "method": m,
                        "seed": seed,
                        "dataset": ds,
                        "test_rmse": scale * (mu + sd * rng.standard_normal()),
                        "val_rmse": scale * (mu + sd * rng.standard_normal()),
                        "params": float(count_parameters(kind, h, memory_length(cfg, kind))),
                        "converged": 1.0,
                    }
                )
            for p in PREDICTORS:
                v = scale * (overrides.get(p, FIXED_RMSE[p]) + shared)
                rows.append({"method": p, "seed": seed, "dataset": ds, "test_rmse": v})
    return rows


def test_null_rows_are_never_supported():
    outcomes = []
    for i in range(200):
        rows = make_rows(np.random.default_rng(i))
        outcomes.append(verdict(rows, preset="quick").outcome)
    assert "supported" not in outcomes
    # the null does not hide behind a failed control: the networks beat the trivial predictor
    assert all(
        p.ok for p in verdict(make_rows(np.random.default_rng(0)), preset="quick").preconditions
    )


def test_planted_effect_is_supported():
    rows = make_rows(np.random.default_rng(1), long_rmse=0.99, short_rmse=1.06, sd=0.01)
    v = verdict(rows, preset="quick")
    assert (v.outcome, v.reason) == ("supported", "holds"), v.text
    assert len(v.comparisons) == 4 and all(c.n_pairs == QUICK.n_seeds for c in v.comparisons)


def test_reversed_effect_is_not_supported():
    rows = make_rows(np.random.default_rng(2), long_rmse=1.10, short_rmse=1.02, sd=0.01)
    v = verdict(rows, preset="quick")
    assert (v.outcome, v.reason) == ("not supported", "fails"), v.text


def test_a_win_only_against_the_narrow_baseline_is_not_supported():
    # long beats the same-width RNN/LSTM but not the size-matched ones: the size explains it
    matched = size_matched_baselines(QUICK)
    rows = make_rows(
        np.random.default_rng(3),
        long_rmse=1.00,
        short_rmse=1.08,
        sd=0.005,
        **dict.fromkeys(matched.values(), 0.98),
    )
    v = verdict(rows, preset="quick")
    assert (v.outcome, v.reason) == ("not supported", "fails"), v.text
    status = {c.comparison.baseline: c.status for c in v.comparisons}
    assert status["rnn"] == status["lstm"] == "holds"
    assert status[matched["mrnnf"]] == status[matched["mlstmf"]] == "fails"


def test_an_effect_on_the_demonstration_dataset_only_is_not_supported():
    rows = make_rows(np.random.default_rng(4), sd=0.01)
    for r in rows:  # plant a large effect on Nile only
        if r["dataset"] == "nile" and r["method"] in SHORT_MEMORY_OF:
            r["test_rmse"] *= 0.8
    v = verdict(rows, preset="quick")
    assert v.outcome != "supported"
    assert {c.comparison.where["dataset"] for c in v.comparisons} == {"arfima"}


def test_a_network_worse_than_the_trivial_predictor_fails_the_control():
    # planted effect, but the size-matched LSTM forecasts worse than the last value
    rows = make_rows(
        np.random.default_rng(5), long_rmse=0.99, short_rmse=1.06, sd=0.01, **{"lstm-h7": 1.3}
    )
    v = verdict(rows, preset="quick")
    assert (v.outcome, v.reason) == ("inconclusive", "control-failed"), v.text
    trivial = [p for p in v.preconditions if "trivial" in p.name]
    assert trivial and not trivial[0].ok and "lstm-h7" in trivial[0].detail


def test_a_trial_that_hit_its_budget_makes_the_verdict_underpowered():
    rows = make_rows(np.random.default_rng(6), long_rmse=0.99, short_rmse=1.06, sd=0.01)
    next(r for r in rows if r["method"] == "rnn" and r["dataset"] == "arfima")["converged"] = 0.0
    v = verdict(rows, preset="quick")
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered"), v.text


def test_size_matched_baselines_have_about_the_same_parameter_count():
    assert count_parameters("rnn", 8) == 97  # H^2 + 4H + 1
    assert count_parameters("lstm", 8) == 361  # 4H^2 + 13H + 1
    for cfg in (QUICK, get_experiment("long-memory").make_config("full")):
        for long, short in size_matched_baselines(cfg).items():
            target = count_parameters(long, cfg.hidden_size, memory_length(cfg, long))
            kind, h = parse_network(short, cfg.hidden_size)
            got = count_parameters(kind, h)
            # the closest integer width: one unit narrower or wider is no closer
            assert abs(got - target) <= abs(count_parameters(kind, h - 1) - target)
            assert abs(got - target) <= abs(count_parameters(kind, h + 1) - target)
            assert abs(got - target) <= 0.15 * target
    assert matched_hidden_size("rnn", 97) == 8
    names = [c.name for c in claim_for(QUICK).comparisons]
    assert names == [
        "mrnnf vs rnn on arfima: test RMSE",
        "mrnnf vs rnn-h11 on arfima: test RMSE",
        "mlstmf vs lstm on arfima: test RMSE",
        "mlstmf vs lstm-h7 on arfima: test RMSE",
    ]


def test_tiny_preset_through_the_cli_is_plumbing_only(tmp_path):
    code = cli.main(["run", "long-memory", "--preset", "tiny", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    (run_dir,) = (tmp_path / "long-memory").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    v = results["verdict"]
    assert (v["outcome"], v["reason"]) == ("inconclusive", "plumbing-only")
    assert {c["baseline"] for c in v["comparisons"]} == {"rnn", "rnn-h6"}
    methods = results["methods"]
    for m in ("rnn", "mrnnf", "rnn-h6", *PREDICTORS):
        assert np.isfinite(methods[f"{m}@arfima"]["test_rmse"]["mean"])
    # the fixed predictors are sane: the oracle beats predicting the mean by a wide margin
    oracle = methods["oracle@arfima"]["test_rmse"]["mean"]
    assert oracle < 0.8 * methods["mean@arfima"]["test_rmse"]["mean"]
    for fig in ("forecast_arfima", "val_rmse_arfima", "test_rmse"):
        assert (run_dir / "figures" / f"{fig}.png").stat().st_size > 1000
    report = (run_dir / "report.md").read_text()
    assert "Test forecasting error: arfima (judged)" in report and "| RNN (H=6) | 61 |" in report


def test_oracle_predictor_reaches_the_innovation_variance():
    x = simulate_arfima(4000, 0.4, ar=(0.5,), rng=0)
    pred = arfima_oracle_forecast(x, 0.4, (0.5,))
    rmse = forecast_metrics(pred[1999:-1], x[2000:])["rmse"]
    assert rmse == pytest.approx(1.0, abs=0.05)  # sigma_eps = 1


def test_metrics_and_config_validation():
    m = forecast_metrics(np.array([1.0, 2.0, 0.0]), np.array([2.0, 2.0, 0.0]))
    assert m == pytest.approx({"rmse": np.sqrt(1 / 3), "mae": 1 / 3})
    get_experiment("long-memory").make_config("full").validate()
    with pytest.raises(ValueError, match="`methods` of LongMemoryConfig"):
        LongMemoryConfig(methods=("gru",)).validate()
    with pytest.raises(ValueError, match="`warmup` of LongMemoryConfig"):
        LongMemoryConfig(window=10, warmup=10).validate()
    with pytest.raises(ValueError, match="`verdict_datasets` of LongMemoryConfig"):
        LongMemoryConfig(datasets=("nile",), verdict_datasets=("arfima",)).validate()
    with pytest.raises(ValueError, match="no long-memory network"):
        claim_for(LongMemoryConfig(methods=("rnn", "lstm")))
