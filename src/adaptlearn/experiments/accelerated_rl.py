"""``accelerated-rl``: batched samplers and large-batch A2C/PPO (Stooke & Abbeel 2018).

config -> trials -> declared claim -> figures. Two parts, each judged on its own mechanism on
our CPU-only budget:

1. **Throughput (C1).** Agent steps per second (x4 = frames per second) and per CPU-second of
   an env + Nature-CNN policy loop on Pong, with the same preprocessing everywhere (see
   :mod:`adaptlearn.rl.throughput`). Cells: our serial, parallel, alternating (and, in ``full``,
   Ray) samplers; the anchors gymnasium ``SyncVectorEnv`` / ``AsyncVectorEnv`` and ale-py's
   ``AtariVectorEnv``; ``gym_sync_per_env`` (the SyncVectorEnv loop with one forward pass per
   env instead of one batched pass) and ``inference_only`` (the batched forward alone: the rate
   if stepping cost nothing). The cells run in the driver process, one at a time, interleaved
   over repeats (the order rotates each repeat), never beside learning trials.
2. **Large batch (C2).** A2C and PPO with a small batch (``base_envs`` envs) and a
   ``batch_multiplier`` x larger one (more envs, same horizon); DQN with a replay minibatch of
   ``dqn_batch`` and a ``batch_multiplier`` x larger one at the paper's replay ratio (8), so the
   large minibatch makes k x fewer updates. Every batch size gets the same lr
   grid (lr0 x {1, sqrt(k), k}); each picks its lr on validation seeds that the verdict never
   sees. Where an edge of the grid wins, the grid grows one sqrt(k) step past it and the new
   point is validated (up to ``lr_grid_extensions`` times); an lr still at an edge makes C2
   underpowered. The chosen arms then run on the verdict's seeds. ``quick`` uses CartPole, ``full``
   MinAtar Breakout (offline, no ROMs).

:func:`verdict` is a pure function of per-repeat / per-seed rows (see its docstring for the
comparisons, margins and preconditions).
"""

from __future__ import annotations

import math
import os
import re
import time
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

_OURS = ("serial", "parallel", "alternating", "ray")
_ANCHORS = ("gym_sync", "gym_async", "ale_vector")
_PROBES = ("gym_sync_per_env", "inference_only")
_BACKENDS = _OURS + _ANCHORS + _PROBES
_RULES = ("none", "sqrt", "linear")

#: C1 mechanism margin: batched inference (vs one forward per env) and parallel / alternating
#: simulation (vs the serial sampler) must each raise throughput by >= 1.1x. Repeat-to-repeat
#: noise of one cell is ~5% on a quiet machine, so 10% is above the noise and is the smallest
#: gain anyone would restructure a sampler for.
MECHANISM_MARGIN = 1.1
#: C1 anchor margin: the best of the paper's samplers (parallel, alternating) must reach
#: >= 0.9x the wall-clock steps/s of the best anchor (SyncVectorEnv / AsyncVectorEnv / ale-py's
#: C++ vector env) in the same repeat: non-inferior within 10% (one cell's noise is ~5%).
ANCHOR_MARGIN = 0.9
#: C1 resources: parallel simulation can only pay with idle cores for the workers beside the
#: master's inference; fewer free cores (the best idle share of all CPUs over three 1-s windows
#: before the throughput cells, :func:`_free_cores`) -> C1 is underpowered here, not refuted.
MIN_FREE_CORES = 1.5
#: C2 compute margin: the large batch costs >= 1.2x less CPU per 1k env steps.
COMPUTE_MARGIN = 1.2
#: C2 power: the large batch must make >= this many optimiser steps. A large batch judged
#: after a few hundred updates is judged before it converged (spec 6.3: the B=128 A2C arm still
#: climbs at 300k MinAtar steps, ~470 updates), so a deficit would reflect the budget, not the
#: batch size. ``full`` runs 700k MinAtar steps (A2C B=128: 1,094 updates; PPO 2,736) and 300k
#: for DQN (minibatch 256 at replay ratio 8: 9,300 updates); ``quick`` reaches it on CartPole
#: for every algorithm: A2C 330k steps (1,032 updates at B=64), PPO 130k (1,024 optimiser
#: steps), DQN 34k (1,047 updates of 256); arithmetic in the card.
MIN_UPDATES = 1000


@dataclass
class AcceleratedRLConfig:
    """Config of the accelerated-RL experiment (defaults = ``quick``)."""

    throughput_env: str = "ALE/Pong-v5"
    """Env of the throughput part (an ale-py id, so that ``ale_vector`` can run it)."""
    throughput_backends: tuple[str, ...] = (
        "serial", "parallel", "alternating", "gym_sync", "ale_vector", "gym_sync_per_env",
        "inference_only")
    """Cells to time: ours (serial/parallel/alternating/ray), anchors (gym_*/ale_vector) and the
    probes (``gym_sync_per_env``, ``inference_only``). ``quick`` leaves out ``gym_async``, the
    slowest anchor here (AsyncVectorEnv: 836 vs ale-py 1,085 steps/s in the 2026-12-04 run)."""
    throughput_n_envs: tuple[int, ...] = (8,)
    """Numbers of envs per batched forward pass."""
    throughput_seconds: float = 1.0
    """Timed seconds per cell (after ``throughput_warmup_s``)."""
    throughput_warmup_s: float = 0.3
    """Untimed seconds per cell."""
    throughput_repeats: int = 3
    """Interleaved repeats of the whole grid (C1 pairs by repeat and needs >= 3)."""
    throughput_workers: int = 2
    """Worker processes of the parallel/alternating/ray samplers (alternating: 2 groups)."""
    learn_env: str = "CartPole-v1"
    """Env of the learning part (classic control, ``MinAtar/<game>`` or Atari)."""
    learn_algos: tuple[str, ...] = ("a2c", "ppo", "dqn")
    """Algorithms of the learning part."""
    a2c_steps: int = 330_000
    """Env steps per A2C learning trial (quick: the large batch, B=64 x T=5, then makes 1,032
    updates, just above ``MIN_UPDATES``)."""
    ppo_steps: int = 130_000
    """Env steps per PPO learning trial (quick: the large batch, B=64 x T=32, then makes 64
    updates x 16 minibatch steps = 1,024 optimiser steps)."""
    dqn_steps: int = 34_000
    """Env steps per DQN learning trial (quick: the large minibatch of 256 then makes
    8 x 33.5k / 256 = 1,047 updates, just above ``MIN_UPDATES``)."""
    learn_sampler: str = "serial"
    """Sampler of the learning part (trajectories do not depend on it; speed does)."""
    base_envs: int = 8
    """Envs (B) of the small-batch arm."""
    batch_multiplier: int = 8
    """The large-batch arm uses ``base_envs * batch_multiplier`` envs."""
    lr_rules: tuple[str, ...] = ("none", "sqrt", "linear")
    """The lr grid of both batch sizes: lr0 x {1, sqrt(k), k} (``adaptlearn.rl.scale_lr``)."""
    lr_grid_extensions: int = 2
    """Times the grid may grow by one sqrt(k) step past an edge that won on validation (an lr
    at the grid's edge may stop short of the arm's best; each step costs one validation trial
    per seed for that arm). An edge that still wins after these makes C2 underpowered."""
    a2c_lr: float = 2e-3
    """A2C base learning rate lr0 (Adam)."""
    a2c_horizon: int = 5
    """A2C steps per batch (T)."""
    ppo_lr: float = 1e-3
    """PPO base learning rate lr0 (Adam)."""
    ppo_horizon: int = 32
    """PPO steps per batch (T); 4 epochs x 4 minibatches (minibatch count fixed when scaling)."""
    dqn_lr: float = 5e-4
    """DQN base learning rate lr0 (Adam, eps 0.01 / minibatch as accel_rl's Cat-DQN)."""
    dqn_batch: int = 32
    """DQN minibatch of the small-batch arm; the large arm uses ``dqn_batch * batch_multiplier``.
    The replay ratio is held (``dqn_replay_ratio``), so the large arm makes k x fewer updates."""
    dqn_envs: int = 8
    """Envs of the DQN sampler (T = 4), the same for both minibatch sizes."""
    dqn_replay_ratio: float = 8.0
    """Gradient samples per env sample: 8 in the paper-era DQN (accel_rl ``dqn.py``)."""
    dqn_learn_start: int = 500
    """Env steps before the first DQN update."""
    dqn_target_steps: int = 500
    """Env steps between target-network copies (fixed in env steps for both arms)."""
    dqn_eps_steps: int = 10_000
    """Env steps of the linear epsilon decay 1 -> 0.05."""
    return_margin: float = 50.0
    """C2 non-inferiority margin: the large batch's final return may fall short of the small
    batch's by at most this much (CartPole returns run to 500: a tenth of a solved episode)."""
    n_seeds: int = 3
    """Seeds per learning arm (C2 pairs by seed and needs >= 3)."""
    n_validation_seeds: int = 1
    """Seeds per (batch size, lr) on which each batch size chooses its lr."""
    validation_seed: int = 10_000
    """Offset from the base seed of the validation seeds; the verdict never sees them."""
    checkpoint_every_steps: int = 0
    """Checkpoint learning trials every this many env steps (0: off)."""

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field."""
        owner = "AcceleratedRLConfig"
        from adaptlearn.rl.envs import make_env

        try:  # an unknown id is refused here, not at trial time
            make_env(self.learn_env).close()
        except Exception as err:
            raise ValueError(
                f"`learn_env` of {owner} must be an env id make_env can build (a classic-control "
                f"id, 'MinAtar/<game>' or an ale-py game); got {self.learn_env!r}: {err}"
            ) from None
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
            check_choice("learn_algos", a, ("a2c", "ppo", "dqn"), owner=owner)
        check_int("a2c_steps", self.a2c_steps, 1, owner=owner)
        check_int("ppo_steps", self.ppo_steps, 1, owner=owner)
        check_int("dqn_steps", self.dqn_steps, 1, owner=owner)
        check_range("dqn_lr", self.dqn_lr, 0.0, 1.0, low_inclusive=False, owner=owner)
        check_int("dqn_batch", self.dqn_batch, 1, owner=owner)
        check_int("dqn_envs", self.dqn_envs, 1, owner=owner)
        check_range("dqn_replay_ratio", self.dqn_replay_ratio, 0.0, low_inclusive=False,
                    owner=owner)
        check_int("dqn_learn_start", self.dqn_learn_start, 0, owner=owner)
        check_int("dqn_target_steps", self.dqn_target_steps, 1, owner=owner)
        check_int("dqn_eps_steps", self.dqn_eps_steps, 1, owner=owner)
        check_choice("learn_sampler", self.learn_sampler, ("serial", "parallel", "alternating"),
                     owner=owner)
        check_int("base_envs", self.base_envs, 2, owner=owner)
        check_int("batch_multiplier", self.batch_multiplier, 2, owner=owner)
        check_int("lr_grid_extensions", self.lr_grid_extensions, 0, 8, owner=owner)
        if not self.lr_rules:
            raise ValueError(f"`lr_rules` of {owner} must name at least one rule")
        for r in self.lr_rules:
            check_choice("lr_rules", r, _RULES, owner=owner)
        check_range("a2c_lr", self.a2c_lr, 0.0, 1.0, low_inclusive=False, owner=owner)
        check_int("a2c_horizon", self.a2c_horizon, 1, owner=owner)
        check_range("ppo_lr", self.ppo_lr, 0.0, 1.0, low_inclusive=False, owner=owner)
        check_int("ppo_horizon", self.ppo_horizon, 1, owner=owner)
        check_range("return_margin", self.return_margin, 0.0, owner=owner)
        check_int("n_seeds", self.n_seeds, 1, owner=owner)
        check_int("n_validation_seeds", self.n_validation_seeds, 1, owner=owner)
        check_int("validation_seed", self.validation_seed, self.n_seeds, owner=owner)
        check_int("checkpoint_every_steps", self.checkpoint_every_steps, 0, owner=owner)


# --- learning trials (C2) ---------------------------------------------------------------------

_RULE_EXPONENT = {"none": 0.0, "sqrt": 0.5, "linear": 1.0}


def _arms(cfg: AcceleratedRLConfig) -> dict[str, dict[str, Any]]:
    """Method name -> settings of every learning arm: algo x batch size x lr rule.

    The lr grid is the same for both batch sizes: ``scale_lr(lr0, B, kB, rule)`` = lr0 x {1,
    sqrt(k), k}, so neither arm gets a grid the other lacks (``lr_exp``: the exponent e of
    lr = lr0 x k^e, 0 / 0.5 / 1; :func:`extend_lr_grid` adds points beyond). A2C / PPO grow the
    batch with the number of envs (same horizon); DQN grows its replay minibatch (32 -> 32k) at
    a fixed replay ratio, so the large minibatch makes k x fewer updates per env step (Stooke &
    Abbeel 2018).
    """
    from adaptlearn.rl import scale_lr

    arms: dict[str, dict[str, Any]] = {}
    big = cfg.base_envs * cfg.batch_multiplier
    for algo in cfg.learn_algos:
        if algo == "dqn":
            small_mb, large_mb = cfg.dqn_batch, cfg.dqn_batch * cfg.batch_multiplier
            for size, mb in (("small", small_mb), ("large", large_mb)):
                for rule in cfg.lr_rules:
                    arms[f"dqn-mb{mb}-{rule}"] = {
                        "algo": algo, "size": size, "n_envs": cfg.dqn_envs, "horizon": 4,
                        "batch_size": mb, "rule": rule, "lr_exp": _RULE_EXPONENT[rule],
                        "lr0": cfg.dqn_lr, "k": cfg.batch_multiplier,
                        "lr": scale_lr(cfg.dqn_lr, small_mb, large_mb, rule)}
            continue
        lr0 = cfg.a2c_lr if algo == "a2c" else cfg.ppo_lr
        horizon = cfg.a2c_horizon if algo == "a2c" else cfg.ppo_horizon
        for size, n_envs in (("small", cfg.base_envs), ("large", big)):
            for rule in cfg.lr_rules:
                arms[f"{algo}-B{n_envs}-{rule}"] = {
                    "algo": algo, "size": size, "n_envs": n_envs, "horizon": horizon,
                    "rule": rule, "lr_exp": _RULE_EXPONENT[rule], "lr0": lr0,
                    "k": cfg.batch_multiplier, "lr": scale_lr(lr0, cfg.base_envs, big, rule)}
    return arms


def _at_exponent(arm: Mapping[str, Any], exponent: float) -> dict[str, Any]:
    """``arm`` with lr = lr0 x k^exponent, named ``k^<exponent>``."""
    return {**arm, "rule": f"k^{exponent:g}", "lr_exp": exponent,
            "lr": arm["lr0"] * arm["k"] ** exponent}


def arm_settings(cfg: AcceleratedRLConfig, name: str) -> dict[str, Any]:
    """Settings of the arm ``name``: one of :func:`_arms` or a grid extension ``...-k^<e>``."""
    arms = _arms(cfg)
    if name in arms:
        return arms[name]
    m = re.fullmatch(r"(.+)-k\^(-?\d+(?:\.\d+)?)", name)
    base = None if m is None else next(
        (a for n, a in arms.items() if n.rsplit("-", 1)[0] == m.group(1)), None)
    if m is None or base is None:
        raise KeyError(f"no learning arm {name!r} in this config; arms: {sorted(arms)} and "
                       "their grid extensions '<algo>-<size>-k^<exponent>'")
    return _at_exponent(base, float(m.group(2)))


def lr_grid_edges(arms: Mapping[str, Mapping[str, Any]],
                  chosen: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Per algorithm and batch size, ``"top"`` / ``"bottom"`` where the chosen arm is the
    largest / smallest lr of a grid of >= 2 points (its best lr may lie beyond the grid)."""
    edges: dict[str, dict[str, str]] = {}
    for algo, sizes in chosen.items():
        for size, name in sizes.items():
            exps = [a["lr_exp"] for a in arms.values()
                    if a["algo"] == algo and a["size"] == size]
            if len(exps) < 2:
                continue
            e = arms[name]["lr_exp"]
            if e == max(exps):
                edges.setdefault(algo, {})[size] = "top"
            elif e == min(exps):
                edges.setdefault(algo, {})[size] = "bottom"
    return edges


def extend_lr_grid(arms: Mapping[str, Mapping[str, Any]],
                   chosen: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, Any]]:
    """New arms one ``sqrt(k)`` step beyond each grid edge that won on validation (pure).

    ``choose_lrs`` gives ties to the earlier arm, and new arms come after the old ones, so a new
    point is chosen only if it is strictly better than the edge it extends.
    """
    new: dict[str, dict[str, Any]] = {}
    for algo, sizes in lr_grid_edges(arms, chosen).items():
        for size, side in sizes.items():
            edge = arms[chosen[algo][size]]
            e = edge["lr_exp"] + (0.5 if side == "top" else -0.5)
            size_key = (f"mb{edge['batch_size']}" if algo == "dqn" else f"B{edge['n_envs']}")
            arm = _at_exponent(edge, e)  # beyond the named rules: k^1.5, k^-0.5, ...
            new[f"{algo}-{size_key}-{arm['rule']}"] = arm
    return new


def _arch(env_id: str) -> str:
    if env_id.startswith("MinAtar/"):
        return "minatar"
    if env_id.startswith("ALE/") or env_id.endswith("NoFrameskip-v4"):
        return "small"
    return "mlp"


def learn_trial(trial: Trial, cfg: AcceleratedRLConfig, tctx: TrialContext) -> dict[str, Any]:
    """Train one arm (algorithm, batch size, lr) for its algorithm's env-step budget."""
    import numpy as np
    import torch

    from adaptlearn.rl import (
        A2C,
        DQN,
        PPO,
        ActorCritic,
        CategoricalPgAgent,
        EnvFactory,
        EpsilonGreedyAgent,
        QNetwork,
        make_sampler,
        train,
    )

    arm = arm_settings(cfg, trial.method)
    env_fn = EnvFactory(cfg.learn_env)
    probe = env_fn()
    obs_shape, n_actions = tuple(probe.observation_space.shape), int(probe.action_space.n)
    probe.close()
    torch.manual_seed(trial.seed)
    arch = _arch(cfg.learn_env)
    steps_total = {"a2c": cfg.a2c_steps, "ppo": cfg.ppo_steps, "dqn": cfg.dqn_steps}[arm["algo"]]
    if arm["algo"] == "dqn":
        agent: Any = EpsilonGreedyAgent(QNetwork(obs_shape, n_actions, arch=arch),
                                        seed=trial.seed, device=tctx.device)
        algo: Any = DQN(agent, arm["n_envs"], lr=arm["lr"], batch_size=arm["batch_size"],
                        optimizer_eps=0.01 / arm["batch_size"], double=True,
                        replay_ratio=cfg.dqn_replay_ratio, learn_start=cfg.dqn_learn_start,
                        target_update_steps=cfg.dqn_target_steps,
                        eps_steps=cfg.dqn_eps_steps, replay_size=min(100_000, steps_total),
                        seed=trial.seed)
        steps_per_update = 1
    else:
        agent = CategoricalPgAgent(ActorCritic(obs_shape, n_actions, arch=arch),
                                   seed=trial.seed, device=tctx.device)
        if arm["algo"] == "a2c":
            algo = A2C(agent, lr=arm["lr"])
            steps_per_update = 1
        else:
            algo = PPO(agent, lr=arm["lr"], clip=0.2, epochs=4, minibatches=4,
                       generator=torch.Generator().manual_seed(trial.seed + 1))
            steps_per_update = 4 * 4
    sampler_kwargs: dict[str, Any] = {"seed": trial.seed}
    if cfg.learn_sampler != "serial":
        sampler_kwargs["n_workers"] = 2
    per_batch = arm["n_envs"] * arm["horizon"]
    log_every = max(per_batch, steps_total // 24)
    with make_sampler(cfg.learn_sampler, env_fn, arm["n_envs"], arm["horizon"],
                      **sampler_kwargs) as sampler:
        curve = train(sampler, algo, steps_total, log_every_steps=log_every,
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
            "updates": float(algo.updates),
            "optimizer_steps": float(algo.updates * steps_per_update),
        },
        "curve": [{"part": "learning", "algo": arm["algo"], "n_envs": arm["n_envs"],
                   "rule": arm["rule"], "lr": arm["lr"], **{k: r[k] for k in keep}}
                  for r in curve],
    }


def choose_lrs(validation: Sequence[Mapping[str, Any]],
               arms: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Per algorithm and batch size, the arm with the best mean validation final return.

    ``validation``: rows ``{"method", "seed", "final_return"}`` of validation seeds only; ties
    and non-finite returns go to the earlier arm of the grid.
    """
    scores: dict[str, list[float]] = {}
    for r in validation:
        v = r.get("final_return")
        scores.setdefault(r["method"], []).append(
            float(v) if v is not None and math.isfinite(float(v)) else -math.inf)
    chosen: dict[str, dict[str, str]] = {}
    best: dict[tuple[str, str], float] = {}
    for name, arm in arms.items():
        if name not in scores:
            continue
        s = sum(scores[name]) / len(scores[name])
        key = (arm["algo"], arm["size"])
        if key not in best or s > best[key]:
            best[key] = s
            chosen.setdefault(arm["algo"], {})[arm["size"]] = name
    return chosen


# --- throughput cells (C1) --------------------------------------------------------------------

def measure_probe(kind: str, env_id: str, n_envs: int, *, seconds: float, warmup_s: float,
                  horizon: int = 16, seed: int = 0) -> dict[str, float]:
    """Time one probe cell, in the units of :func:`adaptlearn.rl.throughput.measure_throughput`.

    ``gym_sync_per_env``: the ``gym_sync`` loop (SyncVectorEnv, same-step autoreset) with one
    forward pass per env instead of one batched pass, so ``gym_sync`` vs it isolates batched
    inference. ``inference_only``: the batched forward pass on a fixed ``[n_envs, *obs]`` batch,
    no env: the sampler's ceiling if stepping cost nothing.
    """
    import gymnasium as gym
    import numpy as np
    import torch

    from adaptlearn.rl import ActorCritic, CategoricalPgAgent, EnvFactory
    from adaptlearn.rl.throughput import process_cpu_seconds

    env_fn = EnvFactory(env_id)
    probe = env_fn()
    obs_shape, n_actions = tuple(probe.observation_space.shape), int(probe.action_space.n)
    sample = np.stack([probe.observation_space.sample() for _ in range(n_envs)])
    probe.close()
    torch.manual_seed(seed)
    agent = CategoricalPgAgent(ActorCritic(obs_shape, n_actions, arch="nature").eval(),
                               generator=torch.Generator().manual_seed(seed))
    venv: Any = None
    if kind == "gym_sync_per_env":
        venv = gym.vector.SyncVectorEnv([env_fn] * n_envs,
                                        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        state = {"obs": venv.reset(seed=seed)[0]}

        def run_batch() -> int:
            for _ in range(horizon):
                with torch.inference_mode():
                    obs = torch.from_numpy(np.asarray(state["obs"]))
                    action = torch.cat([agent.step(obs[i:i + 1])[0] for i in range(n_envs)])
                state["obs"] = venv.step(action.numpy())[0]
            return n_envs * horizon
    elif kind == "inference_only":
        batch = torch.from_numpy(sample)

        def run_batch() -> int:
            for _ in range(horizon):
                with torch.inference_mode():
                    agent.step(batch)
            return n_envs * horizon
    else:
        raise ValueError(f"`kind` must be one of {_PROBES}; got {kind!r}")
    try:
        t_end = time.perf_counter() + warmup_s
        while time.perf_counter() < t_end:
            run_batch()
        wall0, cpu0, steps = time.perf_counter(), process_cpu_seconds(), 0
        while time.perf_counter() - wall0 < seconds:
            steps += run_batch()
        wall, cpu = time.perf_counter() - wall0, process_cpu_seconds() - cpu0
    finally:
        if venv is not None:
            venv.close()
    return {"steps_per_s": steps / wall, "frames_per_s": 4 * steps / wall,
            "steps_per_cpu_s": steps / max(cpu, 1e-9), "cpu_util": cpu / wall,
            "steps": float(steps), "wall_s": wall}


def _throughput(cfg: AcceleratedRLConfig, ctx: RunContext) -> list[dict[str, Any]]:
    """Every (backend, N) cell once per repeat, in the driver process, one cell at a time.

    The backend order rotates every repeat so that slow drifts of the machine's load hit every
    backend alike. Returns one row per (backend, N, repeat).
    """
    from adaptlearn.core import pin_threads
    from adaptlearn.rl.throughput import measure_throughput

    pin_threads(1)
    rows = []
    backends = list(cfg.throughput_backends)
    for rep in range(cfg.throughput_repeats):
        shift = rep % len(backends)
        for n in cfg.throughput_n_envs:
            for backend in backends[shift:] + backends[:shift]:
                kwargs = {"seconds": cfg.throughput_seconds, "warmup_s": cfg.throughput_warmup_s,
                          "seed": ctx.seed}
                if backend in _PROBES:
                    r = measure_probe(backend, cfg.throughput_env, n, **kwargs)
                else:
                    r = measure_throughput(backend, cfg.throughput_env, n,
                                           n_workers=cfg.throughput_workers, **kwargs)
                row = {"part": "throughput", "method": backend, "backend": backend,
                       "n_envs": n, "repeat": rep, **r}
                rows.append(row)
                ctx.log(**row)
    return rows


def _free_cores(sample_s: float = 1.0, samples: int = 3) -> float:
    """Idle CPUs now: the largest idle share of all CPUs over ``samples`` windows of
    ``sample_s`` seconds (``/proc/stat``), times the CPU count.

    Not the 1-minute load average, which still counts the work of the experiment that ran just
    before (in ``make run``) after it has finished; the best of a few windows so that a process
    that is just exiting (seen once: 1.1 of 2 cores free in the first second of ``make run``)
    does not count as load, while load that lasts still does. ``nan`` without ``/proc/stat``.
    """
    import time

    def snapshot() -> tuple[float, float]:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    shares = []
    try:
        for _ in range(samples):
            idle0, total0 = snapshot()
            time.sleep(sample_s)
            idle1, total1 = snapshot()
            shares.append((idle1 - idle0) / max(total1 - total0, 1e-9))
    except (OSError, ValueError, IndexError):
        return math.nan
    return max(shares) * float(os.cpu_count() or 1)


# --- the declared claim and its verdict -------------------------------------------------------

def verdict_rows(throughput: Sequence[Mapping[str, Any]], learning: Sequence[Mapping[str, Any]],
                 arms: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows the verdict is judged on (pure).

    Throughput: one row per (backend, N, repeat) as measured, plus per (N, repeat)
    ``paper-best`` (the faster of parallel / alternating in wall steps/s) and ``anchor-best``
    (the fastest anchor). Learning: each verdict trial of a chosen arm, renamed
    ``<algo>-small`` / ``<algo>-large`` (one arm per algorithm and size is run on the verdict's
    seeds; the lr was chosen on validation seeds).
    """
    rows = [dict(r) for r in throughput]
    groups: dict[tuple[Any, Any], dict[str, Mapping[str, Any]]] = {}
    for r in throughput:
        groups.setdefault((r["n_envs"], r["repeat"]), {})[r["method"]] = r
    for (n, rep), by in sorted(groups.items()):
        for name, members in (("paper-best", ("parallel", "alternating")),
                              ("anchor-best", _ANCHORS)):
            have = [by[m] for m in members if m in by]
            if have:
                top = max(have, key=lambda r: float(r["steps_per_s"]))
                rows.append({"method": name, "n_envs": n, "repeat": rep,
                             "steps_per_s": top["steps_per_s"], "chosen": top["method"]})
    for r in learning:
        arm = arms.get(r["method"])
        if arm is not None:
            rows.append({**r, "method": f"{arm['algo']}-{arm['size']}", "algo": arm["algo"],
                         "arm": r["method"]})
    return rows


def _c1_comparisons(rows: Sequence[Mapping[str, Any]]) -> list[Comparison]:
    have = {(r["method"], r["n_envs"]) for r in rows if "repeat" in r}
    out = []
    for n in sorted({n for _, n in have}):
        def both(a: str, b: str, n: int = n) -> bool:
            return (a, n) in have and (b, n) in have

        if both("gym_sync", "gym_sync_per_env"):
            out.append(Comparison(
                "steps_per_cpu_s", "gym_sync", "gym_sync_per_env", scale="ratio",
                margin=MECHANISM_MARGIN, where={"n_envs": n}, pair_by=("repeat",),
                label=f"C1 batched vs per-env inference (SyncVectorEnv): steps/CPU-s [N={n}]"))
        for sampler in ("parallel", "alternating"):
            if both(sampler, "serial"):
                out.append(Comparison(
                    "steps_per_s", sampler, "serial", scale="ratio", margin=MECHANISM_MARGIN,
                    where={"n_envs": n}, pair_by=("repeat",),
                    label=f"C1 {sampler} vs serial sampler: steps/s (wall) [N={n}]"))
        if both("paper-best", "anchor-best"):
            out.append(Comparison(
                "steps_per_s", "paper-best", "anchor-best", scale="ratio", margin=ANCHOR_MARGIN,
                where={"n_envs": n}, pair_by=("repeat",),
                label=f"C1 best of parallel/alternating vs best anchor: steps/s (wall), "
                f">= {ANCHOR_MARGIN:g}x [N={n}]"))
    return out


def verdict(rows: Sequence[Mapping[str, Any]], *, return_margin: float = 50.0,
            free_cores: float | None = None, preset: str = "quick",
            lr_edges: Mapping[str, Mapping[str, str]] | None = None) -> Verdict:
    """Stooke & Abbeel's claims, each on its own mechanism (pure; rows from :func:`verdict_rows`).

    C1 (per N, paired by repeat; ratio scale): batched inference beats one forward pass per env
    on the same SyncVectorEnv loop by ``MECHANISM_MARGIN`` in steps per CPU-second; the
    parallel and the alternating sampler each beat the serial sampler (same batched inference,
    so only parallel simulation differs) by ``MECHANISM_MARGIN`` in wall-clock steps/s; the
    best of parallel/alternating reaches ``ANCHOR_MARGIN`` x the best anchor (SyncVectorEnv /
    AsyncVectorEnv / ale-py vector env) in wall-clock steps/s.

    C2 (per algorithm: A2C, PPO, DQN; paired by seed): the large batch (DQN: the large replay
    minibatch at the same replay ratio), its lr chosen on validation seeds, is
    non-inferior to the small batch, its lr chosen the same way from the same grid, in final
    return within ``return_margin`` (a difference: returns may be negative) and costs
    ``COMPUTE_MARGIN`` x less CPU per env step.

    Preconditions: ``free_cores`` (when given) >= ``MIN_FREE_CORES`` where a parallel sampler
    is judged, else underpowered (the cores do not allow parallel simulation); the small batch
    learns in every seed (final return above its first logged return, i.e. about the untrained
    policy's, by more than ``return_margin``: otherwise "within the margin" would also hold for
    a large batch that never learns), else control-failed; the large batch makes >=
    ``MIN_UPDATES`` optimiser steps, else underpowered; when ``lr_edges`` is given
    (:func:`lr_grid_edges` after the grid's extensions), each batch size's chosen lr lies inside
    its grid, else underpowered (the lr search stopped short of that arm's best, so its return
    is not the batch size's). Every comparison needs >= 3 pairs (3 repeats / 3 seeds in
    ``quick``).
    """
    comparisons = _c1_comparisons(rows)
    pre = []
    if free_cores is not None and any(c.baseline == "serial" for c in comparisons):
        pre.append(Precondition(
            f"the machine has >= {MIN_FREE_CORES:g} free cores for parallel simulation",
            ok=math.isfinite(free_cores) and free_cores >= MIN_FREE_CORES,
            detail=f"{free_cores:.1f} free (best idle share of three 1-s windows before the cells)",
            reason="underpowered"))
    algos = sorted({r["algo"] for r in rows if "algo" in r and "seed" in r})
    for a in algos:
        comparisons.append(Comparison(
            "final_return", f"{a}-large", f"{a}-small", margin=-return_margin,
            label=f"C2 {a}: large vs small batch final return (within {return_margin:g})"))
        comparisons.append(Comparison(
            "cpu_s_per_1k_steps", f"{a}-large", f"{a}-small", higher_is_better=False,
            scale="ratio", margin=COMPUTE_MARGIN,
            label=f"C2 {a}: large vs small batch CPU s per 1k env steps (>= "
            f"{COMPUTE_MARGIN:g}x less)"))
        small = [r for r in rows if r.get("method") == f"{a}-small"]
        learns = [float(r["final_return"]) - float(r["initial_return"]) > return_margin
                  for r in small
                  if r.get("initial_return") is not None and r.get("final_return") is not None]
        pre.append(Precondition(
            f"{a} small batch learns (final return above its first logged return by more than "
            f"the margin {return_margin:g}, every seed)",
            ok=bool(learns) and all(learns), detail=f"{sum(learns)}/{len(small)} seeds"))
        large = [float(r.get("optimizer_steps", 0)) for r in rows
                 if r.get("method") == f"{a}-large"]
        pre.append(Precondition(
            f"{a} large batch makes >= {MIN_UPDATES} optimiser steps",
            ok=bool(large) and min(large) >= MIN_UPDATES,
            detail=f"{min(large):.0f} optimiser steps" if large else "not run",
            reason="underpowered"))
        if lr_edges is not None:
            at_edge = lr_edges.get(a, {})
            pre.append(Precondition(
                f"{a}: each batch size's lr, chosen on validation seeds, lies inside its grid",
                ok=not at_edge,
                detail=", ".join(f"{size} at the grid's {side}" for size, side in
                                 sorted(at_edge.items())) or "both inside",
                reason="underpowered"))
    if not comparisons:
        raise ValueError("no comparison can be built from these rows (no throughput pairs and "
                         "no learning rows)")
    claim = Claim(
        statement="(C1) batched inference, and parallel or alternating simulation, each raise "
        f"sampling throughput by >= {MECHANISM_MARGIN:g}x, and the paper's samplers reach >= "
        f"{ANCHOR_MARGIN:g}x the best vector-env anchor; (C2) with a large batch, lr chosen on "
        f"validation seeds, {'/'.join(a.upper() for a in algos) or 'policy gradient'} keeps the "
        "small batch's final return "
        f"(within {return_margin:g}) at >= {COMPUTE_MARGIN:g}x less CPU per env step",
        comparisons=tuple(comparisons),
        min_pairs=3,
    )
    return judge(claim, rows, preconditions=pre, preset=preset)


# --- the run ----------------------------------------------------------------------------------

def _median(values: Sequence[float]) -> float:
    import numpy as np

    return float(np.median(values)) if values else math.nan


def _throughput_section(cfg: AcceleratedRLConfig, rows: Sequence[Mapping[str, Any]],
                        free_cores: float) -> tuple[str, list[dict[str, Any]]]:
    """Median table per (backend, N) and the derived ratios (report only, not judged)."""
    med: list[dict[str, Any]] = []
    for n in cfg.throughput_n_envs:
        for b in cfg.throughput_backends:
            rs = [r for r in rows if r["method"] == b and r["n_envs"] == n]
            if rs:
                med.append({"part": "throughput", "backend": b, "n_envs": n, **{
                    k: _median([float(r[k]) for r in rs])
                    for k in ("steps_per_s", "frames_per_s", "steps_per_cpu_s", "cpu_util")}})
    lines = ["| backend | n_envs | frames/s | steps/s | steps/CPU-s | cores used |",
             "|---|---|---|---|---|---|"]
    for r in sorted(med, key=lambda r: (r["n_envs"], r["backend"])):
        lines.append(f"| {r['backend']} | {r['n_envs']} | {r['frames_per_s']:.0f} | "
                     f"{r['steps_per_s']:.0f} | {r['steps_per_cpu_s']:.0f} | "
                     f"{r['cpu_util']:.2f} |")
    notes = []
    for n in cfg.throughput_n_envs:
        by = {r["backend"]: r for r in med if r["n_envs"] == n}
        anchors = [b for b in _ANCHORS if b in by]
        best = max(anchors, key=lambda b: by[b]["steps_per_s"]) if anchors else None
        parts = []
        for s in ("serial", "parallel", "alternating"):
            if s not in by:
                continue
            if "inference_only" in by:
                parts.append(f"{s}/inference-only limit "
                             f"{by[s]['steps_per_s'] / by['inference_only']['steps_per_s']:.2f}")
            if best is not None:
                parts.append(f"{s}/{best} wall {by[s]['steps_per_s'] / by[best]['steps_per_s']:.2f}"
                             f", per CPU-s "
                             f"{by[s]['steps_per_cpu_s'] / by[best]['steps_per_cpu_s']:.2f}")
        if parts:
            notes.append(f"N={n} (medians): " + "; ".join(parts))
    text = ("\n".join(lines) + f"\n\n{os.cpu_count()} CPUs, {free_cores:.1f} free before the "
            "cells (the best idle share of all CPUs over three 1-s windows). Parallel and "
            "alternating samplers need free cores beside the master's inference to gain "
            "wall-clock speed; with fewer "
            f"than {MIN_FREE_CORES:g} free cores C1 is judged underpowered. Report-only ratios "
            "(not judged): " + " | ".join(notes))
    return text, med


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
        "tiny": {"throughput_backends": ("serial", "gym_sync", "gym_sync_per_env",
                                         "inference_only"),
                 "throughput_n_envs": (2,), "throughput_seconds": 0.3,
                 "throughput_warmup_s": 0.1, "throughput_repeats": 1,
                 "learn_algos": ("a2c", "dqn"), "a2c_steps": 1_000, "dqn_steps": 600,
                 "dqn_batch": 16, "dqn_learn_start": 200,
                 "base_envs": 4, "batch_multiplier": 2, "lr_rules": ("none", "linear"),
                 "lr_grid_extensions": 1, "n_seeds": 1},
        "full": {"throughput_backends": _BACKENDS, "throughput_n_envs": (4, 8, 16),
                 "throughput_seconds": 10.0, "throughput_warmup_s": 1.0,
                 "throughput_repeats": 5, "learn_env": "MinAtar/breakout",
                 "a2c_steps": 700_000, "ppo_steps": 700_000, "base_envs": 16, "a2c_lr": 1e-3,
                 "ppo_lr": 5e-4,
                 "dqn_steps": 300_000, "dqn_lr": 2.5e-4, "dqn_learn_start": 5_000,
                 "dqn_target_steps": 4_000, "dqn_eps_steps": 100_000,
                 "return_margin": 1.0, "n_seeds": 5, "n_validation_seeds": 2,
                 "checkpoint_every_steps": 100_000},
    },
)
def run(cfg: AcceleratedRLConfig, ctx: RunContext) -> None:
    """Throughput cells on Pong (alone), then the learning arms (validation, then verdict seeds)."""
    cfg.validate()
    free_cores = _free_cores()
    tp_rows = _throughput(cfg, ctx)
    text, tp_med = _throughput_section(cfg, tp_rows, free_cores)
    fig, axes = new_figure(1, 2, width=5.5)
    axes = axes.ravel()
    plot_curves(axes[0], tp_med, "n_envs", "frames_per_s", by="backend",
                title=f"{cfg.throughput_env}: frames/s (wall)")
    plot_curves(axes[1], tp_med, "n_envs", "steps_per_cpu_s", by="backend",
                title="agent steps per CPU-second")
    ctx.save_figure(fig, "throughput")
    ctx.add_section("Throughput (C1)", text)
    ctx.note("throughput", tp_med)
    ctx.note("free_cores", free_cores)

    # each batch size picks its lr from the same grid on validation seeds, then the chosen arms
    # run on the verdict's seeds
    arms = _arms(cfg)
    val_seeds = [ctx.seed + cfg.validation_seed + i for i in range(cfg.n_validation_seeds)]
    val_rows: list[dict[str, Any]] = []
    pending = dict(arms)
    for extension in range(cfg.lr_grid_extensions + 1):
        val = ctx.run_trials(learn_trial, [Trial(m, s) for m in pending for s in val_seeds])
        val_rows += [{"method": r.trial.method, "seed": r.trial.seed, **r.final} for r in val]
        chosen = choose_lrs(val_rows, arms)
        pending = extend_lr_grid(arms, chosen) if extension < cfg.lr_grid_extensions else {}
        if not pending:
            break
        arms.update(pending)  # after the old arms: ties stay with them
    edges = lr_grid_edges(arms, chosen)
    ctx.note("lr_grid_edges", edges)
    ctx.note("lr_chosen_on_validation", chosen)
    ctx.note("validation", val_rows)
    lines = ["| arm | algo | batch | lr | validation final return | chosen |",
             "|---|---|---|---|---|---|"]
    picked = {m for sizes in chosen.values() for m in sizes.values()}
    for r in val_rows:
        a = arms[r["method"]]
        batch = (f"minibatch {a['batch_size']}" if a["algo"] == "dqn"
                 else f"{a['n_envs']}x{a['horizon']}")
        lines.append(f"| {r['method']} | {a['algo']} | {batch} | "
                     f"{a['lr']:.3g} | {r['final_return']:.1f} | "
                     f"{'yes' if r['method'] in picked else ''} |")
    ctx.add_section("Learning rate chosen on validation seeds (C2)",
                    f"Seeds {val_seeds}; the verdict's seeds are {ctx.seeds}. Grid lr0 x k^e, "
                    f"e in {{{', '.join(f'{_RULE_EXPONENT[r]:g}' for r in cfg.lr_rules)}}} "
                    f"(k = {cfg.batch_multiplier}), extended by 0.5 past an "
                    f"edge that won, up to {cfg.lr_grid_extensions} times; still at an edge: "
                    f"{edges or 'none'}.\n\n" + "\n".join(lines))

    results = ctx.run_trials(learn_trial, ctx.make_trials(sorted(picked)))
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

    ctx.set_verdict(verdict(verdict_rows(tp_rows, ctx.rows, arms),
                            return_margin=cfg.return_margin, free_cores=free_cores,
                            preset=ctx.preset, lr_edges=edges))
    ctx.note("arms", arms)
    torso = ("separate actor and critic networks" if _arch(cfg.learn_env) == "mlp"
             else "one torso shared by policy and value")
    ctx.add_section(
        "Settings",
        f"Throughput: Nature CNN policy (random init, 1 torch thread), {cfg.throughput_env} with "
        "noop 30, frame skip 4 + max-pool, 84x84 grey, stack 4, sticky actions 0, episodic "
        f"life, reward clip; our samplers T=16, {cfg.throughput_workers} workers; "
        f"{cfg.throughput_seconds:g} s per cell after {cfg.throughput_warmup_s:g} s warm-up, "
        f"{cfg.throughput_repeats} interleaved repeats. Learning: "
        f"{cfg.learn_env}, sampler {cfg.learn_sampler}, A2C {cfg.a2c_steps} env steps "
        f"T={cfg.a2c_horizon} Adam lr0={cfg.a2c_lr:g}; PPO {cfg.ppo_steps} env steps "
        f"T={cfg.ppo_horizon} 4 epochs x "
        f"4 minibatches, clip 0.2, Adam lr0={cfg.ppo_lr:g}; DQN (double, Huber, Adam eps "
        f"0.01/minibatch) {cfg.dqn_envs} envs x T=4, minibatch {cfg.dqn_batch} -> "
        f"{cfg.dqn_batch * cfg.batch_multiplier} at replay ratio {cfg.dqn_replay_ratio:g}, "
        f"lr0={cfg.dqn_lr:g}, {cfg.dqn_steps} env steps, target copy every "
        f"{cfg.dqn_target_steps} env steps, epsilon 1 -> 0.05 over {cfg.dqn_eps_steps}; "
        f"torso {_arch(cfg.learn_env)} ({torso} for A2C/PPO); lr grid lr0 x "
        f"{{{', '.join(cfg.lr_rules)}}} (k={cfg.batch_multiplier}) for both batch sizes; batch "
        f"x{cfg.batch_multiplier} via more envs (B {cfg.base_envs} -> "
        f"{cfg.base_envs * cfg.batch_multiplier}). Final return = mean of the last 20% of "
        f"logged points (each the mean of the last 100 episodes); {len(ctx.seeds)} verdict "
        f"seeds, {cfg.n_validation_seeds} validation seed(s) per arm.",
    )
