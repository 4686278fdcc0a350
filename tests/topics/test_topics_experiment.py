"""The spectral-leader experiment: tiny preset, and a verdict that can go either way."""

import json

import numpy as np

from adaptlearn.cli import main
from adaptlearn.experiments.spectral_leader import (
    DECLINE_FACTOR,
    SL,
    TUNED_EM,
    segment_regrets,
    verdict,
    verdict_rows,
)
from adaptlearn.topics import (
    SpectralLeader,
    generate_corpus,
    log_likelihood,
    online_log_likelihoods,
)


def test_tiny_preset_end_to_end_is_plumbing_only(tmp_path):
    assert main(["run", "spectral-leader", "--preset", "tiny", "--out", str(tmp_path),
                 "--quiet"]) == 0
    (run,) = (tmp_path / "spectral-leader").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert (run / "figures" / "regret.png").exists() and (run / "metrics.csv").exists()
    assert (results["verdict"]["outcome"], results["verdict"]["reason"]) == (
        "inconclusive", "plumbing-only")
    assert "spectral-leader [stationary]" in results["methods"]


class _R:
    def __init__(self, method, setting, seed, final, alpha=None):
        params = (("setting", setting),) if alpha is None else (("alpha", alpha),
                                                                ("setting", setting))
        self.trial = type("T", (), {"method": method, "seed": seed,
                                    "param": lambda _, k, p=dict(params): p.get(k)})()
        self.final = final


def _results(rng, sl_excess, decline, n_seeds=5, noise=0.01):
    out = []
    for setting in ("stationary", "switch", "reuters"):
        for seed in range(n_seeds):
            em_level = 0.3 + 0.05 * rng.normal()
            q2 = em_level + sl_excess + 0.1
            out.append(_R(SL, setting, seed, {
                "regret_per_word_first_half": q2 + 0.2,
                "regret_per_word_second_half": em_level + sl_excess + noise * rng.normal(),
                "regret_per_word_q2": q2 + noise * rng.normal(),
                "regret_per_word_q4": q2 * (1 - decline) + noise * rng.normal()}))
            for alpha, shift in ((0.6, 0.1), (0.8, 0.0), (1.0, 0.05)):
                out.append(_R("online-em", setting, seed, {
                    "regret_per_word_first_half": em_level + shift + 0.2,
                    "regret_per_word_second_half": em_level + shift + noise * rng.normal()},
                    alpha=alpha))
    return out


def test_em_is_tuned_on_the_first_half_only():
    rows = verdict_rows(_results(np.random.default_rng(0), 0.0, 0.6))
    assert {r["alpha"] for r in rows if r["method"] == TUNED_EM} == {0.8}


def test_null_is_never_supported():
    rng = np.random.default_rng(1)
    # a model that never learns (no decline) and is worse than tuned EM
    outcomes = {verdict(verdict_rows(_results(rng, 0.1, 0.0))).outcome for _ in range(100)}
    assert "supported" not in outcomes
    no_decline = {verdict(verdict_rows(_results(rng, 0.0, 0.0))).outcome for _ in range(100)}
    assert "supported" not in no_decline


def test_planted_effect_is_supported():
    v = verdict(verdict_rows(_results(np.random.default_rng(2), -0.02, 0.6)))
    assert (v.outcome, v.reason) == ("supported", "holds")
    assert verdict(verdict_rows(_results(np.random.default_rng(2), -0.02, 0.6)),
                   preset="tiny").reason == "plumbing-only"


def test_a_frozen_model_fails_the_sublinearity_check_despite_a_costly_start():
    """The old check (second half < half of first half) passed a model that never learns."""
    corpus = generate_corpus(2000, n_topics=5, vocab_size=100, doc_length=30, random_state=0)
    X = corpus.counts
    best = log_likelihood(X, corpus.topic_word, corpus.mean_prior)
    words = np.asarray(X.sum(axis=1)).ravel()
    frozen = SpectralLeader(5, random_state=0).fit(X[:60])
    loglik = log_likelihood(X, frozen.topic_word_, frozen.weights_)
    loglik[:200] -= 50.0  # a costly start
    f = segment_regrets(best - loglik, words)
    learner, _ = online_log_likelihoods(SpectralLeader(5, random_state=0), X)
    g = segment_regrets(best - learner, words)
    # the old criterion accepted the frozen model ...
    assert f["regret_per_word_second_half"] < 0.5 * f["regret_per_word_first_half"]
    # ... the new one sees no fall for it and a clear one for the learner
    assert f["regret_per_word_q4"] > DECLINE_FACTOR * f["regret_per_word_q2"]
    assert g["regret_per_word_q4"] < DECLINE_FACTOR * g["regret_per_word_q2"]
