"""AdaMod as a torch.optim.Optimizer: the paper's math, its fast paths, torch.optim conformance."""

from __future__ import annotations

import copy
import importlib
import io
import math
import warnings

import pytest
import torch
from torch import nn

from adaptlearn.optim import AdaMod, adamod

# The package exports the function `adamod`, which shadows the submodule's attribute name.
adamod_mod = importlib.import_module("adaptlearn.optim.adamod")


def _model(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).to(dtype)


def _batches(n: int, seed: int = 1, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(6, 3, generator=gen, dtype=torch.float64).to(dtype)
    for _ in range(n):
        x = torch.randn(16, 6, generator=gen, dtype=torch.float64).to(dtype)
        yield x, x @ target + 0.1 * torch.randn(16, 3, generator=gen, dtype=torch.float64).to(dtype)


def _train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int = 1,
           dtype: torch.dtype = torch.float32) -> list[float]:
    losses = []
    for x, y in _batches(steps, seed, dtype):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# --- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"lr": -1e-3}, r"`lr` of AdaMod must be a float in \[0, inf\); got -0.001"),
        ({"lr": float("nan")}, r"`lr` of AdaMod"),
        ({"betas": (1.0, 0.999)}, r"`betas\[0\]` of AdaMod must be a float in \[0, 1\); got 1.0"),
        ({"betas": (0.9, -0.1)}, r"`betas\[1\]` of AdaMod"),
        ({"betas": (0.9,)}, r"`betas` of AdaMod must be a pair"),
        ({"beta3": 1.5}, r"`beta3` of AdaMod must be a float in \[0, 1\); got 1.5"),
        ({"beta3": 1.0}, r"`beta3` of AdaMod"),
        ({"eps": -1e-8}, r"`eps` of AdaMod must be a float in \[0, inf\)"),
        ({"weight_decay": -0.1}, r"`weight_decay` of AdaMod"),
        ({"foreach": "yes"}, r"`foreach` of AdaMod must be a bool or None"),
        ({"maximize": None}, r"`maximize` of AdaMod must be a bool"),
        ({"foreach": True, "fused": True}, r"`foreach` and `fused` of AdaMod cannot both"),
        ({"bias_correction": "adam"},
         r"`bias_correction` of AdaMod must be one of \('reference', 'paper'\); got 'adam'"),
    ],
)
def test_invalid_hyperparameters_name_the_argument(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        AdaMod(_model().parameters(), **kwargs)


def test_param_group_hyperparameters_are_validated():
    model = _model()
    with pytest.raises(ValueError, match=r"`beta3` of AdaMod"):
        AdaMod([{"params": model[0].parameters(), "beta3": 2.0},
                {"params": model[2].parameters()}])
    opt = AdaMod(model[0].parameters())
    with pytest.raises(ValueError, match=r"`lr` of AdaMod"):
        opt.add_param_group({"params": model[2].parameters(), "lr": -1.0})


def test_defaults_and_repr_follow_the_reference():
    opt = AdaMod(_model().parameters())
    g = opt.param_groups[0]
    assert (g["lr"], g["betas"], g["beta3"], g["eps"], g["weight_decay"]) == (
        1e-3, (0.9, 0.999), 0.999, 1e-8, 0.0)
    assert g["decoupled_weight_decay"] is True
    text = repr(opt)
    assert text.startswith("AdaMod (") and "beta3: 0.999" in text


def test_sparse_gradients_are_rejected():
    emb = nn.Embedding(10, 4, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        AdaMod(emb.parameters()).step()


# --- the paper's update, independently -------------------------------------------------------

def _paper_adamod(thetas, grad_fn, steps, lr, b1, b2, b3, eps, wd, decoupled=True,
                  form="reference"):
    """AdaMod written from the equations, in float64: the reference code's form (beta1 bias
    correction inside eta) or Algorithm 1 of Ding et al. (2019) (``form="paper"``: bias-corrected
    m_hat and v_hat).

    Returns the final parameters and how often each branch of min(eta, s) was taken.
    """
    thetas = [t.clone() for t in thetas]
    m = [torch.zeros_like(t) for t in thetas]
    v = [torch.zeros_like(t) for t in thetas]
    s = [torch.zeros_like(t) for t in thetas]
    bound_binds = eta_binds = 0
    for t in range(1, steps + 1):
        grads = grad_fn(thetas, t)
        for i, (theta, g) in enumerate(zip(thetas, grads, strict=True)):
            if wd and decoupled:
                theta = theta - lr * wd * theta
            elif wd:
                g = g + wd * theta
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            if form == "paper":
                m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
                eta = lr / (torch.sqrt(v_hat) + eps)
            else:
                m_hat = m[i]
                eta = lr * math.sqrt(1 - b2**t) / (1 - b1**t) / (torch.sqrt(v[i]) + eps)
            s[i] = b3 * s[i] + (1 - b3) * eta
            bound_binds += int((s[i] < eta).sum())
            eta_binds += int((eta < s[i]).sum())
            thetas[i] = theta - torch.minimum(eta, s[i]) * m_hat
    return thetas, bound_binds, eta_binds


def _mlp_problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(5, 8), (8,), (8, 2)]
    theta0 = [0.5 * torch.randn(*s, generator=gen, dtype=torch.float64) for s in shapes]
    data = [(torch.randn(12, 5, generator=gen, dtype=torch.float64),
             torch.randn(12, 2, generator=gen, dtype=torch.float64)) for _ in range(7)]

    def loss_fn(thetas, t):
        x, y = data[t % len(data)]
        w1, b1, w2 = thetas
        return ((torch.tanh(x @ w1 + b1) @ w2 - y) ** 2).mean()

    def grad_fn(thetas, t):
        leaves = [th.detach().requires_grad_() for th in thetas]
        return [g.detach() for g in torch.autograd.grad(loss_fn(leaves, t), leaves)]

    return theta0, loss_fn, grad_fn


@pytest.mark.parametrize(
    ("lr", "beta3", "wd", "decoupled", "foreach", "form"),
    [(1e-2, 0.999, 0.0, True, False, "reference"), (3e-2, 0.9, 0.1, True, True, "reference"),
     (1e-2, 0.99, 0.05, False, False, "reference"), (3e-2, 0.9, 0.1, True, True, "paper"),
     (1e-2, 0.99, 0.05, False, False, "paper")],
)
def test_matches_independent_paper_implementation(lr, beta3, wd, decoupled, foreach, form):
    steps = 250
    theta0, loss_fn, grad_fn = _mlp_problem()
    expected, bound_binds, eta_binds = _paper_adamod(
        theta0, grad_fn, steps, lr, 0.9, 0.999, beta3, 1e-8, wd, decoupled, form)
    # The bound must bind (and, with a short memory, also release), else a wrong min would pass.
    assert bound_binds > 0
    assert eta_binds > 0 or beta3 > 0.99
    params = [nn.Parameter(t.clone()) for t in theta0]
    opt = AdaMod(params, lr=lr, beta3=beta3, weight_decay=wd, decoupled_weight_decay=decoupled,
                 foreach=foreach, bias_correction=form)
    for t in range(1, steps + 1):
        opt.zero_grad()
        loss_fn(params, t).backward()
        opt.step()
    for got, want in zip(params, expected, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-9, atol=1e-11)
    assert all(float(opt.state[p]["step"]) == steps for p in params)


def test_beta3_zero_is_adam_with_reference_eps_placement():
    """beta3=0 gives s_t = eta_t: Adam with eps on the raw sqrt(v) (the reference's placement)."""
    theta0, loss_fn, grad_fn = _mlp_problem(3)
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-3  # a large eps makes the placement matter

    thetas = [t.clone() for t in theta0]
    m = [torch.zeros_like(t) for t in thetas]
    v = [torch.zeros_like(t) for t in thetas]
    for t in range(1, 201):
        for i, g in enumerate(grad_fn(thetas, t)):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            step_size = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
            thetas[i] = thetas[i] - step_size * m[i] / (v[i].sqrt() + eps)

    params = [nn.Parameter(t.clone()) for t in theta0]
    opt = AdaMod(params, lr=lr, betas=(b1, b2), beta3=0.0, eps=eps)
    for t in range(1, 201):
        opt.zero_grad()
        loss_fn(params, t).backward()
        opt.step()
    for got, want in zip(params, thetas, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_beta3_zero_eps_zero_matches_torch_adam_and_adamw(weight_decay):
    """With eps=0 the eps placement is moot, so beta3=0 must reproduce torch's Adam / AdamW."""
    model_a, model_b = _model(0, torch.float64), _model(0, torch.float64)
    ours = AdaMod(model_a.parameters(), lr=1e-2, beta3=0.0, eps=0.0, weight_decay=weight_decay)
    theirs = torch.optim.AdamW(model_b.parameters(), lr=1e-2, eps=0.0, weight_decay=weight_decay)
    _train(model_a, ours, 150, dtype=torch.float64)
    _train(model_b, theirs, 150, dtype=torch.float64)
    for a, b in zip(_params(model_a), _params(model_b), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_positive_beta3_differs_from_adam_and_bounds_the_step():
    model_a, model_b = _model(0, torch.float64), _model(0, torch.float64)
    ours = AdaMod(model_a.parameters(), lr=1e-2, beta3=0.99, eps=0.0)
    adam = torch.optim.Adam(model_b.parameters(), lr=1e-2, eps=0.0)
    start = _params(model_a)
    x, y = next(iter(_batches(1, dtype=torch.float64)))
    for model, opt in ((model_a, ours), (model_b, adam)):
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    # First step: s_1 = (1 - beta3) eta_1 < eta_1, so every element moves by 1% of Adam's step.
    for p0, pa, pb in zip(start, _params(model_a), _params(model_b), strict=True):
        torch.testing.assert_close(pa - p0, 0.01 * (pb - p0), rtol=1e-9, atol=1e-15)
    _train(model_a, ours, 50, dtype=torch.float64)
    _train(model_b, adam, 50, dtype=torch.float64)
    gap = max((a - b).abs().max().item()
              for a, b in zip(_params(model_a), _params(model_b), strict=True))
    assert gap > 1e-3


# --- fast paths -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"weight_decay": 0.1}, {"weight_decay": 0.1, "decoupled_weight_decay": False},
     {"maximize": True}, {"maximize": True, "weight_decay": 0.1, "decoupled_weight_decay": False},
     {"beta3": 0.0}, {"betas": (0.8, 0.99), "weight_decay": 3.0},
     {"bias_correction": "paper", "weight_decay": 0.1}],
)
def test_foreach_equals_single_tensor_bitwise(dtype, kwargs):
    models = [_model(0, dtype), _model(0, dtype)]
    opts = [AdaMod(m.parameters(), lr=3e-3, foreach=f, **kwargs)
            for m, f in zip(models, (False, True), strict=True)]
    sign = -1.0 if kwargs.get("maximize") else 1.0
    for m, opt in zip(models, opts, strict=True):
        for x, y in _batches(25, dtype=dtype):
            opt.zero_grad()
            (sign * nn.functional.mse_loss(m(x), y)).backward()
            opt.step()
    # The same ops in the same order, so equal to the bit (bfloat16 included).
    tol = {"rtol": 0.0, "atol": 0.0}
    for a, b in zip(_params(models[0]), _params(models[1]), strict=True):
        torch.testing.assert_close(a, b, **tol)
    for p0, p1 in zip(models[0].parameters(), models[1].parameters(), strict=True):
        for key in ("exp_avg", "exp_avg_sq", "exp_avg_lr"):
            torch.testing.assert_close(opts[0].state[p0][key], opts[1].state[p1][key], **tol)


def test_foreach_handles_mixed_dtypes_and_groups():
    a32, a64 = torch.randn(4, 3), torch.randn(5, dtype=torch.float64)
    runs = []
    for foreach in (False, True):
        p32, p64 = nn.Parameter(a32.clone()), nn.Parameter(a64.clone())
        opt = AdaMod([{"params": [p32]}, {"params": [p64], "lr": 1e-2, "beta3": 0.9}],
                     foreach=foreach)
        for i in range(20):
            p32.grad = torch.cos(p32.detach() * i)
            p64.grad = torch.sin(p64.detach() * i)
            opt.step()
        runs.append((p32.detach().clone(), p64.detach().clone()))
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("foreach", [False, True])
def test_complex_parameter_is_treated_as_real_pairs(foreach):
    z0 = torch.randn(3, 2, dtype=torch.complex128)
    z = nn.Parameter(z0.clone())
    r = nn.Parameter(torch.view_as_real(z0).clone())
    opt_z, opt_r = AdaMod([z], lr=1e-2, foreach=foreach), AdaMod([r], lr=1e-2, foreach=foreach)
    for _ in range(30):
        opt_z.zero_grad()
        opt_r.zero_grad()
        (z.abs() ** 2).sum().backward()
        (r**2).sum().backward()
        opt_z.step()
        opt_r.step()
    torch.testing.assert_close(torch.view_as_real(z.detach()), r.detach())


def test_functional_api_matches_the_class():
    p = torch.randn(7, dtype=torch.float64)
    state = [torch.zeros_like(p) for _ in range(3)]
    step = [torch.tensor(0.0)]
    q = nn.Parameter(p.clone())
    opt = AdaMod([q], lr=1e-2, beta3=0.9)
    for i in range(10):
        g = torch.sin(p * (i + 1))
        adamod([p], [g.clone()], [state[0]], [state[1]], [state[2]], step, lr=1e-2, beta1=0.9,
               beta2=0.999, beta3=0.9, eps=1e-8, weight_decay=0.0)
        q.grad = g.clone()
        opt.step()
    torch.testing.assert_close(p, q.detach(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="equal lengths"):
        adamod([p], [], [], [], [], [], lr=1e-3, beta1=0.9, beta2=0.999, beta3=0.9, eps=1e-8,
               weight_decay=0.0)


def test_fused_falls_back_with_one_warning_when_compiling_fails(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C compiler")

    monkeypatch.setattr(adamod_mod, "_get_compiled_kernel", lambda: broken)
    monkeypatch.setattr(adamod_mod, "_compile_status", {"broken": False})
    monkeypatch.setattr(adamod_mod, "_warned", {"fallback": False})
    models = [_model(0), _model(0)]
    fused = AdaMod(models[0].parameters(), lr=1e-2, fused=True, weight_decay=0.01)
    plain = AdaMod(models[1].parameters(), lr=1e-2, weight_decay=0.01)
    with pytest.warns(RuntimeWarning, match="could not compile its fused step"):
        _train(models[0], fused, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        _train(models[0], fused, 20, seed=2)
    _train(models[1], plain, 1)
    _train(models[1], plain, 20, seed=2)
    for a, b in zip(_params(models[0]), _params(models[1]), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# --- torch.optim conformance ------------------------------------------------------------------

def test_state_is_lazy_and_step_without_gradients_is_a_no_op():
    model = _model()
    opt = AdaMod(model.parameters())
    before = _params(model)
    opt.step()
    assert len(opt.state) == 0
    for a, b in zip(before, _params(model), strict=True):
        assert torch.equal(a, b)
    _train(model, opt, 1)
    assert set(opt.state[next(model.parameters())]) == {"step", "exp_avg", "exp_avg_sq",
                                                         "exp_avg_lr"}


def test_parameter_without_gradient_is_left_alone():
    model = _model()
    frozen = model[0].weight
    opt = AdaMod(model.parameters(), lr=1e-2, weight_decay=0.5)
    before = frozen.detach().clone()
    for x, y in _batches(5):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        frozen.grad = None
        opt.step()
    assert torch.equal(frozen.detach(), before) and frozen not in opt.state


@pytest.mark.parametrize("foreach", [False, True])
def test_state_dict_round_trip_mid_training_is_identical(foreach):
    model = _model()
    opt = AdaMod(model.parameters(), lr=1e-2, weight_decay=0.01, foreach=foreach)
    _train(model, opt, 25)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    continued = _train(model, opt, 25, seed=7)

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    clone = _model(5)  # different init: everything must come from the checkpoint
    clone.load_state_dict(saved["model"])
    opt2 = AdaMod(clone.parameters(), foreach=foreach)  # defaults overwritten by the state dict
    opt2.load_state_dict(saved["opt"])
    assert opt2.param_groups[0]["lr"] == 1e-2
    resumed = _train(clone, opt2, 25, seed=7)
    assert continued == resumed
    for a, b in zip(_params(model), _params(clone), strict=True):
        assert torch.equal(a, b)


def test_loads_reference_style_state_dict_with_int_step_and_gamma():
    model = _model()
    opt = AdaMod(model.parameters(), lr=1e-2, beta3=0.9)
    _train(model, opt, 5)
    sd = copy.deepcopy(opt.state_dict())
    for st in sd["state"].values():
        st["step"] = int(st["step"])
    group = sd["param_groups"][0]
    group["gamma"] = group.pop("beta3")
    for key in ("decoupled_weight_decay", "foreach", "fused", "maximize"):
        group.pop(key)
    model2 = copy.deepcopy(model)
    opt2 = AdaMod(model2.parameters())
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["beta3"] == 0.9
    assert torch.is_tensor(opt2.state[next(model2.parameters())]["step"])
    assert _train(model, opt, 5, seed=3) == _train(model2, opt2, 5, seed=3)


def test_deepcopy_continues_identically():
    model = _model()
    opt = AdaMod(model.parameters(), lr=1e-2)
    _train(model, opt, 5)
    model2 = copy.deepcopy(model)
    opt2 = AdaMod(model2.parameters(), lr=1e-2)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert _train(model, opt, 10, seed=4) == _train(model2, opt2, 10, seed=4)


def test_closure_is_evaluated_with_grad_and_its_loss_returned():
    model = _model()
    opt = AdaMod(model.parameters(), lr=1e-2)
    x, y = next(iter(_batches(1)))
    calls = []

    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        calls.append(loss.item())
        return loss

    first = opt.step(closure)
    assert calls and first.item() == calls[0]
    for _ in range(30):
        opt.step(closure)
    assert calls[-1] < calls[0]


def test_zero_grad_sets_gradients_to_none():
    model = _model()
    opt = AdaMod(model.parameters())
    _train(model, opt, 1)
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(("foreach", "use_scheduler"), [(False, False), (True, True)])
def test_minimizes_rosenbrock_with_and_without_scheduler(foreach, use_scheduler):
    xy = nn.Parameter(torch.tensor([-1.5, 2.0], dtype=torch.float64))
    opt = AdaMod([xy], lr=0.1, beta3=0.99, foreach=foreach)
    sched = torch.optim.lr_scheduler.StepLR(opt, 300, 0.5) if use_scheduler else None

    def rosen():
        return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2

    start = rosen().item()
    for _ in range(900):
        opt.zero_grad()
        rosen().backward()
        opt.step()
        if sched is not None:
            sched.step()
    assert rosen().item() < 1e-2 * start
    if sched is not None:
        assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 8)


def test_lr_from_the_group_is_read_every_step():
    """A scheduler's new lr must take effect: lr=0 freezes the parameters (no weight decay)."""
    model = _model()
    opt = AdaMod(model.parameters(), lr=1e-2)
    _train(model, opt, 3)
    for group in opt.param_groups:
        group["lr"] = 0.0
    before = _params(model)
    _train(model, opt, 3)
    for a, b in zip(before, _params(model), strict=True):
        assert torch.equal(a, b)


def test_maximize_ascends():
    p = nn.Parameter(torch.tensor([0.3]))
    opt = AdaMod([p], lr=1e-1, beta3=0.9, maximize=True)
    for _ in range(50):
        opt.zero_grad()
        (-(p - 2.0) ** 2).sum().backward()
        opt.step()
    assert abs(p.item() - 2.0) < 0.5


@pytest.mark.parametrize("decoupled", [True, False])
def test_weight_decay_modes(decoupled):
    """Zero gradient: decoupled decay shrinks by (1 - lr*wd) exactly; L2 decay moves via Adam."""
    p0 = torch.tensor([1.0, -2.0, 4.0], dtype=torch.float64)
    p = nn.Parameter(p0.clone())
    opt = AdaMod([p], lr=0.1, weight_decay=0.5, decoupled_weight_decay=decoupled, beta3=0.0)
    p.grad = torch.zeros_like(p)
    opt.step()
    if decoupled:
        torch.testing.assert_close(p.detach(), p0 * (1 - 0.1 * 0.5))
    else:
        # g = wd * p; Adam's first step moves every element by about lr * sign(g).
        torch.testing.assert_close(p.detach(), p0 - 0.1 * torch.sign(p0), rtol=0, atol=1e-6)


def test_grad_scaler_on_cpu_matches_unscaled_and_skips_inf_steps():
    models = [_model(0), _model(0)]
    opts = [AdaMod(m.parameters(), lr=1e-2) for m in models]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    for x, y in _batches(15):
        for i, (m, opt) in enumerate(zip(models, opts, strict=True)):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = nn.functional.mse_loss(m(x).float(), y)
            if i == 0:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
    # Scaling by a power of two and unscaling is exact, so the runs agree to the bit.
    for a, b in zip(_params(models[0]), _params(models[1]), strict=True):
        assert torch.equal(a, b)
    # An overflowing step is skipped: parameters and optimizer state stay put.
    model, opt = models[0], opts[0]
    before = _params(model)
    steps_before = [float(opt.state[p]["step"]) for p in model.parameters()]
    opt.zero_grad()
    x, y = next(iter(_batches(1)))
    scaler.scale(nn.functional.mse_loss(model(x), y) * float("inf")).backward()
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == 2.0**11
    for a, b in zip(before, _params(model), strict=True):
        assert torch.equal(a, b)
    assert [float(opt.state[p]["step"]) for p in model.parameters()] == steps_before


def test_bfloat16_parameters_keep_dtype_and_learn():
    model = _model(0, torch.bfloat16)
    opt = AdaMod(model.parameters(), lr=1e-2, beta3=0.99)
    losses = _train(model, opt, 150, dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert all(opt.state[p]["exp_avg_lr"].dtype == torch.bfloat16 for p in model.parameters())
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])


# While tracing, dynamo touches torch.jit (a DeprecationWarning) and the loss's non-leaf .grad
# (a UserWarning) inside torch itself; pytest's warnings-as-errors would turn these torch-internal
# warnings into tracing failures. Slow: dynamo tracing takes seconds.
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
def test_works_inside_a_torch_compiled_training_step():
    """Dynamo traces the step (graph-breaking at .item()); results equal eager training."""
    import torch._dynamo

    models = [_model(0), _model(0)]
    opts = [AdaMod(m.parameters(), lr=1e-2, foreach=True) for m in models]

    def train_step(model, opt, x, y):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    compiled = torch.compile(train_step, backend="eager")
    try:
        for x, y in _batches(5):
            compiled(models[0], opts[0], x, y)
            train_step(models[1], opts[1], x, y)
    finally:
        torch._dynamo.reset()
    for a, b in zip(_params(models[0]), _params(models[1]), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_default_path_never_compiles_and_takes_the_foreach_path(monkeypatch):
    """Compilation is opt-in: the default first step of a 2**20-parameter model compiles nothing."""
    def no_compile():
        raise AssertionError("the default path must not compile")

    monkeypatch.setattr(adamod_mod, "_get_compiled_kernel", no_compile)
    big = torch.nn.Linear(1024, 1024)  # 1,049,600 elements >= 2**20
    opt = AdaMod(big.parameters())
    big(torch.randn(2, 1024)).sum().backward()
    opt.step()  # would raise through no_compile if the default path compiled
    assert opt.state[big.weight]["step"] == 1
    params = list(big.parameters())
    assert adamod_mod._select_impl(params, foreach=None, fused=None) is (
        adamod_mod._multi_tensor_adamod)
    assert adamod_mod._select_impl(params, foreach=False, fused=None) is (
        adamod_mod._single_tensor_adamod)
    assert adamod_mod._select_impl(params, foreach=None, fused=True) is adamod_mod._fused_adamod
    with pytest.raises(ValueError, match="cannot both be True"):
        adamod_mod._select_impl(params, foreach=True, fused=True)


# --- bias correction: reference code vs Algorithm 1, against closed forms ---------------------

_G = torch.tensor([0.5, -2.0, 3e-3, 40.0], dtype=torch.float64)


def _constant_gradient_run(steps, foreach, **kwargs):
    """Parameters after each of ``steps`` steps under the constant gradient ``_G`` (float64)."""
    p = nn.Parameter(torch.zeros_like(_G))
    opt = AdaMod([p], foreach=foreach, **kwargs)
    path = []
    for _ in range(steps):
        p.grad = _G.clone()
        opt.step()
        path.append(p.detach().clone())
    return path, opt


def _reference_closed_form(t_max, lr, b1, b2, b3, eps):
    """theta_T of the reference form under a constant gradient, from its equations.

    m_t = g (1 - b1^t), v_t = g^2 (1 - b2^t) exactly, so
    eta_t = lr sqrt(1 - b2^t) / (1 - b1^t) / (|g| sqrt(1 - b2^t) + eps) and
    s_t = (1 - b3) sum_k b3^(t-k) eta_k.
    """
    g = _G.abs()
    thetas, theta = [], torch.zeros_like(_G)
    etas = []
    for t in range(1, t_max + 1):
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        etas.append(lr * math.sqrt(bc2) / bc1 / (g * math.sqrt(bc2) + eps))
        s = (1 - b3) * sum(b3 ** (t - k) * etas[k - 1] for k in range(1, t + 1))
        theta = theta - torch.minimum(etas[-1], s) * _G * bc1
        thetas.append(theta)
    return thetas


def _paper_closed_form(t, lr, b3, eps):
    """theta_t of Algorithm 1 under a constant gradient: v_hat = g^2 and m_hat = g, so
    eta = lr / (|g| + eps) is constant, s_t = (1 - b3^t) eta < eta, and
    theta_t = -eta g sum_k (1 - b3^k) = -eta g (t - b3 (1 - b3^t) / (1 - b3))."""
    eta = lr / (_G.abs() + eps)
    return -eta * _G * (t - b3 * (1 - b3**t) / (1 - b3))


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("beta3", [0.9, 0.999])
def test_reference_form_matches_its_closed_form_under_constant_gradient(foreach, beta3):
    lr, eps, steps = 1e-2, 1e-8, 120
    path, _ = _constant_gradient_run(steps, foreach, lr=lr, beta3=beta3, eps=eps)
    want = _reference_closed_form(steps, lr, 0.9, 0.999, beta3, eps)
    for t in (1, 5, 30, steps):
        torch.testing.assert_close(path[t - 1], want[t - 1], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("beta3", [0.9, 0.999])
def test_paper_form_matches_algorithm_1_closed_form(foreach, beta3):
    lr, eps, steps = 1e-2, 1e-8, 120
    path, opt = _constant_gradient_run(steps, foreach, lr=lr, beta3=beta3, eps=eps,
                                       bias_correction="paper")
    for t in (1, 5, 30, steps):
        torch.testing.assert_close(path[t - 1], _paper_closed_form(t, lr, beta3, eps),
                                   rtol=1e-10, atol=1e-14)
    assert opt.param_groups[0]["bias_correction"] == "paper"


def test_reference_step_is_larger_than_algorithm_1_early_as_measured_in_the_issue():
    """Constant gradient, default betas and beta3: reference/paper step ratio 1.99 at t=5, 2.16 at
    t=10, 1.26 at t=100 (issue 20)."""
    ref, _ = _constant_gradient_run(100, True)
    paper, _ = _constant_gradient_run(100, True, bias_correction="paper")
    for t, ratio in ((5, 1.99), (10, 2.16), (100, 1.26)):
        step_ref = ref[t - 1] - ref[t - 2]
        step_paper = paper[t - 1] - paper[t - 2]
        assert torch.allclose(step_ref / step_paper, torch.full_like(_G, ratio), atol=0.006)


def test_paper_form_with_beta3_zero_is_torch_adam():
    models = [_model(0, torch.float64), _model(0, torch.float64)]
    opt_a = AdaMod(models[0].parameters(), lr=1e-2, beta3=0.0, bias_correction="paper")
    opt_b = torch.optim.Adam(models[1].parameters(), lr=1e-2)
    _train(models[0], opt_a, 40, dtype=torch.float64)
    _train(models[1], opt_b, 40, dtype=torch.float64)
    for a, b in zip(_params(models[0]), _params(models[1]), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_state_dict_round_trip_keeps_the_bias_correction():
    model = _model(0, torch.float64)
    opt = AdaMod(model.parameters(), lr=1e-2, bias_correction="paper")
    _train(model, opt, 5, dtype=torch.float64)
    sd = copy.deepcopy(opt.state_dict())
    twin = copy.deepcopy(model)
    restored = AdaMod(twin.parameters())  # default "reference", overwritten by the state dict
    restored.load_state_dict(sd)
    assert restored.param_groups[0]["bias_correction"] == "paper"
    _train(model, opt, 5, seed=3, dtype=torch.float64)
    _train(twin, restored, 5, seed=3, dtype=torch.float64)
    for a, b in zip(_params(model), _params(twin), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    legacy = copy.deepcopy(sd)
    del legacy["param_groups"][0]["bias_correction"]  # a state dict saved before the option
    restored.load_state_dict(legacy)
    assert restored.param_groups[0]["bias_correction"] == "reference"
