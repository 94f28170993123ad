"""The origin study's extractor, the benchmark's yardstick: per 3-s chunk, one librosa call per feature.

Every feature function gets the chunk's samples (`y=`) and computes its own STFT (about ten
per chunk); HPSS is librosa's, median filters on the full-resolution spectrogram; tempo comes
from librosa's tempo estimator per chunk; chroma re-estimates the tuning per chunk. It returns the same
named columns as `features.compute` (schema.feature_names), so the two can be compared value
by value. Slow on purpose: it is never used to build a dataset.
"""

from __future__ import annotations

import numpy as np

from genre_hpc.flow import audio
from genre_hpc.flow.params import FeatureParams


def extract_chunk(y: np.ndarray, *, params: FeatureParams) -> np.ndarray:
    """Features of one chunk, the plain way; columns in the order of ``params.names()``."""
    import librosa

    sr, n_fft, hop = params.sample_rate, params.n_fft, params.hop_length
    y = np.ascontiguousarray(y, dtype=np.float32)
    centroid = librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=n_fft, hop_length=hop)[0]
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=params.n_mfcc, n_fft=n_fft, hop_length=hop)
    y_harm, y_perc = librosa.effects.hpss(y)
    # beat_track runs this same estimate inside, on a median-aggregated onset envelope; the
    # package's tempo is defined on the mean-aggregated one (librosa's default), so call it directly
    tempo = librosa.feature.tempo(y=y, sr=sr, hop_length=hop)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=params.n_mels)
    frame_level = [
        librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)[0],
        librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop)[0],
        centroid,
        librosa.feature.delta(centroid, order=1),
        librosa.feature.delta(centroid, order=2),
        *(
            librosa.feature.spectral_bandwidth(y=y, sr=sr, n_fft=n_fft, hop_length=hop, p=p)[0]
            for p in (2, 3, 4)
        ),
        librosa.feature.spectral_rolloff(y=y, sr=sr, n_fft=n_fft, hop_length=hop)[0],
        librosa.onset.onset_strength(y=y, sr=sr, n_fft=n_fft, hop_length=hop),
        *librosa.feature.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=hop),
        *mfcc,
        *librosa.feature.delta(mfcc, order=1),
        *librosa.feature.delta(mfcc, order=2),
        librosa.feature.rms(y=y_harm, frame_length=n_fft, hop_length=hop)[0],
        librosa.feature.rms(y=y_perc, frame_length=n_fft, hop_length=hop)[0],
        librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))).mean(axis=0),
        librosa.power_to_db(mel).mean(axis=0),
    ]
    stats = [stat for series in frame_level for stat in (np.mean(series), np.var(series))]
    stats.append(np.sum(librosa.zero_crossings(y)))
    stats.append(np.atleast_1d(tempo)[0])
    return np.asarray(stats, dtype=np.float32)


def load_track_features(path: str, *, params: FeatureParams) -> np.ndarray:
    """The study's method end to end: `librosa.load` (decode, mean of the channels, resampling
    to the analysis rate, the whole file at once), then `extract_chunk` per whole segment."""
    import librosa

    y, _ = librosa.load(path, sr=params.sample_rate, mono=True)
    length = params.segment_samples
    whole = len(y) // length
    segments = y[: whole * length].reshape(whole, length) if whole else y[None]
    return np.vstack([extract_chunk(segment, params=params) for segment in segments])


def track_features(path: str, *, params: FeatureParams) -> np.ndarray:
    """One row per whole segment of the file (the segments `track.track_features` uses), decoded
    by the package (audio.iter_segments): features alone, on the same samples."""
    rows = []
    for block in audio.iter_segments(
        path,
        sample_rate=params.sample_rate,
        segment_samples=params.segment_samples,
        min_samples=params.min_samples,
    ):
        rows.extend(extract_chunk(segment, params=params) for segment in block.samples)
    return np.vstack(rows)
