"""Per-epoch cost of Selective-Backprop / Stale-SB / random subset vs traditional training.

Anchor: traditional training (every example backpropagated) with the same model, data, batch
size and loop, measured in the same process in interleaved rounds (traditional, SB, Stale-SB,
random, traditional, ...), all at equal examples seen (one epoch each). Reports wall-clock and
process-CPU seconds per epoch, examples per CPU-second, speedup ratios, and the ideal SB ratio
predicted from the measured cost of one selection forward and one training step.

Run: .venv/bin/python benchmarks/selection_speedup.py [--hidden 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from adaptlearn.core import pin_threads
from adaptlearn.experiments.selective_backprop import make_mlp
from adaptlearn.selection import (
    RandomSubset,
    SelectiveBackprop,
    SelectiveBackpropAlgorithm,
    ShuffledLoader,
    StaleSB,
    Trainer,
    make_teacher_classification,
)


def unit_costs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, reps: int = 50) -> tuple:
    """CPU seconds of one eval-mode forward and one training step on a batch."""
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def fwd() -> None:
        model.eval()
        with torch.no_grad():
            loss_fn(model(x), y)
        model.train()

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).mean().backward()
        opt.step()

    out = []
    for f in (fwd, step):
        for _ in range(5):
            f()
        t = time.process_time()
        for _ in range(reps):
            f()
        out.append((time.process_time() - t) / reps)
    return tuple(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--beta", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pin_threads(1)
    data = make_teacher_classification(args.n_train, 10, n_features=40, seed=0)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    n = args.n_train

    def make(method: str) -> tuple[Trainer, ShuffledLoader]:
        torch.manual_seed(0)
        model = make_mlp(40, args.hidden, 10)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        sel = {"traditional": None,
               "sb": SelectiveBackprop(args.beta, seed=0),
               "stale-sb": StaleSB(n, args.beta, staleness=3, seed=0),
               "random": RandomSubset(args.beta, seed=0)}[method]
        algs = [SelectiveBackpropAlgorithm(sel, args.batch_size)] if sel is not None else []
        return (Trainer(model, opt, loss_fn, algorithms=algs),
                ShuffledLoader(data.x_train, data.y_train, args.batch_size, seed=0))

    methods = ["traditional", "sb", "stale-sb", "random"]
    runs = {m: make(m) for m in methods}
    for trainer, loader in runs.values():  # warm-up epoch (fills SB history / Stale-SB cache)
        trainer.fit_epoch(loader)
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    wall: dict[str, list[float]] = {m: [] for m in methods}
    backprops: dict[str, list[int]] = {m: [] for m in methods}
    for _ in range(args.rounds):
        for m in methods:
            trainer, loader = runs[m]
            c0, w0, b0 = trainer.counters.cpu_s, trainer.counters.wall_s, \
                trainer.counters.backprop_examples
            trainer.fit_epoch(loader)
            cpu[m].append(trainer.counters.cpu_s - c0)
            wall[m].append(trainer.counters.wall_s - w0)
            backprops[m].append(trainer.counters.backprop_examples - b0)
    fwd_s, step_s = unit_costs(make_mlp(40, args.hidden, 10), data.x_train[:args.batch_size],
                               data.y_train[:args.batch_size])
    rate = 1 / (args.beta + 1)
    ideal = (fwd_s + rate * step_s) / step_s
    print(f"MLP 40-{args.hidden}-{args.hidden}-10 + BN, batch {args.batch_size}, {n} examples per "
          f"epoch, beta={args.beta:g}, 1 thread, {args.rounds} interleaved rounds (median)")
    print(f"one selection forward {fwd_s * 1e3:.2f} ms, one train step {step_s * 1e3:.2f} ms "
          f"(ratio {step_s / fwd_s:.1f}); ideal SB epoch cost {ideal:.2f} of traditional")
    base_cpu = statistics.median(cpu["traditional"])
    base_wall = statistics.median(wall["traditional"])
    print(f"{'method':<12} {'wall s/ep':>9} {'CPU s/ep':>9} {'ex/CPU-s':>9} {'backprops':>9} "
          f"{'speedup(wall)':>13} {'speedup(CPU)':>12}")
    for m in methods:
        c, w = statistics.median(cpu[m]), statistics.median(wall[m])
        print(f"{m:<12} {w:9.3f} {c:9.3f} {n / c:9.0f} {statistics.median(backprops[m]):9.0f} "
              f"{base_wall / w:13.2f} {base_cpu / c:12.2f}")


if __name__ == "__main__":
    main()
