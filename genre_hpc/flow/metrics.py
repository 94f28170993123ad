"""Scores of a model's test-side probabilities: per segment, and per track (its segments' mean)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score


def evaluate(proba: np.ndarray, ids: pd.DataFrame, classes: list[str]) -> dict[str, Any]:
    """Segment- and track-level scores; a track's prediction averages its segments' probabilities."""
    ids = ids.reset_index(drop=True)
    truth = ids.label.map({c: i for i, c in enumerate(classes)}).to_numpy()
    seg_pred = proba.argmax(axis=1)
    per_track = pd.DataFrame(proba).groupby(ids.track_id.to_numpy()).mean()
    track_truth = ids.groupby("track_id").label.first().loc[per_track.index]
    track_truth = track_truth.map({c: i for i, c in enumerate(classes)}).to_numpy()
    track_pred = per_track.to_numpy().argmax(axis=1)
    labels = list(range(len(classes)))
    return {
        "segment_accuracy": float(accuracy_score(truth, seg_pred)),
        "track_accuracy": float(accuracy_score(track_truth, track_pred)),
        "segment_macro_f1": float(f1_score(truth, seg_pred, average="macro", labels=labels)),
        "track_macro_f1": float(f1_score(track_truth, track_pred, average="macro", labels=labels)),
        "test_segments": int(len(truth)),
        "test_tracks": int(len(track_truth)),
        "classes": classes,
        "classification_report_tracks": classification_report(
            track_truth,
            track_pred,
            labels=labels,
            target_names=classes,
            output_dict=True,
            zero_division=0,
        ),  # fmt: skip
        "confusion_matrix_tracks": confusion_matrix(track_truth, track_pred, labels=labels).tolist(),
        "confusion_matrix_segments": confusion_matrix(truth, seg_pred, labels=labels).tolist(),
    }
