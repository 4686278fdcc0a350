"""A forecasting model: any ``nn.LSTM``-convention recurrent layer plus a linear regression head."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from adaptlearn.core import check_choice, check_int
from adaptlearn.nn.recurrent import MLSTM, MLSTMF, MRNN, MRNNF

__all__ = ["RECURRENT_KINDS", "RecurrentRegressor", "make_recurrent"]

RECURRENT_KINDS = ("rnn", "lstm", "mrnnf", "mrnn", "mlstmf", "mlstm")
"""Names accepted by :func:`make_recurrent`: the paper's baselines and its four new layers."""


def make_recurrent(
    kind: str, input_size: int, hidden_size: int, *, memory_length: int | None = None, **kwargs: Any
) -> nn.Module:
    """Build one of ``nn.RNN`` (tanh), ``nn.LSTM``, MRNN-F, MRNN, MLSTM-F or MLSTM by name.

    Args:
        kind: one of :data:`RECURRENT_KINDS`.
        input_size, hidden_size: as in ``nn.LSTM``.
        memory_length: K for the long-memory layers (``None``: 100 for MRNN(F), 25 for
            MLSTM(F), the values of the paper's slides); ignored by ``rnn``/``lstm``.
        **kwargs: forwarded (``batch_first``, ``num_layers``, ``device``, ``dtype``, ...).
    """
    check_choice("kind", kind, RECURRENT_KINDS, owner="make_recurrent")
    if kind == "rnn":
        return nn.RNN(input_size, hidden_size, nonlinearity="tanh", **kwargs)
    if kind == "lstm":
        return nn.LSTM(input_size, hidden_size, **kwargs)
    cls = {"mrnnf": MRNNF, "mrnn": MRNN, "mlstmf": MLSTMF, "mlstm": MLSTM}[kind]
    if memory_length is not None:
        kwargs["memory_length"] = memory_length
    return cls(input_size, hidden_size, **kwargs)


class RecurrentRegressor(nn.Module):
    """Sequence-to-sequence regressor ``y_t = g(W z_t + b)`` on top of a recurrent layer.

    For MRNN/MRNN-F the layer's output is ``[h_t ; m_t]``, so the head is exactly the paper's
    ``z_t = W_zh h_t + W_zm m_t + b_z``; for (M)LSTM it is ``y_t = W_y h_t + b_y``.

    Args:
        kind: recurrent layer, one of :data:`RECURRENT_KINDS`.
        input_size: features of the input series.
        hidden_size: hidden units of the layer.
        output_size: forecast dimension.
        memory_length: K of the long-memory layers (see :func:`make_recurrent`).
        output_activation: ``"identity"`` (default, for standardised targets) or ``"tanh"`` (the
            reference code's MRNN-F head, suited only to targets scaled into [-1, 1]).
        **kwargs: forwarded to the layer (``device``, ``dtype``, ``memory_impl``, ...). The layer
            is always ``batch_first``.

    Shapes: input ``(B, T, F)`` (or unbatched ``(T, F)``); output ``(B, T, output_size)``.

    References:
        Zhao et al., "Do RNN and LSTM have Long Memory?", ICML 2020.
    """

    def __init__(
        self,
        kind: str,
        input_size: int = 1,
        hidden_size: int = 16,
        output_size: int = 1,
        *,
        memory_length: int | None = None,
        output_activation: str = "identity",
        **kwargs: Any,
    ) -> None:
        super().__init__()
        check_int("output_size", output_size, 1, owner="RecurrentRegressor")
        check_choice(
            "output_activation", output_activation, ("identity", "tanh"), owner="RecurrentRegressor"
        )
        self.kind = kind
        self.output_activation = output_activation
        self.rnn = make_recurrent(
            kind, input_size, hidden_size, memory_length=memory_length, batch_first=True, **kwargs
        )
        features = 2 * hidden_size if kind in ("mrnn", "mrnnf") else hidden_size
        factory = {k: kwargs[k] for k in ("device", "dtype") if k in kwargs}
        self.head = nn.Linear(features, output_size, **factory)

    def forward(self, input: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Return ``(predictions, final_state)``; ``state`` as in the wrapped layer."""
        out, state = self.rnn(input, state)
        y = self.head(out)
        if self.output_activation == "tanh":
            y = torch.tanh(y)
        return y, state

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, output_activation={self.output_activation!r}"
