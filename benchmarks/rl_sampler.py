"""Sampler throughput on Pong: our samplers vs the vector-env anchors and the inference limit.

The loop is the same for every backend: observe N envs -> one batched forward pass of a
randomly initialised Nature-CNN policy (1 torch thread) -> step. Same Atari preprocessing for
all (ale-py's vector env configured to match). ``inference_only`` times the batched forward pass
alone on a fixed batch: the rate if stepping cost nothing. Cells are interleaved over
``--repeats`` rounds and medians are reported, with steps per CPU-second (process + worker
processes) beside wall steps per second, because the machine is shared (load average printed).

Targets (issue #23): alternating >= 0.9x the inference-only limit and >= 1.0x ale-py's vector
env in wall steps/s, and >= 0.95x ale-py's vector env per CPU-second; the ratios of the best of
our samplers against the best anchor (gymnasium Sync/Async, ale-py) are printed beside them.

    .venv/bin/python benchmarks/rl_sampler.py [--n-envs 8] [--seconds 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics

from adaptlearn.core import pin_threads
from adaptlearn.experiments.accelerated_rl import measure_probe
from adaptlearn.rl.throughput import measure_throughput

OURS = ("serial", "parallel", "alternating")
ANCHORS = ("gym_async", "gym_sync", "ale_vector")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="ALE/Pong-v5")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="also time the Ray sampler")
    args = parser.parse_args()
    pin_threads(1)
    backends = list(OURS) + (["ray"] if args.ray else []) + list(ANCHORS) + ["inference_only"]
    runs: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    load0 = os.getloadavg()[0]
    for rep in range(args.repeats):
        shift = rep % len(backends)  # rotate the order so load drifts hit every cell alike
        for b in backends[shift:] + backends[:shift]:
            if b == "inference_only":
                r = measure_probe(b, args.env, args.n_envs, seconds=args.seconds,
                                  warmup_s=args.warmup)
            else:
                r = measure_throughput(b, args.env, args.n_envs, seconds=args.seconds,
                                       warmup_s=args.warmup, n_workers=args.workers)
            runs[b].append(r)
    load1 = os.getloadavg()[0]
    med = {b: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for b, rs in runs.items()}
    print(f"{args.env}, {args.n_envs} envs, Nature CNN, 1 torch thread, {args.workers} workers, "
          f"{args.repeats} interleaved rounds x {args.seconds:g} s; load average {load0:.1f} -> "
          f"{load1:.1f} on {os.cpu_count()} CPUs")
    print(f"{'backend':<15} {'steps/s':>9} {'frames/s':>9} {'steps/CPU-s':>12} {'CPU used':>9}")
    for b in backends:
        m = med[b]
        print(f"{b:<15} {m['steps_per_s']:>9.0f} {m['frames_per_s']:>9.0f} "
              f"{m['steps_per_cpu_s']:>12.0f} {m['cpu_util']:>9.2f}")

    def ratio(a: str, b: str, key: str) -> float:
        return med[a][key] / med[b][key]

    limit = med["inference_only"]["steps_per_s"]
    print("\nagainst the inference-only limit (wall steps/s):")
    for b in OURS:
        goal = " (target >= 0.9x)" if b == "alternating" else ""
        print(f"  {b} / inference_only: {med[b]['steps_per_s'] / limit:.2f}x{goal}")
    print("alternating against ale-py's vector env:")
    print(f"  wall {ratio('alternating', 'ale_vector', 'steps_per_s'):.2f}x (target >= 1.0x), "
          f"per CPU-second {ratio('alternating', 'ale_vector', 'steps_per_cpu_s'):.2f}x "
          "(target >= 0.95x)")
    best_ours = max(OURS, key=lambda b: med[b]["steps_per_s"])
    best_anchor = max(ANCHORS, key=lambda b: med[b]["steps_per_s"])
    print(f"best of ours ({best_ours}) / best anchor ({best_anchor}): wall "
          f"{ratio(best_ours, best_anchor, 'steps_per_s'):.2f}x, per CPU-second "
          f"{ratio(best_ours, best_anchor, 'steps_per_cpu_s'):.2f}x")
    print(f"parallel / serial wall {ratio('parallel', 'serial', 'steps_per_s'):.2f}x, "
          f"alternating / serial wall {ratio('alternating', 'serial', 'steps_per_s'):.2f}x")


if __name__ == "__main__":
    main()
