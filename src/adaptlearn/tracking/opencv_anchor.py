"""OpenCV's trackers (KCF, CSRT, MOSSE) as external anchors on the same sequences.

Needs ``opencv-contrib-python-headless`` (optional); :func:`opencv_available` says whether it
imports. A tracker that reports failure on a frame keeps its previous box (OTB one-pass
evaluation has no re-initialisation).
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["OPENCV_TRACKERS", "opencv_available", "opencv_track_sequence"]

OPENCV_TRACKERS = ("kcf", "csrt", "mosse")


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
    if name == "csrt":
        return cv2.TrackerCSRT_create()
    if name == "mosse":
        legacy = getattr(cv2, "legacy", None)
        if legacy is None or not hasattr(legacy, "TrackerMOSSE_create"):
            raise RuntimeError("this OpenCV build has no cv2.legacy.TrackerMOSSE_create")
        return legacy.TrackerMOSSE_create()
    raise ValueError(f"`name` must be one of {OPENCV_TRACKERS}; got {name!r}")


def opencv_track_sequence(
    name: str, frames: np.ndarray, init_box: np.ndarray
) -> tuple[np.ndarray, float]:
    """Run OpenCV tracker ``name`` on one sequence.

    Args:
        name: ``"kcf"``, ``"csrt"`` or ``"mosse"``.
        frames: (T, H, W) float in [0, 1].
        init_box: (4,) ``(x, y, w, h)`` of frame 0.

    Returns:
        ``(boxes (T, 4), fps)``; fps times ``init`` and every ``update`` (BGR conversion excluded).
    """
    import cv2

    cv2.setNumThreads(1)  # same single-thread budget as our trackers
    images = [
        cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in (np.clip(frames, 0, 1) * 255).astype(np.uint8)
    ]
    tracker = _factory(name)
    boxes = np.zeros((len(images), 4), dtype=np.float32)
    boxes[0] = init_box
    box0 = tuple(round(float(v)) for v in init_box)
    start = time.perf_counter()
    tracker.init(images[0], box0)
    elapsed = time.perf_counter() - start
    last = np.asarray(init_box, dtype=np.float32)
    for t in range(1, len(images)):
        start = time.perf_counter()
        ok, box = tracker.update(images[t])
        elapsed += time.perf_counter() - start
        if ok and box[2] > 0 and box[3] > 0:
            last = np.asarray(box, dtype=np.float32)
        boxes[t] = last
    return boxes, float(len(images) / max(elapsed, 1e-9))
