"""Shared helpers of the text-game tests."""

from collections.abc import Callable

import numpy as np
import pytest


def fill_replay(env, agent, steps: int, seed: int = 0) -> None:
    """Run ``steps`` random commands in ``env`` and hand every transition to ``agent``."""
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    oid = agent.table.add(obs, info["admissible_mask"])
    for _ in range(steps):
        a = int(rng.integers(env.n_actions))
        obs, r, term, trunc, info = env.step(a)
        nid = agent.table.add(obs, info["admissible_mask"])
        agent.observe(oid, a, r, nid, term, info["elimination"])
        oid = nid
        if term or trunc:
            obs, info = env.reset()
            oid = agent.table.add(obs, info["admissible_mask"])


@pytest.fixture
def fill() -> Callable[..., None]:
    """:func:`fill_replay`, for tests that need an agent with transitions stored."""
    return fill_replay
