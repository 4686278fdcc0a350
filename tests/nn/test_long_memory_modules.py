"""MRNN / MRNN-F / MLSTM / MLSTM-F: semantics against a slow reference, gradients, conventions."""

import io

import pytest
import torch

from adaptlearn.nn import (
    MLSTM,
    MLSTMF,
    MRNN,
    MRNNF,
    MLSTMState,
    RecurrentRegressor,
    fractional_weights,
    make_recurrent,
)

ALL = [MRNN, MRNNF, MLSTM, MLSTMF]
F64 = torch.float64
# every path of every layer: (class, memory_impl, extra kwargs)
PATHS = [
    (MRNN, "store", {}),
    (MRNNF, "store", {}),
    *[(cls, impl, {}) for cls in (MLSTMF,) for impl in ("fused", "store")],
    *[
        (MLSTM, impl, {"dynamic_filter": f})
        for impl in ("fused", "store")
        for f in ("exact", "poly")
    ],
]
PATH_IDS = [f"{c.__name__}-{i}-{k.get('dynamic_filter', '')}" for c, i, k in PATHS]


def _make(cls, impl="store", **kw):
    torch.manual_seed(0)
    kw.setdefault("memory_length", 7)
    return cls(2, 3, memory_impl=impl, dtype=F64, **kw)


def _rand_state(m, batch, gen):
    return type(m.initial_state(batch))(
        *(0.3 * torch.randn(s, generator=gen, dtype=F64) for s in m._state_shapes(batch))
    )


# ----------------------------------------------------------------------------------------------
# an independent slow reference with the reference code's semantics: list history, per-(b, unit)
# scalar recursion for the weights, explicit loops over lags
# ----------------------------------------------------------------------------------------------
def _scalar_weights(d, k):
    w, out = 1.0, []
    for j in range(1, k + 1):
        w = w * (j - 1 - d) / j
        out.append(w)
    return out


def _ref_mlstm(m, x, state):
    """x (T, B, p); one layer; dynamic or fixed d."""
    dynamic = isinstance(m, MLSTM)
    H, K = m.hidden_size, m.memory_length
    h = state.h[0]
    d = state.d[0] if dynamic else None
    cells = list(state.cells[0].unbind(1))
    outs = []
    for t in range(x.shape[0]):
        gates = x[t] @ m.weight_ih_l0.T + h @ m.weight_hh_l0.T + m.bias_l0
        i, o, g = (
            torch.sigmoid(gates[:, :H]),
            torch.sigmoid(gates[:, H : 2 * H]),
            torch.tanh(gates[:, 2 * H :]),
        )
        if dynamic:
            d = 0.5 * torch.sigmoid(
                x[t] @ m.weight_dx_l0.T + h @ m.weight_dh_l0.T + d @ m.weight_dd_l0.T + m.bias_d_l0
            )
            dd = d
        else:
            dd = (0.5 * torch.sigmoid(m.d_logit_l0)).expand(x.shape[1], H)
        rows = []
        for b in range(x.shape[1]):
            row = []
            for u in range(H):
                ws = _scalar_weights(dd[b, u], K)
                row.append(sum(ws[j - 1] * cells[-j][b, u] for j in range(1, K + 1)))
            rows.append(torch.stack(row))
        c = i * g - torch.stack(rows)
        cells.append(c)
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs)


def _ref_mrnn(m, x, state):
    dynamic = isinstance(m, MRNN)
    K, P = m.memory_length, m.input_size
    h, mm = state.h[0], state.m[0]
    d = state.d[0] if dynamic else None
    past = list(state.inputs[0].unbind(1))
    outs = []
    for t in range(x.shape[0]):
        past.append(x[t])
        if dynamic:
            d = 0.5 * torch.sigmoid(
                d @ m.weight_dd.T
                + h @ m.weight_dh.T
                + mm @ m.weight_dm.T
                + x[t] @ m.weight_dx.T
                + m.bias_d
            )
            dd = d
        else:
            dd = (0.5 * torch.sigmoid(m.d_logit)).expand(x.shape[1], P)
        rows = []
        for b in range(x.shape[1]):
            row = []
            for p in range(P):
                ws = _scalar_weights(dd[b, p], K)
                row.append(sum(ws[j - 1] * past[-j][b, p] for j in range(1, K + 1)))
            rows.append(torch.stack(row))
        f = torch.stack(rows)
        mm = torch.tanh(mm @ m.weight_mm.T + f @ m.weight_mf.T + m.bias_m)
        h = torch.tanh(h @ m.weight_hh.T + x[t] @ m.weight_hx.T + m.bias_h)
        outs.append(torch.cat([h, mm], -1))
    return torch.stack(outs)


@pytest.mark.parametrize(("cls", "impl", "kw"), PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("steps", [6, 40])  # 40: several blocks of the fused path
def test_matches_independent_scalar_reference(cls, impl, kw, steps):
    gen = torch.Generator().manual_seed(1)
    m = _make(cls, impl, memory_length=4, **kw)
    x = torch.randn(steps, 2, 2, generator=gen, dtype=F64)
    state = _rand_state(m, 2, gen)
    out, _ = m(x, state)
    ref = (_ref_mrnn if cls in (MRNN, MRNNF) else _ref_mlstm)(m, x, state)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("cls", "impl", "kw"), PATHS, ids=PATH_IDS)
@pytest.mark.parametrize(("steps", "k"), [(12, 7), (37, 5), (37, 23)])
def test_fast_path_equals_per_lag_loop_outputs_and_all_gradients(cls, impl, kw, steps, k):
    """Outputs, final state and the gradients of input, initial state and every parameter."""
    gen = torch.Generator().manual_seed(2)
    fast = _make(cls, impl, memory_length=k, **kw)
    slow = _make(cls, "loop", memory_length=k, **{**kw, "dynamic_filter": "exact"} if kw else {})
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(steps, 2, 2, generator=gen, dtype=F64, requires_grad=True)
    state = [s.requires_grad_() for s in _rand_state(fast, 2, gen)]
    grads = []
    for m in (fast, slow):
        out, st = m(x, state)
        loss = (out**2).sum() + sum((s**3).sum() for s in st)
        grads.append((out, st, torch.autograd.grad(loss, [x, *state, *m.parameters()])))
    (o1, s1, g1), (o2, s2, g2) = grads
    torch.testing.assert_close(o1, o2, rtol=0, atol=1e-12)
    for a, b in zip(s1, s2, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("cls", "impl", "kw"), PATHS, ids=PATH_IDS)
def test_gradcheck_tiny_float64(cls, impl, kw):
    gen = torch.Generator().manual_seed(3)
    m = _make(cls, impl, memory_length=3, **kw)
    steps = 19 if impl == "fused" else 5  # fused: past one block of 16 steps
    x = torch.randn(steps, 2, 2, generator=gen, dtype=F64, requires_grad=True)
    state = [s.requires_grad_() for s in _rand_state(m, 2, gen)]

    def fn(x, *state):
        out, st = m(x, type(m.initial_state(2))(*state))
        return out, *st

    assert torch.autograd.gradcheck(fn, (x, *state))


@pytest.mark.parametrize(("cls", "impl", "kw"), PATHS, ids=PATH_IDS)
def test_chunked_calls_with_state_equal_one_call(cls, impl, kw):
    gen = torch.Generator().manual_seed(4)
    m = _make(cls, impl, **kw)
    x = torch.randn(3, 15, 2, generator=gen, dtype=F64)
    m.batch_first = True
    out, st = m(x)
    parts, s = [], None
    for lo, hi in [(0, 2), (2, 9), (9, 15)]:  # chunks shorter and longer than K
        o, s = m(x[:, lo:hi], s)
        parts.append(o)
    torch.testing.assert_close(torch.cat(parts, 1), out, rtol=0, atol=1e-12)
    for a, b in zip(s, st, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("cls", "impl", "kw"), PATHS, ids=PATH_IDS)
def test_layouts_and_unbatched_input(cls, impl, kw):
    gen = torch.Generator().manual_seed(5)
    m = _make(cls, impl, **kw)
    x = torch.randn(9, 4, 2, generator=gen, dtype=F64)
    out_tm, st_tm = m(x)
    h_out = 6 if cls in (MRNN, MRNNF) else 3
    assert out_tm.shape == (9, 4, h_out)
    m.batch_first = True
    out_bf, _st_bf = m(x.transpose(0, 1))
    torch.testing.assert_close(out_bf.transpose(0, 1), out_tm)
    out_u, st_u = m(x[:, 1])  # unbatched (T, F)
    torch.testing.assert_close(out_u, out_tm[:, 1])
    for a, b in zip(st_u, st_tm, strict=True):
        assert a.shape == b[:, 1].shape
        torch.testing.assert_close(a, b[:, 1])
    out_u2, _ = m(x[:, 1], st_u)  # unbatched state round trip
    assert out_u2.shape == out_u.shape


@pytest.mark.parametrize("cls", ALL)
def test_state_dict_round_trip_dtype_and_repr(cls):
    m = _make(cls, cls._impls[0])  # the default path
    assert all(p.dtype == F64 for p in m.parameters())
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = cls(2, 3, memory_length=7, dtype=F64)
    m2.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(6, 2, 2, dtype=F64)
    torch.testing.assert_close(m2(x)[0], m(x)[0], rtol=0, atol=0)
    assert repr(m) == f"{cls.__name__}(2, 3, memory_length=7)"
    assert "memory_impl='loop'" in repr(_make(cls, impl="loop"))
    if cls in (MLSTM, MLSTMF):
        assert "memory_impl='store'" in repr(_make(cls, impl="store"))


def test_parameter_sets_follow_the_paper():
    names = lambda m: sorted(n for n, _ in m.named_parameters())  # noqa: E731
    assert names(MLSTMF(2, 3)) == ["bias_l0", "d_logit_l0", "weight_hh_l0", "weight_ih_l0"]
    # no forget gate: three gates (i, o, g) only; no dead d-layer in the fixed-d variant
    assert MLSTMF(2, 3).weight_ih_l0.shape == (9, 2)
    assert "weight_dd_l0" in names(MLSTM(2, 3))
    assert MRNNF(2, 3).d_logit.shape == (2,)  # d per input feature for MRNN
    assert MLSTMF(2, 3).d_logit_l0.shape == (3,)  # d per hidden unit for MLSTM
    # fixed d starts at 0.25
    torch.testing.assert_close(MLSTMF(2, 3).memory_parameter(), torch.full((3,), 0.25))


def test_mlstmf_cell_impulse_response_is_the_fractional_integration_filter():
    """With K >= T, c_t = -sum_j w_j c_{t-j} + u_t makes c the impulse response of (1-B)^(-d)."""
    m = MLSTMF(1, 2, memory_length=40, dtype=F64)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.bias_l0[:2] = 30.0  # input gate ~ 1
        m.weight_ih_l0[4:] = 0.01  # candidate g = tanh(0.01 x)
        m.d_logit_l0.copy_(torch.tensor([0.0, 2.0]))  # d = 0.25 and 0.5 sigmoid(2)
    x = torch.zeros(40, 1, dtype=F64)
    x[0] = 1.0
    _, st = m(x)
    cells = st.cells[0]  # (K, H) = c_1..c_40
    d = m.memory_parameter().detach()
    psi = torch.cat([torch.ones(2, 1, dtype=F64), fractional_weights(-d, 39)], -1)  # (H, 40)
    torch.testing.assert_close(cells.T / cells[0:1].T, psi, rtol=1e-6, atol=0)


def test_mlstm_with_d_near_zero_forgets():
    m = MLSTMF(2, 3, memory_length=5, dtype=F64)
    with torch.no_grad():
        m.d_logit_l0.fill_(-60.0)  # d ~ 0: c_t = i_t * g_t
    x = torch.randn(4, 1, 2, dtype=F64)
    _, st = m(x)
    gates = x[-1, 0] @ m.weight_ih_l0.T + st.h[0, 0].new_tensor(0) + m.bias_l0
    del gates
    out, st = m(x)
    h_prev = out[-2, 0]
    g = x[-1, 0] @ m.weight_ih_l0.T + h_prev @ m.weight_hh_l0.T + m.bias_l0
    c = torch.sigmoid(g[:3]) * torch.tanh(g[6:])
    torch.testing.assert_close(st.cells[0, 0, -1], c, rtol=0, atol=1e-12)


def test_stacked_mlstm_and_dropout():
    m = MLSTM(2, 3, num_layers=2, dropout=0.5, memory_length=4, batch_first=True)
    out, st = m(torch.randn(2, 7, 2))
    assert out.shape == (2, 7, 3)
    assert isinstance(st, MLSTMState) and st.cells.shape == (2, 2, 4, 3)
    m.eval()
    x = torch.randn(2, 7, 2)
    torch.testing.assert_close(m(x)[0], m(x)[0])


@pytest.mark.parametrize("cls", [MLSTMF, MLSTM])
def test_backward_twice_with_retained_graph_is_consistent(cls):
    m = _make(cls, "fused")
    x = torch.randn(8, 2, 2, dtype=F64)
    out, _ = m(x)
    loss = (out**2).sum()
    g1 = torch.autograd.grad(loss, list(m.parameters()), retain_graph=True)
    g2 = torch.autograd.grad(loss, list(m.parameters()))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden_size": 0}, "`hidden_size` of MLSTM"),
        ({"memory_length": 0}, "`memory_length` of MLSTM"),
        ({"dropout": 1.0}, "`dropout` of MLSTM"),
        ({"memory_impl": "fast"}, "`memory_impl` of MLSTM"),
    ],
)
def test_hyperparameters_are_validated(kwargs, match):
    args = {"input_size": 2, "hidden_size": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        MLSTM(**args)


def test_input_and_state_errors_are_clear():
    with pytest.raises(ValueError, match="`num_layers` of MRNN"):
        MRNN(2, 3, num_layers=2)
    m = MLSTMF(2, 3, memory_length=5)
    with pytest.raises(ValueError, match="input_size=2"):
        m(torch.randn(4, 1, 3))
    bad = m.initial_state(1)._replace(cells=torch.zeros(1, 1, 4, 3))
    with pytest.raises(ValueError, match=r"state.cells of MLSTMF must have shape \(1, 1, 5, 3\)"):
        m(torch.randn(4, 1, 2), bad)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "mrnnf", "mrnn", "mlstmf", "mlstm"])
def test_regressor_head_shapes(kind):
    torch.manual_seed(0)
    model = RecurrentRegressor(kind, 1, 4, memory_length=6)
    y, _ = model(torch.randn(3, 10, 1))
    assert y.shape == (3, 10, 1)
    assert isinstance(make_recurrent(kind, 1, 4), torch.nn.Module)
    with pytest.raises(ValueError, match="`kind` of make_recurrent"):
        make_recurrent("gru", 1, 4)


def test_polynomial_dynamic_filter_matches_exact_and_gradchecks():
    gen = torch.Generator().manual_seed(6)
    exact = _make(MLSTM, memory_length=30, dynamic_filter="exact")
    poly = _make(MLSTM, memory_length=30, dynamic_filter="poly")
    poly.load_state_dict(exact.state_dict())
    assert "dynamic_filter='exact'" in repr(exact)
    x = torch.randn(40, 2, 2, generator=gen, dtype=F64)
    outs, grads = [], []
    for m in (exact, poly):
        out, _ = m(x)
        outs.append(out)
        grads.append(torch.autograd.grad((out**2).sum(), list(m.parameters())))
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-9)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-8)
    small = _make(MLSTM, memory_length=3, dynamic_filter="poly")
    xs = torch.randn(4, 2, 2, generator=gen, dtype=F64, requires_grad=True)
    state = [s.requires_grad_() for s in _rand_state(small, 2, gen)]
    assert torch.autograd.gradcheck(lambda x, *st: small(x, MLSTMState(*st))[0], (xs, *state))


@pytest.mark.parametrize("cls", [MLSTM, MLSTMF])
def test_default_float32_fused_path_matches_float64_exact_reference(cls):
    """The default (fused; polynomial weights for MLSTM) in float32 against exact float64."""
    torch.manual_seed(7)
    fast = cls(1, 16, memory_length=100)  # float32, the defaults
    ref = cls(1, 16, memory_length=100, memory_impl="loop", dtype=F64)
    if cls is MLSTM:
        ref.dynamic_filter = "exact"
    ref.load_state_dict({k: v.double() for k, v in fast.state_dict().items()})
    x = torch.randn(150, 4, 1)
    out, _ = fast(x)
    out_ref, _ = ref(x.double())
    torch.testing.assert_close(out.double(), out_ref, rtol=0, atol=2e-5)
    g = torch.autograd.grad(out.sum(), list(fast.parameters()))
    g_ref = torch.autograd.grad(out_ref.sum(), list(ref.parameters()))
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-3, atol=1e-3)


def test_fused_path_grads_only_what_is_needed():
    """Frozen parameters and a state without grad: the fused path returns no stray gradients."""
    m = MLSTMF(2, 3, memory_length=5)
    m.weight_hh_l0.requires_grad_(False)
    out, _ = m(torch.randn(20, 2, 2))
    out.sum().backward()
    assert m.weight_hh_l0.grad is None
    assert m.weight_ih_l0.grad is not None and m.d_logit_l0.grad is not None


def test_fused_output_modified_in_place_is_caught_by_autograd():
    """The output shares memory with what the backward reads; in-place edits must not pass."""
    m = MLSTMF(2, 3, memory_length=4)
    out, _ = m(torch.randn(6, 1, 2))
    out.mul_(2.0)  # allowed, as after nn.LSTM (e.g. an in-place dropout or activation) ...
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()  # ... but the gradient that needed the old values is refused


@pytest.mark.parametrize("cls", [MRNN, MRNNF, MLSTM, MLSTMF])
@pytest.mark.parametrize("shape", [(0, 2, 3), (4, 0, 3), (0, 3)])
def test_empty_sequences_give_the_same_clear_error_in_every_layer(cls, shape):
    layer = cls(3, 4, memory_length=5)
    with pytest.raises(ValueError, match="length >= 1 and a batch >= 1"):
        layer(torch.zeros(shape))
