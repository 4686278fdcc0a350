"""``selective-backprop``: time to target error of Selective-Backprop, Stale-SB and AdaptSB.

Part 1 (clean labels): traditional training vs Selective-Backprop (SB) vs Stale-SB vs a random
subset at SB's backward rate, on a generated "many easy, some hard" set (labels of a random tanh
teacher) and on scikit-learn's bundled 8x8 digits (real scans, shifted + noisy copies). Part 2
(label noise): a fraction of training labels is shuffled; traditional vs SB vs AdaptSB.

Time is the **process CPU time of the training loop** (selection forwards included, evaluation
excluded; one thread), because wall-clock on a shared 2-core machine is too noisy; wall-clock is
recorded too. The LR schedule is keyed on examples seen, so every method follows the same LR
curve per epoch (as in the paper). Targets are multiples of traditional training's final test
error (mean over seeds); a method's time to target is the first evaluation at or below it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from adaptlearn.core import (
    RunContext,
    Trial,
    TrialContext,
    check_choice,
    check_int,
    check_probability,
    check_range,
    new_figure,
    register,
)
from adaptlearn.selection import (
    AdaptSB,
    Algorithm,
    Dataset,
    Event,
    LoopState,
    RandomSubset,
    SelectiveBackprop,
    SelectiveBackpropAlgorithm,
    ShuffledLoader,
    StaleSB,
    Trainer,
    corrupt_labels,
    load_digit_images,
    make_cluster_classification,
    make_teacher_classification,
)

CLEAN_METHODS = ("traditional", "sb", "stale-sb", "random", "adapt-sb")
NOISY_METHODS = ("traditional", "sb", "adapt-sb")
DATASETS = ("clusters", "teacher", "digits")


@dataclass
class SelectiveBackpropConfig:
    """Config of the selective-backprop experiment (defaults = the ``quick`` preset)."""

    datasets: tuple[str, ...] = ("clusters", "digits")
    """Datasets of the clean-label part (the first also gets the label-noise part):
    ``clusters`` (generated Gaussian clusters), ``teacher`` (generated, random-network labels),
    ``digits`` (scikit-learn's bundled 8x8 scans, augmented)."""
    n_train: int = 12000
    """Training examples of the generated sets."""
    n_test: int = 2000
    """Test examples of the generated sets."""
    n_features: int = 32
    """Input dimension of the ``teacher`` set (``clusters`` uses 40)."""
    data_seed: int = 1234
    """Seed of the data (fixed across trials so all methods see the same set)."""
    hidden: int = 256
    """Width of the two hidden layers of the MLP (with BatchNorm)."""
    epochs: int = 10
    """Epochs (passes over the training set) for every method."""
    digits_epochs: int = 6
    """Epochs on ``digits`` (it converges fast)."""
    batch_size: int = 128
    """Training batch size (SB releases batches of this size)."""
    lr: float = 0.05
    """Initial SGD learning rate (Nesterov momentum 0.9, weight decay 5e-4)."""
    lr_drops: tuple[float, ...] = (0.6, 0.85)
    """Fractions of the examples-seen budget where the LR is multiplied by 0.1."""
    beta: float = 3.0
    """SB selectivity (expected backward rate 1/(beta+1))."""
    history_size: int = 1024
    """SB loss history R."""
    staleness: int = 3
    """Stale-SB: epochs between fresh selection forwards."""
    prime_epochs: int = 1
    """Epochs of traditional training at the start of SB-type methods (the paper's priming)."""
    noise_fraction: float = 0.2
    """Part 2: share of training labels shuffled (0 skips part 2)."""
    adapt_threshold: float = 0.6
    """AdaptSB persistence threshold."""
    adapt_momentum: float = 0.5
    """AdaptSB persistence EMA momentum."""
    evals_per_epoch: int = 2
    """Test evaluations per epoch (not counted in the time)."""
    target_multipliers: tuple[float, ...] = (2.0, 1.5, 1.25, 1.1)
    """Target errors as multiples of traditional training's final error."""
    n_seeds: int = 3
    """Seeds per method."""

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field."""
        owner = "SelectiveBackpropConfig"
        if not self.datasets:
            raise ValueError(f"`datasets` of {owner} must name at least one of {DATASETS}")
        for d in self.datasets:
            check_choice("datasets", d, DATASETS, owner=owner)
        for name in ("n_train", "n_test", "n_features", "hidden", "epochs", "digits_epochs",
                     "batch_size", "history_size", "staleness", "evals_per_epoch", "n_seeds"):
            check_int(name, getattr(self, name), 1, owner=owner)
        check_int("data_seed", self.data_seed, 0, owner=owner)
        check_int("prime_epochs", self.prime_epochs, 0, owner=owner)
        check_range("lr", self.lr, 0.0, 10.0, low_inclusive=False, owner=owner)
        for f in self.lr_drops:
            check_range("lr_drops", f, 0.0, 1.0, owner=owner)
        check_range("beta", self.beta, 0.0, owner=owner)
        check_probability("noise_fraction", self.noise_fraction, owner=owner)
        check_range("adapt_threshold", self.adapt_threshold, 0.0, 1.0, high_inclusive=False,
                    owner=owner)
        check_range("adapt_momentum", self.adapt_momentum, 0.0, 1.0, high_inclusive=False,
                    owner=owner)
        if not self.target_multipliers:
            raise ValueError(f"`target_multipliers` of {owner} must not be empty")
        for m in self.target_multipliers:
            check_range("target_multipliers", m, 1.0, owner=owner)


def load_dataset(name: str, cfg: SelectiveBackpropConfig) -> Dataset:
    """The dataset ``name`` with inputs flattened to ``[N, D]`` (cached per process)."""
    return _load_dataset(name, cfg.n_train, cfg.n_test, cfg.n_features, cfg.data_seed)


@functools.lru_cache(maxsize=4)
def _load_dataset(name: str, n_train: int, n_test: int, n_features: int, seed: int) -> Dataset:
    # Trials never modify these tensors (label noise is applied to a copy).
    if name == "teacher":
        return make_teacher_classification(n_train, n_test, n_features=n_features, seed=seed)
    if name == "clusters":
        return make_cluster_classification(n_train, n_test, seed=seed)
    d = load_digit_images(seed=seed)
    return Dataset(d.x_train.flatten(1), d.y_train, d.x_test.flatten(1), d.y_test, d.num_classes)


def make_mlp(n_in: int, hidden: int, n_out: int) -> nn.Module:
    """MLP ``n_in -> hidden -> hidden -> n_out`` with BatchNorm and ReLU."""
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
        nn.Linear(hidden, n_out),
    )


def make_selector(method: str, cfg: SelectiveBackpropConfig, n_train: int, n_classes: int,
                  seed: int) -> SelectiveBackprop | None:
    """The selector of ``method`` (``None`` for traditional training)."""
    prime = cfg.prime_epochs * n_train
    common: dict[str, Any] = {"prime_examples": prime, "seed": seed}
    if method == "traditional":
        return None
    if method == "sb":
        return SelectiveBackprop(cfg.beta, cfg.history_size, **common)
    if method == "stale-sb":
        return StaleSB(n_train, cfg.beta, cfg.history_size, staleness=cfg.staleness, **common)
    if method == "random":
        return RandomSubset(cfg.beta, **common)
    if method == "adapt-sb":
        return AdaptSB(n_train, cfg.beta, cfg.history_size, group_by="index",
                       threshold=cfg.adapt_threshold,
                       persistence_momentum=cfg.adapt_momentum, **common)
    raise ValueError(f"unknown method {method!r}")


class _NoiseCounter(Algorithm):
    """Counts how many backpropagated examples carry a corrupted label."""

    def __init__(self, corrupted: torch.Tensor) -> None:
        self.corrupted = corrupted
        self.noisy = 0
        self.total = 0

    def match(self, event: Event, state: LoopState) -> bool:
        return event == Event.AFTER_LOSS

    def apply(self, event: Event, state: LoopState) -> None:
        assert state.train_batch is not None
        idx = state.train_batch[2]
        self.noisy += int(self.corrupted[idx].sum())
        self.total += int(idx.numel())


@torch.no_grad()
def _test_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was = model.training
    model.eval()
    err = float((model(x).argmax(1) != y).float().mean())
    model.train(was)
    return err


def train_one(trial: Trial, cfg: SelectiveBackpropConfig, tctx: TrialContext) -> dict[str, Any]:
    """Train one method on one dataset (clean or noisy labels); return curves and totals."""
    dataset = trial.param("dataset", cfg.datasets[0])
    noise = float(trial.param("noise", 0.0))
    data = load_dataset(dataset, cfg)
    epochs = cfg.digits_epochs if dataset == "digits" else cfg.epochs
    y_train, corrupted = corrupt_labels(data.y_train, noise, seed=cfg.data_seed + 1)
    n_train = int(data.x_train.shape[0])
    torch.manual_seed(trial.seed)
    model = make_mlp(int(data.x_train.shape[1]), cfg.hidden, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    budget = epochs * n_train
    drops = sorted(cfg.lr_drops)

    def lr_at(examples_seen: int) -> float:
        return cfg.lr * 0.1 ** sum(examples_seen >= f * budget for f in drops)

    selector = make_selector(trial.method, cfg, n_train, data.num_classes, trial.seed)
    counter = _NoiseCounter(corrupted)
    algorithms: list[Algorithm] = [counter]
    sb_alg = None
    if selector is not None:
        sb_alg = SelectiveBackpropAlgorithm(selector, cfg.batch_size)
        algorithms.insert(0, sb_alg)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    trainer = Trainer(model, optimizer, loss_fn, algorithms=algorithms, lr_at=lr_at)
    loader = ShuffledLoader(data.x_train, y_train, cfg.batch_size, seed=trial.seed)
    curve: list[dict[str, Any]] = []
    eval_every = max(1, n_train // cfg.evals_per_epoch)

    def record(t: Trainer) -> None:
        cpu_s, wall_s = t.elapsed
        c = t.counters
        sel_fwd = sb_alg.pipeline.stats.selection_forwards if sb_alg and sb_alg.pipeline else 0
        curve.append({
            "dataset": dataset, "noise": noise,
            "epoch": c.examples_seen / n_train, "cpu_s": cpu_s, "wall_s": wall_s,
            "backprops": c.backprop_examples, "selection_forwards": sel_fwd,
            "test_error": _test_error(model, data.x_test, data.y_test),
        })

    record(trainer)
    for _ in tctx.progress(range(epochs), total=epochs):
        trainer.fit_epoch(loader, on_step=record, callback_every=eval_every)
    record(trainer)
    c = trainer.counters
    post_prime = max(c.examples_seen - cfg.prime_epochs * n_train, 1)
    backprops_post = c.backprop_examples - min(cfg.prime_epochs, epochs) * n_train
    final = {
        "final_error": curve[-1]["test_error"],
        "train_cpu_s": c.cpu_s,
        "train_wall_s": c.wall_s,
        "backprops": float(c.backprop_examples),
        "selection_forwards": float(curve[-1]["selection_forwards"]),
        "backward_rate": (backprops_post / post_prime if selector is not None else 1.0),
    }
    if noise > 0:
        final["noisy_share_of_backprops"] = counter.noisy / max(counter.total, 1)
    return {"final": final, "curve": curve}


def time_to_target(curve: list[dict[str, Any]], target: float, key: str = "cpu_s") -> float:
    """First ``key`` value at which ``test_error <= target`` (``nan`` if never)."""
    for row in curve:
        if row["test_error"] <= target:
            return float(row[key])
    return math.nan


def _label(method: str, dataset: str, noise: float) -> str:
    suffix = f"@{dataset}" + (f"+noise{noise:g}" if noise > 0 else "")
    return method + suffix


def _fmt(x: float, spec: str = ".2f") -> str:
    return "-" if not np.isfinite(x) else format(x, spec)


@register(
    "selective-backprop",
    family="selection",
    paper="Jiang et al., Accelerating Deep Learning by Focusing on the Biggest Losers "
    "(arXiv:1910.00762, 2019); AdaptSB: A. H. Jiang, CMU PhD thesis",
    claim="Selective-Backprop reaches a target test error up to 3.5x faster than traditional "
    "training (Stale-SB a further 26% faster); AdaptSB keeps SB's gains when labels are noisy.",
    config=SelectiveBackpropConfig,
    presets={
        "tiny": {"datasets": ("teacher",), "n_train": 2000, "n_test": 1000, "hidden": 64,
                 "epochs": 3, "n_seeds": 1, "evals_per_epoch": 2, "history_size": 256},
        "full": {"n_train": 60000, "n_test": 10000, "hidden": 512, "epochs": 30,
                 "digits_epochs": 12, "n_seeds": 5},
    },
    baseline="traditional@clusters",
)
def run(cfg: SelectiveBackpropConfig, ctx: RunContext) -> None:
    """Run both parts, compute times to target, plot error against CPU time, set the verdict."""
    cfg.validate()
    ctx.set_baseline(_label("traditional", cfg.datasets[0], 0.0))
    trials = []
    for dataset in cfg.datasets:
        trials += ctx.make_trials(list(CLEAN_METHODS), dataset=[dataset], noise=[0.0])
    if cfg.noise_fraction > 0:
        trials += ctx.make_trials(list(NOISY_METHODS), dataset=[cfg.datasets[0]],
                                  noise=[cfg.noise_fraction])
    results = ctx.run_trials(train_one, trials)
    ctx.add_section("Setup", (
        f"MLP in-{cfg.hidden}-{cfg.hidden}-out with BatchNorm; SGD (Nesterov momentum 0.9, "
        f"weight decay 5e-4), batch {cfg.batch_size}, LR {cfg.lr:g} x0.1 at "
        + ", ".join(f"{f:.0%}" for f in cfg.lr_drops) + " of the examples-seen budget (same "
        f"schedule per epoch for every method); {cfg.epochs} epochs ({cfg.digits_epochs} on "
        f"digits); beta={cfg.beta:g} (backward rate 1/(beta+1)), R={cfg.history_size}, "
        f"p_min=0, {cfg.prime_epochs} priming epoch(s) of traditional training for SB-type "
        f"methods, Stale-SB staleness {cfg.staleness}; random = U^beta subset (no selection "
        f"forward). Label noise: {cfg.noise_fraction:.0%} of training labels shuffled among "
        "themselves (test labels clean); AdaptSB is our own design (per-example persistence, "
        "see the method card). Time = process CPU seconds of the training loop on one thread "
        "(evaluation excluded). Seeds: " + ", ".join(map(str, ctx.seeds)) + "."))

    groups: dict[tuple[str, float], dict[str, list[Any]]] = {}
    for r in results:
        d, noise = r.trial.param("dataset"), float(r.trial.param("noise"))
        groups.setdefault((d, noise), {}).setdefault(r.trial.method, []).append(r)
        label = _label(r.trial.method, d, noise)
        for metric, value in r.final.items():
            hib = metric not in ("final_error", "train_cpu_s", "train_wall_s", "backprops",
                                 "selection_forwards", "noisy_share_of_backprops")
            ctx.add_result(label, metric, value, higher_is_better=hib if metric != "backward_rate"
                           else None)
        for row in r.curve:
            ctx.log(method=label, seed=r.trial.seed, **row)

    summary: dict[str, Any] = {}
    lines = []
    for (d, noise), by_method in groups.items():
        trad_final = float(np.mean([r.final["final_error"] for r in by_method["traditional"]]))
        trad_times = {}
        header = ("| method | final error | CPU s | backprops | sel. forwards | "
                  + " | ".join(f"{m:g}x target: CPU s (speedup, reached)"
                               for m in cfg.target_multipliers) + " |")
        table = [header, "|" + "---|" * (5 + len(cfg.target_multipliers))]
        for m_name, runs in by_method.items():
            label = _label(m_name, d, noise)
            cells = []
            for mult in cfg.target_multipliers:
                target = mult * trad_final
                times = [time_to_target(r.curve, target) for r in runs]
                bps = [time_to_target(r.curve, target, "backprops") for r in runs]
                reached = [t for t in times if np.isfinite(t)]
                mean_t = float(np.mean(reached)) if len(reached) == len(runs) else math.nan
                if m_name == "traditional":
                    trad_times[mult] = mean_t
                speed = trad_times.get(mult, math.nan) / mean_t if mean_t > 0 else math.nan
                summary[f"{label}|{mult:g}x"] = {"cpu_s": times, "backprops": bps,
                                                 "speedup": speed}
                if np.isfinite(speed):
                    ctx.add_result(label, f"speedup_{mult:g}x", speed, higher_is_better=True)
                cells.append(f"{_fmt(mean_t, '.1f')} ({_fmt(speed)}x, {len(reached)}/{len(runs)})")
            fe = np.mean([r.final["final_error"] for r in runs])
            cpu = np.mean([r.final["train_cpu_s"] for r in runs])
            bp = np.mean([r.final["backprops"] for r in runs])
            sf = np.mean([r.final["selection_forwards"] for r in runs])
            table.append(f"| {label} | {fe:.2%} | {cpu:.1f} | {bp:,.0f} | {sf:,.0f} | "
                         + " | ".join(cells) + " |")
        title = f"{d}, " + (f"{noise:.0%} labels shuffled" if noise > 0 else "clean labels")
        lines.append((title, "\n".join(table)))
        fig, axes = new_figure(1, 2, width=5.5)
        for m_name, runs in by_method.items():
            for ax, key in zip(axes[0], ("cpu_s", "backprops"), strict=True):
                # Rows are aligned across seeds (same evaluation points in examples seen), so
                # average x (CPU s or backprops) and y over seeds point by point.
                ys = np.array([[row["test_error"] for row in r.curve] for r in runs])
                xs_all = np.array([[row[key] for row in r.curve] for r in runs]).mean(0)
                (line,) = ax.plot(xs_all, ys.mean(0), label=m_name)
                if len(runs) > 1:
                    ax.fill_between(xs_all, ys.min(0), ys.max(0), color=line.get_color(),
                                    alpha=0.15)
        for ax, key in zip(axes[0], ("training-loop CPU s", "examples backpropagated"),
                           strict=True):
            ax.set_xlabel(key)
            ax.set_ylabel("test error")
            ax.set_yscale("log")
            ax.axhline(trad_final, color="grey", lw=0.8, ls=":")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="small")
            ax.set_title(title)
        ctx.save_figure(fig, f"error_vs_time_{d}" + (f"_noise{noise:g}" if noise > 0 else ""))
    for title, md in lines:
        ctx.add_section(f"Time to target error: {title}", md + "\n\nCPU s = process CPU seconds "
                        "of the training loop to the first evaluation at or below the target "
                        "(mean over seeds, only when all seeds reached it); speedup = "
                        "traditional's time / the method's.")
    ctx.note("time_to_target", summary)
    _verdict(cfg, ctx, groups, summary)


def _verdict(cfg: SelectiveBackpropConfig, ctx: RunContext,
             groups: dict[tuple[str, float], dict[str, list[Any]]],
             summary: dict[str, Any]) -> None:
    main = cfg.datasets[0]
    loose = max(cfg.target_multipliers)
    parts = []

    def speed(method: str, d: str, noise: float, mult: float) -> float:
        return float(summary.get(f"{_label(method, d, noise)}|{mult:g}x", {}).get("speedup",
                                                                                 math.nan))

    best_sb = {m: speed("sb", main, 0.0, m) for m in cfg.target_multipliers}
    # CPU-time noise between repeats is ~10%, so "faster" needs a speedup above 1.1.
    sb_ok = [m for m, s in best_sb.items() if np.isfinite(s) and s > 1.1]
    parts.append(f"On {main} (clean), SB speedup over traditional: "
                 + ", ".join(f"{_fmt(s)}x at {m:g}x" for m, s in best_sb.items()) + ".")
    stale = speed("stale-sb", main, 0.0, loose)
    sb_loose = best_sb[loose]
    parts.append(f"Stale-SB at the {loose:g}x target: {_fmt(stale)}x (SB {_fmt(sb_loose)}x).")
    rnd = speed("random", main, 0.0, loose)
    parts.append(f"Random subset at the same rate: {_fmt(rnd)}x.")
    adapt_ok = None
    if cfg.noise_fraction > 0:
        noisy = groups.get((main, cfg.noise_fraction), {})
        if noisy:
            fe = {m: float(np.mean([r.final["final_error"] for r in runs]))
                  for m, runs in noisy.items()}
            share = {m: float(np.mean([r.final.get("noisy_share_of_backprops", 0.0)
                                       for r in runs])) for m, runs in noisy.items()}
            adapt_ok = fe["adapt-sb"] < fe["sb"]
            parts.append(
                f"With {cfg.noise_fraction:.0%} shuffled labels: final error traditional "
                f"{fe['traditional']:.2%}, SB {fe['sb']:.2%}, AdaptSB {fe['adapt-sb']:.2%}; share "
                f"of backprops on corrupted labels: SB {share['sb']:.0%}, AdaptSB "
                f"{share['adapt-sb']:.0%} (traditional {share['traditional']:.0%}).")
    # CPU-time speedups at this scale move by ~15% between identical reruns, so SB counts as
    # faster only if it is above 1.1x at *every* target, as slower only if it is at or below
    # 1.0x at every target, and the speed claim is inconclusive in between.
    finite = [s for s in best_sb.values() if np.isfinite(s)]
    if finite and len(sb_ok) == len(best_sb):
        sb_faster: bool | None = True
    elif not finite or all(s <= 1.0 for s in finite):
        sb_faster = False
    else:
        sb_faster = None
    if sb_faster is False or adapt_ok is False:
        supported: bool | None = False
    elif sb_faster is None:
        supported = None
    else:
        supported = True
    parts.append("Verdict: SB is faster (speedup > 1.1) than traditional training at "
                 + (", ".join(f"{m:g}x" for m in sb_ok) if sb_ok else "no")
                 + " target(s)" + ("" if adapt_ok is None else
                                  f"; AdaptSB {'beats' if adapt_ok else 'does not beat'} SB "
                                  "under label noise") + ". The paper's 3.5x is CIFAR-scale; "
                 "see the tables for what this scale shows.")
    ctx.set_verdict(" ".join(parts), supported=supported)
