"""AdaMod's update as one Triton kernel launch per (dtype, step) group of CUDA tensors.

Why a kernel of our own: AdaMod reads ``p, g, m, v, s`` and writes ``p, m, v, s`` per element, 9
memory passes against fused Adam's 7, so a bandwidth-bound kernel can run at about 9/7 = 1.29x
``torch.optim.Adam(fused=True)``. The ``torch._foreach_*`` path makes about 12 passes with its
temporaries and one launch per op and tensor list; ``torch.compile`` reaches the bound but costs
seconds to minutes on the first step. Triton compiles this small kernel once per dtype and
process (a fraction of a second, cached on disk afterwards).

Layout: a multi-tensor launch in the style of ``multi_tensor_apply``. Every program updates one
block of ``BLOCK`` elements of one tensor; two small int tables (block -> tensor index, block ->
block index inside the tensor) and one table of the five base addresses per tensor (read with
an int-to-pointer cast) let a single launch cover tensors of any number and size. The address
table is rebuilt only when an address changes (new gradients after ``zero_grad(set_to_none=True)``
do that: a 5 x n int64 copy to the device per step, a few microseconds).

The arithmetic is the reference form of :func:`adaptlearn.optim.adamod.adamod` written with
three group scalars so that both bias-correction forms share one kernel::

    m <- beta1 m + (1 - beta1) g
    v <- beta2 v + (1 - beta2) g^2
    eta <- A / (sqrt(v) + E)
    s <- beta3 s + (1 - beta3) eta
    p <- p - min(eta, s) * M * m

reference code: ``A = lr sqrt(1 - beta2^t) / (1 - beta1^t)``, ``E = eps``, ``M = 1``;
Algorithm 1 of the paper: ``A = lr sqrt(1 - beta2^t)``, ``E = eps sqrt(1 - beta2^t)``,
``M = 1 / (1 - beta1^t)``. State and parameters keep their dtype; arithmetic is float32.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

try:  # Triton ships with CUDA builds of torch; the CPU wheel has none.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised on machines without Triton
    triton = None
    tl = None

__all__ = ["adamod_triton_update", "triton_adamod_available"]

#: Elements per program. 2048 float32 at 8 warps: each thread issues two 16-byte loads per
#: tensor, five tensors in flight, which keeps HBM busy on Hopper without spilling registers.
BLOCK = 2048
NUM_WARPS = 8
_TORCH_TO_TL = {}


def triton_adamod_available(tensors: Sequence[Tensor]) -> bool:
    """Whether the Triton kernel can update ``tensors``: Triton importable, all CUDA, contiguous,
    float32/float16/bfloat16, not complex."""
    if triton is None or not tensors:
        return False
    dtypes = (torch.float32, torch.float16, torch.bfloat16)
    return all(t.is_cuda and t.is_contiguous() and t.dtype in dtypes for t in tensors)


if triton is not None:
    _TORCH_TO_TL.update(
        {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}
    )

    @triton.jit
    def _adamod_kernel(
        addresses,  # int64 [5, n_tensors]: p, g, m, v, s base addresses
        block_tensor,  # int32 [n_blocks]: which tensor a program updates
        block_index,  # int32 [n_blocks]: which block of that tensor
        numels,  # int64 [n_tensors]
        n_tensors,
        step_numerator,  # A
        eps_eff,  # E
        m_scale,  # M
        beta1,
        beta2,
        beta3,
        weight_decay,  # coupled (L2) weight decay, added to the gradient
        decay_factor,  # decoupled weight decay, p <- p * decay_factor
        DTYPE: tl.constexpr,
        BLOCK: tl.constexpr,
        MAXIMIZE: tl.constexpr,
        ALIGNED: tl.constexpr,
    ):
        pid = tl.program_id(0)
        t = tl.load(block_tensor + pid)
        b = tl.load(block_index + pid).to(tl.int64)
        n = tl.load(numels + t)
        p_base = tl.load(addresses + t).to(tl.pointer_type(DTYPE))
        g_base = tl.load(addresses + n_tensors + t).to(tl.pointer_type(DTYPE))
        m_base = tl.load(addresses + 2 * n_tensors + t).to(tl.pointer_type(DTYPE))
        v_base = tl.load(addresses + 3 * n_tensors + t).to(tl.pointer_type(DTYPE))
        s_base = tl.load(addresses + 4 * n_tensors + t).to(tl.pointer_type(DTYPE))
        if ALIGNED:
            p_base = tl.multiple_of(p_base, 16)
            g_base = tl.multiple_of(g_base, 16)
            m_base = tl.multiple_of(m_base, 16)
            v_base = tl.multiple_of(v_base, 16)
            s_base = tl.multiple_of(s_base, 16)
        offs = b * BLOCK + tl.arange(0, BLOCK)
        offs = tl.max_contiguous(tl.multiple_of(offs, BLOCK), BLOCK)
        mask = offs < n
        p = tl.load(p_base + offs, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_base + offs, mask=mask, other=0.0).to(tl.float32)
        m = tl.load(m_base + offs, mask=mask, other=0.0).to(tl.float32)
        v = tl.load(v_base + offs, mask=mask, other=0.0).to(tl.float32)
        s = tl.load(s_base + offs, mask=mask, other=0.0).to(tl.float32)
        if MAXIMIZE:
            g = -g
        p = p * decay_factor
        g = g + weight_decay * p
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * g * g
        eta = step_numerator / (tl.sqrt(v) + eps_eff)
        s = beta3 * s + (1.0 - beta3) * eta
        p = p - tl.minimum(eta, s) * m_scale * m
        tl.store(p_base + offs, p.to(DTYPE), mask=mask)
        tl.store(m_base + offs, m.to(DTYPE), mask=mask)
        tl.store(v_base + offs, v.to(DTYPE), mask=mask)
        tl.store(s_base + offs, s.to(DTYPE), mask=mask)


@functools.lru_cache(maxsize=64)
def _block_tables(numels: tuple[int, ...], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Block -> tensor and block -> block-in-tensor tables for one list of tensor sizes."""
    blocks = [max(1, math.ceil(n / BLOCK)) for n in numels]
    tensor_of_block = torch.repeat_interleave(
        torch.arange(len(numels), dtype=torch.int32), torch.tensor(blocks)
    )
    index_in_tensor = torch.cat([torch.arange(b, dtype=torch.int32) for b in blocks])
    numel_t = torch.tensor(numels, dtype=torch.int64)
    return (
        tensor_of_block.to(device),
        index_in_tensor.to(device),
        numel_t.to(device),
    )


class _AddressTable:
    """The 5 x n base-address table of one tensor group, re-uploaded only when it changes."""

    def __init__(self) -> None:
        self._key: tuple[int, ...] | None = None
        self._table: Tensor | None = None

    def get(self, lists: Sequence[Sequence[Tensor]], device: torch.device) -> Tensor:
        key = tuple(t.data_ptr() for ts in lists for t in ts)
        if key != self._key or self._table is None:
            host = torch.tensor(key, dtype=torch.int64).view(len(lists), -1)
            self._table = host.to(device)
            self._key = key
        return self._table


_TABLES: dict[tuple[int, ...], _AddressTable] = {}


def adamod_triton_update(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    exp_avg_lrs: list[Tensor],
    *,
    step: float,
    lr: float,
    beta1: float,
    beta2: float,
    beta3: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
    bias_correction: str = "reference",
) -> None:
    """Apply one AdaMod update (after the step count became ``step``) to tensors of one dtype.

    All tensors must pass :func:`triton_adamod_available` and share one dtype and device; the
    caller groups them and increments the step counters. ``bias_correction`` is ``"reference"``
    (the authors' code: ``beta1``'s correction inside the step size that ``s`` averages) or
    ``"paper"`` (Algorithm 1: ``m`` and ``v`` corrected before use).
    """
    if not params:
        return
    if triton is None:
        raise RuntimeError("adamod_triton_update needs Triton (shipped with CUDA builds of torch)")
    dtype = params[0].dtype
    device = params[0].device
    bc1 = 1.0 - beta1**step
    bc2 = 1.0 - beta2**step
    if bias_correction == "reference":
        step_numerator, eps_eff, m_scale = lr * math.sqrt(bc2) / bc1, eps, 1.0
    elif bias_correction == "paper":
        step_numerator, eps_eff, m_scale = lr * math.sqrt(bc2), eps * math.sqrt(bc2), 1.0 / bc1
    else:
        raise ValueError(
            f"bias_correction must be 'reference' or 'paper', got {bias_correction!r}"
        )
    if decoupled_weight_decay:
        coupled, decay_factor = 0.0, 1.0 - lr * weight_decay
    else:
        coupled, decay_factor = weight_decay, 1.0
    lists = (params, grads, exp_avgs, exp_avg_sqs, exp_avg_lrs)
    numels = tuple(p.numel() for p in params)
    block_tensor, block_index, numel_t = _block_tables(numels, device)
    # One address table per parameter list (keyed by the parameters' addresses), so that two
    # optimizers or param groups do not evict each other's tables every step.
    table_key = tuple(p.data_ptr() for p in params)
    table = _TABLES.get(table_key)
    if table is None:
        if len(_TABLES) > 256:
            _TABLES.clear()
        table = _TABLES[table_key] = _AddressTable()
    addresses = table.get(lists, device)
    aligned = all(t.data_ptr() % 16 == 0 for ts in lists for t in ts)
    grid = (block_tensor.numel(),)
    # (A CPU device only under TRITON_INTERPRET=1, which the tests use where no GPU exists.)
    guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with guard:
        _adamod_kernel[grid](
            addresses,
            block_tensor,
            block_index,
            numel_t,
            len(params),
            step_numerator,
            eps_eff,
            m_scale,
            beta1,
            beta2,
            beta3,
            coupled,
            decay_factor,
            DTYPE=_TORCH_TO_TL[dtype],
            BLOCK=BLOCK,
            MAXIMIZE=bool(maximize),
            ALIGNED=aligned,
            num_warps=NUM_WARPS,
        )
