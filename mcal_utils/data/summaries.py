"""What the data sets look like, and whether they are the ones the papers describe (notebook 00).

Every function summarises loaded data (shapes, class counts, the SVHN balancing arithmetic, the
rotated-MNIST angles, the 1-D toy) or checks a count against the number the papers or the official
files state. The numbers come from :mod:`mcal_utils.references`, the official MNIST / SVHN per-class
counts of this package, and -- for the few the references do not hold yet -- the :class:`Reference`
constants below (to move to ``mcal_utils.references`` under the same names).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import references
from .files import data_dir
from .mnist import CACHE_NAME, MNIST, MNIST_TEST_COUNTS, MNIST_TRAIN_COUNTS
from .splicing import SPLICING_FILE, Splicing, one_hot, usage_ratio
from .svhn import SVHN_TEST_COUNTS, SVHN_TRAIN_COUNTS, balancing_table
from .tasks import Task
from .toy1d import Toy1D
from .utkface import UTKFACE_FOLDER, load_utkface, parse_age, utkface_files

__all__ = [
    "SVHN_FILES",
    "available_files",
    "split_shapes",
    "CountCheck",
    "mnist_count_check",
    "mnist79_count_check",
    "MnistCache",
    "mnist_cache",
    "border_max",
    "AngleSummary",
    "angle_summary",
    "SvhnArithmetic",
    "svhn_arithmetic",
    "age_parse_examples",
    "one_hot_example",
    "usage_examples",
    "ToySummary",
    "toy_summary",
    "mnist_text",
    "mnist79_text",
    "angle_text",
    "svhn_missing_text",
    "svhn_split_text",
    "toy_text",
    "finding",
    "paper_data_table",
    "utkface_text",
    "splicing_text",
    "utkface_sample",
]

#: the two SVHN files (cropped digits, format 2) the loader reads
SVHN_FILES: tuple[str, str] = ("train_32x32.mat", "test_32x32.mat")


def available_files(root: str | os.PathLike | None = None) -> dict[str, bool]:
    """Which hand-placed data sets are in the data directory: ``svhn``, ``utkface``, ``splicing``."""
    root_path = data_dir(root)
    return {
        "svhn": all((root_path / name).exists() for name in SVHN_FILES),
        "utkface": (root_path / UTKFACE_FOLDER).is_dir(),
        "splicing": (root_path / SPLICING_FILE).exists(),
    }


def split_shapes(splits: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """One row per split ``name -> (x, y)``: image shape and dtype, pixel range and mean, label shape and dtype."""
    return pd.DataFrame(
        [
            dict(
                split=name,
                images=str(x.shape),
                dtype=str(x.dtype),
                min=float(x.min()),
                max=float(x.max()),
                mean_pixel=float(x.mean()),
                labels=str(y.shape),
                label_dtype=str(y.dtype),
            )
            for name, (x, y) in splits.items()
        ]
    )


# ------------------------------------------------------------------------------------------------
# class counts
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CountCheck:
    """A table of counts (with a ``total`` row) and whether they are the expected ones."""

    table: pd.DataFrame
    ok: bool


def mnist_count_check(mnist: MNIST) -> CountCheck:
    """Per-digit counts of both splits next to the official files' (``MNIST_TRAIN_COUNTS`` / ``_TEST_``)."""
    counts = pd.DataFrame(
        {
            "train": np.bincount(mnist.y_train, minlength=10),
            "official train": MNIST_TRAIN_COUNTS,
            "test": np.bincount(mnist.y_test, minlength=10),
            "official test": MNIST_TEST_COUNTS,
        },
        index=pd.RangeIndex(10, name="digit"),
    )
    counts.loc["total"] = counts.sum()
    ok = bool((counts["train"] == counts["official train"]).all() and (counts["test"] == counts["official test"]).all())
    return CountCheck(table=counts, ok=ok)


def mnist79_count_check(task: Task) -> CountCheck:
    """Sevens and nines of DEIMOS's binary task against the counts its authors' repository prints
    (``references.DEIMOS_MNIST79_SIZES``)."""
    counts = pd.DataFrame(
        {"train/pool": np.bincount(task.y_train), "test": np.bincount(task.y_test)},
        index=pd.Index(["0 (digit 7)", "1 (digit 9)"], name="label"),
    )
    counts.loc["total"] = counts.sum()
    ok = (len(task.y_train), len(task.y_test)) == tuple(references.DEIMOS_MNIST79_SIZES.value)
    return CountCheck(table=counts, ok=ok)


@dataclass(frozen=True)
class MnistCache:
    """The checksummed MNIST cache file: its path, size (MiB) and sha256."""

    path: Path
    mib: float
    sha256: str


def mnist_cache(root: str | os.PathLike | None = None) -> MnistCache:
    """The cache :func:`load_mnist` reads (``<data dir>/mnist/mnist_uint8.npz`` and its ``.sha256``)."""
    path = data_dir(root) / "mnist" / CACHE_NAME
    sha = path.with_name(path.name + ".sha256").read_text().split()[0]
    return MnistCache(path=path, mib=path.stat().st_size / 2**20, sha256=sha)


def border_max(x_N1HW: np.ndarray, width: int = 2) -> float:
    """Largest pixel in the ``width``-pixel frame of every image (0 for zero padding)."""
    x = np.asarray(x_N1HW)
    frame = np.ones(x.shape[-2:], bool)
    frame[width:-width, width:-width] = False
    return float(x[..., frame].max())


@dataclass(frozen=True)
class AngleSummary:
    """Rotation angles (degrees): range, mean, standard deviation, and that of Uniform(±max_angle)."""

    n: int
    low: float
    high: float
    mean: float
    std: float
    uniform_std: float


def angle_summary(angles_N, max_angle: float) -> AngleSummary:
    """Summary of the targets of rotated MNIST; predicting the mean everywhere has an RMSE of ``std``."""
    a = np.asarray(angles_N).astype(np.float64)
    return AngleSummary(
        n=len(a),
        low=float(a.min()),
        high=float(a.max()),
        mean=float(a.mean()),
        std=float(a.std()),
        uniform_std=float(max_angle / np.sqrt(3)),
    )


# ------------------------------------------------------------------------------------------------
# SVHN: the MC-dropout-entropy paper's balancing, on the counts of the files (or the official ones)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SvhnArithmetic:
    """Per-class counts before and after balancing, and the step-by-step arithmetic against the paper.

    ``pool``, ``val``, ``test``: the split sizes the loader returns for these counts; ``matches_paper``:
    they are the paper's (``references.KIRILLOV_N_TRAIN``, ``KIRILLOV_N_VAL`` and the balanced test file).
    """

    per_class: pd.DataFrame
    steps: pd.DataFrame
    pool: int
    val: int
    test: int

    @property
    def matches_paper(self) -> bool:
        expected = (
            references.KIRILLOV_N_TRAIN.value,
            references.KIRILLOV_N_VAL.value,
            references.KIRILLOV_SVHN_BALANCED.value[1],
        )
        return (self.pool, self.val, self.test) == expected


def _thousands(v) -> str:
    return "—" if v is None or v != v else f"{int(v):,}"


def svhn_arithmetic(
    train_counts: Sequence[int] = SVHN_TRAIN_COUNTS, test_counts: Sequence[int] = SVHN_TEST_COUNTS
) -> SvhnArithmetic:
    """Keep the first k of every class (k = the smallest class), then 80 % pool / 20 % validation.

    The paper's column: its balanced sizes, k = kept / 10, the class of that size among the official
    counts, and its pool / validation split; the file sizes are the official ones.
    """
    tr, te = balancing_table(train_counts), balancing_table(test_counts)
    per_class = pd.DataFrame(
        {"train (raw)": train_counts, "test (raw)": test_counts}, index=pd.RangeIndex(10, name="digit")
    )
    per_class["train kept"] = tr["k"]
    per_class["test kept"] = te["k"]
    per_class.loc["total"] = per_class.sum()
    kept = references.KIRILLOV_SVHN_BALANCED.value
    k_paper = [n // 10 for n in kept]
    smallest = [
        int(np.flatnonzero(np.asarray(c) == k)[0]) for c, k in zip((SVHN_TRAIN_COUNTS, SVHN_TEST_COUNTS), k_paper)
    ]
    paper = [
        f"{sum(SVHN_TRAIN_COUNTS):,} / {sum(SVHN_TEST_COUNTS):,}",
        f"{smallest[0]} / {smallest[1]}",
        f"{k_paper[0]:,} / {k_paper[1]:,}",
        f"{kept[0]:,} / {kept[1]:,}",
        "",
        f"{references.KIRILLOV_N_TRAIN.value:,}",
        f"{references.KIRILLOV_N_VAL.value:,}",
    ]
    steps = pd.DataFrame(
        {
            "step": [
                "images in the file",
                "smallest class (digit)",
                "k = its size",
                "kept = 10 k",
                "dropped",
                "pool = int(0.8 kept)",
                "validation = rest",
            ],
            "train file": [
                _thousands(tr[c]) for c in ("total", "smallest_class", "k", "kept", "dropped", "train", "val")
            ],
            "test file": [_thousands(te[c]) for c in ("total", "smallest_class", "k", "kept", "dropped")] + ["—", "—"],
            "MC-dropout-entropy paper (paper / its code)": paper,
        }
    ).set_index("step")
    return SvhnArithmetic(
        per_class=per_class, steps=steps, pool=int(tr["train"]), val=int(tr["val"]), test=int(te["kept"])
    )


# ------------------------------------------------------------------------------------------------
# UTKFace, splicing, the 1-D toy
# ------------------------------------------------------------------------------------------------
def age_parse_examples(names: Sequence[str]) -> pd.DataFrame:
    """How :func:`parse_age` reads each UTKFace file name (age, or why it is malformed)."""
    rows: list[tuple[str, int | None, str]] = []
    for name in names:
        try:
            rows.append((name, parse_age(name), "ok"))
        except ValueError:
            rows.append((name, None, "malformed: raises (or skipped with on_malformed='skip')"))
    return pd.DataFrame(rows, columns=["file name", "age", "status"])


def one_hot_example(sequence: str, n_columns: int = 10) -> pd.DataFrame:
    """The one-hot encoding (rows A, C, G, T) of the first ``n_columns`` bases of a 101-nt sequence."""
    onehot = one_hot([sequence])[0]
    return pd.DataFrame(onehot[:, :n_columns].astype(int), index=list("ACGT"), columns=list(sequence[:n_columns]))


def usage_examples() -> tuple[float, float]:
    """The target SD1 / (SD1 + SD2) for (30, 10) and for (0, 0) (defined as 0)."""
    return float(usage_ratio([30], [10])[0]), float(usage_ratio([0], [0])[0])


@dataclass(frozen=True)
class ToySummary:
    """The 1-D toy's labelled sample: points in the sparse interval, range of f, noise actually drawn."""

    n_inside: int
    n_labelled: int
    f_min: float
    f_max: float
    noise_std: float


def toy_summary(toy: Toy1D) -> ToySummary:
    low, high = toy.sparse_interval
    inside = (toy.x_train[:, 0] >= low) & (toy.x_train[:, 0] <= high)
    resid = toy.y_train - toy.f(toy.x_train[:, 0])
    return ToySummary(
        n_inside=int(inside.sum()),
        n_labelled=len(inside),
        f_min=float(toy.f_grid.min()),
        f_max=float(toy.f_grid.max()),
        noise_std=float(resid.std()),
    )


# ------------------------------------------------------------------------------------------------
# the notebook's sentences, every judgement computed from the check it states
# ------------------------------------------------------------------------------------------------
def mnist_text(check: CountCheck, mnist: MNIST, cache: MnistCache, load_seconds: float) -> str:
    """MNIST's count check, where it was loaded from and how much ink it has (markdown)."""
    return (
        (
            f"All {len(mnist.y_train):,} training and {len(mnist.y_test):,} test labels match the official per-class "
            "counts. "
            if check.ok
            else "The labels do **not** match the official per-class counts. "
        )
        + f"Loaded in {load_seconds:.1f} s from the cache `{cache.path}` ({cache.mib:.1f} MiB of uint8 pixels, "
        f"sha256 `{cache.sha256[:16]}…`, checked on every first read in a process). Pixel values are exact multiples "
        f"of 1/255; {(mnist.x_train > 0).mean():.1%} of the training pixels carry ink."
    )


def mnist79_text(check: CountCheck, task: Task) -> str:
    n_train, n_test = references.DEIMOS_MNIST79_SIZES.value
    return (
        f"{len(task.y_train):,} train/pool and {len(task.y_test):,} test images: "
        f"{'exactly' if check.ok else 'NOT'} the {n_train:,} / {n_test:,} printed in the DEIMOS authors' "
        "repository (MNIST/MultiClass_AL_Scripts/TrainIndGeneration.ipynb)."
    )


def angle_text(summary: AngleSummary, seconds: float, max_angle: float) -> str:
    s = summary
    return (
        f"{s.n:,} rotated training images in {seconds:.1f} s. Angles span [{s.low:.1f}, {s.high:.1f}]°, mean "
        f"{s.mean:+.2f}°, standard deviation {s.std:.2f}° (a uniform law on ±{max_angle:g}° has "
        f"{s.uniform_std:.2f}°). Predicting the mean everywhere gives an RMSE of about {s.std:.1f}°: the baseline "
        "any regression model must beat."
    )


def svhn_missing_text(root: Path, is_offline: bool) -> str:
    """Why the SVHN section shows the arithmetic on the official counts instead of the files."""
    how = (
        "downloads are disabled by `MCAL_OFFLINE`"
        if is_offline
        else "download them from "
        "http://ufldl.stanford.edu/housenumbers/ or call `data.load_svhn(download=True)` with network access"
    )
    return (
        f"**SVHN is not on this machine**: `{SVHN_FILES[0]}` / `{SVHN_FILES[1]}` are not in `{root}` (no package "
        f"registry ships SVHN; {how}). Below, the balancing arithmetic on the official per-class counts instead "
        f"(totals {sum(SVHN_TRAIN_COUNTS):,} / {sum(SVHN_TEST_COUNTS):,}; smallest classes as in the "
        "MC-dropout-entropy paper)."
    )


def svhn_split_text(arith: SvhnArithmetic) -> str:
    """The split sizes the loader returns for the official counts, against the paper's."""
    pool, val, (kept, test) = (
        references.KIRILLOV_N_TRAIN.value,
        references.KIRILLOV_N_VAL.value,
        (references.KIRILLOV_SVHN_BALANCED.value),
    )
    return (
        f"With the real files the loader returns {arith.pool:,} pool, {arith.val:,} validation and "
        f"{arith.test:,} test images — {'exactly' if arith.matches_paper else 'NOT'} the paper's {pool:,} / "
        f"{val:,} / {test:,} (sections 2 and 3.3: {kept:,} − {val:,} / {val:,} / {test:,}); the balancing, the "
        "label map 10 → 0, the greyscale weights, the seed-42 permutation and the 80/20 split are tested on "
        "generated `.mat` files of the same structure (`tests/test_data.py`)."
    )


def toy_text(summary: ToySummary, toy: Toy1D) -> str:
    before, after = references.DEIMOS_TOY_MSE.value
    low, high = toy.sparse_interval
    return (
        f"{summary.n_inside} of {summary.n_labelled} labelled points lie in [{low:g}, {high:g}]; f ranges over "
        f"[{summary.f_min:.2f}, {summary.f_max:.2f}]; the noise of the sample has standard deviation "
        f"{summary.noise_std:.3f} (set: {toy.noise_std}). The DEIMOS authors' repository prints a test MSE of "
        f"{before} before and {after} after one batch of 5 queries on data like these "
        "(1DEIVisualization/1DNNEIAcqFnGraph_LabeledOrder.ipynb; not in the paper)."
    )


def finding(
    mnist_check: CountCheck,
    mnist: MNIST,
    mnist79_check: CountCheck,
    task79: Task,
    arith: SvhnArithmetic,
    files: Mapping[str, bool],
) -> str:
    """The notebook's finding: a check of the counts the papers state, not a comparison (no verdict rule)."""
    n_train, n_test = references.DEIMOS_MNIST79_SIZES.value
    checks = [mnist_check.ok, mnist79_check.ok, arith.matches_paper]
    names = {"svhn": "SVHN", "utkface": "UTKFace", "splicing": "5′ splicing"}
    missing = [names[k] for k in ("svhn", "utkface", "splicing") if not files[k]]
    if missing:
        tail = (
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not on this machine, so "
            + (
                "notebooks 01 and 02 use MNIST padded to 32 × 32 instead of SVHN"
                if not files["svhn"]
                else "those sections show the loaders on examples"
            )
            + "."
        )
    else:
        tail = "SVHN, UTKFace and the splicing table were all found."
    return (
        f"**Central claim** (data check, not a comparison, so no verdict rule applies): {sum(checks)} of "
        f"{len(checks)} counts are as stated. Real MNIST ({len(mnist.y_train):,} / {len(mnist.y_test):,}) "
        f"{'matches' if mnist_check.ok else 'does NOT match'} the official class counts and 7-vs-9 "
        f"({len(task79.y_train):,} / {len(task79.y_test):,}) {'matches' if mnist79_check.ok else 'does NOT match'} "
        f"the {n_train:,} / {n_test:,} printed in the DEIMOS authors' repository (TrainIndGeneration.ipynb); the SVHN "
        f"balancing of the official counts gives {arith.pool:,} / {arith.val:,} / {arith.test:,} images, "
        f"{'the paper' if arith.matches_paper else 'NOT the paper'}'s pool / validation / test; {tail}"
    )


def paper_data_table() -> pd.DataFrame:
    """Every data set, the experiments that use it and what the papers (or their repositories) say of it."""
    mnist_train, mnist_test = sum(MNIST_TRAIN_COUNTS), sum(MNIST_TEST_COUNTS)
    n79_train, n79_test = references.DEIMOS_MNIST79_SIZES.value
    kept_train, kept_test = references.KIRILLOV_SVHN_BALANCED.value
    rows = [
        ("MNIST 0–9", "DEIMOS (batch 100), Gal et al. 2017, BatchBALD", f"{mnist_train:,} train / {mnist_test:,} test"),
        (
            "MNIST 7 vs 9",
            "DEIMOS (batch 1 and 25)",
            f"not in the paper; the authors' repository prints {n79_train:,} train/pool, {n79_test:,} test",
        ),
        ("MNIST padded to 32×32", "the MC-dropout-entropy paper's CNN on a data set that is on this machine", "—"),
        ("rotated MNIST", "image regression on real images (target: the rotation angle)", "—"),
        (
            "SVHN",
            "the MC-dropout-entropy paper",
            f"balanced to {kept_train:,} train / {kept_test:,} test; {references.KIRILLOV_N_TRAIN.value:,} pool, "
            f"{references.KIRILLOV_N_VAL.value:,} validation",
        ),
        ("UTKFace", "DEIMOS (age regression)", f"{references.DEIMOS_UTKFACE_IMAGES.value:,} images, 10 % test"),
        (
            "5′ splicing",
            "DEIMOS (regression)",
            f"{references.DEIMOS_SPLICING_SEQUENCES.value:,} sequences of 101 nt, 10 % test",
        ),
        ("1-D toy", "DEIMOS Figure 1", "random tanh MLP [32, 32], inputs in [−10, 10]"),
    ]
    return pd.DataFrame(rows, columns=["data set", "used by", "what the papers say"]).set_index("data set")


def utkface_text(folder: Path) -> str:
    """How many faces the folder holds (against DEIMOS's count) and their ages (markdown)."""
    files, ages = utkface_files(folder, on_malformed="skip")
    return (
        f"**UTKFace found**: {len(files):,} images (DEIMOS used {references.DEIMOS_UTKFACE_IMAGES.value:,}); ages "
        f"{ages.min():.0f}–{ages.max():.0f}, mean {ages.mean():.1f}, std {ages.std():.1f} years."
    )


def splicing_text(splicing: Splicing) -> str:
    """How many sequences the table holds (against DEIMOS's count) and how the target is spread (markdown)."""
    y = splicing.y
    return (
        f"**Splicing table found**: {len(y):,} sequences (DEIMOS: {references.DEIMOS_SPLICING_SEQUENCES.value:,}); x "
        f"{splicing.x.shape}; target mean {y.mean():.3f}, {np.mean(y == 0):.1%} exactly 0, "
        f"{np.mean(y == 1):.1%} exactly 1."
    )


def utkface_sample(folder: Path, n: int, *, size: int = 64):
    """The first ``min(n, number of faces)`` faces of the folder, resized to ``size`` (a :class:`UTKFace`)."""
    files, _ = utkface_files(folder, on_malformed="skip")
    return load_utkface(folder=folder, size=size, indices=np.arange(min(n, len(files))))
