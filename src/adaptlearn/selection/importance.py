"""Kath18: loss-based importance sampling with a variance-reduction switch (SB's baseline).

Katharopoulos & Fleuret's importance sampling, in the form the Selective-Backprop paper races
against ("Kath18"): score a *pool* of ``B = pool_factor * b`` uniformly drawn examples with a
selection forward, draw the ``b`` examples of the training batch from the pool **with
replacement** with probability proportional to their loss, and train on them without
re-weighting (the "biased" variant of the SB authors' port, used in their paper runs). Importance
sampling is only switched on while it pays: an exponential moving average ``tau`` of the
estimated variance reduction ``(1 - ||g - u||^2 / ||g||^2)^(-1/2)`` (``g`` the normalised
scores of the last scored examples, ``u`` uniform) must exceed
``tau_th = (B + 3b) / (3b)``, the break-even point when a backward costs two forwards. While it
is off, training is plain uniform SGD and the training step's own losses update ``tau``.

References:
    A. Katharopoulos, F. Fleuret, "Not All Samples Are Created Equal: Deep Learning with
    Importance Sampling", ICML 2018 (Algorithm 1).
    A. H. Jiang et al., "Accelerating Deep Learning by Focusing on the Biggest Losers",
    arXiv:1910.00762 (2019) (the loss-scored, un-reweighted variant they compare with).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from adaptlearn.core import check_positive_int, check_range
from adaptlearn.selection.events import Algorithm, Event, LoopState
from adaptlearn.selection.loop import LossFn, _split_batch, eval_mode_losses
from adaptlearn.selection.selectors import _make_generator

__all__ = ["Kath18ImportanceSampling", "variance_reduction"]


def variance_reduction(scores: Tensor) -> float:
    """Kath18's estimate of the gradient-variance reduction of sampling by ``scores``.

    With ``g = scores / sum(scores)`` and ``u = 1 / n``:
    ``(1 - ||g - u||^2 / ||g||^2)^(-1/2) = sqrt(n * sum(g^2))``, which is 1 for uniform scores
    and ``sqrt(n)`` when one example carries all the mass. Zero scores count as uniform.

    Args:
        scores: non-negative importance scores, shape ``[n]``, ``n >= 1``.
    """
    g = scores.detach().to(torch.float64).reshape(-1)
    total = float(g.sum())
    if g.numel() == 0 or total <= 0.0:
        return 1.0
    g = g / total
    return float((g.numel() * (g * g).sum()).sqrt())


class Kath18ImportanceSampling(Algorithm):
    """Kath18 importance sampling as a training-loop algorithm (events like SB's).

    While ``tau <= tau_threshold`` each loader batch trains as drawn (uniform SGD) and its
    training losses update ``tau``. Once ``tau > tau_threshold``, loader batches are pooled; when
    the pool holds ``pool_factor * batch_size`` examples they get one eval-mode selection
    forward, ``batch_size`` of them are drawn with replacement with probability proportional to
    their loss, and that batch is trained on (plain mean loss). The pool is carried across epochs
    (nothing is dropped at an epoch's end). With ``pool_factor = 4`` the backward rate while
    sampling is 1/4, Selective-Backprop's at ``beta = 3``.

    Args:
        batch_size: ``b``, the training batch size. Default: the first loader batch's size.
        pool_factor: ``B / b``, examples scored per training batch (``>= 1``). Default 4 (the
            SB authors' port hard-codes ``B = 512`` at ``b = 128``).
        tau_threshold: switch-on threshold (``>= 1``). Default ``(B + 3b) / (3b)``.
        tau_momentum: EMA momentum of ``tau`` in ``[0, 1)``. Default 0.9.
        generator: ``torch.Generator`` for the draws (mutually exclusive with ``seed``).
        seed: seed of a fresh generator. Default 0 when neither is given.

    In a plain loop, call :meth:`push` per loader batch and :meth:`record_train_losses` after
    each training step::

        for x, y in loader:
            for xb, yb in kath.push((x, y), model, loss_fn):
                losses = loss_fn(model(xb), yb)
                kath.record_train_losses(losses)
                optimizer.zero_grad()
                losses.mean().backward()
                optimizer.step()

    Example:
        >>> alg = Kath18ImportanceSampling(batch_size=128, seed=0)
        >>> alg.tau_threshold
        2.3333333333333335
    """

    _EVENTS = frozenset({Event.FIT_START, Event.AFTER_DATALOADER, Event.AFTER_LOSS})

    def __init__(
        self,
        batch_size: int | None = None,
        *,
        pool_factor: int = 4,
        tau_threshold: float | None = None,
        tau_momentum: float = 0.9,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        name = type(self).__name__
        self.batch_size = (None if batch_size is None
                           else check_positive_int("batch_size", batch_size, owner=name))
        self.pool_factor = check_positive_int("pool_factor", pool_factor, owner=name)
        default_th = (self.pool_factor + 3.0) / 3.0
        self.tau_threshold = (default_th if tau_threshold is None
                              else check_range("tau_threshold", tau_threshold, 1.0, owner=name))
        self.tau_momentum = check_range("tau_momentum", tau_momentum, 0.0, 1.0,
                                        high_inclusive=False, owner=name)
        self.generator = _make_generator(generator, seed)
        self.tau = 0.0
        self.examples_seen = 0
        self.selection_forwards = 0
        """Examples scored by a selection forward."""
        self.sampled_batches = 0
        """Training batches drawn by importance (the rest were uniform)."""
        self._pool: list[tuple[Tensor, ...]] = []
        self._pooled = 0
        self._uniform_in_flight = False
        self._modules: list[nn.Module] | None = None

    @property
    def sampling(self) -> bool:
        """Whether importance sampling is switched on (``tau > tau_threshold``)."""
        return self.tau > self.tau_threshold

    def _update_tau(self, scores: Tensor) -> None:
        a = self.tau_momentum
        self.tau = a * self.tau + (1.0 - a) * variance_reduction(scores)

    def match(self, event: Event, state: LoopState | None) -> bool:
        """Runs on FIT_START, AFTER_DATALOADER and AFTER_LOSS."""
        del state
        return event in self._EVENTS

    def apply(self, event: Event, state: LoopState) -> None:
        """Pass batches through or pool, score and sample them; update ``tau``."""
        if event == Event.FIT_START or self._modules is None:
            self._modules = list(state.model.modules())
        if event == Event.AFTER_DATALOADER:
            assert state.batch is not None
            state.batches = self.push(state.batch, state.model, state.loss_fn)
        elif event == Event.AFTER_LOSS and state.losses is not None:
            self.record_train_losses(state.losses)

    def record_train_losses(self, losses: Tensor) -> None:
        """Feed back the per-example losses of the training step just taken (plain loops).

        Only a uniform (pass-through) batch updates ``tau``: its training losses are the scores
        of a uniform draw. After an importance-sampled batch this is a no-op (``tau`` was
        updated from the pool's scores).
        """
        if self._uniform_in_flight:
            self._uniform_in_flight = False
            self._update_tau(losses.detach().to("cpu", torch.float32).clamp(min=0.0))

    def push(self, batch: tuple[Tensor, ...], model: nn.Module,
             loss_fn: LossFn) -> list[tuple[Tensor, ...]]:
        """Handle one loader batch; return the training batches to run now (0 or 1)."""
        inputs, _, _ = _split_batch(batch)
        n = int(inputs.shape[0])
        if self.batch_size is None:
            self.batch_size = n
        self.examples_seen += n
        if not self.sampling and not self._pool:
            self._uniform_in_flight = True
            return [tuple(batch)]
        self._pool.append(tuple(batch))
        self._pooled += n
        if self._pooled < self.pool_factor * self.batch_size:
            return []
        return [self._sample_pool(model, loss_fn)]

    def _sample_pool(self, model: nn.Module, loss_fn: LossFn) -> tuple[Tensor, ...]:
        pool = (self._pool[0] if len(self._pool) == 1
                else tuple(torch.cat(cols) for cols in zip(*self._pool, strict=True)))
        self._pool, self._pooled = [], 0
        if self._modules is None:
            self._modules = list(model.modules())
        inputs, targets, _ = _split_batch(pool)
        scores = eval_mode_losses(model, self._modules, loss_fn, inputs, targets).clamp(min=0.0)
        self.selection_forwards += int(scores.numel())
        self._update_tau(scores)
        assert self.batch_size is not None
        total = float(scores.sum())
        weights = scores if total > 0.0 else torch.ones_like(scores)
        take = torch.multinomial(weights, self.batch_size, replacement=True,
                                 generator=self.generator)
        self.sampled_batches += 1
        return tuple(col[take.to(col.device)] for col in pool)

    def state_dict(self) -> dict[str, Any]:
        """``tau``, counters, generator state and the pooled examples (between epochs)."""
        return {
            "tau": self.tau, "examples_seen": self.examples_seen,
            "selection_forwards": self.selection_forwards,
            "sampled_batches": self.sampled_batches, "generator": self.generator.get_state(),
            "pool": [list(b) for b in self._pool], "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.tau = float(state["tau"])
        self.examples_seen = int(state["examples_seen"])
        self.selection_forwards = int(state["selection_forwards"])
        self.sampled_batches = int(state["sampled_batches"])
        self.generator.set_state(state["generator"])
        self._pool = [tuple(b) for b in state["pool"]]
        self._pooled = sum(int(b[0].shape[0]) for b in self._pool)
        if state.get("batch_size") is not None:
            self.batch_size = int(state["batch_size"])

    def __repr__(self) -> str:
        return (f"Kath18ImportanceSampling(batch_size={self.batch_size}, "
                f"pool_factor={self.pool_factor}, tau_threshold={self.tau_threshold:.4g}, "
                f"tau_momentum={self.tau_momentum:g}, tau={self.tau:.3f})")
