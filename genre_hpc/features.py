"""Pure feature functions: a stack of equal-length audio segments in, one row of features per segment out.

Everything spectral comes from ONE short-time Fourier transform of the stacked segments
(librosa transforms the leading axis as a batch). Definitions follow librosa's defaults
(n_fft 2048, hop 512, 128 mel bands, centred frames) so that each value equals what the
matching librosa feature function returns for that segment on its own; the unit tests hold
the functions to that. Two features are defined on a cheaper representation on purpose:
HPSS runs on the mel spectrogram (see `_hpss_rms`) and chroma uses one tuning estimate
for the whole block instead of one per segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import bottleneck as bn
import librosa
import numpy as np

from .errors import ConfigError
from .schema import feature_names


@dataclass(frozen=True)
class FeatureParams:
    """Analysis settings; `conf/features/default.yaml` holds the values a run uses."""

    sample_rate: int = 22050
    segment_seconds: float = 3.0
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    n_mfcc: int = 20
    hpss_kernel_frames: int = 31
    hpss_kernel_bands: int = 9
    min_seconds: float = 0.5

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))

    @property
    def min_samples(self) -> int:
        return int(round(self.min_seconds * self.sample_rate))

    def names(self) -> list[str]:
        return feature_names(n_mfcc=self.n_mfcc)

    def check(self) -> None:
        """Raise ConfigError naming the `features.*` key that cannot work."""
        if self.sample_rate < 8000:
            raise ConfigError("features.sample_rate", f"{self.sample_rate} Hz is too low", "use 22050")
        if self.hop_length <= 0 or self.n_fft <= 0 or self.hop_length > self.n_fft:
            raise ConfigError("features.hop_length", "needs 0 < hop_length <= n_fft")
        # delta features use a 9-frame window, so a segment needs at least 9 frames
        min_frames_samples = 9 * self.hop_length
        if self.min_samples < min_frames_samples:
            raise ConfigError(
                "features.min_seconds",
                f"{self.min_seconds} s is shorter than 9 analysis frames",
                f"use at least {min_frames_samples / self.sample_rate:.2f}",
            )
        if self.segment_seconds < self.min_seconds:
            raise ConfigError(
                "features.segment_seconds",
                f"{self.segment_seconds} s is shorter than features.min_seconds",
                "use 3.0 for GTZAN-style 3-s segments",
            )
        for key in ("n_mels", "n_mfcc", "hpss_kernel_frames", "hpss_kernel_bands"):
            if getattr(self, key) < 1:
                raise ConfigError(f"features.{key}", "must be a positive integer")
        if self.n_mfcc > self.n_mels:
            raise ConfigError("features.n_mfcc", "cannot exceed features.n_mels")


def estimate_tuning(segments: np.ndarray, *, params: FeatureParams) -> float:
    """Tuning offset (fractions of a chroma bin) from all segments of a block at once.

    librosa's chroma re-estimates this on every call; one estimate per block of a track is
    steadier (more frames) and costs one pitch track instead of one per segment.
    """
    power = np.abs(_stft(segments, params)) ** 2
    return _tuning_from_power(power, params)


def _tuning_from_power(power: np.ndarray, params: FeatureParams) -> float:
    # the same call chroma_stft makes when it is not given `tuning`
    return float(
        librosa.estimate_tuning(
            # segments side by side in time: one (bins, frames) spectrogram
            S=np.concatenate(list(power), axis=-1) if power.ndim > 2 else power,
            sr=params.sample_rate,
            n_fft=params.n_fft,
            bins_per_octave=12,
        )
    )


def _stft(segments: np.ndarray, params: FeatureParams) -> np.ndarray:
    return librosa.stft(segments, n_fft=params.n_fft, hop_length=params.hop_length)


def extract(segments: np.ndarray, *, params: FeatureParams, tuning: float | None = None) -> np.ndarray:
    """Features of each segment.

    Parameters
    ----------
    segments : np.ndarray [shape=(n_segments, n_samples)], float
        Mono audio at ``params.sample_rate``, one segment per row, all of one length.
    params : FeatureParams
        Analysis settings.
    tuning : float or None
        Tuning for chroma in fractions of a bin; estimated from `segments` when None.

    Returns
    -------
    np.ndarray [shape=(n_segments, len(params.names()))], float32
        Columns in the order of ``params.names()``.

    Examples
    --------
    >>> p = FeatureParams()
    >>> tone = np.sin(2 * np.pi * 440 * np.arange(p.segment_samples) / p.sample_rate)
    >>> extract(tone[None, :], params=p).shape
    (1, 174)
    """
    y = np.ascontiguousarray(np.atleast_2d(segments), dtype=np.float32)
    sr, n_fft, hop = params.sample_rate, params.n_fft, params.hop_length

    spec = np.abs(_stft(y, params))  # (n, 1 + n_fft/2, frames) magnitude
    power = spec**2
    if tuning is None:
        tuning = _tuning_from_power(power, params)

    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft).astype(np.float32)
    centroid, bandwidths = _centroid_and_bandwidths(spec, freqs)
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_fft=n_fft, n_mels=params.n_mels)
    mel_db = _power_to_db(mel, amin=1e-10)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=params.n_mfcc)
    rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop)[:, 0]
    harmonic, percussive = _hpss_rms(mel, rms, params)
    flux = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=hop, n_fft=n_fft)

    frame_level = [
        librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)[:, 0],
        rms,
        centroid,
        librosa.feature.delta(centroid, order=1),
        librosa.feature.delta(centroid, order=2),
        *bandwidths,
        _rolloff(spec, freqs),
        flux,
        *np.moveaxis(librosa.feature.chroma_stft(S=power, sr=sr, n_fft=n_fft, tuning=tuning), 1, 0),
        *np.moveaxis(mfcc, 1, 0),
        *np.moveaxis(librosa.feature.delta(mfcc, order=1), 1, 0),
        *np.moveaxis(librosa.feature.delta(mfcc, order=2), 1, 0),
        harmonic,
        percussive,
        # dB of the linear spectrogram, as librosa.amplitude_to_db(S) per frame over all bins
        _power_to_db(power, amin=1e-10).mean(axis=-2),
        mel_db.mean(axis=-2),
    ]
    stats = []
    for series in frame_level:  # each (n_segments, frames)
        stats.append(series.mean(axis=-1))
        stats.append(series.var(axis=-1))
    zero_crossings = librosa.zero_crossings(y, axis=-1).sum(axis=-1)
    tempo = librosa.feature.tempo(onset_envelope=flux, sr=sr, hop_length=hop)[:, 0]
    return np.column_stack([*stats, zero_crossings, tempo]).astype(np.float32)


def _power_to_db(power: np.ndarray, *, amin: float, top_db: float = 80.0) -> np.ndarray:
    """librosa.power_to_db per segment: its `top_db` floor is relative to each segment's peak,
    where librosa's own call on a stack would take the peak of the whole stack."""
    db = librosa.power_to_db(power, amin=amin, top_db=None)
    return np.maximum(db, db.max(axis=(-2, -1), keepdims=True) - top_db)


def _centroid_and_bandwidths(spec: np.ndarray, freqs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Spectral centroid and bandwidths p=2,3,4, as librosa defines them (norm=True).

    librosa raises |f - centroid| to a float power once per p over the whole spectrogram;
    integer powers by multiplication and contractions over frequency give the same numbers
    at a fraction of the cost.
    """
    total = spec.sum(axis=-2)
    # librosa leaves an all-zero frame unnormalised, which makes its centroid 0
    safe_total = np.where(total > np.finfo(np.float32).tiny, total, 1.0)
    weights = spec / safe_total[:, None, :]
    centroid = np.einsum("f,nft->nt", freqs, weights)
    dev = np.abs(freqs[None, :, None] - centroid[:, None, :])
    dev2 = dev * dev
    bw2 = np.einsum("nft,nft->nt", weights, dev2)
    bw3 = np.einsum("nft,nft->nt", weights, dev2 * dev)
    bw4 = np.einsum("nft,nft->nt", weights, dev2 * dev2)
    return centroid, [np.sqrt(bw2), np.cbrt(bw3), np.sqrt(np.sqrt(bw4))]


def _rolloff(spec: np.ndarray, freqs: np.ndarray, roll_percent: float = 0.85) -> np.ndarray:
    """Lowest frequency below which `roll_percent` of the magnitude lies (librosa's rolloff)."""
    cumulative = np.cumsum(spec, axis=-2)
    reached = cumulative >= roll_percent * cumulative[:, -1:, :]
    return freqs[np.argmax(reached, axis=-2)]


def _median(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Centred running median with scipy.ndimage's 'reflect' edges, O(n log size).

    bottleneck's running median is trailing and far faster than scipy's median_filter,
    which dominates librosa's HPSS.
    """
    half = size // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (half, half)
    # numpy's 'symmetric' is scipy's 'reflect' (the edge sample is repeated)
    out = bn.move_median(np.pad(x, pad, mode="symmetric"), size, axis=axis)
    keep = [slice(None)] * x.ndim
    keep[axis] = slice(2 * half, None)
    return out[tuple(keep)]


def _hpss_rms(mel: np.ndarray, rms: np.ndarray, params: FeatureParams) -> tuple[np.ndarray, np.ndarray]:
    """Frame RMS of the harmonic and the percussive component.

    Median-filter HPSS (Fitzgerald 2010, librosa's soft masks) on the mel spectrogram
    instead of the full 1025-bin one: 8x fewer bins and a band-wide kernel keep the same
    horizontal/vertical separation for a few percent of librosa's cost. The component's
    share of each frame's energy scales the frame's RMS.
    """
    harm = _median(mel, params.hpss_kernel_frames, axis=-1)
    perc = _median(mel, params.hpss_kernel_bands, axis=-2)
    mask_h = librosa.util.softmask(harm, perc, power=2, split_zeros=True)
    energy = mel.sum(axis=-2)
    share_h = np.divide((mel * mask_h).sum(axis=-2), energy, out=np.full_like(energy, 0.5), where=energy > 0)
    share_h = np.clip(share_h, 0.0, 1.0)
    return rms * np.sqrt(share_h), rms * np.sqrt(1.0 - share_h)
