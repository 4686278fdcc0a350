"""Loop adapters: batch release, Stale-SB forward savings and alignment, trainer, data."""

import pytest
import torch
from torch import nn

from adaptlearn.selection import (
    SelectionPipeline,
    SelectiveBackprop,
    SelectiveBackpropAlgorithm,
    ShuffledLoader,
    StaleSB,
    Trainer,
    corrupt_labels,
    load_digit_images,
    make_cluster_classification,
    make_teacher_classification,
    selective_batches,
)


class IndexLoss(nn.Module):
    """Model whose per-example loss is a known function of the input (its first feature)."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        self.calls += x.shape[0]
        return x[:, :1] * self.scale


def pick_first(out, _y):
    return out[:, 0]


pick_first.reduction = "none"


def _data(n=1000, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=gen)
    return x, torch.zeros(n, dtype=torch.long)


def test_released_batches_are_full_and_exactly_the_selected_examples():
    x, y = _data()
    sb = SelectiveBackprop(2.0, 256, seed=0)
    model = IndexLoss()
    loader = ShuffledLoader(x, y, 50, seed=0)
    pipe = SelectionPipeline(sb, model, pick_first, batch_size=64)
    out = list(selective_batches(sb, loader, model, pick_first, pipeline=pipe))
    sizes = [b[0].shape[0] for b in out]
    assert all(s == 64 for s in sizes[:-1]) and 0 < sizes[-1] <= 64
    idx = torch.cat([b[2] for b in out])
    assert idx.unique().numel() == idx.numel() == sb.examples_selected
    assert torch.equal(torch.cat([b[0] for b in out]), x[idx])  # rows stay aligned
    assert model.calls == 1000 == pipe.stats.selection_forwards


def test_loss_without_per_example_reduction_is_rejected():
    model = nn.Linear(2, 3)
    with pytest.raises(ValueError, match="reduction='none'"):
        SelectionPipeline(SelectiveBackprop(), model, nn.CrossEntropyLoss())
    pipe = SelectionPipeline(SelectiveBackprop(), model, lambda o, t: o.sum())
    with pytest.raises(ValueError, match=r"one loss per example, shape \[B\]"):
        pipe.push((torch.rand(4, 2), torch.zeros(4, dtype=torch.long)))


def test_selection_forward_runs_in_eval_mode_and_restores_train_mode():
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4))
    model.train()
    before = model[1].running_mean.clone()
    pipe = SelectionPipeline(SelectiveBackprop(), model, lambda o, t: o.sum(1))
    pipe.push((torch.rand(8, 2) + 5, torch.zeros(8)))
    assert torch.equal(model[1].running_mean, before)  # eval mode: BN stats untouched
    assert model.training and model[1].training


def test_stale_sb_forwards_only_the_refresh_set_with_aligned_losses():
    x, y = _data(600)
    model = IndexLoss()
    st = StaleSB(600, 1.0, 256, staleness=3, seed=0)
    loader = ShuffledLoader(x, y, 64, seed=1)
    pipe = SelectionPipeline(st, model, pick_first)
    for _ in range(6):
        for _ in selective_batches(st, loader, model, pick_first, pipeline=pipe):
            pass
    assert model.calls == 2 * 600  # fresh forwards in epochs 0 and 3 only
    assert torch.allclose(st.loss_cache, x[:, 0])  # every cached loss belongs to its example


def test_trainer_algorithm_equals_plain_loop_adapter():
    d = make_teacher_classification(600, 100, n_features=10, seed=0)

    def make():
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 10))
        return m, torch.optim.SGD(m.parameters(), lr=0.1)

    loss_fn = nn.CrossEntropyLoss(reduction="none")
    m1, o1 = make()
    sb1 = SelectiveBackprop(1.0, 128, prime_examples=100, seed=3)
    loader = ShuffledLoader(d.x_train, d.y_train, 32, seed=0)
    pipe = SelectionPipeline(sb1, m1, loss_fn)
    for _ in range(2):
        for xb, yb, _i in selective_batches(sb1, loader, m1, loss_fn, pipeline=pipe):
            o1.zero_grad()
            loss_fn(m1(xb), yb).mean().backward()
            o1.step()
    m2, o2 = make()
    sb2 = SelectiveBackprop(1.0, 128, prime_examples=100, seed=3)
    trainer = Trainer(m2, o2, loss_fn, algorithms=[SelectiveBackpropAlgorithm(sb2)])
    loader = ShuffledLoader(d.x_train, d.y_train, 32, seed=0)
    for _ in range(2):
        trainer.fit_epoch(loader)
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2)
    assert trainer.counters.backprop_examples == sb1.examples_selected
    assert trainer.counters.examples_seen == 1200


def test_trainer_resumes_bit_identically_from_state_dicts(tmp_path):
    d = make_teacher_classification(400, 100, n_features=10, seed=1)
    loss_fn = nn.CrossEntropyLoss(reduction="none")

    def make():
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 10))
        o = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        alg = SelectiveBackpropAlgorithm(SelectiveBackprop(2.0, 64, seed=1))
        return m, o, alg, Trainer(m, o, loss_fn, algorithms=[alg])

    m, o, alg, tr = make()
    loader = ShuffledLoader(d.x_train, d.y_train, 32, seed=0)
    tr.fit_epoch(loader)
    state = {"m": m.state_dict(), "o": o.state_dict(), "a": alg.state_dict(),
             "g": loader.generator.get_state()}
    torch.save(state, tmp_path / "c.pt")
    tr.fit_epoch(loader)
    m2, o2, alg2, tr2 = make()
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    m2.load_state_dict(state["m"])
    o2.load_state_dict(state["o"])
    alg2.load_state_dict(state["a"])
    loader2 = ShuffledLoader(d.x_train, d.y_train, 32)
    loader2.generator.set_state(state["g"])
    tr2.fit_epoch(loader2)
    for p1, p2 in zip(m.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2)


def test_generators_are_deterministic_and_shaped():
    a = make_teacher_classification(300, 50, seed=3)
    b = make_teacher_classification(300, 50, seed=3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert a.x_train.shape == (300, 32) and a.y_test.shape == (50,)
    c = make_cluster_classification(300, 50, seed=3)
    assert abs(float(c.x_train.mean())) < 1e-5 and c.y_train.max() < 10


def test_digits_have_no_test_leakage_and_nine_copies():
    d = load_digit_images(noise_std=0.0, seed=0)
    assert d.x_train.shape[1:] == (1, 8, 8)
    assert d.x_train.shape[0] + d.x_test.shape[0] == 9 * 1797
    centre = slice(0, d.x_test.shape[0] // 9 * 9)
    train_set = {tuple(v.tolist()) for v in d.x_train.flatten(1)}
    assert not any(tuple(v.tolist()) in train_set for v in d.x_test.flatten(1)[centre][:200])


@pytest.mark.parametrize("fraction", [0.0, 0.2, 1.0])
def test_corrupt_labels_keeps_histogram_and_rate(fraction):
    y = torch.arange(5000) % 10
    noisy, corrupted = corrupt_labels(y, fraction, seed=0)
    assert torch.equal(torch.bincount(noisy), torch.bincount(y))
    assert torch.equal(corrupted, noisy != y)
    assert corrupted.float().mean().item() == pytest.approx(fraction * 0.9, abs=0.02)


def test_trainer_calls_on_step_every_n_examples_outside_timed_region():
    d = make_teacher_classification(400, 10, n_features=4, seed=0)
    m = nn.Linear(4, 10)
    tr = Trainer(m, torch.optim.SGD(m.parameters(), lr=0.1),
                 nn.CrossEntropyLoss(reduction="none"))
    seen = []
    tr.fit_epoch(ShuffledLoader(d.x_train, d.y_train, 32),
                 on_step=lambda t: seen.append(t.counters.examples_seen), callback_every=100)
    assert seen == [128, 224, 320, 400]
    assert tr.counters.steps == 13 and tr.counters.backprop_examples == 400
    with pytest.raises(ValueError, match="callback_every"):
        tr.fit_epoch([], on_step=print, callback_every=0)


def test_single_leftover_example_is_carried_to_the_next_epoch():
    pipe = SelectionPipeline(SelectiveBackprop(0.0, seed=0), nn.Linear(2, 3),
                             nn.CrossEntropyLoss(reduction="none"), batch_size=4)
    x, y = torch.rand(5, 2), torch.zeros(5, dtype=torch.long)
    assert [b[0].shape[0] for b in pipe.push((x, y))] == [4]  # beta=0 selects everything
    assert pipe.flush() == []  # one example left: kept, not released as a batch of one
    out = pipe.push((x[:3], y[:3]))
    assert [b[0].shape[0] for b in out] == [4]
    assert torch.equal(out[0][0][0], x[4])


def test_stale_sb_with_staleness_one_selects_exactly_like_sb():
    # Staleness 1 = a fresh forward for every draw: the partial-forward path must then agree
    # with plain SB's one-forward-per-batch path example for example.
    x, y = _data(700, seed=2)
    released = {}
    for name, sel in (("sb", SelectiveBackprop(2.0, 128, seed=4)),
                      ("stale", StaleSB(700, 2.0, 128, staleness=1, seed=4))):
        model = IndexLoss()
        pipe = SelectionPipeline(sel, model, pick_first, batch_size=32)
        loader = ShuffledLoader(x, y, 50, seed=0)
        released[name] = [b[2] for _ in range(3)
                          for b in selective_batches(sel, loader, model, pick_first,
                                                     pipeline=pipe)]
        assert pipe.stats.selection_forwards == 3 * 700 == model.calls
    assert len(released["sb"]) == len(released["stale"])
    for a, b in zip(released["sb"], released["stale"], strict=True):
        assert torch.equal(a, b)


class ModeRecorder(nn.Module):
    """Linear layer that records whether it ran in training mode."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 10)
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return self.lin(x)


def test_trainer_steps_in_train_mode_even_after_an_eval_callback():
    d = make_teacher_classification(256, 10, n_features=4, seed=0)
    model = ModeRecorder()
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    alg = SelectiveBackpropAlgorithm(SelectiveBackprop(1.0, 64, seed=0))
    tr = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn, algorithms=[alg])
    model.eval()  # the trainer must switch to train mode itself
    for _ in range(2):
        tr.fit_epoch(ShuffledLoader(d.x_train, d.y_train, 32), on_step=lambda t: t.model.eval(),
                     callback_every=64)
    # selection forwards (eval) and training steps (train) alternate; count the train ones
    assert model.modes.count(True) == tr.counters.steps
    assert model.modes.count(False) == alg.pipeline.stats.selection_forwards // 32
