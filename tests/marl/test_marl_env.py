"""Trash Collection env: PettingZoo conformance and the official dynamics on fixed seeds."""

import importlib
import warnings

import numpy as np
import pytest
from pettingzoo.utils.conversions import parallel_to_aec

from adaptlearn.marl import trash_collection_v0
from adaptlearn.marl.trash_collection_v0 import (
    DUMP_REWARD,
    LAYOUTS,
    LOAD,
    PLACE,
    STAY,
    Layout,
    TrashCollectionEnv,
)

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3

# Import the pettingzoo.test *modules* (pettingzoo.test's __init__ shadows some module names
# with same-named functions, and importing test_* functions would make pytest collect them).
parallel_test = importlib.import_module("pettingzoo.test.parallel_test")
seed_test = importlib.import_module("pettingzoo.test.seed_test")
max_cycles_mod = importlib.import_module("pettingzoo.test.max_cycles_test")


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_parallel_api_and_seed_conformance(layout):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parallel_test.parallel_api_test(trash_collection_v0.parallel_env(layout=layout),
                                        num_cycles=300)
        seed_test.parallel_seed_test(
            lambda: trash_collection_v0.parallel_env(layout=layout, randomize_trash=True),
            num_cycles=100)


def test_max_cycles_and_aec_conversion():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        max_cycles_mod.max_cycles_test(trash_collection_v0)
        aec = trash_collection_v0.env(layout="small")
        aec.reset(seed=1)
        assert aec.agents == ["agent_0", "agent_1"]


@pytest.mark.parametrize("layout", ["room", "field4"])
def test_state_in_state_space_and_documented_shape(layout):
    env = TrashCollectionEnv(layout)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    lay = env.layout
    n = len(lay.agents)
    assert env.state_space.shape == ((n + 4) * lay.width * lay.height + n,)
    for _ in range(60):
        assert env.state_space.contains(env.state())
        obs, *_ = env.step({a: int(rng.integers(7)) for a in env.agents})
        for o in obs.values():
            assert env.observation_space("agent_0").contains(o)
        if not env.agents:
            break
    # the AEC wrapper exposes the same state (PettingZoo's state_test path)
    aec = parallel_to_aec(TrashCollectionEnv(layout))
    aec.reset(seed=0)
    assert aec.state_space.contains(aec.state())


def test_whole_episode_determinism_including_tie_breaks():
    def rollout(seed):
        env = TrashCollectionEnv("field4", randomize_trash=True)
        env.reset(seed=seed)
        rng = np.random.default_rng(123)
        trace = []
        while env.agents:
            out = env.step({a: int(rng.integers(7)) for a in env.agents})
            trace.append((env.positions, env.carrying, env.trash_cells,
                          {k: v.tobytes() for k, v in out[0].items()}, out[1], out[2], out[3]))
        return trace

    assert rollout(5) == rollout(5)
    assert rollout(5) != rollout(6)


def _env(**kw):
    lay = Layout("t", 4, 3, dumps=((3, 0),), trash=((1, 0), (2, 2)), agents=((0, 0), (0, 2)),
                 walls=frozenset({(1, 1)}), max_cycles=kw.pop("max_cycles", 50))
    env = TrashCollectionEnv(lay, **kw)
    env.reset(seed=0)
    return env


def _step(env, a0, a1):
    return env.step({"agent_0": a0, "agent_1": a1})


def test_load_carry_place_dump_rewards_team():
    env = _env()
    _, rew, *_ = _step(env, LOAD, STAY)  # not on an item: nothing happens
    assert env.carrying == [-1, -1] and rew == {"agent_0": 0.0, "agent_1": 0.0}
    _step(env, RIGHT, STAY)
    _step(env, LOAD, STAY)
    assert env.carrying[0] == 0 and not env.on_floor(0)
    _step(env, RIGHT, STAY)
    assert env.trash_cells[0] == (2, 0)  # the item moves with its carrier
    _step(env, PLACE, STAY)  # not a dump: dropped on the floor
    assert env.carrying[0] == -1 and env.on_floor(0) and env.trash_cells[0] == (2, 0)
    _step(env, LOAD, STAY)
    _step(env, RIGHT, STAY)
    _, rew, term, trunc, _ = _step(env, PLACE, STAY)
    assert rew == {"agent_0": DUMP_REWARD, "agent_1": DUMP_REWARD}  # team reward
    assert env.trash_cells[0] is None and env.n_dumped == 1
    assert not any(term.values()) and not any(trunc.values())


def test_individual_reward_flag():
    env = _env(team_reward=False)
    for a in (RIGHT, LOAD, RIGHT, RIGHT):
        _step(env, a, STAY)
    _, rew, *_ = _step(env, PLACE, STAY)
    assert rew == {"agent_0": DUMP_REWARD, "agent_1": 0.0}


def test_walls_and_borders_block():
    env = _env()
    _step(env, LEFT, UP)  # off grid / off grid
    assert env.positions == [(0, 0), (0, 2)]
    _step(env, RIGHT, STAY)
    _step(env, UP, STAY)  # (1, 1) is a wall
    assert env.positions[0] == (1, 0)


def test_swaps_undone_and_same_cell_rules():
    lay = Layout("c", 3, 1, dumps=(), trash=((2, 0),), agents=((0, 0), (1, 0)))
    env = TrashCollectionEnv(lay)
    env.reset(seed=0)
    env.step({"agent_0": RIGHT, "agent_1": LEFT})  # swap: both stay
    assert env.positions == [(0, 0), (1, 0)]
    env.step({"agent_0": RIGHT, "agent_1": STAY})  # into a cell whose owner stays: revert
    assert env.positions == [(0, 0), (1, 0)]
    # both move into one cell: exactly one (seeded draw) gets it
    lay2 = Layout("c2", 3, 1, dumps=(), trash=((1, 0),), agents=((0, 0), (2, 0)))
    winners = set()
    for seed in range(12):
        env2 = TrashCollectionEnv(lay2)
        env2.reset(seed=seed)
        env2.step({"agent_0": RIGHT, "agent_1": LEFT})
        pos = env2.positions
        assert sorted([pos[0] == (1, 0), pos[1] == (1, 0)]) == [False, True]
        winners.add(pos[0] == (1, 0))
    assert winners == {True, False}


def test_termination_when_all_dumped_and_truncation_at_cap():
    lay = Layout("d", 2, 1, dumps=((1, 0),), trash=((0, 0),), agents=((0, 0),))
    env = TrashCollectionEnv(lay)
    env.reset(seed=0)
    env.step({"agent_0": LOAD})
    env.step({"agent_0": RIGHT})
    _, _, term, trunc, _ = env.step({"agent_0": PLACE})
    assert term == {"agent_0": True} and trunc == {"agent_0": False} and env.agents == []
    env = _env(max_cycles=3)
    for t in range(3):
        _, _, term, trunc, _ = _step(env, STAY, STAY)
        assert all(trunc.values()) == (t == 2) and not any(term.values())
    assert env.agents == []


def test_renders():
    env = TrashCollectionEnv("room", render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    rows = text.splitlines()
    assert len(rows) == 12 and all(len(r) == 11 for r in rows[:11])
    grid = "".join(rows[:11])
    assert grid.count("D") == 2 and grid.count("t") == 2 and grid.count("#") == 18
    assert grid.count("0") == 1 and grid.count("1") == 1
    rgb = TrashCollectionEnv("room", render_mode="rgb_array")
    rgb.reset(seed=0)
    img = rgb.render()
    assert img.shape == (176, 176, 3) and img.dtype == np.uint8
    with pytest.raises(ValueError, match="render_mode"):
        TrashCollectionEnv("room", render_mode="human")
    with pytest.raises(ValueError, match="layout"):
        TrashCollectionEnv("nope")


def test_bad_actions_unknown_agents_and_step_before_reset_raise():
    import numpy as np
    import pytest

    from adaptlearn.marl.trash_collection_v0 import TrashCollectionEnv

    env = TrashCollectionEnv("tiny")
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})
    env.reset(seed=0)
    agent = env.possible_agents[0]
    for bad in (2.9, True, "1", 7, -1):
        with pytest.raises(ValueError, match=f"action of {agent} must be an int"):
            env.step({agent: bad})
    with pytest.raises(ValueError, match="unknown agent"):
        env.step({"nobody": 0})
    env.step({agent: np.int64(1)})  # NumPy integers are integers
    env.step({agent: np.array(2)})
