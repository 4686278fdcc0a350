"""Verdict of the tracking experiment: null, planted-effect and failed-control rows of the quick
run's shape, seeds averaged per test sequence, and the tiny preset end to end."""

import json

import numpy as np
import pytest

from adaptlearn.experiments.tracking import (
    ANCHOR_MAX_FAILURE_RATE,
    CLAIM_MARGIN_AUC,
    CONTROL_MARGIN_AUC,
    MIN_VAL_SEQUENCES,
    TrackingConfig,
    anchor_status,
    frozen_boxes,
    sequence_means,
    verdict,
)

N_SEQUENCES = 32  # the quick preset's test sequences (the units of pairing)
UPDATERS = ("none", "ema", "sgd", "learned")


def quick_rows(
    rng: np.random.Generator,
    *,
    learned_gain: float = 0.0,
    tracks: bool = True,
    trackers=("cf",),
    seeds=(0,),
    best: str = "ema",
) -> list[dict]:
    """Rows shaped like a quick run: per (method, tracker, seed, sequence) AUC and fps.

    Sequence difficulty varies widely (AUC 0.1 to 0.6 as measured), each updater adds its own
    per-sequence noise (sd 0.06, the spread of paired differences measured on the quick run).
    ``tracks=False``: the val-chosen EMA is no better than a box that never moves. ``best``:
    which baseline validation chose (its rows are copied to method ``best``).
    """
    rows = []
    for t in trackers:
        difficulty = rng.uniform(0.1, 0.6, N_SEQUENCES)
        frozen = np.clip(difficulty - 0.15 + rng.normal(0, 0.05, N_SEQUENCES), 0, 1)
        for seed in seeds:
            for k in range(N_SEQUENCES):
                base = difficulty[k]
                values = {m: base + rng.normal(0, 0.06) for m in UPDATERS}
                values["none"] -= 0.1
                values["learned"] += learned_gain
                if not tracks:
                    values["ema"] = frozen[k] + rng.normal(0, 0.02)
                values["frozen"] = frozen[k]
                values["best"] = values[best]
                for m, auc in values.items():
                    rows.append(
                        {
                            "method": m,
                            "tracker": t,
                            "seed": seed,
                            "sequence": k,
                            "auc": float(np.clip(auc, 0, 1)),
                            "precision20": 0.9,
                            "success50": float(np.clip(auc, 0, 1)),
                            "fps_cpu": 600.0 * float(np.exp(rng.normal(0, 0.2))),
                        }
                    )
    return rows


def test_null_rows_are_never_supported():
    outcomes = set()
    for draw in range(100):
        v = verdict(quick_rows(np.random.default_rng(draw)), preset="quick")
        assert v.outcome != "supported", v.text
        outcomes.add((v.outcome, v.reason))
    # the learned updater matching the baselines is ruled out as a >= 2-point gain in most draws
    assert ("not supported", "fails") in outcomes


def test_an_effect_below_the_margin_is_not_supported():
    for draw in range(30):
        rows = quick_rows(np.random.default_rng(draw), learned_gain=CLAIM_MARGIN_AUC / 2)
        assert verdict(rows, preset="quick").outcome != "supported"


def test_planted_effect_is_supported():
    for draw in range(20):
        v = verdict(quick_rows(np.random.default_rng(draw), learned_gain=0.1), preset="quick")
        assert (v.outcome, v.reason) == ("supported", "holds"), v.text
        assert all(p.ok for p in v.preconditions)
        assert {c.n_pairs for c in v.comparisons} == {N_SEQUENCES}


def test_planted_effect_on_both_trackers_with_three_seeds_pairs_by_sequence():
    rows = quick_rows(
        np.random.default_rng(0), learned_gain=0.1, trackers=("cf", "template"), seeds=(0, 1, 2)
    )
    v = verdict(rows, preset="full")
    assert v.outcome == "supported"
    assert len(v.comparisons) == 2  # one per tracker: learned vs the val-chosen best
    # seeds share the test sequences: they are averaged, not counted as extra units
    assert {c.n_pairs for c in v.comparisons} == {N_SEQUENCES}


def test_tracker_that_does_not_beat_a_frozen_box_is_a_failed_control():
    rows = quick_rows(np.random.default_rng(1), learned_gain=0.1, tracks=False)
    v = verdict(rows, preset="quick")
    assert (v.outcome, v.reason) == ("inconclusive", "control-failed")
    assert not v.preconditions[0].ok and "never moves" in v.preconditions[0].name
    assert str(CONTROL_MARGIN_AUC) in v.preconditions[0].name


def test_one_tracker_failing_its_control_makes_the_whole_claim_inconclusive():
    good = quick_rows(np.random.default_rng(2), learned_gain=0.1, trackers=("cf",))
    bad = quick_rows(
        np.random.default_rng(3), learned_gain=0.1, tracks=False, trackers=("template",)
    )
    v = verdict(good + bad, preset="quick")
    assert (v.outcome, v.reason) == ("inconclusive", "control-failed")
    assert [p.ok for p in v.preconditions] == [True, False, True]


def test_the_learned_updater_is_judged_against_the_validation_best_baseline():
    # SGD won on validation and is strong on test; beating EMA by 0.1 is not enough
    rows = quick_rows(np.random.default_rng(6), best="sgd")
    for r in rows:
        if r["method"] in ("sgd", "best"):
            r["auc"] += 0.15
        if r["method"] == "learned":
            r["auc"] += 0.1
    v = verdict(rows, preset="quick")
    assert v.outcome != "supported", v.text
    assert [(c.comparison.method, c.comparison.baseline) for c in v.comparisons] == [
        ("learned", "best")
    ]


def test_baselines_chosen_on_few_validation_sequences_are_underpowered():
    rows = quick_rows(np.random.default_rng(7), learned_gain=0.1)
    assert verdict(rows, preset="quick", n_val=MIN_VAL_SEQUENCES).outcome == "supported"
    v = verdict(rows, preset="quick", n_val=4)
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered")
    assert "validation sequences" in v.text


@pytest.mark.parametrize(
    ("failure_rate", "auc", "ok"),
    [
        (0.0, 0.40, True),
        (ANCHOR_MAX_FAILURE_RATE, 0.40, True),
        (ANCHOR_MAX_FAILURE_RATE + 0.01, 0.40, False),  # update() fails too often
        (0.0, 0.26 + CONTROL_MARGIN_AUC / 2, False),  # never fails, yet no better than frozen
        (0.0, float("nan"), False),
    ],
)
def test_anchor_status_requires_few_failures_and_beating_the_frozen_box(failure_rate, auc, ok):
    assert (anchor_status(failure_rate, auc, 0.26) == "result") == ok


def test_too_few_sequences_is_underpowered_not_control_failed():
    rows = [r for r in quick_rows(np.random.default_rng(5), learned_gain=0.1) if r["sequence"] < 4]
    v = verdict(rows, preset="quick")
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered")


def test_sequence_means_average_seeds_and_keep_non_finite_values():
    rows = [
        {"method": "ema", "tracker": "cf", "seed": s, "sequence": 0, "auc": a, "fps_cpu": 100.0}
        for s, a in ((0, 0.2), (1, 0.4))
    ] + [{"method": "sgd", "tracker": "cf", "seed": 0, "sequence": 0, "auc": None}]
    means = {r["method"]: r for r in sequence_means(rows)}
    assert means["ema"]["auc"] == pytest.approx(0.3)
    assert np.isnan(means["sgd"]["auc"])


def test_frozen_box_repeats_the_first_box():
    boxes = frozen_boxes(np.array([1.0, 2.0, 3.0, 4.0]), 5)
    assert boxes.shape == (5, 4) and (boxes == [1, 2, 3, 4]).all()


def test_ema_grid_must_include_no_update():
    TrackingConfig().validate()
    with pytest.raises(ValueError, match="must include 0"):
        TrackingConfig(ema_gammas="0.05,0.1").validate()


def _anchor_results_agree_with_their_checks(results: dict) -> None:
    """Every anchor listed as a result has few failures and beats the frozen box; no other."""
    failure = results["extra"].get("anchor_failure_rate", {})
    frozen = results["methods"]["cf+frozen"]["auc"]["mean"]
    for anchor, rate in failure.items():
        listed = anchor in results["methods"]
        tracks = (
            rate <= ANCHOR_MAX_FAILURE_RATE
            and listed
            and results["methods"][anchor]["auc"]["mean"] >= frozen + CONTROL_MARGIN_AUC
        )
        assert listed == tracks, (anchor, rate, results["extra"]["anchor_status"][anchor])
        assert listed == (results["extra"]["anchor_status"][anchor] == "result")


def test_tiny_preset_is_plumbing_only_and_drops_anchors_that_do_not_track(tmp_path):
    from adaptlearn.cli import main

    assert main(["run", "tracking", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "tracking").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["verdict"]["outcome"], results["verdict"]["reason"]) == (
        "inconclusive",
        "plumbing-only",
    )
    for tracker in ("cf", "template"):
        for name in ("frozen", "none", "ema", "sgd", "best", "learned"):
            assert results["methods"][f"{tracker}+{name}"]["auc"]["n"] == 2
    _anchor_results_agree_with_their_checks(results)
    assert (run_dir / "figures" / "success_precision.png").exists()
    assert (run_dir / "figures" / "meta_training.png").exists()


def test_an_anchor_that_does_not_track_is_never_reported_as_a_result(tmp_path, monkeypatch):
    """A fake OpenCV anchor whose box never moves but whose ``update()`` never reports failure
    (the failure rate alone would pass it; always-failing anchors: ``anchor_status`` test)."""
    import adaptlearn.experiments.tracking as experiment
    from adaptlearn.cli import main

    def frozen_anchor(name, frames, init_box, *, return_failures=False, upscale=1):
        boxes = frozen_boxes(init_box, len(frames))
        n_failed = 0
        return (boxes, 100.0, n_failed) if return_failures else (boxes, 100.0)

    monkeypatch.setattr(experiment, "opencv_available", lambda: True)
    monkeypatch.setattr(experiment, "opencv_track_sequence", frozen_anchor)
    args = ["run", "tracking", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]
    args += ["--backend", "local", "--set", "trackers=cf"]
    assert main(args) == 0
    (run_dir,) = (tmp_path / "tracking").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    anchors = results["extra"]["anchor_status"]
    assert set(anchors) == {f"opencv-{n}" for n in experiment.OPENCV_TRACKERS}
    assert not any(a in results["methods"] for a in anchors), sorted(results["methods"])
    assert all(status.startswith("invalid") for status in anchors.values())
    _anchor_results_agree_with_their_checks(results)
