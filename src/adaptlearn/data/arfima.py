"""ARFIMA(p, d, q) simulation, memory-parameter estimators, and offline long-memory series.

``phi(B) (1 - B)^d x_t = theta(B) eps_t`` with ``phi(B) = 1 - phi_1 B - ... - phi_p B^p`` and
``theta(B) = 1 + theta_1 B + ... + theta_q B^q`` (statsmodels' sign conventions).

Everything is NumPy/SciPy; real series come from datasets shipped inside statsmodels (no network).

References:
    Granger & Joyeux (1980), Hosking (1981): ARFIMA. Davies & Harte (1987): exact Gaussian
    simulation by circulant embedding. Geweke & Porter-Hudak (1983): log-periodogram estimator.
    Robinson (1995): local Whittle estimator. Zhao et al., "Do RNN and LSTM have Long Memory?",
    ICML 2020 (the forecasting experiments this data feeds).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import optimize, signal

__all__ = [
    "REAL_SERIES",
    "arfima_forecast",
    "arfima_psi",
    "fi_autocovariance",
    "fi_one_step_forecast",
    "frac_diff",
    "frac_weights_np",
    "gph_estimate",
    "load_real_series",
    "local_whittle_estimate",
    "simulate_arfima",
]

REAL_SERIES = ("nile", "sunspots")
"""Offline real series: Nile annual flow 1871-1970 (n=100), yearly sunspots 1700-2008 (n=309)."""


def frac_weights_np(d: float, length: int) -> np.ndarray:
    """``w_0..w_{K}`` of ``(1 - B)^d`` (``w_0 = 1``, ``w_j = w_{j-1} (j - 1 - d) / j``), float64."""
    j = np.arange(1, length + 1, dtype=np.float64)
    return np.concatenate([[1.0], np.cumprod((j - 1 - d) / j)])


def frac_diff(x: np.ndarray, d: float, length: int | None = None) -> np.ndarray:
    """``(1 - B)^d x_t`` truncated at ``length`` lags (default: all available), zero before t=0."""
    x = np.asarray(x, dtype=np.float64)
    k = len(x) - 1 if length is None else int(length)
    return signal.fftconvolve(x, frac_weights_np(d, k))[: len(x)]


def fi_autocovariance(d: float, n: int, sigma: float = 1.0) -> np.ndarray:
    """Autocovariances ``gamma(0..n-1)`` of FI(d): ``gamma(0) = s^2 G(1-2d)/G(1-d)^2``, then
    ``gamma(k) = gamma(k-1) (k-1+d)/(k-d)``."""
    from math import gamma

    g = np.empty(n)
    g[0] = sigma**2 * gamma(1 - 2 * d) / gamma(1 - d) ** 2
    k = np.arange(1, n, dtype=np.float64)
    g[1:] = g[0] * np.cumprod((k - 1 + d) / (k - d))
    return g


def simulate_arfima(
    n: int,
    d: float,
    *,
    ar: Sequence[float] = (),
    ma: Sequence[float] = (),
    sigma: float = 1.0,
    method: str = "davies-harte",
    burn_in: int = 1000,
    truncation: int = 5000,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Simulate ``n`` values of a zero-mean Gaussian ARFIMA(p, d, q) process.

    Args:
        n: length of the returned series.
        d: memory parameter, ``-0.5 < d < 0.5`` (stationary and invertible).
        ar: ``phi_1..phi_p`` (stationary AR polynomial required).
        ma: ``theta_1..theta_q``.
        sigma: standard deviation of the innovations.
        method: ``"davies-harte"`` draws the FI(d) part exactly (circulant embedding of its
            autocovariance); ``"ma"`` filters white noise through ``(1 - B)^{-d}`` truncated at
            ``truncation`` lags (the MA(inf) form), starting ``burn_in + truncation`` steps early.
        burn_in: steps discarded after the ARMA filter starts (both methods) so its zero initial
            condition is forgotten.
        truncation: MA lags of the ``"ma"`` method (at d = 0.4, 5000 lags keep ~91% of the
            variance).
        rng: a ``numpy.random.Generator`` or a seed.

    Returns:
        float64 array of shape ``(n,)``.
    """
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"`n` of simulate_arfima must be an int >= 1; got {n!r}")
    if not -0.5 < d < 0.5:
        raise ValueError(f"`d` of simulate_arfima must be a float in (-0.5, 0.5); got {d!r}")
    if method not in ("davies-harte", "ma"):
        raise ValueError(
            f"`method` of simulate_arfima must be 'davies-harte' or 'ma'; got {method!r}"
        )
    if sigma <= 0:
        raise ValueError(f"`sigma` of simulate_arfima must be > 0; got {sigma!r}")
    ar_poly = np.r_[1.0, -np.asarray(ar, dtype=np.float64)]
    if len(ar_poly) > 1 and np.any(np.abs(np.roots(ar_poly[::-1])) <= 1.0):
        raise ValueError(
            f"`ar` of simulate_arfima must define a stationary AR polynomial; got {ar!r}"
        )
    ma_poly = np.r_[1.0, np.asarray(ma, dtype=np.float64)]
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    total = n + (burn_in if (len(ar_poly) > 1 or len(ma_poly) > 1) else 0)
    if method == "davies-harte":
        fi = _davies_harte(total, d, sigma, gen)
    else:
        eps = gen.normal(0.0, sigma, size=total + truncation)
        psi = frac_weights_np(-d, truncation)
        fi = signal.fftconvolve(eps, psi)[truncation : truncation + total]
    x = signal.lfilter(ma_poly, ar_poly, fi)
    return x[total - n :]


def _davies_harte(n: int, d: float, sigma: float, gen: np.random.Generator) -> np.ndarray:
    if d == 0:
        return gen.normal(0.0, sigma, size=n)
    m = 2 * n  # embed in a circulant of size 2n (n >= 2 values from gamma(0..n))
    g = fi_autocovariance(d, n + 1, sigma)
    c = np.concatenate([g, g[-2:0:-1]])
    lam = np.fft.fft(c).real
    if lam.min() < -1e-8 * lam.max():
        raise RuntimeError("circulant embedding is not non-negative definite")
    lam = np.clip(lam, 0.0, None)
    z = gen.normal(size=m) + 1j * gen.normal(size=m)
    y = np.fft.fft(np.sqrt(lam / m) * z)
    del c
    return y.real[:n]


def _periodogram(x: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    f = np.fft.rfft(x - x.mean())
    j = np.arange(1, m + 1)
    lam = 2 * np.pi * j / n
    i_lam = np.abs(f[1 : m + 1]) ** 2 / (2 * np.pi * n)
    return lam, i_lam


def gph_estimate(x: np.ndarray, bandwidth_power: float = 0.5) -> float:
    """Geweke-Porter-Hudak log-periodogram estimate of ``d``.

    Regress ``log I(lambda_j)`` on ``-log(4 sin^2(lambda_j / 2))`` over the first
    ``m = n^bandwidth_power`` Fourier frequencies; the slope is ``d``.
    """
    n = len(x)
    m = max(4, int(n**bandwidth_power))
    lam, i_lam = _periodogram(x, m)
    reg = -np.log(4 * np.sin(lam / 2) ** 2)
    slope = np.polyfit(reg, np.log(i_lam), 1)[0]
    return float(slope)


def local_whittle_estimate(x: np.ndarray, bandwidth_power: float = 0.65) -> float:
    """Robinson's local Whittle estimate of ``d`` in ``(-0.49, 0.49)`` with ``m = n^power``."""
    n = len(x)
    m = max(4, int(n**bandwidth_power))
    lam, i_lam = _periodogram(x, m)
    log_lam = np.log(lam)

    def objective(d: float) -> float:
        return float(np.log(np.mean(lam ** (2 * d) * i_lam)) - 2 * d * log_lam.mean())

    res = optimize.minimize_scalar(objective, bounds=(-0.49, 0.49), method="bounded")
    return float(res.x)


def fi_one_step_forecast(x: np.ndarray, d: float, length: int | None = None) -> np.ndarray:
    """One-step FI(d) predictions ``xhat_{t+1} = -sum_{j=1..K} w_j(d) x_{t+1-j}``.

    Returns an array ``p`` with ``p[t]`` the forecast of ``x[t+1]`` from ``x[:t+1]`` (length n).
    """
    x = np.asarray(x, dtype=np.float64)
    k = len(x) if length is None else int(length)
    a = -frac_weights_np(d, k)[1:]  # a_j = |w_j|, j = 1..K
    return signal.fftconvolve(x, a)[: len(x)]


def arfima_psi(
    length: int, d: float = 0.0, ar: Sequence[float] = (), ma: Sequence[float] = ()
) -> np.ndarray:
    """MA(inf) weights ``psi_0..psi_{length-1}`` of ARFIMA(p, d, q):
    ``x_t = sum_j psi_j eps_{t-j}``, ``psi(B) = theta(B) / (phi(B) (1 - B)^d)``."""
    impulse = np.zeros(int(length))
    impulse[0] = 1.0
    ar_poly = np.r_[1.0, -np.asarray(ar, dtype=np.float64)]
    ma_poly = np.r_[1.0, np.asarray(ma, dtype=np.float64)]
    return signal.lfilter(ma_poly, ar_poly, frac_diff(impulse, -d))


def arfima_forecast(
    x: np.ndarray,
    horizons: Sequence[int],
    *,
    d: float = 0.0,
    ar: Sequence[float] = (),
    ma: Sequence[float] = (),
    mean: float = 0.0,
) -> dict[int, np.ndarray]:
    """Multi-step forecasts of an ARFIMA(p, d, q) model from every origin (all of the past).

    The innovations are recovered as ``eps = theta(B)^-1 phi(B) (1 - B)^d (x - mean)`` (values
    before ``t = 0`` taken as the mean, so the recursion is exact on the observed stretch), and
    ``xhat_{t+h|t} = mean + sum_{j>=h} psi_j eps_{t+h-j}`` drops the innovations after ``t``:
    the model's best linear forecast given ``x_0..x_t``. With the true parameters this is the
    true-model (oracle) predictor; with ``d = 0`` and fitted ARMA parameters, ARIMA's.

    Args:
        x: the series ``(n,)``.
        horizons: steps ahead ``h >= 1``.
        d, ar, ma: the model (``phi(B) (1 - B)^d (x - mean) = theta(B) eps``; ``theta`` must be
            invertible).
        mean: the process mean.

    Returns:
        ``{h: p}`` with ``p[t]`` the forecast of ``x[t + h]`` made at ``t`` (length n; entries
        with ``t + h >= n`` forecast beyond the data).
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if any(int(h) < 1 for h in horizons):
        raise ValueError(f"`horizons` of arfima_forecast must be ints >= 1; got {horizons!r}")
    ar_poly = np.r_[1.0, -np.asarray(ar, dtype=np.float64)]
    ma_poly = np.r_[1.0, np.asarray(ma, dtype=np.float64)]
    eps = signal.lfilter(ar_poly, ma_poly, frac_diff(x - mean, d))
    psi = arfima_psi(n + max(horizons), d, ar, ma)
    return {int(h): mean + signal.fftconvolve(eps, psi[h : h + n])[:n] for h in horizons}


def load_real_series(name: str) -> np.ndarray:
    """An offline real series from statsmodels' bundled datasets (no network).

    Args:
        name: ``"nile"`` (annual Nile flow at Aswan, 1871-1970, the classic long-memory example)
            or ``"sunspots"`` (yearly sunspot numbers 1700-2008).

    Returns:
        float64 array.
    """
    if name not in REAL_SERIES:
        raise ValueError(f"`name` of load_real_series must be one of {REAL_SERIES}; got {name!r}")
    from statsmodels import datasets

    if name == "nile":
        return datasets.nile.load_pandas().data["volume"].to_numpy(dtype=np.float64)
    return datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64)
