"""Progress bars: tqdm on stderr, silent when stderr is not a terminal or when disabled."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = ["progress", "set_progress_enabled"]

T = TypeVar("T")
_ENABLED = True


def set_progress_enabled(enabled: bool) -> None:
    """Turn all progress bars of this process on (TTY only) or off (``--quiet``)."""
    global _ENABLED
    _ENABLED = enabled


def progress(
    iterable: Iterable[T] | None = None,
    *,
    desc: str | None = None,
    total: int | None = None,
    leave: bool = True,
    **kwargs: Any,
) -> Any:
    """Wrap ``iterable`` in a tqdm bar on stderr (``disable=None``: off when not a TTY)."""
    from tqdm.auto import tqdm

    if not _ENABLED:
        kwargs["disable"] = True
    kwargs.setdefault("disable", None)
    return tqdm(iterable, desc=desc, total=total, leave=leave, file=sys.stderr, **kwargs)
