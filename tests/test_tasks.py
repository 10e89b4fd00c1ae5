"""The pixel-scale option of the MNIST tasks (DEIMOS fed raw 0-255 pixels; we default to [0, 1])."""

import numpy as np
import pytest

from mcal_utils import data
from mcal_utils.data import tasks


@pytest.fixture(scope="module")
def mnist_available():
    try:
        data.load_mnist()
    except FileNotFoundError as e:  # no cache and no way to build one on this machine
        pytest.skip(f"real MNIST unavailable: {e}")


@pytest.mark.parametrize("name", ["mnist", "mnist79", "mnist32", "rotated_mnist"])
def test_raw_is_255_times_unit(mnist_available, name):
    kw = dict(n_train=120, n_test=40, random_state=5)
    unit = data.load_task(name, **kw)
    raw = data.load_task(name, pixel_scale="raw", **kw)
    default = data.load_task(name, **kw)
    np.testing.assert_array_equal(unit.x_train, default.x_train)  # "unit" is the default
    assert raw.x_train.dtype == np.float32 and raw.x_train.shape == unit.x_train.shape
    np.testing.assert_array_equal(raw.y_train, unit.y_train)
    np.testing.assert_array_equal(raw.y_test, unit.y_test)
    assert 0.0 <= unit.x_train.min() and unit.x_train.max() <= 1.0 + 1e-6
    assert raw.x_train.max() > 1.0 and raw.x_train.max() <= 255.0 + 1e-3  # bilinear rotation: float32 rounding
    # same images, other scale (rotation is linear in the pixel values, so it commutes with the scale)
    np.testing.assert_allclose(raw.x_train, 255.0 * unit.x_train, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(raw.x_test, 255.0 * unit.x_test, rtol=1e-5, atol=1e-3)
    assert "0-255" in raw.description and "0-255" not in unit.description


def test_raw_pixels_are_the_uint8_values(mnist_available):
    raw = data.load_task("mnist79", pixel_scale="raw")
    u_tr, l_tr, _, _ = data.mnist.mnist_uint8_shared()
    keep = np.isin(l_tr, (7, 9))
    np.testing.assert_array_equal(raw.x_train[:, 0], u_tr[keep].astype(np.float32))
    assert np.all(raw.x_train == np.round(raw.x_train))


def test_pixel_scale_refused_where_it_does_not_apply_or_is_unknown(mnist_available):
    with pytest.raises(ValueError, match=r"pixel_scale must be one of \['unit', 'raw'\]"):
        data.load_task("mnist79", pixel_scale="255")
    with pytest.raises(ValueError, match="unknown option"):
        data.load_task("toy1d", pixel_scale="raw")
    assert tasks.PIXEL_SCALES == ("unit", "raw")
    assert all("pixel_scale" in tasks.TASK_OPTIONS[n] for n in ("mnist", "mnist79", "mnist32", "rotated_mnist"))
