"""Profiler: layered CNN, freezing at depth k, FLOP counts, accuracy measurement, determinism."""

import numpy as np
import pytest
import torch

from adaptlearn.mainstream import (
    StemCNN,
    fine_tune,
    measure_stem_option,
    predict_scores,
    profile_layers,
    train_classifier,
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 12, 12, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).float()
    return x, y


def test_prefix_then_suffix_equals_full_forward():
    model = StemCNN(5, (4, 6, 8), generator=torch.Generator().manual_seed(0)).eval()
    x = torch.randn(3, 3, 12, 12)
    with torch.no_grad():
        full = model(x)
        for k in range(model.n_layers):
            assert torch.allclose(model(model(x, 0, k), k), full, atol=1e-6)
    assert full.shape == (3, 5)
    assert model.n_layers == 4 and "widths=(4, 6, 8)" in repr(model)


def test_same_generator_same_weights():
    a = StemCNN(3, (4, 8), generator=torch.Generator().manual_seed(7))
    b = StemCNN(3, (4, 8), generator=torch.Generator().manual_seed(7))
    c = StemCNN(3, (4, 8), generator=torch.Generator().manual_seed(8))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("k", [0, 1, 3])
def test_fine_tune_freezes_exactly_the_prefix(k):
    base = StemCNN(4, (4, 6, 8), generator=torch.Generator().manual_seed(0))
    before = {n: p.detach().clone() for n, p in base.state_dict().items()}
    x, y = _data()
    model = fine_tune(base, k, x, y, generator=torch.Generator().manual_seed(1), epochs=1)
    after = model.state_dict()
    assert all(torch.equal(base.state_dict()[n], before[n]) for n in before)  # base untouched
    for i in range(len(base.blocks)):
        changed = any(not torch.equal(after[n], before[n])
                      for n in before if n.startswith(f"blocks.{i}."))
        assert changed == (i >= k), f"block {i} changed={changed} at depth {k}"
    assert after["head.1.weight"].shape == (1, 8)


def test_training_learns_an_easy_task():
    x, y = _data(256)
    model = StemCNN(1, (4, 8), generator=torch.Generator().manual_seed(0))
    train_classifier(model, x, y, epochs=15, lr=1e-2, generator=torch.Generator().manual_seed(0))
    opt = measure_stem_option(model, 0, x, y)
    assert opt.recall > 0.85 and opt.false_positive_rate < 0.15


def test_measure_stem_option_by_hand():
    class Fixed(StemCNN):
        def forward(self, x, start=0, stop=None):
            return x[:, :1, 0, 0]  # logit = first pixel

    model = Fixed(1, (2,))
    x = torch.zeros(6, 3, 4, 4)
    x[:, 0, 0, 0] = torch.tensor([5.0, 5.0, -5.0, 5.0, -5.0, -5.0])
    y = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    opt = measure_stem_option(model, 2, x, y)
    assert opt.frozen_layers == 2
    assert (opt.recall, opt.false_positive_rate) == pytest.approx((2 / 3, 1 / 3))
    with pytest.raises(ValueError, match="both positive and negative"):
        measure_stem_option(model, 0, x, torch.ones(6))


def test_layer_flops_by_hand():
    model = StemCNN(10, (4, 8), generator=torch.Generator().manual_seed(0))
    prof = profile_layers(model, torch.randn(2, 3, 16, 16), reps=2, warmup=1)
    assert [p.name for p in prof] == ["block0", "block1", "head"]
    # conv FLOPs = 2 * Cin * Cout * 3 * 3 * H * W per frame (stride 1, padding 1)
    assert prof[0].flops == pytest.approx(2 * 3 * 4 * 9 * 16 * 16)
    assert prof[1].flops == pytest.approx(2 * 4 * 8 * 9 * 8 * 8)
    assert prof[2].flops == pytest.approx(2 * 8 * 10)
    assert all(p.time_ms > 0 for p in prof)
    assert np.isfinite([p.time_ms for p in prof]).all()


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="n_outputs"):
        StemCNN(0)
    with pytest.raises(ValueError, match="widths"):
        StemCNN(2, ())
    x, y = _data(8)
    model = StemCNN(1, (4,))
    with pytest.raises(ValueError, match="frozen_layers"):
        train_classifier(model, x, y, frozen_layers=2, generator=torch.Generator())


def test_profiler_runs_on_any_device_with_the_cpu_networks_weights(any_device):
    """Device standard: weights drawn on the CPU (same seed, same network everywhere), training,
    scoring and profiling on the model's device; scores come back on the input's device."""
    cpu = StemCNN(4, (4, 8), generator=torch.Generator().manual_seed(3))
    dev = StemCNN(4, (4, 8), generator=torch.Generator().manual_seed(3), device=any_device)
    assert dev.device.type == any_device.type
    assert all(torch.equal(a, b.cpu()) for a, b in
               zip(cpu.state_dict().values(), dev.state_dict().values(), strict=True))
    x, y = _data(64)  # CPU tensors: moved to the model's device where needed
    model = fine_tune(dev, 1, x, y, generator=torch.Generator().manual_seed(1), epochs=1)
    assert model.device.type == any_device.type
    scores = predict_scores(model, x, batch_size=16)
    assert scores.shape == (64,) and scores.device.type == "cpu"
    assert predict_scores(model, x.to(any_device)).device.type == any_device.type
    opt = measure_stem_option(model, 1, x, y)
    assert 0.0 <= opt.recall <= 1.0 and 0.0 <= opt.false_positive_rate <= 1.0
    prof = profile_layers(model, x[:8], reps=2, warmup=1)
    assert [p.name for p in prof] == ["block0", "block1", "head"]
    assert all(p.time_ms > 0 and p.flops > 0 for p in prof)
    # the detector can also be placed explicitly
    on_cpu = fine_tune(dev, 2, x, y, generator=torch.Generator().manual_seed(1), epochs=1,
                       device="cpu")
    assert on_cpu.device.type == "cpu"
