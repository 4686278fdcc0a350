"""Synthetic video generator: determinism, labels that match their concepts, stream structure."""

import numpy as np
import pytest

from adaptlearn.mainstream import video


def test_same_seed_same_frames():
    a = video.make_concept_dataset("red_triangle", 20, np.random.default_rng(3))
    b = video.make_concept_dataset("red_triangle", 20, np.random.default_rng(3))
    c = video.make_concept_dataset("red_triangle", 20, np.random.default_rng(4))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("concept", list(video.CONCEPTS))
def test_sampled_scenes_show_or_lack_their_concept(concept):
    rng = np.random.default_rng(0)
    pred = video.CONCEPTS[concept]
    for positive in (True, False):
        for _ in range(50):
            objs = video._scene_with(concept, positive, rng, 24)
            assert pred(objs) == positive
            assert objs[0].size >= max(o.size for o in objs)  # main object is the largest


def test_red_triangle_pixels_are_drawn():
    objs = (video.SceneObject(video.SHAPES.index("triangle"), video.COLORS.index("red"), 2,
                              12.0, 12.0),)
    img = video.render_scene(objs, np.zeros((3, 24, 24), np.float32), np.random.default_rng(0),
                             noise=0.0)
    red = (img[0] > 0.8) & (img[1] < 0.2)
    assert 30 < red.sum() < 24 * 24 / 2
    assert red[12, 12] and not red[0, 0]


def test_base_dataset_labels_and_shapes():
    x, y = video.make_base_dataset(50, np.random.default_rng(0), image_size=16)
    assert x.shape == (50, 3, 16, 16) and x.dtype == np.float32
    assert y.min() >= 0 and y.max() < 36


def test_event_stream_structure():
    s = video.make_event_stream("horizontal_bar", 200, np.random.default_rng(0), fps=10,
                                event_length_s=0.4, event_frequency=0.3)
    assert s.frames.shape == (800, 3, 24, 24)
    assert np.array_equal(s.segment, np.repeat(np.arange(200), 4))
    assert np.array_equal(s.labels, s.segment_is_event[s.segment].astype(int))
    assert 0.2 < s.segment_is_event.mean() < 0.4
    # objects drift slowly: consecutive frames of a segment are closer than frames of different ones
    same = np.abs(s.frames[1] - s.frames[0]).mean()
    other = np.abs(s.frames[4] - s.frames[0]).mean()
    assert same < other


def test_bad_arguments():
    with pytest.raises(ValueError, match="concept"):
        video.make_concept_dataset("dog", 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_segments"):
        video.make_event_stream("red_triangle", 0, np.random.default_rng(0))
