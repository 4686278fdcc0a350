"""Step time of AdaMod (single-tensor, foreach, compiled) against torch's Adam (foreach, fused).

All optimizers step the same ~8.4M parameters (4 x 1024x1024, 2 x 4096x512, 2 x 512x512 and
biases) with fixed gradients, one thread, in interleaved rounds so that load on a shared machine
hits every method alike. Prints the median wall-clock ms per step, steps per CPU-second and the
ratios to Adam(fused=True) and Adam(foreach=True).

    .venv/bin/python benchmarks/optim_adamod.py [--rounds 7] [--steps 10] [--scale 1] [--no-compile]

Targets of issue 3: AdaMod(fused) <= 1.3x Adam(fused); AdaMod(foreach) <= 1.3x Adam(foreach).
A fused AdaMod streams 9 tensor passes per element against Adam's 7, so ~1.29x is the floor.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from adaptlearn.core import pin_threads
from adaptlearn.optim import AdaMod


def make_params(scale: float) -> list[torch.Tensor]:
    """Parameters of several shapes (~8.4M elements at scale 1) with fixed random gradients."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(1024, 1024)] * 4 + [(4096, 512)] * 2 + [(512, 512)] * 2 + [(1024,)] * 4 + [(512,)]
    params = []
    for shape in shapes:
        shape = tuple(max(1, round(d * scale**0.5)) for d in shape)
        p = torch.nn.Parameter(0.02 * torch.randn(shape, generator=gen))
        p.grad = 1e-3 * torch.randn(shape, generator=gen)
        params.append(p)
    return params


def main() -> None:
    """Run the interleaved benchmark and print a table of times and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method per round")
    parser.add_argument("--scale", type=float, default=1.0, help="parameter count multiplier")
    parser.add_argument("--no-compile", action="store_true", help="skip AdaMod(fused=True)")
    args = parser.parse_args()
    pin_threads(1)

    params = make_params(args.scale)
    n = sum(p.numel() for p in params)
    makers = {
        "Adam(fused)": lambda: torch.optim.Adam(params, fused=True),
        "Adam(foreach)": lambda: torch.optim.Adam(params, foreach=True),
        "AdaMod(single)": lambda: AdaMod(params, foreach=False),
        "AdaMod(foreach)": lambda: AdaMod(params, foreach=True),
    }
    if not args.no_compile:
        makers["AdaMod(fused)"] = lambda: AdaMod(params, fused=True)
        # the default (fused=None, foreach=None) compiles for models of >= 2**20 elements
        makers["AdaMod(default)"] = lambda: AdaMod(params)
    opts = {}
    for name, make in makers.items():
        opt = make()
        t0 = time.perf_counter()
        opt.step()  # creates state; compiles the fused path
        first = time.perf_counter() - t0
        opt.step()
        opts[name] = opt
        print(f"{name:16s} first step (state init / compile): {first:7.2f} s", flush=True)

    wall: dict[str, list[float]] = {k: [] for k in opts}
    cpu: dict[str, list[float]] = {k: [] for k in opts}
    for _ in range(args.rounds):
        for name, opt in opts.items():
            for _ in range(args.steps):
                w0, c0 = time.perf_counter(), time.process_time()
                opt.step()
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)

    med = {k: statistics.median(v) for k, v in wall.items()}
    print(f"\n{n / 1e6:.2f}M parameters in {len(params)} tensors, 1 thread, "
          f"{args.rounds} interleaved rounds x {args.steps} steps; torch {torch.__version__}")
    print(f"{'optimizer':16s} {'median ms':>10s} {'IQR ms':>13s} {'steps/CPU-s':>12s} "
          f"{'/Adam(fused)':>13s} {'/Adam(foreach)':>15s}")
    for name in opts:
        q = statistics.quantiles(wall[name], n=4)
        print(f"{name:16s} {1e3 * med[name]:10.2f} {1e3 * q[0]:6.2f}-{1e3 * q[2]:6.2f} "
              f"{len(cpu[name]) / max(sum(cpu[name]), 1e-9):12.1f} "
              f"{med[name] / med['Adam(fused)']:12.2f}x {med[name] / med['Adam(foreach)']:14.2f}x")
    if "AdaMod(default)" in med:
        print(f"\ntarget default AdaMod path <= 1.3x Adam(fused): "
              f"{med['AdaMod(default)'] / med['Adam(fused)']:.2f}x")
    if "AdaMod(fused)" in med:
        print(f"\ntarget AdaMod(fused) <= 1.3x Adam(fused): "
              f"{med['AdaMod(fused)'] / med['Adam(fused)']:.2f}x")
    print(f"target AdaMod(foreach) <= 1.3x Adam(foreach): "
          f"{med['AdaMod(foreach)'] / med['Adam(foreach)']:.2f}x")


if __name__ == "__main__":
    main()
