"""How close is DEIMOS's greedy batch to the best batch? (DEIMOS, Nagpal & Knowles, Appendix A)

The expected improvement of labelling a set ``S`` of points whose joint predictive
covariance is ``V`` (n, n) is the drop of the trace of ``V`` after conditioning on
``S`` (c = 1 output per point)::

    f(S) = tr(V[:, S] V[S, S]^{-1} V[S, :]) = tr(V[S, S]^{-1} (V V)[S, S]).

DEIMOS builds a batch greedily: score ``||V[:, i]||^2 / V[i, i]`` (= f({i})), take the
argmax, condition ``V <- V - V[:, i] V[i, :] / V[i, i]`` (Schur complement), repeat.
By the chain rule of conditioning, the sum of the greedy gains is f(greedy set).
:func:`exhaustive_best` evaluates f on every b-subset (vectorised: batched Cholesky
factorisations of (k, b, b) stacks, in bounded chunks, or -- much faster -- the chain
rule over the subset tree, vectorised over prefixes) and :func:`simulate` repeats the
paper's random experiment.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from . import checks, references

__all__ = [
    "GreedyResult",
    "ExhaustiveResult",
    "SimulationResult",
    "appendix_a_example",
    "check_covariance",
    "trace_reduction",
    "greedy_trace_reduction",
    "exhaustive_best",
    "subset_values",
    "simulation_covariance",
    "simulate",
    "simulation_trial_covariance",
    "PAPER_CONFIGS",
    "PAPER_RESULTS",
]

#: (n_points, batch) x n_samples: the 9 configurations of the DEIMOS authors' repository
#: (BatchOptimality/EmpiricalOptimalityRatios/); the paper's Figure A.1 shows 6 of them (3 and 50 samples).
PAPER_CONFIGS: tuple[tuple[int, int, int], ...] = tuple(
    (n, b, s) for (n, b) in ((200, 2), (30, 5), (20, 10)) for s in (2, 3, 50)
)

#: (mean ratio, min ratio) of the 200 trials of each configuration, computed from the DEIMOS
#: authors' repository arrays BatchOptimality/EmpiricalOptimalityRatios/BS{b}Samp{s}OptRatios.npy
#: (not printed in the paper, whose Figure A.1 shows histograms): ``references.DEIMOS_APPENDIX_A_RATIOS``.
#: The 20/10/3 mean is 1.0 to six decimals (Figure A.1(e): all ratios in [0.99999, 1]).
PAPER_RESULTS: dict[tuple[int, int, int], tuple[float, float]] = references.values(references.DEIMOS_APPENDIX_A_RATIOS)


def appendix_a_example() -> np.ndarray:
    """The 3 x 3 covariance of DEIMOS Appendix A where greedy (b = 2) is ~86 % of optimal."""
    return np.array([[9.0, 3.0, 2.0], [3.0, 2.0, 3.0], [2.0, 3.0, 9.0]])


def check_covariance(V) -> np.ndarray:
    """``V`` as a float64 (n, n) symmetric positive-definite matrix, else ``ValueError``."""
    V_n_n = np.array(V, dtype=np.float64)  # copy: callers' arrays are never modified
    if V_n_n.ndim != 2 or V_n_n.shape[0] != V_n_n.shape[1] or V_n_n.shape[0] < 1:
        raise ValueError(f"V must be a square (n, n) matrix; got shape {V_n_n.shape}")
    if not np.all(np.isfinite(V_n_n)):
        raise ValueError("V must be finite")
    scale = max(1.0, float(np.max(np.abs(V_n_n))))
    if not np.allclose(V_n_n, V_n_n.T, rtol=0.0, atol=1e-10 * scale):
        raise ValueError("V must be symmetric (a covariance matrix)")
    V_n_n = (V_n_n + V_n_n.T) / 2.0
    try:
        np.linalg.cholesky(V_n_n)
    except np.linalg.LinAlgError:
        raise ValueError("V must be positive definite (add tau^-1 I to a sample covariance)") from None
    return V_n_n


def _check_batch(b, n: int) -> int:
    return checks.check_int(b, "batch size b", ge=1, le=n)


def trace_reduction(V, S) -> float:
    """f(S) = tr(V[:, S] V[S, S]^{-1} V[S, :]) for one subset ``S`` (Cholesky, float64)."""
    V_n_n = check_covariance(V)
    S_b = np.asarray(S, dtype=np.int64)
    if S_b.ndim != 1 or S_b.size < 1 or np.unique(S_b).size != S_b.size:
        raise ValueError(f"S must be a non-empty 1-D set of distinct indices; got {S}")
    if S_b.min() < 0 or S_b.max() >= V_n_n.shape[0]:
        raise ValueError(f"S must index rows of V (0 .. {V_n_n.shape[0] - 1}); got {S}")
    L_b_b = np.linalg.cholesky(V_n_n[np.ix_(S_b, S_b)])
    Z_b_n = np.linalg.solve(L_b_b, V_n_n[S_b, :])  # L^{-1} V[S, :]
    return float(np.sum(Z_b_n * Z_b_n))


@dataclass(frozen=True)
class GreedyResult:
    """Greedy picks in order, the gain of each pick, and their sum f(picks)."""

    indices: np.ndarray  # (b,) int64, pick order
    gains: np.ndarray  # (b,) float64, trace reduction of each pick given the earlier ones
    total: float


def greedy_trace_reduction(V, b: int) -> GreedyResult:
    """DEIMOS's greedy batch on a dense covariance ``V`` (n, n), c = 1 output per point.

    Score of i = ||V[:, i]||^2 / V[i, i] on the conditioned V; pick the argmax (ties:
    lowest index) among points not yet picked; condition with the Schur complement
    ``V <- V - V[:, i] V[i, :] / V[i, i]``; repeat ``b`` times.
    """
    V_n_n = check_covariance(V)
    n = V_n_n.shape[0]
    b = _check_batch(b, n)
    available_n = np.ones(n, dtype=bool)
    picks, gains = [], []
    for _ in range(b):
        diag_n = np.diag(V_n_n)
        scores_n = np.full(n, -np.inf)
        # picked points have V[i, i] == 0 after conditioning: never divide there
        scores_n[available_n] = np.sum(V_n_n[:, available_n] ** 2, axis=0) / diag_n[available_n]
        i = int(np.argmax(scores_n))
        picks.append(i)
        gains.append(float(scores_n[i]))
        v_n = V_n_n[:, i].copy()
        V_n_n = V_n_n - np.outer(v_n, v_n) / v_n[i]
        V_n_n[i, :] = 0.0
        V_n_n[:, i] = 0.0
        available_n[i] = False
    gains_b = np.array(gains)
    return GreedyResult(indices=np.array(picks, dtype=np.int64), gains=gains_b, total=float(gains_b.sum()))


@functools.lru_cache(maxsize=8)
def _subsets(n: int, b: int) -> np.ndarray:
    """All b-subsets of range(n) in lexicographic order, (n choose b, b) read-only int64."""
    count = math.comb(n, b)
    S_k_b = np.fromiter(combinations(range(n), b), dtype=np.dtype((np.int64, b)), count=count)
    S_k_b = S_k_b.reshape(count, b)
    S_k_b.setflags(write=False)
    return S_k_b


#: exhaustive search refuses more subsets than this (it would take minutes to hours).
MAX_SUBSETS = 5_000_000


@dataclass(frozen=True)
class ExhaustiveResult:
    """Best subset (sorted), its trace reduction, and how many subsets were searched."""

    indices: np.ndarray  # (b,) int64, ascending
    total: float
    n_subsets: int


def _subset_values(V_n_n: np.ndarray, W_n_n: np.ndarray, S_k_b: np.ndarray) -> np.ndarray:
    """f(S) = tr(V[S,S]^{-1} W[S,S]) for a (k, b) stack of subsets, W = V V."""
    A_k_b_b = V_n_n[S_k_b[:, :, None], S_k_b[:, None, :]]
    W_k_b_b = W_n_n[S_k_b[:, :, None], S_k_b[:, None, :]]
    L_k_b_b = np.linalg.cholesky(A_k_b_b)
    # tr(A^{-1} W) = tr(L^{-1} W L^{-T}); M = L^{-1} W, then L^{-1} M^T = L^{-1} W L^{-T} (W symmetric)
    M_k_b_b = np.linalg.solve(L_k_b_b, W_k_b_b)
    N_k_b_b = np.linalg.solve(L_k_b_b, np.swapaxes(M_k_b_b, 1, 2))
    return np.trace(N_k_b_b, axis1=1, axis2=2)


def _tree_best(V_n_n: np.ndarray, b: int) -> tuple[float, np.ndarray]:
    """Best b-subset by enumerating the lexicographic subset tree level by level.

    A node is a prefix P (ascending, last element l); it stores, over its band
    (l, n-1] of still-allowed indices, the conditioned covariance V_P and
    T_P = (V_P V_P) restricted to the band, and f(P). Adding q (chain rule):
    gain = T_P[q, q] / V_P[q, q]; V_P' = V_P - v v^T / v_q and
    T_P' = T_P - (v t^T + t v^T) / v_q + v v^T T_P[q, q] / v_q^2 with v = V_P[:, q],
    t = T_P[:, q] (since V_P v = (V_P V_P)[:, q]); with a = v / v_q and
    u = t - T_P[q, q] a / 2 this is T_P' = T_P - a u^T - u a^T. Nodes with the same last element
    share a band width and are stacked; the last two picks are scored in one
    vectorised pair table per stack, so no (b x b) factorisation is needed at all.
    """
    n = V_n_n.shape[0]
    W_n_n = V_n_n @ V_n_n
    if b == 1:
        gains_n = np.diag(W_n_n) / np.diag(V_n_n)
        i = int(np.argmax(gains_n))
        return float(gains_n[i]), np.array([i], dtype=np.int64)
    # last element -> (V_k_w_w, T_k_w_w, value_k, path_k_d), band width w = n - 1 - last
    groups = {-1: (V_n_n[None], W_n_n[None], np.zeros(1), np.zeros((1, 0), dtype=np.int64))}
    for d in range(b - 2):
        # children of every stack, grouped by their last element q; preallocated per q
        plan: dict[int, list[tuple[int, int]]] = {}
        for last in groups:
            for p in range(n - 1 - last):
                q = last + 1 + p
                if q > n - b + d:  # no room left for the b - d - 1 picks after q
                    break
                plan.setdefault(q, []).append((last, p))
        children = {}
        for q, parents in plan.items():
            m = n - 1 - q
            k_total = sum(groups[last][0].shape[0] for last, _ in parents)
            Vc = np.empty((k_total, m, m))
            Tc = np.empty((k_total, m, m))
            value_c = np.empty(k_total)
            path_c = np.empty((k_total, d + 1), dtype=np.int64)
            row = 0
            for last, p in parents:
                V_k, T_k, value_k, path_k = groups[last]
                rows = slice(row, row + V_k.shape[0])
                vqq_k, tqq_k = V_k[:, p, p], T_k[:, p, p]
                v_k_m = V_k[:, p, p + 1 :]
                a_k_m = v_k_m / vqq_k[:, None]
                u_k_m = T_k[:, p, p + 1 :] - (0.5 * tqq_k)[:, None] * a_k_m
                # V' = V - v a^T;  T' = T - a u^T - u a^T  (u = t - T_qq a / 2)
                np.subtract(V_k[:, p + 1 :, p + 1 :], v_k_m[:, :, None] * a_k_m[:, None, :], out=Vc[rows])
                au = a_k_m[:, :, None] * u_k_m[:, None, :]
                np.subtract(T_k[:, p + 1 :, p + 1 :], au, out=Tc[rows])
                Tc[rows] -= np.swapaxes(au, 1, 2)
                value_c[rows] = value_k + tqq_k / vqq_k
                path_c[rows, :d] = path_k
                path_c[rows, d] = q
                row = rows.stop
            children[q] = (Vc, Tc, value_c, path_c)
        groups = children
    best_value, best_S = -np.inf, np.zeros(0, dtype=np.int64)
    for last, (V_k, T_k, value_k, path_k) in groups.items():
        w = n - 1 - last
        if w < 2:
            continue
        I_m, J_m = np.triu_indices(w, 1)  # pick I first, then J > I
        Vd_k_w = np.diagonal(V_k, axis1=1, axis2=2)
        Td_k_w = np.diagonal(T_k, axis1=1, axis2=2)
        vi_k_m, ti_k_m = Vd_k_w[:, I_m], Td_k_w[:, I_m]
        r_k_m = V_k[:, I_m, J_m] / vi_k_m
        total_k_m = (
            value_k[:, None]
            + ti_k_m / vi_k_m
            + (Td_k_w[:, J_m] - 2.0 * T_k[:, I_m, J_m] * r_k_m + r_k_m * r_k_m * ti_k_m)
            / (Vd_k_w[:, J_m] - V_k[:, I_m, J_m] * r_k_m)
        )
        j = int(np.argmax(total_k_m))
        if total_k_m.flat[j] > best_value:
            k, m = np.unravel_index(j, total_k_m.shape)
            best_value = float(total_k_m.flat[j])
            best_S = np.concatenate([path_k[k], [last + 1 + I_m[m], last + 1 + J_m[m]]])
    return best_value, np.sort(best_S).astype(np.int64)


def subset_values(V, S_k_b, *, chunk_size: int = 32768) -> np.ndarray:
    """f(S) for a stack of subsets ``S_k_b`` (k, b): batched Cholesky, the reference path."""
    V_n_n = check_covariance(V)
    S_k_b = np.asarray(S_k_b, dtype=np.int64)
    if S_k_b.ndim != 2 or S_k_b.shape[1] < 1:
        raise ValueError(f"S_k_b must have shape (k, b) with b >= 1; got {S_k_b.shape}")
    if S_k_b.size and (S_k_b.min() < 0 or S_k_b.max() >= V_n_n.shape[0]):
        raise ValueError(f"subsets must index rows of V (0 .. {V_n_n.shape[0] - 1})")
    W_n_n = V_n_n @ V_n_n
    out_k = np.empty(S_k_b.shape[0])
    for start in range(0, S_k_b.shape[0], chunk_size):
        out_k[start : start + chunk_size] = _subset_values(V_n_n, W_n_n, S_k_b[start : start + chunk_size])
    return out_k


def exhaustive_best(V, b: int, *, method: str = "tree", chunk_size: int = 32768) -> ExhaustiveResult:
    """max over all b-subsets S of f(S) = tr(V[:, S] V[S, S]^{-1} V[S, :]), in float64.

    ``method="tree"`` (default, ~10-20x faster): chain rule over the lexicographic
    subset tree, vectorised over all prefixes with the same last element
    (:func:`_tree_best`). ``method="cholesky"``: every subset on its own,
    f(S) = tr(V[S, S]^{-1} (V V)[S, S]) from batched Cholesky factorisations and
    triangular solves on (chunk_size, b, b) stacks (memory ~ 4 chunk_size b^2 8 bytes);
    ties: first subset in lexicographic order. Both agree to rounding.
    """
    V_n_n = check_covariance(V)
    n = V_n_n.shape[0]
    b = _check_batch(b, n)
    checks.check_choice(method, "method", ("tree", "cholesky"))
    chunk_size = checks.check_int(chunk_size, "chunk_size", ge=1)
    count = math.comb(n, b)
    if count > MAX_SUBSETS:
        raise ValueError(f"{n} choose {b} = {count} subsets exceeds MAX_SUBSETS = {MAX_SUBSETS}")
    if method == "tree":
        value, S_b = _tree_best(V_n_n, b)
        return ExhaustiveResult(indices=S_b, total=value, n_subsets=count)
    W_n_n = V_n_n @ V_n_n
    S_k_b = _subsets(n, b)
    best_value, best_row = -np.inf, -1
    for start in range(0, count, chunk_size):
        values_k = _subset_values(V_n_n, W_n_n, S_k_b[start : start + chunk_size])
        j = int(np.argmax(values_k))
        if values_k[j] > best_value:
            best_value, best_row = float(values_k[j]), start + j
    return ExhaustiveResult(indices=S_k_b[best_row].copy(), total=best_value, n_subsets=count)


def simulation_covariance(preds_n_s) -> np.ndarray:
    """V = cov + 0.1 * mean(diag(cov)) * I from predictions (n_points, n_samples).

    ``cov`` is the sample covariance between points over the samples (divisor
    n_samples - 1, as ``numpy.cov`` and DEIMOS's V). The choice of divisor does not
    change any ratio: it scales cov and tau^-1 = 0.1 * mean(diag) alike, and f(S) is
    homogeneous of degree 1 in V.
    """
    P_n_s = np.asarray(preds_n_s, dtype=np.float64)
    if P_n_s.ndim != 2 or P_n_s.shape[1] < 2 or P_n_s.shape[0] < 1:
        raise ValueError(f"preds must have shape (n_points, n_samples >= 2); got {P_n_s.shape}")
    C_n_s = P_n_s - P_n_s.mean(axis=1, keepdims=True)
    cov_n_n = C_n_s @ C_n_s.T / (P_n_s.shape[1] - 1)
    tau_inv = 0.1 * float(np.mean(np.diag(cov_n_n)))
    return cov_n_n + tau_inv * np.eye(P_n_s.shape[0])


@dataclass(frozen=True)
class SimulationResult:
    """Per-trial greedy / optimal trace reductions of one Appendix-A configuration."""

    n_points: int
    batch: int
    n_samples: int
    greedy_T: np.ndarray  # f(greedy set)
    optimal_T: np.ndarray  # max_S f(S)
    ratios_T: np.ndarray  # greedy / optimal, in (0, 1]
    greedy_is_optimal_T: np.ndarray  # bool: the greedy set is the best set (within rounding)

    @property
    def n_trials(self) -> int:
        return int(self.ratios_T.shape[0])


def simulate(
    n_points: int, batch: int, n_samples: int, n_trials: int, random_state=0, *, progress: bool | None = False
) -> SimulationResult:
    """DEIMOS Appendix A: greedy vs exhaustive best batch on random covariances.

    ``random_state``: int seed or ``numpy.random.Generator``; ``progress``: tqdm bar
    (``None``: only on a terminal).

    Trial t takes the t-th draw ``rng.standard_normal((n_points, n_samples))`` of the
    generator (so any trial can be rebuilt) as predictions and builds
    V = cov + 0.1 mean(diag(cov)) I (:func:`simulation_covariance`). When the greedy
    set is the best set the ratio is exactly 1; otherwise the optimum is
    max(best, greedy) so that ratio <= 1 holds despite rounding (a greedy set that
    ties the optimum within rounding counts as optimal).
    """
    for name, value, low in (
        ("n_points", n_points, 1),
        ("batch", batch, 1),
        ("n_samples", n_samples, 2),
        ("n_trials", n_trials, 1),
    ):
        checks.check_int(value, name, ge=low)
    _check_batch(batch, n_points)
    if math.comb(n_points, batch) > MAX_SUBSETS:
        raise ValueError(f"{n_points} choose {batch} subsets exceeds MAX_SUBSETS = {MAX_SUBSETS}")
    rng = checks.check_random_state(random_state)
    with _single_threaded_blas():
        return _simulate(n_points, batch, n_samples, n_trials, rng, progress)


def simulation_trial_covariance(n_points: int, n_samples: int, trial: int, random_state) -> np.ndarray:
    """The covariance of trial ``trial`` of :func:`simulate` rebuilt from the same ``random_state``.

    Trial t uses the t-th draw ``rng.standard_normal((n_points, n_samples))`` of the generator, so a
    fresh generator from the same seed replays the draws up to it.
    """
    trial = checks.check_int(trial, "trial", ge=0)
    rng = checks.check_random_state(random_state)
    for _ in range(trial + 1):
        preds_n_s = rng.standard_normal((n_points, n_samples))
    return simulation_covariance(preds_n_s)


def _single_threaded_blas():
    """BLAS on one thread: the matrices here are tiny and extra threads only contend
    (on a busy 2-core machine, 2 OpenBLAS threads made 200 x 200 products 10-50x slower)."""
    return threadpool_limits(limits=1, user_api="blas")


def _simulate(n_points, batch, n_samples, n_trials, rng, progress) -> SimulationResult:
    greedy_T = np.empty(n_trials)
    optimal_T = np.empty(n_trials)
    same_T = np.empty(n_trials, dtype=bool)
    disable = None if progress is None else not progress  # None: tqdm's own tty detection
    for t in tqdm(range(n_trials), desc=f"{n_points}/{batch}/{n_samples}", disable=disable):
        V_n_n = simulation_covariance(rng.standard_normal((n_points, n_samples)))
        g = greedy_trace_reduction(V_n_n, batch)
        best = exhaustive_best(V_n_n, batch)
        same = np.array_equal(np.sort(g.indices), best.indices)
        greedy_T[t] = g.total
        optimal_T[t] = g.total if same else max(best.total, g.total)
        same_T[t] = same or g.total >= best.total
    return SimulationResult(
        n_points=int(n_points),
        batch=int(batch),
        n_samples=int(n_samples),
        greedy_T=greedy_T,
        optimal_T=optimal_T,
        ratios_T=greedy_T / optimal_T,
        greedy_is_optimal_T=same_T,
    )
