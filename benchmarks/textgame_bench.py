"""Speed of the AE-DQN pieces against their anchors (1 thread).

* bandit lower bounds for N contexts x |A| actions: our one-matmul form vs the direct
  ``einsum("nd,ade,ne->na")`` (the anchor);
* env steps per second (random commands, admissible mask included in ``info``);
* agent env-steps per CPU-second: AE-DQN vs the plain DQN anchor (same networks and schedule).

Run: ``python benchmarks/textgame_bench.py [--quick]``.

``--tune OUT.jsonl`` instead runs the validation grid of the ``ae-dqn`` experiment on the
**tuning world** (``game_seed=1``, never the reported world 0): the troll quest (``--quest
egg``: the egg quest) at 92 and 212 commands, budgets in steps per command, DQN, the true-mask
oracle and AE-DQN over ``beta`` and the AEN width, one process per run (``--workers``), one JSON
line per run (steps to solve, gold-path A', elimination quality, samples per command). The
card's "Choosing the quick setting" tables come from it.
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


def _tune_one(job: dict) -> dict:
    """One validation run of the grid (a worker process, one thread)."""
    import math

    from adaptlearn.experiments.ae_dqn import AEDQNConfig, agent_config, make_env, samples_needed
    from adaptlearn.textgame import train_agent

    pin_threads(1)
    quest = job["quest"]
    cfg = AEDQNConfig(quests=quest, sizes=job["size"], game_seed=1, beta=job["beta"],
                      aen_filters=job["aen_filters"], troll_steps_per_command=job["per_command"],
                      egg_steps_per_command=job["per_command"])
    steps = cfg.steps(quest, job["size"])
    env, eval_env = make_env(cfg, quest, job["size"]), make_env(cfg, quest, job["size"])
    acfg = agent_config(cfg, job["method"], steps)
    agent = AEDQNAgent(len(env.vocab), env.obs_len, env.n_actions, acfg, seed=job["seed"])
    c0 = time.process_time()
    curve, summary = train_agent(env, agent, total_steps=steps, eval_env=eval_env,
                                 eval_every=cfg.eval_every, eval_episodes=cfg.eval_episodes,
                                 eval_epsilon=cfg.eval_epsilon, solve_success=cfg.solve_success,
                                 seed=job["seed"])
    out = {**job, "n_actions": env.n_actions, "budget": steps, "cpu_s": time.process_time() - c0,
           "steps_to_solve": summary["steps_to_solve"], "solved": summary["solved"],
           "first_success_step": summary["first_success_step"],
           "samples_per_command": summary["samples_per_command_median"],
           "samples_needed": samples_needed(acfg.beta, acfg.threshold, acfg.reg,
                                            3 * acfg.aen_filters + 1)}
    if agent.uses_elimination:
        last = curve[-1]
        out.update({k: last[k] for k in ("admissible_size", "false_elim_visited",
                                          "true_elim_visited", "gold_eliminated")})
        out["gold_eliminated_max"] = max(r["gold_eliminated"] for r in curve)
        out["false_elim_visited_max"] = max(r["false_elim_visited"] for r in curve)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def tune(path: str, workers: int, seeds: int, quest: str = "troll") -> None:
    """The validation grid on world 1 (see the module docstring); largest runs first."""
    import json
    from concurrent.futures import ProcessPoolExecutor, as_completed

    jobs = []
    for size in ("compact", "small"):
        for per_command in (40.0, 80.0) if size == "small" else (40.0, 80.0, 160.0):
            for seed in range(seeds):
                base = {"quest": quest, "size": size, "per_command": per_command, "seed": seed}
                for method in ("dqn", "masked-dqn"):
                    jobs.append({**base, "method": method, "beta": 0.3, "aen_filters": 10})
                for aen_filters in (4, 10):
                    for beta in (0.1, 0.2, 0.3, 0.5):
                        jobs.append({**base, "method": "ae-dqn", "beta": beta,
                                     "aen_filters": aen_filters})
    jobs.sort(key=lambda j: -(j["per_command"] * (92 if j["size"] == "compact" else 212)))
    with open(path, "w") as fh, ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(_tune_one, j) for j in jobs]
        for fut in as_completed(futures):
            row = fut.result()
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--tune", metavar="OUT_JSONL", help="run the validation grid instead")
    parser.add_argument("--workers", type=int, default=2, help="processes for --tune")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per setting for --tune")
    parser.add_argument("--quest", default="troll", choices=("egg", "troll"), help="--tune quest")
    args = parser.parse_args()
    if args.tune:
        tune(args.tune, args.workers, args.seeds, args.quest)
        raise SystemExit(0)
    pin_threads(1)
    bench_bandit(repeats=2 if args.quick else 5)
    bench_env(1000 if args.quick else 5000)
    bench_agent(300 if args.quick else 1000)
