"""SpectralLeader and OnlineEM as scikit-learn estimators (issue #22): the library's own estimator
checks, clone / set_params, Pipeline with CountVectorizer, GridSearchCV, transform."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from adaptlearn.topics import OnlineEM, SpectralLeader, generate_corpus


# The generic checks feed 2-5 features, so K = 2 (the spectral method needs K <= V). Count input
# is declared by tags (`categorical`: the checks round their data to non-negative integers;
# `positive_only`: they check that negative counts are refused); no check is skipped or xfailed.
@parametrize_with_checks(
    [
        SpectralLeader(n_components=2, warmup_docs=5, random_state=0),
        SpectralLeader(n_components=2, basis="sketch", refresh=2, warmup_docs=3, random_state=0),
        OnlineEM(n_components=2, random_state=0),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


TEXTS = [
    "the striker scored a goal in the match",
    "the keeper saved the penalty in the final match",
    "a late goal won the cup final for the team",
    "the team trained before the match and the goal",
    "the bank raised interest rates to fight inflation",
    "markets fell as the bank held interest rates",
    "inflation data moved bond markets and rates",
    "the central bank and the markets expect lower inflation",
] * 6


@pytest.mark.parametrize("cls", [SpectralLeader, OnlineEM])
def test_clone_set_params_and_unvalidated_init(cls):
    model = cls(n_components=5, random_state=3)
    twin = clone(model)
    assert twin.get_params() == model.get_params() and twin is not model
    assert twin.set_params(n_components=4).n_components == 4
    bad = cls(n_components=0)  # parameters are stored unchanged and validated in fit
    assert bad.n_components == 0
    with pytest.raises(ValueError, match=f"`n_components` of {cls.__name__} must be an int"):
        bad.fit(np.ones((4, 6), dtype=int))


@pytest.mark.parametrize("cls", [SpectralLeader, OnlineEM])
def test_refit_on_a_new_vocabulary(cls):
    """fit starts over: 12 words after 10 works (the old fit overwrote `vocab_size`)."""
    a = generate_corpus(200, 2, 10, 8, random_state=0).counts
    b = generate_corpus(200, 2, 12, 8, random_state=1).counts
    model = cls(n_components=2, random_state=0).fit(a)
    assert model.components_.shape == (2, 10)
    model.fit(b)
    assert model.components_.shape == (2, 12) and model.n_features_in_ == 12
    np.testing.assert_allclose(model.components_.sum(axis=1), 1.0)


def test_pipeline_with_count_vectorizer_and_transform():
    pipe = Pipeline(
        [
            ("counts", CountVectorizer()),
            ("topics", SpectralLeader(2, warmup_docs=10, random_state=0)),
        ]
    )
    posterior = pipe.fit_transform(TEXTS)
    assert posterior.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0)
    # the two themes land in different topics
    sport, finance = posterior[:4].mean(axis=0), posterior[4:8].mean(axis=0)
    assert np.argmax(sport) != np.argmax(finance)
    names = pipe.get_feature_names_out()
    assert list(names) == ["spectralleader0", "spectralleader1"]
    # a document with no known word is empty: its posterior is the topic prior
    empty = pipe.transform(["zzz qqq"])
    np.testing.assert_allclose(empty[0], pipe[-1].weights_)


def test_grid_search_picks_by_held_out_log_likelihood():
    pipe = Pipeline([("counts", CountVectorizer()), ("em", OnlineEM(random_state=0))])
    search = GridSearchCV(pipe, {"em__n_components": [1, 2], "em__alpha": [0.8, 1.0]}, cv=3)
    search.fit(TEXTS)
    assert set(search.best_params_) == {"em__n_components", "em__alpha"}
    assert np.isfinite(search.best_score_)
    spectral = GridSearchCV(
        Pipeline([("counts", CountVectorizer()), ("sl", SpectralLeader(warmup_docs=5))]),
        {"sl__n_components": [2, 3]},
        cv=3,
    ).fit(TEXTS)
    assert spectral.best_params_["sl__n_components"] in (2, 3)
