"""BatchBALD and BALD: :mod:`mcal_utils.acquisition.bald` against the peer libraries.

* BatchBALD, ours (numpy, float64) vs ``batchbald_redux.batchbald.get_batchbald_batch``
  (torch, float64) on identical log-probabilities, N = 1000, K = 20, C = 10:
  batch 5 with M = 10^4 configurations (both exact throughout: C^4 <= M) and
  batch 10 with the same M (both sampled from the 6th pick on, with different
  random configurations). Target: identical picks and scores where both are exact.
* BALD, ours vs ``baal.active.heuristics.BALD`` on N = 10000, T = 50, C = 10
  (baal takes (N, C, T)). Target: scores equal to 1e-5.

``ratio`` = baseline_s / ours_s (> 1: ours is faster). Random logits from a fixed
seed; CPU, torch with 1 thread (batchbald_redux's many small matmuls run fastest
there), numpy with its default BLAS threads.

    python benchmarks/bench_batchbald.py [--quick]
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
_PEERS = Path(sys.prefix) / "peers"  # batchbald_redux is installed --no-deps here
if _PEERS.is_dir() and str(_PEERS) not in sys.path:
    sys.path.append(str(_PEERS))
os.environ.setdefault("TQDM_DISABLE", "1")  # batchbald_redux's nested progress bars

import torch  # noqa: E402

from mcal_utils.acquisition.bald import bald, batchbald  # noqa: E402


def _log_probs(N: int, K: int, C: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(N, K, C)) * 2.0
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def _median(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _batchbald_rows(quick: bool) -> list[dict]:
    try:
        from batchbald_redux.batchbald import get_batchbald_batch
    except ImportError as err:
        return [dict(benchmark="batchbald", case="BatchBALD", ours_s=None, baseline="batchbald_redux",
                     baseline_s=None, ratio=None, target="same picks", met=False,
                     notes=f"batchbald_redux not importable: {err}")]
    N, K, C = (300, 20, 10) if quick else (1000, 20, 10)
    repeats = 1 if quick else 3
    baseline_repeats = 1 if quick else 2
    M = 10_000
    lp = _log_probs(N, K, C)
    lp_t = torch.from_numpy(lp)
    rows = []
    for b in (5, 10):
        ours_s, ours = _median(lambda: batchbald(lp, b, num_samples=M, random_state=0), repeats)
        theirs_s, theirs = _median(lambda: get_batchbald_batch(lp_t, b, M, dtype=torch.double), baseline_repeats)
        n_exact = next(i for i in range(b + 1) if i == b or C**i > M)  # picks made with exact joint entropies
        same = ours.indices[:n_exact].tolist() == list(theirs.indices[:n_exact])
        err = float(np.max(np.abs(ours.scores[:n_exact] - np.asarray(theirs.scores[:n_exact]))))
        overlap = len(set(ours.indices.tolist()) & set(theirs.indices))
        if n_exact == b:
            target, met = "same picks, |score diff| < 1e-9; ratio >= 1", same and err < 1e-9 and theirs_s >= ours_s
            detail = f"both exact; picks identical: {same}; max |score diff| {err:.1e} nats"
        else:
            rel = float(np.max(np.abs(ours.scores[n_exact:] / np.asarray(theirs.scores[n_exact:]) - 1)))
            target, met = "same exact picks; ratio >= 1", same and theirs_s >= ours_s
            detail = (f"exact for the first {n_exact} picks (identical: {same}, max |score diff| {err:.1e}); "
                      f"sampled after (different random configurations): {overlap}/{b} picks shared, "
                      f"sampled scores within {100 * rel:.1f} %")
        rows.append(dict(
            benchmark="batchbald", case=f"BatchBALD N={N} K={K} C={C} batch={b} M={M}", ours_s=ours_s,
            baseline="batchbald_redux.get_batchbald_batch (float64)", baseline_s=theirs_s,
            ratio=theirs_s / ours_s, target=target, met=bool(met),
            notes=(f"{detail}; median of {repeats} (ours) / {baseline_repeats} (theirs) runs; theirs includes "
                   "toma's gc.collect() per chunk; shared CPU, timings noisy"),
        ))
    return rows


def _bald_rows(quick: bool) -> list[dict]:
    try:
        from baal.active.heuristics import BALD
    except ImportError as err:
        return [dict(benchmark="batchbald", case="BALD", ours_s=None, baseline="baal", baseline_s=None,
                     ratio=None, target="scores equal", met=False, notes=f"baal not importable: {err}")]
    N, T, C = (2000, 50, 10) if quick else (10_000, 50, 10)
    repeats = 1 if quick else 5
    probs_N_T_C = np.exp(_log_probs(N, T, C, seed=1))
    probs_N_C_T = np.ascontiguousarray(probs_N_T_C.transpose(0, 2, 1))
    heuristic = BALD()
    ours_s, ours = _median(lambda: bald(probs_N_T_C), repeats)
    theirs_s, theirs = _median(lambda: heuristic.get_uncertainties(probs_N_C_T), repeats)
    err = float(np.max(np.abs(ours - theirs)))
    return [dict(
        benchmark="batchbald", case=f"BALD N={N} T={T} C={C}", ours_s=ours_s,
        baseline="baal.active.heuristics.BALD (N, C, T)", baseline_s=theirs_s, ratio=theirs_s / ours_s,
        target="max |score diff| < 1e-5", met=err < 1e-5,
        notes=f"max |score diff| {err:.1e} nats; ours validates the input (sums, finiteness); median of {repeats}",
    )]


def run(quick: bool = False) -> list[dict]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _batchbald_rows(quick) + _bald_rows(quick)
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    """Standalone run: the table of ``run_all.py --only batchbald`` (``--quick`` passes through)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run_all

    argv = sys.argv[1:] if argv is None else argv
    return run_all.main(["--only", "batchbald", *argv])


if __name__ == "__main__":
    raise SystemExit(main())
