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
    "LUMA_WEIGHTS",
    "BaseTracker",
    "CorrelationFilterTracker",
    "OnlineTracker",
    "SiameseEmbedding",
    "TemplateTracker",
    "crop_patches",
    "to_grey",
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
    centers = centers.to(device=frame.device, dtype=frame.dtype)
    sides = sides.to(device=frame.device, dtype=frame.dtype)
    theta = torch.zeros(n, 2, 3, dtype=frame.dtype, device=frame.device)
    theta[:, 0, 0] = sides / w
    theta[:, 1, 1] = sides / h
    theta[:, 0, 2] = 2 * centers[:, 0] / w - 1
    theta[:, 1, 2] = 2 * centers[:, 1] / h - 1
    grid = F.affine_grid(theta, [n, 1, out, out], align_corners=False)
    src = frame.expand(n, -1, -1, -1) if frame.shape[0] == 1 else frame
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _hann(n: int, device: torch.device | None = None) -> Tensor:
    return torch.hann_window(n, periodic=False, dtype=torch.float32, device=device)


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
    device: torch.device

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
        device: where the tracker's tensors (window, label) live; frames and models given to it
            must be on the same device (default CPU).

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
        device: torch.device | str | None = None,
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
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        m = self.patch_size
        self._window = _hann(m, self.device)[:, None] * _hann(m, self.device)[None, :]
        self._sigma = self.sigma_factor * m / (1 + self.padding)
        self._label_fft = torch.fft.fft2(self.label(torch.zeros(1, 2)))[0]

    def __repr__(self) -> str:
        return (
            f"CorrelationFilterTracker(patch_size={self.patch_size}, padding={self.padding}, "
            f"lam={self.lam}, n_warps={self.n_warps}, scales={self.scales}, "
            f"device={self.device})"
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
            # drawn on the CPU generator (same warps on every device), used where the patch is
            theta = theta.to(device=patch.device, dtype=patch.dtype)
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
        offsets = offsets.to(self.device)
        ax = torch.arange(m, dtype=torch.float32, device=self.device) - m // 2
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
        device: where to run; the embedding is moved there (default: where its parameters are).

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
        device: torch.device | str | None = None,
    ) -> None:
        own = "TemplateTracker"
        if device is not None:
            embedding = embedding.to(device)
        self.embedding = embedding
        self.device = embedding.adjust_scale.device
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
        offsets = offsets.to(self.device)
        ax = torch.arange(r, dtype=torch.float32, device=self.device) - r // 2
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
        device=response.device,
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
        [1.0 if abs(s - 1.0) < 1e-9 else tracker.scale_penalty for s in tracker.scales],
        device=responses.device,
    )
    best = int(torch.argmax(peaks * penalties))
    m = maps[best]
    influence = getattr(tracker, "window_influence", 0.0)
    if influence > 0:
        side = m.shape[-1]
        m = m - m.min()
        m = m / (m.sum() + 1e-12)
        window = _hann(side, m.device)[:, None] * _hann(side, m.device)[None, :]
        m = (1 - influence) * m + influence * window / window.sum()
    side = m.shape[-1]
    y, x = divmod(int(torch.argmax(m)), side)
    centre = (side - 1) / 2 if up > 1 else r // 2
    dx = (x - centre) / up * tracker.cell_px
    dy = (y - centre) / up * tracker.cell_px
    return best, dx, dy, float(peaks[best])


#: ITU-R BT.601 luma weights of (R, G, B), the weights of OpenCV's ``COLOR_RGB2GRAY``.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
CHANNEL_ORDERS = ("rgb", "bgr")
_INT_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def to_grey(frames, *, channel_order: str = "rgb", name: str = "frame", video: bool = False):
    """Convert frames to the trackers' input: float32 grey in [0, 1].

    Conversion (documented and tested):

    * dtype ``uint8`` -> divided by 255, ``uint16`` -> divided by 65535; float16/32/64 are taken
      as they are and must lie in [0, 1] (a float frame in [0, 255] is refused, not guessed);
      any other dtype (bool, signed integers, complex) is refused.
    * grey ``(H, W)`` (or ``(H, W, 1)``) is kept; 3-channel ``(H, W, 3)`` is reduced to grey with
      the BT.601 luma weights :data:`LUMA_WEIGHTS` of (R, G, B), read in ``channel_order``
      (``"rgb"``, or ``"bgr"`` for OpenCV images). Four channels (alpha) are refused.

    Args:
        frames: one frame ``(H, W)`` / ``(H, W, C)``, or with ``video=True`` a sequence
            ``(T, H, W)`` / ``(T, H, W, C)``; numpy array or anything ``np.asarray`` accepts.
        channel_order: ``"rgb"`` or ``"bgr"`` (3-channel input only).
        name: the argument's name in error messages.
        video: whether ``frames`` has a leading time axis.

    Returns:
        float32 ``(H, W)`` (or ``(T, H, W)``) in [0, 1].
    """
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"`channel_order` must be one of {CHANNEL_ORDERS}; got {channel_order!r}")
    arr = np.asarray(frames)
    lead = 1 if video else 0
    shape_doc = "(T, H, W) or (T, H, W, 3)" if video else "(H, W) or (H, W, 3)"
    if arr.ndim == 3 + lead and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2 + lead, 3 + lead) or (arr.ndim == 3 + lead and arr.shape[-1] != 3):
        raise ValueError(
            f"`{name}` must have shape {shape_doc} (grey or 3-channel colour); got shape "
            f"{arr.shape}" + (" (drop the alpha channel first)" if arr.shape[-1:] == (4,) else "")
        )
    spatial = arr.shape[lead : lead + 2]
    if min(spatial, default=0) < 2 or (video and arr.shape[0] == 0):
        raise ValueError(f"`{name}` must be non-empty with H, W >= 2; got shape {arr.shape}")
    if arr.dtype in _INT_SCALE:
        out = arr.astype(np.float32) / _INT_SCALE[arr.dtype]
    elif arr.dtype in _FLOAT_DTYPES:
        out = arr.astype(np.float32, copy=False)
        lo, hi = float(np.min(out)), float(np.max(out))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(
                f"float `{name}` must be finite and lie in [0, 1]; got values in [{lo}, {hi}] "
                "(pass uint8 frames, or divide 0-255 floats by 255)"
            )
    else:
        raise ValueError(
            f"`{name}` must be uint8, uint16 or float16/32/64 (floats in [0, 1]); got dtype "
            f"{arr.dtype}"
        )
    if out.ndim == 3 + lead:
        weights = LUMA_WEIGHTS if channel_order == "rgb" else LUMA_WEIGHTS[::-1]
        out = out @ np.asarray(weights, dtype=np.float32)
    return np.ascontiguousarray(out, dtype=np.float32)


def _check_box(box, name: str = "init_box") -> np.ndarray:
    try:
        arr = np.asarray(box, dtype=float)
    except (TypeError, ValueError):
        arr = np.full(1, np.nan)
    if arr.shape != (4,) or not np.all(np.isfinite(arr)) or arr[2] <= 0 or arr[3] <= 0:
        raise ValueError(
            f"`{name}` must be 4 finite numbers (x, y, w, h) with w > 0 and h > 0; got "
            f"{np.asarray(box, dtype=object).tolist()!r}"
        )
    return arr


class OnlineTracker:
    """Per-frame interface of a base tracker + updater: ``init(frame, box)``, ``update(frame)``.

    The same calls as OpenCV's ``cv2.Tracker`` and GOT-10k's ``got10k.trackers.Tracker``, so our
    trackers drop into either kind of loop::

        online = OnlineTracker(CorrelationFilterTracker(), EMAUpdater(0.2), channel_order="bgr")
        online.init(first_frame, (x, y, w, h))
        for frame in rest:
            x, y, w, h = online.update(frame)

    Frames may be uint8 or float, grey or 3-channel; :func:`to_grey` documents the conversion.
    Every frame must have the first frame's size. :func:`track_sequence` runs this loop.

    Args:
        tracker: a base tracker (:class:`CorrelationFilterTracker` or :class:`TemplateTracker`).
        updater: any :class:`~adaptlearn.tracking.updaters.TemplateUpdater`.
        channel_order: ``"rgb"`` or ``"bgr"``, for 3-channel frames.
        seed: seeds the random warps of the initial model.
        device: where frames are processed (default: the tracker's device).

    Attributes:
        box: the current ``(x, y, w, h)`` (``None`` before ``init``).
        state: the updater's state (its memory between frames).

    References:
        got10k 0.1.3 ``got10k/trackers/__init__.py`` (``init(image, box)``, ``update(image)``);
        OpenCV ``cv::Tracker``.
    """

    def __init__(
        self,
        tracker: BaseTracker,
        updater,
        *,
        channel_order: str = "rgb",
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(
                f"`channel_order` must be one of {CHANNEL_ORDERS}; got {channel_order!r}"
            )
        self.tracker = tracker
        self.updater = updater
        self.channel_order = channel_order
        self.seed = int(seed)
        self.device = torch.device(device) if device is not None else tracker.device
        if self.device != tracker.device:
            raise ValueError(
                f"`device` ({self.device}) must be the tracker's device ({tracker.device})"
            )
        self.box: np.ndarray | None = None
        self.state = None
        self._size: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"OnlineTracker({self.tracker!r}, {self.updater!r})"

    def _frame(self, frame, name: str) -> Tensor:
        grey = to_grey(frame, channel_order=self.channel_order, name=name)
        if self._size is not None and grey.shape != self._size:
            raise ValueError(
                f"`{name}` must have the first frame's size {self._size} (H, W); got {grey.shape}"
            )
        return torch.from_numpy(grey).to(self.device)[None, None]

    @torch.no_grad()
    def init(self, frame, box) -> None:
        """Start on ``frame`` with the target at ``box`` = ``(x, y, w, h)`` (top-left, pixels)."""
        self._size = None
        image = self._frame(frame, "frame")
        self._init(image, _check_box(box, "box"))

    def _init(self, image: Tensor, box: np.ndarray) -> None:
        tracker = self.tracker
        self._size = tuple(image.shape[-2:])
        x, y, w, h = (float(v) for v in box)
        self._centre = (x + w / 2, y + h / 2)
        self._wh = (w, h)
        self._wh0 = (w, h)
        self.box = np.asarray(box, dtype=np.float32)
        gen = torch.Generator().manual_seed(self.seed)
        side = tracker.search_side(w, h)
        patch = crop_patches(
            image, torch.tensor([self._centre]), torch.tensor([side]), tracker.patch_size
        )
        model = tracker.init_model(patch, gen)
        self._ref = reference_cues(tracker, tracker.response(model, tracker.features(patch))[0])
        self.state = self.updater.init(model, loss_fn=tracker.loss)
        self._model = model
        self._scales = torch.tensor(tracker.scales, dtype=torch.float32, device=self.device)
        self._centred = tracker.label(torch.zeros(1, 2))
        self._t = 0

    @torch.no_grad()
    def update(self, frame) -> np.ndarray:
        """Locate the target in ``frame``, update the model; returns the box ``(x, y, w, h)``."""
        if self.box is None:
            raise RuntimeError("call `init(frame, box)` before `update(frame)`")
        return self._update(self._frame(frame, "frame"))

    def _update(self, image: Tensor) -> np.ndarray:
        from adaptlearn.tracking.updaters import OnlineSample

        tracker, p = self.tracker, self.tracker.patch_size
        self._t += 1
        (cx, cy), (w, h), (w0, h0) = self._centre, self._wh, self._wh0
        img_h, img_w = self._size
        model = self._model
        sides = tracker.search_side(w, h) * self._scales
        centers = torch.tensor([[cx, cy]]).expand(len(self._scales), 2)
        feats = tracker.features(crop_patches(image, centers, sides, p))
        responses = tracker.response(model.expand(len(self._scales), *model.shape[1:]), feats)
        best, dx, dy, _ = _locate(tracker, responses)
        px_per_patch = float(sides[best]) / p
        cx = min(max(cx + dx * px_per_patch, 0.0), img_w)
        cy = min(max(cy + dy * px_per_patch, 0.0), img_h)
        factor = 1 - tracker.scale_lr + tracker.scale_lr * tracker.scales[best]
        w = min(max(w * factor, 0.2 * w0), 5 * w0)
        h = min(max(h * factor, 0.2 * h0), 5 * h0)
        cues = response_cues(tracker, responses[best], self._ref, self._t)
        sample_feats = tracker.features(
            crop_patches(
                image, torch.tensor([[cx, cy]]), torch.tensor([tracker.search_side(w, h)]), p
            )
        )
        sample = OnlineSample(
            tracker.candidate(sample_feats), sample_feats, self._centred, cues[None]
        )
        self._model, self.state = self.updater.update(self.state, sample)
        self._centre, self._wh = (cx, cy), (w, h)
        self.box = np.array((cx - w / 2, cy - h / 2, w, h), dtype=np.float32)
        return self.box.copy()


@torch.no_grad()
def track_sequence(
    tracker: BaseTracker,
    updater,
    frames: np.ndarray,
    init_box: np.ndarray,
    *,
    seed: int = 0,
    channel_order: str = "rgb",
    return_state: bool = False,
):
    """One-pass evaluation of ``tracker`` with ``updater`` on one sequence.

    The loop of :class:`OnlineTracker` over a whole video (converted once, on the tracker's
    device).

    Args:
        tracker: a base tracker (:class:`CorrelationFilterTracker` or :class:`TemplateTracker`).
        updater: any :class:`~adaptlearn.tracking.updaters.TemplateUpdater`.
        frames: ``(T, H, W)`` grey or ``(T, H, W, 3)`` colour; uint8, uint16 or float in [0, 1]
            (see :func:`to_grey`).
        init_box: (4,) ground-truth ``(x, y, w, h)`` of frame 0.
        seed: seeds the random warps of the initial model.
        channel_order: ``"rgb"`` or ``"bgr"`` for colour frames.
        return_state: also return the updater's state after the last frame.

    Returns:
        ``(boxes, fps)`` (or ``(boxes, fps, state)``): predicted boxes (T, 4) (frame 0 =
        ``init_box``) and frames per second of ``init`` + every ``update`` (got10k's timing;
        conversion excluded).
    """
    box = _check_box(init_box)
    grey = to_grey(frames, channel_order=channel_order, name="frames", video=True)
    online = OnlineTracker(tracker, updater, seed=seed)
    video = torch.from_numpy(grey).to(online.device)[:, None]
    n_frames = video.shape[0]
    boxes = np.zeros((n_frames, 4), dtype=np.float32)
    boxes[0] = box
    start = time.perf_counter()
    online._init(video[0:1], box)
    durations = [time.perf_counter() - start]
    for t in range(1, n_frames):
        start = time.perf_counter()
        boxes[t] = online._update(video[t : t + 1])
        durations.append(time.perf_counter() - start)
    fps = float(n_frames / max(sum(durations), 1e-9))
    return (boxes, fps, online.state) if return_state else (boxes, fps)
