"""AdaMod on every device (issue 24): each path against the single-tensor path, state placement.

Uses the ``any_device`` fixture (CPU always; CUDA marked ``gpu`` where available). The model and
flags of the compiled case match ``test_adamod_fused``'s float32 model, so on CPU the compiled
kernel is usually already cached in the process.
"""

from __future__ import annotations

import copy
import importlib

import pytest
import torch
from torch import nn

from adaptlearn.optim import AdaMod

adamod_mod = importlib.import_module("adaptlearn.optim.adamod")


def _model(device, dtype=torch.float32):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).to(device, dtype)


def _train(model, opt, steps, device, dtype=torch.float32):
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 6, generator=gen).to(device, dtype)  # same data on every device
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    return [p.detach().cpu() for p in model.parameters()]


@pytest.mark.parametrize(
    ("path", "dtype", "tol"),
    [
        ({"foreach": True}, torch.float64, {"rtol": 1e-12, "atol": 1e-14}),
        ({"foreach": True}, torch.float32, {"rtol": 1e-5, "atol": 1e-6}),
        ({"foreach": None}, torch.float32, {"rtol": 1e-5, "atol": 1e-6}),  # the default path
        ({"fused": True}, torch.float32, {"rtol": 1e-5, "atol": 1e-6}),
    ],
    ids=["foreach-f64", "foreach-f32", "default-f32", "fused-f32"],
)
def test_every_path_matches_the_single_tensor_path(any_device, path, dtype, tol, monkeypatch):
    import torch._inductor.config

    monkeypatch.setattr(adamod_mod, "_compile_status", {"broken": False})
    # the baseline: single-tensor on the CPU, float64 or float32
    base_model = _model("cpu", dtype)
    want = _train(base_model, AdaMod(base_model.parameters(), lr=3e-3, foreach=False), 30, "cpu",
                  dtype)
    model = _model(any_device, dtype)
    with torch._inductor.config.patch(compile_threads=1):
        got = _train(model, AdaMod(model.parameters(), lr=3e-3, **path), 30, any_device, dtype)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, **tol)
    assert not adamod_mod._compile_status["broken"]


@pytest.mark.parametrize("path", [{"foreach": False}, {"foreach": True}])
def test_state_lives_on_the_parameter_device(any_device, path):
    model = _model(any_device)
    opt = AdaMod(model.parameters(), lr=1e-2, bias_correction="paper", **path)
    _train(model, opt, 3, any_device)
    for p in model.parameters():
        state = opt.state[p]
        for key in ("exp_avg", "exp_avg_sq", "exp_avg_lr"):
            assert state[key].device == p.device and state[key].dtype == p.dtype
        assert state["step"].device.type == "cpu" and float(state["step"]) == 3
    # a state dict saved on this device loads and continues on it
    sd = copy.deepcopy(opt.state_dict())  # state_dict() shares the state tensors
    twin = _model(any_device)
    twin.load_state_dict(model.state_dict())
    twin_opt = AdaMod(twin.parameters(), **path)
    twin_opt.load_state_dict(sd)
    a = _train(model, opt, 2, any_device)
    b = _train(twin, twin_opt, 2, any_device)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
