"""Environments: Atari preprocessing, episodic lives, MinAtar and the identity task."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from adaptlearn.rl import IdentityEnv, MinAtarEnv, make_env
from adaptlearn.rl.envs import EpisodicLifeEnv


def test_pong_preprocessing_shapes_and_clipped_rewards() -> None:
    env = make_env("ALE/Pong-v5", seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space.shape == (4, 84, 84)
    assert env.action_space.n == 6
    rewards = set()
    for _ in range(200):
        obs, r, _term, _trunc, _ = env.step(env.action_space.sample())
        rewards.add(r)
        assert obs.shape == (4, 84, 84)
    assert rewards <= {-1.0, 0.0, 1.0} and -1.0 in rewards  # Pong concedes points quickly
    # Sticky actions are off (paper-era protocol) and the frame skip is done by the wrapper.
    ale = env.unwrapped.ale
    assert ale.getFloat("repeat_action_probability") == 0.0
    env.close()


def test_noframeskip_v4_style_id_maps_to_the_same_game() -> None:
    env = make_env("PongNoFrameskip-v4", frame_stack=2, screen_size=64)
    assert env.observation_space.shape == (2, 64, 64)
    env.close()


def test_episodic_life_ends_training_episode_without_resetting_game() -> None:
    env = make_env("ALE/Breakout-v5", seed=1, clip_rewards=False)
    env.reset(seed=1)
    ale = env.unwrapped.ale
    start_lives = ale.lives()
    rng = np.random.default_rng(0)
    for _ in range(2000):
        _, _, term, _trunc, info = env.step(int(rng.integers(4)))
        if term:
            break
    assert term and "episode" not in info  # a life loss, not the game's end
    lost = ale.lives()
    assert lost == start_lives - 1
    env.reset()
    assert ale.lives() == lost  # the game went on
    assert any(isinstance(w, EpisodicLifeEnv) for w in _wrappers(env))
    env.close()


def _wrappers(env):
    while hasattr(env, "env"):
        yield env
        env = env.env


def test_make_env_rejects_unknown_ids_clearly() -> None:
    with pytest.raises(ValueError, match="is not supported"):
        make_env("Nope-v0")
    with pytest.raises(ValueError, match="not an ale-py game"):
        make_env("ALE/NotAGame-v5")
    with pytest.raises(ValueError, match="MinAtar games are"):
        make_env("MinAtar/pong")


@pytest.mark.parametrize("env", [MinAtarEnv("breakout"), IdentityEnv(3, 5)],
                         ids=["minatar", "identity"])
def test_gymnasium_env_checker(env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker reports many problems only as warnings
        check_env(env, skip_render_check=True)


def test_minatar_observation_layout_and_seeding() -> None:
    env = make_env("MinAtar/breakout")
    obs, _ = env.reset(seed=3)
    assert obs.shape == (4, 10, 10) and obs.dtype == np.uint8 and obs.max() == 1
    traj = [env.step(a % 6)[0] for a in range(30)]
    obs2, _ = env.reset(seed=3)
    traj2 = [env.step(a % 6)[0] for a in range(30)]
    assert np.array_equal(obs, obs2)
    assert all(np.array_equal(a, b) for a, b in zip(traj, traj2, strict=True))


def test_classic_control_records_raw_episode_stats() -> None:
    env = make_env("CartPole-v1", seed=0)
    total, info = 0.0, {}
    for _ in range(600):
        _, r, term, trunc, info = env.step(env.action_space.sample())
        total += r
        if term or trunc:
            break
    assert info["episode"]["r"] == pytest.approx(total)
