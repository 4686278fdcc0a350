"""``nn.LSTM`` habits of the long-memory layers, and every layer training on every device (#24)."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from adaptlearn.nn import (
    MLSTM,
    MLSTMF,
    MRNN,
    MRNNF,
    MLSTMFState,
    MLSTMState,
    RecurrentRegressor,
    fractional_weights,
)
from adaptlearn.nn.filter import poly_weight_table

F64 = torch.float64
# every layer on every path that trains: (class, memory_impl, dynamic_filter)
TRAIN_PATHS = [
    (MRNN, "store", None),
    (MRNNF, "store", None),
    (MLSTMF, "fused", None),
    (MLSTMF, "store", None),
    (MLSTM, "fused", "poly"),
    (MLSTM, "fused", "exact"),
    (MLSTM, "store", "poly"),
    (MLSTM, "store", "exact"),
]
TRAIN_IDS = [f"{c.__name__}-{i}" + (f"-{f}" if f else "") for c, i, f in TRAIN_PATHS]


def _layer(cls, impl, filt, **kw):
    if filt is not None:
        kw["dynamic_filter"] = filt
    return cls(2, 4, memory_length=5, memory_impl=impl, **kw)


@pytest.mark.parametrize(("cls", "impl", "filt"), TRAIN_PATHS, ids=TRAIN_IDS)
def test_every_layer_trains_on_every_device(cls, impl, filt, any_device):
    """Forward + backward in training mode on ``any_device``; same numbers as on the CPU."""
    torch.manual_seed(0)
    cpu = _layer(cls, impl, filt).train()
    dev = _layer(cls, impl, filt, device=any_device).train()
    dev.load_state_dict(cpu.state_dict())
    assert all(p.device.type == any_device.type for p in dev.parameters())
    x = torch.randn(40, 3, 2)  # longer than K and than two 16-step blocks of the fused path
    outs = []
    for m in (cpu, dev):
        xi = x.to(any_device).requires_grad_()
        out, state = m(xi)
        loss = out.square().mean() + sum(s.square().mean() for s in state)
        loss.backward()
        assert out.device.type == any_device.type
        assert all(s.device.type == any_device.type for s in state)
        assert xi.grad is not None and torch.isfinite(xi.grad).all()
        grads = [p.grad for p in m.parameters()]
        assert all(g is not None and g.device.type == any_device.type for g in grads)
        outs.append((out.detach().cpu(), [g.cpu() for g in grads]))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-4, atol=1e-5)
    for g_dev, g_cpu in zip(outs[1][1], outs[0][1], strict=True):
        torch.testing.assert_close(g_dev, g_cpu, rtol=1e-3, atol=1e-5)
    # a second chunk continues from the device state
    out2, _ = dev(x.to(any_device), state)
    assert out2.device.type == any_device.type


@pytest.mark.parametrize("kind", ["mrnnf", "mrnn", "mlstmf", "mlstm"])
def test_regressor_and_filter_helpers_take_a_device(kind, any_device):
    torch.manual_seed(0)
    model = RecurrentRegressor(kind, 1, 3, memory_length=4, device=any_device).train()
    y, _ = model(torch.randn(2, 7, 1, device=any_device))
    y.sum().backward()
    assert y.device.type == any_device.type
    assert fractional_weights(0.3, 4, device=any_device).device.type == any_device.type
    assert poly_weight_table(4, 5, device=any_device).device.type == any_device.type


@pytest.mark.parametrize("cls", [MLSTM, MLSTMF])
def test_out_state_and_lstm_style_h_c_like_nn_lstm(cls):
    torch.manual_seed(0)
    m = cls(2, 3, num_layers=2, memory_length=4, dtype=F64)
    x = torch.randn(6, 5, 2, dtype=F64)
    out, state = m(x)  # nn.LSTM's `out, state = lstm(x)`
    lstm_out, (h_n, c_n) = nn.LSTM(2, 3, num_layers=2, dtype=F64)(x)
    assert out.shape == lstm_out.shape
    assert state.h.shape == h_n.shape and state.c.shape == c_n.shape
    torch.testing.assert_close(state.c, state.cells[:, :, -1])
    # nn.LSTM's (h_0, c_0): c_0 becomes the newest cell, older cells (and d) are zero
    h0 = torch.randn(2, 5, 3, dtype=F64)
    c0 = torch.randn(2, 5, 3, dtype=F64, requires_grad=True)
    full = m.initial_state(5)
    full.cells[:, :, -1] = c0.detach()
    full = full._replace(h=h0)
    out_hc, st_hc = m(x, (h0, c0))
    torch.testing.assert_close(out_hc, m(x, full)[0], rtol=0, atol=0)
    assert isinstance(st_hc, cls.state_type)
    out_hc.sum().backward()
    assert c0.grad is not None and c0.grad.abs().sum() > 0
    # unbatched (h_0, c_0) of shape (L, H)
    out_u, _ = m(x[:, 0], (h0[:, 0], c0[:, 0].detach()))
    torch.testing.assert_close(out_u, out_hc[:, 0].detach())


def test_mlstmf_state_unpacks_as_h_c_and_feeds_back():
    torch.manual_seed(0)
    m = MLSTMF(2, 3, memory_length=4, dtype=F64)
    x = torch.randn(8, 2, 2, dtype=F64)
    out, (h, cells) = m(x[:5])  # `out, (h, c) = lstm(x)` works; c carries the K-cell history
    assert isinstance(m(x[:5])[1], MLSTMFState)
    out2, _ = m(x[5:], (h, cells))
    torch.testing.assert_close(torch.cat([out, out2]), m(x)[0], rtol=0, atol=1e-12)


def test_packed_sequences_and_wrong_states_give_clear_type_errors():
    x = torch.randn(2, 6, 2)
    packed = pack_padded_sequence(x, torch.tensor([6, 4]), batch_first=True)
    for cls in (MRNN, MRNNF, MLSTM, MLSTMF):
        m = cls(2, 3, memory_length=4)
        with pytest.raises(TypeError, match=f"{cls.__name__} does not accept a PackedSequence"):
            m(packed)
        with pytest.raises(TypeError, match="must be a Tensor"):
            m(x.tolist())
        with pytest.raises(TypeError, match=f"state of {cls.__name__} must be a {cls.__name__}"):
            m(x, torch.zeros(1, 2, 3))  # a bare h_0 as for nn.RNN
    h0, c0 = torch.zeros(1, 6, 3), torch.zeros(1, 6, 3)
    with pytest.raises(TypeError, match="MRNN layers have no cell state"):
        MRNN(2, 3, memory_length=4)(x, (h0, c0))
    with pytest.raises(TypeError, match=r"MLSTMState\(h, d, cells\).*got a tuple of 4"):
        MLSTM(2, 3, memory_length=4)(x, (h0, h0, c0, c0))
    with pytest.raises(TypeError, match="tuple of Tensors"):
        MLSTM(2, 3, memory_length=4)(x, (h0, None))
    # shapes keep their ValueError naming the field
    with pytest.raises(ValueError, match=r"state.h of MLSTM must have shape \(1, 6, 3\)"):
        MLSTM(2, 3, memory_length=4)(x, (torch.zeros(1, 2, 3), torch.zeros(1, 2, 3)))
    assert MLSTMState._fields == ("h", "d", "cells")
