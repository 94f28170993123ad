"""The report: one self-contained HTML page (PNG figures beside it) of what a run left in output.dir."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from genre_hpc.core.atomic import write_bytes, write_text
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import plots, validation
from genre_hpc.flow.audio import iter_segments
from genre_hpc.flow.dataset import FeatureStore
from genre_hpc.flow.metrics import interval_text
from genre_hpc.flow.params import FeatureParams

# rows read for the correlation heatmap: plenty for stable estimates, bounded memory
CORRELATION_ROWS = 50_000


def write(out: OutputLayout, manifest: dict[str, Any]) -> Path:
    """Write OUT/report/index.html and its figures; `manifest` is manifest.json's record of the run."""
    folder = out.report
    folder.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(out)
    sections = [
        _corpus(out, store, folder),
        _examples(store, folder),
        _correlation(store, folder),
        _model(folder, "train", out.metrics, out.confusion_matrix),
        _tuning(out, folder),
        _evaluation(out, folder),
        _comparison(out, folder),
        _timings(manifest),
    ]
    write_text(out.report_page, _page([s for s in sections if s]), durable=False)
    return out.report_page


def _corpus(out: OutputLayout, store: FeatureStore, folder: Path) -> str:
    table = validation.read(out)
    if not len(table):
        if not store.exists():
            return ""
        table = store.read(["track_id", "label"]).drop_duplicates("track_id")
    counts = table.groupby("label").track_id.count()
    plots.class_balance_png(counts, folder / "class_balance.png")
    body = _img("class_balance.png", "tracks per genre")
    if "duplicate_of" in table:
        dupes = table[table.duplicate_of.notna()]
        bad = table[table.error.notna()]
        body += (
            f"<p>{len(table)} files; {len(bad)} undecodable; {len(dupes)} exact copies of another file.</p>"
        )
        if len(dupes):
            body += _table(dupes[["track_id", "duplicate_of"]].head(50))
        if len(bad):
            body += _table(bad[["track_id", "error"]].head(50))
    if out.skipped.exists():
        skipped = pd.read_parquet(out.skipped)
        if len(skipped):
            counts = skipped.groupby("reason").track_id.count().reset_index(name="tracks")
            body += "<h3>tracks the corpus lists but could not use</h3>" + _table(counts)
    errors = store.errors()
    if len(errors):
        body += "<h3>files left out of the features</h3>" + _table(errors[["path", "error"]])
    return _section("Corpus", body)


def _examples(store: FeatureStore, folder: Path) -> str:
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
            y, params.sample_rate, folder / name, title=f"{label}: {group.track_id.iloc[0]}",
            n_fft=params.n_fft, hop=params.hop_length,
        )  # fmt: skip
        body += _img(name, f"{label}: {group.track_id.iloc[0]}")
    return _section("One example per genre", body)


def _correlation(store: FeatureStore, folder: Path) -> str:
    if not store.exists():
        return ""
    names = [
        n for n in store.feature_columns() if n.endswith("_mean") or n in ("tempo_bpm", "zero_crossings")
    ]
    frame = store.read(names)
    if len(frame) > CORRELATION_ROWS:
        frame = frame.sample(CORRELATION_ROWS, random_state=0)
    plots.correlation_png(frame.corr().fillna(0.0), folder / "correlation.png")
    return _section("Feature correlation", _img("correlation.png", "feature correlation (means)"))


def _model(folder: Path, title: str, metrics_path: Path, confusion: Path | None) -> str:
    if not metrics_path.exists():
        return ""
    metrics = json.loads(metrics_path.read_text())
    split = metrics["split"]
    leaky = (
        " <b class=leak>LEAKY split: segments of one track on both sides</b>" if split.get("leaky") else ""
    )
    interval = metrics.get("track_accuracy_interval")
    track = (
        html.escape(interval_text(metrics["track_accuracy"], interval))
        if interval
        else f"{metrics['track_accuracy']:.3f} (no interval recorded)"
    )
    body = (
        f"<p class=score>segment accuracy <b>{metrics['segment_accuracy']:.3f}</b>, track accuracy "
        f"<b>{track}</b>, track macro-F1 {metrics['track_macro_f1']:.3f} "
        f"&mdash; on the test side of the <b>{html.escape(split['name'])}</b> split{leaky}: "
        f"{html.escape(split['description'])}</p>"
    )
    if interval:
        body += f"<p>interval: {html.escape(interval['method'])}</p>"
    if confusion is not None and confusion.exists():
        write_bytes(folder / f"{title}_confusion.png", confusion.read_bytes(), durable=False)
        body += _img(f"{title}_confusion.png", "confusion matrix (tracks)")
    per_genre = pd.DataFrame(metrics["classification_report_tracks"]).T
    per_genre = per_genre.loc[[c for c in metrics["classes"] if c in per_genre.index]]
    body += _table(
        per_genre[["precision", "recall", "f1-score", "support"]].round(3).reset_index(names="genre")
    )
    return _section(f"Model ({title})", body)


def _tuning(out: OutputLayout, folder: Path) -> str:
    if not out.cv_results.exists():
        return ""
    best = json.loads(out.best_params.read_text())
    results = pd.read_csv(out.cv_results)
    write_bytes(folder / "cv_results.png", out.cv_figure.read_bytes(), durable=False)
    columns = [c for c in results.columns if c.startswith("param_")] + ["mean_test_score", "std_test_score"]
    body = f"<p>{html.escape(best['cv'])}; best {html.escape(json.dumps(best['best_params']))}</p>"
    body += _img("cv_results.png", "grid search") + _table(results.sort_values("rank_test_score")[columns])
    body += _model(folder, "tuned", out.tune_metrics, None)
    return _section("Tuning", body)


def _evaluation(out: OutputLayout, folder: Path) -> str:
    files = out.evaluation
    if not files.summary.exists():
        return ""
    summary = json.loads(files.summary.read_text())
    leak = " <b class=leak>LEAKY: segments of one track in several folds</b>" if summary["leaky"] else ""
    metrics = summary["metrics"]
    rows = pd.DataFrame(
        [
            {"metric": name.replace("_", " "), "mean over folds": info["mean"], "std over folds": info["std"],
             "95 % interval (low)": info["low"], "95 % interval (high)": info["high"]}
            for name, info in metrics.items()
        ]
    )  # fmt: skip
    track = metrics["track_accuracy"]
    pooled = summary["pooled_track_accuracy_interval"]
    tested = "segment" if summary["leaky"] else f"one of the {summary['tested_tracks']} tracks"
    model = f"{summary['model']['name']} {json.dumps(summary['model']['params'])}"
    body = (
        f"<p class=score>track accuracy <b>{html.escape(interval_text(track['mean'], track))}</b>, "
        f"mean over {summary['folds']} folds (std {track['std']:.3f}) &mdash; "
        f"{html.escape(summary['protocol'])}{leak}.</p>"
        f"<p>Every {tested} was tested once. Pooled over folds: track accuracy "
        f"{html.escape(interval_text(summary['pooled_track_accuracy'], pooled))} "
        f"({html.escape(pooled['method'])})."
        f" Interval of the means: {html.escape(track['method'])}. Model {html.escape(model)}, "
        f"engine {html.escape(summary['engine'])}.</p>"
    )
    body += _table(rows)
    for name, alt in (("figure", "accuracy per fold"), ("confusion", "confusion matrix, pooled over folds")):
        source = getattr(files, name)
        if source.exists():
            write_bytes(folder / f"evaluate_{source.name}", source.read_bytes(), durable=False)
            body += _img(f"evaluate_{source.name}", alt)
    return _section("Cross-validation (evaluate)", body)


def _comparison(out: OutputLayout, folder: Path) -> str:
    body = ""
    for name, files in out.comparisons().items():
        summary = json.loads(files.summary.read_text())
        table = pd.DataFrame(summary["models"]).drop(columns=["split", "leaky"])
        write_bytes(folder / f"comparison_{name}.png", files.figure.read_bytes(), durable=False)
        leak = " class=leak" if summary["split"]["leaky"] else ""
        body += f"<h3{leak}>{html.escape(summary['label'])}</h3>"
        body += _table(table.round(3)) + _img(f"comparison_{name}.png", summary["label"])
    return _section("Model comparison", body) if body else ""


def _timings(record: dict) -> str:
    stages = record.get("stages", {})
    if not stages:
        return ""
    rows = [
        {"stage": k, "wall seconds": round(v.get("wall_seconds", float("nan")), 1)} for k, v in stages.items()
    ]
    body = _table(pd.DataFrame(rows))
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


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _img(name: str, alt: str) -> str:
    alt = html.escape(alt)
    return f'<figure><img src="{name}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, classes="data", float_format=lambda v: f"{v:.3f}")


def _page(sections: list[str]) -> str:
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "img{max-width:100%}table.data{border-collapse:collapse;font-size:0.85em}"
        "table.data td,table.data th{padding:2px 8px;border-bottom:1px solid #ddd}"
        ".leak{color:#b00}.score{font-size:1.1em}figure{margin:1em 0}"
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>genre-hpc report</title>"
        f"<style>{style}</style></head><body><h1>genre-hpc report</h1>{''.join(sections)}</body></html>\n"
    )
