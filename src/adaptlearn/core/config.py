"""Dataclass configs: ``--set key=value`` overrides converted by field type, never ``eval``.

An experiment's config is a dataclass whose fields are plain types: ``int``, ``float``, ``bool``,
``str``, ``Literal[...]``, ``X | None``, and ``tuple``/``list`` of those (written comma-separated
on the command line: ``--set methods=adam,adamod``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

__all__ = ["ConfigError", "apply_overrides", "config_hash", "config_to_dict", "parse_value"]

C = TypeVar("C")


class ConfigError(ValueError):
    """A bad ``--set`` override: unknown key or a value that does not fit the field's type."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of {" + ", ".join(repr(a) for a in get_args(tp)) + "}"
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (tuple, list):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        inner = _type_name(args[0]) if args else "str"
        return f"comma-separated list of {inner}"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def parse_value(text: str, tp: Any) -> Any:
    """Convert command-line ``text`` to a value of type ``tp``; ValueError if it does not fit."""
    origin = get_origin(tp)
    if origin is Literal:
        for option in get_args(tp):
            try:
                candidate = parse_value(text, type(option))
            except ValueError:
                continue
            if candidate == option:
                return option
        raise ValueError(text)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if type(None) in args and text.strip().lower() in ("none", "null", ""):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return parse_value(text, arg)
            except ValueError:
                continue
        raise ValueError(text)
    if origin in (tuple, list):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        inner = args[0] if args else str
        items = [] if text.strip() == "" else [s.strip() for s in text.split(",")]
        values = [parse_value(s, inner) for s in items]
        return tuple(values) if origin is tuple else values
    if tp is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if tp is int:
        return int(text)
    if tp is float:
        return float(text)
    if tp is str:
        return text
    raise ValueError(f"unsupported field type {tp!r}")


def apply_overrides(config: C, overrides: list[str] | tuple[str, ...]) -> C:
    """Return a copy of dataclass ``config`` with ``key=value`` overrides applied.

    Raises:
        ConfigError: one line naming the key and the expected type (or the valid keys).
    """
    hints = typing.get_type_hints(type(config))
    fields = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value; got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in fields:
            raise ConfigError(
                f"unknown config key {key!r} for {type(config).__name__}; "
                f"valid keys: {', '.join(sorted(fields))}"
            )
        tp = hints[key]
        try:
            changes[key] = parse_value(text, tp)
        except (ValueError, OverflowError):
            raise ConfigError(
                f"bad value {text!r} for config key {key!r}: expected {_type_name(tp)}"
            ) from None
    new = dataclasses.replace(config, **changes)  # type: ignore[type-var]
    validate = getattr(new, "validate", None)
    if callable(validate):
        try:
            validate()
        except (ValueError, TypeError, OverflowError, KeyError) as err:
            raise ConfigError(str(err.args[0] if err.args else err)) from None
    return new


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain-JSON dict of a dataclass config."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_hash(config: Any, length: int = 8) -> str:
    """Short stable hash of a config (used in run-folder names and to match resumes).

    Fields declared with ``metadata={"affects_results": False}`` (fault injection, progress
    settings) are left out, so a run may be resumed with them changed.
    """
    data = config_to_dict(config)
    for f in dataclasses.fields(config):
        if f.metadata.get("affects_results", True) is False:
            data.pop(f.name, None)
    text = json.dumps(data, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
