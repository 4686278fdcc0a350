"""The Triton AdaMod kernel on CUDA against a float64 reference (issue #24).

Both bias-correction forms, coupled and decoupled weight decay, maximize, three dtypes, tensors
of odd sizes and an unaligned view; fresh random state so that every element must be written.
Skipped where CUDA (and hence Triton) is absent; the tests carry ``gpu``.
"""

import math

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _reference(p, g, m, v, s, *, step, lr, b1, b2, b3, eps, wd, decoupled, maximize, form):
    p, g, m, v, s = (t.double().clone() for t in (p, g, m, v, s))
    if maximize:
        g = -g
    if wd and decoupled:
        p = p * (1 - lr * wd)
    elif wd:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    bc1, bc2 = 1 - b1**step, 1 - b2**step
    if form == "reference":
        eta, m_used = lr * math.sqrt(bc2) / bc1 / (v.sqrt() + eps), m
    else:  # Algorithm 1
        eta, m_used = lr / ((v / bc2).sqrt() + eps), m / bc1
    s = b3 * s + (1 - b3) * eta
    return p - torch.minimum(eta, s) * m_used, m, v, s


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("form", ["reference", "paper"])
@pytest.mark.parametrize(
    ("wd", "decoupled", "maximize"), [(0.0, False, False), (0.1, False, True), (0.1, True, False)]
)
def test_kernel_matches_float64_reference(dtype, tol, form, wd, decoupled, maximize):
    from adaptlearn.optim._adamod_triton import adamod_triton_update, triton_adamod_available

    gen = torch.Generator(device="cuda").manual_seed(1)
    shapes = [(3000,), (7, 5), (1,), (2049,), (256, 130)]

    def rand(shape, scale=1.0, positive=False):
        t = (
            torch.rand(shape, generator=gen, device="cuda")
            if positive
            else torch.randn(shape, generator=gen, device="cuda")
        )
        return (scale * t).to(dtype)

    ps = [rand(s) for s in shapes]
    gs = [rand(s) for s in shapes]
    ms = [rand(s, 0.1) for s in shapes]
    vs = [rand(s, positive=True) for s in shapes]
    ss = [rand(s, 1e-3, positive=True) for s in shapes]
    hyper = {"lr": 1e-3, "b1": 0.9, "b2": 0.999, "b3": 0.999, "eps": 1e-8}
    expected = [
        _reference(*t, step=3, wd=wd, decoupled=decoupled, maximize=maximize, form=form, **hyper)
        for t in zip(ps, gs, ms, vs, ss, strict=True)
    ]
    assert triton_adamod_available(ps + gs + ms + vs + ss)
    adamod_triton_update(
        ps, gs, ms, vs, ss, step=3, lr=1e-3, beta1=0.9, beta2=0.999, beta3=0.999, eps=1e-8,
        weight_decay=wd, decoupled_weight_decay=decoupled, maximize=maximize, bias_correction=form,
    )  # fmt: skip
    for got, want in zip(zip(ps, ms, vs, ss, strict=True), expected, strict=True):
        for a, b in zip(got, want, strict=True):
            err = ((a.double() - b).norm() / b.norm()).item()
            assert err < tol


def test_kernel_handles_unaligned_views():
    from adaptlearn.optim._adamod_triton import adamod_triton_update

    base = torch.randn(1001, device="cuda")
    before = base[0].item()
    p = base[1:]  # 4-byte offset: the kernel must not assume 16-byte alignment
    g = torch.randn(1000, device="cuda")
    zeros = [torch.zeros(1000, device="cuda") for _ in range(3)]
    want = _reference(p, g, *zeros, step=1, lr=1e-3, b1=0.9, b2=0.999, b3=0.999, eps=1e-8,
                      wd=0.0, decoupled=False, maximize=False, form="reference")[0]  # fmt: skip
    adamod_triton_update(
        [p], [g], *([z] for z in zeros), step=1, lr=1e-3, beta1=0.9, beta2=0.999, beta3=0.999,
        eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False, maximize=False,
    )  # fmt: skip
    torch.testing.assert_close(p.double(), want, rtol=1e-5, atol=1e-9)
    assert base[0].item() == before  # the element before the view is untouched


def test_unknown_bias_correction_is_refused():
    from adaptlearn.optim._adamod_triton import adamod_triton_update

    t = [torch.zeros(4, device="cuda")]
    with pytest.raises(ValueError, match="bias_correction"):
        adamod_triton_update(t, t, t, t, t, step=1, lr=1e-3, beta1=0.9, beta2=0.999, beta3=0.999,
                             eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False,
                             maximize=False, bias_correction="both")  # fmt: skip


def test_the_default_cuda_step_is_the_triton_kernel_and_matches_the_single_tensor_path():
    import sys

    from adaptlearn.optim import AdaMod

    adamod_module = sys.modules["adaptlearn.optim.adamod"]
    assert (
        adamod_module._select_impl([torch.zeros(1, device="cuda")], foreach=None, fused=None)
        is adamod_module._triton_adamod
    )
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(9, 33), torch.nn.Tanh(), torch.nn.Linear(33, 2))]
    models.append(__import__("copy").deepcopy(models[0]))
    models = [m.cuda() for m in models]
    opts = [AdaMod(models[0].parameters(), lr=1e-2), AdaMod(models[1].parameters(), lr=1e-2,
                                                            foreach=False)]  # fmt: skip
    x, y = torch.randn(64, 9, device="cuda"), torch.randn(64, 2, device="cuda")
    for _ in range(5):
        for model, opt in zip(models, opts, strict=True):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    assert not adamod_module._triton_status["broken"]
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for state in opts[0].state.values():
        assert float(state["step"]) == 5
