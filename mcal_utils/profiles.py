"""Run profiles: the one place that sizes every notebook.

Three profiles:

* ``smoke``   -- the tests (nbval): seconds per notebook, exercises every code path.
* ``default`` -- the offline report on a 2-core CPU: the whole report in <= 30 min.
* ``paper``   -- the seeds' own settings (epochs, budgets, T, seeds); meant for a GPU.

A notebook's papermill ``parameters`` cell holds ``profile = None`` and optional
overrides; it then calls :func:`resolve`. ``profile=None`` means the environment
variable ``MCAL_PROFILE`` if set (the test suite sets ``smoke``), else ``default``.

Each notebook owns one entry of :data:`NOTEBOOKS`; every profile of an entry must
define the same keys. Values are checked against the type of the ``default``
value and, where :data:`CHOICES` lists them, against the allowed values.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Iterator

PROFILE_NAMES: tuple[str, ...] = ("smoke", "default", "paper")
ENV_VAR = "MCAL_PROFILE"

# ---------------------------------------------------------------------------
# One entry per notebook. Keep the keys identical across the three profiles.
# ---------------------------------------------------------------------------
NOTEBOOKS: dict[str, dict[str, dict[str, Any]]] = {
    "00_data_prep": {
        # n_show: images per grid row; n_rotated: rotated-MNIST training images built (0 = all 60000);
        # verify_checksums: check SVHN files against the official md5 (once per file).
        "smoke": dict(n_show=8, rotated_max_angle=45.0, n_rotated=256, verify_checksums=True, seed=0),
        "default": dict(n_show=16, rotated_max_angle=45.0, n_rotated=10000, verify_checksums=True, seed=0),
        "paper": dict(n_show=16, rotated_max_angle=45.0, n_rotated=0, verify_checksums=True, seed=0),
    },
    "01_concrete_dropout_model": {
        "smoke": dict(dataset="auto", n_train=256, n_val=128, n_test=256, epochs=2,
                      batch_size=64, lr=0.001, momentum=0.9, fixed_p=0.2, mc_samples=4, seed=42),
        # default: ~75 s per twin on an idle 2-core machine (~2000 images/s) -> ~3.5 min in all;
        # 9 min when other jobs compete for the two cores (2-thread torch degrades badly then).
        "default": dict(dataset="auto", n_train=10000, n_val=2000, n_test=3000, epochs=15,
                        batch_size=64, lr=0.001, momentum=0.9, fixed_p=0.2, mc_samples=30, seed=42),
        "paper": dict(dataset="auto", n_train=0, n_val=0, n_test=0, epochs=200,
                      batch_size=64, lr=0.001, momentum=0.9, fixed_p=0.2, mc_samples=50, seed=42),
    },
    "03_deimos_1d_toy": {
        "smoke": dict(n_seeds=1, seed=0, n_train=100, epochs=3, train_batch_size=128, lr=0.001, l2=5e-4,
                      p=0.2, acq_batch_size=5, n_masks=8, mc_samples=8, tau_factor=0.15),
        "default": dict(n_seeds=5, seed=0, n_train=100, epochs=300, train_batch_size=128, lr=0.001, l2=5e-4,
                        p=0.2, acq_batch_size=5, n_masks=50, mc_samples=100, tau_factor=0.15),
        "paper": dict(n_seeds=10, seed=0, n_train=100, epochs=300, train_batch_size=128, lr=0.001, l2=5e-4,
                      p=0.2, acq_batch_size=5, n_masks=50, mc_samples=100, tau_factor=0.15),
    },
    "02_strategy_comparison": {
        # Seed 1's experiment (Random, VarRatio, Margin, Margin-inverted, Entropy, EntropyD) + BALD.
        # Sizes 0 = all (pool, test, candidates); val_size 0 = seed 1's fixed 20 % validation split.
        # workers: -1 = one process per core, 0 = in this process, n = n processes.
        # resume: reuse the profile's run directory (False: a fresh temporary one).
        "smoke": dict(dataset="auto", n_seeds=2, pool_size=300, val_size=30, test_size=100, initial="balanced",
                      initial_size=10, acquisition_size=10, n_steps=1, epochs=1, batch_size=32, lr=0.01,
                      momentum=0.9, mc_samples=3, n_candidates=60, windows=(1, 2), workers=0, resume=False),
        "default": dict(dataset="auto", n_seeds=3, pool_size=3000, val_size=100, test_size=1000,
                        initial="balanced", initial_size=20, acquisition_size=20, n_steps=10, epochs=15,
                        batch_size=32, lr=0.01, momentum=0.9, mc_samples=50, n_candidates=300, windows=(10, 20),
                        workers=-1, resume=True),
        "paper": dict(dataset="auto", n_seeds=3, pool_size=0, val_size=0, test_size=0, initial="first",
                      initial_size=1000, acquisition_size=1000, n_steps=36, epochs=200, batch_size=64, lr=0.001,
                      momentum=0.9, mc_samples=50, n_candidates=0, windows=(10, 20), workers=-1, resume=True),
    },
    "04_greedy_optimality": {
        # n_trials: random covariances per configuration (paper: 200); n_trials_b10: the same
        # for the two costliest ones (20 points, batch 10, 3 / 50 samples: 184756 subsets each)
        "smoke": dict(n_trials=3, n_trials_b10=1, seed=0, hist_bins=20),
        "default": dict(n_trials=200, n_trials_b10=200, seed=0, hist_bins=30),
        "paper": dict(n_trials=200, n_trials_b10=200, seed=0, hist_bins=30),
    },
}

# Allowed values for keys that take one of a few strings.
CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": ("auto", "svhn", "mnist32"),
}


class Settings(Mapping):
    """Read-only, attribute-accessible settings of one notebook under one profile."""

    def __init__(self, notebook: str, profile: str, values: Mapping[str, Any]):
        object.__setattr__(self, "_notebook", notebook)
        object.__setattr__(self, "_profile", profile)
        object.__setattr__(self, "_values", dict(values))

    @property
    def notebook(self) -> str:
        return self._notebook

    @property
    def profile(self) -> str:
        return self._profile

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(
                f"{self._notebook!r} has no setting {key!r}; valid: {sorted(self._values)}"
            ) from None

    def __setattr__(self, key, value):
        raise AttributeError("Settings are read-only; pass overrides to profiles.resolve()")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Settings({self._notebook!r}, profile={self._profile!r}: {body})"


def profile_name(profile: str | None = None) -> str:
    """The profile to use: ``profile`` if given, else ``$MCAL_PROFILE``, else ``default``."""
    name = profile if profile is not None else os.environ.get(ENV_VAR) or "default"
    if name not in PROFILE_NAMES:
        source = "argument" if profile is not None else f"${ENV_VAR}"
        raise ValueError(f"unknown profile {name!r} (from {source}); valid profiles: {list(PROFILE_NAMES)}")
    return name


def _check_value(notebook: str, key: str, value: Any, reference: Any) -> Any:
    if key in CHOICES and value not in CHOICES[key]:
        raise ValueError(f"{notebook}: invalid {key}={value!r}; valid values: {list(CHOICES[key])}")
    if isinstance(reference, bool):
        ok = isinstance(value, bool)
    elif isinstance(reference, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(reference, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(reference, (tuple, list)):
        ok = isinstance(value, (tuple, list))
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, type(reference))
    if not ok:
        raise ValueError(
            f"{notebook}: invalid {key}={value!r}; expected a value of type "
            f"{type(reference).__name__} (e.g. the default profile's {reference!r})"
        )
    return value


def resolve(notebook: str, profile: str | None = None, **overrides: Any) -> Settings:
    """Settings of ``notebook`` under ``profile``, with ``overrides`` applied and validated.

    Raises ``ValueError`` naming the valid notebooks, profiles, keys or values.
    """
    if notebook not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {notebook!r}; valid: {sorted(NOTEBOOKS)}")
    name = profile_name(profile)
    entry = NOTEBOOKS[notebook]
    values = dict(entry[name])
    reference = entry["default"]
    unknown = sorted(set(overrides) - set(reference))
    if unknown:
        raise ValueError(f"{notebook}: unknown parameter(s) {unknown}; valid: {sorted(reference)}")
    values.update(overrides)
    checked = {k: _check_value(notebook, k, v, reference[k]) for k, v in values.items()}
    return Settings(notebook, name, checked)


def validate_all() -> None:
    """Check that every notebook entry defines all profiles with the same, well-typed keys."""
    for nb, entry in NOTEBOOKS.items():
        if set(entry) != set(PROFILE_NAMES):
            raise ValueError(f"{nb}: profiles {sorted(entry)} != {list(PROFILE_NAMES)}")
        keys = set(entry["default"])
        for name in PROFILE_NAMES:
            if set(entry[name]) != keys:
                raise ValueError(f"{nb}/{name}: keys differ from default: {sorted(set(entry[name]) ^ keys)}")
            for k, v in entry[name].items():
                _check_value(nb, k, v, entry["default"][k])
