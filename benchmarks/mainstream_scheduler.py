"""Scheduler time vs number of apps: greedy (ours) against exhaustive search (the anchor).

The anchor is the exact exhaustive search over all (depth, fps)^N schedules, as the reference
code's ``get_parameter_options`` / ``exhaustive_search.cpp``; it is run only while N is small.
For every N we report the median wall-clock and process-CPU time per call, schedules solved per
CPU-second, the greedy/exhaustive time ratio and the optimality gap (exhaustive - greedy mean F1).

Usage: ``.venv/bin/python benchmarks/mainstream_scheduler.py [--reps 3] [--max-apps 30]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from adaptlearn.core import pin_threads
from adaptlearn.mainstream import AppSpec, CostModel, StemOption, schedule

# Remaining-suffix MobileNet costs of the reference (units per frame) at k = 0/63/81/84
LAYERS = (20.81 - 1.17, 1.17 - 0.044, 0.044 - 0.011, 0.011)
FPS = (1.0, 2.0, 3.0, 5.0, 10.0)


def make_apps(n: int, rng: np.random.Generator) -> list[AppSpec]:
    apps = []
    for i in range(n):
        a = np.sort(rng.uniform(0.3, 1.0, len(LAYERS)))[::-1]
        apps.append(AppSpec(
            f"app{i}",
            tuple(StemOption(k, float(a[k]), float(rng.uniform(0, 0.1))) for k in range(len(a))),
            event_length_s=float(rng.choice([0.2, 0.5, 1.0])),
            event_frequency=float(rng.choice([0.1, 0.3, 0.6])),
            correlation=float(rng.choice([0.1, 0.5, 0.9])),
        ))
    return apps


def timed(fn, reps: int) -> tuple[float, float, object]:
    walls, cpus, out = [], [], None
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-apps", type=int, default=30)
    parser.add_argument("--max-exhaustive", type=int, default=4)
    args = parser.parse_args()
    pin_threads(1)
    cm = CostModel(LAYERS, 10.0)
    rng = np.random.default_rng(0)
    print("times are medians per call; ratios use process CPU time (wall-clock is noisy on a "
          "shared machine)")
    print(f"{'N':>3} {'greedy ms':>10} {'cpu ms':>8} {'sched/cpu-s':>11} {'paper-greedy ms':>15} "
          f"{'exhaustive ms':>13} {'cpu ms':>8} {'ex/greedy (cpu)':>15} {'gap':>7}")
    for n in [1, 2, 3, 4, 6, 8, 10, 15, 20, 25, 30]:
        if n > args.max_apps:
            break
        apps = make_apps(n, rng)
        budget = 0.5 * cm.full_model_cost * max(1, n // 2)
        gw, gc, g = timed(lambda apps=apps, b=budget: schedule(apps, b, cm, fps_options=FPS),
                          args.reps)
        pw, _, _ = timed(lambda apps=apps, b=budget: schedule(
            apps, b, cm, fps_options=FPS, multi_start=False), args.reps)
        line = (f"{n:>3} {1e3 * gw:>10.2f} {1e3 * gc:>8.2f} {1 / max(gc, 1e-9):>11.1f} "
                f"{1e3 * pw:>15.2f}")
        if n <= args.max_exhaustive:
            ew, ec, e = timed(lambda apps=apps, b=budget: schedule(
                apps, b, cm, fps_options=FPS, search="exhaustive"), args.reps)
            line += (f" {1e3 * ew:>13.2f} {1e3 * ec:>8.2f} {ec / max(gc, 1e-9):>15.2f}"
                     f" {e.objective - g.objective:>7.4f}")
        else:
            line += f" {'-':>13} {'-':>8} {'-':>15} {'-':>7}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
