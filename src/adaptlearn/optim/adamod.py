"""AdaMod: Adam whose per-element step sizes are capped by their own exponential moving average.

Reference:
    Jianbang Ding, Xuancheng Ren, Ruixuan Luo, Xu Sun. "An Adaptive and Momental Bound Method for
    Stochastic Learning." arXiv:1910.12249 (2019).
    Reference code: lancopku/AdaMod (PyPI ``adamod``).

Three implementations of one update share this module, as in ``torch.optim.adam``:

* ``_single_tensor_adamod``: a Python loop over parameters (torch's default on CPU);
* ``_multi_tensor_adamod``: ``torch._foreach_*`` over the tensors of each (device, dtype) group;
* ``_fused_adamod``: the same loop traced by ``torch.compile`` (inductor), which fuses the whole
  update of a tensor into one kernel: 5 reads and 4 writes per element. It is the default
  (``fused=None``, ``foreach=None``) once the parameters hold at least ``FUSED_AUTO_MIN_NUMEL``
  (2**20) elements, and always with ``fused=True``; smaller models stay eager because the first
  step compiles for seconds. Where compiling is impossible it falls back to the foreach path
  (same results) with one warning.

The single-tensor and foreach paths run the same sequence of elementwise ops, so on CPU they give
bitwise-identical parameters.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, overload

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT

from adaptlearn.core.validation import check_range

__all__ = ["AdaMod", "adamod"]

_OWNER = "AdaMod"


def _check_flag(name: str, value: Any, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, bool):
        kind = "a bool or None" if allow_none else "a bool"
        raise ValueError(f"`{name}` of {_OWNER} must be {kind}; got {value!r}")


def _check_hyperparameters(group: dict[str, Any]) -> None:
    """Validate one parameter group's hyperparameters; raise ValueError naming the argument."""
    lr = group["lr"]
    if isinstance(lr, Tensor):
        raise ValueError(f"`lr` of {_OWNER} must be a float in [0, inf); got a Tensor")
    check_range("lr", lr, 0.0, math.inf, owner=_OWNER)
    betas = group["betas"]
    if not isinstance(betas, Sequence) or isinstance(betas, str) or len(betas) != 2:
        raise ValueError(f"`betas` of {_OWNER} must be a pair of floats in [0, 1); got {betas!r}")
    for i, beta in enumerate(betas):
        check_range(f"betas[{i}]", beta, 0.0, 1.0, high_inclusive=False, owner=_OWNER)
    check_range("beta3", group["beta3"], 0.0, 1.0, high_inclusive=False, owner=_OWNER)
    check_range("eps", group["eps"], 0.0, math.inf, owner=_OWNER)
    check_range("weight_decay", group["weight_decay"], 0.0, math.inf, owner=_OWNER)
    _check_flag("decoupled_weight_decay", group["decoupled_weight_decay"], allow_none=False)
    _check_flag("maximize", group["maximize"], allow_none=False)
    _check_flag("foreach", group["foreach"], allow_none=True)
    _check_flag("fused", group["fused"], allow_none=True)
    if group["foreach"] and group["fused"]:
        raise ValueError(f"`foreach` and `fused` of {_OWNER} cannot both be True")


class AdaMod(Optimizer):
    r"""AdaMod: Adam with adaptive and momental upper bounds on the per-element step sizes.

    For every element, with gradient :math:`g_t` at step :math:`t` (Ding et al., 2019, Alg. 1)::

        m_t   = beta1 * m_{t-1} + (1 - beta1) * g_t
        v_t   = beta2 * v_{t-1} + (1 - beta2) * g_t**2
        eta_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t) / (sqrt(v_t) + eps)
        s_t   = beta3 * s_{t-1} + (1 - beta3) * eta_t            (s_0 = 0)
        theta_t = theta_{t-1} - min(eta_t, s_t) * m_t

    ``eps`` is added to the raw :math:`\sqrt{v_t}` *before* the bias correction, as in the reference
    code (``torch.optim.Adam`` adds it after). :math:`s_t` is the long-term memory of the step
    sizes; because :math:`s_0 = 0` it starts small and acts as an automatic warm-up. With
    ``beta3=0`` AdaMod is exactly Adam with the reference's ``eps`` placement.

    Weight decay follows the reference code, which decays the weights directly
    (``theta <- theta - lr * weight_decay * theta``, AdamW-style) before the update. With
    ``decoupled_weight_decay=False`` it is an L2 penalty added to the gradient instead
    (``g <- g + weight_decay * theta``), which then also enters the moments.

    Parameters of shape ``(*)`` keep three state tensors of the same shape and dtype
    (``exp_avg`` = m, ``exp_avg_sq`` = v, ``exp_avg_lr`` = s; the reference's names, so its state
    dicts load) and a float32 scalar ``step`` on the CPU. State is created on the first step.

    Args:
        params: iterable of parameters or of dicts defining parameter groups.
        lr: learning rate :math:`\alpha`. Default: ``1e-3``.
        betas: decay rates of the first and second moment estimates. Default: ``(0.9, 0.999)``.
        beta3: decay rate of the moving average of step sizes (the "momental bound"); ``0``
            turns AdaMod into Adam. Default: ``0.999``.
        eps: added to :math:`\sqrt{v_t}` before bias correction. Default: ``1e-8``.
        weight_decay: weight decay coefficient. Default: ``0``.
        decoupled_weight_decay: decay the weights directly, scaled by ``lr`` (the reference code);
            ``False`` adds an L2 term to the gradient. Default: ``True``.
        foreach: use the ``torch._foreach_*`` multi-tensor path; ``None`` picks it as
            ``torch.optim`` does (on for CUDA tensors, off on CPU). Default: ``None``.
        maximize: maximize the objective instead of minimizing it. Default: ``False``.
        fused: use a ``torch.compile``-fused step (one kernel per tensor). The first step with a
            new set of parameter shapes compiles for seconds; if compiling fails the optimizer
            warns once and uses the foreach path. ``None`` picks it when neither flag is set
            and the group's parameters hold at least 2**20 elements (``False`` forces the
            eager paths). Default: ``None``.

    Raises:
        ValueError: an invalid hyperparameter, naming the argument, e.g.
            ``"`beta3` of AdaMod must be a float in [0, 1); got 1.5"``.

    Example:
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = AdaMod(model.parameters(), lr=1e-3, beta3=0.999)
        >>> model(torch.randn(8, 4)).pow(2).mean().backward()
        >>> opt.step()

    References:
        Ding, Ren, Luo, Sun. An Adaptive and Momental Bound Method for Stochastic Learning.
        arXiv:1910.12249, 2019. https://arxiv.org/abs/1910.12249
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        beta3: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        decoupled_weight_decay: bool = True,
        foreach: bool | None = None,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults: dict[str, Any] = {
            "lr": lr,
            "betas": betas,
            "beta3": beta3,
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "foreach": foreach,
            "maximize": maximize,
            "fused": fused,
        }
        _check_hyperparameters(defaults)
        defaults["betas"] = (float(betas[0]), float(betas[1]))
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group; its hyperparameters are validated like the constructor's."""
        _check_hyperparameters({**self.defaults, **{k: v for k, v in param_group.items()
                                                     if k != "params"}})
        super().add_param_group(param_group)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore from a pickle or a ``load_state_dict``; accepts the reference's state dicts."""
        super().__setstate__(state)
        for group in self.param_groups:
            if "gamma" in group and "beta3" not in group:  # lancopku/AdaMod's GitHub version
                group["beta3"] = group.pop("gamma")
            group.setdefault("decoupled_weight_decay", True)
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("fused", None)
            for p in group["params"]:
                p_state = self.state.get(p, {})
                if len(p_state) != 0 and not torch.is_tensor(p_state["step"]):
                    # The reference stores an int step; ours is a float32 CPU scalar as in Adam.
                    p_state["step"] = torch.tensor(float(p_state["step"]), dtype=torch.float32)

    def _init_group(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        exp_avgs: list[Tensor],
        exp_avg_sqs: list[Tensor],
        exp_avg_lrs: list[Tensor],
        state_steps: list[Tensor],
    ) -> None:
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(
                    "AdaMod does not support sparse gradients; use dense gradients "
                    "(e.g. nn.Embedding(sparse=False)) or torch.optim.SparseAdam"
                )
            params.append(p)
            grads.append(p.grad)
            state = self.state[p]
            if len(state) == 0:
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_lr"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            exp_avg_lrs.append(state["exp_avg_lr"])
            state_steps.append(state["step"])

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one optimization step.

        Args:
            closure: re-evaluates the model and returns the loss (run with gradients enabled).

        Returns:
            The closure's loss, or ``None`` without a closure.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            exp_avgs: list[Tensor] = []
            exp_avg_sqs: list[Tensor] = []
            exp_avg_lrs: list[Tensor] = []
            state_steps: list[Tensor] = []
            self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, exp_avg_lrs, state_steps)
            if not params:
                continue
            beta1, beta2 = group["betas"]
            adamod(
                params, grads, exp_avgs, exp_avg_sqs, exp_avg_lrs, state_steps,
                foreach=group["foreach"], fused=group["fused"], lr=group["lr"], beta1=beta1,
                beta2=beta2, beta3=group["beta3"], eps=group["eps"],
                weight_decay=group["weight_decay"],
                decoupled_weight_decay=group["decoupled_weight_decay"],
                maximize=group["maximize"],
            )
        return loss


# --- functional API ---------------------------------------------------------------------------


def adamod(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    exp_avg_lrs: list[Tensor],
    state_steps: list[Tensor],
    *,
    foreach: bool | None = None,
    fused: bool | None = None,
    lr: float,
    beta1: float,
    beta2: float,
    beta3: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool = True,
    maximize: bool = False,
) -> None:
    """Functional AdaMod: update ``params`` and the state tensors in place.

    All lists are aligned: ``params[i]``, ``grads[i]``, ``exp_avgs[i]``, ``exp_avg_sqs[i]`` and
    ``exp_avg_lrs[i]`` have the same shape, and ``state_steps[i]`` is a 0-dim float tensor counting
    the steps taken so far (incremented here). See :class:`AdaMod` for the math.

    Args:
        params: parameters to update in place.
        grads: their gradients (dense).
        exp_avgs: first-moment estimates ``m``.
        exp_avg_sqs: second-moment estimates ``v``.
        exp_avg_lrs: moving averages ``s`` of the per-element step sizes.
        state_steps: step counters (0-dim tensors).
        foreach: use the multi-tensor path (``None``: as ``torch.optim`` decides).
        fused: use the ``torch.compile``-fused path.
        lr: learning rate.
        beta1: first-moment decay.
        beta2: second-moment decay.
        beta3: step-size-average decay.
        eps: added to ``sqrt(v)`` before bias correction.
        weight_decay: weight decay coefficient.
        decoupled_weight_decay: decay weights directly (reference) instead of L2 on the gradient.
        maximize: ascend instead of descend.
    """
    if not (len(params) == len(grads) == len(exp_avgs) == len(exp_avg_sqs) == len(exp_avg_lrs)
            == len(state_steps)):
        raise ValueError("`params`, `grads` and the state lists of adamod must have equal lengths")
    if not all(isinstance(t, Tensor) and t.dim() == 0 for t in state_steps):
        raise ValueError("`state_steps` of adamod must be a list of 0-dim tensors")
    if fused and foreach:
        raise ValueError("`foreach` and `fused` of adamod cannot both be True")
    if fused is None and foreach is None:
        fused = _auto_fused(params)
    if fused:
        func: Callable[..., None] = _fused_adamod
    else:
        if foreach is None:
            foreach = (not torch.compiler.is_compiling()) and all(
                p.device.type == "cuda" for p in params
            )
        func = _multi_tensor_adamod if foreach else _single_tensor_adamod
    func(
        params, grads, exp_avgs, exp_avg_sqs, exp_avg_lrs, state_steps, lr=lr, beta1=beta1,
        beta2=beta2, beta3=beta3, eps=eps, weight_decay=weight_decay,
        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
    )


#: ``fused=None`` (the default) compiles the step once the parameters hold at least this many
#: elements: there the step is memory-bound and the fused kernel is ~4-5x faster than the eager
#: loop, which repays the one-off compile (seconds) within a few hundred steps. Small models keep
#: the eager path, so short runs and tests never compile.
FUSED_AUTO_MIN_NUMEL = 1 << 20


def _auto_fused(params: list[Tensor]) -> bool:
    if torch.compiler.is_compiling() or _compile_status["broken"]:
        return False
    if not all(p.device.type in ("cpu", "cuda") for p in params):
        return False
    return sum(p.numel() for p in params) >= FUSED_AUTO_MIN_NUMEL


def _as_real(tensors: list[Tensor]) -> list[Tensor]:
    """Complex tensors as real views of shape ``(*, 2)``; AdaMod then acts on real and imag."""
    return [torch.view_as_real(t) if torch.is_complex(t) else t for t in tensors]


def _step_size(lr: float, beta1: float, beta2: float, step: float) -> float:
    """Bias-corrected step-size numerator ``lr * sqrt(1 - beta2^t) / (1 - beta1^t)``."""
    return lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)


def _single_tensor_adamod(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    exp_avg_lrs: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    beta3: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> None:
    for i, param in enumerate(params):
        grad = -grads[i] if maximize else grads[i]
        exp_avg, exp_avg_sq, exp_avg_lr, step_t = (
            exp_avgs[i], exp_avg_sqs[i], exp_avg_lrs[i], state_steps[i]
        )
        if torch.is_complex(param):
            param, grad, exp_avg, exp_avg_sq, exp_avg_lr = _as_real(
                [param, grad, exp_avg, exp_avg_sq, exp_avg_lr]
            )
        step_t += 1
        if weight_decay != 0:
            if decoupled_weight_decay:
                param.mul_(1.0 - lr * weight_decay)
            else:
                grad = grad.add(param, alpha=weight_decay)
        exp_avg.lerp_(grad, 1.0 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        step_size = _step_size(lr, beta1, beta2, step_t.item())
        # eta_t = step_size / (sqrt(v_t) + eps), the unbounded Adam step size per element.
        eta = exp_avg_sq.sqrt().add_(eps).reciprocal_().mul_(step_size)
        exp_avg_lr.lerp_(eta, 1.0 - beta3)
        torch.minimum(eta, exp_avg_lr, out=eta)
        param.addcmul_(eta, exp_avg, value=-1.0)


def _multi_tensor_adamod(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    exp_avg_lrs: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    beta3: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> None:
    grouped = Optimizer._group_tensors_by_device_and_dtype(
        [params, grads, exp_avgs, exp_avg_sqs, exp_avg_lrs, state_steps]  # type: ignore[list-item]
    )
    for (dev_params, dev_grads, dev_m, dev_v, dev_s, dev_steps), _ in grouped.values():
        dev_params, dev_grads, dev_m, dev_v, dev_s = (
            _as_real(t) for t in (dev_params, dev_grads, dev_m, dev_v, dev_s)  # type: ignore[arg-type]
        )
        steps: list[Tensor] = dev_steps  # type: ignore[assignment]
        grads_owned = False
        if maximize:
            dev_grads = list(torch._foreach_neg(dev_grads))
            grads_owned = True
        torch._foreach_add_(steps, 1.0)
        if weight_decay != 0:
            if decoupled_weight_decay:
                _foreach_mul_scalars_(dev_params, [1.0 - lr * weight_decay] * len(dev_params))
            elif grads_owned:
                torch._foreach_add_(dev_grads, dev_params, alpha=weight_decay)
            else:
                dev_grads = list(torch._foreach_add(dev_grads, dev_params, alpha=weight_decay))
        _foreach_update(
            dev_params, dev_grads, dev_m, dev_v, dev_s,
            [_step_size(lr, beta1, beta2, s.item()) for s in steps],
            beta1=beta1, beta2=beta2, beta3=beta3, eps=eps,
        )


def _foreach_mul_scalars_(tensors: list[Tensor], scalars: list[float]) -> None:
    """``tensors[i] *= scalars[i]`` in place, rounding exactly as the per-tensor ``mul_`` does.

    CPU foreach kernels round the scalar to a low-precision tensor's dtype before multiplying
    (bfloat16 keeps 8 bits: 0.99 becomes 0.98828), while ``Tensor.mul_`` multiplies in float32;
    so low-precision tensors take the per-tensor op.
    """
    if tensors[0].dtype in (torch.float32, torch.float64):
        torch._foreach_mul_(tensors, scalars)
    else:
        for t, c in zip(tensors, scalars, strict=True):
            t.mul_(c)


def _foreach_update(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    exp_avg_lrs: list[Tensor],
    step_sizes: list[float],
    *,
    beta1: float,
    beta2: float,
    beta3: float,
    eps: float,
) -> None:
    """The moment, bound and parameter updates, op for op as in ``_single_tensor_adamod``."""
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    _foreach_mul_scalars_(exp_avg_sqs, [beta2] * len(exp_avg_sqs))
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
    eta = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(eta, eps)
    torch._foreach_reciprocal_(eta)
    _foreach_mul_scalars_(eta, step_sizes)
    torch._foreach_lerp_(exp_avg_lrs, eta, 1.0 - beta3)
    torch._foreach_minimum_(eta, exp_avg_lrs)
    torch._foreach_addcmul_(params, eta, exp_avgs, value=-1.0)


# --- fused (torch.compile) path ---------------------------------------------------------------


def _fused_kernel(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    exp_avg_lrs: list[Tensor],
    scalars: Tensor,
    beta1: float,
    beta2: float,
    beta3: float,
    eps: float,
    l2: float,
    sign: float,
) -> None:
    """Whole AdaMod update per tensor; ``scalars = [decay_factor, step_size_0, step_size_1, ...]``.

    Step sizes and the decay factor arrive as a tensor so a changing ``lr`` or step count does not
    recompile.
    """
    decay = scalars[0]
    for i in range(len(params)):
        p = params[i]
        g = grads[i] * sign
        if l2 != 0.0:
            g = g + l2 * p
        p.mul_(decay)
        exp_avgs[i].lerp_(g, 1.0 - beta1)
        exp_avg_sqs[i].mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        eta = scalars[i + 1] / (exp_avg_sqs[i].sqrt() + eps)
        exp_avg_lrs[i].lerp_(eta, 1.0 - beta3)
        p.sub_(torch.minimum(eta, exp_avg_lrs[i]) * exp_avgs[i])


_compiled_kernel: Callable[..., None] | None = None
_compile_status = {"broken": False}


def _get_compiled_kernel() -> Callable[..., None]:
    global _compiled_kernel
    if _compiled_kernel is None:
        # dynamic=False: one specialised kernel per set of shapes, the fastest code inductor makes.
        _compiled_kernel = torch.compile(_fused_kernel, dynamic=False)
    return _compiled_kernel


def _fused_adamod(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    exp_avg_lrs: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    beta3: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> None:
    kwargs = {"lr": lr, "beta1": beta1, "beta2": beta2, "beta3": beta3, "eps": eps,
              "weight_decay": weight_decay, "decoupled_weight_decay": decoupled_weight_decay,
              "maximize": maximize}
    if _compile_status["broken"] or not torch._dynamo.is_dynamo_supported():
        _warn_fallback("torch.compile is not supported here")
        _multi_tensor_adamod(params, grads, exp_avgs, exp_avg_sqs, exp_avg_lrs, state_steps,
                             **kwargs)
        return
    grouped = Optimizer._group_tensors_by_device_and_dtype(
        [params, grads, exp_avgs, exp_avg_sqs, exp_avg_lrs, state_steps]  # type: ignore[list-item]
    )
    for (dev_params, dev_grads, dev_m, dev_v, dev_s, dev_steps), _ in grouped.values():
        dev_params, dev_grads, dev_m, dev_v, dev_s = (
            _as_real(t) for t in (dev_params, dev_grads, dev_m, dev_v, dev_s)  # type: ignore[arg-type]
        )
        steps: list[Tensor] = dev_steps  # type: ignore[assignment]
        torch._foreach_add_(steps, 1.0)
        decay = 1.0 - lr * weight_decay if decoupled_weight_decay else 1.0
        sizes = [decay] + [_step_size(lr, beta1, beta2, s.item()) for s in steps]
        p0 = dev_params[0]
        # Low-precision params compute in float32 (as eager's opmath does for scalars).
        scalar_dtype = p0.dtype if p0.dtype in (torch.float32, torch.float64) else torch.float32
        scalars = torch.tensor(sizes, dtype=scalar_dtype, device=p0.device)
        l2 = 0.0 if decoupled_weight_decay else float(weight_decay)
        sign = -1.0 if maximize else 1.0
        args = (dev_params, dev_grads, dev_m, dev_v, dev_s, scalars, beta1, beta2, beta3, eps,
                l2, sign)
        try:
            with warnings.catch_warnings():
                # Compiling touches deprecated torch internals (torch.jit.script_method); under
                # `-W error` that DeprecationWarning would abort the compile for no fault of ours.
                warnings.simplefilter("ignore", DeprecationWarning)
                _get_compiled_kernel()(*args)
        except Exception as err:  # no C compiler, unsupported platform, inductor bug, ...
            # Compiling fails before the kernel touches any tensor, so an eager rerun is exact;
            # a genuine error (e.g. tensors on mixed devices) is raised again by the eager run.
            _compile_status["broken"] = True
            _warn_fallback(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            _fused_kernel(*args)


_warned = {"fallback": False}


def _warn_fallback(reason: str) -> None:
    if not _warned["fallback"]:
        _warned["fallback"] = True
        warnings.warn(
            f"AdaMod(fused=True) could not compile its fused step ({reason}); using the "
            "uncompiled path instead (same results, slower).",
            RuntimeWarning,
            stacklevel=4,
        )
