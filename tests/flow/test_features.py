"""The package's features against librosa's own functions, called the plain way on each segment."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from genre_hpc.flow import features, reference
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.schema import feature_names

P = FeatureParams()
SR = P.sample_rate
N = P.segment_samples
NAMES = feature_names(n_mfcc=P.n_mfcc)
COL = {name: i for i, name in enumerate(NAMES)}

# Defined on another representation on purpose (see features.py and BENCHMARKS.md).
DIFFERENT_BY_DESIGN = {n for n in NAMES if n.startswith(("harmonic_rms", "percussive_rms"))}
# Same definition, but chroma's tuning is one per track (the median of the per-chunk estimates).
TUNING_DEPENDENT = {n for n in NAMES if n.startswith("chroma_")}


def _tone(freq: float, n: int = N, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32)


def _noise(seed: int, n: int = N, amp: float = 0.3) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _clicks(n: int = N, every: float = 0.25) -> np.ndarray:
    y = np.zeros(n, np.float32)
    y[:: int(every * SR)] = 1.0
    return y + 0.01 * _noise(3, n)


def _chord(n: int = N) -> np.ndarray:
    return (_tone(220.0, n) + _tone(277.18, n, 0.3) + _tone(329.63, n, 0.3) + 0.05 * _noise(4, n)).astype(
        np.float32
    )


SIGNALS = {
    "tone-440": lambda: _tone(440.0),
    "tone-1000": lambda: _tone(1000.0),
    "noise": lambda: _noise(1),
    "clicks": _clicks,
    "chord": _chord,
    "quiet-noise": lambda: _noise(2, amp=2e-4),  # near the -80 dBFS silence threshold
    "short-1.7s": lambda: _chord(int(1.7 * SR)),  # a track shorter than one segment
}


def _relative(a: np.ndarray, b: np.ndarray, floor: float) -> np.ndarray:
    return np.abs(a - b) / np.maximum(np.abs(b), floor)


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_features_match_librosa_called_per_segment(name):
    """Every feature defined as librosa defines it agrees with the origin study's plain calls
    within 1 % relative (absolute 1e-3 of the feature's scale near zero)."""
    y = SIGNALS[name]()
    tuning = float(librosa.estimate_tuning(S=np.abs(librosa.stft(y)) ** 2, sr=SR, bins_per_octave=12))
    ours = features.compute(y[None, :], params=P, tuning=tuning)[0]
    plain = reference.extract_chunk(y, params=P)
    checked = [n for n in NAMES if n not in DIFFERENT_BY_DESIGN]
    idx = [COL[n] for n in checked]
    scale = np.maximum(np.abs(plain[idx]), 1e-12)
    # means and variances of deltas sit near zero: compare them on the scale of their series
    floor = np.where([("delta" in n or "accelerate" in n) for n in checked], 1e-3 * scale.max(), 1e-6)
    rel = _relative(ours[idx], plain[idx], floor)
    worst = np.argsort(rel)[::-1][:5]
    assert rel.max() <= 0.01, [(checked[i], ours[idx][i], plain[idx][i]) for i in worst]


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_spectrogram_is_librosas_stft_magnitude(name):
    """librosa's values (a float64 FFT rounded to float32, within a few ulps of each bin), in C order.
    A float32 FFT is 1.7x faster but puts a floor of about 1e-7 of the peak under every bin, and
    the spectral bandwidths of order 3 and 4 of a pure tone weigh that floor (p4: 300 Hz, not 234)."""
    y = SIGNALS[name]()
    ours = features.spectrogram(y[None, :], params=P)[0]
    plain = np.abs(librosa.stft(y))
    assert ours.shape == plain.shape and ours.dtype == np.float32 and ours.flags.c_contiguous
    assert (np.abs(ours - plain) <= 2.4e-7 * plain + 1e-12 * plain.max()).all()


def test_tone_centroid_is_its_frequency():
    row = features.compute(_tone(1000.0)[None, :], params=P)[0]
    assert row[COL["spectral_centroid_mean"]] == pytest.approx(1000.0, rel=0.02)
    # a pure tone's energy is in one place: a narrow bandwidth
    assert row[COL["spectral_bandwidth_p2_mean"]] < 200.0


def test_noise_is_brighter_and_crosses_zero_more_than_a_tone():
    rows = features.compute(np.stack([_tone(220.0), _noise(5)]), params=P, tuning=0.0)
    tone, noise = rows
    for col in ("spectral_centroid_mean", "spectral_rolloff_mean", "zero_crossing_rate_mean"):
        assert noise[COL[col]] > 5 * tone[COL[col]], col


def test_clicks_are_percussive_and_tones_harmonic():
    rows = features.compute(np.stack([_clicks(), _tone(440.0)]), params=P, tuning=0.0)
    clicks, tone = rows
    h, p = COL["harmonic_rms_mean"], COL["percussive_rms_mean"]
    assert clicks[p] > clicks[h]
    assert tone[h] > 10 * tone[p]


def test_zero_crossings_counts_match_librosa_exactly():
    y = _noise(7)
    row = features.compute(y[None, :], params=P, tuning=0.0)[0]
    assert row[COL["zero_crossings"]] == np.sum(librosa.zero_crossings(y))
    zcr = librosa.feature.zero_crossing_rate(y)[0]
    assert row[COL["zero_crossing_rate_mean"]] == pytest.approx(zcr.mean(), rel=1e-6)


def test_a_stack_gives_the_rows_of_its_segments_one_by_one():
    stack = np.stack([SIGNALS[name]() for name in ("tone-440", "noise", "clicks", "chord", "quiet-noise")])
    together = features.compute(stack, params=P, tuning=0.1)
    alone = np.vstack([features.compute(row[None, :], params=P, tuning=0.1) for row in stack])
    # equal up to float32 rounding (BLAS blocks a stack differently from one row)
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["chord", "noise", "clicks", "tone-440"])
def test_segment_tunings_are_librosas_per_chunk_estimates(name):
    y = SIGNALS[name]()
    power = np.abs(librosa.stft(y[None, :])) ** 2
    ours = features.segment_tunings(power, P)[0]
    assert ours == pytest.approx(librosa.estimate_tuning(S=power[0], sr=SR, bins_per_octave=12), abs=1e-9)


def test_track_tuning_is_the_median_of_segment_estimates():
    # three segments tuned a quarter of a bin sharp, one in tune: the median follows the three
    sharp = 440.0 * 2 ** (0.25 / 12)
    stack = np.stack([_tone(sharp), _tone(sharp * 1.5), _tone(sharp * 0.75), _tone(440.0)])
    assert features.estimate_tuning(stack, params=P) == pytest.approx(0.25, abs=0.03)


def test_silence_gives_finite_features():
    rows = features.compute(np.zeros((2, N), np.float32), params=P, tuning=0.0)
    assert np.isfinite(rows).all()
    assert rows[0, COL["spectral_centroid_mean"]] == 0.0
