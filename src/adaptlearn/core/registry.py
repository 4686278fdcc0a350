"""The experiment registry: ``@register`` a function that takes a dataclass config.

Experiments live in :mod:`adaptlearn.experiments`, one module each; every module of that package is
imported by :func:`load_all`, so adding an experiment needs no edit anywhere else.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adaptlearn.core.runner import RunContext

__all__ = ["Experiment", "get_experiment", "list_experiments", "load_all", "register"]

log = logging.getLogger(__name__)

RunFn = Callable[[Any, "RunContext"], None]

#: Presets every experiment understands. ``quick`` is the default (minutes on 2 CPU cores),
#: ``full`` is the paper-scale run, ``tiny`` is for tests (seconds).
PRESETS = ("tiny", "quick", "full")


@dataclass(frozen=True)
class Experiment:
    """A registered experiment.

    Attributes:
        name: CLI name (``adaptlearn run NAME``).
        family: method family (e.g. ``"optim"``).
        paper: short citation of the paper whose claim the experiment checks.
        claim: the paper's claim, in one sentence, as the report states it.
        config_cls: dataclass type of the config; its defaults are the ``quick`` preset.
        run: ``run(config, ctx)``; writes results through ``ctx``.
        presets: overrides of the config defaults per preset name (``tiny``, ``full``).
        parallel_trials: whether trials may run side by side in worker processes
            (``--backend auto``). False for experiments whose verdict rests on wall-clock
            timings, which need the machine to themselves.
    """

    name: str
    family: str
    paper: str
    claim: str
    config_cls: type
    run: RunFn
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    parallel_trials: bool = True

    def make_config(self, preset: str = "quick") -> Any:
        """Return the config of ``preset`` (``quick`` is the dataclass defaults)."""
        if preset not in PRESETS and preset not in self.presets:
            allowed = sorted(set(PRESETS) | set(self.presets))
            raise ValueError(f"`preset` must be one of {allowed}; got {preset!r}")
        return dataclasses.replace(self.config_cls(), **self.presets.get(preset, {}))


_REGISTRY: dict[str, Experiment] = {}
_IMPORT_ERRORS: dict[str, str] = {}


def register(
    name: str,
    *,
    family: str,
    paper: str,
    claim: str,
    config: type,
    presets: dict[str, dict[str, Any]] | None = None,
    parallel_trials: bool = True,
) -> Callable[[RunFn], RunFn]:
    """Register ``run(config, ctx)`` as experiment ``name``.

    Example::

        @register("smoke", family="core", paper="-", claim="...", config=SmokeConfig,
                  presets={"tiny": {"steps": 20}})
        def run(cfg: SmokeConfig, ctx: RunContext) -> None: ...
    """
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"`config` of experiment {name!r} must be a dataclass type")
    for preset, overrides in (presets or {}).items():
        names = {f.name for f in dataclasses.fields(config)}
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(f"preset {preset!r} of {name!r} sets unknown fields {sorted(unknown)}")

    def decorator(fn: RunFn) -> RunFn:
        if name in _REGISTRY and _REGISTRY[name].run is not fn:
            raise ValueError(f"experiment {name!r} is already registered")
        _REGISTRY[name] = Experiment(
            name=name,
            family=family,
            paper=paper,
            claim=claim,
            config_cls=config,
            run=fn,
            presets=dict(presets or {}),
            parallel_trials=parallel_trials,
        )
        return fn

    return decorator


def load_all() -> dict[str, str]:
    """Import every module of :mod:`adaptlearn.experiments`; return {module: error} for failures."""
    import adaptlearn.experiments as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        module = f"{pkg.__name__}.{info.name}"
        if module in _IMPORT_ERRORS:
            continue
        try:
            importlib.import_module(module)
        except ImportError as err:  # an optional dependency is missing
            _IMPORT_ERRORS[module] = f"{type(err).__name__}: {err}"
            log.warning("experiment module %s not available: %s", module, err)
    return dict(_IMPORT_ERRORS)


def list_experiments() -> list[Experiment]:
    """All registered experiments, sorted by name."""
    load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_experiment(name: str) -> Experiment:
    """Look up experiment ``name``; raise KeyError listing the known names."""
    load_all()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"unknown experiment {name!r}; known: {known}")
    return _REGISTRY[name]
