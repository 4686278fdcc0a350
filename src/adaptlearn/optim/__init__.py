"""Optimizers: AdaMod (Ding et al., 2019) as a ``torch.optim.Optimizer`` and a functional update.

``AdaMod`` is a drop-in replacement for ``torch.optim.Adam``; ``adamod`` is the functional core
that it calls (single-tensor, ``torch._foreach_*`` and ``torch.compile``-fused paths).
"""

from adaptlearn.optim.adamod import AdaMod as AdaMod
from adaptlearn.optim.adamod import adamod as adamod

__all__ = ["AdaMod", "adamod"]
