"""Long-memory recurrent layers MRNN, MRNN-F, MLSTM and MLSTM-F with the ``nn.LSTM`` convention.

Each layer inserts the truncated fractional filter ``(1 - B)^d`` (:func:`fractional_weights`)
into a recurrent cell, so the linearised response to past inputs decays polynomially up to lag
``memory_length`` (K) instead of geometrically.

* MRNN: the filter acts on the last K **inputs**; ``d`` is per input feature and dynamic
  (``d_t = 0.5 sigmoid(W_dd d_{t-1} + W_dh h_{t-1} + W_dm m_{t-1} + W_dx x_t + b_d)``); a
  long-memory hidden ``m_t = tanh(W_mm m_{t-1} + W_mf F_t + b_m)`` runs beside an Elman hidden
  ``h_t``; the layer outputs ``[h_t ; m_t]`` (a linear head on it is the paper's
  ``z_t = W_zh h_t + W_zm m_t + b_z``).
* MRNN-F: the same with one fixed ``d = 0.5 sigmoid(theta)`` per input feature.
* MLSTM: the filter acts on the last K **cell states** and replaces the forget gate,
  ``c_t = -sum_{j=1..K} w_j(d_t) c_{t-j} + i_t * g_t``; ``d`` is per hidden unit and dynamic,
  ``d_t = 0.5 sigmoid(W_d [x_t ; h_{t-1} ; d_{t-1}] + b_d)``.
* MLSTM-F: the same with one fixed ``d = 0.5 sigmoid(theta)`` per hidden unit.

References:
    J. Zhao, F. Huang, J. Lv, Y. Duan, Z. Qin, G. Li, G. Tian. "Do RNN and LSTM have Long
    Memory?" ICML 2020, arXiv:2006.03860.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from adaptlearn.core import check_choice, check_int, check_range
from adaptlearn.nn.filter import (
    CellStore,
    fractional_weights,
    inject,
    inject_history,
    memory_contract,
    memory_weights,
    poly_memory_contract,
    poly_weight_table,
)
from adaptlearn.nn.mlstm_fused import mlstm_sequence

__all__ = [
    "MLSTM",
    "MLSTMF",
    "MRNN",
    "MRNNF",
    "MLSTMFState",
    "MLSTMState",
    "MRNNFState",
    "MRNNState",
]

MEMORY_IMPLS = ("store", "loop")
MLSTM_IMPLS = ("fused", "store", "loop")
# error budget sum_j |w_j - poly_j| of the polynomial filter weights per dtype: below the rounding
# error of the K-term sum itself (~sqrt(K) eps); float64 and others: 1e-12
_POLY_TOL = {torch.float16: 1e-3, torch.bfloat16: 1e-2, torch.float32: 1e-6}


class MLSTMState(NamedTuple):
    """State of :class:`MLSTM`: ``h`` and ``d`` ``(L, B, H)``, ``cells`` ``(L, B, K, H)``.

    ``cells[:, :, -1]`` is the newest cell state ``c_t``; ``cells[:, :, 0]`` is ``c_{t-K+1}``.
    ``state.h`` and ``state.c`` are ``nn.LSTM``'s ``h_n`` and ``c_n``.
    """

    h: Tensor
    d: Tensor
    cells: Tensor

    @property
    def c(self) -> Tensor:
        """The newest cell state ``(L, B, H)``, ``nn.LSTM``'s ``c_n``."""
        return self.cells[..., -1, :]


class MLSTMFState(NamedTuple):
    """State of :class:`MLSTMF`: ``h`` ``(L, B, H)``, ``cells`` ``(L, B, K, H)`` (oldest first).

    Unpacks like ``nn.LSTM``'s ``(h_n, c_n)`` (``out, (h, cells) = layer(x)``), with the whole
    K-cell history in place of ``c_n``; ``state.c`` is ``c_n`` itself ``(L, B, H)``.
    """

    h: Tensor
    cells: Tensor

    @property
    def c(self) -> Tensor:
        """The newest cell state ``(L, B, H)``, ``nn.LSTM``'s ``c_n``."""
        return self.cells[..., -1, :]


class MRNNState(NamedTuple):
    """State of :class:`MRNN`: ``h``, ``m`` ``(1, B, H)``; ``d`` ``(1, B, F)``; ``inputs``
    ``(1, B, K-1, F)``.

    ``inputs`` are the last ``K - 1`` inputs, oldest first.
    """

    h: Tensor
    m: Tensor
    d: Tensor
    inputs: Tensor


class MRNNFState(NamedTuple):
    """State of :class:`MRNNF`: ``h``, ``m`` ``(1, B, H)``, ``inputs`` ``(1, B, K-1, F)``."""

    h: Tensor
    m: Tensor
    inputs: Tensor


class _LongMemoryBase(nn.Module):
    """Shared ``nn.LSTM``-style plumbing: layouts, unbatched input, stacked layers, state checks."""

    state_type: Any = None
    _state_hint = ""
    _max_layers: int | None = None
    _impls: tuple[str, ...] = MEMORY_IMPLS

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        *,
        memory_length: int = 100,
        memory_impl: str = "store",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.input_size = check_int("input_size", input_size, 1, owner=owner)
        self.hidden_size = check_int("hidden_size", hidden_size, 1, owner=owner)
        self.num_layers = check_int("num_layers", num_layers, 1, self._max_layers, owner=owner)
        self.memory_length = check_int("memory_length", memory_length, 1, owner=owner)
        self.dropout = check_range("dropout", dropout, 0.0, 1.0, high_inclusive=False, owner=owner)
        self.memory_impl = check_choice("memory_impl", memory_impl, self._impls, owner=owner)
        if not isinstance(bias, bool) or not isinstance(batch_first, bool):
            raise ValueError(f"`bias` and `batch_first` of {owner} must be bools")
        self.bias = bias
        self.batch_first = batch_first
        self._factory = {"device": device, "dtype": dtype}

    def _param(self, *shape: int) -> nn.Parameter:
        return nn.Parameter(torch.empty(*shape, **self._factory))

    def reset_parameters(self) -> None:
        """``U(-1/sqrt(H), 1/sqrt(H))`` like ``nn.LSTM``; fixed-d logits ``theta = 0`` (d=0.25)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, p in self.named_parameters():
            if name.split(".")[-1].startswith("d_logit"):
                nn.init.zeros_(p)
            else:
                nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, memory_length={self.memory_length}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.memory_impl != self._impls[0]:
            s += f", memory_impl={self.memory_impl!r}"
        if getattr(self, "dynamic_filter", "poly") != "poly":
            s += f", dynamic_filter={self.dynamic_filter!r}"
        return s

    # --- subclass hooks ------------------------------------------------------------------------
    def _state_shapes(self, batch: int) -> tuple[tuple[int, ...], ...]:
        raise NotImplementedError

    def _layer_forward(
        self, layer: int, x: Tensor, state: tuple[Tensor, ...]
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        raise NotImplementedError

    # --- public -------------------------------------------------------------------------------
    def initial_state(self, batch_size: int, *, device: Any = None, dtype: Any = None) -> Any:
        """All-zero state (the paper's initial condition) for ``batch_size`` sequences."""
        ref = next(self.parameters())
        kw = {"device": device or ref.device, "dtype": dtype or ref.dtype}
        return self.state_type(*(torch.zeros(s, **kw) for s in self._state_shapes(batch_size)))

    def forward(self, input: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Run the layer over a sequence.

        Args:
            input: ``(T, B, F)``, or ``(B, T, F)`` with ``batch_first=True``, or unbatched
                ``(T, F)``.
            state: optional initial state (a ``*State`` NamedTuple or a plain tuple in its field
                order; leading layer dimension, no batch dimension for unbatched input).
                ``None`` means zeros. MLSTM/MLSTM-F also take ``nn.LSTM``'s ``(h_0, c_0)``, both
                ``(L, B, H)``: ``c_0`` becomes the newest cell, older cells (and MLSTM's ``d``)
                are zero. Anything else raises a TypeError that names the state type.

        Returns:
            ``(output, state)``: output ``(T, B, H_out)`` / ``(B, T, H_out)`` / ``(T, H_out)``
            (``H_out`` = hidden size, or ``2 * hidden_size`` for MRNN/MRNN-F), and the final state,
            which carries the history window so that chunked calls equal one long call.
        """
        owner = type(self).__name__
        if isinstance(input, PackedSequence):
            raise TypeError(
                f"{owner} does not accept a PackedSequence: pass the padded tensor "
                "(nn.utils.rnn.pad_packed_sequence) and read each sequence's output at its own "
                "last step; the returned state then belongs to the padded end of every sequence"
            )
        if not isinstance(input, Tensor):
            raise TypeError(f"input of {owner} must be a Tensor; got {type(input).__name__}")
        if input.dim() not in (2, 3):
            raise ValueError(
                f"{owner} expects a 2-D (unbatched) or 3-D input; got {tuple(input.shape)}"
            )
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{owner} expects input_size={self.input_size} features; got {x.shape[-1]}"
            )
        if x.shape[0] == 0 or x.shape[1] == 0:
            # the same in every layer (and like nn.LSTM, which refuses empty sequences)
            raise ValueError(
                f"{owner} needs a sequence of length >= 1 and a batch >= 1; got input "
                f"{tuple(input.shape)}"
            )
        batch = x.shape[1]
        if state is None:
            state = self.initial_state(batch, device=x.device, dtype=x.dtype)
        else:
            state = self._check_state(state, batch, batched)
        finals: list[tuple[Tensor, ...]] = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
            x, new = self._layer_forward(layer, x, tuple(f[layer] for f in state))
            finals.append(new)
        out_state = self.state_type(*(torch.stack(f) for f in zip(*finals, strict=True)))
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        if not batched:
            x = x.squeeze(1)
            out_state = self.state_type(*(f.squeeze(1) for f in out_state))
        return x, out_state

    def _state_help(self) -> str:
        name = self.state_type.__name__
        return (
            f"{name}({', '.join(self.state_type._fields)}) as returned by a previous call or by "
            "`initial_state(batch_size)`"
        )

    def _from_lstm_state(self, state: Any, batch: int, batched: bool) -> Any:
        """``nn.LSTM``'s ``(h_0, c_0)`` -> this layer's state, or ``None`` if it is not one."""
        return None

    def _check_state(self, state: Any, batch: int, batched: bool) -> Any:
        owner = type(self).__name__
        fields = self.state_type._fields
        if isinstance(state, Tensor) or not isinstance(state, (tuple, list)):
            raise TypeError(
                f"state of {owner} must be a {self._state_help()}; got {type(state).__name__}"
            )
        if not all(isinstance(v, Tensor) for v in state):
            raise TypeError(f"state of {owner} must be a tuple of Tensors: a {self._state_help()}")
        converted = self._from_lstm_state(state, batch, batched)
        if converted is not None:
            state = converted
        if len(state) != len(fields):
            raise TypeError(
                f"state of {owner} must be a {self._state_help()}; got a tuple of {len(state)}"
                + self._state_hint
            )
        out = []
        for name, value, shape in zip(fields, state, self._state_shapes(batch), strict=True):
            v = value if batched else value.unsqueeze(1)
            if tuple(v.shape) != shape:
                want = shape if batched else shape[:1] + shape[2:]
                raise ValueError(
                    f"state.{name} of {owner} must have shape {want}; got {tuple(value.shape)}"
                )
            out.append(v)
        return self.state_type(*out)


# ----------------------------------------------------------------------------------------------
# MLSTM / MLSTM-F
# ----------------------------------------------------------------------------------------------
class _MLSTMBase(_LongMemoryBase):
    _dynamic = True
    _impls = MLSTM_IMPLS

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        *,
        memory_length: int = 25,
        memory_impl: str = "fused",
        dynamic_filter: str = "poly",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            memory_length=memory_length,
            memory_impl=memory_impl,
            device=device,
            dtype=dtype,
        )
        self.dynamic_filter = check_choice(
            "dynamic_filter", dynamic_filter, ("exact", "poly"), owner=type(self).__name__
        )
        self._poly_cache: dict[Any, Tensor] = {}
        h = hidden_size
        for layer in range(num_layers):
            p = input_size if layer == 0 else h
            # rows: input gate i, output gate o, candidate g (no forget gate)
            self.register_parameter(f"weight_ih_l{layer}", self._param(3 * h, p))
            self.register_parameter(f"weight_hh_l{layer}", self._param(3 * h, h))
            self.register_parameter(f"bias_l{layer}", self._param(3 * h) if bias else None)
            if self._dynamic:
                self.register_parameter(f"weight_dx_l{layer}", self._param(h, p))
                self.register_parameter(f"weight_dh_l{layer}", self._param(h, h))
                self.register_parameter(f"weight_dd_l{layer}", self._param(h, h))
                self.register_parameter(f"bias_d_l{layer}", self._param(h) if bias else None)
            else:
                self.register_parameter(f"d_logit_l{layer}", self._param(h))
        self.reset_parameters()

    def _state_shapes(self, batch: int) -> tuple[tuple[int, ...], ...]:
        L, H, K = self.num_layers, self.hidden_size, self.memory_length
        if self._dynamic:
            return (L, batch, H), (L, batch, H), (L, batch, K, H)
        return (L, batch, H), (L, batch, K, H)

    def _from_lstm_state(self, state: Any, batch: int, batched: bool) -> Any:
        """``nn.LSTM``'s ``(h_0, c_0)`` (``c_0`` without the lag axis): ``c_0`` is the newest
        cell, the older ``K - 1`` cells and MLSTM's ``d`` start at zero."""
        if len(state) != 2 or state[1].dim() != state[0].dim():
            return None
        h0, c0 = state
        cells = c0.new_zeros(*c0.shape[:-1], self.memory_length, c0.shape[-1])
        cells[..., -1, :] = c0
        if self._dynamic:
            return self.state_type(h0, torch.zeros_like(h0), cells)
        return self.state_type(h0, cells)

    def memory_parameter(self, layer: int = 0) -> Tensor:
        """Fixed ``d = 0.5 sigmoid(theta)`` of MLSTM-F ``(H,)`` (MLSTM: its d is in the state)."""
        return 0.5 * torch.sigmoid(getattr(self, f"d_logit_l{layer}"))

    def _layer_forward(
        self, layer: int, x: Tensor, state: tuple[Tensor, ...]
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        steps, K = x.shape[0], self.memory_length
        w_ih, w_hh = getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}")
        if self.memory_impl == "fused" and steps > 0:
            return self._fused_forward(layer, x, state)
        # unbind once: indexing pre[t] would make autograd build a full-size zero gradient per step
        pre = F.linear(x, w_ih, getattr(self, f"bias_l{layer}")).unbind(0)  # T x (B, 3H)
        if self._dynamic:
            h, d, cells = state
            w_dh, w_dd = getattr(self, f"weight_dh_l{layer}"), getattr(self, f"weight_dd_l{layer}")
            pre_d = F.linear(
                x, getattr(self, f"weight_dx_l{layer}"), getattr(self, f"bias_d_l{layer}")
            ).unbind(0)
            weights = None
        else:
            h, cells = state
            weights = fractional_weights(self.memory_parameter(layer), K)  # (H, K), once per pass
        outs: list[Tensor] = []
        loop = self.memory_impl == "loop"
        poly = self._dynamic and self.dynamic_filter == "poly" and not loop
        if poly:
            table = self._poly_table(x)
        if loop:
            recent: deque[Tensor] = deque(cells.unbind(1), maxlen=K)
        else:
            store = CellStore(x.shape[1], self.hidden_size, steps, K, like=cells)
            hist = inject_history(cells, store)
            latest = hist[:, -1]
            recent = deque(hist.unbind(1), maxlen=K)
        for t in range(steps):
            gates = pre[t] + F.linear(h, w_hh)
            i, o, g = gates.chunk(3, dim=-1)
            if self._dynamic:
                d = 0.5 * torch.sigmoid(pre_d[t] + F.linear(h, w_dh) + F.linear(d, w_dd))
                if not poly:
                    weights = memory_weights(d, K)  # (B, H, K)
            if poly:
                mem = poly_memory_contract(d, latest, store, K - 1 + t, table)
            elif loop:  # reference path: one term per lag
                assert weights is not None
                mem = sum(weights[..., j - 1] * recent[-j] for j in range(1, K + 1))
            else:
                assert weights is not None
                mem = memory_contract(weights, latest, store, K - 1 + t)
            c = torch.sigmoid(i) * torch.tanh(g) - mem
            if not loop:
                c = latest = inject(c, store, K + t)
            recent.append(c)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        new_cells = torch.stack(tuple(recent), dim=1)
        out = torch.stack(outs) if outs else x.new_zeros(0, x.shape[1], self.hidden_size)
        if self._dynamic:
            return out, (h, d, new_cells)
        return out, (h, new_cells)

    def _poly_table(self, x: Tensor) -> Tensor:
        """Polynomial weight table for ``x``'s dtype/device (error below the dtype's rounding)."""
        key = (x.dtype, x.device, self.memory_length)
        if key not in self._poly_cache:
            tol = _POLY_TOL.get(x.dtype, 1e-12)
            table = poly_weight_table(self.memory_length, None, tol=tol, device=x.device)
            self._poly_cache[key] = table.to(dtype=x.dtype)
        return self._poly_cache[key]

    def _fused_forward(
        self, layer: int, x: Tensor, state: tuple[Tensor, ...]
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The whole layer as one autograd node (:func:`~adaptlearn.nn.mlstm_fused.mlstm_sequence`).

        For MLSTM the memory gate is rewritten as ``u = 4 d - 1 = tanh(z / 2)`` with
        ``z = W_dx x + W_dh h + W_dd d + b_d`` and ``d = (u + 1) / 4``, i.e.
        ``z / 2 = W_dx x / 2 + W_dh h / 2 + W_dd u / 8 + (b_d / 2 + W_dd 1 / 8)``: the same
        function, with the scalings folded into the weights here (autograd carries them back).
        """
        w_ih, w_hh = getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}")
        bias = getattr(self, f"bias_l{layer}")
        h2 = 2 * self.hidden_size
        if not self._dynamic:
            h, cells = state
            weights = fractional_weights(self.memory_parameter(layer), self.memory_length)
            out, h, _, cells = mlstm_sequence(x, w_ih, bias, w_hh, h, cells, weights=weights)
            return out, (h, cells)
        h, d, cells = state
        w_dx, w_dh = getattr(self, f"weight_dx_l{layer}"), getattr(self, f"weight_dh_l{layer}")
        w_dd, b_d = getattr(self, f"weight_dd_l{layer}"), getattr(self, f"bias_d_l{layer}")
        b_u = w_dd.sum(1) / 8 if b_d is None else 0.5 * b_d + w_dd.sum(1) / 8
        b = torch.zeros_like(w_ih[:, 0]) if bias is None else bias
        w_in = torch.cat([w_ih[:h2], 0.5 * w_dx, w_ih[h2:]])
        b_in = torch.cat([b[:h2], b_u, b[h2:]])
        w_rec = torch.cat([w_hh[:h2], 0.5 * w_dh, w_hh[h2:]])
        table = self._poly_table(x) if self.dynamic_filter == "poly" else None
        out, h, u, cells = mlstm_sequence(
            x, w_in, b_in, w_rec, h, cells, w_uu=w_dd / 8, u0=4 * d - 1, table=table
        )
        return out, (h, (u + 1) / 4, cells)


class MLSTM(_MLSTMBase):
    """Memory-augmented LSTM with a dynamic memory parameter ``d_t`` per sample and hidden unit.

    ``d_t = 0.5 sigmoid(W_dx x_t + W_dh h_{t-1} + W_dd d_{t-1} + b_d)``,
    ``c_t = -sum_{j=1..K} w_j(d_t) c_{t-j} + sigmoid(i_t) tanh(g_t)``,
    ``h_t = sigmoid(o_t) tanh(c_t)`` (no forget gate). Initial ``h``, ``d`` and cells are zero.

    Args:
        input_size: features ``F`` of the input.
        hidden_size: hidden units ``H``.
        num_layers: stacked layers (layer ``l > 0`` reads layer ``l-1``'s ``h``).
        bias: learn the biases ``b_i, b_o, b_g, b_d``.
        batch_first: input/output as ``(B, T, F)``.
        dropout: dropout on the outputs of every layer except the last.
        memory_length: truncation lag K of the filter (the slides recommend 25 for MLSTM).
        memory_impl: ``"fused"`` (default: the whole layer is one autograd node with a
            hand-written backward, :mod:`adaptlearn.nn.mlstm_fused`; memory terms of older cells
            come from one GEMM per block of 16 steps), ``"store"`` (per-step autograd, one
            vectorized contraction per step) or ``"loop"`` (reference: one Python term per
            lag; slow, for tests). All three compute the same function (tested to 1e-10 in
            float64); ``"fused"`` does not support double backward.
        dynamic_filter: ``"poly"`` (default: each weight ``w_j(d)`` as a polynomial in
            ``u = 4d - 1`` whose degree is chosen per dtype so that
            ``sum_j |w_j - poly_j| <= 1e-6`` in float32 (degree 7 at K=100; below the rounding
            of the K-term sum itself) and ``<= 1e-12`` in float64; the memory term is then a
            GEMM with a fixed ``(R, K)`` table) or ``"exact"`` (the ``(K, B, H)`` weight table of
            ``d_t`` each step; several times slower). Ignored by MLSTM-F.
        device, dtype: factory kwargs of the parameters.

    Shapes: input ``(T, B, F)`` (``(B, T, F)`` with ``batch_first``; unbatched ``(T, F)``);
    output ``(T, B, H)``; state :class:`MLSTMState`.

    References:
        Zhao et al., "Do RNN and LSTM have Long Memory?", ICML 2020, Sec. 4 (MLSTM).
    """

    state_type = MLSTMState
    _dynamic = True


class MLSTMF(_MLSTMBase):
    """MLSTM with a fixed memory parameter ``d = 0.5 sigmoid(theta)`` per hidden unit.

    ``theta`` (``d_logit_l{k}``, shape ``(H,)``) starts at 0, i.e. ``d = 0.25``; the ``(H, K)``
    filter weights are computed once per forward pass. Arguments and shapes as :class:`MLSTM`;
    state :class:`MLSTMFState`.

    References:
        Zhao et al., "Do RNN and LSTM have Long Memory?", ICML 2020 (MLSTM-F).
    """

    state_type = MLSTMFState
    _dynamic = False


# ----------------------------------------------------------------------------------------------
# MRNN / MRNN-F
# ----------------------------------------------------------------------------------------------
class _MRNNBase(_LongMemoryBase):
    _dynamic = True
    _state_hint = (
        " (MRNN layers have no cell state: nn.LSTM's (h_0, c_0) does not apply; their state "
        "holds the Elman hidden h, the long-memory hidden m and the last K - 1 inputs)"
    )
    _max_layers = 1  # d and the input window live in the input's space, which differs per layer

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        *,
        memory_length: int = 100,
        memory_impl: str = "store",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            memory_length=memory_length,
            memory_impl=memory_impl,
            device=device,
            dtype=dtype,
        )
        p, h = input_size, hidden_size
        self.weight_hx = self._param(h, p)
        self.weight_hh = self._param(h, h)
        self.bias_h = self._param(h) if bias else None
        self.weight_mf = self._param(h, p)
        self.weight_mm = self._param(h, h)
        self.bias_m = self._param(h) if bias else None
        if self._dynamic:
            self.weight_dx = self._param(p, p)
            self.weight_dh = self._param(p, h)
            self.weight_dm = self._param(p, h)
            self.weight_dd = self._param(p, p)
            self.bias_d = self._param(p) if bias else None
        else:
            self.d_logit = self._param(p)
        self.reset_parameters()

    def _state_shapes(self, batch: int) -> tuple[tuple[int, ...], ...]:
        H, P, K = self.hidden_size, self.input_size, self.memory_length
        window = (1, batch, K - 1, P)
        if self._dynamic:
            return (1, batch, H), (1, batch, H), (1, batch, P), window
        return (1, batch, H), (1, batch, H), window

    def memory_parameter(self) -> Tensor:
        """Fixed ``d = 0.5 sigmoid(theta)`` of MRNN-F, shape ``(F,)``."""
        return 0.5 * torch.sigmoid(self.d_logit)

    def _elman(self, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b: Tensor | None) -> Tensor:
        """``h_t = tanh(w_ih x_t + w_hh h_{t-1} + b)`` over ``(T, B, .)``, torch's fused loop.

        The module's training flag reaches the fused call: cuDNN refuses a backward through an
        RNN run with ``train=False``.
        """
        params = [w_ih, w_hh] if b is None else [w_ih, w_hh, b, torch.zeros_like(b)]
        out, _ = torch.rnn_tanh(
            x, h0.unsqueeze(0), params, b is not None, 1, 0.0, self.training, False, False
        )
        return out

    def _layer_forward(
        self, layer: int, x: Tensor, state: tuple[Tensor, ...]
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        steps, K = x.shape[0], self.memory_length
        if self._dynamic:
            h0, m, d, window = state
        else:
            h0, m, window = state
        padded = torch.cat([window.transpose(0, 1), x], dim=0)  # (K-1+T, B, P)
        # windows[t, b, p, k] = x_{t-K+1+k}: the K inputs ending at step t, oldest first
        windows = padded.unfold(0, K, 1)
        hs = (
            self._elman(x, h0, self.weight_hx, self.weight_hh, self.bias_h)
            if steps
            else x.new_zeros(0, x.shape[1], self.hidden_size)
        )
        if not self._dynamic:
            w_rev = fractional_weights(self.memory_parameter(), K).flip(-1)  # (P, K)
            filtered = self._filter(windows, w_rev)  # (T, B, P): all steps at once
            ms = (
                self._elman(filtered, m, self.weight_mf, self.weight_mm, self.bias_m)
                if steps
                else hs
            )
            if steps:
                m = ms[-1]
            out_state: tuple[Tensor, ...] = (hs[-1] if steps else h0, m)
        else:
            h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]], dim=0) if steps else hs
            pre_d = (
                F.linear(x, self.weight_dx, self.bias_d) + F.linear(h_prev, self.weight_dh)
            ).unbind(0)
            steps_windows = windows.unbind(0)
            ms_list = []
            for t in range(steps):
                d = 0.5 * torch.sigmoid(
                    pre_d[t] + F.linear(d, self.weight_dd) + F.linear(m, self.weight_dm)
                )
                w_rev = memory_weights(d, K).flip(-1)  # (B, P, K)
                f_t = self._filter(steps_windows[t], w_rev)
                m = torch.tanh(
                    F.linear(f_t, self.weight_mf, self.bias_m) + F.linear(m, self.weight_mm)
                )
                ms_list.append(m)
            ms = torch.stack(ms_list) if steps else hs
            out_state = (hs[-1] if steps else h0, m, d)
        new_window = padded[padded.shape[0] - (K - 1) :].transpose(0, 1)
        return torch.cat([hs, ms], dim=-1), (*out_state, new_window)

    def _filter(self, windows: Tensor, w_rev: Tensor) -> Tensor:
        """``F = sum_j w_j x_{t-j+1}``: windows ``(..., P, K)`` times reversed weights, summed."""
        if self.memory_impl == "loop":
            k = windows.shape[-1]
            return sum(windows[..., k - j] * w_rev[..., k - j] for j in range(1, k + 1))
        return (windows * w_rev).sum(-1)


class MRNN(_MRNNBase):
    """Memory-augmented RNN with a dynamic memory parameter ``d_t`` per sample and input feature.

    ``d_t = 0.5 sigmoid(W_dd d_{t-1} + W_dh h_{t-1} + W_dm m_{t-1} + W_dx x_t + b_d)``,
    ``F_t = sum_{j=1..K} w_j(d_t) x_{t-j+1}``, ``m_t = tanh(W_mm m_{t-1} + W_mf F_t + b_m)``,
    ``h_t = tanh(W_hh h_{t-1} + W_hx x_t + b_h)``; output ``[h_t ; m_t]``. Initial ``h, m, d``
    and the input window (the K-1 inputs before the first) are zero.

    Args:
        input_size: features ``F`` (= dimension of ``d``).
        hidden_size: units ``H`` of each of ``h`` and ``m``.
        num_layers: must be 1 (``d`` lives in the input space of the layer).
        bias: learn ``b_d, b_m, b_h``.
        batch_first: input/output as ``(B, T, F)``.
        dropout: unused with one layer (kept for the ``nn.RNN`` signature).
        memory_length: truncation lag K (the slides use 100 for MRNN).
        memory_impl: ``"store"`` (vectorized over lags; MRNN-F also over time) or ``"loop"``.
        device, dtype: factory kwargs.

    Shapes: input ``(T, B, F)``; output ``(T, B, 2H)`` (``[h ; m]``); state :class:`MRNNState`.

    References:
        Zhao et al., "Do RNN and LSTM have Long Memory?", ICML 2020, Sec. 4 (MRNN).
    """

    state_type = MRNNState
    _dynamic = True


class MRNNF(_MRNNBase):
    """MRNN with one fixed memory parameter ``d = 0.5 sigmoid(theta)`` per input feature.

    ``theta`` (``d_logit``, shape ``(F,)``) starts at 0 (``d = 0.25``). The filter output of the
    whole sequence is one vectorized op, and both recurrences run in torch's fused Elman loop.
    Arguments and shapes as :class:`MRNN`; state :class:`MRNNFState`.

    References:
        Zhao et al., "Do RNN and LSTM have Long Memory?", ICML 2020 (MRNN-F).
    """

    state_type = MRNNFState
    _dynamic = False
