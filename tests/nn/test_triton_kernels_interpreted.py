"""The Triton kernels (fused MLSTM steps, AdaMod) against the torch paths under Triton's CPU
interpreter (``TRITON_INTERPRET=1``), so their logic is checked without a GPU.

Runs where Triton is installed (it ships with CUDA builds of torch; the CPU wheel has none, so CI
skips these). Each check runs in a subprocess because the interpreter must be chosen before
Triton is imported. Marked ``slow`` (about a minute under the interpreter).
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs Triton"),
]

MLSTM_CHECK = """
import torch
import adaptlearn.nn.mlstm_fused as fused
from adaptlearn.nn import MLSTM, MLSTMF

torch.manual_seed(0)
worst = 0.0
for steps, batch, hidden, memory in [(37, 5, 6, 20), (16, 3, 4, 7), (1, 2, 3, 5)]:
    for cls in (MLSTMF, MLSTM):
        model = cls(2, hidden, memory_length=memory)
        x = torch.randn(steps, batch, 2)
        results = []
        for on in (False, True):
            fused._STEP_KERNELS_ON_CPU = on
            model.zero_grad()
            xi = x.clone().requires_grad_(True)
            out, state = model(xi)
            loss = out.pow(2).mean() + sum(s.pow(2).sum() for s in state if torch.is_tensor(s))
            loss.backward()
            results.append([out.detach(), xi.grad] + [p.grad for p in model.parameters()])
        for a, b in zip(*results):
            worst = max(worst, ((a - b).abs().max() / (b.abs().max() + 1e-12)).item())
print(worst)
assert worst < 1e-5, worst
"""

ADAMOD_CHECK = """
import sys
import torch
import adaptlearn.optim._adamod_triton as kernel
import adaptlearn.optim.adamod  # noqa: F401
adamod = sys.modules["adaptlearn.optim.adamod"]
kernel.triton_adamod_available = lambda ts: all(
    t.is_contiguous() and t.dtype == torch.float32 for t in ts)
torch.manual_seed(0)
worst = 0.0
for form in ("reference", "paper"):
    for wd, decoupled, maximize in [(0.0, False, False), (0.01, True, False), (0.01, False, True)]:
        ps = [torch.randn(300), torch.randn(7, 5), torch.randn(11, dtype=torch.float64)]
        qs = [p.clone() for p in ps]
        def state(ps):
            zeros = lambda: [torch.zeros_like(p) for p in ps]
            return zeros(), zeros(), zeros(), [torch.tensor(0.0) for _ in ps]
        sp, sq = state(ps), state(qs)
        for _ in range(4):
            gs = [torch.randn_like(p) for p in ps]
            hyper = dict(lr=1e-2, beta1=0.9, beta2=0.999, beta3=0.99, eps=1e-8, weight_decay=wd,
                         decoupled_weight_decay=decoupled, maximize=maximize, bias_correction=form)
            adamod._triton_adamod(ps, gs, *sp, **hyper)
            adamod._single_tensor_adamod(qs, [g.clone() for g in gs], *sq, **hyper)
        worst = max(worst, max((a - b).abs().max().item() for a, b in zip(ps, qs)))
        assert all(float(s) == 4 for s in sp[3])
print(worst)
assert worst < 1e-6, worst
"""


@pytest.mark.parametrize("script", [MLSTM_CHECK, ADAMOD_CHECK], ids=["mlstm-steps", "adamod"])
def test_kernel_matches_torch_path_under_the_interpreter(script):
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
