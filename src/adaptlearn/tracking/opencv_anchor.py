"""OpenCV's trackers (KCF, CSRT, MOSSE) as external anchors on the same sequences.

Needs ``opencv-contrib-python-headless`` (optional); :func:`opencv_available` says whether it
imports. A tracker that reports failure on a frame keeps its previous box (OTB one-pass
evaluation has no re-initialisation); :func:`opencv_track_sequence` counts those frames so that
an anchor that does not track can be told apart from one that does (issue 19: at 64 px MOSSE
fails on every frame, and its "result" is then the frozen box's).

Frames can be upscaled (``upscale``) before OpenCV sees them, so that targets have the size these
trackers are used at (tens of pixels, as in OTB) rather than the generator's ~13 px; boxes are
scaled back, so scores are comparable with our trackers' on the original frames.

``"kcf-nothreshold"`` is OpenCV's KCF with its detection threshold off (``detect_thresh = 0``):
KCF as published (Henriques et al., TPAMI 2015) has no failure test; OpenCV's default KCF
returns failure and stops moving when the response peak is below 0.5.
"""

from __future__ import annotations

import time

import numpy as np

from adaptlearn.core import check_int
from adaptlearn.tracking.trackers import to_grey

__all__ = ["OPENCV_TRACKERS", "opencv_available", "opencv_track_sequence"]

OPENCV_TRACKERS = ("kcf", "kcf-nothreshold", "csrt", "mosse")


def opencv_available() -> bool:
    """True when ``cv2`` with the contrib trackers imports."""
    try:
        import cv2
    except ImportError:
        return False
    return hasattr(cv2, "TrackerKCF_create") and hasattr(cv2, "TrackerCSRT_create")


def _factory(name: str):
    import cv2

    if name == "kcf":
        return cv2.TrackerKCF_create()
    if name == "kcf-nothreshold":
        params = cv2.TrackerKCF_Params()
        params.detect_thresh = 0.0
        return cv2.TrackerKCF_create(params)
    if name == "csrt":
        return cv2.TrackerCSRT_create()
    if name == "mosse":
        legacy = getattr(cv2, "legacy", None)
        if legacy is None or not hasattr(legacy, "TrackerMOSSE_create"):
            raise RuntimeError("this OpenCV build has no cv2.legacy.TrackerMOSSE_create")
        return legacy.TrackerMOSSE_create()
    raise ValueError(f"`name` must be one of {OPENCV_TRACKERS}; got {name!r}")


def opencv_track_sequence(
    name: str,
    frames: np.ndarray,
    init_box: np.ndarray,
    *,
    return_failures: bool = False,
    upscale: int = 1,
    channel_order: str = "rgb",
) -> tuple[np.ndarray, float] | tuple[np.ndarray, float, int]:
    """Run OpenCV tracker ``name`` on one sequence.

    Args:
        name: one of :data:`OPENCV_TRACKERS`.
        frames: ``(T, H, W)`` grey or ``(T, H, W, 3)`` colour, uint8 or float in [0, 1]
            (converted to grey as :func:`~adaptlearn.tracking.trackers.to_grey` documents, then
            to 8-bit BGR for OpenCV).
        init_box: (4,) ``(x, y, w, h)`` of frame 0.
        return_failures: also return the number of frames where ``update()`` failed.
        upscale: integer factor frames are enlarged by (bilinear) before tracking; boxes are
            divided by it again.
        channel_order: ``"rgb"`` or ``"bgr"`` for colour frames.

    Returns:
        ``(boxes (T, 4), fps)``, or ``(boxes, fps, n_failed)`` with ``return_failures``; fps
        times ``init`` and every ``update`` (conversion excluded).
    """
    import cv2

    check_int("upscale", upscale, 1, 16, owner="opencv_track_sequence")
    tracker = _factory(name)
    cv2.setNumThreads(1)  # same single-thread budget as our trackers
    grey = to_grey(frames, channel_order=channel_order, name="frames", video=True)
    images = []
    for f in (np.clip(grey, 0, 1) * 255).round().astype(np.uint8):
        if upscale > 1:
            f = cv2.resize(f, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
        images.append(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    boxes = np.zeros((len(images), 4), dtype=np.float32)
    boxes[0] = init_box
    box0 = tuple(round(float(v) * upscale) for v in init_box)
    start = time.perf_counter()
    tracker.init(images[0], box0)
    elapsed = time.perf_counter() - start
    last = np.asarray(init_box, dtype=np.float32)
    n_failed = 0
    for t in range(1, len(images)):
        start = time.perf_counter()
        ok, box = tracker.update(images[t])
        elapsed += time.perf_counter() - start
        if ok and box[2] > 0 and box[3] > 0:
            last = np.asarray(box, dtype=np.float32) / upscale
        else:
            n_failed += 1
        boxes[t] = last
    fps = float(len(images) / max(elapsed, 1e-9))
    return (boxes, fps, n_failed) if return_failures else (boxes, fps)
