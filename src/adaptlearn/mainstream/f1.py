"""Event-level F1 of an application that samples a video stream (Mainstream's accuracy model).

An event lasts ``T`` seconds. A stream at ``F`` fps sampled at ``f`` fps is seen every
``s = F / f`` stream frames. A sampled frame inside an event is scored positive with probability
``a`` (per-frame recall); misses persist with ``P(miss | previous miss) = m = (1 - a) + a * c``.
The event is detected if any sampled frame inside it is positive, so with ``d`` frames in the
event, ``r1 = floor(d / s)``, ``r2 = ceil(d / s)``, ``w2 = (d mod s) / s``, ``w1 = 1 - w2``::

    P_miss = (1 - (d / s) * a)                                  if d < s
    P_miss = w1 (1 - a) m^(r1 - 1) + w2 (1 - a) m^(r2 - 1)      otherwise

Recall ``R = 1 - P_miss(a)``; a non-event segment of the same length raises a false alarm with
``nu = 1 - P_miss(q)``; precision ``P = rho R / (rho R + (1 - rho) nu)``; ``F1 = 2PR / (P + R)``.

**Hop basis (a bug in the reference code).** An event spans ``d = T * F`` *stream* frames, of
which about ``d / s = T * f`` are sampled. ``scheduler_util.py`` of ``angelajiang/mainstream``
uses ``d = T * f`` (sampled frames) and then divides by ``s`` again, which under-estimates recall
whenever ``f < F``. ``hop_basis="stream"`` (default) is the intended model and agrees with
:func:`simulate_event_miss`; ``hop_basis="legacy"`` reproduces the reference numbers.

References:
    Jiang et al., "Mainstream: Dynamic Stem-Sharing for Multi-Tenant Video Processing",
    USENIX ATC 2018 (event F1 model; ``scheduler_util.py``, ``app_data_mobilenets.get_cp``).
"""

from __future__ import annotations

import math

import numpy as np

from adaptlearn.core.validation import check_choice, check_int, check_probability, check_range

__all__ = [
    "HOP_BASES",
    "empirical_event_f1",
    "estimate_correlation",
    "event_f1",
    "event_miss_probability",
    "event_precision_recall",
    "sampled_frames",
    "simulate_event_miss",
]

HOP_BASES = ("stream", "legacy")


def _check_rates(stream_fps: float, sample_fps: float) -> None:
    check_range("stream_fps", stream_fps, 0.0, low_inclusive=False)
    check_range("sample_fps", sample_fps, 0.0, stream_fps, low_inclusive=False)


def event_miss_probability(
    per_frame_recall: float,
    event_length_s: float,
    correlation: float,
    stream_fps: float,
    sample_fps: float,
    *,
    hop_basis: str = "stream",
) -> float:
    """Probability that an event is missed by every sampled frame (closed form above).

    Args:
        per_frame_recall: a, probability that one sampled event frame is scored positive.
        event_length_s: T, event duration in seconds (> 0).
        correlation: c in [0, 1], persistence of misses between sampled frames.
        stream_fps: F, frame rate of the stream.
        sample_fps: f in (0, F], the app's sampling rate.
        hop_basis: ``"stream"`` (d = T F, intended) or ``"legacy"`` (d = T f, reference code).

    Returns:
        P_miss in [0, 1].
    """
    a = check_probability("per_frame_recall", per_frame_recall)
    c = check_probability("correlation", correlation)
    check_range("event_length_s", event_length_s, 0.0, low_inclusive=False)
    _check_rates(stream_fps, sample_fps)
    check_choice("hop_basis", hop_basis, HOP_BASES)
    stride = stream_fps / sample_fps
    frames = event_length_s * (stream_fps if hop_basis == "stream" else sample_fps)
    if frames < stride:
        return 1.0 - (frames / stride) * a
    m = (1.0 - a) + a * c
    hops = frames / stride
    r1, r2 = math.floor(hops + 1e-12), math.ceil(hops - 1e-12)
    w2 = hops - r1 if r2 > r1 else 0.0
    w1 = 1.0 - w2
    return w1 * (1.0 - a) * m ** (r1 - 1) + w2 * (1.0 - a) * m ** (r2 - 1)


def event_precision_recall(
    per_frame_recall: float,
    false_positive_rate: float,
    event_length_s: float,
    event_frequency: float,
    correlation: float,
    stream_fps: float,
    sample_fps: float,
    *,
    hop_basis: str = "stream",
) -> tuple[float, float]:
    """Event-level (precision, recall) of one app; see the module docstring for the model."""
    check_probability("false_positive_rate", false_positive_rate)
    rho = check_range("event_frequency", event_frequency, 0.0, 1.0, low_inclusive=False)
    recall = 1.0 - event_miss_probability(
        per_frame_recall, event_length_s, correlation, stream_fps, sample_fps, hop_basis=hop_basis
    )
    false_alarm = 1.0 - event_miss_probability(
        false_positive_rate, event_length_s, correlation, stream_fps, sample_fps,
        hop_basis=hop_basis,
    )
    denom = rho * recall + (1.0 - rho) * false_alarm
    precision = 1.0 if denom <= 0.0 else rho * recall / denom
    return precision, recall


def event_f1(
    per_frame_recall: float,
    false_positive_rate: float,
    event_length_s: float,
    event_frequency: float,
    correlation: float,
    stream_fps: float,
    sample_fps: float,
    *,
    hop_basis: str = "stream",
) -> float:
    """Event-level F1 of one app sampling at ``sample_fps`` (0 when recall or precision is ~0).

    Example:
        >>> round(event_f1(0.8, 0.0, 0.5, 0.3, 0.107, 10, 10), 4)  # no false alarms: P = 1
        0.9997
    """
    precision, recall = event_precision_recall(
        per_frame_recall, false_positive_rate, event_length_s, event_frequency, correlation,
        stream_fps, sample_fps, hop_basis=hop_basis,
    )
    if recall < 1e-12 or precision < 1e-12:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def simulate_event_miss(
    per_frame_recall: float,
    event_length_s: float,
    correlation: float,
    stream_fps: float,
    sample_fps: float,
    *,
    n_events: int = 20000,
    generator: np.random.Generator,
) -> float:
    """Monte Carlo estimate of :func:`event_miss_probability` (the physical model).

    Each event covers ``T F`` stream frames (a continuous interval of that length); sampling
    instants are ``phase + j s`` with a uniform random phase in ``[0, s)``. Sampled frames inside
    the event form a Markov chain of misses: the first is missed with probability ``1 - a``, each
    later one with ``m = (1 - a) + a c`` given that the previous one was missed.

    Args:
        per_frame_recall: a.
        event_length_s: T in seconds.
        correlation: c.
        stream_fps: F.
        sample_fps: f.
        n_events: number of simulated events.
        generator: numpy generator (all randomness comes from it).

    Returns:
        Fraction of simulated events with no positive sampled frame.
    """
    a = check_probability("per_frame_recall", per_frame_recall)
    c = check_probability("correlation", correlation)
    check_range("event_length_s", event_length_s, 0.0, low_inclusive=False)
    _check_rates(stream_fps, sample_fps)
    n = check_int("n_events", n_events, 1)
    stride = stream_fps / sample_fps
    length = event_length_s * stream_fps
    phase = generator.uniform(0.0, stride, size=n)
    # sampled instants phase + j*stride that fall in [0, length)
    hops = np.where(phase < length, np.floor((length - phase) / stride - 1e-12) + 1, 0).astype(int)
    m = (1.0 - a) + a * c
    first_miss = generator.random(n) < (1.0 - a)
    max_hops = int(hops.max(initial=0))
    missed = np.where(hops > 0, first_miss, True)
    if max_hops > 1:
        later = generator.random((n, max_hops - 1)) < m
        cols = np.arange(1, max_hops)[None, :]
        later_ok = np.where(cols < hops[:, None], later, True).all(axis=1)
        missed &= later_ok
    return float(missed.mean())


def sampled_frames(n_frames: int, stride: float) -> list[np.ndarray]:
    """Indices of the stream frames a sampler at stride ``s = F / f`` reads, for each phase.

    The sampler reads frames ``floor(phase + j s)``; the phases are ``0, s/P, ..., (P-1) s/P``
    with ``P = ceil(s)`` (for an integer stride: ``0, 1, ..., s-1``), an even grid over the
    uniformly random phase that the event model assumes. A fractional stride (3 fps of a 10 fps
    stream: ``s = 10/3``) reads frames ``0, 3, 6, 10, 13, ...``: gaps of 3 or 4 frames.

    Args:
        n_frames: length of the stream (>= 1).
        stride: ``s >= 1``.

    Returns:
        One ``(n_j,)`` int array of sorted frame indices per phase.
    """
    n = check_int("n_frames", n_frames, 1)
    s = check_range("stride", stride, 1.0)
    n_phases = max(1, math.ceil(s - 1e-9))
    out = []
    for p in range(n_phases):
        phase = p * s / n_phases
        idx = np.floor(phase + s * np.arange(math.ceil((n - phase) / s)) + 1e-9).astype(np.int64)
        out.append(idx[idx < n])
    return out


def empirical_event_f1(
    predictions: np.ndarray, segment: np.ndarray, segment_is_event: np.ndarray, stride: float
) -> tuple[float, float, float]:
    """Event precision, recall and F1 measured on a stream sampled every ``stride`` frames.

    An event segment is detected if any sampled frame in it is predicted positive; a non-event
    segment with a positive sampled frame is a false alarm. Counts are pooled over the sampling
    phases of :func:`sampled_frames` (for an integer stride, every phase ``0..stride-1``: the
    expectation over a uniformly random phase).

    Args:
        predictions: ``(T,)`` bool, per-frame classifier decisions at the full stream rate.
        segment: ``(T,)`` int, segment index of each frame (``0..n_segments-1``).
        segment_is_event: ``(n_segments,)`` bool.
        stride: s = F / f >= 1 (fractional strides allowed, e.g. 10/3 for 3 of 10 fps).

    Returns:
        ``(precision, recall, f1)``.
    """
    stride = check_range("stride", stride, 1.0)
    pred = np.asarray(predictions, dtype=bool)
    seg = np.asarray(segment)
    is_event = np.asarray(segment_is_event, dtype=bool)
    if pred.ndim != 1 or pred.shape != seg.shape:
        raise ValueError(f"`predictions` {pred.shape} and `segment` {seg.shape} must be the same "
                         "1-d shape")
    tp = fp = events = 0
    phases = sampled_frames(pred.size, stride) if pred.size else []
    for idx in phases:
        hit = np.zeros(is_event.size, dtype=bool)
        np.logical_or.at(hit, seg[idx], pred[idx])
        tp += int((hit & is_event).sum())
        fp += int((hit & ~is_event).sum())
        events += int(is_event.sum())
    recall = tp / events if events else 0.0
    precision = tp / (tp + fp) if tp + fp else 1.0
    f1 = 0.0 if recall == 0 or precision == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def estimate_correlation(predictions: np.ndarray, labels: np.ndarray, segment: np.ndarray) -> float:
    """Estimate c from consecutive event frames, as ``write_p_hits.get_conditional_probability``.

    ``m = P(miss_t | miss_{t-1})`` over pairs of consecutive frames of the same event, then
    ``c = (m - (1 - a)) / a`` with ``a`` the per-frame recall on event frames, clipped to [0, 1].
    Returns 0 when there are no (or only perfectly detected) event frames.
    """
    pred = np.asarray(predictions, dtype=bool)
    lab = np.asarray(labels, dtype=bool)
    seg = np.asarray(segment)
    if not lab.any():
        return 0.0
    a = float(pred[lab].mean())
    same = (seg[1:] == seg[:-1]) & lab[1:] & lab[:-1]
    prev_miss = same & ~pred[:-1]
    if a <= 0.0 or not prev_miss.any():
        return 0.0
    m = float((~pred[1:])[prev_miss].mean())
    return float(np.clip((m - (1.0 - a)) / a, 0.0, 1.0))
