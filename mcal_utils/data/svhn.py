"""SVHN (cropped digits, 32x32) with the MC-dropout-entropy paper's preprocessing (nealkafree/MonteCarloSampling).

Per file (``train_32x32.mat`` and ``test_32x32.mat``, each processed on its own):

1. greyscale ``g = RGB . [0.299, 0.587, 0.114]`` (float64), then ``float32(g) / 255``; no
   normalisation; tensor layout ``(N, 1, 32, 32)``; label 10 -> 0;
2. class balancing: ``k`` = size of the smallest class; keep the FIRST ``k`` images of every
   class in file order (train: k = 4659 -> 46590 images; test: k = 1595 -> 15950);
3. shuffle with ``torch.randperm(n, generator=torch.Generator().manual_seed(42))`` -- the MC-dropout-entropy paper's
   ``prepare_data`` does this to both files;
4. train only: first ``int(0.8 n)`` = train/pool (37272), the rest = fixed validation (9318).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch

from .files import (
    NetworkUnavailable,
    check_digest,
    download_first,
    missing_file,
    offline,
    write_text_atomic,
)
from .files import (
    data_dir as _data_dir,
)

SVHN_URLS: dict[str, tuple[str, ...]] = {
    "train_32x32.mat": ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",),
    "test_32x32.mat": ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",),
}
SVHN_MD5: dict[str, str] = {
    "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
}
GREY_COEFFS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, as the MC-dropout-entropy paper's code
SHUFFLE_SEED = 42
TRAIN_FRACTION = 0.8
# Per-class counts of digits 0..9 in the official files, as commonly tabulated (totals 73257 and
# 26032 are the official sizes; the minima 4659 and 1595 give the MC-dropout-entropy paper's 46590 and 15950).
SVHN_TRAIN_COUNTS: tuple[int, ...] = (4948, 13861, 10585, 8497, 7458, 6882, 5727, 5595, 5045, 4659)
SVHN_TEST_COUNTS: tuple[int, ...] = (1744, 5099, 4149, 2882, 2523, 2384, 1977, 2019, 1660, 1595)
_HOW = (
    "Download it from http://ufldl.stanford.edu/housenumbers/ (cropped digits, format 2) into the "
    "data directory, or call load_svhn(download=True) with network access."
)


@dataclass(frozen=True)
class SVHN:
    """SVHN as the MC-dropout-entropy paper prepared it.

    ``x_* (N, 1, 32, 32) float32`` in [0, 1], ``y_* (N,) int64`` in 0..9.

    ``x_train`` / ``x_val`` are the first 80 % / last 20 % of the shuffled balanced train file;
    ``x_test`` is the shuffled balanced test file. ``class_counts_*`` are the raw per-class counts
    of each file (digits 0..9), ``k_*`` the kept images per class.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_counts_train: tuple[int, ...]
    class_counts_test: tuple[int, ...]
    k_train: int
    k_test: int


@dataclass(frozen=True)
class Balanced:
    """Result of :func:`balance_first_k`: kept indices in file order and the arithmetic behind them."""

    indices: np.ndarray  # (n_classes * k,) int64, increasing (file order)
    class_counts: tuple[int, ...]
    k: int


def balance_first_k(labels_N: np.ndarray, n_classes: int = 10) -> Balanced:
    """Keep the first ``k = min class count`` indices of every class, in file order (the MC-dropout-entropy paper).

    Every class in ``0..n_classes-1`` must occur; otherwise ``ValueError``.
    """
    labels_N = np.asarray(labels_N)
    if labels_N.ndim != 1 or labels_N.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels_N.shape}")
    if labels_N.min() < 0 or labels_N.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {labels_N.min()}..{labels_N.max()}")
    counts = np.bincount(labels_N, minlength=n_classes)
    if counts.min() == 0:
        raise ValueError(f"class(es) {np.flatnonzero(counts == 0).tolist()} are absent; cannot balance")
    k = int(counts.min())
    # rank of each item within its class, in file order
    order = np.argsort(labels_N, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty_like(order)
    rank[order] = np.arange(labels_N.size) - np.repeat(starts, counts)
    return Balanced(indices=np.flatnonzero(rank < k).astype(np.int64), class_counts=tuple(int(c) for c in counts), k=k)


def greyscale(x_HWCN: np.ndarray, *, chunk: int = 8192) -> np.ndarray:
    """``(32, 32, 3, N)`` uint8 -> ``(N, 1, 32, 32)`` float32: ``float32(RGB . [0.299, 0.587, 0.114]) / 255``."""
    if x_HWCN.ndim != 4 or x_HWCN.shape[2] != 3:
        raise ValueError(f"expected images of shape (H, W, 3, N), got {x_HWCN.shape}")
    h, w, _, n = x_HWCN.shape
    out = np.empty((n, 1, h, w), dtype=np.float32)
    coeffs = np.asarray(GREY_COEFFS, dtype=np.float64)
    for s in range(0, n, chunk):
        block = np.moveaxis(x_HWCN[..., s : s + chunk], 3, 0)  # (n, H, W, 3)
        g = np.dot(block, coeffs)  # float64 (n, H, W), as the MC-dropout-entropy paper's code
        out[s : s + chunk, 0] = g.astype(np.float32) / np.float32(255)
    return out


def kirillov_permutation(n: int, seed: int = SHUFFLE_SEED) -> np.ndarray:
    """``torch.randperm(n, generator=torch.Generator().manual_seed(seed))`` as int64 numpy."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy().astype(np.int64)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(X (32, 32, 3, N) uint8, y (N,) int64 in 0..9)`` from an SVHN ``.mat`` file; label 10 -> 0.

    Anything else (an unreadable file, images that are not 32 x 32 RGB) raises ``ValueError``
    naming the file and what to do."""
    try:
        mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    except Exception as e:  # noqa: BLE001 - scipy raises MatReadError, IndexError, ValueError, zlib errors ...
        raise ValueError(
            f"{path}: cannot read as a MATLAB file with keys X and y ({type(e).__name__}: {e}); the "
            f"file is truncated or not an SVHN file. Delete it and download it again. {_HOW}"
        ) from None
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path}: expected keys 'X' and 'y', found {sorted(k for k in mat if not k.startswith('__'))}")
    X, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if X.ndim != 4 or X.shape[:3] != (32, 32, 3) or X.dtype != np.uint8:
        raise ValueError(
            f"{path}: X must be (32, 32, 3, N) uint8 (SVHN cropped digits, format 2), got {X.shape} {X.dtype}. {_HOW}"
        )
    if y.shape[0] != X.shape[3]:
        raise ValueError(f"{path}: {X.shape[3]} images but {y.shape[0]} labels")
    if y.size and (y.min() < 0 or y.max() > 10):
        raise ValueError(f"{path}: labels must lie in 0..10 (10 = digit 0), got {y.min()}..{y.max()}")
    y = y.astype(np.int64)
    y[y == 10] = 0
    return X, y


def prepare_file(path: Path, *, shuffle_seed: int = SHUFFLE_SEED) -> tuple[np.ndarray, np.ndarray, Balanced]:
    """The MC-dropout-entropy paper's ``prepare_data`` for one file: greyscale, balance (first k per class), shuffle."""
    X, y = read_svhn_mat(path)
    bal = balance_first_k(y)
    x = greyscale(X[..., bal.indices])
    perm = kirillov_permutation(bal.indices.size, shuffle_seed)
    return x[perm], y[bal.indices][perm], bal


def _verified(path: Path, md5: str) -> None:
    """Check ``path`` against the official md5 once; remember success in ``<file>.md5`` (size, mtime)."""
    st = path.stat()
    stamp = f"{md5} {st.st_size} {st.st_mtime_ns}"
    memo = path.with_name(path.name + ".md5")
    if memo.exists() and memo.read_text().strip() == stamp:
        return
    check_digest(
        path,
        md5,
        "md5",
        remedy=f"Delete {path} and download it again (or pass verify=False "
        "for a file that is deliberately not the official one).",
    )
    write_text_atomic(memo, stamp + "\n")


def svhn_file(
    name: str, data_dir=None, *, download: bool = True, verify: bool = True, progress: bool | None = None
) -> Path:
    """Path of an official SVHN file in the data dir, downloading it if missing and allowed."""
    if name not in SVHN_MD5:
        raise ValueError(f"unknown SVHN file {name!r}; valid: {sorted(SVHN_MD5)}")
    path = _data_dir(data_dir) / name
    if not path.exists():
        why = "downloads are disabled by $MCAL_OFFLINE" if offline() else "download=False" if not download else None
        if why is None:
            try:
                download_first(SVHN_URLS[name], path, SVHN_MD5[name], progress=progress)
            except NetworkUnavailable as e:
                why = f"the download failed ({e})"
        if not path.exists():
            raise missing_file(path, "SVHN", f"Not downloaded: {why}. {_HOW}")
    if verify:
        _verified(path, SVHN_MD5[name])
    return path


def load_svhn(
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    verify: bool = True,
    progress: bool | None = None,
) -> SVHN:
    """SVHN preprocessed exactly as the MC-dropout-entropy paper's code (module docstring).

    ``verify`` checks each file once against its official md5 (the result is remembered in
    ``<file>.md5``); pass ``verify=False`` for files that are not the official ones (test fixtures).
    """
    paths = {
        n: svhn_file(n, data_dir, download=download, verify=verify, progress=progress)
        for n in ("train_32x32.mat", "test_32x32.mat")
    }
    x, y, bal_train = prepare_file(paths["train_32x32.mat"])
    x_test, y_test, bal_test = prepare_file(paths["test_32x32.mat"])
    split = int(TRAIN_FRACTION * len(x))
    return SVHN(
        x_train=x[:split],
        y_train=y[:split],
        x_val=x[split:],
        y_val=y[split:],
        x_test=x_test,
        y_test=y_test,
        class_counts_train=bal_train.class_counts,
        class_counts_test=bal_test.class_counts,
        k_train=bal_train.k,
        k_test=bal_test.k,
    )


def balancing_table(class_counts: Sequence[int] | np.ndarray) -> dict[str, int]:
    """The MC-dropout-entropy paper's balancing arithmetic on per-class counts: k, kept, dropped, 80/20 split sizes."""
    counts = np.asarray(class_counts, dtype=np.int64)
    if counts.ndim != 1 or counts.size == 0 or counts.min() <= 0:
        raise ValueError(f"class counts must be a 1-D array of positive integers, got {class_counts!r}")
    k = int(counts.min())
    kept = k * counts.size
    return dict(
        total=int(counts.sum()),
        k=k,
        smallest_class=int(counts.argmin()),
        kept=kept,
        dropped=int(counts.sum()) - kept,
        train=int(TRAIN_FRACTION * kept),
        val=kept - int(TRAIN_FRACTION * kept),
    )
