"""DEIMOS's regression experiments (Nagpal & Knowles, section 5.2 and Appendices D--E) as loop configs.

A :class:`Protocol` is one data set's experiment: task, network, training, initial set, batch
sizes, acquisitions, candidates, MC passes and tau^-1. :data:`PAPER_PROTOCOLS` holds the paper's
two regression data sets as its authors ran them; :func:`rotated_mnist_protocol` builds the
offline stand-in (rotated-MNIST angle regression on the UTKFace-shaped network; from a profile's
settings: :func:`rotated_mnist_protocol_from`), and :func:`file_protocol` scales a paper protocol
down for a smaller run. :meth:`Protocol.configs`
gives one ``ExperimentConfig`` per (method, seed) of one batch size, all of a seed sharing the
initial set (the loop derives the split from the task and the seed only).

Reading the curves: :func:`choose_thresholds` picks error levels from the data's own range and
:func:`crossings_table` counts the acquisitions needed to fall to each (the form of the paper's
Table 1: seed-mean curve, plus every seed's own first crossing).
"""
from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import metrics
from .loop import ExperimentConfig, grid_configs

__all__ = ["METHODS", "Protocol", "PAPER_PROTOCOLS", "rotated_mnist_protocol", "rotated_mnist_protocol_from",
           "file_protocol", "missing_data", "choose_thresholds", "crossings_table"]

#: strategy name -> method label, in the paper's order (DEIMOS, max variance, random).
METHODS: dict[str, str] = {"deimos": "DEIMOS", "max_variance": "Max variance", "random": "Random"}


@dataclass(frozen=True)
class Protocol:
    """One regression experiment; ``configs(b, seeds)`` runs it at batch size ``b``.

    tau_inv: a number, or ``{"auto": factor}`` (Appendix E: factor x the mean MC-dropout variance
    of the step-0 model on the validation set). val_size: validation points (None: the task's own
    split). n_acquired: points acquired per run (the same for every batch size).
    """

    name: str
    title: str
    task: str
    model: str
    train: dict
    initial_size: int
    acquisition_sizes: tuple[int, ...]
    n_acquired: int
    n_candidates: int
    mc_samples: int
    eval_mc_samples: int
    tau_inv: float | dict
    val_size: int | None = None
    task_options: dict = field(default_factory=dict)
    model_options: dict = field(default_factory=dict)

    def __post_init__(self):
        sizes = tuple(int(b) for b in self.acquisition_sizes)
        if not sizes or min(sizes) < 1:
            raise ValueError(f"{self.name}: acquisition_sizes must be >= 1, got {self.acquisition_sizes!r}")
        bad = [b for b in sizes if self.n_acquired % b]
        if bad:
            raise ValueError(f"{self.name}: n_acquired={self.n_acquired} is not a multiple of the batch size(s) {bad}")
        object.__setattr__(self, "acquisition_sizes", sizes)

    def n_steps(self, acquisition_size: int) -> int:
        """Acquisition steps at batch size ``acquisition_size`` (the curve has one point more)."""
        if acquisition_size not in self.acquisition_sizes:
            raise ValueError(f"{self.name}: batch size {acquisition_size} is not one of {self.acquisition_sizes}")
        return self.n_acquired // acquisition_size

    def replace(self, **changes) -> "Protocol":
        return dataclasses.replace(self, **changes)

    def configs(self, acquisition_size: int, seeds) -> list[ExperimentConfig]:
        """One config per (method of :data:`METHODS`, seed): labels are the method names."""
        base = ExperimentConfig(
            task=self.task, task_options=dict(self.task_options), model=self.model,
            model_options=dict(self.model_options), strategy="random", initial="random",
            initial_size=self.initial_size, acquisition_size=acquisition_size,
            n_steps=self.n_steps(acquisition_size), val_size=self.val_size, mc_samples=self.mc_samples,
            n_candidates=self.n_candidates, tau_inv=self.tau_inv, train=dict(self.train),
            eval_mc_samples=self.eval_mc_samples)
        return grid_configs(base, [{"strategy": s, "label": m} for s, m in METHODS.items()], seeds)


def _deimos_adam(epochs: int, l2: float, *, lr: float = 1e-3, batch_size: int = 128, optimizer: str = "adam") -> dict:
    """DEIMOS's training: Keras-default optimiser, L2 on the dense layers scaled by 1/N, last weights."""
    return dict(optimizer=optimizer, lr=lr, epochs=epochs, batch_size=batch_size, l2_dense=l2, checkpoint="last")


#: The paper's protocols (Appendix D; tau^-1 from Appendix E). UTKFace: tau^-1 = 0.1 x the initial
#: mean dropout variance on the validation set (the authors' value: 5.5477 years^2).
PAPER_PROTOCOLS: dict[str, Protocol] = {
    "utkface": Protocol(
        name="utkface", title="UTKFace age (years)", task="utkface", task_options=dict(size=200),
        model="image_regression_cnn", model_options=dict(in_channels=3, image_size=200, p=0.5),
        train=_deimos_adam(250, 2.0), initial_size=150, acquisition_sizes=(100, 200), n_acquired=2000,
        n_candidates=5000, mc_samples=50, eval_mc_samples=300, tau_inv={"auto": 0.1}),
    "splicing": Protocol(
        name="splicing", title="5' splicing (SD1 usage)", task="splicing", model="splicing_cnn",
        model_options=dict(p=0.15), train=_deimos_adam(300, 0.025, optimizer="rmsprop"), initial_size=75,
        acquisition_sizes=(1,), n_acquired=600, n_candidates=5000, mc_samples=50, eval_mc_samples=200,
        tau_inv=2.5e-4),
}


def rotated_mnist_protocol(*, pool_size: int, val_size: int, test_size: int, rotated_max_angle: float,
                           initial_size: int, acquisition_sizes, n_acquired: int, n_candidates: int,
                           epochs: int, batch_size: int, lr: float, p: float, l2: float, mc_samples: int,
                           eval_mc_samples: int, tau_factor: float) -> Protocol:
    """The offline stand-in: predict the rotation angle (degrees) of an MNIST digit with DEIMOS's
    UTKFace network (one channel, 28 x 28). ``pool_size`` (initial set included) and ``test_size``
    subsample MNIST before the rotation (0 = all); ``val_size`` points are held out of the train split."""
    return Protocol(
        name="rotated_mnist", title="Rotated-MNIST angle (degrees)", task="rotated_mnist",
        task_options=dict(n_train=pool_size + val_size if pool_size else 0, n_test=test_size,
                          max_angle=float(rotated_max_angle)),
        model="image_regression_cnn", model_options=dict(in_channels=1, image_size=28, p=float(p)),
        train=_deimos_adam(epochs, float(l2), lr=float(lr), batch_size=batch_size), initial_size=initial_size,
        acquisition_sizes=tuple(acquisition_sizes), n_acquired=n_acquired, n_candidates=n_candidates,
        mc_samples=mc_samples, eval_mc_samples=eval_mc_samples, tau_inv={"auto": float(tau_factor)},
        val_size=val_size)


def rotated_mnist_protocol_from(settings: Mapping) -> Protocol:
    """:func:`rotated_mnist_protocol` from a notebook's profile settings (the knobs of the same names)."""
    names = inspect.signature(rotated_mnist_protocol).parameters
    missing = sorted(set(names) - set(settings))
    if missing:
        raise ValueError(f"settings lack {missing}; they need every argument of rotated_mnist_protocol")
    return rotated_mnist_protocol(**{k: settings[k] for k in names})


def file_protocol(name: str, *, n_steps: int = 0, epochs: int = 0, pool_size: int = 0, test_size: int = 0,
                  n_candidates: int = 0, eval_mc_samples: int = 0, image_size: int = 200) -> Protocol:
    """The paper's protocol for ``name`` ("utkface" or "splicing"); every argument 0 keeps the paper's
    value, else: ``n_steps`` acquisition steps at the first batch size only, ``epochs``, a train/pool
    subsample of ``pool_size`` and a test subsample of ``test_size`` (drawn when the task loads),
    ``n_candidates``, ``eval_mc_samples``. ``image_size``: UTKFace pixels (the paper: 200)."""
    if name not in PAPER_PROTOCOLS:
        raise ValueError(f"unknown file protocol {name!r}; valid: {sorted(PAPER_PROTOCOLS)}")
    for arg, v in dict(n_steps=n_steps, epochs=epochs, pool_size=pool_size, test_size=test_size,
                       n_candidates=n_candidates, eval_mc_samples=eval_mc_samples).items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{arg} must be an int >= 0 (0 = the paper's value), got {v!r}")
    proto = PAPER_PROTOCOLS[name]
    changes: dict = {}
    if n_steps:
        b = proto.acquisition_sizes[0]
        changes.update(acquisition_sizes=(b,), n_acquired=n_steps * b)
    if epochs:
        changes["train"] = {**proto.train, "epochs": int(epochs)}
    options = dict(proto.task_options)
    if pool_size:
        options["n_train"] = int(pool_size)
    if test_size:
        options["n_test"] = int(test_size)
    if name == "utkface":
        options["size"] = int(image_size)
        changes["model_options"] = {**proto.model_options, "image_size": int(image_size)}
    changes["task_options"] = options
    if n_candidates:
        changes["n_candidates"] = int(n_candidates)
    if eval_mc_samples:
        changes["eval_mc_samples"] = int(eval_mc_samples)
    return proto.replace(**changes)


def missing_data(name: str, data_dir=None) -> str | None:
    """``None`` when the files of data set ``name`` are in the data directory, else what is missing
    and how to get it. MNIST (``"rotated_mnist"``) ships with the package world: always ``None``."""
    from .data.splicing import splicing_missing
    from .data.utkface import utkface_missing

    checks = {"utkface": utkface_missing, "splicing": splicing_missing, "rotated_mnist": lambda _: None}
    if name not in checks:
        raise ValueError(f"unknown data set {name!r}; valid: {sorted(checks)}")
    return checks[name](data_dir)


def _seed_mean_curves(df: pd.DataFrame, metric: str, x: str) -> dict[str, pd.DataFrame]:
    """{method: seeds x x-values table of ``metric``}; every seed of a method shares the x-values."""
    missing = [c for c in ("method", "seed", x, metric) if c not in df.columns]
    if missing:
        raise ValueError(f"df lacks column(s) {missing}; has {list(df.columns)}")
    out = {}
    for m, g in df.groupby("method", sort=False, observed=True):
        wide = g.pivot_table(index="seed", columns=x, values=metric, aggfunc="first")
        if wide.isna().any().any():
            raise ValueError(f"method {m!r}: its seeds do not share the same {x!r} values")
        out[str(m)] = wide
    return out


def choose_thresholds(df: pd.DataFrame, metric: str, *, fractions=(0.5, 0.7, 0.85, 0.95), x: str = "acquired_total",
                      digits: int = 3) -> np.ndarray:
    """Error levels from the data's own range, for a lower-is-better ``metric``.

    With ``start`` the seed-mean error at the first point (shared by all methods: same initial
    sets) averaged over methods and ``end`` the lowest seed-mean error any method reaches at its
    last point, threshold ``f`` is ``start - f (start - end)``: ``f = 1`` is reached only by the
    best method at the end, smaller fractions by more methods sooner. Rounded to ``digits``
    significant digits (as the paper's 0.11, 0.10, 0.095, 0.09); distinct levels, in decreasing order.
    """
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or fr.size == 0 or np.any(fr <= 0) or np.any(fr > 1):
        raise ValueError(f"fractions must be a non-empty list of numbers in (0, 1], got {fractions!r}")
    curves = _seed_mean_curves(df, metric, x)
    start = float(np.mean([w.mean(axis=0).iloc[0] for w in curves.values()]))
    end = float(min(w.mean(axis=0).iloc[-1] for w in curves.values()))
    if not end < start:
        raise ValueError(f"no method lowers the seed-mean {metric} below its starting value {start:.4g} "
                         f"(best final {end:.4g}): there is no range to choose thresholds from")
    levels = {float(f"{v:.{digits}g}") for v in start - fr * (start - end)}
    return np.array(sorted(levels, reverse=True))


def crossings_table(df: pd.DataFrame, metric: str, thresholds, *, x: str = "acquired_total") -> pd.DataFrame:
    """Acquisitions needed to fall to each threshold (the paper's Table 1 form), lower-is-better ``metric``.

    One row per threshold; per method two columns: the first ``x`` where the seed-mean curve is
    ``<= threshold`` (NaN: not reached), and every seed's own first crossing as text
    ("12 / 30 / —", "—" = not reached within the run).
    """
    t_K = np.asarray(thresholds, dtype=np.float64)
    table = pd.DataFrame(index=pd.Index(t_K, name="threshold"))
    for m, wide in _seed_mean_curves(df, metric, x).items():
        tc = metrics.threshold_crossings(wide.columns.to_numpy(), wide.to_numpy(np.float64), t_K,
                                         higher_is_better=False)
        table[m] = tc.mean_K
        table[f"{m}: per seed"] = [" / ".join("—" if np.isnan(h) else f"{h:g}" for h in tc.per_seed_S_K[:, k])
                                   for k in range(t_K.size)]
    return table
