"""The ``ae-dqn`` experiment: tiny preset end to end, presets, same game at every size, verdict."""

import csv
import json
import re

import numpy as np
import pytest

from adaptlearn.cli import main
from adaptlearn.core import get_experiment
from adaptlearn.experiments.ae_dqn import (
    METHODS,
    SIZES,
    AEDQNConfig,
    make_env,
    samples_needed,
    verdict,
    verdict_rows,
)

NEEDED = samples_needed(0.2, 0.6, 0.1, 31)


def _table_widths(markdown):
    """Cells per line of every Markdown table (split on unescaped pipes)."""
    tables, current = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            current.append(len(re.split(r"(?<!\\)\|", line.strip())) - 2)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_tiny_preset_is_plumbing_only_and_its_report_tables_are_aligned(tmp_path):
    assert main(["run", "ae-dqn", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "ae-dqn").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["verdict"]["outcome"], results["verdict"]["reason"]) == (
        "inconclusive", "plumbing-only")
    assert set(results["methods"]) == {f"{m}(quest=egg,size=compact)" for m in METHODS}
    assert results["figures"] and all((run_dir / f).exists() for f in results["figures"])
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == set(METHODS)
    assert all(r["admissible_size"] and r["false_elim_visited"]
               for r in rows if r["method"] == "ae-dqn")
    report = (run_dir / "report.md").read_text()
    assert "Per-game summary" in report and "Elimination quality" in report
    tables = _table_widths(report)
    assert len(tables) >= 2
    for widths in tables:  # header, separator and every row have the same number of cells
        assert len(set(widths)) == 1, widths
    # a run that never solved records steps to solve as a censored bound, not a measurement
    for method, per in results["methods"].items():
        unsolved = [v == 0.0 for v in per["solved"]["values"]]
        assert per["steps_to_solve"].get("censored", [False] * len(unsolved)) == unsolved, method
    # the verdict's metrics name no pipe (it broke the report's tables)
    assert not any("|" in c["metric"] for c in results["verdict"]["comparisons"])


def test_quick_preset_is_powered_by_construction_and_full_covers_the_paper_grid():
    cfg = get_experiment("ae-dqn").make_config("quick")
    cfg.validate()
    assert cfg.quest_list == ["egg"] and cfg.size_list == ["compact", "small"]
    assert set(cfg.method_list) == set(METHODS) and cfg.n_seeds >= 3
    for size in cfg.size_list:
        n = make_env(cfg, "egg", size).n_actions
        # each step gives at most one sample: fewer steps per command than needed cannot work
        assert cfg.steps("egg", size) >= NEEDED * n
    full = get_experiment("ae-dqn").make_config("full")
    assert set(full.quest_list) == {"egg", "troll"} and set(full.size_list) == {"small", "large"}
    assert full.steps("troll", "large") > full.steps("egg", "large") > full.steps("egg", "small")


@pytest.mark.parametrize("quest", ["egg", "troll"])
@pytest.mark.parametrize("game_seed", [0, 1, 2])
def test_every_size_is_the_same_game(quest, game_seed):
    """The world comes from its own seed stream: only the distractor nouns change with |A|."""
    cfg = AEDQNConfig(game_seed=game_seed)
    envs = [make_env(cfg, quest, size) for size in SIZES]
    gold = {tuple(e.commands[a] for a in e.gold_path) for e in envs}
    assert len(gold) == 1
    assert len({(tuple(e._world.room_names), str(e._world.exits)) for e in envs}) == 1
    assert len({e.n_actions for e in envs}) == len(SIZES)


def test_samples_needed_follows_the_confidence_width():
    assert NEEDED == 38  # 31 * (0.2 / 0.16 - 0.05) = 37.2
    assert samples_needed(0.3, 0.6, 0.1, 31) == 57  # 31 * (0.3 / 0.16 - 0.05) = 56.6
    assert samples_needed(0.5, 0.6, 0.1, 31) > NEEDED > samples_needed(0.2, 0.5, 0.1, 31)
    assert samples_needed(0.2, 0.6, 0.1, 101) > NEEDED


class _Result:  # the parts of a TrialResult that verdict_rows reads
    def __init__(self, method, quest, size, seed, solve_share, spc, a_share):
        """``solve_share``: steps to solve as a share of the budget (> 1: never solved)."""
        n = 8 + SIZES[size][0] * SIZES[size][1]
        budget = round(spc * n)
        solved = solve_share <= 1.0
        self.trial = type("T", (), {"as_dict": lambda _: {
            "method": method, "seed": seed, "quest": quest, "size": size}})()
        self.final = {"auc_return": 0.0, "solved": float(solved),
                      "steps_to_solve": round(min(solve_share, 1.0) * budget),
                      "final_return": 0.0, "final_success": float(solved)}
        ae = method == "ae-dqn"
        self.extra = {"n_actions": n, "budget": budget, "samples_needed": NEEDED,
                      "samples_per_command": 0.7 * spc if ae else 0.8 * spc,
                      "admissible_size": a_share * n if ae else None}


def _solve_shares(rng, size):
    """Steps to solve as a share of the budget, as a quick run spreads them: a random
    evaluation, or never (> 1) in about 40% of the runs."""
    return rng.uniform(0.2, 1.6, size)


def _rows(rng, gains=(0.0, 0.0), n_seeds=3, oracle_solves=True, spc=80.0, a_share=0.45,
          sizes=("compact", "small")):
    """gain 0: AE-DQN from the same distribution as DQN; otherwise the shape a working
    elimination gives: DQN solves late or never (share 0.9-1.6) and AE-DQN solves at ``1 -
    gain`` of the budget, plus noise."""
    results = []
    for size, gain in zip(sizes, gains, strict=True):
        base = _solve_shares(rng, n_seeds) if gain == 0 else rng.uniform(0.9, 1.6, n_seeds)
        null = _solve_shares(rng, n_seeds)
        for seed in range(n_seeds):
            ae = null[seed] if gain == 0 else 1.0 - gain + 0.03 * rng.normal()
            results += [
                _Result("dqn", "egg", size, seed, base[seed], spc, a_share),
                _Result("ae-dqn", "egg", size, seed, max(ae, 0.01), spc, a_share),
                _Result("masked-dqn", "egg", size, seed, 0.2 if oracle_solves else 2.0, spc,
                        a_share)]
    return verdict_rows(results)


def test_rows_cap_censored_runs_at_the_budget_and_give_the_share_saved():
    rows = _rows(np.random.default_rng(9), gains=(0.3, 0.5))
    trials = [r for r in rows if r["method"] in METHODS]
    assert all(r["steps_to_solve"] <= r["budget"] for r in trials)
    assert all(r["steps_to_solve"] == r["budget"] for r in trials if not r["solved"])
    by = {(r["method"], r["size"], r["seed"]): r for r in trials}
    for r in rows:
        if r["method"].startswith("gain_"):
            size = r["method"].removeprefix("gain_")
            d, a = by[("dqn", size, r["seed"])], by[("ae-dqn", size, r["seed"])]
            share = (d["steps_to_solve"] - a["steps_to_solve"]) / d["budget"]
            assert r["share_saved"] == pytest.approx(share)


def test_null_verdict_is_never_supported():
    rng = np.random.default_rng(0)
    outcomes = [verdict(_rows(rng)).outcome for _ in range(200)]
    assert "supported" not in outcomes
    assert "not supported" in outcomes  # the verdict can fail, not only stay unresolved


def test_planted_growing_advantage_is_supported():
    """AE-DQN solves after 0.7 / 0.3 of the budget, DQN late or never: supported in >= 90% of
    draws (3 seeds give Student-t intervals with 2 degrees of freedom)."""
    rng = np.random.default_rng(1)
    verdicts = [verdict(_rows(rng, gains=(0.3, 0.7))) for _ in range(50)]
    supported = [v for v in verdicts if (v.outcome, v.reason) == ("supported", "holds")]
    assert len(supported) >= 45
    assert {v.outcome for v in verdicts} <= {"supported", "inconclusive"}
    assert len(verdicts[0].comparisons) == 3  # one per cell, and the growth compact -> small
    # the per-cell margin is a share of that cell's budget, in steps
    budgets = {c.comparison.where.get("size"): c.comparison.margin
               for c in verdicts[0].comparisons[:2]}
    assert budgets == {"compact": pytest.approx(0.1 * 80 * 92),
                       "small": pytest.approx(0.1 * 80 * 212)}


def test_advantage_that_does_not_grow_is_not_supported():
    rng = np.random.default_rng(2)
    for _ in range(20):
        v = verdict(_rows(rng, gains=(0.4, 0.4)))
        assert v.outcome != "supported"
        assert [c.status for c in v.comparisons[:2]] == ["holds", "holds"]


def test_both_never_solving_with_powered_bandit_and_solving_oracle_is_not_supported():
    rows = _rows(np.random.default_rng(3))
    for r in rows:
        if r["method"] in ("dqn", "ae-dqn"):
            r["steps_to_solve"], r["solved"] = r["budget"], 0.0
        if r["method"].startswith("gain_"):
            r["share_saved"] = 0.0
    v = verdict(rows)
    assert (v.outcome, v.reason) == ("not supported", "fails")
    assert all(c.effect == 0.0 for c in v.comparisons)


def test_failed_oracle_is_underpowered_even_with_a_planted_effect():
    v = verdict(_rows(np.random.default_rng(4), gains=(0.3, 0.7), oracle_solves=False))
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered")
    assert not any(p.ok for p in v.preconditions if p.name.startswith("true-mask oracle"))


def test_bandit_without_the_samples_is_underpowered_even_with_a_planted_effect():
    rng = np.random.default_rng(5)
    v = verdict(_rows(rng, gains=(0.3, 0.7), spc=NEEDED - 1))  # budget too small
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered")
    # the budget was there but the elimination did not act: A' still 85% of the commands
    v = verdict(_rows(rng, gains=(0.3, 0.7), a_share=0.85))
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered")
    assert verdict(_rows(rng, gains=(0.3, 0.7), n_seeds=2)).reason == "underpowered"
    rows = [r for r in _rows(rng, gains=(0.3, 0.7)) if r["method"] != "masked-dqn"]
    assert verdict(rows).reason == "underpowered"  # no oracle run: the check is unmet
    assert verdict(_rows(rng, gains=(0.3, 0.7)), preset="tiny").reason == "plumbing-only"


@pytest.mark.parametrize("kwargs,field", [
    ({"quests": "egg,dragon"}, "quests"), ({"sizes": "huge"}, "sizes"),
    ({"methods": "dqn,sarsa"}, "methods"), ({"methods": ""}, "methods"),
    ({"n_seeds": 0}, "n_seeds"), ({"eps_decay_frac": 0.0}, "eps_decay_frac"),
    ({"egg_steps_per_command": 0.0}, "egg_steps_per_command"), ({"reg": 0.0}, "reg"),
    ({"online_bandit": 1}, "online_bandit"), ({"aen_filters": 0}, "aen_filters"),
])
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AEDQNConfig(**kwargs).validate()
