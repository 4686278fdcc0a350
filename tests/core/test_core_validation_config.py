"""Validation messages and type-checked ``--set`` overrides."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pytest

from adaptlearn.core.config import ConfigError, apply_overrides, config_hash, parse_value
from adaptlearn.core.validation import (
    check_choice,
    check_int,
    check_positive_int,
    check_probability,
    check_range,
)


def test_check_range_message_names_argument_range_and_value():
    with pytest.raises(ValueError, match=r"`beta3` of AdaMod must be a float in \[0, 1\); got 1.5"):
        check_range("beta3", 1.5, 0.0, 1.0, high_inclusive=False, owner="AdaMod")
    assert check_range("lr", 0.1, 0.0, math.inf, low_inclusive=False) == 0.1
    with pytest.raises(ValueError, match=r"\(0, inf\)"):
        check_range("lr", 0.0, 0.0, math.inf, low_inclusive=False)
    with pytest.raises(ValueError):
        check_range("lr", float("nan"))
    with pytest.raises(ValueError):
        check_range("lr", True)


def test_check_int_and_choice():
    assert check_positive_int("n", 3) == 3
    with pytest.raises(ValueError, match=r"`n` must be an int in \[1, inf\); got 0"):
        check_positive_int("n", 0)
    with pytest.raises(ValueError):
        check_int("n", 2.5)
    with pytest.raises(ValueError, match=r"`k` must be an int in \[0, 4\]; got 5"):
        check_int("k", 5, 0, 4)
    assert check_probability("p", 1.0) == 1.0
    with pytest.raises(ValueError, match=r"must be one of \{'a', 'b'\}; got 'c'"):
        check_choice("mode", "c", ("a", "b"))


@dataclass
class Cfg:
    steps: int = 10
    lr: float = 0.1
    name: str = "x"
    flag: bool = False
    mode: Literal["fast", "slow"] = "fast"
    sizes: tuple[int, ...] = (1, 2)
    limit: int | None = None

    def validate(self) -> None:
        check_positive_int("steps", self.steps, owner="Cfg")


def test_overrides_convert_by_field_type():
    cfg = apply_overrides(
        Cfg(),
        ["steps=5", "lr=1e-3", "name=y", "flag=true", "mode=slow", "sizes=3,4,5", "limit=7"],
    )
    assert cfg == Cfg(5, 1e-3, "y", True, "slow", (3, 4, 5), 7)
    assert apply_overrides(Cfg(limit=3), ["limit=none"]).limit is None


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("stepz=3", r"unknown config key 'stepz'.*valid keys: flag, limit, lr"),
        ("steps=abc", r"bad value 'abc' for config key 'steps': expected int"),
        ("lr=fast", r"config key 'lr': expected float"),
        ("flag=maybe", r"config key 'flag': expected bool"),
        ("mode=medium", r"config key 'mode': expected one of \{'fast', 'slow'\}"),
        ("sizes=1,x", r"config key 'sizes': expected comma-separated list of int"),
        ("steps=0", r"`steps` of Cfg must be an int in \[1, inf\); got 0"),
        ("steps", r"--set expects key=value"),
    ],
)
def test_bad_overrides_raise_one_line_config_error(override, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        apply_overrides(Cfg(), [override])
    assert "\n" not in str(info.value)


def test_parse_value_never_evaluates():
    assert parse_value("__import__('os')", str) == "__import__('os')"
    with pytest.raises(ValueError):
        parse_value("__import__('os')", int)


def test_config_hash_is_stable_and_sensitive():
    assert config_hash(Cfg()) == config_hash(Cfg())
    assert config_hash(Cfg()) != config_hash(Cfg(steps=11))
