"""The report: one self-contained HTML page (PNG figures beside it) of what a run left in output.dir.

The page leads with the answer: its first screen (1280 x 900) holds the figure to quote, the model
comparison and the confusion matrix (flow/headline.py); the details, the corpus and the per-genre
examples follow, folded where they are long. Every number names its unit (segment or track), its
split and its interval.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from genre_hpc.core.atomic import write_text
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import headline, plots, validation
from genre_hpc.flow.audio import iter_segments
from genre_hpc.flow.dataset import FeatureStore
from genre_hpc.flow.metrics import SCORES, interval_text
from genre_hpc.flow.page import Page, leak_note
from genre_hpc.flow.params import FeatureParams

# rows read for the correlation heatmap: plenty for stable estimates, bounded memory
CORRELATION_ROWS = 50_000
UNIT = {"segment": "per segment", "track": "per track"}


def write(out: OutputLayout, manifest: dict[str, Any]) -> Path:
    """Write OUT/report/index.html and its figures; `manifest` is manifest.json's record of the run."""
    folder = out.report
    folder.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(out)
    page = Page(folder)
    shown = headline.section(out, page)
    sections = [
        shown.html,
        _evaluation(out, page, shown),
        _model(page, "train", out.metrics, out.confusion_matrix, shown),
        _comparison(out, page, shown),
        _tuning(out, page, shown),
        _corpus(out, store, page),
        _examples(store, page),
        _correlation(store, page),
        _timings(manifest),
    ]
    document = page.document([s for s in sections if s])
    write_text(out.report_page, document, durable=False)
    page.prune(document)
    return out.report_page


def _evaluation(out: OutputLayout, page: Page, shown: headline.Shown) -> str:
    files = out.evaluation
    if not files.summary.exists():
        return ""
    summary = json.loads(files.summary.read_text())
    metrics = summary["metrics"]
    rows = pd.DataFrame(
        [
            {"metric": _metric_name(name), "mean over folds": info["mean"], "std over folds": info["std"],
             "95 % t interval (low)": info["low"], "95 % t interval (high)": info["high"]}
            for name, info in metrics.items()
        ]
    )  # fmt: skip
    track = metrics["track_accuracy"]
    pooled = summary["pooled_track_accuracy_interval"]
    tested = "segment" if summary["leaky"] else f"one of the {summary['tested_tracks']} tracks"
    model = f"{summary['model']['name']} {json.dumps(summary['model']['params'])}"
    body = (
        f"<p class=score>track accuracy, per track: "
        f"<b>{html.escape(interval_text(track['mean'], track))}</b>, "
        f"mean over {summary['folds']} folds (std {track['std']:.3f}) &mdash; "
        f"{html.escape(summary['protocol'])}{leak_note(summary['leaky'])}.</p>"
        f"<p>Every {tested} was tested once. Pooled over folds: track accuracy "
        f"{html.escape(interval_text(summary['pooled_track_accuracy'], pooled))} "
        f"({html.escape(pooled['method'])})."
        f" Interval of the means: {html.escape(track['method'])}. Model {html.escape(model)}, "
        f"engine {html.escape(summary['engine'])}.</p>"
    )
    body += page.table(rows)
    if files.figure.exists():
        body += page.copy(files.figure, "evaluate_", "accuracy per fold (per segment and per track)")
    if files.confusion.exists() and not shown.has(files.confusion):
        body += page.copy(files.confusion, "evaluate_", "confusion matrix of tracks, pooled over folds")
    return _section("Cross-validation (evaluate)", body)


def _model(page: Page, title: str, metrics_path: Path, confusion: Path | None, shown: headline.Shown) -> str:
    body = _scores(page, title, metrics_path, confusion, shown)
    return _section(f"Model ({title})", body) if body else ""


def _scores(page: Page, title: str, metrics_path: Path, confusion: Path | None, shown: headline.Shown) -> str:
    """A metrics.json: its scores in one sentence, the per-genre table and its confusion matrix folded."""
    if not metrics_path.exists():
        return ""
    metrics = json.loads(metrics_path.read_text())
    body = f"<p class=score>{headline.held_out_text(metrics)}</p>"
    interval = metrics.get("track_accuracy_interval")
    if interval:
        body += f"<p>interval of the track accuracy: {html.escape(interval['method'])}</p>"
    per_genre = pd.DataFrame(metrics["classification_report_tracks"]).T
    per_genre = per_genre.loc[[c for c in metrics["classes"] if c in per_genre.index]]
    details = page.table(
        per_genre[["precision", "recall", "f1-score", "support"]].reset_index(names="genre"),
        caption=f"per track, on the {headline.side_name(metrics)}; support: its test tracks of the genre",
    )
    if confusion is not None and confusion.exists() and not shown.has(confusion):
        details += page.copy(confusion, f"{title}_", "confusion matrix (tracks)", name="confusion.png")
    return body + _fold(f"per-genre scores ({title})", details)


def _comparison(out: OutputLayout, page: Page, shown: headline.Shown) -> str:
    body = ""
    for name, files in out.comparisons().items():
        summary = json.loads(files.summary.read_text())
        leak = " class=leak" if summary["split"]["leaky"] else ""
        body += f"<h3{leak}>{html.escape(summary['label'])}</h3>"
        if summary.get("engine") == "dask":  # how the models ran differs from model to model: say why
            body += f"<p>{html.escape(summary['engine_reason'])}</p>"
        caption = headline.interval_caption(summary["models"])
        body += page.table(comparison_table(summary["models"]), caption=caption)
        if not shown.has(files.figure):
            body += page.copy(files.figure, "comparison_", summary["label"], name=f"{name}.png")
    return _section("Model comparison", body) if body else ""


def comparison_table(models: list[dict[str, Any]]) -> pd.DataFrame:
    """compare's rows with each column named by what it is: per segment or per track, interval bounds."""
    frame = pd.DataFrame(models)
    columns = {"model": "model"}
    for name in SCORES:
        columns[name] = _metric_name(name)
        if name == "track_accuracy":
            columns.update(
                {f"{name}_low": "track accuracy 95 % low", f"{name}_high": "track accuracy 95 % high"}
            )
    columns.update(
        {
            "folds": "folds",
            "fit_seconds": "fit seconds",
            "fit_cpu_seconds": "fit CPU seconds",
            "trained_on_tracks": "trained on tracks",
            "sampled": "sampled",
            "bound": "what bounds its cost",
        }
    )
    frame["model"] = [headline.model_name(m) for m in models]
    return frame[[c for c in columns if c in frame]].rename(columns=columns)


def _tuning(out: OutputLayout, page: Page, shown: headline.Shown) -> str:
    if not out.cv_results.exists():
        return ""
    best = json.loads(out.best_params.read_text())
    results = pd.read_csv(out.cv_results)
    # tune scores segment rows (GridSearchCV on the training segments); runs before tune recorded
    # it scored the same way
    unit = UNIT[best.get("scored_per", "segment")]
    score = f"cv {best.get('scoring', 'score')} {unit}"
    params = [c for c in results.columns if c.startswith("param_")]
    table = results.sort_values("rank_test_score")[params + ["mean_test_score", "std_test_score"]].rename(
        columns={"mean_test_score": f"{score}, mean over folds", "std_test_score": "std over folds"}
    )
    body = (
        f"<p>best {html.escape(json.dumps(best['best_params']))}: {html.escape(score)} "
        f"<b>{best['best_cv_score']:.3f}</b>, the mean over the folds of the training side (each segment "
        f"scored alone, not a track's vote; folds: {html.escape(best['cv'])}).</p>"
    )
    grid = page.copy(out.cv_figure, "", "grid search", name="cv_results.png") + page.table(table)
    body += _fold(f"the grid ({len(results)} candidates)", grid)
    tuned = _scores(page, "tuned", out.tune_metrics, None, shown)
    if tuned:
        body += "<h3>the best candidate, trained on the whole training side</h3>" + tuned
    return _section("Tuning", body)


def _corpus(out: OutputLayout, store: FeatureStore, page: Page) -> str:
    table = validation.read(out)
    if not len(table):
        if not store.exists():
            return ""
        table = store.read(["track_id", "label"]).drop_duplicates("track_id")
    counts = table.groupby("label").track_id.count()
    plots.class_balance_png(counts, page.folder / "class_balance.png")
    body = "<div class=small>" + page.img("class_balance.png", "tracks per genre") + "</div>"
    facts = []
    if "duplicate_of" in table:
        dupes = table[table.duplicate_of.notna()]
        bad = table[table.error.notna()]
        facts.append(f"{len(table)} files; {len(bad)} undecodable; {len(dupes)} exact copies of another file")
    if store.exists():
        segments = store.read(["track_id"])
        facts.append(f"{segments.track_id.nunique()} tracks with features, {len(segments)} segments")
    body += "".join(f"<p>{html.escape(f)}.</p>" for f in facts)
    if "duplicate_of" in table:
        if len(dupes):
            body += _fold(
                f"exact copies ({len(dupes)})", page.table(dupes[["track_id", "duplicate_of"]].head(50))
            )
        if len(bad):
            body += _fold(f"undecodable files ({len(bad)})", page.table(bad[["track_id", "error"]].head(50)))
    if out.skipped.exists():
        skipped = pd.read_parquet(out.skipped)
        if len(skipped):
            counts = skipped.groupby("reason").track_id.count().reset_index(name="tracks")
            body += "<h3>tracks the corpus lists but could not use</h3>" + page.table(counts)
    errors = store.errors()
    if len(errors):
        body += _fold(
            f"files left out of the features ({len(errors)})", page.table(errors[["path", "error"]])
        )
    return _section("Corpus", body)


def _examples(store: FeatureStore, page: Page) -> str:
    """One clip per genre, analysed with librosa's plain calls (these figures are for eyes)."""
    if not store.exists():
        return ""
    params = FeatureParams(**store.info()["feature_params"])
    rows = store.read(["track_id", "path", "label"]).drop_duplicates("track_id")
    rows["label"] = rows.label.astype(str)  # the hive partition reads back as a category
    body = ""
    for label, group in rows.sort_values("track_id").groupby("label"):
        path = group.path.iloc[0]
        if not Path(path).exists():
            continue
        # the first block (up to 30 s) is enough to look at, and bounded for hour-long files
        first = next(
            iter_segments(
                path,
                sample_rate=params.sample_rate,
                segment_samples=params.segment_samples,
                min_samples=params.min_samples,
            )
        )
        y = first.samples.ravel()
        name = f"example_{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}.png"  # FMA has "Old-Time / Historic"
        plots.genre_example_png(
            y, params.sample_rate, page.folder / name, title=f"{label}: {group.track_id.iloc[0]}",
            n_fft=params.n_fft, hop=params.hop_length,
        )  # fmt: skip
        body += page.img(name, f"{label}: {group.track_id.iloc[0]}")
    if not body:
        return ""
    return _section("One example per genre", _fold("waveform, spectrogram, centroid, chroma", body, "grid"))


def _correlation(store: FeatureStore, page: Page) -> str:
    if not store.exists():
        return ""
    names = [
        n for n in store.feature_columns() if n.endswith("_mean") or n in ("tempo_bpm", "zero_crossings")
    ]
    frame = store.read(names)
    if len(frame) > CORRELATION_ROWS:
        frame = frame.sample(CORRELATION_ROWS, random_state=0)
    plots.correlation_png(frame.corr().fillna(0.0), page.folder / "correlation.png")
    figure = page.img("correlation.png", "feature correlation (means, over segment rows)")
    return _section("Feature correlation", _fold(f"{len(names)} features", figure))


def _timings(record: dict) -> str:
    stages = record.get("stages", {})
    if not stages:
        return ""
    rows = [
        {"stage": k, "wall seconds": round(v.get("wall_seconds", float("nan")), 1)} for k, v in stages.items()
    ]
    body = Page.table(pd.DataFrame(rows))
    extract = stages.get("extract", {})
    if extract.get("audio_seconds_per_wall_second"):
        body += (
            f"<p>extraction: {extract['audio_seconds']:.0f} s of audio in {extract['wall_seconds']:.1f} s "
            f"on {extract['workers']} workers = {extract['audio_seconds_per_wall_second']:.0f} s of audio "
            "per second (this run; includes start-up)</p>"
        )
    versions = ", ".join(f"{k} {v}" for k, v in record.get("versions", {}).items())
    body += f"<p>feature-set version {record.get('feature_version')}; {html.escape(versions)}</p>"
    return _section("Run", body)


def _metric_name(name: str) -> str:
    """'track_macro_f1' -> 'track macro f1 (per track)': the unit is the metric's first word."""
    unit = UNIT.get(name.split("_")[0])
    return name.replace("_", " ") + (f" ({unit})" if unit else "")


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _fold(summary: str, body: str, kind: str = "") -> str:
    """Long or secondary content, closed until asked for (its images still load with the page)."""
    inner = f"<div class={kind}>{body}</div>" if kind else body
    return f"<details><summary>{html.escape(summary)}</summary>{inner}</details>"
