"""Networks: MLP and convolutional torsos, an actor-critic head and a (dueling) Q head.

Architectures (Stooke & Abbeel 2018 / rlpyt ``atari_cnn_specs``): ``"nature"`` (Mnih et al.
2015: 32@8x8/4, 64@4x4/2, 64@3x3/1, FC 512), ``"small"`` (16@8x8/4, 32@4x4/2, FC 256; the
paper's policy-gradient net), ``"minatar"`` (16@3x3/1, FC 128; Young & Tian 2019) and ``"mlp"``
(two tanh layers of 64, classic control).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from adaptlearn.core import check_choice, check_int

__all__ = ["ARCHS", "ActorCritic", "QNetwork", "make_torso"]

ARCHS = ("mlp", "nature", "small", "minatar")


def _init(module: nn.Module, gain: float) -> nn.Module:
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.orthogonal_(m.weight, gain)
            nn.init.zeros_(m.bias)
    return module


def make_torso(obs_shape: tuple[int, ...], arch: str, hidden: int = 64) -> tuple[nn.Module, int]:
    """Build a torso for ``obs_shape`` (``(C, H, W)`` for conv, ``(D,)`` for mlp).

    Returns:
        ``(module, feature_dim)``; the module maps ``float[N, *obs_shape]`` to
        ``float[N, feature_dim]``.
    """
    check_choice("arch", arch, ARCHS, owner="make_torso")
    relu_gain = math.sqrt(2)
    if arch == "mlp":
        d = int(math.prod(obs_shape))
        net = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.Tanh(),
                            nn.Linear(hidden, hidden), nn.Tanh())
        return _init(net, relu_gain), hidden
    if len(obs_shape) != 3:
        raise ValueError(f"arch {arch!r} needs (C, H, W) observations; got shape {obs_shape}")
    c = obs_shape[0]
    if arch == "nature":
        conv = nn.Sequential(nn.Conv2d(c, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
                             nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten())
        fc = 512
    elif arch == "small":
        conv = nn.Sequential(nn.Conv2d(c, 16, 8, 4), nn.ReLU(), nn.Conv2d(16, 32, 4, 2), nn.ReLU(),
                             nn.Flatten())
        fc = 256
    else:
        conv = nn.Sequential(nn.Conv2d(c, 16, 3, 1), nn.ReLU(), nn.Flatten())
        fc = 128
    with torch.no_grad():
        n_flat = conv(torch.zeros(1, *obs_shape)).shape[1]
    net = nn.Sequential(conv, nn.Linear(n_flat, fc), nn.ReLU())
    return _init(net, relu_gain), fc


class _Scaled(nn.Module):
    """Converts raw observations (uint8 frames, bool planes) to float and scales them."""

    def __init__(self, obs_shape: tuple[int, ...], arch: str, hidden: int) -> None:
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.arch = arch
        self.torso, self.feature_dim = make_torso(self.obs_shape, arch, hidden)
        self.obs_scale = 1.0 / 255.0 if arch in ("nature", "small") else 1.0

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.torso(obs.float() * self.obs_scale)


class ActorCritic(_Scaled):
    """Shared torso with a categorical policy head and a value head.

    Args:
        obs_shape: observation shape.
        n_actions: size of the discrete action set.
        arch: one of :data:`ARCHS`.
        hidden: width of the MLP torso.

    ``forward(obs[N, *obs_shape]) -> (logits[N, n_actions], value[N])``.
    """

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, arch: str = "mlp",
                 hidden: int = 64) -> None:
        super().__init__(obs_shape, arch, hidden)
        self.n_actions = check_int("n_actions", n_actions, 1, owner="ActorCritic")
        self.pi = _init(nn.Linear(self.feature_dim, n_actions), 0.01)
        self.v = _init(nn.Linear(self.feature_dim, 1), 1.0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(obs)
        return self.pi(h), self.v(h).squeeze(-1)

    def extra_repr(self) -> str:
        return f"obs_shape={self.obs_shape}, n_actions={self.n_actions}, arch={self.arch!r}"


class QNetwork(_Scaled):
    """Action values; ``dueling=True`` splits V and A (Wang et al. 2016): Q = V + A - mean(A).

    ``forward(obs[N, *obs_shape]) -> q[N, n_actions]``.
    """

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, arch: str = "mlp",
                 hidden: int = 64, dueling: bool = False) -> None:
        super().__init__(obs_shape, arch, hidden)
        self.n_actions = check_int("n_actions", n_actions, 1, owner="QNetwork")
        self.dueling = bool(dueling)
        self.head = _init(nn.Linear(self.feature_dim, n_actions), 1.0)
        self.value_head = _init(nn.Linear(self.feature_dim, 1), 1.0) if dueling else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.features(obs)
        adv = self.head(h)
        if self.value_head is None:
            return adv
        return self.value_head(h) + adv - adv.mean(dim=-1, keepdim=True)

    def extra_repr(self) -> str:
        return (f"obs_shape={self.obs_shape}, n_actions={self.n_actions}, arch={self.arch!r}, "
                f"dueling={self.dueling}")
