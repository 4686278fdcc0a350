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

from numbers import Integral
from typing import Any, Literal

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from scipy.spatial.distance import cdist
from sklearn.utils.validation import check_is_fitted

from adaptlearn.core.validation import check_choice, check_int, check_range
from adaptlearn.topics._base import TopicModelMixin

__all__ = ["SpectralLeader", "WhiteningError", "tensor_power_method", "whitened_third_moment"]


class WhiteningError(RuntimeError):
    """The second moment does not (yet) support ``n_components`` positive eigenvalues."""


def whitened_third_moment(
    W: np.ndarray, GW: np.ndarray, s: np.ndarray, cube: np.ndarray, n3: float
) -> np.ndarray:
    """``M3(W, W, W)`` of the pooled unbiased estimator, without forming ``M3``.

    With ``G = sum_d c_d c_d^T``, ``GW = G W`` (rows ``z_v``), ``s = sum_d c_d``,
    ``n3 = sum_d L_d(L_d-1)(L_d-2)`` and ``cube = sum_d (W^T c_d)^{x3}`` (``(K, K, K)``)::

        n3 M3(W,W,W) = cube - sum_v [w_v w_v z_v + z_v w_v w_v + w_v z_v w_v] + 2 sum_v s_v w_v^{x3}

    Every document enters ``GW``, ``s``, ``cube`` and ``n3`` (a document with fewer than three
    words adds exactly zero in total). Cost ``O(V K^3)``.
    """
    V, K = W.shape
    pairs = (W[:, :, None] * W[:, None, :]).reshape(V, K * K)
    both = (pairs.T @ np.hstack([GW, s[:, None] * W])).reshape(K, K, 2 * K)
    wwz, diag = both[:, :, :K], both[:, :, K:]
    correction = wwz + wwz.transpose(2, 0, 1) + wwz.transpose(0, 2, 1)
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
        n_restarts: random starts per component (plus one warm start from ``init``). 0 with
            ``init`` of ``n_components`` columns: all deflated iterations at once from the warm
            starts (see :func:`_simultaneous_power_method`), the robust method if they do not
            converge within ``2 n_iter`` sweeps.
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
            new /= np.maximum(np.sqrt(np.einsum("ar,ar->r", new, new)), 1e-300)
            done = np.abs(new - U).max() < tol
            U = new
            if done:
                break
        return U

    if n_restarts == 0 and init is not None and init.shape[1] == n_components:
        warm = _simultaneous_power_method(T, init, n_iter=2 * n_iter, tol=tol)
        if warm is not None:
            return warm
        n_restarts = 1  # the warm starts did not converge: the robust method from them

    for j in range(n_components):
        U = rng.standard_normal((K, n_restarts))
        if init is not None and j < init.shape[1]:
            U = np.column_stack([U, init[:, j]])
        elif n_restarts == 0:
            U = rng.standard_normal((K, 1))
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


def _simultaneous_power_method(
    T: np.ndarray, init: np.ndarray, *, n_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """All deflated power iterations at once, from warm starts (one per component).

    Column ``j`` iterates ``u_j <- T_j(I, u_j, u_j) / ||.||`` with
    ``T_j = T - sum_{i<j} lambda_i u_i^{x3}`` and ``lambda_i = T_i(u_i, u_i, u_i)`` taken from
    the other columns' current values (a Jacobi sweep of the sequential method). Its fixed points
    are exactly those of the sequential deflation started from the same vectors; it costs a few
    ``K x K^2`` products per sweep instead of one per component. Returns ``None`` when it has
    not converged within ``n_iter`` sweeps (the caller then runs the robust method).
    """
    K, n = init.shape
    T2 = T.reshape(K, K * K)
    strict = np.triu(np.ones((n, n)), k=1)  # (i, j) with i < j: column i deflates column j
    U = init / np.sqrt(np.einsum("ar,ar->r", init, init))

    def exact_values(U: np.ndarray) -> np.ndarray:
        # lambda_j = T(u_j,u_j,u_j) - sum_{i<j} lambda_i c_ij^3 (forward substitution)
        TU = T2 @ (U[:, None, :] * U[None, :, :]).reshape(K * K, n)
        C = U.T @ U
        return scipy.linalg.solve_triangular(
            np.eye(n) + (strict * C**3).T, np.einsum("ar,ar->r", U, TU), lower=True
        )

    lam = exact_values(U)
    for _ in range(n_iter):
        TU = T2 @ (U[:, None, :] * U[None, :, :]).reshape(K * K, n)  # T(I, u_j, u_j)
        C = U.T @ U
        # one substitution sweep with the previous values: the same fixed point, no solve
        lam = np.einsum("ar,ar->r", U, TU) - (strict * C**3).T @ lam
        new = TU - U @ (strict * (lam[:, None] * C**2))
        new /= np.sqrt(np.einsum("ar,ar->r", new, new))
        done = np.abs(new - U).max() < tol
        U = new
        if done:
            break
    else:
        return None
    lam = exact_values(U)
    negative = lam < 0  # odd order: the sign is fixed by the tensor, noise can flip it
    U[:, negative] *= -1
    return np.abs(lam), U


def _cube_of(Y: np.ndarray) -> np.ndarray:
    """``sum_n y_n^{x3}`` for the rows of ``Y (n, k)`` as one matrix product, ``(k, k, k)``."""
    n, k = Y.shape
    pairs = (Y[:, :, None] * Y[:, None, :]).reshape(n, k * k)
    return (pairs.T @ Y).reshape(k, k, k)


def _sym(H: np.ndarray) -> np.ndarray:
    return 0.5 * (H + H.T)


def _csr(indices: list[np.ndarray], data: list[np.ndarray], lengths: list[int], V: int):
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return sp.csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0),
            np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64),
            indptr,
        ),
        shape=(len(lengths), V),
    )


class _GrowingCSR:
    """Append-only CSR rows in buffers that double when full (appending is ``O(nnz)`` of the
    new rows, not of all rows)."""

    def __init__(self, n_cols: int) -> None:
        self.n_cols = n_cols
        self.n_rows = 0
        self.nnz = 0
        self.data = np.zeros(1024)
        self.indices = np.zeros(1024, dtype=np.int64)
        self.indptr = np.zeros(257, dtype=np.int64)

    def extend(self, P: sp.csr_matrix) -> None:
        rows, nnz = P.shape[0], P.nnz
        while self.nnz + nnz > self.data.size:
            self.data = np.concatenate([self.data, np.zeros_like(self.data)])
            self.indices = np.concatenate([self.indices, np.zeros_like(self.indices)])
        while self.n_rows + rows + 1 > self.indptr.size:
            self.indptr = np.concatenate([self.indptr, np.zeros_like(self.indptr)])
        self.data[self.nnz : self.nnz + nnz] = P.data
        self.indices[self.nnz : self.nnz + nnz] = P.indices
        self.indptr[self.n_rows + 1 : self.n_rows + rows + 1] = self.nnz + P.indptr[1:]
        self.n_rows += rows
        self.nnz += nnz

    def matrix(self) -> sp.csr_matrix:
        """The rows so far, sharing the buffers (valid until the next ``extend``)."""
        n, nnz = self.n_rows, self.nnz
        return sp.csr_matrix(
            (self.data[:nnz], self.indices[:nnz], self.indptr[: n + 1]),
            shape=(n, self.n_cols),
            copy=False,
        )


class SpectralLeader(TopicModelMixin):
    """Online spectral learner of a single-topic model (follow the leader on the moments).

    A scikit-learn estimator (``fit``, ``partial_fit``, ``transform``, ``score``; works in a
    ``Pipeline`` after ``CountVectorizer`` and in ``GridSearchCV``). ``partial_fit(X)`` adds
    documents to the running moments, and the model is refreshed from *all* documents seen so
    far on a schedule; ``fit(X)`` is the batch spectral method (absorb ``X``, refresh once).

    Moments (the pooled unbiased estimators, Anandkumar et al. 2014; every document enters
    every sum, whatever its length ``L``, so they are exact for ``L = 1`` and ``2`` too: such a
    document's terms cancel where they carry no information)::

        M2 = (G - diag(s)) / n2,   G = sum_d c_d c_d^T,  s = sum_d c_d,  n2 = sum_d L_d (L_d - 1)
        M3(W, W, W) from G W, s, n3 = sum_d L_d (L_d-1) (L_d-2) and sum_d (W^T c_d)^{x3}

    Per-document cost: ``O(nnz)`` bookkeeping; the moments are folded in at each refresh by
    sparse products. With ``basis="exact"`` the documents are kept (CSR) and each refresh costs
    ``O(nnz_total K)`` plus ``O(K^4)`` for the power method: under the geometric schedule that
    is ``O(nnz K / growth)`` per document, amortized, with no ``V x V`` matrix. With
    ``basis="sketch"`` a dense ``G`` and a fixed-basis cube of size ``m^3`` replace the stored
    documents (constant memory).

    Args:
        n_components: number of topics K.
        refresh: ``"geometric"`` (refresh when the number of documents has grown by the factor
            ``1 + growth`` since the last refresh) or an int ``r`` (every ``r`` documents; 1 is
            pure follow-the-leader).
        growth: growth factor of the geometric schedule, > 0.
        basis: ``"exact"`` (store documents) or ``"sketch"`` (fixed basis of ``sketch_dim``
            leading eigenvectors of ``M2``, taken after ``warmup_docs`` documents).
        sketch_dim: ``m`` for ``basis="sketch"``, >= K (``None``: ``3 * n_components``).
        warmup_docs: documents before the first spectral model of ``partial_fit``; until then
            the model is the smoothed unigram distribution (every topic equal).
        n_restarts: random restarts of the power method per topic, >= 1.
        n_iter: power iterations per restart, >= 1.
        smoothing: ``eps`` in ``theta <- (1 - eps) theta + eps / V``, in (0, 1].
        eigen_tol: whitening fails when ``lambda_K <= eigen_tol * lambda_1``.
        subspace_iter: block subspace-iteration steps warm-started from the previous refresh's
            eigenvectors (0: a cold top-K eigensolver at every refresh).
        oversampling: extra columns of the warm-started basis.
        warm_restarts: random restarts of the power method per topic once a previous refresh's
            vectors exist (each topic also starts from its previous vector). 0: the deflated
            iterations of all topics run at once from the previous vectors (same fixed points,
            far fewer small products), falling back to the robust method if they do not
            converge. The first spectral model always uses ``n_restarts``.
        random_state: seed or generator for the eigensolver's start and the power method.

    Attributes:
        components_: ``(K, V)`` topic-word distributions (rows sum to 1; unlike scikit-learn's
            LDA these are probabilities, not pseudo-counts).
        weights_: ``(K,)`` topic proportions.
        s_, n2_, n3_: word totals and the pair / triple normalisers of the moments.
        n_features_in_: V. n_docs_seen_: documents absorbed. n_refreshes_: spectral refreshes.
        n_whitening_failures_: refreshes that kept the previous model because ``M2`` did not
            (yet) have K positive eigenvalues.

    References:
        Yu, Kveton, Wen, Bui, Mengshoel, "SpectralLeader: Online Spectral Learning for Single
        Topic Models", ECML PKDD 2018, arXiv:1709.07172.
        Anandkumar, Ge, Hsu, Kakade, Telgarsky, "Tensor decompositions for learning latent
        variable models", JMLR 2014 (section 3.1 moments; Algorithm 1 power method).
    """

    def __init__(
        self,
        n_components: int = 10,
        *,
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
        warm_restarts: int = 0,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.n_components = n_components
        self.refresh = refresh
        self.growth = growth
        self.basis = basis
        self.sketch_dim = sketch_dim
        self.warmup_docs = warmup_docs
        self.n_restarts = n_restarts
        self.n_iter = n_iter
        self.smoothing = smoothing
        self.eigen_tol = eigen_tol
        self.subspace_iter = subspace_iter
        self.oversampling = oversampling
        self.warm_restarts = warm_restarts
        self.random_state = random_state

    def _check_params(self) -> None:
        owner = "SpectralLeader"
        check_int("n_components", self.n_components, 1, owner=owner)
        if self.refresh != "geometric":
            if not isinstance(self.refresh, Integral) or isinstance(self.refresh, bool):
                raise ValueError(
                    f"`refresh` of {owner} must be 'geometric' or an int in [1, inf); "
                    f"got {self.refresh!r}"
                )
            check_int("refresh", self.refresh, 1, owner=owner)
        check_range("growth", self.growth, 0.0, low_inclusive=False, owner=owner)
        check_choice("basis", self.basis, ("exact", "sketch"), owner=owner)
        if self.sketch_dim is not None:
            check_int("sketch_dim", self.sketch_dim, self.n_components, owner=owner)
        check_int("warmup_docs", self.warmup_docs, 1, owner=owner)
        check_int("n_restarts", self.n_restarts, 1, owner=owner)
        check_int("n_iter", self.n_iter, 1, owner=owner)
        check_range("smoothing", self.smoothing, 0.0, 1.0, low_inclusive=False, owner=owner)
        check_range("eigen_tol", self.eigen_tol, 0.0, owner=owner)
        check_int("subspace_iter", self.subspace_iter, 0, owner=owner)
        check_int("oversampling", self.oversampling, 0, owner=owner)
        check_int("warm_restarts", self.warm_restarts, 0, owner=owner)

    # ------------------------------------------------------------------ statistics
    def _reset(self, V: int) -> None:
        self._check_params()
        self._check_n_components(V)
        self._rng = np.random.default_rng(self.random_state)
        self.s_ = np.zeros(V)
        self.n2_ = 0.0
        self.n3_ = 0.0
        self.n_docs_seen_ = 0
        self.n_refreshes_ = 0
        self.n_whitening_failures_ = 0
        # exact basis: every document; sketch: the warm-up buffer until the basis exists
        self._stored = _GrowingCSR(V)
        self._pending: tuple[list[np.ndarray], list[np.ndarray], list[int]] = ([], [], [])
        self._G = np.zeros((V, V)) if self.basis == "sketch" else None
        self._Q: np.ndarray | None = None
        self._cube_q: np.ndarray | None = None
        self._basis: np.ndarray | None = None  # warm start of the eigensolver, (V, K + over)
        self._gram_basis: np.ndarray | None = None  # G @ _basis, kept current by _flush
        self._vectors: np.ndarray | None = None
        self._last_refresh_n = 0
        self._publish_unigram()

    def partial_fit(self, X: Any, y: None = None) -> SpectralLeader:
        """Absorb documents ``X`` (counts ``(n_docs, V)``), refreshing whenever one is due.

        The first call fixes V; later calls must have the same number of features.
        """
        first = not hasattr(self, "s_")
        X = self._check_counts(X, reset=first)
        if first:
            self._reset(X.shape[1])
        lo = 0
        while lo < X.shape[0]:
            hi = min(X.shape[0], lo + self._docs_until_refresh())
            self._absorb(X[lo:hi])
            if self._refresh_due():
                self._refresh()
            lo = hi
        if self.n_refreshes_ == 0:
            self._publish_unigram()
        return self

    def fit(self, X: Any, y: None = None) -> SpectralLeader:
        """Batch spectral learning: forget everything, absorb all of ``X``, refresh once."""
        X = self._check_counts(X, reset=True)
        self._reset(X.shape[1])
        self._absorb(X)
        self._refresh()
        if self.n_refreshes_ == 0:
            self._publish_unigram()
        return self

    def _absorb(self, X: sp.csr_matrix) -> None:
        """Add validated documents (CSR rows) to the running sums."""
        lengths = np.asarray(X.sum(axis=1)).ravel()
        self.s_ += np.asarray(X.sum(axis=0)).ravel()
        self.n2_ += float((lengths * (lengths - 1)).sum())
        self.n3_ += float((lengths * (lengths - 1) * (lengths - 2)).sum())
        self.n_docs_seen_ += X.shape[0]
        indices, data, sizes = self._pending
        indices.append(X.indices)
        data.append(X.data)
        sizes.extend(np.diff(X.indptr).tolist())
        if len(sizes) >= 4096:  # bounds the buffer (sketch memory) between refreshes
            self._flush()

    def _fit_doc(self, idx: np.ndarray, c: np.ndarray) -> None:
        """Absorb one validated document (word ids and counts): the online fast path."""
        length = float(c.sum())
        self.n_docs_seen_ += 1
        if length > 0:
            self.s_[idx] += c
            self.n2_ += length * (length - 1)
            self.n3_ += length * (length - 1) * (length - 2)
            indices, data, sizes = self._pending
            indices.append(idx)
            data.append(c)
            sizes.append(len(idx))
        if self._refresh_due():
            self._refresh()
        elif self.n_refreshes_ == 0 and length > 0:
            self._publish_unigram()

    def _flush(self) -> None:
        """Fold the pending documents into the stored documents (exact) or ``G`` and the cube
        (sketch)."""
        indices, data, sizes = self._pending
        if not sizes:
            return
        P = _csr(indices, data, sizes, self.n_features_in_)
        self._pending = ([], [], [])
        if self._gram_basis is not None:
            self._gram_basis += np.asarray(P.T @ np.asarray(P @ self._basis))
        if self.basis == "exact" or self._Q is None:
            self._stored.extend(P)
        if self.basis == "sketch":
            assert self._G is not None
            co = (P.T @ P).tocoo()
            self._G[co.row, co.col] += co.data
            if self._Q is not None:
                assert self._cube_q is not None
                self._cube_q += _cube_of(np.asarray(P @ self._Q))

    def _next_refresh_at(self) -> int:
        """Smallest document count at which a refresh is due."""
        n, last = self.n_docs_seen_, self._last_refresh_n
        at = max(n + 1, self.warmup_docs)
        if (self.basis == "sketch" and self._Q is None) or last == 0:
            return at
        if self.refresh == "geometric":
            target = (1 + self.growth) * last
            step = max(at, int(np.ceil(target)))
            while step - 1 >= at and step - 1 >= target:
                step -= 1
            return step
        return max(at, last + int(self.refresh))

    def _docs_until_refresh(self) -> int:
        return self._next_refresh_at() - self.n_docs_seen_

    def _refresh_due(self) -> bool:
        n = self.n_docs_seen_
        if n < self.warmup_docs:
            return False
        if (self.basis == "sketch" and self._Q is None) or self._last_refresh_n == 0:
            return True
        if self.refresh == "geometric":
            return n >= (1 + self.growth) * self._last_refresh_n
        return (n - self._last_refresh_n) >= int(self.refresh)

    # ------------------------------------------------------------------ moments
    def _gram_times(self, Q: np.ndarray) -> np.ndarray:
        """``G Q`` with ``G = sum_d c_d c_d^T``, ``(V, k)``; pending documents must be flushed."""
        if self.basis == "exact":
            X = self._stored.matrix()
            return np.asarray(X.T @ np.asarray(X @ Q))
        assert self._G is not None
        return self._G @ Q

    def _m2_times(self, Q: np.ndarray) -> np.ndarray:
        """``M2 Q``, ``(V, k)``, without forming ``M2``."""
        return self._m2_from_gram(self._gram_times(Q), Q)

    def _m2_from_gram(self, GQ: np.ndarray, Q: np.ndarray) -> np.ndarray:
        """``M2 Q = (G Q - s * Q) / n2`` from ``G Q``."""
        return (GQ - self.s_[:, None] * Q) / max(self.n2_, 1.0)

    def second_moment(self) -> np.ndarray:
        """The pooled unbiased ``M2 = (G - diag s) / n2``, dense ``(V, V)`` (for inspection;
        the learner itself never forms it)."""
        check_is_fitted(self)
        self._flush()
        return self._m2_times(np.eye(self.n_features_in_))

    def whitened_third_moment(self, W: np.ndarray) -> np.ndarray:
        """``M3(W, W, W)`` of the pooled unbiased estimator for ``W (V, k)``, ``(k, k, k)``.

        Exact for ``basis="exact"``; with ``basis="sketch"`` exact when ``span W`` lies in the
        sketch's basis.
        """
        check_is_fitted(self)
        self._flush()
        return self._whitened(np.asarray(W, dtype=float))

    def _whitened(self, W: np.ndarray, GW: np.ndarray | None = None) -> np.ndarray:
        """``M3(W, W, W)``; ``GW``: ``G @ W`` when the caller has it."""
        if self.basis == "exact":
            X = self._stored.matrix()
            Y = np.asarray(X @ W)
            cube = _cube_of(Y)
            GW = np.asarray(X.T @ Y) if GW is None else GW
        elif self._Q is None:  # the sketch's warm-up buffer is still in `_stored`
            Y = np.asarray(self._stored.matrix() @ W)
            cube = _cube_of(Y)
            GW = self._gram_times(W) if GW is None else GW
        else:
            assert self._cube_q is not None
            P = self._Q.T @ W
            cube = np.einsum("ijk,ia,jb,kc->abc", self._cube_q, P, P, P, optimize=True)
            GW = self._gram_times(W) if GW is None else GW
        return whitened_third_moment(W, GW, self.s_, cube, max(self.n3_, 1.0))

    # ------------------------------------------------------------------ spectral step
    def _top_eigen(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` eigenpairs of ``M2`` by signed value, largest first (cold start): Lanczos
        (ARPACK) on the implicit operator, or a dense solver when V is small."""
        V = self.n_features_in_
        if V <= 400 or 2 * k + 1 >= V:
            M2 = self._m2_times(np.eye(V))
            vals, vecs = scipy.linalg.eigh(_sym(M2), subset_by_index=[V - k, V - 1])
        else:
            op = LinearOperator(
                (V, V),
                matvec=lambda x: self._m2_times(np.reshape(x, (V, 1)))[:, 0],
                matmat=self._m2_times,
                dtype=np.float64,
            )
            try:
                vals, vecs = eigsh(op, k=k, which="LA", v0=self._rng.standard_normal(V))
            except ArpackNoConvergence:
                M2 = self._m2_times(np.eye(V))
                vals, vecs = scipy.linalg.eigh(_sym(M2), subset_by_index=[V - k, V - 1])
        order = np.argsort(vals)[::-1][:k]
        return vals[order], vecs[:, order]

    def _warm_top_eigen(self) -> tuple[np.ndarray, np.ndarray]:
        """Top eigenpairs of ``M2`` by ``subspace_iter`` steps of block subspace iteration from
        the previous refresh's basis and a Rayleigh-Ritz step.

        ``G @ basis`` is carried from refresh to refresh and updated by each flushed batch of
        documents, so the first product costs ``O(nnz_new k)``; each step costs
        ``O(nnz_total k)`` (exact) or ``O(V^2 k)`` (sketch).
        """
        assert self._basis is not None and self._gram_basis is not None
        Q, GQ = self._basis, self._gram_basis
        for _ in range(self.subspace_iter):
            Q, _ = np.linalg.qr(self._m2_from_gram(GQ, Q))
            GQ = self._gram_times(Q)
        vals, S = np.linalg.eigh(_sym(Q.T @ self._m2_from_gram(GQ, Q)))
        order = np.argsort(vals)[::-1]
        vals, S = vals[order], S[:, order]
        self._basis, self._gram_basis = Q @ S, GQ @ S
        return vals, self._basis

    def _build_sketch(self) -> None:
        m = min(self.sketch_dim or 3 * self.n_components, self.n_features_in_)
        _, Q = self._top_eigen(m)
        self._Q = Q
        # replay the warm-up buffer once, then drop it
        self._cube_q = _cube_of(np.asarray(self._stored.matrix() @ Q))
        self._stored = _GrowingCSR(self.n_features_in_)

    def _refresh(self) -> None:
        self._flush()
        self._last_refresh_n = self.n_docs_seen_
        if self.n3_ == 0:
            self.n_whitening_failures_ += 1
            return
        if self.basis == "sketch" and self._Q is None:
            self._build_sketch()
        try:
            theta, weights = self._spectral_model()
        except WhiteningError:
            self.n_whitening_failures_ += 1  # keep the previous model
            return
        self._set_spectral_model(theta, weights)
        self.n_refreshes_ += 1

    def _spectral_model(self) -> tuple[np.ndarray, np.ndarray]:
        K, V = self.n_components, self.n_features_in_
        width = min(V, K + self.oversampling)
        if self.subspace_iter > 0 and self._basis is not None:
            lam_all, basis = self._warm_top_eigen()
        else:
            lam_all, basis = self._top_eigen(width)
            self._basis, self._gram_basis = basis, self._gram_times(basis)
        lam, U = lam_all[:K], basis[:, :K]
        if lam[-1] <= self.eigen_tol * max(lam[0], 0.0) or lam[-1] <= 0:
            raise WhiteningError(f"lambda_K={lam[-1]:.3g} of M2 is not positive")
        W = U / np.sqrt(lam)
        B = U * np.sqrt(lam)
        T = self._whitened(W, GW=self._gram_basis[:, :K] / np.sqrt(lam))
        restarts = self.n_restarts if self._vectors is None else self.warm_restarts
        values, vectors = tensor_power_method(
            T, K, n_restarts=restarts, n_iter=self.n_iter, init=self._vectors, rng=self._rng
        )
        self._vectors = vectors
        theta = (B @ vectors) * values[None, :]
        weights = 1.0 / np.maximum(values, 1e-12) ** 2
        return theta, weights

    def _set_spectral_model(self, theta: np.ndarray, weights: np.ndarray) -> None:
        """Project to the simplex (sign fix, clip, renormalise), smooth, and keep topic ids
        stable across refreshes (Hungarian matching to the previous model)."""
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
        if self.n_refreshes_ > 0:
            cost = cdist(theta.T, self._theta.T, metric="cityblock")  # L1 between topics
            rows, cols = linear_sum_assignment(cost)
            perm = np.empty(K, dtype=np.int64)
            perm[cols] = rows
            theta, weights = theta[:, perm], weights[perm]
            if self._vectors is not None:
                self._vectors = self._vectors[:, perm]
        self._publish(theta, weights)

    def _publish_unigram(self) -> None:
        """The warm-up model: every topic is the add-one smoothed unigram distribution."""
        V, K = self.n_features_in_, self.n_components
        unigram = (self.s_ + 1.0) / (self.s_.sum() + V)
        self._publish(np.repeat(unigram[:, None], K, axis=1), np.full(K, 1.0 / K))
