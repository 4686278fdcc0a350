"""Kath18 importance sampling: tau, the switch, pooled sampling, trainer use, state."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from adaptlearn.selection import (
    Kath18ImportanceSampling,
    ShuffledLoader,
    Trainer,
    variance_reduction,
)


class FeatureLoss(nn.Module):
    """Per-example loss = first input feature (times a parameter); counts forwarded rows."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.scale = nn.Parameter(torch.ones(()))
        self.modes: list[bool] = []

    def forward(self, x):
        self.calls += x.shape[0]
        self.modes.append(self.training)
        return x[:, :1] * self.scale


def first(out, _y):
    return out[:, 0]


first.reduction = "none"


def test_variance_reduction_closed_form():
    assert variance_reduction(torch.ones(50)) == pytest.approx(1.0)
    one_hot = torch.zeros(64)
    one_hot[3] = 2.5
    assert variance_reduction(one_hot) == pytest.approx(8.0)
    assert variance_reduction(torch.zeros(10)) == 1.0  # all-zero scores: uniform


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=64))
def test_variance_reduction_matches_kath18_formula(values):
    scores = torch.tensor(values, dtype=torch.float64)
    if float(scores.sum()) <= 0:
        return
    g = scores / scores.sum()
    u = torch.full_like(g, 1.0 / g.numel())
    ratio = float(((g - u) ** 2).sum() / (g * g).sum())
    expected = 1.0 / math.sqrt(max(1.0 - ratio, 1e-300))
    assert variance_reduction(scores) == pytest.approx(expected, rel=1e-6)
    assert 1.0 - 1e-9 <= variance_reduction(scores) <= math.sqrt(g.numel()) + 1e-9


def test_defaults_and_validation():
    alg = Kath18ImportanceSampling(128)
    assert alg.tau_threshold == pytest.approx((4 * 128 + 3 * 128) / (3 * 128))
    assert not alg.sampling
    with pytest.raises(ValueError, match="pool_factor"):
        Kath18ImportanceSampling(pool_factor=0)
    with pytest.raises(ValueError, match="tau_threshold"):
        Kath18ImportanceSampling(tau_threshold=0.5)
    with pytest.raises(ValueError, match="tau_momentum"):
        Kath18ImportanceSampling(tau_momentum=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        Kath18ImportanceSampling(batch_size=0)
    with pytest.raises(ValueError, match="either"):
        Kath18ImportanceSampling(seed=1, generator=torch.Generator())
    assert "pool_factor=4" in repr(alg)


def _batch(losses):
    x = torch.stack([torch.as_tensor(losses, dtype=torch.float32),
                     torch.zeros(len(losses))], dim=1)
    return x, torch.zeros(len(losses), dtype=torch.long), torch.arange(len(losses))


def test_off_passes_batches_through_and_scores_the_training_losses():
    model = FeatureLoss()
    alg = Kath18ImportanceSampling(4, pool_factor=2, tau_momentum=0.5)
    batch = _batch([1.0, 1.0, 1.0, 1.0])
    assert alg.push(batch, model, first) == [batch]
    assert model.calls == 0 and alg.selection_forwards == 0  # no selection forward while off


def test_pools_scores_and_samples_by_loss_once_switched_on():
    model = FeatureLoss()
    alg = Kath18ImportanceSampling(8, pool_factor=3, tau_threshold=1.0, seed=0)
    alg.tau = 5.0  # switched on
    hot = [0.0] * 8
    hot[5] = 1.0
    assert alg.push(_batch([0.0] * 8), model, first) == []
    assert alg.push(_batch([0.0] * 8), model, first) == []
    out = alg.push(_batch(hot), model, first)
    assert len(out) == 1
    x, _, idx = out[0]
    assert x.shape == (8, 2) and idx.shape == (8,)
    assert torch.equal(idx, torch.full((8,), 5))  # all mass on one example: drawn every time
    assert torch.equal(x[:, 0], torch.ones(8))  # rows stay aligned with their losses
    assert model.calls == 24 == alg.selection_forwards
    assert model.modes == [False]  # scored in eval mode
    assert model.training  # and restored
    assert alg.tau == pytest.approx(0.9 * 5.0 + 0.1 * math.sqrt(24.0))


def test_sampling_frequencies_follow_the_losses():
    model = FeatureLoss()
    losses = [1.0, 2.0, 3.0, 4.0] * 25
    alg = Kath18ImportanceSampling(100, pool_factor=1, tau_threshold=1.0, tau_momentum=0.99,
                                   seed=3)
    counts = torch.zeros(4)
    for _ in range(40):
        alg.tau = 10.0
        (_, _, idx), = alg.push(_batch(losses), model, first)
        counts += torch.bincount(idx % 4, minlength=4)
    freq = counts / counts.sum()
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.02)


def test_same_seed_same_draws():
    def run(seed):
        alg = Kath18ImportanceSampling(16, pool_factor=2, tau_threshold=1.0, seed=seed)
        alg.tau = 3.0
        model = FeatureLoss()
        gen = torch.Generator().manual_seed(0)
        out = []
        for _ in range(6):
            out += alg.push(_batch(torch.rand(16, generator=gen).tolist()), model, first)
        return torch.cat([b[2] for b in out])

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_trainer_switches_on_when_losses_concentrate_and_counts_costs():
    # Losses: one example in 32 has loss 1, the rest ~0 -> tau -> sqrt(b/...) >> threshold.
    n = 2048
    x = torch.zeros(n, 2)
    x[::32, 0] = 1.0
    y = torch.zeros(n, dtype=torch.long)
    model = FeatureLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # keep the losses fixed
    alg = Kath18ImportanceSampling(32, pool_factor=4, seed=0)
    trainer = Trainer(model, opt, first, algorithms=[alg])
    trainer.fit_epoch(ShuffledLoader(x, y, 32, seed=0))
    assert alg.sampling and alg.sampled_batches > 0
    c = trainer.counters
    uniform_steps = c.steps - alg.sampled_batches
    # Every uniform batch was trained as drawn; each sampled batch used 4 drawn batches.
    assert c.backprop_examples == 32 * c.steps
    assert c.examples_seen == n
    assert uniform_steps * 32 + alg.selection_forwards + alg._pooled == n
    assert alg.selection_forwards == 4 * 32 * alg.sampled_batches


def test_uniform_losses_keep_it_off():
    n = 1024
    x = torch.ones(n, 2)
    y = torch.zeros(n, dtype=torch.long)
    model = FeatureLoss()
    alg = Kath18ImportanceSampling(32, seed=0)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), first,
                      algorithms=[alg])
    trainer.fit_epoch(ShuffledLoader(x, y, 32, seed=0))
    assert not alg.sampling and alg.sampled_batches == 0 and alg.selection_forwards == 0
    assert alg.tau == pytest.approx(1.0 - 0.9 ** 32)
    assert trainer.counters.backprop_examples == n


def test_state_dict_round_trip_continues_identically(tmp_path):
    def make():
        alg = Kath18ImportanceSampling(8, pool_factor=3, tau_threshold=1.0, seed=4)
        alg.tau = 2.0
        return alg

    gen = torch.Generator().manual_seed(1)
    batches = [_batch(torch.rand(8, generator=gen).tolist()) for _ in range(10)]
    ref = make()
    model = FeatureLoss()
    ref_out = [b for batch in batches for b in ref.push(batch, model, first)]
    a = make()
    first_part = [b for batch in batches[:4] for b in a.push(batch, model, first)]
    path = tmp_path / "k.pt"
    torch.save(a.state_dict(), path)
    b = Kath18ImportanceSampling(8, pool_factor=3, tau_threshold=1.0, seed=99)
    b.load_state_dict(torch.load(path, weights_only=True))
    rest = [out for batch in batches[4:] for out in b.push(batch, model, first)]
    got = first_part + rest
    assert len(got) == len(ref_out)
    for u, v in zip(got, ref_out, strict=True):
        assert torch.equal(u[2], v[2])
    assert b.tau == pytest.approx(ref.tau)


def test_plain_loop_matches_the_trainer():
    n = 1024
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 2)
    x[:, 0] = torch.rand(n, generator=gen) ** 16  # skewed: sqrt(n sum g^2) ~ 3 > 7/3
    y = torch.zeros(n, dtype=torch.long)

    def make():
        torch.manual_seed(0)
        return FeatureLoss(), Kath18ImportanceSampling(32, seed=1)

    model, alg = make()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), first,
                      algorithms=[alg])
    trainer.fit_epoch(ShuffledLoader(x, y, 32, seed=0))
    model2, kath = make()
    opt = torch.optim.SGD(model2.parameters(), lr=0.01)
    for xb, yb, idx in ShuffledLoader(x, y, 32, seed=0):
        for batch in kath.push((xb, yb, idx), model2, first):
            losses = first(model2(batch[0]), batch[1])
            kath.record_train_losses(losses)
            opt.zero_grad()
            losses.mean().backward()
            opt.step()
    assert alg.sampled_batches > 0
    assert kath.tau == pytest.approx(alg.tau)
    assert kath.sampled_batches == alg.sampled_batches
    assert torch.equal(model2.scale.detach(), model.scale.detach())
