"""A fixed-size FIFO of recent losses (the ``R``-long history of Selective-Backprop)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from adaptlearn.core import check_positive_int

__all__ = ["LossHistory"]


class LossHistory:
    """Ring buffer holding the most recent ``size`` losses.

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
        self._buffer = torch.zeros(self.size, dtype=torch.float32)
        self._count = 0  # total losses ever written
        self._next = 0  # slot the next loss goes to

    def __len__(self) -> int:
        return min(self._count, self.size)

    def extend(self, losses: Tensor) -> None:
        """Append losses (shape ``[B]``), evicting the oldest when full."""
        values = losses.detach().reshape(-1).to(device="cpu", dtype=torch.float32)
        if values.numel() >= self.size:
            # Only the newest `size` survive; slot 0 then holds the oldest of them (FIFO order).
            self._buffer = values[-self.size :].clone()
            self._next = 0
            self._count += values.numel()
            return
        end = self._next + values.numel()
        if end <= self.size:
            self._buffer[self._next : end] = values
        else:
            first = self.size - self._next
            self._buffer[self._next :] = values[:first]
            self._buffer[: end - self.size] = values[first:]
        self._next = end % self.size
        self._count += values.numel()

    def values(self) -> Tensor:
        """The stored losses (only written slots), shape ``[len(self)]``, in no particular order."""
        return self._buffer[: len(self)].clone()

    def state_dict(self) -> dict[str, Any]:
        """Buffer, write position and count (loadable with ``torch.load(weights_only=True)``)."""
        return {"buffer": self._buffer.clone(), "count": self._count, "next": self._next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the capacity must match."""
        buffer = state["buffer"]
        if buffer.numel() != self.size:
            raise ValueError(
                f"history size mismatch: state has {buffer.numel()}, expected {self.size}")
        self._buffer = buffer.clone().to(torch.float32)
        self._count = int(state["count"])
        self._next = int(state["next"])

    def __repr__(self) -> str:
        return f"LossHistory(size={self.size}, filled={len(self)})"
