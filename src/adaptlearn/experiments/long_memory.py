"""``long-memory``: one-step forecasting with RNN/LSTM vs MRNN(-F)/MLSTM(-F) on long-memory series.

The paper's time-series protocol at small scale: a series is split in time into
train/validation/test; each network reads ``x_t`` and predicts ``x_{t+1}``; it is trained on random
windows of the training segment (loss after a warm-up), evaluated by running the *whole* series
from ``t = 0`` with the state carried, the best-validation weights are kept, and test RMSE, MAE
and MAPE are reported on the original scale, mean and std over seeds. Classical baselines fitted
on the training segment: statsmodels ARIMA, a two-step ARFIMA (local-Whittle ``d`` + statsmodels
ARMA on the fractionally differenced series), the training mean and, on the simulated series,
the oracle one-step predictor with the true ARFIMA(p, d, 0) parameters.

References:
    Zhao et al., "Do RNN and LSTM have Long Memory?", ICML 2020, Sec. 5 (time-series forecasting).
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from adaptlearn.core import (
    RunContext,
    Trial,
    TrialContext,
    check_choice,
    check_int,
    check_range,
    new_figure,
    plot_curves,
    register,
)

NETWORKS = ("rnn", "lstm", "mrnnf", "mrnn", "mlstmf", "mlstm")
PAIRS = (("mrnnf", "rnn"), ("mrnn", "rnn"), ("mlstmf", "lstm"), ("mlstm", "lstm"))
LABELS = {
    "rnn": "RNN",
    "lstm": "LSTM",
    "mrnnf": "MRNN-F",
    "mrnn": "MRNN",
    "mlstmf": "MLSTM-F",
    "mlstm": "MLSTM",
    "arima": "ARIMA",
    "arfima": "ARFIMA (2-step)",
    "oracle": "ARFIMA oracle",
    "mean": "train mean",
}


@dataclass
class LongMemoryConfig:
    """Config of the long-memory forecasting experiment (defaults = ``quick``)."""

    datasets: tuple[str, ...] = ("arfima", "nile")
    """Series: ``arfima`` (simulated), ``nile`` and/or ``sunspots`` (statsmodels, offline)."""
    methods: tuple[str, ...] = NETWORKS
    """Networks to train (subset of rnn, lstm, mrnnf, mrnn, mlstmf, mlstm)."""
    n_seeds: int = 3
    """Seeds per network and dataset (initialisation and window sampling)."""
    arfima_n: int = 1000
    """Length of the simulated series."""
    arfima_d: float = 0.4
    """Memory parameter d of the simulated series."""
    arfima_ar: tuple[float, ...] = (0.5,)
    """AR coefficients phi_1..phi_p of the simulated series."""
    arfima_ma: tuple[float, ...] = ()
    """MA coefficients theta_1..theta_q of the simulated series."""
    data_seed: int = 2024
    """Seed of the simulated series (fixed across trials)."""
    train_frac: float = 0.6
    """Share of the series used for training (the rest is split val/test equally)."""
    hidden_size: int = 8
    """Hidden units of every network."""
    memory_length_mrnn: int = 100
    """Truncation lag K of MRNN/MRNN-F (slides: 100)."""
    memory_length_mlstm: int = 25
    """Truncation lag K of MLSTM/MLSTM-F (slides: 25)."""
    iterations: int = 50
    """Adam steps per trial."""
    batch_size: int = 8
    """Training windows per step."""
    window: int = 160
    """Length of a training window (the whole training segment if longer)."""
    warmup: int = 40
    """Steps at the start of each window excluded from the loss (state is zero there)."""
    lr: float = 0.01
    """Adam learning rate (the reference code's value)."""
    eval_every: int = 10
    """Iterations between validation runs (best-validation weights are kept)."""
    arima_order: tuple[int, ...] = (2, 0, 1)
    """(p, d, q) of the statsmodels ARIMA baseline."""

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field."""
        o = "LongMemoryConfig"
        if not self.datasets:
            raise ValueError(f"`datasets` of {o} must not be empty")
        for ds in self.datasets:
            check_choice("datasets", ds, ("arfima", "nile", "sunspots"), owner=o)
        if not self.methods:
            raise ValueError(f"`methods` of {o} must not be empty")
        for m in self.methods:
            check_choice("methods", m, NETWORKS, owner=o)
        check_int("n_seeds", self.n_seeds, 1, owner=o)
        check_int("arfima_n", self.arfima_n, 100, owner=o)
        check_range(
            "arfima_d", self.arfima_d, -0.5, 0.5, low_inclusive=False, high_inclusive=False, owner=o
        )
        check_int("data_seed", self.data_seed, 0, owner=o)
        check_range("train_frac", self.train_frac, 0.2, 0.9, owner=o)
        check_int("hidden_size", self.hidden_size, 1, owner=o)
        check_int("memory_length_mrnn", self.memory_length_mrnn, 1, owner=o)
        check_int("memory_length_mlstm", self.memory_length_mlstm, 1, owner=o)
        check_int("iterations", self.iterations, 1, owner=o)
        check_int("batch_size", self.batch_size, 1, owner=o)
        check_int("window", self.window, 2, owner=o)
        check_int("warmup", self.warmup, 0, owner=o)
        if self.warmup >= self.window:
            raise ValueError(f"`warmup` of {o} must be < `window`; got {self.warmup}")
        check_range("lr", self.lr, 0.0, 1.0, low_inclusive=False, owner=o)
        check_int("eval_every", self.eval_every, 1, owner=o)
        if len(self.arima_order) != 3 or any(int(v) < 0 for v in self.arima_order):
            raise ValueError(
                f"`arima_order` of {o} must be three ints >= 0; got {self.arima_order}"
            )


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """A series with its time split; ``z`` is standardised with the training mean/sd."""

    name: str
    x: np.ndarray
    z: np.ndarray
    mean: float
    sd: float
    n_train: int
    n_val: int

    @property
    def test_start(self) -> int:
        return self.n_train + self.n_val


def load_series(cfg: LongMemoryConfig, name: str) -> Series:
    """Simulated ARFIMA or a real offline series, split train/val/test in time."""
    from adaptlearn.data.arfima import load_real_series, simulate_arfima

    if name == "arfima":
        x = simulate_arfima(
            cfg.arfima_n, cfg.arfima_d, ar=cfg.arfima_ar, ma=cfg.arfima_ma, rng=cfg.data_seed
        )
    else:
        x = load_real_series(name)
    n = len(x)
    n_train = round(cfg.train_frac * n)
    n_val = (n - n_train) // 2
    mean, sd = float(x[:n_train].mean()), float(x[:n_train].std())
    return Series(name, x, (x - mean) / sd, mean, sd, n_train, n_val)


def forecast_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and MAPE (%; over targets with ``|y| > 1e-8``, undefined for zero targets)."""
    err = pred - truth
    nz = np.abs(truth) > 1e-8
    mape = float(100 * np.mean(np.abs(err[nz] / truth[nz]))) if nz.any() else math.nan
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "mape": mape,
    }


def _split_metrics(s: Series, pred: np.ndarray) -> dict[str, float]:
    """``pred[t]`` forecasts ``x[t+1]``; metrics on the test segment (original scale)."""
    start = s.test_start
    out = {f"test_{k}": v for k, v in forecast_metrics(pred[start - 1 : -1], s.x[start:]).items()}
    out["val_rmse"] = forecast_metrics(pred[s.n_train - 1 : start - 1], s.x[s.n_train : start])[
        "rmse"
    ]
    return out


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------
def _predict(model: torch.nn.Module, z: np.ndarray) -> np.ndarray:
    """Run the whole standardised series from t=0; ``out[t]`` forecasts ``z[t+1]``."""
    model.eval()
    with torch.no_grad():
        y, _ = model(torch.as_tensor(z, dtype=torch.float32).view(1, -1, 1))
    model.train()
    return y.view(-1).numpy().astype(np.float64)


def train_network(trial: Trial, cfg: LongMemoryConfig, tctx: TrialContext) -> dict[str, Any]:
    """Train one network on one series; return test metrics of its best-validation weights."""
    from adaptlearn.nn import RecurrentRegressor

    kind, name = trial.method, trial.param("dataset")
    s = load_series(cfg, name)
    torch.manual_seed(trial.seed)
    gen = torch.Generator().manual_seed(trial.seed)
    k = cfg.memory_length_mrnn if kind.startswith("mrnn") else cfg.memory_length_mlstm
    model = RecurrentRegressor(kind, 1, cfg.hidden_size, memory_length=k)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    z = torch.as_tensor(s.z, dtype=torch.float32)
    inputs, targets = z[: s.n_train - 1], z[1 : s.n_train]
    length = min(cfg.window, len(inputs))
    warm = min(cfg.warmup, length // 2)
    batch = cfg.batch_size if length < len(inputs) else 1
    best_val, best_state, best_pred, curve = math.inf, None, None, []
    for it in tctx.progress(range(1, cfg.iterations + 1), total=cfg.iterations, leave=False):
        starts = torch.randint(0, len(inputs) - length + 1, (batch,), generator=gen)
        idx = starts[:, None] + torch.arange(length)
        pred, _ = model(inputs[idx].unsqueeze(-1))
        loss = torch.nn.functional.mse_loss(pred[:, warm:, 0], targets[idx][:, warm:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % cfg.eval_every == 0 or it == cfg.iterations:
            pred = _predict(model, s.z) * s.sd + s.mean
            m = _split_metrics(s, pred)
            if m["val_rmse"] < best_val:
                best_val, best_pred = m["val_rmse"], pred
                best_state = copy.deepcopy(model.state_dict())
            curve.append(
                {
                    "dataset": name,
                    "iteration": it,
                    "train_loss": loss.item(),
                    "val_rmse": m["val_rmse"],
                }
            )
    assert best_state is not None and best_pred is not None
    model.load_state_dict(best_state)
    final = _split_metrics(s, best_pred)
    extra: dict[str, Any] = {"forecast": best_pred[s.test_start - 1 : -1].tolist()}
    if kind in ("mrnnf", "mlstmf"):
        extra["d"] = model.rnn.memory_parameter().detach().mean().item()
    return {"final": final, "curve": curve, "extra": extra}


# ---------------------------------------------------------------------------------------------
# classical baselines
# ---------------------------------------------------------------------------------------------
def _arima_forecast(x_train: np.ndarray, x_all: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """statsmodels ARIMA fitted on the training part; one-step forecasts over the whole series."""
    from statsmodels.tsa.arima.model import ARIMA

    with warnings.catch_warnings():
        # statsmodels warns about non-convergence / non-invertible starting values on short
        # series; the fit is still the best it found and we only use its one-step forecasts.
        warnings.simplefilter("ignore")
        res = ARIMA(x_train, order=tuple(int(v) for v in order), trend="c").fit()
        full = res.apply(x_all)
        pred = np.asarray(full.predict(start=1, end=len(x_all)))
    return pred  # pred[t] forecasts x[t+1]


def classical_forecasts(cfg: LongMemoryConfig, s: Series) -> dict[str, np.ndarray]:
    """ARIMA, two-step ARFIMA, train-mean and (simulated data only) oracle one-step forecasts."""
    from adaptlearn.data.arfima import fi_one_step_forecast, frac_diff, local_whittle_estimate

    out = {"arima": _arima_forecast(s.x[: s.n_train], s.x, cfg.arima_order)}
    d_hat = local_whittle_estimate(s.z[: s.n_train])
    u = frac_diff(s.z, d_hat)  # (1 - B)^d z, then an ARMA(1, 1) on it
    u_pred = _arima_forecast(u[: s.n_train], u, (1, 0, 1))
    # z_{t+1} = u_{t+1} - sum_{j>=1} w_j z_{t+1-j}, i.e. forecast = u-forecast + FI(d) forecast
    out["arfima"] = (u_pred + fi_one_step_forecast(s.z, d_hat)) * s.sd + s.mean
    out["_d_hat"] = np.array([d_hat])
    out["mean"] = np.full_like(s.x, s.mean)
    if s.name == "arfima" and not cfg.arfima_ma:
        out["oracle"] = arfima_oracle_forecast(s.x, cfg.arfima_d, cfg.arfima_ar)
    return out


def arfima_oracle_forecast(x: np.ndarray, d: float, ar: tuple[float, ...]) -> np.ndarray:
    """One-step forecast of ARFIMA(p, d, 0) with the true parameters (zero mean, all the past).

    ``u = (1 - B)^d x`` is AR(p), so ``x_{t+1} = sum_i phi_i u_{t+1-i} - sum_{j>=1} w_j x_{t+1-j}``.
    """
    from adaptlearn.data.arfima import fi_one_step_forecast, frac_diff

    u = frac_diff(x, d)
    u_hat = np.zeros_like(u)
    for i, phi in enumerate(ar, start=1):
        u_hat[i - 1 :] += phi * u[: len(u) - i + 1]
    return u_hat + fi_one_step_forecast(x, d)


# ---------------------------------------------------------------------------------------------
# experiment
# ---------------------------------------------------------------------------------------------
def _fmt(vals: list[float]) -> str:
    if not vals:
        return "-"
    a = np.asarray(vals)
    return f"{a.mean():.4g} ± {a.std():.2g}" if len(a) > 1 else f"{a[0]:.4g}"


@register(
    "long-memory",
    family="nn",
    paper="Zhao et al., 'Do RNN and LSTM have Long Memory?', ICML 2020 (arXiv 2006.03860)",
    claim="On long-memory series, the long-memory networks (MRNN-F, MRNN, MLSTM-F, MLSTM) "
    "forecast better (lower test RMSE) than their short-memory counterparts (RNN, LSTM).",
    config=LongMemoryConfig,
    presets={
        "tiny": {
            "datasets": ("arfima",),
            "n_seeds": 1,
            "arfima_n": 300,
            "iterations": 4,
            "eval_every": 2,
            "window": 40,
            "warmup": 10,
            "batch_size": 4,
            "hidden_size": 4,
            "memory_length_mrnn": 20,
            "memory_length_mlstm": 10,
        },
        "full": {
            "datasets": ("arfima", "nile", "sunspots"),
            "n_seeds": 5,
            "arfima_n": 3000,
            "hidden_size": 16,
            "iterations": 300,
            "batch_size": 16,
            "window": 300,
            "warmup": 100,
            "eval_every": 20,
        },
    },
)
def run(cfg: LongMemoryConfig, ctx: RunContext) -> None:
    """Train every network on every series over the seeds; fit the classical baselines; report."""
    results = ctx.run_trials(
        train_network, ctx.make_trials(list(cfg.methods), dataset=list(cfg.datasets))
    )
    hib = {"test_rmse": False, "test_mae": False, "test_mape": False, "val_rmse": False}
    values: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in results:
        key = (r.trial.method, r.trial.param("dataset"))
        for metric, v in r.final.items():
            ctx.add_result(f"{key[0]}@{key[1]}", metric, v, higher_is_better=hib.get(metric))
            values.setdefault(key, {}).setdefault(metric, []).append(v)
        for row in r.curve:
            ctx.log(method=r.trial.method, seed=r.trial.seed, **row)
    series = {name: load_series(cfg, name) for name in cfg.datasets}
    classical: dict[str, dict[str, np.ndarray]] = {}
    d_hats = {}
    for name, s in series.items():
        classical[name] = classical_forecasts(cfg, s)
        d_hats[name] = float(classical[name].pop("_d_hat")[0])
        for method, pred in classical[name].items():
            for metric, v in _split_metrics(s, pred).items():
                ctx.add_result(f"{method}@{name}", metric, v, higher_is_better=hib.get(metric))
                values.setdefault((method, name), {}).setdefault(metric, []).append(v)

    # --- table ----------------------------------------------------------------------------
    methods = [*list(cfg.methods), "arima", "arfima", "oracle", "mean"]
    lines = [
        "| method | " + " | ".join(f"{n} RMSE | {n} MAE | {n} MAPE %" for n in cfg.datasets) + " |",
        "|---|" + "---|" * (3 * len(cfg.datasets)),
    ]
    for m in methods:
        if not any((m, n) in values for n in cfg.datasets):
            continue
        cells = []
        for n in cfg.datasets:
            v = values.get((m, n), {})
            cells += [
                _fmt(v.get("test_rmse", [])),
                _fmt(v.get("test_mae", [])),
                _fmt(v.get("test_mape", [])),
            ]
        lines.append(f"| {LABELS[m]} | " + " | ".join(cells) + " |")
    note = (
        f"\n\nTest metrics on the original scale, mean ± std over {cfg.n_seeds} seeds "
        "(classical baselines are deterministic). Local-Whittle d̂ on the training part: "
        + ", ".join(f"{n} {d:.3f}" for n, d in d_hats.items())
        + ". MAPE skips zero targets and is unstable on zero-mean series (ARFIMA)."
    )
    d_learned = {}
    for r in results:
        if "d" in r.extra:
            d_learned.setdefault(
                f"{LABELS[r.trial.method]} on {r.trial.param('dataset')}", []
            ).append(r.extra["d"])
    if d_learned:
        note += (
            " Learned fixed d (mean over units and seeds; init 0.25): "
            + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in d_learned.items())
            + "."
        )
    ctx.add_section("Test forecasting error", "\n".join(lines) + note)
    ctx.note("d_hat_local_whittle", d_hats)
    ctx.note("learned_fixed_d", {k: float(np.mean(v)) for k, v in d_learned.items()})

    # --- figures --------------------------------------------------------------------------
    first_seed = ctx.seeds[0]
    for name, s in series.items():
        fig, ax = new_figure(width=8.0)
        t = np.arange(s.test_start, len(s.x))
        ax.plot(t, s.x[s.test_start :], color="black", lw=1.2, label="truth")
        for r in results:
            if (
                r.trial.param("dataset") == name
                and r.trial.seed == first_seed
                and r.trial.method in ("lstm", "mlstm", "mrnn", "rnn")
            ):
                ax.plot(t, r.extra["forecast"], lw=0.9, label=LABELS[r.trial.method])
        ax.plot(
            t, classical[name]["arfima"][s.test_start - 1 : -1], lw=0.9, ls="--", label="ARFIMA"
        )
        ax.set_title(f"one-step forecasts on the test segment: {name} (seed {first_seed})")
        ax.set_xlabel("t")
        ax.legend(fontsize="small", ncol=3)
        ctx.save_figure(fig, f"forecast_{name}")
        fig, ax = new_figure()
        plot_curves(
            ax,
            [row for row in ctx.metrics if row.get("dataset") == name],
            "iteration",
            "val_rmse",
            title=f"validation RMSE during training: {name}",
        )
        ctx.save_figure(fig, f"val_rmse_{name}")
    fig, axes = new_figure(1, len(cfg.datasets), width=5.0)
    axes = np.atleast_1d(axes).ravel()
    for ax, name in zip(axes, cfg.datasets, strict=True):
        present = [m for m in methods if (m, name) in values]
        means = [np.mean(values[(m, name)]["test_rmse"]) for m in present]
        sds = [np.std(values[(m, name)]["test_rmse"]) for m in present]
        ax.bar(
            range(len(present)),
            means,
            yerr=sds,
            color=[
                "C0" if m in ("rnn", "lstm") else "C1" if m in NETWORKS else "C7" for m in present
            ],
        )
        ax.set_xticks(
            range(len(present)),
            [LABELS[m] for m in present],
            rotation=45,
            ha="right",
            fontsize="small",
        )
        lo = min(means) - 2 * max([*sds, 1e-09])
        ax.set_ylim(bottom=max(0.0, lo * 0.98))
        ax.set_title(f"test RMSE: {name}")
    ctx.save_figure(fig, "test_rmse")

    # --- verdict --------------------------------------------------------------------------
    comps, wins, clear_wins, clear_losses, parts = 0, 0, 0, 0, []
    for name in cfg.datasets:
        for long, short in PAIRS:
            if (long, name) in values and (short, name) in values:
                a_vals = np.asarray(values[(long, name)]["test_rmse"])
                b_vals = np.asarray(values[(short, name)]["test_rmse"])
                a, b = float(a_vals.mean()), float(b_vals.mean())
                # "beyond seed noise": the gap exceeds twice its standard error over seeds
                se = (
                    math.sqrt(a_vals.var(ddof=1) / len(a_vals) + b_vals.var(ddof=1) / len(b_vals))
                    if min(len(a_vals), len(b_vals)) > 1
                    else math.inf
                )
                clear = abs(a - b) > 2 * se
                comps += 1
                wins += a < b
                clear_wins += clear and a < b
                clear_losses += clear and a > b
                parts.append(
                    f"{LABELS[long]} {a:.4g} vs {LABELS[short]} {b:.4g} on {name}"
                    + (" *" if clear else "")
                )
    if comps == 0:
        ctx.set_verdict("no long/short pair was run; nothing to compare", supported=None)
        return
    best_net = {
        n: min(
            (float(np.mean(values[(m, n)]["test_rmse"])), m)
            for m in cfg.methods
            if (m, n) in values
        )
        for n in cfg.datasets
    }
    arf = "; ".join(
        f"best network on {n}: {LABELS[m]} {v:.4g} vs ARFIMA "
        f"{np.mean(values[('arfima', n)]['test_rmse']):.4g}"
        for n, (v, m) in best_net.items()
    )
    frac = wins / comps
    if frac >= 0.75 and clear_wins >= max(1, comps // 2):
        supported: bool | None = True
    elif frac <= 0.25 or clear_losses > clear_wins:
        supported = False
    else:
        supported = None  # right direction in some pairs but mostly within seed noise, or mixed
    ctx.set_verdict(
        f"long-memory variant has the lower mean test RMSE in {wins}/{comps} pairs, "
        f"{clear_wins} of them beyond seed noise (gap > 2 standard errors; {clear_losses} clear "
        "losses) (" + "; ".join(parts) + f"; * = beyond noise). {arf}.",
        supported=supported,
    )
