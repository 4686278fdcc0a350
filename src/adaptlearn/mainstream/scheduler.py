"""Mainstream's scheduler: pick each app's shared depth and frame rate under a compute budget.

``schedule(apps, budget, cost_model)`` maximises the mean (or min) event F1 of the apps subject to
``cost <= budget``. Two searches:

* ``"greedy"`` - the paper's M-Scheduler heuristic: start every app at maximum sharing (deepest
  allowed freeze depth) and the lowest frame rate; repeatedly apply the single-app move (any
  depth, any rate) that raises that app's F1 and keeps the schedule within budget, choosing the
  move with the best ratio; stop when no move applies. The default ratio is the intended
  marginal one, ``(F1_new - F1_cur) / (cost_new - cost_cur)`` (a move that does not raise the
  cost wins outright). ``legacy_ratio=True`` uses the reference code's ratio
  ``(1 - F1_new) / suffix_cost(k', f')`` taken as smallest-first, which favours cheap, poor
  configurations.
* ``"exhaustive"`` - every combination of per-app options (``angelajiang/mainstream``
  ``get_parameter_options`` / ``cpp/exhaustive_search.cpp``); exact, for small N only.

Baselines use the same search restricted to one depth: No-Sharing (depth 0, every app its own
full model) and Max-Sharing (the deepest depth, only the last layers specialised).

References:
    Jiang et al., "Mainstream: Dynamic Stem-Sharing for Multi-Tenant Video Processing",
    USENIX ATC 2018.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

from adaptlearn.core.validation import check_choice, check_range
from adaptlearn.mainstream.cost import CostModel
from adaptlearn.mainstream.f1 import HOP_BASES, event_f1, event_precision_recall
from adaptlearn.mainstream.types import AppConfig, AppSpec, InfeasibleBudgetError, Schedule

__all__ = [
    "DEFAULT_FPS_OPTIONS",
    "OBJECTIVES",
    "SEARCHES",
    "max_sharing",
    "no_sharing",
    "schedule",
]

#: Frame rates the reference scheduler tries (integer fps up to the stream rate, F = 10).
DEFAULT_FPS_OPTIONS: tuple[float, ...] = tuple(float(f) for f in range(1, 11))
OBJECTIVES = ("mean_f1", "min_f1", "mean_recall")
SEARCHES = ("greedy", "exhaustive")
#: ``table(app_index, depth, fps) -> predicted event F1 (or recall)`` (memoised).
F1Table = Callable[[int, int, float], float]
#: Largest number of schedules the exhaustive search enumerates before refusing.
MAX_EXHAUSTIVE = 2_000_000


def _validate(
    apps: Sequence[AppSpec], budget: float, cost_model: CostModel, fps_options: Sequence[float]
) -> tuple[float, ...]:
    if not apps:
        raise ValueError("`apps` must contain at least one AppSpec")
    names = [a.name for a in apps]
    if len(set(names)) != len(names):
        raise ValueError(f"app names must be unique; got {names}")
    for a in apps:
        if not isinstance(a, AppSpec):
            raise TypeError(f"`apps` must hold AppSpec objects; got {type(a).__name__}")
        bad = [k for k in a.depths if k > cost_model.n_layers]
        if bad:
            raise ValueError(
                f"app {a.name!r} has depths {bad} beyond the cost model's {cost_model.n_layers} "
                "layers"
            )
    check_range("budget", budget, 0.0)
    fps = tuple(sorted({float(f) for f in fps_options}))
    if not fps:
        raise ValueError("`fps_options` must be non-empty")
    for f in fps:
        check_range("fps_options", f, 0.0, cost_model.stream_fps, low_inclusive=False)
    return fps


def schedule(
    apps: Sequence[AppSpec],
    budget: float,
    cost_model: CostModel,
    *,
    fps_options: Sequence[float] = DEFAULT_FPS_OPTIONS,
    search: str = "greedy",
    objective: str = "mean_f1",
    hop_basis: str = "stream",
    legacy_ratio: bool = False,
    multi_start: bool = True,
) -> Schedule:
    """Choose a freeze depth and a frame rate for every app so that the cost fits the budget.

    Args:
        apps: the concurrent applications (unique names); each app's ``options`` are its
            allowed depths.
        budget: compute budget in the cost model's units (layer cost x fps).
        cost_model: per-layer costs and the stream rate.
        fps_options: allowed sampling rates (each in ``(0, stream_fps]``).
        search: ``"greedy"`` (paper's heuristic) or ``"exhaustive"`` (exact, small N).
        objective: ``"mean_f1"`` (paper default), ``"min_f1"`` (max-min fairness) or
            ``"mean_recall"`` (mean event recall, i.e. minimise false negatives, the reference's
            ``fnr`` metric). Greedy moves rank per-app gains of F1 (recall for
            ``"mean_recall"``), as the paper's heuristic does.
        hop_basis: event model, see :func:`~adaptlearn.mainstream.f1.event_miss_probability`.
        legacy_ratio: greedy only; use the reference code's ratio instead of marginal gain per
            marginal cost.
        multi_start: greedy only; besides the paper's single ascent from maximum sharing, also
            run the ascent with every app pinned to each common depth (which is exactly what the
            No-/Max-Sharing baselines compute) and return the best. The single ascent can end
            below a baseline when an early move spends the budget on one app; with restarts the
            result is never below a same-search baseline. ``False`` is the paper's heuristic.

    Returns:
        The :class:`Schedule`, with ``cost <= budget``.

    Raises:
        InfeasibleBudgetError: even the cheapest allowed schedule exceeds ``budget``.
        ValueError: bad arguments (empty or duplicate apps, unknown search, ...).
    """
    fps = _validate(apps, budget, cost_model, fps_options)
    check_choice("search", search, SEARCHES)
    check_choice("objective", objective, OBJECTIVES)
    check_choice("hop_basis", hop_basis, HOP_BASES)
    apps = list(apps)
    f1_of = _metric_table(apps, cost_model.stream_fps, hop_basis, "f1")
    # the per-app quantity the search maximises: event F1, or event recall (= 1 - FNR)
    score_of = (_metric_table(apps, cost_model.stream_fps, hop_basis, "recall")
                if objective == "mean_recall" else f1_of)
    # cheapest schedule: deepest depth everywhere, lowest rate
    min_cost = cost_model.cost([a.depths[-1] for a in apps], [fps[0]] * len(apps))
    if min_cost > budget + 1e-9:
        raise InfeasibleBudgetError(budget, min_cost)
    if search == "exhaustive":
        depths, rates = _exhaustive(apps, budget, cost_model, fps, score_of, objective)
    else:
        depths, rates = _greedy(apps, budget, cost_model, fps, score_of, legacy_ratio)
        if multi_start:
            best = _make(apps, depths, rates, budget, cost_model, f1_of, score_of, objective,
                         search)
            common = set.intersection(*(set(a.depths) for a in apps))
            for k in sorted(common):
                if cost_model.cost([k] * len(apps), [fps[0]] * len(apps)) > budget + 1e-9:
                    continue
                d, r = _greedy(apps, budget, cost_model, fps, score_of, legacy_ratio,
                               [(k,)] * len(apps))
                cand = _make(apps, d, r, budget, cost_model, f1_of, score_of, objective,
                             search)
                if cand.objective > best.objective + 1e-12:
                    best = cand
            return best
    return _make(apps, depths, rates, budget, cost_model, f1_of, score_of, objective, search)


def no_sharing(apps: Sequence[AppSpec], budget: float, cost_model: CostModel,
               **kwargs: object) -> Schedule:
    """Baseline: every app runs its own fully fine-tuned model (depth 0); only rates are chosen."""
    restricted = [a.restricted([a.depths[0]]) for a in apps]
    s = schedule(restricted, budget, cost_model, **kwargs)  # type: ignore[arg-type]
    return Schedule(s.configs, s.cost, s.budget, s.objective, "no_sharing")


def max_sharing(apps: Sequence[AppSpec], budget: float, cost_model: CostModel,
                **kwargs: object) -> Schedule:
    """Baseline: every app shares everything it can (deepest depth); only rates are chosen."""
    restricted = [a.restricted([a.depths[-1]]) for a in apps]
    s = schedule(restricted, budget, cost_model, **kwargs)  # type: ignore[arg-type]
    return Schedule(s.configs, s.cost, s.budget, s.objective, "max_sharing")


# --- internals ---------------------------------------------------------------------------------
def _metric_table(apps: list[AppSpec], stream_fps: float, hop_basis: str, metric: str) -> F1Table:
    @cache
    def table(i: int, k: int, f: float) -> float:
        a = apps[i]
        o = a.option(k)
        args = (o.recall, o.false_positive_rate, a.event_length_s, a.event_frequency,
                a.correlation, stream_fps, f)
        if metric == "recall":
            return event_precision_recall(*args, hop_basis=hop_basis)[1]
        return event_f1(*args, hop_basis=hop_basis)

    return table


def _objective(values: Sequence[float], objective: str) -> float:
    return float(np.min(values)) if objective == "min_f1" else float(np.mean(values))


def _make(
    apps: list[AppSpec], depths: Sequence[int], rates: Sequence[float], budget: float,
    cost_model: CostModel, f1_of: F1Table, score_of: F1Table, objective: str, method: str,
) -> Schedule:
    configs = tuple(
        AppConfig(a.name, int(k), float(f), f1_of(i, int(k), float(f)))
        for i, (a, k, f) in enumerate(zip(apps, depths, rates, strict=True))
    )
    cost = cost_model.cost(list(depths), list(rates))
    scores = [score_of(i, c.frozen_layers, c.fps) for i, c in enumerate(configs)]
    return Schedule(configs, cost, float(budget), _objective(scores, objective), method)


def _greedy(
    apps: list[AppSpec], budget: float, cost_model: CostModel, fps: tuple[float, ...],
    score_of: F1Table, legacy_ratio: bool, depth_sets: list[tuple[int, ...]] | None = None,
) -> tuple[list[int], list[float]]:
    """One greedy ascent; ``depth_sets[i]`` restricts app i's depths (default: all)."""
    n = len(apps)
    allowed = depth_sets or [a.depths for a in apps]
    depths = [d[-1] for d in allowed]
    rates = [fps[0]] * n
    current = cost_model.cost(depths, rates)
    moves = [(i, k, f) for i in range(n) for k in allowed[i] for f in fps]
    move_app = np.array([m[0] for m in moves])
    move_k = np.array([m[1] for m in moves])
    move_f = np.array([m[2] for m in moves], dtype=float)
    move_score = np.array([score_of(*m) for m in moves])
    own = np.array([cost_model.suffix_cost(k) * f for _, k, f in moves])
    rows = np.arange(len(moves))
    while True:
        cur_score = np.array([score_of(i, depths[i], rates[i]) for i in range(n)])
        gain = move_score - cur_score[move_app]
        cand = gain > 1e-12
        if not cand.any():
            return depths, rates
        d = np.tile(np.asarray(depths), (len(moves), 1))
        r = np.tile(np.asarray(rates, dtype=float), (len(moves), 1))
        d[rows, move_app], r[rows, move_app] = move_k, move_f
        new_cost = cost_model.cost_batch(d, r)
        cand &= new_cost <= budget + 1e-9
        if not cand.any():
            return depths, rates
        if legacy_ratio:
            # reference: smallest (1 - F1_new) / own suffix cost; a zero-cost option wins
            with np.errstate(divide="ignore"):
                score = np.where(own > 0, -(1.0 - move_score) / np.maximum(own, 1e-300), np.inf)
            tier = np.zeros(len(moves))
        else:
            delta = new_cost - current
            free = delta <= 1e-12
            # free (or cost-saving) improvements first, by gain; then gain per added cost
            tier = free.astype(float)
            score = np.where(free, gain, gain / np.where(free, 1.0, delta))
        order = np.lexsort((-score, -tier))
        best = next(int(j) for j in order if cand[j])
        i = int(move_app[best])
        depths[i], rates[i] = int(move_k[best]), float(move_f[best])
        current = float(new_cost[best])


def _exhaustive(
    apps: list[AppSpec], budget: float, cost_model: CostModel, fps: tuple[float, ...],
    score_of: F1Table, objective: str,
) -> tuple[list[int], list[float]]:
    per_app = [[(k, f) for k in a.depths for f in fps] for a in apps]
    total = int(np.prod([len(p) for p in per_app], dtype=float))
    if total > MAX_EXHAUSTIVE:
        raise ValueError(
            f"exhaustive search over {total:,} schedules exceeds {MAX_EXHAUSTIVE:,}; use "
            "search='greedy' or fewer apps/options"
        )
    f1s = [np.array([score_of(i, k, f) for k, f in opts]) for i, opts in enumerate(per_app)]
    idx = np.array(list(itertools.product(*(range(len(p)) for p in per_app))), dtype=np.int64)
    depths = np.stack([np.array([o[0] for o in p])[idx[:, i]] for i, p in enumerate(per_app)], 1)
    rates = np.stack([np.array([o[1] for o in p])[idx[:, i]] for i, p in enumerate(per_app)], 1)
    costs = cost_model.cost_batch(depths, rates)
    values = np.stack([f1s[i][idx[:, i]] for i in range(len(apps))], 1)
    obj = values.min(1) if objective == "min_f1" else values.mean(1)
    obj = np.where(costs <= budget + 1e-9, obj, -np.inf)
    # ties: prefer the cheaper schedule
    best = np.lexsort((costs, -obj))[0]
    return depths[best].tolist(), rates[best].tolist()
