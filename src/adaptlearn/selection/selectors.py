"""Stateful selectors: Selective-Backprop, Stale-SB, AdaptSB and a random-subset control.

A selector decides, from per-example losses of a forward pass, which examples enter a backward
pass. It holds the state (loss history, generator, counters, per-example caches) and is
framework-free: use it through :func:`adaptlearn.selection.selective_batches` in a plain PyTorch
loop, through :class:`adaptlearn.selection.SelectiveBackpropAlgorithm` in an event-driven loop, or
call :meth:`SelectiveBackprop.select` yourself.

References:
    A. H. Jiang et al., "Accelerating Deep Learning by Focusing on the Biggest Losers",
    arXiv:1910.00762 (2019).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from adaptlearn.core import check_choice, check_int, check_positive_int, check_range
from adaptlearn.selection.functional import (
    _percentiles_np,
    bernoulli_select,
    expected_selection_rate,
    persistence_weights,
    random_selection_probabilities,
    rescale_to_mean,
)
from adaptlearn.selection.history import LossHistory

__all__ = ["AdaptSB", "RandomSubset", "SelectiveBackprop", "StaleSB"]


def _make_generator(generator: torch.Generator | None, seed: int | None) -> torch.Generator:
    if generator is not None and seed is not None:
        raise ValueError("pass either `generator` or `seed`, not both")
    if generator is not None:
        return generator
    gen = torch.Generator()
    gen.manual_seed(0 if seed is None else check_int("seed", seed, 0))
    return gen


class SelectiveBackprop:
    """Selective-Backprop: keep example ``i`` with probability ``max(p_min, CDF_H(L_i) ** beta)``.

    ``H`` is a FIFO of the last ``history_size`` per-example losses over all classes; each
    batch's losses are appended to ``H`` *before* their percentiles are computed (as in the
    reference code), and each example is kept by an independent Bernoulli draw. With i.i.d.
    continuous losses the expected selection rate is ``1 / (beta + 1)``. During the first
    ``prime_examples`` examples every example is selected (the reference "priming" epoch).

    Args:
        beta: selectivity ``beta >= 0``. Default: ``3.0`` (the paper's setting).
        history_size: ``R``, the number of recent losses the CDF is taken over. Default: ``1024``.
        p_min: probability floor. Default: ``0.0`` (the paper's code; see the method card).
        prime_examples: examples at the start that are all selected. Default: ``0``.
        generator: ``torch.Generator`` for the Bernoulli draws (mutually exclusive with ``seed``).
        seed: seed for a fresh generator. Default: ``0`` when neither is given.

    Example:
        >>> sb = SelectiveBackprop(beta=1.0, seed=0)
        >>> mask = sb.select(torch.rand(128))
        >>> mask.shape, mask.dtype
        (torch.Size([128]), torch.bool)

    References:
        A. H. Jiang et al., "Accelerating Deep Learning by Focusing on the Biggest Losers",
        arXiv:1910.00762 (2019).
    """

    #: Whether selection decisions depend on losses (``False``: no selection forward at all).
    uses_losses: bool = True
    #: Whether the selector caches per-example losses, so that only the examples flagged by
    #: :meth:`needs_forward` get a fresh forward (Stale-SB). Selectors that override
    #: ``needs_forward``/``cached_losses``/``record_losses`` must set it; with ``False`` the loop
    #: adapters forward every example and skip those hooks (one copy of the batch fewer).
    caches_losses: bool = False

    def __init__(
        self,
        beta: float = 3.0,
        history_size: int = 1024,
        *,
        p_min: float = 0.0,
        prime_examples: int = 0,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        name = type(self).__name__
        self.beta = check_range("beta", beta, 0.0, owner=name)
        self.history_size = check_positive_int("history_size", history_size, owner=name)
        self.p_min = check_range("p_min", p_min, 0.0, 1.0, owner=name)
        self.prime_examples = check_int("prime_examples", prime_examples, 0, owner=name)
        self.generator = _make_generator(generator, seed)
        self.history = LossHistory(self.history_size)
        self.examples_seen = 0
        self.examples_selected = 0

    # --- the rule ---------------------------------------------------------------------------
    @property
    def target_rate(self) -> float:
        """Expected selection rate after priming on i.i.d. losses: ``1 / (beta + 1)``."""
        return expected_selection_rate(self.beta)

    @property
    def priming(self) -> bool:
        """Whether the selector is still in its priming phase (everything is selected)."""
        return self.examples_seen < self.prime_examples

    @property
    def selection_rate(self) -> float:
        """Fraction of examples selected so far (priming included)."""
        return self.examples_selected / max(self.examples_seen, 1)

    def probabilities(
        self, losses: Tensor, *, indices: Tensor | None = None, targets: Tensor | None = None
    ) -> Tensor:
        """Append ``losses`` (shape ``[B]``) to the history, then return ``P`` (shape ``[B]``).

        ``indices`` and ``targets`` are unused here; subclasses use them.
        """
        del indices, targets
        pct = self._percentiles(losses)
        return torch.from_numpy(np.clip(pct**self.beta, self.p_min, 1.0))

    def _percentiles(self, losses: Tensor) -> np.ndarray:
        # Append this batch to H (self-inclusion, as in the reference), then CDF_H of each loss;
        # numpy because this runs once per forward batch (see functional._percentiles_np).
        values = losses.detach().to(device="cpu", dtype=torch.float32).reshape(-1).numpy()
        self.history.extend(values)
        return _percentiles_np(values, self.history.filled())

    def select(
        self, losses: Tensor, *, indices: Tensor | None = None, targets: Tensor | None = None
    ) -> Tensor:
        """Decide which examples of a forward batch are backpropagated.

        Args:
            losses: per-example losses, shape ``[B]`` (detached; any device).
            indices: dataset indices of the examples, shape ``[B]`` (needed by Stale-SB and
                by AdaptSB with ``group_by="index"``).
            targets: class labels, shape ``[B]`` (needed by AdaptSB with ``group_by="target"``).

        Returns:
            Boolean mask of shape ``[B]`` on the device of ``losses`` (the rule itself runs on
            the CPU with the selector's CPU generator, so decisions do not depend on the device).
        """
        n = int(losses.numel())
        if self.priming:
            mask = torch.ones(n, dtype=torch.bool, device=losses.device)
        else:
            probs = self.probabilities(losses, indices=indices, targets=targets)
            mask = bernoulli_select(probs.cpu(), generator=self.generator).to(losses.device)
        self.examples_seen += n
        self.examples_selected += int(mask.sum())
        return mask

    # --- hooks used by the loop adapters ----------------------------------------------------
    def needs_forward(self, indices: Tensor | None, n: int) -> Tensor:
        """Which of ``n`` drawn examples need a fresh selection forward (all, for plain SB).

        Returns a boolean mask of shape ``[n]``; also advances per-example staleness counters in
        :class:`StaleSB`.
        """
        del indices
        return torch.ones(n, dtype=torch.bool)

    def cached_losses(self, indices: Tensor | None, n: int) -> Tensor:
        """Losses to use for examples that get no fresh forward (NaN here), shape ``[n]``."""
        del indices
        return torch.full((n,), float("nan"))

    def record_losses(self, indices: Tensor | None, losses: Tensor, *, fresh: bool) -> None:
        """Remember per-example losses (fresh selection forward or training step). No-op here."""
        del indices, losses, fresh

    # --- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """History, generator state and counters (``torch.load(weights_only=True)``-safe)."""
        return {
            "history": self.history.state_dict(),
            "generator": self.generator.get_state(),
            "examples_seen": self.examples_seen,
            "examples_selected": self.examples_selected,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.history.load_state_dict(state["history"])
        self.generator.set_state(state["generator"])
        self.examples_seen = int(state["examples_seen"])
        self.examples_selected = int(state["examples_selected"])

    def _repr_fields(self) -> list[str]:
        return [f"beta={self.beta:g}", f"history_size={self.history_size}",
                f"p_min={self.p_min:g}", f"prime_examples={self.prime_examples}"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._repr_fields())})"


class RandomSubset(SelectiveBackprop):
    """Loss-agnostic control: keep each example with probability ``U ** beta``, ``U ~ U(0, 1)``.

    Same expected rate ``1 / (beta + 1)`` as Selective-Backprop. Unlike the reference ``random``
    calculator (which still paid SB's selection forward), it needs no forward pass:
    :attr:`uses_losses` is ``False``, so the loop adapters skip the selection forward.

    Args:
        beta: sets the rate ``1 / (beta + 1)``. Default: ``3.0``.
        prime_examples: examples at the start that are all selected. Default: ``0``.
        generator: ``torch.Generator`` for the draws (mutually exclusive with ``seed``).
        seed: seed for a fresh generator.
    """

    uses_losses = False

    def __init__(
        self,
        beta: float = 3.0,
        *,
        prime_examples: int = 0,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(beta, 1, prime_examples=prime_examples, generator=generator, seed=seed)

    def probabilities(
        self, losses: Tensor, *, indices: Tensor | None = None, targets: Tensor | None = None
    ) -> Tensor:
        """``U ** beta`` per example, shape ``[B]`` (``losses`` only gives the batch size)."""
        del indices, targets
        return random_selection_probabilities(losses.numel(), self.beta, generator=self.generator)

    def needs_forward(self, indices: Tensor | None, n: int) -> Tensor:
        """No example needs a forward pass."""
        del indices
        return torch.zeros(n, dtype=torch.bool)

    def _repr_fields(self) -> list[str]:
        return [f"beta={self.beta:g}", f"prime_examples={self.prime_examples}"]


class StaleSB(SelectiveBackprop):
    """Stale-SB: reuse an example's loss from an earlier pass for up to ``staleness - 1`` epochs.

    Per example the selector keeps ``(cached_loss, draws_since_refresh)``. Each time an example
    is drawn its counter increases; it gets a fresh selection forward only when it has no cached
    loss or the counter reached ``staleness`` (then the counter resets to 0). Otherwise the
    cached loss decides. A training step also refreshes the cached loss (not the counter). All
    losses used for a decision, stale or fresh, are appended to the history as in the reference.

    Unlike the reference ``CutoutForwardpropper`` (which forwarded the whole batch and then
    mis-assigned losses, saving no compute), only the refresh set is forwarded here, with the
    index alignment kept: the saving in selection forwards is real.

    Args:
        num_examples: size of the training set (indices must lie in ``[0, num_examples)``).
        beta: selectivity. Default: ``3.0``.
        history_size: ``R``. Default: ``1024``.
        staleness: ``n``, epochs between fresh forwards. Default: ``3`` (the paper's figure).
        p_min: probability floor. Default: ``0.0``.
        prime_examples: examples at the start that are all selected. Default: ``0``.
        generator: ``torch.Generator`` (mutually exclusive with ``seed``).
        seed: seed for a fresh generator.

    References:
        A. H. Jiang et al., arXiv:1910.00762 (2019), "Stale-SB (n=3)".
    """

    caches_losses = True

    def __init__(
        self,
        num_examples: int,
        beta: float = 3.0,
        history_size: int = 1024,
        *,
        staleness: int = 3,
        p_min: float = 0.0,
        prime_examples: int = 0,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(beta, history_size, p_min=p_min, prime_examples=prime_examples,
                         generator=generator, seed=seed)
        self.num_examples = check_positive_int("num_examples", num_examples, owner="StaleSB")
        self.staleness = check_positive_int("staleness", staleness, owner="StaleSB")
        # numpy arrays: these are read and written for every drawn batch and every training
        # step, and numpy's per-call cost is a fraction of torch's for [B]-sized gathers.
        self._loss_cache = np.full(self.num_examples, np.nan, dtype=np.float32)
        self._draws = np.zeros(self.num_examples, dtype=np.int64)
        self.fresh_forwards = 0

    @property
    def loss_cache(self) -> Tensor:
        """Cached loss per example (NaN before its first forward), shape ``[num_examples]``;
        a view, not a copy."""
        return torch.from_numpy(self._loss_cache)

    @property
    def draws_since_refresh(self) -> Tensor:
        """Draws of each example since its last fresh forward, shape ``[num_examples]`` (view)."""
        return torch.from_numpy(self._draws)

    def _check_indices(self, indices: Tensor | None) -> np.ndarray:
        if indices is None:
            raise ValueError("StaleSB needs dataset `indices` for every example (loader must "
                             "yield (inputs, targets, indices))")
        idx = indices.detach().reshape(-1).to(device="cpu", dtype=torch.int64).numpy()
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_examples):
            raise ValueError(f"`indices` must lie in [0, {self.num_examples}); got range "
                             f"[{int(idx.min())}, {int(idx.max())}]")
        return idx

    def needs_forward(self, indices: Tensor | None, n: int) -> Tensor:
        """Advance the counters of the drawn examples; return which need a fresh forward."""
        idx = self._check_indices(indices)
        self._draws[idx] += 1
        need = np.isnan(self._loss_cache[idx]) | (self._draws[idx] >= self.staleness)
        self.fresh_forwards += int(np.count_nonzero(need))
        return torch.from_numpy(need)

    def cached_losses(self, indices: Tensor | None, n: int) -> Tensor:
        """Cached (possibly stale) losses of the drawn examples, shape ``[n]`` (a copy)."""
        return torch.from_numpy(self._loss_cache[self._check_indices(indices)])

    def record_losses(self, indices: Tensor | None, losses: Tensor, *, fresh: bool) -> None:
        """Store losses; ``fresh=True`` (selection forward) also resets the staleness counters."""
        idx = self._check_indices(indices)
        self._loss_cache[idx] = losses.detach().to(device="cpu", dtype=torch.float32).reshape(
            -1).numpy()
        if fresh:
            self._draws[idx] = 0

    def state_dict(self) -> dict[str, Any]:
        """Base state plus the per-example loss cache and counters."""
        state = super().state_dict()
        state.update(loss_cache=torch.from_numpy(self._loss_cache.copy()),
                     draws_since_refresh=torch.from_numpy(self._draws.copy()),
                     fresh_forwards=self.fresh_forwards)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        super().load_state_dict(state)
        self._loss_cache = state["loss_cache"].to(torch.float32).numpy().copy()
        self._draws = state["draws_since_refresh"].to(torch.int64).numpy().copy()
        self.fresh_forwards = int(state["fresh_forwards"])

    def _repr_fields(self) -> list[str]:
        return [f"num_examples={self.num_examples}", *super()._repr_fields(),
                f"staleness={self.staleness}"]


class AdaptSB(SelectiveBackprop):
    """AdaptSB: Selective-Backprop with per-group priorities adapted during training.

    **Own design** (the thesis chapter describing AdaptSB was not available; see the method
    card). Each group ``g`` (a class, or a single example, or any id) keeps a *persistence*
    ``s_g``: an exponential moving average of the SB loss percentile of its examples. Groups
    that stay among the biggest losers however often they are trained on - the signature of
    mislabelled examples - get ``s_g`` near 1 and their priority ``w_g`` shrinks
    (:func:`~adaptlearn.selection.functional.persistence_weights`). The probability is
    ``P_i = max(p_min, c * w_{g_i} * CDF_H(L_i) ** beta)`` where ``c`` rescales each batch to the
    mean probability plain SB would use (``keep_budget=True``), so the backward budget is SB's.

    Args:
        num_groups: number of groups ``G`` (classes, or the dataset size for per-example groups).
        beta: selectivity. Default: ``3.0``.
        history_size: ``R``. Default: ``1024``.
        group_by: ``"index"`` (group = dataset index) or ``"target"`` (group = class label).
            Default: ``"index"``.
        persistence_momentum: EMA momentum of ``s_g`` per batch in which the group occurs.
            Default: ``0.5``.
        threshold: persistence above which a group is down-weighted. Default: ``0.6``.
        gamma: sharpness of the down-weighting. Default: ``2.0``.
        min_weight: floor of a group's weight. Default: ``0.05``.
        keep_budget: rescale to plain SB's per-batch mean probability. Default: ``True``.
        p_min: probability floor. Default: ``0.0``.
        prime_examples: examples at the start that are all selected. Default: ``0``.
        generator: ``torch.Generator`` (mutually exclusive with ``seed``).
        seed: seed for a fresh generator.

    References:
        A. H. Jiang et al., arXiv:1910.00762 (2019) for the SB rule this extends; AdaptSB is named
        after the AdaptSB chapter of A. H. Jiang's CMU PhD thesis, whose text we could not consult.
    """

    def __init__(
        self,
        num_groups: int,
        beta: float = 3.0,
        history_size: int = 1024,
        *,
        group_by: str = "index",
        persistence_momentum: float = 0.5,
        threshold: float = 0.6,
        gamma: float = 2.0,
        min_weight: float = 0.05,
        keep_budget: bool = True,
        p_min: float = 0.0,
        prime_examples: int = 0,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(beta, history_size, p_min=p_min, prime_examples=prime_examples,
                         generator=generator, seed=seed)
        self.num_groups = check_positive_int("num_groups", num_groups, owner="AdaptSB")
        self.group_by = check_choice("group_by", group_by, ("index", "target"), owner="AdaptSB")
        self.persistence_momentum = check_range(
            "persistence_momentum", persistence_momentum, 0.0, 1.0, high_inclusive=False,
            owner="AdaptSB")
        self.threshold = check_range("threshold", threshold, 0.0, 1.0, high_inclusive=False,
                                     owner="AdaptSB")
        self.gamma = check_range("gamma", gamma, 0.0, low_inclusive=False, owner="AdaptSB")
        self.min_weight = check_range("min_weight", min_weight, 0.0, 1.0, low_inclusive=False,
                                      owner="AdaptSB")
        self.keep_budget = bool(keep_budget)
        self.persistence = torch.zeros(self.num_groups)

    def _groups(self, indices: Tensor | None, targets: Tensor | None) -> Tensor:
        source = indices if self.group_by == "index" else targets
        if source is None:
            what = "indices" if self.group_by == "index" else "targets"
            raise ValueError(f"AdaptSB(group_by={self.group_by!r}) needs `{what}` in select()")
        groups = source.reshape(-1).long().cpu()
        if groups.numel() and (int(groups.min()) < 0 or int(groups.max()) >= self.num_groups):
            raise ValueError(f"group ids must lie in [0, {self.num_groups}); got range "
                             f"[{int(groups.min())}, {int(groups.max())}]")
        return groups

    def group_weights(self) -> Tensor:
        """Current priority ``w_g`` of every group, shape ``[G]``."""
        return persistence_weights(self.persistence, threshold=self.threshold, gamma=self.gamma,
                                   min_weight=self.min_weight)

    def probabilities(
        self, losses: Tensor, *, indices: Tensor | None = None, targets: Tensor | None = None
    ) -> Tensor:
        """Update group persistence with this batch, then return ``P`` (shape ``[B]``)."""
        groups = self._groups(indices, targets)
        pct = torch.from_numpy(self._percentiles(losses))
        # Mean percentile per group present in this batch, then one EMA step per group; work
        # only on the groups in the batch (O(B log B), not O(G) per batch).
        present, inverse = torch.unique(groups, return_inverse=True)
        sums = torch.zeros(present.numel()).index_add_(0, inverse, pct)
        counts = torch.bincount(inverse, minlength=present.numel()).to(pct.dtype)
        m = self.persistence_momentum
        self.persistence[present] = m * self.persistence[present] + (1 - m) * sums / counts
        base = torch.from_numpy(pct.numpy() ** self.beta)  # as in SelectiveBackprop
        weights = persistence_weights(self.persistence[groups], threshold=self.threshold,
                                      gamma=self.gamma, min_weight=self.min_weight)
        probs = weights * base
        if self.keep_budget:
            probs = rescale_to_mean(probs, float(base.mean()))
        return probs.clamp(min=self.p_min, max=1.0)

    def state_dict(self) -> dict[str, Any]:
        """Base state plus per-group persistence."""
        state = super().state_dict()
        state["persistence"] = self.persistence.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        super().load_state_dict(state)
        self.persistence = state["persistence"].clone()

    def _repr_fields(self) -> list[str]:
        return [f"num_groups={self.num_groups}", *super()._repr_fields(),
                f"group_by={self.group_by!r}", f"threshold={self.threshold:g}",
                f"gamma={self.gamma:g}", f"min_weight={self.min_weight:g}",
                f"persistence_momentum={self.persistence_momentum:g}"]
