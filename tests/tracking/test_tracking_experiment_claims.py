"""Experiment config validation, OpenCV anchors (optional), and a slow reproduction of the spec's
robust claim (never updating drifts: EMA beats no update on appearance-change sequences)."""

import numpy as np
import pytest

from adaptlearn.experiments.tracking import TrackingConfig
from adaptlearn.tracking import (
    CorrelationFilterTracker,
    EMAUpdater,
    NoUpdate,
    evaluate,
    generate_sequence,
    opencv_available,
    opencv_track_sequence,
    preset,
    track_sequence,
)


def test_config_validation_names_the_field():
    TrackingConfig().validate()
    with pytest.raises(ValueError, match="`trackers` of TrackingConfig"):
        TrackingConfig(trackers="cf,kcf").validate()
    with pytest.raises(ValueError, match="`ema_gammas` of TrackingConfig"):
        TrackingConfig(ema_gammas="0.1,x").validate()
    with pytest.raises(ValueError, match="`ema_gammas` of TrackingConfig"):
        TrackingConfig(ema_gammas="1.5").validate()
    with pytest.raises(ValueError, match="`meta_steps`"):
        TrackingConfig(length=12, meta_steps=8, meta_horizons="1,5").validate()
    with pytest.raises(ValueError, match="`learned_init` of TrackingConfig"):
        TrackingConfig(learned_init="best").validate()


@pytest.mark.skipif(not opencv_available(), reason="opencv-contrib-python-headless not installed")
@pytest.mark.parametrize("name", ["kcf", "csrt"])
def test_opencv_anchor_tracks_a_static_target(name):
    seq = generate_sequence(preset("static", size=64, length=15), 2)
    boxes, fps = opencv_track_sequence(name, seq.frames, seq.boxes[0])
    assert boxes.shape == (15, 4) and fps > 0
    assert evaluate(boxes, seq.boxes)["precision20"] == 1.0


@pytest.mark.slow
def test_ema_beats_no_update_under_appearance_change():
    cfg = preset("appearance", size=64, length=80)
    seqs = [generate_sequence(cfg, 5000 + i) for i in range(10)]
    tracker = CorrelationFilterTracker()
    auc = {}
    for name, updater in (("none", NoUpdate()), ("ema", EMAUpdater(0.1))):
        auc[name] = [
            evaluate(track_sequence(tracker, updater, s.frames, s.boxes[0])[0], s.boxes)["auc"]
            for s in seqs
        ]
    diff = np.asarray(auc["ema"]) - np.asarray(auc["none"])
    assert diff.mean() > 0.05 and (diff > 0).sum() >= 6
