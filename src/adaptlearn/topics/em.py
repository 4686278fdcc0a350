"""Expectation-maximization baselines for the single-topic model: stepwise online EM and batch EM.

References:
    Liang, Klein. "Online EM for unsupervised models." NAACL 2009 (stepwise EM, step size
    ``eta_t = (t + 2)^(-alpha)``, ``0.5 < alpha <= 1``).
    Cappé, Moulines. "On-line expectation-maximization algorithm for latent data models."
    JRSS-B 2009.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from adaptlearn.core.validation import check_choice, check_int, check_range
from adaptlearn.topics._base import TopicModelMixin
from adaptlearn.topics.model import as_count_matrix, log_likelihood

__all__ = ["BatchEM", "OnlineEM"]


def _init_topics(n_topics: int, vocab_size: int, init: str, rng: np.random.Generator) -> np.ndarray:
    if init == "dirichlet":
        return rng.dirichlet(np.ones(vocab_size), size=n_topics).T
    flat = np.full((vocab_size, n_topics), 1.0 / vocab_size)
    flat *= 1.0 + 0.01 * rng.random((vocab_size, n_topics))
    return flat / flat.sum(axis=0)


def _responsibilities(X: sp.csr_matrix, theta: np.ndarray, weights: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        scores = np.asarray(X @ np.log(theta)) + np.log(weights)[None, :]
    return np.exp(scores - logsumexp(scores, axis=1, keepdims=True))


class OnlineEM(TopicModelMixin):
    """Stepwise online EM for the single-topic model (Liang & Klein 2009), a scikit-learn
    estimator (``fit``, ``partial_fit``, ``transform``, ``score``).

    For each mini-batch: E-step responsibilities ``r``; step size ``eta_t = (t + 2)^(-alpha)``;
    sufficient statistics ``s_p <- (1 - eta) s_p + eta mean(r)`` and
    ``s_w <- (1 - eta) s_w + eta mean(r x c)``; M-step ``p = s_p / sum(s_p)``,
    ``theta_k = (s_w[k] + pseudo_count) / sum(...)``. ``fit`` restarts from a fresh
    initialisation and makes one stepwise pass over ``X`` in order.

    Args:
        n_components: number of topics K.
        alpha: step-size exponent in (0.5, 1]; 1 is (almost) plain averaging.
        batch_size: documents per stepwise update (``partial_fit`` splits larger inputs).
        init: ``"flat"`` (uniform times 1% noise) or ``"dirichlet"`` (``Dir(1)`` topics).
        pseudo_count: M-step smoothing added to every word count, > 0.
        random_state: seed or generator for the initialization.

    Attributes:
        components_: ``(K, V)`` topic-word distributions (rows sum to 1). weights_: ``(K,)``.
        n_features_in_: V. n_docs_seen_: documents absorbed. n_steps_: stepwise updates.
    """

    def __init__(
        self,
        n_components: int = 10,
        *,
        alpha: float = 1.0,
        batch_size: int = 1,
        init: Literal["flat", "dirichlet"] = "flat",
        pseudo_count: float = 1e-6,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.n_components = n_components
        self.alpha = alpha
        self.batch_size = batch_size
        self.init = init
        self.pseudo_count = pseudo_count
        self.random_state = random_state

    def _check_params(self) -> None:
        owner = "OnlineEM"
        check_int("n_components", self.n_components, 1, owner=owner)
        check_range("alpha", self.alpha, 0.5, 1.0, low_inclusive=False, owner=owner)
        check_int("batch_size", self.batch_size, 1, owner=owner)
        check_choice("init", self.init, ("flat", "dirichlet"), owner=owner)
        check_range("pseudo_count", self.pseudo_count, 0.0, low_inclusive=False, owner=owner)

    def _start(self, X: sp.csr_matrix) -> None:
        self._check_params()
        rng = np.random.default_rng(self.random_state)
        theta = _init_topics(self.n_components, X.shape[1], self.init, rng)
        weights = np.full(self.n_components, 1.0 / self.n_components)
        mean_length = float(X.sum() / X.shape[0])
        self._s_p = weights.copy()
        self._s_w = (weights * mean_length)[None, :] * theta  # (V, K)
        self._publish(theta, weights)
        self.n_docs_seen_ = 0
        self.n_steps_ = 0

    def partial_fit(self, X: Any, y: None = None) -> OnlineEM:
        """One stepwise update per ``batch_size`` documents of ``X``, in order."""
        first = not hasattr(self, "n_steps_")
        X = self._check_counts(X, reset=first)
        if first:
            self._start(X)
        for lo in range(0, X.shape[0], self.batch_size):
            self._step(X[lo : lo + self.batch_size])
        return self

    def fit(self, X: Any, y: None = None) -> OnlineEM:
        """Fresh initialisation, then one stepwise pass over ``X``."""
        X = self._check_counts(X, reset=True)
        self._start(X)
        for lo in range(0, X.shape[0], self.batch_size):
            self._step(X[lo : lo + self.batch_size])
        return self

    def _step(self, batch: sp.csr_matrix) -> None:
        r = _responsibilities(batch, self._theta, self.weights_)
        eta = (self.n_steps_ + 2.0) ** (-self.alpha)
        self._s_p = (1 - eta) * self._s_p + eta * r.mean(axis=0)
        self._s_w = (1 - eta) * self._s_w + eta * np.asarray(batch.T @ r) / batch.shape[0]
        self._m_step(batch.shape[0])

    def _m_step(self, n_docs: int) -> None:
        w = self._s_w + self.pseudo_count
        self._publish(w / w.sum(axis=0), self._s_p / self._s_p.sum())
        self.n_steps_ += 1
        self.n_docs_seen_ += n_docs

    def _score_doc(self, idx: np.ndarray, c: np.ndarray) -> float:
        """Log-likelihood of one validated document (logs of its words' rows only: the model
        changes after every document)."""
        scores = c @ np.log(self._theta[idx]) + np.log(self.weights_)
        top = scores.max()
        return float(top + np.log(np.exp(scores - top).sum()))

    def _fit_doc(self, idx: np.ndarray, c: np.ndarray) -> None:
        """One stepwise update on one validated document (the ``batch_size=1`` fast path)."""
        scores = c @ np.log(self._theta[idx]) + np.log(self.weights_)
        r = np.exp(scores - scores.max())
        r /= r.sum()
        eta = (self.n_steps_ + 2.0) ** (-self.alpha)
        self._s_p = (1 - eta) * self._s_p + eta * r
        self._s_w *= 1 - eta
        self._s_w[idx] += eta * np.outer(c, r)
        self._m_step(1)


class BatchEM:
    """Batch EM for the single-topic model (the in-hindsight comparator on real data).

    Args:
        n_topics: K.
        max_iter: EM iterations.
        tol: stop when the mean log-likelihood improves by less than this.
        init: ``"flat"``, ``"dirichlet"``, or a ``(V, K)`` topic-word matrix to start from.
        pseudo_count: M-step smoothing.
        random_state: seed or generator.
    """

    def __init__(
        self,
        n_topics: int,
        *,
        max_iter: int = 200,
        tol: float = 1e-6,
        init: str | np.ndarray = "flat",
        pseudo_count: float = 1e-6,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.n_topics = check_int("n_topics", n_topics, 1, owner="BatchEM")
        self.max_iter = check_int("max_iter", max_iter, 1, owner="BatchEM")
        self.tol = check_range("tol", tol, 0.0, owner="BatchEM")
        self.init = init
        self.pseudo_count = pseudo_count
        self.random_state = random_state

    def fit(self, X: Any, y: None = None) -> BatchEM:
        """Run EM on all of ``X``."""
        X = as_count_matrix(X).astype(float)
        rng = np.random.default_rng(self.random_state)
        V, K = X.shape[1], self.n_topics
        if isinstance(self.init, np.ndarray):
            theta = np.array(self.init, dtype=float)
        else:
            theta = _init_topics(
                K, V, check_choice("init", self.init, ("flat", "dirichlet"), owner="BatchEM"), rng
            )
        weights = np.full(K, 1.0 / K)
        previous = -np.inf
        for iteration in range(1, self.max_iter + 1):
            self.n_iter_ = iteration
            r = _responsibilities(X, theta, weights)
            weights = r.mean(axis=0)
            weights = np.maximum(weights, 1e-12) / np.maximum(weights, 1e-12).sum()
            w = np.asarray(X.T @ r) + self.pseudo_count
            theta = w / w.sum(axis=0)
            current = float(log_likelihood(X, theta, weights).mean())
            if current - previous < self.tol:
                break
            previous = current
        self.topic_word_, self.weights_ = theta, weights
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each document."""
        return log_likelihood(as_count_matrix(X), self.topic_word_, self.weights_)
