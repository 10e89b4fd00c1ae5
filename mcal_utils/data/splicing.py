"""5' alternative splicing data (Rosenberg et al., Cell 163, 2015; DEIMOS section 5.2 / appendix D).

DEIMOS regresses the relative usage of the first of two alternative splice donors from a
one-hot encoded 101-nt sequence (265,137 examples). The paper does not state the file layout, so
this loader ASSUMES (documented, configurable): a tab-separated text file with a header row and
columns ``sequence`` (101 letters of A/C/G/T; U is read as T; N gives an all-zero column),
``SD1`` and ``SD2`` (non-negative read counts or usages of donor 1 and donor 2). Other column
names (or 0-based positions with ``header=False``) go through ``columns=(seq, sd1, sd2)``.

Input ``(N, 4, 101) float32``, channels A, C, G, T; target ``SD1 / (SD1 + SD2)`` float32, 0
when both are 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .files import data_dir as _data_dir
from .files import missing_file

SPLICING_FILE = "splicing_5ss.tsv"
SPLICING_COLUMNS = ("sequence", "SD1", "SD2")
SEQ_LEN = 101
NUCLEOTIDES = "ACGT"
_HOW = (
    "Build it from the A5SS library of Rosenberg et al. 2015 (GEO GSE74070): a tab-separated file "
    "with a header and columns sequence / SD1 / SD2 (see mcal_utils.data.splicing), or pass path=... "
    "and columns=... for another layout."
)
_LUT = np.full(256, -1, dtype=np.int8)
for _i, _c in enumerate(NUCLEOTIDES):
    _LUT[ord(_c)] = _LUT[ord(_c.lower())] = _i
_LUT[ord("U")] = _LUT[ord("u")] = 3
_LUT[ord("N")] = _LUT[ord("n")] = 4  # unknown base -> all-zero column


@dataclass(frozen=True)
class Splicing:
    """``x (N, 4, L) float32`` one-hot (A, C, G, T), ``y (N,) float32`` = SD1 / (SD1 + SD2), raw counts."""

    x: np.ndarray
    y: np.ndarray
    sd1: np.ndarray
    sd2: np.ndarray


def one_hot(sequences, seq_len: int = SEQ_LEN) -> np.ndarray:
    """``(N, 4, seq_len) float32`` one-hot of A/C/G/T (U = T, N = zeros); other letters or lengths raise."""
    seqs = list(sequences)
    out = np.zeros((len(seqs), 4, seq_len), dtype=np.float32)
    for i, s in enumerate(seqs):
        if not isinstance(s, str) or len(s) != seq_len:
            raise ValueError(f"sequence {i}: expected a string of {seq_len} nucleotides, got {s!r:.60}")
        codes = _LUT[np.frombuffer(s.encode("ascii", "replace"), dtype=np.uint8)]
        if (codes < 0).any():
            bad = sorted({s[j] for j in np.flatnonzero(codes < 0)})
            raise ValueError(f"sequence {i}: letters {bad} are not nucleotides (A, C, G, T/U, N)")
        pos = np.flatnonzero(codes < 4)
        out[i, codes[pos], pos] = 1.0
    return out


def usage_ratio(sd1, sd2) -> np.ndarray:
    """``SD1 / (SD1 + SD2)`` float32, 0 where both are 0; negative or non-finite values raise."""
    sd1, sd2 = np.asarray(sd1, dtype=np.float64), np.asarray(sd2, dtype=np.float64)
    if not (np.isfinite(sd1).all() and np.isfinite(sd2).all()) or (sd1 < 0).any() or (sd2 < 0).any():
        raise ValueError("SD1 and SD2 must be finite and non-negative")
    total = sd1 + sd2
    return np.divide(sd1, total, out=np.zeros_like(total), where=total > 0).astype(np.float32)


def load_splicing(
    data_dir: str | os.PathLike | None = None,
    *,
    path: str | os.PathLike | None = None,
    columns: tuple = SPLICING_COLUMNS,
    header: bool = True,
    seq_len: int = SEQ_LEN,
) -> Splicing:
    """Read the splicing file (module docstring for the assumed layout). ``path`` defaults to
    ``<data_dir>/splicing_5ss.tsv``; ``columns`` are names (``header=True``) or 0-based positions."""
    path = Path(path).expanduser() if path is not None else _data_dir(data_dir) / SPLICING_FILE
    if not path.exists():
        raise missing_file(path, "5' splicing", _HOW)
    if len(columns) != 3:
        raise ValueError(f"columns must be (sequence, SD1, SD2), got {columns!r}")
    df = pd.read_csv(path, sep="\t", header=0 if header else None, dtype=str, keep_default_na=False)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: column(s) {missing} not found; columns are {list(df.columns)}; "
            "pass columns=(sequence, SD1, SD2) names (or positions with header=False)"
        )
    seq_col, sd1_col, sd2_col = columns

    def numbers(col) -> np.ndarray:
        try:
            return df[col].astype(np.float64).to_numpy()
        except ValueError as e:
            raise ValueError(f"{path}: column {col!r} must be numeric: {e}") from None

    sd1, sd2 = numbers(sd1_col), numbers(sd2_col)
    try:
        y = usage_ratio(sd1, sd2)
        x = one_hot(df[seq_col].tolist(), seq_len)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return Splicing(x=x, y=y, sd1=sd1, sd2=sd2)


def splicing_missing(data_dir: str | os.PathLike | None = None, *, path: str | os.PathLike | None = None) -> str | None:
    """``None`` when the splicing file (default ``<data_dir>/splicing_5ss.tsv``) exists, else a sentence
    saying what is missing, where it was looked for and how to get it (the file is not parsed)."""
    path = Path(path).expanduser() if path is not None else _data_dir(data_dir) / SPLICING_FILE
    return None if path.is_file() else str(missing_file(path, "5' splicing", _HOW))
