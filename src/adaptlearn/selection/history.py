"""A fixed-size FIFO of recent losses (the ``R``-long history of Selective-Backprop)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from adaptlearn.core import check_positive_int

__all__ = ["LossHistory"]


class LossHistory:
    """Ring buffer holding the most recent ``size`` losses.

    The buffer is a float32 numpy array (the selectors read it once per forward batch, and
    numpy's per-call cost is a fraction of torch's at ``R = 1024``); :meth:`values` and
    :meth:`state_dict` hand out torch tensors.

    Args:
        size: capacity ``R`` (the paper's history size, default 1024 in the reference code).

    Example:
        >>> h = LossHistory(3)
        >>> h.extend(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        >>> sorted(h.values().tolist())
        [2.0, 3.0, 4.0]
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = check_positive_int("size", size, owner="LossHistory")
        self._buffer = np.zeros(self.size, dtype=np.float32)
        self._count = 0  # total losses ever written
        self._next = 0  # slot the next loss goes to

    def __len__(self) -> int:
        return min(self._count, self.size)

    def extend(self, losses: Tensor | np.ndarray) -> None:
        """Append losses (shape ``[B]``, tensor or array), evicting the oldest when full."""
        if isinstance(losses, Tensor):
            losses = losses.detach().to(device="cpu", dtype=torch.float32).reshape(-1).numpy()
        values = np.asarray(losses, dtype=np.float32).reshape(-1)
        if values.size >= self.size:
            # Only the newest `size` survive; slot 0 then holds the oldest of them (FIFO order).
            self._buffer[:] = values[-self.size :]
            self._next = 0
            self._count += values.size
            return
        end = self._next + values.size
        if end <= self.size:
            self._buffer[self._next : end] = values
        else:
            first = self.size - self._next
            self._buffer[self._next :] = values[:first]
            self._buffer[: end - self.size] = values[first:]
        self._next = end % self.size
        self._count += values.size

    def values(self) -> Tensor:
        """The stored losses (only written slots), shape ``[len(self)]``, in no particular order."""
        return torch.from_numpy(self._buffer[: len(self)].copy())

    def filled(self) -> np.ndarray:
        """Read-only view of the written slots (no copy; changes with the next :meth:`extend`)."""
        view = self._buffer[: len(self)]
        view.flags.writeable = False
        return view

    def state_dict(self) -> dict[str, Any]:
        """Buffer, write position and count (loadable with ``torch.load(weights_only=True)``)."""
        return {"buffer": torch.from_numpy(self._buffer.copy()), "count": self._count,
                "next": self._next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the capacity must match."""
        buffer = state["buffer"]
        if buffer.numel() != self.size:
            raise ValueError(
                f"history size mismatch: state has {buffer.numel()}, expected {self.size}")
        self._buffer = buffer.detach().to(torch.float32).numpy().copy()
        self._count = int(state["count"])
        self._next = int(state["next"])

    def __repr__(self) -> str:
        return f"LossHistory(size={self.size}, filled={len(self)})"
