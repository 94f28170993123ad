"""The output layout names the paths README documents, under an absolute output.dir."""

from pathlib import Path

from genre_hpc.core.layout import OutputLayout

from ..helpers import REPO, make_config


def test_every_documented_path_comes_from_the_layout(tmp_path):
    out = OutputLayout(tmp_path)
    named = {
        "features": out.features,
        "errors.parquet": out.errors,
        "manifest.json": out.manifest,
        "validation.parquet": out.validation,
        "model/model.ubj": out.model.booster,
        "model/preprocess.json": out.model.preprocess,
        "metrics.json": out.metrics,
        "confusion_matrix.png": out.confusion_matrix,
        "tune/cv_results.csv": out.cv_results,
        "tune/best_params.json": out.best_params,
        "tune/cv_results.png": out.cv_figure,
        "tune/model/model.ubj": out.tune_model.booster,
        "tune/metrics.json": out.tune_metrics,
        "compare/grouped/comparison.csv": out.comparison("grouped").table,
        "report/index.html": out.report_page,
        "report/screenshots/first-screen.png": out.report_screenshot,
        "predictions/predictions.csv": out.predictions_table,
        "predictions/predictions.json": out.predictions_records,
        "bench/bench.json": out.bench.record,
        "bench/scaling.png": out.bench.figure,
        ".errors": out.error_parts,
        ".hashes": out.hash_parts,
        "tracks.parquet": out.tracks,
        "skipped.parquet": out.skipped,
    }
    assert {name: path.relative_to(tmp_path).as_posix() for name, path in named.items()} == {
        name: name for name in named
    }
    readme = (REPO / "README.md").read_text()
    for name in ("features/", "errors.parquet", "manifest.json", "model/", "model.ubj", "preprocess.json",
                 "metrics.json", "confusion_matrix.png", "tune/", "cv_results.csv", "best_params.json",
                 "cv_results.png", "validation.parquet", "compare/<split>/", "OUT/report/index.html",
                 "predictions/", "OUT/.errors/", "OUT/.hashes/", "tracks.parquet",
                 "skipped.parquet"):  # fmt: skip
        assert name in readme, name


def test_output_dir_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = OutputLayout.of(make_config("run", ["output.dir=relative/out"]))
    assert out.root == tmp_path.resolve() / "relative" / "out"
    assert out.root.is_absolute()


def test_comparisons_are_found_by_split(tmp_path):
    out = OutputLayout(tmp_path)
    for split in ("random_segments", "grouped"):
        out.comparison(split).folder.mkdir(parents=True)
        out.comparison(split).summary.write_text("{}")
    (tmp_path / "compare" / "empty").mkdir()
    assert list(out.comparisons()) == ["grouped", "random_segments"]
    assert out.comparisons()["grouped"].figure == Path(tmp_path, "compare", "grouped", "comparison.png")
