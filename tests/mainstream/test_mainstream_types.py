"""Value types: validation, monotone repair, round trips, repr."""

import dataclasses

import pytest

from adaptlearn.mainstream import (
    AppConfig,
    AppSpec,
    Schedule,
    StemOption,
    drop_dominated,
    make_monotone,
)


def test_stem_option_validation():
    with pytest.raises(ValueError, match="`recall` of StemOption"):
        StemOption(0, 1.2, 0.0)
    with pytest.raises(ValueError, match="`frozen_layers` of StemOption"):
        StemOption(-1, 0.5, 0.0)
    with pytest.raises(ValueError, match="`false_positive_rate`"):
        StemOption(0, 0.5, -0.1)


def test_app_spec_validation_and_sorting():
    opts = (StemOption(2, 0.5, 0.1), StemOption(0, 0.9, 0.1))
    app = AppSpec("a", opts)
    assert app.depths == (0, 2)  # sorted by depth
    with pytest.raises(ValueError, match="duplicate depths"):
        AppSpec("a", (StemOption(0, 0.9, 0.1), StemOption(0, 0.8, 0.1)))
    with pytest.raises(ValueError, match="non-empty sequence"):
        AppSpec("a", ())
    with pytest.raises(ValueError, match="`name` of AppSpec"):
        AppSpec("", opts)
    with pytest.raises(ValueError, match="event_frequency"):
        AppSpec("a", opts, event_frequency=0.0)
    with pytest.raises(ValueError, match="event_length_s"):
        AppSpec("a", opts, event_length_s=-1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        app.name = "b"  # type: ignore[misc]


def test_make_monotone_by_hand():
    opts = [StemOption(0, 0.7, 0.1), StemOption(1, 0.9, 0.2), StemOption(2, 0.6, 0.3),
            StemOption(3, 0.8, 0.4)]
    out = make_monotone(opts)
    assert [o.recall for o in out] == [0.9, 0.9, 0.8, 0.8]
    assert [o.false_positive_rate for o in out] == [0.1, 0.2, 0.3, 0.4]


def test_drop_dominated_by_hand_keeps_only_measured_options():
    opts = [StemOption(0, 0.7, 0.1), StemOption(1, 0.0, 0.0), StemOption(2, 0.6, 0.3),
            StemOption(3, 0.8, 0.1), StemOption(4, 0.5, 0.4)]
    out = drop_dominated(opts)
    # k=0 and k=2 are dominated by k=3 (higher recall, no more false positives, cheaper);
    # k=1 is not dominated (nothing deeper has q <= 0)
    assert [o.frozen_layers for o in out] == [1, 3, 4]
    assert set(out) <= set(opts)  # nothing invented
    assert drop_dominated(out) == out
    # the reference repair would have invented (0.8, 0.0) at k=1
    assert StemOption(1, 0.8, 0.0) in make_monotone(opts)


def test_appspec_repairs():
    bumpy = (StemOption(0, 0.7, 0.1), StemOption(1, 0.9, 0.2), StemOption(2, 0.6, 0.3))
    measured = set(bumpy)
    assert set(AppSpec("a", bumpy, strict=False, repair="none").options) == measured
    dropped = AppSpec("a", bumpy, strict=False, repair="drop_dominated").options
    assert dropped == bumpy  # nothing dominated here, kept as measured although not monotone
    ref = AppSpec("a", bumpy, strict=False).options  # the reference repair (default)
    assert not set(ref) <= measured
    dominated = (StemOption(0, 0.7, 0.2), StemOption(1, 0.9, 0.1))
    assert AppSpec("a", dominated, strict=False, repair="drop_dominated").depths == (1,)
    with pytest.raises(ValueError, match="repair"):
        AppSpec("a", bumpy, strict=False, repair="magic")


def test_round_trip_and_restricted():
    app = AppSpec("a", (StemOption(0, 0.9, 0.1), StemOption(3, 0.5, 0.2)), 0.4, 0.2, 0.3)
    assert AppSpec.from_dict(app.to_dict()) == app
    only = app.restricted([3])
    assert only.depths == (3,) and only.event_length_s == 0.4


def test_schedule_summary_and_repr():
    s = Schedule((AppConfig("a", 0, 5.0, 0.8), AppConfig("b", 3, 10.0, 0.4)), 12.0, 20.0, 0.6)
    assert s.mean_f1 == pytest.approx(0.6)
    assert s.min_f1 == pytest.approx(0.4)
    assert "a:k=0@5fps" in repr(s) and "12/20" in repr(s)
