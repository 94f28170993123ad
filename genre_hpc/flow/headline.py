"""The report's first screen: the accuracy to quote, the model comparison and the confusion matrix.

The figure to quote is evaluate's cross-validated track accuracy when the run has one (every track
tested once; the README's "number to report"), else train's held-out figure, named as one split.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from genre_hpc.core.layout import ComparisonFiles, OutputLayout
from genre_hpc.flow.metrics import interval_text
from genre_hpc.flow.page import Page, leak_note

HEADLINE_ID = "headline"  # the section; the test in a browser finds it, and the figure, by these ids
FIGURE_ID = "headline-figure"


@dataclass(frozen=True)
class Shown:
    """The headline's HTML and the source figures it already shows (the sections below skip them)."""

    html: str = ""
    figures: frozenset[Path] = frozenset()

    def has(self, source: Path) -> bool:
        return source in self.figures


@dataclass(frozen=True)
class Answer:
    """The figure to quote: its line, what it is, which split's comparison goes with it, its confusion."""

    figure: str  # HTML
    what: str  # HTML
    split: str
    confusion: Path
    confusion_alt: str


def section(out: OutputLayout, page: Page) -> Shown:
    """The first section of the page, or nothing when no model has been scored yet."""
    answer = _cross_validated(out) or _held_out(out)
    if answer is None:
        return Shown()
    left = ""
    shown = set()
    if answer.confusion.exists():
        left = page.copy(answer.confusion, "headline_", answer.confusion_alt, name="confusion.png")
        shown.add(answer.confusion)
    right = "<p>no model comparison yet: <code>genre-hpc compare</code> adds one.</p>"
    files = _comparison_for(out, answer.split)
    if files is not None:
        summary = json.loads(files.summary.read_text())
        right = (
            f"<h3{' class=leak' if summary['split']['leaky'] else ''}>model comparison: "
            f"{html.escape(summary['label'])}</h3>"
            + Page.table(_compact(summary["models"]), caption=interval_caption(summary["models"]))
            + page.copy(files.figure, "headline_", "per segment and per track, 95 % intervals",
                        name="comparison.png")
        )  # fmt: skip
        shown.add(files.figure)
    body = (
        f"<section id={HEADLINE_ID}><p id={FIGURE_ID}>{answer.figure}</p>"
        f"<p class=what>{answer.what}</p><div class=pair><div>{left}</div><div>{right}</div></div></section>"
    )
    return Shown(body, frozenset(shown))


def held_out_text(metrics: dict[str, Any]) -> str:
    """A metrics.json's scores as one HTML sentence that names each one's unit, split and interval."""
    split = metrics["split"]
    interval = metrics.get("track_accuracy_interval")
    track = (
        interval_text(metrics["track_accuracy"], interval)
        if interval
        else f"{metrics['track_accuracy']:.3f} (no interval recorded)"
    )
    return (
        f"segment accuracy <b>{metrics['segment_accuracy']:.3f}</b> per segment"
        f"{_count(metrics, 'test_segments', 'segments')}, track accuracy <b>{html.escape(track)}</b> "
        f"per track{_count(metrics, 'test_tracks', 'tracks')}, track macro-F1 "
        f"{metrics['track_macro_f1']:.3f} &mdash; on the test side of the "
        f"<b>{html.escape(split['name'])}</b> split{leak_note(split.get('leaky', False))}: "
        f"{html.escape(split['description'])}{absent_labels(split)}"
    )


def absent_labels(split: dict[str, Any]) -> str:
    """The genres a split's side lacks, as HTML: where real metadata leaves a genre on one side only,
    the numbers beside it mean less than they seem (splits record `labels_absent_from_*`)."""
    notes = {
        "labels_absent_from_training": "not on the training side (the model cannot name them, so their "
        "test tracks count as wrong)",
        "labels_absent_from_test": "not on the test side (trained on, not scored)",
    }
    return "".join(
        f" <b class=leak>Genres {html.escape(text)}: {html.escape(', '.join(split[key]))}.</b>"
        for key, text in notes.items()
        if split.get(key)
    )


def interval_caption(models: list[dict[str, Any]]) -> str:
    """How compare's rows made their intervals, as a table caption."""
    methods = sorted({m.get("interval", "") for m in models} - {""})
    return "95 % intervals: " + "; ".join(methods) if methods else ""


def side_name(metrics: dict[str, Any]) -> str:
    """Where a metrics.json's scores were measured, as the file says it."""
    return metrics.get("evaluated_on") or f"test side of the {metrics['split']['name']} split"


def _cross_validated(out: OutputLayout) -> Answer | None:
    files = out.evaluation
    if not files.summary.exists():
        return None
    summary = json.loads(files.summary.read_text())
    track = summary["metrics"]["track_accuracy"]
    segment = summary["metrics"]["segment_accuracy"]
    tested = (
        "every segment tested once"
        if summary["leaky"]
        else f"each of the {summary['tested_tracks']} tracks tested once, by a model that never saw it"
    )
    what = (
        f"Per track (a track's segments vote), the mean over {summary['folds']} folds: "
        f"{html.escape(summary['protocol'])}; {tested}. "
        f"Interval: {html.escape(track['method'])} (std {track['std']:.3f} over folds). "
        f"Per segment (each segment alone): {html.escape(interval_text(segment['mean'], segment))}."
    )
    return Answer(
        figure=f"track accuracy <b>{html.escape(interval_text(track['mean'], track))}</b>, "
        f"{summary['folds']}-fold cross-validation{leak_note(summary['leaky'])}",
        what=what,
        split=summary["split"]["name"],
        confusion=files.confusion,
        confusion_alt=f"confusion matrix of tracks, pooled over the {summary['folds']} folds",
    )


def _held_out(out: OutputLayout) -> Answer | None:
    if not out.metrics.exists():
        return None
    metrics = json.loads(out.metrics.read_text())
    interval = metrics.get("track_accuracy_interval")
    value = (
        interval_text(metrics["track_accuracy"], interval) if interval else f"{metrics['track_accuracy']:.3f}"
    )
    split = metrics["split"]
    what = (
        # evaluated_on names a leaky split as such
        f"Per track (a track's segments vote), on the {html.escape(side_name(metrics))}: one split"
        f"{_count(metrics, 'test_tracks', 'held-out tracks')}, not cross-validated. "
        + (f"Interval: {html.escape(interval['method'])}. " if interval else "")
        + f"Per segment (each segment alone): {metrics['segment_accuracy']:.3f}.{absent_labels(split)} "
        "<code>genre-hpc evaluate</code> gives the cross-validated figure, every track tested once."
    )
    return Answer(
        figure=f"track accuracy <b>{html.escape(value)}</b>, held-out test side of the "
        f"{html.escape(split['name'])} split{leak_note(split.get('leaky', False))}",
        what=what,
        split=split["name"],
        confusion=out.confusion_matrix,
        confusion_alt=f"confusion matrix of the test tracks, {split['name']} split",
    )


def _comparison_for(out: OutputLayout, split: str) -> ComparisonFiles | None:
    """compare's output for the headline's split; else an honest split's; else whichever there is."""
    found = out.comparisons()
    if split in found:
        return found[split]
    honest = [f for f in found.values() if not json.loads(f.summary.read_text())["split"]["leaky"]]
    return (honest or list(found.values()) or [None])[0]


def _compact(models: list[dict[str, Any]]) -> pd.DataFrame:
    """Model, track accuracy with its interval, segment accuracy: what fits beside the matrix."""
    return pd.DataFrame(
        [
            {
                "model": model_name(m),
                "track accuracy, per track (95 % CI)": f"{m['track_accuracy']:.3f} "
                f"({m['track_accuracy_low']:.2f}-{m['track_accuracy_high']:.2f})",
                "segment accuracy, per segment": m["segment_accuracy"],
            }
            for m in models
        ]
    )


def model_name(row: dict[str, Any]) -> str:
    """A comparison row's model as the report names it: a model trained on a sample of the training
    tracks says so, with the number of tracks, wherever its numbers are shown."""
    if row.get("sampled"):
        return f"{row['model']} (trained on a sample of {int(row['trained_on_tracks']):,} tracks)"
    return str(row["model"])


def _count(metrics: dict[str, Any], key: str, what: str) -> str:
    return f" (on {int(metrics[key])} {what})" if key in metrics else ""
