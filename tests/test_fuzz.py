"""Property-based fuzzing of everything crossloop reads from disk: IDX headers and
bodies, safetensors headers, checkpoint documents. Every generated input either
loads or raises crossloop's own named error (an InputError): no other exception,
no hang, bounded memory.

The default profile is CI-sized; ``pytest tests/test_fuzz.py --hypothesis-profile
long`` runs many more examples (the profiles are registered in conftest.py).
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import json
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crossloop
from conftest import striped_digits
from crossloop import checkpoint, nn, optim, storage
from crossloop.data import Batches, read_idx
from crossloop.data.transforms import MNIST
from crossloop.errors import InputError

FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow], deadline=2000)
MEMORY_LIMIT = 64 * 2**20  # bytes Python may allocate while reading one fuzzed file


def _loads_or_refuses(read, path: Path) -> None:
    """``read(path)`` returns or raises an InputError, within MEMORY_LIMIT."""
    tracemalloc.start()
    try:
        read(path)
    except InputError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"reading took {peak} bytes"


# -- IDX ----------------------------------------------------------------------------

idx_headers = st.builds(
    lambda zeros, code, dims, body, gz, tail: (zeros, code, dims, body, gz, tail),
    st.sampled_from([b"\0\0", b"\0\1", b"\x1f\x8b"]),
    st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]),
    st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)), max_size=12),
    st.binary(max_size=600),
    st.booleans(),
    st.integers(-8, 8),
)


@FUZZ
@given(idx_headers)
def test_idx_reader_loads_or_names_the_problem(tmp_path, case):
    zeros, code, dims, body, gz, tail = case
    header = zeros + bytes([code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    data = header + body
    if tail > 0:
        data += bytes(tail)
    elif tail < 0:
        data = data[:tail]
    path = tmp_path / "fuzz.idx"
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    _loads_or_refuses(read_idx, path)


@FUZZ
@given(st.binary(max_size=400), st.integers(0, 399), st.integers(0, 255))
def test_damaged_gzip_idx_files_are_named(tmp_path, noise, at, byte):
    good = gzip.compress(bytes([0, 0, 8, 2]) + struct.pack(">2I", 10, 20) + noise.ljust(200, b"x")[:200])
    damaged = bytearray(good)
    damaged[at % len(damaged)] = byte
    path = tmp_path / "d.idx.gz"
    path.write_bytes(bytes(damaged))
    _loads_or_refuses(read_idx, path)


# -- safetensors headers ---------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@FUZZ
@given(st.one_of(st.binary(max_size=200).map(lambda b: ("raw", b)),
                 json_values.map(lambda v: ("json", v))),
       st.integers(-16, 2**40))
def test_safetensors_headers_load_or_are_refused(tmp_path, header, claimed_extra):
    kind, value = header
    blob = value if kind == "raw" else json.dumps(value).encode()
    length = max(0, len(blob) + (claimed_extra if claimed_extra < 16 else 0))
    if claimed_extra >= 16:
        length = claimed_extra  # a length that the file does not hold
    path = tmp_path / "f.safetensors"
    path.write_bytes(struct.pack("<Q", length) + blob + bytes(8))
    _loads_or_refuses(lambda p: storage.read(p, "a fuzzed file"), path)


# -- checkpoint documents ---------------------------------------------------------------

@pytest.fixture(scope="module")
def valid_state():
    trainer = crossloop.Trainer(nn.mlp(hidden=4), optim.Adam(1e-3), backend="torch",
                                device="cpu", callbacks=[crossloop.EarlyStopping("loss")])
    trainer.fit(Batches(*striped_digits(16), 8, transforms=MNIST), epochs=1)
    trainer.train_batch(*next(Batches(*striped_digits(16), 8, transforms=MNIST).epoch(1)))
    return trainer.state_dict()


def _paths(state, prefix=()):
    """Every (path, value) in the JSON part of a state."""
    for key, value in state.items():
        if key in checkpoint.SECTIONS:
            continue
        yield (*prefix, key), value
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield (*prefix, key, i), item
                if isinstance(item, dict):
                    yield from _paths(item, (*prefix, key, i))


def _set(state, path, value):
    target = state
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()
tensor_changes = st.sampled_from(["none", "int8", "nan", "shape", "drop", "extra"])


@FUZZ
@given(data=st.data(), tensor_change=tensor_changes)
def test_checkpoint_documents_load_or_are_refused(valid_state, data, tensor_change):
    state = copy.deepcopy(valid_state)
    paths = list(_paths(state))
    for _ in range(data.draw(st.integers(1, 3))):
        path, _ = data.draw(st.sampled_from(paths))
        with contextlib.suppress(KeyError, IndexError, TypeError):  # a parent was removed
            _set(state, path, data.draw(st.one_of(st.just(_DELETE), json_values)))
    model = state["model"]
    name = sorted(model)[0]
    if tensor_change == "int8":
        model[name] = model[name].astype(np.int8)
    elif tensor_change == "nan":
        model[name] = np.full_like(model[name], np.nan)
    elif tensor_change == "shape":
        model[name] = np.zeros((3, 3), model[name].dtype)
    elif tensor_change == "drop":
        del model[name]
    elif tensor_change == "extra":
        model["9.weight"] = np.zeros(2, np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ckpt.safetensors"
        tensors = {f"{prefix}/{k}": v for key, prefix in checkpoint.SECTIONS.items()
                   for k, v in state.pop(key).items()}
        try:
            storage.write(path, tensors, {"format": checkpoint.FORMAT, **state})
        except (TypeError, ValueError):
            return  # not JSON-able: such a document cannot be on disk
        fresh = crossloop.Trainer(nn.mlp(hidden=4), optim.Adam(1e-3), backend="torch",
                                  device="cpu", callbacks=[crossloop.EarlyStopping("loss")])

        def restore_and_train(p):  # what loaded must also work: train on from it
            checkpoint.restore(fresh, p)
            fresh.fit(Batches(*striped_digits(16), 8, transforms=MNIST), epochs=fresh.epoch + 1)
            checkpoint.save(Path(tmp) / "again.safetensors", fresh.state_dict())

        _loads_or_refuses(restore_and_train, path)
