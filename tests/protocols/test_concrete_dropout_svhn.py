"""Notebook 01's protocol: the twin nets (Concrete Dropout vs fixed p) on a tiny MNIST-32 task."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from mcal_utils import compare, data, references, stats
from mcal_utils.models import build_model
from mcal_utils.plots import concrete_dropout as twin_plots
from mcal_utils.protocols import concrete_dropout_svhn as protocol


@pytest.fixture(scope="module")
def digits():
    return protocol.load_digit_task("mnist32", n_train=48, n_val=16, n_test=40, seed=3)


@pytest.fixture(scope="module")
def config():
    return protocol.train_config(epochs=2, batch_size=16, lr=0.001, momentum=0.9)


@pytest.fixture(scope="module")
def runs(digits, config):
    lines = []
    r = protocol.train_twins(digits.task, fixed_p=0.2, config=config, T=3, seeds=[3, 4], log=lines.append)
    assert len(lines) == 4 and lines[0].startswith("seed 3   Concrete Dropout:")
    return r


def test_mnist32_split_is_seeded_and_disjoint(digits):
    t = digits.task
    assert (len(t.y_train), len(t.y_val), len(t.y_test)) == (48, 16, 40) and digits.name == "MNIST-32"
    again = protocol.load_digit_task("mnist32", n_train=48, n_val=16, n_test=40, seed=3).task
    np.testing.assert_array_equal(again.x_val, t.x_val)
    train_rows = {x.tobytes() for x in t.x_train}
    assert not any(x.tobytes() in train_rows for x in t.x_val)


def test_auto_falls_back_to_mnist32_without_svhn(tmp_path, monkeypatch):
    (tmp_path / "mnist").symlink_to(data.data_dir() / "mnist")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    digits = protocol.load_digit_task("auto", n_train=8, n_val=4, n_test=8, seed=0)
    assert digits.name == "MNIST-32" and "train_32x32.mat" in digits.why_not_svhn
    assert "SVHN was not used" in protocol.dataset_text(digits)
    with pytest.raises(FileNotFoundError):
        protocol.load_digit_task("svhn", n_train=8, n_val=4, n_test=8, seed=0)
    with pytest.raises(ValueError):
        protocol.load_digit_task("cifar", n_train=8, n_val=4, n_test=8, seed=0)


def test_twin_specs_and_initial_rate():
    specs = protocol.twin_specs(0.2)
    assert list(specs) == [protocol.CONCRETE, "fixed p = 0.2"] and specs["fixed p = 0.2"]["p"] == 0.2
    with pytest.raises(ValueError):
        protocol.twin_specs(1.0)
    rates = build_model("kirillov_cnn", seed=0, dropout="concrete").dropout_rates()
    np.testing.assert_allclose(rates, [protocol.INITIAL_P] * len(protocol.LAYER_NAMES), rtol=1e-6)


def test_runs_tables_and_comparisons(runs, digits):
    y = digits.task.y_test
    assert runs.seeds == (3, 4) and len(runs.per_seed) == 4 and runs.mc_key == "MC mean, T = 3"
    assert set(runs.probs) == {(m, how) for m in runs.names for how in (protocol.DETERMINISTIC, runs.mc_key)}
    quality = protocol.quality_table(runs, y)
    first_mc = runs.per_seed.query("seed == 3").set_index("model")["accuracy (MC mean)"]
    for m in runs.names:  # the first seed's table and the per-seed rows come from the same predictions
        assert quality.loc[(m, runs.mc_key), "test accuracy"] == first_mc[m]
    c = protocol.accuracy_comparison(runs)
    wide = runs.per_seed.pivot(index="seed", columns="model")["accuracy (MC mean)"]
    np.testing.assert_allclose(c.differences_S, (wide[runs.names[0]] - wide[runs.names[1]]).to_numpy())
    assert c.verdict == compare.NOT_RESOLVED  # two seeds never resolve
    cal = protocol.calibration_comparisons(runs)
    assert set(cal) == set(runs.names) and not cal[protocol.CONCRETE].higher_is_better
    right = {m: runs.probs[(m, runs.mc_key)].argmax(1) == y for m in runs.names}
    assert protocol.first_pair_mcnemar(runs, y) == stats.mcnemar_exact(*right.values())
    rates = protocol.rates_table(runs, digits, 2)
    assert rates.shape == (4, 3) and (rates.iloc[:, 0] == protocol.INITIAL_P).all()
    assert protocol.paper_rates_table().iloc[:, 0].tolist() == list(references.KIRILLOV_LEARNED_P.value)
    assert protocol.paper_accuracy_table(runs)["test accuracy"].tolist() == [
        references.KIRILLOV_ACC_CONCRETE.value,
        references.KIRILLOV_ACC_FIXED.value,
    ]


def test_texts_and_finding(runs, digits, config):
    y = digits.task.y_test
    quality = protocol.quality_table(runs, y)
    mcnemar = protocol.first_pair_mcnemar(runs, y)
    assert "MNIST-32, 48 training images" in protocol.what_ran_text(runs, digits, config)
    acc = protocol.accuracy_text(runs, quality, mcnemar, digits, 0.2, config)
    assert "**Over 2 twin pairs**" in acc and "only *difference*" not in acc
    assert "barely left" in protocol.rates_text(runs, config, 48) or "fc1" in protocol.rates_text(runs, config, 48)
    assert protocol.calibration_text(runs, quality).startswith("**Calibration.**")
    finding = protocol.finding(runs, digits, config, 0.2, 48)
    assert finding.startswith("**Central claim** (the author's repository")
    assert "not tested here: needs SVHN" in finding and "est. " in finding
    assert f"**{compare.NOT_RESOLVED}**" in finding
    assert protocol.paper_scale_seconds(runs, config, 48, len(y)) > 0
    assert not protocol.at_paper_scale(digits, config, 0)


def test_twin_figures(runs, digits):
    fig = twin_plots.rates_and_validation(runs, digits.name, 48)
    ax_p, ax_v = fig.axes
    assert len(ax_p.lines) == 8  # four layers and four stars
    assert len(ax_v.lines) == 4  # two validation curves and their best epochs
    fig = twin_plots.reliability_grid(runs, digits.task.y_test, digits.name)
    assert len(fig.axes) == 4
