"""Q-networks of the hierarchical MARL family: per-agent MLPs, CommNet and the QMIX mixer.

Every agent network maps a batch of all agents' inputs ``[B, n_agents, in_dim]`` to per-agent
values ``[B, n_agents, n_out]``, so independent, communicating and mixed learners share one
learner (:class:`adaptlearn.marl.learners.QLearner`).
"""

from __future__ import annotations

import torch
from torch import nn

from adaptlearn.core.validation import check_int

__all__ = ["AgentQNetwork", "CommNetQNetwork", "QMixer", "mlp"]


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 2) -> nn.Sequential:
    """``layers`` ReLU hidden layers of width ``hidden`` then a linear head."""
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


class AgentQNetwork(nn.Module):
    """Independent per-agent Q-networks ``Q_i(o_i, .)``.

    With ``shared=True`` one MLP serves every agent and reads a one-hot agent id appended to the
    input (pymarl's parameter sharing); with ``shared=False`` each agent owns an MLP (the official
    h-IL code). Either way agent ``i``'s output depends on ``o_i`` only.

    Args:
        in_dim: per-agent input size.
        n_out: number of actions or subgoals.
        n_agents: number of agents.
        hidden: width of the 2 hidden layers.
        shared: share parameters across agents.
        device: where the parameters live (default: torch's default device).

    Shapes: ``forward(x [B, n, in_dim]) -> [B, n, n_out]``.
    """

    def __init__(self, in_dim: int, n_out: int, n_agents: int, *, hidden: int = 64,
                 shared: bool = True, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.in_dim = check_int("in_dim", in_dim, 1, owner="AgentQNetwork")
        self.n_out = check_int("n_out", n_out, 1, owner="AgentQNetwork")
        self.n_agents = check_int("n_agents", n_agents, 1, owner="AgentQNetwork")
        self.hidden = check_int("hidden", hidden, 1, owner="AgentQNetwork")
        self.shared = bool(shared)
        if self.shared:
            self.net = mlp(in_dim + (n_agents if n_agents > 1 else 0), hidden, n_out)
            self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)
        else:
            self.nets = nn.ModuleList(mlp(in_dim, hidden, n_out) for _ in range(n_agents))
        if device is not None:
            self.to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-agent values ``[B, n, n_out]`` from inputs ``[B, n, in_dim]``."""
        if self.shared:
            if self.n_agents > 1:
                ids = self.agent_ids.expand(x.shape[0], -1, -1)
                x = torch.cat([x, ids], dim=-1)
            return self.net(x)
        return torch.stack([net(x[:, i]) for i, net in enumerate(self.nets)], dim=1)

    def extra_repr(self) -> str:
        return (f"in_dim={self.in_dim}, n_out={self.n_out}, n_agents={self.n_agents}, "
                f"hidden={self.hidden}, shared={self.shared}")


class CommNetQNetwork(nn.Module):
    """CommNet (Sukhbaatar et al. 2016) producing per-agent Q values; the hCom high level.

    ``h_i^0 = relu(E [o_i; id_i])``; for ``k < rounds``:
    ``c_i^k = mean_{j != i} h_j^k`` and ``h_i^{k+1} = relu(H_k h_i^k + C_k c_i^k + h_i^0)``;
    ``Q_i = D h_i^K``. Weights are shared by all agents, so permuting the agents' inputs (and
    ids) permutes the outputs; with every ``C_k`` zero it reduces to independent networks.

    Args:
        in_dim: per-agent observation size.
        n_out: number of subgoals.
        n_agents: number of agents (the id one-hot width).
        hidden: width of the communication vectors.
        rounds: communication steps ``K``.
        agent_ids: append a one-hot agent id to each observation.
        device: where the parameters live (default: torch's default device).

    Shapes: ``forward(x [B, n, in_dim]) -> [B, n, n_out]``.

    References:
        Sukhbaatar, Szlam, Fergus, "Learning Multiagent Communication with Backpropagation",
        arXiv 1605.07736; Tang et al., arXiv 1809.09332 (hCom).
    """

    def __init__(self, in_dim: int, n_out: int, n_agents: int, *, hidden: int = 64,
                 rounds: int = 2, agent_ids: bool = True,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.n_agents = check_int("n_agents", n_agents, 1, owner="CommNetQNetwork")
        self.rounds = check_int("rounds", rounds, 0, owner="CommNetQNetwork")
        check_int("hidden", hidden, 1, owner="CommNetQNetwork")
        self.agent_ids = bool(agent_ids) and n_agents > 1
        self.encoder = nn.Linear(in_dim + (n_agents if self.agent_ids else 0), hidden)
        self.self_maps = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(rounds))
        self.comm_maps = nn.ModuleList(nn.Linear(hidden, hidden, bias=False)
                                       for _ in range(rounds))
        self.decoder = mlp(hidden, hidden, n_out, layers=1)
        self.register_buffer("ids", torch.eye(n_agents), persistent=False)
        if device is not None:
            self.to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-agent values ``[B, n, n_out]``; every output reads every agent's input."""
        if self.agent_ids:
            x = torch.cat([x, self.ids.expand(x.shape[0], -1, -1)], dim=-1)
        h0 = torch.relu(self.encoder(x))
        h = h0
        n = x.shape[1]
        for self_map, comm_map in zip(self.self_maps, self.comm_maps, strict=True):
            c = (h.sum(dim=1, keepdim=True) - h) / (n - 1) if n > 1 else torch.zeros_like(h)
            h = torch.relu(self_map(h) + comm_map(c) + h0)
        return self.decoder(h)


class QMixer(nn.Module):
    """QMIX monotonic mixing network (Rashid et al. 2018), as in pymarl's ``QMixer``.

    ``Q_tot = elu(q W1 + b1) W2 + V(s)`` with ``W1 = |hyper_w1(s)|`` (``n x embed``),
    ``W2 = |hyper_w2(s)|`` (``embed x 1``), ``b1 = hyper_b1(s)`` and ``V(s)`` a 2-layer MLP. The
    absolute values make ``dQ_tot / dq_i >= 0``: raising any agent's value never lowers
    ``Q_tot``, so per-agent greedy choices maximise ``Q_tot`` (decentralised execution).

    Args:
        n_agents: number of agent values mixed.
        state_dim: size of the global state ``s``.
        embed_dim: mixing width (pymarl: 32).
        hypernet_embed: hidden width of the 2-layer hypernetworks (pymarl: 64).
        device: where the parameters live (default: torch's default device).

    Shapes: ``forward(q [B, n], s [B, state_dim]) -> [B, 1]``.

    References:
        Rashid et al., "QMIX: Monotonic Value Function Factorisation for Deep Multi-Agent
        Reinforcement Learning", arXiv 1803.11485; Tang et al., arXiv 1809.09332 (hQmix).
    """

    def __init__(self, n_agents: int, state_dim: int, *, embed_dim: int = 32,
                 hypernet_embed: int = 64, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.n_agents = check_int("n_agents", n_agents, 1, owner="QMixer")
        self.state_dim = check_int("state_dim", state_dim, 1, owner="QMixer")
        self.embed_dim = check_int("embed_dim", embed_dim, 1, owner="QMixer")
        check_int("hypernet_embed", hypernet_embed, 1, owner="QMixer")
        self.hyper_w1 = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(),
                                      nn.Linear(hypernet_embed, embed_dim * n_agents))
        self.hyper_w2 = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(),
                                      nn.Linear(hypernet_embed, embed_dim))
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.value = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(),
                                   nn.Linear(embed_dim, 1))
        if device is not None:
            self.to(device)

    def mixing_weights(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Non-negative ``W1 [B, n, embed]`` and ``W2 [B, embed, 1]`` for states ``s``."""
        w1 = torch.abs(self.hyper_w1(s)).view(-1, self.n_agents, self.embed_dim)
        w2 = torch.abs(self.hyper_w2(s)).view(-1, self.embed_dim, 1)
        return w1, w2

    def forward(self, q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """``Q_tot [B, 1]`` from agent values ``q [B, n]`` and states ``s [B, state_dim]``."""
        w1, w2 = self.mixing_weights(s)
        b1 = self.hyper_b1(s).unsqueeze(1)
        hidden = nn.functional.elu(torch.bmm(q.unsqueeze(1), w1) + b1)
        return (torch.bmm(hidden, w2) + self.value(s).unsqueeze(1)).view(-1, 1)

    def extra_repr(self) -> str:
        return f"n_agents={self.n_agents}, state_dim={self.state_dim}, embed_dim={self.embed_dim}"
