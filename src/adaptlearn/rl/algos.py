"""A2C, PPO and DQN (double / dueling / n-step / prioritized) over ``[T, B]`` sampler batches.

The algorithms are the standard ones; what Stooke & Abbeel (2018, arXiv 1803.02811) change is
the execution (batched samplers) and the batch size, with the learning rate adapted to it (see
:mod:`adaptlearn.rl.scaling`). Each algorithm has ``update(samples) -> dict[str, float]`` and
``state_dict()``/``load_state_dict()`` (model, optimizer, generators, counters).

Pinned conventions (references differ, see the method card): value loss
``value_coef * 0.5 * mean((V - R)^2)`` (rlpyt/CleanRL form, default ``value_coef`` 0.5);
truncated episodes bootstrap from ``V(final_obs)`` (or ``Q`` of it), terminated ones do not;
PPO's ratio clip is fixed (no decay with the lr schedule).

Devices: every algorithm takes ``device`` (``None``: where the agent's model lives); the model,
target network and agent move there, and each sampler batch / replay minibatch is moved there
before the update (samplers and replay keep their buffers in host memory).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from adaptlearn.core import check_choice, check_int, check_probability, check_range
from adaptlearn.rl.agents import CategoricalPgAgent, EpsilonGreedyAgent
from adaptlearn.rl.models import resolve_device
from adaptlearn.rl.replay import PrioritizedReplay, UniformReplay
from adaptlearn.rl.samplers import Samples

__all__ = ["A2C", "DQN", "PPO", "bootstrap_values", "gae_advantages", "make_optimizer"]


def make_optimizer(params: Any, name: str, lr: float, eps: float) -> torch.optim.Optimizer:
    """``"adam"`` or ``"rmsprop"`` (alpha 0.99 as in the A2C/A3C papers)."""
    check_choice("optimizer", name, ("adam", "rmsprop"), owner="make_optimizer")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, eps=eps)
    return torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=eps)


def gae_advantages(reward: torch.Tensor, value: torch.Tensor, next_value: torch.Tensor,
                   done: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimation over a ``[T, B]`` batch.

    ``delta_t = r_t + gamma * next_value_t - V(s_t)``;
    ``A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}``.
    ``next_value_t`` must already be 0 where the episode *terminated*, ``V(final_obs)`` where it
    was truncated and ``V(s_{t+1})`` otherwise (see :func:`bootstrap_values`). ``lam = 1`` gives
    A2C's n-step returns minus ``V``.

    Args:
        reward, value, next_value: ``float[T, B]``.
        done: ``bool[T, B]`` (terminated or truncated).

    Returns:
        ``float[T, B]`` advantages; returns are ``advantages + value``.
    """
    T = reward.shape[0]
    adv = torch.zeros_like(reward)
    running = torch.zeros_like(reward[0])
    not_done = (~done).to(reward.dtype)
    for t in reversed(range(T)):
        delta = reward[t] + gamma * next_value[t] - value[t]
        running = delta + gamma * lam * not_done[t] * running
        adv[t] = running
    return adv


@torch.no_grad()
def bootstrap_values(value_fn: Any, samples: Samples, value: torch.Tensor) -> torch.Tensor:
    """``V`` of the state after each step, ``float[T, B]``, with the episode-end rules.

    ``V(s_{t+1})`` from ``value`` (``float[T, B]``, the values recorded while sampling) and
    ``value_fn(last_obs)``; at a truncation ``value_fn(final_obs[t, b])``; 0 at termination.
    """
    nxt = torch.cat([value[1:], value_fn(samples.last_obs).unsqueeze(0)], dim=0)
    trunc = samples.truncated & ~samples.terminated
    if trunc.any():
        nxt = nxt.clone()
        nxt[trunc] = value_fn(samples.final_obs[trunc])
    return torch.where(samples.terminated, torch.zeros_like(nxt), nxt)


class _PolicyGradient:
    def __init__(self, agent: CategoricalPgAgent, *, lr: float, gamma: float, value_coef: float,
                 entropy_coef: float, max_grad_norm: float | None, optimizer: str,
                 optimizer_eps: float, device: torch.device | str | None) -> None:
        owner = type(self).__name__
        self.device = resolve_device(device, agent.model)
        self.agent = agent
        self.model: nn.Module = agent.model.to(self.device)
        agent.device = self.device
        self.lr = check_range("lr", lr, 0.0, low_inclusive=False, owner=owner)
        self.gamma = check_probability("gamma", gamma, owner=owner)
        self.value_coef = check_range("value_coef", value_coef, 0.0, owner=owner)
        self.entropy_coef = check_range("entropy_coef", entropy_coef, 0.0, owner=owner)
        if max_grad_norm is not None:
            check_range("max_grad_norm", max_grad_norm, 0.0, low_inclusive=False, owner=owner)
        self.max_grad_norm = max_grad_norm
        self.optimizer_name = optimizer
        self.optimizer = make_optimizer(self.model.parameters(), optimizer, lr, optimizer_eps)
        self.updates = 0

    def _step(self, loss: torch.Tensor) -> float:
        self.optimizer.zero_grad()
        loss.backward()
        norm = 0.0
        if self.max_grad_norm is not None:
            norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm))
        self.optimizer.step()
        return norm

    def _losses(self, obs: torch.Tensor, action: torch.Tensor, adv: torch.Tensor,
                ret: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, v = self.model(obs)
        logp_all = torch.log_softmax(logits, dim=-1)
        logp = logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
        value_loss = 0.5 * (v - ret).pow(2).mean()
        return logp, value_loss, entropy, v

    def state_dict(self) -> dict[str, Any]:
        """Model, optimizer, agent generator and update count."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "agent": self.agent.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.agent.load_state_dict(state["agent"])
        self.updates = int(state["updates"])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(lr={self.lr:g}, gamma={self.gamma}, "
                f"optimizer={self.optimizer_name!r})")


class A2C(_PolicyGradient):
    """Synchronous advantage actor-critic (Mnih et al. 2016), one update per batch.

    ``L = -mean(logpi(a|s) A) + value_coef * 0.5 * mean((V - R)^2) - entropy_coef * mean(H)``
    with ``R`` the n-step returns to the end of the batch (``lam = 1``; ``gae_lambda < 1`` gives
    GAE advantages). Defaults follow rlpyt's Atari A2C (Adam 7e-4 here, eps 1e-5, clip 0.5).
    ``value_coef`` multiplies ``0.5 * mean((V - R)^2)``: it is twice Stable-Baselines3's
    ``vf_coef`` for the same weight (SB3 ``vf_coef=0.25`` == ours ``0.5``). ``device``: where
    the model and the update run (``None``: the model's device).
    """

    def __init__(self, agent: CategoricalPgAgent, *, lr: float = 7e-4, gamma: float = 0.99,
                 gae_lambda: float = 1.0, value_coef: float = 0.5, entropy_coef: float = 0.01,
                 max_grad_norm: float | None = 0.5, optimizer: str = "adam",
                 optimizer_eps: float = 1e-5, device: torch.device | str | None = None) -> None:
        super().__init__(agent, lr=lr, gamma=gamma, value_coef=value_coef,
                         entropy_coef=entropy_coef, max_grad_norm=max_grad_norm,
                         optimizer=optimizer, optimizer_eps=optimizer_eps, device=device)
        self.gae_lambda = check_probability("gae_lambda", gae_lambda, owner="A2C")

    def update(self, samples: Samples) -> dict[str, float]:
        """One gradient step on the whole ``[T, B]`` batch."""
        samples = samples.to(self.device)
        value = samples.agent_info["value"]
        next_value = bootstrap_values(self.agent.value, samples, value)
        adv = gae_advantages(samples.reward, value, next_value, samples.done, self.gamma,
                             self.gae_lambda)
        ret = adv + value
        flat = (samples.obs.flatten(0, 1), samples.action.flatten(0, 1), adv.flatten(),
                ret.flatten())
        logp, value_loss, entropy, _ = self._losses(*flat)
        pi_loss = -(logp * flat[2]).mean()
        loss = pi_loss + self.value_coef * value_loss - self.entropy_coef * entropy
        norm = self._step(loss)
        self.updates += 1
        return {"pi_loss": float(pi_loss.detach()), "value_loss": float(value_loss.detach()),
                "entropy": float(entropy.detach()), "grad_norm": norm}


class PPO(_PolicyGradient):
    """Proximal policy optimisation, clipped objective (Schulman et al. 2017).

    ``rho = pi/pi_old``; ``L_pi = -mean(min(rho A, clip(rho, 1-clip, 1+clip) A))``; ``epochs``
    passes over ``minibatches`` shuffled minibatches; GAE(``gae_lambda``); advantages
    normalised per minibatch. The ratio clip is fixed (rlpyt/accel_rl decay it with the lr).
    ``value_coef`` and ``device`` as in :class:`A2C`.
    """

    def __init__(self, agent: CategoricalPgAgent, *, lr: float = 2.5e-4, gamma: float = 0.99,
                 gae_lambda: float = 0.95, clip: float = 0.1, epochs: int = 4,
                 minibatches: int = 4, value_coef: float = 0.5, entropy_coef: float = 0.01,
                 max_grad_norm: float | None = 0.5, normalize_advantage: bool = True,
                 optimizer: str = "adam", optimizer_eps: float = 1e-5,
                 generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__(agent, lr=lr, gamma=gamma, value_coef=value_coef,
                         entropy_coef=entropy_coef, max_grad_norm=max_grad_norm,
                         optimizer=optimizer, optimizer_eps=optimizer_eps, device=device)
        self.gae_lambda = check_probability("gae_lambda", gae_lambda, owner="PPO")
        self.clip = check_range("clip", clip, 0.0, low_inclusive=False, owner="PPO")
        self.epochs = check_int("epochs", epochs, 1, owner="PPO")
        self.minibatches = check_int("minibatches", minibatches, 1, owner="PPO")
        self.normalize_advantage = normalize_advantage
        self.generator = generator if generator is not None else torch.Generator()

    def update(self, samples: Samples) -> dict[str, float]:
        """``epochs x minibatches`` clipped-objective steps on the batch."""
        samples = samples.to(self.device)
        value = samples.agent_info["value"]
        next_value = bootstrap_values(self.agent.value, samples, value)
        adv = gae_advantages(samples.reward, value, next_value, samples.done, self.gamma,
                             self.gae_lambda)
        ret = (adv + value).flatten()
        obs, action = samples.obs.flatten(0, 1), samples.action.flatten(0, 1)
        old_logp, adv = samples.agent_info["logp"].flatten(), adv.flatten()
        n = obs.shape[0]
        if n < self.minibatches:
            raise ValueError(f"PPO batch of {n} samples is smaller than {self.minibatches} "
                             "minibatches")
        stats: dict[str, list[float]] = {"pi_loss": [], "value_loss": [], "entropy": [],
                                         "clip_frac": [], "grad_norm": []}
        for _ in range(self.epochs):
            perm = torch.randperm(n, generator=self.generator).to(self.device)
            for idx in perm.chunk(self.minibatches):
                a = adv[idx]
                if self.normalize_advantage and idx.numel() > 1:
                    a = (a - a.mean()) / (a.std() + 1e-8)
                logp, value_loss, entropy, _ = self._losses(obs[idx], action[idx], a, ret[idx])
                ratio = (logp - old_logp[idx]).exp()
                pi_loss = -torch.min(ratio * a, ratio.clamp(1 - self.clip, 1 + self.clip) * a)
                pi_loss = pi_loss.mean()
                loss = pi_loss + self.value_coef * value_loss - self.entropy_coef * entropy
                stats["grad_norm"].append(self._step(loss))
                stats["pi_loss"].append(float(pi_loss.detach()))
                stats["value_loss"].append(float(value_loss.detach()))
                stats["entropy"].append(float(entropy.detach()))
                stats["clip_frac"].append(float(((ratio - 1).abs() > self.clip).float().mean()))
        self.updates += 1
        return {k: float(np.mean(v)) for k, v in stats.items()}

    def state_dict(self) -> dict[str, Any]:
        """Adds the minibatch-shuffling generator."""
        return {**super().state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])


class DQN:
    """DQN (Mnih et al. 2015) with double, dueling (in the net), n-step and prioritized options.

    Target ``y = R^(n) + gamma^n (1 - d) Q_target(s', a*)``, ``a* = argmax Q_target(s')`` or
    ``argmax Q(s')`` when ``double``; Huber loss (delta 1), weighted by PER importance weights.
    Bookkeeping as in accel_rl's ``dqn.py``: schedules in *env steps*; ``replay_ratio`` =
    gradient samples per env sample, so each sampler batch of ``T*B`` steps gives
    ``replay_ratio * T * B / batch_size`` updates (fractions carried over).

    Args:
        agent: :class:`EpsilonGreedyAgent`; its ``epsilon`` follows the linear schedule.
        n_envs: ``B`` of the sampler (replay layout).
        lr, batch_size, gamma, n_step, double, prioritized: as named.
        replay_size: env steps kept.
        replay_ratio: 8 in the paper-era DQN (one update of 32 per 4 env steps).
        target_update_steps: env steps between target-network copies.
        learn_start: env steps before the first update.
        eps_start, eps_end, eps_steps: linear epsilon schedule in env steps.
        pri_alpha, pri_beta_start, pri_beta_steps: PER exponents (beta annealed to 1).
        max_grad_norm: gradient clip (10 in rlpyt's configs).
        optimizer, optimizer_eps: Adam (large batch, Stooke & Abbeel) or RMSProp.
        seed: NumPy seed for replay sampling.
        device: where the networks and the updates run (``None``: the model's device).
    """

    def __init__(self, agent: EpsilonGreedyAgent, n_envs: int, *, lr: float = 1e-4,
                 batch_size: int = 32, gamma: float = 0.99, n_step: int = 1,
                 double: bool = False, prioritized: bool = False, replay_size: int = 100_000,
                 replay_ratio: float = 8.0, target_update_steps: int = 10_000,
                 learn_start: int = 5_000, eps_start: float = 1.0, eps_end: float = 0.05,
                 eps_steps: int = 100_000, pri_alpha: float = 0.6, pri_beta_start: float = 0.4,
                 pri_beta_steps: int = 1_000_000, max_grad_norm: float | None = 10.0,
                 optimizer: str = "adam", optimizer_eps: float = 1e-4, seed: int = 0,
                 device: torch.device | str | None = None) -> None:
        owner = "DQN"
        self.device = resolve_device(device, agent.model)
        self.agent = agent
        self.model: nn.Module = agent.model.to(self.device)
        agent.device = self.device
        self.target = copy.deepcopy(self.model).requires_grad_(False)
        self.lr = check_range("lr", lr, 0.0, low_inclusive=False, owner=owner)
        self.batch_size = check_int("batch_size", batch_size, 1, owner=owner)
        self.gamma = check_probability("gamma", gamma, owner=owner)
        self.n_step = check_int("n_step", n_step, 1, owner=owner)
        self.double, self.prioritized = bool(double), bool(prioritized)
        self.replay_ratio = check_range("replay_ratio", replay_ratio, 0.0, low_inclusive=False,
                                        owner=owner)
        self.target_update_steps = check_int("target_update_steps", target_update_steps, 1,
                                             owner=owner)
        self.learn_start = check_int("learn_start", learn_start, 0, owner=owner)
        self.eps_start = check_probability("eps_start", eps_start, owner=owner)
        self.eps_end = check_probability("eps_end", eps_end, owner=owner)
        self.eps_steps = check_int("eps_steps", eps_steps, 1, owner=owner)
        self.pri_beta_start = check_probability("pri_beta_start", pri_beta_start, owner=owner)
        self.pri_beta_steps = check_int("pri_beta_steps", pri_beta_steps, 1, owner=owner)
        self.max_grad_norm = max_grad_norm
        self.optimizer_name = optimizer
        self.optimizer = make_optimizer(self.model.parameters(), optimizer, lr, optimizer_eps)
        obs_shape = tuple(self.model.obs_shape)
        rng = np.random.default_rng(seed)
        dtype = np.uint8 if getattr(self.model, "obs_scale", 1.0) != 1.0 else np.float32
        self._obs_dtype = dtype
        if prioritized:
            self.replay: UniformReplay = PrioritizedReplay(
                replay_size, n_envs, obs_shape, dtype, n_step=n_step, gamma=gamma,
                alpha=pri_alpha, beta=pri_beta_start, generator=rng)
        else:
            self.replay = UniformReplay(replay_size, n_envs, obs_shape, dtype, n_step=n_step,
                                        gamma=gamma, generator=rng)
        self.env_steps = 0
        self.updates = 0
        self._update_credit = 0.0
        self._last_target_step = 0
        self.agent.epsilon = self.epsilon

    def __repr__(self) -> str:
        return (f"DQN(lr={self.lr:g}, batch_size={self.batch_size}, n_step={self.n_step}, "
                f"double={self.double}, dueling={getattr(self.model, 'dueling', False)}, "
                f"prioritized={self.prioritized}, replay_ratio={self.replay_ratio:g})")

    @property
    def epsilon(self) -> float:
        """Exploration rate at the current env step (linear decay)."""
        frac = min(1.0, self.env_steps / self.eps_steps)
        return self.eps_start + frac * (self.eps_end - self.eps_start)

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted Huber loss and the TD errors ``float[N]`` of a replay batch."""
        batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v
                 for k, v in batch.items()}
        q = self.model(batch["obs"]).gather(-1, batch["action"].unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            q_next_target = self.target(batch["next_obs"])
            if self.double:
                a_star = self.model(batch["next_obs"]).argmax(-1, keepdim=True)
            else:
                a_star = q_next_target.argmax(-1, keepdim=True)
            y = batch["returns"] + batch["discount"] * q_next_target.gather(-1, a_star).squeeze(-1)
        td = y - q
        huber = nn.functional.huber_loss(q, y, reduction="none", delta=1.0)
        return (batch["weight"] * huber).mean(), td.detach()

    def update(self, samples: Samples) -> dict[str, float]:
        """Store the batch, then run the updates that the replay ratio allows."""
        self.replay.append(samples)
        n_new = samples.T * samples.B
        self.env_steps += n_new
        stats: dict[str, list[float]] = {"loss": [], "abs_td": []}
        if self.env_steps >= self.learn_start and self.replay.n_valid_rows > 0:
            self._update_credit += self.replay_ratio * n_new / self.batch_size
            if isinstance(self.replay, PrioritizedReplay):
                frac = min(1.0, self.env_steps / self.pri_beta_steps)
                self.replay.beta = self.pri_beta_start + frac * (1.0 - self.pri_beta_start)
            while self._update_credit >= 1.0:
                self._update_credit -= 1.0
                batch = self.replay.sample(self.batch_size)
                loss, td = self.loss(batch)
                self.optimizer.zero_grad()
                loss.backward()
                if self.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
                self.optimizer.step()
                self.replay.update_priorities(batch["index"], td.cpu().numpy())
                self.updates += 1
                stats["loss"].append(float(loss.detach()))
                stats["abs_td"].append(float(td.abs().mean()))
        if self.env_steps - self._last_target_step >= self.target_update_steps:
            self.target.load_state_dict(self.model.state_dict())
            self._last_target_step = self.env_steps
        self.agent.epsilon = self.epsilon
        out = {k: float(np.mean(v)) for k, v in stats.items() if v}
        out["epsilon"] = self.agent.epsilon
        out["updates"] = float(self.updates)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Model, target, optimizer, replay, agent generator and counters."""
        return {"model": self.model.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "replay": self.replay.state_dict(),
                "agent": self.agent.state_dict(), "env_steps": self.env_steps,
                "updates": self.updates, "credit": self._update_credit,
                "last_target_step": self._last_target_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.model.load_state_dict(state["model"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.replay.load_state_dict(state["replay"])
        self.agent.load_state_dict(state["agent"])
        self.env_steps, self.updates = int(state["env_steps"]), int(state["updates"])
        self._update_credit = float(state["credit"])
        self._last_target_step = int(state["last_target_step"])
