"""``accelerated-rl``: batched samplers and large-batch A2C/PPO (Stooke & Abbeel 2018).

Two parts, each answering one half of the paper's claim on our CPU-only, 2-core budget:

1. **Throughput (C1).** Agent steps per second (x4 = frames per second) and steps per
   CPU-second of an env + batched Nature-CNN policy loop on Pong, for our serial, parallel,
   alternating (and, in ``full``, Ray) samplers beside gymnasium ``SyncVectorEnv`` /
   ``AsyncVectorEnv`` and ale-py's ``AtariVectorEnv``, as the number of envs grows. Same
   preprocessing everywhere (see :mod:`adaptlearn.rl.throughput`).
2. **Large batch + lr scaling (C2).** A2C and PPO with a small batch (``base_envs`` envs) and
   a ``batch_multiplier`` x larger batch (more envs, same horizon) whose learning rate is left
   unchanged, scaled by sqrt(k) or by k. Return against env steps (sample efficiency), wall-clock
   and CPU seconds. ``quick`` uses CartPole; ``full`` uses MinAtar Breakout (offline, no ROMs).

The verdict (:func:`verdict`) judges each claim on its own mechanism: C1 compares the parallel
sampler with the serial one (both batch inference, so only parallel simulation differs), paired
by repeat; C2 compares, per algorithm and paired by seed, the large batch (its lr rule chosen on
validation seeds the verdict never sees) with the small batch on final return (non-inferiority,
a difference) and CPU per env step. The anchors (gymnasium, ale-py vector envs) are reported,
not judged: they measure implementations, not the paper's mechanism.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adaptlearn.core import (
    RunContext,
    Trial,
    TrialContext,
    check_choice,
    check_int,
    check_range,
    new_figure,
    plot_curves,
    register,
)
from adaptlearn.core.verdict import Claim, Comparison, Precondition, Verdict, judge

_BACKENDS = ("serial", "parallel", "alternating", "ray", "gym_sync", "gym_async", "ale_vector")
_RULES = ("none", "sqrt", "linear")


@dataclass
class AcceleratedRLConfig:
    """Config of the accelerated-RL experiment (defaults = ``quick``)."""

    throughput_env: str = "ALE/Pong-v5"
    """Env of the throughput part (an ale-py id, so that ``ale_vector`` can run it)."""
    throughput_backends: tuple[str, ...] = (
        "serial", "parallel", "alternating", "gym_sync", "gym_async", "ale_vector")
    """Loops to time: ours (serial/parallel/alternating/ray) and anchors (gym_*/ale_vector)."""
    throughput_n_envs: tuple[int, ...] = (8,)
    """Numbers of envs per batched forward pass."""
    throughput_seconds: float = 1.0
    """Timed seconds per cell (after ``throughput_warmup_s``)."""
    throughput_warmup_s: float = 0.3
    """Untimed seconds per cell."""
    throughput_repeats: int = 3
    """Interleaved repeats of the whole grid (the median is reported; C1 pairs by repeat and
    needs >= 3)."""
    throughput_workers: int = 2
    """Worker processes of the parallel/alternating/ray samplers (alternating: 2 groups)."""
    learn_env: str = "CartPole-v1"
    """Env of the learning part (classic control, ``MinAtar/<game>`` or Atari)."""
    learn_algos: tuple[str, ...] = ("a2c", "ppo")
    """Algorithms of the learning part."""
    learn_steps: int = 40_000
    """Env steps per learning trial."""
    learn_sampler: str = "serial"
    """Sampler of the learning part (trajectories do not depend on it; speed does)."""
    base_envs: int = 8
    """Envs (B) of the small-batch arm."""
    batch_multiplier: int = 8
    """The large-batch arm uses ``base_envs * batch_multiplier`` envs."""
    lr_rules: tuple[str, ...] = ("none", "sqrt", "linear")
    """Learning-rate rules of the large-batch arm (see ``adaptlearn.rl.scale_lr``)."""
    a2c_lr: float = 2e-3
    """A2C base learning rate (Adam), used by the small batch."""
    a2c_horizon: int = 5
    """A2C steps per batch (T)."""
    ppo_lr: float = 1e-3
    """PPO base learning rate (Adam)."""
    ppo_horizon: int = 32
    """PPO steps per batch (T); 4 epochs x 4 minibatches (minibatch count fixed when scaling)."""
    return_margin: float = 50.0
    """C2 non-inferiority margin: the large batch's final return may fall short of the small
    batch's by at most this much (CartPole returns run to 500: a tenth of a solved episode)."""
    n_seeds: int = 3
    """Seeds per learning arm (C2 pairs by seed and needs >= 3)."""
    validation_seed: int = 10_000
    """Seed (offset from the base seed) of the runs that choose the large batch's lr rule; the
    verdict never sees them."""
    checkpoint_every_steps: int = 0
    """Checkpoint learning trials every this many env steps (0: off)."""

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field."""
        owner = "AcceleratedRLConfig"
        for b in self.throughput_backends:
            check_choice("throughput_backends", b, _BACKENDS, owner=owner)
        for n in self.throughput_n_envs:
            check_int("throughput_n_envs", n, 1, owner=owner)
        check_range("throughput_seconds", self.throughput_seconds, 0.0, low_inclusive=False,
                    owner=owner)
        check_range("throughput_warmup_s", self.throughput_warmup_s, 0.0, owner=owner)
        check_int("throughput_repeats", self.throughput_repeats, 1, owner=owner)
        check_int("throughput_workers", self.throughput_workers, 2, owner=owner)
        if self.throughput_workers % 2:
            raise ValueError(f"`throughput_workers` of {owner} must be even (alternating); "
                             f"got {self.throughput_workers}")
        if any(n < self.throughput_workers for n in self.throughput_n_envs) and any(
                b in ("parallel", "alternating", "ray") for b in self.throughput_backends):
            raise ValueError(f"`throughput_n_envs` of {owner} must be >= throughput_workers "
                             f"({self.throughput_workers}); got {self.throughput_n_envs}")
        for a in self.learn_algos:
            check_choice("learn_algos", a, ("a2c", "ppo"), owner=owner)
        check_int("learn_steps", self.learn_steps, 1, owner=owner)
        check_choice("learn_sampler", self.learn_sampler, ("serial", "parallel", "alternating"),
                     owner=owner)
        check_int("base_envs", self.base_envs, 2, owner=owner)
        check_int("batch_multiplier", self.batch_multiplier, 2, owner=owner)
        for r in self.lr_rules:
            check_choice("lr_rules", r, _RULES, owner=owner)
        check_range("a2c_lr", self.a2c_lr, 0.0, 1.0, low_inclusive=False, owner=owner)
        check_int("a2c_horizon", self.a2c_horizon, 1, owner=owner)
        check_range("ppo_lr", self.ppo_lr, 0.0, 1.0, low_inclusive=False, owner=owner)
        check_int("ppo_horizon", self.ppo_horizon, 1, owner=owner)
        check_range("return_margin", self.return_margin, 0.0, owner=owner)
        check_int("validation_seed", self.validation_seed, 0, owner=owner)
        check_int("n_seeds", self.n_seeds, 1, owner=owner)
        check_int("checkpoint_every_steps", self.checkpoint_every_steps, 0, owner=owner)


def _arms(cfg: AcceleratedRLConfig) -> dict[str, dict[str, Any]]:
    """Method name -> (algo, n_envs, horizon, lr, rule) of every learning arm."""
    from adaptlearn.rl import scale_lr

    arms: dict[str, dict[str, Any]] = {}
    big = cfg.base_envs * cfg.batch_multiplier
    for algo in cfg.learn_algos:
        lr0 = cfg.a2c_lr if algo == "a2c" else cfg.ppo_lr
        horizon = cfg.a2c_horizon if algo == "a2c" else cfg.ppo_horizon
        arms[f"{algo}-B{cfg.base_envs}"] = {"algo": algo, "n_envs": cfg.base_envs,
                                            "horizon": horizon, "lr": lr0, "rule": "base"}
        for rule in cfg.lr_rules:
            arms[f"{algo}-B{big}-{rule}"] = {
                "algo": algo, "n_envs": big, "horizon": horizon, "rule": rule,
                "lr": scale_lr(lr0, cfg.base_envs, big, rule)}
    return arms


def _arch(env_id: str) -> str:
    if env_id.startswith("MinAtar/"):
        return "minatar"
    if env_id.startswith("ALE/") or env_id.endswith("NoFrameskip-v4"):
        return "small"
    return "mlp"


def learn_trial(trial: Trial, cfg: AcceleratedRLConfig, tctx: TrialContext) -> dict[str, Any]:
    """Train one arm (algorithm, batch size, lr rule) for ``learn_steps`` env steps."""
    import numpy as np
    import torch

    from adaptlearn.rl import (
        A2C,
        PPO,
        ActorCritic,
        CategoricalPgAgent,
        EnvFactory,
        make_sampler,
        train,
    )

    arm = _arms(cfg)[trial.method]
    env_fn = EnvFactory(cfg.learn_env)
    probe = env_fn()
    obs_shape, n_actions = tuple(probe.observation_space.shape), int(probe.action_space.n)
    probe.close()
    torch.manual_seed(trial.seed)
    model = ActorCritic(obs_shape, n_actions, arch=_arch(cfg.learn_env))
    agent = CategoricalPgAgent(model, generator=torch.Generator().manual_seed(trial.seed))
    if arm["algo"] == "a2c":
        algo: Any = A2C(agent, lr=arm["lr"])
    else:
        algo = PPO(agent, lr=arm["lr"], clip=0.2, epochs=4, minibatches=4,
                   generator=torch.Generator().manual_seed(trial.seed + 1))
    sampler_kwargs: dict[str, Any] = {"seed": trial.seed}
    if cfg.learn_sampler != "serial":
        sampler_kwargs["n_workers"] = 2
    per_batch = arm["n_envs"] * arm["horizon"]
    log_every = max(per_batch, cfg.learn_steps // 24)
    with make_sampler(cfg.learn_sampler, env_fn, arm["n_envs"], arm["horizon"],
                      **sampler_kwargs) as sampler:
        curve = train(sampler, algo, cfg.learn_steps, log_every_steps=log_every,
                      checkpoint=tctx.save_checkpoint,
                      checkpoint_every_steps=cfg.checkpoint_every_steps,
                      resume_state=tctx.load_checkpoint(), progress=tctx.progress)
    returns = np.array([r["return"] for r in curve], dtype=float)
    last = returns[-max(1, len(returns) // 5):]
    steps = curve[-1]["env_steps"]
    first = returns[np.isfinite(returns)][:1]
    keep = ("env_steps", "wall_s", "cpu_s", "return")
    return {
        "final": {
            "final_return": float(np.nanmean(last)),
            "mean_return_over_training": float(np.nanmean(returns)),
            "cpu_s_per_1k_steps": 1000.0 * curve[-1]["cpu_s"] / steps,
            "wall_s": curve[-1]["wall_s"],
            "initial_return": float(first[0]) if first.size else float("nan"),
            "updates": float(steps // per_batch),
        },
        "curve": [{"part": "learning", "algo": arm["algo"], "n_envs": arm["n_envs"],
                   "rule": arm["rule"], "lr": arm["lr"], **{k: r[k] for k in keep}}
                  for r in curve],
    }


def _throughput(cfg: AcceleratedRLConfig, ctx: RunContext) -> list[dict[str, Any]]:
    from adaptlearn.core import pin_threads
    from adaptlearn.rl.throughput import measure_throughput

    pin_threads(1)
    cells: dict[tuple[str, int], list[dict[str, float]]] = {}
    for _ in range(cfg.throughput_repeats):
        for n in cfg.throughput_n_envs:
            for backend in cfg.throughput_backends:  # interleaved: contention hits all alike
                r = measure_throughput(
                    backend, cfg.throughput_env, n, seconds=cfg.throughput_seconds,
                    warmup_s=cfg.throughput_warmup_s, n_workers=cfg.throughput_workers,
                    seed=ctx.seed)
                cells.setdefault((backend, n), []).append(r)
    import numpy as np

    per_repeat = [{"method": backend, "n_envs": n, "repeat": i, **r}
                  for (backend, n), rs in cells.items() for i, r in enumerate(rs)]
    rows = []
    for (backend, n), rs in cells.items():
        row: dict[str, Any] = {"part": "throughput", "backend": backend, "n_envs": n}
        for key in ("steps_per_s", "frames_per_s", "steps_per_cpu_s", "cpu_util"):
            row[key] = float(np.median([r[key] for r in rs]))
        rows.append(row)
        ctx.log(**row)
    return rows, per_repeat


#: C1 margin: the parallel sampler's wall-clock steps per second must beat the serial one's by
#: 1.1x (repeat-to-repeat noise of a cell is ~5% on a quiet machine).
PARALLEL_MARGIN = 1.1
#: C2 compute margin: the large batch costs >= 1.2x less CPU per 1k env steps.
COMPUTE_MARGIN = 1.2
#: C2 power: the large batch must have made at least this many updates.
MIN_UPDATES = 20


def verdict_rows(throughput: Sequence[Mapping[str, Any]], learning: Sequence[Mapping[str, Any]],
                 arms: Mapping[str, Mapping[str, Any]], chosen: Mapping[str, str],
                 base_envs: int) -> list[dict[str, Any]]:
    """Rows the verdict is judged on: throughput per (backend, N, repeat), and per (algo, seed)
    the small-batch arm (``<algo>-small``) and the validation-chosen large arm (``<algo>-large``).
    """
    rows = [dict(r) for r in throughput]
    for r in learning:
        arm = arms.get(r["method"])
        if arm is None:
            continue
        algo = arm["algo"]
        if arm["rule"] == "base":
            rows.append({**r, "method": f"{algo}-small", "algo": algo})
        elif chosen.get(algo) == r["method"]:
            rows.append({**r, "method": f"{algo}-large", "algo": algo})
    return rows


def verdict(rows: Sequence[Mapping[str, Any]], *, return_margin: float = 50.0,
            preset: str = "quick") -> Verdict:
    """Stooke & Abbeel's claims, each on its own mechanism (pure).

    C1, per N, paired by repeat: the parallel sampler's wall-clock steps/s beat the serial
    sampler's (same batched inference, so the comparison isolates parallel simulation) by
    ``PARALLEL_MARGIN``. C2, per algorithm, paired by seed: the large batch (lr rule chosen on
    validation seeds) keeps the small batch's final return (non-inferior within
    ``return_margin``; a difference, never a ratio of possibly negative returns) at
    ``COMPUTE_MARGIN`` x less CPU per env step. Controls: the small batch learns (final return
    above its first logged return by more than half its size, every seed); power: the large
    batch made >=
    ``MIN_UPDATES`` updates.
    """
    comparisons, pre = [], []
    ns = sorted({r["n_envs"] for r in rows if r.get("method") == "parallel" and "repeat" in r})
    for n in ns:
        comparisons.append(Comparison(
            "steps_per_s", "parallel", "serial", scale="ratio", margin=PARALLEL_MARGIN,
            where={"n_envs": n}, pair_by=("repeat",),
            label=f"C1 parallel vs serial sampler: steps/s (wall) [N={n}]"))
    algos = sorted({r["algo"] for r in rows if "algo" in r and "seed" in r})
    for a in algos:
        comparisons.append(Comparison(
            "final_return", f"{a}-large", f"{a}-small", margin=-return_margin,
            label=f"C2 {a}: large vs small batch final return (within {return_margin:g})"))
        comparisons.append(Comparison(
            "cpu_s_per_1k_steps", f"{a}-large", f"{a}-small", higher_is_better=False,
            scale="ratio", margin=COMPUTE_MARGIN,
            label=f"C2 {a}: large vs small batch CPU s per 1k steps"))
        small = [r for r in rows if r.get("method") == f"{a}-small"]
        learns = [r["final_return"] - r["initial_return"] > 0.5 * max(abs(r["initial_return"]),
                                                                       1.0) for r in small
                  if r.get("initial_return") is not None and r.get("final_return") is not None]
        pre.append(Precondition(
            f"{a} small batch learns (final return above its first logged return by > half its "
            "size, every seed)",
            ok=bool(learns) and all(learns),
            detail=f"{sum(learns)}/{len(small)} seeds"))
        large = [r.get("updates", 0) for r in rows if r.get("method") == f"{a}-large"]
        pre.append(Precondition(
            f"{a} large batch makes >= {MIN_UPDATES} updates",
            ok=bool(large) and min(large) >= MIN_UPDATES,
            detail=f"{min(large):.0f} updates" if large else "not run", reason="underpowered"))
    if not comparisons:
        comparisons.append(Comparison("steps_per_s", "parallel", "serial", scale="ratio",
                                      margin=PARALLEL_MARGIN, pair_by=("repeat",)))
    claim = Claim(
        statement="(C1) parallel simulation raises sampling throughput over a serial sampler "
        f"with the same batched inference by >= {PARALLEL_MARGIN:g}x; (C2) a larger batch with "
        "an adapted lr keeps the small batch's final return at lower compute per sample",
        comparisons=tuple(comparisons),
        min_pairs=3,
    )
    return judge(claim, rows, preconditions=pre, preset=preset)


def _load_average() -> float:
    import os

    try:
        return float(os.getloadavg()[0])
    except OSError:
        return math.nan


@register(
    "accelerated-rl",
    family="rl",
    paper="Stooke & Abbeel, 'Accelerated Methods for Deep Reinforcement Learning', "
    "arXiv 1803.02811 (2018)",
    claim="(C1) Many simulators stepped in parallel with one batched forward pass per step "
    "(optionally alternating two env groups) raise sampling throughput; (C2) much larger batches "
    "with an adapted learning rate keep sample efficiency while cutting compute per sample.",
    config=AcceleratedRLConfig,
    presets={
        "tiny": {"throughput_backends": ("serial", "gym_sync", "ale_vector"),
                 "throughput_n_envs": (2,), "throughput_seconds": 0.5,
                 "throughput_warmup_s": 0.1, "throughput_repeats": 1, "learn_algos": ("a2c",),
                 "learn_steps": 1_000,
                 "base_envs": 4, "batch_multiplier": 2, "lr_rules": ("linear",),
                 "n_seeds": 1},
        "full": {"throughput_backends": _BACKENDS, "throughput_n_envs": (4, 8, 16, 32),
                 "throughput_seconds": 10.0, "throughput_warmup_s": 1.0,
                 "throughput_repeats": 2, "learn_env": "MinAtar/breakout",
                 "learn_steps": 300_000, "base_envs": 16, "lr_rules": ("none", "sqrt", "linear"),
                 "a2c_lr": 1e-3, "ppo_lr": 5e-4, "ppo_horizon": 32, "n_seeds": 3,
                 "checkpoint_every_steps": 50_000},
    },
)
def run(cfg: AcceleratedRLConfig, ctx: RunContext) -> None:
    """Throughput grid on Pong, then the learning arms; plots, tables and a computed verdict."""

    cfg.validate()
    load0 = _load_average()
    tp_rows, tp_rows_all = _throughput(cfg, ctx)
    load1 = _load_average()

    # --- throughput table and figure --------------------------------------------------------
    fig, axes = new_figure(1, 2, width=5.5)
    axes = axes.ravel()
    plot_curves(axes[0], tp_rows, "n_envs", "frames_per_s", by="backend",
                title=f"{cfg.throughput_env}: frames/s (wall)")
    plot_curves(axes[1], tp_rows, "n_envs", "steps_per_cpu_s", by="backend",
                title="agent steps per CPU-second")
    ctx.save_figure(fig, "throughput")
    lines = ["| backend | n_envs | frames/s | steps/s | steps/CPU-s | CPU used |",
             "|---|---|---|---|---|---|"]
    for r in sorted(tp_rows, key=lambda r: (r["n_envs"], r["backend"])):
        lines.append(f"| {r['backend']} | {r['n_envs']} | {r['frames_per_s']:.0f} | "
                     f"{r['steps_per_s']:.0f} | {r['steps_per_cpu_s']:.0f} | "
                     f"{r['cpu_util']:.2f} |")
    ours = [b for b in ("serial", "parallel", "alternating", "ray") if b in cfg.throughput_backends]
    c1_ratios: dict[int, dict[str, float]] = {}
    for n in cfg.throughput_n_envs:
        by = {r["backend"]: r for r in tp_rows if r["n_envs"] == n}
        best = max(ours, key=lambda b: by[b]["steps_per_cpu_s"]) if ours else None
        for anchor in ("gym_async", "gym_sync", "ale_vector"):
            if best is not None and anchor in by:
                c1_ratios.setdefault(n, {})[f"{best}/{anchor}"] = (
                    by[best]["steps_per_cpu_s"] / by[anchor]["steps_per_cpu_s"])
    for n, ratios in c1_ratios.items():
        for name, ratio in ratios.items():
            ctx.add_result(f"throughput N={n}", f"cpu_ratio {name}", ratio, higher_is_better=True)
    ctx.add_section(
        "Throughput (C1)",
        "\n".join(lines) + f"\n\nLoad average before/after: {load0:.1f} / {load1:.1f} on "
        f"{__import__('os').cpu_count()} CPUs (a shared machine: compare steps per CPU-second). "
        f"Ratios of our best sampler to the anchors (steps per CPU-second): "
        + "; ".join(f"N={n}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items())
                    for n, r in c1_ratios.items()),
    )
    ctx.note("throughput", tp_rows)
    ctx.note("load_average", {"before": load0, "after": load1})

    # --- learning ---------------------------------------------------------------------------
    arms = _arms(cfg)
    results = ctx.run_trials(learn_trial, ctx.make_trials(list(arms)))
    ctx.add_trial_results(results, higher_is_better={
        "final_return": True, "mean_return_over_training": True, "cpu_s_per_1k_steps": False,
        "wall_s": False})
    learn_rows = [m for m in ctx.metrics if m.get("part") == "learning"]
    for algo in cfg.learn_algos:
        rows = [r for r in learn_rows if r["algo"] == algo]
        fig, axes = new_figure(1, 3, width=4.6)
        axes = axes.ravel()
        plot_curves(axes[0], rows, "env_steps", "return",
                    title=f"{algo.upper()} on {cfg.learn_env}: return vs env steps")
        for ax, x in ((axes[1], "wall_s"), (axes[2], "cpu_s")):
            for i, method in enumerate(sorted({r["method"] for r in rows})):
                for seed in sorted({r["seed"] for r in rows}):
                    pts = [r for r in rows if r["method"] == method and r["seed"] == seed]
                    ax.plot([p[x] for p in pts], [p["return"] for p in pts], color=f"C{i}",
                            label=method if seed == min(r["seed"] for r in rows) else None)
            ax.set_xlabel(x)
            ax.set_ylabel("return")
            ax.set_title(f"return vs {x} (each seed)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="small")
        ctx.save_figure(fig, f"learning_{algo}")

    # the large batch's lr rule is chosen on validation seeds, never on the verdict's seeds
    val_trials = [Trial(m, ctx.seed + cfg.validation_seed + i)
                  for m, a in arms.items() if a["rule"] != "base" for i in range(1)]
    val = ctx.run_trials(learn_trial, val_trials) if val_trials else []
    chosen = {}
    for algo in cfg.learn_algos:
        cands = [r for r in val if arms[r.trial.method]["algo"] == algo]
        if cands:
            chosen[algo] = max(cands, key=lambda r: r.final["final_return"]).trial.method
    ctx.note("large_batch_rule_chosen_on_validation", chosen)
    ctx.set_verdict(verdict(verdict_rows(tp_rows_all, ctx.rows, arms, chosen, cfg.base_envs),
                            return_margin=cfg.return_margin, preset=ctx.preset))
    ctx.note("arms", arms)
    ctx.add_section(
        "Settings",
        f"Throughput: Nature CNN policy (random init, 1 torch thread), {cfg.throughput_env} with "
        "noop 30, frame skip 4 + max-pool, 84x84 grey, stack 4, sticky actions 0, episodic "
        "life, reward clip; our samplers T=16. Learning: "
        f"{cfg.learn_env}, {cfg.learn_steps} env steps, sampler {cfg.learn_sampler}, "
        f"A2C T={cfg.a2c_horizon} Adam lr0={cfg.a2c_lr:g}; PPO T={cfg.ppo_horizon} 4 epochs x "
        f"4 minibatches, clip 0.2, Adam lr0={cfg.ppo_lr:g}; batch x{cfg.batch_multiplier} via "
        f"more envs (B {cfg.base_envs} -> {cfg.base_envs * cfg.batch_multiplier}). Final "
        "return = mean of the last 20% of logged points (each the mean of the last 100 "
        f"episodes); {len(ctx.seeds)} seeds.",
    )
