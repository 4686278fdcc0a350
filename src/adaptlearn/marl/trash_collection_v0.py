"""Multiagent Trash Collection (MATC) as a PettingZoo ``ParallelEnv``.

The cooperative grid task of Tang et al., "Hierarchical Deep Multiagent Reinforcement Learning
with Temporal Abstraction" (arXiv 1809.09332): agents walk a grid, pick trash items up, carry them
to a dump and place them there. The only extrinsic reward is +0.5 per dumped item, paid to the
whole team, so the reward is sparse and delayed (an item must be reached, loaded, carried and
placed before anything is paid). The episode terminates when every item is dumped and is
truncated after ``max_cycles`` steps.

Dynamics follow the official environment: actions ``0`` y+1, ``1`` y-1, ``2`` x-1, ``3`` x+1,
``4`` stay, ``5`` load, ``6`` place. Moves into walls or off the grid fail. Two agents that would
swap cells both stay; when several agents would enter one cell, every mover reverts if one of them
stayed put, otherwise one mover (drawn from the env's own generator) keeps the cell and the others
revert; reverting repeats until no cell holds two agents. A carried item moves with its carrier.
``place`` on a dump cell dumps the item (+0.5), elsewhere it drops the item back on the floor.

Observation of agent ``i`` (flat ``float32`` vector in [0, 1], length ``5*H*W + 1``): channels
self, other agents, trash on the floor, dumps, walls (each ``H x W``, row = y), then the agent's own
carrying flag. The official observation put all agents in one channel; we add the ``self`` channel
so that agents with shared parameters can tell themselves apart (a documented deviation).

Global state (``state()``, length ``(n+4)*H*W + n``): one position channel per agent, trash on the
floor, dumps, walls, carried-trash (position of every carried item), then every agent's carrying
flag. This is the ``s`` that QMIX's hypernetworks read.

Module API as PettingZoo envs have it: :func:`parallel_env`, :func:`env` (AEC via
``parallel_to_aec``) and :class:`raw_env`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from adaptlearn.core.validation import check_choice, check_int

__all__ = [
    "ACTIONS",
    "DUMP_REWARD",
    "LAYOUTS",
    "Layout",
    "TrashCollectionEnv",
    "env",
    "parallel_env",
    "raw_env",
]

Cell = tuple[int, int]

ACTIONS = ("up", "down", "left", "right", "stay", "load", "place")
"""Names of the 7 primitive actions (``up`` is y+1)."""
MOVES: dict[int, Cell] = {0: (0, 1), 1: (0, -1), 2: (-1, 0), 3: (1, 0), 4: (0, 0)}
STAY, LOAD, PLACE = 4, 5, 6
DUMP_REWARD = 0.5
"""Team reward for each dumped item (official value)."""
N_OBS_CHANNELS = 5


@dataclass(frozen=True)
class Layout:
    """A MATC map: grid size, walls, dumps, initial trash and agent cells (``(x, y)``)."""

    name: str
    width: int
    height: int
    dumps: tuple[Cell, ...]
    trash: tuple[Cell, ...]
    agents: tuple[Cell, ...]
    walls: frozenset[Cell] = field(default_factory=frozenset)
    max_cycles: int = 100

    def free_cells(self) -> list[Cell]:
        """Cells that are neither walls nor dumps, in row-major order."""
        return [
            (x, y) for y in range(self.height) for x in range(self.width)
            if (x, y) not in self.walls and (x, y) not in self.dumps
        ]


def _cells(*ranges: tuple[range | int, range | int]) -> frozenset[Cell]:
    out: set[Cell] = set()
    for xs, ys in ranges:
        xr = range(xs, xs + 1) if isinstance(xs, int) else xs
        yr = range(ys, ys + 1) if isinstance(ys, int) else ys
        out.update((x, y) for x in xr for y in yr)
    return frozenset(out)


LAYOUTS: dict[str, Layout] = {
    # 3x3, two lanes: small enough for learning tests that pass in seconds.
    "tiny": Layout("tiny", 3, 3, dumps=((2, 0), (2, 2)), trash=((0, 0), (0, 2)),
                   agents=((1, 0), (1, 2)), max_cycles=30),
    # 5x5 two-agent room with a partial wall: the quick preset's task.
    "small": Layout("small", 5, 5, dumps=((4, 0), (4, 4)), trash=((0, 1), (0, 3)),
                    agents=((1, 1), (1, 3)), walls=_cells((2, range(1, 4))), max_cycles=50),
    # The 7x7 mini task of the spec (a wall at x=3 for y=1..5, gaps at y=0 and y=6).
    "mini": Layout("mini", 7, 7, dumps=((6, 1), (6, 5)), trash=((0, 1), (0, 5)),
                   agents=((2, 2), (2, 4)), walls=_cells((3, range(1, 6))), max_cycles=50),
    # The official two-agent Room (MATC_2a2d2t_Room), coordinates from the official env.
    "room": Layout(
        "room", 11, 11, dumps=((10, 1), (10, 10)), trash=((1, 4), (0, 6)), agents=((3, 4), (3, 6)),
        walls=_cells((range(0, 3), 5), (2, range(2, 9)), (8, range(7, 11)), (range(7, 11), 2),
                     (7, 1)),
        max_cycles=100,
    ),
    # Larger configuration: 11x11 open field, 4 agents, 2 dumps, 8 items (Ring-like density).
    "field4": Layout(
        "field4", 11, 11, dumps=((10, 0), (10, 10)),
        trash=((0, 0), (0, 10), (2, 5), (4, 2), (4, 8), (6, 5), (8, 2), (8, 8)),
        agents=((5, 0), (5, 10), (0, 5), (10, 5)), max_cycles=150,
    ),
}
"""Built-in layouts; ``room`` is the paper's two-agent map, ``field4`` the larger one."""


class TrashCollectionEnv(ParallelEnv):
    """Multiagent Trash Collection, a cooperative gridworld with sparse delayed team reward.

    Args:
        layout: a name from :data:`LAYOUTS` or a :class:`Layout`.
        max_cycles: truncation horizon in steps (default: the layout's).
        randomize_trash: place the items on random free cells at every reset (drawn from the
            env's generator) instead of the layout's fixed cells.
        team_reward: pay every dumped item to every agent (paper's cooperative setting); if
            False only the agent that placed it gets the reward.
        render_mode: ``None``, ``"ansi"`` (text) or ``"rgb_array"``.

    References:
        Tang et al., "Hierarchical Deep Multiagent Reinforcement Learning with Temporal
        Abstraction", arXiv 1809.09332 (Multiagent Trash Collection).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "trash_collection_v0", "render_modes": ["ansi", "rgb_array"],
        "is_parallelizable": True, "render_fps": 4,
    }

    def __init__(
        self,
        layout: str | Layout = "room",
        *,
        max_cycles: int | None = None,
        randomize_trash: bool = False,
        team_reward: bool = True,
        render_mode: str | None = None,
    ) -> None:
        if isinstance(layout, str):
            check_choice("layout", layout, tuple(LAYOUTS), owner="TrashCollectionEnv")
            layout = LAYOUTS[layout]
        self.layout = layout
        self.max_cycles = check_int(
            "max_cycles", layout.max_cycles if max_cycles is None else max_cycles, 1,
            owner="TrashCollectionEnv",
        )
        if render_mode is not None:
            check_choice("render_mode", render_mode, tuple(self.metadata["render_modes"]),
                         owner="TrashCollectionEnv")
        self.render_mode = render_mode
        self.randomize_trash = bool(randomize_trash)
        self.team_reward = bool(team_reward)
        self.possible_agents = [f"agent_{i}" for i in range(len(layout.agents))]
        self.agents: list[str] = []
        self._was_reset = False
        self.n_agents = len(self.possible_agents)
        self.n_trash = len(layout.trash)
        h, w = layout.height, layout.width
        self._wall_grid = np.zeros((h, w), np.float32)
        for x, y in layout.walls:
            self._wall_grid[y, x] = 1.0
        self._dump_grid = np.zeros((h, w), np.float32)
        for x, y in layout.dumps:
            self._dump_grid[y, x] = 1.0
        self.obs_dim = N_OBS_CHANNELS * h * w + 1
        self.state_dim = (self.n_agents + 4) * h * w + self.n_agents
        self.state_space = spaces.Box(0.0, 1.0, (self.state_dim,), np.float32)
        self._obs_space = spaces.Box(0.0, 1.0, (self.obs_dim,), np.float32)
        self._act_space = spaces.Discrete(len(ACTIONS))
        self._np_random, _ = seeding.np_random(None)
        self._reset_state()

    def __repr__(self) -> str:
        return (f"TrashCollectionEnv(layout={self.layout.name!r}, agents={self.n_agents}, "
                f"trash={self.n_trash}, max_cycles={self.max_cycles})")

    # --- spaces (cached: the API test asserts the same object on every call) -----------------
    @functools.cache  # noqa: B019 - one entry per agent name, env-lifetime
    def observation_space(self, agent: str) -> spaces.Box:
        """Flat ``Box(0, 1, (5*H*W + 1,))`` of every agent."""
        return self._obs_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Discrete:
        """``Discrete(7)``: up, down, left, right, stay, load, place."""
        return self._act_space

    # --- public read-only view of the world (for subgoal critics and tests) -----------------
    @property
    def np_random(self) -> np.random.Generator:
        """The env's own generator (collision tie-breaks, random trash)."""
        return self._np_random

    @property
    def positions(self) -> list[Cell]:
        """Cell ``(x, y)`` of each agent, in ``possible_agents`` order."""
        return list(self._pos)

    @property
    def carrying(self) -> list[int]:
        """Index of the item each agent carries, or -1."""
        return list(self._carry)

    @property
    def trash_cells(self) -> list[Cell | None]:
        """Cell of each item (a carried item is at its carrier), ``None`` once dumped."""
        out: list[Cell | None] = []
        for k in range(self.n_trash):
            if self._dumped[k]:
                out.append(None)
            elif self._carrier[k] >= 0:
                out.append(self._pos[self._carrier[k]])
            else:
                out.append(self._trash[k])
        return out

    def on_floor(self, k: int) -> bool:
        """Whether item ``k`` lies on the floor (not carried, not dumped)."""
        return not self._dumped[k] and self._carrier[k] < 0

    @property
    def n_dumped(self) -> int:
        """Items dumped so far in this episode."""
        return int(sum(self._dumped))

    @property
    def steps(self) -> int:
        """Steps taken in this episode."""
        return self._t

    def is_free(self, cell: Cell) -> bool:
        """Whether ``cell`` is inside the grid and not a wall."""
        x, y = cell
        return (0 <= x < self.layout.width and 0 <= y < self.layout.height
                and (x, y) not in self.layout.walls)

    # --- API ---------------------------------------------------------------------------------
    def _reset_state(self) -> None:
        self._t = 0
        self._pos: list[Cell] = list(self.layout.agents)
        self._carry = [-1] * self.n_agents
        self._trash: list[Cell] = list(self.layout.trash)
        self._carrier = [-1] * self.n_trash
        self._dumped = [False] * self.n_trash

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Start an episode; ``seed`` reseeds the env's generator (as gymnasium does)."""
        if seed is not None:
            self._np_random, _ = seeding.np_random(seed)
        self._reset_state()
        if self.randomize_trash:
            free = [c for c in self.layout.free_cells() if c not in self.layout.agents]
            idx = self._np_random.choice(len(free), size=self.n_trash, replace=False)
            self._trash = [free[int(i)] for i in idx]
        self.agents = list(self.possible_agents)
        self._was_reset = True
        return self._observations(), self._infos()

    def step(self, actions: dict[str, Any]) -> tuple[
        dict[str, np.ndarray], dict[str, float], dict[str, bool], dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Apply one joint action (missing agents stay); return fresh per-agent dicts.

        Raises:
            RuntimeError: before the first ``reset()``.
            ValueError: an unknown agent, or an action that is not an integer in [0, 7) (a
                float such as 2.9 is refused, not truncated).
        """
        if not self._was_reset:
            raise RuntimeError("call reset() before step()")
        unknown = sorted(set(actions) - set(self.possible_agents))
        if unknown:
            raise ValueError(
                f"unknown agent(s) {unknown} in `actions`; agents are {self.possible_agents}"
            )
        acts = [_integer_action(actions.get(a, STAY), a) for a in self.possible_agents]
        self._move(acts)
        rewards = [0.0] * self.n_agents
        for i, act in enumerate(acts):
            if act == LOAD and self._carry[i] < 0:
                for k in range(self.n_trash):
                    if self.on_floor(k) and self._trash[k] == self._pos[i]:
                        self._carry[i], self._carrier[k] = k, i
                        break
            elif act == PLACE and self._carry[i] >= 0:
                k = self._carry[i]
                self._carry[i], self._carrier[k] = -1, -1
                if self._pos[i] in self.layout.dumps:
                    self._dumped[k] = True
                    rewards[i] += DUMP_REWARD
                else:
                    self._trash[k] = self._pos[i]
        self._t += 1
        team = float(sum(rewards))
        terminated = all(self._dumped)
        truncated = not terminated and self._t >= self.max_cycles
        agents = self.agents
        obs, infos = self._observations(), self._infos()
        rew = {a: (team if self.team_reward else rewards[i])
               for i, a in enumerate(self.possible_agents) if a in agents}
        terms = dict.fromkeys(agents, terminated)
        truncs = dict.fromkeys(agents, truncated)
        obs = {a: obs[a] for a in agents}
        infos = {a: infos[a] for a in agents}
        if terminated or truncated:
            self.agents = []
        return obs, rew, terms, truncs, infos

    def _move(self, acts: list[int]) -> None:
        old = list(self._pos)
        new: list[Cell] = []
        for i, act in enumerate(acts):
            dx, dy = MOVES.get(act, (0, 0))
            cand = (old[i][0] + dx, old[i][1] + dy)
            new.append(cand if self.is_free(cand) else old[i])
        n = self.n_agents
        for i in range(n):  # swaps are undone for both agents
            for j in range(i + 1, n):
                if new[i] == old[j] and new[j] == old[i] and new[i] != old[i]:
                    new[i], new[j] = old[i], old[j]
        while True:
            claims: dict[Cell, list[int]] = {}
            for i in range(n):
                claims.setdefault(new[i], []).append(i)
            clashes = [ids for ids in claims.values() if len(ids) > 1]
            if not clashes:
                break
            for ids in clashes:
                movers = [i for i in ids if new[i] != old[i]]
                if len(movers) < len(ids):  # someone stayed put: every mover reverts
                    losers = movers
                else:
                    keep = movers[int(self._np_random.integers(len(movers)))]
                    losers = [i for i in movers if i != keep]
                for i in losers:
                    new[i] = old[i]
        self._pos = new

    # --- observations ------------------------------------------------------------------------
    def _trash_grid(self) -> np.ndarray:
        g = np.zeros((self.layout.height, self.layout.width), np.float32)
        for k in range(self.n_trash):
            if self.on_floor(k):
                x, y = self._trash[k]
                g[y, x] = 1.0
        return g

    def _observations(self) -> dict[str, np.ndarray]:
        h, w = self.layout.height, self.layout.width
        trash = self._trash_grid()
        everyone = np.zeros((h, w), np.float32)
        for x, y in self._pos:
            everyone[y, x] += 1.0
        out = {}
        for i, a in enumerate(self.possible_agents):
            x, y = self._pos[i]
            me = np.zeros((h, w), np.float32)
            me[y, x] = 1.0
            others = np.clip(everyone - me, 0.0, 1.0)
            flat = np.concatenate([
                me.ravel(), others.ravel(), trash.ravel(), self._dump_grid.ravel(),
                self._wall_grid.ravel(), np.array([float(self._carry[i] >= 0)], np.float32),
            ])
            out[a] = flat
        return out

    def _infos(self) -> dict[str, dict[str, Any]]:
        return {a: {"position": self._pos[i], "carrying": self._carry[i],
                    "n_dumped": self.n_dumped}
                for i, a in enumerate(self.possible_agents)}

    def state(self) -> np.ndarray:
        """Global state (``(n+4)*H*W + n`` floats in [0, 1]) for centralized critics/mixers."""
        h, w = self.layout.height, self.layout.width
        chans = np.zeros((self.n_agents + 4, h, w), np.float32)
        for i, (x, y) in enumerate(self._pos):
            chans[i, y, x] = 1.0
        chans[self.n_agents] = self._trash_grid()
        chans[self.n_agents + 1] = self._dump_grid
        chans[self.n_agents + 2] = self._wall_grid
        for i, k in enumerate(self._carry):
            if k >= 0:
                x, y = self._pos[i]
                chans[self.n_agents + 3, y, x] = 1.0
        flags = np.array([float(k >= 0) for k in self._carry], np.float32)
        return np.concatenate([chans.ravel(), flags])

    # --- rendering ---------------------------------------------------------------------------
    def render(self) -> str | np.ndarray | None:
        """Text (``ansi``) or an ``(H*16, W*16, 3)`` uint8 image (``rgb_array``)."""
        if self.render_mode is None:
            return None
        if self.render_mode == "ansi":
            return self._render_text()
        return self._render_rgb()

    def _render_text(self) -> str:
        """Rows top (y = H-1) to bottom: ``#`` wall, ``D`` dump, ``t`` trash, digits agents
        (upper-case letters ``A..`` when carrying)."""
        lay = self.layout
        grid = [["." for _ in range(lay.width)] for _ in range(lay.height)]
        for x, y in lay.walls:
            grid[y][x] = "#"
        for x, y in lay.dumps:
            grid[y][x] = "D"
        for k in range(self.n_trash):
            if self.on_floor(k):
                x, y = self._trash[k]
                grid[y][x] = "t"
        for i, (x, y) in enumerate(self._pos):
            grid[y][x] = chr(ord("A") + i) if self._carry[i] >= 0 else str(i)
        rows = ["".join(r) for r in reversed(grid)]
        return "\n".join(rows) + f"\nstep {self._t}/{self.max_cycles}, dumped {self.n_dumped}/" \
            f"{self.n_trash}"

    def _render_rgb(self, cell: int = 16) -> np.ndarray:
        lay = self.layout
        img = np.full((lay.height * cell, lay.width * cell, 3), 235, np.uint8)

        def paint(x: int, y: int, color: tuple[int, int, int], pad: int = 0) -> None:
            r = lay.height - 1 - y
            img[r * cell + pad:(r + 1) * cell - pad, x * cell + pad:(x + 1) * cell - pad] = color

        for x, y in lay.walls:
            paint(x, y, (60, 60, 60))
        for x, y in lay.dumps:
            paint(x, y, (60, 160, 60))
        for k in range(self.n_trash):
            if self.on_floor(k):
                paint(*self._trash[k], (150, 100, 40), pad=4)
        palette = [(40, 90, 220), (220, 60, 60), (160, 60, 200), (240, 160, 0)]
        for i, (x, y) in enumerate(self._pos):
            paint(x, y, palette[i % len(palette)], pad=2)
            if self._carry[i] >= 0:
                paint(x, y, (150, 100, 40), pad=6)
        return img

    def close(self) -> None:
        """Nothing to release."""


def raw_env(**kwargs: Any) -> TrashCollectionEnv:
    """The parallel environment itself (PettingZoo naming)."""
    return TrashCollectionEnv(**kwargs)


def parallel_env(**kwargs: Any) -> TrashCollectionEnv:
    """A :class:`TrashCollectionEnv` (``ParallelEnv``); keyword arguments as its constructor."""
    return TrashCollectionEnv(**kwargs)


def env(**kwargs: Any) -> Any:
    """The AEC version of :func:`parallel_env` (via ``parallel_to_aec``)."""
    return parallel_to_aec(parallel_env(**kwargs))


def _integer_action(value: Any, agent: str) -> int:
    """``value`` as an action index, refusing non-integers and values outside [0, 7)."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    if isinstance(value, np.ndarray) and value.shape == () and np.issubdtype(value.dtype,
                                                                              np.integer):
        value, ok = value.item(), True
    if not ok or not 0 <= int(value) < len(ACTIONS):
        raise ValueError(f"action of {agent} must be an int in [0, {len(ACTIONS)}); got {value!r}")
    return int(value)
