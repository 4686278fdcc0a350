"""Offline real corpus: the Reuters news sample that ships inside the ``lda`` package.

The ``lda`` wheel ships a 395 x 4258 document-term matrix (84,010 tokens, documents of 36-541
words) as an LDA-C text file; we parse it directly (nothing is downloaded, and ``lda``'s own
loader leaves its file open).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from adaptlearn.core.validation import check_int

__all__ = ["load_reuters_counts"]


def load_reuters_counts(vocab_size: int = 500) -> tuple[sp.csr_matrix, list[str]]:
    """Reuters counts restricted to the ``vocab_size`` words of highest document frequency.

    Documents left with fewer than 3 in-vocabulary words are dropped (the third-order moments
    need three words).

    Returns:
        ``(counts (n_docs, vocab_size) CSR, vocabulary)``.

    Raises:
        ImportError: when the ``lda`` package is not installed.
    """
    check_int("vocab_size", vocab_size, 2, owner="load_reuters_counts")
    X, vocab = _read_reuters()
    doc_freq = np.diff(X.tocsc().indptr)
    keep = np.sort(np.argsort(-doc_freq, kind="stable")[:vocab_size])
    X = X[:, keep].tocsr()
    X = X[np.asarray(X.sum(axis=1)).ravel() >= 3]
    return X, [vocab[i] for i in keep]


def _read_reuters() -> tuple[sp.csr_matrix, list[str]]:
    """Parse the LDA-C file shipped in the ``lda`` wheel (each line: ``N id:count ...``)."""
    spec = importlib.util.find_spec("lda")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the Reuters corpus ships in the `lda` package: pip install lda")
    folder = Path(next(iter(spec.submodule_search_locations))) / "tests"
    vocab = (folder / "reuters.tokens").read_text().split()
    indptr, indices, counts = [0], [], []
    with open(folder / "reuters.ldac") as f:
        for line in f:
            for pair in line.split()[1:]:
                word, count = pair.split(":")
                indices.append(int(word))
                counts.append(int(count))
            indptr.append(len(indices))
    X = sp.csr_matrix(
        (np.array(counts, dtype=np.int64), indices, indptr), shape=(len(indptr) - 1, len(vocab))
    )
    return X, vocab
