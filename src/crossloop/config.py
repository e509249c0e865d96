"""Settings files: a flat table of ``key = value`` pairs in TOML or JSON, read with
limits (size, encoding) and one-line errors naming the file and the fix."""

from __future__ import annotations

import json
import os
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
