"""Active-learning experiments: one plain config -> one resumable run directory.

An experiment (:class:`ExperimentConfig`) is a task, a model, a strategy and its options, the
sizes (initial set, acquisition size, number of steps), the training settings and a seed.
:func:`run_experiment` runs it step by step; step ``s = 0 .. n_steps``:

1. build the model afresh (initial weights from ``(seed, s)``, or with ``init="fixed"`` from
   ``(seed, "init")``: one initial network per seed, as the MC-dropout-entropy paper's code) and
   fit it on the labelled set ``L_s`` (best-validation checkpoint on the fixed validation set
   when the config asks);
2. evaluate on the test set (one deterministic pass, or the mean of ``T_eval`` MC passes);
3. if ``s < n_steps``: the strategy's ``Requirement`` computes its inputs from the model and the
   candidates (the pool, or a seeded subsample of ``n_candidates`` of it); the strategy picks
   ``k`` points, ``L_{s+1} = L_s + picks`` (with ``tau_inv={"auto": f}``, tau^-1
   is computed once from the step-0 model on the validation set first);
4. write the step's record atomically to ``<run_dir>/steps/step_XXXX.json``.

So a run has ``n_steps + 1`` points on its curve (the MC-dropout-entropy paper: 36 steps, 37
points, budgets 1000 ... 37000). ``budget`` = ``|L_s|``, the number of labelled training points.

Randomness. The split (validation set, pool, initial set, test subsample) derives from
``(task, task options, seed)`` only -- never from the strategy -- so every strategy of a seed
starts from the same initial labelled set and checkpoints on the same validation set (the DEIMOS
code let each method draw its own). Everything random inside step ``s`` (model init, batch order
and training masks, MC masks, candidate subsample, strategy tie-breaks) derives from
``(seed, s)`` through ``numpy.random.SeedSequence``; no generator is carried across steps. Hence a
run killed at any point (even SIGKILL) and started again with the same config resumes after its
last written step and produces exactly the records of an uninterrupted run (on CPU, same thread
count), timings aside.

Storage (a run directory, see :mod:`~mcal_utils.loop.storage`)::

    config.json              {"format": 2, "config": ExperimentConfig.to_dict(), "config_hash": ...}
    split.json               the initial labelled indices, the sizes of the split, config_hash
    steps/step_0000.json     one record per completed step (see :func:`run_experiment`)

Every file is written to a temporary name, fsynced and moved into place with ``os.replace``; a
reader never sees a partial file. A config that differs from the stored one is refused with the
list of differing fields; a record or split of another config, records without a config and
corrupt files are refused naming the file; a second process on a run directory fails at once
(``RunDirBusy``, naming the PID that holds it).

Grids (strategies x seeds) run on any ``concurrent.futures.Executor`` with :func:`run_grid`: a
local process pool by default (in a script: under ``if __name__ == "__main__":``),
``client.get_executor()`` of a Dask ``distributed`` cluster to go beyond one machine (the run
directories must then be on a shared file system). Threads of one process train one step at a
time (training seeds torch's process-global RNG); use processes for parallelism. Finished runs are not
resubmitted, so re-running a grid resumes it.
:func:`load_results` reads one run or a whole grid into a long ``pandas.DataFrame``.

Extension hook (tests, new data, new nets): ``task`` and ``model`` may be an import path
``"package.module:function"`` instead of a registered name. A task factory is called like
:func:`mcal_utils.data.load_task` without the name (``factory(data_dir=..., random_state=...,
**task_options) -> Task``), a model factory like :func:`mcal_utils.models.build_model`
(``factory(seed=..., **model_options) -> MCModel``). Import paths work in worker processes too.
"""

from __future__ import annotations

from mcal_utils.acquisition import get_strategy
from mcal_utils.acquisition.requirements import REQUIREMENTS as _REQUIREMENTS

from .cached import GridResults, run_cached_grid
from .config import INIT_MODES, ExperimentConfig, config_diff, config_hash
from .grid import WorkerDied, grid_configs, run_grid
from .registry import load_task_for
from .run import RunResult, run_experiment
from .seeds import derive_seed
from .split import INITIAL_MODES, Split, make_split
from .step import (
    RunState,
    Selection,
    build_step_model,
    commit_step,
    evaluate_step,
    fit_step_model,
    make_record,
    open_run,
    resolve_tau_inv,
    run_step,
    select_step,
    step_seeds,
)
from .storage import (
    FORMAT_VERSION,
    RunDirBusy,
    atomic_write_text,
    cache_root,
    code_fingerprint,
    load_results,
    lock_run_dir,
    read_records,
    run_dir_for,
)
from .validation import validate

#: The requirement kinds a strategy can declare (``acquisition.REQUIREMENTS``; kept for compatibility).
REQUIRES: tuple[str, ...] = tuple(_REQUIREMENTS)

__all__ = [
    "ExperimentConfig",
    "config_diff",
    "config_hash",
    "derive_seed",
    "step_seeds",
    "Split",
    "make_split",
    "validate",
    "get_strategy",
    "load_task_for",
    "RunResult",
    "run_experiment",
    "read_records",
    "cache_root",
    "code_fingerprint",
    "grid_configs",
    "run_dir_for",
    "run_grid",
    "run_cached_grid",
    "GridResults",
    "load_results",
    "atomic_write_text",
    "lock_run_dir",
    "RunDirBusy",
    "WorkerDied",
    "RunState",
    "Selection",
    "open_run",
    "build_step_model",
    "fit_step_model",
    "evaluate_step",
    "resolve_tau_inv",
    "select_step",
    "make_record",
    "commit_step",
    "run_step",
    "REQUIRES",
    "INITIAL_MODES",
    "INIT_MODES",
    "FORMAT_VERSION",
]
