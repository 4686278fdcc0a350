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
from adaptlearn.topics.model import as_count_matrix, log_likelihood

__all__ = ["BatchEM", "OnlineEM"]


def _init_topics(n_topics: int, vocab_size: int, init: str, rng: np.random.Generator) -> np.ndarray:
    if init == "dirichlet":
        return rng.dirichlet(np.ones(vocab_size), size=n_topics).T
    flat = np.full((vocab_size, n_topics), 1.0 / vocab_size)
    flat *= 1.0 + 0.01 * rng.random((vocab_size, n_topics))
    return flat / flat.sum(axis=0)


def _responsibilities(X: sp.csr_matrix, theta: np.ndarray, weights: np.ndarray) -> np.ndarray:
    scores = np.asarray(X @ np.log(theta)) + np.log(weights)[None, :]
    return np.exp(scores - logsumexp(scores, axis=1, keepdims=True))


class OnlineEM:
    """Stepwise online EM for the single-topic model (Liang & Klein 2009).

    For each mini-batch: E-step responsibilities ``r``; step size ``eta_t = (t + 2)^(-alpha)``;
    sufficient statistics ``s_p <- (1 - eta) s_p + eta mean(r)`` and
    ``s_w <- (1 - eta) s_w + eta mean(r x c)``; M-step ``p = s_p / sum(s_p)``,
    ``theta_k = (s_w[k] + pseudo_count) / sum(...)``.

    Args:
        n_topics: K.
        vocab_size: V (inferred from the first batch when ``None``).
        alpha: step-size exponent in (0.5, 1]; 1 is (almost) plain averaging.
        batch_size: documents per stepwise update (``partial_fit`` splits larger inputs).
        init: ``"flat"`` (uniform times 1% noise) or ``"dirichlet"`` (``Dir(1)`` topics).
        pseudo_count: M-step smoothing added to every word count.
        random_state: seed or generator for the initialization.

    Attributes:
        topic_word_: ``(V, K)``; weights_: ``(K,)``; n_docs_seen_: documents absorbed.
    """

    def __init__(
        self,
        n_topics: int,
        *,
        vocab_size: int | None = None,
        alpha: float = 1.0,
        batch_size: int = 1,
        init: Literal["flat", "dirichlet"] = "flat",
        pseudo_count: float = 1e-6,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        owner = "OnlineEM"
        self.n_topics = check_int("n_topics", n_topics, 1, owner=owner)
        self.vocab_size = vocab_size
        self.alpha = check_range("alpha", alpha, 0.5, 1.0, low_inclusive=False, owner=owner)
        self.batch_size = check_int("batch_size", batch_size, 1, owner=owner)
        self.init = check_choice("init", init, ("flat", "dirichlet"), owner=owner)
        self.pseudo_count = check_range(
            "pseudo_count", pseudo_count, 0.0, low_inclusive=False, owner=owner
        )
        self.random_state = random_state
        self._rng = np.random.default_rng(random_state)
        self.n_docs_seen_ = 0
        self._t = 0
        self.topic_word_: np.ndarray | None = None

    def __repr__(self) -> str:
        return (
            f"OnlineEM(n_topics={self.n_topics}, alpha={self.alpha}, "
            f"batch_size={self.batch_size}, init={self.init!r})"
        )

    def _start(self, V: int, mean_length: float) -> None:
        self.vocab_size = V
        self.topic_word_ = _init_topics(self.n_topics, V, self.init, self._rng)
        self.weights_ = np.full(self.n_topics, 1.0 / self.n_topics)
        self._s_p = self.weights_.copy()
        self._s_w = (self.weights_ * mean_length)[None, :] * self.topic_word_  # (V, K)

    def partial_fit(self, X: Any, y: None = None) -> OnlineEM:
        """One stepwise update per ``batch_size`` documents of ``X``."""
        X = as_count_matrix(X, self.vocab_size).astype(float)
        if self.topic_word_ is None:
            self._start(X.shape[1], float(X.sum() / X.shape[0]))
        for lo in range(0, X.shape[0], self.batch_size):
            batch = X[lo : lo + self.batch_size]
            r = _responsibilities(batch, self.topic_word_, self.weights_)
            eta = (self._t + 2.0) ** (-self.alpha)
            self._s_p = (1 - eta) * self._s_p + eta * r.mean(axis=0)
            self._s_w = (1 - eta) * self._s_w + eta * np.asarray(batch.T @ r) / batch.shape[0]
            self.weights_ = self._s_p / self._s_p.sum()
            w = self._s_w + self.pseudo_count
            self.topic_word_ = w / w.sum(axis=0)
            self._t += 1
            self.n_docs_seen_ += batch.shape[0]
        return self

    def _fit_doc(self, idx: np.ndarray, c: np.ndarray) -> None:
        """One stepwise update on one validated document (``batch_size`` 1 fast path)."""
        assert self.topic_word_ is not None
        scores = c @ np.log(self.topic_word_[idx]) + np.log(self.weights_)
        r = np.exp(scores - scores.max())
        r /= r.sum()
        eta = (self._t + 2.0) ** (-self.alpha)
        self._s_p = (1 - eta) * self._s_p + eta * r
        self._s_w *= 1 - eta
        self._s_w[idx] += eta * np.outer(c, r)
        self.weights_ = self._s_p / self._s_p.sum()
        w = self._s_w + self.pseudo_count
        self.topic_word_ = w / w.sum(axis=0)
        self._t += 1
        self.n_docs_seen_ += 1

    def _score_doc(self, idx: np.ndarray, c: np.ndarray) -> float:
        """Log-likelihood of one validated document under the current model."""
        assert self.topic_word_ is not None
        scores = c @ np.log(self.topic_word_[idx]) + np.log(self.weights_)
        top = scores.max()
        return float(top + np.log(np.exp(scores - top).sum()))

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each document under the current model."""
        if self.topic_word_ is None:
            raise RuntimeError("OnlineEM has seen no documents; call partial_fit first")
        return log_likelihood(as_count_matrix(X, self.vocab_size), self.topic_word_, self.weights_)

    def score(self, X: Any, y: None = None) -> float:
        """Total log-likelihood of ``X``."""
        return float(self.score_samples(X).sum())


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
