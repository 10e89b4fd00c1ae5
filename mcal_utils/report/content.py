"""What the index says beside the computed results: the two papers, what each notebook asks, the
glossary, and what a profile scales down against the ``paper`` profile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcal_utils import profiles

__all__ = ["Paper", "PAPERS", "QUESTIONS", "GLOSSARY", "ScaledSetting", "question", "scaled_down", "format_value"]


@dataclass(frozen=True)
class Paper:
    """A paper the report re-runs: ``short`` is how the pages cite it, ``link`` its public code."""

    short: str
    title: str
    authors: str
    link: str
    summary: str


PAPERS: dict[str, Paper] = {
    "entropy": Paper(
        short="the MC-dropout-entropy paper (Kirillov, 2026)",
        title="Can Monte Carlo dropout help you to sample better examples for Active Learning?",
        authors="Daniil Kirillov (CiMEC, University of Trento), January 2026",
        link="https://github.com/nealkafree/MonteCarloSampling",
        summary="SVHN, a small CNN with Concrete Dropout, five sampling strategies (Random, VarRatio, "
        "Margin, Entropy, EntropyD = entropy of the mean of T = 50 MC-dropout passes); "
        "accuracy-vs-budget curves, highest accuracy, AUBC and TP.",
    ),
    "deimos": Paper(
        short="DEIMOS (Nagpal & Knowles)",
        title="Active Learning in CNNs via Expected Improvement Maximization",
        authors="Nagpal & Knowles",
        link="https://github.com/unagpal/Active-Learning-in-CNNs-via-Expected-Improvement-Maximization",
        summary="DEIMOS (Dropout-based Expected IMprOvementS): greedy batch-mode active learning that maximises "
        "the expected drop of the trace of a "
        "joint predictive covariance built from fixed-mask MC-dropout predictions; 1-D toy, "
        "5' splicing, UTKFace age, MNIST 7-vs-9 and 0-9; greedy-vs-optimal simulation.",
    ),
}

# What each notebook asks, and which papers it reproduces (keys of PAPERS), by the notebook's two-digit
# prefix. A notebook not listed here is still reported: its question is its introduction (see question()).
QUESTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "00": (
        "Which data sets do the two papers use, and do our loaders reproduce their sizes, "
        "class counts and preprocessing?",
        ("entropy", "deimos"),
    ),
    "01": (
        "Does Concrete Dropout learn the dropout rates the MC-dropout-entropy author reports, and "
        "does it make the "
        "CNN more accurate or better calibrated than a fixed rate?",
        ("entropy",),
    ),
    "02": (
        "Which sampling strategy reaches a given accuracy with the fewest labels "
        "(accuracy-vs-budget curves, AUBC, TP)?",
        ("entropy",),
    ),
    "03": (
        "On the 1-D toy, does a DEIMOS batch fill the sparse region and cut the test error more "
        "than a random batch (DEIMOS Figure 1)?",
        ("deimos",),
    ),
    "04": ("How far from the best possible batch is DEIMOS's greedy batch (DEIMOS Appendix A)?", ("deimos",)),
    "05": (
        "On MNIST 7-vs-9 (batch 1 and 25) and 0–9 (batch 100), does DEIMOS reach a higher accuracy "
        "with fewer labels than BALD, BatchBALD, MaxEnt, k-center and random sampling?",
        ("deimos",),
    ),
    "06": (
        "On regression (rotated-MNIST angles offline; UTKFace age and 5' splicing when their files are "
        "present), does DEIMOS lower the test error faster than maximum variance and random sampling?",
        ("deimos",),
    ),
    "07": (
        "How does one run MC-dropout active learning on one's own PyTorch model with plain nn.Dropout layers?",
        ("entropy", "deimos"),
    ),
}

GLOSSARY: list[tuple[str, str]] = [
    (
        "AUBC",
        "Area under the budget curve: the mean of the trapezoids under the test-accuracy vs "
        "acquisition-step curve (1 = a perfect model at every step). Higher is better.",
    ),
    (
        "TP",
        "True performance of a strategy (Reyes, Altalhi & Ventura, 2018), as in the "
        "MC-dropout-entropy paper: rewards accuracy gained between steps and penalises accuracy "
        "lost. Higher is better.",
    ),
    (
        "EI",
        "Expected improvement: DEIMOS's score of a candidate, the expected drop of the trace of "
        "the joint predictive covariance over X_samp once the candidate is labelled.",
    ),
    (
        "X_samp",
        "DEIMOS's representative sample: a random subset of the training set and the pool on "
        "which the joint predictive covariance is built; its pool members are the candidates.",
    ),
    (
        "J",
        "The number of dropout masks DEIMOS draws once and shares by every point (50 in the paper); "
        "the covariance has rank at most J.",
    ),
    (
        "τ",
        "The observation precision: τ⁻¹ (noise variance) is added to the diagonal of the "
        "predictive covariance before conditioning on a labelled point.",
    ),
]


def question(name: str, intro: str) -> tuple[str, tuple[Paper, ...]]:
    """What notebook ``name`` asks and the papers it reproduces; ``intro`` (its first paragraph) and no
    paper when :data:`QUESTIONS` does not list it."""
    text, keys = QUESTIONS.get(name[:2], (intro, ()))
    return text, tuple(PAPERS[k] for k in keys)


@dataclass(frozen=True)
class ScaledSetting:
    """One knob where a profile differs from the ``paper`` profile: its value under each, as read."""

    key: str
    value: str
    paper: str


def format_value(key: str, value: Any) -> str:
    """A profile value as a reader reads it: ``0`` of a "0 = all" knob is "all"; a tuple is listed."""
    rule = profiles.RULES.get(key)
    if value == 0 and not isinstance(value, bool) and rule is not None and rule.note == "0 = all":
        return "all"
    if isinstance(value, tuple):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def scaled_down(name: str, profile: str) -> list[ScaledSetting]:
    """Every setting of notebook ``name`` where ``profile`` differs from the ``paper`` profile.

    The ``paper`` profile is this project's full-size setting: it follows the papers where they fix a value,
    but some of its values (e.g. the number of seeds) are the project's own, so the pages label them as the
    profile's, never as "the paper's". Empty for the ``paper`` profile, an unknown notebook or a profile
    the notebook does not define.
    """
    entry = profiles.NOTEBOOKS.get(name)
    if entry is None or profile == "paper" or profile not in entry or "paper" not in entry:
        return []
    ours, paper = entry[profile], entry["paper"]
    return [
        ScaledSetting(k, format_value(k, ours[k]), format_value(k, paper[k]))
        for k in ours
        if k in paper and ours[k] != paper[k]
    ]
