"""Speed of the AE-DQN pieces against their anchors (1 thread).

* bandit lower bounds for N contexts x |A| actions: our one-matmul form vs the direct
  ``einsum("nd,ade,ne->na")`` (the anchor);
* env steps per second (random commands, admissible mask included in ``info``);
* agent env-steps per CPU-second: AE-DQN vs the plain DQN anchor (same networks and schedule).

Run: ``python benchmarks/textgame_bench.py [--quick]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from adaptlearn.core import pin_threads
from adaptlearn.textgame import AEDQNAgent, AgentConfig, LinearContextualBandit, TextQuestEnv


def _timeit(fn, repeats: int) -> tuple[float, float]:
    fn()
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - w0) / repeats, (time.process_time() - c0) / repeats


def bench_bandit(n_actions: int = 1208, dim: int = 31, n: int = 256, repeats: int = 5) -> None:
    g = torch.Generator().manual_seed(0)
    bandit = LinearContextualBandit(n_actions, dim)
    x = torch.nn.functional.normalize(torch.randn(4000, dim, generator=g).double(), dim=1)
    bandit.fit(x, torch.randint(0, n_actions, (4000,), generator=g), torch.rand(4000, generator=g))
    q = x[:n]

    def anchor() -> torch.Tensor:
        quad = torch.einsum("nd,ade,ne->na", q, bandit.v_inv, q)
        return q @ bandit.theta.T - torch.sqrt(bandit.beta * quad)

    torch.testing.assert_close(bandit.lower_bound(q), anchor())
    ours, _ = _timeit(lambda: bandit.lower_bound(q), repeats)
    ref, _ = _timeit(anchor, repeats)
    print(f"bandit LCB  N={n} |A|={n_actions} d={dim}: ours {ours * 1e3:.1f} ms, "
          f"einsum anchor {ref * 1e3:.1f} ms, speed-up x{ref / ours:.1f}")


def bench_env(steps: int = 5000) -> None:
    env = TextQuestEnv("troll")
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(int(rng.integers(env.n_actions)))
        if term or trunc:
            env.reset()
    w, c = time.perf_counter() - w0, time.process_time() - c0
    print(f"env troll |A|={env.n_actions}: {steps / w:.0f} steps/s wall, {steps / c:.0f} "
          "steps/CPU-s (spec: prototype ~43k/s, TextWorld ~1.4k/s, not run here)")


def bench_agent(steps: int = 600) -> None:
    rates = {}
    for mode in ("dqn", "ae-dqn"):
        env = TextQuestEnv("egg", n_verbs=6, n_nouns=34, max_steps=50)
        cfg = AgentConfig(mode=mode, learn_start=100, refresh_every=300)
        agent = AEDQNAgent(len(env.vocab), env.obs_len, env.n_actions, cfg, seed=0)
        obs, info = env.reset(seed=0)
        oid = agent.table.add(obs, info["admissible_mask"])
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            a = agent.act(oid)
            obs, r, term, trunc, info = env.step(a)
            nid = agent.table.add(obs, info["admissible_mask"])
            agent.observe(oid, a, r, nid, term, info["elimination"])
            agent.update()
            oid = nid
            if term or trunc:
                obs, info = env.reset()
                oid = agent.table.add(obs, info["admissible_mask"])
        w, c = time.perf_counter() - w0, time.process_time() - c0
        rates[mode] = steps / c
        print(f"agent {mode:6s} |A|={env.n_actions}: {steps / w:.0f} env-steps/s wall, "
              f"{steps / c:.0f} env-steps/CPU-s")
    print(f"AE-DQN / DQN throughput ratio (CPU): {rates['ae-dqn'] / rates['dqn']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    pin_threads(1)
    bench_bandit(repeats=2 if args.quick else 5)
    bench_env(1000 if args.quick else 5000)
    bench_agent(300 if args.quick else 1000)
