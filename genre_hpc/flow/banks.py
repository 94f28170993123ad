"""Windows, filter banks and linear operators of librosa's features, built without librosa.

The features (flow/features) compute librosa's definitions but call nothing of librosa at run
time, so a new worker never imports it: librosa's modules that the features would reach (util,
filters, feature, onset, and scipy.signal under them) and the loading of their numba functions
took about 1.3 s of a new SLURM worker's first result (BENCHMARKS.md). numpy, scipy.linalg and
scipy.ndimage are enough. What the features need of librosa is rebuilt here from librosa 0.11's
own code (ISC licence), statement for statement where it decides the float rounding;
tests/flow/test_banks.py holds each function to librosa's result.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg
import scipy.ndimage


def hann(n: int) -> np.ndarray:
    """librosa.filters.get_window("hann", n, fftbins=True): scipy's periodic Hann window."""
    # scipy's general_cosine on n + 1 points, the last one dropped
    return (0.5 + 0.5 * np.cos(np.linspace(-np.pi, np.pi, n + 1)))[:n]


def fft_frequencies(*, sr: float, n_fft: int) -> np.ndarray:
    """librosa.fft_frequencies: the centre frequency of each FFT bin."""
    return np.fft.rfftfreq(n=n_fft, d=1.0 / sr)


def hz_to_octs(frequencies: np.ndarray, *, tuning: float = 0.0, bins_per_octave: int = 12) -> np.ndarray:
    """librosa.hz_to_octs: octaves above C0 (A440 / 16), with A440 shifted by `tuning` bins."""
    a440 = 440.0 * 2.0 ** (tuning / bins_per_octave)
    return np.log2(np.asanyarray(frequencies) / (float(a440) / 16))


def mel(*, sr: float, n_fft: int, n_mels: int = 128) -> np.ndarray:
    """librosa.filters.mel, 0 Hz to Nyquist (Slaney's mel scale and area normalisation), float32
    (n_mels, 1 + n_fft/2)."""
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(float(sr) / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_frequencies(sr=sr, n_fft=n_fft))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    if not np.all((mel_f[:-2] == 0) | (weights.max(axis=1) > 0)):
        warnings.warn(
            f"{n_mels} mel bands on a {n_fft}-point FFT leave some bands without an FFT bin: "
            "those features are empty; lower features.n_mels or raise features.n_fft",
            stacklevel=2,
        )
    return weights


def _hz_to_mel(frequencies: float | np.ndarray) -> np.ndarray:
    # linear below 1 kHz, logarithmic above (Slaney's Auditory Toolbox)
    f = np.asanyarray(frequencies, dtype=np.float64)
    min_log_mel = 1000.0 / _F_SP
    with np.errstate(divide="ignore"):  # log of 0 Hz, discarded by the where
        log_part = min_log_mel + np.log(f / 1000.0) / _LOGSTEP
    return np.where(f >= 1000.0, log_part, f / _F_SP)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    min_log_mel = 1000.0 / _F_SP
    freqs = _F_SP * mels
    log_t = mels >= min_log_mel
    freqs[log_t] = 1000.0 * np.exp(_LOGSTEP * (mels[log_t] - min_log_mel))
    return freqs


_F_SP = 200.0 / 3  # Hz per mel below 1 kHz
_LOGSTEP = np.log(6.4) / 27.0  # log-frequency step per mel above 1 kHz


def chroma(*, sr: float, n_fft: int, tuning: float = 0.0, n_chroma: int = 12) -> np.ndarray:
    """librosa.filters.chroma (its defaults: octave weighting centred on C5, 2 octaves wide, each
    bin's weights of unit L2 norm, C first), float32 (n_chroma, 1 + n_fft/2)."""
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    frqbins = n_chroma * hz_to_octs(frequencies, tuning=tuning, bins_per_octave=n_chroma)
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    distance = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    n_chroma2 = np.round(float(n_chroma) / 2)
    distance = np.remainder(distance + n_chroma2 + 10 * n_chroma, n_chroma) - n_chroma2
    wts = np.exp(-0.5 * (2 * distance / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    length = np.sum(np.abs(wts) ** 2, axis=0, keepdims=True) ** (1.0 / 2)  # util.normalize(norm=2)
    length[length < np.finfo(wts.dtype).tiny] = 1.0
    wts = wts / length
    wts *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - 5.0) / 2) ** 2)), (n_chroma, 1))
    wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)], dtype=np.float32)


def delta_operator(n_frames: int, order: int, width: int = 9) -> np.ndarray:
    """The (n_frames, n_frames) matrix D with ``x @ D == librosa.feature.delta(x, order=order)``.

    librosa's delta is scipy's Savitzky-Golay filter (polynomial order = derivative order, mode
    "interp"): inside, each frame gets the derivative at the centre of the least-squares
    polynomial through the `width` frames around it; near either end, the derivative of the
    polynomial through the first (last) `width` frames, a constant. Each step is done as scipy
    1.17 does it (savgol_coeffs, convolve1d, the edge fit), so D equals librosa's bit for bit
    there; scipy 1.18's own polyfit moves a few edge weights by an ulp.
    """
    if n_frames < width:
        raise ValueError(f"delta needs at least {width} frames, not {n_frames}")
    half = width // 2
    # scipy.signal.savgol_coeffs(width, order, deriv=order), in convolution order
    offsets = np.flip(np.arange(-half, width - half, dtype=np.float64))
    design = offsets ** np.arange(order + 1, dtype=np.float64).reshape(-1, 1)
    target = np.zeros(order + 1)
    target[order] = float(math.factorial(order))
    coeffs = scipy.linalg.lstsq(design, target, cond=np.finfo(np.float64).eps * width)[0]
    operator = scipy.ndimage.convolve1d(np.eye(n_frames), coeffs, axis=-1, mode="constant")
    # the polynomial through the first (last) `width` frames, its order-th derivative
    edge = np.polyfit(np.arange(width), np.eye(width), order)[0] * math.factorial(order)
    operator[:width, :half] = edge[:, None]
    operator[n_frames - width :, n_frames - half :] = edge[:, None]
    return operator


def tempo_log_prior(*, win_length: int, sr: float, hop_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(bpms, log prior) of librosa.feature.tempo's defaults for a `win_length`-lag tempogram:
    the tempo of each lag, and a log-normal prior around 120 BPM (one octave's deviation) that
    rules out lag 0 and tempi at or above 320 BPM."""
    bpms = np.zeros(int(win_length), dtype=np.float64)  # librosa.tempo_frequencies
    bpms[0] = np.inf
    bpms[1:] = 60.0 * sr / (hop_length * np.arange(1.0, win_length))
    logprior = -0.5 * ((np.log2(bpms) - np.log2(120)) / 1.0) ** 2
    logprior[: int(np.argmax(bpms < 320.0))] = -np.inf
    return bpms, logprior
