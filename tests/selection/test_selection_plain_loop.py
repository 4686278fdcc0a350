"""The plain-loop adapter: a lone trailing example is merged, `pipeline=` is not mixed (#22)."""

import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from adaptlearn.selection import (
    SelectionPipeline,
    SelectiveBackprop,
    ShuffledLoader,
    selective_batches,
)


def first_feature(out, _y):
    return out[:, 0]


first_feature.reduction = "none"


class FirstFeature(nn.Module):
    """Per-example loss = the example's first feature (selection is then a known function)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x[:, :1] * self.scale


def bn_model(features=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(features, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))


def test_lone_trailing_example_is_merged_and_a_batchnorm_model_trains_on_it():
    # beta = 0 selects everything: 9 examples in batches of 4 leave exactly one at the end.
    x, y = torch.randn(9, 3), torch.randint(0, 4, (9,))
    loader = ShuffledLoader(x, y, 4, seed=0)
    model = bn_model()
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sizes, seen = [], []
    model.train()
    for xb, yb, idx in selective_batches(SelectiveBackprop(0.0, seed=0), loader, model, loss_fn):
        opt.zero_grad()
        loss_fn(model(xb), yb).mean().backward()  # a batch of one would raise here
        opt.step()
        sizes.append(xb.shape[0])
        seen.append(idx)
        assert torch.equal(xb, x[idx])  # rows stay aligned after the merge
    assert sizes == [4, 5]
    assert sorted(torch.cat(seen).tolist()) == list(range(9))


def test_torch_dataloader_batches_work_and_are_merged_too():
    x, y = torch.randn(13, 3), torch.randint(0, 4, (13,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    sizes = [xb.shape[0] for xb, _ in selective_batches(
        SelectiveBackprop(0.0, seed=0), loader, bn_model(), nn.CrossEntropyLoss(reduction="none"))]
    assert sizes == [4, 4, 5]


@given(st.integers(0, 10_000), st.integers(1, 120), st.integers(1, 9), st.integers(2, 12),
       st.sampled_from([0.0, 1.0, 3.0]))
def test_merged_epoch_yields_the_pipeline_examples_in_order_and_never_one_alone(
        seed, n, loader_batch, batch_size, beta):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=gen)
    y = torch.zeros(n, dtype=torch.long)
    model = FirstFeature()

    def loader_and_selector():
        return ShuffledLoader(x, y, loader_batch, seed=seed), SelectiveBackprop(beta, 16,
                                                                                seed=seed)

    loader, sb = loader_and_selector()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        merged = list(selective_batches(sb, loader, model, first_feature, batch_size=batch_size))
    loader, sb = loader_and_selector()
    pipe = SelectionPipeline(sb, model, first_feature, batch_size)
    plain = [out for b in loader for out in pipe.push(b)] + pipe.flush(carry_single=False)

    def ids(batches):
        return torch.cat([b[2] for b in batches]) if batches else torch.empty(0, dtype=torch.long)

    sizes = [int(b[0].shape[0]) for b in merged]
    if ids(plain).numel() == 1:  # the whole epoch selected one example: dropped, with a warning
        assert sizes == [] and len(caught) == 1
        return
    assert not caught
    assert torch.equal(ids(merged), ids(plain))  # same examples, same order: only batching
    assert all(s == batch_size for s in sizes[:-1])
    if sizes:
        assert 2 <= sizes[-1] <= batch_size + 1


def test_an_epoch_that_selects_one_example_drops_it_with_a_warning():
    model = bn_model()
    loader = [(torch.randn(1, 3), torch.zeros(1, dtype=torch.long))]
    with pytest.warns(RuntimeWarning, match="single example.*pipeline="):
        out = list(selective_batches(SelectiveBackprop(0.0, seed=0), loader, model,
                                     nn.CrossEntropyLoss(reduction="none"), batch_size=4))
    assert out == []


def test_a_reused_pipeline_carries_the_lone_example_into_the_next_epoch():
    x, y = torch.randn(9, 3), torch.randint(0, 4, (9,))
    pipe = SelectionPipeline(SelectiveBackprop(0.0, seed=0), bn_model(),
                             nn.CrossEntropyLoss(reduction="none"))
    loader = ShuffledLoader(x, y, 4, seed=0)
    first = [b[0].shape[0] for b in selective_batches(loader=loader, pipeline=pipe)]
    assert first == [4, 4] and pipe.queued == 1
    second = [b[0].shape[0] for b in pipe.epoch(loader)]
    assert second == [4, 4, 2] and pipe.queued == 0  # 1 carried + 9 = 4 + 4 + 2


def test_pipeline_with_arguments_it_would_ignore_is_an_error_naming_them():
    sb, model = SelectiveBackprop(0.0, seed=0), nn.Linear(2, 3)  # beta 0 keeps all
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    pipe = SelectionPipeline(sb, model, loss_fn, batch_size=8)
    loader = [(torch.rand(8, 2), torch.zeros(8, dtype=torch.long))]
    other_loss = nn.CrossEntropyLoss(reduction="none")
    # raised at the call, not at the first iteration
    with pytest.raises(ValueError, match=r"`selector`, `model`, `loss_fn` would be ignored"):
        selective_batches(SelectiveBackprop(seed=1), loader, nn.Linear(2, 3), other_loss,
                          pipeline=pipe)
    with pytest.raises(ValueError, match=r"so `batch_size` would be ignored"):
        selective_batches(loader=loader, batch_size=16, pipeline=pipe)
    with pytest.raises(ValueError, match=r"so `device` would be ignored"):
        selective_batches(loader=loader, device="cpu", pipeline=pipe)
    # the pipeline's own objects are not ignored, so they are accepted
    assert len(list(selective_batches(sb, loader, model, loss_fn, batch_size=8,
                                      pipeline=pipe))) == 1
    with pytest.raises(ValueError, match="`model`, `loss_fn`"):
        selective_batches(sb, loader)
    with pytest.raises(ValueError, match="`loader` is required"):
        selective_batches(pipeline=pipe)
    with pytest.raises(TypeError, match="`selector` must be a SelectiveBackprop"):
        SelectionPipeline(loader, model, loss_fn)
