"""Subgoals of Trash Collection and the internal critic of the low level.

The goal set follows the official h-IL code: "go to dump d" for every dump, "go to item k" for
every trash item, and the one-step primitive goals ``load`` and ``place`` (their primitive
action is executed for exactly one step). A navigation goal's target cell is fixed when the goal
is picked; it is reached when the agent stands on that cell after a step (the internal critic of
Kulkarni et al. 2016), paying intrinsic reward +1, else -0.01 per step, and it is cut off after
``cap`` steps unreached. A navigation goal without a target (the item is already carried or
dumped) lasts one ``stay`` step and ends unreached.

Optional availability masks (domain knowledge, off for paper-faithful runs): "go to item k" only
while item k is on the floor and the agent is empty-handed; dumps and ``place`` only while
carrying; ``load`` only on a floor item's cell while empty-handed.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from adaptlearn.marl.trash_collection_v0 import LOAD, MOVES, PLACE, Cell, TrashCollectionEnv

__all__ = ["INTRINSIC_REACH", "INTRINSIC_STEP", "SubgoalSpace"]

INTRINSIC_REACH = 1.0
"""Intrinsic reward on reaching the goal cell."""
INTRINSIC_STEP = -0.01
"""Intrinsic reward of every other low-level step."""


class SubgoalSpace:
    """The subgoal set of one layout, its target cells, masks and an oracle (BFS) controller.

    Args:
        env: the environment (read through its public properties).

    Goal indices: ``[dump_0 .. dump_{D-1}, item_0 .. item_{K-1}, load, place]``.
    """

    def __init__(self, env: TrashCollectionEnv) -> None:
        self.env = env
        self.n_dumps = len(env.layout.dumps)
        self.n_trash = env.n_trash
        self.load_goal = self.n_dumps + self.n_trash
        self.place_goal = self.load_goal + 1
        self.n_goals = self.place_goal + 1
        self.names = ([f"dump_{d}" for d in range(self.n_dumps)]
                      + [f"item_{k}" for k in range(self.n_trash)] + ["load", "place"])
        lay = env.layout
        self.grid_size = lay.width * lay.height
        self._dist_cache: dict[Cell, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"SubgoalSpace(goals={self.names})"

    def is_primitive(self, goal: int) -> bool:
        """``load`` and ``place`` are one-step goals."""
        return goal >= self.load_goal

    def primitive_action(self, goal: int) -> int:
        """Env action of a primitive goal."""
        return LOAD if goal == self.load_goal else PLACE

    def target_cell(self, goal: int) -> Cell | None:
        """Cell of a navigation goal now (``None`` for primitives and gone items)."""
        if goal < self.n_dumps:
            return self.env.layout.dumps[goal]
        if goal < self.load_goal:
            k = goal - self.n_dumps
            return self.env.trash_cells[k] if self.env.on_floor(k) else None
        return None

    def available(self, agent: int, *, use_masks: bool) -> np.ndarray:
        """Bool mask ``[n_goals]`` of goals agent ``agent`` may pick (all True without masks)."""
        if not use_masks:
            return np.ones(self.n_goals, bool)
        env = self.env
        carrying = env.carrying[agent] >= 0
        pos = env.positions[agent]
        mask = np.zeros(self.n_goals, bool)
        mask[: self.n_dumps] = carrying
        floor = [env.on_floor(k) for k in range(self.n_trash)]
        cells = env.trash_cells
        for k in range(self.n_trash):
            mask[self.n_dumps + k] = floor[k] and not carrying
        mask[self.load_goal] = (not carrying) and any(
            floor[k] and cells[k] == pos for k in range(self.n_trash))
        mask[self.place_goal] = carrying
        if not mask.any():  # nothing useful: allow everything rather than an empty choice
            mask[:] = True
        return mask

    def goal_map(self, cell: Cell | None) -> np.ndarray:
        """One-hot ``[H*W]`` map of a target cell (zeros for ``None``), row = y."""
        m = np.zeros(self.grid_size, np.float32)
        if cell is not None:
            m[cell[1] * self.env.layout.width + cell[0]] = 1.0
        return m

    def _distances(self, target: Cell) -> np.ndarray:
        if target not in self._dist_cache:
            lay = self.env.layout
            dist = np.full((lay.width, lay.height), np.iinfo(np.int32).max, np.int64)
            dist[target] = 0
            queue = deque([target])
            while queue:
                x, y = queue.popleft()
                for dx, dy in list(MOVES.values())[:4]:
                    nb = (x + dx, y + dy)
                    if self.env.is_free(nb) and dist[nb] > dist[x, y] + 1:
                        dist[nb] = dist[x, y] + 1
                        queue.append(nb)
            self._dist_cache[target] = dist
        return self._dist_cache[target]

    def oracle_action(self, agent: int, target: Cell) -> int:
        """A shortest-path move (ignoring other agents) towards ``target``; stay if there."""
        dist = self._distances(target)
        x, y = self.env.positions[agent]
        best, best_d = 4, dist[x, y]
        for a in range(4):
            dx, dy = MOVES[a]
            nb = (x + dx, y + dy)
            if self.env.is_free(nb) and dist[nb] < best_d:
                best, best_d = a, dist[nb]
        return best

    def shortest_path_length(self, start: Cell, target: Cell) -> int:
        """Grid distance around walls (BFS)."""
        return int(self._distances(target)[start])
