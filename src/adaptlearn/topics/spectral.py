"""SpectralLeader: online spectral learning of single-topic models (follow the leader).

The learner keeps running sums of the second- and third-order word moments, and at each refresh
recovers the topics of the *leader* (the model of all documents seen so far) by whitening, the
robust tensor power method and unwhitening. No ``V x V x V`` tensor is ever formed: the whitened
third moment is assembled in the ``K``-dimensional space from the co-count matrix ``G``, the word
totals ``s`` and a cube term ``C(W) = sum_d (W^T c_d)^{x3}`` (exact from stored documents, or
from a fixed-basis sketch of constant size).

References:
    Yu, Kveton, Wen, Bui, Mengshoel. "SpectralLeader: Online Spectral Learning for Single Topic
    Models." ECML PKDD 2018, arXiv:1709.07172.
    Anandkumar, Ge, Hsu, Kakade, Telgarsky. "Tensor decompositions for learning latent variable
    models." JMLR 2014 (Algorithm 1: robust tensor power method).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from adaptlearn.core.validation import check_choice, check_int, check_range
from adaptlearn.topics.model import as_count_matrix, log_likelihood

__all__ = ["SpectralLeader", "WhiteningError", "tensor_power_method", "whitened_third_moment"]


class WhiteningError(RuntimeError):
    """The second moment does not (yet) support ``n_topics`` positive eigenvalues."""


def whitened_third_moment(
    W: np.ndarray, G: np.ndarray, s: np.ndarray, cube: np.ndarray, n3: float
) -> np.ndarray:
    """``M3(W, W, W)`` of the pooled unbiased estimator, without forming ``M3``.

    With ``G = sum_d c_d c_d^T``, ``s = sum_d c_d``, ``n3 = sum_d L_d(L_d-1)(L_d-2)`` and
    ``cube = sum_d (W^T c_d)^{x3}`` (shape ``(K, K, K)``)::

        n3 M3(W,W,W) = cube - sum_v [w_v w_v z_v + z_v w_v w_v + w_v z_v w_v] + 2 sum_v s_v w_v^{x3}

    where ``z_v`` are the rows of ``Z = G W``. Cost ``O(V^2 K + V K^3)``.
    """
    Z = G @ W
    wwz = np.einsum("va,vb,vc->abc", W, W, Z)
    correction = wwz + wwz.transpose(2, 0, 1) + wwz.transpose(0, 2, 1)
    diag = np.einsum("v,va,vb,vc->abc", s, W, W, W)
    return (cube - correction + 2.0 * diag) / n3


def tensor_power_method(
    T: np.ndarray,
    n_components: int,
    *,
    n_restarts: int = 10,
    n_iter: int = 30,
    tol: float = 1e-10,
    init: np.ndarray | None = None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Robust tensor power method with restarts and deflation (JMLR 2014, Algorithm 1).

    Args:
        T: symmetric ``(K, K, K)`` tensor, ideally ``sum_k lambda_k v_k^{x3}`` with orthonormal
            ``v_k``.
        n_components: number of eigenpairs to extract.
        n_restarts: random starts per component (plus one warm start from ``init``).
        n_iter: power iterations per start (a run stops early when ``u`` moves less than ``tol``).
        tol: convergence threshold on the change of ``u``.
        init: optional ``(K, n_components)`` warm starts (e.g. the previous refresh's vectors).
        rng: generator for the random starts.

    Returns:
        ``(eigenvalues (n,), eigenvectors (K, n))``, eigenvalues made positive by flipping signs.
    """
    T = T.copy()
    K = T.shape[0]
    values = np.empty(n_components)
    vectors = np.empty((K, n_components))

    def apply(U: np.ndarray) -> np.ndarray:
        # T(I, u, u) for every column u of U (K, R), as one matrix product
        pairs = (U[:, None, :] * U[None, :, :]).reshape(K * K, U.shape[1])
        return T.reshape(K, K * K) @ pairs

    def iterate(U: np.ndarray, steps: int) -> np.ndarray:
        for _ in range(steps):
            new = apply(U)
            norms = np.sqrt((new * new).sum(axis=0))
            new /= np.where(norms > 0, norms, 1.0)
            done = np.abs(new - U).max() < tol
            U = new
            if done:
                break
        return U

    for j in range(n_components):
        U = rng.standard_normal((K, n_restarts))
        if init is not None and j < init.shape[1]:
            U = np.column_stack([U, init[:, j]])
        U /= np.sqrt((U * U).sum(axis=0))
        U = iterate(U, n_iter)
        scores = np.abs((U * apply(U)).sum(axis=0))  # |T(u, u, u)| of each run
        u = iterate(U[:, [int(np.argmax(scores))]], n_iter)[:, 0]
        lam = float(u @ apply(u[:, None])[:, 0])
        if lam < 0:  # odd order: the sign is fixed by the tensor, noise can flip it
            u, lam = -u, -lam
        values[j], vectors[:, j] = lam, u
        T -= lam * np.einsum("a,b,c->abc", u, u, u)
    return values, vectors


def _cube_of(Y: np.ndarray) -> np.ndarray:
    """``sum_n y_n^{x3}`` for the rows of ``Y (n, k)`` as one matrix product, ``(k, k, k)``."""
    n, k = Y.shape
    pairs = (Y[:, :, None] * Y[:, None, :]).reshape(n, k * k)
    return (pairs.T @ Y).reshape(k, k, k)


class _DocStore:
    """Append-only CSR storage of documents (indices and counts per document)."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self._indices: list[np.ndarray] = []
        self._data: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._indices)

    def append(self, indices: np.ndarray, counts: np.ndarray) -> None:
        self._indices.append(np.asarray(indices, dtype=np.int64))
        self._data.append(np.asarray(counts, dtype=float))

    def matrix(self) -> sp.csr_matrix:
        indptr = np.concatenate([[0], np.cumsum([len(i) for i in self._indices])])
        return sp.csr_matrix(
            (np.concatenate(self._data), np.concatenate(self._indices), indptr),
            shape=(len(self._indices), self.vocab_size),
        )


class SpectralLeader:
    """Online spectral learner of a single-topic model (follow the leader on the moments).

    ``partial_fit(X)`` adds documents to the running moments; the model (``topic_word_``,
    ``weights_``) is refreshed from *all* documents seen so far on a schedule. Per-document
    cost: ``O(nnz^2)`` for the co-counts plus, with ``basis="sketch"``, ``O(nnz m + m^3)`` for
    the cube term; it does not grow with the number of documents. With ``basis="exact"`` the
    documents are stored and the cube term is recomputed at each refresh (``O(n K^3)``); with
    the geometric refresh schedule that is ``O(1/growth)`` amortized per document.

    Args:
        n_topics: K.
        vocab_size: V (inferred from the first batch when ``None``).
        refresh: ``"geometric"`` (refresh when the number of documents has grown by the factor
            ``1 + growth`` since the last refresh) or an int ``r`` (every ``r`` documents; 1 is
            pure follow-the-leader).
        growth: growth factor of the geometric schedule.
        basis: ``"exact"`` (store documents) or ``"sketch"`` (fixed basis of ``sketch_dim``
            leading eigenvectors of ``M2``, taken after ``warmup_docs`` documents).
        sketch_dim: ``m`` for ``basis="sketch"`` (default ``3 * n_topics``).
        warmup_docs: documents before the first spectral model; until then the model is the
            smoothed unigram distribution (every topic equal).
        n_restarts: random restarts of the power method per topic.
        n_iter: power iterations per restart.
        smoothing: ``eps`` in ``theta <- (1 - eps) theta + eps / V`` (avoids ``log 0``).
        eigen_tol: whitening fails when ``lambda_K <= eigen_tol * lambda_1``.
        subspace_iter: block subspace-iteration steps warm-started from the previous refresh's
            eigenvectors (0: a dense top-K eigensolver at every refresh).
        oversampling: extra columns of the warm-started basis.
        random_state: seed or generator for the power method's restarts.

    Attributes:
        topic_word_: ``(V, K)`` topic-word distributions (columns sum to 1).
        weights_: ``(K,)`` topic proportions.
        n_docs_seen_: documents absorbed.
        n_refreshes_: spectral refreshes done.

    Documents with fewer than 3 words carry no third-order information; they are added to the
    statistics they can inform (``s``, and ``G`` when ``L >= 2``) and otherwise skipped, as the
    unbiased estimators require. Empty documents raise ``ValueError``.

    References:
        Yu et al., "SpectralLeader: Online Spectral Learning for Single Topic Models",
        ECML PKDD 2018, arXiv:1709.07172.
    """

    def __init__(
        self,
        n_topics: int,
        *,
        vocab_size: int | None = None,
        refresh: Literal["geometric"] | int = "geometric",
        growth: float = 0.1,
        basis: Literal["exact", "sketch"] = "exact",
        sketch_dim: int | None = None,
        warmup_docs: int = 50,
        n_restarts: int = 10,
        n_iter: int = 30,
        smoothing: float = 1e-3,
        eigen_tol: float = 1e-12,
        subspace_iter: int = 3,
        oversampling: int = 5,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        owner = "SpectralLeader"
        self.n_topics = check_int("n_topics", n_topics, 1, owner=owner)
        self.vocab_size = (
            None if vocab_size is None else check_int("vocab_size", vocab_size, 2, owner=owner)
        )
        if refresh != "geometric":
            check_int("refresh", refresh, 1, owner=owner)
        self.refresh = refresh
        self.growth = check_range("growth", growth, 0.0, low_inclusive=False, owner=owner)
        self.basis = check_choice("basis", basis, ("exact", "sketch"), owner=owner)
        self.sketch_dim = check_int(
            "sketch_dim",
            sketch_dim if sketch_dim is not None else 3 * n_topics,
            n_topics,
            owner=owner,
        )
        self.warmup_docs = check_int("warmup_docs", warmup_docs, 1, owner=owner)
        self.n_restarts = check_int("n_restarts", n_restarts, 1, owner=owner)
        self.n_iter = check_int("n_iter", n_iter, 1, owner=owner)
        self.smoothing = check_range(
            "smoothing", smoothing, 0.0, 1.0, low_inclusive=False, owner=owner
        )
        self.eigen_tol = check_range("eigen_tol", eigen_tol, 0.0, owner=owner)
        self.subspace_iter = check_int("subspace_iter", subspace_iter, 0, owner=owner)
        self.oversampling = check_int("oversampling", oversampling, 0, owner=owner)
        self.random_state = random_state
        self._rng = np.random.default_rng(random_state)
        self.n_docs_seen_ = 0
        self.n_refreshes_ = 0
        self.n_whitening_failures_ = 0
        self._initialized = False

    def __repr__(self) -> str:
        return (
            f"SpectralLeader(n_topics={self.n_topics}, vocab_size={self.vocab_size}, "
            f"refresh={self.refresh!r}, basis={self.basis!r}, n_docs_seen={self.n_docs_seen_})"
        )

    # ------------------------------------------------------------------ statistics
    def _init_state(self, V: int) -> None:
        self.vocab_size = V
        self.G_ = np.zeros((V, V))
        self.s_ = np.zeros(V)
        self.n2_ = 0.0
        self.n3_ = 0.0
        self._docs = _DocStore(V)  # exact basis, or the sketch's warm-up buffer
        self._Q: np.ndarray | None = None
        self._cube_q: np.ndarray | None = None
        self._last_refresh_n = 0
        self._vectors: np.ndarray | None = None
        self.topic_word_ = np.full((V, self.n_topics), 1.0 / V)
        self.weights_ = np.full(self.n_topics, 1.0 / self.n_topics)
        self._log_model: tuple[np.ndarray, np.ndarray] | None = None
        self._basis: np.ndarray | None = None
        self._initialized = True

    def partial_fit(self, X: Any, y: None = None) -> SpectralLeader:
        """Absorb documents ``X`` (counts ``(n, V)`` or lists of word ids) and refresh if due."""
        X = as_count_matrix(X, self.vocab_size)
        lengths = np.asarray(X.sum(axis=1)).ravel()
        if np.any(lengths == 0):
            raise ValueError(
                f"document {int(np.flatnonzero(lengths == 0)[0])} of the batch is empty"
            )
        if not self._initialized:
            if self.n_topics > X.shape[1]:
                raise ValueError(
                    f"`n_topics` ({self.n_topics}) must be <= the vocabulary size "
                    f"({X.shape[1]} words): the spectral method needs K <= V"
                )
            self._init_state(X.shape[1])
        for i in range(X.shape[0]):
            lo, hi = X.indptr[i], X.indptr[i + 1]
            self._fit_doc(X.indices[lo:hi], X.data[lo:hi].astype(float))
        return self

    def _fit_doc(self, idx: np.ndarray, c: np.ndarray) -> None:
        """Absorb one validated document (word ids and their counts)."""
        self._add_document(idx, c, float(c.sum()))
        self.n_docs_seen_ += 1
        if self._refresh_due():
            self._refresh()

    def _score_doc(self, idx: np.ndarray, c: np.ndarray) -> float:
        """Log-likelihood of one validated document under the current model."""
        if self._log_model is None:
            theta, weights = self._current_model()
            self._log_model = (np.log(theta), np.log(weights))
        log_theta, log_p = self._log_model
        scores = c @ log_theta[idx] + log_p
        top = scores.max()
        return float(top + np.log(np.exp(scores - top).sum()))

    def fit(self, X: Any, y: None = None) -> SpectralLeader:
        """Batch spectral learning: absorb all of ``X`` and refresh once at the end."""
        X = as_count_matrix(X, self.vocab_size)
        self._initialized = False
        self.n_docs_seen_ = 0
        self.n_refreshes_ = 0
        refresh, self.refresh = self.refresh, 10**18
        try:
            self.partial_fit(X)
        finally:
            self.refresh = refresh
        self._refresh()
        return self

    def _add_document(self, idx: np.ndarray, c: np.ndarray, length: float) -> None:
        self.s_[idx] += c
        if self.n_refreshes_ == 0:
            self._log_model = None  # the warm-up unigram model changes with every document
        if length >= 2:
            self.G_[np.ix_(idx, idx)] += np.outer(c, c)
            self.n2_ += length * (length - 1)
        if length >= 3:
            self.n3_ += length * (length - 1) * (length - 2)
            if self.basis == "exact" or self._Q is None:
                self._docs.append(idx, c)
            else:
                y = c @ self._Q[idx]
                self._cube_q += np.einsum("a,b,c->abc", y, y, y)

    def _refresh_due(self) -> bool:
        n = self.n_docs_seen_
        if n < self.warmup_docs:
            return False
        if self.basis == "sketch" and self._Q is None:
            return True
        if self.refresh == "geometric":
            return self._last_refresh_n == 0 or n >= (1 + self.growth) * self._last_refresh_n
        return (n - self._last_refresh_n) >= int(self.refresh)

    # ------------------------------------------------------------------ spectral step
    def _second_moment(self) -> np.ndarray:
        return (self.G_ - np.diag(self.s_)) / max(self.n2_, 1.0)

    def _top_eigen(
        self, M2: np.ndarray, k: int, warm: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` eigenpairs of ``M2`` by signed value, largest first.

        With ``warm`` (a previous basis, ``(V, k + oversampling)``) a few steps of block subspace
        iteration and a Rayleigh-Ritz step replace the dense solver: ``O(V^2 k)`` instead of
        ``O(V^3)``, which is what keeps refreshes cheap at large V.
        """
        V = M2.shape[0]
        if warm is None:
            vals, vecs = scipy.linalg.eigh(M2, subset_by_index=[V - k, V - 1])
        else:
            Q = warm
            for _ in range(self.subspace_iter):
                Q, _ = np.linalg.qr(M2 @ Q)
            vals, S = np.linalg.eigh(Q.T @ M2 @ Q)
            vecs = Q @ S
        order = np.argsort(vals)[::-1][:k]
        return vals[order], vecs[:, order]

    def _build_sketch(self, M2: np.ndarray) -> None:
        m = min(self.sketch_dim, M2.shape[0])
        _, Q = self._top_eigen(M2, m)
        self._Q = Q
        self._cube_q = np.zeros((m, m, m))
        if len(self._docs):  # replay the warm-up buffer once, then drop it
            self._cube_q += _cube_of(np.asarray(self._docs.matrix() @ Q))
        self._docs = _DocStore(M2.shape[0])

    def _cube(self, W: np.ndarray) -> np.ndarray:
        if self.basis == "exact":
            if not len(self._docs):
                return np.zeros((W.shape[1],) * 3)
            return _cube_of(np.asarray(self._docs.matrix() @ W))
        assert self._Q is not None and self._cube_q is not None
        P = self._Q.T @ W
        return np.einsum("ijk,ia,jb,kc->abc", self._cube_q, P, P, P, optimize=True)

    def _refresh(self) -> None:
        self._last_refresh_n = self.n_docs_seen_
        if self.n3_ == 0:
            self.n_whitening_failures_ += 1
            return
        M2 = self._second_moment()
        if self.basis == "sketch" and self._Q is None:
            self._build_sketch(M2)
        K = self.n_topics
        try:
            theta, weights = self._spectral_model(M2, K)
        except WhiteningError:
            self.n_whitening_failures_ += 1  # keep the previous model
            return
        self._set_model(theta, weights)
        self.n_refreshes_ += 1

    def _spectral_model(self, M2: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
        V = M2.shape[0]
        width = min(V, K + self.oversampling)
        if self.subspace_iter > 0 and self._basis is not None:
            lam_all, basis = self._top_eigen(M2, width, warm=self._basis)
        else:
            lam_all, basis = self._top_eigen(M2, width)
        self._basis = basis
        lam, U = lam_all[:K], basis[:, :K]
        if lam[-1] <= self.eigen_tol * max(lam[0], 0.0) or lam[-1] <= 0:
            raise WhiteningError(f"lambda_K={lam[-1]:.3g} of M2 is not positive")
        W = U / np.sqrt(lam)
        B = U * np.sqrt(lam)
        T = whitened_third_moment(W, self.G_, self.s_, self._cube(W), self.n3_)
        values, vectors = tensor_power_method(
            T, K, n_restarts=self.n_restarts, n_iter=self.n_iter, init=self._vectors, rng=self._rng
        )
        self._vectors = vectors
        theta = (B @ vectors) * values[None, :]
        weights = 1.0 / np.maximum(values, 1e-12) ** 2
        return theta, weights

    def _set_model(self, theta: np.ndarray, weights: np.ndarray) -> None:
        V, K = theta.shape
        neg = theta.sum(axis=0) < 0
        theta[:, neg] *= -1
        theta = np.clip(theta, 0.0, None)
        sums = theta.sum(axis=0)
        theta = np.where(sums > 0, theta / np.where(sums > 0, sums, 1.0), 1.0 / V)
        theta = (1 - self.smoothing) * theta + self.smoothing / V
        weights = np.clip(np.nan_to_num(weights, nan=0.0), 0.0, None)
        weights = weights / weights.sum() if weights.sum() > 0 else np.full(K, 1.0 / K)
        weights = np.maximum(weights, 1e-3 / K)
        weights /= weights.sum()
        if self.n_refreshes_ > 0:  # keep topic identities stable across refreshes
            cost = np.abs(theta[:, :, None] - self.topic_word_[:, None, :]).sum(axis=0)
            rows, cols = linear_sum_assignment(cost)
            perm = np.empty(K, dtype=np.int64)
            perm[cols] = rows
            theta, weights = theta[:, perm], weights[perm]
            if self._vectors is not None:
                self._vectors = self._vectors[:, perm]
        self.topic_word_ = theta
        self.weights_ = weights
        self._log_model = None

    # ------------------------------------------------------------------ prediction
    def _current_model(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._initialized:
            raise RuntimeError("SpectralLeader has seen no documents; call partial_fit first")
        if self.n_refreshes_ == 0:  # warm-up: the smoothed unigram model
            V = self.vocab_size
            assert V is not None
            unigram = (self.s_ + 1.0) / (self.s_.sum() + V)
            return np.tile(unigram[:, None], (1, self.n_topics)), self.weights_
        return self.topic_word_, self.weights_

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each document under the current model, ``(n_docs,)``."""
        theta, weights = self._current_model()
        return log_likelihood(as_count_matrix(X, self.vocab_size), theta, weights)

    def score(self, X: Any, y: None = None) -> float:
        """Total log-likelihood of ``X`` under the current model."""
        return float(self.score_samples(X).sum())

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Learned state as arrays and numbers (the exact basis stores documents as CSR parts)."""
        state: dict[str, Any] = {
            "n_docs_seen": self.n_docs_seen_,
            "n_refreshes": self.n_refreshes_,
            "last_refresh_n": self._last_refresh_n,
            "G": self.G_,
            "s": self.s_,
            "n2": self.n2_,
            "n3": self.n3_,
            "topic_word": self.topic_word_,
            "weights": self.weights_,
            "vectors": self._vectors,
            "Q": self._Q,
            "cube_q": self._cube_q,
            "rng": self._rng.bit_generator.state,
            "basis": self._basis,
        }
        docs = self._docs.matrix() if len(self._docs) else None
        state["docs"] = None if docs is None else (docs.data, docs.indices, docs.indptr)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self._init_state(int(np.asarray(state["G"]).shape[0]))
        self.n_docs_seen_ = int(state["n_docs_seen"])
        self.n_refreshes_ = int(state["n_refreshes"])
        self._last_refresh_n = int(state["last_refresh_n"])
        self.G_, self.s_ = np.array(state["G"]), np.array(state["s"])
        self.n2_, self.n3_ = float(state["n2"]), float(state["n3"])
        self.topic_word_, self.weights_ = np.array(state["topic_word"]), np.array(state["weights"])
        self._vectors = None if state["vectors"] is None else np.array(state["vectors"])
        self._Q = None if state["Q"] is None else np.array(state["Q"])
        self._cube_q = None if state["cube_q"] is None else np.array(state["cube_q"])
        self._rng.bit_generator.state = state["rng"]
        self._basis = None if state["basis"] is None else np.array(state["basis"])
        self._log_model = None
        if state["docs"] is not None:
            data, indices, indptr = state["docs"]
            indptr = np.asarray(indptr)
            for i in range(len(indptr) - 1):
                lo, hi = indptr[i], indptr[i + 1]
                self._docs.append(np.asarray(indices[lo:hi]), np.asarray(data[lo:hi], float))
