"""The accelerated-rl experiment: its verdict on null / planted / failed-control rows of the
quick run's shape, the lr choice on validation seeds, and the tiny preset end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adaptlearn.cli import main
from adaptlearn.experiments.accelerated_rl import (
    MIN_UPDATES,
    AcceleratedRLConfig,
    _arms,
    arm_settings,
    choose_lrs,
    extend_lr_grid,
    lr_grid_edges,
    verdict,
    verdict_rows,
)

# The quick run's shape: 7 throughput cells at N=8 x 3 repeats; A2C and PPO, small and large
# batch, 3 verdict seeds. Scales from the 2026-12-04 quick run: ~850 steps/s with ~5% noise
# per cell; CartPole final returns ~90-130 with a seed SD of ~20 (from ~20 at the start); CPU s
# per 1k steps ~0.1.
CFG = AcceleratedRLConfig()
ARMS = _arms(CFG)
BACKENDS = CFG.throughput_backends


def _throughput(rng, *, batched=1.0, parallel=1.0, alternating=1.0, anchor=1.0, n=3):
    """One row per (backend, repeat); each factor multiplies that backend's true speed."""
    factor = {"gym_sync": anchor, "ale_vector": anchor, "gym_sync_per_env": anchor / batched,
              "parallel": parallel, "alternating": alternating}
    rows = []
    for rep in range(n):
        load = 1 + 0.1 * rng.normal()  # the machine's load drifts between repeats
        for b in BACKENDS:
            base = 850.0 * load * factor.get(b, 1.0) * (1 + 0.05 * rng.normal())
            cpu = 850.0 * factor.get(b, 1.0) * (1 + 0.05 * rng.normal())
            rows.append({"part": "throughput", "method": b, "backend": b, "n_envs": 8,
                         "repeat": rep, "steps_per_s": base, "steps_per_cpu_s": cpu})
    return rows


def _learning(rng, *, return_gap=0.0, cpu_ratio=1.0, n=3, learns=True, opt_steps=1500.0,
              shift=0.0):
    """Rows as ``ctx.rows`` holds them: method = the chosen arm's name, one per seed."""
    rows = []
    for algo in ("a2c", "ppo", "dqn"):
        small_arm, large_arm = ((f"{algo}-B8-none", f"{algo}-B64-sqrt") if algo != "dqn"
                                else ("dqn-mb32-none", "dqn-mb256-sqrt"))
        for seed in range(n):
            initial = 20.0 + shift
            small = (130.0 if learns else 40.0) + 20 * rng.normal() + shift
            cpu = 0.1 * (1 + 0.05 * rng.normal())
            rows.append({"method": small_arm, "seed": seed, "final_return": small,
                         "initial_return": initial, "cpu_s_per_1k_steps": cpu,
                         "optimizer_steps": 8 * opt_steps})
            rows.append({"method": large_arm, "seed": seed,
                         "final_return": small - return_gap + 6 * rng.normal(),
                         "initial_return": initial, "cpu_s_per_1k_steps": cpu / cpu_ratio,
                         "optimizer_steps": opt_steps})
    return rows


def _rows(rng, *, c1=None, c2=None):
    return verdict_rows(_throughput(rng, **(c1 or {})), _learning(rng, **(c2 or {})), ARMS)


# Clear effects for 3 repeats at ~5% cell noise (a t interval with 2 df resolves ~1.3x at the
# 1.1x margin): each mechanism 1.6x, our best sampler 1.28x the best anchor.
PLANTED_C1 = {"batched": 1.6, "parallel": 1.6, "alternating": 1.6, "anchor": 1.25}
PLANTED_C2 = {"return_gap": 0.0, "cpu_ratio": 3.0}


def test_null_is_never_supported():
    rng = np.random.default_rng(0)
    for _ in range(200):
        v = verdict(_rows(rng), free_cores=2.0)
        assert v.outcome != "supported", v.text


def test_large_batch_far_behind_is_never_supported_even_when_everything_else_holds():
    # the large batch loses 2x the margin: its non-inferiority must not hold in any draw
    rng = np.random.default_rng(1)
    outcomes = set()
    for _ in range(200):
        v = verdict(_rows(rng, c1=PLANTED_C1, c2={"return_gap": 100.0, "cpu_ratio": 3.0}),
                    free_cores=2.0)
        outcomes.add(v.outcome)
    assert "supported" not in outcomes
    assert outcomes <= {"inconclusive", "not supported"}


def test_planted_effect_is_supported():
    for seed in range(5):
        v = verdict(_rows(np.random.default_rng(100 + seed), c1=PLANTED_C1, c2=PLANTED_C2),
                    free_cores=2.0)
        assert (v.outcome, v.reason) == ("supported", "holds"), v.text
        assert len(v.comparisons) == 4 + 3 * 2  # C1: batched, parallel, alternating, anchor
        assert {c.comparison.method for c in v.comparisons} >= {"dqn-large", "a2c-large"}


def test_negative_returns_are_judged_as_differences_never_ratios():
    rows = _rows(np.random.default_rng(7), c1=PLANTED_C1, c2={**PLANTED_C2, "shift": -1000.0})
    assert all(r["final_return"] < 0 for r in rows if "final_return" in r)
    v = verdict(rows, free_cores=2.0)
    assert (v.outcome, v.reason) == ("supported", "holds")
    ret = [c for c in v.comparisons if c.comparison.metric == "final_return"]
    assert {c.comparison.scale for c in ret} == {"difference"}


def test_c1_is_judged_against_the_strongest_anchor_and_on_each_mechanism():
    # our samplers beat serial but sit at 0.7x the best anchor: the anchor comparison fails
    slow = {**PLANTED_C1, "anchor": 2.3}
    v = verdict(_rows(np.random.default_rng(3), c1=slow, c2=PLANTED_C2), free_cores=2.0)
    status = {c.comparison.label.split(":")[0]: c.status for c in v.comparisons}
    assert status["C1 best of parallel/alternating vs best anchor"] == "fails"
    assert status["C1 parallel vs serial sampler"] == "holds"
    assert v.outcome != "supported"
    # the alternating sampler alone gains nothing over serial: that comparison fails
    v = verdict(_rows(np.random.default_rng(4), c1={**PLANTED_C1, "alternating": 0.8},
                      c2=PLANTED_C2), free_cores=2.0)
    assert {c.status for c in v.comparisons
            if c.comparison.label.startswith("C1 alternating")} == {"fails"}
    assert v.outcome != "supported"


def test_failed_control_and_power_preconditions():
    rng = np.random.default_rng(5)
    v = verdict(_rows(rng, c1=PLANTED_C1, c2={**PLANTED_C2, "learns": False}), free_cores=2.0)
    assert (v.outcome, v.reason) == ("inconclusive", "control-failed")
    v = verdict(_rows(rng, c1=PLANTED_C1, c2={**PLANTED_C2, "opt_steps": MIN_UPDATES / 16}),
                free_cores=2.0)
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered")
    v = verdict(_rows(rng, c1=PLANTED_C1, c2=PLANTED_C2), free_cores=0.5)
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered")
    v = verdict(_rows(rng, c1={**PLANTED_C1, "n": 2}, c2={**PLANTED_C2, "n": 2}),
                free_cores=2.0)
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered")
    v = verdict(_rows(rng, c1=PLANTED_C1, c2=PLANTED_C2), free_cores=2.0, preset="tiny")
    assert (v.outcome, v.reason) == ("inconclusive", "plumbing-only")


def test_verdict_rows_take_the_best_of_each_group_per_repeat():
    tp = [{"method": m, "n_envs": 8, "repeat": 0, "steps_per_s": v} for m, v in
          (("serial", 5.0), ("parallel", 7.0), ("alternating", 9.0), ("gym_sync", 8.0),
           ("gym_async", 3.0), ("ale_vector", 6.0))]
    rows = {r["method"]: r for r in verdict_rows(tp, [], ARMS)}
    assert (rows["paper-best"]["steps_per_s"], rows["paper-best"]["chosen"]) == (9.0, "alternating")
    assert (rows["anchor-best"]["steps_per_s"], rows["anchor-best"]["chosen"]) == (8.0, "gym_sync")


def test_each_batch_size_chooses_its_lr_from_the_same_grid_on_validation_rows():
    grid = {a["rule"] for a in ARMS.values() if a["size"] == "small"}
    assert grid == {a["rule"] for a in ARMS.values() if a["size"] == "large"} == set(CFG.lr_rules)
    val = [{"method": m, "seed": 10_000, "final_return": float(i)} for i, m in enumerate(ARMS)]
    val[0]["final_return"] = float("nan")  # a diverged run is never chosen
    chosen = choose_lrs(val, ARMS)
    assert chosen == {"a2c": {"small": "a2c-B8-linear", "large": "a2c-B64-linear"},
                      "ppo": {"small": "ppo-B8-linear", "large": "ppo-B64-linear"},
                      "dqn": {"small": "dqn-mb32-linear", "large": "dqn-mb256-linear"}}
    # DQN's large arm grows the replay minibatch, not the envs, at the same replay ratio
    dqn = {a["size"]: a for a in ARMS.values() if a["algo"] == "dqn" and a["rule"] == "none"}
    assert dqn["large"]["batch_size"] == CFG.batch_multiplier * dqn["small"]["batch_size"]
    assert dqn["large"]["n_envs"] == dqn["small"]["n_envs"]


def test_a_winning_grid_edge_is_extended_beyond_and_an_interior_choice_is_not():
    k = CFG.batch_multiplier
    chosen = {"a2c": {"small": "a2c-B8-linear", "large": "a2c-B64-sqrt"},
              "dqn": {"small": "dqn-mb32-none", "large": "dqn-mb256-sqrt"}}
    assert lr_grid_edges(ARMS, chosen) == {"a2c": {"small": "top"}, "dqn": {"small": "bottom"}}
    new = extend_lr_grid(ARMS, chosen)
    assert set(new) == {"a2c-B8-k^1.5", "dqn-mb32-k^-0.5"}
    assert new["a2c-B8-k^1.5"]["lr"] == pytest.approx(CFG.a2c_lr * k ** 1.5)
    assert new["dqn-mb32-k^-0.5"]["lr"] == pytest.approx(CFG.dqn_lr / k ** 0.5)
    for name, arm in new.items():  # a trial rebuilds the same arm from its name and the config
        assert arm_settings(CFG, name) == arm
        assert {kk: v for kk, v in arm.items() if kk not in ("rule", "lr_exp", "lr")} == {
            kk: v for kk, v in ARMS[chosen[arm["algo"]][arm["size"]]].items()
            if kk not in ("rule", "lr_exp", "lr")}
    # validation of the new points: a tie keeps the old edge (now inside the grid); a strictly
    # better new point wins and is itself at the edge again
    arms = {**ARMS, **new}
    val = [{"method": m, "seed": 1, "final_return": 1.0} for m in arms]
    for r in val:
        r["final_return"] = {"a2c-B8-linear": 5.0, "a2c-B8-k^1.5": 5.0, "dqn-mb32-none": 3.0,
                             "dqn-mb32-k^-0.5": 4.0}.get(r["method"], 1.0)
    again = choose_lrs(val, arms)
    assert again["a2c"]["small"] == "a2c-B8-linear" and again["dqn"]["small"] == "dqn-mb32-k^-0.5"
    edges = lr_grid_edges(arms, again)
    assert edges.get("a2c", {}).get("small") is None and edges["dqn"]["small"] == "bottom"
    assert set(extend_lr_grid(arms, again)) >= {"dqn-mb32-k^-1"}
    # a one-point grid has no edge to extend
    one = _arms(AcceleratedRLConfig(lr_rules=("sqrt",)))
    pick = choose_lrs([{"method": m, "seed": 1, "final_return": 1.0} for m in one], one)
    assert lr_grid_edges(one, pick) == {} and extend_lr_grid(one, pick) == {}
    with pytest.raises(KeyError, match="no learning arm 'a2c-B9-k\\^2'"):
        arm_settings(CFG, "a2c-B9-k^2")


def test_an_lr_still_at_the_grid_edge_makes_c2_underpowered():
    rows = _rows(np.random.default_rng(11), c1=PLANTED_C1, c2=PLANTED_C2)
    assert verdict(rows, free_cores=2.0, lr_edges={}).outcome == "supported"
    v = verdict(rows, free_cores=2.0, lr_edges={"ppo": {"small": "top"}})
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered")
    (failed,) = [p for p in v.preconditions if not p.ok]
    assert failed.name.startswith("ppo: each batch size's lr") and "small at the grid's top" in (
        failed.detail)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("throughput_backends", ("serial", "envpool"), "`throughput_backends` of Accelerated"),
    ("throughput_workers", 3, "must be even"),
    ("lr_rules", ("cubic",), "`lr_rules`"),
    ("lr_rules", (), "`lr_rules`"),
    ("lr_grid_extensions", -1, "`lr_grid_extensions`"),
    ("learn_sampler", "ray", "`learn_sampler`"),
    ("return_margin", -1.0, "`return_margin`"),
    ("validation_seed", 1, "`validation_seed`"),
])
def test_config_validation_names_the_field(field, value, message) -> None:
    cfg = AcceleratedRLConfig(**{field: value})
    with pytest.raises(ValueError, match=message):
        cfg.validate()


@pytest.mark.timeout(180)
def test_tiny_preset_is_plumbing_only_end_to_end(tmp_path) -> None:
    code = main(["run", "accelerated-rl", "--preset", "tiny", "--out", str(tmp_path), "--quiet"])
    assert code in (0, None)
    (run_dir,) = [p for p in (tmp_path / "accelerated-rl").iterdir()
                  if not p.name.endswith(".partial")]
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["verdict"]["outcome"], results["verdict"]["reason"]) == (
        "inconclusive", "plumbing-only")
    labels = [c["name"] for c in results["verdict"]["comparisons"]]
    assert any(name.startswith("C1 batched vs per-env") for name in labels)
    assert any(name.startswith("C2 a2c: large vs small batch final return") for name in labels)
    # a two-point grid always wins at an edge: each (algo, size) was extended once, the new
    # point validated, and the choice made among all of them
    validated = {v["method"] for v in results["extra"]["validation"]}
    assert {m.split("-k^")[0] for m in validated if "-k^" in m} == {
        "a2c-B4", "a2c-B8", "dqn-mb16", "dqn-mb32"}
    chosen = results["extra"]["lr_chosen_on_validation"]
    assert {algo: set(sizes) for algo, sizes in chosen.items()} == {
        "a2c": {"small", "large"}, "dqn": {"small", "large"}}
    assert {m for sizes in chosen.values() for m in sizes.values()} <= validated
    assert any(name.startswith("C2 dqn: large vs small batch final return") for name in labels)
    assert {v["seed"] for v in results["extra"]["validation"]}.isdisjoint(results["seeds"])
    assert {"figures/throughput.png", "figures/learning_a2c.png"} <= set(results["figures"])
    tp = results["extra"]["throughput"]
    assert {r["backend"] for r in tp} == {"serial", "gym_sync", "gym_sync_per_env",
                                          "inference_only"}
    assert all(r["steps_per_cpu_s"] > 0 for r in tp)
    assert results["methods"][chosen["a2c"]["small"]]["final_return"]["n"] == 1
    assert any(name.startswith("a2c: each batch size's lr") for name in
               (p["name"] for p in results["verdict"]["preconditions"]))


def test_unknown_learn_env_is_refused_by_the_config(tmp_path, capsys) -> None:
    assert main(["run", "accelerated-rl", "--preset", "tiny", "--set", "learn_env=Nope-v0",
                 "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "`learn_env` of AcceleratedRLConfig" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "accelerated-rl").exists()
