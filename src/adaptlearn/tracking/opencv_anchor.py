"""OpenCV's trackers (KCF, CSRT, MOSSE) as external anchors on the same sequences.

Needs ``opencv-contrib-python-headless`` (optional); :func:`opencv_available` says whether it
imports. A tracker that reports failure on a frame keeps its previous box (OTB one-pass
evaluation has no re-initialisation); :func:`opencv_track_sequence` counts those frames so that
an anchor that does not track can be told apart from one that does (issue 19: at 64 px MOSSE
fails on every frame, and its "result" is then the frozen box's).
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
    name: str, frames: np.ndarray, init_box: np.ndarray, *, return_failures: bool = False
) -> tuple[np.ndarray, float] | tuple[np.ndarray, float, int]:
    """Run OpenCV tracker ``name`` on one sequence.

    Args:
        name: ``"kcf"``, ``"csrt"`` or ``"mosse"``.
        frames: (T, H, W) float in [0, 1].
        init_box: (4,) ``(x, y, w, h)`` of frame 0.
        return_failures: also return the number of frames where ``update()`` failed.

    Returns:
        ``(boxes (T, 4), fps)``, or ``(boxes, fps, n_failed)`` with ``return_failures``; fps
        times ``init`` and every ``update`` (BGR conversion excluded).
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
    n_failed = 0
    for t in range(1, len(images)):
        start = time.perf_counter()
        ok, box = tracker.update(images[t])
        elapsed += time.perf_counter() - start
        if ok and box[2] > 0 and box[3] > 0:
            last = np.asarray(box, dtype=np.float32)
        else:
            n_failed += 1
        boxes[t] = last
    fps = float(len(images) / max(elapsed, 1e-9))
    return (boxes, fps, n_failed) if return_failures else (boxes, fps)
