"""Training loop (rlpyt's ``MinibatchRl`` role): sample, update, log, checkpoint, resume.

``train`` alternates ``sampler.obtain_samples(agent)`` and ``algo.update(samples)`` until
``total_steps`` env steps, and records per-batch rows with env steps, wall-clock and CPU seconds
(this process plus the sampler's *live* worker processes, read from ``/proc/<pid>/stat``) and
the mean raw return of episodes finished recently.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from adaptlearn.core import check_int
from adaptlearn.rl.samplers import Sampler

__all__ = ["CpuClock", "cpu_seconds", "process_cpu_seconds", "train"]


def cpu_seconds() -> float:
    """CPU seconds of this process plus its finished/waited children (``os.times``).

    Children still running are *not* counted (the kernel adds a child's time to these fields
    only when it is waited for): use :class:`CpuClock` around a sampler with workers.
    """
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _pid_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a running process from ``/proc/<pid>/stat``; ``None`` if unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / tick
    except (OSError, IndexError, ValueError, AttributeError):
        return None


def process_cpu_seconds(pids: Sequence[int] = ()) -> float:
    """CPU seconds of this process (all threads) plus the *running* processes ``pids``.

    Reads ``/proc/<pid>/stat`` (Linux); elsewhere only this process is counted.
    """
    return time.process_time() + sum(t for p in pids if (t := _pid_cpu_seconds(p)) is not None)


class CpuClock:
    """CPU seconds of this process plus a sampler's worker processes, while they run.

    Each reading adds ``time.process_time()`` and the last CPU time read for every worker pid
    the sampler has reported so far (``sampler.worker_pids()``), so a worker that exits keeps
    the time it had used at its last reading, and workers started after the clock count from 0.
    """

    def __init__(self, sampler: Sampler | None = None) -> None:
        self.sampler = sampler
        self._workers: dict[int, float] = {}

    def __call__(self) -> float:
        pids = self.sampler.worker_pids() if self.sampler is not None else []
        for pid in pids:
            t = _pid_cpu_seconds(pid)
            if t is not None:
                self._workers[pid] = max(t, self._workers.get(pid, 0.0))
        return time.process_time() + sum(self._workers.values())


def train(
    sampler: Sampler,
    algo: Any,
    total_steps: int,
    *,
    log_every_steps: int = 0,
    return_window: int = 100,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
    checkpoint_every_steps: int = 0,
    resume_state: dict[str, Any] | None = None,
    progress: Callable[..., Any] | None = None,
) -> list[dict[str, float]]:
    """Train ``algo`` (A2C/PPO/DQN) with ``sampler`` for ``total_steps`` env steps.

    Args:
        sampler: any :class:`Sampler`; its agent is ``algo.agent``.
        algo: object with ``agent``, ``update(samples)``, ``state_dict``/``load_state_dict``.
        total_steps: env steps to collect (rounded up to whole batches).
        log_every_steps: a curve row at least every this many steps (0: every batch).
        return_window: episodes averaged in ``return`` (raw game score).
        checkpoint: called with a checkpointable state every ``checkpoint_every_steps``.
        resume_state: a state passed to ``checkpoint`` earlier: the algorithm, counters and
            the curve continue from it (the envs restart from fresh seeded episodes).
        progress: optional ``tqdm``-like wrapper of ``range``.

    Returns:
        Curve rows ``{env_steps, wall_s, cpu_s, return, episodes, ...update stats}``;
        ``cpu_s`` counts this process and the sampler's worker processes (:class:`CpuClock`).
    """
    check_int("total_steps", total_steps, 1, owner="train")
    per_batch = sampler.n_envs * sampler.horizon
    n_batches = -(-total_steps // per_batch)
    curve: list[dict[str, float]] = []
    recent: deque[float] = deque(maxlen=return_window)
    start, n_episodes, wall_off, cpu_off = 0, 0, 0.0, 0.0
    if resume_state is not None:
        algo.load_state_dict(resume_state["algo"])
        curve = [dict(r) for r in resume_state["curve"]]
        recent.extend(float(x) for x in resume_state["recent"])
        start, n_episodes = int(resume_state["batch"]), int(resume_state["episodes"])
        wall_off, cpu_off = float(resume_state["wall_s"]), float(resume_state["cpu_s"])
    clock = CpuClock(sampler)
    wall0, cpu0 = time.perf_counter(), clock()
    last_log = -1
    batches = range(start, n_batches)
    for i in progress(batches) if progress is not None else batches:
        samples = sampler.obtain_samples(algo.agent)
        for ep in samples.episodes:
            recent.append(ep["return"])
        n_episodes += len(samples.episodes)
        stats = algo.update(samples)
        steps = (i + 1) * per_batch
        if (log_every_steps <= 0 or steps - last_log >= log_every_steps or i == n_batches - 1):
            last_log = steps
            curve.append({
                "env_steps": steps,
                "wall_s": wall_off + time.perf_counter() - wall0,
                "cpu_s": cpu_off + clock() - cpu0,
                "return": float(np.mean(recent)) if recent else float("nan"),
                "episodes": n_episodes, **stats,
            })
        if checkpoint is not None and checkpoint_every_steps > 0 and (
                (i + 1) * per_batch) % checkpoint_every_steps < per_batch:
            checkpoint({
                "algo": algo.state_dict(), "curve": curve, "recent": list(recent),
                "batch": i + 1, "episodes": n_episodes,
                "wall_s": wall_off + time.perf_counter() - wall0,
                "cpu_s": cpu_off + clock() - cpu0,
                "torch_rng": torch.get_rng_state(),
            })
    return curve
