"""Samplers: step many environments, one batched policy forward pass per step, ``[T, B]`` batches.

The execution design of Stooke & Abbeel (2018, "Accelerated Methods for Deep Reinforcement
Learning", arXiv 1803.02811), later rlpyt: simulators run on CPU (in worker processes), all
action selection is one batched forward pass in the master, and the training batch is ``horizon``
consecutive steps of all ``n_envs`` environments, time-major ``[T, B]``.

One interface, four samplers:

* :class:`SerialSampler` steps every env in this process.
* :class:`ParallelSampler` steps groups of envs in worker processes. Observations, actions,
  rewards and flags live in shared memory (no pickling on the hot path); one semaphore pair per
  worker synchronises each step.
* :class:`AlternatingSampler` splits the workers into two groups so that one group simulates
  while the master runs inference for the other (the paper's overlap of simulation and
  inference; rlpyt ``AlternatingSampler``).
* :class:`RaySampler` steps groups of envs in Ray actors, so sampling can spread over a cluster
  (a local Ray instance when no address is given).

Autoreset convention (the same everywhere, whatever the backend): an env that ends an episode at
step ``t`` (``terminated`` or ``truncated``) is reset *in the same step*. ``final_obs[t]`` holds
the observation it ended on (to bootstrap a truncated episode), and ``obs[t + 1]`` the first
observation of the new episode. Worker death is detected while waiting (the process's liveness
is checked at least every ``poll_s`` seconds) and raised as :class:`WorkerDiedError`; a wait
longer than ``timeout_s`` raises :class:`SamplerTimeoutError`. Nothing hangs silently.
"""

from __future__ import annotations

import contextlib
import inspect
import multiprocessing as mp
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from adaptlearn.core import check_choice, check_int, check_range, spawn_seeds
from adaptlearn.core.runner import pid_alive

__all__ = [
    "AlternatingSampler",
    "ParallelSampler",
    "RaySampler",
    "Sampler",
    "SamplerTimeoutError",
    "Samples",
    "SerialSampler",
    "StepAgent",
    "WorkerDiedError",
    "make_sampler",
]

EnvFn = Callable[[], gym.Env]


class WorkerDiedError(RuntimeError):
    """A sampler worker process or actor died; the message names it and its exit code."""


class SamplerTimeoutError(RuntimeError):
    """A sampler worker did not answer within ``timeout_s`` (alive but stuck)."""


class StepAgent(Protocol):
    """What a sampler needs from an agent: one batched action selection.

    An agent whose ``step`` also takes an ``env_ids`` argument is told which envs (``int64[b]``
    indices into ``0..n_envs-1``) the observations come from, so it can draw each env's
    exploration noise from that env's own stream (:class:`adaptlearn.rl.agents.EnvNoise`): then
    trajectories are identical on every sampler, however the envs are grouped per call.
    """

    def step(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``obs[b, *obs_shape]`` -> ``(action[b, *act_shape], {name: tensor[b, ...]})``."""
        ...


def _takes_env_ids(agent: Any) -> bool:
    try:
        return "env_ids" in inspect.signature(agent.step).parameters
    except (TypeError, ValueError):
        return False


@dataclass
class Samples:
    """One batch of ``T`` steps of ``B`` environments (time-major).

    Attributes:
        obs: ``[T, B, *obs_shape]`` observation on which ``action[t]`` was taken.
        action: ``[T, B, *act_shape]``.
        reward: ``float32[T, B]``.
        terminated: ``bool[T, B]``: the MDP ended (no bootstrap).
        truncated: ``bool[T, B]``: time limit (bootstrap from ``final_obs``).
        final_obs: ``[T, B, *obs_shape]``: valid only where ``terminated | truncated``.
        last_obs: ``[B, *obs_shape]``: ``s_T``, for the bootstrap value of the batch.
        agent_info: ``{name: [T, B, ...]}`` returned by ``agent.step`` (e.g. log-prob, value).
        episodes: completed episodes (raw return and length, env index, step ``t``).

    The tensors may be views of the sampler's buffers: they are overwritten by the next
    ``obtain_samples`` call. Use :meth:`clone` to keep them.
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_obs: torch.Tensor
    last_obs: torch.Tensor
    agent_info: dict[str, torch.Tensor] = field(default_factory=dict)
    episodes: list[dict[str, float]] = field(default_factory=list)

    @property
    def done(self) -> torch.Tensor:
        """``bool[T, B]``: the episode ended at this step (terminated or truncated)."""
        return self.terminated | self.truncated

    @property
    def T(self) -> int:
        """Number of time steps."""
        return int(self.reward.shape[0])

    @property
    def B(self) -> int:
        """Number of environments."""
        return int(self.reward.shape[1])

    def next_obs(self) -> torch.Tensor:
        """``[T, B, *obs_shape]``: the observation after each step (``final_obs`` where done)."""
        nxt = torch.cat([self.obs[1:], self.last_obs.unsqueeze(0)], dim=0)
        done = self.done.view(*self.done.shape, *([1] * (nxt.dim() - 2)))
        return torch.where(done, self.final_obs, nxt)

    def to(self, device: torch.device | str) -> Samples:
        """The batch on ``device`` (``self`` when it is already there)."""
        device = torch.device(device)
        if self.obs.device == device:
            return self
        return Samples(
            self.obs.to(device), self.action.to(device), self.reward.to(device),
            self.terminated.to(device), self.truncated.to(device), self.final_obs.to(device),
            self.last_obs.to(device), {k: v.to(device) for k, v in self.agent_info.items()},
            self.episodes,
        )

    def clone(self) -> Samples:
        """A copy that owns its memory."""
        return Samples(
            self.obs.clone(), self.action.clone(), self.reward.clone(),
            self.terminated.clone(), self.truncated.clone(), self.final_obs.clone(),
            self.last_obs.clone(), {k: v.clone() for k, v in self.agent_info.items()},
            [dict(e) for e in self.episodes],
        )


# ---- buffers ---------------------------------------------------------------------------------
def _space_spec(space: gym.Space) -> tuple[tuple[int, ...], np.dtype]:
    if isinstance(space, gym.spaces.Discrete):
        return (), np.dtype(np.int64)
    if isinstance(space, gym.spaces.Box):
        return tuple(space.shape), np.dtype(space.dtype)
    raise ValueError(f"unsupported space {space!r}: samplers handle Box and Discrete")


def _buffer_specs(env: gym.Env, T: int, B: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    obs_shape, obs_dtype = _space_spec(env.observation_space)
    act_shape, act_dtype = _space_spec(env.action_space)
    return {
        "obs": ((T + 1, B, *obs_shape), obs_dtype),  # row T is s_T (next batch's row 0)
        "final_obs": ((T, B, *obs_shape), obs_dtype),
        "action": ((T, B, *act_shape), act_dtype),
        "reward": ((T, B), np.dtype(np.float32)),
        "terminated": ((T, B), np.dtype(np.bool_)),
        "truncated": ((T, B), np.dtype(np.bool_)),
        "ep_return": ((T, B), np.dtype(np.float64)),
        "ep_length": ((T, B), np.dtype(np.int64)),
        "ep_done": ((T, B), np.dtype(np.bool_)),
    }


def _alloc_local(specs: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.zeros(shape, dtype) for k, (shape, dtype) in specs.items()}


def _alloc_shared(ctx: Any, specs: dict[str, Any]) -> dict[str, Any]:
    return {k: ctx.RawArray("b", max(1, int(np.prod(shape)) * dtype.itemsize))
            for k, (shape, dtype) in specs.items()}


def _view_shared(raw: dict[str, Any], specs: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for k, (shape, dtype) in specs.items():
        n = int(np.prod(shape))
        out[k] = np.frombuffer(raw[k], dtype=dtype, count=n).reshape(shape)
    return out


# ---- the collector: the env half of one step, shared by every sampler -------------------------
def _reset_envs(envs: Sequence[gym.Env], seeds: Sequence[int], obs_out: np.ndarray,
                decorrelation_steps: Sequence[int]) -> None:
    for i, (env, seed) in enumerate(zip(envs, seeds, strict=True)):
        obs, _ = env.reset(seed=int(seed))
        env.action_space.seed(int(seed))
        for _ in range(decorrelation_steps[i]):
            obs, _, term, trunc, _ = env.step(env.action_space.sample())
            if term or trunc:
                obs, _ = env.reset()
        obs_out[i] = obs


def _step_envs(envs: Sequence[gym.Env], actions: np.ndarray, out: dict[str, np.ndarray]) -> None:
    """Step each env once; same-step autoreset. ``out`` holds row views of length len(envs)."""
    for i, env in enumerate(envs):
        obs, reward, term, trunc, info = env.step(actions[i])
        out["reward"][i] = reward
        out["terminated"][i] = term
        out["truncated"][i] = trunc
        ep_done = False
        if term or trunc:
            out["final_obs"][i] = obs
            episode = info.get("episode")
            if episode is not None:
                out["ep_return"][i] = float(np.asarray(episode["r"]))
                out["ep_length"][i] = int(np.asarray(episode["l"]))
                ep_done = True
            obs, _ = env.reset()
        out["ep_done"][i] = ep_done
        out["next_obs"][i] = obs


def _row_views(bufs: dict[str, np.ndarray], t: int, sl: slice) -> dict[str, np.ndarray]:
    return {
        "reward": bufs["reward"][t, sl], "terminated": bufs["terminated"][t, sl],
        "truncated": bufs["truncated"][t, sl], "final_obs": bufs["final_obs"][t, sl],
        "ep_return": bufs["ep_return"][t, sl], "ep_length": bufs["ep_length"][t, sl],
        "ep_done": bufs["ep_done"][t, sl], "next_obs": bufs["obs"][t + 1, sl],
    }


# ---- the sampler interface -------------------------------------------------------------------
class Sampler:
    """Base class: seeds, buffers, the ``[T, B]`` batch and the master's inference half.

    Args:
        env_fn: picklable ``() -> gym.Env`` (e.g. :class:`adaptlearn.rl.envs.EnvFactory`).
        n_envs: ``B``, environments stepped per step.
        horizon: ``T``, steps per batch.
        seed: env ``i`` is reset with ``spawn_seeds(seed, n_envs)[i]`` (same for every sampler,
            so samplers give identical trajectories for the same agent and seed).
        decorrelation_steps: each env takes a seeded random number in ``[0, this]`` of random
            actions after its first reset (rlpyt ``max_decorrelation_steps``), 0 = off.
    """

    name = "base"

    def __init__(self, env_fn: EnvFn, n_envs: int, horizon: int, *, seed: int = 0,
                 decorrelation_steps: int = 0) -> None:
        owner = type(self).__name__
        self.env_fn = env_fn
        self.n_envs = check_int("n_envs", n_envs, 1, owner=owner)
        self.horizon = check_int("horizon", horizon, 1, owner=owner)
        self.seed = check_int("seed", seed, 0, owner=owner)
        self.decorrelation_steps = check_int("decorrelation_steps", decorrelation_steps, 0,
                                             owner=owner)
        self.env_seeds = spawn_seeds(seed, n_envs)
        rng = np.random.default_rng(seed)
        self._decor = [int(x) for x in rng.integers(0, decorrelation_steps + 1, size=n_envs)]
        self._bufs: dict[str, np.ndarray] = {}
        self._info: dict[str, torch.Tensor] = {}
        self._agent_takes_ids: dict[type, bool] = {}
        self._env_ids: dict[int, torch.Tensor] = {}  # env indices of a slice, by its start
        self._started = False
        self._closed = False
        self.observation_space: gym.Space | None = None
        self.action_space: gym.Space | None = None
        self.steps_taken = 0

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n_envs={self.n_envs}, horizon={self.horizon}, "
                f"seed={self.seed}{self._extra_repr()})")

    def _extra_repr(self) -> str:
        return ""

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: never leave workers behind
        with contextlib.suppress(Exception):
            self.close()

    # subclasses implement these three
    def _start(self, specs: dict[str, Any]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _sample_loop(self, agent: StepAgent) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop workers and close envs (idempotent)."""
        self._closed = True

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (none for in-process samplers)."""
        return []

    def _probe_spaces(self) -> dict[str, Any]:
        env = self.env_fn()
        self.observation_space, self.action_space = env.observation_space, env.action_space
        specs = _buffer_specs(env, self.horizon, self.n_envs)
        env.close()
        return specs

    def initialize(self) -> None:
        """Start workers, reset every env with its seed (called by the first ``obtain_samples``)."""
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
        if not self._started:
            self._bufs = self._start(self._probe_spaces())
            self._started = True

    def _act(self, agent: StepAgent, t: int, sl: slice) -> None:
        """The master's half of a step: one batched forward pass over envs ``sl`` at time ``t``."""
        obs = torch.from_numpy(self._bufs["obs"][t, sl])
        takes_ids = self._agent_takes_ids.get(type(agent))
        if takes_ids is None:  # inspect once per agent type: a signature costs ~0.1 ms
            takes_ids = self._agent_takes_ids[type(agent)] = _takes_env_ids(agent)
        ids = self._env_ids.get(sl.start)  # made once per slice, outside inference mode
        if takes_ids and (ids is None or len(ids) != sl.stop - sl.start):
            ids = self._env_ids[sl.start] = torch.arange(sl.start, sl.stop)
        with torch.inference_mode():
            if takes_ids:
                action, info = agent.step(obs, env_ids=ids)
            else:
                action, info = agent.step(obs)
        self._bufs["action"][t, sl] = action.cpu().numpy()
        for k, v in info.items():
            v = v.cpu()
            buf = self._info.get(k)
            if buf is None:
                buf = torch.zeros((self.horizon, self.n_envs, *v.shape[1:]), dtype=v.dtype)
                self._info[k] = buf
            buf[t, sl] = v

    def obtain_samples(self, agent: StepAgent) -> Samples:
        """Run ``horizon`` steps of all envs with ``agent``; return the ``[T, B]`` batch."""
        self.initialize()
        self._bufs["obs"][0] = self._bufs["obs"][self.horizon]
        self._sample_loop(agent)
        self.steps_taken += self.horizon * self.n_envs
        b = self._bufs
        t_idx, e_idx = np.nonzero(b["ep_done"])
        episodes = [{"return": float(b["ep_return"][t, e]), "length": int(b["ep_length"][t, e]),
                     "env": int(e), "t": int(t)} for t, e in zip(t_idx, e_idx, strict=True)]
        return Samples(
            obs=torch.from_numpy(b["obs"][:-1]), action=torch.from_numpy(b["action"]),
            reward=torch.from_numpy(b["reward"]), terminated=torch.from_numpy(b["terminated"]),
            truncated=torch.from_numpy(b["truncated"]), final_obs=torch.from_numpy(b["final_obs"]),
            last_obs=torch.from_numpy(b["obs"][-1]), agent_info=dict(self._info),
            episodes=episodes,
        )


class SerialSampler(Sampler):
    """All envs stepped in this process, one batched forward pass per step (the reference)."""

    name = "serial"

    def _start(self, specs: dict[str, Any]) -> dict[str, np.ndarray]:
        self._envs = [self.env_fn() for _ in range(self.n_envs)]
        bufs = _alloc_local(specs)
        _reset_envs(self._envs, self.env_seeds, bufs["obs"][self.horizon], self._decor)
        return bufs

    def _sample_loop(self, agent: StepAgent) -> None:
        everything = slice(0, self.n_envs)
        for t in range(self.horizon):
            self._act(agent, t, everything)
            _step_envs(self._envs, self._bufs["action"][t], _row_views(self._bufs, t, everything))

    def close(self) -> None:
        """Close the envs."""
        if self._started and not self._closed:
            for env in self._envs:
                env.close()
        super().close()


# ---- worker processes ------------------------------------------------------------------------
_CMD_STEP, _CMD_RESET, _CMD_CLOSE = 0, 1, 2


def _worker_main(index: int, env_fn: EnvFn, sl: tuple[int, int], seeds: list[int],
                 decor: list[int], raw: dict[str, Any], specs: dict[str, Any], ctrl: Any,
                 act_ready: Any, obs_ready: Any, errors: Any, parent_pid: int,
                 poll_s: float) -> None:
    """Loop of one worker process: wait for actions, step its envs, write into shared memory."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        bufs = _view_shared(raw, specs)
        lo, hi = sl
        local = slice(lo, hi)
        T = specs["reward"][0][0]
        envs = [env_fn() for _ in range(hi - lo)]
        while True:
            while not act_ready.acquire(timeout=poll_s):
                if not pid_alive(parent_pid):  # master gone: exit instead of lingering
                    return
            cmd, t = int(ctrl[2 * index]), int(ctrl[2 * index + 1])
            if cmd == _CMD_CLOSE:
                for env in envs:
                    env.close()
                obs_ready.release()
                return
            if cmd == _CMD_RESET:
                _reset_envs(envs, seeds, bufs["obs"][T, local], decor)
            else:
                _step_envs(envs, bufs["action"][t, local], _row_views(bufs, t, local))
            obs_ready.release()
    except BaseException:
        errors.put((index, traceback.format_exc()))
        raise


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


class ParallelSampler(Sampler):
    """Envs stepped in worker processes; shared-memory batch; one forward pass per step.

    Each of ``n_workers`` processes steps a contiguous group of ``n_envs / n_workers`` envs
    sequentially and writes straight into the shared ``[T, B]`` batch (Stooke & Abbeel 2018,
    section "Synchronized sampling"). Per step the master waits for every worker's
    "observations ready" semaphore, runs the agent once on all ``B`` observations, writes the
    actions and releases every worker's "actions ready" semaphore.

    Args:
        env_fn, n_envs, horizon, seed, decorrelation_steps: see :class:`Sampler`.
        n_workers: worker processes (default: ``min(n_envs, os.cpu_count())``).
        start_method: ``"forkserver"`` (default: safe with torch and Ray in the master),
            ``"spawn"`` or ``"fork"``.
        timeout_s: longest wait for one worker step before :class:`SamplerTimeoutError`.
        poll_s: how often a waiting master checks that workers are alive.
    """

    name = "parallel"
    n_groups = 1

    def __init__(self, env_fn: EnvFn, n_envs: int, horizon: int, *, seed: int = 0,
                 decorrelation_steps: int = 0, n_workers: int | None = None,
                 start_method: str = "forkserver", timeout_s: float = 60.0,
                 poll_s: float = 0.1) -> None:
        super().__init__(env_fn, n_envs, horizon, seed=seed,
                         decorrelation_steps=decorrelation_steps)
        owner = type(self).__name__
        if n_workers is None:
            n_workers = max(self.n_groups, min(n_envs, os.cpu_count() or 1))
            n_workers -= n_workers % self.n_groups
        self.n_workers = check_int("n_workers", n_workers, self.n_groups, n_envs, owner=owner)
        if self.n_workers % self.n_groups:
            raise ValueError(f"`n_workers` of {owner} must be a multiple of {self.n_groups}; "
                             f"got {n_workers}")
        self.start_method = check_choice("start_method", start_method,
                                         ("forkserver", "spawn", "fork"), owner=owner)
        self.timeout_s = check_range("timeout_s", timeout_s, 0.0, low_inclusive=False, owner=owner)
        self.poll_s = check_range("poll_s", poll_s, 0.0, low_inclusive=False, owner=owner)
        self.worker_slices = _split(n_envs, self.n_workers)
        per_group = self.n_workers // self.n_groups
        self.groups = [list(range(g * per_group, (g + 1) * per_group))
                       for g in range(self.n_groups)]
        self._procs: list[Any] = []

    def _extra_repr(self) -> str:
        return f", n_workers={self.n_workers}, start_method={self.start_method!r}"

    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes (empty before start and after close)."""
        return [p.pid for p in self._procs if p.pid is not None]

    def _start(self, specs: dict[str, Any]) -> dict[str, np.ndarray]:
        ctx = mp.get_context(self.start_method)
        if self.start_method == "forkserver":
            ctx.set_forkserver_preload(["adaptlearn.rl.envs"])
        raw = _alloc_shared(ctx, specs)
        self._ctrl = ctx.RawArray("q", 2 * self.n_workers)
        self._act_ready = [ctx.Semaphore(0) for _ in range(self.n_workers)]
        self._obs_ready = [ctx.Semaphore(0) for _ in range(self.n_workers)]
        self._errors = ctx.SimpleQueue()
        for w, (lo, hi) in enumerate(self.worker_slices):
            proc = ctx.Process(
                target=_worker_main, name=f"adaptlearn-sampler-{w}", daemon=True,
                args=(w, self.env_fn, (lo, hi), self.env_seeds[lo:hi], self._decor[lo:hi], raw,
                      specs, self._ctrl, self._act_ready[w], self._obs_ready[w], self._errors,
                      os.getpid(), self.poll_s),
            )
            proc.start()
            self._procs.append(proc)
        self._pending: set[int] = set()
        bufs = _view_shared(raw, specs)
        self._command(range(self.n_workers), _CMD_RESET, 0)
        self._wait(range(self.n_workers))
        return bufs

    def _command(self, workers: Sequence[int] | range, cmd: int, t: int) -> None:
        for w in workers:
            self._ctrl[2 * w], self._ctrl[2 * w + 1] = cmd, t
            self._pending.add(w)
            self._act_ready[w].release()

    def _wait(self, workers: Sequence[int] | range) -> None:
        """Wait for the workers' "observations ready"; raise if one died or is stuck."""
        for w in workers:
            if w not in self._pending:
                continue
            deadline = time.monotonic() + self.timeout_s
            while not self._obs_ready[w].acquire(timeout=self.poll_s):
                proc = self._procs[w]
                if not proc.is_alive():
                    self._fail(WorkerDiedError(
                        f"sampler worker {w} (pid {proc.pid}, envs "
                        f"{self.worker_slices[w][0]}..{self.worker_slices[w][1] - 1}) died with "
                        f"exit code {proc.exitcode}{self._worker_traceback()}"))
                if time.monotonic() > deadline:
                    self._fail(SamplerTimeoutError(
                        f"sampler worker {w} did not finish a step in {self.timeout_s:g} s"))
            self._pending.discard(w)

    def _worker_traceback(self) -> str:
        msgs = []
        while not self._errors.empty():
            w, tb = self._errors.get()
            msgs.append(f"\n--- worker {w} ---\n{tb}")
        return "".join(msgs)

    def _fail(self, err: Exception) -> None:
        self._terminate()
        raise err

    def _group_slice(self, g: int) -> slice:
        ws = self.groups[g]
        return slice(self.worker_slices[ws[0]][0], self.worker_slices[ws[-1]][1])

    def _sample_loop(self, agent: StepAgent) -> None:
        for t in range(self.horizon):
            for g, workers in enumerate(self.groups):
                self._wait(workers)  # obs[t] of this group is written
                self._act(agent, t, self._group_slice(g))
                self._command(workers, _CMD_STEP, t)
        self._wait(range(self.n_workers))

    def _terminate(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(timeout=5)
        self._procs = []
        self._closed = True

    def close(self) -> None:
        """Ask workers to exit, then terminate any that do not within a few seconds."""
        if self._started and not self._closed and self._procs:
            alive = [w for w, p in enumerate(self._procs) if p.is_alive()]
            try:
                self._pending.clear()
                self._command(alive, _CMD_CLOSE, 0)
                for w in alive:
                    self._procs[w].join(timeout=2.0)
            finally:
                self._terminate()
        super().close()


class AlternatingSampler(ParallelSampler):
    """Two groups of workers: one simulates while the master runs inference for the other.

    Per step: wait for group 0, act for group 0, release it; wait for group 1, act for group 1,
    release it (so group 0 steps while group 1's forward pass runs). This is the "overlap"
    variant of Stooke & Abbeel (2018) / rlpyt ``AlternatingSampler``: a group waits only for its
    own actions. Ideal gain up to 2x when env-step time equals inference time; none when one
    dominates (two half-size forward passes cost more than one). ``n_workers`` must be even.
    """

    name = "alternating"
    n_groups = 2


# ---- Ray -------------------------------------------------------------------------------------
class _EnvGroup:
    """Body of a Ray actor: a group of envs stepped together (same collector as the workers)."""

    def __init__(self, env_fn: EnvFn, seeds: list[int], decor: list[int],
                 specs: dict[str, Any]) -> None:
        os.environ["OMP_NUM_THREADS"] = "1"
        self.envs = [env_fn() for _ in seeds]
        self.seeds, self.decor = seeds, decor
        b = len(seeds)
        self.row = {k: np.zeros((b, *shape[2:]), dtype) for k, (shape, dtype) in specs.items()
                    if k not in ("obs", "action")}
        obs_shape, obs_dtype = specs["obs"]
        self.row["next_obs"] = np.zeros((b, *obs_shape[2:]), obs_dtype)

    def reset(self) -> np.ndarray:
        _reset_envs(self.envs, self.seeds, self.row["next_obs"], self.decor)
        return self.row["next_obs"].copy()

    def step(self, actions: np.ndarray) -> dict[str, np.ndarray]:
        _step_envs(self.envs, actions, self.row)
        return {k: v.copy() for k, v in self.row.items()}

    def pid(self) -> int:
        return os.getpid()


class RaySampler(Sampler):
    """Env groups stepped by Ray actors; one batched forward pass per step in the master.

    Args:
        env_fn, n_envs, horizon, seed, decorrelation_steps: see :class:`Sampler`.
        n_workers: Ray actors (each steps ``n_envs / n_workers`` envs).
        address: Ray cluster address (``"auto"``, ``"host:port"``); ``None`` starts (or
            reuses) a local instance with ``n_workers`` CPUs.
        timeout_s: longest wait for one step before :class:`SamplerTimeoutError`.

    A dead actor (``RayActorError``) is raised as :class:`WorkerDiedError`.
    """

    name = "ray"

    def __init__(self, env_fn: EnvFn, n_envs: int, horizon: int, *, seed: int = 0,
                 decorrelation_steps: int = 0, n_workers: int = 2, address: str | None = None,
                 timeout_s: float = 120.0) -> None:
        super().__init__(env_fn, n_envs, horizon, seed=seed,
                         decorrelation_steps=decorrelation_steps)
        self.n_workers = check_int("n_workers", n_workers, 1, n_envs, owner="RaySampler")
        self.address = address
        self.timeout_s = check_range("timeout_s", timeout_s, 0.0, low_inclusive=False,
                                     owner="RaySampler")
        self.worker_slices = _split(n_envs, self.n_workers)
        self._actors: list[Any] = []
        self._started_ray = False

    def _extra_repr(self) -> str:
        return f", n_workers={self.n_workers}, address={self.address!r}"

    def _get(self, refs: list[Any]) -> list[Any]:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            return ray.get(refs, timeout=self.timeout_s)
        except RayActorError as err:
            self.close()
            raise WorkerDiedError(f"a Ray sampler actor died: {err}") from err
        except GetTimeoutError as err:
            self.close()
            raise SamplerTimeoutError(f"Ray sampler step took over {self.timeout_s:g} s") from err

    def _start(self, specs: dict[str, Any]) -> dict[str, np.ndarray]:
        import ray

        if not ray.is_initialized():
            from pathlib import Path

            src = str(Path(__file__).resolve().parents[2])
            kwargs: dict[str, Any] = {
                "include_dashboard": False, "log_to_driver": False,
                "runtime_env": {"env_vars": {
                    "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}},
            }
            if self.address is None:
                kwargs["num_cpus"] = self.n_workers
            else:
                kwargs["address"] = self.address
            ray.init(**kwargs)
            self._started_ray = True
        actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_EnvGroup)
        self._actors = [actor_cls.remote(self.env_fn, self.env_seeds[lo:hi], self._decor[lo:hi],
                                         specs) for lo, hi in self.worker_slices]
        bufs = _alloc_local(specs)
        for (lo, hi), obs in zip(self.worker_slices,
                                 self._get([a.reset.remote() for a in self._actors]), strict=True):
            bufs["obs"][self.horizon, lo:hi] = obs
        return bufs

    def actor_pids(self) -> list[int]:
        """Process ids of the actors (for tests and monitoring)."""
        return list(self._get([a.pid.remote() for a in self._actors]))

    def worker_pids(self) -> list[int]:
        """Process ids of the actors (local Ray instance only: remote pids are not ours)."""
        if not self._actors or self.address is not None:
            return []
        if not hasattr(self, "_pids"):
            self._pids = self.actor_pids()
        return self._pids

    def _sample_loop(self, agent: StepAgent) -> None:
        everything = slice(0, self.n_envs)
        for t in range(self.horizon):
            self._act(agent, t, everything)
            acts = self._bufs["action"][t]
            refs = [a.step.remote(acts[lo:hi]) for a, (lo, hi) in
                    zip(self._actors, self.worker_slices, strict=True)]
            for (lo, hi), row in zip(self.worker_slices, self._get(refs), strict=True):
                views = _row_views(self._bufs, t, slice(lo, hi))
                for k, v in row.items():
                    views[k][...] = v

    def close(self) -> None:
        """Kill the actors; shut Ray down if this sampler started it."""
        if self._actors or self._started_ray:
            import ray

            for a in self._actors:
                with contextlib.suppress(Exception):
                    ray.kill(a)
            self._actors = []
            self.__dict__.pop("_pids", None)
            if self._started_ray and ray.is_initialized():
                ray.shutdown()
            self._started_ray = False
        super().close()


SAMPLERS: dict[str, type[Sampler]] = {
    "serial": SerialSampler, "parallel": ParallelSampler, "alternating": AlternatingSampler,
    "ray": RaySampler,
}


def make_sampler(kind: str, env_fn: EnvFn, n_envs: int, horizon: int, **kwargs: Any) -> Sampler:
    """``make_sampler("parallel", EnvFactory("ALE/Pong-v5"), 16, 5, seed=0)``."""
    check_choice("kind", kind, tuple(SAMPLERS), owner="make_sampler")
    return SAMPLERS[kind](env_fn, n_envs, horizon, **kwargs)

