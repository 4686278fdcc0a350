"""Trials (methods x seeds x hyperparameters) run through one interface with three backends.

A *trial function* is a module-level function ``fn(trial, config, tctx) -> dict`` returning::

    {"final": {"metric": float, ...},          # final metrics of this trial
     "curve": [{"step": 0, "loss": 1.2}, ...],  # optional rows for metrics.csv
     "extra": {...}}                             # optional JSON-able data

It must take all of its randomness from ``trial.seed`` (the executor also seeds the global RNGs
with it), so that the ``local``, ``process`` and ``ray`` backends give the same results.
Completed trials are cached as JSON in the run folder, and a trial function may checkpoint its
own state through ``tctx`` so that a resumed run continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptlearn.core.io import atomic_write_json, load_checkpoint, save_checkpoint
from adaptlearn.core.seeding import pin_threads, seed_everything
from adaptlearn.core.stats import json_safe

__all__ = [
    "BACKENDS",
    "Trial",
    "TrialContext",
    "TrialFailedError",
    "TrialResult",
    "make_trials",
    "run_trials",
]

log = logging.getLogger(__name__)

BACKENDS = ("local", "process", "ray")


@dataclass(frozen=True)
class Trial:
    """One unit of work: a method, a seed and hyperparameters (sorted ``(name, value)`` pairs)."""

    method: str
    seed: int
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        """File-safe unique name, e.g. ``adamod-lr=0.01-seed3``."""
        parts = [self.method] + [f"{k}={v}" for k, v in self.params] + [f"seed{self.seed}"]
        return re.sub(r"[^A-Za-z0-9_.=+-]", "_", "-".join(parts))

    def param(self, name: str, default: Any = None) -> Any:
        """Value of hyperparameter ``name`` (or ``default``)."""
        return dict(self.params).get(name, default)

    def as_dict(self) -> dict[str, Any]:
        """Method, seed and params flattened into one dict (for metric rows)."""
        return {"method": self.method, "seed": self.seed, **dict(self.params)}


def make_trials(methods: Sequence[str], seeds: Sequence[int], **grid: Sequence[Any]) -> list[Trial]:
    """Cartesian product of methods x hyperparameter grid x seeds."""
    import itertools

    names = sorted(grid)
    combos = list(itertools.product(*(grid[n] for n in names))) if names else [()]
    return [
        Trial(method=m, seed=int(s), params=tuple(zip(names, combo, strict=True)))
        for m in methods
        for combo in combos
        for s in seeds
    ]


@dataclass
class TrialResult:
    """What a trial produced, plus its wall-clock and CPU seconds."""

    trial: Trial
    final: dict[str, float | None]
    curve: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (used for the per-trial cache)."""
        return {
            "trial": {
                "method": self.trial.method,
                "seed": self.trial.seed,
                "params": [list(p) for p in self.trial.params],
            },
            "final": self.final,
            "curve": self.curve,
            "extra": self.extra,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialResult:
        """Inverse of :meth:`to_json`."""
        t = data["trial"]
        trial = Trial(t["method"], int(t["seed"]), tuple((k, v) for k, v in t["params"]))
        return cls(
            trial, data["final"], data["curve"], data["extra"], data["wall_s"], data["cpu_s"]
        )


class TrialFailedError(RuntimeError):
    """A trial raised; the message names the trial and the original error."""


@dataclass(frozen=True)
class TrialContext:
    """What a trial function gets besides its trial and config: checkpoints, progress, device.

    Attributes:
        trial: the trial being run.
        checkpoint_dir: folder for this run's checkpoints (``None``: checkpointing disabled).
        resume: whether to load an existing checkpoint.
        show_progress: whether progress bars may be shown.
        device: torch device string chosen for the run (``"cpu"`` or ``"cuda"``).
        threads: torch/BLAS threads this trial may use.
    """

    trial: Trial
    checkpoint_dir: str | None = None
    resume: bool = False
    show_progress: bool = False
    device: str = "cpu"
    threads: int = 1
    config_hash: str = ""

    @property
    def checkpoint_path(self) -> Path | None:
        """Path of this trial's checkpoint file, or ``None``."""
        if self.checkpoint_dir is None:
            return None
        return Path(self.checkpoint_dir) / f"{self.trial.key}.pt"

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint of this trial when resuming, else ``None``.

        A checkpoint that cannot be read, or that belongs to another trial or config, is
        reported (logged and counted in the trial's ``extra["checkpoint_rejected"]``) and
        the trial restarts from scratch; it is never silently reused.
        """
        path = self.checkpoint_path
        if not self.resume or path is None or not path.exists():
            return None
        try:
            state = load_checkpoint(path)
        except Exception as err:  # truncated or foreign file: torch raises many kinds
            self._reject(path, f"unreadable ({type(err).__name__}: {err})")
            return None
        key, chash = state.pop(_CKPT_KEY, None), state.pop(_CKPT_CONFIG, None)
        if key != self.trial.key or (self.config_hash and chash != self.config_hash):
            self._reject(
                path, f"written by trial {key!r} / config {chash!r}, not {self.trial.key!r} / "
                f"{self.config_hash!r}"
            )
            return None
        log.info("resuming trial %s from %s", self.trial.key, path)
        _RESUMED[self.trial.key] = str(path)
        return state

    def _reject(self, path: Path, why: str) -> None:
        log.warning("checkpoint %s %s; trial %s restarts from scratch", path, why, self.trial.key)
        _REJECTED[self.trial.key] = f"{path}: {why}"

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Atomically save ``state`` as this trial's checkpoint (no-op if disabled)."""
        path = self.checkpoint_path
        if path is not None:
            save_checkpoint(
                path, {**state, _CKPT_KEY: self.trial.key, _CKPT_CONFIG: self.config_hash}
            )

    def progress(self, iterable: Any = None, **kwargs: Any) -> Any:
        """A progress bar for this trial (off in workers and with ``--quiet``)."""
        from adaptlearn.core.progress import progress

        kwargs.setdefault("desc", self.trial.key)
        kwargs.setdefault("leave", False)
        if not self.show_progress:
            kwargs["disable"] = True
        return progress(iterable, **kwargs)


TrialFn = Callable[[Trial, Any, TrialContext], dict[str, Any]]

_CKPT_KEY = "_adaptlearn_trial_key"
_CKPT_CONFIG = "_adaptlearn_config_hash"
# Per process: which trials resumed from a checkpoint, or had one rejected (see _execute).
_RESUMED: dict[str, str] = {}
_REJECTED: dict[str, str] = {}


def _execute(fn: TrialFn, trial: Trial, config: Any, tctx: TrialContext) -> dict[str, Any]:
    """Run one trial in the current process: pin threads, seed, time, check the return value."""
    from adaptlearn.core.environment import git_commit

    pin_threads(tctx.threads)
    seed_everything(trial.seed)
    _RESUMED.pop(trial.key, None)
    _REJECTED.pop(trial.key, None)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        out = fn(trial, config, tctx)
    except Exception as err:
        raise TrialFailedError(f"trial {trial.key} failed: {type(err).__name__}: {err}") from err
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if not isinstance(out, dict) or "final" not in out:
        raise TrialFailedError(f"trial function for {trial.key} must return a dict with 'final'")
    result = TrialResult(
        trial=trial,
        final={k: None if v is None else float(v) for k, v in out["final"].items()},
        curve=list(out.get("curve", [])),
        extra=dict(out.get("extra", {})),
        wall_s=wall,
        cpu_s=cpu,
    )
    if trial.key in _RESUMED:
        result.extra["resumed_from_checkpoint"] = True
    if trial.key in _REJECTED:
        result.extra["checkpoint_rejected"] = _REJECTED[trial.key]
    data = result.to_json()
    data["key"] = trial.key
    data["config_hash"] = tctx.config_hash
    data["git_commit"] = git_commit()
    # Round-trip through strict JSON so every backend returns exactly what the cache would
    # (a non-finite metric becomes None everywhere, and is flagged by the summaries).
    return json.loads(json.dumps(json_safe(data), default=float, allow_nan=False))


def run_trials(
    fn: TrialFn,
    trials: Sequence[Trial],
    config: Any,
    *,
    backend: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    show_progress: bool = False,
    device: str = "cpu",
    threads: int = 1,
) -> list[TrialResult]:
    """Run ``trials`` with ``fn`` on ``backend`` and return results in the order of ``trials``.

    Args:
        fn: module-level trial function (it is pickled for ``process`` and ``ray``).
        trials: the trials; keys must be unique.
        config: the experiment config passed to every trial.
        backend: ``"local"`` (in this process, one after another), ``"process"`` (a pool of
            ``workers`` processes) or ``"ray"`` (Ray tasks; a local Ray instance when
            ``ray_address`` is ``None``).
        workers: processes for ``process``; CPUs for a local Ray instance.
        ray_address: address of an existing Ray cluster (``"auto"`` or ``"host:port"``).
        cache_dir: folder of per-trial JSON results; cached trials are not run again.
        checkpoint_dir: folder for trial checkpoints (see :class:`TrialContext`).
        resume: load cached results and checkpoints.
        show_progress: allow progress bars (local backend only).
        device: torch device string passed to trial functions.
        threads: torch/BLAS threads per trial.

    A failed trial raises :class:`TrialFailedError` once the trials already running have
    finished (their results are kept; with ``process`` no further trial starts). Ctrl-C stops
    at once (``process``: queued trials cancelled, workers killed); checkpoints and the cache
    let ``resume`` continue either run.
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}; got {backend!r}")
    if workers < 1:
        raise ValueError(f"`workers` must be an int in [1, inf); got {workers!r}")
    keys = [t.key for t in trials]
    if len(set(keys)) != len(keys):
        raise ValueError("trial keys must be unique (same method, seed and params twice?)")

    from adaptlearn.core.config import config_hash as hash_of

    chash = hash_of(config) if dataclasses.is_dataclass(config) else ""
    results: dict[str, TrialResult] = {}
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None and resume:
        for t in trials:
            path = cache / f"{t.key}.json"
            if path.exists():
                cached = _load_cached(path, t, chash)
                if cached is not None:
                    results[t.key] = cached
                    log.info("trial %s loaded from cache", t.key)
    todo = [t for t in trials if t.key not in results]
    ckpt = str(checkpoint_dir) if checkpoint_dir is not None else None

    def contexts(local: bool) -> Iterator[tuple[Trial, TrialContext]]:
        for t in todo:
            yield t, TrialContext(
                t, ckpt, resume, show_progress and local, device, threads, chash
            )

    def store(data: dict[str, Any]) -> None:
        res = TrialResult.from_json(data)
        results[res.trial.key] = res
        if cache is not None:
            atomic_write_json(cache / f"{res.trial.key}.json", data)

    if backend == "local" or not todo:
        from adaptlearn.core.progress import progress

        bar = progress(total=len(todo), desc="trials", disable=None if show_progress else True)
        for t, tctx in contexts(local=True):
            store(_execute(fn, t, config, tctx))
            bar.update(1)
        bar.close()
    elif backend == "process":
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from adaptlearn.core.progress import progress

        ctx = mp.get_context("spawn")
        bar = progress(total=len(todo), desc="trials", disable=None if show_progress else True)
        pool = ProcessPoolExecutor(
            max_workers=min(workers, len(todo)), mp_context=ctx, initializer=_die_with_parent
        )
        failure: Exception | None = None
        try:
            futures = [pool.submit(_execute, fn, t, config, c) for t, c in contexts(local=False)]
            for fut in as_completed(futures):
                if fut.cancelled():
                    continue
                try:
                    result = fut.result()
                except Exception as err:  # a failed trial: start no more, keep the running ones
                    if failure is None:
                        failure = err
                        for other in futures:
                            other.cancel()
                    continue
                store(result)
                bar.update(1)
        except BaseException:
            # Ctrl-C: stop now. Leaving the pool normally would wait for every running trial and
            # then run the queued ones; their checkpoints make them resumable.
            _stop_pool(pool)
            raise
        finally:
            bar.close()
        pool.shutdown(wait=True)
        if failure is not None:
            raise failure
    else:
        _run_ray(fn, list(contexts(local=False)), config, workers, ray_address, store)
    return [results[k] for k in keys]


def _load_cached(path: Path, trial: Trial, chash: str) -> TrialResult | None:
    """A cached trial result, or None (logged, naming the file) when it is unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key", trial.key) != trial.key:
            raise ValueError(f"it holds trial {data.get('key')!r}")
        if chash and data.get("config_hash", chash) != chash:
            raise ValueError(f"it was written for config {data.get('config_hash')!r}")
        result = TrialResult.from_json(data)
        if result.trial.key != trial.key:
            raise ValueError(f"it holds trial {result.trial.key!r}")
        return result
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        log.warning("trial cache %s unusable (%s: %s); the trial runs again", path,
                    type(err).__name__, err)
        return None


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Raise ValueError when a ``host:port`` Ray address does not answer within ``timeout_s``."""
    import socket

    if address == "auto" or (address.startswith("ray://") and ":" not in address[6:]):
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        raise ValueError(f"--address must be 'auto' or HOST:PORT; got {address!r}") from None
    try:
        with socket.create_connection((host or "127.0.0.1", port_n), timeout=timeout_s):
            pass
    except OSError as err:
        raise ValueError(
            f"Ray address {address!r} did not answer within {timeout_s:g} s ({err})"
        ) from None


def _stop_pool(pool: Any) -> None:
    """Cancel a process pool's queued trials and kill its workers at once (on Ctrl-C)."""
    kill = getattr(pool, "kill_workers", None)  # Python >= 3.14: also cancels the queue
    if kill is not None:
        kill()
        return
    procs = list((getattr(pool, "_processes", None) or {}).values())  # before shutdown drops it
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
    for proc in procs:
        proc.join(timeout=5)


def _die_with_parent() -> None:
    """Worker initializer: ask Linux to end this process when its parent dies."""
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:
        pass
    if os.getppid() == 1:  # the parent died before the call above
        os._exit(1)


def _run_ray(
    fn: TrialFn,
    items: list[tuple[Trial, TrialContext]],
    config: Any,
    workers: int,
    address: str | None,
    store: Callable[[dict[str, Any]], None],
) -> None:
    try:
        import ray
    except ImportError as err:
        raise ImportError(
            "backend 'ray' needs the optional dependency ray: pip install 'adaptlearn[distributed]'"
        ) from err
    started_here = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None:
            kwargs["num_cpus"] = workers
        else:
            _check_reachable(address)
            kwargs["address"] = address
        # Workers must import adaptlearn from the same source tree as the driver.
        src = str(Path(__file__).resolve().parents[2])
        kwargs["runtime_env"] = {
            "env_vars": {"PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
        }
        ray.init(**kwargs)
        started_here = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_execute)
        pending = {remote.remote(fn, t, config, c): t for t, c in items}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                pending.pop(ref)
                store(ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()


def trial_config_fields(config: Any) -> dict[str, Any]:
    """Config as a dict (helper for trial functions that log their settings)."""
    return dataclasses.asdict(config)
