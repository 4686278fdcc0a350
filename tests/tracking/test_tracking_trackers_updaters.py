"""Base trackers, the updater interface and meta-training."""

import math

import numpy as np
import pytest
import torch

from adaptlearn.tracking.meta import make_episodes, meta_loss, train_embedding
from adaptlearn.tracking.synth import generate_sequence, preset
from adaptlearn.tracking.trackers import (
    CorrelationFilterTracker,
    SiameseEmbedding,
    TemplateTracker,
    crop_patches,
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
)


@pytest.fixture(scope="module")
def textured_patch():
    g = torch.Generator().manual_seed(0)
    return torch.nn.functional.avg_pool2d(
        torch.rand(1, 1, 34, 34, generator=g), 3, 1
    )  # (1,1,32,32)


@pytest.mark.parametrize("shift", [(3, -2), (-5, 4), (0, 7)])
def test_correlation_filter_recovers_a_circular_shift_exactly(textured_patch, shift):
    tracker = CorrelationFilterTracker(n_warps=0, lam=1e-4)
    # features without the Hann window so that the circular shift is exact
    raw = textured_patch - textured_patch.mean()
    model = tracker.candidate(raw)
    shifted = torch.roll(raw, shifts=(shift[1], shift[0]), dims=(-2, -1))
    resp = tracker.response(model, shifted)[0]
    y, x = divmod(int(torch.argmax(resp)), resp.shape[-1])
    m = tracker.patch_size
    assert (x - m // 2, y - m // 2) == shift


def test_crop_patches_extracts_the_right_pixels():
    frame = torch.arange(100.0).view(1, 1, 10, 10)
    # centre (5, 5), side 4 -> pixels 3..6 in both directions, sampled at pixel centres
    patch = crop_patches(frame, torch.tensor([[5.0, 5.0]]), torch.tensor([4.0]), 4)
    np.testing.assert_allclose(patch[0, 0].numpy(), frame[0, 0, 3:7, 3:7].numpy(), atol=1e-4)


def test_template_tracker_shapes_and_candidate_is_centre_of_search_features():
    emb = SiameseEmbedding(channels=4)
    tracker = TemplateTracker(emb)
    g = torch.Generator().manual_seed(1)
    patches = torch.rand(2, 1, 64, 64, generator=g)
    feats = tracker.features(patches)
    assert feats.shape == (2, 4, 27, 27)
    z = tracker.candidate(feats)
    assert z.shape == (2, 4, 11, 11)
    # the exemplar crop (centre 32 px) has exactly the central template features (no padding)
    ex = emb(patches[:, :, 16:48, 16:48] * 1.0)
    # per-patch normalisation differs between the crops, so compare up to an affine map per channel
    corr = torch.corrcoef(torch.stack([ex[0, 0].flatten(), z[0, 0].flatten()]))[0, 1]
    assert corr > 0.9
    resp = tracker.response(z, feats)
    assert resp.shape == (2, 17, 17)
    labels = tracker.label(torch.zeros(2, 2))
    assert labels[0, 8, 8] == 1 and labels.sum() == 2 * 13  # radius 2 disc has 13 cells
    loss = tracker.loss(z, feats, labels)
    assert loss.shape == (2,) and torch.all(loss > 0)


def _sample(model, feats, label, cues=None):
    return OnlineSample(
        model, feats, label, cues if cues is not None else torch.zeros(model.shape[0], 4)
    )


def test_updaters_share_one_interface_and_ema_math():
    tracker = CorrelationFilterTracker(n_warps=0)
    g = torch.Generator().manual_seed(2)
    feats0 = tracker.features(torch.rand(1, 1, 32, 32, generator=g))
    feats1 = tracker.features(torch.rand(1, 1, 32, 32, generator=g))
    theta0, psi = tracker.candidate(feats0), tracker.candidate(feats1)
    label = tracker.label(torch.zeros(1, 2))
    for upd in (
        NoUpdate(),
        EMAUpdater(0.3),
        SGDUpdater(0.05, 2, 3),
        LearnedUpdater(coord_hidden=4),
    ):
        assert isinstance(upd, TemplateUpdater)
        state = upd.init(theta0, loss_fn=tracker.loss)
        theta, state = upd.update(state, _sample(psi, feats1, label))
        assert theta.shape == theta0.shape and torch.isfinite(theta).all()
    state = NoUpdate().init(theta0)
    assert torch.equal(NoUpdate().update(state, _sample(psi, feats1, label))[0], theta0)
    ema = EMAUpdater(0.3)
    theta, _ = ema.update(ema.init(theta0), _sample(psi, feats1, label))
    torch.testing.assert_close(theta, 0.7 * theta0 + 0.3 * psi)
    with pytest.raises(ValueError, match="`gamma` of EMAUpdater"):
        EMAUpdater(1.5)
    with pytest.raises(ValueError, match="`steps` of SGDUpdater"):
        SGDUpdater(steps=0)
    with pytest.raises(ValueError, match="loss_fn"):
        SGDUpdater().init(theta0)


def test_sgd_update_lowers_the_online_loss():
    tracker = CorrelationFilterTracker(n_warps=0)
    g = torch.Generator().manual_seed(3)
    feats = tracker.features(torch.rand(1, 1, 32, 32, generator=g))
    theta0 = tracker.candidate(tracker.features(torch.rand(1, 1, 32, 32, generator=g)))
    label = tracker.label(torch.zeros(1, 2))
    sgd = SGDUpdater(lr=0.05, steps=5, window=4)
    state = sgd.init(theta0, loss_fn=tracker.loss)
    theta, _ = sgd.update(state, _sample(tracker.candidate(feats), feats, label))
    assert tracker.loss(theta, feats, label).item() < tracker.loss(theta0, feats, label).item()


@pytest.mark.parametrize("make_tracker", ["cf", "template"])
def test_sgd_batched_step_equals_the_mean_of_per_sample_losses(make_tracker):
    g = torch.Generator().manual_seed(5)
    if make_tracker == "cf":
        tracker = CorrelationFilterTracker(n_warps=0)
        crops = torch.rand(4, 1, 32, 32, generator=g)
    else:
        tracker = TemplateTracker(SiameseEmbedding(4))
        crops = torch.rand(4, 1, 64, 64, generator=g)
    feats = tracker.features(crops)
    label = tracker.label(torch.zeros(1, 2))
    theta0 = tracker.candidate(feats[:1])
    sgd = SGDUpdater(lr=0.05, steps=2, window=2)
    state = sgd.init(theta0, loss_fn=tracker.loss)
    for k in range(1, 4):
        theta, state = sgd.update(
            state, _sample(tracker.candidate(feats[k : k + 1]), feats[k : k + 1], label)
        )
    # the last update by hand from the model before it: first sample + window of the last 2,
    # losses summed one sample at a time
    data = [feats[1:2], feats[2:3], feats[3:4]]
    sgd2 = SGDUpdater(lr=0.05, steps=2, window=2)
    state2 = sgd2.init(theta0, loss_fn=tracker.loss)
    for k in range(1, 3):
        theta_before, state2 = sgd2.update(
            state2, _sample(tracker.candidate(feats[k : k + 1]), feats[k : k + 1], label)
        )
    expected = theta_before.detach()
    rms0 = theta0.pow(2).mean().sqrt()
    for _ in range(2):
        expected = expected.detach().requires_grad_(True)
        loss = sum(tracker.loss(expected, f, label) for f in data) / len(data)
        (grad,) = torch.autograd.grad(loss.sum(), expected)
        expected = expected.detach() - 0.05 * rms0 / grad.pow(2).mean().sqrt() * grad
    torch.testing.assert_close(theta, expected, rtol=1e-4, atol=1e-5)


def test_learned_updater_with_zero_heads_reproduces_ema_exactly():
    tracker = CorrelationFilterTracker(n_warps=0)
    g = torch.Generator().manual_seed(4)
    learned = LearnedUpdater(init_gamma=0.05, coord_hidden=6)
    ema = EMAUpdater(0.05)
    theta0 = tracker.candidate(tracker.features(torch.rand(2, 1, 32, 32, generator=g)))
    s_l, s_e = learned.init(theta0, loss_fn=tracker.loss), ema.init(theta0)
    label = tracker.label(torch.zeros(1, 2))
    for _ in range(4):
        feats = tracker.features(torch.rand(2, 1, 32, 32, generator=g))
        sample = _sample(tracker.candidate(feats), feats, label, torch.rand(2, 4, generator=g))
        t_l, s_l = learned.update(s_l, sample)
        t_e, s_e = ema.update(s_e, sample)
        torch.testing.assert_close(t_l, t_e, rtol=1e-5, atol=1e-5)
    assert "init_gamma=0.05" in repr(learned)
    # state_dict round trip
    clone = LearnedUpdater(init_gamma=0.3, coord_hidden=6)
    clone.load_state_dict(learned.state_dict())
    for a, b in zip(clone.parameters(), learned.parameters(), strict=True):
        assert torch.equal(a, b)


def test_preprocess_gradient_l2l():
    g = torch.tensor([1.0, -math.exp(-3), 0.0, 1e-6])
    out = preprocess_gradient(g, p=10.0)
    assert out.shape == (4, 2)
    torch.testing.assert_close(out[0], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(out[1], torch.tensor([-0.3, -1.0]))
    torch.testing.assert_close(out[2], torch.tensor([-1.0, 0.0]))
    # below e^-10: [-1, e^10 g]
    torch.testing.assert_close(out[3], torch.tensor([-1.0, 1e-6 * math.exp(10.0)]))


def test_meta_training_step_reduces_the_meta_loss():
    cfg = preset("appearance", size=48, length=16)
    seqs = [generate_sequence(cfg, i, "train") for i in range(3)]
    tracker = CorrelationFilterTracker(n_warps=0)
    g = torch.Generator().manual_seed(0)
    episodes = make_episodes(tracker, seqs, n_episodes=3, length=6, generator=g)
    learned = LearnedUpdater(init_gamma=0.05, coord_hidden=4, coord_layers=1)
    opt = torch.optim.Adam(learned.parameters(), lr=0.05)
    before = meta_loss(tracker, learned, episodes, steps=4, horizons=(1, 2))
    for _ in range(3):
        loss = meta_loss(tracker, learned, episodes, steps=4, horizons=(1, 2))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = meta_loss(tracker, learned, episodes, steps=4, horizons=(1, 2))
    assert after.item() < before.item()
    with pytest.raises(ValueError, match="exceeds the episode length"):
        meta_loss(tracker, learned, episodes, steps=5, horizons=(1, 2))


def test_embedding_training_lowers_the_siamese_loss():
    cfg = preset("static", size=48, length=12)
    seqs = [generate_sequence(cfg, i, "train") for i in range(2)]
    _, losses = train_embedding(
        seqs, steps=12, batch_size=4, channels=4, generator=torch.Generator().manual_seed(0)
    )
    assert np.mean(losses[-4:]) < np.mean(losses[:4])


def test_tracking_a_static_target_with_ema_is_accurate():
    seq = generate_sequence(preset("static", size=64, length=20), 1)
    boxes, fps = track_sequence(
        CorrelationFilterTracker(), EMAUpdater(0.05), seq.frames, seq.boxes[0]
    )
    from adaptlearn.tracking.metrics import evaluate

    scores = evaluate(boxes, seq.boxes)
    assert scores["precision20"] == 1.0 and scores["auc"] > 0.5
    assert fps > 0 and boxes.shape == (20, 4)


@pytest.mark.parametrize(
    "box",
    [[1.0, 2.0, float("nan"), 5.0], [1.0, 2.0, 0.0, 5.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0, -1.0]],
)
def test_track_sequence_refuses_nan_empty_or_malformed_first_boxes(box):
    import numpy as np

    from adaptlearn.tracking.trackers import CorrelationFilterTracker, track_sequence
    from adaptlearn.tracking.updaters import EMAUpdater

    frames = np.zeros((3, 32, 32), dtype=np.float32)
    with pytest.raises(ValueError, match="`init_box` must be 4 finite numbers"):
        track_sequence(CorrelationFilterTracker(), EMAUpdater(0.1), frames, np.array(box))
