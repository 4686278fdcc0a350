"""A small event-firing trainer: enough loop to run SB-style algorithms and time them.

It reads top to bottom: draw a batch, fire ``AFTER_DATALOADER``, train on ``state.batches``
(forward, per-example loss, ``AFTER_LOSS``, mean, backward, step), and at ``EPOCH_END`` train on
what the algorithms flush. CPU and wall seconds of the loop are accumulated, except the time spent
in the ``on_step`` callback (use it for evaluation that must not count as training time). The
model is put in train mode at the start of every epoch and after every callback, not per step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from adaptlearn.selection.events import Algorithm, Event, LoopState
from adaptlearn.selection.loop import LossFn, batch_to_device, check_loss_fn, model_device

__all__ = ["Trainer", "TrainerCounters"]


@dataclass
class TrainerCounters:
    """Totals since the trainer was created."""

    epochs: int = 0
    steps: int = 0
    examples_seen: int = 0
    """Examples drawn from the loader (the x-axis the LR schedule is keyed on)."""
    backprop_examples: int = 0
    """Examples that went through a training forward + backward."""
    cpu_s: float = 0.0
    """Process CPU seconds of the training loop (callbacks excluded)."""
    wall_s: float = 0.0
    """Wall-clock seconds of the training loop (callbacks excluded)."""


class Trainer:
    """Minimal supervised trainer that fires composer-style events.

    Args:
        model: the network.
        optimizer: a ``torch.optim.Optimizer`` over ``model``'s parameters.
        loss_fn: per-example loss ``(outputs [B, ...], targets [B]) -> [B]``
            (``reduction="none"``); the step minimises its mean.
        algorithms: algorithms run on the events they match, in order.
        lr_at: optional ``lr_at(examples_seen) -> float``, applied before every step (the paper
            keys the schedule on examples *seen*, so SB and traditional follow one LR curve).
        device: where loader batches are moved (inputs and targets; dataset indices stay on the
            CPU) before the algorithms see them. Default: the model's device at each epoch's start.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        *,
        algorithms: Sequence[Algorithm] = (),
        lr_at: Callable[[int], float] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        check_loss_fn(loss_fn)
        self.device = None if device is None else torch.device(device)
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.algorithms = list(algorithms)
        self.lr_at = lr_at
        self.state = LoopState(model=model, loss_fn=loss_fn, optimizer=optimizer)
        self.counters = TrainerCounters()
        self._started = False
        self._live: tuple[float, float] | None = None
        self._next_callback: int | None = None  # examples seen at the next on_step call

    def _fire(self, event: Event) -> None:
        for alg in self.algorithms:
            if alg.match(event, self.state):
                alg.apply(event, self.state)

    def _train_step(self, batch: tuple[Tensor, ...]) -> None:
        inputs, targets = batch[0], batch[1]
        if self.lr_at is not None:
            lr = self.lr_at(self.counters.examples_seen)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        losses = self.loss_fn(self.model(inputs), targets)
        self.state.train_batch = batch
        self.state.losses = losses.detach()
        self._fire(Event.AFTER_LOSS)
        self.optimizer.zero_grad(set_to_none=True)
        losses.mean().backward()
        self.optimizer.step()
        self.counters.steps += 1
        self.counters.backprop_examples += int(inputs.shape[0])

    def fit_epoch(
        self,
        loader: Iterable[Any],
        *,
        on_step: Callable[[Trainer], None] | None = None,
        callback_every: int = 1,
    ) -> TrainerCounters:
        """Run one epoch over ``loader``; return the running counters.

        Args:
            loader: yields ``(inputs, targets)`` or ``(inputs, targets, indices)``.
            on_step: called outside the timed region after the first training step at or after
                every ``callback_every`` examples seen (e.g. to evaluate).
            callback_every: examples seen between ``on_step`` calls.
        """
        if callback_every < 1:
            raise ValueError(f"`callback_every` must be an int in [1, inf); got {callback_every!r}")
        if self._next_callback is None:
            self._next_callback = callback_every
        cpu0, wall0 = time.process_time(), time.perf_counter()
        paused_cpu = paused_wall = 0.0

        def callback() -> None:
            nonlocal paused_cpu, paused_wall
            assert self._next_callback is not None
            if on_step is None or self.counters.examples_seen < self._next_callback:
                return
            while self._next_callback <= self.counters.examples_seen:
                self._next_callback += callback_every
            c, w = time.process_time(), time.perf_counter()
            self._live = (self.counters.cpu_s + c - cpu0 - paused_cpu,
                          self.counters.wall_s + w - wall0 - paused_wall)
            on_step(self)
            self.model.train()  # the callback may have switched to eval mode
            paused_cpu += time.process_time() - c
            paused_wall += time.perf_counter() - w

        if not self._started:
            self._fire(Event.FIT_START)
            self._started = True
        self.state.epoch = self.counters.epochs
        # Train mode once per epoch (and after callbacks), not per step: model.train() walks
        # the module tree, a noticeable cost next to a small network's step. Selection forwards
        # restore the flags they change.
        self.model.train()
        self._fire(Event.EPOCH_START)
        device = self.device if self.device is not None else model_device(self.model)
        for batch in loader:
            self.state.batch = batch_to_device(batch, device)
            self.state.batches = [self.state.batch]
            self._fire(Event.AFTER_DATALOADER)
            self.counters.examples_seen += int(batch[0].shape[0])
            for train_batch in self.state.batches:
                self._train_step(train_batch)
                callback()
        self.state.batches = []
        self._fire(Event.EPOCH_END)
        for train_batch in self.state.batches:
            self._train_step(train_batch)
            callback()
        self.state.batches = []
        self.counters.epochs += 1
        self.counters.cpu_s += time.process_time() - cpu0 - paused_cpu
        self.counters.wall_s += time.perf_counter() - wall0 - paused_wall
        self._live = None
        return self.counters

    @property
    def elapsed(self) -> tuple[float, float]:
        """Training-loop ``(cpu_s, wall_s)`` so far; inside ``on_step``, up to that step."""
        if self._live is not None:
            return self._live
        return self.counters.cpu_s, self.counters.wall_s

    def finish(self) -> None:
        """Fire ``FIT_END``."""
        self._fire(Event.FIT_END)

    def __repr__(self) -> str:
        algs = ", ".join(repr(a) for a in self.algorithms) or "none"
        return f"Trainer(model={type(self.model).__name__}, algorithms=[{algs}])"
