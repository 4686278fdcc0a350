"""Throughput of env + batched policy loops: our samplers beside the vector-env anchors.

Every backend runs the same loop (observe ``B`` envs -> one batched forward pass -> step) with
the same Atari preprocessing (:func:`adaptlearn.rl.envs.make_env`, except ale-py's own
``AtariVectorEnv``, configured to match: 84x84 grey, skip 4 + max-pool, stack 4, 30 no-ops,
sticky actions off, reward clip, episodic lives, no fire reset; its resize kernel is its own).
Reported: agent steps per wall-second, frames per second (x4) and steps per *CPU*-second of
the process plus its worker processes, which is robust to other tenants on a shared machine.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from adaptlearn.rl.agents import CategoricalPgAgent
from adaptlearn.rl.envs import EnvFactory
from adaptlearn.rl.models import ActorCritic
from adaptlearn.rl.runner import process_cpu_seconds
from adaptlearn.rl.samplers import make_sampler

__all__ = ["BACKENDS", "measure_throughput", "process_cpu_seconds"]

BACKENDS = ("serial", "parallel", "alternating", "ray", "gym_sync", "gym_async", "ale_vector")


def _policy(obs_shape: tuple[int, ...], n_actions: int, arch: str, seed: int) -> Any:
    torch.manual_seed(seed)
    model = ActorCritic(obs_shape, n_actions, arch=arch).eval()
    return CategoricalPgAgent(model, generator=torch.Generator().manual_seed(seed))


def measure_throughput(backend: str, env_id: str = "ALE/Pong-v5", n_envs: int = 8, *,
                       seconds: float = 5.0, warmup_s: float = 1.0, arch: str = "nature",
                       horizon: int = 16, n_workers: int | None = None, seed: int = 0,
                       ale_threads: int = 2) -> dict[str, float]:
    """Run ``backend`` for ``seconds`` (after ``warmup_s``) and return its speed.

    Args:
        backend: one of :data:`BACKENDS`.
        env_id: an Atari id (``ale_vector`` needs one) or any :func:`make_env` id.
        n_envs: envs per batched forward pass.
        seconds, warmup_s: timed and untimed durations.
        arch: policy torso (``"nature"`` CNN for Atari).
        horizon: ``T`` of our samplers' batches.
        n_workers: worker processes/actors of our parallel samplers.
        ale_threads: threads of ale-py's vector env.

    Returns:
        ``{"steps_per_s", "frames_per_s", "steps_per_cpu_s", "cpu_util", "steps", "wall_s"}``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}; got {backend!r}")
    env_fn = EnvFactory(env_id)
    probe = env_fn()
    agent = _policy(tuple(probe.observation_space.shape), int(probe.action_space.n), arch, seed)
    probe.close()
    pids: list[int] = []
    closer: Any
    if backend in ("serial", "parallel", "alternating", "ray"):
        kwargs: dict[str, Any] = {"seed": seed}
        if backend != "serial" and n_workers is not None:
            kwargs["n_workers"] = n_workers
        sampler = make_sampler(backend, env_fn, n_envs, horizon, **kwargs)
        sampler.initialize()
        pids = sampler.worker_pids()

        def run_batch() -> int:
            sampler.obtain_samples(agent)
            return n_envs * horizon

        closer = sampler
    else:
        if backend == "ale_vector":
            from ale_py.vector_env import AtariVectorEnv

            from adaptlearn.rl.envs import _atari_rom

            game = _atari_rom(env_id).removeprefix("ALE/").removesuffix("-v5")
            snake = "".join("_" + c.lower() if c.isupper() else c for c in game).lstrip("_")
            venv: Any = AtariVectorEnv(
                snake, n_envs, num_threads=ale_threads, repeat_action_probability=0.0,
                noop_max=30, episodic_life=True, reward_clipping=True, use_fire_reset=False,
                autoreset_mode="SameStep")
        else:
            import gymnasium as gym

            cls = gym.vector.SyncVectorEnv if backend == "gym_sync" else gym.vector.AsyncVectorEnv
            extra = {} if backend == "gym_sync" else {"shared_memory": True,
                                                      "context": "forkserver"}
            venv = cls([env_fn] * n_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
                       **extra)
            pids = [p.pid for p in getattr(venv, "processes", [])]
        state = {"obs": venv.reset(seed=seed)[0]}

        def run_batch() -> int:
            for _ in range(horizon):
                with torch.inference_mode():
                    action, _ = agent.step(torch.from_numpy(np.asarray(state["obs"])))
                state["obs"] = venv.step(action.numpy())[0]
            return n_envs * horizon

        closer = venv
    try:
        t_end = time.perf_counter() + warmup_s
        while time.perf_counter() < t_end:
            run_batch()
        wall0, cpu0, steps = time.perf_counter(), process_cpu_seconds(pids), 0
        while time.perf_counter() - wall0 < seconds:
            steps += run_batch()
        wall, cpu = time.perf_counter() - wall0, process_cpu_seconds(pids) - cpu0
    finally:
        closer.close()
    return {"steps_per_s": steps / wall, "frames_per_s": 4 * steps / wall,
            "steps_per_cpu_s": steps / max(cpu, 1e-9), "cpu_util": cpu / wall,
            "steps": float(steps), "wall_s": wall}
