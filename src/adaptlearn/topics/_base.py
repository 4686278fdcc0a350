"""What the online topic models share as scikit-learn estimators: count validation, posteriors,
log-likelihood scores and tags.

A subclass keeps its model as ``_theta`` (``(V, K)``, columns are the topics' word
distributions, the layout that makes a document's words a row slice), exposes it as
``components_ = _theta.T`` (``(K, V)``, scikit-learn's layout) and ``weights_`` (``(K,)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

__all__ = ["TopicModelMixin"]


class TopicModelMixin(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """scikit-learn plumbing of a single-topic model (mixture of multinomials).

    Input is a count matrix ``(n_docs, n_features)``: dense or sparse, non-negative integer
    values (``CountVectorizer`` output; lists of word ids go through
    :func:`adaptlearn.topics.as_count_matrix` first). Empty documents are allowed: they add
    nothing to any statistic and their posterior is the topic prior.
    """

    _theta: np.ndarray
    weights_: np.ndarray

    # ------------------------------------------------------------------ validation
    def _check_counts(self, X: Any, *, reset: bool) -> sp.csr_matrix:
        """Validate ``X`` as word counts; returns CSR ``float64``. ``reset``: a new fit."""
        X = validate_data(
            self,
            X,
            accept_sparse="csr",
            reset=reset,
            dtype=(np.float64, np.float32, np.int64, np.int32),
        )
        X = sp.csr_matrix(X, dtype=np.float64)
        check_non_negative(X, type(self).__name__)
        if X.data.size and not np.all(np.equal(np.mod(X.data, 1.0), 0.0)):
            bad = X.data[np.mod(X.data, 1.0) != 0][0]
            raise ValueError(
                f"X must hold word counts (non-negative integers); got {bad!r}. Use "
                "CountVectorizer, or adaptlearn.topics.as_count_matrix for lists of word ids"
            )
        return X

    def _check_n_components(self, n_features: int) -> None:
        if self.n_components > n_features:  # type: ignore[attr-defined]
            raise ValueError(
                f"`n_components` of {type(self).__name__} ({self.n_components}) must be <= the "  # type: ignore[attr-defined]
                f"number of words; X has {n_features} feature(s)"
            )

    # ------------------------------------------------------------------ model
    def _publish(self, theta: np.ndarray, weights: np.ndarray) -> None:
        """Make ``(theta (V, K), weights (K,))`` the model: ``components_`` and ``weights_``.

        The logs are computed on first use and kept in a holder created here, so prediction
        fills the holder but never rebinds an attribute of the estimator."""
        self._theta = theta
        self.components_ = theta.T
        self.weights_ = weights
        self._log_cache: list[tuple[np.ndarray, np.ndarray] | None] = [None]

    def _log_model(self) -> tuple[np.ndarray, np.ndarray]:
        """``(log theta (V, K), log weights (K,))`` of the current model."""
        if self._log_cache[0] is None:
            with np.errstate(divide="ignore"):
                self._log_cache[0] = (np.log(self._theta), np.log(self.weights_))
        return self._log_cache[0]

    def _joint_log_likelihood(self, X: sp.csr_matrix) -> np.ndarray:
        """``log p_k + sum_v c_v log theta_{v,k}`` per document and topic, ``(n, K)``."""
        log_theta, log_p = self._log_model()
        return np.asarray(X @ log_theta) + log_p[None, :]

    def transform(self, X: Any) -> np.ndarray:
        """Posterior topic probabilities of each document, ``(n_docs, n_components)``.

        Rows sum to 1: ``P(z = k | c) proportional to p_k prod_v theta_{v,k}^{c_v}``.
        """
        check_is_fitted(self)
        scores = self._joint_log_likelihood(self._check_counts(X, reset=False))
        return np.exp(scores - logsumexp(scores, axis=1, keepdims=True))

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each document's ordered words under the current model, ``(n,)``.

        ``log P(c) = logsumexp_k [log p_k + sum_v c_v log theta_{v,k}]`` (the multinomial
        coefficient is dropped; it cancels in every comparison of models).
        """
        check_is_fitted(self)
        return logsumexp(self._joint_log_likelihood(self._check_counts(X, reset=False)), axis=1)

    def score(self, X: Any, y: None = None) -> float:
        """Total log-likelihood of ``X`` (higher is better; what ``GridSearchCV`` maximises)."""
        return float(self.score_samples(X).sum())

    def _score_doc(self, idx: np.ndarray, c: np.ndarray) -> float:
        """Log-likelihood of one validated document (word ids, counts): the online fast path."""
        log_theta, log_p = self._log_model()
        scores = c @ log_theta[idx] + log_p
        top = scores.max()
        return float(top + np.log(np.exp(scores - top).sum()))

    @property
    def _n_features_out(self) -> int:
        """Number of topics; ``get_feature_names_out`` names them ``<class>0 .. <class>K-1``."""
        return self.components_.shape[0]  # type: ignore[attr-defined]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Count data: the generic checks round their inputs to non-negative integers
        # (`categorical`) and test that negative values are refused (`positive_only`).
        tags.input_tags.positive_only = True
        tags.input_tags.categorical = True
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags
