"""Fused MLSTM / MLSTM-F layer: the whole sequence is one autograd node, backward by hand.

The per-step autograd path (``memory_impl="store"``) records ~20 small nodes per time step; for a
small cell that bookkeeping, not arithmetic, dominates (a plain ``nn.LSTMCell`` Python loop is
already 2-3.5x ``nn.LSTM`` on CPU). Here the forward loop runs without autograd, keeps in
preallocated buffers only what the backward needs, and the backward loop is written out:

* Layout ``(B, H)`` per step as ``nn.LSTM``; the cell history is one ``(K + T, B, H)`` buffer in
  time order (slots ``0..K-1``: the initial window, slot ``K + t``: ``c_t``), so the K cells a
  step reads are a view, never a copy, and the input-weight and recurrent-weight gradients are
  one GEMM each after the loop.
* Blocks of ``L = 16`` steps: the memory terms that read cells from *before* a block are computed
  for all its steps by one GEMM at the block's start (backward: one GEMM at its end); only the
  lags inside the block (< L) are contracted per step.
* MLSTM-F (fixed d): per-unit weights, so the block GEMM is batched over hidden units
  ``(H, L, K) x (H, K, B)``; the weight gradient is assembled after the loop from
  ``(H, L', B) x (H, B, K + L' - 1)`` GEMMs whose diagonals hold the lag products.
* MLSTM (dynamic d), ``filter="poly"``: the weights are polynomials in ``u = 4 d - 1``
  (:func:`~adaptlearn.nn.filter.poly_weight_table`, degree chosen for the dtype), so every
  (b, h) pair shares one ``(R, K)`` table and the block GEMM is ``(L R, K) x (K, B H)``; the
  memory term is ``sum_r u^r proj_r``. The gate is computed as ``u = tanh(.)`` directly (the
  caller folds ``d = 0.5 sigmoid(.)`` into the weights), so one sigmoid covers ``i, o`` and one
  tanh covers ``u, g``.
* MLSTM, ``filter="exact"``: the ``(K, B, H)`` weight table of ``d_t`` each step (reference
  semantics; slower).

* On CUDA each loop (forward, backward) is captured once per input signature in a CUDA graph and
  replayed (:func:`set_cuda_graphs`), and MLSTM-F / the polynomial-filter MLSTM run each step's
  element-wise chain as one Triton kernel (:mod:`adaptlearn.nn._mlstm_triton`); a failure to
  build or capture falls back to the torch ops with a warning.

Double backward is not supported. Tests check outputs and every gradient against the per-step
autograd path and the per-lag reference loop.

References:
    J. Zhao, F. Huang, J. Lv, Y. Duan, Z. Qin, G. Li, G. Tian. "Do RNN and LSTM have Long
    Memory?" ICML 2020, arXiv:2006.03860.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from adaptlearn.nn import _mlstm_triton as _steps
from adaptlearn.nn.filter import fractional_weights, weights_and_derivative

__all__ = ["mlstm_sequence", "set_cuda_graphs"]

_GW_BLOCK = 50  # steps per GEMM when assembling the fixed-d weight gradient
_BLOCK = 16  # steps whose memory terms from older cells come from one GEMM
assert _steps._MAX_LAG == _BLOCK - 1, "the Triton step kernels unroll the in-block lags"


_sigmoid_bw = torch.ops.aten.sigmoid_backward.grad_input
_tanh_bw = torch.ops.aten.tanh_backward.grad_input


class _MLSTMSequence(torch.autograd.Function):
    """Forward and hand-written backward of one MLSTM / MLSTM-F layer over a whole sequence.

    Gate columns are ``i, o, g`` (MLSTM-F) or ``i, o, u, g`` (MLSTM), where ``u = 4 d - 1 =
    tanh(z_u)`` is the memory gate on the scale of the polynomial table (the caller folds the
    ``d = 0.5 sigmoid(.)`` parameterisation into the weights), so one sigmoid covers ``i, o`` and
    one tanh covers ``u, g``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        w_in: Tensor,
        b_in: Tensor | None,
        w_rec: Tensor,
        w_uu: Tensor | None,
        h0: Tensor,
        u0: Tensor | None,
        hist0: Tensor,
        weights: Tensor | None,
        table: Tensor | None,
        mode: str,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        inputs = (x, w_in, b_in, w_rec, w_uu, h0, u0, hist0, weights, table)
        res = _run(_forward_loop, (mode,), tuple(_detached(t) for t in inputs))
        out, h_last, u_last, cells_last, *buffers = res
        ctx.mode, ctx.k = mode, hist0.shape[1]
        ctx.buffers = tuple(buffers)
        # the backward reads h_{t-1} from `out`: saved, so in-place edits of it are caught
        ctx.save_for_backward(x, w_in, w_rec, w_uu, h0, u0, weights, out)
        if mode == "fixed":
            ctx.mark_non_differentiable(u_last)
        return out, h_last, u_last, cells_last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any, g_out: Tensor, g_h: Tensor, g_u: Tensor, g_cells: Tensor
    ) -> tuple[Tensor | None, ...]:
        needs = tuple(ctx.needs_input_grad)
        tensors = (g_out, g_h, g_u, g_cells, *ctx.saved_tensors, *ctx.buffers)
        grads = _run(_backward_loop, (ctx.mode, ctx.k, needs), tensors)
        return (*grads, None, None)


def _detached(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.detach()


# ---- CUDA graphs -----------------------------------------------------------------------------
# On CUDA the step loops issue ~10 (forward) and ~20 (backward) small kernels per time step; at
# T = 500 the launches, not the arithmetic, set the time. Each loop is therefore captured once
# per input signature in a CUDA graph and replayed: inputs are copied into the graph's static
# tensors, outputs cloned out of it (so results of earlier calls stay valid).

_GRAPH_CACHE_SIZE = 8  # signatures kept per process (each holds one call's buffers on the GPU)
_graphs_enabled = True


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[Tensor | None, ...]
    outputs: tuple[Tensor | None, ...]


_graphs: OrderedDict[tuple[Any, ...], _Graph] = OrderedDict()


def set_cuda_graphs(enabled: bool) -> None:
    """Turn CUDA-graph capture of the fused MLSTM loops on (the default) or off.

    With capture on, the first call per input signature (shapes, dtypes, device, mode) runs the
    loop once eagerly, captures it, and every later call replays the graph: same results, far
    fewer kernel launches. Each captured signature keeps one call's buffers on the GPU; at most
    eight are kept (least recently used dropped). Off frees them and runs eagerly.
    """
    global _graphs_enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
    _graphs_enabled = enabled
    if not enabled:
        _graphs.clear()


_STEP_KERNELS_ON_CPU = False  # tests only: run the Triton step kernels under TRITON_INTERPRET=1
_step_kernels_ok = True  # turned off for the process if a step kernel fails to build or run


def _use_step_kernels(*buffers: Tensor) -> bool:
    """Whether the loops use the Triton step kernels (MLSTM-F and polynomial-filter MLSTM): on
    CUDA with graph capture on (a Triton launch from Python costs more than the torch ops it
    replaces, so only replayed graphs gain), Triton present, float32 buffers, int32 offsets."""
    on = (buffers[0].is_cuda and _graphs_enabled) or _STEP_KERNELS_ON_CPU
    return on and _step_kernels_ok and _steps.available(*buffers)


def _run(
    fn: Callable[..., tuple[Tensor | None, ...]],
    static_args: tuple[Any, ...],
    tensors: tuple[Tensor | None, ...],
) -> tuple[Tensor | None, ...]:
    """``fn(*static_args, *tensors)``, through a cached CUDA graph when on CUDA.

    If capture fails, the Triton step kernels are turned off and capture is tried once more;
    if that fails too, graphs are turned off and the loop runs eagerly. Each fallback warns.
    """
    global _step_kernels_ok
    first = next(t for t in tensors if t is not None)
    if not (_graphs_enabled and first.is_cuda) or torch.cuda.is_current_stream_capturing():
        return fn(*static_args, *tensors)
    key = (
        fn.__name__,
        static_args,
        first.device,
        tuple(None if t is None else (tuple(t.shape), t.dtype) for t in tensors),
    )
    entry = _graphs.get(key)
    if entry is None:
        while entry is None:
            try:
                entry = _capture(fn, static_args, tensors)
            except Exception as err:  # any failure: fall back, never crash
                if _step_kernels_ok and _steps.triton is not None:
                    what, _step_kernels_ok = "Triton step kernels", False
                else:
                    what = "CUDA-graph capture"
                    set_cuda_graphs(False)
                warnings.warn(
                    f"fused MLSTM loop: {what} failed ({type(err).__name__}: {err}); "
                    "falling back to the torch ops",
                    RuntimeWarning,
                    stacklevel=3,
                )
                if not _graphs_enabled:
                    return fn(*static_args, *tensors)
        _graphs[key] = entry
        while len(_graphs) > _GRAPH_CACHE_SIZE:
            _graphs.popitem(last=False)
    else:
        _graphs.move_to_end(key)
        for dst, src in zip(entry.inputs, tensors, strict=True):
            if dst is not None:
                dst.copy_(src)
    entry.graph.replay()
    return tuple(None if o is None else o.clone() for o in entry.outputs)


def _capture(
    fn: Callable[..., tuple[Tensor | None, ...]],
    static_args: tuple[Any, ...],
    tensors: tuple[Tensor | None, ...],
) -> _Graph:
    device = next(t for t in tensors if t is not None).device
    inputs = tuple(
        None if t is None else t.clone(memory_format=torch.contiguous_format) for t in tensors
    )
    # warm-up on a side stream, as torch.cuda.graph requires (library handles, workspaces)
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        fn(*static_args, *inputs)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = fn(*static_args, *inputs)
    return _Graph(graph, inputs, outputs)


def _forward_loop(
    mode: str,
    x: Tensor,
    w_in: Tensor,
    b_in: Tensor | None,
    w_rec: Tensor,
    w_uu: Tensor | None,
    h0: Tensor,
    u0: Tensor | None,
    hist0: Tensor,
    weights: Tensor | None,
    table: Tensor | None,
) -> tuple[Tensor | None, ...]:
    """The forward loop on detached tensors: outputs, then the buffers the backward reads."""
    steps, batch, n_in = x.shape
    rows = w_in.shape[0]
    hh, k = h0.shape[-1], hist0.shape[1]
    kw = {"dtype": x.dtype, "device": x.device}
    dynamic = mode != "fixed"
    h2, gc = 2 * hh, rows - hh  # sigmoid columns i, o: [:h2]; g: [gc:]; u: [h2:gc]
    w_rec_t = w_rec.detach().t()
    cells = torch.empty(k + steps, batch, hh, **kw)
    cells[:k] = hist0.detach().transpose(0, 1)
    flat = cells.view(k + steps, -1)
    out = torch.empty(steps, batch, hh, **kw)  # the output: out[t] = h_t
    h_seq = out.unbind(0)
    # input part of the pre-activations, one GEMM; each step adds its recurrent part, activates
    x2 = x.detach().reshape(-1, n_in)
    w_in_t = w_in.detach().t()
    if b_in is None:
        acts = torch.mm(x2, w_in_t).view(steps, batch, rows)
    else:
        acts = torch.addmm(b_in.detach(), x2, w_in_t).view(steps, batch, rows)
    tanh_c = torch.empty(steps, batch, hh, **kw)
    i_l, o_l, g_l = (acts[..., a:b].unbind(0) for a, b in ((0, hh), (hh, h2), (gc, rows)))
    sig_l, tanh_l = acts[..., :h2].unbind(0), acts[..., h2:].unbind(0)
    loop = zip(
        acts,
        sig_l,
        tanh_l,
        i_l,
        o_l,
        g_l,
        cells[k:],
        tanh_c,
        (h0.detach(), *h_seq[:-1]),
        h_seq,
        strict=True,
    )
    mems = table_neg = None
    if dynamic:
        assert w_uu is not None and u0 is not None
        w_uu_t = w_uu.detach().t()
        u_prev = u0.detach()
        u_l = acts[..., h2:gc].unbind(0)
        if mode == "poly":
            assert table is not None
            r = table.shape[0]
            table_neg = -table.flip(-1)  # columns oldest-first like the window; sign of -mem
            p_pad, band_p = _poly_band(table_neg, k)
            p_in = [p_pad[:, _BLOCK + k - bi : _BLOCK + k] for bi in range(_BLOCK)]
            projs = torch.empty(_BLOCK, r, batch * hh, **kw)  # projections of one block
            projs_flat = projs.view(_BLOCK * r, -1)
            r_idx = torch.arange(1, r, **kw).unsqueeze(-1)  # (R-1, 1)
            # mems[t] = (-mem_t, d(-mem_t)/du_t): both from one contraction over r
            mems = torch.empty(steps, 2, batch * hh, **kw)
            powers = torch.zeros(2, r, batch * hh, **kw)  # scratch: u^r and r u^(r-1)
            prod = torch.empty_like(powers)
            pw, pw_d = powers
            pw[0] = 1.0
            pw_u = pw[1].view(batch, hh)
            products = _power_plan(pw)
    else:
        assert weights is not None
        w_pad = _padded_weights(weights.detach(), k)
        band = w_pad[:, k + _arange(_BLOCK, x).unsqueeze(1) - _arange(k, x)]  # (H, L, K)
        w_inner = w_pad[:, 1:_BLOCK].flip(-1).t().unsqueeze(1)  # (L-1, 1, H): lags L-1 .. 1
        w_in_l = [w_inner[_BLOCK - 1 - bi :] for bi in range(_BLOCK)]
        # hidden-major mirror of the cells: the block GEMM batched over units reads its
        # (H, K, B) operand as a view (transposing a (K, B, H) window costs more than it)
        cells_t = torch.empty(hh, k + steps, batch, **kw)
        cells_t[:, :k] = hist0.detach().permute(2, 1, 0)
        c_t_l = cells_t[:, k:].unbind(1)
    step_kernels = mode != "exact" and _use_step_kernels(acts, cells, out)
    for t, (a, a_sig, a_tanh, i, o, g, c, tc, h, h_new) in enumerate(loop):
        a.addmm_(h, w_rec_t)
        if dynamic:
            u = u_l[t]
            u.addmm_(u_prev, w_uu_t)
            u_prev = u
        if step_kernels:  # the rest of the step in one Triton kernel (CUDA)
            bi = t % _BLOCK
            n = min(_BLOCK, steps - t)
            if mode == "poly":
                if bi == 0:
                    torch.mm(band_p[: n * r], flat[t : t + k], out=projs_flat[: n * r])
                _steps.poly_forward_step(acts, projs, bi, p_pad, cells, mems, tanh_c, out, t, k)
                continue
            if bi == 0:
                mem_block = torch.bmm(band[:, :n], cells_t[:, t : t + k])  # (H, n, B)
            _steps.fixed_forward_step(acts, mem_block, bi, cells, w_pad, tanh_c, out, cells_t, t, k)
            continue
        a_sig.sigmoid_()
        a_tanh.tanh_()
        bi = t % _BLOCK
        if mode == "poly":
            pw_u.copy_(u)
            for src, factor, dst in products:
                torch.mul(src, factor, out=dst)
            if bi == 0:  # the part from the K cells before the block: one GEMM per block
                n = min(_BLOCK, steps - t)
                torch.mm(band_p[: n * r], flat[t : t + k], out=projs_flat[: n * r])
            proj = projs[bi]
            if bi:  # + lags 1..bi inside the block
                proj.addmm_(p_in[bi], flat[k + t - bi : k + t])
            torch.mul(pw[:-1], r_idx, out=pw_d[1:])
            torch.sum(torch.mul(powers, proj, out=prod), 1, out=mems[t])
            neg_mem = mems[t, 0].view(batch, hh)
        elif mode == "exact":
            w = fractional_weights(0.25 * (u + 1.0), k).movedim(-1, 0)  # (K, B, H)
            neg_mem = (w * cells[t : t + k].flip(0)).sum(0).neg_()
        elif bi == 0:  # the K cells before the block, for all its steps: one batched GEMM
            n = min(_BLOCK, steps - t)
            mem_old = torch.bmm(band[:, :n], cells_t[:, t : t + k]).permute(1, 2, 0)
            neg_mem = mem_old[0]
        else:  # + lags 1..bi inside the block
            neg_mem = torch.linalg.vecdot(w_in_l[bi], cells[k + t - bi : k + t], dim=0)
            neg_mem = neg_mem.add_(mem_old[bi])
        torch.addcmul(neg_mem, i, g, out=c)
        torch.tanh(c, out=tc)
        torch.mul(o, tc, out=h_new)
        if not dynamic:
            c_t_l[t].copy_(c.t())
    u_last = acts[-1, :, h2:gc].clone() if dynamic else x.new_zeros(0)
    cells_last = cells[steps:].transpose(0, 1).contiguous()  # (B, K, H) oldest first
    return (
        out,
        out[-1].clone(),
        u_last,
        cells_last,
        cells,
        acts,
        tanh_c,
        mems,
        table_neg,
        None if dynamic else cells_t,
    )


def _backward_loop(
    mode: str,
    k: int,
    needs: tuple[bool, ...],
    g_out: Tensor,
    g_h: Tensor,
    g_u: Tensor,
    g_cells: Tensor,
    x: Tensor,
    w_in: Tensor,
    w_rec: Tensor,
    w_uu: Tensor | None,
    h0: Tensor,
    u0: Tensor | None,
    weights: Tensor | None,
    out: Tensor,
    cells: Tensor,
    acts: Tensor,
    tanh_c: Tensor,
    mems: Tensor | None,
    table_neg: Tensor | None,
    cells_t: Tensor | None,
) -> tuple[Tensor | None, ...]:
    """The hand-written backward loop: gradients of the nine tensor inputs (None where unneeded)."""
    steps, batch, rows = acts.shape
    hh = out.shape[-1]
    h2, gc = 2 * hh, rows - hh
    dynamic = mode != "fixed"
    kw = {"dtype": cells.dtype, "device": cells.device}
    # dL/dc of every cell slot, first from the memory terms of later steps (+ final state)
    d_cells = torch.zeros(k + steps, batch, hh, **kw)
    d_cells[steps:] += g_cells.transpose(0, 1)
    d_flat = d_cells.view(k + steps, -1)
    d_z = torch.empty(steps, batch, rows, **kw)  # gate pre-activation gradients
    w_rec_ = w_rec.detach()
    i_l, o_l, g_l = (acts[..., a:b].unbind(0) for a, b in ((0, hh), (hh, h2), (gc, rows)))
    dzi_l, dzo_l, dzg_l = (d_z[..., a:b].unbind(0) for a, b in ((0, hh), (hh, h2), (gc, rows)))
    g_out_l = g_out.unbind(0)
    loop = zip(i_l, o_l, g_l, tanh_c, d_cells[k:], d_z, dzi_l, dzo_l, dzg_l, strict=True)
    scratch = torch.empty(batch, hh, **kw)
    if dynamic:
        w_uu_ = w_uu.detach()
        du = g_u.clone() if g_u.numel() else torch.zeros(batch, hh, **kw)  # dL/du_t
        u_l, dzu_l = acts[..., h2:gc].unbind(0), d_z[..., h2:gc].unbind(0)
        if mode == "poly":
            r = table_neg.shape[0]
            pw = torch.empty(r, batch * hh, **kw)  # scratch: u^0..u^(R-1)
            pw[0] = 1.0
            pw_u = pw[1].view(batch, hh)
            products = _power_plan(pw)
            p_pad, band_p = _poly_band(table_neg, k)
            p_in_t = [p_pad[:, _BLOCK + k - bi : _BLOCK + k].t() for bi in range(_BLOCK)]
            band_t = band_p.t()
            g_proj = torch.empty(_BLOCK, r, batch * hh, **kw)
            g_proj_flat = g_proj.view(_BLOCK * r, -1)
    else:
        # fixed d: g_neg[k + t] = dL/d(-mem_t), zero padded on both sides for the gathers
        g_neg = torch.zeros(2 * k + steps, batch, hh, **kw)
        g_neg_t = torch.zeros(hh, 2 * k + steps, batch, **kw)  # hidden-major mirror
        g_t_l = g_neg_t[:, k : k + steps].unbind(1)
        w_pad = _padded_weights(weights.detach(), k)
        w_lag = w_pad[:, 1:_BLOCK].t().unsqueeze(1)  # (L-1, 1, H): lags 1 .. L-1
        w_lag_l = [w_lag[:m] for m in range(_BLOCK)]
        f_idx = _arange(k, cells)
        # band[h, i, f]: weight with which step t0+n+f reads c_{t0+i} (lag n - i + f)
        band_full = w_pad[:, (_BLOCK - _arange(_BLOCK, cells)).unsqueeze(1) + f_idx]
    dh = g_h + g_out_l[-1]  # dL/dh_t incl. the output's gradient
    step_kernels = mode != "exact" and _use_step_kernels(acts, d_cells, out)
    for t, (i, o, g, tc, dc, dz, dzi, dzo, dzg) in reversed(list(enumerate(loop))):
        bi = t % _BLOCK
        if step_kernels and mode == "poly":  # up to dz_t in one Triton kernel (CUDA)
            _steps.poly_backward_step(
                acts, tanh_c, d_cells, p_pad, g_proj, bi, mems, dh, du, d_z, t, k
            )
            if bi == 0:  # whole block done: to the K cells before it, one GEMM
                n = min(_BLOCK, steps - t)
                d_flat[t : t + k].addmm_(band_t[:, : n * r], g_proj_flat[: n * r])
            du = torch.mm(dzu_l[t], w_uu_)
            dh = torch.mm(dz, w_rec_) if t == 0 else torch.addmm(g_out_l[t - 1], dz, w_rec_)
            continue
        if not dynamic:
            # dL/dc_t from the K steps that read c_t: those after the block in one batched
            # GEMM at the block's last step, those inside it here
            if t == steps - 1 or bi == _BLOCK - 1:
                t0, n = t - bi, bi + 1
                if n == _BLOCK:
                    band = band_full
                else:
                    band = w_pad[:, (n - _arange(n, cells)).unsqueeze(1) + f_idx]
                futs = g_neg_t[:, k + t0 + n : 2 * k + t0 + n]  # (H, K, B)
                fut_block = torch.bmm(band, futs)  # (H, n, B)
                fut = fut_block.permute(1, 2, 0)  # (n, B, H)
            m = min(t - bi + _BLOCK, steps) - 1 - t  # later steps of this block
            if step_kernels:  # up to dz_t in one Triton kernel (CUDA, MLSTM-F)
                _steps.fixed_backward_step(
                    acts, tanh_c, d_cells, fut_block, bi, g_neg, w_pad, m, dh, d_z, g_neg_t, t, k
                )
                dh = torch.mm(dz, w_rec_) if t == 0 else torch.addmm(g_out_l[t - 1], dz, w_rec_)
                continue
            dc.add_(fut[bi])
            if m:
                later = g_neg[k + t + 1 : k + t + 1 + m]
                dc.add_(torch.linalg.vecdot(w_lag_l[m], later, dim=0))
        dc.add_(_tanh_bw(dh * o, tc, grad_input=scratch))
        _sigmoid_bw(dc * g, i, grad_input=dzi)
        _sigmoid_bw(dh * tc, o, grad_input=dzo)
        _tanh_bw(dc * i, g, grad_input=dzg)
        if dynamic:
            u = u_l[t]
            if mode == "poly":
                pw_u.copy_(u)
                for src, factor, dst in products:
                    torch.mul(src, factor, out=dst)
                gp = torch.mul(pw, dc.view(1, -1), out=g_proj[bi])  # dL/dproj_t
                if bi:  # to the cells of this block's earlier steps, now
                    d_flat[k + t - bi : k + t].addmm_(p_in_t[bi], gp)
                else:  # whole block done: to the K cells before it, one GEMM
                    n = min(_BLOCK, steps - t)
                    d_flat[t : t + k].addmm_(band_t[:, : n * r], g_proj_flat[: n * r])
                du.addcmul_(mems[t, 1].view(batch, hh), dc)
            else:
                window = cells[t : t + k].flip(0)  # lag order
                w, dw = weights_and_derivative(0.25 * (u + 1.0), k)
                w, dw = w.movedim(-1, 0), dw.movedim(-1, 0)  # (K, B, H), lag order
                d_cells[t : t + k].sub_((w * dc).flip(0))
                du.sub_(0.25 * (dw * window).sum(0) * dc)  # d = (u + 1) / 4
            du = torch.mm(_tanh_bw(du, u, grad_input=dzu_l[t]), w_uu_)
        else:
            g_neg[k + t] = dc
            g_t_l[t].copy_(dc.t())
        # dL/dh_{t-1}: recurrent part + the output's gradient at t-1 (none for h0)
        dh = torch.mm(dz, w_rec_) if t == 0 else torch.addmm(g_out_l[t - 1], dz, w_rec_)
    g_w_rec = g_w_uu = g_hist = g_weights = g_u0 = None
    if needs[3]:
        # sum_t dz_t^T h_{t-1}: h_{-1} = h0, then the outputs
        g_w_rec = torch.mm(d_z[0].t(), h0.detach())
        if steps > 1:
            g_w_rec.addmm_(d_z[1:].reshape(-1, rows).t(), out[:-1].reshape(-1, hh))
    if dynamic:
        g_u0 = du
        if needs[4]:
            u_prev = torch.cat([u0.detach().unsqueeze(0), acts[:-1, :, h2:gc]])
            g_w_uu = d_z[..., h2:gc].reshape(-1, hh).t() @ u_prev.view(-1, hh)
    else:
        if needs[7]:
            # slot s < K is read by step t <= s at lag K + t - s: one (H, K, K) x (H, K, B)
            lag = k + f_idx.unsqueeze(0) - f_idx.unsqueeze(1)  # [s, t]
            d_cells[:k] += torch.bmm(w_pad[:, lag], g_neg_t[:, k : 2 * k]).permute(1, 2, 0)
        if needs[8]:
            g_weights = _fixed_weight_grad(g_neg_t[:, k : k + steps], cells_t, k).neg_()
    if needs[7]:
        g_hist = d_cells[:k].transpose(0, 1)
    d_z2 = d_z.view(-1, rows)
    g_x = (d_z2 @ w_in.detach()).view_as(x) if needs[0] else None
    g_w_in = d_z2.t() @ x.detach().reshape(-1, x.shape[-1]) if needs[1] else None
    g_b_in = d_z2.sum(0) if needs[2] else None
    return (
        g_x,
        g_w_in,
        g_b_in,
        g_w_rec,
        g_w_uu,
        dh if needs[5] else None,
        g_u0 if dynamic and needs[6] else None,
        g_hist,
        g_weights,
    )


def _power_plan(pw: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Views so that ``u^2..u^(R-1)`` follow from ``pw[1] = u`` in ~log2(R) products."""
    plan, have, r = [], 2, pw.shape[0]
    while have < r:
        n = min(have - 1, r - have)  # pw[have:have+n] = pw[1:1+n] * pw[have-1]
        plan.append((pw[1 : 1 + n], pw[have - 1], pw[have : have + n]))
        have += n
    return plan


def _arange(n: int, like: Tensor) -> Tensor:
    return torch.arange(n, device=like.device)


def _poly_band(table_neg: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Zero-padded table ``p[:, L + m] = table[:, m]`` and the block band ``(L R, K)``.

    Row ``(i, r)`` of the band holds the coefficients with which step ``t0 + i`` of a block reads
    the K cells before the block (slot ``t0 + q`` at window column ``q - i``; zero for ``q < i``).
    """
    r = table_neg.shape[0]
    p_pad = table_neg.new_zeros(r, _BLOCK + k)
    p_pad[:, _BLOCK:] = table_neg
    q = torch.arange(k, device=table_neg.device)
    i = torch.arange(_BLOCK, device=table_neg.device).unsqueeze(1)
    band = p_pad[:, _BLOCK + q - i]  # (R, L, K)
    return p_pad, band.transpose(0, 1).reshape(_BLOCK * r, k)


def _padded_weights(weights: Tensor, k: int) -> Tensor:
    """``(H, 2K + L)`` table ``p[:, j] = -w_j`` for ``1 <= j <= K``, zero elsewhere (j = 0, > K)."""
    pad = weights.new_zeros(weights.shape[0], 2 * k + _BLOCK)
    pad[:, 1 : k + 1] = -weights
    return pad


def _fixed_weight_grad(g_mem: Tensor, cells: Tensor, k: int) -> Tensor:
    """``dL/dw_j[h] = sum_t sum_b dL/dmem_t[b, h] c_{t-j}[b, h]``, as ``(H, K)`` in lag order.

    ``g_mem`` ``(H, T, B)``, ``cells`` ``(H, K + T, B)`` (slot order). Blockwise: for steps
    ``t0..t0+L-1`` one GEMM ``(H, L, B) x (H, B, K + L - 1)`` gives every (step, slot) product;
    the products at lag j lie on a diagonal, read with a strided view.
    """
    hidden, steps = g_mem.shape[0], g_mem.shape[1]
    acc = g_mem.new_zeros(hidden, k)
    for t0 in range(0, steps, _GW_BLOCK):
        n = min(_GW_BLOCK, steps - t0)
        z = torch.bmm(g_mem[:, t0 : t0 + n], cells[:, t0 : t0 + k + n - 1].transpose(1, 2))
        # z[h, i, m] = <g_{t0+i}, c_slot(t0+m)>; step t0+i at lag j reads slot K + t0 + i - j,
        # i.e. m = K + i - j, so q = m - i = K - j
        s0, s1, s2 = z.stride()
        diag = z.as_strided((hidden, n, k), (s0, s1 + s2, s2), z.storage_offset())
        acc += diag.sum(1)  # indexed by q = K - j
    return acc.flip(-1)


def mlstm_sequence(
    x: Tensor,
    w_in: Tensor,
    b_in: Tensor | None,
    w_rec: Tensor,
    h0: Tensor,
    hist0: Tensor,
    *,
    weights: Tensor | None = None,
    w_uu: Tensor | None = None,
    u0: Tensor | None = None,
    table: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run one MLSTM (dynamic d) or MLSTM-F (fixed d) layer over a sequence as one autograd node.

    Gate pre-activations are ``x_t @ w_in.T + b_in + h_{t-1} @ w_rec.T`` (+ ``u_{t-1} @ w_uu.T``
    on the ``u`` columns), columns ``i, o, g`` (``G = 3H``, MLSTM-F) or ``i, o, u, g``
    (``G = 4H``, MLSTM, where ``u = 4 d - 1 = tanh(z_u)``).

    Args:
        x: ``(T, B, F)`` input.
        w_in, b_in: ``(G, F)`` input weights and ``(G,)`` bias (or ``None``).
        w_rec: ``(G, H)`` weights on ``h_{t-1}``.
        h0: ``(B, H)`` initial hidden state.
        hist0: ``(B, K, H)`` initial cell window, oldest first.
        weights: MLSTM-F only: ``(H, K)`` filter weights ``w_1..w_K`` per hidden unit.
        w_uu: MLSTM only: ``(H, H)`` weights of ``z_u`` on ``u_{t-1}``.
        u0: MLSTM only: ``(B, H)`` initial ``u``.
        table: MLSTM only: ``(R, K)`` table of the weights as polynomials in ``u``
            (:func:`~adaptlearn.nn.filter.poly_weight_table`), or ``None`` for exact weights.

    Returns:
        ``(out (T, B, H), h_T (B, H), u_T (B, H) or empty for MLSTM-F, cells (B, K, H))``.
    """
    if weights is not None:
        mode = "fixed"
    elif w_uu is None or u0 is None:
        raise ValueError("mlstm_sequence needs `weights` (MLSTM-F) or `w_uu` and `u0` (MLSTM)")
    else:
        mode = "exact" if table is None else "poly"
    return _MLSTMSequence.apply(x, w_in, b_in, w_rec, w_uu, h0, u0, hist0, weights, table, mode)
