"""DEIMOS Figure 1 synthetic 1-D regression data (DEIMOS section 5.1 and appendix D).

A random tanh MLP ``1 -> 32 -> 32 -> 1`` with every weight and bias drawn N(0, 0.5^2) is the
true function ``f``; inputs live in [-10, 10]; observations are ``f(x) + N(0, noise_std^2)``.

Choices (the paper gives the sizes, not the sampling scheme; docs/REFERENCES.md):

* test: the 201-point grid ``linspace(-10, 10, 201)``, noise-free;
* pool: 201 inputs uniform on [-10, 10], noisy targets;
* labelled sample: ``n_train = 100`` inputs, sparse in [-2, 2]: exactly ``n_sparse = 5`` of them
  uniform on [-2, 2] and the rest uniform on [-10, -2) u (2, 10] (uniform sampling would put
  20 there), noisy targets. (The repo's 1D run started from 70 labelled points: pass n_train=70.)
* ``noise_std = 0.1`` (not stated in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import checks

X_RANGE = (-10.0, 10.0)
HIDDEN = (32, 32)
WEIGHT_STD = 0.5


@dataclass(frozen=True)
class Toy1D:
    """Inputs ``x_* (N, 1) float32``, targets ``y_* (N,) float32``; ``x_grid (G, 1)`` / ``f_grid (G,)``
    the noise-free function on a fine grid for plots; ``weights`` the generating MLP (W1, b1, W2, b2, W3, b3)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_pool: np.ndarray
    y_pool: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_grid: np.ndarray
    f_grid: np.ndarray
    noise_std: float
    sparse_interval: tuple[float, float]
    weights: tuple[np.ndarray, ...]

    def f(self, x) -> np.ndarray:
        """The noise-free generating function at ``x`` (any shape) -> same shape, float64."""
        return mlp_function(self.weights, x)


def mlp_function(weights: tuple[np.ndarray, ...], x) -> np.ndarray:
    """``tanh(tanh(x W1 + b1) W2 + b2) W3 + b3`` evaluated elementwise over ``x`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    W1, b1, W2, b2, W3, b3 = weights
    h = np.tanh(x.reshape(-1, 1) @ W1 + b1)
    h = np.tanh(h @ W2 + b2)
    return (h @ W3 + b3).reshape(x.shape)


def random_mlp_weights(rng: np.random.Generator, hidden=HIDDEN, std: float = WEIGHT_STD) -> tuple[np.ndarray, ...]:
    sizes = (1, *hidden, 1)
    out = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        out += [rng.normal(0.0, std, size=(a, b)), rng.normal(0.0, std, size=b)]
    return tuple(out)


def synthetic_1d(
    random_state: int | np.random.Generator = 0,
    *,
    n_train: int = 100,
    n_sparse: int = 5,
    sparse_interval: tuple[float, float] = (-2.0, 2.0),
    n_pool: int = 201,
    n_test: int = 201,
    n_grid: int = 1001,
    noise_std: float = 0.1,
) -> Toy1D:
    """DEIMOS's 1-D toy data under ``random_state`` (module docstring for the sampling scheme)."""
    lo, hi = X_RANGE
    a, b = map(float, sparse_interval)
    if not lo < a < b < hi:
        raise ValueError(f"sparse_interval must lie strictly inside {X_RANGE}, got {sparse_interval}")
    if not 0 <= n_sparse <= n_train:
        raise ValueError(f"need 0 <= n_sparse <= n_train, got n_sparse={n_sparse}, n_train={n_train}")
    if min(n_pool, n_test, n_grid) < 2 or noise_std < 0:
        raise ValueError("n_pool, n_test, n_grid must be >= 2 and noise_std >= 0")
    rng = checks.check_random_state(random_state)
    weights = random_mlp_weights(rng)
    inner = rng.uniform(a, b, size=n_sparse)
    # outside [a, b]: uniform on [lo, a) u (b, hi] by shifting a uniform draw on a set of the same length
    u = rng.uniform(lo, lo + (a - lo) + (hi - b), size=n_train - n_sparse)
    outer = np.where(u < a, u, u + (b - a))
    x_train = rng.permutation(np.concatenate([inner, outer]))
    x_pool = rng.uniform(lo, hi, size=n_pool)
    x_test = np.linspace(lo, hi, n_test)
    x_grid = np.linspace(lo, hi, n_grid)

    def noisy(x):
        return mlp_function(weights, x) + rng.normal(0.0, noise_std, size=x.shape)

    y_train, y_pool = noisy(x_train), noisy(x_pool)
    col = lambda v: v.astype(np.float32)[:, None]  # noqa: E731
    return Toy1D(
        x_train=col(x_train),
        y_train=y_train.astype(np.float32),
        x_pool=col(x_pool),
        y_pool=y_pool.astype(np.float32),
        x_test=col(x_test),
        y_test=mlp_function(weights, x_test).astype(np.float32),
        x_grid=col(x_grid),
        f_grid=mlp_function(weights, x_grid).astype(np.float32),
        noise_std=float(noise_std),
        sparse_interval=(a, b),
        weights=weights,
    )
