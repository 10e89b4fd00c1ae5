"""The ``STRATEGIES`` registry: one ``select`` API for every acquisition function.

``STRATEGIES[name].select(k, *, random_state, **arrays) -> CandidateBatch``
returns k indices (in pick order) into the rows of the array it was given, and
their scores. ``random_state`` (int seed or ``numpy.random.Generator``) must be
passed to every strategy; only "random", "batchbald" (sampled regime) and
"kcenter_greedy" (no labelled point) use it. ``requires`` names what the
caller must compute first. Keywords per strategy (options in brackets):

=====================  ===================  ===============================================
name                   requires             select() keywords
=====================  ===================  ===============================================
random                 nothing              ``n`` (int), or any one array below (its length)
var_ratio              probs_N_C            ``probs_N_C``; top-k of ``1 - max p``
margin                 probs_N_C            ``probs_N_C``; the k SMALLEST margins p1 - p2
margin_inverted        probs_N_C            ``probs_N_C``; the k LARGEST margins (seed 1's bug)
entropy                probs_N_C            ``probs_N_C``; top-k entropy
entropy_mc             probs_N_T_C          ``probs_N_T_C``; top-k entropy of the MC mean (EntropyD)
variation_ratio_mc     probs_N_T_C          ``probs_N_T_C``; top-k ``1 - f_mode / T``
mean_std               probs_N_T_C          ``probs_N_T_C``; top-k mean over classes of the std
bald                   probs_N_T_C          ``probs_N_T_C`` or ``log_probs_N_T_C`` or ``log_probs_N_K_C``
batchbald              log_probs_N_K_C      ``log_probs_N_K_C`` [``num_samples=10000``, ``candidates``, ``progress``]
max_variance           preds_N_T            ``preds_N_T``; top-k variance over passes
kcenter_greedy         features             ``features`` (N, D), ``labelled_mask`` (N,) bool [``progress``]
kcenter_robust         features             ``features``, ``labelled_mask`` [``n_outliers=0``, ``max_points=1500``, ``time_limit``, ``progress``]
deimos                 fixed_J_S            ``preds`` (J, S) or (J, S, C), ``tau_inv`` [``candidates``, ``progress``]
=====================  ===================  ===============================================

Scores in the result: the point's own score for the top-k strategies (margins
for "margin" / "margin_inverted"), 0 for "random", the batch's joint BatchBALD
value so far for "batchbald", the distance to the nearest centre at pick time
for the k-center strategies, the trace reduction at pick time for "deimos".
For the "features" strategies the rows are all points (labelled and unlabelled)
and the picks are never labelled rows. For "deimos" the rows are those of
X_samp (see ``mcal_utils.acquisition.deimos``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import uncertainty as U
from .bald import bald, batchbald
from .base import CandidateBatch, random_batch, top_k
from .coreset import kcenter_greedy, kcenter_robust

__all__ = ["Strategy", "STRATEGIES", "get_strategy", "REQUIREMENTS"]

REQUIREMENTS = ("nothing", "probs_N_C", "probs_N_T_C", "log_probs_N_K_C", "preds_N_T", "fixed_J_S", "features")

_ARRAY_KEYWORDS = ("probs_N_C", "probs_N_T_C", "log_probs_N_T_C", "log_probs_N_K_C", "preds_N_T", "features")


@dataclass(frozen=True)
class Strategy:
    """An acquisition strategy: ``select(k, *, random_state, **arrays) -> CandidateBatch``.

    ``required``: keywords that must be given; ``optional``: keywords that may be
    given (``None`` = any, forwarded unchecked); ``one_of``: groups of which
    exactly one keyword must be given.
    """

    name: str
    requires: str
    description: str
    _fn: Callable = field(repr=False, compare=False)
    required: tuple = ()
    optional: tuple | None = ()
    one_of: tuple = ()

    def __post_init__(self):
        if self.requires not in REQUIREMENTS:
            raise ValueError(f"requires must be one of {REQUIREMENTS}, got {self.requires!r}")

    def keywords(self) -> tuple:
        return tuple(self.required) + tuple(self.one_of) + tuple(self.optional or ())

    def select(self, k: int, *, random_state, **arrays) -> CandidateBatch:
        given = set(arrays)
        missing = [name for name in self.required if name not in given]
        if missing:
            raise ValueError(f"strategy {self.name!r} needs keyword(s) {missing}; it accepts {list(self.keywords())}")
        if self.one_of and len(given & set(self.one_of)) != 1:
            raise ValueError(
                f"strategy {self.name!r} needs exactly one of {list(self.one_of)}, got {sorted(given & set(self.one_of))}"
            )
        if self.optional is not None:
            unknown = given - set(self.keywords())
            if unknown:
                raise ValueError(
                    f"strategy {self.name!r} does not take {sorted(unknown)}; it accepts {list(self.keywords())}"
                )
        return self._fn(k, random_state=random_state, **arrays)


def _top(score_fn, key, largest=True):
    def fn(k, *, random_state, **arrays):
        return top_k(score_fn(arrays[key]), k, largest=largest)

    return fn


def _random(k, *, random_state, **arrays):
    if "n" in arrays:
        n = arrays["n"]
    else:
        (value,) = arrays.values()
        shape = getattr(value, "shape", None)
        if not shape:
            raise ValueError("strategy 'random' needs n (an int) or an array whose first axis is the candidates")
        n = int(shape[0])
    return random_batch(n, k, random_state)


def _bald(k, *, random_state, **arrays):
    if "probs_N_T_C" in arrays:
        return top_k(bald(arrays["probs_N_T_C"]), k)
    log_probs = arrays.get("log_probs_N_T_C", arrays.get("log_probs_N_K_C"))
    return top_k(bald(log_probs_N_T_C=log_probs), k)


def _batchbald(k, *, random_state, log_probs_N_K_C, **options):
    return batchbald(log_probs_N_K_C, k, random_state=random_state, **options)


def _kcenter_greedy(k, *, random_state, features, labelled_mask, **options):
    return kcenter_greedy(features, labelled_mask, k, random_state=random_state, **options)


def _kcenter_robust(k, *, random_state, features, labelled_mask, **options):
    return kcenter_robust(features, labelled_mask, k, **options)


def _deimos(k, *, random_state, preds, tau_inv, **options):
    from .deimos import deimos  # imported lazily: the module is written alongside this one

    return deimos(preds, k, tau_inv, **options)


def _build() -> dict:
    s = [
        Strategy("random", "nothing", "uniform without replacement", _random,
                 one_of=("n",) + _ARRAY_KEYWORDS, optional=()),
        Strategy("var_ratio", "probs_N_C", "1 - max_c p_c (modAL classifier_uncertainty), largest first",
                 _top(U.var_ratio, "probs_N_C"), required=("probs_N_C",)),
        Strategy("margin", "probs_N_C", "p(top-1) - p(top-2) (modAL classifier_margin), SMALLEST first",
                 _top(U.margin, "probs_N_C", largest=False), required=("probs_N_C",)),
        Strategy("margin_inverted", "probs_N_C", "seed 1's bug: the LARGEST margins first (least uncertain)",
                 _top(U.margin, "probs_N_C", largest=True), required=("probs_N_C",)),
        Strategy("entropy", "probs_N_C", "entropy of one deterministic pass (modAL classifier_entropy), nats",
                 _top(U.entropy, "probs_N_C"), required=("probs_N_C",)),
        Strategy("entropy_mc", "probs_N_T_C", "EntropyD: entropy of the mean of T MC passes, nats",
                 _top(U.predictive_entropy, "probs_N_T_C"), required=("probs_N_T_C",)),
        Strategy("variation_ratio_mc", "probs_N_T_C", "Gal's variation ratio 1 - f_mode / T over T MC passes",
                 _top(U.mc_variation_ratio, "probs_N_T_C"), required=("probs_N_T_C",)),
        Strategy("mean_std", "probs_N_T_C", "mean over classes of the std over T MC passes",
                 _top(U.mean_std, "probs_N_T_C"), required=("probs_N_T_C",)),
        Strategy("bald", "probs_N_T_C", "BALD mutual information, nats",
                 _bald, one_of=("probs_N_T_C", "log_probs_N_T_C", "log_probs_N_K_C")),
        Strategy("batchbald", "log_probs_N_K_C", "greedy BatchBALD on shared-mask log-probs, nats",
                 _batchbald, required=("log_probs_N_K_C",), optional=("num_samples", "candidates", "progress", "base")),
        Strategy("max_variance", "preds_N_T", "variance over T MC passes of a regression output",
                 _top(U.max_variance, "preds_N_T"), required=("preds_N_T",)),
        Strategy("kcenter_greedy", "features", "greedy k-center on penultimate features (Sener & Savarese 2018)",
                 _kcenter_greedy, required=("features", "labelled_mask"), optional=("progress",)),
        Strategy("kcenter_robust", "features", "robust k-center MILP (HiGHS) with an outlier budget",
                 _kcenter_robust, required=("features", "labelled_mask"),
                 optional=("n_outliers", "max_points", "time_limit", "progress")),
        Strategy("deimos", "fixed_J_S", "DEIMOS: greedy expected reduction of tr(V) on X_samp",
                 _deimos, required=("preds", "tau_inv"), optional=None),
    ]
    return {strategy.name: strategy for strategy in s}


#: name -> Strategy
STRATEGIES: dict = _build()


def get_strategy(name: str) -> Strategy:
    """``STRATEGIES[name]``; a ``ValueError`` listing the valid names otherwise."""
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown strategy {name!r}; valid names: {sorted(STRATEGIES)}") from None
