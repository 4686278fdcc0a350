"""Throughput of the hierarchical MARL family: env steps and training steps per CPU-second.

Measures, pinned to one torch thread, in one run:
* raw ``TrashCollectionEnv.step`` with random actions on ``small`` and ``field4``, beside the
  anchor: PettingZoo's own minimal ParallelEnv (``generated_agents_parallel_v0``), which bounds
  the per-step overhead of the ParallelEnv dict protocol;
* training steps per second of every method (flat IQL/QMIX, Ind-hDQN/hCom/hQmix with and
  without ACER) on ``small`` -- this is what sets the experiment's step budgets.

Run: ``.venv/bin/python benchmarks/marl_throughput.py [--train-steps 1000]``.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env-steps", type=int, default=5000)
    parser.add_argument("--train-steps", type=int, default=1000)
    args = parser.parse_args()
    pin_threads(1)
    from pettingzoo.test.example_envs import generated_agents_parallel_v0

    anchor = env_rate(lambda: generated_agents_parallel_v0.parallel_env(), args.env_steps)
    print(f"{'env':<28}{'steps/s':>10}{'steps/cpu-s':>13}{'vs anchor':>11}")
    print(f"{'pettingzoo generated (anchor)':<28}{anchor[0]:>10.0f}{anchor[1]:>13.0f}{1.0:>11.2f}")
    for layout in ("small", "field4"):
        rate = env_rate(lambda lay=layout: TrashCollectionEnv(lay), args.env_steps)
        print(f"{'trash_collection ' + layout:<28}{rate[0]:>10.0f}{rate[1]:>13.0f}"
              f"{rate[1] / anchor[1]:>11.2f}")
    print(f"\n{'method (small, training)':<28}{'steps/s':>10}{'steps/cpu-s':>13}")
    for method, acer in [("iql", False), ("qmix", False), ("ind-hdqn", False),
                         ("ind-hdqn", True), ("hcom", False), ("hcom", True),
                         ("hqmix", False), ("hqmix", True)]:
        cfg = TrainConfig(layout="small", total_steps=args.train_steps, acer=acer,
                          eval_episodes=0, meta_pretrain_frac=0.0, meta_eps_frac=0.5)
        c0 = time.process_time()
        out = train(method, cfg, 0)
        cpu = time.process_time() - c0
        name = method + ("+acer" if acer else "")
        print(f"{name:<28}{out['steps_per_s']:>10.0f}{args.train_steps / cpu:>13.0f}")
    print(f"\n(load average {np.round(__import__('os').getloadavg(), 1).tolist()}: "
          "timings on a shared machine are noisy)")


if __name__ == "__main__":
    main()
