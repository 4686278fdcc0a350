"""AE-DQN agent (and the DQN / masked-DQN baselines) plus a training loop for text games.

AE-DQN (Zahavy et al. 2018, Algorithm 1) = DQN + an Action Elimination Network trained to regress
the elimination signal ``e`` + a :class:`LinearContextualBandit` on the AEN's last hidden layer.
An action is eliminated in ``s`` iff ``theta_a^T x(s) - sqrt(beta x^T V_a^-1 x) > l``; the
admissible set ``A'(s)`` is used for **both** epsilon-greedy exploration (uniform over ``A'``) and
the max of the Bellman target. Every ``refresh_every`` steps (the paper's ``L``) the AEN is copied
to a frozen ``E^-``, the bandit is refitted on the whole replay with the new features, and its
solution is written into the AEN head (the reference code's "shallow" update).

As in the paper's Algorithm 1 and the reference code, the bandit is updated only at refreshes
(``online_bandit=False``, the default). ``online_bandit=True`` also applies each new sample at once
(rank-one Sherman-Morrison with the frozen features: LinUCB with fixed features, the setting of the
paper's confidence lemma).

References:
    Zahavy, Haroush, Merlis, Mankowitz, Mannor, "Learn What Not to Learn: Action Elimination with
    Deep Reinforcement Learning", NeurIPS 2018 (arXiv:1809.02121); code ``TomZahavy/CB_AE_DQN``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from adaptlearn.core import (
    check_choice,
    check_int,
    check_probability,
    check_range,
)
from adaptlearn.textgame.bandit import LinearContextualBandit
from adaptlearn.textgame.networks import EliminationNetwork, QNetwork
from adaptlearn.textgame.replay import ObservationTable, ReplayBuffer

__all__ = ["MODES", "AEDQNAgent", "AgentConfig", "elimination_stats", "evaluate", "train_agent"]

MODES = ("dqn", "ae-dqn", "masked-dqn")


@dataclass
class AgentConfig:
    """Hyperparameters of the DQN, the AEN and the bandit (reference-code values in brackets)."""

    mode: str = "ae-dqn"
    """``"dqn"`` (no elimination), ``"ae-dqn"``, or ``"masked-dqn"`` (true mask: upper bound)."""
    gamma: float = 0.9
    """Discount [0.8]."""
    lr: float = 1e-3
    """Adam learning rate of the Q-network [4.3e-4, centred RMSProp]."""
    aen_lr: float = 1e-3
    """Adam learning rate of the AEN [4.3e-4]."""
    batch_size: int = 32
    """Minibatch size [32]."""
    replay_size: int = 50_000
    """Replay capacity [1M]."""
    learn_start: int = 200
    """Steps before learning starts [50k]."""
    train_every: int = 4
    """Env steps per gradient update [1]."""
    target_every: int = 250
    """Steps between target-network syncs [10k]."""
    eps_start: float = 1.0
    """Initial exploration rate [1]."""
    eps_end: float = 0.05
    """Final exploration rate [0.05]."""
    eps_decay_steps: int = 4000
    """Linear decay length after ``learn_start`` [200k-1M]."""
    embed_dim: int = 16
    """Learned embedding width [300, frozen word2vec]."""
    q_filters: int = 16
    """Q-network filters per height [500]."""
    aen_filters: int = 10
    """AEN filters per height; bandit dimension ``3 * aen_filters + 1`` [100 -> 301]."""
    beta: float = 0.2
    """Constant confidence radius for unit-norm features + bias [2, unnormalised 301-d]; 0.2
    let AE-DQN solve the egg quest most often (5 of 6 runs at 80 steps per command, 92 and 212
    commands) among {0.1, 0.2, 0.3, 0.5} x AEN widths {4, 10} on the tuning world
    (``game_seed=1``; package README, "Choosing the quick setting")."""
    threshold: float = 0.6
    """Elimination threshold ``l`` [0.6]."""
    reg: float = 0.1
    """Ridge regulariser ``lambda`` [0.1]."""
    confidence: str = "fixed"
    """``"fixed"`` (constant ``beta``) or ``"theory"`` (Abbasi-Yadkori radius)."""
    delta: float = 0.1
    """Failure probability for ``confidence="theory"``."""
    refresh_every: int = 500
    """Bandit refresh period ``L`` in steps (AEN copied, bandit refitted) [50k]."""
    online_bandit: bool = False
    """Also update the bandit with every new sample between refreshes (LinUCB with frozen
    features). The paper and the code update it only at refreshes (``False``)."""
    valid_weight_power: float = 2.0
    """Up-weight valid samples of action ``a`` by ``pos_factor ** p`` at refits [code: 2]."""
    aen_updates: int = 1
    """AEN gradient steps per Q-network update [1]."""
    aen_valid_fraction: float = 0.5
    """Share of each AEN batch drawn from ``e = 0`` transitions [0.5]."""
    escape_prob: float = 0.0
    """Probability that an exploration step ignores ``A'`` (the code's ~0.3; paper: 0)."""
    double_elimination: bool = True
    """Restrict the Bellman-target max to ``A'(s')`` [code flag ``double_elimination=1``]."""
    grad_clip: float = 10.0
    """Max gradient norm of both networks."""

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        o = "AgentConfig"
        check_choice("mode", self.mode, MODES, owner=o)
        check_range("gamma", self.gamma, 0.0, 1.0, high_inclusive=False, owner=o)
        check_range("lr", self.lr, 0.0, 1.0, low_inclusive=False, owner=o)
        check_range("aen_lr", self.aen_lr, 0.0, 1.0, low_inclusive=False, owner=o)
        for name in ("batch_size", "replay_size", "train_every", "target_every",
                     "embed_dim", "q_filters", "aen_filters", "refresh_every", "aen_updates"):
            check_int(name, getattr(self, name), 1, owner=o)
        check_int("learn_start", self.learn_start, 0, owner=o)
        check_int("eps_decay_steps", self.eps_decay_steps, 1, owner=o)
        check_probability("eps_start", self.eps_start, owner=o)
        check_probability("eps_end", self.eps_end, owner=o)
        check_range("beta", self.beta, 0.0, owner=o)
        check_range("threshold", self.threshold, owner=o)
        check_range("reg", self.reg, 0.0, low_inclusive=False, owner=o)
        check_choice("confidence", self.confidence, ("fixed", "theory"), owner=o)
        check_range("delta", self.delta, 0.0, 1.0, low_inclusive=False, owner=o)
        check_range("valid_weight_power", self.valid_weight_power, 0.0, 4.0, owner=o)
        check_probability("aen_valid_fraction", self.aen_valid_fraction, owner=o)
        check_probability("escape_prob", self.escape_prob, owner=o)
        check_range("grad_clip", self.grad_clip, 0.0, low_inclusive=False, owner=o)


class AEDQNAgent:
    """DQN over token observations with optional action elimination.

    Args:
        vocab_size: token ids of the observations.
        obs_len: tokens per observation.
        n_actions: number of discrete commands ``|A|``.
        config: :class:`AgentConfig` (its ``mode`` picks DQN, AE-DQN or masked DQN).
        seed: seeds the networks' initialisation and the agent's sampling generator.
        device: where the networks, the bandit and the cached admissible sets live (default
            CPU). The observation table and the replay stay on the CPU; minibatches move.
    """

    def __init__(self, vocab_size: int, obs_len: int, n_actions: int,
                 config: AgentConfig | None = None, *, seed: int = 0,
                 device: torch.device | str | None = None) -> None:
        self.config = cfg = config or AgentConfig()
        cfg.validate()
        self.n_actions = check_int("n_actions", n_actions, 1, owner="AEDQNAgent")
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self.device = torch.device("cpu" if device is None else device)
        self.q = QNetwork(vocab_size, n_actions, embed_dim=cfg.embed_dim, n_filters=cfg.q_filters,
                          device=self.device)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=cfg.lr, fused=True)
        self.table = ObservationTable(obs_len, n_actions)
        self.replay = ReplayBuffer(cfg.replay_size)
        self.steps = 0
        self.n_refreshes = 0
        self.uses_elimination = cfg.mode == "ae-dqn"
        if self.uses_elimination:
            self.aen = EliminationNetwork(vocab_size, n_actions, embed_dim=cfg.embed_dim,
                                          n_filters=cfg.aen_filters, device=self.device)
            self.aen_frozen = copy.deepcopy(self.aen).requires_grad_(False)
            self.aen_opt = torch.optim.Adam(self.aen.parameters(), lr=cfg.aen_lr, fused=True)
            self.bandit = LinearContextualBandit(
                n_actions, self.aen.feature_dim, reg=cfg.reg, threshold=cfg.threshold,
                beta=cfg.beta, confidence=cfg.confidence, delta=cfg.delta, device=self.device)
            self._reset_cache()

    def _tokens(self, ids: Any) -> torch.Tensor:
        """Token ids ``(n, L)`` of the table rows ``ids`` on the agent's device."""
        return self.table.tokens[ids].to(self.device)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        """A numpy array of a minibatch as a tensor on the agent's device."""
        return torch.from_numpy(array).to(self.device)

    # --- admissible sets ------------------------------------------------------------------------
    def _reset_cache(self) -> None:
        """Forget cached features / LCBs / admissible rows (a refresh changes the features)."""
        cap, dev = self.table.tokens.shape[0], self.device
        self._feat = torch.zeros(cap, self.aen.feature_dim, dtype=torch.float64, device=dev)
        self._lcb = torch.zeros(cap, self.n_actions, dtype=torch.float64, device=dev)
        self._adm = torch.ones(cap, self.n_actions, dtype=torch.bool, device=dev)
        self._row_ok = torch.zeros(cap, dtype=torch.bool)  # bookkeeping, on the CPU

    def _set_rows(self, rows: torch.Tensor, features: torch.Tensor) -> None:
        """Cache ``x(s)``, ``LCB(s)`` and ``A'(s)`` for the observation ids ``rows``."""
        lcb = self.bandit.lower_bound(features)
        self._row_ok[rows.cpu()] = True
        rows = rows.to(self.device)
        self._feat[rows] = features
        self._lcb[rows] = lcb
        self._adm[rows] = self._admissible_from(lcb)

    def _admissible_from(self, lcb: torch.Tensor) -> torch.Tensor:
        """``(n, A)`` bool ``LCB <= l``; an empty row keeps its lowest-LCB action (pitfall 1)."""
        out = lcb <= self.bandit.threshold
        empty = ~out.any(dim=1)
        if empty.any():
            rows = torch.nonzero(empty).squeeze(1)
            out[rows, lcb[rows].argmin(dim=1)] = True
        return out

    def _ensure_rows(self, ids: np.ndarray) -> None:
        """Compute frozen features, LCBs and ``A'`` for the ids that lack them."""
        cap = self.table.tokens.shape[0]
        if self._row_ok.shape[0] < cap:  # the table grew
            grow = cap - self._row_ok.shape[0]
            self._feat = torch.cat([self._feat, self._feat.new_zeros(grow, self._feat.shape[1])])
            self._lcb = torch.cat([self._lcb, self._lcb.new_zeros(grow, self.n_actions)])
            self._adm = torch.cat([self._adm, self._adm.new_ones(grow, self.n_actions)])
            self._row_ok = torch.cat([self._row_ok, self._row_ok.new_zeros(grow)])
        if len(ids) == 1:
            if self._row_ok[int(ids[0])]:
                return
            missing = torch.as_tensor(ids, dtype=torch.long)
        else:
            idx = torch.as_tensor(np.unique(ids), dtype=torch.long)
            missing = idx[~self._row_ok[idx]]
        if len(missing):
            with torch.no_grad():
                x = self.aen_frozen.features(self._tokens(missing)).to(torch.float64)
            self._set_rows(missing, x)

    def admissible(self, obs_ids: np.ndarray | int) -> torch.Tensor:
        """Bool ``(n, n_actions)`` (or ``(n_actions,)`` for one id) on the agent's device: the
        admissible sets ``A'``.

        AE-DQN: ``LCB_a(x(s)) <= l``; if that leaves nothing, the lowest-LCB action is kept
        (spec pitfall 1). DQN: every action. Masked DQN: the environment's true mask.
        """
        single = np.ndim(obs_ids) == 0
        ids = np.atleast_1d(np.asarray(obs_ids, dtype=np.int64))
        if self.config.mode == "dqn":
            out = torch.ones(len(ids), self.n_actions, dtype=torch.bool, device=self.device)
        elif self.config.mode == "masked-dqn":
            out = self._tensor(self.table.masks[ids].copy())
        else:
            self._ensure_rows(ids)
            out = self._adm[self._tensor(ids)]
        return out[0] if single else out

    # --- acting -----------------------------------------------------------------------------------
    def epsilon(self) -> float:
        """Linear schedule from ``eps_start`` to ``eps_end`` after ``learn_start`` steps."""
        c = self.config
        frac = min(1.0, max(0, self.steps - c.learn_start) / c.eps_decay_steps)
        return c.eps_start + frac * (c.eps_end - c.eps_start)

    def act(self, obs_id: int, epsilon: float | None = None) -> int:
        """Epsilon-greedy over ``A'(s)``: uniform over ``A'`` w.p. ``epsilon``, else argmax Q."""
        eps = self.epsilon() if epsilon is None else epsilon
        if self.rng.random() < eps:
            if self.config.mode == "dqn" or (
                    self.uses_elimination and self.rng.random() < self.config.escape_prob):
                return int(self.rng.integers(self.n_actions))
            allowed = np.flatnonzero(self.admissible(obs_id).cpu().numpy())
            return int(allowed[int(self.rng.integers(len(allowed)))])
        mask = self.admissible(obs_id)
        with torch.no_grad():
            q = self.q(self._tokens(slice(obs_id, obs_id + 1)))[0]
        return int(q.masked_fill(~mask, -math.inf).argmax())

    # --- learning ---------------------------------------------------------------------------------
    def observe(self, obs_id: int, action: int, reward: float, next_obs_id: int,
                terminated: bool, elimination: int) -> None:
        """Store a transition; AE-DQN also feeds ``(x(s), a, e)`` to the bandit online."""
        self.replay.add(obs_id, action, reward, next_obs_id, terminated, elimination)
        self.steps += 1
        if self.uses_elimination and self.config.online_bandit:
            self._ensure_rows(np.array([obs_id]))
            self.bandit.update(self._feat[obs_id], action, float(elimination))
            rows = torch.nonzero(self._row_ok).squeeze(1).to(self.device)
            self._lcb[rows, action] = self.bandit.lower_bound_column(self._feat[rows], action)
            self._adm[rows] = self._admissible_from(self._lcb[rows])

    def bellman_targets(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        """``(B,)`` ``r + gamma (1 - done) max_{a in A'(s')} Q^-(s', a)``.

        With ``double_elimination`` (default) the max runs over the admissible set only; for
        plain DQN ``A'`` is every action.
        """
        with torch.no_grad():
            q_next = self.q_target(self._tokens(batch["next_obs"]))
            if self.config.double_elimination:
                q_next = q_next.masked_fill(~self.admissible(batch["next_obs"]), -math.inf)
            best = q_next.max(dim=1).values
            reward = self._tensor(batch["reward"])
            done = self._tensor(batch["terminated"])
            return reward + self.config.gamma * (1.0 - done) * best

    def update(self) -> dict[str, float]:
        """One learning step (call after each :meth:`observe`); returns losses when it trained."""
        c = self.config
        out: dict[str, float] = {}
        if self.steps < c.learn_start or len(self.replay) < c.batch_size:
            return out
        if self.steps % c.train_every == 0:
            batch = self.replay.batch(self.replay.sample(c.batch_size, self.rng))
            target = self.bellman_targets(batch)
            q = self.q(self._tokens(batch["obs"]))
            q_taken = q.gather(1, self._tensor(batch["action"])[:, None]).squeeze(1)
            loss = F.smooth_l1_loss(q_taken, target)  # = TD error clipped to +-1 (DQN)
            self.q_opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.q.parameters(), c.grad_clip, foreach=True)
            self.q_opt.step()
            out["td_loss"] = float(loss.detach())
            if self.uses_elimination:
                for _ in range(c.aen_updates):
                    out["aen_loss"] = self._train_aen()
        if self.steps % c.target_every == 0:
            self.q_target.load_state_dict(self.q.state_dict())
        if self.uses_elimination and self.steps % c.refresh_every == 0:
            self.refresh()
        return out

    def _train_aen(self) -> float:
        """MSE between ``E(s)[a]`` and ``e`` on a class-balanced batch (taken action only)."""
        c = self.config
        idx = self.replay.sample_balanced(c.batch_size, c.aen_valid_fraction, self.rng)
        batch = self.replay.batch(idx)
        pred = self.aen(self._tokens(batch["obs"]))
        taken = pred.gather(1, self._tensor(batch["action"])[:, None]).squeeze(1)
        loss = F.mse_loss(taken, self._tensor(batch["elimination"]))
        self.aen_opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.aen.parameters(), c.grad_clip, foreach=True)
        self.aen_opt.step()
        return float(loss.detach())

    def refresh(self) -> None:
        """AENUpdate: freeze ``E^- <- E``, refit the bandit on the replay, set both heads."""
        c = self.config
        self.aen_frozen.load_state_dict(self.aen.state_dict())
        self._reset_cache()
        n = len(self.replay)
        with torch.no_grad():
            feats = self.aen_frozen.features(self._tokens(slice(0, len(self.table)))).double()
        obs = self._tensor(self.replay.obs[:n])
        acts = self._tensor(self.replay.action[:n])
        e = self._tensor(self.replay.elimination[:n]).double()
        f64 = {"dtype": torch.float64, "device": self.device}
        weights = torch.ones(n, **f64)
        if c.valid_weight_power > 0:
            total = torch.zeros(self.n_actions, **f64).index_add_(0, acts, torch.ones(n, **f64))
            valid = torch.zeros_like(total).index_add_(0, acts, 1.0 - e)
            pos = torch.where(valid > 0, (total - valid) / valid.clamp_min(1.0), 1.0)
            factor = pos.clamp_min(1.0) ** c.valid_weight_power
            weights = torch.where(e == 0, factor[acts], weights)
        self.bandit.fit(feats[obs], acts, e, weights)
        self.aen_frozen.set_head(self.bandit.theta)
        self.aen.set_head(self.bandit.theta)
        # Fill the whole cache now: one large matrix product instead of many small ones later.
        self._set_rows(torch.arange(len(self.table)), feats)
        self.n_refreshes += 1

    # --- persistence ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers, bandit, replay and counters (``weights_only`` loadable).

        The observation table is saved too, since replay stores observation ids.
        """
        n = len(self.table)
        state: dict[str, Any] = {
            "config": asdict(self.config), "steps": self.steps, "n_refreshes": self.n_refreshes,
            "q": self.q.state_dict(), "q_target": self.q_target.state_dict(),
            "q_opt": self.q_opt.state_dict(), "replay": self.replay.state_dict(),
            "table_tokens": self.table.tokens[:n].clone(),
            "table_masks": torch.from_numpy(self.table.masks[:n].copy()),
        }
        if self.uses_elimination:
            state.update(aen=self.aen.state_dict(), aen_frozen=self.aen_frozen.state_dict(),
                         aen_opt=self.aen_opt.state_dict(), bandit=self.bandit.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (the RNG is not part of it: seed the agent again)."""
        self.steps, self.n_refreshes = int(state["steps"]), int(state["n_refreshes"])
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state["q_target"])
        self.q_opt.load_state_dict(state["q_opt"])
        self.replay.load_state_dict(state["replay"])
        self.table = ObservationTable(self.table.obs_len, self.n_actions)
        for tok, mask in zip(state["table_tokens"], state["table_masks"], strict=True):
            self.table.add(tok.numpy(), mask.numpy())
        if self.uses_elimination:
            self.aen.load_state_dict(state["aen"])
            self.aen_frozen.load_state_dict(state["aen_frozen"])
            self.aen_opt.load_state_dict(state["aen_opt"])
            self.bandit.load_state_dict(state["bandit"])
            self._reset_cache()

    def __repr__(self) -> str:
        c = self.config
        extra = (f", beta={c.beta}, threshold={c.threshold}, refresh_every={c.refresh_every}"
                 if self.uses_elimination else "")
        return f"AEDQNAgent(mode={c.mode!r}, n_actions={self.n_actions}{extra})"


def evaluate(env: Any, agent: AEDQNAgent, *, episodes: int, epsilon: float,
             seed: int) -> dict[str, float]:
    """Mean return and success rate of ``episodes`` episodes at exploration rate ``epsilon``.

    Uses the agent's admissible sets (so AE-DQN is evaluated as it acts) and leaves its RNG
    untouched.
    """
    saved = agent.rng
    agent.rng = np.random.default_rng(seed)
    returns, wins, lengths = [], [], []
    try:
        for k in range(episodes):
            obs, info = env.reset(seed=seed + k)
            ret, done, n = 0.0, False, 0
            while not done:
                oid = agent.table.add(obs, info["admissible_mask"])
                obs, r, term, trunc, info = env.step(agent.act(oid, epsilon))
                ret += r
                n += 1
                done = term or trunc
            returns.append(ret)
            wins.append(float(info["won"]))
            lengths.append(n)
    finally:
        agent.rng = saved
    return {"return": float(np.mean(returns)), "success": float(np.mean(wins)),
            "length": float(np.mean(lengths))}


def elimination_stats(env: Any, agent: AEDQNAgent,
                      visited: np.ndarray | None = None) -> dict[str, float]:
    """Quality of ``A'``: on the gold path and over the observations the agent trained on.

    Gold path (walked from ``env.reset(seed=0)``): ``admissible_size`` (mean ``|A'|``),
    ``gold_eliminated`` (gold-path steps whose gold command is *not* admissible: the lock-in failure
    the spec warns about), ``false_elim`` / ``true_elim`` (share of the truly admissible /
    inadmissible commands that are eliminated, averaged over the gold-path states).

    Visited observations (``visited``: ids in the agent's observation table of the observations
    met in *training*, each distinct observation once; default every row of the table, which
    also holds evaluation and gold-path observations), judged against the environment's true
    mask: ``false_elim_visited`` = eliminated valid pairs / valid pairs, ``true_elim_visited`` =
    eliminated invalid pairs / invalid pairs, ``admissible_size_visited`` = mean ``|A'|``.
    """
    obs, info = env.reset(seed=0)
    sizes, gold_out, false_e, true_e = [], 0, [], []
    for a in env.gold_path:
        oid = agent.table.add(obs, info["admissible_mask"])
        adm = agent.admissible(oid).cpu().numpy()
        valid = info["admissible_mask"]
        sizes.append(int(adm.sum()))
        gold_out += int(not adm[a])
        false_e.append(float((~adm & valid).sum() / max(1, valid.sum())))
        true_e.append(float((~adm & ~valid).sum() / max(1, (~valid).sum())))
        obs, _, _, _, info = env.step(a)
    ids = np.arange(len(agent.table)) if visited is None else np.asarray(visited, dtype=np.int64)
    adm_all = agent.admissible(ids).cpu().numpy()
    valid_all = agent.table.masks[ids]
    return {"admissible_size": float(np.mean(sizes)), "gold_eliminated": float(gold_out),
            "false_elim": float(np.mean(false_e)), "true_elim": float(np.mean(true_e)),
            "false_elim_visited": float((~adm_all & valid_all).sum() / max(1, valid_all.sum())),
            "true_elim_visited": float((~adm_all & ~valid_all).sum()
                                       / max(1, (~valid_all).sum())),
            "admissible_size_visited": float(adm_all.sum(axis=1).mean())}


def train_agent(
    env: Any, agent: AEDQNAgent, *, total_steps: int, eval_env: Any | None = None,
    eval_every: int = 1000, eval_episodes: int = 2, eval_epsilon: float = 0.05,
    solve_success: float = 0.5, seed: int = 0, progress: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Train ``agent`` on ``env`` for ``total_steps`` env steps; evaluate every ``eval_every``.

    Returns:
        ``(curve, summary)``: one row per evaluation (``step``, ``eval_return``,
        ``eval_success``, ``train_return`` of recent episodes, ``admissible_size`` ...), and
        ``first_success_step`` (first training episode that reached the goal),
        ``steps_to_solve`` (first evaluation with success ``>= solve_success``; ``total_steps``
        if never, i.e. censored), ``solved`` (0/1), ``final_return``, ``final_success``,
        ``samples_per_command_median`` (median over commands of the replayed transitions that
        took it).
    """
    eval_env = eval_env if eval_env is not None else env
    obs, info = env.reset(seed=seed)
    oid = agent.table.add(obs, info["admissible_mask"])
    trained_on = {oid}  # table ids met in training (evaluation adds rows too)
    ep_ret, recent, first_success = 0.0, [], math.nan
    curve: list[dict[str, Any]] = []
    steps_to_solve = math.nan
    rng = range(1, total_steps + 1) if progress is None else progress(range(1, total_steps + 1))
    for step in rng:
        action = agent.act(oid)
        obs, reward, term, trunc, info = env.step(action)
        nid = agent.table.add(obs, info["admissible_mask"])
        trained_on.add(nid)
        agent.observe(oid, action, reward, nid, term, info["elimination"])
        agent.update()
        ep_ret += reward
        oid = nid
        if term or trunc:
            if info["won"] and math.isnan(first_success):
                first_success = step
            recent = [*recent, ep_ret][-10:]
            obs, info = env.reset()
            oid = agent.table.add(obs, info["admissible_mask"])
            trained_on.add(oid)
            ep_ret = 0.0
        if step % eval_every == 0 or step == total_steps:
            ev = evaluate(eval_env, agent, episodes=eval_episodes, epsilon=eval_epsilon,
                          seed=10_000 + step)
            row: dict[str, Any] = {"step": step, "eval_return": ev["return"],
                                   "eval_success": ev["success"], "epsilon": agent.epsilon(),
                                   "train_return": float(np.mean(recent)) if recent else math.nan}
            if agent.uses_elimination:
                row.update(elimination_stats(eval_env, agent,
                                             np.fromiter(sorted(trained_on), dtype=np.int64)))
            curve.append(row)
            if math.isnan(steps_to_solve) and ev["success"] >= solve_success:
                steps_to_solve = step
    last = curve[-1]
    summary = {
        "first_success_step": first_success if not math.isnan(first_success) else total_steps,
        "steps_to_solve": steps_to_solve if not math.isnan(steps_to_solve) else total_steps,
        "solved": float(not math.isnan(steps_to_solve)),
        "final_return": last["eval_return"], "final_success": last["eval_success"],
        "best_return": max(r["eval_return"] for r in curve),
        # what the bandit had to learn from: replayed samples per command (its power)
        "samples_per_command_median": float(np.median(np.bincount(
            agent.replay.action[: len(agent.replay)], minlength=agent.n_actions))),
    }
    return curve, summary
