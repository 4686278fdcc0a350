"""What a run records about where it ran: versions, machine, threads, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["describe_environment", "git_commit"]

_PACKAGES = (
    "adaptlearn",
    "torch",
    "numpy",
    "scipy",
    "matplotlib",
    "gymnasium",
    "ale-py",
    "pettingzoo",
    "statsmodels",
    "scikit-learn",
    "ray",
    "minatar",
    "lda",
)


def git_commit(path: str | os.PathLike[str] | None = None) -> str | None:
    """The git commit of the source tree (with ``-dirty`` if modified), or ``None``."""
    cwd = Path(path) if path else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def describe_environment() -> dict[str, Any]:
    """Versions of the packages we use, Python, platform, CPU count, torch threads, commit."""
    import torch

    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "git_commit": git_commit(),
        "packages": versions,
    }
