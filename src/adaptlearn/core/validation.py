"""Argument validation with messages that name the argument, the allowed range and the value.

Messages follow one shape: ``"`beta3` of AdaMod must be a float in [0, 1); got 1.5"``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from numbers import Integral, Real
from typing import Any, TypeVar

__all__ = [
    "check_choice",
    "check_int",
    "check_positive_int",
    "check_probability",
    "check_range",
]

T = TypeVar("T")


def _subject(name: str, owner: str | None) -> str:
    return f"`{name}` of {owner}" if owner else f"`{name}`"


def check_range(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    owner: str | None = None,
    allow_inf: bool = False,
) -> float:
    """Check that ``value`` is a real number in the given interval and return it as float.

    Infinities are refused unless ``allow_inf`` (an unbounded side of the interval is shown as
    ``inf`` but is open: ``[0, inf)`` does not contain ``inf``).

    Raises:
        ValueError: naming ``name`` (and ``owner``), the interval and the value given.
    """
    left = "[" if low_inclusive and math.isfinite(low) else "("
    right = "]" if high_inclusive and math.isfinite(high) else ")"
    interval = f"{left}{_fmt(low)}, {_fmt(high)}{right}"
    message = f"{_subject(name, owner)} must be a float in {interval}; got {value!r}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(message)
    try:
        x = float(value)
    except OverflowError:  # an int too large for a float
        raise ValueError(message) from None
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise ValueError(message)
    below = x < low if low_inclusive else x <= low
    above = x > high if high_inclusive else x >= high
    if below or above:
        raise ValueError(message)
    return x


def check_int(
    name: str,
    value: Any,
    low: int | None = None,
    high: int | None = None,
    *,
    owner: str | None = None,
) -> int:
    """Check that ``value`` is an integer in ``[low, high]`` (either bound optional)."""
    lo = "-inf" if low is None else str(low)
    hi = "inf" if high is None else str(high)
    left = "(" if low is None else "["
    right = ")" if high is None else "]"
    message = f"{_subject(name, owner)} must be an int in {left}{lo}, {hi}{right}; got {value!r}"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(message)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(message)
    return int(value)


def check_positive_int(name: str, value: Any, *, owner: str | None = None) -> int:
    """Check that ``value`` is an integer >= 1."""
    return check_int(name, value, 1, None, owner=owner)


def check_probability(name: str, value: Any, *, owner: str | None = None) -> float:
    """Check that ``value`` is a float in [0, 1]."""
    return check_range(name, value, 0.0, 1.0, owner=owner)


def check_choice(name: str, value: T, choices: Collection[T], *, owner: str | None = None) -> T:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{_subject(name, owner)} must be one of {{{allowed}}}; got {value!r}")
    return value


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"
