"""Small statistics helpers for reports: mean and a seeded percentile-bootstrap CI."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bootstrap_ci", "summarize"]


def bootstrap_ci(
    values: Sequence[float], confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean; ``(nan, nan)`` for fewer than two finite values."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if x.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def summarize(values: Sequence[float]) -> dict[str, float | int | list[float]]:
    """Mean, std, 95% bootstrap CI, n and the values themselves."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    finite = x[np.isfinite(x)]
    lo, hi = bootstrap_ci(finite.tolist())
    return {
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
        "ci_low": lo,
        "ci_high": hi,
        "n": int(x.size),
        "values": [float(v) for v in x],
    }
