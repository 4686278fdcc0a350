"""CUDA paths of the fused MLSTM loops: graph capture and the Triton step kernels (issue #24).

On CUDA the loops run through a captured CUDA graph and, for MLSTM-F, Triton step kernels. These
tests compare every output and gradient with the eager torch path on the same device, on shapes
whose length is not a multiple of the block (16 steps), and check that a replayed graph computes
on new inputs (no stale static buffers). Skipped where CUDA is absent (they carry ``gpu``).
"""

import pytest
import torch

import adaptlearn.nn.mlstm_fused as fused
from adaptlearn.nn import MLSTM, MLSTMF

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _grads(model, x):
    model.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)
    out, _ = model(x)
    # weight every output differently so that a wrong time index cannot cancel out
    (out * torch.linspace(0.5, 1.5, out.numel(), device=x.device).view_as(out)).sum().backward()
    return [out.detach(), x.grad] + [p.grad for p in model.parameters()]


@pytest.fixture(autouse=True)
def _graphs_on_afterwards():
    yield
    fused.set_cuda_graphs(True)


@pytest.mark.parametrize("cls", [MLSTMF, MLSTM])
@pytest.mark.parametrize(("steps", "batch", "hidden", "memory"), [(37, 5, 16, 20), (16, 3, 8, 40)])
def test_graphed_loops_equal_eager_loops(cls, steps, batch, hidden, memory):
    torch.manual_seed(0)
    model = cls(3, hidden, memory_length=memory).cuda()
    xs = [torch.randn(steps, batch, 3, device="cuda") for _ in range(2)]
    fused.set_cuda_graphs(False)
    eager = [_grads(model, x) for x in xs]
    fused.set_cuda_graphs(True)
    graphed = [_grads(model, x) for x in xs]  # 1st call captures, 2nd replays on new inputs
    for e, g in zip(eager, graphed, strict=True):
        for a, b in zip(e, g, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    # the two inputs differ, so a replay that ignored its new input would repeat the first
    assert not torch.allclose(graphed[0][0], graphed[1][0])


def test_graph_cache_is_bounded():
    model = MLSTMF(2, 8, memory_length=5).cuda()
    for steps in range(3, 3 + fused._GRAPH_CACHE_SIZE + 3):
        model(torch.randn(steps, 2, 2, device="cuda"))
    assert len(fused._graphs) <= fused._GRAPH_CACHE_SIZE


def test_a_failing_step_kernel_falls_back_to_torch_ops(monkeypatch):
    torch.manual_seed(0)
    model = MLSTMF(3, 8, memory_length=10).cuda()
    x = torch.randn(21, 4, 3, device="cuda")
    fused.set_cuda_graphs(False)
    want = _grads(model, x)

    def broken(*args, **kwargs):
        raise RuntimeError("planted kernel failure")

    monkeypatch.setattr(fused._steps, "fixed_forward_step", broken)
    monkeypatch.setattr(fused, "_step_kernels_ok", True)
    fused.set_cuda_graphs(True)
    with pytest.warns(RuntimeWarning, match="Triton step kernels failed"):
        got = _grads(model, x)
    assert fused._step_kernels_ok is False
    for a, b in zip(want, got, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
