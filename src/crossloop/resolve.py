"""What ``--model`` and ``--dataset`` name: a registered preset or data set, or your own
function as ``package.module:function``.

A model function returns a :class:`crossloop.nn.Sequential`; a data function
returns a :class:`crossloop.data.Dataset` or arrays
``((train_inputs, train_targets), (test_inputs, test_targets))``. Either may
take keyword arguments crossloop fills in when the function declares them: a
model ``input_shape`` (one sample, as the batches deliver it) and
``num_classes`` (its output size: classes, vocabulary or regression targets),
as the presets ``mlp`` and ``linear`` do; a data function ``data_dir``.
Modules are imported from the installed packages and the ``sys.path`` (the
command line puts the current folder first on it).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from . import nn
from .data import DATASETS, Dataset, load_dataset
from .errors import InputError

__all__ = ["ResolveError", "check_name", "dataset_key", "is_reference", "load_data_set",
           "model_spec"]

_REFERENCE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class ResolveError(InputError, ValueError):
    """A ``package.module:function`` cannot be imported or called, or returned the wrong thing."""


def is_reference(name: str) -> bool:
    """Whether ``name`` is a ``package.module:function`` reference (not a registered name)."""
    return ":" in name


def dataset_key(name: str) -> str:
    """A data set's registered spelling (``Breast_Cancer`` -> ``breast-cancer``);
    references as they are."""
    return name if is_reference(name) else name.lower().replace("_", "-")


def check_name(what: str, name: str, known: Mapping[str, Any]) -> None:
    """Raise ResolveError unless ``name`` is in ``known`` or well-formed as a reference."""
    if is_reference(name):
        if not _REFERENCE.fullmatch(name):
            raise ResolveError(f"{what} {name!r} is not of the form package.module:function")
    elif name not in known:
        raise ResolveError(f"{what} {name!r} is not one of {', '.join(known)} "
                           f"(or your own, as package.module:function)")


def model_spec(name: str, *, input_shape: tuple[int, ...] | None = None,
               num_classes: int | None = None) -> nn.Sequential:
    """The model spec ``name`` (a preset or a reference) for data of ``input_shape``
    with ``num_classes`` outputs, passed to the function where it takes them."""
    check_name("model", name, nn.PRESETS)
    function = _import(name, "model") if is_reference(name) else nn.PRESETS[name]
    hints = {k: v for k, v in {"input_shape": input_shape, "num_classes": num_classes}.items()
             if v is not None}
    missing = [p.name for p in inspect.signature(function).parameters.values()
               if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               and p.name not in hints]
    if missing:
        raise ResolveError(
            f"model {name} needs {', '.join(missing)}, which crossloop fills in (input_shape, "
            "num_classes) only from a data set or crossloop Batches, not from a native "
            f"pipeline: give {', '.join(missing)} defaults in the function, or pass Batches")
    try:
        spec = _call(function, hints)
    except nn.ShapeError as exc:  # the spec's own shape check: the model does not fit this data
        raise ResolveError(f"model {name} does not fit the data set's samples (input shape "
                           f"{input_shape}): {exc}; choose a data set it takes (--dataset, or "
                           "--recipe for the preset's own)") from None
    if not isinstance(spec, nn.Sequential):
        raise ResolveError(f"model {name} returned {_what(spec)}, not a crossloop model spec "
                           "(crossloop.nn.Sequential)")
    return spec


def load_data_set(name: str, data_dir: str | os.PathLike[str] | None = None,
                  **options: Any) -> Dataset:
    """The data set ``name``: a registered one (see :func:`crossloop.data.load_dataset`) or
    what a reference's function returns, as a :class:`~crossloop.data.Dataset`."""
    name = dataset_key(name)
    check_name("dataset", name, DATASETS)
    if not is_reference(name):
        return load_dataset(name, data_dir, **options)
    given = _call(_import(name, "dataset"), {} if data_dir is None else {"data_dir": data_dir})
    if isinstance(given, Dataset):
        return given
    if isinstance(given, (tuple, list)) and len(given) == 2:
        return Dataset.from_arrays(name, *given, source=name)
    raise ResolveError(f"dataset {name} returned {_what(given)}; it must return a "
                       "crossloop.data.Dataset or ((train_inputs, train_targets), "
                       "(test_inputs, test_targets))")


def _import(reference: str, what: str) -> Callable[..., Any]:
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ResolveError(f"{what} {reference}: cannot import module {module_name!r} ({exc}); "
                           "is its package installed, or in the current folder?") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        found = "has no" if function is None else f"has a {type(function).__name__}, not a"
        raise ResolveError(f"{what} {reference}: module {module_name!r} ({module.__file__}) "
                           f"{found} function {attribute!r}")
    return function


def _call(function: Callable[..., Any], offered: dict[str, Any]) -> Any:
    """``function`` called with the ``offered`` keywords it declares (all, given ``**kw``)."""
    parameters = inspect.signature(function).parameters.values()
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    names = {p.name for p in parameters}
    return function(**{k: v for k, v in offered.items() if takes_all or k in names})


def _what(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return "None" if value is None else f"a {type(value).__module__}.{type(value).__name__}"


def native_model(reference: str, what: str, **offered: Any) -> Any:
    """The model a ``package.module:function`` builds, called with the ``offered``
    keywords it declares (``dtype``): how ``crossloop compare-models`` gets its models."""
    if ":" not in reference:
        raise ResolveError(f"{what} {reference!r} is not package.module:function")
    return _call(_import(reference, what), offered)
