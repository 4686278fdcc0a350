"""``spectral-leader``: online regret of SpectralLeader versus stepwise online EM.

Synthetic single-topic streams (stationary prior and a switching, non-stationary prior) and the
Reuters sample that ships in the ``lda`` package. Each document is predicted by the model built
from the documents before it; regret is measured against the best fixed model in hindsight (the
true topics with the stream's average prior; on Reuters, the best of several batch-EM fits).

Design (config -> trials -> declared claim -> figures): per stream and seed, SpectralLeader and
online EM at every alpha on the judged stream, and online EM at every alpha on a validation
stream of its own (seed + :data:`VALIDATION_SEED_OFFSET`), where the alpha judged is chosen. The
claim (:func:`verdict`) is judged per stream, paired by seed: SpectralLeader's regret per word is
within :data:`SIMILAR_MARGIN` of tuned online EM's or better, and on the synthetic streams its
regret per word over the last quarter is below :data:`SUBLINEAR_EPS` (it goes to zero), which a
model frozen after its warm-up documents must fail (the control).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaptlearn.core import (
    RunContext,
    Trial,
    TrialContext,
    check_choice,
    check_int,
    check_range,
    new_figure,
    plot_curves,
    register,
)
from adaptlearn.core.verdict import Claim, Comparison, Precondition, Verdict, compare, judge
from adaptlearn.topics import (
    BatchEM,
    OnlineEM,
    SpectralLeader,
    generate_corpus,
    log_likelihood,
    match_topics,
    online_log_likelihoods,
)
from adaptlearn.topics.data import load_reuters_counts

SL = "spectral-leader"


@dataclass
class SpectralLeaderConfig:
    """Config of the spectral-leader experiment."""

    n_docs: int = 3000
    """Documents per synthetic stream."""
    n_topics: int = 10
    """K."""
    vocab_size: int = 300
    """V of the synthetic streams."""
    doc_length: int = 50
    """Words per synthetic document."""
    beta: float = 0.1
    """Dirichlet concentration of the true topics (small: well separated)."""
    settings: tuple[str, ...] = ("stationary", "switch")
    """Synthetic settings; "switch" moves 90% of the prior between topic halves."""
    switch_every: int = 1000
    """Documents between prior switches."""
    alphas: tuple[float, ...] = (0.6, 0.8, 1.0)
    """Step-size exponents of online EM; the one judged is chosen per seed on a validation
    stream."""
    refresh: int = 0
    """SpectralLeader refresh period in documents (0: geometric schedule)."""
    growth: float = 0.1
    """Growth factor of the geometric refresh schedule."""
    warmup_docs: int = 50
    """Documents before SpectralLeader's first spectral model (unigram until then)."""
    reuters: bool = True
    """Also run the Reuters stream (395 documents, from the lda package)."""
    reuters_vocab: int = 500
    """Vocabulary of the Reuters stream (highest document frequency)."""
    n_seeds: int = 5
    """Seeds (each seed draws a new corpus, or a new Reuters order, and new initializations;
    the verdict pairs by seed and needs >= 3)."""
    curve_points: int = 30
    """Points of each regret curve."""

    def validate(self) -> None:
        """Check every field."""
        o = "SpectralLeaderConfig"
        check_int("n_docs", self.n_docs, 100, owner=o)
        check_int("n_topics", self.n_topics, 2, owner=o)
        check_int("vocab_size", self.vocab_size, self.n_topics, owner=o)
        check_int("doc_length", self.doc_length, 3, owner=o)
        check_range("beta", self.beta, 0.0, low_inclusive=False, owner=o)
        for s in self.settings:
            check_choice("settings", s, ("stationary", "switch"), owner=o)
        for a in self.alphas:
            check_range("alphas", a, 0.5, 1.0, low_inclusive=False, owner=o)
        check_int("refresh", self.refresh, 0, owner=o)
        check_int("n_seeds", self.n_seeds, 1, owner=o)
        check_int("curve_points", self.curve_points, 2, owner=o)


@functools.lru_cache(maxsize=2)
def _reuters_best(vocab_size: int, n_topics: int) -> tuple[Any, np.ndarray]:
    """Reuters counts and the per-document log-likelihood of the best fixed model in
    hindsight: the best of several batch-EM fits (fixed seeds: a property of the corpus, the
    same for every order of the stream; cached, so each worker fits once)."""
    X, _ = load_reuters_counts(vocab_size)
    fits = [
        BatchEM(n_topics, init=init, random_state=r).fit(X)
        for init in ("flat", "dirichlet")
        for r in range(2)
    ]
    spectral = SpectralLeader(n_topics, warmup_docs=10, random_state=0).fit(X)
    fits.append(BatchEM(n_topics, init=spectral.components_.T).fit(X))
    top = max(fits, key=lambda f: f.score_samples(X).sum())
    return X, top.score_samples(X)


def _stream(setting: str, cfg: SpectralLeaderConfig, seed: int, *, best: bool = True):
    """(counts, best-in-hindsight log-likelihood per doc or None, true topics or None).

    Reuters: the 395 documents in an order drawn from ``seed`` (the stream of one seed); the
    best fixed model in hindsight (the best of several batch-EM fits) does not depend on it.
    """
    if setting == "reuters":
        if best:
            X, top = _reuters_best(cfg.reuters_vocab, cfg.n_topics)
        else:
            X, top = load_reuters_counts(cfg.reuters_vocab)[0], None
        order = np.random.default_rng(seed).permutation(X.shape[0])
        return X[order], (None if top is None else top[order]), None
    corpus = generate_corpus(
        cfg.n_docs,
        cfg.n_topics,
        cfg.vocab_size,
        cfg.doc_length,
        beta=cfg.beta,
        setting=setting,
        switch_every=cfg.switch_every,
        random_state=seed,
    )
    top = log_likelihood(corpus.counts, corpus.topic_word, corpus.mean_prior) if best else None
    return corpus.counts, top, corpus.topic_word


def segment_regrets(regret_per_doc: np.ndarray, words_per_doc: np.ndarray) -> dict[str, float]:
    """Regret per word over the whole stream, its halves and its second and last quarters.

    Per word, so that one practical margin serves streams of any document length. Sublinear
    regret means the regret per word of the last part of the stream goes to zero; a model that
    stops learning keeps it at a constant above zero (linear regret), however costly its start.
    """
    r = np.asarray(regret_per_doc, dtype=float)
    w = np.maximum(np.asarray(words_per_doc, dtype=float), 1.0)
    n = r.size
    q = [0, n // 4, n // 2, (3 * n) // 4, n]

    def per_word(lo: int, hi: int) -> float:
        return float(r[lo:hi].sum() / w[lo:hi].sum())

    return {
        "regret_per_word": per_word(0, n),
        "regret_per_word_first_half": per_word(0, q[2]),
        "regret_per_word_second_half": per_word(q[2], n),
        "regret_per_word_q2": per_word(q[1], q[2]),
        "regret_per_word_q4": per_word(q[3], n),
    }


def run_stream(trial: Trial, cfg: SpectralLeaderConfig, tctx: TrialContext) -> dict:
    """One method on one stream: per-document online log-likelihood, regret, topic error.

    ``split="validation"`` trials (online EM only) run on a separate stream drawn from
    ``seed + VALIDATION_SEED_OFFSET`` and report only the online log-likelihood per word, on
    which the alpha is chosen. SpectralLeader trials also score the control: the model
    SpectralLeader has after its warm-up documents, frozen (it never learns again).
    """
    setting = trial.param("setting")
    validation = trial.param("split") == "validation"
    seed = trial.seed + VALIDATION_SEED_OFFSET if validation else trial.seed
    X, best, truth = _stream(setting, cfg, seed, best=not validation)
    words = np.asarray(X.sum(axis=1)).ravel()
    warmup = min(cfg.warmup_docs, X.shape[0] // 4)
    if trial.method == SL:
        learner = SpectralLeader(
            cfg.n_topics,
            refresh=cfg.refresh or "geometric",
            growth=cfg.growth,
            warmup_docs=warmup,
            random_state=trial.seed,
        )
    else:
        learner = OnlineEM(cfg.n_topics, alpha=float(trial.param("alpha")), random_state=trial.seed)
    loglik, fit_s = online_log_likelihoods(learner, X)
    if validation:
        return {"final": {"loglik_per_word": float(loglik.sum() / words.sum())}, "curve": []}
    regret = np.cumsum(best - loglik)
    n = X.shape[0]
    points = np.unique(np.linspace(0, n - 1, cfg.curve_points).astype(int))
    curve = [{"docs": int(i + 1), "regret": float(regret[i]), "setting": setting} for i in points]
    final = {
        "regret": float(regret[-1]),
        **segment_regrets(best - loglik, words),
        "update_us_per_doc": 1e6 * fit_s / n,
    }
    if trial.method == SL:
        frozen = SpectralLeader(cfg.n_topics, warmup_docs=warmup, random_state=trial.seed)
        frozen.fit(X[:warmup])
        frozen_regret = segment_regrets(best - frozen.score_samples(X), words)
        final["frozen_regret_per_word_q4"] = frozen_regret["regret_per_word_q4"]
    if truth is not None:
        final["topic_l1_error"] = match_topics(learner.components_.T, truth)[1]
    return {"final": final, "curve": curve}


TUNED_EM = "online-em-tuned"
#: Offset of the seed of each validation stream (where online EM's alpha is chosen) from the
#: seed of the stream it is judged on, so that the choice never sees the judged documents.
VALIDATION_SEED_OFFSET = 10_000
#: Non-inferiority margin: SpectralLeader's regret per word may exceed tuned online EM's by at
#: most 0.05 nats (about 5% in per-word perplexity): "similar to or better than".
SIMILAR_MARGIN = 0.05
#: Sublinear regret: the regret per word over the last quarter of the stream must be below this
#: practical zero (nats per word; about 2% in per-word perplexity). A model that stops learning
#: keeps a constant regret per word, which on these streams is several times larger (the
#: frozen-model control below checks that on every run).
SUBLINEAR_EPS = 0.02
#: Streams on which sublinearity is judged: the synthetic ones, drawn from the model the theory
#: is about, with n_docs documents. Reuters (395 documents, V=500) is too short for any online
#: learner to approach a batch fit of the whole corpus; it is judged against online EM only.
SUBLINEAR_SETTINGS = ("stationary", "switch")
#: Method names of the sublinearity rows.
SL_Q4, FROZEN_Q4, ZERO = "sl_q4", "frozen_q4", "practical_zero"


def verdict_rows(results: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows per (stream, seed): SpectralLeader; online EM with the alpha that had the highest
    online log-likelihood per word on the *validation* stream of that seed (method
    ``online-em-tuned``, its ``alpha`` recorded); and, for the sublinearity comparison, the
    last-quarter regret per word of SpectralLeader (``sl_q4``), of the frozen model
    (``frozen_q4``) and the practical zero (``practical_zero`` = :data:`SUBLINEAR_EPS`)."""
    rows: list[dict[str, Any]] = []
    keys = {(r.trial.param("setting"), r.trial.seed) for r in results}
    for setting, seed in sorted(keys):
        mine = [r for r in results if (r.trial.param("setting"), r.trial.seed) == (setting, seed)]
        base = {"setting": setting, "seed": seed}
        for r in mine:
            if r.trial.method == SL:
                rows.append({**base, "method": SL, **r.final})
                rows.append(
                    {**base, "method": SL_Q4, "regret_per_word": r.final["regret_per_word_q4"]}
                )
                rows.append(
                    {
                        **base,
                        "method": FROZEN_Q4,
                        "regret_per_word": r.final["frozen_regret_per_word_q4"],
                    }
                )
                rows.append({**base, "method": ZERO, "regret_per_word": SUBLINEAR_EPS})
        val = [r for r in mine if r.trial.method != SL and r.trial.param("split") == "validation"]
        test = {
            r.trial.param("alpha"): r
            for r in mine
            if r.trial.method != SL and r.trial.param("split") != "validation"
        }
        if val and test:
            alpha = max(val, key=lambda r: r.final["loglik_per_word"]).trial.param("alpha")
            if alpha in test:
                rows.append({**base, "method": TUNED_EM, "alpha": alpha, **test[alpha].final})
    return rows


def verdict(rows: Sequence[Mapping[str, Any]], *, preset: str = "quick") -> Verdict:
    """The paper's claim (pure), per stream, paired by seed (>= 3).

    1. Similar or better: SpectralLeader's regret per word over the stream is no worse than
       online EM's (alpha chosen on a validation stream) by more than :data:`SIMILAR_MARGIN`.
    2. Sublinear regret (synthetic streams): SpectralLeader's regret per word over the last
       quarter is below :data:`SUBLINEAR_EPS`.

    Control (per synthetic stream): the frozen model (SpectralLeader's model after its warm-up
    documents, never updated) has a last-quarter regret per word above :data:`SUBLINEAR_EPS`;
    else the stream cannot tell a learner from a model that never learns:
    ``control-failed``.
    """
    settings = sorted({r["setting"] for r in rows})
    comparisons, pre = [], []
    for s in settings:
        comparisons.append(
            Comparison(
                "regret_per_word",
                SL,
                TUNED_EM,
                higher_is_better=False,
                margin=-SIMILAR_MARGIN,
                where={"setting": s},
                label=f"SpectralLeader vs online EM (alpha tuned on validation): regret/word [{s}]",
            )
        )
        if s not in SUBLINEAR_SETTINGS:
            continue
        comparisons.append(
            Comparison(
                "regret_per_word",
                SL_Q4,
                ZERO,
                higher_is_better=False,
                margin=0.0,
                where={"setting": s},
                label=f"sublinear: SpectralLeader's last-quarter regret/word < {SUBLINEAR_EPS:g} "
                f"[{s}]",
            )
        )
        control = compare(
            Comparison(
                "regret_per_word",
                FROZEN_Q4,
                ZERO,
                higher_is_better=True,
                margin=0.0,
                where={"setting": s},
            ),
            rows,
        )
        pre.append(
            Precondition.from_comparison(
                control,
                f"a frozen model fails the sublinearity check [{s}] (its last-quarter "
                f"regret/word is above {SUBLINEAR_EPS:g})",
            )
        )
    if not comparisons:
        comparisons.append(Comparison("regret_per_word", SL, TUNED_EM))
    claim = Claim(
        statement="on every stream, SpectralLeader's regret is similar to or better than online "
        f"EM's with alpha tuned on a validation stream (no worse by > {SIMILAR_MARGIN:g} nats "
        "per word), and on the synthetic streams it grows sublinearly (regret per word over the "
        f"last quarter below {SUBLINEAR_EPS:g} nats)",
        comparisons=tuple(comparisons),
        min_pairs=3,
    )
    return judge(claim, rows, preconditions=pre, preset=preset)


@register(
    "spectral-leader",
    family="topics",
    paper="Yu, Kveton, Wen, Bui, Mengshoel. SpectralLeader: Online Spectral Learning for Single "
    "Topic Models. ECML PKDD 2018 (arXiv:1709.07172)",
    claim="SpectralLeader converges to the global optimum (regret grows sublinearly) and its "
    "regret is similar to or better than online EM with tuned hyperparameters.",
    config=SpectralLeaderConfig,
    presets={
        "tiny": {
            "n_docs": 400,
            "n_topics": 4,
            "vocab_size": 60,
            "doc_length": 20,
            "alphas": (0.8, 1.0),
            "n_seeds": 1,
            "settings": ("stationary",),
            "reuters": False,
            "curve_points": 10,
        },
        "full": {"n_docs": 10000, "vocab_size": 500, "switch_every": 1000, "n_seeds": 10},
    },
)
def run(cfg: SpectralLeaderConfig, ctx: RunContext) -> None:
    """Run SpectralLeader and online EM (every alpha, on the judged and the validation stream)
    on every stream and seed; judge the declared claim."""
    streams = list(cfg.settings) + (["reuters"] if cfg.reuters else [])
    trials = []
    for setting in streams:
        for seed in ctx.seeds:
            trials.append(Trial(SL, seed, (("setting", setting),)))
            for a in cfg.alphas:
                trials.append(Trial("online-em", seed, (("alpha", a), ("setting", setting))))
                trials.append(
                    Trial(
                        "online-em",
                        seed,
                        (("alpha", a), ("setting", setting), ("split", "validation")),
                    )
                )
    results = ctx.run_trials(run_stream, trials)
    judged = [r for r in results if r.trial.param("split") != "validation"]

    rows = verdict_rows(results)
    table = []
    for setting in streams:
        for r in judged:
            if r.trial.param("setting") != setting:
                continue
            name = SL if r.trial.method == SL else f"online-em(alpha={r.trial.param('alpha')})"
            for metric, value in r.final.items():
                ctx.add_result(f"{name} [{setting}]", metric, value, higher_is_better=False)
            for row in r.curve:
                ctx.log(method=name, seed=r.trial.seed, **row)
        mine = [x for x in rows if x["setting"] == setting]

        def mean(method: str, key: str, rows_: list = mine) -> float:
            return float(np.mean([x[key] for x in rows_ if x["method"] == method]))

        em = [x for x in mine if x["method"] == TUNED_EM]
        table.append(
            f"| {setting} | {mean(SL, 'regret_per_word'):.4f} | "
            f"{mean(TUNED_EM, 'regret_per_word'):.4f} | "
            f"{', '.join(str(x['alpha']) for x in em)} | {mean(SL_Q4, 'regret_per_word'):.4f} | "
            f"{mean(FROZEN_Q4, 'regret_per_word'):.4f} |"
        )
    ctx.add_section(
        "SpectralLeader versus tuned online EM (regret per word, nats)",
        "| stream | SpectralLeader | online EM, alpha tuned on validation | alpha per seed "
        "| SpectralLeader, last quarter | frozen model, last quarter |\n"
        "|---|---|---|---|---|---|\n"
        + "\n".join(table)
        + "\n\nOnline EM's alpha is chosen per seed on a separate validation stream (seed + "
        f"{VALIDATION_SEED_OFFSET}; on Reuters another order of the documents) by online "
        "log-likelihood per word, and judged on the stream it never saw. The frozen model is "
        "SpectralLeader's model after its warm-up documents, never updated: the control of the "
        "sublinearity check.",
    )
    ncols = len(streams)
    fig, axes = new_figure(1, ncols, width=4.5)
    axes = np.atleast_1d(axes).ravel()
    for ax, setting in zip(axes, streams, strict=True):
        plot_curves(
            ax,
            [m for m in ctx.metrics if m["setting"] == setting],
            "docs",
            "regret",
            title=f"regret vs documents: {setting}",
        )
    ctx.save_figure(fig, "regret")
    fig, ax = new_figure(width=7)
    names = sorted({r["method"] for r in ctx.metrics})
    times = [
        np.mean(
            [
                r.final["update_us_per_doc"]
                for r in judged
                if (SL if r.trial.method == SL else f"online-em(alpha={r.trial.param('alpha')})")
                == n
            ]
        )
        for n in names
    ]
    ax.barh(names, times)
    ax.set_xlabel("update time per document (us, mean over streams)")
    ctx.save_figure(fig, "update_time")
    ctx.set_verdict(verdict(rows, preset=ctx.preset))
