"""Per-document update time: SpectralLeader vs stepwise online EM vs scikit-learn's online LDA.

K=10, V=1000, documents of 50 words (the issue's benchmark). Threads are pinned to 1. Each
learner consumes the same stream; we report wall-clock and CPU microseconds per document and
the ratio to the anchor (scikit-learn ``LatentDirichletAllocation.partial_fit``, mini-batches of
``--lda-batch`` documents, measured in the same run).

    .venv/bin/python benchmarks/topics_spectral_leader.py [--docs 3000]
"""

from __future__ import annotations

import argparse
import time
import warnings

from adaptlearn.core import pin_threads


def timed(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=3000)
    p.add_argument("--topics", type=int, default=10)
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--lda-batch", type=int, default=64)
    args = p.parse_args()
    pin_threads(1)
    from sklearn.decomposition import LatentDirichletAllocation

    from adaptlearn.topics import OnlineEM, SpectralLeader, generate_corpus, online_log_likelihoods

    corpus = generate_corpus(args.docs, args.topics, args.vocab, 50, random_state=0)
    X = corpus.counts
    n = X.shape[0]
    results = {}

    def lda() -> None:
        model = LatentDirichletAllocation(
            args.topics, learning_method="online", random_state=0, total_samples=n
        )
        for lo in range(0, n, args.lda_batch):
            model.partial_fit(X[lo : lo + args.lda_batch])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results["sklearn online LDA (anchor)"] = timed(lda)
    results["online EM (stepwise, batch 1)"] = timed(
        lambda: online_log_likelihoods(OnlineEM(args.topics, random_state=0), X)
    )
    results["SpectralLeader (exact, geometric refresh)"] = timed(
        lambda: online_log_likelihoods(SpectralLeader(args.topics, random_state=0), X)
    )
    results["SpectralLeader (sketch, geometric refresh)"] = timed(
        lambda: online_log_likelihoods(
            SpectralLeader(args.topics, basis="sketch", random_state=0), X
        )
    )
    anchor_wall = results["sklearn online LDA (anchor)"][0]
    print(
        f"K={args.topics} V={args.vocab} docs={n} (threads pinned to 1); online methods also "
        "score every document before learning from it"
    )
    print(f"{'method':<45}{'wall us/doc':>12}{'CPU us/doc':>12}{'docs/CPU-s':>12}{'x anchor':>10}")
    for name, (wall, cpu) in results.items():
        print(
            f"{name:<45}{1e6 * wall / n:>12.1f}{1e6 * cpu / n:>12.1f}{n / cpu:>12.0f}"
            f"{wall / anchor_wall:>10.2f}"
        )


if __name__ == "__main__":
    main()
