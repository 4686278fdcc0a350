"""Two base trackers with an explicit, updatable target model, and the OPE tracking loop.

Both trackers expose the same functional pieces (all batched over a leading dimension ``N``):

* ``search_side(w, h)``: side in image pixels of the square window cropped around the target;
* ``features(patches)``: ``(N, 1, P, P)`` crops -> ``(N, C, S, S)`` features;
* ``candidate(features)``: the single-sample target model psi of a crop centred on the target,
  ``(N, *model_shape)``;
* ``response(model, features)``: ``(N, R, R)`` score map, zero displacement at ``R // 2``;
* ``label(offsets)`` and ``loss(model, features, labels)``: the base tracker's training loss,
  which SGD and the learned updater use.

The target model theta is a plain tensor, so every updater (:mod:`.updaters`) works with either.

References:
    Bolme et al. "Visual Object Tracking using Adaptive Correlation Filters" (MOSSE), CVPR 2010.
    Bertinetto et al. "Fully-Convolutional Siamese Networks for Object Tracking" (SiamFC), 2016.
    Li, Xie, Zeng, Liu. "Learning to Update for Object Tracking with Recurrent Meta-learner",
    arXiv 1806.07078 (the two base trackers of the paper: template-based and CF-based).
"""

from __future__ import annotations

import math
import time
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adaptlearn.core import check_int, check_range

__all__ = [
    "BaseTracker",
    "CorrelationFilterTracker",
    "SiameseEmbedding",
    "TemplateTracker",
    "crop_patches",
    "track_sequence",
]


def crop_patches(frame: Tensor, centers: Tensor, sides: Tensor, out: int) -> Tensor:
    """Square crops resampled bilinearly (border padding).

    Args:
        frame: (1, 1, H, W) or (N, 1, H, W) image; continuous coordinates, pixel i spans [i, i+1).
        centers: (N, 2) crop centres ``(cx, cy)`` in pixels.
        sides: (N,) crop sides in pixels.
        out: output side P.

    Returns:
        (N, 1, P, P) patches.
    """
    n = centers.shape[0]
    h, w = frame.shape[-2:]
    theta = torch.zeros(n, 2, 3, dtype=frame.dtype)
    theta[:, 0, 0] = sides / w
    theta[:, 1, 1] = sides / h
    theta[:, 0, 2] = 2 * centers[:, 0] / w - 1
    theta[:, 1, 2] = 2 * centers[:, 1] / h - 1
    grid = F.affine_grid(theta, [n, 1, out, out], align_corners=False)
    src = frame.expand(n, -1, -1, -1) if frame.shape[0] == 1 else frame
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _hann(n: int) -> Tensor:
    return torch.hann_window(n, periodic=False, dtype=torch.float32)


def _normalize_patches(patches: Tensor) -> Tensor:
    mean = patches.mean(dim=(-1, -2), keepdim=True)
    std = patches.std(dim=(-1, -2), keepdim=True)
    return (patches - mean) / (std + 1e-3)


class BaseTracker(Protocol):
    """What the tracking loop and the updaters need from a base tracker."""

    patch_size: int
    response_size: int
    cell_px: float
    scales: tuple[float, ...]

    def search_side(self, w: float, h: float) -> float: ...
    def features(self, patches: Tensor) -> Tensor: ...
    def candidate(self, features: Tensor) -> Tensor: ...
    def init_model(self, patch: Tensor, generator: torch.Generator) -> Tensor: ...
    def response(self, model: Tensor, features: Tensor) -> Tensor: ...
    def label(self, offsets: Tensor) -> Tensor: ...
    def loss(self, model: Tensor, features: Tensor, labels: Tensor) -> Tensor: ...


# ------------------------------------------------------------------------------------------------
class CorrelationFilterTracker:
    """MOSSE / linear DCF tracker in the Fourier domain (torch FFT, batched).

    The target model is ``theta = [Re A, Im A, B]`` with ``A = G^ . conj(F^)`` and
    ``B = F^ . conj(F^)`` (shape ``(3, M, M)`` for grey input); the filter is
    ``H* = A / (max(B, 0) + lambda)`` and the response ``ifft(F^ . H*)``. The spec notes that
    MOSSE reference code has no lambda (blow-ups on flat patches); lambda > 0 here.

    Args:
        patch_size: M, side of the resampled window (cells = pixels of the patch).
        padding: window side = (1 + padding) * sqrt(w * h).
        lam: regulariser lambda.
        sigma_factor: Gaussian label sigma = sigma_factor * M / (1 + padding).
        n_warps: random affine warps of the first patch added to the initial model.
        scales: scale search factors.
        scale_penalty: multiplies the peak of non-unit scales.
        scale_lr: damping of the size update.

    References:
        Bolme et al., CVPR 2010; ``shared/specs/tracking.md`` section 4.1.
    """

    def __init__(
        self,
        *,
        patch_size: int = 32,
        padding: float = 1.0,
        lam: float = 1e-2,
        sigma_factor: float = 0.1,
        n_warps: int = 8,
        scales: tuple[float, ...] = (1 / 1.04, 1.0, 1.04),
        scale_penalty: float = 0.97,
        scale_lr: float = 0.6,
    ) -> None:
        own = "CorrelationFilterTracker"
        self.patch_size = check_int("patch_size", patch_size, 8, owner=own)
        self.padding = check_range("padding", padding, 0.0, owner=own)
        self.lam = check_range("lam", lam, 0.0, low_inclusive=False, owner=own)
        self.sigma_factor = check_range(
            "sigma_factor", sigma_factor, 0.0, low_inclusive=False, owner=own
        )
        self.n_warps = check_int("n_warps", n_warps, 0, owner=own)
        self.scales = tuple(float(s) for s in scales)
        self.scale_penalty = check_range("scale_penalty", scale_penalty, 0.0, 1.0, owner=own)
        self.scale_lr = check_range("scale_lr", scale_lr, 0.0, 1.0, owner=own)
        self.response_size = self.patch_size
        self.cell_px = 1.0
        self.psr_exclude = 5
        m = self.patch_size
        self._window = _hann(m)[:, None] * _hann(m)[None, :]
        self._sigma = self.sigma_factor * m / (1 + self.padding)
        self._label_fft = torch.fft.fft2(self.label(torch.zeros(1, 2)))[0]

    def __repr__(self) -> str:
        return (
            f"CorrelationFilterTracker(patch_size={self.patch_size}, padding={self.padding}, "
            f"lam={self.lam}, n_warps={self.n_warps}, scales={self.scales})"
        )

    def search_side(self, w: float, h: float) -> float:
        """Window side in image pixels for a ``w x h`` target."""
        return (1 + self.padding) * math.sqrt(max(w * h, 1.0))

    def features(self, patches: Tensor) -> Tensor:
        """log(1 + x), zero mean / unit variance, Hann window. (N, 1, M, M) -> (N, 1, M, M)."""
        return _normalize_patches(torch.log1p(patches)) * self._window

    def candidate(self, features: Tensor) -> Tensor:
        """Single-sample model ``[Re A, Im A, B]``. (N, 1, M, M) -> (N, 3, M, M)."""
        f_hat = torch.fft.fft2(features)  # (N, C, M, M)
        a = self._label_fft * f_hat.conj()
        b = (f_hat * f_hat.conj()).real.sum(dim=1, keepdim=True)
        return torch.cat([a.real, a.imag, b], dim=1)

    def init_model(self, patch: Tensor, generator: torch.Generator) -> Tensor:
        """Mean candidate over the first patch and ``n_warps`` random affine warps.

        Shapes: (1, 1, M, M) -> (1, 3, M, M).
        """
        patches = [patch]
        if self.n_warps:
            n = self.n_warps
            angle = (torch.rand(n, generator=generator) - 0.5) * 0.2
            theta = torch.zeros(n, 2, 3)
            theta[:, 0, 0] = torch.cos(angle)
            theta[:, 0, 1] = -torch.sin(angle)
            theta[:, 1, 0] = torch.sin(angle)
            theta[:, 1, 1] = torch.cos(angle)
            theta[:, :, :2] += (torch.rand(n, 2, 2, generator=generator) - 0.5) * 0.2
            grid = F.affine_grid(
                theta, [n, 1, self.patch_size, self.patch_size], align_corners=False
            )
            patches.append(
                F.grid_sample(
                    patch.expand(n, -1, -1, -1), grid, padding_mode="border", align_corners=False
                )
            )
        return self.candidate(self.features(torch.cat(patches))).mean(dim=0, keepdim=True)

    def response(self, model: Tensor, features: Tensor) -> Tensor:
        """``ifft(F^ . A / (B + lambda))`` summed over channels. (N,3,M,M), (N,1,M,M) -> (N,M,M)."""
        c = features.shape[1]
        a = torch.complex(model[:, :c], model[:, c : 2 * c])
        b = model[:, 2 * c :].clamp_min(0.0) + self.lam
        f_hat = torch.fft.fft2(features)
        return torch.fft.ifft2((f_hat * a / b).sum(dim=1)).real

    def label(self, offsets: Tensor) -> Tensor:
        """Gaussian peaked at ``M // 2 + offset``; offsets (N, 2) as (dx, dy) cells -> (N, M, M)."""
        m = self.patch_size
        ax = torch.arange(m, dtype=torch.float32) - m // 2
        dx = ax[None, None, :] - offsets[:, 0, None, None]
        dy = ax[None, :, None] - offsets[:, 1, None, None]
        return torch.exp(-(dx**2 + dy**2) / (2 * self._sigma**2))

    def loss(self, model: Tensor, features: Tensor, labels: Tensor) -> Tensor:
        """Mean squared error between response and label, per sample. -> (N,)."""
        return ((self.response(model, features) - labels) ** 2).mean(dim=(-1, -2))


# ------------------------------------------------------------------------------------------------
class SiameseEmbedding(nn.Module):
    """Small fully-convolutional embedding phi (3 unpadded 3x3 convs, total stride 2).

    ``(N, 1, 64, 64) -> (N, C, 27, 27)``; the exemplar's 32 x 32 centre maps to the central
    ``11 x 11`` cells, so the template is a slice of the search features.
    """

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.channels = check_int("channels", channels, 1, owner="SiameseEmbedding")
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3),
        )
        self.adjust_scale = nn.Parameter(torch.tensor(1.0))
        self.adjust_bias = nn.Parameter(torch.tensor(0.0))

    def forward(self, patches: Tensor) -> Tensor:
        return self.body(_normalize_patches(patches))


class TemplateTracker:
    """SiamFC-like template tracker: score = adjust(phi(x) * z) with a learned small CNN phi.

    The target model is the template ``z = phi(exemplar)`` of shape ``(C, 11, 11)``. Exemplar
    side ``s_z = sqrt((w + p)(h + p))``, ``p = (w + h) / 2``; search side ``2 s_z`` resampled to
    64 px; score map 17 x 17, 2 patch pixels per cell, upsampled x4 (bicubic) for localisation;
    Hann-window penalty with influence ``window_influence``.

    Args:
        embedding: the (offline-trained, frozen) :class:`SiameseEmbedding`.
        scales, scale_penalty, scale_lr: scale search as in SiamFC.
        window_influence: weight of the cosine window on the normalised score map.
        pos_radius: label radius in score cells (SiamFC rPos 8 px / stride 8 -> 1; here 2 cells).

    References:
        Bertinetto et al. 2016 (SiamFC); ``bilylee/SiamFC-TensorFlow`` configuration.py.
    """

    patch_size = 64
    exemplar_cells = 11
    search_cells = 27

    def __init__(
        self,
        embedding: SiameseEmbedding,
        *,
        scales: tuple[float, ...] = (1 / 1.0375, 1.0, 1.0375),
        scale_penalty: float = 0.9745,
        scale_lr: float = 0.59,
        window_influence: float = 0.176,
        pos_radius: float = 2.0,
    ) -> None:
        own = "TemplateTracker"
        self.embedding = embedding
        self.scales = tuple(float(s) for s in scales)
        self.scale_penalty = check_range("scale_penalty", scale_penalty, 0.0, 1.0, owner=own)
        self.scale_lr = check_range("scale_lr", scale_lr, 0.0, 1.0, owner=own)
        self.window_influence = check_range(
            "window_influence", window_influence, 0.0, 1.0, owner=own
        )
        self.pos_radius = check_range("pos_radius", pos_radius, 0.0, owner=own)
        self.response_size = self.search_cells - self.exemplar_cells + 1
        self.cell_px = 2.0
        self.psr_exclude = 2
        self.upsample = 4

    def __repr__(self) -> str:
        return (
            f"TemplateTracker(channels={self.embedding.channels}, scales={self.scales}, "
            f"window_influence={self.window_influence})"
        )

    def search_side(self, w: float, h: float) -> float:
        p = (w + h) / 2
        return 2 * math.sqrt((w + p) * (h + p))

    def features(self, patches: Tensor) -> Tensor:
        return self.embedding(patches)

    def candidate(self, features: Tensor) -> Tensor:
        lo = (self.search_cells - self.exemplar_cells) // 2
        return features[:, :, lo : lo + self.exemplar_cells, lo : lo + self.exemplar_cells]

    def init_model(self, patch: Tensor, generator: torch.Generator) -> Tensor:
        return self.candidate(self.features(patch))

    def response(self, model: Tensor, features: Tensor) -> Tensor:
        """Per-sample cross-correlation. (N, C, 11, 11), (N, C, 27, 27) -> (N, 17, 17)."""
        n, c = features.shape[:2]
        if model.shape[0] != n:
            model = model.expand(n, -1, -1, -1)
        out = F.conv2d(features.reshape(1, n * c, *features.shape[-2:]), model, groups=n)
        norm = c * self.exemplar_cells**2
        return out[0] / norm * 10 * self.embedding.adjust_scale + self.embedding.adjust_bias

    def label(self, offsets: Tensor) -> Tensor:
        """1 within ``pos_radius`` cells of ``R // 2 + offset``, else 0. -> (N, R, R)."""
        r = self.response_size
        ax = torch.arange(r, dtype=torch.float32) - r // 2
        dx = ax[None, None, :] - offsets[:, 0, None, None]
        dy = ax[None, :, None] - offsets[:, 1, None, None]
        return ((dx**2 + dy**2) <= self.pos_radius**2).float()

    def loss(self, model: Tensor, features: Tensor, labels: Tensor) -> Tensor:
        """Balanced logistic loss (SiamFC), per sample. -> (N,)."""
        logits = self.response(model, features)
        n_pos = labels.sum(dim=(-1, -2), keepdim=True).clamp_min(1)
        n_neg = (1 - labels).sum(dim=(-1, -2), keepdim=True).clamp_min(1)
        weights = labels * 0.5 / n_pos + (1 - labels) * 0.5 / n_neg
        bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        return (weights * bce).sum(dim=(-1, -2))


# ------------------------------------------------------------------------------------------------
def _psr(response: Tensor, peak_idx: tuple[int, int], exclude: int) -> float:
    r = response.clone()
    y, x = peak_idx
    peak = float(r[y, x])
    mask = torch.ones_like(r, dtype=torch.bool)
    mask[max(0, y - exclude) : y + exclude + 1, max(0, x - exclude) : x + exclude + 1] = False
    side = r[mask]
    return (peak - float(side.mean())) / (float(side.std()) + 1e-6)


def response_cues(
    tracker: BaseTracker, response: Tensor, ref: tuple[float, float], t: int
) -> Tensor:
    """Global cues of one response map, for the learned updaters. (R, R) -> (4,).

    ``[peak / peak_0, PSR / PSR_0, |peak offset| / R, min(t / 100, 1)]`` with ``peak_0``, ``PSR_0``
    measured on the first frame.
    """
    r = response.shape[-1]
    idx = int(torch.argmax(response))
    y, x = divmod(idx, r)
    peak = float(response[y, x])
    psr = _psr(response, (y, x), tracker.psr_exclude)
    off = math.hypot(x - r // 2, y - r // 2) / r
    return torch.tensor(
        [peak / (abs(ref[0]) + 1e-6), psr / (abs(ref[1]) + 1e-6), off, min(t / 100.0, 1.0)],
        dtype=torch.float32,
    )


def reference_cues(tracker: BaseTracker, response: Tensor) -> tuple[float, float]:
    """``(peak, PSR)`` of the first-frame response, the normalisers of :func:`response_cues`."""
    r = response.shape[-1]
    y, x = divmod(int(torch.argmax(response)), r)
    return float(response[y, x]), _psr(response, (y, x), tracker.psr_exclude)


def _locate(tracker: BaseTracker, responses: Tensor) -> tuple[int, float, float, float]:
    """Best scale index, displacement (dx, dy) in patch pixels, and peak of the chosen map."""
    r = responses.shape[-1]
    maps = responses
    up = getattr(tracker, "upsample", 1)
    if up > 1:
        maps = F.interpolate(
            responses[:, None], scale_factor=up, mode="bicubic", align_corners=True
        )[:, 0]
    peaks = maps.flatten(1).max(dim=1).values
    penalties = torch.tensor(
        [1.0 if abs(s - 1.0) < 1e-9 else tracker.scale_penalty for s in tracker.scales]
    )
    best = int(torch.argmax(peaks * penalties))
    m = maps[best]
    influence = getattr(tracker, "window_influence", 0.0)
    if influence > 0:
        side = m.shape[-1]
        m = m - m.min()
        m = m / (m.sum() + 1e-12)
        window = _hann(side)[:, None] * _hann(side)[None, :]
        m = (1 - influence) * m + influence * window / window.sum()
    side = m.shape[-1]
    y, x = divmod(int(torch.argmax(m)), side)
    centre = (side - 1) / 2 if up > 1 else r // 2
    dx = (x - centre) / up * tracker.cell_px
    dy = (y - centre) / up * tracker.cell_px
    return best, dx, dy, float(peaks[best])


@torch.no_grad()
def track_sequence(
    tracker: BaseTracker,
    updater,
    frames: np.ndarray,
    init_box: np.ndarray,
    *,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """One-pass evaluation of ``tracker`` with ``updater`` on one sequence.

    Args:
        tracker: a base tracker (:class:`CorrelationFilterTracker` or :class:`TemplateTracker`).
        updater: any :class:`~adaptlearn.tracking.updaters.TemplateUpdater`.
        frames: (T, H, W) float in [0, 1].
        init_box: (4,) ground-truth ``(x, y, w, h)`` of frame 0.
        seed: seeds the random warps of the initial model.

    Returns:
        ``(boxes, fps)``: predicted boxes (T, 4) (frame 0 = ``init_box``) and frames per second
        of ``init`` + every ``update`` (got10k's timing; generation excluded).
    """
    from adaptlearn.tracking.updaters import OnlineSample

    box = np.asarray(init_box, dtype=float)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(
            f"`init_box` must be 4 finite numbers (x, y, w, h) with w > 0 and h > 0; got "
            f"{np.asarray(init_box).tolist()!r}"
        )
    if np.ndim(frames) != 3 or len(frames) == 0:
        raise ValueError(
            f"`frames` must be a non-empty (T, H, W) array; got shape {np.shape(frames)}"
        )
    gen = torch.Generator().manual_seed(seed)
    video = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))[:, None]
    n_frames, _, img_h, img_w = video.shape
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    w0, h0 = w, h
    boxes = np.zeros((n_frames, 4), dtype=np.float32)
    boxes[0] = init_box
    p = tracker.patch_size
    durations = []
    start = time.perf_counter()
    side = tracker.search_side(w, h)
    patch = crop_patches(video[0:1], torch.tensor([[cx, cy]]), torch.tensor([side]), p)
    model = tracker.init_model(patch, gen)
    feats0 = tracker.features(patch)
    ref = reference_cues(tracker, tracker.response(model, feats0)[0])
    state = updater.init(model, loss_fn=tracker.loss)
    durations.append(time.perf_counter() - start)
    scales = torch.tensor(tracker.scales, dtype=torch.float32)
    centred = tracker.label(torch.zeros(1, 2))
    for t in range(1, n_frames):
        start = time.perf_counter()
        frame = video[t : t + 1]
        side = tracker.search_side(w, h)
        sides = side * scales
        centers = torch.tensor([[cx, cy]]).expand(len(scales), 2)
        feats = tracker.features(crop_patches(frame, centers, sides, p))
        responses = tracker.response(model.expand(len(scales), *model.shape[1:]), feats)
        best, dx, dy, _ = _locate(tracker, responses)
        px_per_patch = float(sides[best]) / p
        cx = min(max(cx + dx * px_per_patch, 0.0), img_w)
        cy = min(max(cy + dy * px_per_patch, 0.0), img_h)
        factor = 1 - tracker.scale_lr + tracker.scale_lr * tracker.scales[best]
        w = min(max(w * factor, 0.2 * w0), 5 * w0)
        h = min(max(h * factor, 0.2 * h0), 5 * h0)
        boxes[t] = (cx - w / 2, cy - h / 2, w, h)
        cues = response_cues(tracker, responses[best], ref, t)
        sample_feats = tracker.features(
            crop_patches(
                frame, torch.tensor([[cx, cy]]), torch.tensor([tracker.search_side(w, h)]), p
            )
        )
        sample = OnlineSample(tracker.candidate(sample_feats), sample_feats, centred, cues[None])
        model, state = updater.update(state, sample)
        durations.append(time.perf_counter() - start)
    fps = float(n_frames / max(sum(durations), 1e-9))
    return boxes, fps
