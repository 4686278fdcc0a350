"""AE-DQN agent: elimination in acting and in the target, persistence, a tiny learning run."""

import numpy as np
import pytest
import torch

from adaptlearn.textgame import (
    AEDQNAgent,
    AgentConfig,
    TextQuestEnv,
    elimination_stats,
    train_agent,
)


def _env():
    return TextQuestEnv("egg", n_verbs=6, n_nouns=14, max_steps=30)


def _agent(env, mode="ae-dqn", **kw):
    cfg = AgentConfig(mode=mode, learn_start=50, batch_size=16, **kw)
    return AEDQNAgent(len(env.vocab), env.obs_len, env.n_actions, cfg, seed=0)


def _eliminate(agent, actions):
    """Make the bandit certain that ``actions`` are invalid in every state."""
    agent.bandit.theta[actions] = 0.0
    agent.bandit.theta[actions, -1] = 5.0  # bias weight: prediction 5 >> threshold everywhere
    agent._reset_cache()


def test_eliminated_actions_never_appear_in_the_target_max(fill):
    env = _env()
    agent = _agent(env)
    fill(env, agent, 200)
    batch = agent.replay.batch(np.arange(64))
    with torch.no_grad():
        q_next = agent.q_target(agent.table.tokens[batch["next_obs"]])
    plain = agent.bellman_targets(batch)
    best = torch.unique(q_next.argmax(dim=1))  # eliminate every row's unrestricted argmax
    _eliminate(agent, best)
    targets = agent.bellman_targets(batch)
    x = agent.aen_frozen.features(agent.table.tokens[batch["next_obs"]]).double()
    admissible = agent.bandit.lower_bound(x) <= agent.bandit.threshold
    assert not admissible[:, best].any()
    manual = q_next.masked_fill(~admissible, -torch.inf).max(dim=1).values
    r, d = torch.from_numpy(batch["reward"]), torch.from_numpy(batch["terminated"])
    torch.testing.assert_close(targets, r + agent.config.gamma * (1 - d) * manual)
    live = d == 0
    assert (targets[live] < plain[live]).all()  # the test can fail: the max really moved


def test_plain_dqn_target_uses_every_action(fill):
    env = _env()
    agent = _agent(env, mode="dqn")
    fill(env, agent, 100)
    batch = agent.replay.batch(np.arange(32))
    with torch.no_grad():
        best = agent.q_target(agent.table.tokens[batch["next_obs"]]).max(dim=1).values
    r, d = torch.from_numpy(batch["reward"]), torch.from_numpy(batch["terminated"])
    expected = r + agent.config.gamma * (1 - d) * best
    torch.testing.assert_close(agent.bellman_targets(batch), expected)


@pytest.mark.parametrize("epsilon", [0.0, 1.0])
def test_acting_never_picks_an_eliminated_action(epsilon, fill):
    env = _env()
    agent = _agent(env)
    fill(env, agent, 100)
    banned = torch.arange(0, env.n_actions, 2)  # half of all commands, incl. greedy favourites
    _eliminate(agent, banned)
    ids = np.arange(len(agent.table))
    picks = {agent.act(int(i), epsilon) for i in ids for _ in range(3)}
    assert not picks & set(banned.tolist())
    if epsilon == 1.0:
        assert len(picks) > 10  # exploration is uniform over the (non-empty) admissible set


def test_empty_admissible_set_falls_back_to_lowest_bound(fill):
    env = _env()
    agent = _agent(env)
    fill(env, agent, 20)
    _eliminate(agent, torch.arange(env.n_actions))
    agent.bandit.theta[7, -1] = 4.0  # "inventory": the least-certainly-invalid one
    agent._reset_cache()
    adm = agent.admissible(np.arange(len(agent.table)))
    assert adm.sum(dim=1).eq(1).all() and adm[:, 7].all()


def test_masked_dqn_acts_inside_the_true_admissible_set():
    env = _env()
    agent = _agent(env, mode="masked-dqn")
    obs, info = env.reset(seed=0)
    oid = agent.table.add(obs, info["admissible_mask"])
    picks = {agent.act(oid, 1.0) for _ in range(100)} | {agent.act(oid, 0.0)}
    assert picks <= set(np.flatnonzero(info["admissible_mask"]).tolist())


def test_state_dict_round_trip_continues_identically(fill):
    env = _env()
    agent = _agent(env, refresh_every=60, train_every=2)
    fill(env, agent, 130)
    agent.refresh()
    state = agent.state_dict()
    clone = _agent(env, refresh_every=60, train_every=2)
    clone.load_state_dict(state)
    batch = agent.replay.batch(np.arange(40))
    torch.testing.assert_close(agent.bellman_targets(batch), clone.bellman_targets(batch))
    ids = np.arange(len(agent.table))
    assert torch.equal(agent.admissible(ids), clone.admissible(ids))
    assert "ae-dqn" in repr(agent)


def test_refresh_writes_the_bandit_solution_into_the_aen_head(fill):
    env = _env()
    agent = _agent(env)
    fill(env, agent, 150)
    agent.refresh()
    tokens = agent.table.tokens[: len(agent.table)]
    with torch.no_grad():
        pred = agent.aen(tokens).double()
        x = agent.aen_frozen.features(tokens).double()
    torch.testing.assert_close(pred, agent.bandit.mean(x), rtol=1e-4, atol=1e-5)


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="mode"):
        AgentConfig(mode="sarsa").validate()
    with pytest.raises(ValueError, match="escape_prob"):
        AgentConfig(escape_prob=2.0).validate()


def test_tiny_learning_run_shrinks_the_admissible_set_without_losing_valid_commands():
    """1,200 steps on a 92-command game: A'(start) drops far below |A|, keeps every valid one."""
    torch.set_num_threads(1)
    env, eval_env = _env(), _env()
    agent = _agent(env, beta=0.1, refresh_every=200, eps_decay_steps=1000, train_every=4)
    curve, summary = train_agent(env, agent, total_steps=1200, eval_env=eval_env, eval_every=600)
    obs, info = eval_env.reset(seed=0)
    adm = agent.admissible(agent.table.add(obs, info["admissible_mask"])).numpy()
    assert adm.sum() < 0.5 * env.n_actions
    assert adm[info["admissible_mask"]].all()
    assert curve[-1]["step"] == 1200 and set(summary) >= {"steps_to_solve", "solved"}


@pytest.mark.parametrize("mode,false_elim,true_elim", [("masked-dqn", 0.0, 1.0), ("dqn", 0.0, 0.0)])
def test_elimination_stats_against_the_true_mask(mode, false_elim, true_elim, fill):
    """The metrics judge A' against the env's mask: the oracle mask is perfect, DQN keeps all."""
    env = _env()
    agent = _agent(env, mode=mode)
    fill(env, agent, 100)
    stats = elimination_stats(_env(), agent)
    assert stats["false_elim_visited"] == false_elim and stats["true_elim_visited"] == true_elim
    assert stats["false_elim"] == false_elim and stats["gold_eliminated"] == 0
    assert stats["admissible_size_visited"] == pytest.approx(
        agent.table.masks[: len(agent.table)].sum(1).mean() if mode == "masked-dqn"
        else env.n_actions)


def test_ae_dqn_elimination_stats_count_valid_and_invalid_pairs(fill):
    env = _env()
    agent = _agent(env)
    fill(env, agent, 60)
    _eliminate(agent, torch.arange(8, env.n_actions))  # everything but the 8 base commands
    stats = elimination_stats(_env(), agent)
    masks = agent.table.masks[: len(agent.table)]
    expected = masks[:, 8:].sum() / masks.sum()
    assert stats["false_elim_visited"] == pytest.approx(expected)
    assert stats["true_elim_visited"] == pytest.approx((~masks[:, 8:]).sum() / (~masks).sum())


def test_visited_statistics_count_only_training_observations(monkeypatch):
    """`train_agent` passes `elimination_stats` the ids met in training only: rows that the
    evaluation episodes and the gold-path walk add to the table are left out."""
    from adaptlearn.textgame import agent as agent_module

    seen = []
    real = agent_module.elimination_stats

    def spy(env, agent, visited=None):
        seen.append(np.asarray(visited).copy())
        return real(env, agent, visited)

    monkeypatch.setattr(agent_module, "elimination_stats", spy)
    env = _env()
    agent = _agent(env)
    train_agent(env, agent, total_steps=300, eval_env=_env(), eval_every=150, eval_episodes=2)
    n = len(agent.replay)
    trained = set(agent.replay.obs[:n].tolist()) | set(agent.replay.next_obs[:n].tolist())
    last = set(seen[-1].tolist())
    assert len(seen) == 2 and len(last - trained) <= 1  # at most the final reset observation
    assert trained <= last
    assert len(agent.table) > len(last)  # evaluation / gold-path rows exist and are not counted
