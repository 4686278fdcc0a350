"""The online protocol: predict each document with the model built from the ones before it."""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from adaptlearn.topics.model import as_count_matrix

__all__ = ["OnlineLearner", "online_log_likelihoods"]


class OnlineLearner(Protocol):
    """What the protocol needs: ``score_samples`` and ``partial_fit``."""

    def score_samples(self, X: Any) -> np.ndarray: ...

    def partial_fit(self, X: Any, y: None = None) -> Any: ...


def online_log_likelihoods(
    learner: OnlineLearner, X: sp.csr_matrix, *, first_model: Any = None
) -> tuple[np.ndarray, float]:
    """Log-likelihood of document ``t`` under the model learned from documents ``< t``.

    The first document is scored after the learner has seen it once when it has no model yet
    (the learner needs the vocabulary size); every later document is scored *before* the
    learner sees it.

    Returns:
        ``(loglik (n,), seconds spent in partial_fit)``.
    """
    X = as_count_matrix(X)
    data = X.data.astype(float)
    n = X.shape[0]
    out = np.empty(n)
    fit_s = 0.0
    t0 = time.perf_counter()
    learner.partial_fit(X[0:1])
    fit_s += time.perf_counter() - t0
    out[0] = learner.score_samples(X[0:1])[0]
    fast = hasattr(learner, "_fit_doc") and hasattr(learner, "_score_doc")
    for t in range(1, n):
        if fast:  # validated once above; skip per-document conversion
            lo, hi = X.indptr[t], X.indptr[t + 1]
            idx, c = X.indices[lo:hi], data[lo:hi]
            out[t] = learner._score_doc(idx, c)  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            learner._fit_doc(idx, c)  # type: ignore[attr-defined]
        else:
            doc = X[t : t + 1]
            out[t] = learner.score_samples(doc)[0]
            t0 = time.perf_counter()
            learner.partial_fit(doc)
        fit_s += time.perf_counter() - t0
    return out, fit_s
