"""What the runs acquired, read from load_results' `acquired` column: order, seeds, class shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcal_utils.protocols import picks


def frame(runs: dict) -> pd.DataFrame:
    """{(method, seed): [acquired of step 0, step 1, ...]} -> rows like loop.load_results (shuffled)."""
    rows = [
        {"method": m, "seed": s, "step": step, "acquired": list(acq)}
        for (m, s), steps in runs.items()
        for step, acq in enumerate(steps)
    ]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)


def test_picks_follow_seed_and_step_order_whatever_the_row_order():
    df = frame({("A", 1): [[7, 8], [3], []], ("A", 0): [[5], [9, 2], []], ("B", 0): [[1], [4], []]})
    got = picks.picks_by_seed(df, "A")
    assert list(got) == [0, 1]
    np.testing.assert_array_equal(got[0].indices_N, [5, 9, 2])
    np.testing.assert_array_equal(got[0].steps_N, [0, 1, 1])
    np.testing.assert_array_equal(got[1].first_batch, [7, 8])
    assert got[1].indices_N.dtype == np.int64
    np.testing.assert_array_equal(picks.all_picks(df, "A"), [5, 9, 2, 7, 8, 3])
    with pytest.raises(ValueError, match="not in the results"):
        picks.picks_by_seed(df, "C")
    with pytest.raises(ValueError, match="lack column"):
        picks.picks_by_seed(df.drop(columns="acquired"), "A")


def test_class_shares_count_every_pick_of_every_seed():
    labels = np.array([0, 1, 1, 0, 2, 2, 2, 1, 0, 0])
    df = frame({("A", 0): [[0, 1], []], ("A", 1): [[4], []], ("B", 0): [[], []]})
    shares = picks.class_shares(df, labels, 3)
    np.testing.assert_allclose(shares["A"], [1 / 3, 1 / 3, 1 / 3])
    assert "B" not in shares  # picked nothing


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.lists(st.integers(0, 50), max_size=4), min_size=1, max_size=4), min_size=1, max_size=4))
def test_property_all_picks_is_the_concatenation_in_seed_then_step_order(runs):
    df = frame({("A", s): steps for s, steps in enumerate(runs)})
    want = [i for steps in runs for acq in steps for i in acq]
    np.testing.assert_array_equal(picks.all_picks(df, "A"), np.asarray(want, dtype=np.int64))
    by_seed = picks.picks_by_seed(df, "A")
    for s, steps in enumerate(runs):
        np.testing.assert_array_equal(by_seed[s].steps_N, [k for k, acq in enumerate(steps) for _ in acq])
