"""Cross-checks against peer libraries: batchbald_redux (BatchBALD) and baal (BALD)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mcal_utils.acquisition.bald import bald, batchbald

_PEERS = Path(sys.prefix) / "peers"  # batchbald_redux is installed --no-deps here
if _PEERS.is_dir() and str(_PEERS) not in sys.path:
    sys.path.append(str(_PEERS))

pytestmark = pytest.mark.peer


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch):
    """batchbald_redux runs thousands of tiny matmuls: one thread is several times faster."""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    toma = sys.modules.get("toma")
    if toma is None:
        try:
            import toma
        except ImportError:
            toma = None
    if toma is not None and hasattr(toma, "gc_cuda"):
        # toma (batchbald_redux's chunker) runs gc.collect() around every chunk: seconds per call in a
        # pytest process full of objects; it only frees CUDA memory, so skip it on CPU
        monkeypatch.setattr(toma, "gc_cuda", lambda: None)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _log_probs(seed, N, K, C, scale=2.0):
    """Strictly positive probabilities (batchbald_redux gives NaN for exact zeros)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(N, K, C)) * scale
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


@pytest.mark.parametrize("seed, N, K, C, b", [(0, 60, 20, 10, 4), (1, 100, 10, 4, 4), (2, 60, 30, 3, 3)])
def test_batchbald_matches_batchbald_redux_exact(seed, N, K, C, b):
    redux = pytest.importorskip("batchbald_redux.batchbald")
    lp = _log_probs(seed, N, K, C)
    M = C ** (b - 1)  # both sides exact for every pick
    theirs = redux.get_batchbald_batch(torch.tensor(lp), b, M, dtype=torch.double)
    ours = batchbald(lp, b, num_samples=M)
    assert ours.indices.tolist() == list(theirs.indices)
    np.testing.assert_allclose(ours.scores, theirs.scores, rtol=1e-9, atol=1e-10)


def test_batchbald_sampled_close_to_batchbald_redux():
    redux = pytest.importorskip("batchbald_redux.batchbald")
    lp = _log_probs(3, 80, 20, 10)
    M = 10_000  # exact while at most 4 points are picked (10^4), sampled for the 6th pick
    with torch.random.fork_rng():  # batchbald_redux samples with torch's global generator
        torch.manual_seed(0)
        theirs = redux.get_batchbald_batch(torch.tensor(lp), 6, M, dtype=torch.double)
    ours = batchbald(lp, 6, num_samples=M, random_state=0)
    assert ours.indices[:5].tolist() == list(theirs.indices[:5])
    np.testing.assert_allclose(ours.scores[:5], theirs.scores[:5], rtol=1e-9)
    # same 5 picked points, different random configurations: the sampled joint scores agree closely
    exact = batchbald(lp, 6, num_samples=10**5)
    assert ours.scores[5] == pytest.approx(exact.scores[5], rel=0.04)
    assert theirs.scores[5] == pytest.approx(exact.scores[5], rel=0.04)


@pytest.mark.parametrize("seed, N, T, C", [(0, 300, 20, 10), (1, 100, 3, 2)])
def test_bald_matches_baal(seed, N, T, C):
    heuristics = pytest.importorskip("baal.active.heuristics")
    probs_N_T_C = np.exp(_log_probs(seed, N, T, C))
    # baal wants [n_sample, n_classes, n_iterations]
    theirs = heuristics.BALD().get_uncertainties(probs_N_T_C.transpose(0, 2, 1).copy())
    np.testing.assert_allclose(bald(probs_N_T_C), theirs, rtol=0, atol=1e-5)
    np.testing.assert_allclose(bald(probs_N_T_C), theirs, rtol=1e-9, atol=1e-12)  # same formula in float64
    # same ranking: baal's order is the descending argsort (ties aside)
    ranks = heuristics.BALD()(probs_N_T_C.transpose(0, 2, 1).copy())
    assert ranks[0] == int(np.argmax(bald(probs_N_T_C)))
