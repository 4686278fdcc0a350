"""Large-batch settings: learning-rate scaling with batch size, DQN bookkeeping, presets.

Stooke & Abbeel (2018, arXiv 1803.02811) keep the algorithms and grow the batch (more parallel
environments); the learning rate is raised with the batch. The paper's per-batch lr table could
not be retrieved offline, so the presets below are *starting points* built from the rules here
and the reference code's defaults (astooke/accel_rl, rlpyt configs), not the paper's numbers.
"""

from __future__ import annotations

import math
from typing import Any

from adaptlearn.core import check_choice, check_int, check_range

__all__ = ["LARGE_BATCH_BASES", "dqn_updates_per_batch", "large_batch_preset", "scale_lr"]

RULES = ("none", "sqrt", "linear")


def scale_lr(base_lr: float, base_batch: int, batch: int, rule: str = "sqrt") -> float:
    """Learning rate for ``batch`` given ``base_lr`` tuned at ``base_batch``.

    ``rule="linear"``: ``lr * k`` (Goyal et al. 2017); ``"sqrt"``: ``lr * sqrt(k)`` (Krizhevsky
    2014; the conservative default); ``"none"``: unchanged, with ``k = batch / base_batch``.
    """
    check_range("base_lr", base_lr, 0.0, low_inclusive=False, owner="scale_lr")
    check_int("base_batch", base_batch, 1, owner="scale_lr")
    check_int("batch", batch, 1, owner="scale_lr")
    check_choice("rule", rule, RULES, owner="scale_lr")
    k = batch / base_batch
    return base_lr * {"none": 1.0, "sqrt": math.sqrt(k), "linear": k}[rule]


def dqn_updates_per_batch(n_envs: int, horizon: int, batch_size: int,
                          replay_ratio: float = 8.0) -> float:
    """Gradient updates per sampler batch that keep ``replay_ratio`` fixed (accel_rl dqn.py).

    ``replay_ratio * n_envs * horizon / batch_size``; standard DQN (1 env, 4 steps, batch 32,
    ratio 8) gives 1 update per 4 env steps.
    """
    check_int("n_envs", n_envs, 1, owner="dqn_updates_per_batch")
    check_int("horizon", horizon, 1, owner="dqn_updates_per_batch")
    check_int("batch_size", batch_size, 1, owner="dqn_updates_per_batch")
    check_range("replay_ratio", replay_ratio, 0.0, low_inclusive=False,
                owner="dqn_updates_per_batch")
    return replay_ratio * n_envs * horizon / batch_size


#: Base (small-batch) settings that :func:`large_batch_preset` scales.
LARGE_BATCH_BASES: dict[str, dict[str, Any]] = {
    # rlpyt Atari A2C: batch_T 5 x batch_B 32 (our base uses 16 envs), Adam.
    "a2c": {"n_envs": 16, "horizon": 5, "lr": 7e-4, "optimizer": "adam"},
    # rlpyt/CleanRL PPO: 8 envs x 128 steps, 4 epochs x 4 minibatches.
    "ppo": {"n_envs": 8, "horizon": 128, "lr": 2.5e-4, "minibatches": 4, "epochs": 4},
    # accel_rl DQN: batch 32, replay ratio 8, Adam (large-batch choice of the paper).
    "dqn": {"n_envs": 8, "horizon": 4, "batch_size": 32, "lr": 1e-4, "replay_ratio": 8.0},
}


def large_batch_preset(algo: str, multiplier: int, rule: str = "sqrt") -> dict[str, Any]:
    """Hyperparameters for a ``multiplier`` x larger batch than :data:`LARGE_BATCH_BASES`.

    * A2C: ``n_envs`` x k (one update per batch), lr scaled by ``rule``.
    * PPO: ``n_envs`` x k with the *number* of minibatches fixed (minibatch size x k), lr scaled.
    * DQN: ``batch_size`` x k and ``n_envs`` x k, replay ratio fixed (so updates per env step
      drop by k), Adam eps ~ 1/batch as in accel_rl's Cat-DQN, lr scaled.
    """
    check_choice("algo", algo, tuple(LARGE_BATCH_BASES), owner="large_batch_preset")
    k = check_int("multiplier", multiplier, 1, owner="large_batch_preset")
    base = dict(LARGE_BATCH_BASES[algo])
    out = dict(base)
    out["n_envs"] = base["n_envs"] * k
    if algo == "dqn":
        out["batch_size"] = base["batch_size"] * k
        out["lr"] = scale_lr(base["lr"], base["batch_size"], out["batch_size"], rule)
        out["optimizer_eps"] = 0.01 / out["batch_size"]
    else:
        b0 = base["n_envs"] * base["horizon"]
        out["lr"] = scale_lr(base["lr"], b0, out["n_envs"] * base["horizon"], rule)
    out["rule"] = rule
    return out
