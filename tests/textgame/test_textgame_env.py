"""TextQuestEnv: Gymnasium conformance, determinism, the elimination signal and the quests."""

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from adaptlearn.textgame import ENV_ID, TextQuestEnv


@pytest.mark.parametrize("quest", ["egg", "troll"])
def test_check_env_without_warnings(quest):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(ENV_ID, quest=quest, n_verbs=6, n_nouns=20, render_mode="ansi")
        check_env(env.unwrapped)
        env.reset(seed=0)
        assert "You see" in env.render()


def test_default_action_space_is_large_and_mostly_inadmissible():
    env = TextQuestEnv()
    assert env.action_space.n == 8 + 20 * 60 > 1000
    _, info = env.reset(seed=0)
    mask = info["admissible_mask"]
    assert mask.shape == (env.action_space.n,) and mask.dtype == bool
    assert 3 <= mask.sum() <= 20  # a handful of useful commands among 1,208


def _rollout(env, actions, seed):
    obs, info = env.reset(seed=seed)
    out = [obs.copy()]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs.copy(), r, term, trunc, info["elimination"], info["text"]))
        if term or trunc:
            obs, info = env.reset()
    return out


def test_same_game_seed_gives_identical_games_and_rollouts():
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 8 + 6 * 20, 300)
    a = TextQuestEnv("troll", n_verbs=6, n_nouns=20)
    b = TextQuestEnv("troll", n_verbs=6, n_nouns=20)
    assert a.commands == b.commands and a.vocab == b.vocab and a.gold_path == b.gold_path
    ra, rb = _rollout(a, actions, 3), _rollout(b, actions, 3)
    for x, y in zip(ra[1:], rb[1:], strict=True):
        assert np.array_equal(x[0], y[0]) and x[1:] == y[1:]
    c = TextQuestEnv("troll", n_verbs=6, n_nouns=20, game_seed=1)
    assert c.nouns != a.nouns or c.gold_path != a.gold_path


def test_pickle_round_trip_continues_identically():
    env = TextQuestEnv("egg", n_verbs=6, n_nouns=20)
    env.reset(seed=0)
    env.step(env.gold_path[0])
    clone = pickle.loads(pickle.dumps(env))
    for a in env.gold_path[1:]:
        o1, r1, t1, _, _ = env.step(a)
        o2, r2, t2, _, _ = clone.step(a)
        assert np.array_equal(o1, o2) and r1 == r2 and t1 == t2


def test_elimination_signal_matches_admissible_mask():
    """e = 1 exactly for the commands outside the mask of the state they were taken in."""
    env = TextQuestEnv("troll", n_verbs=8, n_nouns=20)
    rng = np.random.default_rng(1)
    _, info = env.reset(seed=0)
    n_valid = 0
    for _ in range(800):
        mask = info["admissible_mask"]
        a = rng.choice(np.flatnonzero(mask)) if rng.random() < 0.7 else rng.integers(env.n_actions)
        obs, _, term, trunc, info = env.step(a)
        assert info["elimination"] == int(not mask[a])
        assert env.observation_space.contains(obs)
        n_valid += int(mask[a])
        if term or trunc:
            _, info = env.reset()
    assert n_valid > 200


def test_distractor_nouns_are_never_admissible():
    env = TextQuestEnv("egg", n_verbs=6, n_nouns=30)
    _, info = env.reset(seed=0)
    distractor = [a for a in range(8, env.n_actions) if (a - 8) % env.n_nouns >= 14]
    assert not info["admissible_mask"][distractor].any()
    _, _, _, _, info = env.step(distractor[0])
    assert info["elimination"] == 1 and "know that word" in info["text"]


@pytest.mark.parametrize("quest,low,high", [("egg", 3, 8), ("troll", 9, 16)])
def test_gold_path_solves_the_quest_with_sparse_reward(quest, low, high):
    env = TextQuestEnv(quest)
    assert low <= len(env.gold_path) <= high
    env.reset(seed=0)
    rewards = []
    for i, a in enumerate(env.gold_path):
        _, r, term, trunc, info = env.step(a)
        rewards.append(r)
        assert info["elimination"] == 0
        assert term == (i == len(env.gold_path) - 1) and not trunc
    assert info["won"]
    assert rewards[:-1] == [-env.step_penalty] * (len(rewards) - 1)
    assert rewards[-1] == pytest.approx(env.goal_reward - env.step_penalty)


def test_truncation_at_step_limit_and_dark_cellar():
    env = TextQuestEnv("egg", n_verbs=6, n_nouns=20, max_steps=5)
    env.reset(seed=0)
    flags = [env.step(6)[2:4] for _ in range(5)]  # "look" five times
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])


def test_inventory_reaches_the_observation():
    env = TextQuestEnv("troll", n_verbs=6, n_nouns=20)
    env.reset(seed=0)
    take_lamp = next(a for a in env.gold_path if env.commands[a] == "take lamp")
    for a in env.gold_path[: env.gold_path.index(take_lamp) + 1]:
        obs, *_ = env.step(a)
    inv = obs[sum(env.SLOTS[:2]):]
    assert "lamp" in env.decode(inv)


@pytest.mark.parametrize("kwargs,field", [
    ({"quest": "dragon"}, "quest"), ({"n_verbs": 3}, "n_verbs"), ({"n_nouns": 5}, "n_nouns"),
    ({"e_noise": 1.5}, "e_noise"), ({"max_steps": 0}, "max_steps"),
])
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TextQuestEnv(**kwargs)


def test_e_noise_is_seeded():
    env = TextQuestEnv("egg", n_verbs=6, n_nouns=20, e_noise=0.3)
    def signals(seed):
        env.reset(seed=seed)
        return [env.step(6)[4]["elimination"] for _ in range(40)]
    assert signals(5) == signals(5)
    assert 0 < sum(signals(5)) < 40  # "look" is valid: every 1 is a flip


def test_bad_actions_and_step_before_reset_raise():
    import numpy as np
    import pytest

    from adaptlearn.textgame import TextQuestEnv

    env = TextQuestEnv("egg")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    for bad in (2.9, True, env.n_actions, -1):
        with pytest.raises(ValueError, match="action must be an int"):
            env.step(bad)
    env.step(np.int64(1))
