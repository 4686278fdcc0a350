"""Networks: MLP and convolutional torsos, an actor-critic head and a (dueling) Q head.

Architectures (Stooke & Abbeel 2018 / rlpyt ``atari_cnn_specs``): ``"nature"`` (Mnih et al.
2015: 32@8x8/4, 64@4x4/2, 64@3x3/1, FC 512), ``"small"`` (16@8x8/4, 32@4x4/2, FC 256; the
paper's policy-gradient net), ``"minatar"`` (16@3x3/1, FC 128; Young & Tian 2019) and ``"mlp"``
(two tanh layers of 64, classic control).

:class:`ActorCritic` shares one torso between policy and value for image observations (the
paper's and rlpyt's Atari nets) and, by default for vector observations (``arch="mlp"``), uses
separate actor and critic networks, as Stable-Baselines3's ``MlpPolicy`` and CleanRL do: a shared
tanh MLP lets the value loss pull the policy's features and stalls on CartPole.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from adaptlearn.core import check_choice, check_int

__all__ = ["ARCHS", "ActorCritic", "QNetwork", "make_torso", "resolve_device"]

ARCHS = ("mlp", "nature", "small", "minatar")


def resolve_device(device: torch.device | str | None, module: nn.Module | None = None
                   ) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` means where ``module``'s parameters live (CPU
    for a module without parameters or no module)."""
    if device is not None:
        try:
            return torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"`device` must be a torch device such as 'cpu' or 'cuda'; got "
                             f"{device!r}") from err
    if module is not None:
        for p in module.parameters():
            return p.device
    return torch.device("cpu")


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
    """Categorical policy head and value head over one shared torso, or separate networks.

    Args:
        obs_shape: observation shape.
        n_actions: size of the discrete action set.
        arch: one of :data:`ARCHS`.
        hidden: width of the MLP torso.
        shared_torso: one torso for policy and value (``True``) or an actor and a critic
            network of the same architecture (``False``). ``None``: shared for image torsos
            (``nature``, ``small``, ``minatar``), separate for ``mlp`` (SB3 / CleanRL default).
        device: where the parameters live.

    ``forward(obs[N, *obs_shape]) -> (logits[N, n_actions], value[N])``.
    """

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, arch: str = "mlp",
                 hidden: int = 64, shared_torso: bool | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__(obs_shape, arch, hidden)
        self.n_actions = check_int("n_actions", n_actions, 1, owner="ActorCritic")
        self.shared_torso = arch != "mlp" if shared_torso is None else bool(shared_torso)
        self.critic_torso = None if self.shared_torso else make_torso(self.obs_shape, arch,
                                                                      hidden)[0]
        self.pi = _init(nn.Linear(self.feature_dim, n_actions), 0.01)
        self.v = _init(nn.Linear(self.feature_dim, 1), 1.0)
        self.to(resolve_device(device))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = obs.float() * self.obs_scale
        h = self.torso(x)
        h_v = h if self.critic_torso is None else self.critic_torso(x)
        return self.pi(h), self.v(h_v).squeeze(-1)

    def extra_repr(self) -> str:
        return (f"obs_shape={self.obs_shape}, n_actions={self.n_actions}, arch={self.arch!r}, "
                f"shared_torso={self.shared_torso}")


class QNetwork(_Scaled):
    """Action values; ``dueling=True`` splits V and A (Wang et al. 2016): Q = V + A - mean(A).

    ``device``: where the parameters live.

    ``forward(obs[N, *obs_shape]) -> q[N, n_actions]``.
    """

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, arch: str = "mlp",
                 hidden: int = 64, dueling: bool = False,
                 device: torch.device | str | None = None) -> None:
        super().__init__(obs_shape, arch, hidden)
        self.n_actions = check_int("n_actions", n_actions, 1, owner="QNetwork")
        self.dueling = bool(dueling)
        self.head = _init(nn.Linear(self.feature_dim, n_actions), 1.0)
        self.value_head = _init(nn.Linear(self.feature_dim, 1), 1.0) if dueling else None
        self.to(resolve_device(device))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.features(obs)
        adv = self.head(h)
        if self.value_head is None:
            return adv
        return self.value_head(h) + adv - adv.mean(dim=-1, keepdim=True)

    def extra_repr(self) -> str:
        return (f"obs_shape={self.obs_shape}, n_actions={self.n_actions}, arch={self.arch!r}, "
                f"dueling={self.dueling}")
