"""The ``adamod`` experiment: data, metrics, config checks, the verdict and the tiny preset."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from adaptlearn.cli import main
from adaptlearn.experiments.adamod import (
    PAPER_BETA3_METHOD,
    AdaModConfig,
    chain_entropy,
    chosen_lr,
    claim_rows,
    load_digits_split,
    make_optimizer,
    markov_chain,
    markov_sequences,
    matched_beta3,
    roughness,
    roughness_at_progress,
    unigram_loss,
    verdict,
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
    x_tr, y_tr, x_val, y_val, x_te, y_te = load_digits_split(0)
    assert (x_tr.shape, x_val.shape, x_te.shape) == ((1151, 64), (287, 64), (359, 64))
    assert len(y_tr) == 1151 and len(y_val) == 287 and len(y_te) == 359
    assert float(x_tr.max()) <= 1.0 and float(x_tr.min()) >= 0.0
    assert set(y_te.tolist()) == set(range(10)) and set(y_val.tolist()) == set(range(10))
    assert len(y_tr) + len(y_val) + len(y_te) == 1797
    assert torch.equal(x_te, load_digits_split(0)[4]) and not torch.equal(x_te[:20], x_val[:20])
    assert torch.equal(x_tr, load_digits_split(0)[0])


def test_unigram_loss_is_the_entropy_of_token_frequencies():
    seqs = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])
    assert unigram_loss(seqs, 4) == pytest.approx(0.0)
    seqs = torch.tensor([[0, 0, 0, 1], [0, 0, 2, 3]])
    assert unigram_loss(seqs, 4) == pytest.approx(math.log(4))


def test_roughness_is_zero_for_monotone_and_positive_for_spikes():
    assert roughness([3.0, 2.0, 1.0, 0.5]) == 0.0
    assert roughness([1.0, 2.0, 1.0]) == pytest.approx(math.log(2) / 2)
    assert roughness([1.0]) == 0.0


def test_roughness_at_progress_compares_curves_over_the_same_stretch_of_progress():
    assert roughness_at_progress([3.0, 2.0, 1.0, 0.5], 0.5) == 0.0
    assert roughness_at_progress([1.0, 2.0], 3.0) == 0.0  # starts below the level
    assert roughness_at_progress([3.0, 2.0, 1.5], 1.0) is None  # never gets there
    assert roughness_at_progress([3.0, float("nan"), 1.0], 1.0) is None
    # one rise of log 2 on the way from 4 to 1 (log progress log 4): half the progress undone
    assert roughness_at_progress([4.0, 1.0, 2.0, 1.0], 1.0) == pytest.approx(0.0)
    assert roughness_at_progress([4.0, 2.0, 4.0, 1.0], 1.0) == pytest.approx(0.5)
    # a curve that gets there twice as fast with the same wiggles scores the same: equal progress
    slow = [4.0, 3.0, 3.3, 2.0, 2.2, 1.0, 1.1, 0.9]
    fast = [4.0, 3.3, 2.2, 1.0, 0.5, 0.4]
    assert roughness_at_progress(slow, 1.0) == pytest.approx(
        roughness_at_progress([4.0, 3.0, 3.3, 2.0, 2.2, 1.0], 1.0))
    assert roughness_at_progress(fast, 1.0) == 0.0  # ... and the rises after the level don't count


def test_matched_beta3_fits_the_memories_into_the_run():
    assert matched_beta3(1000, 5.0) == pytest.approx(0.995)
    assert 1 / (1 - matched_beta3(1500, 5.0)) == pytest.approx(300.0)


def test_make_optimizer_builds_each_method():
    params = [torch.nn.Parameter(torch.zeros(2))]
    cfg = AdaModConfig()
    opt, sched = make_optimizer("adamod", params, 3.0, cfg, 1000)
    assert isinstance(opt, AdaMod) and opt.param_groups[0]["lr"] == pytest.approx(3e-3)
    assert opt.param_groups[0]["beta3"] == pytest.approx(0.995)  # 5 memories in 1000 steps
    assert sched is None
    opt, _ = make_optimizer(PAPER_BETA3_METHOD, params, 3.0, cfg, 1000)
    assert opt.param_groups[0]["beta3"] == 0.999
    opt, sched = make_optimizer("adam_warmup", params, 1.0, cfg, 100)
    assert sched is not None and opt.param_groups[0]["lr"] == pytest.approx(1e-3 / 10)
    opt, _ = make_optimizer("sgd_momentum", params, 1.0, cfg, 100)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="`method` must be one of"):
        make_optimizer("rmsprop", params, 1.0, cfg, 100)


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_seeds", 0), ("beta3", 1.0), ("lr_multipliers", ()), ("lm_d_model", 30),
     ("lm_n_seeds", 9), ("warmup_fraction", 0.0), ("lm_warmup_lr_mult", 7.0),
     ("digits_extra_methods", ("adamod",)), ("digits_extra_methods", (PAPER_BETA3_METHOD,)),
     ("lm_layers", 0), ("beta3_memories", 0.0), ("beta3_memories", 5000.0),
     ("lm_progress_fraction", 1.0), ("digits_progress_loss", 0.0)],
)
def test_config_validation_names_the_field(field, value):
    cfg = dataclasses.replace(AdaModConfig(), **{field: value})
    with pytest.raises(ValueError, match=f"`{field}` of AdaModConfig"):
        cfg.validate()


# --- the verdict: rows of the quick run's shape -------------------------------------------------

DIGITS_LRS = AdaModConfig().lr_multipliers
LM_LRS = AdaModConfig().lm_lr_multipliers
WARM_LR = AdaModConfig().lm_warmup_lr_mult
DIGITS_SEEDS = range(AdaModConfig().n_seeds)
LM_SEEDS = range(AdaModConfig().lm_n_seeds)


def adam_acc(lr):
    """Adam's accuracy over the grid: best at x3, falling off on both sides."""
    return 0.975 - 0.04 * math.log10(lr / 3.0) ** 2


def flat_acc(lr):
    """A flatter lr curve (the planted 'less sensitive' effect), slightly higher at its best."""
    return 0.99 - 0.01 * math.log10(lr / 3.0) ** 2


ADAM_LM = {3.0: 2.30, 10.0: 2.55}  # Adam without warm-up is hurt at x10 (a 4-layer probe: 8%)
WARMUP_LM = 2.30


ROUGH = 0.08  # Adam's roughness at equal progress (null: AdaMod's too)


def make_rows(rng, *, adamod_acc=adam_acc, adamod_lm=None, warmup_lm=WARMUP_LM,
              acc_sd=0.004, loss_sd=0.02, adamod_rough=ROUGH, rough_sd=0.008, memories=5.0):
    """Trial rows like ``ctx.rows`` of a quick run: a shared run effect plus split noise."""
    adamod_lm = adamod_lm or ADAM_LM
    rows = []
    for method, curve in (("adamod", adamod_acc), ("adam", adam_acc)):
        rough = adamod_rough if method == "adamod" else ROUGH
        for lr in DIGITS_LRS:
            for seed in DIGITS_SEEDS:
                run = curve(lr) + rng.normal(0, acc_sd)
                rows.append({"method": method, "seed": seed, "task": "digits", "lr_mult": lr,
                             "val_acc": run + rng.normal(0, acc_sd),
                             "test_acc": run + rng.normal(0, acc_sd),
                             "train_loss": 0.01, "roughness": abs(rng.normal(0.005, 0.002)),
                             "roughness_eq": abs(rough + rng.normal(0, rough_sd)),
                             "bound_memories": memories if method == "adamod" else None,
                             "diverged": 0.0, "majority_acc": 0.1058})
    lm_cells = [("adamod", lr, adamod_lm[lr]) for lr in LM_LRS]
    lm_cells += [("adam", lr, ADAM_LM[lr]) for lr in LM_LRS]
    lm_cells += [("adam_warmup", WARM_LR, warmup_lm)]
    for method, lr, loss in lm_cells:
        rough = adamod_rough if method == "adamod" else ROUGH
        for seed in LM_SEEDS:
            run = loss + rng.normal(0, loss_sd)
            rows.append({"method": method, "seed": seed, "task": "lm", "lr_mult": lr,
                         "val_loss": run + rng.normal(0, loss_sd / 2),
                         "test_loss": run + rng.normal(0, loss_sd / 2),
                         "roughness": 0.002, "roughness_eq": abs(rough + rng.normal(0, rough_sd)),
                         "bound_memories": memories if method == "adamod" else None,
                         "diverged": 0.0, "unigram_loss": 2.70, "entropy_bound": 1.60})
    return rows


PLANTED = {"adamod_acc": flat_acc, "adamod_lm": {3.0: 2.25, 10.0: 2.15}, "adamod_rough": 0.01}


def test_lr_is_chosen_on_validation_not_test():
    rows = [{"method": "adam", "seed": s, "task": "digits", "lr_mult": lr,
             "val_acc": 0.9 if lr == 1.0 else 0.8, "test_acc": 0.8 if lr == 1.0 else 0.95}
            for lr in (1.0, 3.0) for s in range(3)]
    assert chosen_lr(rows, "digits", "adam") == 1.0
    lm = [{"method": "adam", "seed": 0, "task": "lm", "lr_mult": lr, "val_loss": v,
           "test_loss": 3.0 - v} for lr, v in ((3.0, 2.5), (10.0, float("nan")))]
    assert chosen_lr(lm, "lm", "adam") == 3.0
    cells = claim_rows(make_rows(np.random.default_rng(0), **PLANTED))
    picked = {r["lr_mult"] for r in cells if r["cell"] == "lm@val-lr" and r["method"] == "adamod"}
    assert picked == {10.0}


def test_claim_rows_pair_within_cells():
    cells = claim_rows(make_rows(np.random.default_rng(1)))
    by_cell = {}
    for r in cells:
        by_cell.setdefault(r["cell"], set()).add(r["method"])
    assert by_cell == {"digits@val-lr": {"adamod", "adam", "majority"},
                       "digits@lr-grid": {"adamod", "adam"},
                       "lm@val-lr": {"adamod", "adam", "unigram"},
                       "lm@warmup-lr": {"adamod", "adam", "adam_warmup"},
                       "digits@equal-progress": {"adamod", "adam"},
                       "lm@equal-progress": {"adamod", "adam"}}
    smooth = [r for r in cells if r["cell"] == "lm@equal-progress" and r["method"] == "adamod"]
    assert {r["lr_mult"] for r in smooth} == {chosen_lr(make_rows(np.random.default_rng(1)),
                                                        "lm", "adamod")}
    grid = [r for r in cells if r["cell"] == "digits@lr-grid"]
    assert len(grid) == 2 * len(DIGITS_SEEDS)


def test_null_rows_are_never_supported():
    for draw in range(200):
        v = verdict(make_rows(np.random.default_rng(draw)))
        assert v.outcome != "supported", v.text
        # the claimed superiorities (less lr-sensitive, smoother) never hold without an effect
        assert all(v.comparisons[i].status != "holds" for i in (2, 4, 5))


def test_planted_effect_is_supported():
    for draw in range(20):
        v = verdict(make_rows(np.random.default_rng(draw), **PLANTED))
        assert (v.outcome, v.reason) == ("supported", "holds"), v.text
        assert all(p.ok for p in v.preconditions)


def test_smoother_curves_is_judged_and_can_fail_alone():
    rows = make_rows(np.random.default_rng(7), **{**PLANTED, "adamod_rough": ROUGH})
    v = verdict(rows)
    assert (v.outcome, v.reason) == ("not supported", "fails"), v.text
    assert "fails" in [c.status for c in v.comparisons[4:]]
    assert "holds" not in [c.status for c in v.comparisons[4:]]
    assert all(c.status == "holds" for c in v.comparisons[:4])


def test_runs_that_never_reach_the_progress_level_leave_the_smoothness_cell_underpowered():
    rows = make_rows(np.random.default_rng(8), **PLANTED)
    for r in rows:
        if r["task"] == "lm" and r["method"] == "adamod":
            r["roughness_eq"] = None
    v = verdict(rows)
    assert v.comparisons[5].status == "underpowered" and v.outcome == "inconclusive", v.text


def test_adamod_worse_everywhere_is_not_supported():
    worse = {"adamod_acc": lambda lr: adam_acc(lr) - 0.05,
             "adamod_lm": {lr: 1.1 * loss for lr, loss in ADAM_LM.items()}}
    v = verdict(make_rows(np.random.default_rng(3), **worse))
    assert (v.outcome, v.reason) == ("not supported", "fails"), v.text


def test_warmup_that_does_not_help_adam_is_a_failed_control():
    rows = make_rows(np.random.default_rng(4), **PLANTED, warmup_lm=ADAM_LM[WARM_LR])
    v = verdict(rows)
    assert (v.outcome, v.reason) == ("inconclusive", "control-failed"), v.text
    failed = [p.name for p in v.preconditions if not p.ok]
    assert len(failed) == 1 and "warm-up" in failed[0]


def test_runs_shorter_than_a_few_bound_memories_are_underpowered():
    for memories, outcome in ((0.5, "inconclusive"), (2.9, "inconclusive"), (3.0, "supported")):
        v = verdict(make_rows(np.random.default_rng(5), **PLANTED, memories=memories))
        assert v.outcome == outcome, v.text
        if outcome == "inconclusive":
            assert v.reason == "underpowered"
            assert [p.ok for p in v.preconditions[:2]] == [False, False]


def test_tiny_preset_gives_plumbing_only():
    v = verdict(make_rows(np.random.default_rng(6), **PLANTED), preset="tiny")
    assert (v.outcome, v.reason) == ("inconclusive", "plumbing-only")


def test_tiny_preset_through_the_cli(tmp_path):
    code = main(["run", "adamod", "--preset", "tiny", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    (run_dir,) = (tmp_path / "adamod").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    verdict_ = results["verdict"]
    assert (verdict_["outcome"], verdict_["reason"]) == ("inconclusive", "plumbing-only")
    assert results["supported"] is None
    assert len(verdict_["comparisons"]) == 6 and len(verdict_["preconditions"]) == 5
    assert {"adamod@digits@val-lr", "adam@lm@val-lr", "adam_warmup@lm@warmup-lr"} <= set(
        results["methods"])
    assert results["methods"]["adamod@digits@val-lr"]["test_acc"]["n"] == 1
    assert set(results["extra"]["chosen_lr_multiplier"]) == {"digits", "lm"}
    for fig in ("lr_sensitivity", "digits_curves", "lm_curves"):
        assert (run_dir / "figures" / f"{fig}.png").stat().st_size > 1000
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["task"] for r in rows} == {"digits", "lm"}
    assert any(r.get("val_loss") for r in rows) and any(r.get("train_loss") for r in rows)
    report = (run_dir / "report.md").read_text()
    assert "Verdict" in report and "Transformer LM" in report
