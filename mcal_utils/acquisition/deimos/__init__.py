r"""DEIMOS: greedy batch acquisition that maximises the expected drop of the trace of the joint
predictive covariance on a representative sample X_samp (Nagpal & Knowles, "Active learning in
CNNs via expected improvement maximization", Sec. 3-4, Algorithm 1, Appendices D and E).

Inputs are fixed-mask MC-dropout predictions on X_samp: mask j is shared by every point on pass
j, so the predictions of different points are correlated across passes.

* regression: ``preds`` ``(J, S)`` (J passes, S points), C = 1 output;
* classification: ``preds`` ``(J, S, C)`` class probabilities (not logits).

The S*C outputs are flattened point-major (row r = s*C + c). With t = tau_inv (paper eq. 3, 4, 6
and Algorithm 1):

    A   = (Y - mean_J Y) / sqrt(J - 1)          (S*C, J), centred predictions
    V   = t I + A A^T                           (S*C, S*C), sample covariance (divisor J - 1) + t I
    B_i = the C rows of point i
    score_P(i) = tr( V_P[:, B_i] V_P[B_i, B_i]^{-1} V_P[B_i, :] )      (eq. 5 / 6)
    V_{P + i}  = V_P - V_P[:, B_i] V_P[B_i, B_i]^{-1} V_P[B_i, :]       (Algorithm 1 update)

The trace runs over ALL of X_samp (training members and the candidate's own block included).
Greedy: k times, pick the not-yet-picked candidate with the largest score (ties -> lowest index)
and condition V on it. Training members of X_samp are never candidates and are never conditioned
on. Unlike the authors' classification code no extra 1e-15 I is added: t I (t > 0) already makes
every block invertible.

Rooms:

* :mod:`.inputs`: the argument checks every entry point shares;
* :mod:`.dense`: ``deimos_dense`` / ``deimos_from_covariance``, the equations above written
  literally on the (S*C)^2 matrix (float64, Cholesky solves, no explicit inverse): the reference;
* :mod:`.algebra`: the same greedy in the J-dimensional mask space (derivation, block update,
  refresh rule), written once and run by both fast backends;
* :mod:`.numba_backend` (+ :mod:`.numba_kernels`, compiled, cached on disk) and
  :mod:`.torch_backend`: the per-candidate work of :mod:`.algebra` on the CPU / any torch device;
* :mod:`.fast`: ``deimos``, the checks and the choice of backend;
* :mod:`.sample`: ``deimos_sample`` / ``DeimosSample``, X_samp (Appendix D).
"""

from .dense import deimos_dense, deimos_from_covariance
from .fast import deimos
from .sample import DeimosSample, deimos_sample

__all__ = [
    "deimos",
    "deimos_dense",
    "deimos_from_covariance",
    "deimos_sample",
    "DeimosSample",
]
