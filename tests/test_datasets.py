"""The data sets beyond MNIST: CIFAR-10 (generated archives in the binary format, found,
downloaded and checksummed like MNIST), scikit-learn's bundled sets, text corpora, the
catalog of names -- and the real ones trained on both backends."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

import crossloop
from conftest import write_cifar
from crossloop import losses, nn, optim
from crossloop.data import (
    Batches,
    ChecksumError,
    DataError,
    DatasetNotFoundError,
    cifar,
    load_cifar10,
    load_dataset,
    load_python_stdlib,
    load_text,
)
from crossloop.data.text import corpus

ARCHIVE = "cifar-10-binary.tar.gz"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache, no $CROSSLOOP_DATA, and no real download."""
    monkeypatch.setenv("CROSSLOOP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CROSSLOOP_DATA", raising=False)
    monkeypatch.setattr(cifar, "MIRRORS", [(tmp_path / "no-mirror").as_uri() + "/"])
    return tmp_path / "cache"


# -- CIFAR-10 ----------------------------------------------------------------------

def test_cifar_archive_loads_in_canonical_layout(tmp_path):
    arrays = write_cifar(tmp_path / "d" / ARCHIVE)
    ds = load_cifar10(tmp_path / "d")
    for got, want in zip((ds.train_inputs, ds.train_targets, ds.test_inputs, ds.test_targets),
                         arrays):
        np.testing.assert_array_equal(got, want)
    assert ds.train_inputs.shape == (20, 3, 32, 32) and ds.num_classes == 10
    assert ds.classes[0] == "airplane" and not ds.train_inputs.flags.writeable
    x, _ = next(Batches.from_dataset(ds, "test", 5).epoch(0))
    mean, std = np.array(cifar.MEAN)[:, None, None], np.array(cifar.STD)[:, None, None]
    np.testing.assert_array_equal(x, ((arrays[2] / 255 - mean) / std).astype(np.float32))
    again = load_cifar10(tmp_path / "d")  # decoded once: now a memory map of the cache
    assert isinstance(again.train_inputs, np.memmap)
    np.testing.assert_array_equal(again.train_inputs, arrays[0])


def test_cifar_lookup_order_and_uncompressed_tar(tmp_path, isolated, monkeypatch):
    cached = write_cifar(isolated / "cifar10" / ARCHIVE, seed=1)
    assert np.array_equal(load_cifar10().train_targets, cached[1])
    env = write_cifar(tmp_path / "root" / "cifar10" / "cifar-10-binary.tar", seed=2)
    monkeypatch.setenv("CROSSLOOP_DATA", str(tmp_path / "root"))
    assert np.array_equal(load_cifar10().train_targets, env[1])


def fake_cifar_mirror(tmp_path, monkeypatch, md5: str | None = None) -> list[np.ndarray]:
    """Serve a generated archive over file:// (after a dead mirror, unless ``md5`` is
    given: then it is the only mirror, and its published MD5 is ``md5``)."""
    mirror = tmp_path / "mirror"
    arrays = write_cifar(mirror / ARCHIVE)
    digest = md5 or hashlib.md5((mirror / ARCHIVE).read_bytes()).hexdigest()
    dead = [] if md5 else [(tmp_path / "dead").as_uri() + "/"]
    monkeypatch.setattr(cifar, "MIRRORS", [*dead, mirror.as_uri() + "/"])
    monkeypatch.setitem(cifar.CHECKSUMS, cifar.ARCHIVE, ("gz", digest))
    return arrays


def test_cifar_download_is_checksummed_into_the_cache(tmp_path, isolated, monkeypatch, capsys):
    arrays = fake_cifar_mirror(tmp_path, monkeypatch)
    ds = load_cifar10()
    np.testing.assert_array_equal(ds.test_inputs, arrays[2])
    assert (isolated / "cifar10" / ARCHIVE).is_file() and "downloading" in capsys.readouterr().err


def test_cifar_bad_checksum_is_refused(tmp_path, isolated, monkeypatch):
    fake_cifar_mirror(tmp_path, monkeypatch, md5="0" * 32)
    with pytest.raises(ChecksumError, match="expected 0{32}"):
        load_cifar10()
    assert not (isolated / "cifar10" / ARCHIVE).exists()


def test_cifar_offline_names_the_archive_and_where_to_put_it(isolated):
    with pytest.raises(DatasetNotFoundError) as error:
        load_cifar10(download=False)
    message = str(error.value)
    assert ARCHIVE in message and str(isolated / "cifar10") in message
    assert "CROSSLOOP_DATA=<root>" in message


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", [corrupt, truncate])
def test_a_damaged_archive_is_one_clear_error(tmp_path, damage):
    write_cifar(tmp_path / "d" / ARCHIVE)
    damage(tmp_path / "d" / ARCHIVE)
    with pytest.raises(DataError) as error:
        load_cifar10(tmp_path / "d")
    message = str(error.value)
    assert str(tmp_path / "d" / ARCHIVE) in message and "download" in message
    assert "\n" not in message


@pytest.mark.parametrize("members, words", [
    ({cifar.TEST_MEMBER: bytes(3073 * 2 - 5)}, "not a whole number"),
    ({cifar.TRAIN_MEMBERS[2]: bytes([12]) + bytes(3072)}, "label 12, outside 0..9"),
])
def test_a_wrong_member_is_named(tmp_path, members, words):
    write_cifar(tmp_path / "d" / ARCHIVE, members=members)
    with pytest.raises(DataError, match=words) as error:
        load_cifar10(tmp_path / "d")
    assert next(iter(members)) in str(error.value)


def test_an_archive_without_the_batches_is_not_cifar(tmp_path):
    path = tmp_path / "d" / ARCHIVE
    path.parent.mkdir()
    path.write_bytes(gzip.compress(b"\0" * 1024))  # a tar of nothing
    with pytest.raises(DataError, match=f"lacks {cifar.TRAIN_MEMBERS[0]}"):
        load_cifar10(tmp_path / "d")


# -- scikit-learn's bundled sets ---------------------------------------------------

@pytest.mark.parametrize("name, n, input_shape, target, classes", [
    ("digits", 1797, (1, 8, 8), (), 10),
    ("diabetes", 442, (10,), (1,), None),
    ("breast_cancer", 569, (30,), (), 2),
])
def test_sklearn_sets_with_a_fixed_split(name, n, input_shape, target, classes):
    pytest.importorskip("sklearn")
    ds = load_dataset(name)
    assert len(ds.train_targets) + len(ds.test_targets) == n and len(ds.test_targets) == n // 5
    assert ds.num_classes == classes
    train = Batches.from_dataset(ds, "train", 1000, shuffle=False)
    assert (train.input_shape, train.target_shape) == (input_shape, target)
    x = np.concatenate([xb for xb, _ in train.epoch(0)])
    np.testing.assert_allclose(x.mean(), 0, atol=1e-5)  # standardised by the training split
    again = load_dataset(name)  # the same split every time
    np.testing.assert_array_equal(again.test_inputs, ds.test_inputs)


def test_sklearn_sets_take_no_data_dir(tmp_path):
    with pytest.raises(ValueError, match="digits ships inside its package"):
        load_dataset("digits", tmp_path)


# -- text ------------------------------------------------------------------------------

def test_char_windows_are_next_token_pairs():
    text = "hello, world! " * 40
    ds = corpus("t", text, seq_len=8)
    assert ds.classes == tuple(sorted(set(text))) and ds.num_classes == len(set(text))
    assert ds.train_inputs.shape[1:] == (8,) and not ds.train_inputs.flags.writeable
    ids = np.concatenate([ds.train_inputs[0], ds.train_targets[0][-1:]])
    assert "".join(ds.classes[i] for i in ids) == text[:9]
    np.testing.assert_array_equal(ds.train_inputs[1:, 0], ds.train_targets[:-1, -1])
    x, y = next(Batches.from_dataset(ds, "train", 4).epoch(0))
    assert x.dtype == y.dtype == np.int64 and np.array_equal(x[:, 1:], y[:, :-1])
    n_valid = len(text) - int(len(text) * 0.9)
    assert len(ds.test_inputs) == (n_valid - 1) // 8


def test_byte_tokens_and_files(tmp_path):
    (tmp_path / "a.txt").write_text("ä" * 300)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_bytes(b"\xff" * 100)  # not UTF-8
    (tmp_path / "skip.md").write_text("ignored")
    bytes_ = load_text(tmp_path, seq_len=16, tokens="byte")
    assert bytes_.num_classes == 256 and "2 files" in bytes_.source
    with pytest.raises(DataError, match=r"sub/b.txt: not UTF-8 .*--tokens byte"):
        load_text(tmp_path, seq_len=16)
    chars = load_text(tmp_path / "a.txt", seq_len=16)
    assert chars.classes == ("ä",)


@pytest.mark.parametrize("args, error, words", [
    (("nowhere",), DatasetNotFoundError, "does not exist"),
    (("empty",), DatasetNotFoundError, r"holds no \*\*/\*.txt file"),
    (("short.txt",), DataError, "give no training window of seq_len 128"),
])
def test_text_errors_name_the_fix(tmp_path, args, error, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "short.txt").write_text("too short")
    with pytest.raises(error, match=words):
        load_text(tmp_path / args[0])


def test_the_built_in_corpus_is_there_offline():
    ds = load_python_stdlib(seq_len=64)
    assert ds.name == "python-stdlib" and len(ds.train_inputs) > 10_000
    assert {"d", "e", "f", " ", "\n", ":"} <= set(ds.classes) and ds.num_classes < 1000
    assert load_dataset("python-stdlib", tokens="byte").num_classes == 256


def test_token_sequences_flow_through_the_loss_and_metrics(backend):
    """(N, T, V) logits against (N, T) token ids: cross-entropy and accuracy per token."""
    rng = np.random.default_rng(0)
    logits, y = rng.standard_normal((4, 6, 5)).astype(np.float32), rng.integers(0, 5, (4, 6))
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_p, y[..., None], -1).mean()
    t_logits, t_y = backend.to_device(logits), backend.to_device(y)
    loss = backend.loss(losses.CrossEntropy(), t_logits, t_y)
    np.testing.assert_allclose(backend.to_numpy(loss), expected, rtol=1e-5)
    metrics = backend.update_metrics(backend.metrics(), loss, t_logits, t_y)
    results = backend.metric_results(metrics)
    assert results["accuracy"] == pytest.approx((logits.argmax(-1) == y).mean())
    assert results["count"] == 4


# -- the catalog -------------------------------------------------------------------

def test_unknown_names_and_options_are_named(tmp_path):
    with pytest.raises(ValueError, match="known: breast-cancer, cifar10, diabetes, digits"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="text reads local files: give data_dir"):
        load_dataset("text")
    with pytest.raises(ValueError, match="mnist takes no option seq_len"):
        load_dataset("mnist", tmp_path, seq_len=3)


# -- real bundled data on both backends (the acceptance runs, small) ---------------------

def train_sklearn(backend, name, spec_of, optimizer, loss="cross_entropy", epochs=10):
    pytest.importorskip("sklearn")
    ds = load_dataset(name)
    train = Batches.from_dataset(ds, "train", 32, seed=0)
    test = Batches.from_dataset(ds, "test", 1000)
    trainer = crossloop.Trainer(spec_of(train.input_shape, ds.num_outputs), optimizer,
                                backend=backend, loss=loss, seed=0)
    return trainer.fit(train, test, epochs=epochs)[-1]


def test_an_mlp_learns_digits(backend):
    logs = train_sklearn(backend, "digits", lambda shape, k: nn.mlp(64, k, shape), optim.Adam(3e-3))
    assert logs["test_accuracy"] >= 0.95


def test_linear_regression_on_diabetes_reports_r2(backend):
    logs = train_sklearn(backend, "diabetes", lambda shape, k: nn.linear(k, shape),
                         optim.SGD(0.02), loss="mse", epochs=50)
    assert logs["test_r2"] >= 0.4 and np.isnan(logs["test_accuracy"])
    assert logs["test_r2"] == pytest.approx(1 - logs["test_loss"] / np.var(
        load_dataset("diabetes").test_targets))
