"""Environments for the accelerated-RL samplers: Atari (ale-py), MinAtar, classic control.

:func:`make_env` is the one entry point. It validates the id and applies the standard Atari
preprocessing of the paper era (Stooke & Abbeel 2018, arXiv 1803.02811; Mnih et al. 2015):
up to 30 no-op starts, frame skip 4 with a max-pool over the last two frames, 84x84 grey,
sticky actions off, episodic lives for training, reward sign clipping and a stack of 4 frames.
Episode statistics (``info["episode"]``) always hold the *raw* game score and length.

Every environment returned is a plain :class:`gymnasium.Env`; samplers reset it themselves when
an episode ends (the same-step convention documented in :mod:`adaptlearn.rl.samplers`).

Importing this module registers every id :func:`make_env` accepts with Gymnasium under the
``adaptlearn/`` namespace (:func:`registered_ids`), so ``gym.make("adaptlearn/Pong-v5")``,
``gym.make_vec``, Stable-Baselines3's ``make_vec_env`` and CleanRL scripts build the same env:
``adaptlearn/<Game>-v5`` for every single-player game bundled with ale-py,
``adaptlearn/MinAtar-<game>-v0``,
``adaptlearn/Identity-v0`` and ``adaptlearn/<classic-control id>``. Keyword arguments of
``gym.make`` go to :func:`make_env`. Our wrappers inherit ``gymnasium.utils.RecordConstructorArgs``
so ``env.spec`` can recreate them (``gymnasium.utils.env_checker.check_env`` needs it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from adaptlearn.core import check_int, check_probability

__all__ = [
    "CLASSIC_CONTROL_IDS",
    "MINATAR_GAMES",
    "ClipRewardEnv",
    "CrashAfterSteps",
    "EnvFactory",
    "EpisodicLifeEnv",
    "IdentityEnv",
    "MinAtarEnv",
    "make_env",
    "registered_ids",
]

CLASSIC_CONTROL_IDS = (
    "CartPole-v1", "CartPole-v0", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1",
    "MountainCarContinuous-v0",
)
MINATAR_GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")


class EpisodicLifeEnv(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """End the *training* episode on a life loss without resetting the game.

    ``terminated`` is set when a life is lost; the following :meth:`reset` does one no-op step
    instead of a real reset, unless the game itself was over. This is the DeepMind/rlpyt
    convention (a real reset after every life loss, as gymnasium's ``terminal_on_life_loss``
    does, would restart the game). Requires an ALE env underneath (``unwrapped.ale``).
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._lives = 0
        self._real_done = True

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._real_done = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self._lives:
            terminated = True
        self._lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if self._real_done or seed is not None:
            obs, info = self.env.reset(seed=seed, options=options)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
        self._real_done = False
        self._lives = self.env.unwrapped.ale.lives()
        return obs, info


class ClipRewardEnv(gym.RewardWrapper, gym.utils.RecordConstructorArgs):
    """Clip rewards to their sign, {-1, 0, +1} (Mnih et al. 2015)."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.RewardWrapper.__init__(self, env)

    def reward(self, reward: float) -> float:
        return float(np.sign(reward))


class MinAtarEnv(gym.Env):
    """A MinAtar game (Young & Tian 2019; PyPI ``minatar``) as a Gymnasium env.

    Observations are ``uint8`` arrays of shape ``(C, 10, 10)`` (channels first, 0/1), the full
    action set of 6 actions is used. Randomness comes from ``reset(seed=...)``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, game: str, *, sticky_action_prob: float = 0.1,
                 difficulty_ramping: bool = True, max_episode_steps: int = 100_000) -> None:
        import minatar

        if game not in MINATAR_GAMES:
            raise ValueError(f"MinAtar game must be one of {MINATAR_GAMES}; got {game!r}")
        check_probability("sticky_action_prob", sticky_action_prob, owner="MinAtarEnv")
        self.game = game
        self._env = minatar.Environment(game, sticky_action_prob=sticky_action_prob,
                                        difficulty_ramping=difficulty_ramping)
        h, w, c = self._env.state_shape()
        self.observation_space = spaces.Box(0, 1, shape=(c, h, w), dtype=np.uint8)
        self.action_space = spaces.Discrete(self._env.num_actions())
        self.max_episode_steps = max_episode_steps
        self._t = 0

    def _obs(self) -> np.ndarray:
        return np.ascontiguousarray(self._env.state().transpose(2, 0, 1), dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        # MinAtar keeps its own RandomState; derive it from gymnasium's seeded generator.
        self._env.seed(int(self.np_random.integers(2**31 - 1)))
        self._env.reset()
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward, done = self._env.act(int(action))
        self._t += 1
        truncated = (not done) and self._t >= self.max_episode_steps
        return self._obs(), float(reward), bool(done), bool(truncated), {}


class IdentityEnv(gym.Env):
    """Tiny test task: observe a one-hot symbol, reward 1 for naming it (fixed-length episodes).

    Observation ``float32[n]`` one-hot, ``Discrete(n)`` actions, ``episode_length`` steps then
    truncation (not termination), so it also exercises bootstrapping at time limits.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, n: int = 4, episode_length: int = 20) -> None:
        self.n = check_int("n", n, 2, owner="IdentityEnv")
        self.episode_length = check_int("episode_length", episode_length, 1, owner="IdentityEnv")
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.n,), dtype=np.float32)
        self.action_space = spaces.Discrete(self.n)
        self._symbol = 0
        self._t = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.n, dtype=np.float32)
        obs[self._symbol] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        self._symbol = int(self.np_random.integers(self.n))
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward = float(int(action) == self._symbol)
        self._symbol = int(self.np_random.integers(self.n))
        self._t += 1
        return self._obs(), reward, False, self._t >= self.episode_length, {}


def _atari_rom(env_id: str) -> str:
    """``"ALE/Pong-v5"``, ``"PongNoFrameskip-v4"`` or ``"pong"`` -> ``"ALE/Pong-v5"``."""
    if env_id.startswith("ALE/"):
        return env_id
    name = env_id.removesuffix("NoFrameskip-v4").removesuffix("-v5")
    if "_" in name or name.islower():
        name = "".join(part.capitalize() for part in name.split("_"))
    return f"ALE/{name}-v5"


def _is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/") or env_id.endswith("NoFrameskip-v4")


def make_env(
    env_id: str,
    *,
    seed: int | None = None,
    episodic_life: bool = True,
    clip_rewards: bool = True,
    frame_stack: int = 4,
    noop_max: int = 30,
    screen_size: int = 84,
    max_episode_steps: int | None = None,
    sticky_action_prob: float | None = None,
) -> gym.Env:
    """Build one environment by id, with the standard preprocessing for its kind.

    Args:
        env_id: ``"ALE/<Game>-v5"`` or ``"<Game>NoFrameskip-v4"`` (Atari through ale-py),
            ``"MinAtar/<game>"`` (e.g. ``"MinAtar/breakout"``), a classic-control id (e.g.
            ``"CartPole-v1"``) or ``"Identity-v0"`` (test task).
        seed: if given, the env's first ``reset`` is seeded with it (samplers seed themselves).
        episodic_life: Atari only: life loss ends the training episode (use ``False`` to eval).
        clip_rewards: Atari only: sign-clip rewards. ``info["episode"]`` keeps raw scores.
        frame_stack: Atari only: frames stacked into the observation (channels first).
        noop_max: Atari only: up to this many no-ops after a reset (0 for the few games whose
            first action is not NOOP).
        screen_size: Atari only: side of the square grey frame.
        max_episode_steps: time limit in agent steps (Atari default 27,000 = 108k frames).
        sticky_action_prob: Atari default 0 (paper protocol), MinAtar default 0.1.

    Returns:
        The env. Atari observations are ``uint8[frame_stack, screen_size, screen_size]``.

    Raises:
        ValueError: for an unknown id, naming the supported families.
    """
    if not isinstance(env_id, str):
        raise ValueError(f"`env_id` must be a string; got {env_id!r}")
    env: gym.Env
    if _is_atari(env_id):
        import ale_py
        from gymnasium.wrappers import (
            AtariPreprocessing,
            FrameStackObservation,
            RecordEpisodeStatistics,
        )

        gym.register_envs(ale_py)
        rom_id = _atari_rom(env_id)
        if rom_id not in gym.registry:
            raise ValueError(f"`env_id` {env_id!r} is not an ale-py game (looked for {rom_id!r})")
        check_int("frame_stack", frame_stack, 1, owner="make_env")
        check_int("noop_max", noop_max, 0, owner="make_env")
        env = gym.make(
            rom_id, frameskip=1, repeat_action_probability=sticky_action_prob or 0.0,
            full_action_space=False, obs_type="grayscale",  # AtariPreprocessing reads the
            # screen from ale itself; a grey base env skips an unused RGB copy on every frame
            max_num_frames_per_episode=4 * (max_episode_steps or 27_000),
        )
        if env.unwrapped.get_action_meanings()[0] != "NOOP":
            noop_max = 0  # no no-op action (Backgammon, Video Checkers): no random no-op starts
        env = AtariPreprocessing(env, noop_max=noop_max, frame_skip=4, screen_size=screen_size)
        env = RecordEpisodeStatistics(env)
        if episodic_life:
            env = EpisodicLifeEnv(env)
        if clip_rewards:
            env = ClipRewardEnv(env)
        env = FrameStackObservation(env, frame_stack)
    elif env_id.startswith("MinAtar/"):
        from gymnasium.wrappers import RecordEpisodeStatistics

        game = env_id.split("/", 1)[1].removesuffix("-v1").lower()
        if game not in MINATAR_GAMES:
            raise ValueError(f"`env_id` {env_id!r}: MinAtar games are {MINATAR_GAMES}")
        env = MinAtarEnv(game, sticky_action_prob=0.1 if sticky_action_prob is None
                         else sticky_action_prob, max_episode_steps=max_episode_steps or 100_000)
        env = RecordEpisodeStatistics(env)
    elif env_id == "Identity-v0":
        from gymnasium.wrappers import RecordEpisodeStatistics

        env = RecordEpisodeStatistics(IdentityEnv(episode_length=max_episode_steps or 20))
    elif env_id in CLASSIC_CONTROL_IDS:
        from gymnasium.wrappers import RecordEpisodeStatistics

        kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
        env = RecordEpisodeStatistics(gym.make(env_id, **kwargs))
    else:
        raise ValueError(
            f"`env_id` {env_id!r} is not supported: use an ale-py id ('ALE/Pong-v5', "
            f"'PongNoFrameskip-v4'), 'MinAtar/<game>' with game in {MINATAR_GAMES}, "
            f"'Identity-v0' or one of {CLASSIC_CONTROL_IDS}"
        )
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


@dataclass(frozen=True)
class EnvFactory:
    """A picklable ``() -> gym.Env`` (sent to worker processes and Ray actors).

    Example: ``EnvFactory("ALE/Pong-v5", {"episodic_life": False})()``.
    """

    env_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    crash_after_steps: int | None = None
    """Fault injection for tests: the env's process exits after this many steps."""

    def __call__(self) -> gym.Env:
        env = make_env(self.env_id, **self.kwargs)
        if self.crash_after_steps is not None:
            env = CrashAfterSteps(env, self.crash_after_steps)
        return env


EnvFn = Callable[[], gym.Env]


class CrashAfterSteps(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Fault injection for tests: kill the *process* (``os._exit``) after ``n`` steps."""

    def __init__(self, env: gym.Env, n: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, n=n)
        gym.Wrapper.__init__(self, env)
        self._left = n

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self._left -= 1
        if self._left < 0:
            import os

            os._exit(3)
        return self.env.step(action)


# ---- Gymnasium registration -------------------------------------------------------------------
NAMESPACE = "adaptlearn"


#: ROMs that ale-py ships for its multi-agent API only (no single-player ``ALE/<Game>-v5`` id).
_MULTIPLAYER_ONLY_ROMS = frozenset({"combat", "joust", "maze_craze", "warlords"})


def _bundled_atari_games() -> list[str]:
    """CamelCase names of the ROMs shipped inside ale-py (found without importing it)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("ale_py")
    if spec is None or not spec.submodule_search_locations:
        return []
    roms = Path(next(iter(spec.submodule_search_locations))) / "roms"
    return sorted("".join(p.upper() if p[0].isdigit() else p.capitalize()
                          for p in f.stem.split("_"))
                  for f in roms.glob("*.bin") if f.stem not in _MULTIPLAYER_ONLY_ROMS)


def registered_ids() -> dict[str, str]:
    """``{gymnasium id: make_env id}`` of every env this package registers (see the module doc)."""
    ids = {f"{NAMESPACE}/{g}-v5": f"ALE/{g}-v5" for g in _bundled_atari_games()}
    ids.update({f"{NAMESPACE}/MinAtar-{g}-v0": f"MinAtar/{g}" for g in MINATAR_GAMES})
    ids[f"{NAMESPACE}/Identity-v0"] = "Identity-v0"
    ids.update({f"{NAMESPACE}/{c}": c for c in CLASSIC_CONTROL_IDS})
    return ids


def make_registered(env_id: str, **kwargs: Any) -> gym.Env:
    """Entry point of the registered ids: ``make_env(env_id, **kwargs)``."""
    return make_env(env_id, **kwargs)


def _register_all() -> None:
    for gym_id, env_id in registered_ids().items():
        if gym_id not in gym.registry:
            gym.register(gym_id, entry_point="adaptlearn.rl.envs:make_registered",
                         kwargs={"env_id": env_id})


_register_all()
