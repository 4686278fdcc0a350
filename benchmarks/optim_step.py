"""Step time of AdaMod (single-tensor, foreach, fused) against torch's Adam (fused, foreach).

All optimizers step the same parameters with fixed gradients in interleaved rounds (so that load
on a shared machine hits every method alike) and the median time per step is printed with the
ratios to ``Adam(fused=True)`` and ``Adam(foreach=True)``. Two parameter sets:

* ``small``: 8.9M elements in 13 tensors (4 x 1024x1024, 2 x 4096x512, 2 x 512x512, biases);
* ``large``: 134M elements in 8 tensors of 4096x4096.

    .venv/bin/python benchmarks/optim_step.py [--device cpu|cuda] [--sizes small,large]
        [--rounds 7] [--steps 10] [--threads 1] [--no-compile]

On CPU one thread is used (``--threads``); on CUDA the time is measured with CUDA events after a
synchronize. ``AdaMod(fused)`` is whatever ``AdaMod(fused=True)`` dispatches to (the
``torch.compile``d kernel, compiled on its first step); ``AdaMod(default)`` is the default path:
on CUDA the Triton kernel (built once per process and dtype, cached on disk), elsewhere foreach.
Targets (issues 20 and 24): ``AdaMod(fused)`` <= 1.3x
``Adam(fused)`` (a fused AdaMod streams 9 tensor passes per element against Adam's 7, so ~1.29x
is the floor); on CUDA also no long first step by default.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from adaptlearn.core import pin_threads
from adaptlearn.optim import AdaMod

SHAPES = {
    "small": [(1024, 1024)] * 4 + [(4096, 512)] * 2 + [(512, 512)] * 2 + [(1024,)] * 4 + [(512,)],
    "large": [(4096, 4096)] * 8,
}


def make_params(size: str, device: torch.device) -> list[torch.Tensor]:
    """Parameters of the ``size`` set on ``device`` with fixed random gradients (float32)."""
    gen = torch.Generator().manual_seed(0)
    params = []
    for shape in SHAPES[size]:
        p = torch.nn.Parameter((0.02 * torch.randn(shape, generator=gen)).to(device))
        p.grad = (1e-3 * torch.randn(shape, generator=gen)).to(device)
        params.append(p)
    return params


def _timer(device: torch.device) -> Callable[[Callable[[], None]], float]:
    """A function that times one call in seconds (CUDA events on CUDA)."""
    if device.type == "cuda":
        def timed(fn: Callable[[], None]) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        return timed

    def timed_cpu(fn: Callable[[], None]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    return timed_cpu


def bench(size: str, device: torch.device, rounds: int, steps: int, compile_: bool,
          single: bool) -> dict[str, float]:
    """Median seconds per step of each optimizer on the ``size`` set; prints a table."""
    params = make_params(size, device)
    n = sum(p.numel() for p in params)
    makers: dict[str, Callable[[], torch.optim.Optimizer]] = {
        "Adam(fused)": lambda: torch.optim.Adam(params, fused=True),
        "Adam(foreach)": lambda: torch.optim.Adam(params, foreach=True),
        "AdaMod(default)": lambda: AdaMod(params),
        "AdaMod(foreach)": lambda: AdaMod(params, foreach=True),
    }
    if single:
        makers["AdaMod(single)"] = lambda: AdaMod(params, foreach=False)
    if compile_:
        makers["AdaMod(fused)"] = lambda: AdaMod(params, fused=True)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    timed = _timer(device)
    opts = {}
    for name, make in makers.items():
        opt = make()
        sync()
        t0 = time.perf_counter()
        opt.step()  # creates state; compiles the fused path
        sync()
        first = time.perf_counter() - t0
        opt.step()
        opts[name] = opt
        print(f"{name:16s} first step (state init / compile): {first:8.3f} s", flush=True)

    wall: dict[str, list[float]] = {k: [] for k in opts}
    for _ in range(rounds):
        for name, opt in opts.items():
            sync()
            for _ in range(steps):
                wall[name].append(timed(opt.step))
    med = {k: statistics.median(v) for k, v in wall.items()}
    threads = f"{torch.get_num_threads()} thread(s)" if device.type == "cpu" else (
        torch.cuda.get_device_name(device))
    print(f"\n[{size}] {n / 1e6:.1f}M parameters in {len(params)} tensors, {device.type} "
          f"({threads}), {rounds} interleaved rounds x {steps} steps; torch {torch.__version__}")
    print(f"{'optimizer':16s} {'median ms':>10s} {'IQR ms':>17s} {'/Adam(fused)':>13s} "
          f"{'/Adam(foreach)':>15s}")
    for name in opts:
        q = statistics.quantiles(wall[name], n=4)
        print(f"{name:16s} {1e3 * med[name]:10.3f} {1e3 * q[0]:8.3f}-{1e3 * q[2]:8.3f} "
              f"{med[name] / med['Adam(fused)']:12.2f}x {med[name] / med['Adam(foreach)']:14.2f}x")
    if "AdaMod(fused)" in med:
        print(f"[{size}] AdaMod(fused) / Adam(fused): "
              f"{med['AdaMod(fused)'] / med['Adam(fused)']:.2f}x (target <= 1.3x)")
    print(f"[{size}] AdaMod(default) / Adam(fused): "
          f"{med['AdaMod(default)'] / med['Adam(fused)']:.2f}x")
    print(f"[{size}] AdaMod(foreach) / Adam(foreach): "
          f"{med['AdaMod(foreach)'] / med['Adam(foreach)']:.2f}x\n", flush=True)
    return med


def main() -> None:
    """Parse arguments and run the benchmark for each requested size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--sizes", default=None,
                        help="comma-separated: small,large (default: small on cpu, both on cuda)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method per round")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (cpu only)")
    parser.add_argument("--no-compile", action="store_true", help="skip AdaMod(fused=True)")
    parser.add_argument("--no-single", action="store_true", help="skip AdaMod(foreach=False)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    if device.type == "cpu":
        pin_threads(args.threads)
    sizes = (args.sizes or ("small" if device.type == "cpu" else "small,large")).split(",")
    for size in sizes:
        if size not in SHAPES:
            parser.error(f"--sizes must name sets from {sorted(SHAPES)}; got {size!r}")
        bench(size, device, args.rounds, args.steps, not args.no_compile, not args.no_single)


if __name__ == "__main__":
    main()
