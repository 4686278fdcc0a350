"""``selective-backprop``: time to target error of Selective-Backprop against traditional training.

Reads as config -> trial (one *race* per dataset, noise level and seed) -> the declared claim and
its pure verdict -> tables and figures -> ``run``.

Part 1 (clean labels): traditional training vs Selective-Backprop (SB), and for context Stale-SB,
a random subset at SB's backward rate, Kath18 and AdaptSB (which of them race is a config field)
on scikit-learn's bundled 8x8 digits (real scans, shifted + noisy copies; the main dataset) and
optionally on generated sets. Part 2 (label noise, our addition): a fraction of the main
dataset's training labels is shuffled; SB vs AdaptSB (our design), optionally traditional.

Protocol (Jiang et al., arXiv:1910.00762; reference code ``angelajiang/SelectiveBackprop``):

- **One race per (dataset, seed).** Every method trains in the same process from the same
  initial weights and the same example order, in interleaved epochs (each round runs one epoch of
  every method, in a rotating order), so machine load hits all methods alike.
- **Same schedule per epoch.** The LR is keyed on examples seen (the reference's
  ``forwardlr``), x0.1 at 37.5% and 75% of the budget (the shape of the paper's SVHN schedule);
  SB-type methods prime with one epoch of traditional training; beta = 3, R = 1024, p_min = 0.
  None of these is tuned here: they are the paper's, and the LR and widths were fixed before the
  verdict existed. AdaptSB's threshold and momentum were chosen on the generated ``clusters`` set
  (seed 0), never on the digits races the verdicts use.
- **Time is process CPU time**, not wall-clock: the CPU seconds of the training loop (selection
  forwards, selection, queueing, training steps; evaluation excluded) on one thread. CPU time is
  not inflated by a second race running beside it, so races run in parallel worker processes
  (``parallel_trials=True``). Wall-clock seconds are recorded beside it for the report only, and
  a cost model counts passes in forward-equivalents (a selection forward = 1, a training step = 3:
  its forward plus a backward of about twice the forward's FLOPs), which does not move between
  reruns.
- **Targets.** Multiples ``m`` of traditional training's final test error: per race (that seed's
  traditional run) for the verdict and the per-seed results, and of the seed mean for the
  seed-mean tables. Time to target = first evaluation at which the error is at or below the
  target (evaluations sit at the same examples-seen marks for every method). A run that never
  reaches a target is *censored*: its time is only known to exceed its whole training time.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
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
from adaptlearn.core.verdict import (
    Claim,
    Comparison,
    Precondition,
    Verdict,
    compare,
    judge,
)
from adaptlearn.selection import (
    AdaptSB,
    Algorithm,
    Dataset,
    Event,
    Kath18ImportanceSampling,
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

#: Methods a clean-label race can run, and a label-noise race.
CLEAN_METHODS = ("traditional", "sb", "stale-sb", "random", "kath18", "adapt-sb")
NOISY_METHODS = ("traditional", "sb", "adapt-sb")
DATASETS = ("digits", "clusters", "teacher")
#: Cost model: forward-equivalents of one training step per example (forward + backward, the
#: backward costing about twice the forward's FLOPs); a selection forward counts 1.
TRAIN_STEP_FORWARDS = 3.0


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------
@dataclass
class SelectiveBackpropConfig:
    """Config of the selective-backprop experiment (defaults = the ``quick`` preset)."""

    datasets: tuple[str, ...] = ("digits",)
    """Datasets of the clean-label part, each a cell of the claim (SB must be faster on every
    one); the first is the main dataset and also gets the label-noise part: ``digits``
    (scikit-learn's bundled 8x8 scans, augmented), ``clusters`` (generated Gaussian clusters),
    ``teacher`` (generated, random-network labels)."""
    clean_methods: tuple[str, ...] = ("traditional", "sb", "random")
    """Methods of a clean-label race (among :data:`CLEAN_METHODS`; ``traditional`` and ``sb``
    are required, the rest is context). The quick preset keeps the random subset (the sceptic's
    first question: is it only the fewer backward passes?) and leaves out Stale-SB, Kath18 and
    AdaptSB, which buy no power for the claim, to afford five seeds; ``full`` runs all six."""
    noisy_methods: tuple[str, ...] = ("sb", "adapt-sb")
    """Methods of the label-noise race (among :data:`NOISY_METHODS`; ``sb`` and ``adapt-sb``
    are required, ``traditional`` is context)."""
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
    """Epochs (passes over the training set) on the generated sets, for every method."""
    digits_epochs: int = 20
    """Epochs on ``digits``."""
    batch_size: int = 128
    """Training batch size (SB releases batches of this size; the paper's 128)."""
    selection_batch_size: int = 512
    """Examples per selection forward for SB, Stale-SB, AdaptSB and the random subset (their
    loader batch; training batches stay ``batch_size``). Traditional training and Kath18 draw
    ``batch_size`` batches. A multiple of ``batch_size`` amortises per-call costs on a CPU; the
    losses behind a decision can then be older by about ``selection_batch_size / batch_size /
    (beta + 1)`` training steps (one at the defaults) than with the reference's forwards of
    ``batch_size`` examples (set it to ``batch_size`` for those)."""
    lr: float = 0.05
    """Initial SGD learning rate (Nesterov momentum 0.9, weight decay 5e-4, as in the paper)."""
    lr_drops: tuple[float, ...] = (0.375, 0.75)
    """Fractions of the examples-seen budget where the LR is multiplied by ``lr_decay`` (the
    paper's SVHN schedule drops at epochs 60 and 120 of 160)."""
    lr_decay: float = 0.1
    """LR factor at each drop."""
    beta: float = 3.0
    """SB selectivity (expected backward rate 1/(beta+1)); the paper's 3."""
    history_size: int = 1024
    """SB loss history R."""
    staleness: int = 3
    """Stale-SB: epochs between fresh selection forwards (the paper's figure uses 3)."""
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
    target_multipliers: tuple[float, ...] = (2.0, 1.5, 1.25, 1.1, 1.0)
    """Target errors as multiples of traditional training's final error."""
    n_seeds: int = 5
    """Seeds (one race of all methods per seed and dataset; the claim needs >= 3, and with
    fewer than 5 its intervals are Student-t intervals, about twice as wide)."""
    noise_seeds: int = 3
    """Seeds of the label-noise part (the first ``noise_seeds`` of the run's seeds; at most
    ``n_seeds``): AdaptSB's gain over SB there is ~6 points against ~0.5 points of seed noise,
    so three seeds decide our verdict."""

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field."""
        owner = "SelectiveBackpropConfig"
        if not self.datasets:
            raise ValueError(f"`datasets` of {owner} must name at least one of {DATASETS}")
        for d in self.datasets:
            check_choice("datasets", d, DATASETS, owner=owner)
        for name, allowed, required in (
                ("clean_methods", CLEAN_METHODS, ("traditional", "sb")),
                ("noisy_methods", NOISY_METHODS, ("sb", "adapt-sb"))):
            methods = getattr(self, name)
            for m in methods:
                check_choice(name, m, allowed, owner=owner)
            if len(set(methods)) != len(methods) or not set(required) <= set(methods):
                raise ValueError(f"`{name}` of {owner} must list {required} once each (and "
                                 f"others of {allowed} at most once); got {methods}")
        for name in ("n_train", "n_test", "n_features", "hidden", "epochs", "digits_epochs",
                     "batch_size", "selection_batch_size", "history_size", "staleness",
                     "evals_per_epoch", "n_seeds", "noise_seeds"):
            check_int(name, getattr(self, name), 1, owner=owner)
        check_int("data_seed", self.data_seed, 0, owner=owner)
        check_int("prime_epochs", self.prime_epochs, 0, owner=owner)
        check_range("lr", self.lr, 0.0, 10.0, low_inclusive=False, owner=owner)
        for f in self.lr_drops:
            check_range("lr_drops", f, 0.0, 1.0, owner=owner)
        check_range("lr_decay", self.lr_decay, 0.0, 1.0, low_inclusive=False, owner=owner)
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

    def epochs_for(self, dataset: str) -> int:
        """Epoch budget on ``dataset``."""
        return self.digits_epochs if dataset == "digits" else self.epochs




# ----------------------------------------------------------------------------------------------
# Trial: one race of every method on one dataset, noise level and seed
# ----------------------------------------------------------------------------------------------
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
    """The selector of ``method`` (``None`` for traditional training and Kath18)."""
    del n_classes
    prime = cfg.prime_epochs * n_train
    common: dict[str, Any] = {"prime_examples": prime, "seed": seed}
    if method in ("traditional", "kath18"):
        return None  # kath18 is an algorithm of its own (see race)
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


@dataclass
class _Contestant:
    """One method's training state inside a race."""

    trainer: Trainer
    loader: ShuffledLoader
    sb_alg: SelectiveBackpropAlgorithm | Kath18ImportanceSampling | None
    counter: _NoiseCounter
    curve: list[dict[str, Any]]
    epoch_cpu_s: list[float]
    epoch_wall_s: list[float]


def _selection_forwards(alg: SelectiveBackpropAlgorithm | Kath18ImportanceSampling | None
                        ) -> int:
    if isinstance(alg, Kath18ImportanceSampling):
        return alg.selection_forwards
    return alg.pipeline.stats.selection_forwards if alg and alg.pipeline else 0


def race(
    data: Dataset,
    methods: Sequence[str],
    cfg: SelectiveBackpropConfig,
    seed: int,
    *,
    epochs: int,
    y_train: torch.Tensor | None = None,
    corrupted: torch.Tensor | None = None,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Train ``methods`` side by side on ``data`` in interleaved epochs; curves and totals.

    Every method starts from the same initial weights (``torch.manual_seed(seed)`` before each
    model) and draws the same example order (one loader per method, same seed). Round ``e`` runs
    epoch ``e`` of every method, starting at method ``e mod len(methods)``, so slow and fast
    stretches of a shared machine hit all methods alike.

    Args:
        data: train/test tensors, inputs ``[N, D]``.
        methods: names among :data:`CLEAN_METHODS`.
        cfg: hyperparameters (model width, schedule, SB settings, evaluations per epoch).
        seed: model initialisation, example order and selector seed.
        epochs: epoch budget (examples seen = ``epochs * N`` for every method).
        y_train: training labels to use (default ``data.y_train``; pass noisy labels here).
        corrupted: ``[N]`` bool, which training labels are corrupted (for the backprop share).
        on_round: called after each round with the round index (progress).

    Returns:
        Per method: ``curve`` (rows with ``epoch``, ``cpu_s``, ``wall_s``, ``backprops``,
        ``selection_forwards``, ``cost_fpe``, ``test_error``), ``final`` (totals) and the CPU and
        wall seconds of every epoch (``epoch_cpu_s``, ``epoch_wall_s``).
    """
    labels = data.y_train if y_train is None else y_train
    noisy = torch.zeros(labels.shape[0], dtype=torch.bool) if corrupted is None else corrupted
    n_train = int(data.x_train.shape[0])
    budget = epochs * n_train
    drops = sorted(cfg.lr_drops)

    def lr_at(examples_seen: int) -> float:
        return cfg.lr * cfg.lr_decay ** sum(examples_seen >= f * budget for f in drops)

    loss_fn = nn.CrossEntropyLoss(reduction="none")
    runs: dict[str, _Contestant] = {}
    for method in methods:
        torch.manual_seed(seed)
        model = make_mlp(int(data.x_train.shape[1]), cfg.hidden, data.num_classes)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                                    weight_decay=5e-4)
        selector = make_selector(method, cfg, n_train, data.num_classes, seed)
        counter = _NoiseCounter(noisy)
        # The counter runs inside the timed loop, so only where there is noise to count.
        algorithms: list[Algorithm] = [counter] if corrupted is not None else []
        sb_alg: SelectiveBackpropAlgorithm | Kath18ImportanceSampling | None = None
        if selector is not None:
            sb_alg = SelectiveBackpropAlgorithm(selector, cfg.batch_size)
        elif method == "kath18":
            # Pool of (beta + 1) batches per training batch: SB's backward rate while sampling.
            sb_alg = Kath18ImportanceSampling(cfg.batch_size, pool_factor=round(cfg.beta + 1),
                                              seed=seed)
        if sb_alg is not None:
            algorithms.insert(0, sb_alg)
        trainer = Trainer(model, optimizer, loss_fn, algorithms=algorithms, lr_at=lr_at)
        # Same permutation for every method; SB-type methods draw it in selection batches.
        loader = ShuffledLoader(data.x_train, labels,
                                cfg.selection_batch_size if selector else cfg.batch_size,
                                seed=seed)
        runs[method] = _Contestant(trainer, loader, sb_alg, counter, [], [], [])

    def record(t: Trainer, run: _Contestant) -> None:
        cpu_s, wall_s = t.elapsed
        c = t.counters
        sel_fwd = _selection_forwards(run.sb_alg)
        run.curve.append({
            "epoch": c.examples_seen / n_train, "cpu_s": cpu_s, "wall_s": wall_s,
            "backprops": c.backprop_examples, "selection_forwards": sel_fwd,
            "cost_fpe": sel_fwd + TRAIN_STEP_FORWARDS * c.backprop_examples,
            "test_error": _test_error(t.model, data.x_test, data.y_test),
        })

    for run in runs.values():
        record(run.trainer, run)
    eval_every = max(1, n_train // cfg.evals_per_epoch)
    order = list(methods)
    for round_index in range(epochs):
        shift = round_index % len(order)
        for method in order[shift:] + order[:shift]:
            run = runs[method]
            c0, w0 = run.trainer.counters.cpu_s, run.trainer.counters.wall_s
            run.trainer.fit_epoch(run.loader, callback_every=eval_every,
                                  on_step=functools.partial(record, run=run))
            run.epoch_cpu_s.append(run.trainer.counters.cpu_s - c0)
            run.epoch_wall_s.append(run.trainer.counters.wall_s - w0)
        if on_round is not None:
            on_round(round_index)

    out: dict[str, dict[str, Any]] = {}
    primed = min(cfg.prime_epochs, epochs) * n_train
    for method, run in runs.items():
        if run.curve[-1]["epoch"] < epochs or run.curve[-1]["backprops"] != \
                run.trainer.counters.backprop_examples:
            record(run.trainer, run)
        c = run.trainer.counters
        last = run.curve[-1]
        selective = method != "traditional"
        primed_m = 0 if method == "kath18" else primed  # Kath18 does not prime
        final = {
            "final_error": last["test_error"],
            "train_cpu_s": c.cpu_s,
            "train_wall_s": c.wall_s,
            "backprops": float(c.backprop_examples),
            "selection_forwards": float(last["selection_forwards"]),
            "cost_fpe": float(last["cost_fpe"]),
            "backward_rate": ((c.backprop_examples - primed_m)
                              / max(c.examples_seen - primed_m, 1)
                              if selective else 1.0),
            "steps": float(c.steps),
            "steps_per_cpu_s": c.steps / max(c.cpu_s, 1e-9),
            "steps_per_wall_s": c.steps / max(c.wall_s, 1e-9),
        }
        if corrupted is not None:
            final["noisy_share_of_backprops"] = run.counter.noisy / max(run.counter.total, 1)
        out[method] = {"curve": run.curve, "final": final, "epoch_cpu_s": run.epoch_cpu_s,
                       "epoch_wall_s": run.epoch_wall_s}
    return out


def train_one(trial: Trial, cfg: SelectiveBackpropConfig, tctx: TrialContext) -> dict[str, Any]:
    """One race (all methods of one dataset and noise level, one seed); curves and totals."""
    dataset = trial.param("dataset", cfg.datasets[0])
    noise = float(trial.param("noise", 0.0))
    methods = cfg.noisy_methods if noise > 0 else cfg.clean_methods
    data = load_dataset(dataset, cfg)
    epochs = cfg.epochs_for(dataset)
    y_train, corrupted = corrupt_labels(data.y_train, noise, seed=cfg.data_seed + 1)
    bar = tctx.progress(total=epochs)
    results = race(data, methods, cfg, trial.seed, epochs=epochs, y_train=y_train,
                   corrupted=corrupted if noise > 0 else None,
                   on_round=lambda _: bar.update(1))
    bar.close()
    final = {f"{m}|{k}": v for m, r in results.items() for k, v in r["final"].items()}
    # The sceptic's trivial predictor: always the most common training class.
    majority = int(torch.bincount(data.y_train).argmax())
    final["data|majority_error"] = float((data.y_test != majority).float().mean())
    curve = [{"race_method": m, "dataset": dataset, "noise": noise, **row}
             for m, r in results.items() for row in r["curve"]]
    extra = {m: {"epoch_cpu_s": r["epoch_cpu_s"], "epoch_wall_s": r["epoch_wall_s"]}
             for m, r in results.items()}
    return {"final": final, "curve": curve, "extra": extra}


def time_to_target(curve: Sequence[dict[str, Any]], target: float, key: str = "cpu_s") -> float:
    """First ``key`` value at which ``test_error <= target`` (``nan`` if never)."""
    for row in curve:
        if row["test_error"] <= target:
            return float(row[key])
    return math.nan



# ----------------------------------------------------------------------------------------------
# The declared claim and its verdict (pure functions of per-trial numbers)
# ----------------------------------------------------------------------------------------------
#: The target the claim is judged at: 1.5x the same race's traditional final test error (the
#: project card's target; the paper reports speedups to targets derived from traditional's final
#: error, largest at loose targets). Tighter targets (1.25x, 1.1x, 1x) are reported, not judged:
#: SB's final error sits 7-11% above traditional's here, so they mostly test the plateau.
CLAIM_TARGET = 1.5
#: Practical margin (ratio of CPU seconds to the target, traditional / SB): at least 1.5x, the
#: project card's bar, declared before these runs. A reader would call a 1.5x shorter training a
#: real saving (the paper reports up to 3.5x); it is well outside the noise measured here: per-seed
#: speedups spread by about 15% (sd of the log speedup ~0.15, quick run of 2026-12-04) and
#: CPU-time ratios of identical code move by 10-20% between reruns on this VM.
SPEEDUP_MARGIN = 1.5
#: Control: traditional training "learns" when its final error is below this fraction of the
#: error of always predicting the most common class (the sceptic's first baseline).
LEARNS_FRACTION = 0.5
#: Our addition: AdaptSB's final error under label noise must be lower than SB's by at least one
#: percentage point (a reader would call one point of test error real; SB's final error under
#: noise spreads by about half a point between seeds).
ADAPT_MARGIN = 0.01


def target_key(mult: float) -> str:
    """Row key of the CPU seconds to reach ``mult`` x the race's traditional final error."""
    return f"cpu_s_to_{mult:g}x"


def verdict_rows(results: Sequence[Any], multipliers: Sequence[float] = (CLAIM_TARGET,)
                 ) -> list[dict[str, Any]]:
    """One row per (dataset, noise, seed, method): final error, CPU seconds to each target.

    Targets are multiples of the same race's traditional final error (races without
    traditional training get no target times). A run that never reaches a target gets its whole
    training-loop CPU time there, flagged ``<key>_censored``: only a lower bound of its time, so
    a speedup computed from it is only an upper bound (see :func:`verdict`).
    """
    rows = []
    for r in results:
        dataset, noise = r.trial.param("dataset"), float(r.trial.param("noise"))
        curves: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in r.curve:
            curves[row["race_method"]].append(row)
        trad_final = r.final.get("traditional|final_error")
        for method, curve in curves.items():
            row = {"method": method, "seed": r.trial.seed, "dataset": dataset, "noise": noise,
                   "final_error": r.final.get(f"{method}|final_error"),
                   "majority_error": r.final.get("data|majority_error")}
            if trad_final is not None:
                total = float(curve[-1]["cpu_s"])
                for mult in multipliers:
                    t = time_to_target(curve, mult * trad_final)
                    row[target_key(mult)] = total if math.isnan(t) else t
                    row[target_key(mult) + "_censored"] = math.isnan(t)
            rows.append(row)
    return rows


def paper_claim(datasets: Sequence[str] = ("digits",)) -> Claim:
    """The paper's claim, one paired comparison per clean-label dataset cell.

    Budget it needs: an epoch budget in which traditional training converges well below the
    majority-class error and SB reaches the 1.5x target in every seed (20 epochs on digits), and
    >= 3 seeds (5 for bootstrap intervals).
    """
    key = target_key(CLAIM_TARGET)
    return Claim(
        statement=f"with clean labels, Selective-Backprop reaches {CLAIM_TARGET:g}x traditional "
        f"training's final test error in >= {SPEEDUP_MARGIN:g}x less training CPU time than "
        f"traditional training, on every dataset ({', '.join(datasets)}; paired by seed)",
        comparisons=tuple(
            Comparison(key, "sb", "traditional", higher_is_better=False, scale="ratio",
                       margin=SPEEDUP_MARGIN, where={"dataset": d, "noise": 0.0},
                       label=f"SB vs traditional: CPU s to {CLAIM_TARGET:g}x final error [{d}]")
            for d in datasets
        ),
        min_pairs=3,
    )


def _cell(rows: Sequence[Mapping[str, Any]], method: str, dataset: str, noise: float
          ) -> list[Mapping[str, Any]]:
    return [r for r in rows if r["method"] == method and r["dataset"] == dataset
            and r["noise"] == noise]


def preconditions(rows: Sequence[Mapping[str, Any]], claim: Claim) -> list[Precondition]:
    """Controls and power checks of every comparison's cell (see :func:`verdict`)."""
    out = []
    for c in claim.comparisons:
        d, noise = c.where["dataset"], c.where["noise"]
        trad = _cell(rows, "traditional", d, noise)
        learns = [(r["final_error"], r["majority_error"]) for r in trad]
        out.append(Precondition(
            f"traditional training learns {d} (final error < {LEARNS_FRACTION:g}x the "
            "majority-class error in every seed)",
            ok=bool(learns) and all(e is not None and m is not None and e < LEARNS_FRACTION * m
                                    for e, m in learns),
            detail=", ".join(f"{e:.3f} vs {m:.3f}" for e, m in learns
                             if e is not None and m is not None) or "no rows"))
        missed = sum(bool(r.get(c.metric + "_censored", True)) for r in trad)
        out.append(Precondition(
            f"traditional reaches the {CLAIM_TARGET:g}x target on {d} within the budget in "
            "every seed", ok=bool(trad) and missed == 0,
            detail=f"{missed} of {len(trad)} seeds never reached it", reason="underpowered"))
        # A censored SB time is a lower bound, so its speedup is an upper bound: such pairs can
        # show that the margin is out of reach (the comparison fails even at the bounds), never
        # that it holds. Otherwise the budget was too short to measure SB's time.
        sb = _cell(rows, "sb", d, noise)
        censored = sum(bool(r.get(c.metric + "_censored")) for r in sb)
        if censored:
            at_bounds = compare(c, rows, min_pairs=claim.min_pairs, confidence=claim.confidence)
            out.append(Precondition(
                f"SB's time to the {CLAIM_TARGET:g}x target on {d} is measured in every seed, "
                "or fails the margin even at its censored bounds",
                ok=at_bounds.status == "fails",
                detail=f"SB never reached it in {censored} of {len(sb)} seeds; at the bounds "
                f"(upper bounds of the speedup): {at_bounds.status}, "
                f"{at_bounds.display_effect()}", reason="underpowered"))
    return out


def verdict(rows: Sequence[Mapping[str, Any]], *, datasets: Sequence[str] = ("digits",),
            preset: str = "quick", detail: str = "") -> Verdict:
    """The paper's verdict: a pure function of :func:`verdict_rows`' rows. AdaptSB plays no part.

    Preconditions per dataset cell: traditional training learns (control-failed otherwise);
    traditional reaches the target in every seed, and SB does too unless the comparison fails
    even with SB's censored times at their bounds (underpowered otherwise: a longer budget is
    needed to measure SB's time).
    """
    claim = paper_claim(datasets)
    return judge(claim, rows, preconditions=preconditions(rows, claim), preset=preset,
                 detail=detail)


def our_claim(dataset: str = "digits", noise: float = 0.2) -> Claim:
    """Ours, not the paper's: AdaptSB ends with a lower test error than SB under label noise."""
    return Claim(
        statement=f"(our addition) with {noise:.0%} shuffled training labels on {dataset}, "
        f"AdaptSB's final test error is lower than SB's by >= {ADAPT_MARGIN:.0%} "
        "(one point; paired by seed)",
        comparisons=(Comparison("final_error", "adapt-sb", "sb", higher_is_better=False,
                                margin=ADAPT_MARGIN, where={"dataset": dataset, "noise": noise},
                                label=f"AdaptSB vs SB: final error [{dataset}, noise "
                                f"{noise:g}]"),),
        min_pairs=3,
        source="ours",
    )


def our_verdict(rows: Sequence[Mapping[str, Any]], *, dataset: str = "digits",
                noise: float = 0.2, preset: str = "quick") -> Verdict:
    """Our own verdict on AdaptSB (reported apart; it never decides the paper's verdict)."""
    return judge(our_claim(dataset, noise), rows, preset=preset, ours=True)


# ----------------------------------------------------------------------------------------------
# Tables and figures (description; the verdict does not read them)
# ----------------------------------------------------------------------------------------------
CURVE_KEYS = ("epoch", "cpu_s", "wall_s", "backprops", "cost_fpe", "test_error")
#: Currencies of the speedup: curve key -> label.
SPEEDUP_KEYS = {"cpu_s": "CPU", "wall_s": "wall", "cost_fpe": "cost model",
                "backprops": "backward passes"}


def mean_curve(curves: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, float]]:
    """Point-by-point mean over seeds of curves evaluated at the same examples-seen marks."""
    n = min(len(c) for c in curves)
    return [{k: float(np.mean([c[i][k] for c in curves])) for k in CURVE_KEYS}
            for i in range(n)]


def speedup_table(
    runs_by_method: dict[str, list[dict[str, Any]]],
    multipliers: Sequence[float],
    *,
    prime_epochs: int = 1,
) -> dict[str, Any]:
    """Targets, times to target and speedups against ``traditional`` for one dataset.

    Args:
        runs_by_method: per method, one race result per seed (``curve``, ``final``,
            ``epoch_cpu_s``, ``epoch_wall_s``), same seeds for every method.
        multipliers: targets as multiples of traditional's mean final error.
        prime_epochs: epochs excluded from the per-epoch cost (priming is traditional training).

    Returns:
        ``{"trad_final": float, "targets": {m: error}, "methods": {method: {...}}}`` where each
        method has ``final_error``, ``epoch_speedup_cpu``/``_wall`` (median post-priming epoch
        cost of traditional / the method's) and per multiplier ``{key: time, "speedup_" + key:
        ratio, "epoch": epochs, "reached": seeds that reached it}``.
    """
    trad = runs_by_method["traditional"]
    trad_final = float(np.mean([r["final"]["final_error"] for r in trad]))
    trad_mean = mean_curve([r["curve"] for r in trad])

    def epoch_cost(runs: list[dict[str, Any]], key: str) -> float:
        values = [v for r in runs for v in r[key][prime_epochs:]]
        return statistics.median(values) if values else math.nan

    summary: dict[str, Any] = {"trad_final": trad_final, "targets": {}, "methods": {}}
    for mult in multipliers:
        summary["targets"][mult] = mult * trad_final
    for method, runs in runs_by_method.items():
        curve = mean_curve([r["curve"] for r in runs])
        entry: dict[str, Any] = {
            "final_error": float(np.mean([r["final"]["final_error"] for r in runs])),
            "epoch_speedup_cpu": epoch_cost(trad, "epoch_cpu_s") / epoch_cost(runs, "epoch_cpu_s"),
            "epoch_speedup_wall": (epoch_cost(trad, "epoch_wall_s")
                                   / epoch_cost(runs, "epoch_wall_s")),
        }
        for mult, target in summary["targets"].items():
            cell: dict[str, float] = {
                "epoch": time_to_target(curve, target, "epoch"),
                "reached": float(sum(np.isfinite(time_to_target(r["curve"], target))
                                     for r in runs)),
            }
            for key in SPEEDUP_KEYS:
                mine = time_to_target(curve, target, key)
                base = time_to_target(trad_mean, target, key)
                cell[key] = mine
                cell["speedup_" + key] = base / mine if mine > 0 else math.nan
            entry[mult] = cell
        summary["methods"][method] = entry
    return summary


def _fmt(x: float, spec: str = ".2f") -> str:
    return "-" if not np.isfinite(x) else format(x, spec)


def format_tables(summary: dict[str, Any], n_seeds: int, label: Callable[[str], str] = str
                  ) -> tuple[str, str]:
    """Markdown tables: time to target (CPU s) and speedups in all four currencies."""
    mults = list(summary["targets"])
    head = ("| method | final error | per-epoch speedup CPU (wall) | "
            + " | ".join(f"{m:g}x = {summary['targets'][m]:.2%}: CPU s (speedup), epoch, seeds"
                         for m in mults) + " |")
    time_rows = [head, "|" + "---|" * (3 + len(mults))]
    speed_head = ("| method | " + " | ".join(f"{m:g}x: CPU / wall / cost model / backward passes"
                                              for m in mults) + " |")
    speed_rows = [speed_head, "|" + "---|" * (1 + len(mults))]
    for method, e in summary["methods"].items():
        cells, speeds = [], []
        for m in mults:
            c = e[m]
            cells.append(f"{_fmt(c['cpu_s'], '.2f')} ({_fmt(c['speedup_cpu_s'])}x), "
                         f"{_fmt(c['epoch'], '.1f')}, {int(c['reached'])}/{n_seeds}")
            speeds.append(" / ".join(_fmt(c["speedup_" + k]) for k in SPEEDUP_KEYS))
        time_rows.append(f"| {label(method)} | {e['final_error']:.2%} | "
                         f"{_fmt(e['epoch_speedup_cpu'])} ({_fmt(e['epoch_speedup_wall'])}) | "
                         + " | ".join(cells) + " |")
        speed_rows.append(f"| {label(method)} | " + " | ".join(speeds) + " |")
    return "\n".join(time_rows), "\n".join(speed_rows)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {(f"{k:g}x" if isinstance(k, float) else k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _plot(ctx: RunContext, by_method: dict[str, list[dict[str, Any]]], targets: Sequence[float],
          title: str, dataset: str, noise: float) -> None:
    fig, axes = new_figure(1, 3, width=4.6)
    panels = (("cpu_s", "training-loop CPU s"), ("wall_s", "training-loop wall-clock s"),
              ("backprops", "examples backpropagated"))
    for method, runs in by_method.items():
        n = min(len(r["curve"]) for r in runs)
        ys = np.array([[row["test_error"] for row in r["curve"][:n]] for r in runs])
        for ax, (key, _) in zip(axes[0], panels, strict=True):
            # Rows are aligned across seeds (same examples-seen marks), so average x and y.
            xs = np.array([[row[key] for row in r["curve"][:n]] for r in runs]).mean(0)
            (line,) = ax.plot(xs, ys.mean(0), label=method)
            if len(runs) > 1:
                ax.fill_between(xs, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.15)
    for ax, (_, xlabel) in zip(axes[0], panels, strict=True):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test error")
        ax.set_yscale("log")
        for target in targets:
            ax.axhline(target, color="grey", lw=0.6, ls=":")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title(title)
    ctx.save_figure(fig, f"error_vs_time_{dataset}" + (f"_noise{noise:g}" if noise > 0 else ""))


# ----------------------------------------------------------------------------------------------
# The experiment
# ----------------------------------------------------------------------------------------------
@register(
    "selective-backprop",
    family="selection",
    paper="Jiang et al., Accelerating Deep Learning by Focusing on the Biggest Losers "
    "(arXiv:1910.00762, 2019); AdaptSB: A. H. Jiang, CMU PhD thesis",
    claim="Selective-Backprop reaches a target test error faster than traditional training (the "
    "paper: up to 3.5x; judged here: >= 1.5x less CPU time to 1.5x traditional's final error, "
    "paired by seed, on every dataset). AdaptSB under label noise is our own addition, judged "
    "separately.",
    config=SelectiveBackpropConfig,
    presets={
        "tiny": {"datasets": ("teacher",), "n_train": 1200, "n_test": 500, "hidden": 64,
                 "epochs": 3, "n_seeds": 1, "evals_per_epoch": 2, "history_size": 256,
                 "clean_methods": CLEAN_METHODS, "noisy_methods": NOISY_METHODS},
        # Wider network (closer to the paper's over-parameterised WRNs), longer schedules.
        "full": {"datasets": ("digits", "clusters", "teacher"), "n_train": 40000,
                 "n_test": 10000, "hidden": 512, "epochs": 24, "digits_epochs": 40,
                 "n_seeds": 5, "noise_seeds": 5, "clean_methods": CLEAN_METHODS,
                 "noisy_methods": NOISY_METHODS},
    },
    # Time is process CPU time of each race's training loop, which a race in the other worker
    # does not inflate (wall-clock is recorded for the report only).
    parallel_trials=True,
)
def run(cfg: SelectiveBackpropConfig, ctx: RunContext) -> None:
    """Run the races, judge the claim on per-seed times to target, tabulate and plot."""
    cfg.validate()
    main = cfg.datasets[0]
    trials = []
    for dataset in cfg.datasets:
        trials += ctx.make_trials(["race"], dataset=[dataset], noise=[0.0])
    if cfg.noise_fraction > 0:
        noise_seeds = ctx.seeds[:cfg.noise_seeds]
        trials += [t for t in ctx.make_trials(["race"], dataset=[main],
                                              noise=[cfg.noise_fraction])
                   if t.seed in noise_seeds]
    results = ctx.run_trials(train_one, trials)
    ctx.add_section("Setup", _setup_text(cfg, ctx.seeds))

    rows = verdict_rows(results, cfg.target_multipliers)
    _record(ctx, results, rows, cfg.target_multipliers)
    summaries = _describe(ctx, cfg, results)
    ctx.note("time_to_target", _jsonable(summaries))

    clean = summaries[main]["methods"]
    detail = (f"Final error on {main}: traditional {clean['traditional']['final_error']:.2%}, "
              f"SB {clean['sb']['final_error']:.2%}; per-epoch CPU speedup of SB "
              f"{clean['sb']['epoch_speedup_cpu']:.2f}x. The paper's up-to-3.5x is "
              "CIFAR/SVHN-scale on GPUs.")
    ctx.set_verdict(verdict(rows, datasets=cfg.datasets, preset=ctx.preset, detail=detail))
    if cfg.noise_fraction > 0:
        ctx.set_verdict(our_verdict(rows, dataset=main, noise=cfg.noise_fraction,
                                    preset=ctx.preset))


def _label(method: str, dataset: str, noise: float) -> str:
    suffix = f"@{dataset}" + (f"+noise{noise:g}" if noise > 0 else "")
    return method + suffix


#: Final metrics where lower is better; those in ``_NEUTRAL`` have no direction.
_LOWER = ("final_error", "train_cpu_s", "train_wall_s", "backprops", "selection_forwards",
          "cost_fpe", "noisy_share_of_backprops")
_NEUTRAL = ("backward_rate", "steps", "steps_per_cpu_s", "steps_per_wall_s")


def _record(ctx: RunContext, results: Sequence[Any], rows: Sequence[Mapping[str, Any]],
            multipliers: Sequence[float]) -> None:
    """Per-seed results (labels carry the cell) and curves into ``metrics.csv``."""
    for r in results:
        d, noise = r.trial.param("dataset"), float(r.trial.param("noise"))
        for key, value in r.final.items():
            method, metric = key.split("|", 1)
            if method == "data":
                continue
            ctx.add_result(_label(method, d, noise), metric, value,
                           higher_is_better=None if metric in _NEUTRAL else metric not in _LOWER)
        for row in r.curve:
            ctx.log(method=_label(row["race_method"], d, noise), seed=r.trial.seed,
                    **{k: v for k, v in row.items() if k != "race_method"})
    for row in rows:
        label = _label(row["method"], row["dataset"], row["noise"])
        for mult in multipliers:
            key = target_key(mult)
            if key in row:
                ctx.add_result(label, key, row[key], higher_is_better=False,
                               censored=row[key + "_censored"])


def _describe(ctx: RunContext, cfg: SelectiveBackpropConfig, results: Sequence[Any]
              ) -> dict[str, Any]:
    """Seed-mean tables (times and speedups to every target) and figures, per cell."""
    groups: dict[tuple[str, float], dict[str, list[dict[str, Any]]]] = {}
    for r in results:
        d, noise = r.trial.param("dataset"), float(r.trial.param("noise"))
        by_method = groups.setdefault((d, noise), {})
        for method in (cfg.noisy_methods if noise > 0 else cfg.clean_methods):
            curve = [row for row in r.curve if row["race_method"] == method]
            final = {k.split("|", 1)[1]: v for k, v in r.final.items()
                     if k.split("|", 1)[0] == method}
            by_method.setdefault(method, []).append({"curve": curve, "final": final,
                                                     **r.extra[method]})
    summaries: dict[str, Any] = {}
    for (d, noise), by_method in groups.items():
        title = f"{d}, " + (f"{noise:.0%} labels shuffled" if noise > 0 else "clean labels")
        targets: list[float] = []
        if "traditional" in by_method:
            summary = speedup_table(by_method, cfg.target_multipliers,
                                    prime_epochs=cfg.prime_epochs)
            summaries[_label("", d, noise).lstrip("@")] = summary
            targets = list(summary["targets"].values())
            times, speeds = format_tables(summary, len(ctx.seeds),
                                          label=lambda m, d=d, noise=noise: _label(m, d, noise))
            ctx.add_section(f"Time to target error (seed means): {title}", times + (
                "\n\nDescriptive; the verdict uses per-seed times (results table, claim check). "
                "Targets = multiples of traditional's final test error (mean over seeds). CPU s"
                " = process CPU seconds of the training loop until the seed-mean error curve "
                "first reaches the target ('-': never); speedup = traditional's time / the "
                "method's; epoch = epochs (examples seen / N) at that point; seeds = how many "
                "single seeds reached it. Per-epoch speedup = median epoch cost of traditional "
                "/ the method's, after priming."))
            ctx.add_section(f"Speedup to target in four currencies: {title}", speeds + (
                "\n\nCPU = process CPU time, wall = wall-clock time of the same loop (races ran "
                "two at a time, so wall-clock is inflated), cost model = forward-equivalents "
                f"(selection forward 1, training step {TRAIN_STEP_FORWARDS:g}; deterministic), "
                "backward passes = examples backpropagated."))
        _plot(ctx, by_method, targets, title, d, noise)
    return summaries


def _setup_text(cfg: SelectiveBackpropConfig, seeds: Sequence[int]) -> str:
    drops = ", ".join(f"{f:.1%}" for f in cfg.lr_drops)
    return (
        f"MLP in-{cfg.hidden}-{cfg.hidden}-out with BatchNorm; SGD (Nesterov momentum 0.9, "
        f"weight decay 5e-4), batch {cfg.batch_size}, LR {cfg.lr:g} x{cfg.lr_decay:g} at {drops} "
        f"of the examples-seen budget (same LR per epoch for every method, as the reference's "
        f"`forwardlr`); {cfg.digits_epochs} epochs on digits, {cfg.epochs} on generated sets; "
        f"beta={cfg.beta:g} (backward rate 1/(beta+1)), R={cfg.history_size}, p_min=0, "
        f"{cfg.prime_epochs} priming epoch(s) of traditional training for SB-type methods, "
        f"selection forwards over {cfg.selection_batch_size} examples at a time (training "
        f"batches of {cfg.batch_size}), "
        f"Stale-SB staleness {cfg.staleness}; random = U^beta subset (no selection forward); "
        f"Kath18 = loss-proportional sampling with replacement of {cfg.batch_size} from a pool "
        f"of {round(cfg.beta + 1)} batches, switched on by its variance-reduction test, no "
        "re-weighting (the variant the SB paper ran). Clean races: "
        f"{', '.join(cfg.clean_methods)}; label-noise races: {', '.join(cfg.noisy_methods)}. "
        f"All methods of one (dataset, seed) train in one process in interleaved epochs from the "
        f"same initial weights and example order. Label noise: {cfg.noise_fraction:.0%} of the "
        f"training labels of {cfg.datasets[0]} shuffled among themselves (test labels clean); "
        "AdaptSB is our own design (per-example persistence, see the method card). Time = "
        "process CPU seconds of the training loop on one thread (evaluation excluded; races "
        "run two at a time in worker processes, which CPU time tolerates); wall = wall-clock "
        "seconds of the same loop; cost model = forward-equivalents (selection forward 1, "
        f"training step {TRAIN_STEP_FORWARDS:g}). Per-seed times to a target that was never "
        "reached are censored (shown as `>=` the whole training time, left out of means). "
        "Seeds: " + ", ".join(map(str, seeds)) + f" (label noise: the first {cfg.noise_seeds}).")
