"""Sampler throughput on Pong: our samplers vs gymnasium AsyncVectorEnv and ale-py's vector env.

The loop is the same for every backend: observe N envs -> one batched forward pass of a
randomly initialised Nature-CNN policy (1 torch thread) -> step. Same Atari preprocessing for
all (ale-py's vector env configured to match). Cells are interleaved over ``--repeats`` rounds
and medians are reported, with steps per CPU-second (process + worker processes) beside wall
steps per second, because the machine is shared (see the load average printed).

Targets (spec accelerated_rl.md, section 6): best sampler >= 1.0x (issue) / 1.5x (spec)
AsyncVectorEnv, and >= 0.95x the plain ale-py vector env loop, in steps per CPU-second.

    .venv/bin/python benchmarks/rl_sampler.py [--n-envs 8] [--seconds 5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics

from adaptlearn.core import pin_threads
from adaptlearn.rl.throughput import measure_throughput

OURS = ("serial", "parallel", "alternating")
ANCHORS = ("gym_async", "gym_sync", "ale_vector")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="ALE/Pong-v5")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="also time the Ray sampler")
    args = parser.parse_args()
    pin_threads(1)
    backends = list(OURS) + (["ray"] if args.ray else []) + list(ANCHORS)
    runs: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    load0 = os.getloadavg()[0]
    for _ in range(args.repeats):
        for b in backends:
            runs[b].append(measure_throughput(b, args.env, args.n_envs, seconds=args.seconds,
                                              warmup_s=args.warmup, n_workers=args.workers))
    load1 = os.getloadavg()[0]
    med = {b: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for b, rs in runs.items()}
    print(f"{args.env}, {args.n_envs} envs, Nature CNN, 1 torch thread, {args.repeats} "
          f"interleaved rounds x {args.seconds:g} s; load average {load0:.1f} -> {load1:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'backend':<12} {'steps/s':>9} {'frames/s':>9} {'steps/CPU-s':>12} {'CPU used':>9}")
    for b in backends:
        m = med[b]
        print(f"{b:<12} {m['steps_per_s']:>9.0f} {m['frames_per_s']:>9.0f} "
              f"{m['steps_per_cpu_s']:>12.0f} {m['cpu_util']:>9.2f}")
    best = max(OURS, key=lambda b: med[b]["steps_per_cpu_s"])
    print(f"\nbest of ours by steps/CPU-s: {best}")
    for anchor, target in (("gym_async", 1.5), ("ale_vector", 0.95), ("gym_sync", None)):
        cpu = med[best]["steps_per_cpu_s"] / med[anchor]["steps_per_cpu_s"]
        wall = med[best]["steps_per_s"] / med[anchor]["steps_per_s"]
        goal = f" (target >= {target}x)" if target else ""
        print(f"{best} / {anchor}: {cpu:.2f}x per CPU-second, {wall:.2f}x wall{goal}")


if __name__ == "__main__":
    main()
