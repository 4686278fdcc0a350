"""The hierarchical-marl experiment: tiny preset end to end; a verdict that can go either way."""

import csv
import json

import numpy as np

from adaptlearn.cli import main
from adaptlearn.experiments.hierarchical_marl import RANDOM_HIGH, verdict


def test_tiny_preset_writes_results_figures_and_is_plumbing_only(tmp_path):
    assert main(["run", "hierarchical-marl", "--preset", "tiny", "--out", str(tmp_path),
                 "--quiet"]) == 0
    (run_dir,) = (tmp_path / "hierarchical-marl").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["verdict"]["outcome"], results["verdict"]["reason"]) == (
        "inconclusive", "plumbing-only")
    methods = set(results["methods"])
    assert methods == {"iql", "ind-hdqn", "ind-hdqn+acer", "hqmix", "hqmix+acer", RANDOM_HIGH}
    for m in methods:
        assert {"team_return", "success", "episode_length", "auc_return"} <= set(
            results["methods"][m])
    for fig in ("team_return", "episode_length", "subgoal_reach", "layout"):
        assert (run_dir / "figures" / f"{fig}.png").stat().st_size > 0
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == methods and "team_return" in rows[0]


METHODS = ("iql", "qmix", "ind-hdqn", "hcom", "hqmix")


def _rows(rng, hier_gain, acer_gain, random_high_gain=0.0, n_seeds=5, noise=0.03):
    rows = []
    for seed in range(n_seeds):
        base = 0.1 + noise * rng.normal()
        for m in ("iql", "qmix"):
            rows.append({"method": m, "seed": seed, "auc_return": base + noise * rng.normal()})
        rows.append({"method": RANDOM_HIGH, "seed": seed,
                     "auc_return": base + random_high_gain + noise * rng.normal()})
        for h in ("ind-hdqn", "hcom", "hqmix"):
            plain = base + hier_gain + noise * rng.normal()
            rows.append({"method": h, "seed": seed, "auc_return": plain})
            rows.append({"method": h + "+acer", "seed": seed,
                         "auc_return": plain + acer_gain + noise * rng.normal()})
    return rows


def test_null_is_never_supported():
    rng = np.random.default_rng(0)
    outcomes = {verdict(_rows(rng, 0.0, 0.0)).outcome for _ in range(200)}
    assert "supported" not in outcomes


def test_planted_effect_is_supported():
    v = verdict(_rows(np.random.default_rng(1), 0.3, 0.1))
    assert (v.outcome, v.reason) == ("supported", "holds")


def test_a_high_level_no_better_than_random_fails_the_control():
    # hierarchical methods beat flat ones, but a random high level does just as well
    v = verdict(_rows(np.random.default_rng(2), 0.3, 0.1, random_high_gain=0.6))
    assert (v.outcome, v.reason) == ("inconclusive", "control-failed")
    v = verdict(_rows(np.random.default_rng(2), 0.3, 0.1), preset="tiny")
    assert v.reason == "plumbing-only"
    assert verdict(_rows(np.random.default_rng(3), 0.3, 0.1, n_seeds=2)).reason == "underpowered"


def test_acer_signs_below_seed_noise_do_not_decide():
    # "ACER helped 1/3" came from signs of differences far below seed noise
    rows = _rows(np.random.default_rng(4), 0.3, 0.0, noise=0.2)
    v = verdict(rows)
    acer = [c for c in v.comparisons if c.comparison.label.startswith("ACER")]
    assert acer and all(c.status in ("unresolved", "fails") for c in acer)
    assert v.outcome != "supported"
