"""Tests for crossloop.data: IDX reading, data set lookup/download/caching, and Batches.

Everything runs on tiny IDX files generated here; no network, no framework.
The one test on real MNIST runs only when CROSSLOOP_DATA is set.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from crossloop.data import (
    Batches,
    ChecksumError,
    Dataset,
    DatasetNotFoundError,
    IDXError,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    read_idx,
    write_idx,
)
from crossloop.data import mnist as mnist_files
from crossloop.data.transforms import MNIST, AddChannel, Normalize

REAL_DATA = os.environ.get("CROSSLOOP_DATA")  # read before the autouse fixture clears it
FILES = mnist_files.FILES


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the cache at tmp_path, clear CROSSLOOP_DATA, and make any real download fail."""
    monkeypatch.setenv("CROSSLOOP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CROSSLOOP_DATA", raising=False)
    for name in mnist_files.MIRRORS:
        monkeypatch.setitem(mnist_files.MIRRORS, name, [(tmp_path / "no-mirror").as_uri() + "/"])
    return tmp_path / "cache"


def make_files(folder: Path, n_train: int = 6, n_test: int = 4, gz: bool = True, seed: int = 0):
    """Write the four IDX files of a tiny data set into ``folder``; return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = [
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train, dtype=np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test, dtype=np.uint8),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    for f, a in zip(FILES, arrays, strict=True):
        write_idx(folder / (f + (".gz" if gz else "")), a)
    return arrays


def assert_same(ds: Dataset, arrays) -> None:
    got = [ds.train_inputs, ds.train_targets, ds.test_inputs, ds.test_targets]
    for g, a in zip(got, arrays, strict=True):
        np.testing.assert_array_equal(g, a)
        assert g.dtype == np.uint8


# --- IDX ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-3, 0, 7], dtype=np.int8),
        np.array([[-300, 2], [5, 30000]], dtype=np.int16),
        np.array([1, -(2**31)], dtype=np.int32),
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
        np.array([np.pi, -np.e]),
    ],
    ids=lambda a: str(a.dtype),
)
def test_idx_roundtrip(tmp_path: Path, suffix: str, array: np.ndarray) -> None:
    path = tmp_path / ("a.idx" + suffix)
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    got = read_idx(path)
    assert got.dtype == array.dtype and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


def test_idx_header_is_big_endian(tmp_path: Path) -> None:
    write_idx(tmp_path / "a", np.zeros((2, 300), np.uint8))
    assert (tmp_path / "a").read_bytes()[:12] == bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 1, 44])


def test_idx_truncated(tmp_path: Path) -> None:
    path = tmp_path / "t.idx"
    write_idx(path, np.zeros((3, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(IDXError, match=r"truncated: expected 12 data bytes .* found 7") as e:
        read_idx(path)
    assert str(path) in str(e.value)
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(IDXError, match="truncated header"):
        read_idx(path)


def test_idx_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "m.idx"
    path.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(IDXError, match="bad magic: first 4 bytes are 50 4b 03 04") as e:
        read_idx(path)
    assert str(path) in str(e.value) and "starts with 00 00" in str(e.value)
    path.write_bytes(bytes([0, 0, 0x42, 1, 0, 0, 0, 0]))  # unknown type code
    with pytest.raises(IDXError, match="bad magic"):
        read_idx(path)


def test_idx_trailing_garbage(tmp_path: Path) -> None:
    path = tmp_path / "g.idx"
    write_idx(path, np.zeros(4, np.uint8))
    path.write_bytes(path.read_bytes() + b"xyz")
    with pytest.raises(IDXError, match=r"trailing garbage: expected 4 .* found 7 \(3 extra\)"):
        read_idx(path)


def test_idx_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "c.idx.gz"
    write_idx(path, np.arange(1000, dtype=np.int32))
    data = bytearray(path.read_bytes())
    path.write_bytes(data[: len(data) // 2])  # cut short
    with pytest.raises(IDXError, match="corrupt gzip stream") as e:
        read_idx(path)
    assert str(path) in str(e.value)
    data[len(data) // 2] ^= 0xFF  # flipped bits: bad deflate data or CRC
    path.write_bytes(data)
    with pytest.raises(IDXError, match="corrupt gzip stream"):
        read_idx(path)


def test_write_idx_rejects_unsupported_dtype(tmp_path: Path) -> None:
    with pytest.raises(IDXError, match="cannot hold dtype uint16"):
        write_idx(tmp_path / "x", np.zeros(2, np.uint16))


# --- finding and validating data sets -----------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_from_explicit_dir(tmp_path: Path, gz: bool) -> None:
    arrays = make_files(tmp_path / "d", gz=gz)
    ds = load_mnist(tmp_path / "d", download=False)
    assert_same(ds, arrays)
    assert ds.name == "mnist" and ds.source == str((tmp_path / "d").resolve())
    assert "train=6" in repr(ds)
    assert not ds.train_inputs.flags.writeable


def test_mixed_gz_and_raw_prefers_raw(tmp_path: Path) -> None:
    arrays = make_files(tmp_path / "d", gz=True)
    write_idx(tmp_path / "d" / FILES[3], arrays[3][::-1])  # raw beside .gz: raw wins
    ds = load_mnist(tmp_path / "d")
    np.testing.assert_array_equal(ds.test_targets, arrays[3][::-1])


def test_lookup_order(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = make_files(tmp_path / "explicit", n_train=2, seed=1)
    env = make_files(tmp_path / "root" / "mnist", n_train=3, seed=2)
    cached = make_files(cache / "mnist", n_train=4, seed=3)
    assert_same(load_mnist(download=False), cached)  # nothing else set: the cache
    monkeypatch.setenv("CROSSLOOP_DATA", str(tmp_path / "root"))
    assert_same(load_mnist(download=False), env)  # CROSSLOOP_DATA beats the cache
    assert_same(load_mnist(tmp_path / "explicit", download=False), explicit)  # explicit beats all
    monkeypatch.setenv("CROSSLOOP_DATA", str(tmp_path / "empty-root"))
    assert_same(load_mnist(download=False), cached)  # CROSSLOOP_DATA without mnist/: fall through


def test_explicit_dir_missing_files_no_fallback(tmp_path: Path, cache: Path) -> None:
    make_files(cache / "mnist")  # a good copy exists, but must not be used
    make_files(tmp_path / "d")
    (tmp_path / "d" / (FILES[1] + ".gz")).unlink()
    with pytest.raises(DatasetNotFoundError) as e:
        load_mnist(tmp_path / "d")
    msg = str(e.value)
    assert str(tmp_path / "d") in msg and FILES[1] in msg and FILES[0] + "[" not in msg
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
    make_files(tmp_path / "root" / "mnist")  # a data root given instead of the mnist folder
    with pytest.raises(DatasetNotFoundError, match=r"did you mean .*root.mnist"):
        load_mnist(tmp_path / "root")


def test_count_mismatch_names_both_files(tmp_path: Path) -> None:
    make_files(tmp_path / "d", n_test=4)
    write_idx(tmp_path / "d" / (FILES[3] + ".gz"), np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="counts differ") as e:
        load_mnist(tmp_path / "d")
    msg = str(e.value)
    assert FILES[2] in msg and FILES[3] in msg and "4 images" in msg and "3 labels" in msg


@pytest.mark.parametrize(
    "index, array, match",
    [
        (0, np.zeros((2, 28, 27), np.uint8), r"\(N, 28, 28\) uint8"),
        (0, np.zeros((2, 28, 28), np.float32), r"\(N, 28, 28\) uint8"),
        (1, np.zeros((6, 1), np.uint8), r"\(N,\) uint8 labels"),
        (1, np.full(6, 10, np.uint8), "label 10, outside 0..9"),
    ],
)
def test_content_validation(tmp_path: Path, index: int, array, match: str) -> None:
    make_files(tmp_path / "d", n_train=6)
    write_idx(tmp_path / "d" / (FILES[index] + ".gz"), array)
    with pytest.raises(ValueError, match=match):
        load_mnist(tmp_path / "d")


def test_unknown_name_lists_known() -> None:
    with pytest.raises(ValueError, match="fashion-mnist, mnist"):
        load_dataset("imagenet")


# --- download ----------------------------------------------------------------


def fake_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, kind: str):
    """Serve a tiny data set over file:// and install its checksums; return the arrays."""
    mirror = tmp_path / f"mirror-{name}"
    arrays = make_files(mirror, gz=True)
    sums = {}
    for f in FILES:
        data = (mirror / (f + ".gz")).read_bytes()
        content = gzip.decompress(data) if kind == "raw" else data
        sums[f] = (kind, hashlib.md5(content).hexdigest())
    monkeypatch.setitem(mnist_files.CHECKSUMS, name, sums)
    dead = (tmp_path / "dead-mirror").as_uri() + "/"
    monkeypatch.setitem(mnist_files.MIRRORS, name, [dead, mirror.as_uri() + "/"])
    return arrays


@pytest.mark.parametrize("name, kind", [("mnist", "raw"), ("fashion-mnist", "gz")])
def test_download_verifies_and_lands_in_cache(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, capsys, name: str, kind: str
) -> None:
    arrays = fake_mirror(tmp_path, monkeypatch, name, kind)
    ds = load_dataset(name)
    assert_same(ds, arrays)
    assert ds.source == str((cache / name).resolve())
    assert sorted(p.name for p in (cache / name).iterdir()) == sorted(f + ".gz" for f in FILES)
    assert "downloading" in capsys.readouterr().err
    # Now offline: the cached files are used, nothing is fetched again.
    monkeypatch.setitem(mnist_files.MIRRORS, name, [])
    loader = load_mnist if name == "mnist" else load_fashion_mnist
    assert_same(loader(), arrays)
    assert "downloading" not in capsys.readouterr().err


def test_download_bad_checksum_raises_and_leaves_nothing(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mirror(tmp_path, monkeypatch, "mnist", "raw")
    good = mnist_files.MIRRORS["mnist"][1]
    monkeypatch.setitem(mnist_files.MIRRORS, "mnist", [good])
    monkeypatch.setitem(mnist_files.CHECKSUMS["mnist"], FILES[0], ("raw", "0" * 32))
    with pytest.raises(ChecksumError) as e:
        load_mnist()
    msg = str(e.value)
    assert good + FILES[0] + ".gz" in msg and "expected " + "0" * 32 in msg and "got " in msg
    assert not (cache / "mnist" / (FILES[0] + ".gz")).exists()
    assert not any(".part" in p.name for p in (cache / "mnist").iterdir())


def test_checksum_mismatch_falls_back_to_next_mirror(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    arrays = fake_mirror(tmp_path, monkeypatch, "mnist", "raw")
    evil = tmp_path / "evil"
    make_files(evil, seed=5)  # well-formed files with the wrong content
    good = mnist_files.MIRRORS["mnist"][1]
    monkeypatch.setitem(mnist_files.MIRRORS, "mnist", [evil.as_uri() + "/", good])
    assert_same(load_mnist(), arrays)
    assert "MD5 mismatch" in capsys.readouterr().err


def test_offline_without_files_names_directories(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = [(tmp_path / f"dead{i}").as_uri() + "/" for i in (1, 2)]
    monkeypatch.setitem(mnist_files.MIRRORS, "mnist", dead)
    monkeypatch.setenv("CROSSLOOP_DATA", str(tmp_path / "root"))
    for download, reason in ((True, dead[1] + FILES[0]), (False, "download=False")):
        with pytest.raises(DatasetNotFoundError) as e:
            load_mnist(download=download)
        msg = str(e.value)
        assert str(tmp_path / "root" / "mnist") in msg and str(cache / "mnist") in msg
        assert "CROSSLOOP_DATA=<root>" in msg and FILES[0] + ".gz" in msg and reason in msg
        assert isinstance(e.value, FileNotFoundError)


# --- decoded-array cache -----------------------------------------------------


def test_decoded_cache_roundtrip(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = make_files(tmp_path / "d")
    first = load_mnist(tmp_path / "d")
    assert len(list((cache / "decoded").glob("mnist-*/train_inputs.npy"))) == 1

    def no_decode(path):
        raise AssertionError(f"decoded {path} although the cache should hit")

    monkeypatch.setattr(mnist_files, "read_idx", no_decode)
    second = load_mnist(tmp_path / "d")
    assert_same(second, arrays)
    for a, b in zip(
        (first.train_inputs, first.train_targets, first.test_inputs, first.test_targets),
        (second.train_inputs, second.train_targets, second.test_inputs, second.test_targets),
        strict=True,
    ):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    assert not second.train_inputs.flags.writeable
    assert isinstance(second.train_inputs, np.memmap)  # read when a batch needs it

    # Changing a source file (new mtime and content) misses the cache.
    monkeypatch.undo()
    monkeypatch.setenv("CROSSLOOP_CACHE", str(cache))
    new = make_files(tmp_path / "d", seed=9)
    os.utime(tmp_path / "d" / (FILES[0] + ".gz"), ns=(1, 1))
    assert_same(load_mnist(tmp_path / "d"), new)


def test_unwritable_cache_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("CROSSLOOP_CACHE", str(tmp_path / "a-file" / "cache"))  # cannot mkdir
    arrays = make_files(tmp_path / "d")
    assert_same(load_mnist(tmp_path / "d"), arrays)


def test_corrupt_decoded_cache_is_ignored(tmp_path: Path, cache: Path) -> None:
    arrays = make_files(tmp_path / "d")
    load_mnist(tmp_path / "d")
    (npy,) = (cache / "decoded").glob("*/train_inputs.npy")
    npy.write_bytes(b"not an npy file")
    assert_same(load_mnist(tmp_path / "d"), arrays)


# --- Batches -----------------------------------------------------------------


def toy(n: int = 10, h: int = 2, w: int = 3):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, h, w), dtype=np.uint8), np.arange(n, dtype=np.uint8)


def collect(b: Batches, epoch: int, start: int = 0):
    return list(b.epoch(epoch, start))


def test_batches_same_seed_same_batches() -> None:
    x, y = toy()
    a, b = Batches(x, y, 3, seed=7), Batches(x, y, 3, seed=7)
    for (xa, ya), (xb, yb) in zip(collect(a, 2), collect(b, 2), strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    order = np.concatenate([yb for _, yb in collect(b, 2)])
    np.testing.assert_array_equal(order, np.random.default_rng([7, 2]).permutation(10))
    other_seed = np.concatenate([yb for _, yb in collect(Batches(x, y, 3, seed=8), 2)])
    assert not np.array_equal(order, other_seed)


def test_batches_epochs_differ_and_cover_every_sample_once() -> None:
    x, y = toy(50)
    b = Batches(x, y, 8)
    orders = [np.concatenate([yb for _, yb in collect(b, e)]) for e in range(3)]
    for o in orders:
        np.testing.assert_array_equal(np.sort(o), np.arange(50))
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[1], orders[2])


def test_batches_start_skips_exactly_k() -> None:
    x, y = toy(10)
    b = Batches(x, y, 3)
    full = collect(b, 4)
    for k in range(len(b) + 1):
        resumed = collect(b, 4, start=k)
        assert len(resumed) == len(b) - k
        for (xa, ya), (xb, yb) in zip(full[k:], resumed, strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


def test_batches_last_partial_and_drop_last() -> None:
    x, y = toy(10)
    b = Batches(x, y, 4)
    assert len(b) == 3 and [len(yb) for _, yb in collect(b, 0)] == [4, 4, 2]
    d = Batches(x, y, 4, drop_last=True)
    assert len(d) == 2 and [len(yb) for _, yb in collect(d, 0)] == [4, 4]
    assert b.num_samples == 10 and b.batch_size == 4


@pytest.mark.parametrize("dtype", ["float32", "float64", np.float16])
def test_batches_dtype_and_normalisation(dtype) -> None:
    x, y = toy(5)
    normalize = (AddChannel(), Normalize(0.5, 0.25, max_value=255))
    b = Batches(x, y, 5, shuffle=False, dtype=dtype, transforms=normalize)
    ((xb, yb),) = collect(b, 0)
    assert xb.shape == (5, 1, 2, 3) and xb.dtype == np.dtype(dtype) and yb.dtype == np.int64
    expected = ((x.astype(np.float64) / 255 - 0.5) / 0.25).astype(dtype)[:, None]
    np.testing.assert_array_equal(xb, expected)
    np.testing.assert_array_equal(yb, np.arange(5))
    # Non-uint8 input follows the same formula; NCHW input keeps its channels.
    ((xf, _),) = collect(
        Batches(x.astype(np.float32), y, 5, shuffle=False, dtype=dtype, transforms=normalize), 0
    )
    np.testing.assert_array_equal(xf, expected)
    ((xc, _),) = collect(Batches(np.stack([x, x], 1), y, 5, shuffle=False, transforms=MNIST), 0)
    assert xc.shape == (5, 2, 2, 3)


def test_batches_mnist_normalisation() -> None:
    x = np.array([[[0, 255]]], np.uint8)
    ((xb, _),) = collect(Batches(x, [3], 1, transforms=MNIST), 0)
    np.testing.assert_allclose(xb.ravel(), [-0.1307 / 0.3081, (1 - 0.1307) / 0.3081], rtol=1e-6)


def test_batches_from_dataset(tmp_path: Path) -> None:
    arrays = make_files(tmp_path / "d", n_train=6, n_test=4)
    ds = load_mnist(tmp_path / "d")
    train = Batches.from_dataset(ds, "train", 4)
    test = Batches.from_dataset(ds, "test", 3)
    assert train.num_samples == 6 and len(train) == 2
    order = np.concatenate([yb for _, yb in collect(test, 0)])
    np.testing.assert_array_equal(order, arrays[3])  # test: not shuffled
    shuffled_test = Batches.from_dataset(ds, "test", 3, shuffle=True, seed=1)
    shuffled = np.concatenate([yb for _, yb in collect(shuffled_test, 0)])
    np.testing.assert_array_equal(shuffled, arrays[3][np.random.default_rng([1, 0]).permutation(4)])
    with pytest.raises(ValueError, match="split must be"):
        Batches.from_dataset(ds, "val", 4)


@pytest.mark.parametrize(
    "args, kw, error, match",
    [
        ((0,), {}, ValueError, "batch_size must be >= 1"),
        ((2.0,), {}, TypeError, "batch_size must be an int"),
        ((2,), {"labels": np.arange(9)}, ValueError, "one entry per input"),
        ((2,), {"images": np.zeros((10, 4), np.uint8), "transforms": MNIST}, ValueError,
         r"images \(B, H, W\) or \(B, C, H, W\), got a batch of shape \(1, 4\)"),
        ((2,), {"images": np.zeros((0, 2, 2), np.uint8), "labels": []}, ValueError, "no samples"),
        ((20,), {"drop_last": True}, ValueError, "leaves no batch"),
        ((2,), {"dtype": "int32"}, ValueError, "floating dtype"),
        ((2,), {"seed": -1}, ValueError, "seed must be"),
        ((2,), {"labels": np.zeros(10, bool)}, ValueError, "targets must be numbers"),
        ((2,), {"transforms": [None]}, TypeError, "transform must be callable"),
    ],
)
def test_batches_validation(args, kw, error, match) -> None:
    x, y = toy(10)
    images, labels = kw.pop("images", x), kw.pop("labels", y)
    with pytest.raises(error, match=match):
        Batches(images, labels, *args, **kw)


def test_batches_epoch_arguments_checked_eagerly() -> None:
    b = Batches(*toy(10), 3)
    with pytest.raises(ValueError, match=r"start must be in 0\.\.4"):
        b.epoch(0, start=5)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        b.epoch(-1)


# --- real data ---------------------------------------------------------------


@pytest.mark.skipif(not REAL_DATA, reason="set CROSSLOOP_DATA to a folder holding mnist/ to run")
def test_real_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSLOOP_DATA", REAL_DATA)
    ds = load_mnist(download=False)
    assert ds.train_inputs.shape == (60000, 28, 28) and ds.train_targets.shape == (60000,)
    assert ds.test_inputs.shape == (10000, 28, 28) and ds.test_targets.shape == (10000,)
    for labels in (ds.train_targets, ds.test_targets):
        assert labels.dtype == np.uint8 and set(np.unique(labels)) == set(range(10))
    assert ds.train_inputs.max() == 255 and ds.train_inputs.min() == 0


# --- bounded input: hostile headers cost no more than the data they really hold ---------


def _peak(read) -> int:
    import tracemalloc
    tracemalloc.start()
    try:
        read()
    except IDXError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_gzip_bomb_is_refused_reading_no_more_than_the_header_declares(tmp_path: Path) -> None:
    """A 64 KB file inflating to 64 MB behind a header that declares 50 KB: the reader
    stops one chunk past the declared size (the legitimate file's) and says why."""
    path = tmp_path / "bomb.idx.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(bytes([0, 0, 8, 3]) + struct.pack(">3I", 64, 28, 28))
        for _ in range(64):
            f.write(bytes(1 << 20))
    assert path.stat().st_size < 100_000
    with pytest.raises(IDXError, match="trailing garbage: expected 50176 data bytes"):
        read_idx(path)
    assert _peak(lambda: read_idx(path)) < 1_000_000   # not 64 MB


def test_a_header_that_declares_more_than_the_stream_holds_costs_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "short.idx.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", 900_000_000) + bytes(10_000)))
    with pytest.raises(IDXError, match=r"truncated: expected 900000000 data bytes .* found 10000"):
        read_idx(path)
    assert _peak(lambda: read_idx(path)) < 2_000_000   # not the declared 900 MB
    raw = tmp_path / "short.idx"
    raw.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 900_000_000) + bytes(10))
    with pytest.raises(IDXError, match="truncated: expected 900000000 data bytes .* found 10"):
        read_idx(raw)
    assert _peak(lambda: read_idx(raw)) < 100_000


@pytest.mark.parametrize("ndim, dims, words", [
    (255, [2**32 - 1] * 255, "declares 255 dimensions"),
    (3, [70000] * 3, "343000000000000 bytes, more than the 1073741824-byte limit"),
    (3, [0, 2**32 - 1, 2**32 - 1], "more than the 1073741824-byte limit"),
])
def test_headers_beyond_sane_limits_are_refused_before_allocating(tmp_path, ndim, dims, words):
    path = tmp_path / "h.idx"
    path.write_bytes(bytes([0, 0, 8, ndim]) + struct.pack(f">{ndim}I", *dims))
    with pytest.raises(IDXError, match=words):
        read_idx(path)
