"""Forward+backward speed of MLSTM / MLSTM-F / MRNN / MRNN-F against ``nn.LSTM`` (the anchor).

Also the vectorized memory filter against the naive per-lag Python loop (``memory_impl="loop"``,
run on fewer steps and compared per time step). One thread; each case runs its calls in a row,
in two passes over the cases; medians.

    .venv/bin/python benchmarks/long_memory.py            # H=64, T=500, B=32, K=100
    .venv/bin/python benchmarks/long_memory.py --quick    # smaller, seconds

Paths: ``fused`` (default: one autograd node per layer, hand-written backward), ``store``
(per-step autograd), ``loop`` (per-lag reference). MLSTM's default filter is ``poly``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from adaptlearn.core import pin_threads
from adaptlearn.nn import MLSTM, MLSTMF, MRNN, MRNNF


def fwd_bwd(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        out, _ = model(x)
        out.pow(2).mean().backward()
        model.zero_grad(set_to_none=True)

    return run


def lstm_cell_loop(cell: torch.nn.LSTMCell, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        h = c = x.new_zeros(x.shape[1], cell.hidden_size)
        outs = []
        for t in range(x.shape[0]):
            h, c = cell(x[t], (h, c))
            outs.append(h)
        torch.stack(outs).pow(2).mean().backward()
        cell.zero_grad(set_to_none=True)

    return run


def run_group(
    cases: dict[str, tuple[Callable[[], None], int]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds per call: each case runs ``rounds`` calls in a row after one warm-up
    call (the steady state of a training loop), in two passes over the cases (forward, then
    reverse order) so that slow drifts in machine load hit every case alike.

    Calls of one case are consecutive, not interleaved with other cases: a model's large buffers
    are then re-used from the allocator's free lists as in training, while interleaving lets
    other cases' allocations decide how many fresh pages (page faults) each call pays.
    """
    wall: dict[str, list[float]] = {n: [] for n in cases}
    cpu: dict[str, list[float]] = {n: [] for n in cases}
    names = list(cases)
    for order in (names, names[::-1]):
        for name in order:
            fn = cases[name][0]
            fn()  # warm-up
            for _ in range(rounds):
                w0, c0 = time.perf_counter(), time.process_time()
                fn()
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--memory", type=int, default=100)
    ap.add_argument("--loop-steps", type=int, default=40, help="T for the per-lag loop paths")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="T=100, 3 rounds")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.rounds, args.loop_steps = 100, 3, 20
    pin_threads(1)
    torch.manual_seed(0)
    h, t, b, k = args.hidden, args.steps, args.batch, args.memory
    x = torch.randn(t, b, 1)
    x_loop = x[: args.loop_steps]
    anchor = "nn.LSTM (anchor)"
    # Two groups with their own anchor run: the headline cases and the slow reference paths.
    headline: dict[str, tuple[Callable[[], None], int]] = {
        anchor: (fwd_bwd(torch.nn.LSTM(1, h), x), t),
        "nn.LSTMCell python loop": (lstm_cell_loop(torch.nn.LSTMCell(1, h), x), t),
        "MLSTM-F": (fwd_bwd(MLSTMF(1, h, memory_length=k), x), t),
        "MLSTM": (fwd_bwd(MLSTM(1, h, memory_length=k), x), t),
        "MRNN-F": (fwd_bwd(MRNNF(1, h, memory_length=k), x), t),
        "MRNN": (fwd_bwd(MRNN(1, h, memory_length=k), x), t),
    }
    others: dict[str, tuple[Callable[[], None], int]] = {
        anchor: (fwd_bwd(torch.nn.LSTM(1, h), x), t),
        "MLSTM exact filter": (
            fwd_bwd(MLSTM(1, h, memory_length=k, dynamic_filter="exact"), x),
            t,
        ),
        "MLSTM-F store": (fwd_bwd(MLSTMF(1, h, memory_length=k, memory_impl="store"), x), t),
        "MLSTM store": (fwd_bwd(MLSTM(1, h, memory_length=k, memory_impl="store"), x), t),
        "MLSTM-F per-lag loop": (
            fwd_bwd(MLSTMF(1, h, memory_length=k, memory_impl="loop"), x_loop),
            args.loop_steps,
        ),
        "MLSTM per-lag loop": (
            fwd_bwd(MLSTM(1, h, memory_length=k, memory_impl="loop"), x_loop),
            args.loop_steps,
        ),
    }
    print(
        f"forward+backward, H={h}, B={b}, K={k}, 1 thread, median of 2 x {args.rounds} calls "
        f"(T={t}; per-lag loops T={args.loop_steps}, compared per time step)"
    )
    per_step: dict[str, float] = {}
    for title, cases in (("headline", headline), ("other paths", others)):
        wall, cpu = run_group(cases, args.rounds)
        a_wall = statistics.median(wall[anchor]) / t
        a_cpu = statistics.median(cpu[anchor]) / t
        print(f"-- {title}")
        print(
            f"{'implementation':26s} {'ms/step wall':>12s} {'ms/step cpu':>12s} "
            f"{'x LSTM wall':>11s} {'x LSTM cpu':>10s} {'steps/CPU-s':>11s}"
        )
        for name, (_, steps) in cases.items():
            w = statistics.median(wall[name]) / steps
            c = statistics.median(cpu[name]) / steps
            per_step.setdefault(name, c / a_cpu)
            print(
                f"{name:26s} {1e3 * w:12.3f} {1e3 * c:12.3f} {w / a_wall:11.2f} "
                f"{c / a_cpu:10.2f} {1 / c:11.0f}"
            )
    for name in ("MLSTM", "MLSTM-F"):
        ratio = per_step[name]
        verdict = "met" if ratio <= 3.0 else "NOT met"
        print(f"{name} / nn.LSTM CPU time: {ratio:.2f}x (target <= 3x: {verdict})")
    for fast, slow in (("MLSTM-F", "MLSTM-F per-lag loop"), ("MLSTM", "MLSTM per-lag loop")):
        print(
            f"speed-up of the vectorized filter over the per-lag loop, {fast}: "
            f"{per_step[slow] / per_step[fast]:.1f}x (CPU time per step)"
        )


if __name__ == "__main__":
    main()
