"""Per-frame interface (``OnlineTracker``), frame conversion (``to_grey``), updater memory
(``state_nbytes``) and device plumbing (issue 24): every updater and both trackers on any device."""

import numpy as np
import pytest
import torch

from adaptlearn.tracking import (
    CorrelationFilterTracker,
    EMAUpdater,
    LearnedUpdater,
    NoUpdate,
    SGDUpdater,
    SiameseEmbedding,
    TemplateTracker,
    evaluate,
    generate_sequence,
    preset,
    track_sequence,
)
from adaptlearn.tracking.meta import make_episodes, meta_loss
from adaptlearn.tracking.trackers import LUMA_WEIGHTS, OnlineTracker, to_grey
from adaptlearn.tracking.updaters import OnlineSample, state_nbytes


@pytest.fixture(scope="module")
def sequence():
    return generate_sequence(preset("default", size=64, length=12), 5003, "test")


# --- frame conversion --------------------------------------------------------------------------
def test_to_grey_scales_integers_and_keeps_floats():
    u8 = np.array([[0, 51], [255, 102]], dtype=np.uint8)
    np.testing.assert_allclose(to_grey(u8), u8 / 255.0, rtol=1e-6)
    u16 = np.array([[0, 65535], [13107, 0]], dtype=np.uint16)
    np.testing.assert_allclose(to_grey(u16), u16 / 65535.0, rtol=1e-6)
    f64 = np.array([[0.0, 0.25], [1.0, 0.5]])
    out = to_grey(f64)
    assert out.dtype == np.float32 and out.shape == (2, 2)
    np.testing.assert_allclose(out, f64)
    np.testing.assert_allclose(to_grey(f64[..., None]), f64)  # (H, W, 1)


def test_to_grey_colour_uses_bt601_weights_in_the_stated_channel_order():
    frame = np.zeros((2, 3, 3), dtype=np.uint8)
    frame[..., 0] = 255  # first channel only: red in RGB, blue in BGR
    np.testing.assert_allclose(to_grey(frame, channel_order="rgb"), LUMA_WEIGHTS[0], rtol=1e-6)
    np.testing.assert_allclose(to_grey(frame, channel_order="bgr"), LUMA_WEIGHTS[2], rtol=1e-6)
    grey = np.random.default_rng(0).random((4, 5))
    np.testing.assert_allclose(to_grey(np.repeat(grey[..., None], 3, -1)), grey, atol=1e-6)
    video = np.repeat(grey[None, ..., None], 3, -1).repeat(2, 0)  # (T, H, W, 3)
    assert to_grey(video, video=True).shape == (2, 4, 5)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (np.full((4, 4), 200.0), r"must be finite and lie in \[0, 1\]"),
        (np.full((4, 4), np.nan), "must be finite"),
        (np.zeros((4, 4), dtype=np.int32), "must be uint8, uint16 or float"),
        (np.zeros((4, 4), dtype=bool), "must be uint8, uint16 or float"),
        (np.zeros((4, 4, 4), dtype=np.uint8), "alpha"),
        (np.zeros((4, 4, 2), dtype=np.uint8), r"must have shape \(H, W\) or \(H, W, 3\)"),
        (np.zeros(4, dtype=np.uint8), "must have shape"),
        (np.zeros((1, 4), dtype=np.uint8), "H, W >= 2"),
    ],
)
def test_to_grey_refuses_bad_frames_with_a_clear_error(frame, match):
    with pytest.raises(ValueError, match=match):
        to_grey(frame)


def test_to_grey_refuses_an_unknown_channel_order():
    with pytest.raises(ValueError, match="`channel_order` must be one of"):
        to_grey(np.zeros((4, 4, 3), dtype=np.uint8), channel_order="rgba")


# --- per-frame interface -----------------------------------------------------------------------
def test_online_tracker_matches_track_sequence_on_uint8_bgr_frames(sequence):
    u8 = (sequence.frames * 255).round().astype(np.uint8)
    bgr = np.repeat(u8[..., None], 3, axis=-1)
    whole, _ = track_sequence(CorrelationFilterTracker(), EMAUpdater(0.2), u8, sequence.boxes[0])
    floats, _ = track_sequence(
        CorrelationFilterTracker(), EMAUpdater(0.2), u8 / 255.0, sequence.boxes[0]
    )
    np.testing.assert_array_equal(whole, floats)  # uint8 is scaled, not taken as 0..255 floats
    online = OnlineTracker(CorrelationFilterTracker(), EMAUpdater(0.2), channel_order="bgr")
    online.init(bgr[0], tuple(sequence.boxes[0]))
    boxes = [sequence.boxes[0]] + [online.update(frame) for frame in bgr[1:]]
    np.testing.assert_allclose(np.asarray(boxes), whole, atol=1e-4)
    assert evaluate(np.asarray(boxes), sequence.boxes)["auc"] > 0.3


def test_online_tracker_errors_name_the_problem(sequence):
    online = OnlineTracker(CorrelationFilterTracker(), NoUpdate())
    with pytest.raises(RuntimeError, match=r"call `init\(frame, box\)` before"):
        online.update(sequence.frames[1])
    with pytest.raises(ValueError, match="`box` must be 4 finite numbers"):
        online.init(sequence.frames[0], (1.0, 2.0, 0.0, 3.0))
    online.init(sequence.frames[0], sequence.boxes[0])
    with pytest.raises(ValueError, match=r"first frame's size \(64, 64\)"):
        online.update(np.zeros((32, 32), dtype=np.float32))
    with pytest.raises(ValueError, match="`channel_order` must be one of"):
        OnlineTracker(CorrelationFilterTracker(), NoUpdate(), channel_order="hsv")
    with pytest.raises(ValueError, match="`frames` must have shape"):
        track_sequence(CorrelationFilterTracker(), NoUpdate(), sequence.frames[0, 0], [1, 1, 4, 4])


# --- updater memory ----------------------------------------------------------------------------
def _cf_samples(tracker, n, generator):
    label = tracker.label(torch.zeros(1, 2))
    for _ in range(n):
        feats = tracker.features(torch.rand(1, 1, 32, 32, generator=generator))
        yield OnlineSample(tracker.candidate(feats), feats, label, torch.rand(1, 4))


def test_state_nbytes_counts_sgd_window_and_learned_lstm_state():
    tracker = CorrelationFilterTracker(n_warps=0)
    g = torch.Generator().manual_seed(0)
    theta0 = tracker.candidate(tracker.features(torch.rand(1, 1, 32, 32, generator=g)))
    sgd = SGDUpdater(0.02, 1, window=3)
    learned = LearnedUpdater(coord_hidden=5, coord_layers=2, gate_hidden=7)
    s_sgd = sgd.init(theta0, loss_fn=tracker.loss)
    s_learned = learned.init(theta0, loss_fn=tracker.loss)
    for sample in _cf_samples(tracker, 6, g):
        _, s_sgd = sgd.update(s_sgd, sample)
        _, s_learned = learned.update(s_learned, sample)
    feature_bytes = 32 * 32 * 4
    # rms0, the first sample, the 3 newest samples and one shared (expanded) label
    assert state_nbytes(s_sgd) == 4 + (1 + 3) * feature_bytes + feature_bytes
    coords = theta0.numel()  # 3 x 32 x 32
    expected = (
        coords * 4  # theta_0
        + 4  # rms0
        + 2 * 7 * 4  # gate LSTM h, c
        + 2 * 2 * 5 * coords * 4  # coordinate-wise LSTM: h, c per layer per coordinate
        + 4  # the last gamma
    )
    assert state_nbytes(s_learned) == expected
    assert state_nbytes(EMAUpdater(0.1).init(theta0)) == 0


# --- devices (issue 24) ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        NoUpdate,
        lambda device: EMAUpdater(0.3),
        lambda device: SGDUpdater(0.05, 2, 3),
        lambda device: LearnedUpdater(coord_hidden=4, coord_layers=1, device=device),
    ],
    ids=["none", "ema", "sgd", "learned"],
)
def test_one_update_step_of_each_updater_on_any_device(any_device, make):
    def step(device):
        torch.manual_seed(0)
        updater = make(device) if make is not NoUpdate else NoUpdate()
        tracker = CorrelationFilterTracker(n_warps=0, device=device)
        g = torch.Generator().manual_seed(1)
        crops = torch.rand(2, 1, 1, 32, 32, generator=g).to(device)
        theta0 = tracker.candidate(tracker.features(crops[0]))
        feats = tracker.features(crops[1])
        sample = OnlineSample(
            tracker.candidate(feats),
            feats,
            tracker.label(torch.zeros(1, 2)),
            torch.rand(1, 4, generator=g).to(device),
        )
        state = updater.init(theta0, loss_fn=tracker.loss)
        theta, _ = updater.update(state, sample)
        return theta

    theta = step(any_device)
    assert theta.device.type == any_device.type and torch.isfinite(theta).all()
    torch.testing.assert_close(theta.cpu(), step(torch.device("cpu")), rtol=1e-4, atol=1e-4)


def test_learned_updater_meta_loss_forward_backward_on_any_device(any_device):
    seqs = [generate_sequence(preset("appearance", size=48, length=10), i, "train") for i in (0, 1)]
    tracker = CorrelationFilterTracker(n_warps=0, device=any_device)
    episodes = make_episodes(
        tracker, seqs, n_episodes=2, length=4, generator=torch.Generator().manual_seed(0)
    )
    assert episodes.search.device.type == any_device.type
    learned = LearnedUpdater(init_gamma=0.1, coord_hidden=4, coord_layers=1, device=any_device)
    learned.coord_head.weight.data.fill_(0.01)  # make the coordinate branch reach the loss
    loss = meta_loss(tracker, learned, episodes, steps=3, horizons=(1,))
    loss.backward()
    grads = [p.grad for p in learned.parameters()]
    assert all(g is not None and g.device.type == any_device.type for g in grads)
    assert all(torch.isfinite(g).all() for g in grads)
    assert float(learned.coord_head.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("kind", ["cf", "template"])
def test_trackers_track_on_any_device_like_on_the_cpu(any_device, sequence, kind):
    def run(device):
        torch.manual_seed(0)
        if kind == "cf":
            tracker = CorrelationFilterTracker(device=device)
        else:
            tracker = TemplateTracker(SiameseEmbedding(4).eval(), device=device)
        learned = LearnedUpdater(coord_hidden=4, coord_layers=1, device=device)
        return track_sequence(tracker, learned, sequence.frames[:6], sequence.boxes[0])[0]

    np.testing.assert_allclose(run(any_device), run(torch.device("cpu")), atol=0.05)


def test_online_tracker_refuses_a_device_other_than_the_trackers():
    with pytest.raises(ValueError, match="must be the tracker's device"):
        OnlineTracker(CorrelationFilterTracker(), NoUpdate(), device="meta")
