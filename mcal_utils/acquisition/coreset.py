"""Core-set selection on penultimate-layer features (Sener & Savarese 2018).

Both variants keep the labelled points as fixed centres and add k new centres
from the unlabelled points; distances are Euclidean.

* ``kcenter_greedy``: Algorithm 1 of the paper (farthest-first traversal, a
  2-approximation of the k-center radius). Distances to the nearest centre are
  kept in one ``(N,)`` vector and updated per pick; the initial distances to the
  labelled centres are computed in chunks, so N = 60000 x 128 features fit in a
  few tens of MB.
* ``kcenter_robust``: the robust k-center of Sener & Savarese, section 4.2 and
  eq. 5 (at most ``n_outliers`` points may lie farther than the radius), solved
  exactly with scipy's HiGHS MILP (no commercial solver) in the scheme of the
  paper: the greedy solution bounds the radius from above, a bisection over the
  sorted pairwise distances asks one feasibility question per step. Sized for
  DEIMOS's setting (2500 candidates + the labelled set, every step):

  - bounds: the greedy traversal run for ``k + n_outliers + 1`` picks gives both
    the upper bound (the robust radius of its first ``k`` picks) and a lower
    bound ``d'/2`` (``d'`` = the distance of the last pick to every earlier
    centre: of those ``k + n_outliers + 1`` mutually ``>= d'``-apart points, at
    least ``k + 1`` are covered, so two share a new centre or one is within
    ``d'`` of a labelled one), so only distances in ``[d'/2, greedy]`` are searched;
  - each feasibility question runs on the sparsified covering graph: only the
    points farther than ``delta`` from every labelled centre are rows, only
    unlabelled points that cover one of them are columns; a greedy max-coverage
    cover answers "feasible" without a MILP when it can, otherwise the compact
    MIP (binaries ``u_j`` centre, ``z_i`` outlier: ``sum_{j: d_ij <= delta} u_j
    + z_i >= 1``, ``sum z <= n_outliers``, ``sum u <= k``) decides;
  - a feasible answer moves the upper end to the radius the solution actually
    attains (often several bisection steps at once).

  ``time_limit`` bounds the whole call. A MILP stopped by it counts as
  "not shown feasible": the answer is still a feasible solution no worse than
  greedy, and ``exact=False`` with ``lower_bound`` says how far from optimal it
  can be. The ``N x N`` distance matrix is float64 (N = 3000: 72 MB), so N is
  limited to ``max_points`` (default 5000).
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_matrix, hstack, identity
from tqdm.auto import tqdm

from mcal_utils.checks import check_finite, check_float, check_int, check_random_state

from .base import CandidateBatch, as_numpy, check_k

__all__ = [
    "kcenter_greedy",
    "kcenter_robust",
    "RobustKCenterBatch",
    "check_robust_size",
    "check_robust_problem",
    "nearest_centre_distance",
    "covering_radius",
]

#: Elements in one chunk of the (points x centres) distance block.
_CHUNK_ELEMENTS = 1 << 22


def _check_features(features_N_D, labelled_mask_N):
    x = as_numpy(features_N_D, "features_N_D")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"features_N_D must have shape (N, D) with N, D >= 1, got shape {x.shape}")
    check_finite(x, "features_N_D")
    m = np.asarray(labelled_mask_N.detach().cpu() if hasattr(labelled_mask_N, "detach") else labelled_mask_N)
    if m.shape != (x.shape[0],) or m.dtype != bool:
        raise ValueError(
            f"labelled_mask_N must be a boolean array of shape ({x.shape[0]},), got dtype {m.dtype} shape {m.shape}"
        )
    return x, m


def nearest_centre_distance(features_N_D, centre_mask_N) -> np.ndarray:
    """Euclidean distance of every point to its nearest centre, ``(N,)`` (inf without centres).

    Chunked ``|x|^2 + |c|^2 - 2 x.c`` in float64, clamped at 0.
    """
    x, m = _check_features(features_N_D, centre_mask_N)
    centres = x[m]
    out = np.full(x.shape[0], np.inf)
    if centres.shape[0] == 0:
        return out
    sq_x = np.einsum("nd,nd->n", x, x)
    sq_c = np.einsum("nd,nd->n", centres, centres)
    rows = max(1, _CHUNK_ELEMENTS // max(1, centres.shape[0]))
    cols = max(1, _CHUNK_ELEMENTS // rows)
    for r0 in range(0, x.shape[0], rows):
        r1 = min(x.shape[0], r0 + rows)
        best = np.full(r1 - r0, np.inf)
        for c0 in range(0, centres.shape[0], cols):
            c1 = min(centres.shape[0], c0 + cols)
            d2 = sq_x[r0:r1, None] + sq_c[None, c0:c1] - 2.0 * (x[r0:r1] @ centres[c0:c1].T)
            best = np.minimum(best, d2.min(axis=1))
        out[r0:r1] = np.sqrt(np.maximum(best, 0.0))
    out[m] = 0.0
    return out


def covering_radius(features_N_D, centre_mask_N, *, n_outliers: int = 0) -> float:
    """k-center radius: the largest nearest-centre distance after ignoring the
    ``n_outliers`` farthest points."""
    d = np.sort(nearest_centre_distance(features_N_D, centre_mask_N))[::-1]
    if not 0 <= n_outliers < d.shape[0]:
        raise ValueError(f"n_outliers must be in [0, {d.shape[0] - 1}], got {n_outliers}")
    return float(d[n_outliers])


def kcenter_greedy(
    features_N_D,
    labelled_mask_N,
    k: int,
    *,
    random_state=None,
    progress: bool | None = False,
) -> CandidateBatch:
    """Greedy k-center: repeatedly pick the unlabelled point farthest from every centre.

    ``features_N_D``: all points (labelled and unlabelled); ``labelled_mask_N``:
    bool, the fixed centres. Returns indices into ``range(N)`` (never labelled),
    in pick order; ``scores[i]`` = distance of pick i to its nearest centre when
    picked (ties -> lowest index). Without labelled points the first centre is
    drawn with ``random_state`` (required then) and scored ``inf``.
    """
    x, m = _check_features(features_N_D, labelled_mask_N)
    k = check_k(k, int((~m).sum()), "unlabelled points")
    dist_N = nearest_centre_distance(x, m)
    taken = m.copy()
    picks, scores = [], []
    for step in tqdm(range(k), desc="k-center", disable=not progress, leave=False):
        if step == 0 and not m.any():
            if random_state is None:
                raise ValueError("random_state is required to draw the first centre when no point is labelled")
            pool = np.flatnonzero(~taken)
            best = int(pool[check_random_state(random_state).integers(pool.size)])
        else:
            masked = np.where(taken, -np.inf, dist_N)
            best = int(np.argmax(masked))
        picks.append(best)
        scores.append(float(dist_N[best]))
        taken[best] = True
        diff = x - x[best]
        dist_N = np.minimum(dist_N, np.sqrt(np.einsum("nd,nd->n", diff, diff)))
    return CandidateBatch(indices=np.array(picks, dtype=np.int64), scores=np.array(scores, dtype=np.float64))


@dataclass(frozen=True)
class RobustKCenterBatch(CandidateBatch):
    """A ``CandidateBatch`` plus the solution's ``radius`` (largest distance to the
    nearest centre among non-outliers), ``outliers`` (indices farther than
    ``radius``, at most the budget), ``greedy_radius`` (the upper bound it started
    from), ``lower_bound`` (a proven lower bound on the optimal radius), ``exact``
    (True when the bisection ended with every question answered, i.e. ``radius``
    is optimal), ``n_solves`` (MILPs solved) and ``seconds`` (wall time)."""

    radius: float
    outliers: np.ndarray
    greedy_radius: float
    n_solves: int
    lower_bound: float = 0.0
    exact: bool = True
    seconds: float = 0.0


def _pairwise_distances(x_N_D: np.ndarray) -> np.ndarray:
    """Symmetric ``(N, N)`` float64 Euclidean distances with an exact zero diagonal."""
    sq_N = np.einsum("nd,nd->n", x_N_D, x_N_D)
    d_N_N = sq_N[:, None] + sq_N[None, :]
    d_N_N -= 2.0 * (x_N_D @ x_N_D.T)
    np.maximum(d_N_N, 0.0, out=d_N_N)
    np.sqrt(d_N_N, out=d_N_N)
    d_N_N += d_N_N.T
    d_N_N *= 0.5
    np.fill_diagonal(d_N_N, 0.0)
    return d_N_N


def _robust_radius(near_N: np.ndarray, n_outliers: int) -> float:
    """The ``(n_outliers + 1)``-th largest nearest-centre distance."""
    return float(np.partition(near_N, near_N.shape[0] - 1 - n_outliers)[near_N.shape[0] - 1 - n_outliers])


def _greedy_cover(cover_U_J, k: int, n_outliers: int):
    """Greedy max coverage with at most ``k`` columns -> chosen columns if at most
    ``n_outliers`` rows stay uncovered, else None."""
    uncovered = np.ones(cover_U_J.shape[0], bool)
    cols_J_U = cover_U_J.T.tocsr()
    chosen = []
    for _ in range(k):
        if uncovered.sum() <= n_outliers:
            break
        gain_J = cols_J_U @ uncovered.astype(np.float64)
        j = int(np.argmax(gain_J))
        if gain_J[j] == 0:
            break
        chosen.append(j)
        uncovered[cols_J_U.indices[cols_J_U.indptr[j] : cols_J_U.indptr[j + 1]]] = False
    return chosen if uncovered.sum() <= n_outliers else None


def _feasible(d_N_N, d_lab_N, unlabelled_J, delta, k, n_outliers, time_limit):
    """Can ``k`` new centres cover all but ``n_outliers`` points within ``delta``?

    -> ``(status, new centre indices, milp_used)``: status ``"yes"`` (centres given),
    ``"no"`` (proved infeasible) or ``"unknown"`` (the MILP hit ``time_limit``, or
    ``time_limit=None``: the greedy cover only).
    """
    rows_U = np.flatnonzero(d_lab_N > delta)  # not covered by a labelled centre
    if rows_U.size <= n_outliers:
        return "yes", np.zeros(0, np.int64), False
    cover = d_N_N[np.ix_(rows_U, unlabelled_J)] <= delta  # (U, J) bool
    useful_J = np.flatnonzero(cover.any(axis=0))
    cover_U_J = csr_matrix(cover[:, useful_J], dtype=np.float64)
    greedy = _greedy_cover(cover_U_J, k, n_outliers)
    if greedy is not None:
        return "yes", unlabelled_J[useful_J[greedy]], False
    if k == 1 or rows_U.size - n_outliers > k * int(cover.sum(axis=0).max()):
        return "no", None, False  # greedy is exact for k = 1; counting bound
    if time_limit is None or time_limit <= 0:  # heuristic only / no time left
        return "unknown", None, False
    U, J = cover_U_J.shape
    a_cover = hstack([cover_U_J, identity(U, format="csr")], format="csr")  # cover u + z >= 1
    a_budget = csr_matrix(np.vstack([np.r_[np.zeros(J), np.ones(U)], np.r_[np.ones(J), np.zeros(U)]]))
    res = milp(
        c=np.zeros(J + U),  # pure feasibility
        constraints=[
            LinearConstraint(a_cover, lb=1.0, ub=np.inf),
            LinearConstraint(a_budget, lb=0.0, ub=[float(n_outliers), float(k)]),
        ],
        integrality=np.ones(J + U),
        bounds=Bounds(0.0, 1.0),
        options={"time_limit": float(time_limit), "disp": False},
    )
    if res.x is not None and res.status in (0, 1):
        return "yes", unlabelled_J[useful_J[res.x[:J] > 0.5]], True
    if res.status == 2:
        return "no", None, True
    return "unknown", None, True


def check_robust_size(n_points: int, *, max_points: int = 5000) -> None:
    """Refuse a robust k-center problem of ``n_points`` points (labelled + candidates)
    above ``max_points`` -- callable before any training to validate a configuration."""
    n_points = check_int(n_points, "n_points", ge=1)
    if n_points > max_points:
        raise ValueError(
            f"kcenter_robust keeps an N x N float64 distance matrix; N={n_points} points (labelled + "
            f"candidates) exceed max_points={max_points} ({8 * n_points**2 / 2**20:.0f} MiB). Use fewer "
            "candidates (n_candidates), raise max_points if the memory is there, or use kcenter_greedy."
        )


def check_robust_problem(n_points: int, k: int, **options: Any) -> None:
    """Every check :func:`kcenter_robust` makes on its options and size, without the data:
    for validating a configuration before training (``n_points`` = labelled + candidates;
    ``options``: the keyword options of :func:`kcenter_robust`, its defaults where not given)."""
    try:
        bound = inspect.signature(kcenter_robust).bind(None, None, k, **options)
    except TypeError as err:  # an option kcenter_robust does not take
        raise TypeError(f"check_robust_problem() {err}") from None
    bound.apply_defaults()
    given = bound.arguments
    check_robust_size(n_points, max_points=given["max_points"])
    _n_outliers(given["n_outliers"], given["outlier_fraction"], n_points)
    _check_time_limit(given["time_limit"])
    check_int(k, "k", ge=0, lt=n_points)


def _check_time_limit(time_limit) -> None:
    check_float(time_limit, "time_limit (seconds)", gt=0.0, finite=False)


def _n_outliers(n_outliers, outlier_fraction, N: int) -> int:
    if outlier_fraction is not None:
        if n_outliers:
            raise ValueError("pass n_outliers or outlier_fraction, not both")
        check_float(outlier_fraction, "outlier_fraction", ge=0.0, lt=1.0)
        n_outliers = int(np.floor(outlier_fraction * N))
    return check_int(n_outliers, "n_outliers", ge=0, lt=N)


def kcenter_robust(
    features_N_D,
    labelled_mask_N,
    k: int,
    *,
    n_outliers: int = 0,
    outlier_fraction: float | None = None,
    max_points: int = 5000,
    time_limit: float = 60.0,
    progress: bool | None = False,
) -> RobustKCenterBatch:
    """Robust k-center (Sener & Savarese 2018, eq. 5) with labelled points as fixed centres.

    ``features_N_D``: all points (labelled and candidates); ``labelled_mask_N``: the fixed
    centres (at least one). At most ``n_outliers`` points (or ``floor(outlier_fraction * N)``;
    DEIMOS used the fraction 0.001) may lie beyond the radius. Bisection over the sorted
    pairwise distances in ``[lower bound, greedy radius]`` (module docstring); ``time_limit``:
    seconds for the whole call (the MILPs share it). Raises ``ValueError`` above ``max_points``
    points (see :func:`check_robust_size`). The new centres are returned in farthest-first
    order; ``scores[i]`` = distance of pick i to the nearest centre (labelled or picked before
    it). The result's ``exact`` says whether ``radius`` is proved optimal.
    """
    t_start = time.perf_counter()
    x, m = _check_features(features_N_D, labelled_mask_N)
    N = x.shape[0]
    check_robust_size(N, max_points=max_points)
    k = check_k(k, int((~m).sum()), "unlabelled points")
    n_outliers = _n_outliers(n_outliers, outlier_fraction, N)
    if not m.any():
        raise ValueError("kcenter_robust needs at least one labelled point (fixed centre)")
    _check_time_limit(time_limit)

    d_N_N = _pairwise_distances(x)
    d_lab_N = d_N_N[:, m].min(axis=1)
    unlabelled_J = np.flatnonzero(~m)
    if k == 0:
        radius = _robust_radius(d_lab_N, n_outliers)
        empty = np.zeros(0, np.int64)
        return RobustKCenterBatch(
            empty,
            np.zeros(0),
            radius,
            np.flatnonzero(d_lab_N > radius),
            radius,
            0,
            lower_bound=radius,
            exact=True,
            seconds=time.perf_counter() - t_start,
        )
    n_trav = min(k + n_outliers + 1, unlabelled_J.size)
    trav = kcenter_greedy(x, m, n_trav)
    greedy_mask = m.copy()
    greedy_mask[trav.indices[:k]] = True
    greedy_radius = _robust_radius(d_N_N[:, greedy_mask].min(axis=1), n_outliers)
    lower = 0.5 * float(trav.scores[k + n_outliers]) if n_trav == k + n_outliers + 1 else 0.0

    upper_tri = d_N_N[np.triu_indices(N)]
    radii = np.unique(upper_tri[(upper_tri >= lower) & (upper_tri <= greedy_radius)])
    del upper_tri
    # invariant: radii[hi] is attained by best_new; radii[lo] was not shown feasible;
    # radii[proved] was proved infeasible (so is everything below it)
    best_new, lo, hi, proved = trav.indices[:k], -1, radii.size - 1, -1
    n_solves = 0
    bar = tqdm(
        total=int(np.ceil(np.log2(max(2, radii.size)))), desc="robust k-center", disable=not progress, leave=False
    )

    def ask(i, milp: bool):
        nonlocal best_new, hi, proved, n_solves
        remaining = time_limit - (time.perf_counter() - t_start)
        status, new, milp_used = _feasible(
            d_N_N, d_lab_N, unlabelled_J, radii[i], k, n_outliers, remaining if milp else None
        )
        n_solves += milp_used
        bar.update(1)
        if status == "yes":
            mask = m.copy()
            mask[new] = True
            attained = int(np.searchsorted(radii, _robust_radius(d_N_N[:, mask].min(axis=1), n_outliers)))
            if attained >= hi:  # no better than the best (solver tolerance)
                return "unknown"
            best_new, hi = new, attained
        proved = i if status == "no" else proved
        return status

    # 1. heuristic descent: bisection answered by greedy covers only (no MILP)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ask(mid, milp=False) != "yes":
            lo = mid
    # 2. exact phase: is the best cover found optimal? then bisection with the MILP
    lo = proved
    first = True
    while hi - lo > 1 and time.perf_counter() - t_start < time_limit:
        mid = hi - 1 if first else (lo + hi) // 2
        first = False
        if ask(mid, milp=True) != "yes":
            lo = mid if proved == mid else lo
            if proved != mid:
                break  # the time limit stopped a MILP
    exact = hi - lo <= 1
    bar.close()
    lower_bound = max(lower, float(radii[proved + 1])) if proved + 1 < radii.size else lower

    centres = m.copy()
    centres[best_new] = True
    if centres.sum() - m.sum() < k:  # fill up: extra centres never raise the radius
        centres[kcenter_greedy(x, centres, k - int(centres.sum() - m.sum())).indices] = True
    new = np.flatnonzero(centres & ~m)
    dist = d_lab_N.copy()
    order, scores = [], []
    remaining_new = list(new)
    while remaining_new:  # farthest-first order of the chosen centres
        j = max(remaining_new, key=lambda i: (dist[i], -i))
        order.append(j)
        scores.append(float(dist[j]))
        remaining_new.remove(j)
        dist = np.minimum(dist, d_N_N[j])
    near = d_N_N[:, centres].min(axis=1)
    radius = _robust_radius(near, n_outliers)
    return RobustKCenterBatch(
        indices=np.array(order, dtype=np.int64),
        scores=np.array(scores),
        radius=radius,
        outliers=np.flatnonzero(near > radius).astype(np.int64),
        greedy_radius=greedy_radius,
        n_solves=n_solves,
        lower_bound=lower_bound,
        exact=bool(exact),
        seconds=time.perf_counter() - t_start,
    )
