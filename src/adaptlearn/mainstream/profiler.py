"""M-Trainer/M-Profiler at small scale: a layered CNN, fine-tuning at every freeze depth, and
per-layer compute profiling (FLOPs counted and time measured).

Mainstream fine-tunes one model per application and per *chokepoint* k (the first k layers of the
shared base model frozen, the rest retrained) and records the per-frame accuracy of each; the
scheduler then trades accuracy for shareable compute. Here the base model is :class:`StemCNN`, a
stack of conv blocks plus a linear head; freezing ``k`` blocks means the app only runs blocks
``k..`` and its head on top of a stem that all apps with depth ``>= k`` can share.

References:
    Jiang et al., "Mainstream: Dynamic Stem-Sharing for Multi-Tenant Video Processing",
    USENIX ATC 2018 (M-Trainer ``src/training/FineTunerFast.py``; layer latencies).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from adaptlearn.core.validation import check_int, check_range
from adaptlearn.mainstream.types import StemOption

__all__ = [
    "LayerProfile",
    "StemCNN",
    "fine_tune",
    "measure_stem_option",
    "predict_scores",
    "profile_layers",
    "train_classifier",
]


class StemCNN(nn.Module):
    """A CNN as an explicit list of layers, so any prefix can be frozen and shared.

    Layer ``i < len(widths)`` is conv3x3-BatchNorm-ReLU followed by 2x2 max-pooling (the last
    block pools globally); the final layer is the linear head.

    Args:
        n_outputs: outputs of the head (classes; 1 for a binary detector's logit).
        widths: channels of the conv blocks. Default: ``(8, 16, 32, 32)``.
        in_channels: input channels. Default: 3.
        generator: CPU torch generator for the initial weights (None: the global RNG).
        device: where the parameters live (default: the CPU). Weights are drawn on the CPU and
            moved, so a seed gives the same network on every device.

    Shapes:
        ``forward(x)``: ``(B, C, H, W) -> (B, n_outputs)``;
        ``forward(x, start=k)`` takes the output of layer ``k - 1`` instead of an image.
    """

    def __init__(self, n_outputs: int, widths: Sequence[int] = (8, 16, 32, 32), *,
                 in_channels: int = 3, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        check_int("n_outputs", n_outputs, 1, owner="StemCNN")
        if not widths:
            raise ValueError("`widths` of StemCNN must be non-empty")
        blocks: list[nn.Module] = []
        prev = in_channels
        for i, w in enumerate(widths):
            check_int(f"widths[{i}]", w, 1, owner="StemCNN")
            last = i == len(widths) - 1
            blocks.append(nn.Sequential(
                nn.Conv2d(prev, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                nn.AdaptiveMaxPool2d(1) if last else nn.MaxPool2d(2),
            ))
            prev = w
        self.widths = tuple(int(w) for w in widths)
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(prev, n_outputs))
        self.reset_parameters(generator)
        if device is not None:
            self.to(device)

    @property
    def device(self) -> torch.device:
        """Where the parameters live."""
        return self.head[1].weight.device

    @property
    def n_layers(self) -> int:
        """Number of layers including the head (freeze depths run from 0 to n_layers - 1)."""
        return len(self.blocks) + 1

    def layers(self) -> list[nn.Module]:
        """The blocks followed by the head."""
        return [*self.blocks, self.head]

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Kaiming-uniform conv/linear weights drawn from ``generator`` (on the CPU); BN to
        identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                _kaiming_(m.weight, generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()

    def forward(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run layers ``[start, stop)`` (default: all)."""
        for layer in self.layers()[start:stop]:
            x = layer(x)
        return x

    def extra_repr(self) -> str:
        return f"widths={self.widths}, n_layers={self.n_layers}"


def _kaiming_(weight: torch.Tensor, generator: torch.Generator | None) -> None:
    """Kaiming-uniform init drawn on the CPU (a CPU generator works for any device's weights)."""
    cpu = torch.empty(weight.shape, dtype=weight.dtype)
    nn.init.kaiming_uniform_(cpu, nonlinearity="relu", generator=generator)
    with torch.no_grad():
        weight.copy_(cpu)


def train_classifier(
    model: StemCNN,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 3,
    lr: float = 3e-3,
    batch_size: int = 64,
    frozen_layers: int = 0,
    generator: torch.Generator,
) -> StemCNN:
    """Train ``model`` in place with Adam; layers ``< frozen_layers`` stay fixed (eval mode).

    The frozen prefix is run once over ``x`` (its BatchNorm in eval mode), then only the suffix is
    trained on the cached stem features, which is exact for a frozen prefix and much cheaper.

    Args:
        model: the network (trained on its own device; ``x`` and ``y`` are moved there).
        x: inputs, ``(n, C, H, W)`` float32.
        y: targets: ``(n,)`` int64 class indices (multi-class head) or ``(n,)`` float32 in
            {0, 1} (single-logit head, binary cross-entropy).
        epochs: passes over the data.
        lr: Adam learning rate.
        batch_size: examples per step.
        frozen_layers: k, number of leading layers not trained.
        generator: shuffling generator (CPU).

    Returns:
        The same ``model``.
    """
    check_int("epochs", epochs, 1)
    check_range("lr", lr, 0.0, low_inclusive=False)
    check_int("batch_size", batch_size, 1)
    check_int("frozen_layers", frozen_layers, 0, model.n_layers - 1)
    device = model.device
    x, y = x.to(device), y.to(device)
    layers = model.layers()
    for i, layer in enumerate(layers):
        layer.requires_grad_(i >= frozen_layers)
    with torch.no_grad():
        for layer in layers[:frozen_layers]:
            layer.eval()
        feats = model(x, 0, frozen_layers) if frozen_layers else x
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    binary = y.dtype.is_floating_point
    n = x.shape[0]
    for _ in range(epochs):
        for layer in layers[frozen_layers:]:
            layer.train()
        perm = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            if idx.numel() < 2:
                continue
            out = model(feats[idx], frozen_layers)
            if binary:
                loss = nn.functional.binary_cross_entropy_with_logits(out.squeeze(1), y[idx])
            else:
                loss = nn.functional.cross_entropy(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    model.requires_grad_(True)
    return model


def fine_tune(
    base: StemCNN,
    frozen_layers: int,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    **train_kwargs: object,
) -> StemCNN:
    """A binary detector from ``base``: copy it, put a fresh 1-logit head, freeze ``k`` layers.

    Args:
        base: pre-trained base model (not modified).
        frozen_layers: k in ``[0, base.n_layers - 1]``; ``n_layers - 1`` trains the head only.
        x: ``(n, C, H, W)`` frames.
        y: ``(n,)`` float32 labels in {0, 1}.
        generator: CPU generator for the head's init and the shuffling.
        device: where the detector lives and trains (default: ``base``'s device).
        **train_kwargs: forwarded to :func:`train_classifier` (epochs, lr, batch_size).
    """
    model = copy.deepcopy(base)
    head = nn.Linear(base.head[1].in_features, 1)
    _kaiming_(head.weight, generator)
    nn.init.zeros_(head.bias)
    model.head = nn.Sequential(nn.Flatten(), head)
    model.to(base.device if device is None else device)
    return train_classifier(model, x, y, frozen_layers=frozen_layers, generator=generator,
                            **train_kwargs)  # type: ignore[arg-type]


@torch.no_grad()
def predict_scores(model: StemCNN, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Sigmoid scores of a binary detector, ``(n, C, H, W) -> (n,)``.

    Runs on the model's device, batch by batch; the scores come back on ``x``'s device.
    """
    check_int("batch_size", batch_size, 1)
    model.eval()
    device = model.device
    out = [torch.sigmoid(model(x[i:i + batch_size].to(device)).squeeze(1))
           for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out).to(x.device) if out else torch.empty(0, device=x.device)


def measure_stem_option(model: StemCNN, frozen_layers: int, x: torch.Tensor, y: torch.Tensor,
                        threshold: float = 0.5) -> StemOption:
    """Per-frame recall a(k) on positive frames and false-positive rate q(k) on negatives."""
    pred = predict_scores(model, x) >= threshold
    pos = y.to(pred.device) > 0.5
    if not pos.any() or pos.all():
        raise ValueError("`y` must contain both positive and negative frames")
    recall = float(pred[pos].float().mean())
    fpr = float(pred[~pos].float().mean())
    return StemOption(frozen_layers, recall, fpr)


@dataclass(frozen=True)
class LayerProfile:
    """Compute cost of one layer for one frame.

    Attributes:
        name: layer name (``block0``, ..., ``head``).
        flops: floating-point operations per frame (torch's FLOP counter: 2 per MAC).
        time_ms: median wall-clock milliseconds per frame (batched, 1 thread recommended).
    """

    name: str
    flops: float
    time_ms: float


@torch.no_grad()
def profile_layers(model: StemCNN, example: torch.Tensor, *, reps: int = 30,
                   warmup: int = 3) -> list[LayerProfile]:
    """FLOPs and median time per frame of each layer of ``model``.

    Args:
        model: the network (put in eval mode; timed on its own device, synchronising CUDA).
        example: a batch of inputs ``(B, C, H, W)`` (moved to the model's device); costs are
            divided by ``B``.
        reps: timed repetitions per layer (median taken).
        warmup: untimed repetitions first.
    """
    from torch.utils.flop_counter import FlopCounterMode

    check_int("reps", reps, 1)
    model.eval()
    batch = example.shape[0]
    device = model.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out: list[LayerProfile] = []
    x = example.to(device)
    names = [f"block{i}" for i in range(len(model.blocks))] + ["head"]
    for name, layer in zip(names, model.layers(), strict=True):
        counter = FlopCounterMode(display=False)
        with counter:
            y = layer(x)
        times = []
        for r in range(warmup + reps):
            sync()
            t0 = time.perf_counter()
            layer(x)
            sync()
            if r >= warmup:
                times.append(time.perf_counter() - t0)
        out.append(LayerProfile(name, counter.get_total_flops() / batch,
                                1e3 * statistics.median(times) / batch))
        x = y
    return out
