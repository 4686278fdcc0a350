"""Training loops: flat IQL/QMIX and the two-level Ind-hDQN / hCom / hQmix with optional ACER.

``train(method, config, seed)`` runs one learner on one Trash Collection layout and returns its
learning curve and final greedy-evaluation metrics. Methods (with the later paper names as
aliases): ``iql`` (flat independent DQN), ``qmix`` (flat QMIX), ``ind-hdqn`` (``h-il``), ``hcom``
(``h-comm``), ``hqmix`` (``h-qmix``).

Hierarchical loop, per agent ``i`` (Tang et al., arXiv 1809.09332; h-DQN of Kulkarni et al.):
the high level picks a subgoal when agent ``i`` must decide; the shared goal-conditioned
controller acts on ``[o_i; goal map]`` and learns from the intrinsic reward; the subgoal ends on
reaching (or after ``subgoal_cap`` steps, or after one step for load/place). ``termination``:

* ``async``: each agent re-decides as soon as its own subgoal ends (the official h-IL code);
* ``sync_any``: all agents re-decide whenever any subgoal ends (interruption);
* ``sync_all``: agents whose subgoal ended wait (``stay``) until every subgoal has ended, then all
  re-decide together.

High-level data: at episode end :func:`~adaptlearn.marl.replay.high_level_transitions` turns the
episode into rows. With ACER every step yields a row (augmentation) holding all agents'
transitions (concurrency), sampled as whole rows. Without ACER, Ind-hDQN keeps one buffer per
agent with one transition per subgoal, sampled independently; hCom/hQmix (which need aligned
joint transitions) store one squeezed joint row per decision step.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from adaptlearn.core.validation import check_choice, check_int, check_probability, check_range
from adaptlearn.marl.learners import QLearner, epsilon_greedy
from adaptlearn.marl.networks import AgentQNetwork, CommNetQNetwork, QMixer
from adaptlearn.marl.replay import EpisodeLog, ReplayBuffer, high_level_transitions
from adaptlearn.marl.subgoals import INTRINSIC_REACH, INTRINSIC_STEP, SubgoalSpace
from adaptlearn.marl.trash_collection_v0 import LAYOUTS, STAY, TrashCollectionEnv

__all__ = [
    "FLAT_METHODS",
    "HIERARCHICAL_METHODS",
    "METHOD_ALIASES",
    "TrainConfig",
    "canonical_method",
    "train",
]

FLAT_METHODS = ("iql", "qmix")
HIERARCHICAL_METHODS = ("ind-hdqn", "hcom", "hqmix")
METHOD_ALIASES = {"h-il": "ind-hdqn", "h-comm": "hcom", "h-qmix": "hqmix", "il-dqn": "iql"}
N_NAV_ACTIONS = 5  # the controller moves or stays; load/place are primitive subgoals


def canonical_method(name: str) -> str:
    """Resolve aliases (``h-il`` -> ``ind-hdqn`` ...) and validate the name."""
    name = METHOD_ALIASES.get(name, name)
    return check_choice("method", name, FLAT_METHODS + HIERARCHICAL_METHODS, owner="train")


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (defaults: the spec's "minutes" configuration)."""

    layout: str = "small"
    """Trash Collection layout (``tiny``, ``small``, ``mini``, ``room``, ``field4``)."""
    total_steps: int = 20_000
    """Environment steps of training."""
    max_cycles: int = 0
    """Episode cap (0: the layout's)."""
    hidden: int = 64
    """Width of the 2 hidden layers of every network."""
    shared: bool = True
    """Share agent networks (with a one-hot agent id) instead of one network per agent."""
    lr: float = 5e-4
    """Adam learning rate (both levels and flat)."""
    batch_size: int = 64
    """Minibatch size."""
    buffer_size: int = 20_000
    """Rows per replay buffer."""
    train_every: int = 4
    """Environment steps between updates (one per level)."""
    target_update_every: int = 50
    """Updates between hard target copies."""
    gamma_flat: float = 0.99
    """Discount of the flat learners."""
    gamma_high: float = 0.95
    """High-level discount per primitive step (official h-IL: 0.95)."""
    gamma_low: float = 0.95
    """Controller discount."""
    eps_final: float = 0.05
    """Final exploration rate of every level."""
    flat_eps_frac: float = 0.5
    """Flat: fraction of steps over which epsilon falls 1 -> eps_final."""
    ctrl_eps_frac: float = 0.3
    """Controller: fraction of steps over which epsilon falls 1 -> eps_final."""
    meta_pretrain_frac: float = 0.2
    """High level: epsilon 1 and no updates for this fraction (Kulkarni's controller phase)."""
    meta_eps_frac: float = 0.5
    """High level: epsilon reaches eps_final at this fraction of steps."""
    subgoal_cap: int = 12
    """Steps after which an unreached navigation subgoal is cut off."""
    use_masks: bool = True
    """Subgoal-availability masks (domain knowledge; off = paper-faithful free choice)."""
    low_level: str = "learned"
    """``learned`` controller (h-DQN) or ``oracle`` shortest-path controller (ablation)."""
    termination: str = "async"
    """Subgoal termination: ``async``, ``sync_any`` or ``sync_all``."""
    acer: bool = False
    """Augmented Concurrent Experience Replay at the high level."""
    random_high_level: bool = False
    """Control: the high level never learns and picks uniformly among the (masked) subgoals, in
    training and evaluation; the low level learns as usual. A learned high level that does not
    beat this shows no learning of its own."""
    log_every: int = 1000
    """Steps between curve points."""
    window: int = 20
    """Training episodes averaged per curve point."""
    eval_episodes: int = 20
    """Greedy (epsilon = eval_eps) episodes at the end."""
    eval_eps: float = 0.05
    """Exploration during evaluation (a little, so that greedy loops cannot stall an episode)."""

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        o = "TrainConfig"
        check_choice("layout", self.layout, tuple(LAYOUTS), owner=o)
        for name in ("total_steps", "hidden", "batch_size", "buffer_size", "train_every",
                     "target_update_every", "subgoal_cap", "log_every", "window"):
            check_int(name, getattr(self, name), 1, owner=o)
        check_int("max_cycles", self.max_cycles, 0, owner=o)
        check_int("eval_episodes", self.eval_episodes, 0, owner=o)
        check_range("lr", self.lr, 0.0, 1.0, low_inclusive=False, owner=o)
        for name in ("gamma_flat", "gamma_high", "gamma_low", "eps_final", "flat_eps_frac",
                     "ctrl_eps_frac", "meta_pretrain_frac", "meta_eps_frac", "eval_eps"):
            check_probability(name, getattr(self, name), owner=o)
        if self.meta_eps_frac < self.meta_pretrain_frac:
            raise ValueError("`meta_eps_frac` of TrainConfig must be >= `meta_pretrain_frac`; "
                             f"got {self.meta_eps_frac} < {self.meta_pretrain_frac}")
        check_choice("low_level", self.low_level, ("learned", "oracle"), owner=o)
        check_choice("termination", self.termination, ("async", "sync_any", "sync_all"), owner=o)


def linear_schedule(step: int, start_step: float, end_step: float, final: float) -> float:
    """1 before ``start_step``, then linear to ``final`` at ``end_step``, flat after."""
    if step <= start_step:
        return 1.0
    if step >= end_step:
        return final
    return 1.0 + (final - 1.0) * (step - start_step) / (end_step - start_step)


def _fields(n: int, obs_dim: int, state_dim: int, n_actions: int) -> dict[str, tuple[int, ...]]:
    return {"obs": (n, obs_dim), "state": (state_dim,), "action": (n,), "reward": (n,),
            "tau": (n,), "next_obs": (n, obs_dim), "next_state": (state_dim,),
            "next_mask": (n, n_actions), "beta": (n,), "done": (n,)}


_DTYPES = {"action": np.int64, "next_mask": np.bool_}


def _stack_agent_batches(batches: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per-agent batches ``[B, 1, ...]`` -> ``[B, n, ...]`` (independent sampling)."""
    out = {}
    for k in batches[0]:
        if k in ("state", "next_state"):
            out[k] = batches[0][k]
        else:
            out[k] = torch.cat([b[k] for b in batches], dim=1)
    return out


class _Stats:
    """Rolling training-episode statistics for the curve."""

    def __init__(self, window: int) -> None:
        self.returns: deque[float] = deque(maxlen=window)
        self.lengths: deque[int] = deque(maxlen=window)
        self.success: deque[float] = deque(maxlen=window)
        self.reached = 0
        self.nav_ended = 0
        self.episodes = 0

    def add(self, ret: float, length: int, success: bool) -> None:
        self.returns.append(ret)
        self.lengths.append(length)
        self.success.append(float(success))
        self.episodes += 1

    def row(self, step: int) -> dict[str, float]:
        row = {"step": step, "team_return": float(np.mean(self.returns)),
               "episode_length": float(np.mean(self.lengths)),
               "success": float(np.mean(self.success)), "episodes": self.episodes}
        if self.nav_ended:
            row["subgoal_reach"] = self.reached / self.nav_ended
            self.reached = self.nav_ended = 0
        return row


class _Hierarchy:
    """The two-level agents of one run: high-level learner, controller, buffers, episode loop."""

    def __init__(self, method: str, cfg: TrainConfig, env: TrashCollectionEnv,
                 rng: np.random.Generator, device: torch.device | str | None = None) -> None:
        self.method, self.cfg, self.env, self.rng = method, cfg, env, rng
        self.sg = SubgoalSpace(env)
        n, d, s, g = env.n_agents, env.obs_dim, env.state_dim, self.sg.n_goals
        self.n = n
        self.joint = method in ("hcom", "hqmix")
        if method == "hcom":
            net: torch.nn.Module = CommNetQNetwork(d, g, n, hidden=cfg.hidden)
        else:
            net = AgentQNetwork(d, g, n, hidden=cfg.hidden, shared=cfg.shared)
        mixer = QMixer(n, s) if method == "hqmix" else None
        self.high = QLearner(net, mixer=mixer, gamma=cfg.gamma_high, lr=cfg.lr,
                             target_update_every=cfg.target_update_every, device=device)
        self.concurrent = self.joint or cfg.acer
        if self.concurrent:
            self.high_buffers = [ReplayBuffer(cfg.buffer_size, _fields(n, d, s, g), _DTYPES)]
        else:
            self.high_buffers = [ReplayBuffer(cfg.buffer_size, _fields(1, d, s, g), _DTYPES)
                                 for _ in range(n)]
        self.ctrl_in = d + self.sg.grid_size
        self.low: QLearner | None = None
        if cfg.low_level == "learned":
            self.low = QLearner(AgentQNetwork(self.ctrl_in, N_NAV_ACTIONS, 1, hidden=cfg.hidden),
                                gamma=cfg.gamma_low, lr=cfg.lr,
                                target_update_every=cfg.target_update_every, device=device)
            self.low_buffer = ReplayBuffer(
                cfg.buffer_size, _fields(1, self.ctrl_in, 1, N_NAV_ACTIONS), _DTYPES)
        self.nav_mask = np.ones((1, N_NAV_ACTIONS), bool)

    def store_episode(self, log: EpisodeLog) -> None:
        rows = high_level_transitions(log, self.cfg.gamma_high, augment=self.cfg.acer,
                                      joint=self.joint)
        for row in rows:
            row["action"] = row.pop("goal")
            if self.concurrent:
                self.high_buffers[0].add(row)
                continue
            for i in np.flatnonzero(row["valid"]):
                self.high_buffers[i].add({
                    k: (v if k in ("state", "next_state") else v[i: i + 1])
                    for k, v in row.items() if k not in ("valid", "t")})

    def update_high(self) -> None:
        bs = self.cfg.batch_size
        if any(len(b) == 0 for b in self.high_buffers):
            return
        if self.concurrent:
            batch = self.high_buffers[0].sample(bs, self.rng)
        else:
            batch = _stack_agent_batches([b.sample(bs, self.rng) for b in self.high_buffers])
        self.high.update(batch)

    def update_low(self) -> None:
        if self.low is not None and len(self.low_buffer) >= self.cfg.batch_size:
            self.low.update(self.low_buffer.sample(self.cfg.batch_size, self.rng))

    def run_episode(self, *, eps_high: float, eps_low: float, learn: bool,
                    step_hook: Callable[[], None] | None, stats: _Stats | None,
                    max_steps: int | None = None) -> tuple[float, int, bool]:
        env, sg, n, cfg = self.env, self.sg, self.n, self.cfg
        obs_d, _ = env.reset()
        agents = env.possible_agents
        obs = np.stack([obs_d[a] for a in agents])
        log = EpisodeLog()
        goals = np.zeros(n, np.int64)
        cells: list[Any] = [None] * n
        seg_len = np.zeros(n, np.int64)
        decide = np.ones(n, bool)
        waiting = np.zeros(n, bool)
        ret, steps, terminated = 0.0, 0, False
        while True:
            masks = np.stack([sg.available(i, use_masks=cfg.use_masks) for i in range(n)])
            if learn:
                log.obs.append(obs)
                log.state.append(env.state())
                log.masks.append(masks)
                log.decide.append(decide.copy())
            if decide.any():
                q = self.high.q_values(obs)
                chosen = epsilon_greedy(q, masks, eps_high, self.rng)
                for i in np.flatnonzero(decide):
                    goals[i] = chosen[i]
                    cells[i] = sg.target_cell(int(chosen[i]))
                    seg_len[i] = 0
                waiting[:] = False
            if learn:
                log.goals.append(goals.copy())
            actions = np.full(n, STAY, np.int64)
            nav = [i for i in range(n) if not waiting[i] and not sg.is_primitive(int(goals[i]))
                   and cells[i] is not None]
            for i in range(n):
                if not waiting[i] and sg.is_primitive(int(goals[i])):
                    actions[i] = sg.primitive_action(int(goals[i]))
            ctrl_obs = None
            if nav:
                ctrl_obs = np.stack([np.concatenate([obs[i], sg.goal_map(cells[i])])
                                     for i in nav])
                if self.low is None:
                    for i in nav:
                        actions[i] = sg.oracle_action(i, cells[i])
                else:
                    with torch.no_grad():
                        x = torch.from_numpy(ctrl_obs).to(self.low.device).unsqueeze(1)
                        qn = self.low.net(x)[:, 0].cpu().numpy()
                    acts = epsilon_greedy(qn, np.ones_like(qn, bool), eps_low, self.rng)
                    actions[nav] = acts
            obs_d, rew, terms, truncs, _ = env.step(
                {a: int(actions[i]) for i, a in enumerate(agents)})
            next_obs = np.stack([obs_d[a] for a in agents])
            r = float(rew[agents[0]])
            ret += r
            steps += 1
            terminated = bool(terms[agents[0]])
            done = terminated or bool(truncs[agents[0]])
            ended = np.zeros(n, bool)
            positions = env.positions
            for i in range(n):
                if waiting[i]:
                    continue
                seg_len[i] += 1
                if i not in nav:
                    ended[i] = True
                    continue
                reached = positions[i] == cells[i]
                ended[i] = reached or seg_len[i] >= cfg.subgoal_cap
                if stats is not None and ended[i]:
                    stats.nav_ended += 1
                    stats.reached += int(reached)
                if learn and self.low is not None and ctrl_obs is not None:
                    k = nav.index(i)
                    self.low_buffer.add({
                        "obs": ctrl_obs[k][None], "state": np.zeros(1), "action": [actions[i]],
                        "reward": [INTRINSIC_REACH if reached else INTRINSIC_STEP], "tau": [1.0],
                        "next_obs": np.concatenate([next_obs[i], sg.goal_map(cells[i])])[None],
                        "next_state": np.zeros(1), "next_mask": self.nav_mask,
                        "beta": [1.0], "done": [float(reached)]})
            if cfg.termination == "async":
                decide = ended
            elif cfg.termination == "sync_any":
                decide = np.full(n, ended.any())
            else:
                waiting |= ended
                decide = np.full(n, waiting.all())
            if learn:
                log.rewards.append(r)
            obs = next_obs
            if step_hook is not None:
                step_hook()
            if done or (max_steps is not None and steps >= max_steps):
                break
        if learn:
            log.obs.append(obs)
            log.state.append(env.state())
            log.masks.append(np.stack([sg.available(i, use_masks=cfg.use_masks)
                                       for i in range(n)]))
            log.decide.append(decide | waiting)
            log.terminated = terminated
            self.store_episode(log)
        return ret, steps, terminated


class _Flat:
    """Flat IQL / QMIX over primitive actions."""

    def __init__(self, method: str, cfg: TrainConfig, env: TrashCollectionEnv,
                 rng: np.random.Generator, device: torch.device | str | None = None) -> None:
        self.cfg, self.env, self.rng = cfg, env, rng
        n, d, s = env.n_agents, env.obs_dim, env.state_dim
        self.n, self.n_actions = n, env.action_space(env.possible_agents[0]).n
        net = AgentQNetwork(d, self.n_actions, n, hidden=cfg.hidden, shared=cfg.shared)
        mixer = QMixer(n, s) if method == "qmix" else None
        self.learner = QLearner(net, mixer=mixer, gamma=cfg.gamma_flat, lr=cfg.lr,
                                target_update_every=cfg.target_update_every, device=device)
        self.buffer = ReplayBuffer(cfg.buffer_size, _fields(n, d, s, self.n_actions), _DTYPES)
        self.all_mask = np.ones((n, self.n_actions), bool)

    def update(self) -> None:
        if len(self.buffer) >= self.cfg.batch_size:
            self.learner.update(self.buffer.sample(self.cfg.batch_size, self.rng))

    def run_episode(self, *, eps: float | Callable[[], float], learn: bool,
                    step_hook: Callable[[], None] | None,
                    max_steps: int | None = None) -> tuple[float, int, bool]:
        env, n = self.env, self.n
        agents = env.possible_agents
        obs_d, _ = env.reset()
        obs = np.stack([obs_d[a] for a in agents])
        state = env.state()
        ret, steps, terminated = 0.0, 0, False
        while True:
            e = eps() if callable(eps) else eps
            actions = epsilon_greedy(self.learner.q_values(obs), self.all_mask, e, self.rng)
            obs_d, rew, terms, truncs, _ = env.step(
                {a: int(actions[i]) for i, a in enumerate(agents)})
            next_obs = np.stack([obs_d[a] for a in agents])
            next_state = env.state()
            r = float(rew[agents[0]])
            terminated = bool(terms[agents[0]])
            if learn:
                self.buffer.add({
                    "obs": obs, "state": state, "action": actions, "reward": np.full(n, r),
                    "tau": np.ones(n), "next_obs": next_obs, "next_state": next_state,
                    "next_mask": self.all_mask, "beta": np.ones(n),
                    "done": np.full(n, float(terminated))})
            obs, state = next_obs, next_state
            ret += r
            steps += 1
            if step_hook is not None:
                step_hook()
            if terminated or truncs[agents[0]] or (max_steps is not None and steps >= max_steps):
                break
        return ret, steps, terminated


def train(method: str, cfg: TrainConfig, seed: int, *,
          progress: Callable[[int], None] | None = None,
          device: torch.device | str | None = None) -> dict[str, Any]:
    """Train ``method`` on ``cfg.layout`` for ``cfg.total_steps`` env steps with ``seed``.

    Args:
        method: ``iql``, ``qmix``, ``ind-hdqn``, ``hcom``, ``hqmix`` (or an alias).
        cfg: hyperparameters (``cfg.acer`` is ignored by the flat methods).
        seed: seeds torch, the numpy generator of the learner and the env.
        progress: called with the number of new env steps (e.g. a tqdm ``update``).
        device: where the networks train (default CPU); the environment and the replay
            buffers stay on the CPU, minibatches are moved at each update.

    Returns:
        ``{"curve": [rows], "final": {team_return, success, episode_length, auc_return},
        "wall_s": float, "steps_per_s": float}``; the curve holds the rolling mean over the last
        ``cfg.window`` training episodes every ``cfg.log_every`` steps.
    """
    cfg.validate()
    method = canonical_method(method)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = TrashCollectionEnv(cfg.layout, max_cycles=cfg.max_cycles or None)
    env.reset(seed=seed)
    total = cfg.total_steps
    stats = _Stats(cfg.window)
    curve: list[dict[str, float]] = []
    step = 0
    t0 = time.perf_counter()
    flat = method in FLAT_METHODS
    agent: _Flat | _Hierarchy = (_Flat if flat else _Hierarchy)(method, cfg, env, rng, device)

    def hook() -> None:
        nonlocal step
        step += 1
        if step % cfg.train_every == 0:
            if isinstance(agent, _Flat):
                agent.update()
            else:
                agent.update_low()
                if step >= cfg.meta_pretrain_frac * total and not cfg.random_high_level:
                    agent.update_high()
        if step % cfg.log_every == 0 and stats.episodes:
            curve.append(stats.row(step))
        if progress is not None:
            progress(1)

    while step < total:
        remaining = total - step
        if isinstance(agent, _Flat):
            def eps() -> float:
                return linear_schedule(step, 0, cfg.flat_eps_frac * total, cfg.eps_final)
            ret, length, success = agent.run_episode(eps=eps, learn=True, step_hook=hook,
                                                     max_steps=remaining)
        else:
            eps_high = 1.0 if cfg.random_high_level else linear_schedule(
                step, cfg.meta_pretrain_frac * total, cfg.meta_eps_frac * total, cfg.eps_final)
            eps_low = linear_schedule(step, 0, cfg.ctrl_eps_frac * total, cfg.eps_final)
            ret, length, success = agent.run_episode(
                eps_high=eps_high, eps_low=eps_low, learn=True, step_hook=hook, stats=stats,
                max_steps=remaining)
        if length < remaining or success:
            stats.add(ret, length, success)
    wall = time.perf_counter() - t0
    returns, lengths, successes = [], [], []
    for _ in range(cfg.eval_episodes):
        if isinstance(agent, _Flat):
            ret, length, success = agent.run_episode(eps=cfg.eval_eps, learn=False,
                                                     step_hook=None)
        else:
            ret, length, success = agent.run_episode(
                eps_high=1.0 if cfg.random_high_level else cfg.eval_eps, eps_low=cfg.eval_eps,
                learn=False, step_hook=None, stats=None)
        returns.append(ret)
        lengths.append(length)
        successes.append(float(success))
    final = {
        "team_return": float(np.mean(returns)) if returns else float("nan"),
        "success": float(np.mean(successes)) if successes else float("nan"),
        "episode_length": float(np.mean(lengths)) if lengths else float("nan"),
        "auc_return": float(np.mean([r["team_return"] for r in curve])) if curve else 0.0,
    }
    return {"curve": curve, "final": final, "wall_s": wall, "steps_per_s": total / wall}
