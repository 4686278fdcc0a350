"""ARFIMA simulator, d estimators and offline series."""

import numpy as np
import pytest
from scipy import signal

from adaptlearn.data.arfima import (
    REAL_SERIES,
    fi_autocovariance,
    fi_one_step_forecast,
    frac_diff,
    gph_estimate,
    load_real_series,
    local_whittle_estimate,
    simulate_arfima,
)


@pytest.mark.parametrize("method", ["davies-harte", "ma"])
@pytest.mark.parametrize("d", [0.2, 0.4])
def test_gph_recovers_d_within_0_1(method, d):
    x = simulate_arfima(2**15, d, method=method, rng=7)
    assert gph_estimate(x, bandwidth_power=0.6) == pytest.approx(d, abs=0.1)


def test_gph_recovers_d_with_an_arma_part_after_burn_in():
    x = simulate_arfima(2**15, 0.3, ar=(0.5,), ma=(-0.2,), rng=3)
    assert gph_estimate(x, bandwidth_power=0.5) == pytest.approx(0.3, abs=0.1)
    assert local_whittle_estimate(x, bandwidth_power=0.5) == pytest.approx(0.3, abs=0.1)


def test_davies_harte_is_exact_in_its_autocorrelations():
    # mean known (zero): average lagged products over many series estimate gamma(k) unbiasedly
    xs = np.stack([simulate_arfima(256, 0.4, rng=s) for s in range(2000)])
    g = fi_autocovariance(0.4, 4)
    assert g[1] / g[0] == pytest.approx(0.4 / 0.6)  # rho(1) = d / (1 - d)
    emp = [np.mean(xs * xs)] + [np.mean(xs[:, :-k] * xs[:, k:]) for k in (1, 2, 3)]
    np.testing.assert_allclose(emp, g, rtol=0.05)
    # short-memory check of the ARMA filter alone: AR(1) with d = 0 has rho(1) = phi
    x = simulate_arfima(20000, 0.0, ar=(0.6,), rng=1)
    assert np.corrcoef(x[:-1], x[1:])[0, 1] == pytest.approx(0.6, abs=0.03)


def test_seeded_and_generator_reproducible():
    a = simulate_arfima(500, 0.3, ar=(0.2,), rng=5)
    b = simulate_arfima(500, 0.3, ar=(0.2,), rng=np.random.default_rng(5))
    c = simulate_arfima(500, 0.3, ar=(0.2,), rng=6)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.shape == (500,) and a.dtype == np.float64


def test_frac_diff_inverts_and_forecast_matches_a_loop():
    x = np.random.default_rng(0).normal(size=300)
    np.testing.assert_allclose(frac_diff(frac_diff(x, 0.4), -0.4), x, atol=1e-9)
    p = fi_one_step_forecast(x, 0.3, length=20)
    w = np.r_[1.0, np.cumprod((np.arange(1, 21) - 1 - 0.3) / np.arange(1, 21))]
    t = 57
    assert p[t] == pytest.approx(-sum(w[j] * x[t + 1 - j] for j in range(1, 21)))
    # the MA(inf) form: (1 - B)^-d applied to noise equals a causal filter of psi weights
    np.testing.assert_allclose(
        frac_diff(x, -0.3, 10),
        signal.lfilter(
            np.r_[1.0, np.cumprod((np.arange(1, 11) - 1 + 0.3) / np.arange(1, 11))], [1.0], x
        ),
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0, "d": 0.3}, "`n` of simulate_arfima"),
        ({"n": 10, "d": 0.5}, "`d` of simulate_arfima"),
        ({"n": 10, "d": 0.3, "ar": (1.2,)}, "`ar` of simulate_arfima"),
        ({"n": 10, "d": 0.3, "method": "exact"}, "`method` of simulate_arfima"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_arfima(**kwargs)


def test_real_series_load_offline_and_nile_has_long_memory(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    lengths = {name: len(load_real_series(name)) for name in REAL_SERIES}
    assert lengths == {"nile": 100, "sunspots": 309}
    nile = load_real_series("nile")
    assert np.isfinite(nile).all() and nile.min() > 0
    assert 0.2 < local_whittle_estimate(nile) < 0.5  # Hurst's classic: H ~ 0.9, d ~ 0.4
    with pytest.raises(ValueError, match="`name` of load_real_series"):
        load_real_series("dow")


def test_arfima_forecast_is_the_recursive_forecast_and_reaches_the_theoretical_error():
    from adaptlearn.data.arfima import arfima_forecast, arfima_psi

    x = simulate_arfima(3000, 0.4, ar=(0.5,), rng=1)
    preds = arfima_forecast(x[:200], (1, 3), d=0.4, ar=(0.5,))
    # one-step: the FI(d) forecast of the AR-filtered series, as fi_one_step_forecast gives it
    u = signal.lfilter([1.0, -0.5], [1.0], x[:200])
    expect = fi_one_step_forecast(u, 0.4) + 0.5 * x[:200]
    assert preds[1] == pytest.approx(expect, abs=1e-9)
    # the h-step forecast is the one-step forecast iterated on its own predictions
    t = 150
    path = list(x[: t + 1])
    for _ in range(3):
        path.append(arfima_forecast(np.asarray(path), (1,), d=0.4, ar=(0.5,))[1][-1])
    assert preds[3][t] == pytest.approx(path[-1], rel=1e-9, abs=1e-9)
    # with the true model the h-step error variance is sum_{j<h} psi_j^2 (sigma = 1)
    full = arfima_forecast(x, (1, 10), d=0.4, ar=(0.5,))
    psi = arfima_psi(10, 0.4, (0.5,))
    for h in (1, 10):
        err = x[1000 + h :] - full[h][1000:-h]
        assert np.sqrt(np.mean(err**2)) == pytest.approx(np.sqrt(np.sum(psi[:h] ** 2)), rel=0.1)
    with pytest.raises(ValueError, match="`horizons` of arfima_forecast"):
        arfima_forecast(x, (0,))
