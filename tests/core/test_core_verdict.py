"""The verdict protocol: each outcome is reachable, and none is reached by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptlearn.core.verdict import Claim, Comparison, Precondition, compare, judge


def _rows(effect: float, n: int, rng: np.random.Generator, noise: float = 1.0, cell: str = "a"):
    """Paired rows: the baseline at N(10, noise), the method shifted by ``effect`` + pair noise."""
    rows = []
    for seed in range(n):
        base = 10.0 + noise * rng.normal()
        rows.append({"method": "base", "seed": seed, "cell": cell, "score": base})
        rows.append(
            {
                "method": "new",
                "seed": seed,
                "cell": cell,
                "score": base + effect + noise * rng.normal(),
            }
        )
    return rows


CLAIM = Claim(
    statement="new beats base by >= 0.5",
    comparisons=(Comparison("score", "new", "base", margin=0.5, where={"cell": "a"}),),
    min_pairs=5,
)


def test_null_effect_is_never_supported():
    rng = np.random.default_rng(0)
    outcomes = [judge(CLAIM, _rows(0.0, 8, rng)).outcome for _ in range(300)]
    assert "supported" not in outcomes
    assert "not supported" in outcomes  # a zero effect with a 0.5 margin can be ruled out


def test_planted_effect_is_supported():
    rng = np.random.default_rng(1)
    v = judge(CLAIM, _rows(3.0, 8, rng))
    assert v.outcome == "supported" and v.reason == "holds"
    (c,) = v.comparisons
    assert c.status == "holds" and c.interval == "t" and c.n_pairs == 8
    assert c.ci_low > 0.5 and c.effect == pytest.approx(np.mean(c.effects))


def test_difference_within_noise_is_unresolved_not_a_sign():
    rows = _rows(0.5, 8, np.random.default_rng(2), noise=1.0)
    v = judge(CLAIM, rows)
    assert v.outcome == "inconclusive" and v.reason == "unresolved"


def test_tiny_preset_is_plumbing_only_even_with_a_huge_effect():
    v = judge(CLAIM, _rows(50.0, 8, np.random.default_rng(3)), preset="tiny")
    assert (v.outcome, v.reason) == ("inconclusive", "plumbing-only")


def test_failed_control_gives_control_failed_never_not_supported():
    rows = _rows(-5.0, 8, np.random.default_rng(4))  # would be "not supported" on its own
    assert judge(CLAIM, rows).outcome == "not supported"
    ctl = Precondition("oracle succeeds", ok=False, detail="oracle return -0.3")
    v = judge(CLAIM, rows, preconditions=[ctl])
    assert (v.outcome, v.reason) == ("inconclusive", "control-failed")
    power = Precondition("enough updates", ok=False, reason="underpowered")
    v = judge(CLAIM, _rows(5.0, 8, np.random.default_rng(4)), preconditions=[power])
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered")


def test_too_few_pairs_is_underpowered():
    v = judge(CLAIM, _rows(5.0, 3, np.random.default_rng(5)))
    assert (v.outcome, v.reason) == ("inconclusive", "underpowered")
    assert v.comparisons[0].status == "underpowered" and v.comparisons[0].interval == "t"


def test_pairs_only_within_the_cell():
    rng = np.random.default_rng(6)
    rows = _rows(3.0, 8, rng, cell="a") + _rows(-3.0, 8, rng, cell="b")
    claim_b = Claim("b", (Comparison("score", "new", "base", where={"cell": "b"}),), min_pairs=5)
    assert judge(CLAIM, rows).outcome == "supported"
    assert judge(claim_b, rows).outcome == "not supported"
    with pytest.raises(ValueError, match="share the pair key"):
        judge(Claim("no cell", (Comparison("score", "new", "base"),)), rows)


def test_one_clearly_failed_clause_refutes_the_claim_however_many_hold():
    rng = np.random.default_rng(7)
    rows = _rows(3.0, 8, rng, cell="a") + _rows(-3.0, 8, rng, cell="b")
    claim = Claim(
        "both cells",
        tuple(Comparison("score", "new", "base", where={"cell": c}) for c in "ab"),
        min_pairs=5,
    )
    v = judge(claim, rows)
    assert (v.outcome, v.reason) == ("not supported", "fails")
    assert v.text.startswith("1/2 comparison(s) hold, 1 fail")


def test_lower_is_better_orientation_and_ratio_scale():
    rows = []
    for seed in range(6):
        rows.append({"method": "base", "seed": seed, "time": 10.0 + 0.1 * seed})
        rows.append(
            {"method": "new", "seed": seed, "time": (10.0 + 0.1 * seed) / (2.0 + 0.01 * seed)}
        )
    faster = Comparison("time", "new", "base", higher_is_better=False, scale="ratio", margin=1.5)
    r = compare(faster, rows, min_pairs=3)
    assert r.status == "holds" and math.exp(r.effect) == pytest.approx(2.025, rel=0.01)
    too_much = Comparison("time", "new", "base", higher_is_better=False, scale="ratio", margin=3.0)
    assert compare(too_much, rows).status == "fails"


def test_ratio_of_non_positive_values_is_invalid():
    rows = [
        {"method": m, "seed": s, "ret": v}
        for s in range(5)
        for m, v in (("base", -1.0 - s), ("new", -0.5 - s))
    ]
    c = Comparison("ret", "new", "base", scale="ratio", margin=1.1)
    v = judge(Claim("ratio", (c,)), rows)
    assert (v.outcome, v.reason) == ("inconclusive", "invalid")
    assert "non-positive" in v.comparisons[0].note


def test_non_finite_values_are_invalid_not_dropped():
    rows = _rows(5.0, 8, np.random.default_rng(8))
    rows[1]["score"] = float("nan")
    v = judge(CLAIM, rows)
    assert (v.outcome, v.reason) == ("inconclusive", "invalid")


def test_equivalence_holds_only_inside_the_band():
    rng = np.random.default_rng(9)
    same = Claim("matches", (Comparison("score", "new", "base", kind="equivalent", margin=1.0),))
    assert judge(same, _rows(0.0, 20, rng, noise=0.3)).outcome == "supported"
    assert judge(same, _rows(3.0, 20, rng, noise=0.3)).outcome == "not supported"
    null_supported = [
        judge(same, _rows(3.0, 6, np.random.default_rng(s), noise=0.5)).outcome == "supported"
        for s in range(100)
    ]
    assert not any(null_supported)


def test_negative_margin_is_non_inferiority():
    rows = _rows(-0.1, 10, np.random.default_rng(10), noise=0.1)
    ok = Claim("not worse by 0.5", (Comparison("score", "new", "base", margin=-0.5),))
    strict = Claim("better", (Comparison("score", "new", "base", margin=0.0),))
    assert judge(ok, rows).outcome == "supported"
    assert judge(strict, rows).outcome != "supported"


def test_precondition_from_comparison_and_ours_label():
    rows = _rows(3.0, 8, np.random.default_rng(11))
    r = compare(CLAIM.comparisons[0], rows)
    assert Precondition.from_comparison(r, "beats the null box").ok
    r_bad = compare(CLAIM.comparisons[0], _rows(0.0, 8, np.random.default_rng(11)))
    assert not Precondition.from_comparison(r_bad).ok
    v = judge(Claim("ours", CLAIM.comparisons, source="ours"), rows, ours=True)
    assert v.ours and v.as_dict()["ours"] is True


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scale": "log"}, "scale"),
        ({"kind": "better"}, "kind"),
        ({"margin": float("inf")}, "margin"),
        ({"scale": "ratio", "margin": 0.0}, "ratio"),
        ({"kind": "equivalent", "margin": 0.0}, "equivalence"),
        ({"pair_by": ()}, "pair_by"),
    ],
)
def test_bad_comparisons_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Comparison("m", "a", "b", **kwargs)


def test_bad_claims_are_refused():
    with pytest.raises(ValueError, match="at least one"):
        Claim("empty", ())
    with pytest.raises(ValueError, match="min_pairs"):
        Claim("x", CLAIM.comparisons, min_pairs=1)
    with pytest.raises(ValueError, match="reason"):
        Precondition("x", ok=True, reason="bad")  # type: ignore[arg-type]
