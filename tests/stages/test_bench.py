"""The bench stage on a tiny corpus: every table is written, and the extractors agree where they should."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from genre_hpc.flow.schema import feature_names
from genre_hpc.infra.benchmark import SCHEDULERS
from genre_hpc.stages import bench

from ..helpers import layout, make_config, run_stage


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory, numba_cache):
    out = tmp_path_factory.mktemp("bench-out")
    cfg = make_config(
        "bench",
        [
            f"output.dir={out}",
            "bench.clips=2",
            "bench.speed_clips=2",
            "bench.seconds=6.0",
            "bench.workers=[1,2]",
            "bench.batch_size=1",
            "bench.cold_cache_probe=false",
            "bench.long_minutes=0.3",
        ],
    )
    record = run_stage(bench, cfg)
    return layout(cfg).bench.folder, record


@pytest.mark.slow
def test_writes_every_table_with_its_columns(bench_run):
    folder, _ = bench_run
    expected = {
        "speed.csv": {"extractor", "s_per_30s_audio", "speedup", "audio_s"},
        "parity.csv": {"feature", "definition", "max_rel_diff", "tolerance", "ok"},
        "schedulers.csv": {"scheduler", "workers", "seconds", "speedup_vs_synchronous"},
        "scaling.csv": {"workers", "seconds", "speedup", "efficiency", "peak_worker_mb", "first_result_s"},
    }
    for name, columns in expected.items():
        table = pd.read_csv(folder / name)
        assert columns <= set(table.columns), name
        assert len(table) > 0, name
    assert (folder / "scaling.png").stat().st_size > 1000
    record = json.loads((folder / "bench.json").read_text())
    assert {"speed", "scaling", "schedulers", "startup", "memory_vs_length", "machine"} <= set(record)


@pytest.mark.slow
def test_runs_every_scheduler_and_worker_count(bench_run):
    folder, _ = bench_run
    schedulers = pd.read_csv(folder / "schedulers.csv")
    assert list(schedulers.scheduler) == list(SCHEDULERS)
    assert (schedulers.seconds > 0).all()
    scaling = pd.read_csv(folder / "scaling.csv")
    assert list(scaling.workers) == [1, 2]
    assert scaling.efficiency.iloc[0] == pytest.approx(1.0)
    assert (scaling.peak_worker_mb > 10).all()


@pytest.mark.slow
def test_parity_holds_for_every_feature_defined_the_same_way(bench_run):
    folder, record = bench_run
    parity = pd.read_csv(folder / "parity.csv")
    assert list(parity.feature) == feature_names()
    same = parity[parity.definition == "same"]
    assert len(same) > 100
    assert (same.max_rel_diff <= 0.01).all(), same.nlargest(5, "max_rel_diff")
    design = set(parity.feature[parity.definition == "differs by design"])
    assert {"harmonic_rms_mean", "percussive_rms_var", "chroma_01_mean"} <= design
    assert record["parity_ok"] is True


@pytest.mark.slow
def test_memory_probe_extracts_the_long_file_whole(bench_run):
    _, record = bench_run
    short, long = record["memory_vs_length"]
    assert long["segments"] == 3 * short["segments"]  # the 6-s clip three times over (0.3 min)
    assert long["peak_rss_mb"] > 0 and short["peak_rss_mb"] > 0


@pytest.mark.slow
def test_scale_probe_measures_a_corpus_of_n_tracks_and_reuses_it(tmp_path, numba_cache):
    cfg = make_config(
        "bench",
        [f"output.dir={tmp_path}", "bench.scale=[20]", "bench.scale_seconds=3.0", "bench.scale_workers=1",
         f"cluster.numba_cache_dir={numba_cache}"],
    )  # fmt: skip
    record = run_stage(bench, cfg)
    row = record["scale"][0]
    assert row["tracks"] == 4 * 2 * 3 + 1  # 4 genres x 2 artists x 3 tracks, and the no-audio file
    assert row["parts"] >= 1 and row["median_part_rows"] >= 1 and row["tasks"] >= 2
    assert row["driver_cpu_ms_per_track"] > 0 and row["resume_check_s"] > 0
    table = pd.read_csv(layout(cfg).bench.scale)
    assert list(table.tracks) == [row["tracks"]]
    clips = sorted((tmp_path / "bench-fma" / "n20").rglob("*.mp3"))
    stamps = [p.stat().st_mtime_ns for p in clips]
    bench.scaleprobe.build(tmp_path / "bench-fma", 20, seconds=3.0, sample_rate=22050, seed=0)
    assert [p.stat().st_mtime_ns for p in clips] == stamps  # cached, not written again
