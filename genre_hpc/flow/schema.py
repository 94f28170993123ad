"""Column names, dtypes and the feature-set version shared by every stage that reads or writes rows."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

# Bump when a feature's definition changes: models refuse datasets of another version.
# 2: chroma tuning per track is the median of the per-segment estimates.
FEATURE_VERSION = "2"

# Per-segment identity columns, in order, ahead of the features.
ID_COLUMNS: dict[str, pa.DataType] = {
    "track_id": pa.string(),
    "path": pa.string(),
    "label": pa.string(),
    "segment": pa.int32(),
    "start_s": pa.float64(),
    "duration_s": pa.float64(),
}

# The Parquet dataset is hive-partitioned on this column (one directory per genre).
PARTITION_COLUMN = "label"

ERROR_COLUMNS: dict[str, pa.DataType] = {
    "track_id": pa.string(),
    "path": pa.string(),
    "stage": pa.string(),
    "error": pa.string(),
}

N_CHROMA = 12


def feature_names(*, n_mfcc: int = 20) -> list[str]:
    """Feature column names in the order the extractor produces them."""
    frame_level = [
        "zero_crossing_rate",
        "rms",
        "spectral_centroid",
        "spectral_centroid_delta",
        "spectral_centroid_accelerate",
        "spectral_bandwidth_p2",
        "spectral_bandwidth_p3",
        "spectral_bandwidth_p4",
        "spectral_rolloff",
        "spectral_flux",
        *[f"chroma_{i:02d}" for i in range(1, N_CHROMA + 1)],
        *[f"mfcc_{i:02d}" for i in range(n_mfcc)],
        *[f"mfcc_delta_{i:02d}" for i in range(n_mfcc)],
        *[f"mfcc_accelerate_{i:02d}" for i in range(n_mfcc)],
        "harmonic_rms",
        "percussive_rms",
        "spectrogram_db",
        "mel_spectrogram_db",
    ]
    names = [f"{f}_{stat}" for f in frame_level for stat in ("mean", "var")]
    return [*names, "zero_crossings", "tempo_bpm"]


def arrow_schema(*, n_mfcc: int = 20) -> pa.Schema:
    """The Parquet schema of one feature part (the partition column included)."""
    fields = [pa.field(name, dtype) for name, dtype in ID_COLUMNS.items()]
    fields += [pa.field(name, pa.float32()) for name in feature_names(n_mfcc=n_mfcc)]
    return pa.schema(fields)


def error_schema() -> pa.Schema:
    return pa.schema([pa.field(name, dtype) for name, dtype in ERROR_COLUMNS.items()])


def empty_errors() -> pd.DataFrame:
    return error_schema().empty_table().to_pandas()
