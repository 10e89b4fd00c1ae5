"""Data layer: real MNIST offline, SVHN with the MC-dropout-entropy paper's preprocessing, UTKFace,
5' splicing, DEIMOS 1-D toy.

One data directory (``data_dir()``: argument, else ``$MCAL_DATA_DIR``, else ``~/.cache/mcal``);
missing files raise ``FileNotFoundError`` saying where they were looked for and how to get them;
checksum mismatches raise ``ValueError``; downloads are atomic, md5-checked, skipped under
``$MCAL_OFFLINE=1`` and time out after 5 s. Submodules: ``mnist``, ``svhn``, ``utkface``,
``splicing``, ``toy1d``, ``tasks``, ``files`` (data directory, checksums, atomic writes,
guarded downloads).
"""

from .files import DATA_DIR_ENV, OFFLINE_ENV, data_dir, offline
from .mnist import MNIST, MNIST_IDX_MD5, MNIST_MIRRORS, MNIST_TEST_COUNTS, MNIST_TRAIN_COUNTS, load_mnist
from .splicing import Splicing, load_splicing, one_hot, usage_ratio
from .svhn import (
    SVHN,
    SVHN_MD5,
    SVHN_TEST_COUNTS,
    SVHN_TRAIN_COUNTS,
    SVHN_URLS,
    balance_first_k,
    balancing_table,
    greyscale,
    kirillov_permutation,
    load_svhn,
)
from .tasks import (
    TASK_NAMES,
    TASK_OPTIONS,
    Task,
    load_task,
    pad_images,
    rotate_images,
    split_indices,
    subsample_indices,
)
from .toy1d import Toy1D, synthetic_1d
from .utkface import UTKFace, load_utkface, parse_age

__all__ = [
    "DATA_DIR_ENV",
    "OFFLINE_ENV",
    "data_dir",
    "offline",
    "MNIST",
    "MNIST_IDX_MD5",
    "MNIST_MIRRORS",
    "MNIST_TEST_COUNTS",
    "MNIST_TRAIN_COUNTS",
    "load_mnist",
    "Splicing",
    "load_splicing",
    "one_hot",
    "usage_ratio",
    "SVHN",
    "SVHN_MD5",
    "SVHN_TEST_COUNTS",
    "SVHN_TRAIN_COUNTS",
    "SVHN_URLS",
    "balance_first_k",
    "balancing_table",
    "greyscale",
    "load_svhn",
    "kirillov_permutation",
    "TASK_NAMES",
    "TASK_OPTIONS",
    "Task",
    "load_task",
    "pad_images",
    "rotate_images",
    "split_indices",
    "subsample_indices",
    "Toy1D",
    "synthetic_1d",
    "UTKFace",
    "load_utkface",
    "parse_age",
]
