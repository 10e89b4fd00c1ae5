"""One step (train from scratch, evaluate, score, acquire) and one resumable run."""
from __future__ import annotations

import functools
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import ExperimentConfig, derive_seed
from .split import Split, _build_model, _check_static, _choice_sorted, get_strategy, load_task_for, validate
from .storage import _prepare_run_dir, _write_json, read_records

__all__ = ["RunResult", "run_experiment"]

# Training seeds torch's process-global RNG (under fork_rng), so two steps must not train at the
# same time in one process: thread-based executors run steps one at a time (use processes).
_STEP_LOCK = threading.Lock()


# ---------------------------------------------------------------------------
# one step
# ---------------------------------------------------------------------------
def _progress_enabled(progress: bool | None) -> bool:
    from mcal_utils.training import progress_enabled

    return progress_enabled(progress)


@torch.no_grad()
def _features(model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Penultimate activations ``model.features`` of ``x``, eval mode (dropout off), float64."""
    if not callable(getattr(model, "features", None)):
        raise ValueError(f"the 'features' strategies need model.features(x); {type(model).__name__} has none")
    model.eval()
    device = next(model.parameters()).device
    out = [model.features(torch.as_tensor(x[s:s + batch_size]).to(device)).double().cpu()
           for s in range(0, len(x), batch_size)]
    return torch.cat(out).reshape(len(x), -1).numpy()


def _select(config: ExperimentConfig, strategy, model, task, labelled: np.ndarray, pool: np.ndarray,
            step: int):
    """Candidates, scoring and selection of one step -> (acquired train indices, scores, info)."""
    from mcal_utils import mc

    k = config.acquisition_size
    x_train = task.x_train
    rs = functools.partial(derive_seed, config.seed, "step", step)
    opts = dict(config.strategy_options)
    info: dict = {}

    if strategy.requires == "fixed_J_S":
        # X_samp = [train members; pool members] drawn over [labelled; pool]; candidates = its pool members.
        from mcal_utils.acquisition.deimos import deimos_sample

        samp = deimos_sample(len(labelled), len(pool), config.n_candidates, random_state=rs("samp"))
        train_pos = np.asarray(samp.train_indices, np.int64)
        pool_pos = np.asarray(samp.pool_indices, np.int64)
        x_samp = np.concatenate([x_train[labelled[train_pos]], x_train[pool[pool_pos]]])
        preds = mc.predict(model, x_samp, config.mc_samples, masks="fixed", random_state=rs("masks"))
        preds_J_S = preds.transpose(0, 1).contiguous()  # (J, S, C) probabilities or (J, S)
        candidates = np.arange(len(train_pos), len(x_samp), dtype=np.int64)
        batch = strategy.select(k, random_state=rs("select"), preds=preds_J_S, tau_inv=config.tau_inv,
                                candidates=candidates, **opts)
        picked = np.asarray(batch.indices, np.int64)
        if picked.size != k or np.unique(picked).size != k or not np.all(np.isin(picked, candidates)):
            raise ValueError(f"strategy {config.strategy!r} returned invalid picks {picked.tolist()[:10]} "
                             f"(expected {k} distinct pool members of X_samp, rows {len(train_pos)}.."
                             f"{len(x_samp) - 1})")
        info["n_candidates"] = int(len(pool_pos))
        info["n_samp"] = int(len(x_samp))
        return pool[pool_pos[picked - len(train_pos)]], np.asarray(batch.scores, np.float64), info

    # candidates: the pool or a seeded subsample of it (positions into `pool`)
    if config.n_candidates is not None and config.n_candidates < len(pool):
        cand_pos = _choice_sorted(np.random.default_rng(rs("candidates")),
                                  np.arange(len(pool), dtype=np.int64), config.n_candidates)
    else:
        cand_pos = np.arange(len(pool), dtype=np.int64)
    info["n_candidates"] = int(len(cand_pos))
    x_cand = x_train[pool[cand_pos]]
    req = strategy.requires
    if req == "nothing":
        arrays = dict(n=len(cand_pos))
    elif req == "probs_N_C":
        arrays = dict(probs_N_C=mc.deterministic(model, x_cand))
    elif req == "probs_N_T_C":
        arrays = dict(probs_N_T_C=mc.predict(model, x_cand, config.mc_samples, masks="fresh",
                                             random_state=rs("masks")))
    elif req == "log_probs_N_K_C":
        arrays = dict(log_probs_N_K_C=mc.predict(model, x_cand, config.mc_samples, masks="fixed",
                                                 random_state=rs("masks"), log_probs=True))
    elif req == "preds_N_T":
        arrays = dict(preds_N_T=mc.predict(model, x_cand, config.mc_samples, masks="fresh",
                                           random_state=rs("masks")))
    elif req == "features":
        feats = _features(model, np.concatenate([x_train[labelled], x_cand]))
        mask = np.zeros(len(feats), dtype=bool)
        mask[:len(labelled)] = True
        arrays = dict(features=feats, labelled_mask=mask)
    else:  # pragma: no cover - get_strategy refuses these
        raise ValueError(f"unknown requires {req!r}")
    batch = strategy.select(k, random_state=rs("select"), **arrays, **opts)
    picks = np.asarray(batch.indices, np.int64)
    if req == "features":  # indices into [labelled; candidates]
        if np.any(picks < len(labelled)):
            raise ValueError(f"strategy {config.strategy!r} picked an already labelled point")
        picks = picks - len(labelled)
    if picks.size != k or np.unique(picks).size != k or picks.min(initial=0) < 0 or \
            picks.max(initial=-1) >= len(cand_pos):
        raise ValueError(f"strategy {config.strategy!r} returned invalid picks {picks.tolist()[:10]}... "
                         f"(expected {k} distinct candidate positions < {len(cand_pos)})")
    return pool[cand_pos[picks]], np.asarray(batch.scores, np.float64), info


def _run_step(config: ExperimentConfig, strategy, task, split: Split, labelled: np.ndarray,
              pool: np.ndarray, step: int, train_config) -> dict:
    from mcal_utils.training import evaluate, fit

    rs = functools.partial(derive_seed, config.seed, "step", step)
    t_step = time.perf_counter()
    if split.val_from_task:
        x_val, y_val = task.x_val[split.val], task.y_val[split.val]
    else:
        x_val, y_val = task.x_train[split.val], task.y_train[split.val]
    if len(split.val) == 0:
        x_val = y_val = None

    # torch.manual_seed also reseeds every CUDA device: fork (and so restore) their RNGs too
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(rs("global"))  # anything that still uses the global RNG is seeded too
        t0 = time.perf_counter()
        model = _build_model(config, rs("init"))
        result = fit(model, task.x_train[labelled], task.y_train[labelled], x_val=x_val, y_val=y_val,
                     config=train_config, random_state=rs("fit"))
        model = result.model
        t_train = time.perf_counter() - t0

        t0 = time.perf_counter()
        metrics = evaluate(model, task.x_test[split.test], task.y_test[split.test],
                           mc_samples=config.eval_mc_samples, random_state=rs("eval"))
        t_eval = time.perf_counter() - t0

        acquired, scores, info = np.zeros(0, np.int64), np.zeros(0), {}
        t0 = time.perf_counter()
        if step < config.n_steps:
            acquired, scores, info = _select(config, strategy, model, task, labelled, pool, step)
        t_select = time.perf_counter() - t0

    rates = model.dropout_rates() if callable(getattr(model, "dropout_rates", None)) else []
    metrics = {k: float(v) for k, v in metrics.items() if k in ("accuracy", "mse", "rmse")}
    return dict(
        step=step,
        budget=int(len(labelled)),
        metrics=metrics,
        acquired=[int(i) for i in acquired],
        scores=[float(s) for s in scores],
        dropout_rates=[float(p) for p in rates],
        best_epoch=int(result.best_epoch),
        best_val_metric=None if result.best_val_metric is None else float(result.best_val_metric),
        n_pool=int(len(pool)),
        **info,
        timings=dict(train_s=t_train, eval_s=t_eval, select_s=t_select, step_s=time.perf_counter() - t_step),
    )


# ---------------------------------------------------------------------------
# one run
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RunResult:
    """``run_dir``, ``config``, ``records`` (every step's record), ``resumed_from`` (the number of
    steps found on disk when the call started), ``seconds`` (wall time of this call)."""

    run_dir: Path
    config: ExperimentConfig
    records: list = field(repr=False)
    resumed_from: int
    seconds: float


def run_experiment(config: ExperimentConfig, run_dir, *, data_dir=None, progress: bool | None = None,
                   torch_threads: int | None = None) -> RunResult:
    """Run (or resume) ``config`` in ``run_dir``; returns every record.

    Each record (``steps/step_XXXX.json``): ``step``, ``budget`` (labelled points the model was
    trained on), ``metrics`` (``accuracy`` or ``mse``/``rmse`` on the test set), ``acquired``
    (train indices picked at this step, in pick order; empty at the last step), ``scores`` (their
    scores), ``dropout_rates`` (learned p per layer, Concrete Dropout), ``best_epoch``,
    ``best_val_metric``, ``n_pool``, ``n_candidates``, ``timings`` (seconds: ``train_s``,
    ``eval_s``, ``select_s``, ``step_s``).

    torch_threads: ``torch.set_num_threads`` for this process (None: leave it).
    """
    if not isinstance(config, ExperimentConfig):
        raise ValueError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    t_start = time.perf_counter()
    if torch_threads is not None:
        torch.set_num_threads(int(torch_threads))
    _check_static(config)
    task = load_task_for(config, data_dir)
    split = validate(config, data_dir, task=task)
    strategy = get_strategy(config.strategy)
    train_config = config.train_config()

    run_dir = Path(run_dir)
    _prepare_run_dir(run_dir, config)
    split_path = run_dir / "split.json"
    split_info = dict(initial=split.initial.tolist(), n_pool=int(len(split.pool)), n_val=int(len(split.val)),
                      val_from_task=split.val_from_task, n_test=int(len(split.test)))
    if split_path.exists():
        with open(split_path, encoding="utf-8") as fh:
            if json.load(fh) != split_info:
                raise ValueError(f"{split_path} does not match the split of this config (data changed?)")
    else:
        _write_json(split_path, split_info)
    for stale in (run_dir / "steps").glob(".step_*.tmp"):  # left by a killed writer
        stale.unlink(missing_ok=True)

    records = read_records(run_dir)
    if len(records) > config.n_steps + 1:
        raise ValueError(f"{run_dir} holds {len(records)} steps, more than n_steps + 1 = {config.n_steps + 1}")
    resumed_from = len(records)
    labelled = split.initial.copy()
    pool = split.pool.copy()
    for rec in records:
        acquired = np.asarray(rec["acquired"], dtype=np.int64)
        if rec["budget"] != len(labelled) or not np.all(np.isin(acquired, pool)):
            raise ValueError(f"{run_dir}: record of step {rec['step']} does not continue the split "
                             f"(budget {rec['budget']} vs {len(labelled)} labelled)")
        labelled = np.concatenate([labelled, acquired])
        pool = np.setdiff1d(pool, acquired)

    from tqdm.auto import tqdm

    bar = tqdm(total=config.n_steps + 1, initial=resumed_from, desc=f"{config.method} seed {config.seed}",
               unit="step", disable=not _progress_enabled(progress), leave=False)
    try:
        for step in range(resumed_from, config.n_steps + 1):
            with _STEP_LOCK:
                rec = _run_step(config, strategy, task, split, labelled, pool, step, train_config)
            _write_json(run_dir / "steps" / f"step_{step:04d}.json", rec)
            records.append(rec)
            acquired = np.asarray(rec["acquired"], dtype=np.int64)
            labelled = np.concatenate([labelled, acquired])
            pool = np.setdiff1d(pool, acquired)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in rec["metrics"].items()})
    finally:
        bar.close()
    return RunResult(run_dir=run_dir, config=config, records=records, resumed_from=resumed_from,
                     seconds=time.perf_counter() - t_start)
