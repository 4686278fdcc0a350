"""The truncated fractional-differencing filter (1 - B)^d and its vectorized memory contraction.

References:
    J. Zhao, F. Huang, J. Lv, Y. Duan, Z. Qin, G. Li, G. Tian. "Do RNN and LSTM have Long
    Memory?" ICML 2020, arXiv:2006.03860.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "filter_mass",
    "fractional_weights",
    "fractional_weights_gamma",
    "memory_contract",
    "memory_weights",
]


def fractional_weights(
    d: Tensor | float, length: int, *, device: torch.device | str | None = None
) -> Tensor:
    """Weights ``w_1..w_K`` of the fractional differencing filter ``(1 - B)^d``, truncated at K.

    ``(1 - B)^d = sum_{j>=0} w_j B^j`` with ``w_0 = 1`` and ``w_j = w_{j-1} (j - 1 - d) / j``,
    i.e. ``w_j = Gamma(j - d) / (Gamma(-d) Gamma(j + 1))``; for ``0 < d < 1`` every ``w_j``
    (``j >= 1``) is negative and ``|w_j| ~ j^(-d-1) / |Gamma(-d)|`` decays polynomially.
    Computed by a cumulative product of the recursion's ratios, which is stable for any K and
    differentiable in ``d`` (autograd). ``w_0 = 1`` is not returned.

    Args:
        d: memory parameter, a float or a tensor of any shape ``S`` (typically in (0, 0.5)).
        length: truncation lag ``K >= 1``.
        device: where to put the result (default: ``d``'s device, the CPU for a float).

    Returns:
        Tensor of shape ``S + (K,)``; entry ``[..., j-1]`` is ``w_j(d)``.

    References:
        Zhao et al., "Do RNN and LSTM have Long Memory?", ICML 2020 (fractional filter, Sec. 4).
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"`length` of fractional_weights must be an int >= 1; got {length!r}")
    d = torch.as_tensor(d, device=device)
    if not d.is_floating_point():
        d = d.to(torch.get_default_dtype())
    j = torch.arange(1, length + 1, dtype=d.dtype, device=d.device)
    ratios = (j - 1 - d.unsqueeze(-1)) / j
    return torch.cumprod(ratios, dim=-1)


def weights_and_derivative(d: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """``w_j(d)`` and ``dw_j/dd`` for ``j = 1..K`` (shape ``S + (K,)``), finite at ``d = 0``.

    ``dw_j/dd = w_j/d - w_j sum_{i<j} 1/(i - d)`` where ``w_j/d = -prod_{i=2..j} (i-1-d)/i`` is
    formed without dividing by ``d``.
    """
    j = torch.arange(1, length + 1, dtype=d.dtype, device=d.device)
    ratios = (j - 1 - d.unsqueeze(-1)) / j
    ratios[..., 0] = -1.0
    w_over_d = torch.cumprod(ratios, dim=-1)
    w = w_over_d * d.unsqueeze(-1)
    inv = 1.0 / (j[:-1] - d.unsqueeze(-1))  # 1/(i - d), i = 1..K-1
    partial = torch.cat([inv.new_zeros(*inv.shape[:-1], 1), inv.cumsum(-1)], dim=-1)
    return w, w_over_d.sub_(w * partial)


class _MemoryWeights(torch.autograd.Function):
    """``fractional_weights`` for ``0 <= d < 1`` with the closed-form backward of
    :func:`weights_and_derivative` (faster than autograd's cumprod backward)."""

    @staticmethod
    def forward(ctx: Any, d: Tensor, length: int) -> Tensor:  # type: ignore[override]
        w = fractional_weights(d, length)
        ctx.save_for_backward(d)
        ctx.length = length
        return w

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (d,) = ctx.saved_tensors
        _, dw = weights_and_derivative(d, ctx.length)
        return (grad * dw).sum(-1), None


def memory_weights(d: Tensor, length: int) -> Tensor:
    """:func:`fractional_weights` for ``0 <= d < 1`` (the layers' range), with a faster backward."""
    return _MemoryWeights.apply(d, length)


def fractional_weights_gamma(d: float, length: int) -> list[float]:
    """Closed form ``w_j = Gamma(j - d) / (Gamma(-d) Gamma(j + 1))`` for ``j = 1..K`` (float64).

    A slow reference for tests; ``d`` must not be a non-negative integer.
    """

    def gamma_sign(x: float) -> float:
        return 1.0 if x > 0 else math.copysign(1.0, math.gamma(x))

    out = []
    for j in range(1, length + 1):
        sign = gamma_sign(-d) * gamma_sign(j - d)
        out.append(sign * math.exp(math.lgamma(j - d) - math.lgamma(-d) - math.lgamma(j + 1)))
    return out


def filter_mass(d: float, length: int) -> float:
    """``S_K(d) = sum_{j=1..K} |w_j(d)|``, the share of the past that the truncated filter keeps.

    For ``0 < d < 1`` it increases to 1 as ``K -> inf``; with the 0.5 cap on ``d`` it stays below
    ~0.944 at K=100, so MLSTM cannot latch a value indefinitely.
    """
    return float(
        fractional_weights(torch.tensor(float(d), dtype=torch.float64), length).abs().sum()
    )


class CellStore:
    """Preallocated history of one recurrent quantity, shared by the steps of a forward pass.

    Holds ``K`` history slots (``0..K-1``, oldest first) and one slot per step (``K..K+T-1``).
    They are laid out ``(B, H, K + T)`` in *reversed* time (slot ``s`` at position
    ``K + T - 1 - s``), so the window of the K values before a step is a strided view whose last
    dimension is contiguous and already in lag order 1..K, matching the weights ``w_1..w_K``:
    the contraction reads it in place, with nothing copied, flipped or saved per step. ``grad``
    collects, during backward, the gradient that later steps' contractions send to each slot;
    :class:`_Inject` hands it back to the autograd graph.
    """

    __slots__ = ("grad", "history_in_graph", "length", "size", "values")

    def __init__(self, batch: int, hidden: int, steps: int, length: int, like: Tensor) -> None:
        self.length = length
        self.size = length + steps
        self.values = like.new_zeros(batch, hidden, self.size)
        self.grad: Tensor | None = None
        self.history_in_graph = False

    def pos(self, slot: int) -> int:
        return self.size - 1 - slot

    def grad_slots(self) -> Tensor:
        if self.grad is None:
            self.grad = torch.zeros_like(self.values)
        return self.grad


class _InjectHistory(torch.autograd.Function):
    """Write the initial window ``(B, K, H)`` (oldest first) into slots ``0..K-1``; identity."""

    @staticmethod
    def forward(ctx: Any, history: Tensor, store: CellStore) -> Tensor:  # type: ignore[override]
        k = store.length
        store.values[:, :, store.size - k :] = history.detach().flip(1).transpose(1, 2)
        store.history_in_graph = history.requires_grad
        ctx.store = store
        return history.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        store: CellStore = ctx.store
        if store.grad is not None:
            k = store.length
            grad = grad + store.grad[:, :, store.size - k :].transpose(1, 2).flip(1)
        store.grad = None  # the last node of this pass to run backward: release the buffer
        return grad, None


class _Inject(torch.autograd.Function):
    """Write the new value ``(B, H)`` into ``slot``; backward adds what later steps sent it."""

    @staticmethod
    def forward(ctx: Any, value: Tensor, store: CellStore, slot: int) -> Tensor:  # type: ignore[override]
        store.values[:, :, store.pos(slot)] = value.detach()
        ctx.store, ctx.slot = store, slot
        return value.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        store: CellStore = ctx.store
        if store.grad is not None:
            grad = grad + store.grad[:, :, store.pos(ctx.slot)]
            if ctx.slot == store.length and not store.history_in_graph:
                store.grad = None  # last reader of this pass (the first step): release
        return grad, None, None


class _Contract(torch.autograd.Function):
    """``sum_{j=1..K} w_j * value_{t-j}`` over the store window whose lag-1 slot is ``newest``.

    ``latest`` (the value in slot ``newest``, an autograd input) makes every later contraction an
    ancestor of the earlier :class:`_Inject` nodes in the backward order, so ``store.grad`` is
    complete for a slot before that slot's inject node reads it.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, weights: Tensor, latest: Tensor, store: CellStore, newest: int
    ) -> Tensor:
        p = store.pos(newest)
        window = store.values[:, :, p : p + store.length]  # (B, H, K), lags 1..K
        ctx.store, ctx.newest, ctx.shared = store, newest, weights.dim() == 2
        ctx.save_for_backward(weights)
        return (window * weights).sum(-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor):  # type: ignore[override]
        (w,) = ctx.saved_tensors
        store: CellStore = ctx.store
        k, p = store.length, store.pos(ctx.newest)
        g = grad.unsqueeze(-1)  # (B, H, 1)
        gw = None
        if ctx.needs_input_grad[0]:
            gw = store.values[:, :, p : p + k] * g
            if ctx.shared:
                gw = gw.sum(0)
        glatest = grad * w[..., 0]
        if k > 1:
            store.grad_slots()[:, :, p + 1 : p + k].addcmul_(g, w[..., 1:])
        return gw, glatest, None, None


def memory_contract(weights: Tensor, latest: Tensor, store: CellStore, newest: int) -> Tensor:
    """Filter output ``sum_{j=1..K} w_j x_{t-j}`` from a :class:`CellStore` (autograd-aware).

    Args:
        weights: ``(H, K)`` shared or ``(B, H, K)`` per-sample filter weights, ``[..., j-1] = w_j``.
        latest: ``(B, H)`` the value in slot ``newest`` (lag 1), as returned by the inject step.
        store: the pass's store; slot ``newest`` must already be written.
        newest: slot index of lag 1.

    Returns:
        ``(B, H)``.
    """
    return _Contract.apply(weights, latest, store, newest)


def inject(value: Tensor, store: CellStore, slot: int) -> Tensor:
    """Write ``value`` ``(B, H)`` into ``slot`` of ``store``; use the result downstream."""
    return _Inject.apply(value, store, slot)


def inject_history(history: Tensor, store: CellStore) -> Tensor:
    """Write the initial window ``(B, K, H)`` (oldest first) into slots ``0..K-1``."""
    return _InjectHistory.apply(history, store)


def poly_weight_table(
    length: int,
    degree: int | None = 9,
    *,
    tol: float = 1e-12,
    device: torch.device | str | None = None,
) -> Tensor:
    """Coefficients ``M`` ``(degree+1, K)`` with ``w_j(d) ~= sum_r M[r, j-1] u^r``, ``u = 4d - 1``.

    Interpolation at ``degree + 1`` Chebyshev nodes of ``d`` in ``[0, 0.5]`` (float64). Degree 9
    reproduces every weight to ~1e-11 for K <= 100 (degree 7: ~3e-9). ``degree=None`` picks the
    smallest degree (4..20) whose filter error ``max_d sum_j |w_j(d) - poly_j(d)|`` (checked on
    a grid of 1001 values of d) is at most ``tol``; that sum bounds the error of the memory term
    per unit of cell magnitude. Computed in float64 on the CPU, returned on ``device``.
    """
    if device is not None:
        return poly_weight_table(length, degree, tol=tol).to(device)
    if degree is None:
        grid = torch.linspace(0.0, 0.5, 1001, dtype=torch.float64)
        exact = fractional_weights(grid, length)
        for deg in range(4, 21):
            table = poly_weight_table(length, deg)
            powers = (4 * grid - 1).unsqueeze(-1) ** torch.arange(deg + 1, dtype=torch.float64)
            if float((powers @ table - exact).abs().sum(-1).max()) <= tol:
                return table
        return table
    r = degree + 1
    u = torch.cos(torch.pi * (2 * torch.arange(r, dtype=torch.float64) + 1) / (2 * r))
    w = fractional_weights((u + 1) / 4, length)  # (R, K)
    vander = u.unsqueeze(-1) ** torch.arange(r, dtype=torch.float64)  # (R nodes, R powers)
    return torch.linalg.solve(vander, w)


class _PolyContract(torch.autograd.Function):
    """Dynamic-d contraction with polynomial-in-d weights: one GEMM per step, no weight table.

    ``out[b, h] = sum_r u[b, h]^r (window[b, h] @ M[r])``; backward is two GEMMs and a scatter
    into the store like :class:`_Contract`.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, u: Tensor, latest: Tensor, store: CellStore, newest: int, table: Tensor
    ) -> Tensor:
        b, h = u.shape
        p = store.pos(newest)
        window = store.values[:, :, p : p + store.length].reshape(b * h, store.length)
        proj = window @ table.t()  # (BH, R)
        powers = u.reshape(-1, 1) ** torch.arange(table.shape[0], dtype=u.dtype, device=u.device)
        ctx.store, ctx.newest = store, newest
        ctx.save_for_backward(u, proj, powers, table)
        return (proj * powers).sum(-1).view(b, h)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor):  # type: ignore[override]
        u, proj, powers, table = ctx.saved_tensors
        store: CellStore = ctx.store
        b, h = u.shape
        k, p = store.length, store.pos(ctx.newest)
        g = grad.reshape(-1, 1)
        r = torch.arange(table.shape[0], dtype=u.dtype, device=u.device)
        dpow = torch.zeros_like(powers)
        dpow[:, 1:] = powers[:, :-1] * r[1:]
        gu = (g * (proj * dpow).sum(-1, keepdim=True)).view(b, h)
        gwin = ((g * powers) @ table).view(b, h, k)  # (B, H, K), lags 1..K
        if k > 1:
            store.grad_slots()[:, :, p + 1 : p + k].add_(gwin[..., 1:])
        return gu, gwin[..., 0], None, None, None


def poly_memory_contract(
    d: Tensor, latest: Tensor, store: CellStore, newest: int, table: Tensor
) -> Tensor:
    """:func:`memory_contract` with weights from :func:`poly_weight_table` (d in [0, 0.5])."""
    return _PolyContract.apply(4 * d - 1, latest, store, newest, table)
