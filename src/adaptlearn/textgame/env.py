"""``TextQuestEnv``: a generated text adventure with a large combinatorial action space.

The game stands in for the Zork quests of Zahavy et al. (2018): a handful of rooms, a few real
objects, and a command set made of ``go <direction>``, ``look``, ``inventory`` and every
``<verb> <noun>`` pair of ``n_verbs`` verbs and ``n_nouns`` nouns, most of them distractor nouns
that exist only in the parser's vocabulary (the reference code's ``take garbage`` copies). In any
state only ~5-15 commands do something; every other command gets a fixed refusal ("You can't see
any such thing.", "Nothing happens.", ...) and the **elimination signal** ``e = 1``, returned in
``info["elimination"]`` — the free, binary "that did not work" feedback the paper builds on.

Two quests share one generated world:

* ``"egg"`` (short, ~4-6 steps): walk to the forest, ``climb tree``, ``take egg``, ``open egg``.
* ``"troll"`` (long, ~10-14 steps): fetch the lamp and the sword, ``move rug``, ``open trapdoor``,
  ``light lamp``, ``go down`` into the dark cellar and ``attack troll``.

Rewards are sparse: ``goal_reward`` when the quest is done, ``-step_penalty`` on every step (the
paper's Zork setting is +100 / -1 per step; the defaults here are that divided by 100).

References:
    Zahavy, Haroush, Merlis, Mankowitz, Mannor. "Learn What Not to Learn: Action Elimination with
    Deep Reinforcement Learning." NeurIPS 2018, arXiv:1809.02121.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from adaptlearn.core import check_choice, check_int, check_probability, check_range

__all__ = ["DIRECTIONS", "QUESTS", "VERBS", "GameState", "TextQuestEnv"]

DIRECTIONS = ("north", "south", "east", "west", "up", "down")
_OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east",
             "up": "down", "down": "up"}
_OFFSET = {"north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0)}
QUESTS = ("egg", "troll")
# Quest verbs first, so that small action spaces can still solve both quests.
VERBS = ("take", "open", "climb", "light", "move", "attack", "drop", "read", "eat", "close",
         "push", "pull", "kick", "smell", "wave", "rub", "ring", "dig", "lower", "raise",
         "enter", "unlock", "turn", "shake", "burn", "cut", "tie", "fill", "pour", "touch")
# Real objects: (noun, takeable, openable, readable, edible)
_OBJECTS = (
    ("egg", True, True, False, False), ("tree", False, False, False, False),
    ("nest", False, False, False, False), ("lamp", True, False, False, False),
    ("sword", True, False, False, False), ("troll", False, False, False, False),
    ("rug", False, False, False, False), ("trapdoor", False, True, False, False),
    ("leaflet", True, False, True, False), ("mailbox", False, True, False, False),
    ("bottle", True, True, False, False), ("rope", True, False, False, False),
    ("garlic", True, False, False, True), ("book", True, True, True, False),
)
_N_REAL = len(_OBJECTS)
_ROOM_WORDS = ("kitchen", "attic", "clearing", "gallery", "cave", "studio", "chapel", "garden",
               "hallway", "library", "pantry", "cellar", "forest", "canyon", "meadow", "tower",
               "loft", "vault", "shed", "barn")
_SYLLABLES = ("ba", "ko", "ri", "zu", "me", "ta", "lo", "vi", "ne", "gro", "pha", "shu", "dra",
              "que", "sti", "mar", "bel", "fen", "tor", "ulk")
_STRUCT = ("you", "see", "are", "in", "the", "carry", "nothing", "a", "lit", "unlit", "open",
           "closed", "moved", "up", "tree", "dark", "it", "is", "pitch", "black", "living", "room",
           "west", "of", "house", "forest", "dead")
_FEEDBACK = {
    "unknown": "I don't know that word.",
    "not_here": "You can't see any such thing.",
    "no_exit": "You can't go that way.",
    "fixed": "That's fixed in place.",
    "held": "You already have that.",
    "not_held": "You don't have that.",
    "nothing": "Nothing happens.",
    "dark": "It is too dark to see.",
    "taken": "Taken.",
    "dropped": "Dropped.",
    "opened": "Opened.",
    "already_open": "It is already open.",
    "closed": "Closed.",
    "already_closed": "It is already closed.",
    "cant_open": "You cannot open that.",
    "read": "The text says welcome to the great underground empire.",
    "eaten": "Thank you it really hit the spot.",
    "climb": "You climb up the tree.",
    "lit": "The lamp is now on.",
    "already_lit": "It is already on.",
    "rug": "With a great effort the rug is moved revealing a trapdoor.",
    "rug_again": "Having moved the rug already you find it impossible to move it again.",
    "bare_hands": "Attacking the troll with bare hands is suicidal.",
    "troll_dies": "The troll falls dead. Your sword is no longer glowing.",
    "egg_goal": "There is no obvious way to open the egg.",
    "look": "You look around.",
    "inventory": "You check your belongings.",
    "moved": "You walk.",
    "trapdoor_closed": "The trapdoor is closed.",
    "start": "Welcome to the quest.",
}


def _tokenize(text: str) -> list[str]:
    out = []
    for raw in text.lower().split():
        w = "".join(ch for ch in raw if ch.isalnum())
        if w:
            out.append(w)
    return out


@dataclass(frozen=True)
class GameState:
    """Immutable state of one game: where the player and every object are, and the flags.

    ``location[i]`` is a room index, ``-1`` (carried) or ``-2`` (gone, e.g. eaten or hidden).
    """

    room: int
    location: tuple[int, ...]
    opened: frozenset[str] = field(default_factory=frozenset)
    lamp_lit: bool = False
    rug_moved: bool = False
    troll_dead: bool = False
    egg_goal: bool = False


@dataclass
class _World:
    room_names: list[str]
    exits: list[dict[str, int]]
    start_room: int
    forest: int
    tree_top: int
    living: int
    cellar: int
    initial_location: tuple[int, ...]


class TextQuestEnv(gym.Env[np.ndarray, np.int64]):
    """Seeded text adventure with ``8 + n_verbs * n_nouns`` discrete commands (Gymnasium ``Env``).

    Observations are token ids (``int64``, shape ``(obs_len,)`` with ``obs_len = 48``): three
    fixed slots, padded with 0, so that the inventory always reaches the network (pitfall 2 of the
    spec): location + visible objects (24 tokens), last feedback (16), inventory (8). The same
    ``game_seed`` gives the same world and byte-identical text; ``reset(seed=...)`` only seeds the
    optional elimination-signal noise.

    ``info`` (from ``reset`` and ``step``):
        ``"elimination"`` (int): the paper's signal ``e`` for the command just taken: 1 when it was
        refused or had no effect (0 at reset). With ``e_noise > 0`` it is flipped w.p. ``e_noise``.
        ``"admissible_mask"`` (bool array, ``(n_actions,)``): the commands that would not get
        ``e = 1`` in the new state — for metrics and the oracle-masked baseline only; an AE-DQN
        agent must not read it. ``"won"`` (bool), ``"text"`` (str), ``"gold_path_length"`` (int).

    Args:
        quest: ``"egg"`` (short) or ``"troll"`` (long).
        n_verbs: verbs used in ``<verb> <noun>`` commands, from :data:`VERBS` in order (>= 6 so
            that both quests are solvable).
        n_nouns: nouns (the 14 real objects first, then generated distractor nouns).
        n_rooms: ordinary rooms on a grid (the tree top and the cellar are added).
        game_seed: seed of the world generator.
        max_steps: episode step limit (truncation).
        goal_reward: reward for finishing the quest.
        step_penalty: subtracted on every step.
        e_noise: probability of flipping the elimination signal.
        render_mode: ``None`` or ``"ansi"``.

    References:
        Zahavy et al., "Learn What Not to Learn: Action Elimination with Deep Reinforcement
        Learning", NeurIPS 2018 (Zork egg / troll quests, elimination signal).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    SLOTS: ClassVar[tuple[int, int, int]] = (24, 16, 8)

    def __init__(
        self,
        quest: str = "egg",
        *,
        n_verbs: int = 20,
        n_nouns: int = 60,
        n_rooms: int = 6,
        game_seed: int = 0,
        max_steps: int = 100,
        goal_reward: float = 1.0,
        step_penalty: float = 0.01,
        e_noise: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        owner = "TextQuestEnv"
        self.quest = check_choice("quest", quest, QUESTS, owner=owner)
        self.n_verbs = check_int("n_verbs", n_verbs, 6, len(VERBS), owner=owner)
        self.n_nouns = check_int("n_nouns", n_nouns, _N_REAL, 2000, owner=owner)
        self.n_rooms = check_int("n_rooms", n_rooms, 3, len(_ROOM_WORDS), owner=owner)
        self.game_seed = check_int("game_seed", game_seed, 0, owner=owner)
        self.max_steps = check_int("max_steps", max_steps, 1, owner=owner)
        self.goal_reward = check_range("goal_reward", goal_reward, 0.0, low_inclusive=False,
                                       owner=owner)
        self.step_penalty = check_range("step_penalty", step_penalty, 0.0, owner=owner)
        self.e_noise = check_probability("e_noise", e_noise, owner=owner)
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"], owner=owner)
        self.render_mode = render_mode

        # The world (map, rooms, object places, hence the gold path) and the distractor nouns
        # come from two independent streams of ``game_seed``, so games that differ only in
        # their vocabulary size (212 vs 1,208 commands) are the same game.
        world_seq, noun_seq = np.random.SeedSequence(self.game_seed).spawn(2)
        self.verbs: tuple[str, ...] = VERBS[: self.n_verbs]
        self.nouns: tuple[str, ...] = (tuple(o[0] for o in _OBJECTS)
                                       + self._distractors(np.random.default_rng(noun_seq)))
        self._props = {o[0]: o[1:] for o in _OBJECTS}
        self.commands: list[str] = [f"go {d}" for d in DIRECTIONS] + ["look", "inventory"]
        self.commands += [f"{v} {n}" for v in self.verbs for n in self.nouns]
        self._world = self._generate(np.random.default_rng(world_seq))
        self.vocab: list[str] = self._build_vocab()
        self._word_id = {w: i for i, w in enumerate(self.vocab)}
        self.obs_len = sum(self.SLOTS)
        self.action_space = spaces.Discrete(len(self.commands))
        self.observation_space = spaces.Box(0, len(self.vocab) - 1, (self.obs_len,), np.int64)
        self._valid_cache: dict[GameState, np.ndarray] = {}
        # (state, feedback) -> (token ids, text): the observation is a pure function of both.
        self._obs_cache: dict[tuple[GameState, str], tuple[np.ndarray, str]] = {}
        self.gold_path: list[int] = self._gold_path()
        self._state = self._initial_state()
        self._was_reset = False
        self._feedback = _FEEDBACK["start"]
        self._t = 0

    # --- generation -----------------------------------------------------------------------------
    def _distractors(self, gen: np.random.Generator) -> tuple[str, ...]:
        taken = {o[0] for o in _OBJECTS} | set(_ROOM_WORDS) | set(_STRUCT) | set(VERBS)
        out: list[str] = []
        while len(out) < self.n_nouns - _N_REAL:
            k = int(gen.integers(2, 4))
            word = "".join(_SYLLABLES[int(i)] for i in gen.integers(0, len(_SYLLABLES), k))
            if word not in taken:
                taken.add(word)
                out.append(word)
        return tuple(out)

    def _generate(self, gen: np.random.Generator) -> _World:
        # Rooms grow on a grid as a random tree, so north/south/east/west stay consistent.
        coords = [(0, 0)]
        exits: list[dict[str, int]] = [{}]
        while len(coords) < self.n_rooms:
            src = int(gen.integers(len(coords)))
            d = ("north", "south", "east", "west")[int(gen.integers(4))]
            dx, dy = _OFFSET[d]
            c = (coords[src][0] + dx, coords[src][1] + dy)
            if c in coords:
                continue
            coords.append(c)
            exits.append({})
            new = len(coords) - 1
            exits[src][d] = new
            exits[new][_OPPOSITE[d]] = src
        words = [str(w) for w in gen.permutation(np.array(_ROOM_WORDS))[: self.n_rooms]]
        names = [f"the {w}" for w in words]
        order = [int(i) for i in gen.permutation(self.n_rooms)]
        start, forest, living = order[0], order[1], order[2]
        names[start] = "west of house"
        names[forest] = "the forest"
        names[living] = "the living room"
        tree_top, cellar = self.n_rooms, self.n_rooms + 1
        names += ["up a tree", "the cellar"]
        exits += [{"down": forest}, {"up": living}]
        exits[forest]["up"] = tree_top  # "go up" works as well as "climb tree"
        exits[living]["down"] = cellar  # usable only once the trapdoor is open
        others = list(order[3:]) or [start]
        loc = [0] * _N_REAL
        place = {"egg": tree_top, "tree": forest, "nest": tree_top, "troll": cellar,
                 "rug": living, "trapdoor": -2, "mailbox": start, "leaflet": start}
        for i, (noun, *_rest) in enumerate(_OBJECTS):
            loc[i] = place.get(noun, others[int(gen.integers(len(others)))])
        return _World(names, exits, start, forest, tree_top, living, cellar, tuple(loc))

    def _initial_state(self) -> GameState:
        return GameState(room=self._world.start_room, location=self._world.initial_location)

    def _build_vocab(self) -> list[str]:
        words: set[str] = set(_STRUCT) | set(self.nouns) | set(self.verbs)
        for text in list(_FEEDBACK.values()) + self._world.room_names:
            words.update(_tokenize(text))
        return ["<pad>", *sorted(words)]

    # --- rules ------------------------------------------------------------------------------------
    def _visible(self, s: GameState) -> list[int]:
        """Indices of real objects in the room (not carried); none in the dark cellar."""
        if self._is_dark(s):
            return []
        return [i for i, r in enumerate(s.location) if r == s.room]

    def _is_dark(self, s: GameState) -> bool:
        lamp = self.nouns.index("lamp")
        return s.room == self._world.cellar and not (s.lamp_lit and s.location[lamp] == -1)

    def _resolve(self, s: GameState, action: int) -> tuple[int, str, GameState, bool]:
        """Apply ``action`` to ``s``: ``(e, feedback key, next state, quest done)``. Pure."""
        w = self._world
        if action < len(DIRECTIONS):
            d = DIRECTIONS[action]
            dest = w.exits[s.room].get(d)
            if dest is None:
                return 1, "no_exit", s, False
            if s.room == w.living and d == "down" and "trapdoor" not in s.opened:
                return 1, "no_exit" if not s.rug_moved else "trapdoor_closed", s, False
            return 0, "moved", _replace(s, room=dest), False
        if action == 6:
            return 0, "look", s, False
        if action == 7:
            return 0, "inventory", s, False
        verb = self.verbs[(action - 8) // self.n_nouns]
        n = (action - 8) % self.n_nouns
        if n >= _N_REAL:
            return 1, "unknown", s, False
        noun = self.nouns[n]
        held = s.location[n] == -1
        here = n in self._visible(s)
        if not (held or here):
            return 1, ("dark" if self._is_dark(s) else "not_here"), s, False
        takeable, openable, readable, edible = self._props[noun]
        if verb == "take":
            if held:
                return 1, "held", s, False
            if not takeable:
                return 1, "fixed", s, False
            return 0, "taken", _move(s, n, -1), False
        if verb == "drop":
            return (0, "dropped", _move(s, n, s.room), False) if held else (1, "not_held", s, False)
        if verb == "open":
            if noun == "egg":
                if held:
                    return 0, "egg_goal", _replace(s, egg_goal=True), self.quest == "egg"
                return 1, "not_held", s, False
            if not openable:
                return 1, "cant_open", s, False
            if noun in s.opened:
                return 1, "already_open", s, False
            return 0, "opened", _replace(s, opened=s.opened | {noun}), False
        if verb == "close":
            if not openable or noun == "egg":
                return 1, "nothing", s, False
            if noun not in s.opened:
                return 1, "already_closed", s, False
            return 0, "closed", _replace(s, opened=s.opened - {noun}), False
        if verb == "read" and readable:
            return 0, "read", s, False
        if verb == "eat" and edible:
            return 0, "eaten", _move(s, n, -2), False
        if verb == "climb" and noun == "tree":
            return 0, "climb", _replace(s, room=w.tree_top), False
        if verb == "light" and noun == "lamp":
            if not held:
                return 1, "not_held", s, False
            if s.lamp_lit:
                return 1, "already_lit", s, False
            return 0, "lit", _replace(s, lamp_lit=True), False
        if verb == "move" and noun == "rug":
            if s.rug_moved:
                return 1, "rug_again", s, False
            trap = self.nouns.index("trapdoor")
            return 0, "rug", _move(_replace(s, rug_moved=True), trap, w.living), False
        if verb == "attack" and noun == "troll" and not s.troll_dead:
            sword = self.nouns.index("sword")
            if s.location[sword] != -1:
                return 1, "bare_hands", s, False
            done = self.quest == "troll"
            troll = self.nouns.index("troll")
            return 0, "troll_dies", _move(_replace(s, troll_dead=True), troll, -2), done
        return 1, "nothing", s, False

    def admissible_mask(self, state: GameState | None = None) -> np.ndarray:
        """Boolean mask ``(n_actions,)`` of the commands with ``e = 0`` in ``state`` (default: now).

        Computed with the same rules as :meth:`step` (only commands naming base actions or real
        objects can be admissible; distractor nouns never are) and cached per state.
        """
        s = self._state if state is None else state
        mask = self._valid_cache.get(s)
        if mask is None:
            mask = np.zeros(len(self.commands), dtype=bool)
            for a in range(8):
                mask[a] = self._resolve(s, a)[0] == 0
            for v in range(self.n_verbs):
                for n in range(_N_REAL):
                    a = 8 + v * self.n_nouns + n
                    mask[a] = self._resolve(s, a)[0] == 0
            mask.flags.writeable = False
            self._valid_cache[s] = mask
        return mask.copy()

    def _gold_path(self) -> list[int]:
        """Shortest command sequence solving the quest (breadth-first search over game states)."""
        start = self._initial_state()
        # Only quest objects and state-changing verbs: keeps the search space small and exact
        # for the shortest path (other commands never bring the goal closer).
        quest_nouns = {"egg", "tree", "lamp", "sword", "troll", "rug", "trapdoor"}
        useful = [a for a in range(len(self.commands)) if a < 6 or (
            a >= 8 and self.nouns[(a - 8) % self.n_nouns] in quest_nouns
            and self.verbs[(a - 8) // self.n_nouns] not in ("drop", "close", "eat", "read"))]
        parent: dict[GameState, tuple[GameState, int] | None] = {start: None}
        queue = deque([start])
        while queue:
            s = queue.popleft()
            for a in useful:
                e, _, nxt, done = self._resolve(s, a)
                if e or (nxt in parent and not done):
                    continue
                if done:
                    path = [a]
                    while parent[s] is not None:
                        s, a_prev = parent[s]  # type: ignore[misc]
                        path.append(a_prev)
                    return path[::-1]
                parent[nxt] = (s, a)
                queue.append(nxt)
        raise RuntimeError("quest is not solvable")  # pragma: no cover - generator guarantees it

    # --- observation ----------------------------------------------------------------------------
    def _texts(self) -> tuple[str, str, str]:
        s = self._state
        if self._is_dark(s):
            where = "It is pitch black."
        else:
            seen = [self._describe(i) for i in self._visible(s)]
            where = f"{self._world.room_names[s.room]}. You see {', '.join(seen) or 'nothing'}."
        inv = [self._describe(i) for i, r in enumerate(s.location) if r == -1]
        return where, _FEEDBACK[self._feedback], f"You carry {', '.join(inv) or 'nothing'}."

    def _describe(self, i: int) -> str:
        noun = self.nouns[i]
        s = self._state
        if noun == "lamp":
            return f"a {'lit' if s.lamp_lit else 'unlit'} lamp"
        if self._props[noun][1] and noun != "egg":
            return f"a {'open' if noun in s.opened else 'closed'} {noun}"
        if noun == "rug" and s.rug_moved:
            return "a moved rug"
        return f"a {noun}"

    def _observation(self) -> np.ndarray:
        return self._render_cached()[0].copy()

    def _render_cached(self) -> tuple[np.ndarray, str]:
        """Token ids and text of the current (state, feedback), cached (both are pure in them)."""
        key = (self._state, self._feedback)
        hit = self._obs_cache.get(key)
        if hit is None:
            texts = self._texts()
            out = np.zeros(self.obs_len, dtype=np.int64)
            offset = 0
            for text, width in zip(texts, self.SLOTS, strict=True):
                ids = [self._word_id[w] for w in _tokenize(text)][:width]
                out[offset: offset + len(ids)] = ids
                offset += width
            out.flags.writeable = False
            hit = (out, " | ".join(texts))
            self._obs_cache[key] = hit
        return hit

    def decode(self, obs: np.ndarray) -> str:
        """Words of an observation (padding dropped)."""
        return " ".join(self.vocab[int(i)] for i in obs if i > 0)

    def _info(self, e: int, won: bool) -> dict[str, Any]:
        return {"elimination": int(e), "admissible_mask": self.admissible_mask(), "won": won,
                "text": self._render_cached()[1], "gold_path_length": len(self.gold_path)}

    # --- Gymnasium API ----------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode in the start room; ``seed`` seeds the elimination-signal noise."""
        super().reset(seed=seed)
        self._was_reset = True
        self._state = self._initial_state()
        self._feedback = "start"
        self._t = 0
        return self._observation(), self._info(0, False)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Execute command ``action``; returns ``(obs, reward, terminated, truncated, info)``.

        Raises:
            RuntimeError: before the first ``reset()``.
            ValueError: an action that is not an integer in ``[0, n_actions)`` (a float such as
                2.9 is refused, not truncated).
        """
        if not self._was_reset:
            raise RuntimeError("call reset() before step()")
        ok = isinstance(action, int | np.integer) and not isinstance(action, bool | np.bool_)
        if isinstance(action, np.ndarray) and action.shape == () and np.issubdtype(
                action.dtype, np.integer):
            ok = True
        if not ok or not 0 <= int(action) < len(self.commands):
            raise ValueError(
                f"action must be an int in [0, {len(self.commands)}); got {action!r}"
            )
        a = int(action)
        e, key, self._state, done = self._resolve(self._state, a)
        self._feedback = key
        self._t += 1
        if self.e_noise > 0 and self.np_random.random() < self.e_noise:
            e = 1 - e
        reward = -self.step_penalty + (self.goal_reward if done else 0.0)
        truncated = not done and self._t >= self.max_steps
        return self._observation(), float(reward), done, truncated, self._info(e, done)

    def render(self) -> str | None:  # type: ignore[override]
        """The current text (``render_mode="ansi"``)."""
        if self.render_mode == "ansi":
            return "\n".join(self._texts())
        return None

    @property
    def n_actions(self) -> int:
        """Number of commands."""
        return len(self.commands)

    def __repr__(self) -> str:
        return (f"TextQuestEnv(quest={self.quest!r}, n_actions={self.n_actions}, "
                f"n_verbs={self.n_verbs}, n_nouns={self.n_nouns}, n_rooms={self.n_rooms}, "
                f"game_seed={self.game_seed}, max_steps={self.max_steps})")

    __str__ = __repr__


def _replace(s: GameState, **kw: Any) -> GameState:
    from dataclasses import replace

    return replace(s, **kw)


def _move(s: GameState, obj: int, where: int) -> GameState:
    loc = list(s.location)
    loc[obj] = where
    return _replace(s, location=tuple(loc))
