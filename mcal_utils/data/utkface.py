"""UTKFace face-age data (Zhang, Song & Qi 2017), as used by DEIMOS (23,708 images, target = age).

File names follow ``[age]_[gender]_[race]_[date&time].jpg`` (the aligned & cropped release appends
``.chip.jpg``). Only the age is needed: a name is well-formed when its first ``_``-separated field
is an integer age in 0..130 and it ends in ``.jpg``. (Three files of the official release lack
the race field; their age is still read, which keeps all 23,708 images, as DEIMOS did.)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import checks
from .files import data_dir as _data_dir
from .files import missing_file

UTKFACE_FOLDER = "UTKFace"
MAX_AGE = 130
_NAME = re.compile(r"^(\d{1,3})_.*\.jpe?g$", re.IGNORECASE)
_HOW = (
    "Download UTKFace (aligned & cropped faces, https://susanqq.github.io/UTKFace/) and unpack the "
    "folder of age_gender_race_date*.jpg files there, or pass folder=..."
)


@dataclass(frozen=True)
class UTKFace:
    """``x (N, C, size, size) float32`` in [0, 1] (C = 1 greyscale or 3 RGB), ``age (N,) float32`` years, file names."""

    x: np.ndarray
    age: np.ndarray
    files: tuple[str, ...]


def parse_age(name: str) -> int:
    """Age (years) from a UTKFace file name; ``ValueError`` if the name is malformed."""
    m = _NAME.match(name)
    if m is None or int(m.group(1)) > MAX_AGE:
        raise ValueError(
            f"malformed UTKFace file name {name!r}: expected '<age 0..{MAX_AGE}>_<gender>_<race>_<date&time>.jpg'"
        )
    return int(m.group(1))


def utkface_files(folder: Path, *, on_malformed: str = "raise") -> tuple[list[Path], np.ndarray]:
    """Sorted ``.jpg`` files of ``folder`` and their ages; malformed names raise or are skipped."""
    if on_malformed not in ("raise", "skip"):
        raise ValueError(f"on_malformed must be 'raise' or 'skip', got {on_malformed!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise missing_file(folder, "UTKFace", _HOW)
    files, ages = [], []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.suffix.lower() not in (".jpg", ".jpeg"):
            continue
        try:
            ages.append(parse_age(p.name))
        except ValueError:
            if on_malformed == "raise":
                raise ValueError(
                    f"malformed UTKFace file name {p.name!r} in {folder}: expected "
                    f"'<age>_<gender>_<race>_<date&time>.jpg'; pass on_malformed='skip' "
                    "to ignore such files"
                ) from None
            continue
        files.append(p)
    if not files:
        raise FileNotFoundError(f"UTKFace: no '<age>_*.jpg' files in {folder}. {_HOW}")
    return files, np.asarray(ages, dtype=np.float32)


def read_images(files, *, size: int, grayscale: bool) -> np.ndarray:
    """Decode, convert (``L`` or ``RGB``), resize to ``size x size`` (bilinear).

    Returns ``(N, C, size, size)`` float32 in [0, 1] (pixel / 255), C = 1 or 3.
    """
    size = checks.check_int(size, "size", ge=1)
    c = 1 if grayscale else 3
    out = np.empty((len(files), c, size, size), dtype=np.float32)
    for i, f in enumerate(files):
        with Image.open(f) as im:
            resized = im.convert("L" if grayscale else "RGB").resize((size, size), Image.Resampling.BILINEAR)
            a = np.asarray(resized, dtype=np.float32) / np.float32(255)
        out[i] = a[None] if grayscale else a.transpose(2, 0, 1)
    return out


def load_utkface(
    data_dir: str | os.PathLike | None = None,
    *,
    folder: str | os.PathLike | None = None,
    size: int = 64,
    grayscale: bool = False,
    on_malformed: str = "raise",
    indices=None,
) -> UTKFace:
    """UTKFace images and ages. ``folder`` defaults to ``<data_dir>/UTKFace``; ``indices`` (into the
    sorted list of well-formed files) decodes only a subset."""
    folder = Path(folder).expanduser() if folder is not None else _data_dir(data_dir) / UTKFACE_FOLDER
    files, ages = utkface_files(folder, on_malformed=on_malformed)
    if indices is not None:
        indices = np.asarray(indices, dtype=np.int64)
        files, ages = [files[i] for i in indices], ages[indices]
    return UTKFace(x=read_images(files, size=size, grayscale=grayscale), age=ages, files=tuple(f.name for f in files))


def utkface_missing(
    data_dir: str | os.PathLike | None = None, *, folder: str | os.PathLike | None = None
) -> str | None:
    """``None`` when ``folder`` (default ``<data_dir>/UTKFace``) holds well-named UTKFace images, else a
    sentence saying what is missing, where it was looked for and how to get it (nothing is decoded)."""
    folder = Path(folder).expanduser() if folder is not None else _data_dir(data_dir) / UTKFACE_FOLDER
    try:
        utkface_files(folder, on_malformed="skip")
    except FileNotFoundError as err:
        return str(err)
    return None
