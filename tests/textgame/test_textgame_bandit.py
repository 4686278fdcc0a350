"""LinearContextualBandit: ridge algebra, the LCB elimination rule and its confidence guarantee."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptlearn.textgame import LinearContextualBandit


def _synthetic(seed, n_actions=6, dim=5, n=400, noise=0.1):
    """Unit-norm contexts, true means theta*_a^T x in [0, 1], bounded noise (R-sub-Gaussian)."""
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    theta = g.normal(size=(n_actions, dim))
    theta *= g.uniform(0.2, 1.0, size=(n_actions, 1)) / np.linalg.norm(theta, axis=1, keepdims=True)
    a = g.integers(0, n_actions, n)
    mean = np.einsum("nd,nd->n", x, theta[a])
    e = mean + g.uniform(-noise, noise, n)
    return torch.tensor(x), torch.tensor(a), torch.tensor(e), theta


def _brute_force_lcb(x, a, e, x_query, reg, beta, n_actions):
    out = np.zeros((len(x_query), n_actions))
    for k in range(n_actions):
        xa, ea = x[a == k], e[a == k]
        v = reg * np.eye(x.shape[1]) + xa.T @ xa
        vi = np.linalg.inv(v)
        th = vi @ (xa.T @ ea)
        out[:, k] = x_query @ th - np.sqrt(beta * np.einsum("nd,de,ne->n", x_query, vi, x_query))
    return out


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000), beta=st.floats(0.0, 3.0), threshold=st.floats(-0.5, 1.0))
def test_eliminates_exactly_when_lower_bound_exceeds_threshold(seed, beta, threshold):
    x, a, e, _ = _synthetic(seed, n=120)
    bandit = LinearContextualBandit(6, 5, reg=0.1, beta=beta, threshold=threshold).fit(x, a, e)
    q = x[:20]
    ref = _brute_force_lcb(x.numpy(), a.numpy(), e.numpy(), q.numpy(), 0.1, beta, 6)
    lcb = bandit.lower_bound(q).numpy()
    np.testing.assert_allclose(lcb, ref, atol=1e-8)
    decided = np.abs(ref - threshold) > 1e-6  # skip exact ties
    assert np.array_equal(bandit.eliminated(q).numpy()[decided], (ref > threshold)[decided])


@settings(max_examples=8)
@given(seed=st.integers(0, 10_000))
def test_online_updates_equal_batch_fit(seed):
    x, a, e, _ = _synthetic(seed, n=40)
    w = torch.tensor(np.random.default_rng(seed).uniform(0.5, 3.0, len(a)))
    batch = LinearContextualBandit(6, 5, reg=0.3).fit(x, a, e, w)
    online = LinearContextualBandit(6, 5, reg=0.3)
    for xi, ai, ei, wi in zip(x, a, e, w, strict=True):
        online.update(xi, int(ai), float(ei), float(wi))
    for key in ("v_inv", "theta", "logdet", "counts"):
        torch.testing.assert_close(getattr(online, key), getattr(batch, key), rtol=1e-7, atol=1e-8)
    col = online.lower_bound_column(x[:7], 2)
    torch.testing.assert_close(col, online.lower_bound(x[:7])[:, 2])


@pytest.mark.parametrize("seed", range(4))
def test_theory_bound_never_eliminates_a_valid_action(seed):
    """With the Abbasi-Yadkori radius (R, S, delta valid for the data), an action whose true mean
    theta*^T x is <= l is never eliminated, at any time (checked after every 25 samples)."""
    x, a, e, theta = _synthetic(seed, n=600, noise=0.1)
    thr = 0.2
    bandit = LinearContextualBandit(6, 5, reg=0.1, threshold=thr, confidence="theory",
                                    delta=0.05, noise_scale=0.1, norm_bound=1.0)
    q = x[:200]
    truth = q.numpy() @ theta.T  # (200, 6)
    for t, (xi, ai, ei) in enumerate(zip(x, a, e, strict=True)):
        bandit.update(xi, int(ai), float(ei))
        if t % 50 == 49:
            elim = bandit.eliminated(q).numpy()
            assert not (elim & (truth <= thr)).any()
    clearly_invalid = truth > thr + 0.4
    n_true_elim = (bandit.eliminated(q).numpy() & clearly_invalid).sum()
    # ...and the bound is not vacuous: clearly-invalid pairs do get eliminated.
    assert n_true_elim >= 0.5 * clearly_invalid.sum()


def test_wider_confidence_eliminates_a_subset():
    x, a, e, _ = _synthetic(3, n=300)
    q = x[:100]
    sets = [LinearContextualBandit(6, 5, beta=b, threshold=0.3).fit(x, a, e).eliminated(q)
            for b in (0.0, 0.05, 0.5, 2.0)]
    for narrow, wide in itertools.pairwise(sets):
        assert (wide <= narrow).all()
    assert sets[0].sum() > sets[-1].sum()


def test_untried_action_is_never_eliminated():
    bandit = LinearContextualBandit(4, 3, beta=0.1, threshold=0.0)
    gen = torch.Generator().manual_seed(0)
    phi = torch.nn.functional.normalize(torch.randn(50, 2, generator=gen))
    x = torch.cat([phi, torch.ones(50, 1)], dim=1).double()  # features + bias, as the AEN's
    for xi in x:
        bandit.update(xi, 0, 1.0)
    elim = bandit.eliminated(x)
    assert elim[:, 0].all() and not elim[:, 1:].any()  # prior: theta=0, LCB < 0 = threshold


def test_state_dict_round_trip_and_repr():
    x, a, e, _ = _synthetic(0, n=50)
    b1 = LinearContextualBandit(6, 5, confidence="theory").fit(x, a, e)
    b2 = LinearContextualBandit(6, 5, confidence="theory")
    b2.load_state_dict(b1.state_dict())
    torch.testing.assert_close(b1.lower_bound(x), b2.lower_bound(x))
    assert "theory" in repr(b1) and "n_actions=6" in repr(b1)
    with pytest.raises(ValueError, match="another shape"):
        LinearContextualBandit(5, 5).load_state_dict(b1.state_dict())


@pytest.mark.parametrize("kwargs,field", [
    ({"reg": 0.0}, "reg"), ({"beta": -1.0}, "beta"), ({"confidence": "ucb"}, "confidence"),
    ({"delta": 0.0}, "delta"), ({"n_actions": 0}, "n_actions"),
])
def test_bad_hyperparameters_name_the_field(kwargs, field):
    args = {"n_actions": 3, "dim": 2, **kwargs}
    with pytest.raises(ValueError, match=field):
        LinearContextualBandit(**args)


def _rooms_run(beta, *, n_actions=30, n_rooms=8, steps=1200, seed=0):
    """The spec's "rooms" check (section 4.1): one-hot room features + bias (as the AEN's
    ``[phi, 1]``), deterministic signal, the agent samples uniformly from its admissible set.
    Returns the shares of valid / invalid (room, action) pairs eliminated at the end."""
    gen = np.random.default_rng(seed)
    valid = gen.random((n_rooms, n_actions)) < 0.15
    valid[:, 0] = True  # one command that always works ("look")
    x = torch.cat([torch.eye(n_rooms), torch.ones(n_rooms, 1)], dim=1).double()
    bandit = LinearContextualBandit(n_actions, n_rooms + 1, reg=0.1, threshold=0.6, beta=beta)
    for _ in range(steps):
        room = int(gen.integers(n_rooms))
        allowed = np.flatnonzero(~bandit.eliminated(x[room: room + 1])[0].numpy())
        a = int(gen.choice(allowed))
        bandit.update(x[room], a, float(not valid[room, a]))
    elim = bandit.eliminated(x).numpy()
    return (elim & valid).sum() / valid.sum(), (elim & ~valid).sum() / (~valid).sum()


@pytest.mark.parametrize("seed", range(2))
def test_lcb_never_eliminates_a_valid_action_once_enough_data_is_seen(seed):
    """With a confidence width (beta = 0.2, the experiment's value) no valid pair is eliminated
    while almost every invalid one is; with beta = 0 (plain least squares) the bias feature
    generalises "most commands fail" and valid commands are locked out (spec 4.1)."""
    false_elim, true_elim = _rooms_run(0.2, seed=seed)
    assert false_elim == 0.0 and true_elim >= 0.9
    false_plain, _ = _rooms_run(0.0, seed=seed)
    assert false_plain >= 0.2
