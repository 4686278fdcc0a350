"""The hierarchical-marl experiment: tiny preset end to end; a verdict that can go either way."""

import csv
import json

import numpy as np
import pytest

from adaptlearn.cli import main
from adaptlearn.experiments.hierarchical_marl import (
    RANDOM_HIGH,
    HierarchicalMARLConfig,
    base_method,
    our_verdict,
    verdict,
)


def test_tiny_preset_writes_results_figures_and_is_plumbing_only(tmp_path):
    assert main(["run", "hierarchical-marl", "--preset", "tiny", "--out", str(tmp_path),
                 "--quiet"]) == 0
    (run_dir,) = (tmp_path / "hierarchical-marl").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["verdict"]["outcome"], results["verdict"]["reason"]) == (
        "inconclusive", "plumbing-only")
    (ours,) = results["our_verdicts"]
    assert ours["ours"] and (ours["outcome"], ours["reason"]) == ("inconclusive", "plumbing-only")
    assert "masks" in ours["statement"] and "paper's setting" in results["verdict"]["statement"]
    methods = set(results["methods"])
    assert methods == {"iql", "ind-hdqn+acer", RANDOM_HIGH, "ind-hdqn+acer+masks",
                       RANDOM_HIGH + "+masks"}
    for m in methods:
        assert {"team_return", "success", "episode_length", "auc_return"} <= set(
            results["methods"][m])
    for fig in ("team_return", "episode_length", "subgoal_reach", "layout"):
        assert (run_dir / "figures" / f"{fig}.png").stat().st_size > 0
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == methods and "team_return" in rows[0]


def test_arms_train_the_right_learner_with_the_right_switches():
    cfg = HierarchicalMARLConfig(methods="iql,ind-hdqn,hqmix", masks="off,on")
    arms = cfg.trial_methods()
    assert arms[0] == "iql" and {"hqmix+acer+masks", RANDOM_HIGH, RANDOM_HIGH + "+masks"} <= set(
        arms)
    assert base_method("hqmix+acer+masks") == "hqmix" and base_method(RANDOM_HIGH) == "ind-hdqn"
    tc = cfg.train_config("hqmix+acer+masks")
    assert tc.acer and tc.use_masks and not tc.random_high_level
    tc = cfg.train_config(RANDOM_HIGH)
    assert tc.random_high_level and not tc.use_masks and not tc.acer
    # the paper's setting is the default: no hand-coded masks
    assert not HierarchicalMARLConfig().train_config("ind-hdqn+acer").use_masks
    with pytest.raises(ValueError, match="masks"):
        HierarchicalMARLConfig(masks="sometimes").validate()


QUICK_ARMS = ("iql", "qmix", "ind-hdqn", "ind-hdqn+acer", RANDOM_HIGH)
FULL_HIER = ("ind-hdqn", "hcom", "hqmix")


def _rows(rng, hier_gain, acer_gain, random_high_gain=0.0, n_seeds=5, noise=0.12,
          hier=("ind-hdqn",), sfx=""):
    """Rows of a run's shape: AUC of the team return per arm and seed, seed noise of the size
    measured at quick budgets (per-seed AUC of one arm spans about 0 to 0.4), clipped at 0.
    Arms share a per-seed level and differ by their planted gains; with no gains they are
    exchangeable (the null)."""
    rows = []
    for seed in range(n_seeds):
        base = 0.1 + noise * rng.normal()

        def add(method, value, seed=seed):
            rows.append({"method": method, "seed": seed, "auc_return": max(0.0, value)})

        for m in ("iql", "qmix"):
            add(m, base + noise * rng.normal())
        add(RANDOM_HIGH + sfx, base + random_high_gain + noise * rng.normal())
        for h in hier:
            add(h + sfx, base + hier_gain + noise * rng.normal())
            add(h + "+acer" + sfx, base + hier_gain + acer_gain + noise * rng.normal())
    return rows


@pytest.mark.parametrize("hier", [("ind-hdqn",), FULL_HIER])
def test_null_is_never_supported(hier):
    rng = np.random.default_rng(0)
    outcomes = [verdict(_rows(rng, 0.0, 0.0, hier=hier)) for _ in range(200)]
    assert not any(v.outcome == "supported" for v in outcomes)
    # with every arm from one distribution the high level shows no learning
    assert sum(v.reason == "control-failed" for v in outcomes) > 150


@pytest.mark.parametrize("hier", [("ind-hdqn",), FULL_HIER])
def test_planted_effect_is_supported(hier):
    v = verdict(_rows(np.random.default_rng(1), 0.4, 0.15, hier=hier, noise=0.03))
    assert (v.outcome, v.reason) == ("supported", "holds")
    assert len(v.comparisons) == 3 * len(hier)


def test_a_high_level_no_better_than_random_fails_the_control():
    # hierarchical methods beat flat ones, but a random high level does just as well
    rows = _rows(np.random.default_rng(2), 0.4, 0.15, random_high_gain=0.55, noise=0.03)
    v = verdict(rows)
    assert (v.outcome, v.reason) == ("inconclusive", "control-failed")
    assert not v.preconditions[0].ok
    assert verdict(rows, preset="tiny").reason == "plumbing-only"


def test_every_arm_at_the_floor_is_control_failed_not_a_refutation():
    # the quick budget without masks: every arm's team return is 0 on every seed
    rows = [{"method": m, "seed": s, "auc_return": 0.0} for m in QUICK_ARMS for s in range(5)]
    v = verdict(rows)
    assert (v.outcome, v.reason) == ("inconclusive", "control-failed")


def test_fewer_than_five_seeds_is_underpowered():
    v = verdict(_rows(np.random.default_rng(3), 0.4, 0.15, n_seeds=3, noise=0.03))
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered")


def test_acer_signs_below_seed_noise_do_not_decide():
    # "ACER helped 1/3" came from signs of differences far below seed noise
    rows = _rows(np.random.default_rng(4), 0.4, 0.0, noise=0.15, hier=FULL_HIER)
    v = verdict(rows)
    acer = [c for c in v.comparisons if c.comparison.label.startswith("ACER")]
    assert len(acer) == 3 and all(c.status in ("unresolved", "fails") for c in acer)
    assert v.outcome != "supported"


def test_masks_variant_is_judged_apart_and_never_decides_the_papers_verdict():
    rng = np.random.default_rng(5)
    # without masks nothing learns; with masks a planted effect
    rows = _rows(rng, 0.0, 0.0) + [r for r in _rows(rng, 0.4, 0.15, noise=0.03, sfx="+masks")
                                   if r["method"] not in ("iql", "qmix")]
    paper, ours = verdict(rows), our_verdict(rows)
    assert paper.outcome != "supported" and not paper.ours
    assert (ours.outcome, ours.reason, ours.ours) == ("supported", "holds", True)
    assert all(c.comparison.method.endswith("+masks") for c in ours.comparisons)
    assert not any("+masks" in c.comparison.method for c in paper.comparisons)
