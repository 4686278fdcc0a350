"""AdaMod(fused=True): the opt-in torch.compile'd step equals the eager paths.

Two tests compile a small model in the default suite (about 5-15 s each on a loaded 2-core
machine); the dtype/flag sweep is ``slow``.
"""

from __future__ import annotations

import copy
import importlib

import pytest
import torch
from torch import nn

from adaptlearn.optim import AdaMod

adamod_mod = importlib.import_module("adaptlearn.optim.adamod")


@pytest.fixture(autouse=True)
def _compiles(monkeypatch):
    """Every test here must run the compiled kernel, not the eager fallback."""
    import torch._inductor.config

    monkeypatch.setattr(adamod_mod, "_compile_status", {"broken": False})
    # One compile thread: no subprocess pool to start (seconds) for kernels this small.
    with torch._inductor.config.patch(compile_threads=1):
        yield
    assert not adamod_mod._compile_status["broken"], "the fused step fell back to eager"


def _model(dtype=torch.float32):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).to(dtype)


def _run(dtype, steps=30, model=None, **kwargs):
    model = model if model is not None else _model(dtype)
    opt = AdaMod(model.parameters(), lr=3e-3, **kwargs)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 6, generator=gen).to(dtype)
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        (-loss if kwargs.get("maximize") else loss).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()], opt


def _unique_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _one_cycle_run(fused: bool, steps: int):
    """A model of shapes used nowhere else, trained under OneCycleLR (cycles lr and beta1)."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 2))
    opt = AdaMod(model.parameters(), lr=1e-2, fused=fused, foreach=None if fused else False)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-2, total_steps=steps,
                                                cycle_momentum=True)
    gen = torch.Generator().manual_seed(4)
    compiles_after_first = None
    betas_seen = set()
    for step in range(steps):
        x = torch.randn(8, 5, generator=gen)
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        sched.step()
        betas_seen.add(opt.param_groups[0]["betas"][0])
        if step == 0:
            compiles_after_first = _unique_graphs()
    return model, opt, compiles_after_first, betas_seen


def test_one_cycle_lr_compiles_once_and_matches_single_tensor():
    """lr and beta1 change every step; they reach the kernel as tensor data, not constants."""
    steps = 25
    before = _unique_graphs()
    fused_model, fused_opt, after_first, betas_seen = _one_cycle_run(True, steps)
    assert after_first - before == 1  # the first step compiled the kernel once ...
    assert _unique_graphs() == after_first  # ... and no later step recompiled
    assert len(betas_seen) >= steps - 1  # the scheduler really did cycle beta1
    eager_model, _, _, _ = _one_cycle_run(False, steps)
    for a, b in zip(fused_model.parameters(), eager_model.parameters(), strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)
    # state_dict round trip onto a fresh fused optimizer: same kernel, continues identically
    sd = copy.deepcopy(fused_opt.state_dict())  # state_dict() shares tensors
    torch.manual_seed(3)
    twin = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 2))
    twin.load_state_dict(fused_model.state_dict())
    twin_opt = AdaMod(twin.parameters(), fused=True)
    twin_opt.load_state_dict(sd)
    for m, o in ((fused_model, fused_opt), (twin, twin_opt)):
        o.zero_grad()
        m(torch.ones(2, 5)).pow(2).mean().backward()
        o.step()
    for a, b in zip(fused_model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)
    assert _unique_graphs() == after_first


def test_fused_paper_form_with_l2_and_maximize_matches_single_tensor_float64():
    kwargs = {"weight_decay": 0.1, "decoupled_weight_decay": False, "maximize": True,
              "bias_correction": "paper", "beta3": 0.9}
    want, _ = _run(torch.float64, foreach=False, **kwargs)
    got, opt = _run(torch.float64, fused=True, **kwargs)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert all(float(opt.state[p]["step"]) == 30 for g in opt.param_groups for p in g["params"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dtype", "kwargs", "tol"),
    [
        (torch.float32, {}, {"rtol": 1e-5, "atol": 1e-6}),
        (torch.float32, {"weight_decay": 0.1}, {"rtol": 1e-5, "atol": 1e-6}),
        (torch.float32, {"bias_correction": "paper", "weight_decay": 0.1},
         {"rtol": 1e-5, "atol": 1e-6}),
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
