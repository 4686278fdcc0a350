"""Speedup to target error of Selective-Backprop (and, on the MLP, Stale-SB, random subset,
Kath18) vs traditional training.

Two set-ups (``--model``):

``cnn`` (default; any device, ``--device cuda`` on a GPU): a small CNN (3 conv layers with
BatchNorm, 32-64-128 channels, global average pool) on generated CIFAR-shaped data (3x32x32, 10
classes; class patterns + shifts + per-example noise of varying strength, so some examples are
easy and some hard), traditional vs SB at beta = 3 with one priming epoch, trained through
``Trainer`` + ``SelectiveBackpropAlgorithm`` with the data kept on the device. Time is
**wall-clock** with the device synchronised at both ends of every epoch (evaluation excluded);
the two methods of a seed start from the same weights and example order and alternate epoch by
epoch. Prints per-epoch wall seconds and speed-up, and the speed-up to target test error
(multiples of traditional's final error; evaluated at epoch ends, so targets are resolved to
whole epochs). Default size (40,000 training images, 8 epochs, 3 seeds): 47 s on one H200
including start-up; on a CPU shrink it (``--n-train 2000 --epochs 4 --seeds 1 --width 8``).

``mlp`` (CPU): the races of the experiment (below), as measured for the method card.

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

Run: .venv/bin/python benchmarks/selection_speedup.py --device cuda        (CNN, ~1 min on a GPU)
     .venv/bin/python benchmarks/selection_speedup.py --device cpu --n-train 2000 --epochs 4
     .venv/bin/python benchmarks/selection_speedup.py --model mlp [--seeds 3] [--epochs 20]
     [--beta 3] [--hidden 256] [--selection-batch-size 512]
     [--methods traditional,sb,stale-sb,random,kath18] [--dataset digits]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
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
from adaptlearn.selection import (
    SelectiveBackprop,
    SelectiveBackpropAlgorithm,
    ShuffledLoader,
    Trainer,
    eval_mode_losses,
)


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


# --- CNN on generated CIFAR-shaped data (any device) -----------------------------------------


def make_cifar_like(n: int, *, seed: int, num_classes: int = 10, noise: float = 2.0,
                    distractor: float = 0.9, data_seed: int = 1234
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated 3x32x32 images: a class pattern, shifted, plus a distractor and noise.

    The class patterns (smooth random fields) are fixed by ``data_seed``; ``seed`` draws the
    examples. Each image is its class pattern rolled by up to 4 pixels, plus ``distractor`` times
    the pattern of another class and Gaussian noise of standard deviation ``noise * exp(0.5 z)``,
    ``z ~ N(0, 1)`` per example, so most examples are easy and a minority are hard. Returns
    ``x [n, 3, 32, 32]`` float32 and ``y [n]`` int64, on the CPU.
    """
    g = torch.Generator().manual_seed(data_seed)
    coarse = torch.randn(num_classes, 3, 4, 4, generator=g)
    patterns = nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear",
                                         align_corners=False)
    patterns = patterns / patterns.flatten(1).std(1).view(-1, 1, 1, 1)
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, num_classes, (n,), generator=g)
    other = (y + torch.randint(1, num_classes, (n,), generator=g)) % num_classes
    shifts = torch.randint(-4, 5, (n, 2), generator=g)
    x = torch.empty(n, 3, 32, 32)
    for k in range(n):  # rolls differ per example
        dy, dx = int(shifts[k, 0]), int(shifts[k, 1])
        x[k] = torch.roll(patterns[y[k]], (dy, dx), (1, 2)) + distractor * torch.roll(
            patterns[other[k]], (-dx, dy), (1, 2))
    sigma = noise * torch.exp(0.5 * torch.randn(n, 1, 1, 1, generator=g))
    x = x + sigma * torch.randn(x.shape, generator=g)
    return x, y


def make_cnn(width: int = 32, num_classes: int = 10) -> nn.Module:
    """Conv(3->w) - Conv(w->2w, /2) - Conv(2w->4w, /2), each + BN + ReLU; avg pool; linear."""

    def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(*block(3, width, 1), *block(width, 2 * width, 2),
                         *block(2 * width, 4 * width, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4 * width, num_classes))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def _error(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    model.eval()
    wrong = sum(int((model(x[i:i + batch]).argmax(1) != y[i:i + batch]).sum())
                for i in range(0, x.shape[0], batch))
    model.train()
    return wrong / x.shape[0]


def cnn_race(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
             args: argparse.Namespace, seed: int, device: torch.device
             ) -> dict[str, dict[str, list[float]]]:
    """Traditional vs SB from the same weights and order, alternating epochs; per-epoch wall
    seconds (device synchronised), test error after each epoch and backprops."""
    n = int(x.shape[0])
    budget = args.epochs * n
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    runs = {}
    for method in ("traditional", "sb"):
        torch.manual_seed(seed)
        model = make_cnn(args.width).to(device).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)

        def lr_at(seen: int, opt_lr: float = args.lr) -> float:
            return opt_lr * 0.1 ** sum(seen >= f * budget for f in (0.5, 0.75))

        algorithms = []
        if method == "sb":
            sb = SelectiveBackprop(args.beta, 1024, prime_examples=n, seed=seed)
            algorithms.append(SelectiveBackpropAlgorithm(sb, args.batch_size))
        trainer = Trainer(model, opt, loss_fn, algorithms=algorithms, lr_at=lr_at)
        loader = ShuffledLoader(x, y, args.selection_batch_size if method == "sb"
                                else args.batch_size, seed=seed, device=device)
        runs[method] = (trainer, loader, {"epoch_s": [], "error": [], "backprops": []})
    for epoch in range(args.epochs):
        order = list(runs) if epoch % 2 == 0 else list(runs)[::-1]
        for method in order:
            trainer, loader, rec = runs[method]
            _sync(device)
            t0 = time.perf_counter()
            trainer.fit_epoch(loader)
            _sync(device)
            rec["epoch_s"].append(time.perf_counter() - t0)
            rec["error"].append(_error(trainer.model, x_test, y_test))
            rec["backprops"].append(trainer.counters.backprop_examples)
    return {m: rec for m, (_, _, rec) in runs.items()}


def run_cnn(args: argparse.Namespace) -> None:
    """The CNN benchmark: per-epoch and to-target speed-ups of SB over traditional training."""
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: CUDA is not available on this machine")
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} thread(s)"
    wall0 = time.perf_counter()
    x, y = make_cifar_like(args.n_train + args.n_test, seed=0, noise=args.noise,
                           distractor=args.distractor)
    x = x.contiguous(memory_format=torch.channels_last)
    data = (x[:args.n_train].to(device), y[:args.n_train].to(device),
            x[args.n_train:].to(device), y[args.n_train:].to(device))
    print(f"CNN (width {args.width}) on generated CIFAR-shaped data (noise {args.noise:g}, "
          f"distractor {args.distractor:g}): {args.n_train} train / "
          f"{args.n_test} test, batch {args.batch_size} (SB selection forwards over "
          f"{args.selection_batch_size}), beta={args.beta:g}, 1 priming epoch, {args.epochs} "
          f"epochs, SGD lr {args.lr:g} x0.1 at 50%/75%, seeds 0..{args.seeds - 1}; device: "
          f"{name}; torch {torch.__version__}; data built in {time.perf_counter() - wall0:.1f} s")
    # Warm-up (cuDNN autotuning, allocator) outside the measured races.
    warm = make_cnn(args.width).to(device).to(memory_format=torch.channels_last)
    for size in (args.batch_size, args.selection_batch_size):
        warm(data[0][:size]).sum().backward()
    _sync(device)
    races = [cnn_race(*data, args, seed, device) for seed in range(args.seeds)]
    methods = ("traditional", "sb")
    mean_curve = {m: [statistics.mean(r[m]["error"][e] for r in races)
                      for e in range(args.epochs)] for m in methods}
    cum_s = {m: [statistics.mean(sum(r[m]["epoch_s"][: e + 1]) for r in races)
                 for e in range(args.epochs)] for m in methods}
    after = slice(1, None) if args.epochs > 1 else slice(0, None)
    per_epoch = {m: statistics.median(v for r in races for v in r[m]["epoch_s"][after])
                 for m in methods}
    print("\nper epoch (median over epochs after priming and seeds; wall s, device synced):")
    print(f"{'method':<12} {'s/epoch':>8} {'speed-up':>9} {'backprops/ep':>12} "
          f"{'final error':>11}")
    for m in methods:
        bp = statistics.mean(
            (r[m]["backprops"][-1] - r[m]["backprops"][0]) / max(args.epochs - 1, 1)
            for r in races)
        print(f"{m:<12} {per_epoch[m]:8.3f} {per_epoch['traditional'] / per_epoch[m]:9.2f} "
              f"{bp:12.0f} {mean_curve[m][-1]:11.2%}")
    final = mean_curve["traditional"][-1]
    print(f"\ntime to target test error (seed-mean curves, epoch resolution; targets = multiples "
          f"of traditional's final error {final:.2%}):")
    print(f"{'target':>14} {'traditional s (ep)':>19} {'SB s (ep)':>14} {'speed-up':>9}")
    for mult in (2.0, 1.5, 1.25, 1.1, 1.0):
        target = mult * final
        if target >= 1.0:  # an error rate above 100% says nothing
            continue

        def reach(m: str, target: float = target) -> tuple[float, int] | None:
            for e, err in enumerate(mean_curve[m]):
                if err <= target:
                    return cum_s[m][e], e + 1
            return None

        t, s = reach("traditional"), reach("sb")
        cell_t = f"{t[0]:.2f} ({t[1]})" if t else "not reached"
        cell_s = f"{s[0]:.2f} ({s[1]})" if s else "not reached"
        speed = f"{t[0] / s[0]:.2f}x" if t and s else "-"
        print(f"{mult:>5g}x {target:>7.2%} {cell_t:>19} {cell_s:>14} {speed:>9}")
    print(f"\nbenchmark: {time.perf_counter() - wall0:.0f} s wall; load average before/after: "
          f"{args.load_before} / {_load()} on {os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("cnn", "mlp"), default="cnn",
                        help="cnn: small CNN on generated CIFAR-shaped data, any device "
                        "(default); mlp: the experiment's races on the CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cnn only: cpu or cuda (default: cuda where available)")
    parser.add_argument("--n-train", type=int, default=40_000, help="cnn: training examples")
    parser.add_argument("--n-test", type=int, default=2_000, help="cnn: test examples")
    parser.add_argument("--width", type=int, default=32, help="cnn: channels of the first conv")
    parser.add_argument("--lr", type=float, default=0.05, help="cnn: SGD learning rate")
    parser.add_argument("--noise", type=float, default=2.0,
                        help="cnn: median per-example noise std of the generated images")
    parser.add_argument("--distractor", type=float, default=0.9,
                        help="cnn: weight of another class's pattern in every image")
    cnn_args, rest = parser.parse_known_args()
    if cnn_args.model == "cnn":
        cnn = argparse.ArgumentParser(parents=[parser], add_help=False)
        cnn.add_argument("--seeds", type=int, default=3)
        cnn.add_argument("--epochs", type=int, default=8)
        cnn.add_argument("--batch-size", type=int, default=128)
        cnn.add_argument("--selection-batch-size", type=int, default=512)
        cnn.add_argument("--beta", type=float, default=3.0)
        args = cnn.parse_args()
        for name in ("seeds", "epochs", "batch_size", "selection_batch_size", "n_train",
                     "n_test", "width"):
            if getattr(args, name) < 1:
                parser.error(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("beta", "noise", "distractor"):
            if not getattr(args, name) >= 0:
                parser.error(f"--{name} must be >= 0")
        if args.device == "cpu":
            pin_threads(1)
        args.load_before = _load()
        run_cnn(args)
        return
    del rest
    if cnn_args.device != "cpu" and "--device" in sys.argv:
        parser.error("--model mlp runs the experiment's CPU races; --device applies to --model cnn")
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
