"""Parity of the package's features with the origin study's extractor (reference), feature by feature."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genre_hpc.flow.params import FeatureParams

# Features whose definition deliberately differs from the origin study's, and why.
_HPSS = "HPSS on the mel spectrogram, energy share of the frame RMS (librosa: full-res HPSS + iSTFT)"
BY_DESIGN = {
    "harmonic_rms": _HPSS,
    "percussive_rms": _HPSS,
    "chroma": "one tuning per track, the median of the per-chunk estimates (librosa: one per chunk)",
}


def parity_table(
    ours: np.ndarray, theirs: np.ndarray, params: FeatureParams, *, tolerance: float
) -> pd.DataFrame:
    """Per feature, the largest relative difference over all segments.

    Relative to the reference value, or near zero to 0.1 % of the feature's largest
    magnitude over the segments (means of deltas, MFCCs that cross zero).
    """
    if ours.shape != theirs.shape:
        raise ValueError(f"extractors disagree on the segments: {ours.shape} vs {theirs.shape}")
    floor = 1e-3 * np.abs(theirs).max(axis=0)
    rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), np.maximum(floor, 1e-12))
    rows = []
    for j, name in enumerate(params.names()):
        why = next((text for key, text in BY_DESIGN.items() if name.startswith(key)), "")
        worst = float(rel[:, j].max())
        rows.append({"feature": name, "definition": "differs by design" if why else "same",
                     "max_rel_diff": worst, "median_rel_diff": float(np.median(rel[:, j])),
                     "tolerance": None if why else tolerance,
                     "ok": True if why else worst <= tolerance, "why": why})  # fmt: skip
    return pd.DataFrame(rows)


def parity_summary(parity: pd.DataFrame) -> pd.DataFrame:
    """The largest differences among features defined the same way, and one row per by-design group."""
    same = parity[parity.definition == "same"].nlargest(8, "max_rel_diff")
    design = parity[parity.definition != "same"]
    groups = design.assign(group=design.feature.str.extract(r"^(chroma|harmonic_rms|percussive_rms)")[0])
    by_group = groups.groupby("group")[["max_rel_diff", "median_rel_diff"]].max().reset_index()
    by_group = by_group.rename(columns={"group": "feature"}).assign(definition="differs by design", ok=True)
    columns = ["feature", "definition", "max_rel_diff", "median_rel_diff", "ok"]
    return pd.concat([same[columns], by_group[columns]], ignore_index=True)
