"""The ``STRATEGIES`` registry: one ``select`` API for every acquisition function.

``STRATEGIES[name].select(k, *, random_state, **arrays) -> CandidateBatch``
returns k indices (in pick order) into the rows of the array it was given, and
their scores. ``random_state`` (int seed or ``numpy.random.Generator``) must be
passed to every strategy; only "random", "power_bald", "batchbald" (sampled regime)
and "kcenter_greedy" (no labelled point) use it. ``requires`` names what the
caller must compute first. Keywords per strategy (options in brackets):

=====================  ===================  ===============================================
name                   requires             select() keywords
=====================  ===================  ===============================================
random                 nothing              ``n`` (int), or any one array below (its length)
var_ratio              probs_N_C            ``probs_N_C``; top-k of ``1 - max p``
margin                 probs_N_C            ``probs_N_C``; the k SMALLEST margins p1 - p2
margin_inverted        probs_N_C            ``probs_N_C``; the k LARGEST margins (the MC-dropout-entropy code's bug)
entropy                probs_N_C            ``probs_N_C``; top-k entropy
entropy_mc             probs_N_T_C          ``probs_N_T_C``; top-k entropy of the MC mean (EntropyD)
variation_ratio_mc     probs_N_T_C          ``probs_N_T_C``; top-k ``1 - f_mode / T``
mean_std               probs_N_T_C          ``probs_N_T_C``; top-k mean over classes of the std
bald                   probs_N_T_C          ``probs_N_T_C`` or ``log_probs_N_T_C`` or ``log_probs_N_K_C``
power_bald             probs_N_T_C          ``probs_N_T_C`` [``beta=1``]; k drawn with probability ∝ BALD^beta
batchbald              log_probs_N_K_C      ``log_probs_N_K_C`` [``num_samples=10000``, ``candidates``, ``progress``]
max_variance           preds_N_T            ``preds_N_T``; top-k variance over passes
kcenter_greedy         features             ``features`` (N, D), ``labelled_mask`` (N,) bool [``progress``]
kcenter_robust         features             ``features``, ``labelled_mask`` [``n_outliers``, ``outlier_fraction``,
                                            ``max_points``, ``time_limit``, ``progress``]
deimos                 fixed_J_S            ``preds`` (J, S) or (J, S, C), ``tau_inv`` [the keyword options of
                                            ``deimos``: ``candidates``, ``progress``, ``threads``, ``backend``]
=====================  ===================  ===============================================

Options (in brackets) are checked before training (``Strategy.check_options``): those of the
strategies backed by a library function (batchbald, k-center, deimos) are that function's keyword
parameters. Each ``requires`` names a ``Requirement`` (``acquisition.requirements``) that computes
the arrays from the model and the candidates for the loop.

Scores in the result: the point's own score for the top-k strategies (margins
for "margin" / "margin_inverted"), 0 for "random", the batch's joint BatchBALD
value so far for "batchbald", the distance to the nearest centre at pick time
for the k-center strategies, the trace reduction at pick time for "deimos".
For the "features" strategies the rows are all points (labelled and unlabelled)
and the picks are never labelled rows. For "deimos" the rows are those of
X_samp (see ``mcal_utils.acquisition.deimos``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from .bald import bald, batchbald, power_bald
from .base import CandidateBatch, check_passes, check_scores, random_batch, top_k
from .coreset import check_robust_problem, kcenter_greedy, kcenter_robust
from .deimos import deimos
from .requirements import REQUIREMENTS, Requirement
from .uncertainty import entropy, margin, max_variance, mc_variation_ratio, mean_std, predictive_entropy, var_ratio

__all__ = ["Strategy", "STRATEGIES", "get_strategy", "REQUIREMENTS"]

_ARRAY_KEYWORDS = ("probs_N_C", "probs_N_T_C", "log_probs_N_T_C", "log_probs_N_K_C", "preds_N_T", "features")


@dataclass(frozen=True)
class Strategy:
    """An acquisition strategy: ``select(k, *, random_state, **arrays) -> CandidateBatch``.

    ``requires``: the name of its :class:`~mcal_utils.acquisition.requirements.Requirement`
    (or the Requirement itself); ``inputs`` is that object: it computes the arrays from
    (model, candidates, seeds) for the loop. ``required``: keywords that must be given;
    ``optional``: keywords that may be given (``None`` = any, forwarded unchecked);
    ``one_of``: groups of which exactly one keyword must be given. ``min_passes``: the fewest MC
    passes (T, K, J) for which the score is not identically 0 (2 for scores built from the spread
    between passes). ``options_of``: with ``optional=None``, a function returning the callable whose
    keyword parameters are the accepted options (checked before training). ``check_size``:
    ``check_size(n_labelled, n_candidates, k, options)`` raises ``ValueError`` for a problem the
    strategy cannot solve (called before training with the largest step's sizes). ``select``
    refuses non-finite scores.
    """

    name: str
    requires: str
    description: str
    _fn: Callable = field(repr=False, compare=False)
    required: tuple = ()
    optional: tuple | None = ()
    one_of: tuple = ()
    min_passes: int = 1
    options_of: Callable | None = field(default=None, repr=False, compare=False)
    check_size: Callable | None = field(default=None, repr=False, compare=False)
    inputs: Requirement = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        req = self.requires
        if isinstance(req, Requirement):
            object.__setattr__(self, "requires", req.name)
        elif req in REQUIREMENTS:
            req = REQUIREMENTS[req]
        else:
            raise ValueError(f"requires must be a Requirement or one of {list(REQUIREMENTS)}, got {req!r}")
        object.__setattr__(self, "inputs", req)

    def keywords(self) -> tuple:
        return tuple(self.required) + tuple(self.one_of) + tuple(self.optional or ())

    def accepted_options(self) -> tuple | None:
        """The option names ``select`` accepts beyond what the loop computes (None: anything)."""
        if self.optional is not None:
            return tuple(self.optional)
        if self.options_of is None:
            return None
        params = inspect.signature(self.options_of()).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return tuple(
            p.name
            for p in params
            if p.default is not p.empty and p.kind is not p.VAR_POSITIONAL and p.name != "random_state"
        )

    def check_options(self, options) -> None:
        """Refuse options ``select`` would not accept, or that the loop computes itself (before training)."""
        clash = sorted(set(options) & set(self.inputs.provides))
        if clash:
            raise ValueError(
                f"strategy_options of {self.name!r} set {clash}, which the loop computes from the "
                f"model and the pool; remove them"
            )
        accepted = self.accepted_options()
        if accepted is not None:
            valid = [name for name in accepted if name not in self.inputs.provides]
            unknown = sorted(set(options) - set(valid))
            if unknown:
                raise ValueError(f"strategy {self.name!r} does not take option(s) {unknown}; its options: {valid}")

    def select(self, k: int, *, random_state, **arrays) -> CandidateBatch:
        given = set(arrays)
        missing = [name for name in self.required if name not in given]
        if missing:
            raise ValueError(f"strategy {self.name!r} needs keyword(s) {missing}; it accepts {list(self.keywords())}")
        if self.one_of and len(given & set(self.one_of)) != 1:
            got = sorted(given & set(self.one_of))
            raise ValueError(f"strategy {self.name!r} needs exactly one of {list(self.one_of)}, got {got}")
        accepted = self.accepted_options()
        if accepted is not None:
            valid = list(dict.fromkeys(self.keywords() + accepted))
            unknown = given - set(valid)
            if unknown:
                raise ValueError(f"strategy {self.name!r} does not take {sorted(unknown)}; it accepts {valid}")
        if self.min_passes > 1:
            for key in given & {self.inputs.keyword, "probs_N_T_C", "log_probs_N_T_C", "log_probs_N_K_C"}:
                shape = getattr(arrays[key], "shape", ())
                axis = self.inputs.passes_axis if key == self.inputs.keyword else 1
                if axis is not None and len(shape) > axis:
                    check_passes(int(shape[axis]), f"strategy {self.name!r}", "T")
        batch = self._fn(k, random_state=random_state, **arrays)
        check_scores(batch.scores, f"strategy {self.name!r}")
        return batch


def _top(score_fn, key, largest=True):
    def fn(k, *, random_state, **arrays):
        return top_k(score_fn(arrays[key]), k, largest=largest)

    return fn


def _top_strategy(name, key, description, score_fn, *, largest=True, min_passes=1):
    """The strategy that takes the k best ``score_fn(arrays[key])``; ``key`` is what it requires and needs."""
    return Strategy(
        name, key, description, _top(score_fn, key, largest=largest), required=(key,), min_passes=min_passes
    )


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


def _power_bald(k, *, random_state, probs_N_T_C, beta=1.0):
    return power_bald(k, probs_N_T_C=probs_N_T_C, beta=beta, random_state=random_state)


def _batchbald(k, *, random_state, log_probs_N_K_C, **options):
    return batchbald(log_probs_N_K_C, k, random_state=random_state, **options)


def _kcenter_greedy(k, *, random_state, features, labelled_mask, **options):
    return kcenter_greedy(features, labelled_mask, k, random_state=random_state, **options)


def _kcenter_robust(k, *, random_state, features, labelled_mask, **options):
    return kcenter_robust(features, labelled_mask, k, **options)


def _kcenter_robust_size(n_labelled, n_candidates, k, options):
    """Every check ``kcenter_robust`` makes on its size and options, before any training."""
    check_robust_problem(n_labelled + n_candidates, k, **options)


def _kcenter_strategy(name, description, select, options_of, **extra):
    """A k-center strategy: on ``features`` and ``labelled_mask``, with the options of ``options_of()``."""
    return Strategy(
        name,
        "features",
        description,
        select,
        required=("features", "labelled_mask"),
        optional=None,
        options_of=options_of,
        **extra,
    )


def _deimos(k, *, random_state, preds, tau_inv, **options):
    return deimos(preds, k, tau_inv, **options)


def _build() -> dict:
    s = [
        Strategy(
            "random", "nothing", "uniform without replacement", _random, one_of=("n",) + _ARRAY_KEYWORDS, optional=()
        ),
        _top_strategy(
            "var_ratio", "probs_N_C", "1 - max_c p_c (modAL classifier_uncertainty), largest first", var_ratio
        ),
        _top_strategy(
            "margin",
            "probs_N_C",
            "p(top-1) - p(top-2) (modAL classifier_margin), SMALLEST first",
            margin,
            largest=False,
        ),
        _top_strategy(
            "margin_inverted",
            "probs_N_C",
            "the MC-dropout-entropy paper's code (a bug): the LARGEST margins first",
            margin,
            largest=True,
        ),
        _top_strategy(
            "entropy", "probs_N_C", "entropy of one deterministic pass (modAL classifier_entropy), nats", entropy
        ),
        _top_strategy(
            "entropy_mc", "probs_N_T_C", "EntropyD: entropy of the mean of T MC passes, nats", predictive_entropy
        ),
        _top_strategy(
            "variation_ratio_mc",
            "probs_N_T_C",
            "Gal's variation ratio 1 - f_mode / T over T MC passes",
            mc_variation_ratio,
            min_passes=2,
        ),
        _top_strategy(
            "mean_std", "probs_N_T_C", "mean over classes of the std over T MC passes", mean_std, min_passes=2
        ),
        Strategy(
            "bald",
            "probs_N_T_C",
            "BALD mutual information, nats",
            _bald,
            one_of=("probs_N_T_C", "log_probs_N_T_C", "log_probs_N_K_C"),
            min_passes=2,
        ),
        Strategy(
            "power_bald",
            "probs_N_T_C",
            "Power BALD (Kirsch et al. 2023): k points drawn with probability proportional to BALD^beta",
            _power_bald,
            required=("probs_N_T_C",),
            optional=("beta",),
            min_passes=2,
        ),
        Strategy(
            "batchbald",
            "log_probs_N_K_C",
            "greedy BatchBALD on shared-mask log-probs, nats",
            _batchbald,
            required=("log_probs_N_K_C",),
            optional=None,
            min_passes=2,
            options_of=lambda: batchbald,
        ),
        _top_strategy(
            "max_variance", "preds_N_T", "variance over T MC passes of a regression output", max_variance, min_passes=2
        ),
        _kcenter_strategy(
            "kcenter_greedy",
            "greedy k-center on penultimate features (Sener & Savarese 2018)",
            _kcenter_greedy,
            lambda: kcenter_greedy,
        ),
        _kcenter_strategy(
            "kcenter_robust",
            "robust k-center MILP (HiGHS) with an outlier budget",
            _kcenter_robust,
            lambda: kcenter_robust,
            check_size=_kcenter_robust_size,
        ),
        Strategy(
            "deimos",
            "fixed_J_S",
            "DEIMOS: greedy expected reduction of tr(V) on X_samp",
            _deimos,
            required=("preds", "tau_inv"),
            optional=None,
            min_passes=2,
            options_of=lambda: deimos,
        ),
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
