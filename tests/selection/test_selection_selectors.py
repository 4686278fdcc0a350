"""Stateful selectors: rates, determinism, state round trips, Stale-SB and AdaptSB behaviour."""

import pytest
import torch

from adaptlearn.selection import AdaptSB, RandomSubset, SelectiveBackprop, StaleSB


def _run(selector, batches=120, b=128, seed=0, **kw):
    gen = torch.Generator().manual_seed(seed)
    masks, losses = [], []
    for _ in range(batches):
        loss = torch.empty(b).exponential_(generator=gen)
        losses.append(loss)
        masks.append(selector.select(loss, **kw))
    return torch.cat(masks), torch.cat(losses)


@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0])
def test_rate_matches_one_over_beta_plus_one_on_iid_losses(beta):
    sb = SelectiveBackprop(beta, 1024, seed=1)
    _run(sb, batches=8)  # fill the history first
    masks, _ = _run(sb, batches=160, seed=2)
    rate = masks.float().mean().item()
    # strict "<" and self-inclusion lower the rate by O(1/R) only
    assert rate == pytest.approx(1 / (beta + 1), abs=0.012)


def test_biggest_losers_are_selected_with_probability_near_one():
    sb = SelectiveBackprop(3.0, 1024, seed=0)
    masks, losses = _run(sb, batches=200)
    top = losses >= torch.quantile(losses[-12800:], 0.995)
    bottom = losses <= torch.quantile(losses, 0.2)
    assert masks[top].float().mean() > 0.97
    assert masks[bottom].float().mean() < 0.01


def test_same_seed_same_masks_and_other_seed_differs():
    a, _ = _run(SelectiveBackprop(2.0, seed=5), batches=20)
    b, _ = _run(SelectiveBackprop(2.0, seed=5), batches=20)
    c, _ = _run(SelectiveBackprop(2.0, seed=6), batches=20)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_priming_selects_everything_then_selects():
    sb = SelectiveBackprop(3.0, prime_examples=256, seed=0)
    masks, _ = _run(sb, batches=4)
    assert masks[:256].all()
    assert not masks[256:].all()
    assert sb.examples_seen == 512


@pytest.mark.parametrize("make", [
    lambda: SelectiveBackprop(3.0, 64, seed=3),
    lambda: StaleSB(500, 3.0, 64, seed=3),
    lambda: AdaptSB(500, 3.0, 64, seed=3, threshold=0.3),
    lambda: RandomSubset(3.0, seed=3),
])
def test_state_dict_round_trip_continues_identically(make, tmp_path):
    idx = torch.arange(128) % 500
    a = make()
    _run(a, batches=10, indices=idx)
    if isinstance(a, StaleSB):
        a.needs_forward(idx, 128)
        a.record_losses(idx, torch.rand(128), fresh=True)
    torch.save(a.state_dict(), tmp_path / "s.pt")
    b = make()
    b.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    ma, _ = _run(a, batches=10, seed=9, indices=idx)
    mb, _ = _run(b, batches=10, seed=9, indices=idx)
    assert torch.equal(ma, mb)
    assert repr(a) == repr(b)


def test_hyperparameters_are_validated_with_named_errors():
    with pytest.raises(ValueError, match="`beta` of SelectiveBackprop must be a float"):
        SelectiveBackprop(beta=-1.0)
    with pytest.raises(ValueError, match="`history_size` of SelectiveBackprop must be an int"):
        SelectiveBackprop(history_size=0)
    with pytest.raises(ValueError, match="`staleness` of StaleSB"):
        StaleSB(10, staleness=0)
    with pytest.raises(ValueError, match="`threshold` of AdaptSB"):
        AdaptSB(10, threshold=1.0)
    with pytest.raises(ValueError, match="either `generator` or `seed`"):
        SelectiveBackprop(generator=torch.Generator(), seed=1)


def test_random_subset_needs_no_forward_and_matches_rate():
    rs = RandomSubset(2.0, seed=0)
    assert not rs.needs_forward(None, 5).any()
    masks, losses = _run(rs, batches=100)
    assert masks.float().mean().item() == pytest.approx(1 / 3, abs=0.01)
    # loss-agnostic: the top losses are not favoured
    top = losses >= torch.quantile(losses, 0.9)
    assert masks[top].float().mean().item() == pytest.approx(1 / 3, abs=0.05)


def test_stale_sb_refreshes_every_staleness_draws():
    st = StaleSB(4, staleness=3, seed=0)
    idx = torch.arange(4)
    fresh = []
    for epoch in range(7):
        need = st.needs_forward(idx, 4)
        fresh.append(bool(need.all()))
        assert need.all() or not need.any()
        st.record_losses(idx[need], torch.full((int(need.sum()),), float(epoch)), fresh=True)
    # no cache at epoch 0, then a fresh forward every 3rd draw
    assert fresh == [True, False, False, True, False, False, True]
    assert torch.all(st.cached_losses(idx, 4) == 6.0)


def test_stale_sb_training_losses_refresh_cache_not_counter():
    st = StaleSB(3, staleness=2, seed=0)
    idx = torch.arange(3)
    st.needs_forward(idx, 3)
    st.record_losses(idx, torch.ones(3), fresh=True)
    st.record_losses(idx, torch.full((3,), 5.0), fresh=False)
    assert torch.all(st.cached_losses(idx, 3) == 5.0)
    assert not st.needs_forward(idx, 3).any()
    assert st.needs_forward(idx, 3).all()


def test_stale_sb_rejects_missing_or_out_of_range_indices():
    st = StaleSB(3)
    with pytest.raises(ValueError, match="needs dataset `indices`"):
        st.needs_forward(None, 2)
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        st.needs_forward(torch.tensor([0, 3]), 2)


def test_adapt_sb_equals_sb_when_nothing_is_persistent():
    sb = SelectiveBackprop(3.0, 256, seed=4)
    ad = AdaptSB(10, 3.0, 256, group_by="target", threshold=0.9, seed=4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        loss = torch.rand(64, generator=gen)
        y = torch.randint(0, 10, (64,), generator=gen)
        assert torch.equal(sb.select(loss), ad.select(loss, targets=y))
    assert torch.all(ad.group_weights() == 1.0)


def test_adapt_sb_demotes_a_persistently_top_loss_group_at_equal_budget():
    n, noisy = 1000, torch.arange(100)  # examples 0..99 always have the largest losses
    sb, ad = SelectiveBackprop(3.0, 1024, seed=1), AdaptSB(n, 3.0, 1024, seed=1)
    gen = torch.Generator().manual_seed(0)
    rates = {"sb": [], "ad": []}
    noisy_sel = {"sb": 0, "ad": 0}
    for epoch in range(20):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, 100):
            idx = order[start:start + 100]
            loss = torch.rand(100, generator=gen) + 10.0 * (idx < 100)
            for name, sel in (("sb", sb), ("ad", ad)):
                m = sel.select(loss, indices=idx)
                rates[name].append(m.float().mean())
                if epoch >= 10:  # once persistence has built up
                    noisy_sel[name] += int(m[idx < 100].sum())
    weights = ad.group_weights()
    assert weights[noisy].mean() < 0.15
    # clean examples with i.i.d. losses occasionally drift above the threshold for a while
    assert weights[100:].mean() > 0.9
    assert noisy_sel["ad"] < 0.25 * noisy_sel["sb"]
    # the backward budget stays SB's (the rescaling hands the mass to other examples)
    rate_ad = torch.stack(rates["ad"]).mean().item()
    rate_sb = torch.stack(rates["sb"]).mean().item()
    assert rate_ad == pytest.approx(rate_sb, abs=0.03)


def test_adapt_sb_needs_its_group_source():
    with pytest.raises(ValueError, match="needs `targets`"):
        AdaptSB(3, group_by="target").select(torch.rand(4), indices=torch.arange(4))
    with pytest.raises(ValueError, match="group ids must lie"):
        AdaptSB(3).select(torch.rand(4), indices=torch.arange(4))
