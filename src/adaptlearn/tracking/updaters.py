"""Model updaters with one interface: none, EMA, SGD and the learned recurrent updater.

Every updater implements the :class:`TemplateUpdater` protocol::

    state = updater.init(template, loss_fn=tracker.loss)      # template theta_0: (N, *model_shape)
    template, state = updater.update(state, sample)            # sample: OnlineSample of frame t

so swapping one for another is a one-line change. ``N`` is a batch of independent videos (1 at
test time, a batch of episodes during meta-training). ``loss_fn(model, features, labels) -> (N,)``
is the base tracker's training loss; SGD and the learned updater use it.

References:
    Li, Xie, Zeng, Liu. "Learning to Update for Object Tracking with Recurrent Meta-learner",
    arXiv 1806.07078 (update = online learning; the updater takes the online training set and
    outputs the updated target model; recurrent meta-learner; baselines EMA and SGD).
    Andrychowicz et al. "Learning to learn by gradient descent by gradient descent",
    arXiv 1606.04474 (coordinate-wise LSTM, gradient preprocessing).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from adaptlearn.core import check_int, check_range

__all__ = [
    "EMAUpdater",
    "LearnedUpdater",
    "LossFn",
    "NoUpdate",
    "OnlineSample",
    "SGDUpdater",
    "TemplateUpdater",
    "preprocess_gradient",
    "state_nbytes",
]

LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]


class OnlineSample(NamedTuple):
    """The newest element of the online training set.

    Attributes:
        model: (N, *model_shape) single-sample target model psi_t from the crop at the new box.
        features: (N, C, S, S) features of that crop.
        label: (N, R, R) desired response for ``features`` (or (1, R, R), broadcast).
        cues: (N, 4) global cues of the localisation response (see ``trackers.response_cues``).
    """

    model: Tensor
    features: Tensor
    label: Tensor
    cues: Tensor


@runtime_checkable
class TemplateUpdater(Protocol):
    """``init(template) -> state`` and ``update(state, sample) -> (template, state)``."""

    def init(self, template: Tensor, loss_fn: LossFn | None = None) -> dict[str, Any]: ...

    def update(
        self, state: dict[str, Any], sample: OnlineSample
    ) -> tuple[Tensor, dict[str, Any]]: ...


def state_nbytes(state: Any, *, exclude: tuple[str, ...] = ("template", "loss_fn")) -> int:
    """Bytes of the tensors an updater keeps between frames (its memory), each storage once.

    Walks dicts, lists and tuples; the current model (key ``"template"``, kept by every updater
    and by the tracker) is excluded by default, so what remains is what the update rule itself
    stores: SGD's window of samples, the learned updater's recurrent state, ...

    Args:
        state: an updater's state (as returned by ``init`` / ``update``).
        exclude: top-level keys not counted.
    """
    seen: set[tuple[str, int]] = set()
    total = 0

    def walk(obj: Any) -> None:
        nonlocal total
        if isinstance(obj, Tensor):
            storage = obj.untyped_storage()
            key = (str(obj.device), storage.data_ptr())
            if key not in seen:
                seen.add(key)
                total += storage.nbytes()
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    if isinstance(state, dict):
        for k, v in state.items():
            if k not in exclude:
                walk(v)
    else:
        walk(state)
    return total


class NoUpdate:
    """Keep the first-frame model: ``theta_t = theta_0``."""

    def init(self, template: Tensor, loss_fn: LossFn | None = None) -> dict[str, Any]:
        return {"template": template}

    def update(self, state: dict[str, Any], sample: OnlineSample) -> tuple[Tensor, dict[str, Any]]:
        return state["template"], state

    def __repr__(self) -> str:
        return "NoUpdate()"


class EMAUpdater:
    """Linear interpolation: ``theta_t = (1 - gamma) theta_{t-1} + gamma psi_t``.

    For the CF tracker this is MOSSE's running average of A and B (eta = 0.125 there); for the
    template tracker it is SiamFC/CFNet's ``zLR`` (0.005-0.01 there).

    Args:
        gamma: update rate in [0, 1]. Runs on the device of the model it is given.
    """

    def __init__(self, gamma: float = 0.05) -> None:
        self.gamma = check_range("gamma", gamma, 0.0, 1.0, owner="EMAUpdater")

    def init(self, template: Tensor, loss_fn: LossFn | None = None) -> dict[str, Any]:
        return {"template": template}

    def update(self, state: dict[str, Any], sample: OnlineSample) -> tuple[Tensor, dict[str, Any]]:
        theta = state["template"] + self.gamma * (sample.model - state["template"])
        return theta, {"template": theta}

    def __repr__(self) -> str:
        return f"EMAUpdater(gamma={self.gamma})"


class SGDUpdater:
    """Gradient fine-tuning of the model on the online training set.

    Each frame, ``steps`` normalised gradient steps on the mean base-tracker loss over the first
    frame's sample and a window of the last ``window`` samples:
    ``theta <- theta - lr * rms(theta_0) * g / rms(g)``. Normalising by the gradient's RMS makes
    one step size work for both base trackers (their losses differ by orders of magnitude);
    ``lr`` is the relative change of the model per step. Memory grows with ``window`` (the
    samples' features and labels are stored; :func:`state_nbytes` measures it). Runs on the
    device of the model and samples it is given (it creates no tensors of its own).

    Args:
        lr: relative step size (> 0).
        steps: gradient steps per frame.
        window: number of most recent samples kept.
    """

    def __init__(self, lr: float = 0.02, steps: int = 2, window: int = 10) -> None:
        own = "SGDUpdater"
        self.lr = check_range("lr", lr, 0.0, 10.0, low_inclusive=False, owner=own)
        self.steps = check_int("steps", steps, 1, owner=own)
        self.window = check_int("window", window, 1, owner=own)

    def init(self, template: Tensor, loss_fn: LossFn | None = None) -> dict[str, Any]:
        if loss_fn is None:
            raise ValueError("SGDUpdater.init needs `loss_fn` (the base tracker's loss)")
        rms0 = template.flatten(1).pow(2).mean(dim=1).sqrt()
        return {
            "template": template,
            "loss_fn": loss_fn,
            "rms0": rms0,
            "first": None,
            "samples": [],
        }

    def update(self, state: dict[str, Any], sample: OnlineSample) -> tuple[Tensor, dict[str, Any]]:
        n = sample.features.shape[0]
        label = sample.label.expand(n, -1, -1)
        if state["first"] is None:
            # the first online sample stands in for the first frame's (ground-truth) sample
            state["first"] = (sample.features, label)
        samples = [*state["samples"], (sample.features, label)][-self.window :]
        state["samples"] = samples
        data = [state["first"], *samples]
        theta = state["template"].detach()
        shape = (-1,) + (1,) * (theta.dim() - 1)
        if theta.shape[0] == 1:
            # one model: all stored samples in one batched loss call (same mean, ~5x faster)
            feats = torch.cat([f for f, _ in data])
            labels = torch.cat([y for _, y in data])

            def mean_loss(th: Tensor) -> Tensor:
                return state["loss_fn"](th, feats, labels).mean().reshape(1)

        else:

            def mean_loss(th: Tensor) -> Tensor:
                return sum(state["loss_fn"](th, f, y) for f, y in data) / len(data)

        for _ in range(self.steps):
            with torch.enable_grad():
                theta = theta.detach().requires_grad_(True)
                loss = mean_loss(theta)
                (grad,) = torch.autograd.grad(loss.sum(), theta)
            g_rms = grad.flatten(1).pow(2).mean(dim=1).sqrt().clamp_min(1e-12)
            theta = theta.detach() - self.lr * (state["rms0"] / g_rms).view(shape) * grad
        state["template"] = theta
        return theta, state

    def __repr__(self) -> str:
        return f"SGDUpdater(lr={self.lr}, steps={self.steps}, window={self.window})"


def preprocess_gradient(grad: Tensor, p: float = 10.0) -> Tensor:
    """L2L gradient preprocessing: ``[log|g| / p, sign g]`` if ``|g| >= e^-p`` else ``[-1, e^p g]``.

    Args:
        grad: any shape ``(...)``.

    Returns:
        ``(..., 2)``.
    """
    big = grad.abs() >= math.exp(-p)
    first = torch.where(big, grad.abs().clamp_min(1e-30).log() / p, torch.full_like(grad, -1.0))
    second = torch.where(big, grad.sign(), grad * math.exp(p))
    return torch.stack([first, second], dim=-1)


class LearnedUpdater(nn.Module):
    """Recurrent meta-learned updater (the paper's "learning to update").

    ``theta_t = theta_{t-1} + gamma_t (psi_t - theta_{t-1}) + Delta_t`` where

    * ``gamma_t = sigmoid(head(LSTMCell(cues_t)))`` is a state-dependent update rate computed
      from the localisation cues (peak, PSR, displacement, time) - the "lite" part;
    * ``Delta_t`` (when ``coordinatewise``) comes from a coordinate-wise ``coord_layers``-layer
      LSTM shared over all model coordinates, fed per coordinate with the preprocessed gradient of
      the base loss on the newest sample (no second-order terms), psi_t, theta_{t-1}, theta_0,
      psi_t - theta_{t-1} (all divided by rms(theta_0)) and the cues. Its head starts at zero, so
      before meta-training the updater *is* ``EMAUpdater(init_gamma)``.

    The recurrent state replaces the stored online training set. Its size is
    ``2 * coord_hidden * coord_layers`` numbers per model coordinate (h and c of every layer),
    so whether it is smaller than SGD's window of samples depends on the model's size against
    the features' (:func:`state_nbytes` measures both; the tracking card has the numbers).

    Args:
        init_gamma: initial update rate (the gate's bias is ``logit(init_gamma)``).
        coordinatewise: add the coordinate-wise Delta branch (False = "lite" learned EMA).
        gate_hidden: hidden size of the gate LSTMCell.
        coord_hidden: hidden size of the coordinate-wise LSTM.
        coord_layers: layers of the coordinate-wise LSTM.
        n_cues: number of global cues.
        device: where the parameters are created (models and samples given to ``update`` must
            be there too).

    References:
        arXiv 1806.07078 (recurrent meta-learner); arXiv 1606.04474 (coordinate-wise LSTM).
    """

    n_coord_features = 6

    def __init__(
        self,
        *,
        init_gamma: float = 0.05,
        coordinatewise: bool = True,
        gate_hidden: int = 16,
        coord_hidden: int = 20,
        coord_layers: int = 2,
        n_cues: int = 4,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        own = "LearnedUpdater"
        self.init_gamma = check_range(
            "init_gamma", init_gamma, 0.0, 1.0, low_inclusive=False, high_inclusive=False, owner=own
        )
        self.coordinatewise = bool(coordinatewise)
        self.n_cues = check_int("n_cues", n_cues, 1, owner=own)
        self.gate_cell = nn.LSTMCell(n_cues, check_int("gate_hidden", gate_hidden, 1, owner=own))
        self.gate_head = nn.Linear(gate_hidden, 1)
        check_int("coord_hidden", coord_hidden, 1, owner=own)
        check_int("coord_layers", coord_layers, 1, owner=own)
        self.coord_cells = nn.ModuleList()
        if self.coordinatewise:
            sizes = [self.n_coord_features + n_cues] + [coord_hidden] * coord_layers
            self.coord_cells.extend(nn.LSTMCell(a, b) for a, b in itertools.pairwise(sizes))
            self.coord_head = nn.Linear(coord_hidden, 1)
            self.coord_scale = nn.Parameter(torch.tensor(0.1))
        self.reset_head()
        if device is not None:
            self.to(device)

    def reset_head(self) -> None:
        """Zero the heads so the updater equals ``EMAUpdater(init_gamma)``."""
        with torch.no_grad():
            self.gate_head.weight.zero_()
            self.gate_head.bias.fill_(math.log(self.init_gamma / (1 - self.init_gamma)))
            if self.coordinatewise:
                self.coord_head.weight.zero_()
                self.coord_head.bias.zero_()

    def extra_repr(self) -> str:
        return f"init_gamma={self.init_gamma}, coordinatewise={self.coordinatewise}"

    def init(self, template: Tensor, loss_fn: LossFn | None = None) -> dict[str, Any]:
        if self.coordinatewise and loss_fn is None:
            raise ValueError("LearnedUpdater(coordinatewise=True).init needs `loss_fn`")
        n = template.shape[0]
        rms0 = template.detach().flatten(1).pow(2).mean(dim=1).sqrt().clamp_min(1e-8)
        hidden = self.gate_cell.hidden_size
        return {
            "template": template,
            "template0": template,
            "rms0": rms0,
            "loss_fn": loss_fn,
            "gate": (template.new_zeros(n, hidden), template.new_zeros(n, hidden)),
            "coord": None,
        }

    def update(self, state: dict[str, Any], sample: OnlineSample) -> tuple[Tensor, dict[str, Any]]:
        theta = state["template"]
        n = theta.shape[0]
        shape = (-1,) + (1,) * (theta.dim() - 1)
        cues = sample.cues.to(theta.dtype)
        gate_h, gate_c = self.gate_cell(cues, state["gate"])
        gamma = torch.sigmoid(self.gate_head(gate_h)).view(shape)
        new = theta + gamma * (sample.model - theta)
        state = {**state, "gate": (gate_h, gate_c), "gamma": gamma.detach().flatten()}
        if self.coordinatewise:
            rms = state["rms0"].view(shape)
            with torch.enable_grad():
                probe = theta.detach().requires_grad_(True)
                label = sample.label.expand(n, -1, -1)
                (grad,) = torch.autograd.grad(
                    state["loss_fn"](probe, sample.features.detach(), label).sum(), probe
                )
            d = theta[0].numel()
            per_coord = torch.stack(
                [
                    sample.model / rms,
                    theta / rms,
                    state["template0"] / rms,
                    (sample.model - theta) / rms,
                ],
                dim=-1,
            ).reshape(n * d, 4)
            inputs = torch.cat(
                [
                    preprocess_gradient((grad * rms).reshape(n * d)),
                    per_coord,
                    cues.detach().repeat_interleave(d, dim=0),
                ],
                dim=1,
            )
            coord_state = state["coord"] or [
                (inputs.new_zeros(n * d, c.hidden_size), inputs.new_zeros(n * d, c.hidden_size))
                for c in self.coord_cells
            ]
            x, new_coord = inputs, []
            for cell, hc in zip(self.coord_cells, coord_state, strict=True):
                h, c = cell(x, hc)
                new_coord.append((h, c))
                x = h
            delta = self.coord_scale * self.coord_head(x).view_as(theta)
            new = new + delta * rms
            state["coord"] = new_coord
        state["template"] = new
        return new, state
