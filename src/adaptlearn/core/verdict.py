"""The verdict protocol: a claim is a list of pre-declared paired comparisons, judged on intervals.

Every experiment states the paper's claim as a :class:`Claim`: comparisons of a method against a
baseline on one metric, in one cell of the design (dataset, setting, game size), paired by a unit
(seed, sequence, stream), with a direction and a *practical margin*. :func:`judge` turns per-trial
rows into a :class:`Verdict` with one of three outcomes, each with a reason:

==============  ================  ==========================================================
outcome         reason            when
==============  ================  ==========================================================
supported       holds             every comparison's interval clears its margin
not supported   fails             some comparison's interval lies wholly on the wrong side of
                                  its margin (the claim is a conjunction: one clause clearly
                                  refuted refutes it, however many others hold)
inconclusive    plumbing-only     the ``tiny`` preset (a wiring check, never evidence)
inconclusive    control-failed    a control precondition failed (the method's base does not
                                  beat the trivial baseline, the oracle fails, ...)
inconclusive    underpowered      a power precondition failed, or a comparison has fewer
                                  pairs than the claim needs
inconclusive    invalid           a comparison has non-finite effects (or a ratio of
                                  non-positive values)
inconclusive    unresolved        no comparison fails but some intervals straddle the margin
==============  ================  ==========================================================

The effect of one pair is oriented so that positive favours the method: ``method - baseline``
for a higher-is-better metric, ``baseline - method`` otherwise; on the ``ratio`` scale it is the
log of the (oriented) ratio and the margin is a ratio (``1.5`` = "at least 1.5x"). A
``superior`` comparison holds when the interval's lower end is above the margin and fails when
its upper end is below it (the claimed effect is ruled out); a negative margin makes it a
non-inferiority comparison. An ``equivalent`` comparison ("matches") holds when the interval
lies inside ``[-margin, margin]`` and fails when it lies wholly outside.

Our own additions (AdaptSB, extra baselines) are judged the same way with ``ours=True`` and are
reported separately; they never decide the paper's verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from adaptlearn.core.stats import interval_of_mean, is_finite_number

__all__ = [
    "OUTCOMES",
    "Claim",
    "Comparison",
    "ComparisonResult",
    "Precondition",
    "Verdict",
    "compare",
    "judge",
    "rows_from_trials",
]

OUTCOMES = ("supported", "not supported", "inconclusive")
#: Reasons per outcome (see the module docstring).
REASONS = {
    "supported": ("holds",),
    "not supported": ("fails",),
    "inconclusive": (
        "plumbing-only",
        "control-failed",
        "underpowered",
        "invalid",
        "unresolved",
    ),
}
#: Presets whose runs are wiring checks, never evidence.
PLUMBING_PRESETS = frozenset({"tiny"})

Scale = Literal["difference", "ratio"]
Kind = Literal["superior", "equivalent"]


@dataclass(frozen=True)
class Comparison:
    """One pre-declared paired comparison: ``method`` vs ``baseline`` on ``metric`` in a cell.

    Attributes:
        metric: the row key holding the value compared.
        method: value of the ``method`` key of the method's rows.
        baseline: value of the ``method`` key of the baseline's rows.
        higher_is_better: direction of ``metric``.
        margin: practical margin, in metric units on the ``difference`` scale or as a ratio
            (> 0) on the ``ratio`` scale. See the module docstring for how it is used.
        scale: ``"difference"`` or ``"ratio"`` (log ratio; both values must be positive).
        kind: ``"superior"`` (beats the margin) or ``"equivalent"`` (within +-margin).
        where: the cell, as ``{row key: value}``; only rows matching every item take part.
        pair_by: row keys that identify a pair (the unit of pairing), e.g. ``("seed",)``.
        label: a short display name; defaults to ``"method vs baseline: metric [cell]"``.
    """

    metric: str
    method: str
    baseline: str
    higher_is_better: bool = True
    margin: float = 0.0
    scale: Scale = "difference"
    kind: Kind = "superior"
    where: Mapping[str, Any] = field(default_factory=dict)
    pair_by: tuple[str, ...] = ("seed",)
    label: str = ""

    def __post_init__(self) -> None:
        if self.scale not in ("difference", "ratio"):
            raise ValueError(f"`scale` must be 'difference' or 'ratio'; got {self.scale!r}")
        if self.kind not in ("superior", "equivalent"):
            raise ValueError(f"`kind` must be 'superior' or 'equivalent'; got {self.kind!r}")
        if not math.isfinite(self.margin):
            raise ValueError(f"`margin` must be finite; got {self.margin!r}")
        if self.scale == "ratio" and self.margin <= 0:
            raise ValueError(f"`margin` on the ratio scale must be a ratio > 0; got {self.margin}")
        if self.kind == "equivalent" and self.margin <= (1.0 if self.scale == "ratio" else 0.0):
            raise ValueError(
                "`margin` of an equivalence comparison must be > 0 (> 1 on the ratio scale); "
                f"got {self.margin}"
            )
        if not self.pair_by:
            raise ValueError("`pair_by` must name at least one row key")

    @property
    def name(self) -> str:
        """Display name of the comparison."""
        if self.label:
            return self.label
        cell = ", ".join(f"{k}={v}" for k, v in self.where.items())
        return f"{self.method} vs {self.baseline}: {self.metric}" + (f" [{cell}]" if cell else "")

    @property
    def margin_effect(self) -> float:
        """The margin in effect units (log units on the ratio scale)."""
        return math.log(self.margin) if self.scale == "ratio" else float(self.margin)

    def describe_rule(self) -> str:
        """The decision rule in words, for reports."""
        better = "higher" if self.higher_is_better else "lower"
        if self.scale == "ratio":
            m = f"x{self.margin:g}"
            if self.kind == "equivalent":
                return f"ratio within [x{1 / self.margin:.3g}, {m}] ({better} is better)"
            return f"{better}-is-better ratio above {m}"
        if self.kind == "equivalent":
            return f"difference within +-{self.margin:g}"
        return f"{better}-is-better difference above {self.margin:+g}"


@dataclass(frozen=True)
class ComparisonResult:
    """The outcome of one :class:`Comparison` on the rows of a run."""

    comparison: Comparison
    status: str  # holds | fails | unresolved | underpowered | invalid
    n_pairs: int
    effects: tuple[float, ...]
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    interval: str
    method_mean: float | None
    baseline_mean: float | None
    note: str = ""

    def display_effect(self) -> str:
        """Effect and interval in the comparison's units (``x`` ratios on the ratio scale)."""
        if self.effect is None:
            return "-"
        if self.comparison.scale == "ratio":
            s = f"x{math.exp(self.effect):.3g}"
            if self.ci_low is not None and self.ci_high is not None:
                s += f" [{math.exp(self.ci_low):.3g}, {math.exp(self.ci_high):.3g}]"
            return s
        s = f"{self.effect:+.4g}"
        if self.ci_low is not None and self.ci_high is not None:
            s += f" [{self.ci_low:+.4g}, {self.ci_high:+.4g}]"
        return s

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for ``results.json``."""
        c = self.comparison
        return {
            "name": c.name,
            "metric": c.metric,
            "method": c.method,
            "baseline": c.baseline,
            "where": dict(c.where),
            "pair_by": list(c.pair_by),
            "higher_is_better": c.higher_is_better,
            "scale": c.scale,
            "kind": c.kind,
            "margin": c.margin,
            "rule": c.describe_rule(),
            "status": self.status,
            "n_pairs": self.n_pairs,
            "effect": self.effect,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "interval": self.interval,
            "effect_display": self.display_effect(),
            "effects": list(self.effects),
            "method_mean": self.method_mean,
            "baseline_mean": self.baseline_mean,
            "note": self.note,
        }


@dataclass(frozen=True)
class Precondition:
    """A check the claim rests on; if it fails the verdict is inconclusive, never "not supported".

    Attributes:
        name: what is checked, e.g. ``"template tracker beats a box that never moves"``.
        ok: whether it held (``None``: could not be checked, counts as failed).
        detail: the numbers behind it.
        reason: ``"control-failed"`` (a control or oracle failed) or ``"underpowered"`` (not
            enough updates, samples, steps for the claim).
    """

    name: str
    ok: bool | None
    detail: str = ""
    reason: Literal["control-failed", "underpowered"] = "control-failed"

    def __post_init__(self) -> None:
        if self.reason not in ("control-failed", "underpowered"):
            raise ValueError(
                f"`reason` must be 'control-failed' or 'underpowered'; got {self.reason!r}"
            )

    @classmethod
    def from_comparison(
        cls, result: ComparisonResult, name: str = "", reason: str | None = None
    ) -> Precondition:
        """A control that holds only when ``result`` holds (e.g. "method beats the null box").

        ``reason`` defaults to ``"underpowered"`` when the comparison had too few pairs to
        decide, ``"control-failed"`` otherwise.
        """
        if reason is None:
            reason = "underpowered" if result.status == "underpowered" else "control-failed"
        return cls(
            name=name or result.comparison.name,
            ok=result.status == "holds",
            detail=f"{result.status}: {result.display_effect()} ({result.interval}, "
            f"n={result.n_pairs})",
            reason=reason,  # type: ignore[arg-type]
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "reason": self.reason}


@dataclass(frozen=True)
class Claim:
    """A claim: a statement, its comparisons (all must hold) and the pairs it needs.

    Attributes:
        statement: the claim in one sentence, as the report states it.
        comparisons: pre-declared comparisons; the claim is supported only if all hold.
        min_pairs: fewest pairs per comparison that can decide it (fewer: ``underpowered``).
        confidence: two-sided level of each interval.
        source: where the claim comes from (``"paper"``, or ``"ours"`` for our additions).
    """

    statement: str
    comparisons: tuple[Comparison, ...]
    min_pairs: int = 3
    confidence: float = 0.95
    source: str = "paper"

    def __post_init__(self) -> None:
        if not self.comparisons:
            raise ValueError("a `Claim` needs at least one comparison")
        if self.min_pairs < 2:
            raise ValueError(f"`min_pairs` must be an int in [2, inf); got {self.min_pairs}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"`confidence` must be in (0, 1); got {self.confidence}")


@dataclass(frozen=True)
class Verdict:
    """The judged claim: outcome, reason, a one-line text, comparisons and preconditions."""

    statement: str
    outcome: str
    reason: str
    text: str
    comparisons: tuple[ComparisonResult, ...]
    preconditions: tuple[Precondition, ...]
    ours: bool = False
    min_pairs: int = 3

    @property
    def supported(self) -> bool | None:
        """True / False for supported / not supported; None when inconclusive."""
        return {"supported": True, "not supported": False}.get(self.outcome)

    def headline(self) -> str:
        """``"SUPPORTED"``, ``"NOT SUPPORTED"`` or ``"INCONCLUSIVE (reason)"``."""
        if self.outcome == "inconclusive":
            return f"INCONCLUSIVE ({self.reason})"
        return self.outcome.upper()

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for ``results.json``."""
        return {
            "statement": self.statement,
            "outcome": self.outcome,
            "reason": self.reason,
            "text": self.text,
            "ours": self.ours,
            "min_pairs": self.min_pairs,
            "comparisons": [c.as_dict() for c in self.comparisons],
            "preconditions": [p.as_dict() for p in self.preconditions],
        }


def _matches(row: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    return all(row.get(k) == v for k, v in where.items())


def _values_by_pair(
    rows: Sequence[Mapping[str, Any]], method: str, c: Comparison
) -> dict[tuple[Any, ...], Any]:
    out: dict[tuple[Any, ...], Any] = {}
    for row in rows:
        if row.get("method") != method or not _matches(row, c.where):
            continue
        if c.metric not in row:
            continue
        key = tuple(row.get(k) for k in c.pair_by)
        if key in out:
            raise ValueError(
                f"comparison {c.name!r}: two rows of {method!r} share the pair key "
                f"{dict(zip(c.pair_by, key, strict=True))}; add the distinguishing key to "
                "`where` or `pair_by`"
            )
        out[key] = row[c.metric]
    return out


def compare(
    c: Comparison,
    rows: Sequence[Mapping[str, Any]],
    *,
    min_pairs: int = 3,
    confidence: float = 0.95,
) -> ComparisonResult:
    """Judge one comparison on ``rows`` (dicts with ``method``, the pair keys and the metric)."""
    m_vals = _values_by_pair(rows, c.method, c)
    b_vals = _values_by_pair(rows, c.baseline, c)
    keys = [k for k in m_vals if k in b_vals]
    pairs = [(m_vals[k], b_vals[k]) for k in keys]

    def mean_of(vals: list[Any]) -> float | None:
        good = [float(v) for v in vals if is_finite_number(v)]
        return float(np.mean(good)) if good and len(good) == len(vals) else None

    m_mean = mean_of([p[0] for p in pairs])
    b_mean = mean_of([p[1] for p in pairs])

    def result(status: str, effects: Sequence[float] = (), note: str = "", iv: Any = None):
        eff = tuple(float(e) for e in effects)
        mean = float(np.mean(eff)) if eff else None
        return ComparisonResult(
            comparison=c,
            status=status,
            n_pairs=len(pairs),
            effects=eff,
            effect=mean,
            ci_low=None if iv is None or not math.isfinite(iv.low) else iv.low,
            ci_high=None if iv is None or not math.isfinite(iv.high) else iv.high,
            interval="none" if iv is None else iv.kind,
            method_mean=m_mean,
            baseline_mean=b_mean,
            note=note,
        )

    bad = [p for p in pairs if not (is_finite_number(p[0]) and is_finite_number(p[1]))]
    if bad:
        return result("invalid", note=f"{len(bad)} pair(s) with a non-finite value")
    sign = 1.0 if c.higher_is_better else -1.0
    if c.scale == "ratio":
        if any(float(m) <= 0 or float(b) <= 0 for m, b in pairs):
            return result("invalid", note="ratio of non-positive values")
        effects = [sign * (math.log(float(m)) - math.log(float(b))) for m, b in pairs]
    else:
        effects = [sign * (float(m) - float(b)) for m, b in pairs]
    if len(pairs) < min_pairs:
        note = f"{len(pairs)} pair(s); the claim needs >= {min_pairs}"
        iv = interval_of_mean(effects, confidence) if len(effects) >= 2 else None
        return result("underpowered", effects, note, iv)
    iv = interval_of_mean(effects, confidence)
    lo, hi, m = iv.low, iv.high, c.margin_effect
    if c.kind == "equivalent":
        if -m < lo and hi < m:
            status = "holds"
        elif lo > m or hi < -m:
            status = "fails"
        else:
            status = "unresolved"
    elif lo > m:
        status = "holds"
    elif hi < m:
        status = "fails"
    else:
        status = "unresolved"
    return result(status, effects, iv=iv)


def judge(
    claim: Claim,
    rows: Sequence[Mapping[str, Any]],
    *,
    preconditions: Sequence[Precondition] = (),
    preset: str = "quick",
    ours: bool = False,
    detail: str = "",
) -> Verdict:
    """Judge ``claim`` on per-trial ``rows``; a pure function of its arguments.

    Args:
        claim: the pre-declared claim.
        rows: one mapping per trial (``method``, pair keys such as ``seed``, cell keys, metrics).
        preconditions: controls and power checks (see :class:`Precondition`).
        preset: the run's preset; ``tiny`` always gives ``inconclusive: plumbing-only``.
        ours: True for a claim of our own (reported apart from the paper's verdict).
        detail: extra text appended to the verdict line (context, not decision).
    """
    results = tuple(
        compare(c, rows, min_pairs=claim.min_pairs, confidence=claim.confidence)
        for c in claim.comparisons
    )
    statuses = [r.status for r in results]
    n = len(statuses)
    n_hold, n_fail = statuses.count("holds"), statuses.count("fails")
    failed = [p for p in preconditions if not p.ok]
    counts = f"{n_hold}/{n} comparison(s) hold, {n_fail} fail"
    if preset in PLUMBING_PRESETS:
        outcome, reason = "inconclusive", "plumbing-only"
        why = f"the {preset!r} preset checks wiring only ({counts})"
    elif any(p.reason == "control-failed" for p in failed):
        outcome, reason = "inconclusive", "control-failed"
        names = "; ".join(p.name for p in failed if p.reason == "control-failed")
        why = f"control failed: {names}"
    elif failed or "underpowered" in statuses:
        outcome, reason = "inconclusive", "underpowered"
        parts = [p.name for p in failed]
        if "underpowered" in statuses:
            parts.append(
                f"{statuses.count('underpowered')} comparison(s) with < {claim.min_pairs} pairs"
            )
        why = "underpowered: " + "; ".join(parts)
    elif "invalid" in statuses:
        outcome, reason = "inconclusive", "invalid"
        why = f"{statuses.count('invalid')} comparison(s) with non-finite or non-positive values"
    elif n_hold == n:
        outcome, reason = "supported", "holds"
        why = f"all {n} comparison(s) hold"
    elif n_fail:
        outcome, reason = "not supported", "fails"
        why = counts
    else:
        outcome, reason = "inconclusive", "unresolved"
        why = f"{counts}, {statuses.count('unresolved')} within noise of the margin"
    text = why + "." + (f" {detail}" if detail else "")
    return Verdict(
        statement=claim.statement,
        outcome=outcome,
        reason=reason,
        text=text,
        comparisons=results,
        preconditions=tuple(preconditions),
        ours=ours,
        min_pairs=claim.min_pairs,
    )


def rows_from_trials(results: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per :class:`~adaptlearn.core.trials.TrialResult`: method, seed, params, finals."""
    rows = []
    for r in results:
        rows.append({**r.trial.as_dict(), **r.final})
    return rows
