"""AdaMod: Adam whose per-element step sizes are capped by their own exponential moving average.

Reference:
    Jianbang Ding, Xuancheng Ren, Ruixuan Luo, Xu Sun. "An Adaptive and Momental Bound Method for
    Stochastic Learning." arXiv:1910.12249 (2019).
    Reference code: lancopku/AdaMod (PyPI ``adamod``).

Three implementations of one update share this module, as in ``torch.optim.adam``:

* ``_single_tensor_adamod``: a Python loop over parameters (used while dynamo traces a step);
* ``_multi_tensor_adamod``: ``torch._foreach_*`` over the tensors of each (device, dtype) group,
  the default (``foreach=None``, ``fused=None``) off CUDA: no compilation, so the first step is
  as quick as any other;
* ``_triton_adamod``: the default on CUDA, one Triton kernel launch per (dtype, step) group of
  tensors (:mod:`adaptlearn.optim._adamod_triton`), 9 memory passes per element and no compile
  step (Triton builds the small kernel once per process and dtype, cached on disk);
* ``_fused_adamod`` (opt-in, ``fused=True``): the same update traced once by ``torch.compile``
  (inductor), which fuses the whole update of a tensor into one kernel: 5 reads and 4 writes per
  element. Every hyperparameter (lr, betas, beta3, eps, weight decay) and the bias corrections
  enter that kernel as one tensor of values, so schedulers (``OneCycleLR`` cycles lr and beta1
  every step) never recompile. Where compiling is impossible it falls back to the uncompiled
  kernel (same results) with one warning.

:func:`_select_impl` is the one place that picks the implementation for a list of parameters; a
device-specific kernel (e.g. a Triton kernel for CUDA) plugs in there.

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

__all__ = ["BIAS_CORRECTIONS", "AdaMod", "adamod"]

_OWNER = "AdaMod"

#: Where the beta1 bias correction goes: ``"reference"`` (the reference code: inside ``eta_t``,
#: so ``s_t`` averages ``eta_t / (1 - beta1^t)``) or ``"paper"`` (Algorithm 1: on ``m_t``).
BIAS_CORRECTIONS = ("reference", "paper")


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
    if group["bias_correction"] not in BIAS_CORRECTIONS:
        raise ValueError(
            f"`bias_correction` of {_OWNER} must be one of {BIAS_CORRECTIONS}; "
            f"got {group['bias_correction']!r}"
        )


class AdaMod(Optimizer):
    r"""AdaMod: Adam with adaptive and momental upper bounds on the per-element step sizes.

    For every element, with gradient :math:`g_t` at step :math:`t`, the default
    ``bias_correction="reference"`` follows the reference code (lancopku/AdaMod)::

        m_t   = beta1 * m_{t-1} + (1 - beta1) * g_t
        v_t   = beta2 * v_{t-1} + (1 - beta2) * g_t**2
        eta_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t) / (sqrt(v_t) + eps)
        s_t   = beta3 * s_{t-1} + (1 - beta3) * eta_t            (s_0 = 0)
        theta_t = theta_{t-1} - min(eta_t, s_t) * m_t

    The beta1 bias correction sits inside ``eta_t``, so ``s_t`` averages
    ``eta_t / (1 - beta1^t)``: early step sizes, inflated by up to ``1/(1 - beta1)``, enter the
    bound's memory, and the automatic warm-up is weaker than in the paper (under a constant
    gradient the step is 1.99x Algorithm 1's at t=5, 2.16x at t=10, 1.26x at t=100 with the
    default betas). ``bias_correction="paper"`` is Algorithm 1 of Ding et al. (2019)::

        m_hat = m_t / (1 - beta1**t),   v_hat = v_t / (1 - beta2**t)
        eta_t = lr / (sqrt(v_hat) + eps)
        s_t   = beta3 * s_{t-1} + (1 - beta3) * eta_t            (s_0 = 0)
        theta_t = theta_{t-1} - min(eta_t, s_t) * m_hat

    (there, as in ``torch.optim.Adam``, ``eps`` is added to the bias-corrected root; the reference
    adds it to the raw :math:`\sqrt{v_t}`). :math:`s_t` is the long-term memory of the step sizes;
    because :math:`s_0 = 0` it starts small and acts as an automatic warm-up of about
    ``1/(1 - beta3)`` steps. With ``beta3=0`` AdaMod is exactly Adam (reference form: with the
    reference's ``eps`` placement; paper form: ``torch.optim.Adam``).

    Weight decay follows the reference code, which decays the weights directly
    (``theta <- theta - lr * weight_decay * theta``, AdamW-style) before the update. With
    ``decoupled_weight_decay=False`` it is an L2 penalty added to the gradient instead
    (``g <- g + weight_decay * theta``), which then also enters the moments.

    Parameters of shape ``(*)`` keep three state tensors of the same shape, dtype and device
    (``exp_avg`` = m, ``exp_avg_sq`` = v, ``exp_avg_lr`` = s; the reference's names, so its state
    dicts load) and a float32 scalar ``step`` on the CPU (as ``torch.optim.Adam`` keeps it when
    not capturable). State is created on the first step.

    Args:
        params: iterable of parameters or of dicts defining parameter groups.
        lr: learning rate :math:`\alpha`. Default: ``1e-3``.
        betas: decay rates of the first and second moment estimates. Default: ``(0.9, 0.999)``.
        beta3: decay rate of the moving average of step sizes (the "momental bound"); ``0``
            turns AdaMod into Adam. Default: ``0.999``.
        eps: added to :math:`\sqrt{v_t}` (reference form: before the bias correction; paper
            form: after it). Default: ``1e-8``.
        weight_decay: weight decay coefficient. Default: ``0``.
        decoupled_weight_decay: decay the weights directly, scaled by ``lr`` (the reference code);
            ``False`` adds an L2 term to the gradient. Default: ``True``.
        bias_correction: ``"reference"`` (the reference code, above) or ``"paper"``
            (Algorithm 1). Default: ``"reference"``.
        foreach: use the ``torch._foreach_*`` multi-tensor path; ``None`` picks it on every
            device (the single-tensor loop only while dynamo traces the step). Default: ``None``.
        maximize: maximize the objective instead of minimizing it. Default: ``False``.
        fused: opt in to a ``torch.compile``-fused step (one kernel per tensor). The first step
            with a new set of parameter shapes compiles (seconds); hyperparameters enter as
            tensors, so LR/momentum schedules do not recompile. If compiling fails the optimizer
            warns once and runs the same kernel uncompiled. ``None``/``False``: never compile.
            Default: ``None``.

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
        bias_correction: str = "reference",
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
            "bias_correction": bias_correction,
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
            group.setdefault("bias_correction", "reference")
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
            elif state["step"].device.type != "cpu":
                # load_state_dict moves `step` to the parameter's device for fused groups (torch's
                # policy); every path here reads it on the host.
                state["step"] = state["step"].to("cpu", torch.float32)
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
                maximize=group["maximize"], bias_correction=group["bias_correction"],
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
    bias_correction: str = "reference",
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
        foreach: use the multi-tensor path (``None``: yes, unless dynamo is tracing).
        fused: use the ``torch.compile``-fused path (opt-in).
        lr: learning rate.
        beta1: first-moment decay.
        beta2: second-moment decay.
        beta3: step-size-average decay.
        eps: added to ``sqrt(v)`` (see ``bias_correction``).
        weight_decay: weight decay coefficient.
        decoupled_weight_decay: decay weights directly (reference) instead of L2 on the gradient.
        maximize: ascend instead of descend.
        bias_correction: ``"reference"`` (reference code) or ``"paper"`` (Algorithm 1).
    """
    if not (len(params) == len(grads) == len(exp_avgs) == len(exp_avg_sqs) == len(exp_avg_lrs)
            == len(state_steps)):
        raise ValueError("`params`, `grads` and the state lists of adamod must have equal lengths")
    if not all(isinstance(t, Tensor) and t.dim() == 0 for t in state_steps):
        raise ValueError("`state_steps` of adamod must be a list of 0-dim tensors")
    if bias_correction not in BIAS_CORRECTIONS:
        raise ValueError(f"`bias_correction` of adamod must be one of {BIAS_CORRECTIONS}; "
                         f"got {bias_correction!r}")
    func = _select_impl(params, foreach=foreach, fused=fused)
    func(
        params, grads, exp_avgs, exp_avg_sqs, exp_avg_lrs, state_steps, lr=lr, beta1=beta1,
        beta2=beta2, beta3=beta3, eps=eps, weight_decay=weight_decay,
        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
        bias_correction=bias_correction,
    )


def _select_impl(
    params: list[Tensor], *, foreach: bool | None, fused: bool | None
) -> Callable[..., None]:
    """The implementation that updates ``params``: the one dispatch point of this module.

    Every implementation takes the arguments of :func:`adamod` after ``state_steps`` as keywords
    (``lr``, ``beta1``, ``beta2``, ``beta3``, ``eps``, ``weight_decay``,
    ``decoupled_weight_decay``, ``maximize``, ``bias_correction``), increments ``state_steps`` and
    updates the tensors in place. A device kernel (e.g. Triton for CUDA tensors) plugs in here,
    typically under ``fused=True`` when ``all(p.is_cuda for p in params)``.

    * ``fused=True``: the ``torch.compile``-fused kernel (opt-in; compiles on first use);
    * neither flag set, all tensors on CUDA, outside dynamo tracing: the Triton kernel;
    * ``foreach=True``, or neither flag set outside dynamo tracing: the multi-tensor path;
    * otherwise (``foreach=False``, or ``None`` while dynamo traces the step): the single-tensor
      loop, which dynamo traces best.
    """
    if fused and foreach:
        raise ValueError("`foreach` and `fused` of adamod cannot both be True")
    if fused:
        return _fused_adamod
    if foreach is None:
        if torch.compiler.is_compiling():
            return _single_tensor_adamod
        if not _triton_status["broken"] and params and all(p.is_cuda for p in params):
            return _triton_adamod
        return _multi_tensor_adamod
    return _multi_tensor_adamod if foreach else _single_tensor_adamod


# --- CUDA: one Triton kernel launch per (dtype, step) group ----------------------------------

_triton_status = {"broken": False}


def _triton_adamod(
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
    bias_correction: str,
) -> None:
    """The default on CUDA: :mod:`adaptlearn.optim._adamod_triton`, one launch per group of
    contiguous float32/float16/bfloat16 tensors that share a dtype and step count (9 memory
    passes per element, like the compiled path, with no compile step). Tensors it cannot take
    (complex, float64, non-contiguous) go through the foreach path; if Triton is missing or its
    kernel fails to build, everything does, with one warning."""
    from adaptlearn.optim import _adamod_triton as kernel

    hyper = {
        "lr": lr, "beta1": beta1, "beta2": beta2, "beta3": beta3, "eps": eps,
        "weight_decay": weight_decay, "decoupled_weight_decay": decoupled_weight_decay,
        "maximize": maximize, "bias_correction": bias_correction,
    }  # fmt: skip
    lists = (params, grads, exp_avgs, exp_avg_sqs, exp_avg_lrs, state_steps)
    groups: dict[tuple[Any, ...], list[int]] = {}
    rest: list[int] = []
    for i, (p, g, m, v, s) in enumerate(zip(*lists[:5], strict=True)):
        if kernel.triton_adamod_available([p, g, m, v, s]) and g.dtype == p.dtype:
            groups.setdefault((p.device, p.dtype, float(state_steps[i]) + 1.0), []).append(i)
        else:
            rest.append(i)
    done: set[int] = set()
    try:
        for (_, _, step), idx in groups.items():
            kernel.adamod_triton_update(
                *([lst[i] for i in idx] for lst in lists[:5]), step=step, **hyper
            )
            for i in idx:
                state_steps[i] += 1
            done.update(idx)
    except Exception as err:  # Triton missing or its kernel did not build: foreach from now on
        _triton_status["broken"] = True
        warnings.warn(
            f"AdaMod's Triton kernel failed ({type(err).__name__}: {err}); using the foreach "
            "path on CUDA from now on (same results, slower).",
            RuntimeWarning,
            stacklevel=4,
        )
        # groups not yet updated (a build or launch error leaves them untouched): foreach below
        rest += [i for idx in groups.values() for i in idx if i not in done]
    if rest:
        _multi_tensor_adamod(*([lst[i] for i in rest] for lst in lists), **hyper)


def _as_real(tensors: list[Tensor]) -> list[Tensor]:
    """Complex tensors as real views of shape ``(*, 2)``; AdaMod then acts on real and imag."""
    return [torch.view_as_real(t) if torch.is_complex(t) else t for t in tensors]


def _bias_scalars(
    lr: float, beta1: float, beta2: float, step: float, bias_correction: str
) -> tuple[float, float, float]:
    """``(numerator, v_scale, m_scale)`` of one tensor's step at ``step`` (computed in float64).

    The step is ``min(eta, s) * m_scale * m`` with ``eta = numerator / (v_scale * sqrt(v) + eps)``:
    reference form ``(lr * sqrt(1 - beta2^t) / (1 - beta1^t), 1, 1)``; Algorithm 1
    ``(lr, 1 / sqrt(1 - beta2^t), 1 / (1 - beta1^t))``.
    """
    bc1 = 1.0 - beta1**step
    bc2 = 1.0 - beta2**step
    if bias_correction == "paper":
        return lr, 1.0 / math.sqrt(bc2), 1.0 / bc1
    return lr * math.sqrt(bc2) / bc1, 1.0, 1.0


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
    bias_correction: str,
) -> None:
    paper = bias_correction == "paper"
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
        numerator, v_scale, m_scale = _bias_scalars(lr, beta1, beta2, step_t.item(),
                                                    bias_correction)
        # eta_t = numerator / (v_scale * sqrt(v_t) + eps), the unbounded Adam step size.
        eta = exp_avg_sq.sqrt()
        if paper:
            eta.mul_(v_scale)
        eta.add_(eps).reciprocal_().mul_(numerator)
        exp_avg_lr.lerp_(eta, 1.0 - beta3)
        torch.minimum(eta, exp_avg_lr, out=eta)
        if paper:
            eta.mul_(m_scale)
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
    bias_correction: str,
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
        scalars = [_bias_scalars(lr, beta1, beta2, s.item(), bias_correction) for s in steps]
        _foreach_update(
            dev_params, dev_grads, dev_m, dev_v, dev_s, scalars,
            beta1=beta1, beta2=beta2, beta3=beta3, eps=eps, paper=bias_correction == "paper",
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
    scalars: list[tuple[float, float, float]],
    *,
    beta1: float,
    beta2: float,
    beta3: float,
    eps: float,
    paper: bool,
) -> None:
    """The moment, bound and parameter updates, op for op as in ``_single_tensor_adamod``."""
    numerators, v_scales, m_scales = (list(col) for col in zip(*scalars, strict=True))
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    _foreach_mul_scalars_(exp_avg_sqs, [beta2] * len(exp_avg_sqs))
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
    eta = torch._foreach_sqrt(exp_avg_sqs)
    if paper:
        _foreach_mul_scalars_(eta, v_scales)
    torch._foreach_add_(eta, eps)
    torch._foreach_reciprocal_(eta)
    _foreach_mul_scalars_(eta, numerators)
    torch._foreach_lerp_(exp_avg_lrs, eta, 1.0 - beta3)
    torch._foreach_minimum_(eta, exp_avg_lrs)
    if paper:
        _foreach_mul_scalars_(eta, m_scales)
    torch._foreach_addcmul_(params, eta, exp_avgs, value=-1.0)


# --- fused (torch.compile) path ---------------------------------------------------------------

#: Layout of the value tensor the fused kernel reads: 7 group values, then 3 per parameter.
_GROUP_SCALARS = 7  # 1-beta1, beta2, 1-beta2, 1-beta3, eps, l2 coefficient, decay factor


def _fused_kernel(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    exp_avg_lrs: list[Tensor],
    scalars: Tensor,
    *,
    maximize: bool,
    l2: bool,
    decay: bool,
    paper: bool,
) -> None:
    """The whole AdaMod update per tensor, every hyperparameter read from ``scalars``.

    ``scalars`` is a 1-D tensor: ``[1-beta1, beta2, 1-beta2, 1-beta3, eps, l2, decay]`` followed
    by ``(numerator, v_scale, m_scale)`` of each parameter (see :func:`_bias_scalars`). Values
    arrive as tensor data, so a scheduler changing lr or betas, or the step count growing, reuses
    the compiled kernel; only the structural flags (keywords) select a different graph.
    """
    one_minus_beta1, beta2, one_minus_beta2, one_minus_beta3 = (
        scalars[0], scalars[1], scalars[2], scalars[3]
    )
    eps, l2_coef, decay_factor = scalars[4], scalars[5], scalars[6]
    for i in range(len(params)):
        p, m, v, s = params[i], exp_avgs[i], exp_avg_sqs[i], exp_avg_lrs[i]
        base = _GROUP_SCALARS + 3 * i
        g = -grads[i] if maximize else grads[i]
        if l2:
            g = g + l2_coef * p
        if decay:
            p.mul_(decay_factor)
        m.add_((g - m) * one_minus_beta1)
        v.mul_(beta2).add_(g * g * one_minus_beta2)
        root = v.sqrt() * scalars[base + 1] if paper else v.sqrt()
        eta = scalars[base] / (root + eps)
        s.add_((eta - s) * one_minus_beta3)
        bounded = torch.minimum(eta, s)
        if paper:
            bounded = bounded * scalars[base + 2]
        p.sub_(bounded * m)


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
    bias_correction: str,
) -> None:
    grouped = Optimizer._group_tensors_by_device_and_dtype(
        [params, grads, exp_avgs, exp_avg_sqs, exp_avg_lrs, state_steps]  # type: ignore[list-item]
    )
    for (dev_params, dev_grads, dev_m, dev_v, dev_s, dev_steps), _ in grouped.values():
        dev_params, dev_grads, dev_m, dev_v, dev_s = (
            _as_real(t) for t in (dev_params, dev_grads, dev_m, dev_v, dev_s)  # type: ignore[arg-type]
        )
        steps: list[Tensor] = dev_steps  # type: ignore[assignment]
        torch._foreach_add_(steps, 1.0)
        decay = decoupled_weight_decay and weight_decay != 0
        l2 = not decoupled_weight_decay and weight_decay != 0
        values = [1.0 - beta1, beta2, 1.0 - beta2, 1.0 - beta3, eps, float(weight_decay),
                  1.0 - lr * weight_decay if decay else 1.0]
        for s in steps:
            values.extend(_bias_scalars(lr, beta1, beta2, s.item(), bias_correction))
        p0 = dev_params[0]
        # Low-precision params compute in float32 (as eager's opmath does for scalars).
        scalar_dtype = p0.dtype if p0.dtype in (torch.float32, torch.float64) else torch.float32
        scalars = torch.tensor(values, dtype=scalar_dtype).to(p0.device, non_blocking=True)
        args = (dev_params, dev_grads, dev_m, dev_v, dev_s, scalars)
        flags = {"maximize": maximize, "l2": l2, "decay": decay,
                 "paper": bias_correction == "paper"}
        if _compile_status["broken"] or not torch._dynamo.is_dynamo_supported():
            _warn_fallback("torch.compile is not supported here")
            _fused_kernel(*args, **flags)
            continue
        try:
            with warnings.catch_warnings():
                # Compiling touches deprecated torch internals (torch.jit.script_method); under
                # `-W error` that DeprecationWarning would abort the compile for no fault of ours.
                warnings.simplefilter("ignore", DeprecationWarning)
                _get_compiled_kernel()(*args, **flags)
        except Exception as err:  # no C compiler, unsupported platform, inductor bug, ...
            # Compiling fails before the kernel touches any tensor, so an eager rerun is exact;
            # a genuine error (e.g. tensors on mixed devices) is raised again by the eager run.
            _compile_status["broken"] = True
            _warn_fallback(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            _fused_kernel(*args, **flags)


_warned = {"fallback": False}


def _warn_fallback(reason: str) -> None:
    if not _warned["fallback"]:
        _warned["fallback"] = True
        warnings.warn(
            f"AdaMod(fused=True) could not compile its fused step ({reason}); using the "
            "uncompiled kernel instead (same results, slower).",
            RuntimeWarning,
            stacklevel=4,
        )
