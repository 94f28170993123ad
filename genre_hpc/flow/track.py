"""Features of whole audio files: each file decoded block by block (audio), each block computed (features)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from genre_hpc.core.errors import AudioError
from genre_hpc.flow import audio, features
from genre_hpc.flow.params import FeatureParams


def track_features(
    path: str, *, params: FeatureParams, block_segments: int, digest: Any = None
) -> pd.DataFrame:
    """All segments of one track: identity columns (bar track/path/label) and features.

    `digest` (a hashlib object) is fed the decoded audio (see audio.iter_segments).
    """
    blocks, tuning = [], None
    for block in audio.iter_segments(
        path,
        sample_rate=params.sample_rate,
        segment_samples=params.segment_samples,
        min_samples=params.min_samples,
        block_segments=block_segments,
        digest=digest,
    ):
        # one STFT per block, shared by the tuning (once per track, from its first block) and the features
        magnitude = features.spectrogram(block.samples, params=params)
        if tuning is None:
            tuning = features.estimate_tuning(magnitude=magnitude, params=params)
        values = features.compute(block.samples, params=params, tuning=tuning, magnitude=magnitude)
        n, length = block.samples.shape
        index = np.arange(block.first, block.first + n)
        blocks.append((index, length, values))
    if any(not np.isfinite(values).all() for _, _, values in blocks):
        raise AudioError("features are not finite (NaN or inf): the audio holds invalid samples")
    index = np.concatenate([b[0] for b in blocks])
    values = np.concatenate([b[2] for b in blocks])
    seg_seconds = params.segment_samples / params.sample_rate
    frame = pd.DataFrame(values, columns=params.names())
    frame.insert(0, "segment", index.astype(np.int32))
    frame.insert(1, "start_s", index * seg_seconds)
    frame.insert(2, "duration_s", np.concatenate([[b[1]] * len(b[0]) for b in blocks]) / params.sample_rate)
    return frame


@dataclass
class BatchFeatures:
    """The rows of a batch of tracks, the content hash of each used track, and the tracks that
    could not be used, as error rows."""

    frame: pd.DataFrame | None = None  # None when no track of the batch could be used
    errors: list[dict[str, str]] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # track_id -> sha1 of the decoded audio
    audio_seconds: float = 0.0


def batch_features(
    batch: list[tuple[str, str, str, int]], *, params: FeatureParams, block_segments: int, stage: str
) -> BatchFeatures:
    """Features of a batch of (track_id, path, label, size); a file that cannot be used is an error
    row naming `stage`, and the batch goes on."""
    frames, result = [], BatchFeatures()
    for track_id, path, label, _size in batch:
        digest = hashlib.sha1()
        try:
            frame = track_features(path, params=params, block_segments=block_segments, digest=digest)
        except AudioError as exc:
            result.errors.append({"track_id": track_id, "path": path, "stage": stage, "error": str(exc)})
            continue
        frame.insert(0, "track_id", track_id)
        frame.insert(1, "path", path)
        frame.insert(2, "label", label)
        result.audio_seconds += float(frame.duration_s.sum())
        result.hashes[track_id] = digest.hexdigest()
        frames.append(frame)
    if frames:
        result.frame = pd.concat(frames, ignore_index=True)
    return result
