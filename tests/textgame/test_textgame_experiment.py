"""The ``ae-dqn`` experiment end to end (tiny preset), its presets, verdict and validation."""

import csv
import json

import numpy as np
import pytest

from adaptlearn.cli import main
from adaptlearn.core import get_experiment
from adaptlearn.experiments.ae_dqn import METHODS, AEDQNConfig, verdict


def test_tiny_preset_writes_results_figures_and_verdict(tmp_path):
    assert main(["run", "ae-dqn", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "ae-dqn").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["verdict"]["outcome"], results["verdict"]["reason"]) == (
        "inconclusive", "plumbing-only")
    assert set(results["methods"]) == {f"{m}(quest=egg,size=small)"
                                       for m in ("dqn", "ae-dqn", "masked-dqn")}
    assert results["figures"] and all((run_dir / f).exists() for f in results["figures"])
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == {"dqn", "ae-dqn", "masked-dqn"}
    ae_rows = [r for r in rows if r["method"] == "ae-dqn"]
    assert all(r["admissible_size"] and r["false_elim_visited"] for r in ae_rows)
    report = (run_dir / "report.md").read_text()
    assert "Per-game summary" in report and "Elimination quality" in report
    # a run that never solved records steps to solve as a censored bound, not a measurement
    for method, per in results["methods"].items():
        s = per["steps_to_solve"]
        unsolved = [v == 0.0 for v in per["solved"]["values"]]
        assert s.get("censored", [False] * len(unsolved)) == unsolved, method


def test_quick_preset_covers_both_sizes_all_methods_and_enough_seeds():
    cfg = get_experiment("ae-dqn").make_config("quick")
    cfg.validate()
    assert set(cfg.size_list) == {"small", "large"} and "egg" in cfg.quest_list
    assert set(cfg.method_list) == set(METHODS) and cfg.n_seeds >= 3
    full = get_experiment("ae-dqn").make_config("full")
    assert set(full.quest_list) == {"egg", "troll"}
    assert full.steps("troll", "large") > full.steps("troll", "small") > full.steps("egg", "small")


def _rows(rng, gain_small, gain_large, n_seeds=4, oracle_solves=True, a_share=0.2,
          quests=("egg",)):
    """Verdict rows of the real shape: per (method, quest, size, seed) the trial's numbers."""
    from adaptlearn.experiments.ae_dqn import verdict_rows

    class R:  # the parts of a TrialResult verdict_rows reads
        def __init__(self, method, quest, size, seed, auc, solved, a_size, n):
            self.trial = type("T", (), {"as_dict": lambda _: {
                "method": method, "seed": seed, "quest": quest, "size": size}})()
            self.final = {"auc_return": auc, "solved": float(solved), "steps_to_solve": 1000.0,
                          "final_return": auc, "final_success": float(solved)}
            self.extra = {"n_actions": n, "admissible_size": a_size}

    results = []
    for q in quests:
        for size, n, gain in (("small", 212, gain_small), ("large", 1208, gain_large)):
            for seed in range(n_seeds):
                base = 0.2 + 0.05 * rng.normal()
                results.append(R("dqn", q, size, seed, base, False, None, n))
                results.append(R("ae-dqn", q, size, seed, base + gain + 0.03 * rng.normal(),
                                 False, a_share * n, n))
                results.append(R("masked-dqn", q, size, seed, 0.9, oracle_solves, None, n))
    return verdict_rows(results)


def test_null_verdict_is_never_supported():
    rng = np.random.default_rng(0)
    outcomes = {verdict(_rows(rng, 0.0, 0.0)).outcome for _ in range(200)}
    assert "supported" not in outcomes


def test_planted_growing_advantage_is_supported():
    v = verdict(_rows(np.random.default_rng(1), 0.05, 0.3))
    assert (v.outcome, v.reason) == ("supported", "holds")


def test_advantage_that_does_not_grow_is_not_supported():
    v = verdict(_rows(np.random.default_rng(2), 0.3, 0.3))
    assert v.outcome != "supported"


def test_failed_oracle_is_control_failed_and_no_elimination_is_underpowered():
    rng = np.random.default_rng(3)
    # both methods at the floor and the oracle failing: never "not supported"
    v = verdict(_rows(rng, 0.0, -0.2, oracle_solves=False))
    assert (v.outcome, v.reason) == ("inconclusive", "control-failed")
    v = verdict(_rows(rng, 0.05, 0.3, a_share=0.85))
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered")
    assert verdict(_rows(rng, 0.05, 0.3, n_seeds=2)).reason == "underpowered"
    assert verdict(_rows(rng, 0.05, 0.3), preset="tiny").reason == "plumbing-only"


@pytest.mark.parametrize("kwargs,field", [
    ({"quests": "egg,dragon"}, "quests"), ({"sizes": "huge"}, "sizes"),
    ({"methods": "dqn,sarsa"}, "methods"), ({"methods": ""}, "methods"),
    ({"n_seeds": 0}, "n_seeds"), ({"eps_decay_frac": 0.0}, "eps_decay_frac"),
    ({"large_step_factor": 0.5}, "large_step_factor"), ({"reg": 0.0}, "reg"),
    ({"online_bandit": 1}, "online_bandit"),
])
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AEDQNConfig(**kwargs).validate()
