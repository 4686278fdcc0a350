"""Composer-style events and the Selective-Backprop algorithm that hooks them.

A training loop fires :class:`Event` values in order and lets each :class:`Algorithm` whose
:meth:`~Algorithm.match` is true :meth:`~Algorithm.apply` itself to a mutable
:class:`LoopState`. Event names follow mosaicml/composer (``composer/core/event.py``). The
per-batch protocol is: the loop sets ``state.batch`` and ``state.batches = [state.batch]``, fires
``AFTER_DATALOADER`` (an algorithm may replace ``state.batches`` by zero or more batches), then
for each batch in ``state.batches`` sets ``state.train_batch``, computes per-example losses into
``state.losses``, fires ``AFTER_LOSS`` and steps. At ``EPOCH_END`` algorithms may put a final
list into ``state.batches``, which the loop trains on before ending the epoch.

:class:`SelectiveBackpropAlgorithm` runs on ``FIT_START``, ``AFTER_DATALOADER``, ``AFTER_LOSS``
and ``EPOCH_END``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from torch import Tensor, nn

from adaptlearn.selection.loop import LossFn, SelectionPipeline
from adaptlearn.selection.selectors import SelectiveBackprop

__all__ = ["Algorithm", "Event", "LoopState", "SelectiveBackpropAlgorithm"]


class Event(StrEnum):
    """Points of a training loop where algorithms run (composer's names)."""

    FIT_START = "fit_start"
    EPOCH_START = "epoch_start"
    AFTER_DATALOADER = "after_dataloader"
    AFTER_LOSS = "after_loss"
    EPOCH_END = "epoch_end"
    FIT_END = "fit_end"


@dataclass
class LoopState:
    """What algorithms may read and change.

    Attributes:
        model: the network.
        loss_fn: per-example loss ``(outputs, targets) -> [B]``.
        optimizer: the optimizer (may be ``None`` for inspection-only loops).
        epoch: current epoch (0-based).
        batch: the loader batch just drawn.
        batches: training batches to run for this loader batch (or at epoch end).
        train_batch: the training batch being processed.
        losses: per-example training losses of ``train_batch``, shape ``[B]``.
    """

    model: nn.Module
    loss_fn: LossFn
    optimizer: Any = None
    epoch: int = 0
    batch: tuple[Tensor, ...] | None = None
    batches: list[tuple[Tensor, ...]] = field(default_factory=list)
    train_batch: tuple[Tensor, ...] | None = None
    losses: Tensor | None = None


class Algorithm:
    """Base class: override :meth:`match` and :meth:`apply`."""

    def match(self, event: Event, state: LoopState) -> bool:
        """Whether to run on ``event``."""
        raise NotImplementedError

    def apply(self, event: Event, state: LoopState) -> None:
        """Act on ``state`` at ``event``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Resumable state (empty by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        del state


class SelectiveBackpropAlgorithm(Algorithm):
    """Selective-Backprop (or Stale-SB, AdaptSB, random subset) as a training-loop algorithm.

    Args:
        selector: the selection rule and its state.
        batch_size: size of training batches (default: the loader's batch size).

    Example:
        >>> alg = SelectiveBackpropAlgorithm(SelectiveBackprop(beta=3.0, seed=0))
        >>> alg.match(Event.AFTER_DATALOADER, None)
        True
    """

    _EVENTS = frozenset({Event.FIT_START, Event.AFTER_DATALOADER, Event.AFTER_LOSS,
                         Event.EPOCH_END})

    def __init__(self, selector: SelectiveBackprop, batch_size: int | None = None) -> None:
        self.selector = selector
        self.batch_size = batch_size
        self.pipeline: SelectionPipeline | None = None
        self._pending_queue: list[list[Tensor]] | None = None

    def match(self, event: Event, state: LoopState | None) -> bool:
        """Runs on FIT_START, AFTER_DATALOADER, AFTER_LOSS and EPOCH_END."""
        del state
        return event in self._EVENTS

    def apply(self, event: Event, state: LoopState) -> None:
        """Build the pipeline, select and queue, feed back losses, flush at epoch end."""
        if event == Event.FIT_START or self.pipeline is None:
            self.pipeline = SelectionPipeline(self.selector, state.model, state.loss_fn,
                                              self.batch_size)
            if self._pending_queue is not None:
                self.pipeline.load_queue_state(self._pending_queue)
                self._pending_queue = None
        if event == Event.AFTER_DATALOADER:
            assert state.batch is not None
            state.batches = self.pipeline.push(state.batch)
        elif event == Event.AFTER_LOSS:
            if state.train_batch is not None and state.losses is not None:
                self.pipeline.record_train_losses(state.train_batch, state.losses)
        elif event == Event.EPOCH_END:
            state.batches = self.pipeline.flush()

    def state_dict(self) -> dict[str, Any]:
        """The selector's state and the examples still queued (call between epochs)."""
        queue = self.pipeline.queue_state() if self.pipeline is not None else []
        return {"selector": self.selector.state_dict(), "queue": queue}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.selector.load_state_dict(state["selector"])
        queue = [list(part) for part in state.get("queue", [])]
        if self.pipeline is not None:
            self.pipeline.load_queue_state(queue)
        else:
            self._pending_queue = queue

    def __repr__(self) -> str:
        return f"SelectiveBackpropAlgorithm({self.selector!r})"
