"""The single-topic model (mixture of multinomials): generator, log-likelihood, topic matching.

Every document has one hidden topic ``z ~ Cat(p)`` and ``L`` words drawn i.i.d. from the topic's
word distribution ``theta[:, z]``. Documents are count vectors, stored as rows of a SciPy CSR
matrix of shape ``(n_docs, vocab_size)``.

References:
    Anandkumar, Ge, Hsu, Kakade, Telgarsky. "Tensor decompositions for learning latent variable
    models." JMLR 2014, section 3.1 (exchangeable single topic model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

from adaptlearn.core.validation import check_choice, check_int, check_range

__all__ = [
    "SingleTopicCorpus",
    "as_count_matrix",
    "generate_corpus",
    "log_likelihood",
    "match_topics",
    "sample_topic_word",
]


@dataclass(frozen=True)
class SingleTopicCorpus:
    """A generated corpus with its ground truth.

    Attributes:
        counts: CSR ``(n_docs, vocab_size)`` word counts.
        topics: ``(n_docs,)`` hidden topic of each document.
        topic_word: ``(vocab_size, n_topics)``; column ``k`` is topic ``k``'s word distribution.
        priors: ``(n_docs, n_topics)`` topic prior in force when each document was drawn.
    """

    counts: sp.csr_matrix
    topics: np.ndarray
    topic_word: np.ndarray
    priors: np.ndarray

    @property
    def mean_prior(self) -> np.ndarray:
        """Average prior over the stream; with the true topics, the best model in hindsight."""
        return self.priors.mean(axis=0)


def sample_topic_word(
    n_topics: int, vocab_size: int, beta: float, rng: np.random.Generator
) -> np.ndarray:
    """Topic-word matrix ``(vocab_size, n_topics)`` with columns drawn from ``Dirichlet(beta)``."""
    return rng.dirichlet(np.full(vocab_size, beta), size=n_topics).T


def generate_corpus(
    n_docs: int,
    n_topics: int,
    vocab_size: int,
    doc_length: int,
    *,
    beta: float = 0.1,
    prior_concentration: float = 5.0,
    setting: Literal["stationary", "switch"] = "stationary",
    switch_every: int = 1000,
    switch_mass: float = 0.9,
    random_state: int | np.random.Generator | None = None,
) -> SingleTopicCorpus:
    """Draw a corpus from a single-topic model.

    Args:
        n_docs: number of documents.
        n_topics: K.
        vocab_size: V.
        doc_length: words per document (at least 3 so that third moments are defined).
        beta: Dirichlet concentration of the topic-word distributions (small: well separated).
        prior_concentration: Dirichlet concentration of the (stationary) topic prior.
        setting: ``"stationary"`` (one fixed prior) or ``"switch"`` (``switch_mass`` of the prior
            on the first half of the topics, then on the second half, alternating every
            ``switch_every`` documents: a non-stationary stream).
        switch_every: documents between switches.
        switch_mass: prior mass on the favoured half in the ``switch`` setting.
        random_state: seed or generator.
    """
    check_int("n_docs", n_docs, 1, owner="generate_corpus")
    check_int("n_topics", n_topics, 1, owner="generate_corpus")
    check_int("vocab_size", vocab_size, 2, owner="generate_corpus")
    check_int("doc_length", doc_length, 3, owner="generate_corpus")
    check_range("beta", beta, 0.0, low_inclusive=False, owner="generate_corpus")
    check_choice("setting", setting, ("stationary", "switch"), owner="generate_corpus")
    check_int("switch_every", switch_every, 1, owner="generate_corpus")
    check_range("switch_mass", switch_mass, 0.0, 1.0, owner="generate_corpus")
    rng = np.random.default_rng(random_state)
    theta = sample_topic_word(n_topics, vocab_size, beta, rng)
    if setting == "stationary":
        prior = rng.dirichlet(np.full(n_topics, prior_concentration))
        priors = np.tile(prior, (n_docs, 1))
    else:
        half = max(1, n_topics // 2)
        first = np.full(n_topics, (1 - switch_mass) / max(1, n_topics - half))
        first[:half] = switch_mass / half
        second = np.full(n_topics, (1 - switch_mass) / half)
        second[half:] = switch_mass / max(1, n_topics - half)
        phase = (np.arange(n_docs) // switch_every) % 2
        priors = np.where(phase[:, None] == 0, first, second)
    cum = priors.cumsum(axis=1)
    topics = (rng.random(n_docs)[:, None] > cum).sum(axis=1).clip(max=n_topics - 1)
    rows = np.empty((n_docs, vocab_size), dtype=np.int64)
    for k in range(n_topics):
        idx = np.flatnonzero(topics == k)
        if idx.size:
            rows[idx] = rng.multinomial(doc_length, theta[:, k], size=idx.size)
    return SingleTopicCorpus(sp.csr_matrix(rows), topics, theta, priors)


def as_count_matrix(docs: object, vocab_size: int | None = None) -> sp.csr_matrix:
    """Validate documents and return them as a CSR count matrix of integers.

    Accepts a dense array or sparse matrix of counts ``(n_docs, vocab_size)``, or a list of
    word-id sequences (one list per document).

    Raises:
        ValueError: negative or fractional counts, out-of-vocabulary ids, empty input.
    """
    if isinstance(docs, list | tuple) and (not docs or not np.isscalar(docs[0])):
        if vocab_size is None:
            raise ValueError("`vocab_size` is required when documents are lists of word ids")
        indptr, indices = [0], []
        for i, doc in enumerate(docs):
            raw = np.asarray(doc).ravel()
            if raw.size and not (
                np.issubdtype(raw.dtype, np.integer) and not np.issubdtype(raw.dtype, np.bool_)
            ):
                raise ValueError(
                    f"document {i} has non-integer word ids (dtype {raw.dtype}); word ids must "
                    "be integers (they are not rounded)"
                )
            ids = raw.astype(np.int64)
            if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
                bad = ids[(ids < 0) | (ids >= vocab_size)][0]
                raise ValueError(
                    f"document {i} has out-of-vocabulary word id {bad}; ids must be in "
                    f"[0, {vocab_size - 1}]"
                )
            indices.extend(ids.tolist())
            indptr.append(len(indices))
        data = np.ones(len(indices), dtype=np.int64)
        X = sp.csr_matrix((data, indices, indptr), shape=(len(docs), vocab_size))
        X.sum_duplicates()
    else:
        X = sp.csr_matrix(docs)
        if X.ndim != 2:
            raise ValueError("documents must be a 2-d count matrix (n_docs, vocab_size)")
        if vocab_size is not None and X.shape[1] != vocab_size:
            raise ValueError(
                f"documents have {X.shape[1]} columns but the vocabulary has {vocab_size} words"
            )
    if X.shape[0] == 0:
        raise ValueError("no documents given")
    data = X.data
    if data.size and (data.min() < 0 or not np.all(np.equal(np.mod(data, 1), 0))):
        raise ValueError("word counts must be non-negative integers")
    return X.astype(np.int64)


def log_likelihood(
    counts: sp.csr_matrix | np.ndarray, topic_word: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Per-document log-likelihood of the ordered words, ``(n_docs,)``.

    ``log P(c) = logsumexp_k [log p_k + sum_v c_v log theta_{v,k}]`` (the multinomial coefficient
    is dropped: it cancels in every regret). It is invariant to permuting topics together with
    ``weights``.
    """
    X = sp.csr_matrix(counts)
    with np.errstate(divide="ignore"):
        log_theta = np.log(topic_word)
        log_p = np.log(weights)
    scores = np.asarray(X @ log_theta) + log_p[None, :]
    return logsumexp(scores, axis=1)


def match_topics(estimate: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, float]:
    """Hungarian matching of estimated to true topics by L1 distance.

    Args:
        estimate: ``(vocab_size, K)`` estimated topic-word matrix.
        truth: ``(vocab_size, K)`` true topic-word matrix.

    Returns:
        ``(perm, mean_l1)``: ``estimate[:, perm]`` is aligned with ``truth``; the mean L1 distance
        of matched columns (0 is perfect, 2 the maximum).
    """
    cost = np.abs(estimate[:, :, None] - truth[:, None, :]).sum(axis=0)  # (K_est, K_true)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(truth.shape[1], dtype=np.int64)
    perm[cols] = rows
    return perm, float(cost[rows, cols].mean())
