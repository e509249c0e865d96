"""Settings files: a flat table of ``key = value`` pairs in TOML or JSON, read with
limits (size, encoding) and one-line errors naming the file and the fix; and the
check of any such table (a file's, or keyword arguments) against the settings'
fields: known keys, values of the right type."""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import Field
from pathlib import Path
from typing import Any

from .errors import InputError

MAX_CONFIG_BYTES = 1 << 20  # a settings file is a few hundred bytes


class ConfigError(InputError, ValueError):
    """An experiment setting is unknown, of the wrong type, out of range, or does not apply."""


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The flat ``{key: value}`` table of a ``.toml`` or ``.json`` config file."""
    path = Path(path)
    if path.suffix not in (".toml", ".json"):
        raise ConfigError(f"{path}: a config file must end in .toml or .json")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path} is {size} bytes; a settings file is a small table of "
                              f"key = value pairs (the limit is {MAX_CONFIG_BYTES} bytes)")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it "
                          "as UTF-8") from None
    try:
        values = json.loads(text) if path.suffix == ".json" else _toml().loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a table of settings, got {type(values).__name__}")
    return values


def _toml() -> Any:
    """The TOML reader: the standard library's from Python 3.11, else the ``tomli`` package."""
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigError("reading a .toml config needs Python 3.11+ or 'pip install tomli'; "
                              "or write the settings as .json") from None
    return tomllib


def coerce(f: Field, value: Any) -> Any:
    """``value`` as setting ``f``'s type (the field's ``type`` metadata; an int for a float
    is fine) and one of its ``choices``, or a ConfigError naming it."""
    kind, choices = f.metadata["type"], f.metadata["choices"]
    if value is None and f.default is None:
        return None
    ok = (isinstance(value, kind) and not (kind is int and isinstance(value, bool))
          or kind is float and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{f.name} must be {kind.__name__}"
                          f"{' or None' if f.default is None else ''}, got {value!r}")
    if choices and value not in choices:
        raise ConfigError(f"{f.name} {value!r} is not one of {', '.join(choices)}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{f.name} must be a finite number, got {value}")
    if kind is str and not value.strip():
        raise ConfigError(f"{f.name} is empty; give a value or leave the setting out")
    return kind(value)


def known_settings(values: Mapping[str, Any], settings: Iterable[Field],
                   source: str) -> dict[str, Any]:
    """``values`` with keys normalised, or a ConfigError naming ``source`` and every key
    that is not one of ``settings`` (with the nearest valid one) or the first value of a
    wrong type."""
    values = {key.replace("-", "_"): value for key, value in values.items()}
    by_name = {f.name: f for f in settings}
    unknown = [key for key in values if key not in by_name]
    if unknown:
        near = [f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)
                for key in unknown for close in [difflib.get_close_matches(key, by_name, 1)]]
        raise ConfigError(f"{source}: unknown setting{'s' * (len(unknown) > 1)} "
                          f"{', '.join(near)}; valid keys: {', '.join(by_name)}")
    for key, value in values.items():
        try:
            coerce(by_name[key], value)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return values
