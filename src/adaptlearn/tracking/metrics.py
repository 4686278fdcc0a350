"""OTB one-pass-evaluation metrics, computed as ``got10k`` (0.1.3) and the OTB toolkit do.

Boxes are ``(x, y, w, h)`` with ``x, y`` the top-left corner. IoU has no ``+1`` pixel convention;
the centre is ``x + (w - 1) / 2``; success uses a strict ``IoU > tau`` over 21 thresholds
``linspace(0, 1, 21)`` and its mean is the success AUC; precision uses ``error <= d`` over
0..50 px and its value at 20 px is the precision score. Frame 0 is scored (the tracker is
initialised with the ground truth there, so it counts as IoU 1, error 0).

References:
    Wu, Lim, Yang. "Online Object Tracking: A Benchmark", CVPR 2013 (OTB).
    ``got10k/utils/metrics.py`` and ``got10k/experiments/otb.py`` (``_calc_curves``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "PRECISION_THRESHOLDS",
    "SUCCESS_THRESHOLDS",
    "center_error",
    "evaluate",
    "iou",
    "precision_curve",
    "success_auc",
    "success_curve",
]

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)


def _as_boxes(boxes: np.ndarray | Sequence) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) as (x, y, w, h); got {b.shape}")
    return b


def iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Intersection over union of axis-aligned boxes, row by row. Shapes (N, 4) -> (N,)."""
    a, b = _as_boxes(pred), _as_boxes(gt)
    left = np.maximum(a[:, 0], b[:, 0])
    top = np.maximum(a[:, 1], b[:, 1])
    right = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    bottom = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.maximum(right - left, 0) * np.maximum(bottom - top, 0)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.clip(inter / np.maximum(union, np.finfo(float).eps), 0.0, 1.0)


def center_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distance of box centres ``x + (w - 1) / 2`` in pixels. (N, 4) -> (N,)."""
    a, b = _as_boxes(pred), _as_boxes(gt)
    ca = a[:, :2] + (a[:, 2:] - 1) / 2
    cb = b[:, :2] + (b[:, 2:] - 1) / 2
    return np.sqrt(((ca - cb) ** 2).sum(axis=1))


def success_curve(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Fraction of frames with IoU strictly above each of the 21 thresholds. -> (21,)."""
    ious = iou(pred, gt)
    return (ious[:, None] > SUCCESS_THRESHOLDS[None, :]).mean(axis=0)


def precision_curve(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Fraction of frames with centre error at most 0, 1, ..., 50 px. -> (51,)."""
    err = center_error(pred, gt)
    return (err[:, None] <= PRECISION_THRESHOLDS[None, :]).mean(axis=0)


def success_auc(pred: np.ndarray, gt: np.ndarray) -> float:
    """OTB success score: mean of :func:`success_curve` (the "AUC")."""
    return float(success_curve(pred, gt).mean())


def evaluate(pred: np.ndarray, gt: np.ndarray) -> dict[str, float | np.ndarray]:
    """All OTB scores of one sequence; frame 0 is overwritten with the ground truth first.

    Returns:
        ``auc``, ``precision20`` (precision at 20 px), ``success50`` (success rate at IoU 0.5)
        and the curves ``success`` (21,) and ``precision`` (51,).
    """
    pred = _as_boxes(pred).copy()
    gt = _as_boxes(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape; got {pred.shape} and {gt.shape}")
    pred[0] = gt[0]
    succ = success_curve(pred, gt)
    prec = precision_curve(pred, gt)
    return {
        "auc": float(succ.mean()),
        "precision20": float(prec[20]),
        "success50": float((iou(pred, gt) > 0.5).mean()),
        "success": succ,
        "precision": prec,
    }
