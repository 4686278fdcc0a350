"""Per-document cost and regret: SpectralLeader vs stepwise online EM vs scikit-learn's online LDA.

K=10, V=1000, documents of 50 words from a single-topic model (the issue's benchmark). Threads
are pinned to 1. Each learner consumes the same stream in the online protocol: every document is
scored by the model learned from the documents before it, then learned from. The anchor is
scikit-learn's ``LatentDirichletAllocation.partial_fit`` on mini-batches of ``--lda-batch``
documents, measured in the same run; its time is the updates only (our methods' times also
include scoring every document before learning from it, so their ratios are conservative).

Regret is against the best fixed model in hindsight (the true topics with the stream's mean
prior), in nats, cumulative over the stream. For LDA it is a proxy: each mini-batch is scored
before LDA learns from it, under the single-topic likelihood with LDA's normalised topics and
its normalised topic totals as weights (LDA is an admixture model, so its own predictive
likelihood of a document is not available in closed form).

    .venv/bin/python benchmarks/topics_spectral_leader.py [--docs 3000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from adaptlearn.core import pin_threads


def timed(fn) -> tuple[float, float, object]:
    """(wall s, CPU s, result) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=3000)
    p.add_argument("--topics", type=int, default=10)
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--lda-batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3, help="runs per method; the fastest counts")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    pin_threads(1)
    from sklearn.decomposition import LatentDirichletAllocation

    from adaptlearn.topics import (
        OnlineEM,
        SpectralLeader,
        generate_corpus,
        log_likelihood,
        online_log_likelihoods,
    )

    K = args.topics
    corpus = generate_corpus(args.docs, K, args.vocab, 50, random_state=args.seed)
    X = corpus.counts
    n = X.shape[0]
    best = log_likelihood(X, corpus.topic_word, corpus.mean_prior)

    def lda_updates() -> None:
        model = LatentDirichletAllocation(
            K, learning_method="online", random_state=args.seed, total_samples=n
        )
        for lo in range(0, n, args.lda_batch):
            model.partial_fit(X[lo : lo + args.lda_batch])

    def lda_regret() -> float:
        model = LatentDirichletAllocation(
            K, learning_method="online", random_state=args.seed, total_samples=n
        )
        loglik = np.empty(n)
        uniform = (np.full((args.vocab, K), 1.0 / args.vocab), np.full(K, 1.0 / K))
        for lo in range(0, n, args.lda_batch):
            batch = X[lo : lo + args.lda_batch]
            if lo == 0:
                theta, weights = uniform
            else:
                totals = model.components_
                theta = (totals / totals.sum(axis=1, keepdims=True)).T
                weights = totals.sum(axis=1) / totals.sum()
            loglik[lo : lo + batch.shape[0]] = log_likelihood(batch, theta, weights)
            model.partial_fit(batch)
        return float((best - loglik).sum())

    def online(make):
        def run() -> float:
            loglik, _ = online_log_likelihoods(make(), X)
            return float((best - loglik).sum())

        return run

    methods = {
        "sklearn online LDA (anchor)": lda_updates,
        "online EM (stepwise, alpha=1, batch 1)": online(lambda: OnlineEM(K, random_state=0)),
        "SpectralLeader (exact, geometric refresh)": online(
            lambda: SpectralLeader(K, random_state=0)
        ),
        "SpectralLeader (sketch, geometric refresh)": online(
            lambda: SpectralLeader(K, basis="sketch", random_state=0)
        ),
    }
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in methods.items():
            runs = [timed(fn) for _ in range(args.repeats)]
            wall = min(r[0] for r in runs)
            cpu = min(r[1] for r in runs)
            regret = lda_regret() if name.startswith("sklearn") else runs[0][2]
            results[name] = (wall, cpu, regret)
    anchor_wall, anchor_cpu, _ = results["sklearn online LDA (anchor)"]
    print(
        f"K={K} V={args.vocab} docs={n} L=50 seed={args.seed} (threads pinned to 1; fastest of "
        f"{args.repeats} runs; regret in nats vs the best fixed model in hindsight, LDA's a "
        "proxy)"
    )
    header = (
        f"{'method':<44}{'wall us/doc':>12}{'CPU us/doc':>11}{'docs/CPU-s':>11}"
        f"{'x anchor (CPU)':>15}{'x anchor (wall)':>16}{'regret':>9}"
    )
    print(header)
    for name, (wall, cpu, regret) in results.items():
        print(
            f"{name:<44}{1e6 * wall / n:>12.1f}{1e6 * cpu / n:>11.1f}{n / cpu:>11.0f}"
            f"{cpu / anchor_cpu:>15.2f}{wall / anchor_wall:>16.2f}{regret:>9.0f}"
        )


if __name__ == "__main__":
    main()
