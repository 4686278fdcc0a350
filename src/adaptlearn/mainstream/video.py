"""A seeded generator of small synthetic "video" frames and event streams (no downloads).

Frames are ``(3, S, S)`` float32 images: a smooth random background texture plus pixel noise and
one to three coloured shapes (circle, square, triangle, horizontal bar, vertical bar, cross) in
six colours and three sizes. A *base task* labels a frame by the shape and colour of its main
(largest) object (36 classes); *applications* are binary detectors of other concepts (a red
triangle, a small blue object, two objects of one colour, ...). An *event stream* is a sequence
of segments of ``event_length_s`` seconds; a segment is an event of the app's concept with
probability ``event_frequency``; objects drift smoothly between frames, so consecutive frames
(and classifier errors on them) are correlated, as in real video.

Every function takes an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from adaptlearn.core.validation import check_choice, check_int, check_range

__all__ = [
    "COLORS",
    "CONCEPTS",
    "SHAPES",
    "SIZES",
    "EventStream",
    "SceneObject",
    "make_base_dataset",
    "make_concept_dataset",
    "make_event_stream",
    "render_scene",
    "sample_scene",
]

SHAPES = ("circle", "square", "triangle", "hbar", "vbar", "cross")
COLORS = ("red", "green", "blue", "yellow", "magenta", "cyan")
_RGB = np.array(
    [[0.9, 0.1, 0.1], [0.1, 0.75, 0.15], [0.15, 0.25, 0.95], [0.95, 0.9, 0.1],
     [0.85, 0.1, 0.85], [0.1, 0.85, 0.85]], dtype=np.float32,
)
#: Object radius in pixels per size class (small, medium, large), for 24-pixel frames.
SIZES = (2.5, 4.0, 6.0)


@dataclass(frozen=True)
class SceneObject:
    """One shape in a scene (pixel coordinates; velocity in pixels per frame)."""

    shape: int
    color: int
    size: int
    x: float
    y: float
    vx: float = 0.0
    vy: float = 0.0


def _mask(shape: int, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    name = SHAPES[shape]
    if name == "circle":
        return dx * dx + dy * dy <= r * r
    if name == "square":
        return (np.abs(dx) <= 0.8 * r) & (np.abs(dy) <= 0.8 * r)
    if name == "triangle":
        return (dy >= -r) & (dy <= 0.8 * r) & (np.abs(dx) <= 0.6 * (dy + r))
    if name == "hbar":
        return (np.abs(dx) <= r) & (np.abs(dy) <= 0.3 * r + 0.5)
    if name == "vbar":
        return (np.abs(dy) <= r) & (np.abs(dx) <= 0.3 * r + 0.5)
    thick = 0.25 * r + 0.5
    return ((np.abs(dx) <= r) & (np.abs(dy) <= thick)) | ((np.abs(dy) <= r) & (np.abs(dx) <= thick))


def sample_scene(
    generator: np.random.Generator, image_size: int = 24, *, max_objects: int = 3
) -> tuple[SceneObject, ...]:
    """A random scene: a main object (medium or large) then up to two strictly smaller ones."""
    rng = generator
    n = int(rng.integers(1, max_objects + 1))
    main_size = int(rng.integers(1, 3))
    objs = []
    for j in range(n):
        size = main_size if j == 0 else int(rng.integers(0, main_size))
        r = SIZES[size] * image_size / 24.0
        x, y = rng.uniform(r, image_size - 1 - r, size=2)
        vx, vy = rng.uniform(-0.4, 0.4, size=2)
        objs.append(SceneObject(int(rng.integers(len(SHAPES))), int(rng.integers(len(COLORS))),
                                size, float(x), float(y), float(vx), float(vy)))
    return tuple(objs)


def _background(generator: np.random.Generator, image_size: int) -> np.ndarray:
    coarse = generator.uniform(0.15, 0.45, size=(3, 4, 4)).astype(np.float32)
    reps = -(-image_size // 4)
    return np.kron(coarse, np.ones((1, reps, reps), np.float32))[:, :image_size, :image_size]


def render_scene(
    objects: tuple[SceneObject, ...],
    background: np.ndarray,
    generator: np.random.Generator,
    *,
    noise: float = 0.05,
) -> np.ndarray:
    """Draw ``objects`` (later ones on top) over ``background``; add N(0, noise) pixel noise.

    Returns:
        float32 array of shape ``(3, S, S)``.
    """
    size = background.shape[-1]
    img = background.copy()
    yy, xx = _grid(size)
    for o in objects:
        m = _mask(o.shape, xx - o.x, yy - o.y, SIZES[o.size] * size / 24.0)
        img[:, m] = _RGB[o.color][:, None]
    if noise > 0:
        img += generator.normal(0.0, noise, size=img.shape).astype(np.float32)
    return img


@functools.cache
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def base_label(objects: tuple[SceneObject, ...]) -> int:
    """Base-task label: ``shape * 6 + colour`` of the main object (36 classes)."""
    return objects[0].shape * len(COLORS) + objects[0].color


def _has(shape: str | None = None, color: str | None = None, size: int | None = None):
    def pred(objs: tuple[SceneObject, ...]) -> bool:
        return any(
            (shape is None or SHAPES[o.shape] == shape)
            and (color is None or COLORS[o.color] == color)
            and (size is None or o.size == size)
            for o in objs
        )

    return pred


def _pair_same_color(objs: tuple[SceneObject, ...]) -> bool:
    colors = [o.color for o in objs]
    return len(set(colors)) < len(colors)


#: Application concepts: name -> predicate over a scene's objects. The first ones are close to
#: the base task (shape and colour of an object), the last ones far from it (size, relations).
CONCEPTS: dict[str, Callable[[tuple[SceneObject, ...]], bool]] = {
    "red_triangle": _has("triangle", "red"),
    "horizontal_bar": _has("hbar"),
    "yellow_cross": _has("cross", "yellow"),
    "small_blue": _has(None, "blue", 0),
    "pair_same_color": _pair_same_color,
    "three_objects": lambda objs: len(objs) == 3,
}


def _force(concept: str, objs: tuple[SceneObject, ...], rng: np.random.Generator,
           image_size: int) -> tuple[SceneObject, ...]:
    """Edit a random scene minimally so that it shows ``concept`` (fast positive sampling)."""
    o = list(objs)
    if concept == "three_objects" or (concept in ("small_blue", "pair_same_color") and len(o) < 2):
        while len(o) < (3 if concept == "three_objects" else 2):
            extra = sample_scene(rng, image_size, max_objects=1)[0]
            size = int(rng.integers(0, o[0].size))
            r = SIZES[size] * image_size / 24.0
            x, y = rng.uniform(r, image_size - 1 - r, size=2)
            o.append(replace(extra, size=size, x=float(x), y=float(y)))
    j = int(rng.integers(len(o)))
    if concept == "red_triangle":
        o[j] = replace(o[j], shape=SHAPES.index("triangle"), color=COLORS.index("red"))
    elif concept == "horizontal_bar":
        o[j] = replace(o[j], shape=SHAPES.index("hbar"))
    elif concept == "yellow_cross":
        o[j] = replace(o[j], shape=SHAPES.index("cross"), color=COLORS.index("yellow"))
    elif concept == "small_blue":
        j = int(rng.integers(1, len(o)))
        o[j] = replace(o[j], color=COLORS.index("blue"), size=0)
    elif concept == "pair_same_color":
        i, j = rng.choice(len(o), size=2, replace=False)
        o[int(j)] = replace(o[int(j)], color=o[int(i)].color)
    return tuple(o)


def _scene_with(concept: str, positive: bool, rng: np.random.Generator, image_size: int,
                max_tries: int = 10_000) -> tuple[SceneObject, ...]:
    pred = CONCEPTS[concept]
    if positive:
        objs = _force(concept, sample_scene(rng, image_size), rng, image_size)
        if not pred(objs):  # pragma: no cover - _force is exhaustive over CONCEPTS
            raise RuntimeError(f"internal error: forced scene does not show {concept!r}")
        return objs
    for _ in range(max_tries):
        objs = sample_scene(rng, image_size)
        if pred(objs) == positive:
            return objs
    raise RuntimeError(f"could not sample a {'positive' if positive else 'negative'} {concept!r}")


def make_base_dataset(
    n: int, generator: np.random.Generator, *, image_size: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frames labelled by the base task.

    Returns:
        ``x`` of shape ``(n, 3, S, S)`` float32 and ``y`` of shape ``(n,)`` int64 in [0, 36).
    """
    check_int("n", n, 1)
    x = np.empty((n, 3, image_size, image_size), np.float32)
    y = np.empty(n, np.int64)
    for i in range(n):
        objs = sample_scene(generator, image_size)
        x[i] = render_scene(objs, _background(generator, image_size), generator, noise=0.0)
        y[i] = base_label(objs)
    x += generator.normal(0.0, 0.05, size=x.shape).astype(np.float32)
    return x, y


def make_concept_dataset(
    concept: str, n: int, generator: np.random.Generator, *, image_size: int = 24,
    positive_fraction: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frames of which a ``positive_fraction`` show ``concept`` (labels 1) and the rest not.

    Returns:
        ``x`` of shape ``(n, 3, S, S)`` float32 and ``y`` of shape ``(n,)`` float32 in {0, 1}.
    """
    check_choice("concept", concept, tuple(CONCEPTS))
    check_int("n", n, 1)
    check_range("positive_fraction", positive_fraction, 0.0, 1.0)
    x = np.empty((n, 3, image_size, image_size), np.float32)
    y = (generator.random(n) < positive_fraction).astype(np.float32)
    for i in range(n):
        objs = _scene_with(concept, bool(y[i]), generator, image_size)
        x[i] = render_scene(objs, _background(generator, image_size), generator, noise=0.0)
    x += generator.normal(0.0, 0.05, size=x.shape).astype(np.float32)
    return x, y


@dataclass(frozen=True)
class EventStream:
    """A synthetic stream for one application.

    Attributes:
        frames: ``(T, 3, S, S)`` float32 frames at ``fps``.
        labels: ``(T,)`` int64, 1 inside an event.
        segment: ``(T,)`` int64, index of the segment each frame belongs to.
        segment_is_event: ``(n_segments,)`` bool.
        fps: stream frame rate F.
        event_length_s: segment (and event) duration T.
    """

    frames: np.ndarray
    labels: np.ndarray
    segment: np.ndarray
    segment_is_event: np.ndarray
    fps: float
    event_length_s: float


def make_event_stream(
    concept: str,
    n_segments: int,
    generator: np.random.Generator,
    *,
    fps: float = 10.0,
    event_length_s: float = 0.5,
    event_frequency: float = 0.3,
    image_size: int = 24,
) -> EventStream:
    """A stream of ``n_segments`` segments of ``round(event_length_s * fps)`` frames each.

    Each segment independently is an event (its scene shows ``concept``) with probability
    ``event_frequency``; within a segment the scene is fixed and objects drift by their velocity
    each frame (bouncing off the borders), with fresh pixel noise per frame.
    """
    check_choice("concept", concept, tuple(CONCEPTS))
    check_int("n_segments", n_segments, 1)
    check_range("fps", fps, 0.0, low_inclusive=False)
    check_range("event_length_s", event_length_s, 0.0, low_inclusive=False)
    check_range("event_frequency", event_frequency, 0.0, 1.0)
    per = max(1, round(event_length_s * fps))
    is_event = generator.random(n_segments) < event_frequency
    frames = np.empty((n_segments * per, 3, image_size, image_size), np.float32)
    for s in range(n_segments):
        objs = list(_scene_with(concept, bool(is_event[s]), generator, image_size))
        bg = _background(generator, image_size)
        for t in range(per):
            frames[s * per + t] = render_scene(tuple(objs), bg, generator, noise=0.0)
            objs = [_drift(o, image_size) for o in objs]
    frames += generator.normal(0.0, 0.05, size=frames.shape).astype(np.float32)
    segment = np.repeat(np.arange(n_segments), per)
    return EventStream(frames, is_event[segment].astype(np.int64), segment, is_event, float(fps),
                       float(event_length_s))


def _drift(o: SceneObject, image_size: int) -> SceneObject:
    r = SIZES[o.size] * image_size / 24.0
    x, y, vx, vy = o.x + o.vx, o.y + o.vy, o.vx, o.vy
    if not r <= x <= image_size - 1 - r:
        vx, x = -vx, min(max(x, r), image_size - 1 - r)
    if not r <= y <= image_size - 1 - r:
        vy, y = -vy, min(max(y, r), image_size - 1 - r)
    return SceneObject(o.shape, o.color, o.size, x, y, vx, vy)
