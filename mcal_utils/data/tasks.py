"""Tasks: one dataset, split and target, ready for a model -- ``load_task(name, ...) -> Task``.

Options common to the subsampling tasks (seeded by ``random_state``; ``None`` or ``0`` = all):
``n_train``, ``n_test`` (and ``n_val`` where a validation split exists). A subsample is a uniform
draw without replacement (not stratified), kept in the original order. Task-specific options are
listed in :data:`TASK_OPTIONS` and in :func:`load_task`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import checks
from .files import data_dir as data_dir_of
from .mnist import mnist_uint8_shared, to_unit_float
from .splicing import SPLICING_COLUMNS, load_splicing
from .svhn import load_svhn
from .toy1d import synthetic_1d
from .utkface import UTKFACE_FOLDER, load_utkface, utkface_files

TASK_NAMES: tuple[str, ...] = ("mnist", "mnist79", "mnist32", "rotated_mnist", "svhn", "utkface", "splicing", "toy1d")
KINDS = ("classification", "regression")
#: ``pixel_scale`` of the MNIST tasks: ``"unit"`` = u / 255 in [0, 1] (ours), ``"raw"`` = the
#: uint8 values 0-255 as float32 (how the DEIMOS code fed MNIST: no division, no normalisation).
PIXEL_SCALES: tuple[str, ...] = ("unit", "raw")


@dataclass(frozen=True)
class Task:
    """A learning task. Images are ``(N, C, H, W) float32`` (sequences ``(N, 4, L)``, toy inputs
    ``(N, 1)``); classification targets ``(N,) int64`` in ``0..n_classes-1``, regression targets
    ``(N,) float32``. ``x_val``/``y_val`` is a fixed validation split where the source defines one."""

    name: str
    kind: str
    n_classes: int | None
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    description: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Task kind must be one of {KINDS}, got {self.kind!r}")
        if (self.kind == "classification") != isinstance(self.n_classes, int):
            raise ValueError("n_classes must be an int for classification and None for regression")
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError("x_val and y_val must be given together")
        y_dtype = np.int64 if self.kind == "classification" else np.float32
        for split in ("train", "test", "val"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x is None:
                continue
            if x.dtype != np.float32 or y.dtype != y_dtype or y.ndim != 1 or len(x) != len(y):
                raise ValueError(
                    f"{self.name} {split}: expected x float32 (N, ...) and y {np.dtype(y_dtype)} (N,), "
                    f"got x {x.dtype} {x.shape}, y {y.dtype} {y.shape}"
                )
            if self.kind == "classification" and y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise ValueError(f"{self.name} {split}: labels outside 0..{self.n_classes - 1}")


# ------------------------------------------------------------------------------------------------
# Image operations
# ------------------------------------------------------------------------------------------------
def pad_images(x_NCHW: np.ndarray, pad: int = 2) -> np.ndarray:
    """Zero-pad ``pad`` pixels on every side: ``(N, C, H, W) -> (N, C, H + 2 pad, W + 2 pad)``."""
    if x_NCHW.ndim != 4 or pad < 0:
        raise ValueError(f"expected (N, C, H, W) images and pad >= 0, got {x_NCHW.shape}, pad={pad}")
    return np.pad(x_NCHW, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def rotate_images(x_NCHW: np.ndarray, angles_deg_N: np.ndarray, *, chunk: int = 8192) -> np.ndarray:
    """Rotate each image by its angle (degrees, counter-clockwise as displayed) about its centre.

    Bilinear interpolation, zeros outside the image, output the same size: the same map as
    ``scipy.ndimage.rotate(img, angle, reshape=False, order=1, mode="grid-constant")``, batched
    through ``torch.nn.functional.affine_grid`` / ``grid_sample``.
    """
    x_NCHW = np.asarray(x_NCHW, dtype=np.float32)
    angles = np.asarray(angles_deg_N, dtype=np.float64)
    if x_NCHW.ndim != 4 or angles.shape != (len(x_NCHW),):
        raise ValueError(f"expected (N, C, H, W) images and (N,) angles, got {x_NCHW.shape}, {angles.shape}")
    n, _, h, w = x_NCHW.shape
    if h != w:
        raise ValueError(f"rotate_images needs square images, got {h}x{w}")
    rad = np.deg2rad(angles)
    cos, sin = np.cos(rad), np.sin(rad)
    # output (x, y) in normalised coordinates (y down) samples the input at R (x, y)
    theta_N23 = np.zeros((n, 2, 3), dtype=np.float32)
    theta_N23[:, 0, 0], theta_N23[:, 0, 1] = cos, -sin
    theta_N23[:, 1, 0], theta_N23[:, 1, 1] = sin, cos
    out = np.empty_like(x_NCHW)
    for s in range(0, n, chunk):
        xb = torch.from_numpy(x_NCHW[s : s + chunk])
        grid = F.affine_grid(torch.from_numpy(theta_N23[s : s + chunk]), list(xb.shape), align_corners=False)
        out[s : s + chunk] = F.grid_sample(xb, grid, mode="bilinear", padding_mode="zeros", align_corners=False).numpy()
    return out


# ------------------------------------------------------------------------------------------------
# Subsampling and splitting
# ------------------------------------------------------------------------------------------------
def subsample_indices(n_total: int, n: int | None, rng: np.random.Generator, what: str = "n") -> np.ndarray:
    """``n`` indices of ``range(n_total)`` drawn without replacement, sorted; all of them for ``None``/0."""
    if n is None or n == 0:
        return np.arange(n_total)
    n = checks.check_int(n, f"{what} (None/0: all)", ge=1, le=n_total)
    return np.sort(rng.choice(n_total, size=n, replace=False))


def split_indices(n_total: int, test_fraction: float, n_val: int, rng: np.random.Generator):
    """Seeded split of ``range(n_total)`` into (train, val, test) index arrays, each sorted.

    DEIMOS (appendix D): ``test_fraction`` (10 %) held out, ``n_val`` (50) validation points drawn
    from the remainder, the rest is train + pool.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    n_test = int(round(test_fraction * n_total))
    if not (isinstance(n_val, int) and 0 <= n_val and n_test >= 1 and n_total - n_test - n_val >= 1):
        raise ValueError(f"cannot split {n_total} items into test {n_test}, val {n_val} and a non-empty train set")
    perm = rng.permutation(n_total)
    return (np.sort(perm[n_test + n_val :]), np.sort(perm[n_test : n_test + n_val]), np.sort(perm[:n_test]))


# ------------------------------------------------------------------------------------------------
# Task builders
# ------------------------------------------------------------------------------------------------
def _pixels(u8_NHW: np.ndarray, pixel_scale: str) -> np.ndarray:
    """``(N, H, W)`` uint8 -> ``(N, 1, H, W)`` float32 on the scale ``pixel_scale`` (:data:`PIXEL_SCALES`)."""
    if pixel_scale == "unit":
        return to_unit_float(u8_NHW)
    return u8_NHW.astype(np.float32)[:, None]


def _mnist_task(name, data_dir, rng, n_train=None, n_test=None, max_angle=45.0, pixel_scale="unit"):
    if pixel_scale not in PIXEL_SCALES:
        raise ValueError(
            f"pixel_scale must be one of {list(PIXEL_SCALES)} ('unit': [0, 1]; 'raw': 0-255 as "
            f"the DEIMOS code fed MNIST), got {pixel_scale!r}"
        )
    u_tr, l_tr, u_te, l_te = mnist_uint8_shared(data_dir)  # select on uint8, convert only what is kept
    itr, ite = np.arange(len(l_tr)), np.arange(len(l_te))
    if name == "mnist79":
        itr, ite = np.flatnonzero(np.isin(l_tr, (7, 9))), np.flatnonzero(np.isin(l_te, (7, 9)))
    itr = itr[subsample_indices(len(itr), n_train, rng, "n_train")]
    ite = ite[subsample_indices(len(ite), n_test, rng, "n_test")]
    xtr, xte = _pixels(u_tr[itr], pixel_scale), _pixels(u_te[ite], pixel_scale)
    scale = "in [0, 1]" if pixel_scale == "unit" else "raw 0-255"
    ytr, yte = l_tr[itr].astype(np.int64), l_te[ite].astype(np.int64)
    if name == "mnist79":
        ytr, yte = (ytr == 9).astype(np.int64), (yte == 9).astype(np.int64)
    if name == "mnist":
        return Task(
            name,
            "classification",
            10,
            xtr,
            ytr,
            xte,
            yte,
            description=f"MNIST digits 0-9, 28x28 {scale}: {len(xtr)} train, {len(xte)} test.",
        )
    if name == "mnist79":
        return Task(
            name,
            "classification",
            2,
            xtr,
            ytr,
            xte,
            yte,
            description=(f"MNIST 7 vs 9 (DEIMOS), {scale}: 7 -> 0, 9 -> 1; {len(xtr)} train/pool, {len(xte)} test."),
        )
    if name == "mnist32":
        return Task(
            name,
            "classification",
            10,
            pad_images(xtr),
            ytr,
            pad_images(xte),
            yte,
            description=(
                f"MNIST 0-9 zero-padded to 32x32 (for the CNN of the MC-dropout-entropy paper), {scale}: "
                f"{len(xtr)} train, {len(xte)} test."
            ),
        )
    # rotated_mnist
    max_angle = float(max_angle)
    if not 0 < max_angle <= 180:
        raise ValueError(f"max_angle must lie in (0, 180] degrees, got {max_angle}")
    a_tr = rng.uniform(-max_angle, max_angle, size=len(xtr))
    a_te = rng.uniform(-max_angle, max_angle, size=len(xte))
    return Task(
        name,
        "regression",
        None,
        rotate_images(xtr, a_tr),
        a_tr.astype(np.float32),
        rotate_images(xte, a_te),
        a_te.astype(np.float32),
        description=(
            f"Rotated MNIST ({scale}): each digit rotated counter-clockwise by a uniform angle in "
            f"[-{max_angle:g}, {max_angle:g}] degrees; target = the angle (degrees). "
            f"{len(xtr)} train, {len(xte)} test."
        ),
    )


def _svhn_task(data_dir, rng, n_train=None, n_val=None, n_test=None, download=True, verify=True):
    s = load_svhn(data_dir, download=download, verify=verify)
    itr = subsample_indices(len(s.x_train), n_train, rng, "n_train")
    iva = subsample_indices(len(s.x_val), n_val, rng, "n_val")
    ite = subsample_indices(len(s.x_test), n_test, rng, "n_test")
    return Task(
        "svhn",
        "classification",
        10,
        s.x_train[itr],
        s.y_train[itr],
        s.x_test[ite],
        s.y_test[ite],
        x_val=s.x_val[iva],
        y_val=s.y_val[iva],
        description=(
            f"SVHN, the MC-dropout-entropy paper's preprocessing (greyscale /255, first {s.k_train} per class, seed-42 "
            f"shuffle, 80/20): {len(itr)} train/pool, {len(iva)} validation, {len(ite)} test."
        ),
    )


def _split_and_subsample(n_total, rng, test_fraction, n_val, n_train, n_test):
    tr, va, te = split_indices(n_total, test_fraction, n_val, rng)
    tr = tr[subsample_indices(len(tr), n_train, rng, "n_train")]
    te = te[subsample_indices(len(te), n_test, rng, "n_test")]
    return tr, va, te


def _utkface_task(
    data_dir,
    rng,
    folder=None,
    size=64,
    grayscale=False,
    on_malformed="raise",
    test_fraction=0.1,
    n_val=50,
    n_train=None,
    n_test=None,
):
    root = Path(folder).expanduser() if folder is not None else data_dir_of(data_dir) / UTKFACE_FOLDER
    files, _ = utkface_files(root, on_malformed=on_malformed)
    tr, va, te = _split_and_subsample(len(files), rng, test_fraction, n_val, n_train, n_test)

    def load(idx):
        return load_utkface(folder=root, size=size, grayscale=grayscale, on_malformed=on_malformed, indices=idx)

    a, b, c = load(tr), load(va), load(te)
    return Task(
        "utkface",
        "regression",
        None,
        a.x,
        a.age,
        c.x,
        c.age,
        x_val=b.x if len(va) else None,
        y_val=b.age if len(va) else None,
        description=(
            f"UTKFace age (years) from {size}x{size} {'greyscale' if grayscale else 'RGB'} "
            f"faces: {len(tr)} train/pool, {len(va)} validation, {len(te)} test "
            "(DEIMOS: 10 % test, 50 val)."
        ),
    )


def _splicing_task(
    data_dir,
    rng,
    path=None,
    columns=SPLICING_COLUMNS,
    header=True,
    test_fraction=0.1,
    n_val=50,
    n_train=None,
    n_test=None,
):
    s = load_splicing(data_dir, path=path, columns=columns, header=header)
    tr, va, te = _split_and_subsample(len(s.x), rng, test_fraction, n_val, n_train, n_test)
    return Task(
        "splicing",
        "regression",
        None,
        s.x[tr],
        s.y[tr],
        s.x[te],
        s.y[te],
        x_val=s.x[va] if len(va) else None,
        y_val=s.y[va] if len(va) else None,
        description=(
            f"5' splicing: one-hot 101-nt sequences (A, C, G, T) -> SD1 / (SD1 + SD2); "
            f"{len(tr)} train/pool, {len(va)} validation, {len(te)} test "
            "(DEIMOS: 10 % test, 50 val)."
        ),
    )


def _toy1d_task(rng, **kwargs):
    t = synthetic_1d(rng, **kwargs)
    n_lab = len(t.x_train)
    return Task(
        "toy1d",
        "regression",
        None,
        np.concatenate([t.x_train, t.x_pool]),
        np.concatenate([t.y_train, t.y_pool]),
        t.x_test,
        t.y_test,
        description=(
            f"DEIMOS 1-D toy: x_train = the {n_lab}-point labelled sample (rows 0..{n_lab - 1}, "
            f"sparse in [{t.sparse_interval[0]:g}, {t.sparse_interval[1]:g}]) followed by the "
            f"{len(t.x_pool)}-point pool; noise std {t.noise_std:g}; test = {len(t.x_test)} "
            "noise-free grid points on [-10, 10]. Use synthetic_1d() for the separate arrays."
        ),
    )


TASK_OPTIONS: dict[str, tuple[str, ...]] = {
    "mnist": ("n_train", "n_test", "pixel_scale"),
    "mnist79": ("n_train", "n_test", "pixel_scale"),
    "mnist32": ("n_train", "n_test", "pixel_scale"),
    "rotated_mnist": ("n_train", "n_test", "max_angle", "pixel_scale"),
    "svhn": ("n_train", "n_val", "n_test", "download", "verify"),
    "utkface": ("folder", "size", "grayscale", "on_malformed", "test_fraction", "n_val", "n_train", "n_test"),
    "splicing": ("path", "columns", "header", "test_fraction", "n_val", "n_train", "n_test"),
    "toy1d": ("n_train", "n_sparse", "sparse_interval", "n_pool", "n_test", "n_grid", "noise_std"),
}


def load_task(
    name: str, *, data_dir: str | os.PathLike | None = None, random_state: int | np.random.Generator = 0, **options
) -> Task:
    """Build the task ``name`` (one of :data:`TASK_NAMES`); ``random_state`` seeds subsamples, splits,
    angles and the toy data.

    Options (:data:`TASK_OPTIONS`): ``n_train``/``n_test``/``n_val`` subsample sizes (None/0 = all);
    MNIST tasks: ``pixel_scale`` (:data:`PIXEL_SCALES`: ``"unit"`` [0, 1], default, or ``"raw"`` 0-255);
    ``rotated_mnist``: ``max_angle`` (45 degrees); ``svhn``: ``download``, ``verify`` (official md5);
    ``utkface``: ``folder``, ``size`` (64), ``grayscale``, ``on_malformed`` ("raise"/"skip"),
    ``test_fraction`` (0.1), ``n_val`` (50); ``splicing``: ``path``, ``columns``, ``header``,
    ``test_fraction``, ``n_val``; ``toy1d``: the keyword arguments of :func:`synthetic_1d`.
    """
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}; valid: {list(TASK_NAMES)}")
    unknown = sorted(set(options) - set(TASK_OPTIONS[name]))
    if unknown:
        raise ValueError(f"task {name!r}: unknown option(s) {unknown}; valid: {list(TASK_OPTIONS[name])}")
    rng = checks.check_random_state(random_state)
    if name in ("mnist", "mnist79", "mnist32", "rotated_mnist"):
        return _mnist_task(name, data_dir, rng, **options)
    if name == "svhn":
        return _svhn_task(data_dir, rng, **options)
    if name == "utkface":
        return _utkface_task(data_dir, rng, **options)
    if name == "splicing":
        return _splicing_task(data_dir, rng, **options)
    return _toy1d_task(rng, **options)
