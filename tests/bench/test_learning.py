"""The learning scale probe: its datasets are what extract leaves, made the same way every time, and
its table measures the learning stages run by the console command on a real LocalCluster."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from genre_hpc.bench import learning
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow.dataset import FeatureStore
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.schema import FEATURE_VERSION, arrow_schema
from genre_hpc.flow.trainset import TrainingData
from genre_hpc.stages import bench

from ..helpers import layout, make_config, run_stage

PARAMS = FeatureParams()
GROUPED = OmegaConf.create({"name": "grouped", "test_fraction": 0.2, "seed": 0, "group_by": None})


def build(root, rows=2000, *, seed=0, part_rows=50, long_tracks=False):
    return learning.build(root, rows, seed=seed, part_rows=part_rows, params=PARAMS, long_tracks=long_tracks)


def digests(out) -> dict[str, str]:
    files = sorted(p for p in out.root.rglob("*.parquet"))
    return {p.relative_to(out.root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def sorted_rows(out) -> pd.DataFrame:
    rows = FeatureStore(out).read_parts([p for p, _ in FeatureStore(out).parts()])
    return rows.sort_values(["track_id", "segment"]).reset_index(drop=True)


def test_the_dataset_is_what_train_reads_from_extract(tmp_path):
    out = build(tmp_path, 2000)
    data = TrainingData(out, GROUPED)  # no validate, no extract: the dataset alone
    frame = data.frame.compute()
    assert len(frame) == 2000
    assert len(data.tracks) == 200 and data.tracks.track_id.is_unique
    assert data.classes == sorted(learning.GENRES) and len(data.classes) == 16
    assert frame.groupby("track_id").size().eq(10).all()  # FMA's 30-s clips of 3-s segments
    # every track in one part; every genre in its own hive folder, the slash of FMA's name kept
    store = FeatureStore(out)
    assert store.info()["feature_version"] == FEATURE_VERSION
    parts = store.parts()
    # whole tracks of one genre, cut at extract.part_rows (here 50) as extract's merge cuts them
    assert sum(n for _, n in parts) == 2000 and len(parts) > 16
    assert all(50 <= n < 2 * 50 + 10 for _, n in parts)
    schema = arrow_schema(n_mfcc=PARAMS.n_mfcc)
    first = pq.read_schema(store.path / parts[0][0])
    assert first.names == [name for name in schema.names if name != "label"]
    assert set(store.content_hashes().track_id) == set(data.tracks.track_id)  # one hash per track
    assert len(data.split.test_tracks) == 40 and not data.split.leaky
    assert data.tracks.split.isin(["training", "validation", "test"]).all()  # FMA's own column too


def test_the_same_seed_writes_the_same_bytes_and_the_rows_do_not_depend_on_the_parts(tmp_path):
    first = build(tmp_path / "a", 2000, seed=3)
    again = build(tmp_path / "b", 2000, seed=3)
    assert digests(first) == digests(again)
    cut_otherwise = build(tmp_path / "c", 2000, seed=3, part_rows=100_000)
    pd.testing.assert_frame_equal(sorted_rows(first), sorted_rows(cut_otherwise))
    other = build(tmp_path / "d", 2000, seed=4)
    names = PARAMS.names()
    assert not np.allclose(sorted_rows(first)[names].to_numpy(), sorted_rows(other)[names].to_numpy())


def test_a_kept_dataset_is_reused_and_other_settings_rebuild_it(tmp_path):
    out = build(tmp_path, 2000)
    stamps = {p: p.stat().st_mtime_ns for p in out.features.rglob("*.parquet")}
    assert build(tmp_path, 2000).root == out.root
    assert {p: p.stat().st_mtime_ns for p in out.features.rglob("*.parquet")} == stamps
    build(tmp_path, 2000, part_rows=1000)  # another cut of the same rows: written again
    assert FeatureStore(out).row_count() == 2000 and len(FeatureStore(out).parts()) == 16


def test_long_tracks_are_about_90_segments_and_the_rows_are_exact():
    plan = learning.plan(1_000_000, seed=0, long_tracks=True)
    assert plan.lengths.sum() == 1_000_000
    assert 80 <= plan.lengths.mean() <= 100 and plan.lengths.max() > 200  # a long tail, as fma_full's
    assert np.bincount(plan.genres, minlength=16).min() >= plan.tracks // 16
    short = learning.plan(1_000_000, seed=0, long_tracks=False)
    assert short.tracks == 100_000 and (short.lengths == 10).all()


def test_a_dataset_of_long_tracks_is_read_as_one_of_clips(tmp_path):
    out = build(tmp_path, 3000, long_tracks=True, part_rows=500)
    data = TrainingData(out, GROUPED)
    per_track = data.frame.compute().groupby("track_id").segment.agg(["size", "min", "max"])
    assert per_track["size"].sum() == 3000 and 50 <= per_track["size"].mean() <= 130
    assert (per_track["min"] == 0).all() and (per_track["max"] == per_track["size"] - 1).all()
    assert len(data.tracks) == len(per_track) and (data.tracks.subset == "full").all()


def test_first_rounds_give_seconds_per_round_from_the_difference(tmp_path, monkeypatch):
    fits = {2: 30.0, 6: 38.0}  # 2 s per round, 26 s of matrices

    def fake(dataset, stage, run_dir, **kwargs):
        r = int(next(o for o in kwargs["overrides"] if "n_estimators" in o).split("=")[1])
        return {"stage": stage, "status": "finished", "fit_s": fits[r], "stage_s": fits[r] + 50.0}

    monkeypatch.setattr(learning, "probe_stage", fake)
    rows = learning._first_rounds(None, [2, 6], tmp_path, {"rows": 10}, workers=2, timeout=None,
                                  overrides=[], numba_cache=None)  # fmt: skip
    assert [r["stage"] for r in rows] == ["train 2 rounds", "train 6 rounds"]
    assert [r["seconds_per_round"] for r in rows] == [2.0, 2.0]
    assert [r["matrix_s"] for r in rows] == [26.0, 26.0]
    assert [r["overhead_s"] for r in rows] == [76.0, 76.0]


def test_rounds_used_is_read_however_a_stage_records_it(tmp_path):
    out = OutputLayout(tmp_path)
    out.metrics.write_text(json.dumps({"track_accuracy": 0.7, "rounds_used": 41, "fit_seconds": 3.0,
                                       "track_accuracy_interval": {"low": 0.6, "high": 0.8}}))  # fmt: skip
    found = learning.stage_results("train", out)
    assert found["rounds_used"] == 41 and found["track_accuracy"] == 0.7 and found["accuracy_low"] == 0.6
    assert learning._rounds([10, 20]) == 15 and learning._rounds({"mean": 7}) == 7
    assert learning._rounds(None) is None


@pytest.mark.slow
def test_a_stage_past_its_time_limit_is_stopped_with_its_workers(tmp_path, numba_cache):
    run = learning.run_folder(build(tmp_path / "data", 2000), tmp_path / "run")
    # 10 folds of 20,000 rounds each, never stopped early: many minutes, whatever the machine
    args = ["evaluate", f"output.dir={run.root}", "cluster=local", "cluster.n_workers=1",
            "model.params.n_estimators=20000", "model.early_stopping_rounds=null",
            f"cluster.numba_cache_dir={numba_cache}"]  # fmt: skip
    watched = learning.run_watched(args, run.root / "evaluate.log", timeout=25.0)
    log = (run.root / "evaluate.log").read_text()
    assert watched.code is None, log
    assert 25.0 <= watched.seconds < 60.0
    assert watched.driver_peak_mb > 0
    left = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == watched.pid:
                left.append(proc)
        except (ProcessLookupError, psutil.Error):
            pass
    assert not left, log
    row = learning.probe_stage(build(tmp_path / "data", 2000), "train", tmp_path / "run", workers=1,
                               timeout=1.0, overrides=[], numba_cache=str(numba_cache))  # fmt: skip
    assert row["status"] == "timeout" and row["exit_code"] is None and "track_accuracy" not in row


@pytest.mark.slow
def test_the_probe_measures_each_stage_on_a_local_cluster(tmp_path, numba_cache):
    cfg = make_config(
        "bench",
        [f"output.dir={tmp_path}", "bench.learning=[2000]", "bench.learning_stages=[train,evaluate]",
         "bench.learning_workers=2", "bench.learning_timeout=600", f"cluster.numba_cache_dir={numba_cache}",
         'bench.learning_overrides=["model.params.n_estimators=30","evaluate.folds=3"]',
         "bench.learning_rounds=[1,3]"],
    )  # fmt: skip
    record = run_stage(bench, cfg)
    table = pd.read_csv(layout(cfg).bench.learning)
    assert list(table.stage) == ["train", "evaluate", "train 1 rounds", "train 3 rounds"]
    assert len(record["learning"]) == 4
    assert (table.status == "finished").all() and (table.exit_code == 0).all()
    rounds = table.set_index("stage").rounds_used
    assert 1 <= rounds["train"] <= 30 and list(rounds.iloc[2:]) == [1, 3]
    first = table.iloc[2:]
    assert first.seconds_per_round.notna().all() and first.matrix_s.notna().all()
    # the machine's reference round, measured once in the run, on every row
    assert table.machine_round_s.nunique() == 1 and (table.machine_round_s > 0).all()
    table = table.iloc[:2]
    assert (table.rows == 2000).all() and (table.tracks == 200).all() and (table.workers == 2).all()
    for column in ("wall_s", "stage_s", "driver_peak_rss_mb", "worker_peak_rss_mb"):
        assert (table[column] > 0).all(), column
    assert (table.workers_seen == 2).all() and (table.dataset_mb > 0).all()
    assert table.worker_peaks_mb.str.split().map(len).eq(2).all()
    assert (table.wall_s >= table.stage_s).all()
    assert table.track_accuracy.between(0, 1).all()
    # 160 training tracks of 16 genres: a model that learned nothing gets 1/16
    assert (table.track_accuracy > 2 / 16).all(), table.track_accuracy
    assert table.accuracy_of.str.contains("grouped split|whole tracks").all()
