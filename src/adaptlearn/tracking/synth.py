"""Seeded synthetic tracking benchmark: textured targets on textured backgrounds.

No tracking video ships in a PyPI package, so sequences are generated. Each sequence shows a
textured, rotating, scaling target moving over a panning textured background, with appearance
drift (cross-faded keyframe textures plus a slowly drifting texture window and a small
deformation), illumination change and flashes, static occluders placed on the target's path,
and distractors that share the target's keyframe textures. Ground-truth boxes are the
axis-aligned boxes of the rendered (rotated) target rectangle, OTB style ``(x, y, w, h)``.

Textures are procedural (1/f noise plus Gabor blobs, pure numpy) so nothing is downloaded; the
``train`` and ``test`` splits draw them from disjoint random streams, so no texture is shared
between meta-training and testing.

References:
    Li, Xie, Zeng, Liu. "Learning to Update for Object Tracking with Recurrent Meta-learner",
    arXiv 1806.07078 (the paper meta-trains on ImageNet VID; this generator replaces it).
    Design: ``shared/specs/tracking.md`` section 3.2.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from adaptlearn.core import check_choice, check_int, check_range

__all__ = [
    "PRESETS",
    "SPLITS",
    "SequenceConfig",
    "TrackingSequence",
    "generate_sequence",
    "make_split",
    "preset",
]

SPLITS = ("train", "test")
_SPLIT_ID = {"train": 17, "test": 91}


@dataclass(frozen=True)
class SequenceConfig:
    """Knobs of the generator (defaults = the ``default`` preset of the spec, frame side 96)."""

    size: int = 96
    """Frame side H in pixels (frames are H x H, grayscale)."""
    length: int = 150
    """Frames per sequence T."""
    texture_size: int = 48
    """Side S of the target's keyframe textures."""
    n_keyframes: int = 3
    """Keyframe textures cross-faded over the sequence (1 = no keyframe change)."""
    drift_px: float = 0.6
    """Texture-window drift in texture pixels per frame (continuous appearance change)."""
    deform_px: float = 1.0
    """Amplitude of the sinusoidal deformation of the texture."""
    speed_sigma: float = 0.5
    """Std of the per-frame velocity innovation (px); momentum 0.9."""
    max_speed: float = 3.0
    """Speed limit in px/frame (for H = 96; scaled with ``size``)."""
    scale_sigma: float = 0.008
    """Std of the log-scale random walk per frame (clipped to [0.75, 1.35])."""
    rotation_sigma_deg: float = 1.0
    """Std of the angular-velocity innovation in degrees (momentum 0.9, angle clipped to 45)."""
    pan_sigma: float = 0.3
    """Std of the camera-pan velocity innovation (px)."""
    gain_sigma: float = 0.01
    """Std of the illumination-gain random walk (gain clipped to [0.6, 1.4])."""
    flash_prob: float = 0.01
    """Per-frame probability of a flash (gain x1.4 for 3-7 frames)."""
    occlusion_prob: float = 0.015
    """Per-frame probability that an occlusion event starts (after frame 5)."""
    occlusion_frames: tuple[int, int] = (6, 20)
    """Duration range of an occlusion event in frames."""
    occlusion_extent: tuple[float, float] = (0.3, 0.8)
    """Range of the occluder's thickness as a fraction of the target size."""
    n_distractors: tuple[int, int] = (0, 2)
    """Inclusive range of the number of distractors (copies of the target's textures)."""
    noise_sigma: float = 0.02
    """Sensor noise std."""

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field."""
        own = "SequenceConfig"
        check_int("size", self.size, 32, owner=own)
        check_int("length", self.length, 2, owner=own)
        check_int("texture_size", self.texture_size, 8, owner=own)
        check_int("n_keyframes", self.n_keyframes, 1, owner=own)
        for name in (
            "drift_px",
            "deform_px",
            "speed_sigma",
            "scale_sigma",
            "rotation_sigma_deg",
            "pan_sigma",
            "gain_sigma",
            "noise_sigma",
        ):
            check_range(name, getattr(self, name), 0.0, owner=own)
        check_range("max_speed", self.max_speed, 0.0, low_inclusive=False, owner=own)
        check_range("flash_prob", self.flash_prob, 0.0, 1.0, owner=own)
        check_range("occlusion_prob", self.occlusion_prob, 0.0, 1.0, owner=own)
        lo, hi = self.occlusion_frames
        if not (1 <= lo <= hi):
            raise ValueError(
                f"`occlusion_frames` of {own} must satisfy 1 <= lo <= hi; "
                f"got {self.occlusion_frames!r}"
            )
        lo_f, hi_f = self.occlusion_extent
        if not (0.0 < lo_f <= hi_f <= 2.0):
            raise ValueError(
                f"`occlusion_extent` of {own} must satisfy 0 < lo <= hi <= 2; "
                f"got {self.occlusion_extent!r}"
            )
        lo_d, hi_d = self.n_distractors
        if not (0 <= lo_d <= hi_d <= 5):
            raise ValueError(
                f"`n_distractors` of {own} must satisfy 0 <= lo <= hi <= 5; "
                f"got {self.n_distractors!r}"
            )


PRESETS: dict[str, dict] = {
    "static": {
        "n_keyframes": 1,
        "drift_px": 0.0,
        "deform_px": 0.0,
        "scale_sigma": 0.0,
        "rotation_sigma_deg": 0.0,
        "gain_sigma": 0.0,
        "flash_prob": 0.0,
        "occlusion_prob": 0.0,
        "n_distractors": (0, 0),
    },
    "appearance": {"flash_prob": 0.0, "occlusion_prob": 0.0, "n_distractors": (0, 0)},
    "default": {},
    "hard": {
        "n_keyframes": 4,
        "rotation_sigma_deg": 1.5,
        "occlusion_prob": 0.025,
        "occlusion_extent": (0.4, 0.9),
        "n_distractors": (1, 3),
        "flash_prob": 0.02,
        "max_speed": 4.0,
        "speed_sigma": 0.7,
    },
}


def preset(name: str, **overrides) -> SequenceConfig:
    """A validated :class:`SequenceConfig` from a named preset plus overrides.

    Presets: ``static``, ``appearance``, ``default``, ``hard`` (see ``PRESETS``).
    """
    check_choice("name", name, tuple(PRESETS), owner="preset")
    cfg = SequenceConfig(**{**PRESETS[name], **overrides})
    cfg.validate()
    return cfg


class TrackingSequence(NamedTuple):
    """One generated video.

    Attributes:
        frames: float32 (T, H, W) in [0, 1], grayscale.
        boxes: float32 (T, 4) ground truth ``(x, y, w, h)``, x, y = top-left, in pixels.
        occlusion: float32 (T,) fraction of the target's mask hidden by an occluder.
        distractor_dist: float32 (T,) nearest distractor distance / target size (inf: none).
        gain: float32 (T,) illumination gain applied to the frame.
        seed: the seed the sequence was generated from.
        split: ``"train"`` or ``"test"``.
    """

    frames: np.ndarray
    boxes: np.ndarray
    occlusion: np.ndarray
    distractor_dist: np.ndarray
    gain: np.ndarray
    seed: int
    split: str


# ------------------------------------------------------------------------------------------------
# textures
def _noise_texture(rng: np.random.Generator, side: int, beta: float) -> np.ndarray:
    """Periodic 1/f^beta noise, normalised to zero mean, unit std. Shape (side, side)."""
    fy = np.fft.fftfreq(side)[:, None]
    fx = np.fft.fftfreq(side)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0
    spectrum = rng.standard_normal((side, side)) + 1j * rng.standard_normal((side, side))
    spectrum /= radius ** (beta / 2.0)
    spectrum[0, 0] = 0.0
    tex = np.real(np.fft.ifft2(spectrum))
    return (tex - tex.mean()) / (tex.std() + 1e-8)


def _blob_texture(rng: np.random.Generator, side: int, n_blobs: int) -> np.ndarray:
    """Gabor blobs and bars on a periodic canvas (structure a tracker can latch on to)."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    tex = np.zeros((side, side))
    for _ in range(n_blobs):
        cx, cy = rng.uniform(0, side, 2)
        sigma = rng.uniform(0.06, 0.2) * side
        freq = rng.uniform(0.05, 0.25)
        angle = rng.uniform(0, math.pi)
        dx = (xx - cx + side / 2) % side - side / 2
        dy = (yy - cy + side / 2) % side - side / 2
        env = np.exp(-(dx**2 + dy**2) / (2 * sigma**2))
        carrier = np.cos(
            2 * math.pi * freq * (dx * math.cos(angle) + dy * math.sin(angle))
            + rng.uniform(0, 2 * math.pi)
        )
        tex += rng.uniform(0.5, 1.5) * env * (carrier if rng.random() < 0.7 else np.sign(carrier))
    return (tex - tex.mean()) / (tex.std() + 1e-8)


def _target_texture(rng: np.random.Generator, side: int) -> np.ndarray:
    """A structured target texture (zero mean, unit std)."""
    tex = 0.8 * _blob_texture(rng, side, int(rng.integers(4, 9))) + 0.5 * _noise_texture(
        rng, side, rng.uniform(1.2, 2.0)
    )
    return (tex - tex.mean()) / (tex.std() + 1e-8)


def _sample_wrap(tex: np.ndarray, ty: np.ndarray, tx: np.ndarray) -> np.ndarray:
    """Bilinear sampling of a periodic texture at float coordinates (any shape)."""
    side_y, side_x = tex.shape
    y0 = np.floor(ty)
    x0 = np.floor(tx)
    fy = ty - y0
    fx = tx - x0
    y0 = y0.astype(np.int64) % side_y
    x0 = x0.astype(np.int64) % side_x
    y1 = (y0 + 1) % side_y
    x1 = (x0 + 1) % side_x
    top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
    bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


# ------------------------------------------------------------------------------------------------
class _Walker:
    """Centre / scale / rotation random walks of one object (target or distractor)."""

    def __init__(self, rng: np.random.Generator, cfg: SequenceConfig, base_size: float) -> None:
        h = cfg.size
        self.rng = rng
        self.cfg = cfg
        self.unit = h / 96.0
        aspect = rng.uniform(0.7, 1.4)
        self.w0 = base_size * math.sqrt(aspect)
        self.h0 = base_size / math.sqrt(aspect)
        self.margin = max(0.12 * h, 0.5 * math.hypot(self.w0, self.h0) * 1.35 + 1)
        self.pos = rng.uniform(self.margin, h - self.margin, 2)
        self.vel = rng.normal(0, 0.5 * self.unit, 2)
        self.log_scale = 0.0
        self.angle = 0.0
        self.omega = 0.0

    def step(self, speed_factor: float = 1.0) -> None:
        cfg, rng, h = self.cfg, self.rng, self.cfg.size
        self.vel = 0.9 * self.vel + rng.normal(0, cfg.speed_sigma * self.unit, 2)
        vmax = cfg.max_speed * self.unit * speed_factor
        speed = float(np.hypot(*self.vel))
        if speed > vmax:
            self.vel *= vmax / speed
        self.pos = self.pos + self.vel
        for k in range(2):
            if self.pos[k] < self.margin:
                self.pos[k] = 2 * self.margin - self.pos[k]
                self.vel[k] = abs(self.vel[k])
            elif self.pos[k] > h - self.margin:
                self.pos[k] = 2 * (h - self.margin) - self.pos[k]
                self.vel[k] = -abs(self.vel[k])
        self.log_scale = float(
            np.clip(
                self.log_scale + rng.normal(0, cfg.scale_sigma)
                if cfg.scale_sigma
                else self.log_scale,
                math.log(0.75),
                math.log(1.35),
            )
        )
        if cfg.rotation_sigma_deg:
            self.omega = 0.9 * self.omega + rng.normal(0, math.radians(cfg.rotation_sigma_deg))
            self.angle = float(np.clip(self.angle + self.omega, -math.pi / 4, math.pi / 4))

    @property
    def wh(self) -> tuple[float, float]:
        s = math.exp(self.log_scale)
        return self.w0 * s, self.h0 * s

    def box(self) -> np.ndarray:
        """Axis-aligned box (x, y, w, h) of the rotated rectangle."""
        w, h = self.wh
        c, s = abs(math.cos(self.angle)), abs(math.sin(self.angle))
        bw, bh = w * c + h * s, w * s + h * c
        return np.array([self.pos[0] - bw / 2, self.pos[1] - bh / 2, bw, bh], dtype=np.float32)


def _render_object(
    frame: np.ndarray, walker: _Walker, appearance, t: int, cfg: SequenceConfig
) -> np.ndarray:
    """Draw the object into ``frame`` in place; return its soft mask (H, W)."""
    h_img = frame.shape[0]
    w, h = walker.wh
    cx, cy = walker.pos
    half = 0.5 * math.hypot(w, h) + 2
    x0, x1 = max(0, int(cx - half)), min(h_img, int(cx + half) + 2)
    y0, y1 = max(0, int(cy - half)), min(h_img, int(cy + half) + 2)
    mask = np.zeros_like(frame)
    if x1 <= x0 or y1 <= y0:
        return mask
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    ca, sa = math.cos(walker.angle), math.sin(walker.angle)
    u = (ca * dx + sa * dy) / (w / 2)
    v = (-sa * dx + ca * dy) / (h / 2)
    # soft rounded box: 1 inside, linear 1-px ramp at the border
    edge = np.maximum(np.abs(u) * w / 2 - w / 2, np.abs(v) * h / 2 - h / 2)
    m = np.clip(0.5 - edge, 0.0, 1.0)
    patch = appearance(u, v, t)
    region = frame[y0:y1, x0:x1]
    frame[y0:y1, x0:x1] = region * (1 - m) + patch * m
    mask[y0:y1, x0:x1] = m
    return mask


def generate_sequence(cfg: SequenceConfig, seed: int, split: str = "test") -> TrackingSequence:
    """Generate one sequence, deterministic in ``(cfg, seed, split)``.

    Args:
        cfg: generator knobs (see :func:`preset`).
        seed: sequence seed (the spec's test sets use 5000 + i).
        split: ``"train"`` or ``"test"``; the two splits use disjoint random streams.

    Returns:
        A :class:`TrackingSequence` with frames (T, H, H) float32 and boxes (T, 4) float32.
    """
    cfg.validate()
    check_choice("split", split, SPLITS, owner="generate_sequence")
    check_int("seed", seed, 0, owner="generate_sequence")
    rng = np.random.default_rng([_SPLIT_ID[split], int(seed)])
    H, T, S = cfg.size, cfg.length, cfg.texture_size
    unit = H / 96.0

    # background canvas 2H x 2H: 1/f noise plus blobs, mean 0.5, random contrast
    canvas_side = 2 * H
    bg = 0.7 * _noise_texture(rng, canvas_side, rng.uniform(1.5, 2.5)) + 0.5 * _blob_texture(
        rng, canvas_side, int(rng.integers(6, 14))
    )
    bg = 0.5 + rng.uniform(0.15, 0.3) * bg / (bg.std() + 1e-8)
    occ_tex = _noise_texture(rng, canvas_side, rng.uniform(1.5, 2.5))
    occ_tex = 0.5 + rng.uniform(0.15, 0.3) * occ_tex

    # target appearance: keyframes cross-faded with a cosine schedule + drifting window
    keyframes = [_target_texture(rng, S) for _ in range(cfg.n_keyframes)]
    t_mean, t_contrast = rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
    drift_dir = rng.uniform(0, 2 * math.pi)
    deform_phase = rng.uniform(0, 2 * math.pi)

    def make_appearance(order: list[int], gain_offset: float):
        def appearance(u: np.ndarray, v: np.ndarray, t: int) -> np.ndarray:
            progress = t / max(T - 1, 1) * (len(order) - 1)
            k = min(int(progress), len(order) - 2) if len(order) > 1 else 0
            frac = progress - k if len(order) > 1 else 0.0
            alpha = 0.5 - 0.5 * math.cos(math.pi * frac)
            shift = cfg.drift_px * t
            ph = deform_phase + 0.15 * t
            tx = (u + 1) / 2 * S + shift * math.cos(drift_dir) + cfg.deform_px * np.sin(v * 3 + ph)
            ty = (v + 1) / 2 * S + shift * math.sin(drift_dir) + cfg.deform_px * np.sin(u * 3 + ph)
            tex = _sample_wrap(keyframes[order[k]], ty, tx)
            if len(order) > 1 and alpha > 0:
                tex = (1 - alpha) * tex + alpha * _sample_wrap(keyframes[order[k + 1]], ty, tx)
            return t_mean + gain_offset + t_contrast * tex

        return appearance

    base = rng.uniform(14, 24) * unit
    target = _Walker(rng, cfg, base)
    target_app = make_appearance(list(range(cfg.n_keyframes)), 0.0)
    n_dis = int(rng.integers(cfg.n_distractors[0], cfg.n_distractors[1] + 1))
    distractors = []
    for _ in range(n_dis):
        order = list(range(cfg.n_keyframes))
        if rng.random() < 0.5:
            order = order[::-1]
        distractors.append(
            (
                _Walker(rng, cfg, base * rng.uniform(0.85, 1.15)),
                make_appearance(order, rng.normal(0, 0.03)),
            )
        )

    frames = np.empty((T, H, H), dtype=np.float32)
    boxes = np.empty((T, 4), dtype=np.float32)
    occlusion = np.zeros(T, dtype=np.float32)
    dist = np.full(T, np.inf, dtype=np.float32)
    gains = np.ones(T, dtype=np.float32)
    pan_pos = rng.uniform(0, H, 2)
    pan_vel = np.zeros(2)
    gain, flash_left = 1.0, 0
    occluder = None  # (x0, y0, x1, y1, frames_left) in frame coordinates
    for t in range(T):
        if t > 0:
            target.step()
            for walker, _ in distractors:
                walker.step()
            pan_vel = 0.9 * pan_vel + rng.normal(0, cfg.pan_sigma * unit, 2)
            pan_pos = np.clip(pan_pos + pan_vel, 0, H - 1)
            if cfg.gain_sigma:
                gain = float(np.clip(gain + rng.normal(0, cfg.gain_sigma), 0.6, 1.4))
            if flash_left == 0 and rng.random() < cfg.flash_prob:
                flash_left = int(rng.integers(3, 8))
        px, py = int(pan_pos[0]), int(pan_pos[1])
        frame = bg[py : py + H, px : px + H].copy()
        for walker, app in distractors:
            _render_object(frame, walker, app, t, cfg)
        mask = _render_object(frame, target, target_app, t, cfg)
        # occluder: a static block of texture on the target's future path, drawn on top
        if occluder is None and t > 5 and rng.random() < cfg.occlusion_prob:
            dur = int(rng.integers(cfg.occlusion_frames[0], cfg.occlusion_frames[1] + 1))
            w, h = target.wh
            size = math.sqrt(w * h)
            centre = target.pos + target.vel * rng.uniform(0, 0.5) * dur
            thick = 1.5 * rng.uniform(*cfg.occlusion_extent) * size
            if rng.random() < 0.5:  # pillar
                half_w, half_h = thick / 2, 1.25 * h
            else:  # bar
                half_w, half_h = 1.25 * w, thick / 2
            occluder = [
                centre[0] - half_w,
                centre[1] - half_h,
                centre[0] + half_w,
                centre[1] + half_h,
                dur,
            ]
        if occluder is not None:
            ox0, oy0 = max(0, int(occluder[0])), max(0, int(occluder[1]))
            ox1, oy1 = min(H, int(occluder[2]) + 1), min(H, int(occluder[3]) + 1)
            if ox1 > ox0 and oy1 > oy0:
                frame[oy0:oy1, ox0:ox1] = occ_tex[oy0:oy1, ox0:ox1]
                covered = mask[oy0:oy1, ox0:ox1].sum()
                occlusion[t] = covered / max(mask.sum(), 1e-6)
            occluder[4] -= 1
            if occluder[4] <= 0:
                occluder = None
        g = gain * (1.4 if flash_left > 0 else 1.0)
        flash_left = max(0, flash_left - 1)
        frame = frame * g + rng.normal(0, cfg.noise_sigma, frame.shape)
        frames[t] = np.clip(frame, 0.0, 1.0)
        boxes[t] = target.box()
        gains[t] = g
        if distractors:
            size = math.sqrt(target.wh[0] * target.wh[1])
            dist[t] = min(float(np.hypot(*(wk.pos - target.pos))) for wk, _ in distractors) / size
    return TrackingSequence(frames, boxes, occlusion, dist, gains, int(seed), split)


def make_split(
    cfg: SequenceConfig, n: int, *, split: str, first_seed: int = 0
) -> list[TrackingSequence]:
    """``n`` sequences with seeds ``first_seed, first_seed + 1, ...`` from one split."""
    check_positive_int_ = check_int("n", n, 1, owner="make_split")
    return [generate_sequence(cfg, first_seed + i, split) for i in range(check_positive_int_)]


def replace(cfg: SequenceConfig, **changes) -> SequenceConfig:
    """``dataclasses.replace`` with validation."""
    new = dataclasses.replace(cfg, **changes)
    new.validate()
    return new
