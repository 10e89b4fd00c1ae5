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
  with scipy's HiGHS MILP (no commercial solver) by bisection on the radius over
  the sorted pairwise distances, starting from the greedy radius (always
  feasible). The paper's feasibility MIP with ``N^2`` assignment and slack
  variables is solved in its equivalent compact form: binaries ``u_j`` (centre)
  and ``z_i`` (outlier) with ``sum_{j: d_ij <= delta} u_j >= 1 - z_i``,
  ``sum_i z_i <= n_outliers``, ``sum_j u_j = |labelled| + k``, ``u_j = 1`` on the
  labelled points. The covering constraints hold up to ``N^2`` non-zeros, so it is
  limited to ``max_points`` (default 1500) points in all: pass a subsample
  (e.g. the labelled points plus a few hundred random pool points) above that.
  Cost grows quickly with N: 10-20 MILPs per call; on a shared 2-core CPU,
  128-d Gaussian features, k = 25: N = 300 took 3 s, N = 1000 took 23 s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import CandidateBatch, as_generator, as_numpy, check_finite, check_k

__all__ = [
    "kcenter_greedy",
    "kcenter_robust",
    "RobustKCenterBatch",
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
    from tqdm.auto import tqdm

    for step in tqdm(range(k), desc="k-center", disable=not progress, leave=False):
        if step == 0 and not m.any():
            if random_state is None:
                raise ValueError("random_state is required to draw the first centre when no point is labelled")
            pool = np.flatnonzero(~taken)
            best = int(pool[as_generator(random_state).integers(pool.size)])
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
    ``radius``, at most the budget), ``greedy_radius`` (the starting point) and
    ``n_solves`` (MILPs solved)."""

    radius: float
    outliers: np.ndarray
    greedy_radius: float
    n_solves: int


def _feasible(d_P_J, delta, labelled_J, n_new, n_outliers, time_limit):
    """Compact Sener-Savarese feasibility MIP at radius delta -> centre mask over J or None."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix, hstack, identity

    P, J = d_P_J.shape
    cover = csr_matrix(d_P_J <= delta, dtype=np.float64)              # (P, J)
    # variables [u_1..u_J, z_1..z_P]
    a_cover = hstack([cover, identity(P, format="csr")], format="csr")  # cover u + z >= 1
    a_out = csr_matrix(np.concatenate([np.zeros(J), np.ones(P)])[None, :])
    a_count = csr_matrix(np.concatenate([np.ones(J), np.zeros(P)])[None, :])
    n_centres = int(labelled_J.sum()) + n_new
    constraints = [
        LinearConstraint(a_cover, lb=1.0, ub=np.inf),
        LinearConstraint(a_out, lb=0.0, ub=float(n_outliers)),
        LinearConstraint(a_count, lb=n_centres, ub=n_centres),
    ]
    lb = np.zeros(J + P)
    lb[:J][labelled_J] = 1.0
    res = milp(
        c=np.zeros(J + P),                                  # pure feasibility
        constraints=constraints,
        integrality=np.ones(J + P),
        bounds=Bounds(lb, np.ones(J + P)),
        options={"time_limit": time_limit, "disp": False},
    )
    if res.x is None or res.status not in (0, 1):
        return None
    u = res.x[:J] > 0.5
    if u.sum() != n_centres:
        return None
    return u


def kcenter_robust(
    features_N_D,
    labelled_mask_N,
    k: int,
    *,
    n_outliers: int = 0,
    max_points: int = 1500,
    time_limit: float = 60.0,
    progress: bool | None = False,
) -> RobustKCenterBatch:
    """Robust k-center (Sener & Savarese 2018, eq. 5) with labelled points as fixed centres.

    Bisection over the sorted point-to-point distances up to the greedy radius;
    each step solves the feasibility MILP with HiGHS (``time_limit`` seconds per
    solve; a solve that ends without a feasible point counts as infeasible, so
    the answer is always a feasible solution no worse than greedy). Raises
    ``ValueError`` above ``max_points`` points. The new centres are returned in
    farthest-first order; ``scores[i]`` = distance of pick i to the nearest
    centre (labelled or picked before it).
    """
    x, m = _check_features(features_N_D, labelled_mask_N)
    N = x.shape[0]
    if N > max_points:
        raise ValueError(
            f"kcenter_robust solves a MILP with up to N^2 = {N}^2 covering non-zeros; N={N} exceeds "
            f"max_points={max_points}. Pass a subsample (labelled points + a few hundred pool points) "
            "or use kcenter_greedy."
        )
    k = check_k(k, int((~m).sum()), "unlabelled points")
    if isinstance(n_outliers, (bool, np.bool_)) or not isinstance(n_outliers, (int, np.integer)) or not 0 <= n_outliers < N:
        raise ValueError(f"n_outliers must be an int in [0, {N - 1}], got {n_outliers!r}")
    if not m.any():
        raise ValueError("kcenter_robust needs at least one labelled point (fixed centre)")

    diff_sq = np.einsum("nd,nd->n", x, x)
    d_N_N = np.sqrt(np.maximum(diff_sq[:, None] + diff_sq[None, :] - 2.0 * (x @ x.T), 0.0))
    d_N_N = 0.5 * (d_N_N + d_N_N.T)
    np.fill_diagonal(d_N_N, 0.0)

    def radius_of(mask):                                      # (n_outliers+1)-th largest nearest-centre distance
        near = d_N_N[:, mask].min(axis=1)
        return float(np.sort(near)[::-1][n_outliers]), near

    if k == 0:
        radius, near = radius_of(m)
        empty = np.zeros(0, np.int64)
        return RobustKCenterBatch(empty, np.zeros(0), radius, np.flatnonzero(near > radius), radius, 0)
    greedy_mask = m.copy()
    greedy_mask[kcenter_greedy(x, m, k).indices] = True
    greedy_radius, _ = radius_of(greedy_mask)
    radii = np.unique(d_N_N[d_N_N <= greedy_radius])          # sorted; greedy_radius (~) is the last
    best_mask, lo, hi = greedy_mask, -1, radii.size - 1       # radii[hi] feasible (greedy), radii[lo] infeasible
    n_solves = 0
    from tqdm.auto import tqdm

    bar = tqdm(total=int(np.ceil(np.log2(max(2, radii.size)))), desc="robust k-center", disable=not progress, leave=False)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        u = _feasible(d_N_N, radii[mid], m, k, n_outliers, time_limit)
        n_solves += 1
        bar.update(1)
        if u is None:
            lo = mid
        else:
            hi, best_mask = mid, u
    bar.close()

    new = np.flatnonzero(best_mask & ~m)
    dist = d_N_N[:, m].min(axis=1)
    order, scores = [], []
    remaining = list(new)
    while remaining:                                          # farthest-first order of the chosen centres
        j = max(remaining, key=lambda i: (dist[i], -i))
        order.append(j)
        scores.append(float(dist[j]))
        remaining.remove(j)
        dist = np.minimum(dist, d_N_N[j])
    radius, final = radius_of(best_mask)
    outliers = np.flatnonzero(final > radius)
    return RobustKCenterBatch(
        indices=np.array(order, dtype=np.int64),
        scores=np.array(scores),
        radius=radius,
        outliers=outliers.astype(np.int64),
        greedy_radius=greedy_radius,
        n_solves=n_solves,
    )
