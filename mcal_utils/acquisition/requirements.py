"""What a strategy needs, and how it is computed from (model, candidates, seeds).

A :class:`Requirement` is the one contract between a strategy and the loop: the loop hands it an
:class:`AcquisitionContext` (the fitted model, the train inputs, the labelled and pool indices, the
MC settings and the step's seeds) and gets back :class:`StrategyInputs`: the keyword arrays of
``Strategy.select`` and which of their rows are which pool points. A new kind of input is one
``Requirement`` here; a new strategy is one ``Strategy`` registration in ``strategies``.

``REQUIREMENTS`` (name -> Requirement):

=================  ===========================================================================
name               computes (on the candidates: the pool, or a seeded subsample of n_candidates)
=================  ===========================================================================
nothing            ``n`` (the number of candidates)
probs_N_C          one deterministic softmax pass (dropout off)
probs_N_T_C        T MC-dropout passes, fresh masks
log_probs_N_K_C    K MC-dropout passes, fixed masks shared by every point, log-probabilities
preds_N_T          T MC-dropout passes of a regression output, fresh masks
features           penultimate features of [labelled; candidates] and the labelled mask
fixed_J_S          DEIMOS: J fixed-mask passes on X_samp (``deimos_sample``), tau^-1, candidates
=================  ===========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mcal_utils import mc

from .deimos import deimos_sample

__all__ = ["AcquisitionContext", "StrategyInputs", "Requirement", "REQUIREMENTS", "candidate_positions"]


@dataclass(frozen=True)
class AcquisitionContext:
    """Everything the loop knows at an acquiring step.

    model: the fitted ``MCModel``; x_train: the task's train inputs (indexed by train indices);
    labelled ``(L,)`` / pool ``(M,)``: int64 train indices; n_candidates: score a seeded subsample
    of this many pool points (None: the whole pool); T: MC-dropout passes (the J fixed masks of
    DEIMOS, the K shared masks of BatchBALD); tau_inv: DEIMOS's tau^-1 (None when unused); seed:
    ``seed(name) -> int``, the step's seed for ``name`` (``"candidates"``, ``"masks"``, ``"samp"``).
    """

    model: nn.Module
    x_train: np.ndarray
    labelled: np.ndarray
    pool: np.ndarray
    n_candidates: int | None
    T: int
    tau_inv: float | None
    seed: Callable[[str], int]


@dataclass(frozen=True)
class StrategyInputs:
    """The keyword arrays of ``Strategy.select`` and the map from their rows to the pool.

    arrays: keyword -> array (or int, float); candidates: ``(n,)`` positions into
    ``context.pool`` of the candidate rows; offset: rows ``offset .. offset + n - 1`` of the arrays
    are the candidates (the rows before are labelled points); info: extra record fields.
    """

    arrays: dict
    candidates: np.ndarray
    offset: int = 0
    info: dict = field(default_factory=dict)

    def pool_positions(self, picks, k: int, strategy: str) -> np.ndarray:
        """Picked rows -> positions into the pool; ``ValueError`` unless k distinct candidate rows."""
        rows = np.asarray(picks, np.int64)
        n = len(self.candidates)
        if (
            rows.shape != (k,)
            or np.unique(rows).size != k
            or np.any(rows < self.offset)
            or np.any(rows >= self.offset + n)
        ):
            what = "a labelled row or " if self.offset else ""
            raise ValueError(
                f"strategy {strategy!r} returned invalid picks {rows.tolist()[:10]} ({what}out of "
                f"range): expected {k} distinct candidate rows in {self.offset}..{self.offset + n - 1}"
            )
        return self.candidates[rows - self.offset]


@dataclass(frozen=True)
class Requirement:
    """What a strategy needs and how to compute it.

    name: the key in ``REQUIREMENTS`` (``Strategy.requires``); kinds: the task kinds it works for;
    keyword / passes_axis: the main array of ``select`` and its MC-pass axis (None: no passes);
    provides: every keyword ``compute`` passes to ``select`` (so never a strategy option);
    needs_tau / needs_candidates: whether the config must set ``tau_inv`` / ``n_candidates``;
    compute: ``compute(context) -> StrategyInputs``.
    """

    name: str
    kinds: tuple
    keyword: str | None
    passes_axis: int | None
    provides: tuple
    compute: Callable[[AcquisitionContext], StrategyInputs] = field(repr=False, compare=False)
    needs_tau: bool = False
    needs_candidates: bool = False

    def __call__(self, context: AcquisitionContext) -> StrategyInputs:
        return self.compute(context)


def candidate_positions(context: AcquisitionContext) -> np.ndarray:
    """Positions into the pool of the candidates: all, or a seeded sorted subsample of n_candidates."""
    n_pool = len(context.pool)
    if context.n_candidates is None or context.n_candidates >= n_pool:
        return np.arange(n_pool, dtype=np.int64)
    rng = np.random.default_rng(context.seed("candidates"))
    drawn = rng.choice(np.arange(n_pool, dtype=np.int64), size=context.n_candidates, replace=False)
    return np.sort(drawn).astype(np.int64)


def _on_candidates(array_fn: Callable[[AcquisitionContext, np.ndarray], Mapping]):
    def compute(context: AcquisitionContext) -> StrategyInputs:
        cand = candidate_positions(context)
        arrays = dict(array_fn(context, context.x_train[context.pool[cand]]))
        return StrategyInputs(arrays=arrays, candidates=cand, info=dict(n_candidates=int(len(cand))))

    return compute


def _mc(masks: str, keyword: str, log_probs: bool = False):
    def arrays(context, x_cand):
        return {
            keyword: mc.predict(
                context.model, x_cand, context.T, masks=masks, random_state=context.seed("masks"), log_probs=log_probs
            )
        }

    return _on_candidates(arrays)


def _deterministic(context, x_cand):
    return {"probs_N_C": mc.deterministic(context.model, x_cand)}


def _nothing(context, x_cand):
    return {"n": len(x_cand)}


def features_of(model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Penultimate activations ``model.features`` of ``x``, eval mode (dropout off), float64 ``(N, D)``.

    ``batch_size``: rows per forward pass (a memory bound; not the acquisition size k).
    """
    if not callable(getattr(model, "features", None)):
        raise ValueError(f"the 'features' strategies need model.features(x); {type(model).__name__} has none")
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        out = [
            model.features(torch.as_tensor(x[s : s + batch_size]).to(device)).double().cpu()
            for s in range(0, len(x), batch_size)
        ]
    return torch.cat(out).reshape(len(x), -1).numpy()


def _features(context: AcquisitionContext) -> StrategyInputs:
    cand = candidate_positions(context)
    n_lab = len(context.labelled)
    feats = features_of(
        context.model, np.concatenate([context.x_train[context.labelled], context.x_train[context.pool[cand]]])
    )
    mask = np.zeros(len(feats), dtype=bool)
    mask[:n_lab] = True
    return StrategyInputs(
        arrays=dict(features=feats, labelled_mask=mask),
        candidates=cand,
        offset=n_lab,
        info=dict(n_candidates=int(len(cand))),
    )


def _deimos_samp(context: AcquisitionContext) -> StrategyInputs:
    """X_samp = [train members; pool members] drawn over [labelled; pool]; candidates = its pool members."""
    lab, pool, x = context.labelled, context.pool, context.x_train
    if context.n_candidates is None:
        raise ValueError("DEIMOS needs n_candidates, the number of pool points of X_samp (Appendix D)")
    samp = deimos_sample(len(lab), len(pool), context.n_candidates, random_state=context.seed("samp"))
    train_pos = np.asarray(samp.train_indices, np.int64)
    pool_pos = np.asarray(samp.pool_indices, np.int64)
    x_samp = np.concatenate([x[lab[train_pos]], x[pool[pool_pos]]])
    preds = mc.predict(context.model, x_samp, context.T, masks="fixed", random_state=context.seed("masks"))
    preds_J_S = preds.transpose(0, 1).contiguous()  # (J, S, C) probabilities or (J, S)
    rows = np.arange(len(train_pos), len(x_samp), dtype=np.int64)
    return StrategyInputs(
        arrays=dict(preds=preds_J_S, tau_inv=context.tau_inv, candidates=rows),
        candidates=pool_pos,
        offset=len(train_pos),
        info=dict(n_candidates=int(len(pool_pos)), n_samp=int(len(x_samp))),
    )


_BOTH = ("classification", "regression")
_CLASSIFICATION = ("classification",)

#: name -> Requirement (see the module docstring)
REQUIREMENTS: dict[str, Requirement] = {
    r.name: r
    for r in (
        Requirement("nothing", _BOTH, None, None, ("n",), _on_candidates(_nothing)),
        Requirement("probs_N_C", _CLASSIFICATION, "probs_N_C", None, ("probs_N_C",), _on_candidates(_deterministic)),
        Requirement("probs_N_T_C", _CLASSIFICATION, "probs_N_T_C", 1, ("probs_N_T_C",), _mc("fresh", "probs_N_T_C")),
        Requirement(
            "log_probs_N_K_C",
            _CLASSIFICATION,
            "log_probs_N_K_C",
            1,
            ("log_probs_N_K_C",),
            _mc("fixed", "log_probs_N_K_C", log_probs=True),
        ),
        Requirement("preds_N_T", ("regression",), "preds_N_T", 1, ("preds_N_T",), _mc("fresh", "preds_N_T")),
        Requirement("features", _BOTH, "features", None, ("features", "labelled_mask"), _features),
        Requirement(
            "fixed_J_S",
            _BOTH,
            "preds",
            0,
            ("preds", "tau_inv", "candidates"),
            _deimos_samp,
            needs_tau=True,
            needs_candidates=True,
        ),
    )
}
