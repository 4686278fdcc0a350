"""Seeding and thread pinning.

Randomness is passed explicitly: :func:`seed_everything` seeds the global RNGs (for third-party
code that uses them) *and* returns explicit generators that our own code should use.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Rngs", "pin_threads", "seed_everything", "spawn_seeds"]


@dataclass
class Rngs:
    """Explicit random generators derived from one seed."""

    seed: int
    numpy: np.random.Generator
    torch: torch.Generator


def seed_everything(seed: int) -> Rngs:
    """Seed Python, NumPy and torch global RNGs and return explicit generators for ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be an int in [0, inf); got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - for third-party code using the global RNG
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return Rngs(seed=seed, numpy=np.random.default_rng(seed), torch=gen)


def spawn_seeds(seed: int, n: int) -> list[int]:
    """Return ``n`` independent 32-bit seeds derived from ``seed`` (for workers and envs)."""
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(c.generate_state(1)[0]) for c in children]


_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def pin_threads(n: int = 1) -> None:
    """Limit torch and BLAS to ``n`` threads in this process.

    On a 2-core machine, oversubscription (several processes each using all cores) made one
    ``eigh`` 40x slower, so every benchmark and worker process calls this first. The environment
    variables only affect libraries loaded afterwards (and child processes); ``threadpoolctl`` is
    used when available to limit BLAS pools that are already loaded.
    """
    if n < 1:
        raise ValueError(f"`n` of pin_threads must be an int in [1, inf); got {n!r}")
    for var in _THREAD_VARS:
        os.environ[var] = str(n)
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass
