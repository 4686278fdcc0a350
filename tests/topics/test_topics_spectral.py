"""SpectralLeader, its moment identities, the power method, online EM and the generator."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from adaptlearn.topics import (
    BatchEM,
    OnlineEM,
    SpectralLeader,
    as_count_matrix,
    generate_corpus,
    log_likelihood,
    match_topics,
    online_log_likelihoods,
    tensor_power_method,
    whitened_third_moment,
)


def brute_force_m3(X: np.ndarray) -> tuple[np.ndarray, float]:
    """Sum over documents of the unbiased N3(c) (all ordered triples of distinct positions)."""
    X = X.astype(float)
    V = X.shape[1]
    eye = np.eye(V)
    A, s = X.T @ X, X.sum(0)
    total = np.einsum("ni,nj,nk->ijk", X, X, X)
    total -= np.einsum("ij,ik->ijk", eye, A)  # i == j
    total -= np.einsum("jk,ij->ijk", eye, A)  # j == k
    total -= np.einsum("ik,ij->ijk", eye, A)  # i == k
    total += 2 * np.einsum("ij,jk,i->ijk", eye, eye, s)
    L = X.sum(1)
    return total, float((L * (L - 1) * (L - 2)).sum())


def brute_force_m2(X: np.ndarray) -> tuple[np.ndarray, float]:
    """Sum over documents of the unbiased N2(c) = c c^T - diag(c) (ordered pairs of distinct
    positions), and sum_d L_d (L_d - 1)."""
    X = X.astype(float)
    L = X.sum(1)
    return X.T @ X - np.diag(X.sum(0)), float((L * (L - 1)).sum())


def test_n3_estimator_diagonals_match_counting():
    c = np.array([[3, 2, 0, 1]])
    t, _ = brute_force_m3(c)
    assert t[0, 0, 0] == 3 * 2 * 1 and t[0, 0, 1] == 3 * 2 * 2 and t[2, 2, 2] == 0
    assert t.sum() == 6 * 5 * 4  # ordered triples of distinct positions


def test_whitened_third_moment_equals_brute_force():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 4, size=(15, 7))
    W = rng.standard_normal((7, 3))
    G, s = X.T.astype(float) @ X, X.sum(0).astype(float)
    Y = X @ W
    cube = np.einsum("na,nb,nc->abc", Y, Y, Y)
    m3, n3 = brute_force_m3(X)
    expected = np.einsum("ijk,ia,jb,kc->abc", m3, W, W, W) / n3
    np.testing.assert_allclose(whitened_third_moment(W, G @ W, s, cube, n3), expected, atol=1e-12)


def _mixed_length_corpus(rng: np.random.Generator, V: int = 9) -> np.ndarray:
    """Documents of 1, 2, 3 and more words (and empty ones), in a shuffled order."""
    lengths = np.array([1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 6, 9, 0, 1, 2, 5] * 3)
    rng.shuffle(lengths)
    topics = rng.dirichlet(np.full(V, 0.3), size=3)
    return np.array([rng.multinomial(L, topics[rng.integers(3)]) for L in lengths])


@pytest.mark.parametrize("basis", ["exact", "sketch"])
def test_moments_are_exact_for_every_document_length(basis):
    """Issue #22: with documents of 1 and 2 words, every document must enter every sum (the old
    bookkeeping put all of them in s but only L >= 2 in G and L >= 3 in the cube term)."""
    rng = np.random.default_rng(11)
    X = _mixed_length_corpus(rng)
    V = X.shape[1]
    m2, n2 = brute_force_m2(X)
    m3, n3 = brute_force_m3(X)
    W = rng.standard_normal((V, 4))
    expected_t = np.einsum("ijk,ia,jb,kc->abc", m3, W, W, W) / n3
    # one batch, and the same documents one at a time (the refresh schedule interleaved)
    kw = {"basis": basis, "sketch_dim": V, "warmup_docs": 20, "refresh": 7, "random_state": 0}
    whole = SpectralLeader(2, **kw).fit(X)
    streamed = SpectralLeader(2, **kw)
    for row in X:
        streamed.partial_fit(row[None, :])
    for model in (whole, streamed):
        assert model.n2_ == n2 and model.n3_ == n3
        np.testing.assert_array_equal(model.s_, X.sum(0))
        np.testing.assert_allclose(model.second_moment(), m2 / n2, atol=1e-15)
        np.testing.assert_allclose(model.whitened_third_moment(W), expected_t, atol=1e-13)
    assert np.abs(m2 / n2).max() > 0.01 and np.abs(expected_t).max() > 1e-3


def test_population_moments_are_unbiased():
    corpus = generate_corpus(20000, 3, 6, 5, beta=1.0, random_state=1)
    X = corpus.counts.toarray()
    m3, n3 = brute_force_m3(X)
    th, p = corpus.topic_word, corpus.mean_prior
    population = np.einsum("k,ik,jk,lk->ijl", p, th, th, th)
    assert np.abs(m3 / n3 - population).max() < 0.01


@given(st.integers(0, 10_000))
def test_power_method_recovers_orthogonal_decomposition(seed):
    rng = np.random.default_rng(seed)
    K = 4
    V, _ = np.linalg.qr(rng.standard_normal((K, K)))
    lam = rng.uniform(1.0, 5.0, K)
    T = np.einsum("k,ak,bk,ck->abc", lam, V, V, V)
    values, vectors = tensor_power_method(T, K, n_restarts=8, n_iter=50, rng=rng)
    order = np.argsort(-lam)
    np.testing.assert_allclose(np.sort(values)[::-1], lam[order], rtol=1e-6)
    overlap = np.abs(vectors.T @ V)
    assert np.allclose(overlap.max(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("n_docs", [500, 4000])
def test_batch_spectral_recovers_topics_error_shrinks(n_docs):
    corpus = generate_corpus(n_docs, 4, 80, 30, random_state=3)
    model = SpectralLeader(4, random_state=0).fit(corpus.counts)
    _, err = match_topics(model.components_.T, corpus.topic_word)
    bound = {500: 0.35, 4000: 0.12}[n_docs]
    assert err < bound
    assert np.allclose(model.components_.sum(1), 1) and np.isclose(model.weights_.sum(), 1)


def test_error_decreases_with_corpus_size_same_topics():
    big = generate_corpus(6000, 4, 80, 30, random_state=5)
    errs = []
    for n in (300, 1500, 6000):
        model = SpectralLeader(4, random_state=0).fit(big.counts[:n])
        errs.append(match_topics(model.components_.T, big.topic_word)[1])
    assert errs[0] > errs[1] > errs[2]


def test_loglik_invariant_to_topic_permutation_and_match_topics():
    corpus = generate_corpus(50, 3, 20, 10, random_state=0)
    th, p = corpus.topic_word, corpus.mean_prior
    perm = np.array([2, 0, 1])
    np.testing.assert_allclose(
        log_likelihood(corpus.counts, th, p), log_likelihood(corpus.counts, th[:, perm], p[perm])
    )
    found, err = match_topics(th[:, perm], th)
    assert err == 0.0
    np.testing.assert_array_equal(th[:, perm][:, found], th)


def test_online_spectral_leader_beats_em_on_k10_and_keeps_cost_flat():
    corpus = generate_corpus(1500, 8, 120, 40, random_state=2)
    best = log_likelihood(corpus.counts, corpus.topic_word, corpus.mean_prior)
    sl = SpectralLeader(8, random_state=0)
    ll_sl, _ = online_log_likelihoods(sl, corpus.counts)
    em = OnlineEM(8, alpha=1.0, random_state=0)
    ll_em, _ = online_log_likelihoods(em, corpus.counts)
    regret_sl, regret_em = (best - ll_sl).sum(), (best - ll_em).sum()
    assert regret_sl < regret_em
    # geometric schedule: O(log n) refreshes
    assert 10 < sl.n_refreshes_ < 40
    # sublinear regret: the regret per word over the last quarter is near zero (a model that
    # stops learning keeps a constant regret per word; a costly start cannot hide that)
    words = np.asarray(corpus.counts.sum(axis=1)).ravel()
    assert (best - ll_sl)[1125:].sum() / words[1125:].sum() < 0.02


def test_sketch_with_full_basis_equals_exact():
    corpus = generate_corpus(300, 3, 15, 12, random_state=4)
    exact = SpectralLeader(3, refresh=100, warmup_docs=100, random_state=0)
    sketch = SpectralLeader(
        3, refresh=100, warmup_docs=100, basis="sketch", sketch_dim=15, random_state=0
    )
    exact.partial_fit(corpus.counts)
    sketch.partial_fit(corpus.counts)
    np.testing.assert_allclose(exact.components_, sketch.components_, atol=1e-8)


def test_topic_order_is_stable_across_refreshes():
    corpus = generate_corpus(3000, 4, 60, 30, random_state=6)
    model = SpectralLeader(4, refresh=500, warmup_docs=500, random_state=0)
    model.partial_fit(corpus.counts[:1500])
    before = model.components_.T.copy()
    model.partial_fit(corpus.counts[1500:])
    perm, _ = match_topics(model.components_.T, before)
    np.testing.assert_array_equal(perm, np.arange(4))


def test_pickle_round_trip_continues_identically():
    corpus = generate_corpus(600, 3, 30, 15, random_state=7)
    a = SpectralLeader(3, refresh=50, random_state=1).partial_fit(corpus.counts[:300])
    b = pickle.loads(pickle.dumps(a))
    a.partial_fit(corpus.counts[300:])
    b.partial_fit(corpus.counts[300:])
    np.testing.assert_array_equal(a.components_, b.components_)


def test_one_batch_equals_one_document_at_a_time():
    """partial_fit absorbs a batch in chunks that end where a refresh is due: the same model as
    feeding the documents one by one (geometric and fixed schedules)."""
    corpus = generate_corpus(400, 3, 40, 12, random_state=12)
    for refresh in ("geometric", 37):
        a = SpectralLeader(3, refresh=refresh, random_state=0).partial_fit(corpus.counts)
        b = SpectralLeader(3, refresh=refresh, random_state=0)
        for i in range(400):
            b.partial_fit(corpus.counts[i : i + 1])
        assert a.n_refreshes_ == b.n_refreshes_ > 3
        np.testing.assert_allclose(a.components_, b.components_, atol=1e-10)


def test_warm_simultaneous_power_method_matches_the_sequential_one():
    """The fast warm path (all deflated iterations at once) has the sequential method's fixed
    points: the same eigenpairs on a noisy, not exactly decomposable tensor."""
    rng = np.random.default_rng(5)
    K = 6
    V, _ = np.linalg.qr(rng.standard_normal((K, K)))
    T = np.einsum("k,ak,bk,ck->abc", rng.uniform(1.0, 5.0, K), V, V, V)
    noise = 0.01 * rng.standard_normal((K, K, K))
    perms = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    T += sum(noise.transpose(p) for p in perms) / 6
    values, vectors = tensor_power_method(T, K, n_restarts=10, n_iter=200, tol=1e-13, rng=rng)
    start = vectors + 0.05 * rng.standard_normal((K, K))
    fast = tensor_power_method(T, K, n_restarts=0, n_iter=200, tol=1e-13, init=start, rng=rng)
    np.testing.assert_allclose(fast[0], values, atol=1e-10)
    np.testing.assert_allclose(fast[1], vectors, atol=1e-10)


def test_partial_fit_fast_path_matches_public_path():
    corpus = generate_corpus(200, 3, 30, 10, random_state=8)
    a = SpectralLeader(3, refresh=40, random_state=0)
    online_log_likelihoods(a, corpus.counts)
    b = SpectralLeader(3, refresh=40, random_state=0)
    for i in range(200):
        b.partial_fit(corpus.counts[i : i + 1])
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-12)
    e1 = OnlineEM(3, random_state=0)
    online_log_likelihoods(e1, corpus.counts)
    e2 = OnlineEM(3, random_state=0)
    for i in range(200):
        e2.partial_fit(corpus.counts[i : i + 1])
    np.testing.assert_allclose(e1.components_, e2.components_, rtol=1e-10)


def test_bad_documents_raise_clear_errors():
    model = SpectralLeader(2).partial_fit(np.array([[1, 2, 0, 0, 0], [0, 0, 0, 0, 0]]))
    assert model.n_docs_seen_ == 2  # an empty document is allowed and adds nothing
    with pytest.raises(ValueError, match=r"out-of-vocabulary word id 7; ids must be in \[0, 4\]"):
        as_count_matrix([[0, 1, 7]], vocab_size=5)
    with pytest.raises(ValueError, match="non-negative integers"):
        model.partial_fit(np.array([[1.5, 2, 0, 0, 0]]))
    with pytest.raises(ValueError, match="Negative values in data passed to SpectralLeader"):
        model.partial_fit(np.array([[-1, 2, 0, 0, 0]]))
    with pytest.raises(ValueError, match="X has 4 features, but SpectralLeader is expecting 5"):
        model.partial_fit(np.ones((1, 4), dtype=int))
    with pytest.raises(ValueError, match=r"`n_components` of SpectralLeader must be an int"):
        SpectralLeader(0).fit(np.ones((3, 4), dtype=int))
    with pytest.raises(ValueError, match=r"`alpha` of OnlineEM must be a float in \(0.5, 1\]"):
        OnlineEM(3, alpha=0.3).fit(np.ones((3, 4), dtype=int))
    with pytest.raises(ValueError, match="`refresh` of SpectralLeader must be 'geometric' or"):
        SpectralLeader(2, refresh="often").fit(np.ones((3, 4), dtype=int))
    with pytest.raises(NotFittedError):
        SpectralLeader(2).score_samples(np.ones((1, 3), dtype=int))


def test_word_id_lists_and_count_matrix_agree():
    X = as_count_matrix([[0, 0, 2], [1, 3, 3, 3]], vocab_size=4)
    np.testing.assert_array_equal(X.toarray(), [[2, 0, 1, 0], [0, 1, 0, 3]])
    assert sp.issparse(X)


def test_generator_is_seeded_and_switches_prior():
    a = generate_corpus(100, 4, 20, 5, setting="switch", switch_every=25, random_state=0)
    b = generate_corpus(100, 4, 20, 5, setting="switch", switch_every=25, random_state=0)
    assert (a.counts != b.counts).nnz == 0
    assert np.all(a.counts.sum(axis=1) == 5)
    assert a.priors[0, :2].sum() == pytest.approx(0.9) and a.priors[30, 2:].sum() == pytest.approx(
        0.9
    )
    first_half = (a.topics[:25] < 2).mean()
    assert first_half > 0.7


def test_batch_em_improves_likelihood_from_spectral_init():
    corpus = generate_corpus(800, 3, 40, 20, random_state=9)
    spectral = SpectralLeader(3, random_state=0).fit(corpus.counts)
    refined = BatchEM(3, init=spectral.components_.T).fit(corpus.counts)
    assert refined.score_samples(corpus.counts).sum() >= spectral.score(corpus.counts)


def test_reuters_ships_offline():
    from adaptlearn.topics.data import load_reuters_counts

    X, vocab = load_reuters_counts(200)
    assert X.shape[1] == 200 == len(vocab)
    assert X.shape[0] > 350 and np.all(np.asarray(X.sum(1)) >= 3)


def test_float_word_ids_and_more_topics_than_words_are_refused():
    with pytest.raises(ValueError, match="non-integer word ids"):
        as_count_matrix([[0.0, 1.5, 2.0]], vocab_size=5)
    assert as_count_matrix([[0, 1, 1]], vocab_size=5).toarray().tolist() == [[1, 2, 0, 0, 0]]
    with pytest.raises(ValueError, match=r"must be <= the number of words; X has 4 feature"):
        SpectralLeader(6).partial_fit(np.ones((3, 4), dtype=int))
