"""mcal_utils.data.summaries: the summaries and count checks of notebook 00."""

import numpy as np
import pytest

from mcal_utils import data, references
from mcal_utils.data import summaries


def test_svhn_arithmetic_on_the_official_counts_gives_the_papers_splits():
    a = summaries.svhn_arithmetic()
    assert (a.pool, a.val, a.test) == (
        references.KIRILLOV_N_TRAIN.value,
        references.KIRILLOV_N_VAL.value,
        references.KIRILLOV_SVHN_BALANCED.value[1],
    )
    assert a.matches_paper
    assert a.per_class.loc["total", "train (raw)"] == sum(data.SVHN_TRAIN_COUNTS)
    assert (a.per_class.loc[list(range(10)), "train kept"] == min(data.SVHN_TRAIN_COUNTS)).all()
    assert a.steps.loc["pool = int(0.8 kept)", "test file"] == "—"
    assert a.steps.loc["smallest class (digit)", "MC-dropout-entropy paper (paper / its code)"] == "9 / 9"
    other = summaries.svhn_arithmetic([10] * 10, [5] * 10)
    assert (other.pool, other.val, other.test) == (80, 20, 50) and not other.matches_paper
    assert "NOT the paper's" in summaries.svhn_split_text(other)


def test_mnist_count_checks():
    mn = data.load_mnist()
    check = summaries.mnist_count_check(mn)
    assert check.ok and check.table.loc["total", "train"] == 60000
    shifted = data.MNIST(x_train=mn.x_train, y_train=np.roll(mn.y_train, 1) * 0, x_test=mn.x_test, y_test=mn.y_test)
    assert not summaries.mnist_count_check(shifted).ok
    t79 = data.load_task("mnist79")
    check79 = summaries.mnist79_count_check(t79)
    assert check79.ok and check79.table.loc["total"].tolist() == list(references.DEIMOS_MNIST79_SIZES.value)
    assert summaries.mnist79_text(check79, t79).startswith("12,214 train/pool and 2,037 test images: exactly")
    shapes = summaries.split_shapes({"train": (mn.x_train[:5], mn.y_train[:5])})
    assert shapes.loc[0, "images"] == "(5, 1, 28, 28)" and shapes.loc[0, "label_dtype"] == "int64"


def test_small_summaries():
    x = np.zeros((2, 1, 8, 8), np.float32)
    x[:, :, 3, 3] = 1.0
    assert summaries.border_max(x) == 0.0
    x[0, 0, 0, 5] = 0.5
    assert summaries.border_max(x) == 0.5
    a = summaries.angle_summary(np.array([-10.0, 0.0, 10.0], np.float32), 45.0)
    assert (a.n, a.low, a.high, a.mean) == (3, -10.0, 10.0, 0.0)
    assert a.std == pytest.approx(np.sqrt(200 / 3)) and a.uniform_std == pytest.approx(45 / np.sqrt(3))
    ages = summaries.age_parse_examples(["25_0_1_x.jpg", "face.jpg"])
    assert ages.loc[0, "age"] == 25 and ages.loc[1, "status"].startswith("malformed")
    onehot = summaries.one_hot_example("ACGTN" + "A" * 96, n_columns=5)
    assert onehot.to_numpy().tolist() == [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]]
    assert summaries.usage_examples() == (0.75, 0.0)


def test_toy_summary_counts_the_sparse_interval():
    toy = data.synthetic_1d(0)
    s = summaries.toy_summary(toy)
    low, high = toy.sparse_interval
    assert s.n_inside == int(np.sum((toy.x_train[:, 0] >= low) & (toy.x_train[:, 0] <= high)))
    assert s.n_labelled == len(toy.y_train) and s.f_min <= s.f_max
    text = summaries.toy_text(s, toy)
    assert f"{references.DEIMOS_TOY_MSE.value[0]} before" in text


def test_available_files_and_finding(tmp_path):
    assert summaries.available_files(tmp_path) == {"svhn": False, "utkface": False, "splicing": False}
    for name in summaries.SVHN_FILES:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "UTKFace").mkdir()
    assert summaries.available_files(tmp_path) == {"svhn": True, "utkface": True, "splicing": False}
    mn = data.load_mnist()
    t79 = data.load_task("mnist79")
    finding = summaries.finding(
        summaries.mnist_count_check(mn),
        mn,
        summaries.mnist79_count_check(t79),
        t79,
        summaries.svhn_arithmetic(),
        {"svhn": False, "utkface": False, "splicing": True},
    )
    assert finding.startswith("**Central claim** (data check, not a comparison")
    assert "3 of 3 counts are as stated" in finding and "SVHN, UTKFace are not on this machine" in finding
    table = summaries.paper_data_table()
    assert "60,000 train / 10,000 test" in table.loc["MNIST 0–9", "what the papers say"]
