"""Learning to update for object tracking: base trackers, model updaters, OTB metrics, generator.

Quick tour::

    from adaptlearn.tracking import (CorrelationFilterTracker, EMAUpdater, LearnedUpdater,
                                     evaluate, generate_sequence, preset, track_sequence)
    seq = generate_sequence(preset("default", size=64, length=60), seed=5000)
    tracker = CorrelationFilterTracker()
    boxes, fps = track_sequence(tracker, EMAUpdater(0.1), seq.frames, seq.boxes[0])
    evaluate(boxes, seq.boxes)["auc"]

    # per frame, as OpenCV's and GOT-10k's trackers (uint8 / float, grey / RGB / BGR frames)
    online = OnlineTracker(CorrelationFilterTracker(), EMAUpdater(0.1), channel_order="bgr")
    online.init(first_frame, (x, y, w, h))
    box = online.update(next_frame)

Swapping the updater (``NoUpdate()``, ``SGDUpdater(...)``, a meta-trained ``LearnedUpdater``)
is a one-line change; see :mod:`adaptlearn.tracking.meta` for meta-training.

References:
    Li, Xie, Zeng, Liu. "Learning to Update for Object Tracking with Recurrent Meta-learner",
    arXiv 1806.07078 (IEEE TIP 2019).
"""

from adaptlearn.tracking.meta import make_episodes, meta_loss, meta_train, train_embedding
from adaptlearn.tracking.metrics import (
    center_error,
    evaluate,
    iou,
    precision_curve,
    success_auc,
    success_curve,
)
from adaptlearn.tracking.opencv_anchor import opencv_available, opencv_track_sequence
from adaptlearn.tracking.synth import (
    PRESETS,
    SequenceConfig,
    TrackingSequence,
    generate_sequence,
    make_split,
    preset,
)
from adaptlearn.tracking.trackers import (
    LUMA_WEIGHTS,
    CorrelationFilterTracker,
    OnlineTracker,
    SiameseEmbedding,
    TemplateTracker,
    crop_patches,
    to_grey,
    track_sequence,
)
from adaptlearn.tracking.updaters import (
    EMAUpdater,
    LearnedUpdater,
    NoUpdate,
    OnlineSample,
    SGDUpdater,
    TemplateUpdater,
    preprocess_gradient,
    state_nbytes,
)

__all__ = [
    "LUMA_WEIGHTS",
    "PRESETS",
    "CorrelationFilterTracker",
    "EMAUpdater",
    "LearnedUpdater",
    "NoUpdate",
    "OnlineSample",
    "OnlineTracker",
    "SGDUpdater",
    "SequenceConfig",
    "SiameseEmbedding",
    "TemplateTracker",
    "TemplateUpdater",
    "TrackingSequence",
    "center_error",
    "crop_patches",
    "evaluate",
    "generate_sequence",
    "iou",
    "make_episodes",
    "make_split",
    "meta_loss",
    "meta_train",
    "opencv_available",
    "opencv_track_sequence",
    "precision_curve",
    "preprocess_gradient",
    "preset",
    "state_nbytes",
    "success_auc",
    "success_curve",
    "to_grey",
    "track_sequence",
    "train_embedding",
]
