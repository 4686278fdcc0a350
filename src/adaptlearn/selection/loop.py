"""Plain-PyTorch adapter: turn a loader's batches into backprop-ready batches.

The two-step structure of Selective-Backprop (reference ``MemoizedTrainer``): a *selection
forward* (``model.eval()``, ``torch.no_grad()``) scores every drawn example, selected examples
queue up, and as soon as ``batch_size`` are queued one training batch is released; the remainder
is released at the end of the epoch. Every training step therefore has the usual batch size; SB
takes fewer steps per epoch.

Use :func:`selective_batches` in your own loop::

    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    for epoch in range(epochs):
        for xb, yb in selective_batches(sb, loader, model, loss_fn):
            optimizer.zero_grad()
            loss_fn(model(xb), yb).mean().backward()
            optimizer.step()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from adaptlearn.core import check_positive_int
from adaptlearn.selection.selectors import SelectiveBackprop

__all__ = [
    "LossFn", "SelectionPipeline", "SelectionStats", "check_loss_fn", "eval_mode_losses",
    "selective_batches",
]

LossFn = Callable[[Tensor, Tensor], Tensor]
Batch = tuple[Tensor, ...]


def check_loss_fn(loss_fn: Any) -> None:
    """Reject a loss module that averages over the batch (SB needs one loss per example).

    Raises:
        ValueError: if ``loss_fn.reduction`` exists and is not ``"none"``.
    """
    reduction = getattr(loss_fn, "reduction", "none")
    if reduction != "none":
        raise ValueError(
            "Selective-Backprop needs per-example losses: construct the loss with "
            f"reduction='none' (got reduction={reduction!r})"
        )


def _split_batch(batch: Any) -> tuple[Tensor, Tensor, Tensor | None]:
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise ValueError("loader batches must be (inputs, targets) or (inputs, targets, indices); "
                         f"got {type(batch).__name__}")
    if len(batch) == 2:
        return batch[0], batch[1], None
    return batch[0], batch[1], batch[2]


def eval_mode_losses(model: nn.Module, modules: Sequence[nn.Module], loss_fn: LossFn,
                     inputs: Tensor, targets: Tensor) -> Tensor:
    """Per-example losses of a selection forward: eval mode, ``no_grad``, flags restored.

    ``modules`` is ``list(model.modules())``, read once by the caller: eval mode is set by
    flipping the ``training`` flags directly, because ``model.eval()``/``train()`` walk the
    module tree through ``nn.Module.__setattr__`` (~7 us per module), a sizeable fraction of a
    small network's forward. Returns a float32 CPU tensor of shape ``[B]``.

    Raises:
        ValueError: if ``loss_fn`` does not return one loss per example.
    """
    flags = [m.training for m in modules]
    for m in modules:
        object.__setattr__(m, "training", False)
    try:
        with torch.no_grad():
            losses = loss_fn(model(inputs), targets)
    finally:
        for m, flag in zip(modules, flags, strict=True):
            object.__setattr__(m, "training", flag)
    if losses.dim() != 1 or losses.shape[0] != inputs.shape[0]:
        raise ValueError(
            "loss_fn must return one loss per example, shape [B] (use reduction='none'); "
            f"got shape {tuple(losses.shape)} for a batch of {inputs.shape[0]}"
        )
    return losses.detach().to(device="cpu", dtype=torch.float32)


@dataclass
class SelectionStats:
    """Counters and wall seconds of the selection side of the loop."""

    examples_seen: int = 0
    selection_forwards: int = 0
    """Examples that got a selection forward pass."""
    examples_released: int = 0
    """Examples released for backpropagation."""
    selection_wall_s: float = 0.0


class SelectionPipeline:
    """Selection forward, Bernoulli selection and the backward queue, for one selector.

    Args:
        selector: a :class:`SelectiveBackprop` (or subclass).
        model: the network; put in eval mode for the selection forward, then restored.
        loss_fn: ``loss_fn(outputs, targets) -> [B]`` per-example losses.
        batch_size: size of released batches. Default: the size of the first loader batch.
    """

    def __init__(
        self,
        selector: SelectiveBackprop,
        model: nn.Module,
        loss_fn: LossFn,
        batch_size: int | None = None,
    ) -> None:
        check_loss_fn(loss_fn)
        self.selector = selector
        self.model = model
        self.loss_fn = loss_fn
        self.batch_size = None
        if batch_size is not None:
            self.batch_size = check_positive_int("batch_size", batch_size,
                                                 owner="SelectionPipeline")
        self.stats = SelectionStats()
        self._queue: list[Batch] = []
        self._queued = 0
        self._has_indices: bool | None = None
        self._modules: list[nn.Module] | None = None

    def _selection_losses(self, inputs: Tensor, targets: Tensor) -> Tensor:
        # The module list is read once; a model whose module tree changes later needs a new
        # pipeline.
        if self._modules is None:
            self._modules = list(self.model.modules())
        return eval_mode_losses(self.model, self._modules, self.loss_fn, inputs, targets)

    def push(self, batch: Sequence[Tensor]) -> list[Batch]:
        """Score and select one loader batch; return the training batches now ready (0 or more)."""
        inputs, targets, indices = _split_batch(batch)
        self._has_indices = indices is not None
        if self.batch_size is None:
            self.batch_size = int(inputs.shape[0])
        n = int(inputs.shape[0])
        # perf_counter only: process_time is a syscall that cost ~3 ms in some sandboxes.
        wall0 = time.perf_counter()
        sel = self.selector
        if sel.priming or not sel.uses_losses:
            # Priming selects everything and the random control ignores losses: no forward.
            mask = sel.select(torch.zeros(n), indices=indices, targets=targets)
        elif not sel.caches_losses:
            # Plain SB / AdaptSB: one selection forward over the whole drawn batch.
            losses = self._selection_losses(inputs, targets)
            self.stats.selection_forwards += n
            mask = sel.select(losses, indices=indices, targets=targets)
        else:
            need = sel.needs_forward(indices, n)
            if bool(need.all()):
                losses = self._selection_losses(inputs, targets)
                sel.record_losses(indices, losses, fresh=True)
                self.stats.selection_forwards += n
            else:
                losses = sel.cached_losses(indices, n)
                if bool(need.any()):
                    rows = need.nonzero().squeeze(1)
                    dev = inputs.device
                    fresh = self._selection_losses(inputs[rows.to(dev)], targets[rows.to(dev)])
                    losses[need] = fresh
                    sel.record_losses(
                        None if indices is None else indices[rows.to(indices.device)], fresh,
                        fresh=True)
                    self.stats.selection_forwards += int(rows.numel())
            mask = sel.select(losses, indices=indices, targets=targets)
        self.stats.examples_seen += n
        self.stats.selection_wall_s += time.perf_counter() - wall0
        if bool(mask.all()):
            self._queue.append(tuple(batch))
            self._queued += n
        elif bool(mask.any()):
            keep = mask.nonzero().squeeze(1).to(inputs.device)
            parts = [inputs[keep], targets[keep]]
            if indices is not None:
                parts.append(indices[keep.to(indices.device)])
            self._queue.append(tuple(parts))
            self._queued += int(keep.numel())
        return self._release(final=False)

    def flush(self, *, carry_single: bool = True) -> list[Batch]:
        """Release what is still queued (end of an epoch); returns 0 or 1 batches.

        With ``carry_single`` a single leftover example stays queued for the next epoch instead:
        BatchNorm cannot train on a batch of one (the reference code would crash there).
        """
        if carry_single and self._queued < 2:
            return []
        return self._release(final=True)

    def queue_state(self) -> list[list[Tensor]]:
        """The queued (selected, not yet released) examples, for checkpoints."""
        return [list(part) for part in self._queue]

    def load_queue_state(self, queue: list[list[Tensor]]) -> None:
        """Restore :meth:`queue_state` output."""
        self._queue = [tuple(part) for part in queue]
        self._queued = sum(int(part[0].shape[0]) for part in self._queue)

    def record_train_losses(self, batch: Sequence[Tensor], losses: Tensor) -> None:
        """Pass the training step's per-example losses back (Stale-SB refreshes its cache)."""
        _, _, indices = _split_batch(batch)
        if indices is not None:
            self.selector.record_losses(indices, losses.detach(), fresh=False)

    def _release(self, *, final: bool) -> list[Batch]:
        assert self.batch_size is not None or not self._queue
        out: list[Batch] = []
        size = self.batch_size or 1
        while self._queued >= size or (final and self._queued > 0):
            if len(self._queue) == 1:
                joined = self._queue[0]
            else:
                joined = tuple(torch.cat(cols) for cols in zip(*self._queue, strict=True))
            take = min(size, self._queued)
            if take == self._queued:
                out.append(joined)
                self._queued, self._queue = 0, []
                continue
            out.append(tuple(col[:take] for col in joined))
            self._queued -= take
            self._queue = [tuple(col[take:] for col in joined)]
        self.stats.examples_released += sum(int(b[0].shape[0]) for b in out)
        return out


def selective_batches(
    selector: SelectiveBackprop,
    loader: Iterable[Any],
    model: nn.Module,
    loss_fn: LossFn,
    *,
    batch_size: int | None = None,
    pipeline: SelectionPipeline | None = None,
) -> Iterator[Batch]:
    """Yield backprop-ready batches for one pass over ``loader`` (one epoch).

    Args:
        selector: the selection rule and its state (SB, Stale-SB, AdaptSB, random subset).
        loader: yields ``(inputs, targets)`` or ``(inputs, targets, indices)``; indices are
            required by :class:`StaleSB` and by per-example :class:`AdaptSB`.
        model: the network (selection forwards run in eval mode under ``no_grad``).
        loss_fn: per-example loss, e.g. ``nn.CrossEntropyLoss(reduction="none")``; a loss with
            another reduction raises ``ValueError``.
        batch_size: size of yielded batches (default: the loader's batch size).
        pipeline: reuse a :class:`SelectionPipeline` across epochs to keep its statistics (and
            to carry a single leftover example into the next epoch instead of releasing a
            batch of one, which BatchNorm rejects); recommended for multi-epoch training.

    Yields:
        Tuples like the loader's (same arity), with ``batch_size`` examples except possibly the
        last one of the epoch.
    """
    own = pipeline is None
    pipe = pipeline if pipeline is not None else SelectionPipeline(selector, model, loss_fn,
                                                                   batch_size)
    for batch in loader:
        yield from pipe.push(batch)
    # A pipeline of our own dies with this generator, so nothing may stay queued in it.
    yield from pipe.flush(carry_single=not own)
