"""Active-learning experiments: one plain config -> one resumable run directory.

An experiment (:class:`ExperimentConfig`) is a task, a model, a strategy and its options, the
sizes (initial set, acquisition size, number of steps), the training settings and a seed.
:func:`run_experiment` runs it step by step; step ``s = 0 .. n_steps``:

1. build the model afresh (seed derived from ``(seed, s)``) and fit it on the labelled set
   ``L_s`` (best-validation checkpoint on the fixed validation set when the config asks);
2. evaluate on the test set (one deterministic pass, or the mean of ``eval_mc_samples`` MC passes);
3. if ``s < n_steps``: score the pool (or a seeded subsample of ``n_candidates`` of it) with the
   strategy and acquire ``acquisition_size`` points, ``L_{s+1} = L_s + picks``;
4. write the step's record atomically to ``<run_dir>/steps/step_XXXX.json``.

So a run has ``n_steps + 1`` points on its curve (seed 1: 36 steps, 37 points, budgets
1000 ... 37000). ``budget`` = ``|L_s|``, the number of labelled training points.

Randomness. The split (validation set, pool, initial set, test subsample) derives from
``(task, task options, seed)`` only -- never from the strategy -- so every strategy of a seed
starts from the same initial labelled set and checkpoints on the same validation set (the DEIMOS
code let each method draw its own). Everything random inside step ``s`` (model init, batch order
and training masks, MC masks, candidate subsample, strategy tie-breaks) derives from
``(seed, s)`` through ``numpy.random.SeedSequence``; no generator is carried across steps. Hence a
run killed at any point (even SIGKILL) and started again with the same config resumes after its
last written step and produces exactly the records of an uninterrupted run (on CPU, same thread
count), timings aside.

Storage (a run directory)::

    config.json              {"format": 1, "config": ExperimentConfig.to_dict()}
    split.json               the initial labelled indices and the sizes of the split
    steps/step_0000.json     one record per completed step (see :func:`run_experiment`)

Every file is written to a temporary name, fsynced and moved into place with ``os.replace``; a
reader never sees a partial file. A config that differs from the stored one is refused with the
list of differing fields.

Grids (strategies x seeds) run on any ``concurrent.futures.Executor`` with :func:`run_grid`: a
local process pool by default, ``client.get_executor()`` of a Dask ``distributed`` cluster to go
beyond one machine (the run directories must then be on a shared file system). Threads of one
process train one step at a time (training seeds torch's process-global RNG); use processes for
parallelism. Finished runs are not resubmitted, so re-running a grid resumes it.
:func:`load_results` reads one run or a whole grid into a long ``pandas.DataFrame``.

Extension hook (tests, new data, new nets): ``task`` and ``model`` may be an import path
``"package.module:function"`` instead of a registered name. A task factory is called like
:func:`mcal_utils.data.load_task` without the name (``factory(data_dir=..., random_state=...,
**task_options) -> Task``), a model factory like :func:`mcal_utils.models.build_model`
(``factory(seed=..., **model_options) -> MCModel``). Import paths work in worker processes too.
"""
from __future__ import annotations

from .config import ExperimentConfig, config_diff, derive_seed
from .grid import grid_configs, run_dir_for, run_grid
from .run import RunResult, run_experiment
from .split import INITIAL_MODES, REQUIRES, Split, get_strategy, load_task_for, make_split, validate
from .storage import FORMAT_VERSION, atomic_write_text, code_fingerprint, load_results, read_records

__all__ = [
    "ExperimentConfig",
    "config_diff",
    "derive_seed",
    "Split",
    "make_split",
    "validate",
    "get_strategy",
    "load_task_for",
    "RunResult",
    "run_experiment",
    "read_records",
    "code_fingerprint",
    "grid_configs",
    "run_dir_for",
    "run_grid",
    "load_results",
    "atomic_write_text",
    "REQUIRES",
    "INITIAL_MODES",
    "FORMAT_VERSION",
]
