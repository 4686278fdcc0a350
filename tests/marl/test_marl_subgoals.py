"""Subgoal layer: target cells, the reached predicate, masks and the oracle controller."""

import numpy as np

from adaptlearn.marl.subgoals import SubgoalSpace
from adaptlearn.marl.trash_collection_v0 import LOAD, PLACE, Layout, TrashCollectionEnv

# dump 1 at (3, 1): x != y, which would catch the official env's `dump2.x == y` slip
LAY = Layout("s", 4, 3, dumps=((3, 0), (3, 1)), trash=((1, 0), (0, 2)),
             agents=((0, 0), (2, 2)), walls=frozenset({(1, 1)}))


def make():
    env = TrashCollectionEnv(LAY)
    env.reset(seed=0)
    return env, SubgoalSpace(env)


def test_goal_set_and_target_cells():
    env, sg = make()
    assert sg.names == ["dump_0", "dump_1", "item_0", "item_1", "load", "place"]
    assert sg.target_cell(1) == (3, 1) and sg.target_cell(2) == (1, 0)
    assert sg.is_primitive(4) and sg.is_primitive(5) and not sg.is_primitive(3)
    assert sg.primitive_action(4) == LOAD and sg.primitive_action(5) == PLACE
    assert sg.goal_map((3, 1)).reshape(3, 4)[1, 3] == 1.0 and sg.goal_map(None).sum() == 0
    env.step({"agent_0": 3, "agent_1": 4})
    env.step({"agent_0": LOAD, "agent_1": 4})
    assert sg.target_cell(2) is None  # a carried item is no navigation target


def test_masks_follow_carrying_state():
    env, sg = make()
    assert sg.available(0, use_masks=False).all()
    m = sg.available(0, use_masks=True)
    assert m.tolist() == [False, False, True, True, False, False]
    env.step({"agent_0": 3, "agent_1": 4})  # onto item 0
    assert sg.available(0, use_masks=True)[4]  # load allowed only on an item
    env.step({"agent_0": LOAD, "agent_1": 4})
    m = sg.available(0, use_masks=True)
    assert m.tolist() == [True, True, False, False, False, True]
    assert sg.available(1, use_masks=True).tolist() == [False, False, False, True, False, False]


def test_oracle_follows_a_shortest_path_around_walls():
    env, sg = make()
    target = (1, 2)
    steps = 0
    while env.positions[0] != target:
        env.step({"agent_0": sg.oracle_action(0, target), "agent_1": 4})
        steps += 1
        assert steps <= 10
    assert steps == sg.shortest_path_length((0, 0), target) == 3
    assert sg.oracle_action(0, target) == 4  # stays on the target
    assert np.isfinite(steps)
