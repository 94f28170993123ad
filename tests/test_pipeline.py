"""The whole pipeline through the console command, as a user runs it on the embedded default."""

import json

import pandas as pd
import pytest
import xgboost

from .helpers import run_cli


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    result = run_cli(
        "run",
        "output.dir=out",
        "data.demo.n_per_genre=6",
        "data.demo.seconds=6",
        "cluster.n_workers=2",
        "search.n_estimators=30",
        "evaluate.folds=3",
        cwd=work,
    )
    return work, work / "out", result


def test_everything_is_written_under_output_dir(pipeline):
    work, out, _ = pipeline
    assert [p.name for p in work.iterdir()] == ["out"]
    for name in ("features", "errors.parquet", "manifest.json", "model", "metrics.json", "tune", "hydra",
                 "validation.parquet", "evaluate/summary.json", "report/index.html"):  # fmt: skip
        assert (out / name).exists(), name
    assert len(list((out / "demo-corpus").rglob("*.wav"))) == 60
    # every file is published by a rename; none is left half-written under a temporary name
    assert [p for p in out.rglob(".*.tmp") if ".dask" not in p.parts] == []


def test_metrics_are_learned_and_name_their_split(pipeline):
    _, out, _ = pipeline
    metrics = json.loads((out / "metrics.json").read_text())
    chance = 1 / 10
    # 12 held-out songs of 6 s from a demo built to be hard (genres borrow from their neighbours):
    # learned, not perfect
    assert metrics["track_accuracy"] > 2 * chance
    assert metrics["segment_accuracy"] > 2 * chance
    interval = metrics["track_accuracy_interval"]
    assert interval["low"] <= metrics["track_accuracy"] <= interval["high"]
    assert "12 test tracks" in interval["method"]
    assert metrics["split"]["name"] == "grouped"
    assert metrics["split"]["train_tracks"] + metrics["split"]["test_tracks"] == 60
    assert metrics["test_tracks"] == metrics["split"]["test_tracks"]
    assert "test" in metrics["evaluated_on"]
    assert set(metrics["classification_report_tracks"]) >= set(metrics["classes"])
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saved_model_predicts_with_its_preprocessing(pipeline):
    _, out, _ = pipeline
    info = json.loads((out / "model" / "preprocess.json").read_text())
    booster = xgboost.Booster(model_file=str(out / "model" / "model.ubj"))
    rows = pd.read_parquet(out / "features")
    x = (rows[info["feature_names"]].to_numpy() - info["mean"]) / info["std"]
    proba = booster.inplace_predict(x)
    assert proba.shape == (len(rows), len(info["classes"]))
    accuracy = (proba.argmax(axis=1) == rows.label.astype(str).map(info["classes"].index)).mean()
    assert accuracy > 0.5  # mostly training rows: the model must fit them


def test_tune_writes_cv_table_best_params_and_final_model(pipeline):
    _, out, _ = pipeline
    table = pd.read_csv(out / "tune" / "cv_results.csv")
    assert len(table) == 2  # 2 depths x 1 rate, each at search.n_estimators rounds
    assert {"mean_test_score", "rank_test_score", "param_max_depth"} <= set(table.columns)
    best = json.loads((out / "tune" / "best_params.json").read_text())
    assert set(best["best_params"]) == {"max_depth", "learning_rate"}
    assert "grouped by track" in best["cv"]
    # 48 training tracks, fewer than search.sample_tracks: the search ran on all of them
    assert (best["candidates"], best["folds"], best["fits"], best["search_rounds"]) == (2, 3, 6, 30)
    assert best["sample"]["tracks"] == best["sample"]["of_training_tracks"] == 48
    # GridSearchCV scores segment rows: the file and the report say so beside the test side's track score
    assert best["scored_per"] == "segment"
    page = (out / "report" / "index.html").read_text()
    tuning = page.split("<h2>Tuning</h2>")[1].split("</section>")[0]
    assert f"cv accuracy per segment <b>{best['best_cv_score']:.3f}</b>" in tuning
    assert "each segment scored alone" in tuning and "per track" in tuning
    assert (out / "tune" / "model" / "model.ubj").exists()
    tuned = json.loads((out / "tune" / "metrics.json").read_text())
    assert tuned["split"]["name"] == "grouped" and 0 <= tuned["track_accuracy"] <= 1


def test_manifest_records_every_stage_with_timings(pipeline):
    _, out, result = pipeline
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"validate", "extract", "train", "tune", "evaluate"}
    assert all(stage["wall_seconds"] > 0 for stage in manifest["stages"].values())
    assert manifest["stages"]["extract"]["rows_total"] == 120
    assert "extract:" in result.stderr and "batches" in result.stderr  # progress was shown


def _without_timings(value):
    """metrics.json as a comparison should see it: every field but the clocks."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if not k.endswith("_seconds")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


@pytest.mark.slow
def test_train_run_twice_gives_the_same_model_and_metrics(pipeline):
    work, out, _ = pipeline
    runs = []
    for _ in range(2):
        run_cli("train", "output.dir=out", "cluster.n_workers=2", "model.params.n_estimators=30", cwd=work)
        runs.append(
            ((out / "model" / "model.ubj").read_bytes(), json.loads((out / "metrics.json").read_text()))
        )
    (model_a, metrics_a), (model_b, metrics_b) = runs
    assert model_a == model_b
    assert _without_timings(metrics_a) == _without_timings(metrics_b)
    assert metrics_a["fit_seconds"] > 0  # the clocks were there, and left out of the comparison


def test_run_cross_validates_by_default(pipeline):
    _, out, _ = pipeline
    summary = json.loads((out / "evaluate" / "summary.json").read_text())
    assert summary["folds"] == 3 and summary["tested_tracks"] == 60
    assert "whole tracks" in summary["protocol"]


@pytest.mark.slow
def test_train_and_tune_run_alone_on_the_existing_dataset(pipeline):
    work, out, _ = pipeline
    result = run_cli("train", "output.dir=out", "model.params.n_estimators=20", cwd=work)
    assert "track accuracy" in result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["params"]["n_estimators"] == 20
