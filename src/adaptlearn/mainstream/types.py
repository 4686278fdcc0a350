"""Frozen value types of Mainstream: profiles, applications, per-app choices and schedules.

Mainstream (Jiang et al., USENIX ATC 2018) runs N video-analytics applications on one stream. Each
application is a classifier fine-tuned from one shared base model with its first ``k`` layers
frozen; applications that freeze the same prefix can share ("stem-share") its computation.

References:
    A. H. Jiang, D. L.-K. Wong, C. Canel, L. Tang, I. Misra, M. Kaminsky, M. A. Kozuch,
    P. Pillai, D. G. Andersen, G. R. Ganger. "Mainstream: Dynamic Stem-Sharing for Multi-Tenant
    Video Processing." USENIX ATC 2018.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from adaptlearn.core.validation import check_int, check_probability, check_range

__all__ = [
    "REPAIRS",
    "AppConfig",
    "AppSpec",
    "InfeasibleBudgetError",
    "NonMonotoneProfileError",
    "Schedule",
    "StemOption",
    "drop_dominated",
    "make_monotone",
]

#: How ``AppSpec(strict=False)`` treats a profile whose recall rises with depth.
REPAIRS = ("reference", "drop_dominated", "none")


class InfeasibleBudgetError(ValueError):
    """No schedule of the allowed options fits the compute budget.

    Attributes:
        min_cost: cost of the cheapest allowed schedule (same units as the budget).
        budget: the budget that was asked for.
    """

    def __init__(self, budget: float, min_cost: float, what: str = "schedule") -> None:
        self.budget = float(budget)
        self.min_cost = float(min_cost)
        super().__init__(
            f"`budget` {budget:g} is too small for any {what}: the cheapest allowed schedule "
            f"costs {min_cost:g}; raise the budget, allow lower frame rates or more sharing"
        )


class NonMonotoneProfileError(ValueError):
    """A profile's per-frame recall rises with more frozen layers (use :func:`make_monotone`)."""


@dataclass(frozen=True)
class StemOption:
    """One point of an application's accuracy profile: its per-frame quality at freeze depth k.

    Attributes:
        frozen_layers: k, the number of leading layers of the base model that are frozen (and
            therefore shareable). ``0`` means the whole model is fine-tuned (no sharing).
        recall: a(k), per-frame probability that a frame inside an event is scored positive.
        false_positive_rate: q(k), per-frame probability that a frame outside any event is scored
            positive.
    """

    frozen_layers: int
    recall: float
    false_positive_rate: float

    def __post_init__(self) -> None:
        check_int("frozen_layers", self.frozen_layers, 0, owner="StemOption")
        check_probability("recall", self.recall, owner="StemOption")
        check_probability("false_positive_rate", self.false_positive_rate, owner="StemOption")


def make_monotone(options: tuple[StemOption, ...] | list[StemOption]) -> tuple[StemOption, ...]:
    """The reference code's fix for noisy profiles: recall never increases with depth.

    Scanning from the deepest freeze depth downwards, ``a(k) = max(a(k), a(k+1))`` (as
    ``src/util/mpackage.py`` of ``angelajiang/mainstream`` does). False-positive rates are kept,
    so a repaired point pairs one classifier's recall with another's false-positive rate: a
    classifier that was never measured (raw (0.00, 0.00) can become (1.00, 0.00)). Use
    :func:`drop_dominated` to repair without inventing options.
    """
    opts = sorted(options, key=lambda o: o.frozen_layers)
    out: list[StemOption] = []
    best = 0.0
    for o in reversed(opts):
        best = max(best, o.recall)
        out.append(StemOption(o.frozen_layers, best, o.false_positive_rate))
    return tuple(reversed(out))


def drop_dominated(options: tuple[StemOption, ...] | list[StemOption]) -> tuple[StemOption, ...]:
    """Drop every option that a deeper (cheaper to share) option dominates; invent nothing.

    Option ``k`` is dominated when some depth ``k' > k`` has ``a(k') >= a(k)`` and
    ``q(k') <= q(k)``: the deeper classifier is at least as good at every frame rate (event F1
    rises with a and falls with q) and never costs more. The kept options are measured points,
    sorted by depth; the deepest option is always kept. Recall may still rise with depth among
    the kept options (when the deeper classifier also raises q).
    """
    opts = sorted(options, key=lambda o: o.frozen_layers)
    kept = [
        o for i, o in enumerate(opts)
        if not any(d.recall >= o.recall and d.false_positive_rate <= o.false_positive_rate
                   for d in opts[i + 1:])
    ]
    return tuple(kept)


@dataclass(frozen=True)
class AppSpec:
    """A concurrent application: its accuracy profile and the events it detects.

    Attributes:
        name: unique name of the application.
        options: the profile, one :class:`StemOption` per allowed freeze depth, sorted by depth
            with distinct depths; recall must not increase with depth (see ``strict``).
        event_length_s: T, duration of one event in seconds.
        event_frequency: rho, fraction of event-length segments of the stream that are events.
        correlation: c in [0, 1], how strongly a per-frame miss persists to the next sampled
            frame of the same event: ``P(miss | previous miss) = (1 - a) + a * c``.
        strict: if True (default), a profile whose recall rises with depth raises
            :class:`NonMonotoneProfileError`; if False it is treated as ``repair`` says.
        repair: with ``strict=False``, ``"reference"`` (default) applies the reference code's
            :func:`make_monotone` to a non-monotone profile (it can pair one classifier's recall
            with another's false-positive rate), ``"drop_dominated"`` applies
            :func:`drop_dominated` to every profile and keeps the rest as measured, ``"none"``
            keeps every option as measured.

    Raises:
        ValueError: on an empty profile, duplicate depths or out-of-range values.
        NonMonotoneProfileError: recall increases with depth and ``strict`` is True.
    """

    name: str
    options: tuple[StemOption, ...]
    event_length_s: float = 0.5
    event_frequency: float = 0.3
    correlation: float = 0.107
    strict: bool = field(default=True, repr=False, compare=False)
    repair: str = field(default="reference", repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.repair not in REPAIRS:
            raise ValueError(f"`repair` of AppSpec must be one of {REPAIRS}; got {self.repair!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` of AppSpec must be a non-empty str; got {self.name!r}")
        opts = tuple(self.options)
        if not opts or not all(isinstance(o, StemOption) for o in opts):
            raise ValueError(
                f"`options` of AppSpec {self.name!r} must be a non-empty sequence of StemOption"
            )
        depths = [o.frozen_layers for o in opts]
        if len(set(depths)) != len(depths):
            raise ValueError(f"`options` of AppSpec {self.name!r} has duplicate depths {depths}")
        opts = tuple(sorted(opts, key=lambda o: o.frozen_layers))
        if not self.strict and self.repair == "drop_dominated":
            opts = drop_dominated(opts)
        for shallow, deep in itertools.pairwise(opts):
            if deep.recall > shallow.recall + 1e-12:
                if not self.strict and self.repair != "reference":
                    break  # kept as measured
                if self.strict:
                    raise NonMonotoneProfileError(
                        f"profile of app {self.name!r} is not monotone: recall "
                        f"{deep.recall:.4g} at depth {deep.frozen_layers} exceeds "
                        f"{shallow.recall:.4g} at depth {shallow.frozen_layers}; pass "
                        "strict=False (or make_monotone) to apply the reference repair"
                    )
                opts = make_monotone(opts)
                break
        object.__setattr__(self, "options", opts)
        check_range("event_length_s", self.event_length_s, 0.0, low_inclusive=False,
                    owner="AppSpec")
        check_range("event_frequency", self.event_frequency, 0.0, 1.0, low_inclusive=False,
                    owner="AppSpec")
        check_probability("correlation", self.correlation, owner="AppSpec")

    @property
    def depths(self) -> tuple[int, ...]:
        """Allowed freeze depths, ascending."""
        return tuple(o.frozen_layers for o in self.options)

    def option(self, frozen_layers: int) -> StemOption:
        """The profile point at ``frozen_layers``; KeyError naming the allowed depths."""
        for o in self.options:
            if o.frozen_layers == frozen_layers:
                return o
        raise KeyError(
            f"app {self.name!r} has no profile at depth {frozen_layers}; allowed: {self.depths}"
        )

    def restricted(self, depths: tuple[int, ...] | list[int]) -> AppSpec:
        """The same app with only the given depths allowed (for No-/Max-Sharing baselines)."""
        keep = tuple(self.option(d) for d in depths)
        return AppSpec(self.name, keep, self.event_length_s, self.event_frequency,
                       self.correlation, strict=False, repair="none")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "name": self.name,
            "options": [[o.frozen_layers, o.recall, o.false_positive_rate] for o in self.options],
            "event_length_s": self.event_length_s,
            "event_frequency": self.event_frequency,
            "correlation": self.correlation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, strict: bool = True) -> AppSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["name"],
            tuple(StemOption(int(k), float(a), float(q)) for k, a, q in data["options"]),
            float(data["event_length_s"]),
            float(data["event_frequency"]),
            float(data["correlation"]),
            strict=strict,
        )


@dataclass(frozen=True)
class AppConfig:
    """What the scheduler chose for one application.

    Attributes:
        app: application name.
        frozen_layers: chosen freeze depth k (the app shares layers ``[0, k)``).
        fps: chosen sampling rate f in frames per second (``<=`` the stream rate).
        f1: predicted event F1 of the app under this choice.
    """

    app: str
    frozen_layers: int
    fps: float
    f1: float


@dataclass(frozen=True)
class Schedule:
    """A complete schedule: one :class:`AppConfig` per application, its cost and objective.

    Attributes:
        configs: per-app choices, in the order the apps were given.
        cost: compute cost of the schedule (units of the cost model's layer costs x fps).
        budget: the budget it was computed for.
        objective: value of the objective (mean or min event F1).
        method: ``"greedy"``, ``"exhaustive"`` or a baseline name.
    """

    configs: tuple[AppConfig, ...]
    cost: float
    budget: float
    objective: float
    method: str = "greedy"

    @property
    def mean_f1(self) -> float:
        """Mean predicted event F1 over applications."""
        return sum(c.f1 for c in self.configs) / len(self.configs) if self.configs else 0.0

    @property
    def min_f1(self) -> float:
        """Smallest predicted event F1 over applications."""
        return min((c.f1 for c in self.configs), default=0.0)

    def __getitem__(self, app: str) -> AppConfig:
        for c in self.configs:
            if c.app == app:
                return c
        raise KeyError(f"unknown app {app!r}; schedule has {[c.app for c in self.configs]}")

    def __repr__(self) -> str:
        apps = ", ".join(f"{c.app}:k={c.frozen_layers}@{c.fps:g}fps" for c in self.configs)
        return (f"Schedule({self.method}, objective={self.objective:.4f}, "
                f"cost={self.cost:.4g}/{self.budget:.4g}, [{apps}])")
