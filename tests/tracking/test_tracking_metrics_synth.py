"""OTB metrics against hand-computed boxes, and the sequence generator's determinism/properties."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptlearn.tracking.metrics import (
    center_error,
    evaluate,
    iou,
    precision_curve,
    success_auc,
    success_curve,
)
from adaptlearn.tracking.synth import SequenceConfig, generate_sequence, preset


# ----------------------------------------------------------------------------------- metrics
def test_iou_hand_computed():
    # 10x10 at origin vs 10x10 shifted by (5, 0): inter 50, union 150
    assert iou([[0, 0, 10, 10]], [[5, 0, 10, 10]])[0] == pytest.approx(1 / 3)
    # contained box: inter 4, union 100
    assert iou([[0, 0, 10, 10]], [[3, 3, 2, 2]])[0] == pytest.approx(0.04)
    # touching edges: no "+1" pixel convention, so IoU is exactly 0
    assert iou([[0, 0, 10, 10]], [[10, 0, 10, 10]])[0] == 0.0
    assert iou([[0, 0, 10, 10]], [[0, 0, 10, 10]])[0] == 1.0


def test_center_error_uses_otb_centre_convention():
    # centres x + (w-1)/2: (4.5, 4.5) and (7.5, 8.5) -> distance 5
    assert center_error([[0, 0, 10, 10]], [[3, 4, 10, 10]])[0] == pytest.approx(5.0)
    # different sizes shift the centre by (w-1)/2
    assert center_error([[0, 0, 1, 1]], [[0, 0, 3, 3]])[0] == pytest.approx(np.sqrt(2))


def test_success_is_strict_and_auc_is_mean_of_21_thresholds():
    gt = np.array([[0, 0, 10, 10]] * 2, dtype=float)
    pred = np.array([[0, 0, 10, 10], [5, 0, 10, 10]], dtype=float)  # IoU 1 and 1/3
    curve = success_curve(pred, gt)
    assert curve.shape == (21,)
    # thresholds 0..0.3 (7 values): both frames succeed; 0.35..0.95 (13): one; 1.0: none (strict >)
    expected = np.array([1.0] * 7 + [0.5] * 13 + [0.0])
    np.testing.assert_allclose(curve, expected)
    assert success_auc(pred, gt) == pytest.approx(expected.mean())


def test_precision_is_inclusive_at_threshold():
    gt = np.array([[0, 0, 10, 10]] * 2, dtype=float)
    pred = np.array([[0, 0, 10, 10], [20, 0, 10, 10]], dtype=float)  # errors 0 and 20
    curve = precision_curve(pred, gt)
    assert curve.shape == (51,)
    assert curve[19] == 0.5 and curve[20] == 1.0  # error <= 20 counts at 20 px


def test_evaluate_overwrites_frame_zero_with_ground_truth():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    pred = np.array([[50, 50, 1, 1], [0, 0, 10, 10]], dtype=float)
    scores = evaluate(pred, gt)
    assert scores["auc"] == pytest.approx(20 / 21)
    assert scores["precision20"] == 1.0 and scores["success50"] == 1.0
    with pytest.raises(ValueError, match="same shape"):
        evaluate(pred[:1], gt)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        iou(np.zeros((2, 3)), np.zeros((2, 3)))


_box = st.tuples(st.floats(0, 50), st.floats(0, 50), st.floats(1, 30), st.floats(1, 30))


@given(st.lists(st.tuples(_box, _box), min_size=1, max_size=8))
def test_iou_symmetric_bounded_and_auc_close_to_mean_overlap(pairs):
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    ious = iou(a, b)
    np.testing.assert_allclose(ious, iou(b, a), atol=1e-12)
    assert np.all((ious >= 0) & (ious <= 1))
    # AUC over 21 strict thresholds = mean overlap up to the discretisation (<= 1/21 + 1/20)
    assert abs(success_auc(a, b) - ious.mean()) <= 1 / 21 + 1 / 20 + 1e-9


# --------------------------------------------------------------------------------- generator
def test_generator_is_deterministic_and_splits_differ():
    cfg = preset("default", size=48, length=12)
    a = generate_sequence(cfg, 7, "train")
    b = generate_sequence(cfg, 7, "train")
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    c = generate_sequence(cfg, 7, "test")
    assert not np.allclose(a.frames, c.frames)
    d = generate_sequence(cfg, 8, "train")
    assert not np.allclose(a.frames, d.frames)


def test_generated_boxes_valid_and_motion_bounded():
    cfg = preset("default", size=64, length=40)
    seq = generate_sequence(cfg, 3)
    assert seq.frames.shape == (40, 64, 64) and seq.frames.dtype == np.float32
    assert seq.frames.min() >= 0.0 and seq.frames.max() <= 1.0
    assert seq.boxes.shape == (40, 4)
    centres = seq.boxes[:, :2] + seq.boxes[:, 2:] / 2
    assert np.all(seq.boxes[:, 2:] > 3)
    assert np.all((centres > 0) & (centres < 64))
    # speed limit max_speed * H / 96 px per frame (reflection at the margins can only shorten steps)
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() <= cfg.max_speed * 64 / 96 + 1e-4


def test_target_is_rendered_at_the_box():
    # static preset: no occlusion, no distractors; the target texture differs from the background
    # so the frame inside the box changes when the target moves, outside much less
    cfg = preset("static", size=64, length=2, noise_sigma=0.0, pan_sigma=0.0)
    seq = generate_sequence(cfg, 11)
    x, y, w, h = seq.boxes[0]
    inner = seq.frames[0, int(y + h * 0.3) : int(y + h * 0.7), int(x + w * 0.3) : int(x + w * 0.7)]
    assert inner.size > 0 and inner.std() > 0.02
    assert np.all(seq.occlusion == 0) and np.all(np.isinf(seq.distractor_dist))


def test_occlusion_and_distractor_presets_produce_them():
    hard = preset("hard", size=48, length=60)
    occluded = [generate_sequence(hard, s).occlusion.max() for s in range(3)]
    assert max(occluded) > 0.2
    seq = generate_sequence(hard, 0)
    assert np.isfinite(seq.distractor_dist).all()  # hard has 1-3 distractors
    static = generate_sequence(preset("static", size=64, length=30), 0)
    assert np.all(static.gain == 1.0)


def test_config_validation_names_field():
    with pytest.raises(ValueError, match="`size` of SequenceConfig"):
        SequenceConfig(size=8).validate()
    with pytest.raises(ValueError, match="`occlusion_frames`"):
        SequenceConfig(occlusion_frames=(5, 2)).validate()
    with pytest.raises(ValueError, match="`name` of preset"):
        preset("nope")
    with pytest.raises(ValueError, match="`split`"):
        generate_sequence(SequenceConfig(size=48, length=4), 0, "val")
