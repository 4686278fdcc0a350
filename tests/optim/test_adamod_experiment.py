"""The ``adamod`` experiment: its data generators, metrics, config checks and the tiny preset."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import pytest
import torch

from adaptlearn.cli import main
from adaptlearn.experiments.adamod import (
    AdaModConfig,
    chain_entropy,
    load_digits_split,
    make_optimizer,
    markov_chain,
    markov_sequences,
    roughness,
)
from adaptlearn.optim import AdaMod


def test_markov_chain_rows_are_distributions_and_seeded():
    table = markov_chain(5, 0.3, torch.Generator().manual_seed(1))
    assert table.shape == (5, 5, 5)
    torch.testing.assert_close(table.sum(-1), torch.ones(5, 5, dtype=torch.float64))
    assert torch.equal(table, markov_chain(5, 0.3, torch.Generator().manual_seed(1)))
    assert not torch.equal(table, markov_chain(5, 0.3, torch.Generator().manual_seed(2)))


def test_markov_sequences_follow_the_table():
    gen = torch.Generator().manual_seed(0)
    table = markov_chain(3, 0.5, gen)
    seqs = markov_sequences(table, 3000, 12, gen)
    assert seqs.shape == (3000, 12) and seqs.dtype == torch.long
    assert int(seqs.min()) >= 0 and int(seqs.max()) < 3
    # Empirical p(c | a, b) against the table, over all (a, b) contexts.
    a, b, c = seqs[:, :-2].reshape(-1), seqs[:, 1:-1].reshape(-1), seqs[:, 2:].reshape(-1)
    counts = torch.zeros(3, 3, 3, dtype=torch.float64)
    counts.index_put_((a, b, c), torch.ones_like(a, dtype=torch.float64), accumulate=True)
    freq = counts / counts.sum(-1, keepdim=True)
    assert (freq - table).abs().max() < 0.03
    again = markov_sequences(table, 10, 12, torch.Generator().manual_seed(5))
    assert torch.equal(again, markov_sequences(table, 10, 12, torch.Generator().manual_seed(5)))


def test_chain_entropy_is_the_loss_of_the_true_model():
    gen = torch.Generator().manual_seed(3)
    table = markov_chain(4, 0.5, gen)
    seqs = markov_sequences(table, 2000, 10, gen)
    nll = -table[seqs[:, :-2], seqs[:, 1:-1], seqs[:, 2:]].log().mean()
    assert chain_entropy(table, seqs) == pytest.approx(float(nll), rel=0.02)
    assert 0 < chain_entropy(table, seqs) < math.log(4)


def test_digits_split_is_offline_seeded_and_disjoint():
    x_tr, _, x_te, y_te = load_digits_split(0)
    assert x_tr.shape == (1438, 64) and x_te.shape == (359, 64)
    assert float(x_tr.max()) <= 1.0 and float(x_tr.min()) >= 0.0
    assert set(y_te.tolist()) == set(range(10))
    x_tr2, *_ = load_digits_split(0)
    assert torch.equal(x_tr, x_tr2)


def test_roughness_is_zero_for_monotone_and_positive_for_spikes():
    assert roughness([3.0, 2.0, 1.0, 0.5]) == 0.0
    assert roughness([1.0, 2.0, 1.0]) == pytest.approx(math.log(2) / 2)
    assert roughness([1.0]) == 0.0


def test_make_optimizer_builds_each_method():
    params = [torch.nn.Parameter(torch.zeros(2))]
    cfg = AdaModConfig()
    opt, sched = make_optimizer("adamod", params, 3.0, cfg, 100)
    assert isinstance(opt, AdaMod) and opt.param_groups[0]["lr"] == pytest.approx(3e-3)
    assert sched is None
    opt, sched = make_optimizer("adam_warmup", params, 1.0, cfg, 100)
    assert sched is not None and opt.param_groups[0]["lr"] == pytest.approx(1e-3 / 10)
    opt, _ = make_optimizer("sgd_momentum", params, 1.0, cfg, 100)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="`method` must be one of"):
        make_optimizer("rmsprop", params, 1.0, cfg, 100)


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_seeds", 0), ("beta3", 1.0), ("lr_multipliers", ()), ("lm_d_model", 30),
     ("lm_n_seeds", 9), ("warmup_fraction", 0.0)],
)
def test_config_validation_names_the_field(field, value):
    cfg = dataclasses.replace(AdaModConfig(), **{field: value})
    with pytest.raises(ValueError, match=f"`{field}` of AdaModConfig"):
        cfg.validate()


def test_tiny_preset_through_the_cli(tmp_path):
    code = main(["run", "adamod", "--preset", "tiny", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    (run_dir,) = (tmp_path / "adamod").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] and "sub-claims hold" in results["verdict"]
    assert results["supported"] in (True, False, None)
    assert set(results["extra"]["claims"]) and len(results["extra"]["claims"]) == 5
    assert {"adamod", "adam", "adamw", "adam_warmup", "sgd_momentum"} <= set(results["methods"])
    assert results["methods"]["adamod"]["digits_best_acc"]["n"] == 1
    for fig in ("lr_sensitivity", "digits_curves", "lm_curves"):
        assert (run_dir / "figures" / f"{fig}.png").stat().st_size > 1000
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["task"] for r in rows} == {"digits", "lm"}
    assert any(r.get("eval_loss") for r in rows) and any(r.get("train_loss") for r in rows)
    report = (run_dir / "report.md").read_text()
    assert "Verdict" in report and "Transformer LM" in report
