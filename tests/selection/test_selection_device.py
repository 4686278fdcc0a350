"""Selection on any device (#24): one SB epoch per device, helpers respect the device.

The ``cuda`` cases run where CUDA exists (``pytest -m gpu``) and are skipped elsewhere. The
selectors decide on the CPU with a CPU generator, so the same losses give the same masks on
every device; training losses themselves differ in the last bits between devices, so whole
training runs are compared by their invariants, not bit for bit.
"""

import pytest
import torch
from torch import nn

from adaptlearn.selection import (
    AdaptSB,
    Kath18ImportanceSampling,
    RandomSubset,
    SelectionPipeline,
    SelectiveBackprop,
    SelectiveBackpropAlgorithm,
    ShuffledLoader,
    StaleSB,
    Trainer,
    bernoulli_select,
    loss_percentiles,
    make_teacher_classification,
    random_selection_probabilities,
    selection_probabilities,
    selective_batches,
)


def bn_mlp(device, features=10):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(features, 32), nn.BatchNorm1d(32), nn.ReLU(),
                          nn.Linear(32, 10))
    return model.to(device)


def test_functional_helpers_respect_the_device_and_draw_like_the_cpu(any_device):
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(64, generator=gen)
    mask = bernoulli_select(p.to(any_device), generator=torch.Generator().manual_seed(1))
    assert mask.device.type == any_device.type
    assert torch.equal(mask.cpu(), bernoulli_select(p, generator=torch.Generator().manual_seed(1)))
    r = random_selection_probabilities(50, 2.0, generator=torch.Generator().manual_seed(2),
                                       device=any_device)
    assert r.device.type == any_device.type
    ref = random_selection_probabilities(50, 2.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(r.cpu(), ref)
    losses, history = torch.rand(40, generator=gen), torch.rand(300, generator=gen)
    pct = loss_percentiles(losses.to(any_device), history.to(any_device))
    assert pct.device.type == any_device.type
    brute = (history[None, :] < losses[:, None]).float().mean(1)
    assert torch.allclose(pct.cpu(), brute)
    probs = selection_probabilities(losses.to(any_device), history, 3.0)
    assert probs.device.type == any_device.type


@pytest.mark.parametrize("make", [
    lambda: SelectiveBackprop(2.0, 64, seed=5),
    lambda: AdaptSB(200, 2.0, 64, seed=5, threshold=0.3),
    lambda: RandomSubset(2.0, seed=5),
], ids=["sb", "adapt-sb", "random"])
def test_selectors_give_the_same_masks_on_every_device(make, any_device):
    gen = torch.Generator().manual_seed(3)
    cpu_sel, dev_sel = make(), make()
    for _ in range(5):
        losses, idx = torch.rand(40, generator=gen), torch.randint(0, 200, (40,), generator=gen)
        a = cpu_sel.select(losses, indices=idx)
        b = dev_sel.select(losses.to(any_device), indices=idx.to(any_device))
        assert b.device.type == any_device.type
        assert torch.equal(a, b.cpu())


def test_one_sb_epoch_trains_on_the_models_device(any_device):
    d = make_teacher_classification(513, 10, n_features=10, seed=0)  # 513 = 8 x 64 + 1
    model = bn_mlp(any_device)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sb = SelectiveBackprop(3.0, 256, prime_examples=513, seed=0)
    loader = ShuffledLoader(d.x_train, d.y_train, 64, seed=0)  # CPU data, moved per batch
    before = model[-1].weight.detach().clone()
    sizes = []
    for epoch in range(2):
        for xb, yb, idx in selective_batches(sb, loader, model, loss_fn):
            assert xb.device.type == yb.device.type == any_device.type
            assert idx.device.type == "cpu"
            opt.zero_grad()
            loss_fn(model(xb), yb).mean().backward()
            opt.step()
            sizes.append((epoch, xb.shape[0]))
    assert [s for e, s in sizes if e == 0] == [64] * 7 + [65]  # priming: the lone one merged
    assert sum(s for e, s in sizes if e == 1) == sb.examples_selected - 513
    assert all(p.device.type == any_device.type for p in model.parameters())
    # (the first Linear's bias gets an exactly zero gradient through BatchNorm on CUDA)
    assert not torch.equal(before, model[-1].weight)
    assert torch.isfinite(torch.cat([p.detach().flatten() for p in model.parameters()])).all()


@pytest.mark.parametrize("method", ["sb", "stale-sb", "kath18"])
def test_one_trainer_epoch_per_device_with_data_kept_on_the_device(method, any_device):
    d = make_teacher_classification(400, 10, n_features=10, seed=1).to(any_device)
    model = bn_mlp(any_device)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    if method == "kath18":  # switched on from the first batch, so the pool path runs
        alg = Kath18ImportanceSampling(32, tau_threshold=1.0, tau_momentum=0.0, seed=0)
    else:
        sel = (SelectiveBackprop(1.0, 128, seed=0) if method == "sb"
               else StaleSB(400, 1.0, 128, seed=0))
        alg = SelectiveBackpropAlgorithm(sel)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn,
                      algorithms=[alg])
    loader = ShuffledLoader(d.x_train, d.y_train, 32, seed=0)
    assert loader.inputs.device.type == any_device.type
    for _ in range(2):
        trainer.fit_epoch(loader)
    assert trainer.counters.examples_seen == 800
    assert 0 < trainer.counters.backprop_examples < 800
    with torch.no_grad():
        model.eval()
        err = (model(d.x_test).argmax(1) != d.y_test).float().mean()
    assert err.device.type == any_device.type


def test_cpu_loader_batches_follow_the_model_and_an_explicit_device(any_device):
    model = bn_mlp(any_device, features=3)
    pipe = SelectionPipeline(SelectiveBackprop(0.0, seed=0), model,
                             nn.CrossEntropyLoss(reduction="none"), batch_size=4)
    out = pipe.push((torch.randn(8, 3), torch.zeros(8, dtype=torch.long), torch.arange(8)))
    assert [b[0].device.type for b in out] == [any_device.type] * 2
    assert all(b[2].device.type == "cpu" for b in out)
    explicit = SelectionPipeline(SelectiveBackprop(0.0, seed=0), nn.Identity(),
                                 lambda o, t: o[:, 0], batch_size=2, device=any_device)
    (xb, _), = explicit.push((torch.randn(2, 3), torch.zeros(2)))
    assert xb.device.type == any_device.type
    assert explicit.device == torch.device(any_device)
