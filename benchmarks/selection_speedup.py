"""Speedup to target error of Selective-Backprop, Stale-SB, random subset, Kath18 vs traditional.

Anchor: traditional training (every example backpropagated) with the same model, data, LR
schedule (keyed on examples seen), batch size and loop, measured in the same process on the same
seeds. Each seed is one race of the experiment (``adaptlearn.experiments.selective_backprop.race``):
all methods start from the same weights and example order and train in interleaved epochs (one
epoch of every method per round, rotating order), so machine load hits all methods alike.

Prints, with the load average before and after:
1. unit costs on this machine: one selection forward and one training step at the batch size
   (median CPU ms) and the per-epoch SB cost they predict;
2. per-epoch cost after priming (median over epochs and seeds): CPU and wall seconds, training
   steps per CPU-second and per wall-second, and the per-epoch speedup;
3. speedup to target error (targets = multiples of traditional's final test error, mean over
   seeds), in CPU time (the primary measure), wall time, a deterministic cost model (selection
   forward = 1, training step = 3 forward-equivalents) and backward passes.

Run: .venv/bin/python benchmarks/selection_speedup.py [--seeds 3] [--epochs 20] [--beta 3]
     [--hidden 256] [--selection-batch-size 512]
     [--methods traditional,sb,stale-sb,random,kath18] [--dataset digits]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from adaptlearn.core import pin_threads
from adaptlearn.experiments.selective_backprop import (
    CLEAN_METHODS,
    DATASETS,
    TRAIN_STEP_FORWARDS,
    SelectiveBackpropConfig,
    format_tables,
    load_dataset,
    make_mlp,
    race,
    speedup_table,
)
from adaptlearn.selection import eval_mode_losses


def unit_costs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_sel: torch.Tensor,
               y_sel: torch.Tensor, reps: int = 30) -> tuple[float, float]:
    """Median CPU seconds of one selection forward on ``x_sel`` (as the pipeline runs it: eval
    mode, ``no_grad``) and of one training step on ``x``."""
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    modules = list(model.modules())

    def fwd() -> None:
        eval_mode_losses(model, modules, loss_fn, x_sel, y_sel)

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).mean().backward()
        opt.step()

    samples: dict[str, list[float]] = {"fwd": [], "step": []}
    for _ in range(5):
        fwd()
        step()
    for _ in range(reps):  # interleaved, so load changes hit both alike
        for name, f in (("fwd", fwd), ("step", step)):
            t = time.process_time()
            f()
            samples[name].append(time.process_time() - t)
    return statistics.median(samples["fwd"]), statistics.median(samples["step"])


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = SelectiveBackpropConfig()
    parser.add_argument("--dataset", default=defaults.datasets[0], choices=DATASETS)
    parser.add_argument("--seeds", type=int, default=defaults.n_seeds)
    parser.add_argument("--epochs", type=int, default=None,
                        help="epoch budget (default: the experiment's for the dataset)")
    parser.add_argument("--hidden", type=int, default=defaults.hidden)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--selection-batch-size", type=int,
                        default=defaults.selection_batch_size,
                        help="examples per selection forward (SB-type methods)")
    parser.add_argument("--beta", type=float, default=defaults.beta)
    parser.add_argument("--evals-per-epoch", type=int, default=defaults.evals_per_epoch)
    parser.add_argument("--methods", default="traditional,sb,stale-sb,random,kath18",
                        help=f"comma-separated, among {', '.join(CLEAN_METHODS)}")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in CLEAN_METHODS:
            parser.error(f"--methods: unknown method {m!r}; choose from {CLEAN_METHODS}")
    if "traditional" not in methods:
        methods.insert(0, "traditional")
    pin_threads(1)
    cfg = SelectiveBackpropConfig(datasets=(args.dataset,), hidden=args.hidden,
                                  batch_size=args.batch_size, beta=args.beta,
                                  selection_batch_size=args.selection_batch_size,
                                  evals_per_epoch=args.evals_per_epoch, n_seeds=args.seeds)
    if args.epochs is not None:
        cfg.epochs = cfg.digits_epochs = args.epochs
    cfg.validate()
    epochs = cfg.epochs_for(args.dataset)
    data = load_dataset(args.dataset, cfg)
    n = int(data.x_train.shape[0])
    load_before = _load()

    b, sel = cfg.batch_size, cfg.selection_batch_size
    fwd_sel_s, step_s = unit_costs(
        make_mlp(int(data.x_train.shape[1]), cfg.hidden, data.num_classes),
        data.x_train[:b], data.y_train[:b], data.x_train[:sel], data.y_train[:sel])
    fwd_s = fwd_sel_s * b / sel  # selection forward per training batch's worth of examples
    rate = 1 / (cfg.beta + 1)
    print(f"{args.dataset}: {n} training examples, MLP {data.x_train.shape[1]}-{cfg.hidden}-"
          f"{cfg.hidden}-{data.num_classes} + BN, batch {b} (selection forwards over {sel}), "
          f"beta={cfg.beta:g}, {epochs} epochs, LR {cfg.lr:g} x{cfg.lr_decay:g} at "
          f"{cfg.lr_drops} of the budget, {cfg.prime_epochs} priming epoch, seeds "
          f"0..{args.seeds - 1}, 1 thread")
    print(f"unit costs: selection forward {fwd_sel_s * 1e3:.2f} ms per {sel} examples "
          f"({fwd_s * 1e3:.2f} ms per {b}), training step {step_s * 1e3:.2f} ms per {b} (ratio "
          f"{step_s / fwd_s:.1f}; cost model assumes {TRAIN_STEP_FORWARDS:g}); ideal per-epoch "
          f"speedup SB {step_s / (fwd_s + rate * step_s):.2f}x, Stale-SB "
          f"{step_s / (fwd_s / cfg.staleness + rate * step_s):.2f}x, random "
          f"{1 / rate:.2f}x")

    by_method: dict[str, list[dict]] = {m: [] for m in methods}
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for seed in range(args.seeds):
        results = race(data, methods, cfg, seed, epochs=epochs)
        for m in methods:
            by_method[m].append(results[m])
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    print(f"\nper epoch after priming (median over epochs and seeds; {len(methods)} methods "
          "interleaved epoch by epoch):")
    print(f"{'method':<12} {'CPU s/ep':>9} {'wall s/ep':>9} {'steps/CPU-s':>11} "
          f"{'steps/wall-s':>12} {'ex/CPU-s':>9} {'backprops/ep':>12} {'speedup CPU':>11} "
          f"{'speedup wall':>12}")
    base: dict[str, float] = {}
    for m in methods:
        runs = by_method[m]
        cpu_ep = statistics.median(v for r in runs for v in r["epoch_cpu_s"][cfg.prime_epochs:])
        wall_ep = statistics.median(v for r in runs for v in r["epoch_wall_s"][cfg.prime_epochs:])
        steps = sum(r["final"]["steps"] for r in runs)
        cpu_tot = sum(r["final"]["train_cpu_s"] for r in runs)
        wall_tot = sum(r["final"]["train_wall_s"] for r in runs)
        primed = cfg.prime_epochs * n if m != "traditional" else 0
        bp_ep = statistics.mean((r["final"]["backprops"] - primed)
                                / (epochs - (cfg.prime_epochs if primed else 0)) for r in runs)
        base = base or {"cpu": cpu_ep, "wall": wall_ep}
        print(f"{m:<12} {cpu_ep:9.3f} {wall_ep:9.3f} {steps / cpu_tot:11.0f} "
              f"{steps / wall_tot:12.0f} {n / cpu_ep:9.0f} {bp_ep:12.0f} "
              f"{base['cpu'] / cpu_ep:11.2f} {base['wall'] / wall_ep:12.2f}")

    summary = speedup_table(by_method, cfg.target_multipliers, prime_epochs=cfg.prime_epochs)
    times, speeds = format_tables(summary, args.seeds)
    print(f"\ntime to target error (targets = multiples of traditional's final error "
          f"{summary['trad_final']:.2%}, mean over seeds; first evaluation where the seed-mean "
          "curve reaches the target):")
    print(times)
    print("\nspeedup to target error over traditional (same run, same seeds):")
    print(speeds)
    print(f"\nbenchmark: {wall:.0f} s wall, {cpu:.0f} s CPU; load average (1/5/15 min) before "
          f"{load_before}, after {_load()} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
