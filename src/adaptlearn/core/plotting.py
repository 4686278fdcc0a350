"""One look for every figure: Agg backend, mean +- std bands over seeds, atomic PNG writes."""

from __future__ import annotations

import io
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["new_figure", "plot_curves", "save_figure"]


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 5.0, height: float = 3.6) -> Any:
    """A matplotlib figure and axes with the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    return fig, axes if nrows * ncols > 1 else axes[0, 0]


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Save ``fig`` as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    from adaptlearn.core.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_curves(
    ax: Any,
    rows: Iterable[Mapping[str, Any]],
    x: str,
    y: str,
    *,
    by: str = "method",
    logy: bool = False,
    title: str | None = None,
) -> None:
    """Plot ``y`` against ``x`` for each value of ``by``: mean over seeds with a +-1 std band."""
    groups: dict[Any, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.get(y) is None or row.get(x) is None:
            continue
        groups[row[by]][float(row[x])].append(float(row[y]))
    for label in sorted(groups, key=str):
        xs = np.array(sorted(groups[label]))
        vals = [np.asarray(groups[label][v]) for v in xs]
        mean = np.array([v.mean() for v in vals])
        std = np.array([v.std() for v in vals])
        (line,) = ax.plot(xs, mean, label=str(label))
        if any(len(v) > 1 for v in vals):
            ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if groups:
        ax.legend(fontsize="small")
