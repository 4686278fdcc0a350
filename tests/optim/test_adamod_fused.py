"""AdaMod(fused=True): the torch.compile'd step equals the eager paths (slow: it compiles)."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from adaptlearn.optim import AdaMod

pytestmark = pytest.mark.slow
adamod_mod = importlib.import_module("adaptlearn.optim.adamod")


@pytest.fixture(autouse=True)
def _compiles():
    """Every test here must run the compiled kernel, not the eager fallback."""
    adamod_mod._compile_status["broken"] = False
    yield
    assert not adamod_mod._compile_status["broken"], "the fused step fell back to eager"


def _run(dtype, steps=30, **kwargs):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).to(dtype)
    opt = AdaMod(model.parameters(), lr=3e-3, **kwargs)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 6, generator=gen).to(dtype)
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        (-loss if kwargs.get("maximize") else loss).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()], opt


@pytest.mark.parametrize(
    ("dtype", "kwargs", "tol"),
    [
        (torch.float32, {}, {"rtol": 1e-5, "atol": 1e-6}),
        (torch.float64, {"weight_decay": 0.1, "decoupled_weight_decay": False, "maximize": True},
         {"rtol": 1e-10, "atol": 1e-12}),
        (torch.float32, {"weight_decay": 0.1}, {"rtol": 1e-5, "atol": 1e-6}),
        # bfloat16: inductor keeps float32 intermediates, eager rounds after every op.
        (torch.bfloat16, {}, {"rtol": 5e-2, "atol": 1e-2}),
    ],
)
def test_fused_matches_single_tensor(dtype, kwargs, tol):
    want, _ = _run(dtype, foreach=False, **kwargs)
    got, opt = _run(dtype, fused=True, **kwargs)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == dtype
        torch.testing.assert_close(a, b, **tol)
    assert all(float(opt.state[p]["step"]) == 30 for g in opt.param_groups for p in g["params"])


def test_fused_state_dict_round_trip_and_lr_change_without_recompiling_errors():
    _, opt = _run(torch.float32, steps=5, fused=True)
    sd = opt.state_dict()
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    opt2 = AdaMod(model.parameters(), fused=True)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["fused"] is True
    for group in opt2.param_groups:
        group["lr"] = 1e-4  # a scheduler's change reaches the compiled kernel as a tensor
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(4, 6)).pow(2).mean().backward()
    opt2.step()
    moved = max((a - p.detach()).abs().max().item()
                for a, p in zip(before, model.parameters(), strict=True))
    assert 0 < moved < 1e-3
