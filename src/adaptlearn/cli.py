"""The ``adaptlearn`` command: ``list``, ``run NAME|all``, ``report [DIR]``.

``main(argv)`` returns an exit code, so tests call it in-process. Bad input (unknown experiment,
unknown ``--set`` key, a value of the wrong type) exits with code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence

__all__ = ["main"]

log = logging.getLogger("adaptlearn")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="adaptlearn", description="Reproducible experiments for adaptive-learning methods."
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list experiments, one line each, with their papers")

    show = sub.add_parser("show", help="show an experiment's config fields and presets")
    show.add_argument("name")

    run = sub.add_parser("run", help="run an experiment (or `all`)")
    run.add_argument("name", help="experiment name, or `all`")
    size = run.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        dest="preset",
        action="store_const",
        const="quick",
        help="small default, minutes on 2 CPU cores (default)",
    )
    size.add_argument(
        "--full", dest="preset", action="store_const", const="full", help="paper-scale settings"
    )
    size.add_argument("--preset", dest="preset", help="preset by name: tiny, quick, full")
    run.set_defaults(preset="quick")
    run.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    run.add_argument("--out", default="runs", help="output folder (default runs/)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (repeatable)",
    )
    run.add_argument(
        "--backend",
        choices=("auto", "local", "process", "ray"),
        default="auto",
        help="where trials run; auto: worker processes where the experiment's timings allow, "
        "else in this process (default auto)",
    )
    run.add_argument(
        "--workers", type=int, default=None,
        help="processes / Ray CPUs (default: the CPUs this process may use)",
    )
    run.add_argument("--address", default=None, help="Ray cluster address (default: local Ray)")
    run.add_argument("--threads", type=int, default=1, help="torch threads per trial (default 1)")
    run.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    run.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_DIR",
        help="continue the newest unfinished run with the same config, or RUN_DIR",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")

    rep = sub.add_parser("report", help="turn run folders into report.html and report.md")
    rep.add_argument("dir", nargs="?", default="runs", help="folder of runs (default runs/)")
    rep.add_argument("--out", default=None, help="where to write the report (default: DIR)")
    rep.add_argument(
        "--all", dest="all_runs", action="store_true",
        help="every finished run (default: the latest run of each experiment)",
    )
    return p


def _error(message: str) -> int:
    print(f"adaptlearn: error: {message}", file=sys.stderr)
    return 2


def _cmd_list() -> int:
    from adaptlearn.core.registry import list_experiments, load_all

    for exp in list_experiments():
        print(f"{exp.name:<20} [{exp.family}] {exp.paper}")
    for module, err in load_all().items():
        print(f"{'(unavailable)':<20} {module}: {err}")
    return 0


def _cmd_show(name: str) -> int:
    import dataclasses

    from adaptlearn.core.registry import get_experiment

    try:
        exp = get_experiment(name)
    except KeyError as err:
        return _error(str(err.args[0]))
    print(f"{exp.name}: {exp.paper}\nclaim: {exp.claim}\nconfig {exp.config_cls.__name__}:")
    for f in dataclasses.fields(exp.config_cls):
        presets = {p: v[f.name] for p, v in exp.presets.items() if f.name in v}
        extra = f"  presets: {presets}" if presets else ""
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        print(f"  {f.name}: {getattr(f.type, '__name__', f.type)} = {default!r}{extra}")
    return 0


def _cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from adaptlearn.core.config import ConfigError, apply_overrides
    from adaptlearn.core.progress import set_progress_enabled
    from adaptlearn.core.registry import get_experiment, list_experiments
    from adaptlearn.core.runner import (
        MAX_SEED,
        RunError,
        RunFailedError,
        RunInterrupted,
        RunOptions,
        run_experiment,
    )

    if not 0 <= args.seed <= MAX_SEED:
        return _error(f"--seed must be an int in [0, {MAX_SEED}]; got {args.seed}")
    if args.workers is not None and args.workers < 1:
        return _error(f"--workers must be an int in [1, inf); got {args.workers}")
    if args.threads < 1:
        return _error(f"--threads must be an int in [1, inf); got {args.threads}")
    set_progress_enabled(not args.quiet)
    if args.name == "all":
        experiments = [e for e in list_experiments() if e.name != "smoke" or args.overrides]
        if args.overrides:
            return _error("--set cannot be combined with `run all` (configs differ)")
        if args.resume and isinstance(args.resume, str):
            return _error("--resume RUN_DIR needs a single experiment, not `all`")
    else:
        try:
            experiments = [get_experiment(args.name)]
        except KeyError as err:
            return _error(str(err.args[0]))
    configs = []
    for exp in experiments:
        try:
            config = exp.make_config(args.preset)
            config = apply_overrides(config, args.overrides)
        except (ConfigError, ValueError, TypeError, OverflowError) as err:
            return _error(str(err))
        configs.append(config)
    failures = 0
    finished: list[str] = []
    for exp, config in zip(experiments, configs, strict=True):
        options = RunOptions(
            seed=args.seed,
            out=args.out,
            preset=args.preset,
            backend=args.backend,
            workers=args.workers,
            ray_address=args.address,
            device=args.device,
            resume=args.resume,
            quiet=args.quiet,
            threads=args.threads,
            command="adaptlearn "
            + shlex.join(
                [
                    "run",
                    exp.name,
                    f"--preset={args.preset}",
                    f"--seed={args.seed}",
                    *[f"--set={o}" for o in args.overrides],
                ]
            ),
        )
        log.info("running %s (preset %s)", exp.name, args.preset)
        try:
            run_dir = run_experiment(exp, config, options)
        except RunInterrupted as err:
            print(
                f"adaptlearn: interrupted; continue with: adaptlearn run {exp.name} "
                f"--preset {args.preset} --seed {args.seed} --resume {err.run_dir}",
                file=sys.stderr,
            )
            return 130
        except (RunError, ValueError, FileNotFoundError, OSError) as err:
            if len(experiments) == 1:
                return _error(str(err))
            log.error("%s failed: %s", exp.name, err)
            failures += 1
            continue
        except RunFailedError as err:
            if len(experiments) == 1:
                print(f"adaptlearn: {err}", file=sys.stderr)
                return 1
            log.error("%s failed: %s", exp.name, err)
            failures += 1
            continue
        except Exception:
            if len(experiments) == 1:
                raise
            log.exception("%s failed", exp.name)
            failures += 1
            continue
        finished.append(str(run_dir))
        print(run_dir, flush=True)
    _print_verdicts(finished)
    return 1 if failures else 0


def _print_verdicts(run_dirs: Sequence[str]) -> None:
    """The closing summary of ``adaptlearn run``: one verdict line and the report per run."""
    from pathlib import Path

    from adaptlearn.core.report import load_results, verdict_line

    if not run_dirs:
        return
    print("\nverdicts:")
    for d in run_dirs:
        try:
            print("  " + verdict_line(load_results(Path(d))))
        except ValueError as err:
            print(f"  {d}: {err}")
        print(f"    report: {Path(d) / 'report.md'}")


def _cmd_report(args: argparse.Namespace) -> int:
    from adaptlearn.core.report import build_report

    try:
        html_path, md_path = build_report(args.dir, args.out, all_runs=args.all_runs)
    except FileNotFoundError as err:
        return _error(str(err))
    print(html_path)
    print(md_path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``adaptlearn`` script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad flags and 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "list":
        return _cmd_list()
    if args.command == "show":
        return _cmd_show(args.name)
    if args.command == "run":
        return _cmd_run(args, argv)
    return _cmd_report(args)


if __name__ == "__main__":
    sys.exit(main())
