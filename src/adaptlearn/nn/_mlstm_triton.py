"""Triton kernels for one time step of the fused MLSTM-F loops on CUDA (fixed d).

Each step of :mod:`adaptlearn.nn.mlstm_fused`'s loops is a recurrent GEMM (cuBLAS) followed by
a chain of ~8 (forward) and ~12 (backward) small element-wise ops: activations, the memory term
from the lags inside the current block, the cell update, and the copies into the hidden-major
mirror. Under CUDA-graph replay each of those ops is still one kernel of a few microseconds, so
at small batch and width (B=32, H=64) the chain, not arithmetic, sets the time. These kernels do
the chain in one launch per step: the forward step is then one GEMM + one kernel (+ one batched
GEMM per block of 16 steps), the backward step likewise.

Element ``(b, h)`` of a step is one lane; the in-block lags (at most 15) are a short loop. The
math is the torch path's, line for line (see ``_forward_loop`` / ``_backward_loop``); tests
compare the two on CUDA and, under ``TRITON_INTERPRET=1``, on the CPU.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

try:  # Triton ships with CUDA builds of torch; the CPU wheel has none.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - machines without Triton
    triton = None
    tl = None

__all__ = [
    "available",
    "fixed_backward_step",
    "fixed_forward_step",
    "poly_backward_step",
    "poly_forward_step",
]

_LANES = 256  # elements (b, h) per program
_POLY_LANES = 128  # MLSTM: each lane also holds an (R,) tile of projections
_MAX_LAG = 15  # lags inside a block of the loops: L - 1 (mlstm_fused._BLOCK = 16)
_MAX_ELEMENTS = 2**31 - 1  # offsets are int32 inside the kernels


def available(*tensors: Tensor) -> bool:
    """Whether the step kernels can run on ``tensors``: Triton present, float32, small enough."""
    if triton is None:
        return False
    return all(t.dtype == torch.float32 and t.numel() < _MAX_ELEMENTS for t in tensors)


if triton is not None:

    @triton.jit
    def _tanh(x):
        return 2.0 * tl.sigmoid(2.0 * x) - 1.0

    @triton.jit
    def _forward_step(
        acts,  # (T, B, 3H): pre-activations in, activations out (columns i, o, g)
        acts_off,  # t * B * 3H
        mem,  # (H, n, B): memory terms of the block from the cells before it
        mem_off,  # bi * B
        mem_stride_h,  # n * B
        cells,  # (K + T, B, H)
        cell_off,  # (K + t) * B * H: slot of c_t
        w_pad,  # (H, W): w_pad[h, j] = -w_j
        w_stride,
        tanh_c,  # (T, B, H)
        out,  # (T, B, H)
        step_off,  # t * B * H
        cells_t,  # (H, K + T, B): hidden-major mirror of cells
        ct_off,  # (K + t) * B
        ct_stride_h,  # (K + T) * B
        bi,  # lags inside the block: 0 .. L - 1
        n_batch,
        n_hidden,
        LANES: tl.constexpr,
        MAX_LAG: tl.constexpr,
    ):
        idx = tl.program_id(0) * LANES + tl.arange(0, LANES)
        mask = idx < n_batch * n_hidden
        b = idx // n_hidden
        h = idx % n_hidden
        row = acts + acts_off + b * (3 * n_hidden) + h
        i = tl.sigmoid(tl.load(row, mask=mask))
        o = tl.sigmoid(tl.load(row + n_hidden, mask=mask))
        g = _tanh(tl.load(row + 2 * n_hidden, mask=mask))
        tl.store(row, i, mask=mask)
        tl.store(row + n_hidden, o, mask=mask)
        tl.store(row + 2 * n_hidden, g, mask=mask)
        neg_mem = tl.load(mem + mem_off + h * mem_stride_h + b, mask=mask)
        for j in tl.static_range(1, MAX_LAG + 1):  # lags inside the block (j <= bi)
            lag_mask = mask & (j <= bi)
            w = tl.load(w_pad + h * w_stride + j, mask=lag_mask, other=0.0)
            c_old = tl.load(cells + cell_off - j * n_batch * n_hidden + idx, mask=lag_mask)
            neg_mem += w * tl.where(lag_mask, c_old, 0.0)
        c = neg_mem + i * g
        tc = _tanh(c)
        tl.store(cells + cell_off + idx, c, mask=mask)
        tl.store(tanh_c + step_off + idx, tc, mask=mask)
        tl.store(out + step_off + idx, o * tc, mask=mask)
        tl.store(cells_t + ct_off + h * ct_stride_h + b, c, mask=mask)

    @triton.jit
    def _backward_step(
        acts,  # (T, B, 3H) activations i, o, g
        acts_off,  # t * B * 3H
        tanh_c,  # (T, B, H)
        step_off,  # t * B * H
        d_cells,  # (K + T, B, H): dL/dc from the final state
        cell_off,  # (K + t) * B * H
        fut,  # (H, n, B): dL/dc_t from the steps after the block
        fut_off,  # bi * B
        fut_stride_h,  # n * B
        g_neg,  # (2K + T, B, H): dL/d(-mem) of later steps
        g_off,  # (K + t) * B * H
        w_pad,  # (H, W)
        w_stride,
        later,  # steps after t inside the block
        dh,  # (B, H): dL/dh_t
        d_z,  # (T, B, 3H) out: gate pre-activation gradients
        g_neg_t,  # (H, 2K + T, B): hidden-major mirror of g_neg
        gt_off,  # (K + t) * B
        gt_stride_h,  # (2K + T) * B
        n_batch,
        n_hidden,
        LANES: tl.constexpr,
        MAX_LAG: tl.constexpr,
    ):
        idx = tl.program_id(0) * LANES + tl.arange(0, LANES)
        mask = idx < n_batch * n_hidden
        b = idx // n_hidden
        h = idx % n_hidden
        dc = tl.load(d_cells + cell_off + idx, mask=mask)
        dc += tl.load(fut + fut_off + h * fut_stride_h + b, mask=mask)
        for j in tl.static_range(1, MAX_LAG + 1):  # later steps inside the block (j <= later)
            lag_mask = mask & (j <= later)
            w = tl.load(w_pad + h * w_stride + j, mask=lag_mask, other=0.0)
            g_later = tl.load(g_neg + g_off + j * n_batch * n_hidden + idx, mask=lag_mask)
            dc += w * tl.where(lag_mask, g_later, 0.0)
        row = acts + acts_off + b * (3 * n_hidden) + h
        i = tl.load(row, mask=mask)
        o = tl.load(row + n_hidden, mask=mask)
        g = tl.load(row + 2 * n_hidden, mask=mask)
        tc = tl.load(tanh_c + step_off + idx, mask=mask)
        d_h = tl.load(dh + idx, mask=mask)
        dc += d_h * o * (1.0 - tc * tc)
        dz_row = d_z + acts_off + b * (3 * n_hidden) + h
        tl.store(dz_row, dc * g * i * (1.0 - i), mask=mask)
        tl.store(dz_row + n_hidden, d_h * tc * o * (1.0 - o), mask=mask)
        tl.store(dz_row + 2 * n_hidden, dc * i * (1.0 - g * g), mask=mask)
        tl.store(d_cells + cell_off + idx, dc, mask=mask)
        tl.store(g_neg + g_off + idx, dc, mask=mask)
        tl.store(g_neg_t + gt_off + h * gt_stride_h + b, dc, mask=mask)

    @triton.jit
    def _powers(u, r_idx, LANES: tl.constexpr, R_PAD: tl.constexpr):
        """Tiles ``u^r`` and ``r u^(r-1)`` of shape (LANES, R_PAD)."""
        pw = tl.zeros((LANES, R_PAD), dtype=tl.float32)
        pw_d = tl.zeros((LANES, R_PAD), dtype=tl.float32)
        cur = tl.full((LANES,), 1.0, dtype=tl.float32)
        prev = tl.zeros((LANES,), dtype=tl.float32)
        for r in tl.static_range(R_PAD):
            sel = r_idx[None, :] == r
            pw = tl.where(sel, cur[:, None], pw)
            pw_d = tl.where(sel, (r * prev)[:, None], pw_d)
            prev = cur
            cur = cur * u
        return pw, pw_d

    @triton.jit
    def _poly_forward_step(
        acts,  # (T, B, 4H): columns i, o, u, g
        acts_off,  # t * B * 4H
        projs,  # (L, R, B*H): the block's projections of the cells before it
        proj_off,  # bi * R * B * H
        coef,  # (R, L + K): coef[r, L + K - j] multiplies the cell at lag j
        coef_stride,
        coef_col0,  # L + K
        cells,  # (K + T, B, H)
        cell_off,  # (K + t) * B * H
        mems,  # (T, 2, B*H) out: -mem_t and d(-mem_t)/du_t
        mems_off,  # t * 2 * B * H
        tanh_c,
        out,
        step_off,  # t * B * H
        bi,
        n_batch,
        n_hidden,
        n_poly,  # R
        LANES: tl.constexpr,
        MAX_LAG: tl.constexpr,
        R_PAD: tl.constexpr,
    ):
        idx = tl.program_id(0) * LANES + tl.arange(0, LANES)
        n_bh = n_batch * n_hidden
        mask = idx < n_bh
        b = idx // n_hidden
        h = idx % n_hidden
        row = acts + acts_off + b * (4 * n_hidden) + h
        i = tl.sigmoid(tl.load(row, mask=mask))
        o = tl.sigmoid(tl.load(row + n_hidden, mask=mask))
        u = _tanh(tl.load(row + 2 * n_hidden, mask=mask))
        g = _tanh(tl.load(row + 3 * n_hidden, mask=mask))
        tl.store(row, i, mask=mask)
        tl.store(row + n_hidden, o, mask=mask)
        tl.store(row + 2 * n_hidden, u, mask=mask)
        tl.store(row + 3 * n_hidden, g, mask=mask)
        r_idx = tl.arange(0, R_PAD)
        r_ok = r_idx < n_poly
        tile = mask[:, None] & r_ok[None, :]
        proj = tl.load(
            projs + proj_off + r_idx[None, :] * n_bh + idx[:, None], mask=tile, other=0.0
        )
        for j in tl.static_range(1, MAX_LAG + 1):  # lags inside the block (j <= bi)
            lag_mask = mask & (j <= bi)
            c_old = tl.load(cells + cell_off - j * n_bh + idx, mask=lag_mask, other=0.0)
            cf = tl.load(
                coef + r_idx * coef_stride + coef_col0 - j, mask=r_ok & (j <= bi), other=0.0
            )
            proj += c_old[:, None] * cf[None, :]
        pw, pw_d = _powers(u, r_idx, LANES, R_PAD)
        neg_mem = tl.sum(pw * proj, axis=1)
        tl.store(mems + mems_off + idx, neg_mem, mask=mask)
        tl.store(mems + mems_off + n_bh + idx, tl.sum(pw_d * proj, axis=1), mask=mask)
        c = neg_mem + i * g
        tc = _tanh(c)
        tl.store(cells + cell_off + idx, c, mask=mask)
        tl.store(tanh_c + step_off + idx, tc, mask=mask)
        tl.store(out + step_off + idx, o * tc, mask=mask)

    @triton.jit
    def _poly_backward_step(
        acts,  # (T, B, 4H) activations i, o, u, g
        acts_off,
        tanh_c,
        step_off,
        d_cells,  # (K + T, B, H): dL/dc, accumulated
        cell_off,
        coef,
        coef_stride,
        coef_col0,
        g_proj,  # (L, R, B*H) out: dL/dproj of the block's steps
        gp_off,  # bi * R * B * H
        mems,
        mems_off,
        dh,  # (B, H): dL/dh_t
        du,  # (B, H): dL/du_t from later steps
        d_z,  # (T, B, 4H) out
        bi,
        n_batch,
        n_hidden,
        n_poly,
        LANES: tl.constexpr,
        MAX_LAG: tl.constexpr,
        R_PAD: tl.constexpr,
    ):
        idx = tl.program_id(0) * LANES + tl.arange(0, LANES)
        n_bh = n_batch * n_hidden
        mask = idx < n_bh
        b = idx // n_hidden
        h = idx % n_hidden
        row = acts + acts_off + b * (4 * n_hidden) + h
        i = tl.load(row, mask=mask)
        o = tl.load(row + n_hidden, mask=mask)
        u = tl.load(row + 2 * n_hidden, mask=mask)
        g = tl.load(row + 3 * n_hidden, mask=mask)
        tc = tl.load(tanh_c + step_off + idx, mask=mask)
        d_h = tl.load(dh + idx, mask=mask)
        dc = tl.load(d_cells + cell_off + idx, mask=mask)
        dc += d_h * o * (1.0 - tc * tc)
        dz_row = d_z + acts_off + b * (4 * n_hidden) + h
        tl.store(dz_row, dc * g * i * (1.0 - i), mask=mask)
        tl.store(dz_row + n_hidden, d_h * tc * o * (1.0 - o), mask=mask)
        tl.store(dz_row + 3 * n_hidden, dc * i * (1.0 - g * g), mask=mask)
        tl.store(d_cells + cell_off + idx, dc, mask=mask)
        r_idx = tl.arange(0, R_PAD)
        r_ok = r_idx < n_poly
        pw, _ = _powers(u, r_idx, LANES, R_PAD)
        gp = pw * dc[:, None]
        tile = mask[:, None] & r_ok[None, :]
        tl.store(g_proj + gp_off + r_idx[None, :] * n_bh + idx[:, None], gp, mask=tile)
        for j in tl.static_range(1, MAX_LAG + 1):  # to the cells of this block's earlier steps
            lag_mask = mask & (j <= bi)
            cf = tl.load(
                coef + r_idx * coef_stride + coef_col0 - j, mask=r_ok & (j <= bi), other=0.0
            )
            add = tl.sum(gp * cf[None, :], axis=1)
            old = tl.load(d_cells + cell_off - j * n_bh + idx, mask=lag_mask, other=0.0)
            tl.store(d_cells + cell_off - j * n_bh + idx, old + add, mask=lag_mask)
        d_u = tl.load(du + idx, mask=mask)
        d_u += tl.load(mems + mems_off + n_bh + idx, mask=mask) * dc
        tl.store(dz_row + 2 * n_hidden, d_u * (1.0 - u * u), mask=mask)


def _guard(t: Tensor) -> contextlib.AbstractContextManager[None]:
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def fixed_forward_step(
    acts: Tensor,
    mem: Tensor,
    bi: int,
    cells: Tensor,
    w_pad: Tensor,
    tanh_c: Tensor,
    out: Tensor,
    cells_t: Tensor,
    t: int,
    k: int,
) -> None:
    """Step ``t`` of the MLSTM-F forward after ``acts[t] += h_{t-1} W_rec^T`` (see module doc).

    ``mem`` is the block's ``(H, n, B)`` product of the band with the K cells before the block
    (``bi = t % L`` selects this step's row); all other tensors are the loop's buffers.
    """
    _, batch, hidden = out.shape
    n = mem.shape[1]
    grid = (triton.cdiv(batch * hidden, _LANES),)
    with _guard(acts):
        _forward_step[grid](
            acts, t * batch * 3 * hidden,
            mem, bi * batch, n * batch,
            cells, (k + t) * batch * hidden,
            w_pad, w_pad.stride(0),
            tanh_c, out, t * batch * hidden,
            cells_t, (k + t) * batch, cells_t.shape[1] * batch,
            bi, batch, hidden,
            LANES=_LANES,
            MAX_LAG=_MAX_LAG,
        )  # fmt: skip


def fixed_backward_step(
    acts: Tensor,
    tanh_c: Tensor,
    d_cells: Tensor,
    fut: Tensor,
    bi: int,
    g_neg: Tensor,
    w_pad: Tensor,
    later: int,
    dh: Tensor,
    d_z: Tensor,
    g_neg_t: Tensor,
    t: int,
    k: int,
) -> None:
    """Step ``t`` of the MLSTM-F backward up to ``dz_t`` (the caller then forms ``dh_{t-1}``)."""
    _, batch, hidden = tanh_c.shape
    n = fut.shape[1]
    grid = (triton.cdiv(batch * hidden, _LANES),)
    with _guard(acts):
        _backward_step[grid](
            acts, t * batch * 3 * hidden,
            tanh_c, t * batch * hidden,
            d_cells, (k + t) * batch * hidden,
            fut, bi * batch, n * batch,
            g_neg, (k + t) * batch * hidden,
            w_pad, w_pad.stride(0), later,
            dh.contiguous(),
            d_z,
            g_neg_t, (k + t) * batch, g_neg_t.shape[1] * batch,
            batch, hidden,
            LANES=_LANES,
            MAX_LAG=_MAX_LAG,
        )  # fmt: skip


def poly_forward_step(
    acts: Tensor,
    projs: Tensor,
    bi: int,
    coef: Tensor,
    cells: Tensor,
    mems: Tensor,
    tanh_c: Tensor,
    out: Tensor,
    t: int,
    k: int,
) -> None:
    """Step ``t`` of the MLSTM (polynomial filter) forward after both recurrent GEMMs.

    ``projs`` ``(L, R, B*H)`` holds the block's projections of the K cells before it (row
    ``bi = t % L`` is this step's), ``coef`` is the loop's zero-padded ``(R, L + K)`` table.
    """
    _, batch, hidden = out.shape
    n_poly = coef.shape[0]
    grid = (triton.cdiv(batch * hidden, _POLY_LANES),)
    with _guard(acts):
        _poly_forward_step[grid](
            acts, t * batch * 4 * hidden,
            projs, bi * n_poly * batch * hidden,
            coef, coef.stride(0), coef.shape[1],
            cells, (k + t) * batch * hidden,
            mems, t * 2 * batch * hidden,
            tanh_c, out, t * batch * hidden,
            bi, batch, hidden, n_poly,
            LANES=_POLY_LANES,
            MAX_LAG=_MAX_LAG,
            R_PAD=triton.next_power_of_2(n_poly),
        )  # fmt: skip


def poly_backward_step(
    acts: Tensor,
    tanh_c: Tensor,
    d_cells: Tensor,
    coef: Tensor,
    g_proj: Tensor,
    bi: int,
    mems: Tensor,
    dh: Tensor,
    du: Tensor,
    d_z: Tensor,
    t: int,
    k: int,
) -> None:
    """Step ``t`` of the MLSTM (polynomial filter) backward: ``dz_t`` (u column included),
    ``dL/dproj`` of the step and the in-block lags' cell gradients; the caller then forms
    ``dL/du_{t-1}``, ``dL/dh_{t-1}`` and, at a block's first step, the block GEMM."""
    _, batch, hidden = tanh_c.shape
    n_poly = coef.shape[0]
    grid = (triton.cdiv(batch * hidden, _POLY_LANES),)
    with _guard(acts):
        _poly_backward_step[grid](
            acts, t * batch * 4 * hidden,
            tanh_c, t * batch * hidden,
            d_cells, (k + t) * batch * hidden,
            coef, coef.stride(0), coef.shape[1],
            g_proj, bi * n_poly * batch * hidden,
            mems, t * 2 * batch * hidden,
            dh.contiguous(), du.contiguous(), d_z,
            bi, batch, hidden, n_poly,
            LANES=_POLY_LANES,
            MAX_LAG=_MAX_LAG,
            R_PAD=triton.next_power_of_2(n_poly),
        )  # fmt: skip
