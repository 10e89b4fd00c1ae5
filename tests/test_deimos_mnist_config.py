"""Notebook 05's configurations are refused before anything trains (profile cross-checks, loop.validate)."""
import pytest

from mcal_utils import loop, profiles


@pytest.mark.parametrize("overrides, message", [
    (dict(n_seeds=1), "n_seeds >= 2"),
    (dict(experiments=("b1", "b7")), "experiments"),
    (dict(experiments=("b1", "b1")), "experiments"),
    (dict(experiments=()), "experiments"),
    (dict(n_candidates_10=60), "b100: n_candidates=60 is smaller than its batch of 100"),
    (dict(n_candidates_79=20), "b25: n_candidates=20 is smaller than its batch of 25"),
    (dict(pool_size=100), "leaves fewer than n_candidates"),
    (dict(pixel_scale="0-255"), "pixel_scale"),
    (dict(batching="torch"), "batching"),
    (dict(outlier_fraction=1.0), "outlier_fraction"),
    (dict(kcenter_time_limit=0.0), "kcenter_time_limit"),
])
def test_profile_refuses_bad_knobs(overrides, message):
    with pytest.raises(ValueError, match=message):
        profiles.resolve("05_deimos_mnist", "smoke", **overrides)


def test_every_profile_of_05_is_valid():
    for name in profiles.PROFILE_NAMES:
        s = profiles.resolve("05_deimos_mnist", name)
        assert {"b1", "b100"} <= set(s.experiments) and s.n_seeds >= 2
        # the paired comparisons a finding rests on need >= 8 seeds outside smoke; smoke and paper run every experiment
        assert name == "smoke" or s.n_seeds >= 8
        assert name == "default" or set(s.experiments) == {"b1", "b25", "b100"}
    paper = profiles.resolve("05_deimos_mnist", "paper")
    assert (paper.n_acq_b1, paper.n_steps_b25, paper.n_steps_b100, paper.epochs, paper.mc_samples,
            paper.eval_mc_samples, paper.n_candidates_79, paper.n_candidates_10, paper.pixel_scale) == \
        (200, 20, 10, 300, 50, 100, 2500, 2000, "raw")


def _mnist79_config(**changes):
    base = loop.ExperimentConfig(
        task="mnist79", task_options={"pixel_scale": "raw"}, model="deimos_mnist79", strategy="kcenter_robust",
        initial_size=10, acquisition_size=25, n_steps=2, val_size=0, n_candidates=2500,
        strategy_options={"outlier_fraction": 0.001, "time_limit": 5.0},
        train=dict(optimizer="adam", lr=0.001, epochs=1, batch_size=128, l2_dense=0.0005, checkpoint="last"))
    return base.replace(**changes)


@pytest.fixture(scope="module")
def mnist_available():
    from mcal_utils import data

    try:
        data.load_mnist()
    except FileNotFoundError as e:
        pytest.skip(f"real MNIST unavailable: {e}")


def test_robust_kcenter_at_paper_size_validates_and_too_large_is_refused(mnist_available):
    loop.validate(_mnist79_config())                   # 10 + 25 labelled + 2500 candidates: fits
    too_big = _mnist79_config(strategy_options={"outlier_fraction": 0.001, "max_points": 2000})
    with pytest.raises(ValueError, match="max_points=2000"):
        loop.validate(too_big)
    with pytest.raises(ValueError, match="pixel_scale"):
        loop.validate(_mnist79_config(task_options={"pixel_scale": "bytes"}))
