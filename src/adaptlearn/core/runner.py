"""Running an experiment: the run folder, the :class:`RunContext` and the results contract.

A run writes into ``<out>/<name>/<UTC timestamp>-<config hash>.partial/`` and renames the folder
to drop ``.partial`` once everything is written, so a finished run folder is always complete.
Every file inside is itself written atomically. ``--resume`` picks the newest ``.partial`` folder
of the same experiment and config and continues it: finished trials come from their JSON cache,
unfinished ones from their last checkpoint.

The folder holds ``config.json``, ``environment.json`` (versions, machine, git commit),
``results.json`` (per method and metric: mean, interval and its kind, n, values; the claim and
the verdict of :mod:`adaptlearn.core.verdict`), ``metrics.csv`` (curves), ``figures/*.png``,
``report.md`` and ``run.log``. One process writes a run folder at a time (``.lock``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adaptlearn.core.config import config_hash, config_to_dict
from adaptlearn.core.environment import describe_environment
from adaptlearn.core.io import atomic_write_csv, atomic_write_json, atomic_write_text
from adaptlearn.core.registry import Experiment
from adaptlearn.core.seeding import Rngs, seed_everything
from adaptlearn.core.stats import json_safe, summarize
from adaptlearn.core.trials import (
    Trial,
    TrialFailedError,
    TrialFn,
    TrialResult,
    make_trials,
    run_trials,
)
from adaptlearn.core.verdict import Claim, Precondition, Verdict, judge, rows_from_trials

__all__ = [
    "RunContext",
    "RunError",
    "RunFailedError",
    "RunInterrupted",
    "RunLock",
    "RunOptions",
    "find_resumable",
    "pid_alive",
    "run_experiment",
]

log = logging.getLogger(__name__)

PARTIAL = ".partial"
#: Largest seed (NumPy and torch seeds are 32-bit here).
MAX_SEED = 2**32 - 1
#: Version of the ``results.json`` layout; the report skips (and lists) older files.
RESULTS_VERSION = 2


class RunOptions:
    """How to run: seed, backend, device, resume, progress (the CLI's flags).

    ``backend="auto"`` runs trials in ``workers`` processes (default: every CPU this process may
    use) when the experiment allows it (``parallel_trials``), else in this process.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        out: str | os.PathLike[str] = "runs",
        preset: str = "quick",
        backend: str = "auto",
        workers: int | None = None,
        ray_address: str | None = None,
        device: str = "auto",
        resume: bool | str = False,
        quiet: bool = False,
        threads: int = 1,
        command: str | None = None,
    ) -> None:
        self.seed = seed
        self.out = Path(out)
        self.preset = preset
        self.backend = backend
        self.workers = workers if workers is not None else default_workers()
        self.ray_address = ray_address
        self.device = device
        self.resume = resume
        self.quiet = quiet
        self.threads = threads
        self.command = command


def default_workers() -> int:
    """Worker processes for ``--backend auto``: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when available, else ``"cpu"``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"`device` must be one of 'auto', 'cpu', 'cuda[:N]'; got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"`device` {device!r} requested but CUDA is not available")
    return device


class RunContext:
    """Everything an experiment's ``run(config, ctx)`` writes its results through.

    Typical use::

        results = ctx.run_trials(train_one, ctx.make_trials(["adam", "adamod"]))
        ctx.add_trial_results(results, higher_is_better={"test_acc": True, "loss": False})
        fig, ax = new_figure(); plot_curves(ax, ctx.metrics, "step", "loss")
        ctx.save_figure(fig, "loss")
        ctx.set_verdict(verdict_of(ctx.rows, preset=ctx.preset))  # a pure function of the rows
    """

    def __init__(
        self, experiment: Experiment, config: Any, run_dir: Path, options: RunOptions
    ) -> None:
        self.experiment = experiment
        self.config = config
        self.run_dir = run_dir
        self.options = options
        self.seed = options.seed
        self.device = resolve_device(options.device)
        self.rngs: Rngs = seed_everything(options.seed)
        self.metrics: list[dict[str, Any]] = []
        self._values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self._censored: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
        #: One row per trial (method, seed, params, final metrics): what verdicts are judged on.
        self.rows: list[dict[str, Any]] = []
        self._direction: dict[str, bool | None] = {}
        self._sections: list[tuple[str, str]] = []
        self._figures: list[str] = []
        self._extra: dict[str, Any] = {}
        self._trial_flags: dict[str, dict[str, Any]] = {}
        self.verdict: Verdict | None = None
        self.our_verdicts: list[Verdict] = []
        self.timing: dict[str, dict[str, float]] = defaultdict(
            lambda: {"wall_s": 0.0, "cpu_s": 0.0}
        )

    # --- trials -----------------------------------------------------------------------------
    @property
    def preset(self) -> str:
        """The preset this run was started with (``tiny`` runs are wiring checks only)."""
        return self.options.preset

    @property
    def seeds(self) -> list[int]:
        """Seeds of this run: ``seed, seed+1, ...`` for the config's ``n_seeds`` (default 1)."""
        n = int(getattr(self.config, "n_seeds", 1))
        return [self.seed + i for i in range(n)]

    def make_trials(self, methods: Sequence[str], **grid: Sequence[Any]) -> list[Trial]:
        """Trials for ``methods`` x ``grid`` x :attr:`seeds`."""
        return make_trials(methods, self.seeds, **grid)

    def run_trials(self, fn: TrialFn, trials: Sequence[Trial]) -> list[TrialResult]:
        """Run trials with the backend chosen on the command line (cached and resumable)."""
        o = self.options
        backend = o.backend
        if backend == "auto":
            # Side by side only where the verdict does not rest on wall-clock timings; the
            # results are identical across backends (each trial seeds itself).
            parallel = self.experiment.parallel_trials and o.workers > 1 and len(trials) > 1
            backend = "process" if parallel else "local"
        return run_trials(
            fn,
            trials,
            self.config,
            backend=backend,
            workers=o.workers,
            ray_address=o.ray_address,
            cache_dir=self.run_dir / "trials",
            checkpoint_dir=self.run_dir / "checkpoints",
            resume=bool(o.resume),
            show_progress=not o.quiet,
            device=self.device,
            threads=o.threads,
        )

    # --- recording results ------------------------------------------------------------------
    def log(self, **row: Any) -> None:
        """Append one row to ``metrics.csv`` (e.g. ``method=, seed=, step=, loss=``)."""
        self.metrics.append(row)

    def add_result(
        self,
        method: str,
        metric: str,
        value: float | None,
        *,
        higher_is_better: bool | None = None,
        censored: bool = False,
    ) -> None:
        """Record one value (typically one seed) of ``metric`` for ``method``.

        ``censored=True`` marks a lower bound (a run that never reached its target, recorded at
        the budget): the report shows it as ``>= value`` and leaves it out of the mean.
        """
        self._values[method][metric].append(None if value is None else float(value))
        self._censored[method][metric].append(bool(censored))
        if higher_is_better is not None or metric not in self._direction:
            self._direction[metric] = higher_is_better

    def add_trial_results(
        self,
        results: Sequence[TrialResult],
        *,
        higher_is_better: dict[str, bool] | None = None,
        label: str = "method",
        censored: Callable[[TrialResult, str], bool] | None = None,
    ) -> None:
        """Record every trial's final metrics, curves (into ``metrics.csv``) and timing.

        Args:
            results: from :meth:`run_trials`.
            higher_is_better: direction per metric (shown in the results table).
            label: ``"method"`` groups by method name; ``"method+params"`` adds the params.
            censored: ``censored(result, metric)`` is True where the value is only a bound (e.g.
                steps to solve of a run that never solved: the budget).
        """
        directions = higher_is_better or {}
        self.rows.extend(rows_from_trials(results))
        for r in results:
            flags = {
                k: r.extra[k]
                for k in ("resumed_from_checkpoint", "checkpoint_rejected")
                if k in r.extra
            }
            if flags:
                self._trial_flags[r.trial.key] = flags
            name = r.trial.method
            if label == "method+params" and r.trial.params:
                name += "(" + ",".join(f"{k}={v}" for k, v in r.trial.params) + ")"
            for metric, value in r.final.items():
                self.add_result(
                    name,
                    metric,
                    value,
                    higher_is_better=directions.get(metric),
                    censored=bool(censored(r, metric)) if censored is not None else False,
                )
            for row in r.curve:
                self.metrics.append({**r.trial.as_dict(), **row})
            self.timing[name]["wall_s"] += r.wall_s
            self.timing[name]["cpu_s"] += r.cpu_s

    def save_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as ``figures/<name>.png``."""
        from adaptlearn.core.plotting import save_figure

        path = save_figure(fig, self.run_dir / "figures" / f"{name}.png")
        self._figures.append(f"figures/{name}.png")
        return path

    def add_section(self, title: str, markdown: str) -> None:
        """Add a free-form Markdown section to ``report.md``."""
        self._sections.append((title, markdown))

    def note(self, key: str, value: Any) -> None:
        """Store extra JSON-able data under ``results.json["extra"][key]``."""
        self._extra[key] = value

    def judge(
        self,
        claim: Claim,
        rows: Sequence[dict[str, Any]] | None = None,
        *,
        preconditions: Sequence[Precondition] = (),
        detail: str = "",
    ) -> Verdict:
        """Judge ``claim`` on ``rows`` (default :attr:`rows`) at this run's preset.

        Does not record the verdict; pass it to :meth:`set_verdict`.
        """
        return judge(
            claim,
            self.rows if rows is None else rows,
            preconditions=preconditions,
            preset=self.preset,
            ours=claim.source != "paper",
            detail=detail,
        )

    def set_verdict(self, verdict: Verdict) -> None:
        """Record the verdict on the paper's claim (once), or one of our own (``ours=True``)."""
        if not isinstance(verdict, Verdict):
            raise TypeError(f"`verdict` must be a Verdict; got {type(verdict).__name__}")
        if verdict.ours:
            self.our_verdicts.append(verdict)
            return
        if self.verdict is not None:
            raise ValueError("the paper's verdict of this run was already set")
        self.verdict = verdict

    def mean(self, method: str, metric: str) -> float:
        """Mean of the values recorded for ``method`` and ``metric`` (nan if none)."""
        import math

        vals = self._values.get(method, {}).get(metric, [])
        if not vals or any(v is None for v in vals):
            return math.nan
        return sum(vals) / len(vals)

    # --- output -----------------------------------------------------------------------------
    def results(self) -> dict[str, Any]:
        """The ``results.json`` document."""
        methods = {
            m: {
                metric: summarize(vals, censored=self._censored[m][metric])
                for metric, vals in metrics.items()
            }
            for m, metrics in self._values.items()
        }
        for m, t in self.timing.items():
            if m in methods:
                methods[m]["_timing"] = dict(t)  # type: ignore[assignment]
        exp = self.experiment
        return json_safe({
            "results_version": RESULTS_VERSION,
            "experiment": exp.name,
            "family": exp.family,
            "paper": exp.paper,
            "claim": exp.claim,
            "preset": self.options.preset,
            "seed": self.seed,
            "seeds": self.seeds,
            "device": self.device,
            "higher_is_better": self._direction,
            "methods": methods,
            "verdict": None if self.verdict is None else self.verdict.as_dict(),
            "our_verdicts": [v.as_dict() for v in self.our_verdicts],
            "supported": None if self.verdict is None else self.verdict.supported,
            "figures": self._figures,
            "sections": [{"title": t, "markdown": md} for t, md in self._sections],
            "extra": self._extra,
            # trials that resumed from a checkpoint (not bit-exact for every family: see the
            # method cards) or whose checkpoint was rejected and restarted from scratch
            "trial_flags": self._trial_flags,
            "command": self.options.command,
        })


class RunError(ValueError):
    """A run that cannot start or finish for a reason the user can fix (exit code 2)."""


def _read_config_json(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"{path}: unreadable ({type(err).__name__}: {err})") from None
    return data if isinstance(data, dict) else None


def find_resumable(out: Path, name: str, chash: str, seed: int | None = None) -> Path | None:
    """Newest unfinished run folder of experiment ``name`` with config hash ``chash`` and seed.

    A folder whose ``config.json`` names another seed (or cannot be read) is never picked.
    """
    parent = out / name
    if not parent.is_dir():
        return None
    candidates = sorted(p for p in parent.iterdir() if p.name.endswith(f"-{chash}{PARTIAL}"))
    for cand in reversed(candidates):
        try:
            cfg = _read_config_json(cand)
        except RunError:
            continue
        if cfg is None or cfg.get("config_hash") != chash:
            continue
        if seed is not None and cfg.get("seed") != seed:
            continue
        return cand
    return None


def _check_resume_folder(run_dir: Path, name: str, chash: str, seed: int) -> None:
    """Refuse ``--resume RUN_DIR`` unless it is an unfinished run of this config and seed."""
    if not run_dir.is_dir():
        raise RunError(f"--resume folder {run_dir} does not exist")
    if not run_dir.name.endswith(PARTIAL):
        raise RunError(f"--resume folder {run_dir} is a finished run; nothing to resume")
    cfg = _read_config_json(run_dir)
    if cfg is None:
        raise RunError(f"--resume folder {run_dir} has no config.json; not a run folder")
    if cfg.get("experiment") != name:
        raise RunError(
            f"--resume folder {run_dir} is a run of {cfg.get('experiment')!r}, not {name!r}"
        )
    if cfg.get("config_hash") != chash:
        raise RunError(
            f"--resume folder {run_dir} has config {cfg.get('config_hash')}, this command "
            f"{chash}: use the same preset and --set values as the run being resumed"
        )
    if cfg.get("seed") != seed:
        raise RunError(f"--resume folder {run_dir} has seed {cfg.get('seed')}, not {seed}")


class RunFailedError(RuntimeError):
    """A trial failed; the message is one line naming the trial, the log and how to resume."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``run_dir`` is the folder to resume."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


class RunLock:
    """One writer per run folder: ``.lock`` holds the writer's pid (stale locks are taken over)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self._held = False

    def acquire(self) -> None:
        """Take the lock or raise :class:`RunError` naming the process that holds it."""
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = self._holder()
                if pid is not None and pid_alive(pid):
                    raise RunError(
                        f"run folder {self.path.parent} is being written by process {pid} "
                        f"(lock {self.path}); wait for it or stop it"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its writer died
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            self._held = True
            return
        raise RunError(f"could not take the lock {self.path}")

    def _holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        """Remove the lock file (only if this process holds it)."""
        if self._held and self._holder() == os.getpid():
            self.path.unlink(missing_ok=True)
        self._held = False


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a process of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_experiment(experiment: Experiment, config: Any, options: RunOptions) -> Path:
    """Run ``experiment`` with ``config``; return the finished run folder.

    Everything that can be refused (device, seed, resume folder, output folder) is checked before
    any folder is created. Raises :class:`RunError` for those.
    """
    chash = config_hash(config)
    if not 0 <= options.seed <= MAX_SEED:
        raise RunError(f"--seed must be an int in [0, {MAX_SEED}]; got {options.seed}")
    try:
        resolve_device(options.device)
    except ValueError as err:
        raise RunError(str(err)) from None
    if options.out.exists() and not options.out.is_dir():
        raise RunError(f"--out {options.out} exists and is not a folder")
    run_dir: Path | None = None
    resumed = False
    if options.resume:
        if isinstance(options.resume, str):
            run_dir = Path(options.resume)
            _check_resume_folder(run_dir, experiment.name, chash, options.seed)
        else:
            run_dir = find_resumable(options.out, experiment.name, chash, options.seed)
        if run_dir is None:
            log.warning(
                "nothing to resume for %s (config %s, seed %s); starting anew",
                experiment.name, chash, options.seed,
            )
        else:
            resumed = True
            log.info("resuming %s", run_dir)
    if run_dir is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        run_dir = options.out / experiment.name / f"{stamp}-{chash}{PARTIAL}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create run folder {run_dir}: {err.strerror or err}") from None
    lock = RunLock(run_dir)
    lock.acquire()
    handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    pkg_log = logging.getLogger("adaptlearn")
    pkg_log.addHandler(handler)
    try:
        return _run_locked(experiment, config, options, run_dir, chash, resumed, lock)
    except TrialFailedError as err:
        log.error("run failed", exc_info=True)
        raise RunFailedError(
            f"{err} (traceback in {run_dir / 'run.log'}; continue with --resume {run_dir})"
        ) from err
    except KeyboardInterrupt:
        log.warning("interrupted; resume with --resume %s", run_dir)
        raise RunInterrupted(run_dir) from None
    finally:
        pkg_log.removeHandler(handler)
        handler.close()
        lock.release()


def _run_locked(
    experiment: Experiment,
    config: Any,
    options: RunOptions,
    run_dir: Path,
    chash: str,
    resumed: bool,
    lock: RunLock,
) -> Path:
    from adaptlearn.core.report import render_run_markdown

    if not resumed or not (run_dir / "config.json").exists():
        atomic_write_json(
            run_dir / "config.json",
            {
                "experiment": experiment.name,
                "preset": options.preset,
                "seed": options.seed,
                "config_hash": chash,
                "config": config_to_dict(config),
            },
        )
    env_now = describe_environment()
    env_now.update(
        {
            "backend": options.backend,
            "workers": options.workers,
            "threads_per_trial": options.threads,
        }
    )
    env_path = run_dir / "environment.json"
    env = env_now
    if resumed and env_path.exists():
        # Keep what the run started with; add each resume's commit and time.
        try:
            env = json.loads(env_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            log.warning("%s unreadable; rewritten", env_path)
            env = env_now
        env.setdefault("resumes", []).append(
            {"at": datetime.now(UTC).isoformat(), "git_commit": env_now.get("git_commit")}
        )
    atomic_write_json(env_path, env)

    ctx = RunContext(experiment, config, run_dir, options)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    experiment.run(config, ctx)
    results = ctx.results()
    results["wall_s"] = time.perf_counter() - wall0
    results["driver_cpu_s"] = time.process_time() - cpu0
    results["environment"] = {k: env.get(k) for k in ("platform", "cpu_count", "git_commit")}
    if env.get("resumes"):
        results["environment"]["resumes"] = env["resumes"]
    atomic_write_json(run_dir / "results.json", results)
    atomic_write_csv(run_dir / "metrics.csv", ctx.metrics)
    atomic_write_text(run_dir / "report.md", render_run_markdown(results))

    final = run_dir.with_name(run_dir.name.removesuffix(PARTIAL))
    if final != run_dir:
        if final.exists():
            raise RunError(f"cannot finish {run_dir}: {final} already exists")
        lock.release()
        os.replace(run_dir, final)
    return final
