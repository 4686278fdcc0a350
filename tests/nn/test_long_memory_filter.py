"""The fractional filter: closed form, polynomial decay, mass, gradients."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from adaptlearn.nn import filter_mass, fractional_weights, fractional_weights_gamma
from adaptlearn.nn.filter import poly_weight_table


@pytest.mark.parametrize("d", [0.05, 0.25, 0.4, 0.49, -0.3, 0.7])
def test_weights_match_gamma_closed_form(d):
    w = fractional_weights(torch.tensor(d, dtype=torch.float64), 300)
    ref = torch.tensor(fractional_weights_gamma(d, 300), dtype=torch.float64)
    torch.testing.assert_close(w, ref, rtol=1e-10, atol=0)


@pytest.mark.parametrize("d", [0.1, 0.25, 0.4])
def test_weights_decay_polynomially_like_gamma_asymptote(d):
    k = 4000
    w = fractional_weights(torch.tensor(d, dtype=torch.float64), k).abs()
    j = torch.arange(1, k + 1, dtype=torch.float64)
    # |w_j| ~ j^(-d-1) / |Gamma(-d)|
    ratio = w[-1] * j[-1] ** (d + 1) * abs(math.gamma(-d))
    assert ratio == pytest.approx(1.0, rel=2e-3)
    # log-log slope between lags 1000 and 4000 is -(d+1): polynomial, not geometric
    slope = (w[3999].log() - w[999].log()) / (math.log(4000) - math.log(1000))
    assert float(slope) == pytest.approx(-(d + 1), abs=2e-3)
    # a geometric decay would have w_{2j}/w_j -> 0; here it tends to 2^-(d+1)
    assert float(w[1999] / w[999]) == pytest.approx(2 ** (-(d + 1)), rel=1e-3)


@given(d=st.floats(0.01, 0.49), k=st.integers(1, 60))
def test_recursion_sign_and_mass(d, k):
    w = fractional_weights(torch.tensor(d, dtype=torch.float64), k)
    assert w[0] == pytest.approx(-d)
    j = torch.arange(2, k + 1, dtype=torch.float64)
    if k > 1:
        torch.testing.assert_close(w[1:], w[:-1] * (j - 1 - d) / j)
    assert bool((w < 0).all())
    assert 0 < float(w.abs().sum()) < 1


def test_filter_mass_values_from_the_spec():
    assert filter_mass(0.1, 100) == pytest.approx(0.41, abs=0.01)
    assert filter_mass(0.25, 100) == pytest.approx(0.74, abs=0.01)
    assert filter_mass(0.4, 100) == pytest.approx(0.89, abs=0.01)
    assert filter_mass(0.4, 25) == pytest.approx(0.82, abs=0.01)
    assert filter_mass(0.4999, 100) < 0.945
    assert filter_mass(0.4, 10_000) > filter_mass(0.4, 100)


def test_batched_shapes_and_derivative_formula():
    d = torch.tensor([[0.1, 0.3, 0.45]], dtype=torch.float64, requires_grad=True)
    k = 30
    w = fractional_weights(d, k)
    assert w.shape == (1, 3, k)
    (grad,) = torch.autograd.grad(w[0, 1].sum(), d)
    # dw_j/dd = w_j (1/d - sum_{i<j} 1/(i - d))
    dv = 0.3
    wj = w[0, 1].detach()
    inv = torch.tensor([1 / (i - dv) for i in range(1, k)], dtype=torch.float64)
    r = 1 / dv - torch.cat([torch.zeros(1, dtype=torch.float64), inv.cumsum(0)])
    assert float(grad[0, 1]) == pytest.approx(float((wj * r).sum()), rel=1e-10)
    assert grad[0, 0] == 0 and grad[0, 2] == 0


def test_gradcheck_in_d():
    d = torch.tensor([0.05, 0.3, 0.49], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: fractional_weights(x, 12), (d,))


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_length_is_validated(bad):
    with pytest.raises(ValueError, match="`length` of fractional_weights"):
        fractional_weights(0.3, bad)


def test_memory_weights_closed_form_backward_matches_autograd_and_gradchecks():
    from adaptlearn.nn.filter import memory_weights

    d = torch.tensor([[0.0, 0.01, 0.25], [0.4, 0.49, 0.1]], dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, 20, dtype=torch.float64)
    torch.testing.assert_close(memory_weights(d, 20), fractional_weights(d, 20))
    (a,) = torch.autograd.grad((memory_weights(d, 20) * g).sum(), d)
    (b,) = torch.autograd.grad((fractional_weights(d, 20) * g).sum(), d)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda x: memory_weights(x, 9), (d.detach()[:, 1:].clone().requires_grad_(),)
    )


@pytest.mark.parametrize(("length", "tol"), [(25, 1e-6), (100, 1e-6), (100, 1e-12), (300, 1e-9)])
def test_poly_weight_table_picks_the_smallest_degree_within_tolerance(length, tol):
    d = torch.linspace(0.0, 0.5, 777, dtype=torch.float64)  # not the selection grid
    exact = fractional_weights(d, length)

    def err(table):
        powers = (4 * d - 1).unsqueeze(-1) ** torch.arange(table.shape[0], dtype=torch.float64)
        return float((powers @ table - exact).abs().sum(-1).max())

    table = poly_weight_table(length, None, tol=tol)
    assert err(table) <= 1.5 * tol
    assert err(poly_weight_table(length, table.shape[0] - 2)) > tol  # one degree less fails
