"""Environments: Atari preprocessing, episodic lives, MinAtar and the identity task."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from adaptlearn.rl import IdentityEnv, MinAtarEnv, make_env
from adaptlearn.rl.envs import EpisodicLifeEnv, registered_ids


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


def test_grey_base_env_gives_the_frames_of_gymnasiums_rgb_stack() -> None:
    """make_env renders grey frames for speed; observations must equal the RGB-based stack."""
    import ale_py
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gym.register_envs(ale_py)
    ref = gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0,
                   full_action_space=False)
    assert ref.unwrapped._obs_type == "rgb"
    ref = FrameStackObservation(AtariPreprocessing(ref, noop_max=30, frame_skip=4), 4)
    ours = make_env("ALE/Breakout-v5", episodic_life=False, clip_rewards=False)
    assert ours.unwrapped._obs_type == "grayscale"
    obs_a, _ = ref.reset(seed=3)
    obs_b, _ = ours.reset(seed=3)
    np.testing.assert_array_equal(obs_a, obs_b)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(1000):
        action = int(rng.integers(4))
        a, b = ref.step(action), ours.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]
        if a[2] or a[3]:
            ends += 1
            np.testing.assert_array_equal(ref.reset()[0], ours.reset()[0])
    assert ends >= 1  # resets were compared too


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


def _check_registered(gym_id: str) -> None:
    import gymnasium as gym

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a wrapped env always warns that it differs from its unwrapped version; classic
        # control's unbounded Box, Pendulum's action range and CartPole-v0's age warn too:
        # gymnasium's own envs, not failures of ours
        warnings.filterwarnings("ignore", message=".*(different from the unwrapped|infinity|"
                                "symmetric and normalized|out of date)")
        env = gym.make(gym_id)
        check_env(env, skip_render_check=True)
    env.close()


_ALL_IDS = registered_ids()
_QUICK_IDS = [i for i, e in _ALL_IDS.items() if not e.startswith("ALE/")] + ["adaptlearn/Pong-v5"]


@pytest.mark.parametrize("gym_id", _QUICK_IDS)
def test_registered_ids_pass_gymnasium_check_env(gym_id: str) -> None:
    _check_registered(gym_id)


@pytest.mark.slow
@pytest.mark.parametrize("gym_id", [i for i, e in _ALL_IDS.items() if e.startswith("ALE/")])
def test_every_registered_atari_id_passes_check_env(gym_id: str) -> None:
    _check_registered(gym_id)


def test_registration_covers_every_family_make_env_accepts() -> None:
    import gymnasium as gym

    ids = registered_ids()
    assert {"adaptlearn/Pong-v5", "adaptlearn/Breakout-v5", "adaptlearn/MinAtar-breakout-v0",
            "adaptlearn/Identity-v0", "adaptlearn/CartPole-v1"} <= set(ids)
    assert len([e for e in ids.values() if e.startswith("ALE/")]) >= 100  # ale-py's ROMs
    assert all(i in gym.registry for i in ids)
    # gym.make passes keyword arguments through to make_env; the spec recreates the env
    env = gym.make("adaptlearn/Identity-v0", max_episode_steps=3)
    env.reset(seed=0)
    assert [env.step(0)[3] for _ in range(3)] == [False, False, True]
    assert env.spec is not None and env.spec.kwargs["env_id"] == "Identity-v0"
    vec = gym.make_vec("adaptlearn/CartPole-v1", num_envs=2, vectorization_mode="sync")
    assert vec.reset(seed=0)[0].shape == (2, 4)
    vec.close()
