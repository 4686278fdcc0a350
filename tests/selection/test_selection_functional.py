"""Pure selection functions and the loss history."""

from collections import deque

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from adaptlearn.selection import (
    LossHistory,
    expected_selection_rate,
    loss_percentiles,
    persistence_weights,
    rescale_to_mean,
    selection_probabilities,
)

finite = st.floats(0.0, 50.0, allow_nan=False, width=32)


@given(arrays(np.float32, st.integers(1, 40), elements=finite),
       arrays(np.float32, st.integers(0, 60), elements=finite))
def test_percentiles_match_strict_brute_force(losses, history):
    pct = loss_percentiles(torch.from_numpy(losses), torch.from_numpy(history))
    if history.size == 0:
        assert torch.all(pct == 0)
        return
    expected = (history[None, :] < losses[:, None]).mean(axis=1)
    np.testing.assert_allclose(pct.numpy(), expected, atol=1e-6)


@given(st.lists(finite, min_size=2, max_size=40, unique=True),
       arrays(np.float32, st.integers(1, 60), elements=finite),
       st.floats(0.0, 6.0))
def test_probabilities_monotone_in_loss_and_in_unit_interval(loss_list, history, beta):
    losses = np.asarray(loss_list, dtype=np.float32)
    p = selection_probabilities(torch.from_numpy(losses), torch.from_numpy(history), beta)
    assert torch.all((p >= 0) & (p <= 1))
    order = np.argsort(losses)
    assert torch.all(torch.diff(p[torch.from_numpy(order)]) >= 0)


def test_p_min_floor_and_beta_zero_selects_all():
    losses, hist = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.5, 1.5, 2.5])
    assert selection_probabilities(losses, hist, 3.0, p_min=0.1)[0] == pytest.approx(0.1)
    assert torch.all(selection_probabilities(losses, hist, 0.0) == 1.0)


def test_bad_beta_is_rejected_by_name():
    with pytest.raises(ValueError, match="`beta` must be a float in \\[0, inf\\); got -1"):
        selection_probabilities(torch.zeros(2), torch.zeros(2), -1.0)


@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0])
def test_expected_rate(beta):
    assert expected_selection_rate(beta) == pytest.approx(1 / (beta + 1))


@given(st.integers(1, 12), st.lists(st.lists(finite, min_size=0, max_size=20), max_size=12))
def test_history_is_a_fifo_and_never_returns_unwritten_slots(size, chunks):
    hist, ref = LossHistory(size), deque(maxlen=size)
    for chunk in chunks:
        hist.extend(torch.tensor(chunk, dtype=torch.float32))
        ref.extend(np.float32(c) for c in chunk)
        assert len(hist) == len(ref)
        assert sorted(hist.values().tolist()) == sorted(float(v) for v in ref)


def test_history_state_dict_round_trip(tmp_path):
    h = LossHistory(5)
    h.extend(torch.arange(7.0))
    torch.save(h.state_dict(), tmp_path / "h.pt")
    g = LossHistory(5)
    g.load_state_dict(torch.load(tmp_path / "h.pt", weights_only=True))
    for x in (h, g):
        x.extend(torch.tensor([10.0, 11.0]))
    assert sorted(g.values().tolist()) == sorted(h.values().tolist()) == [4, 5, 6, 10, 11]
    with pytest.raises(ValueError, match="size mismatch"):
        LossHistory(4).load_state_dict(h.state_dict())


@given(arrays(np.float32, st.integers(1, 30), elements=st.floats(0, 1, width=32)))
def test_persistence_weights_bounded_and_monotone(s):
    w = persistence_weights(torch.from_numpy(s), threshold=0.8, gamma=2.0, min_weight=0.05)
    assert torch.all((w >= 0.05) & (w <= 1.0))
    order = torch.from_numpy(np.argsort(s, kind="stable"))
    assert torch.all(torch.diff(w[order]) <= 1e-7)
    assert torch.all(w[torch.from_numpy(s) < 0.8 - 1e-6] == 1.0)


def test_rescale_to_mean_hits_target_when_no_cap_binds():
    p = torch.tensor([0.1, 0.2, 0.3])
    assert float(rescale_to_mean(p, 0.3).mean()) == pytest.approx(0.3)
    assert float(rescale_to_mean(p, 0.9).max()) == 1.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_percentiles_accept_every_float_dtype(dtype):
    losses = torch.tensor([0.5, 1.5, 3.0], dtype=dtype)
    history = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=dtype)
    pct = loss_percentiles(losses, history)
    assert pct.dtype == torch.float32
    assert pct.tolist() == [0.25, 0.5, 0.75]  # strict "<": the tie at 3.0 is not below


def test_history_values_are_a_copy():
    h = LossHistory(4)
    h.extend(torch.tensor([1.0, 2.0]))
    v = h.values()
    v[0] = 100.0
    assert sorted(h.values().tolist()) == [1.0, 2.0]
    with pytest.raises(ValueError):
        h.filled()[0] = 5.0  # the no-copy view is read-only
