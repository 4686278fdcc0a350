"""Per-action linear contextual bandit with the self-normalised confidence bound used by AE-DQN.

For every action ``a`` a ridge regression predicts the elimination signal from features ``x``::

    V_a = lambda I + sum_j w_j x_j x_j^T        b_a = sum_j w_j e_j x_j        theta_a = V_a^-1 b_a

and ``a`` is **eliminated** in a state with features ``x`` iff its lower confidence bound exceeds
the threshold ``l``::

    LCB_a(x) = theta_a^T x - sqrt(beta_a * x^T V_a^-1 x)  >  l

``beta_a`` is either a constant (``confidence="fixed"``, what the reference code does) or the
Abbasi-Yadkori et al. (2011, Thm. 2) radius the paper states (``confidence="theory"``)::

    sqrt(beta_a) = R sqrt(2 log(det(V_a)^(1/2) det(lambda I)^(-1/2) / delta)) + sqrt(lambda) S

so that, with probability ``>= 1 - delta``, an action whose true mean ``theta*_a^T x`` is at most
``l`` is never eliminated.

References:
    Zahavy et al., "Learn What Not to Learn: Action Elimination with Deep Reinforcement
    Learning", NeurIPS 2018, Sec. 3 (linear contextual bandit elimination).
    Abbasi-Yadkori, Pal, Szepesvari, "Improved Algorithms for Linear Stochastic Bandits",
    NeurIPS 2011, Theorem 2.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from adaptlearn.core import check_choice, check_int, check_probability, check_range

__all__ = ["LinearContextualBandit"]


class LinearContextualBandit:
    """One ridge regression per action plus the LCB elimination rule (float64 throughout).

    Args:
        n_actions: number of arms ``|A|``.
        dim: feature dimension ``d`` (include the constant bias feature if you use one).
        reg: ridge regulariser ``lambda`` (paper/reference code: 0.1).
        threshold: elimination threshold ``l`` on the predicted signal (reference code: 0.6).
        beta: confidence constant for ``confidence="fixed"``.
        confidence: ``"fixed"`` (constant ``beta``) or ``"theory"`` (Abbasi-Yadkori radius).
        delta: failure probability of the ``"theory"`` bound.
        noise_scale: sub-Gaussian scale ``R`` of the signal noise (``"theory"``).
        norm_bound: bound ``S`` on ``||theta*_a||`` (``"theory"``).
        device: where the statistics live (default CPU); inputs are moved there.

    Attributes:
        v_inv: ``(n_actions, dim, dim)`` inverse design matrices ``V_a^-1``.
        b: ``(n_actions, dim)`` response vectors ``b_a``.
        theta: ``(n_actions, dim)`` ridge estimates ``theta_a``.
        logdet: ``(n_actions,)`` ``log det V_a``.
        counts: ``(n_actions,)`` total sample weight per action.
    """

    def __init__(
        self,
        n_actions: int,
        dim: int,
        *,
        reg: float = 0.1,
        threshold: float = 0.6,
        beta: float = 0.5,
        confidence: str = "fixed",
        delta: float = 0.1,
        noise_scale: float = 0.5,
        norm_bound: float = 1.0,
        device: torch.device | str | None = None,
    ) -> None:
        owner = "LinearContextualBandit"
        self.n_actions = check_int("n_actions", n_actions, 1, owner=owner)
        self.dim = check_int("dim", dim, 1, owner=owner)
        self.reg = check_range("reg", reg, 0.0, low_inclusive=False, owner=owner)
        self.threshold = check_range("threshold", threshold, owner=owner)
        self.beta = check_range("beta", beta, 0.0, owner=owner)
        self.confidence = check_choice("confidence", confidence, ("fixed", "theory"), owner=owner)
        self.delta = check_probability("delta", delta, owner=owner)
        if self.delta == 0.0:
            raise ValueError("`delta` of LinearContextualBandit must be a float in (0, 1]; got 0.0")
        self.noise_scale = check_range("noise_scale", noise_scale, 0.0, owner=owner)
        self.norm_bound = check_range("norm_bound", norm_bound, 0.0, owner=owner)
        self.device = torch.device("cpu" if device is None else device)
        self.reset()

    def reset(self) -> None:
        """Forget all samples: ``V_a = lambda I``, ``b_a = 0``."""
        f64 = {"dtype": torch.float64, "device": self.device}
        eye = torch.eye(self.dim, **f64)
        self.v_inv = (eye / self.reg).expand(self.n_actions, -1, -1).clone()
        self.b = torch.zeros(self.n_actions, self.dim, **f64)
        self.theta = torch.zeros_like(self.b)
        self.logdet = torch.full((self.n_actions,), self.dim * math.log(self.reg), **f64)
        self.counts = torch.zeros(self.n_actions, **f64)

    # --- learning ---------------------------------------------------------------------------
    def fit(
        self,
        features: torch.Tensor,
        actions: torch.Tensor,
        signals: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        chunk: int = 4096,
    ) -> LinearContextualBandit:
        """Refit every action from scratch on a data set (the AEN refresh of the paper).

        Args:
            features: ``(N, dim)`` contexts ``x_j``.
            actions: ``(N,)`` int actions ``a_j``.
            signals: ``(N,)`` elimination signals ``e_j``.
            weights: optional ``(N,)`` non-negative sample weights ``w_j``.
        """
        f64 = {"dtype": torch.float64, "device": self.device}
        x = features.to(**f64)
        n = x.shape[0]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"features must have shape (N, {self.dim}); got {tuple(x.shape)}")
        acts = actions.to(device=self.device, dtype=torch.long)
        e = signals.to(**f64)
        w = torch.ones(n, **f64) if weights is None else weights.to(**f64)
        v = torch.eye(self.dim, **f64).mul(self.reg).repeat(self.n_actions, 1, 1)
        b = torch.zeros(self.n_actions, self.dim, **f64)
        for lo in range(0, n, chunk):
            xs, ws = x[lo: lo + chunk], w[lo: lo + chunk]
            outer = ws[:, None, None] * xs[:, :, None] * xs[:, None, :]
            v.index_add_(0, acts[lo: lo + chunk], outer)
            b.index_add_(0, acts[lo: lo + chunk], (ws * e[lo: lo + chunk])[:, None] * xs)
        self.counts = torch.zeros(self.n_actions, **f64).index_add_(0, acts, w)
        chol = torch.linalg.cholesky(v)
        self.v_inv = torch.cholesky_inverse(chol)
        self.logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        self.b = b
        self.theta = torch.einsum("ade,ae->ad", self.v_inv, b)
        return self

    def update(self, x: torch.Tensor, action: int, signal: float, weight: float = 1.0) -> None:
        """Add one sample to action ``action`` (Sherman-Morrison rank-one update of ``V_a^-1``).

        Args:
            x: ``(dim,)`` context.
            action: the action taken.
            signal: observed elimination signal ``e``.
            weight: sample weight ``w >= 0``.
        """
        x = x.to(device=self.device, dtype=torch.float64).reshape(self.dim)
        a = int(action)
        vi = self.v_inv[a]
        vx = vi @ x
        quad = float(x @ vx)
        self.v_inv[a] = vi - (weight / (1.0 + weight * quad)) * torch.outer(vx, vx)
        self.logdet[a] += math.log1p(weight * quad)  # matrix determinant lemma
        self.b[a] += weight * float(signal) * x
        self.theta[a] = self.v_inv[a] @ self.b[a]
        self.counts[a] += weight

    # --- prediction ---------------------------------------------------------------------------
    def confidence_beta(self) -> torch.Tensor:
        """``(n_actions,)`` radius ``beta_a`` multiplying ``x^T V_a^-1 x`` under the square root."""
        if self.confidence == "fixed":
            return torch.full((self.n_actions,), self.beta, dtype=torch.float64,
                              device=self.device)
        log_ratio = 0.5 * (self.logdet - self.dim * math.log(self.reg))
        root = self.noise_scale * torch.sqrt(2.0 * (log_ratio + math.log(1.0 / self.delta)))
        return (root + math.sqrt(self.reg) * self.norm_bound) ** 2

    def quadratic(
        self, features: torch.Tensor, actions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(N, A')`` values ``x^T V_a^-1 x`` for every row of ``features`` and action ``a``.

        Computed as ``(x x^T).flatten() @ V^-1.flatten()``: one matrix product, no ``N*A*d*d``
        temporary.
        """
        x = features.to(device=self.device, dtype=torch.float64).reshape(-1, self.dim)
        v = self.v_inv if actions is None else self.v_inv[actions]
        outer = (x[:, :, None] * x[:, None, :]).reshape(x.shape[0], -1)
        return (outer @ v.reshape(v.shape[0], -1).T).clamp_min_(0.0)

    def mean(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, A)`` ridge predictions ``theta_a^T x``."""
        x = features.to(device=self.device, dtype=torch.float64)
        return x.reshape(-1, self.dim) @ self.theta.T

    def lower_bound(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, A)`` lower confidence bounds ``theta_a^T x - sqrt(beta_a x^T V_a^-1 x)``."""
        width = torch.sqrt(self.confidence_beta()[None, :] * self.quadratic(features))
        return self.mean(features) - width

    def lower_bound_column(self, features: torch.Tensor, action: int) -> torch.Tensor:
        """``(N,)`` lower bounds of one action for many contexts (cheap cache refresh)."""
        x = features.to(device=self.device, dtype=torch.float64).reshape(-1, self.dim)
        quad = ((x @ self.v_inv[action]) * x).sum(-1).clamp_min_(0.0)
        beta = float(self.confidence_beta()[action])
        return x @ self.theta[action] - torch.sqrt(beta * quad)

    def eliminated(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, A)`` bool: ``True`` where ``LCB_a(x) > threshold`` (the action is eliminated)."""
        return self.lower_bound(features) > self.threshold

    # --- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Tensors and hyperparameters (loadable with ``torch.load(weights_only=True)``)."""
        return {"v_inv": self.v_inv.clone(), "b": self.b.clone(), "theta": self.theta.clone(),
                "logdet": self.logdet.clone(), "counts": self.counts.clone(),
                "hparams": {"n_actions": self.n_actions, "dim": self.dim, "reg": self.reg,
                            "threshold": self.threshold, "beta": self.beta,
                            "confidence": self.confidence, "delta": self.delta,
                            "noise_scale": self.noise_scale, "norm_bound": self.norm_bound}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (shapes must match)."""
        if (state["hparams"]["n_actions"], state["hparams"]["dim"]) != (self.n_actions, self.dim):
            raise ValueError("state_dict was saved for a bandit of another shape")
        for key in ("v_inv", "b", "theta", "logdet", "counts"):
            setattr(self, key, state[key].to(device=self.device, dtype=torch.float64).clone())

    def __repr__(self) -> str:
        conf = (f"beta={self.beta}" if self.confidence == "fixed" else
                f"confidence='theory', delta={self.delta}, R={self.noise_scale}, "
                f"S={self.norm_bound}")
        return (f"LinearContextualBandit(n_actions={self.n_actions}, dim={self.dim}, "
                f"reg={self.reg}, threshold={self.threshold}, {conf})")
