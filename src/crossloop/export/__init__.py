"""A model spec as plain native code: a PyTorch module file and a Keras model file.

``crossloop export`` writes the network a spec describes as the code a person
would write by hand in each framework -- no crossloop import -- with a comment
wherever the two frameworks differ (layouts, padding, flatten order, dropout
masks, normalisation conventions, attention's weights and mask), and a
``load_weights`` in each that takes crossloop's weights (canonical names and
layout, e.g. from ``crossloop.save_params``). So a learner can read one network
in both frameworks, and a user can leave crossloop with their trained weights.

One job per module: :mod:`.emitter` (what a layer is written from),
:mod:`.layers`, :mod:`.norms`, :mod:`.sequences` (the emitters, one per leaf
layer type), :mod:`.table` (the table and the sites of a spec),
:mod:`.torch_code` and :mod:`.keras_code` (the two files, containers included),
:mod:`.lines` (their layout).
"""

from __future__ import annotations

import re
from pathlib import Path

from .. import nn
from ..files import atomic_write
from .emitter import Emitter, ExportError, Site
from .keras_code import keras_source
from .table import EMITTERS, emitter, sites
from .torch_code import class_name, torch_source

__all__ = ["EMITTERS", "Emitter", "ExportError", "Site", "class_name", "emitter",
           "keras_source", "sites", "torch_source", "write"]


def write(spec: nn.Sequential, folder: str | Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``<folder>/<name>_torch.py`` and ``<folder>/<name>_keras.py``; return both.
    Both texts are made before either file is written, so a spec export cannot write
    (:class:`ExportError`) leaves no file behind; files already there (perhaps edited
    since) are replaced only with ``overwrite``."""
    texts = torch_source(spec), keras_source(spec)
    folder = Path(folder)
    stem = re.sub(r"\W+", "_", spec.name).strip("_").lower() or "model"
    paths = folder / f"{stem}_torch.py", folder / f"{stem}_keras.py"
    present = [str(path) for path in paths if path.exists()]
    if present and not overwrite:
        raise ExportError(f"{' and '.join(present)} already exist; pass --overwrite "
                          "(overwrite=True) to replace them, or choose another --out-dir "
                          "(folder=...)")
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in zip(paths, texts):
        atomic_write(path, lambda f, text=text: f.write(text.encode("utf-8")))
    return paths
