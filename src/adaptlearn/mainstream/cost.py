"""Compute cost of a stem-sharing schedule (Mainstream's cost model).

Layer ``l`` (0-based) of the shared base model is frozen in every app with ``k_i > l``. Those apps
share one execution of it, run at the highest frame rate among them; every app with ``k_i <= l``
runs its own fine-tuned copy of layer ``l`` at its own rate::

    cost = sum_l c_l * ( max_{i: k_i > l} f_i + sum_{i: k_i <= l} f_i )

This is ``scheduler_util.get_cost_schedule`` of ``angelajiang/mainstream`` written per layer (the
reference sums over segments between distinct branch points; the two are equal).

References:
    Jiang et al., "Mainstream: Dynamic Stem-Sharing for Multi-Tenant Video Processing",
    USENIX ATC 2018.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adaptlearn.core.validation import check_range

__all__ = ["CostModel"]


@dataclass(frozen=True)
class CostModel:
    """Per-layer costs of the base model and the stream's frame rate.

    Attributes:
        layer_costs: c_l, cost of layer ``l`` for one frame (e.g. ms or MFLOPs); length L.
        stream_fps: F, frame rate of the video stream; apps sample at ``f <= F``.
    """

    layer_costs: tuple[float, ...]
    stream_fps: float = 10.0

    def __post_init__(self) -> None:
        costs = tuple(float(c) for c in self.layer_costs)
        if not costs:
            raise ValueError("`layer_costs` of CostModel must be non-empty")
        for i, c in enumerate(costs):
            check_range(f"layer_costs[{i}]", c, 0.0, owner="CostModel")
        object.__setattr__(self, "layer_costs", costs)
        check_range("stream_fps", self.stream_fps, 0.0, low_inclusive=False, owner="CostModel")

    @property
    def n_layers(self) -> int:
        """L, the number of layers (freeze depths run from 0 to L)."""
        return len(self.layer_costs)

    @property
    def full_model_cost(self) -> float:
        """Cost of one unshared model at the full stream rate (a natural budget unit)."""
        return sum(self.layer_costs) * self.stream_fps

    def suffix_cost(self, frozen_layers: int) -> float:
        """Per-frame cost of the layers an app with depth k runs by itself (``sum_{l>=k} c_l``)."""
        return sum(self.layer_costs[frozen_layers:])

    def _check(self, depths: Sequence[int], fps: Sequence[float]) -> None:
        if len(depths) != len(fps):
            raise ValueError(f"got {len(depths)} depths but {len(fps)} frame rates")
        for k in depths:
            if not 0 <= int(k) <= self.n_layers:
                raise ValueError(f"freeze depth must be in [0, {self.n_layers}]; got {k}")
        for f in fps:
            if not 0 < float(f) <= self.stream_fps + 1e-9:
                raise ValueError(f"fps must be in (0, {self.stream_fps:g}]; got {f}")

    def cost(self, depths: Sequence[int], fps: Sequence[float]) -> float:
        """Cost of running apps with freeze depths ``depths`` at rates ``fps`` (one per app)."""
        self._check(depths, fps)
        total = 0.0
        for layer, c in enumerate(self.layer_costs):
            shared = [f for k, f in zip(depths, fps, strict=True) if k > layer]
            own = sum(f for k, f in zip(depths, fps, strict=True) if k <= layer)
            total += c * ((max(shared) if shared else 0.0) + own)
        return total

    def cost_batch(self, depths: np.ndarray, fps: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`cost` for many schedules.

        Args:
            depths: int array, shape ``(S, N)`` (S schedules of N apps).
            fps: float array, shape ``(S, N)``.

        Returns:
            float array of shape ``(S,)``.
        """
        depths = np.asarray(depths)
        fps = np.asarray(fps, dtype=float)
        layers = np.arange(self.n_layers)
        sharing = depths[:, :, None] > layers[None, None, :]  # (S, N, L)
        shared = np.where(sharing, fps[:, :, None], 0.0).max(axis=1)  # (S, L)
        own = np.where(~sharing, fps[:, :, None], 0.0).sum(axis=1)  # (S, L)
        return (shared + own) @ np.asarray(self.layer_costs)

    def executed_cost(self, depths: Sequence[int], fps: Sequence[float], *,
                      seconds: float = 60.0) -> float:
        """Cost actually incurred by executing the schedule frame by frame, per second.

        App ``i`` processes stream frames ``floor(j F / f_i)``, ``j = 0, 1, ...`` (phase-aligned
        sampling). A shared layer runs once for every frame that *any* of its sharers samples, so
        it costs the size of the union of their sample sets. :meth:`cost` charges a shared layer
        at the highest sharer rate, which is exact only when the sample sets are nested (for
        example 10, 5 and 1 fps at F = 10). With non-nested rates (2 and 5 fps), execution costs
        more than :meth:`cost` says.

        Args:
            depths: freeze depth per app.
            fps: sampling rate per app.
            seconds: simulated stream length.
        """
        self._check(depths, fps)
        check_range("seconds", seconds, 0.0, low_inclusive=False)
        n_frames = round(seconds * self.stream_fps)
        samples = []
        for f in fps:
            count = int(np.ceil(seconds * float(f) - 1e-9))
            idx = np.floor(np.arange(count) * self.stream_fps / float(f) + 1e-9).astype(np.int64)
            samples.append(np.unique(idx[idx < n_frames]))
        total = 0.0
        for layer, c in enumerate(self.layer_costs):
            shared = [s for k, s in zip(depths, samples, strict=True) if k > layer]
            own = sum(s.size for k, s in zip(depths, samples, strict=True) if k <= layer)
            union = np.unique(np.concatenate(shared)).size if shared else 0
            total += c * (union + own)
        return total / (n_frames / self.stream_fps)
