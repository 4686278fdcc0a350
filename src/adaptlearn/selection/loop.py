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

Loader batches are moved to the model's device (or the ``device`` given) before the selection
forward, so yielded batches are ready for the training step. A batch of one cannot train a
BatchNorm model, so a lone selected example left at an epoch's end never forms a batch of its
own: :func:`selective_batches` merges it into the epoch's last batch (which then has
``batch_size + 1`` examples); a :class:`SelectionPipeline` kept across epochs
(:meth:`SelectionPipeline.epoch`, or the event-driven loop) carries it into the next epoch.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from adaptlearn.core import check_positive_int
from adaptlearn.selection.selectors import SelectiveBackprop

__all__ = [
    "LossFn", "SelectionPipeline", "SelectionStats", "batch_to_device", "check_loss_fn",
    "eval_mode_losses", "model_device", "selective_batches",
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


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a stateless model."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def batch_to_device(batch: Sequence[Tensor], device: torch.device) -> Batch:
    """Move a batch's inputs and targets to ``device`` (no copy when already there).

    A third column (dataset indices) stays where it is: it is CPU bookkeeping for the selectors.
    ``non_blocking`` copies overlap with compute when the loader's tensors are pinned.
    """
    _split_batch(batch)  # validates the arity
    moved = [col.to(device, non_blocking=True) if k < 2 else col for k, col in enumerate(batch)]
    return tuple(moved)


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

    Loader batches are moved to ``device`` first (inputs and targets; indices stay on the CPU),
    so the selection forward runs where the model lives and released batches are ready for the
    training step.

    Args:
        selector: a :class:`SelectiveBackprop` (or subclass).
        model: the network; put in eval mode for the selection forward, then restored.
        loss_fn: ``loss_fn(outputs, targets) -> [B]`` per-example losses.
        batch_size: size of released batches. Default: the size of the first loader batch.
        device: where batches go. Default: the device of ``model``'s parameters, read at each
            batch (so ``model.to(...)`` after building the pipeline is followed).

    Example:
        >>> pipe = SelectionPipeline(SelectiveBackprop(0.0, seed=0), nn.Linear(4, 3),  # keeps all
        ...                          nn.CrossEntropyLoss(reduction="none"), batch_size=8)
        >>> [b[0].shape[0] for b in pipe.push((torch.rand(20, 4), torch.zeros(20).long()))]
        [8, 8]
        >>> pipe.queued
        4
    """

    def __init__(
        self,
        selector: SelectiveBackprop,
        model: nn.Module,
        loss_fn: LossFn,
        batch_size: int | None = None,
        *,
        device: torch.device | str | None = None,
    ) -> None:
        check_loss_fn(loss_fn)
        if not isinstance(selector, SelectiveBackprop):
            raise TypeError("SelectionPipeline: `selector` must be a SelectiveBackprop (or "
                            f"subclass); got {type(selector).__name__}")
        self.selector = selector
        self.model = model
        self.loss_fn = loss_fn
        self.device = None if device is None else torch.device(device)
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
        batch = batch_to_device(
            batch, self.device if self.device is not None else model_device(self.model))
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

    @property
    def queued(self) -> int:
        """Selected examples waiting in the queue (not yet released)."""
        return self._queued

    def epoch(self, loader: Iterable[Any]) -> Iterator[Batch]:
        """Yield the backprop-ready batches of one pass over ``loader``.

        At the end a lone leftover example stays queued for the next epoch (see :meth:`flush`),
        so call this once per epoch on the same pipeline.
        """
        for batch in loader:
            yield from self.push(batch)
        yield from self.flush(carry_single=True)

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


def _join(first: Batch, second: Batch) -> Batch:
    return tuple(torch.cat((a, b.to(a.device))) for a, b in zip(first, second, strict=True))


def selective_batches(
    selector: SelectiveBackprop | None = None,
    loader: Iterable[Any] | None = None,
    model: nn.Module | None = None,
    loss_fn: LossFn | None = None,
    *,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    pipeline: SelectionPipeline | None = None,
) -> Iterator[Batch]:
    """Yield backprop-ready batches for one pass over ``loader`` (one epoch).

    Either ``selector``, ``model`` and ``loss_fn`` (a fresh :class:`SelectionPipeline` per
    call), or ``pipeline=`` (one pipeline reused across epochs, which keeps its statistics and
    its queue): ``selective_batches(sb, loader, model, loss_fn)`` or
    ``selective_batches(loader=loader, pipeline=pipe)``.

    A lone trailing example. With a fresh pipeline nothing can stay queued after the epoch, and
    a batch of one breaks BatchNorm in training mode, so a single selected example left at the
    end is **merged** into the epoch's last batch (``batch_size + 1`` examples). To make that
    possible, a released batch is held back while at most one example is queued behind it (it is
    yielded as soon as a second example is queued or the next batch is released; the selection
    forward of the next loader batch then runs before that batch's training step). If the whole
    epoch selected one example, there is no batch to merge with: it is dropped with a
    ``RuntimeWarning`` (pass ``pipeline=`` to carry it into the next epoch instead). With
    ``pipeline=`` the lone example is **carried** into the next epoch's first batch.

    Args:
        selector: the selection rule and its state (SB, Stale-SB, AdaptSB, random subset).
        loader: yields ``(inputs, targets)`` or ``(inputs, targets, indices)``; indices are
            required by :class:`StaleSB` and by per-example :class:`AdaptSB`.
        model: the network (selection forwards run in eval mode under ``no_grad``).
        loss_fn: per-example loss, e.g. ``nn.CrossEntropyLoss(reduction="none")``; a loss with
            another reduction raises ``ValueError``.
        batch_size: size of yielded batches (default: the loader's batch size).
        device: where yielded batches live (default: the model's device); indices stay put.
        pipeline: a :class:`SelectionPipeline` to reuse across epochs; it already holds the
            selector, model, loss, batch size and device, so passing any of those as well (other
            than the pipeline's own) raises ``ValueError``.

    Yields:
        Tuples like the loader's (same arity), with ``batch_size`` examples except possibly the
        last one of the epoch (fewer, or ``batch_size + 1`` after a merge; never one alone
        unless the loader's batch size is 1).

    Raises:
        ValueError: ``loader`` missing; ``pipeline`` given with arguments it would ignore; or
            (without ``pipeline``) ``selector``, ``model`` or ``loss_fn`` missing.
    """
    if loader is None:
        raise ValueError("selective_batches: `loader` is required")
    if pipeline is not None:
        same = {
            "selector": selector is pipeline.selector, "model": model is pipeline.model,
            "loss_fn": loss_fn is pipeline.loss_fn,
            "batch_size": batch_size == pipeline.batch_size,
            "device": device is not None and pipeline.device is not None
            and torch.device(device) == pipeline.device,
        }
        given = {"selector": selector, "model": model, "loss_fn": loss_fn,
                 "batch_size": batch_size, "device": device}
        ignored = [name for name, value in given.items() if value is not None and not same[name]]
        if ignored:
            raise ValueError(
                f"selective_batches: `pipeline` already holds its selector, model, loss_fn, "
                f"batch_size and device, so {', '.join(f'`{n}`' for n in ignored)} would be "
                "ignored; pass either `pipeline=` alone (selective_batches(loader=loader, "
                "pipeline=pipe)) or selector, model and loss_fn without it")
        return pipeline.epoch(loader)
    missing = [name for name, value in (("selector", selector), ("model", model),
                                        ("loss_fn", loss_fn)) if value is None]
    if missing:
        raise ValueError(f"selective_batches needs {', '.join(f'`{n}`' for n in missing)} "
                         "(or `pipeline=`)")
    assert selector is not None and model is not None and loss_fn is not None
    return _merged_epoch(SelectionPipeline(selector, model, loss_fn, batch_size, device=device),
                         loader)


def _merged_epoch(pipe: SelectionPipeline, loader: Iterable[Any]) -> Iterator[Batch]:
    # One epoch on a pipeline that dies with it: a lone leftover is merged (selective_batches).
    held: Batch | None = None  # last released batch, kept while a lone leftover is possible
    for batch in loader:
        for ready in pipe.push(batch):
            if held is not None:
                yield held
            held = ready
        if held is not None and pipe.queued >= 2:
            # Whatever is left at the end is now either >= 2 examples or follows a later
            # release, which becomes the merge target instead.
            yield held
            held = None
    tail = pipe.flush(carry_single=False)
    if tail and tail[0][0].shape[0] == 1 and pipe.batch_size != 1:
        if held is not None:
            yield _join(held, tail[0])
            return
        warnings.warn(
            "selective_batches: this epoch selected a single example and no other batch to "
            "merge it with; it is dropped (a batch of one breaks BatchNorm in training mode). "
            "Reuse one SelectionPipeline across epochs (pipeline=) to carry it instead.",
            RuntimeWarning, stacklevel=3)
        return
    if held is not None:
        yield held
    yield from tail
