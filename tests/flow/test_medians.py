"""Running medians against scipy.ndimage's median filter, and the generated selection networks."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage

from genre_hpc.flow import median_kernels, medians


def _spectrogram_like(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.random(shape) ** 4).astype(np.float32)
    x[..., 3:9] = x[..., 3:4]  # runs of equal values: ties inside a window
    x[..., 0, :] = 0.0  # a silent band
    return x


def _median_of_windows(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    pad = [(0, 0)] * x.ndim
    pad[axis] = (size // 2, size // 2)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, pad, mode="symmetric"), size, axis=axis)
    return np.median(windows, axis=-1).astype(x.dtype)


@pytest.mark.parametrize("size", [9, 31, 5, 7])  # the compiled networks, then bottleneck's
@pytest.mark.parametrize("axis", [-1, -2, 0])
def test_running_median_is_the_median_of_each_reflected_window(size, axis):
    x = _spectrogram_like((3, 40, 50), seed=size)
    got = medians.running_median(x, size, axis=axis)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, _median_of_windows(x, size, axis))


@pytest.mark.parametrize("size", [9, 31])
@pytest.mark.parametrize("axis", [-1, -2])
def test_running_median_is_scipys_median_filter_as_librosa_calls_it(size, axis):
    x = _spectrogram_like((3, 40, 50), seed=size)
    footprint = [1, 1, 1]
    footprint[axis] = size
    expected = scipy.ndimage.median_filter(x, size=footprint, mode="reflect")
    np.testing.assert_array_equal(medians.running_median(x, size, axis=axis), expected)


@pytest.mark.parametrize("size", [31, 7])
def test_running_median_of_a_window_wider_than_the_series(size):
    # 31 frames of a 12-frame series: the reflected edges fill the window. (scipy 1.17's
    # median_filter answers NaN or wrong values for some windows over twice the series' length.)
    x = _spectrogram_like((2, 6, 3), seed=1)
    np.testing.assert_array_equal(medians.running_median(x, size, axis=-1), _median_of_windows(x, size, -1))


@pytest.mark.parametrize("size", [9, 31, 1])
@pytest.mark.parametrize(
    "make, axis",
    [
        (lambda x: x[0, 0], 0),  # one series
        (lambda x: x[0], -1),  # 2-d
        (lambda x: x[None].astype(np.float64), 2),  # 4-d, float64
        (lambda x: x[:, ::2, ::-1], 1),  # not contiguous
    ],
)
def test_running_median_of_other_shapes_and_dtypes(size, make, axis):
    x = make(_spectrogram_like((3, 40, 50), seed=2))
    got = medians.running_median(x, size, axis=axis)
    assert got.shape == x.shape and got.dtype == x.dtype
    np.testing.assert_array_equal(got, _median_of_windows(x, size, axis))


def test_running_median_needs_an_odd_size():
    with pytest.raises(ValueError, match="odd"):
        medians.running_median(np.zeros((2, 5), np.float32), 4, axis=-1)


def test_network_of_nine_selects_the_median_of_every_binary_input():
    # the 0-1 principle: a comparator network that selects the k-th of every 0/1 input selects it
    # of every input
    for bits in itertools.product((0, 1), repeat=9):
        wires = list(bits)
        for i, j in medians.network(9):
            wires[i], wires[j] = min(wires[i], wires[j]), max(wires[i], wires[j])
        assert wires[4] == sorted(bits)[4]


def test_network_of_thirty_one_selects_the_median():
    rng = np.random.default_rng(0)
    net = np.array(medians.network(31))
    # 2 ** 31 binary inputs are too many: 20,000 of them at random, and small integers with ties
    for values in (rng.integers(0, 2, (20_000, 31)), rng.integers(0, 6, (20_000, 31))):
        wires = values.T.copy()
        for i, j in net:
            wires[i], wires[j] = np.minimum(wires[i], wires[j]), np.maximum(wires[i], wires[j])
        np.testing.assert_array_equal(wires[15], np.sort(values, axis=1)[:, 15])


def test_network_needs_an_odd_size():
    with pytest.raises(ValueError, match="odd"):
        medians.network(8)


def test_the_compiled_kernels_are_the_generated_source():
    assert Path(median_kernels.__file__).read_text(encoding="utf-8") == medians.kernel_source()
