"""Throughput of the hierarchical MARL family: env steps and training steps per CPU-second.

Measures, pinned to one torch thread, in one run:
* raw ``TrashCollectionEnv.step`` with random actions on ``small`` and ``field4``, beside the
  anchor: PettingZoo's own minimal ParallelEnv (``generated_agents_parallel_v0``), which bounds
  the per-step overhead of the ParallelEnv dict protocol;
* training steps per second of every method (flat IQL/QMIX, Ind-hDQN/hCom/hQmix with and
  without ACER) on ``small`` -- this is what sets the experiment's step budgets.

Run: ``.venv/bin/python benchmarks/marl_throughput.py [--train-steps 1000] [--layout small]
[--device cpu]``.

``--separation BUDGETS`` instead finds the budget at which the high level learns measurably:
for each budget (env steps, comma-separated) it trains Ind-hDQN+ACER and the random high level
(the experiment's control) with the settings of the experiment's ``--preset`` (quick: ``tiny``;
full: ``room``, subgoal cap 25, width 128) over ``--seeds`` seeds, one process per run
(``--workers``), and prints the AUC of the team return per seed and the paired mean
difference with its t interval. This is how the experiment's quick budget (``tiny``, 5,000
steps) was chosen.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from adaptlearn.core import pin_threads
from adaptlearn.marl.runner import TrainConfig, train
from adaptlearn.marl.trash_collection_v0 import TrashCollectionEnv


def env_rate(make, steps: int) -> tuple[float, float]:
    """(steps per wall-second, steps per CPU-second) of random play."""
    env = make()
    env.reset(seed=0)
    for a in env.agents:
        env.action_space(a).seed(0)
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        if not env.agents:
            env.reset()
        env.step({a: env.action_space(a).sample() for a in env.agents})
    return steps / (time.perf_counter() - w0), steps / (time.process_time() - c0)


def _separation_run(job: tuple[str, int, bool, int]) -> tuple[int, bool, int, float, float]:
    """(budget, random high level, seed, AUC of the team return, CPU-s) of one training run."""
    import dataclasses

    from adaptlearn.core import get_experiment
    from adaptlearn.experiments.hierarchical_marl import RANDOM_HIGH

    preset, steps, random_high, seed = job
    pin_threads(1)
    exp = dataclasses.replace(get_experiment("hierarchical-marl").make_config(preset),
                              total_steps=steps, log_every=max(50, steps // 20), eval_episodes=0)
    cfg = exp.train_config(RANDOM_HIGH if random_high else "ind-hdqn+acer")
    c0 = time.process_time()
    out = train("ind-hdqn", cfg, seed)
    return steps, random_high, seed, out["final"]["auc_return"], time.process_time() - c0


def separation(preset: str, budgets: list[int], seeds: int, workers: int) -> None:
    """Learned (Ind-hDQN+ACER) vs random high level at each budget: AUC per seed, paired
    difference with a t interval."""
    from concurrent.futures import ProcessPoolExecutor

    from adaptlearn.core.stats import interval_of_mean

    jobs = [(preset, b, r, s) for b in sorted(budgets, reverse=True)
            for r in (False, True) for s in range(seeds)]
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_separation_run, jobs))
    print(f"preset {preset}'s settings, masks off, {seeds} seeds; AUC of the team return")
    print(f"{'budget':>8} {'Ind-hDQN+ACER (per seed)':<36} {'random high level':<36} "
          "difference [95%]  CPU-s")
    for b in sorted(budgets):
        learned = [r[3] for r in results if r[0] == b and not r[1]]
        rand = [r[3] for r in results if r[0] == b and r[1]]
        cpu = sum(r[4] for r in results if r[0] == b)
        diff = [x - y for x, y in zip(learned, rand, strict=True)]
        iv = interval_of_mean(diff, 0.95)
        print(f"{b:>8} {', '.join(f'{x:.2f}' for x in learned):<36} "
              f"{', '.join(f'{x:.2f}' for x in rand):<36} {np.mean(diff):+.3f} "
              f"[{iv.low:+.3f}, {iv.high:+.3f}] {cpu:7.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env-steps", type=int, default=5000)
    parser.add_argument("--train-steps", type=int, default=1000)
    parser.add_argument("--layout", default="small", help="layout of the training rates")
    parser.add_argument("--device", default="cpu", help="torch device of the learners")
    parser.add_argument("--separation", metavar="BUDGETS", help="comma-separated env steps")
    parser.add_argument("--seeds", type=int, default=5, help="seeds for --separation")
    parser.add_argument("--workers", type=int, default=2, help="processes for --separation")
    parser.add_argument("--preset", default="quick", choices=("quick", "full"),
                        help="experiment preset whose settings --separation uses")
    args = parser.parse_args()
    if args.separation:
        separation(args.preset, [int(b) for b in args.separation.split(",")], args.seeds,
                   args.workers)
        return
    pin_threads(1)
    from pettingzoo.test.example_envs import generated_agents_parallel_v0

    anchor = env_rate(lambda: generated_agents_parallel_v0.parallel_env(), args.env_steps)
    print(f"{'env':<28}{'steps/s':>10}{'steps/cpu-s':>13}{'vs anchor':>11}")
    print(f"{'pettingzoo generated (anchor)':<28}{anchor[0]:>10.0f}{anchor[1]:>13.0f}{1.0:>11.2f}")
    for layout in ("small", "field4"):
        rate = env_rate(lambda lay=layout: TrashCollectionEnv(lay), args.env_steps)
        print(f"{'trash_collection ' + layout:<28}{rate[0]:>10.0f}{rate[1]:>13.0f}"
              f"{rate[1] / anchor[1]:>11.2f}")
    print(f"\n{'method (' + args.layout + ', ' + args.device + ')':<28}{'steps/s':>10}"
          f"{'steps/cpu-s':>13}")
    for method, acer in [("iql", False), ("qmix", False), ("ind-hdqn", False),
                         ("ind-hdqn", True), ("hcom", False), ("hcom", True),
                         ("hqmix", False), ("hqmix", True)]:
        cfg = TrainConfig(layout=args.layout, total_steps=args.train_steps, acer=acer,
                          eval_episodes=0, meta_pretrain_frac=0.0, meta_eps_frac=0.5)
        c0 = time.process_time()
        out = train(method, cfg, 0, device=args.device)
        cpu = time.process_time() - c0
        name = method + ("+acer" if acer else "")
        print(f"{name:<28}{out['steps_per_s']:>10.0f}{args.train_steps / cpu:>13.0f}")
    print(f"\n(load average {np.round(__import__('os').getloadavg(), 1).tolist()}: "
          "timings on a shared machine are noisy)")


if __name__ == "__main__":
    main()
