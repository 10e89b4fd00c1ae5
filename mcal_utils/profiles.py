"""Run profiles: the one place that sizes and validates every notebook.

Three profiles:

* ``smoke``   -- the tests (nbval): seconds per notebook, exercises every code path.
* ``default`` -- the offline report on a 2-core CPU.
* ``paper``   -- the papers' own settings (epochs, budgets, T, seeds); meant for a GPU.

A notebook's papermill ``parameters`` cell holds ``profile = None`` and one top-level
variable per knob (``None``: the profile's value); the next cell calls
:func:`resolve_parameters` with ``globals()``. ``profile=None`` means the environment
variable ``MCAL_PROFILE`` if set (the test suite sets ``smoke``), else ``default``.

Each notebook owns one entry of :data:`NOTEBOOKS`; every profile of an entry must
define the same keys. A value is checked, in this order, against the type of the
``default`` profile's value, against :data:`RULES` (range or choices of the knob;
a knob name means the same thing in every notebook) and against the notebook's
:data:`CROSS_CHECKS` (constraints between knobs). Every refusal names the notebook,
the profile, the knob, the value and what is valid.
"""

from __future__ import annotations

import ast
import difflib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mcal_utils.protocols import entropy_mnist_svhn, own_model

#: the profiles every notebook defines
PROFILE_NAMES: tuple[str, ...] = ("smoke", "default", "paper")
#: profiles a notebook may add: ``long`` = a claim made testable on 2 CPU cores in <= 2 h (rendered
#: into reports/long/ with `make report PROFILE=long REPORT_OUT=reports/long REPORT_FLAGS="--only NN"`)
OPTIONAL_PROFILES: tuple[str, ...] = ("long",)
ENV_VAR = "MCAL_PROFILE"

# ---------------------------------------------------------------------------
# One entry per notebook. Keep the keys identical across the three profiles.
# ---------------------------------------------------------------------------

# One line per profile: the sizes read as a table (kept out of the formatter).
# fmt: off
NOTEBOOKS: dict[str, dict[str, dict[str, Any]]] = {
    "07_own_model": {
        # A CNN of your own (plain nn.Dropout / nn.Dropout2d) on MNIST, converted by models.patch_dropout,
        # in modAL ActiveLearner loops with mcal's strategies as query strategies. pool_size / test_size:
        # MNIST train / test images used (0 = all); the initial set (balanced over the 10 classes) is
        # drawn from the pool; n_candidates: pool points scored per query (0 = the whole pool; DEIMOS:
        # the pool members of X_samp); T: MC passes (K for BatchBALD, J for DEIMOS); tau_inv: DEIMOS's
        # tau^-1 (its MNIST 0-9 value). default: 6 strategies x 2 seeds x 6 steps; per-step cost model
        # (CPU seconds, 1 thread, measured): fit 0.5 s at 20 labels to 1.9 s at 100, test accuracy 0.3 s,
        # query on 500 candidates: BatchBALD 5.3 s, BALD / max-entropy 1.1 s, DEIMOS 0.8 s; 8 steps took
        # 209 s in the report of 2026-12-01, so 6 steps ~2.7 min on 2 idle cores.
        # paper: no paper runs this notebook; it uses the sizes of Gal, Islam & Ghahramani 2017.
        "smoke": dict(n_seeds=2, seed=0, pool_size=300, test_size=200, initial_size=10, k=5,
                      n_steps=1, epochs=2, batch_size=32, lr=0.002, T=4, n_candidates=60, tau_inv=3e-5,
                      strategies=own_model.STRATEGY_LABELS),
        # default (8 seeds, the comparison's minimum): 4 strategies x 8 seeds x 4 queries, 20 epochs, 1000 test
        # images: ~5.5 s per run from the per-step costs above (fits halve with the epochs) -> ~3 min.
        "default": dict(n_seeds=8, seed=0, pool_size=5000, test_size=1000, initial_size=20, k=10,
                        n_steps=4, epochs=20, batch_size=32, lr=0.002, T=20, n_candidates=500,
                        tau_inv=3e-5, strategies=("random", "modAL uncertainty", "BALD", "DEIMOS")),
        "paper": dict(n_seeds=8, seed=0, pool_size=0, test_size=0, initial_size=20, k=10,
                      n_steps=100, epochs=100, batch_size=32, lr=0.002, T=50, n_candidates=2000,
                      tau_inv=3e-5, strategies=own_model.STRATEGY_LABELS),
    },
    "00_data_prep": {
        # n_show: images per grid row; n_rotated: rotated-MNIST training images built (0 = all 60000);
        # verify_checksums: check SVHN files against the official md5 (once per file).
        "smoke": dict(n_show=8, rotated_max_angle=45.0, n_rotated=256, verify_checksums=True, seed=0),
        "default": dict(n_show=16, rotated_max_angle=45.0, n_rotated=10000, verify_checksums=True, seed=0),
        "paper": dict(n_show=16, rotated_max_angle=45.0, n_rotated=0, verify_checksums=True, seed=0),
    },
    "01_concrete_dropout_model": {
        # n_seeds: twin pairs (Concrete / fixed p), one per seed; the comparison rests on them.
        "smoke": dict(dataset="auto", n_seeds=2, n_train=256, n_val=128, n_test=256, epochs=2,
                      batch_size=64, lr=0.001, momentum=0.9, fixed_p=0.2, T=4, seed=42),
        # default: 8 twin pairs. Sized from the measured 2 idle cores: the kirillov CNN trains at ~2550
        # images/s on MNIST-32, so 3000 images x 6 epochs ~7 s per net plus ~3 s of evaluation (10 MC
        # passes over 2000 test images): 16 nets ~3 min.
        "default": dict(dataset="auto", n_seeds=8, n_train=3000, n_val=1000, n_test=2000, epochs=6,
                        batch_size=64, lr=0.001, momentum=0.9, fixed_p=0.2, T=10, seed=42),
        "paper": dict(dataset="auto", n_seeds=8, n_train=0, n_val=0, n_test=0, epochs=200,
                      batch_size=64, lr=0.001, momentum=0.9, fixed_p=0.2, T=50, seed=42),
    },
    "03_deimos_1d_toy": {
        "smoke": dict(n_seeds=2, seed=0, n_train=100, epochs=3, train_batch_size=128, lr=0.001, l2=5e-4,
                      p=0.2, k=5, T=8, T_eval=8, tau_factor=0.15),
        "default": dict(n_seeds=8, seed=0, n_train=100, epochs=300, train_batch_size=128, lr=0.001, l2=5e-4,
                        p=0.2, k=5, T=50, T_eval=100, tau_factor=0.15),
        "paper": dict(n_seeds=10, seed=0, n_train=100, epochs=300, train_batch_size=128, lr=0.001, l2=5e-4,
                      p=0.2, k=5, T=50, T_eval=100, tau_factor=0.15),
    },
    "02_strategy_comparison": {
        # The MC-dropout-entropy paper's experiment (Random, VarRatio, Margin, Margin-inverted, Entropy,
        # EntropyD) + BALD + Power BALD. Sizes 0 = all (pool, test, candidates); val_size 0 = the paper's
        # fixed 20 % validation split. init: "fixed" (one initial network per seed, the paper's code) or
        # "per_step"; concrete_scale: "none" (the paper's regulariser) or "n_train" (Gal's 1/N).
        # compare_init / compare_scale: strategies run again with the other init / the other scale.
        # power_beta: Power BALD's beta (0 = leave it out). probe_passes: T of the BALD top-k noise
        # probe (() = skip). workers: -1 = one process per core, 0 = in this process, n = n processes.
        # resume: reuse the profile's run directory (False: a fresh temporary one). run_root: a run
        # directory to use instead ("": the profile's cache, keyed by the configs and the package source).
        # default: 7 methods (Power BALD left out: power_beta=0) x 8 seeds, no ablation runs, 11 steps
        # each: 8 seeds let the exact sign-flip p of mcal_utils.compare reach 2/2^8 = 0.008. Sized from
        # single runs of the notebook's default base config (one seed, one torch thread, CPU seconds per
        # run): a deterministic strategy ~13.9 s at 10 epochs and ~11.8 s at 8, an MC one (T = 50) ~27 s
        # at 10 epochs / 150 candidates, ~25 s at 100 candidates; these rates reproduce the previous
        # default's ~5 min idle (8 methods + 2 Random ablations x 3 seeds, 10 epochs, 150 candidates).
        # 8 epochs, 100 candidates, 500 test images: ~820 CPU-s of runs on 2 workers -> ~7.5 min idle.
        "smoke": dict(dataset="auto", n_seeds=4, pool_size=300, val_size=30, test_size=100, initial="balanced",
                      initial_size=10, k=10, n_steps=1, epochs=1, batch_size=32, lr=0.01,
                      momentum=0.9, T=3, n_candidates=60, windows=(1,), init="fixed",
                      concrete_scale="none", compare_init=("random",), compare_scale=("random",), power_beta=1.0,
                      probe_passes=(2, 3), workers=0, resume=False, run_root="", leave_out=()),
        "default": dict(dataset="auto", n_seeds=8, pool_size=3000, val_size=100, test_size=500,
                        initial="balanced", initial_size=20, k=20, n_steps=10, epochs=8,
                        batch_size=32, lr=0.01, momentum=0.9, T=50, n_candidates=100, windows=(5, 10),
                        init="fixed", concrete_scale="none", compare_init=(), compare_scale=(),
                        power_beta=0.0, probe_passes=(10, 50), workers=-1, resume=True, run_root="",
                        leave_out=()),
        "paper": dict(dataset="auto", n_seeds=8, pool_size=0, val_size=0, test_size=0, initial="first",
                      initial_size=1000, k=1000, n_steps=36, epochs=200, batch_size=64, lr=0.001,
                      momentum=0.9, T=50, n_candidates=0, windows=(10, 20), init="fixed",
                      concrete_scale="none", compare_init=("random", "entropy", "entropy_mc"),
                      compare_scale=("random",), power_beta=1.0, probe_passes=(50, 200), workers=-1, resume=True,
                      run_root="", leave_out=()),
        # long (<= 2 h on 2 CPU cores): the central claim where it is testable -- a model "reasonably trained"
        # before the first acquisition (500 balanced labels: one seed trained alone reached 0.929 / 0.936 /
        # 0.950 / 0.950 test accuracy after 5 / 10 / 20 / 40 epochs, best validation epoch 17) and candidate
        # sets that do not dilute the strategies (top 50 of 2000 = 2.5 %, the paper's 1000 of its ~37 000
        # pool = 2.7 %); 500 -> 1000 labels in 10 steps of 10 epochs, 2000 test images (s.e. ~0.5 % at 95 %),
        # T = 50 as the paper, 6 seeds (the verdict rule's minimum). Left out (leave_out) to fit 2 h: BALD and
        # the inverted Margin, which the central claim does not compare; the MC-noise probe. The time is
        # predicted before the build from the default build's measured steps (benchmarks/predict_long.py).
        "long": dict(dataset="auto", n_seeds=6, pool_size=20000, val_size=500, test_size=2000,
                     initial="balanced", initial_size=500, k=50, n_steps=10, epochs=10,
                     batch_size=32, lr=0.01, momentum=0.9, T=50, n_candidates=2000, windows=(5, 10),
                     init="fixed", concrete_scale="none", compare_init=(), compare_scale=(),
                     power_beta=0.0, probe_passes=(), workers=-1, resume=True, run_root="",
                     leave_out=("margin_inverted", "bald")),
    },
    "04_greedy_optimality": {
        # n_trials: random covariances per configuration (paper: 200); n_trials_b10: the same
        # for the two costliest ones (20 points, batch 10, 3 / 50 samples: 184756 subsets each)
        "smoke": dict(n_trials=3, n_trials_b10=1, seed=0, hist_bins=20),
        "default": dict(n_trials=200, n_trials_b10=200, seed=0, hist_bins=30),
        "paper": dict(n_trials=200, n_trials_b10=200, seed=0, hist_bins=30),
    },
    "06_deimos_regression": {
        # Rotated-MNIST angle regression (the offline stand-in for UTKFace): pool_size includes the
        # initial set (0 = all 60000 minus the validation points); n_acquired points acquired per run,
        # in batches of each of k_values; l2: DEIMOS's L2 on the dense layers before / N;
        # T: J masks (DEIMOS) and T passes (max variance); T_eval: MC passes of
        # the test prediction; tau_factor: tau^-1 = factor x mean MC variance of the step-0 model
        # on the validation set (Appendix E). file_*: the UTKFace / 5' splicing sections, run only
        # when their files are in the data directory; 0 = the paper's value (all data, its epochs,
        # candidates, MC passes and number of acquisitions); file_image_size: UTKFace pixels.
        # default: 3 methods x 8 seeds (the decision rule of mcal_utils.compare needs >= 6; 8 resolve
        # a consistent effect) x 5 steps (n_acquired 200). Sized from one DEIMOS run at these sizes, timed
        # alone with 1 torch thread: 14.7 s of CPU for its 5 steps (train 2.2 s at 100 labels to 5.4 s at
        # 300, wall; 22 s wall on a shared CPU); 24 runs ~350 CPU s -> ~3 min on 2 workers, ~3.6 min with
        # the notebook's overheads (LMM A/A calibration ~2 s). The 3-seed, 7-step default took ~2.3 min.
        "smoke": dict(n_seeds=2, pool_size=200, val_size=20, test_size=100, rotated_max_angle=45.0,
                      initial_size=20, k_values=(10,), n_acquired=20, n_candidates=50, epochs=2,
                      batch_size=32, lr=0.001, p=0.5, l2=2.0, T=4, T_eval=4, tau_factor=0.1,
                      file_sections=("utkface", "splicing"), file_n_steps=1, file_epochs=2, file_pool_size=400,
                      file_test_size=100, file_n_candidates=50, file_T_eval=4, file_image_size=32,
                      workers=0, resume=False),
        "default": dict(n_seeds=8, pool_size=3000, val_size=50, test_size=1000, rotated_max_angle=45.0,
                        initial_size=100, k_values=(50,), n_acquired=200, n_candidates=1000, epochs=30,
                        batch_size=32, lr=0.001, p=0.5, l2=2.0, T=50, T_eval=50,
                        tau_factor=0.1, file_sections=("utkface", "splicing"), file_n_steps=4, file_epochs=30,
                        file_pool_size=3000, file_test_size=1000, file_n_candidates=1000,
                        file_T_eval=50, file_image_size=64, workers=-1, resume=True),
        "paper": dict(n_seeds=8, pool_size=0, val_size=50, test_size=0, rotated_max_angle=45.0,
                      initial_size=150, k_values=(100, 200), n_acquired=2000, n_candidates=5000,
                      epochs=250, batch_size=128, lr=0.001, p=0.5, l2=2.0, T=50, T_eval=300,
                      tau_factor=0.1, file_sections=("utkface", "splicing"), file_n_steps=0, file_epochs=0,
                      file_pool_size=0, file_test_size=0, file_n_candidates=0, file_T_eval=0,
                      file_image_size=200, workers=-1, resume=True),
    },
    "05_deimos_mnist": {
        # DEIMOS's classification experiments: "b1" = MNIST 7-vs-9 batch 1 (Table 2), "b25" = 7-vs-9
        # batch 25 (Fig. 3 left), "b100" = MNIST 0-9 batch 100 (Fig. 3 centre); 5 methods x n_seeds each.
        # pool_size: train/pool images per task (0 = all); n_acq_b1: acquisitions of b1; n_steps_*: steps
        # of b25/b100; epochs (7-vs-9) / epochs_b100 (0-9): Adam epochs per step; T: J = T
        # (DEIMOS masks, BALD/MaxEnt passes, BatchBALD K); T_eval: test passes; n_candidates_*:
        # random pool candidates per step; tau_inv_10_alt: a second 0-9 DEIMOS with the authors'
        # notebook value (0 = skip); whole_pool: DEIMOS over (almost) the whole pool beside it in b1.
        # default: 8 seeds (the decision rule of mcal_utils.compare needs >= 6; 8 resolve a consistent
        # effect), paid for by dropping b25 (paper only), b1 20 acquisitions (DEIMOS's 0.95 / 0.96
        # crossings came at 14 / 16 at 45 epochs; a method that never crosses is censored) and 1 step of
        # b100. Sized from single runs timed alone (1 torch thread, CPU seconds; the shared host's wall
        # was ~1.5x): b1 DEIMOS 2.0 s for step 0 then ~0.7 s per step (robust k-center the same), so
        # ~17.5 s per run, 40 runs ~700 s; b100 per seed DEIMOS 2.0 s, BatchBALD 7.7 s (500 samples;
        # the selection 7.3 s wall), the others ~2 s: ~125 s for 8 seeds. On 2 workers ~6.9 min of
        # runs, ~8 min with the notebook's overheads (LMM tests and A/A calibrations ~10 s).
        "smoke": dict(n_seeds=2, experiments=("b1", "b25", "b100"), pool_size=400, test_size=60, n_acq_b1=2,
                      n_steps_b25=1, n_steps_b100=1, epochs=2, epochs_b100=2, T=4, T_eval=4,
                      n_candidates_79=40, n_candidates_10=120, batchbald_samples=100, tau_inv_79=8.37e-5,
                      tau_inv_10=3e-5, tau_inv_10_alt=3e-4, pixel_scale="unit", batching="even",
                      outlier_fraction=0.001, kcenter_time_limit=2.0, whole_pool=True, workers=0, resume=False,
                      run_root=""),
        "default": dict(n_seeds=8, experiments=("b1", "b100"), pool_size=0, test_size=1000, n_acq_b1=20,
                        n_steps_b25=3, n_steps_b100=1, epochs=45, epochs_b100=20, T=20,
                        T_eval=10, n_candidates_79=500, n_candidates_10=500, batchbald_samples=500,
                        tau_inv_79=8.37e-5, tau_inv_10=3e-5, tau_inv_10_alt=0.0, pixel_scale="unit",
                        batching="even", outlier_fraction=0.001, kcenter_time_limit=2.0, whole_pool=False,
                        workers=-1, resume=True, run_root=""),
        "paper": dict(n_seeds=8, experiments=("b1", "b25", "b100"), pool_size=0, test_size=0, n_acq_b1=200,
                      n_steps_b25=20, n_steps_b100=10, epochs=300, epochs_b100=300, T=50,
                      T_eval=100, n_candidates_79=2500, n_candidates_10=2000, batchbald_samples=10000,
                      tau_inv_79=8.37e-5, tau_inv_10=3e-5, tau_inv_10_alt=3e-4, pixel_scale="raw",
                      batching="even", outlier_fraction=0.001, kcenter_time_limit=3.0, whole_pool=True,
                      workers=-1, resume=True, run_root=""),
        # long (<= 2 h on 2 CPU cores): Table 2's question where it is testable -- b1 only, 6 seeds, the paper's
        # 300 epochs per step and 60 acquisitions (Table 2: all but BALD and Random reach 0.975 by 58);
        # candidates, MC passes and test images as `default`; 6 seeds, the verdict rule's minimum (8 seeds ran at a
        # pace of ~100 min on this shared 2-core machine); robust k-center left out (kcenter_time_limit=0: its
        # time-limited MILP is the costliest selection). run_root: "" = the profile's run cache.
        "long": dict(n_seeds=6, experiments=("b1",), pool_size=0, test_size=1000, n_acq_b1=60,
                     n_steps_b25=3, n_steps_b100=1, epochs=300, epochs_b100=20, T=20,
                     T_eval=10, n_candidates_79=500, n_candidates_10=500, batchbald_samples=500,
                     tau_inv_79=8.37e-5, tau_inv_10=3e-5, tau_inv_10_alt=0.0, pixel_scale="unit",
                     batching="even", outlier_fraction=0.001, kcenter_time_limit=0.0, whole_pool=False,
                     workers=-1, resume=True, run_root=""),
    },
}
# fmt: on


@dataclass(frozen=True)
class Rule:
    """What one knob accepts beyond its type: bounds and/or a set of choices.

    ``ge``/``gt``/``le``/``lt``: inclusive / exclusive bounds (``None``: unbounded); for a
    tuple-valued knob they apply to every element. ``choices``: the allowed values.
    ``subset_of``: a tuple knob whose elements are distinct values of this tuple (``()`` included).
    ``note``: what special values mean (e.g. ``"0 = all"``), shown in error messages.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    subset_of: tuple | None = None
    note: str = ""

    def describe(self, key: str = "value") -> str:
        """E.g. ``"n_steps >= 0"``, ``"0.0 < p < 1.0"``, ``"one of ['a', 'b']"``."""
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        if self.subset_of is not None:
            return f"a tuple of distinct values from {list(self.subset_of)}" + (f" ({self.note})" if self.note else "")
        lo = f"{self.ge} <= " if self.ge is not None else f"{self.gt} < " if self.gt is not None else ""
        hi = f" <= {self.le}" if self.le is not None else f" < {self.lt}" if self.lt is not None else ""
        if lo and not hi:  # "n >= 1" reads better than "1 <= n"
            lo, hi = "", (f" >= {self.ge}" if self.ge is not None else f" > {self.gt}")
        text = f"{lo}{key}{hi}" if lo or hi else "any value"
        return text + (f" ({self.note})" if self.note else "")

    def accepts(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        if self.subset_of is not None:
            return (
                isinstance(value, (tuple, list))
                and all(v in self.subset_of for v in value)
                and len(set(value)) == len(value)
            )
        items = value if isinstance(value, (tuple, list)) else (value,)
        for v in items:
            if isinstance(v, str) or v is None:
                return False
            if self.ge is not None and not v >= self.ge:
                return False
            if self.gt is not None and not v > self.gt:
                return False
            if self.le is not None and not v <= self.le:
                return False
            if self.lt is not None and not v < self.lt:
                return False
        return True


_COUNT = Rule(ge=1)
_SIZE_OR_ALL = Rule(ge=0, note="0 = all")
_PROBABILITY = Rule(gt=0.0, lt=1.0)
_POSITIVE = Rule(gt=0.0)

#: knob name -> what it accepts (the same meaning in every notebook that has it).
RULES: dict[str, Rule] = {
    "dataset": Rule(choices=("auto", "svhn", "mnist32")),
    "initial": Rule(choices=("balanced", "random", "first")),
    "seed": Rule(ge=0),
    "n_seeds": _COUNT,
    "n_show": _COUNT,
    "rotated_max_angle": Rule(ge=0.0, le=180.0, note="degrees"),
    "n_rotated": _SIZE_OR_ALL,
    "n_train": _SIZE_OR_ALL,
    "n_val": _SIZE_OR_ALL,
    "n_test": _SIZE_OR_ALL,
    "pool_size": _SIZE_OR_ALL,
    "val_size": _SIZE_OR_ALL,
    "test_size": _SIZE_OR_ALL,
    "n_candidates": _SIZE_OR_ALL,
    "epochs": _COUNT,
    "batch_size": _COUNT,
    "train_batch_size": _COUNT,
    "lr": _POSITIVE,
    "momentum": Rule(ge=0.0, lt=1.0),
    "l2": Rule(ge=0.0),
    "p": _PROBABILITY,
    "fixed_p": _PROBABILITY,
    "T": _COUNT,
    "tau_factor": _POSITIVE,
    "initial_size": _COUNT,
    "k": _COUNT,
    "n_steps": Rule(ge=0),
    "windows": Rule(ge=1, note="steps; each <= n_steps"),
    "workers": Rule(ge=-1, note="-1 = one process per core, 0 = in this process"),
    "n_trials": _COUNT,
    "n_trials_b10": Rule(ge=0),
    "hist_bins": _COUNT,
    "k_values": _COUNT,
    "n_acquired": _COUNT,
    "T_eval": Rule(ge=0, note="0 = one deterministic pass"),
    "file_n_steps": Rule(ge=0, note="0 = the paper's"),
    "file_epochs": Rule(ge=0, note="0 = the paper's"),
    "file_pool_size": _SIZE_OR_ALL,
    "file_test_size": _SIZE_OR_ALL,
    "file_n_candidates": Rule(ge=0, note="0 = the paper's"),
    "file_T_eval": Rule(ge=0, note="0 = the paper's"),
    "file_image_size": Rule(ge=8, note="pixels"),
    "file_sections": Rule(subset_of=("utkface", "splicing")),
    "tau_inv": Rule(gt=0.0, note="DEIMOS's tau^-1"),
    "init": Rule(choices=("fixed", "per_step")),
    "concrete_scale": Rule(choices=("none", "n_train")),
    "compare_init": Rule(subset_of=entropy_mnist_svhn.STRATEGY_NAMES),
    "compare_scale": Rule(subset_of=entropy_mnist_svhn.STRATEGY_NAMES),
    "power_beta": Rule(ge=0.0, note="0 = leave Power BALD out"),
    "leave_out": Rule(subset_of=entropy_mnist_svhn.STRATEGY_NAMES, note="notebook 02's strategies not run"),
    "probe_passes": Rule(ge=2, note="MC passes; () = skip the probe"),
    "experiments": Rule(subset_of=("b1", "b25", "b100"), note="notebook 05's experiments"),
    "n_acq_b1": _COUNT,
    "n_steps_b25": _COUNT,
    "n_steps_b100": _COUNT,
    "epochs_b100": _COUNT,
    "n_candidates_79": _COUNT,
    "n_candidates_10": _COUNT,
    "batchbald_samples": _COUNT,
    "tau_inv_79": _POSITIVE,
    "tau_inv_10": _POSITIVE,
    "tau_inv_10_alt": Rule(ge=0.0, note="0 = skip"),
    "pixel_scale": Rule(choices=("unit", "raw")),
    "batching": Rule(choices=("even", "keras")),
    "outlier_fraction": Rule(ge=0.0, lt=1.0),
    "kcenter_time_limit": Rule(ge=0.0, note="0 = robust k-center left out"),
    "strategies": Rule(subset_of=own_model.STRATEGY_LABELS, note="notebook 07's modAL loop"),
}


def _too_few_left(pool: int, left: int, n_candidates: int, remedy: str, *, where: str = "") -> str | None:
    """The refusal when the pool holds fewer than ``n_candidates`` (or one) points at the last acquiring step."""
    if pool and left < max(n_candidates, 1):
        return (
            f"{where}pool of {pool} points leaves {left} at the last acquiring step, fewer than "
            f"n_candidates={n_candidates}; {remedy}"
        )
    return None


def _windows_within_steps(v: Mapping[str, Any]) -> str | None:
    bad = [w for w in v["windows"] if w > v["n_steps"]]
    return (
        f"windows={tuple(v['windows'])} exceed n_steps={v['n_steps']}; every window must be <= n_steps" if bad else None
    )


def _candidates_cover_a_batch(v: Mapping[str, Any]) -> str | None:
    if v["n_candidates"] and v["n_candidates"] < v["k"]:
        return (
            f"n_candidates={v['n_candidates']} is smaller than k={v['k']}; "
            f"use n_candidates >= k, or 0 for the whole pool"
        )
    return None


def _budget_fits_pool(v: Mapping[str, Any]) -> str | None:
    need = v["initial_size"] + v["n_steps"] * v["k"]
    if v["pool_size"] and need > v["pool_size"]:
        return (
            f"initial_size + n_steps * k = {need} labelled points exceed pool_size="
            f"{v['pool_size']}; lower n_steps or k, or raise pool_size (0 = all)"
        )
    return None


def _comparisons_02(v: Mapping[str, Any]) -> str | None:
    if v["n_seeds"] < 2:
        return f"n_seeds={v['n_seeds']}: the paired tests compare methods seed by seed; use n_seeds >= 2"
    needed = [s for s in v["leave_out"] if s in entropy_mnist_svhn.CENTRAL_STRATEGIES]
    if needed:
        return f"leave_out={tuple(v['leave_out'])} names {needed}, which the central claim compares; keep them"
    for key in ("compare_init", "compare_scale"):
        if "power_bald" in v[key] and not v["power_beta"] > 0:
            return f"{key}={tuple(v[key])} names power_bald, which power_beta=0 leaves out; use power_beta > 0"
        dropped = [s for s in v[key] if s in v["leave_out"]]
        if dropped:
            return f"{key}={tuple(v[key])} names {dropped}, which leave_out leaves out; rerun only strategies that run"
    return None


def _balanced_initial_set(n_classes: int) -> Callable[[Mapping[str, Any]], str | None]:
    def check(v: Mapping[str, Any]) -> str | None:
        if v["initial"] == "balanced" and v["initial_size"] % n_classes:
            return (
                f"initial='balanced' needs initial_size divisible by the {n_classes} classes, "
                f"got initial_size={v['initial_size']}"
            )
        return None

    return check


def _regression_budget(v: Mapping[str, Any]) -> str | None:
    """Notebook 06: every batch size divides n_acquired, the budget fits the pool and DEIMOS's last
    step still has n_candidates pool points."""
    bad = [b for b in v["k_values"] if v["n_acquired"] % b]
    if bad:
        return f"n_acquired={v['n_acquired']} is not a multiple of k_values {bad}; make it one"
    left = v["pool_size"] - v["initial_size"] - v["n_acquired"] + min(v["k_values"])
    return _too_few_left(
        v["pool_size"],
        left,
        v["n_candidates"],
        "raise pool_size (0 = all) or lower initial_size, n_acquired or n_candidates",
    )


def _deimos_mnist_05(v: Mapping[str, Any]) -> str | None:
    """Notebook 05: known, distinct experiments; at least 2 seeds (paired tests); the candidates and
    the budget fit the pool (7-vs-9: 12214 train images, 0-9: 60000, or pool_size)."""
    bad = [e for e in v["experiments"] if e not in ("b1", "b25", "b100")]
    if bad or not v["experiments"] or len(set(v["experiments"])) != len(v["experiments"]):
        return f"experiments={tuple(v['experiments'])}: give distinct names out of ('b1', 'b25', 'b100')"
    if v["n_seeds"] < 2:
        return f"n_seeds={v['n_seeds']}: the per-seed paired tests need n_seeds >= 2"
    for exp, total, initial, acquired, cand in (
        ("b1", 12214, 10, v["n_acq_b1"], v["n_candidates_79"]),
        ("b25", 12214, 10, 25 * v["n_steps_b25"], v["n_candidates_79"]),
        ("b100", 60000, 30, 100 * v["n_steps_b100"], v["n_candidates_10"]),
    ):
        k = 100 if exp == "b100" else 25 if exp == "b25" else 1
        if exp in v["experiments"] and cand < k:
            return f"{exp}: n_candidates={cand} is smaller than its batch of {k}; use at least {k} candidates"
        pool = min(v["pool_size"] or total, total)
        refusal = _too_few_left(
            pool,
            pool - initial - acquired + k,
            cand,
            "raise pool_size (0 = all) or lower the candidates or the number of acquisitions",
            where=f"{exp}: ",
        )
        if exp in v["experiments"] and refusal:
            return refusal
    return None


def _own_model_07(v: Mapping[str, Any]) -> str | None:
    """Notebook 07: a balanced initial set, at least one step, MC spread, and a pool that still holds
    the candidates (and a batch) at the last query."""
    if v["initial_size"] % 10:
        return f"initial_size={v['initial_size']} must be a multiple of the 10 classes (balanced initial set)"
    if v["n_steps"] < 1:
        return f"n_steps={v['n_steps']} must be >= 1 (a curve needs two points)"
    if not {"random", "DEIMOS"} <= set(v["strategies"]):
        return (
            f"strategies={tuple(v['strategies'])} must include 'random' and 'DEIMOS' "
            "(the comparison's baseline and subject)"
        )
    if v["n_seeds"] < 2:
        return f"n_seeds={v['n_seeds']} must be >= 2: the comparisons pair the strategies by seed"
    if v["T"] < 2:
        return f"T={v['T']} must be >= 2: BALD, BatchBALD and DEIMOS score the spread between passes"
    left = v["pool_size"] - v["initial_size"] - (v["n_steps"] - 1) * v["k"]
    return _candidates_cover_a_batch(v) or _too_few_left(
        v["pool_size"],
        left,
        max(v["n_candidates"], v["k"]),
        "raise pool_size (0 = all 60000) or lower n_steps, k or n_candidates",
    )


def _toy_1d_03(v: Mapping[str, Any]) -> str | None:
    """Notebook 03: the batch fits the 201-point pool; J masks and T passes give a spread (>= 2 each)."""
    if v["k"] > 201:
        return f"k={v['k']} exceeds the 201-point pool of the 1-D toy; use <= 201"
    small = {name: v[name] for name in ("T", "T_eval") if v[name] < 2}
    if small:
        return f"{small}: a variance over dropout passes needs at least 2; use T, T_eval >= 2"
    return None


#: notebook -> constraints between its knobs: each returns an error message or None.
CROSS_CHECKS: dict[str, list[Callable[[Mapping[str, Any]], str | None]]] = {
    "02_strategy_comparison": [
        _windows_within_steps,
        _candidates_cover_a_batch,
        _budget_fits_pool,
        _balanced_initial_set(10),
        _comparisons_02,
    ],
    "06_deimos_regression": [_regression_budget],
    "07_own_model": [_own_model_07],
    "05_deimos_mnist": [_deimos_mnist_05],
    "03_deimos_1d_toy": [_toy_1d_03],
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
            raise AttributeError(f"{self._notebook!r} has no setting {key!r}; valid: {sorted(self._values)}") from None

    def __setattr__(self, key, value):
        raise AttributeError(
            "Settings are read-only; change the notebook's parameters (or pass overrides to profiles.resolve())"
        )

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
    if name not in PROFILE_NAMES + OPTIONAL_PROFILES:
        source = "argument" if profile is not None else f"${ENV_VAR}"
        raise ValueError(
            f"unknown profile {name!r} (from {source}); valid profiles: {list(PROFILE_NAMES + OPTIONAL_PROFILES)}"
        )
    return name


def _check_value(notebook: str, key: str, value: Any, reference: Any, profile: str = "default") -> Any:
    """``value`` converted to the type of ``reference`` (int -> float, list -> tuple) and checked
    against ``RULES[key]``; a ``ValueError`` naming the notebook, profile, knob and valid values."""
    where = f"{notebook} (profile {profile!r})"
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
    rule = RULES.get(key)
    if ok and rule is not None and not rule.accepts(value):
        raise ValueError(f"{where}: invalid {key}={value!r}; valid: {rule.describe(key)}")
    if not ok:
        valid = f"; valid: {rule.describe(key)}" if rule is not None else ""
        raise ValueError(
            f"{where}: invalid {key}={value!r}; expected a value of type "
            f"{type(reference).__name__} (e.g. the default profile's {reference!r}){valid}"
        )
    return value


def _check_all(notebook: str, profile: str, values: Mapping[str, Any]) -> dict[str, Any]:
    reference = NOTEBOOKS[notebook]["default"]
    checked = {k: _check_value(notebook, k, v, reference[k], profile) for k, v in values.items()}
    for check in CROSS_CHECKS.get(notebook, ()):
        message = check(checked)
        if message:
            raise ValueError(f"{notebook} (profile {profile!r}): {message}")
    return checked


def resolve(notebook: str, profile: str | None = None, **overrides: Any) -> Settings:
    """Settings of ``notebook`` under ``profile``, with ``overrides`` applied and validated.

    ``None`` overrides mean "the profile's value". Raises ``ValueError`` naming the valid
    notebooks, profiles, keys, ranges or values.
    """
    if notebook not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {notebook!r}; valid: {sorted(NOTEBOOKS)}")
    try:
        name = profile_name(profile)
    except ValueError as err:
        raise ValueError(f"{notebook}: {err}") from None
    entry = NOTEBOOKS[notebook]
    if name not in entry:
        with_it = sorted(nb for nb, e in NOTEBOOKS.items() if name in e)
        raise ValueError(
            f"{notebook} has no {name!r} profile (its profiles: {sorted(entry)}); notebooks with one: {with_it}"
        )
    values = dict(entry[name])
    reference = entry["default"]
    unknown = sorted(set(overrides) - set(reference))
    if unknown:
        raise ValueError(f"{notebook}: unknown parameter(s) {unknown}; valid: {sorted(reference)}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(notebook, name, _check_all(notebook, name, values))


#: Globals of a notebook namespace that are never parameters (IPython's own, and the profile).
_NOT_PARAMETERS = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open", "profile"})
_PLAIN = (type(None), bool, int, float, str, tuple, list, dict)


def _cell_parameters(source: str) -> list[str] | None:
    """Names a parameters-like cell assigns: papermill's injected cell (``# Parameters`` first) or a
    cell of only ``name = literal`` lines; None for any other cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # an IPython magic or a typo: not a parameters cell
        return None
    names = []
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            return None
        try:
            ast.literal_eval(stmt.value)
        except ValueError:
            if not source.lstrip().startswith("# Parameters"):
                return None
        names.append(stmt.targets[0].id)
    return names or None


def _parameter_names(namespace: Mapping[str, Any]) -> set[str]:
    """The names set as parameters. In an IPython kernel (``In``: the executed cells' sources): the
    names assigned by papermill's injected cells and by the first cell run (the parameters cell)
    if it is parameters-like, so that later globals (a cell re-run in a live kernel) are not
    mistaken for parameters. Elsewhere: every public global holding a plain value (None, bool,
    number, str, tuple, list, dict), modules, functions and classes aside."""
    history = namespace.get("In")
    if isinstance(history, list) and history and all(isinstance(h, str) for h in history):
        first = next((i for i, source in enumerate(history) if source.strip()), None)
        return {
            n
            for i, source in enumerate(history)
            if i == first or source.lstrip().startswith("# Parameters")
            for n in (_cell_parameters(source) or ())
        }
    return {
        k for k, v in namespace.items() if not k.startswith("_") and k not in _NOT_PARAMETERS and isinstance(v, _PLAIN)
    }


def resolve_parameters(notebook: str, namespace: Mapping[str, Any]) -> Settings:
    """:func:`resolve` from a notebook's parameters: ``profile`` and every knob of the notebook's
    entry are read from ``namespace`` (the notebook's ``globals()``); absent or ``None`` knobs
    take the profile's value. Call it right after the papermill ``parameters`` cell.

    A parameter that is not a knob of the notebook (``papermill -p n_sedes 3``) is refused, naming
    the notebook, the unknown name and the closest knob: papermill would inject it and the run
    would go on with the defaults. Which names are parameters: see :func:`_parameter_names`.
    """
    if notebook not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {notebook!r}; valid: {sorted(NOTEBOOKS)}")
    valid = sorted(NOTEBOOKS[notebook]["default"])
    unknown = sorted(_parameter_names(namespace) - set(valid) - _NOT_PARAMETERS)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, valid + ["profile"], n=1)
            hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
        raise ValueError(
            f"{notebook}: unknown parameter(s) {', '.join(hints)}: not knobs of this notebook, so they "
            f"would be ignored (papermill -p injects any name). Valid: profile, {', '.join(valid)}"
        )
    knobs = {k: namespace[k] for k in valid if namespace.get(k) is not None}
    return resolve(notebook, namespace.get("profile"), **knobs)


def validate_all() -> None:
    """Check that every notebook entry defines all profiles with the same, well-typed keys."""
    for nb, entry in NOTEBOOKS.items():
        if not set(PROFILE_NAMES) <= set(entry) <= set(PROFILE_NAMES + OPTIONAL_PROFILES):
            raise ValueError(
                f"{nb}: profiles {sorted(entry)}: needs {list(PROFILE_NAMES)}, may add {list(OPTIONAL_PROFILES)}"
            )
        keys = set(entry["default"])
        for name in entry:
            if set(entry[name]) != keys:
                raise ValueError(f"{nb}/{name}: keys differ from default: {sorted(set(entry[name]) ^ keys)}")
            _check_all(nb, name, entry[name])
