"""The bench stage on a tiny corpus: every table is written, and the extractors agree where they should."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from genre_hpc.bench import mp3, new_worker
from genre_hpc.bench.extraction import SCHEDULERS
from genre_hpc.bench.mpvariants import VARIANTS
from genre_hpc.bench.training import ROWS_PER_TRACK, TRAINING_METHODS, feature_rows
from genre_hpc.flow.schema import feature_names
from genre_hpc.infra import jitcache
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
        "schedulers.csv": {"scheduler", "workers", "seconds", "speedup_vs_synchronous", "files", "segments"},
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
    assert list(schedulers.scheduler[schedulers.scheduler.isin(SCHEDULERS)]) == list(SCHEDULERS)
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
def test_mp3_probe_times_both_extractors_and_decoders_on_44k_stereo_mp3(tmp_path, numba_cache):
    import soundfile as sf

    cfg = make_config(
        "bench",
        [f"output.dir={tmp_path}", "bench.extraction=false", "bench.mp3_clips=[1,3]", "bench.seconds=6.0"],
    )
    record = run_stage(bench, cfg)
    files = layout(cfg).bench
    clips = sorted((tmp_path / "bench-corpus-mp3" / "6s").rglob("*.mp3"))
    assert len(clips) == 10  # one per genre covers 3
    info = sf.info(clips[0])
    assert (info.format, info.samplerate, info.channels) == ("MP3", 44100, 2)
    end_to_end = pd.read_csv(files.mp3)
    assert list(end_to_end.method) == [mp3.REFERENCE, mp3.PACKAGE]
    assert (end_to_end.clips_small == 1).all() and (end_to_end.clips_large == 3).all()
    marginal = (end_to_end.seconds_large - end_to_end.seconds_small) / 2
    assert list(end_to_end.s_per_clip) == pytest.approx(list(marginal))
    assert end_to_end.speedup.iloc[0] == 1 and end_to_end.speedup.iloc[1] > 1
    decoding = pd.read_csv(files.mp3_decode)
    assert list(decoding.method) == [mp3.DECODE_PATH, mp3.LIBSNDFILE, mp3.LIBROSA_LOAD]
    assert decoding.ratio_vs_libsndfile.iloc[1] == 1
    # the same samples reach both extractors (librosa.load's and the package's decode agree), so
    # every feature defined the same way agrees within the tolerance
    assert record["mp3_parity_ok"] and len(pd.read_csv(files.mp3_parity)) == len(feature_names())


@pytest.mark.slow
def test_new_worker_probe_starts_one_worker_with_nothing_primed_and_one_with_both_caches(
    tmp_path, numba_cache
):
    cfg = make_config(
        "bench",
        [f"output.dir={tmp_path}", "bench.extraction=false", "bench.new_worker=true", "bench.clips=1",
         "bench.seconds=6.0"],
    )  # fmt: skip
    run_stage(bench, cfg)
    table = pd.read_csv(layout(cfg).bench.new_worker, keep_default_na=False)
    assert list(table.worker) == [label for label, _ in new_worker.VARIANTS]
    cold, primed = table.to_dict("records")
    folder = jitcache.primed_folder(numba_cache)
    # the cold worker compiled into an empty cache of its own and read no primed bytecode
    assert not cold["numba_cache"].startswith(str(numba_cache)) and cold["bytecode_prefix"] == ""
    assert primed["numba_cache"].startswith(str(numba_cache / "proc"))
    assert primed["bytecode_prefix"] == str(jitcache.bytecode_folder(folder))
    for row in (cold, primed):  # the clocks agree: the worker's start precedes its connection
        assert (
            row["process_to_result_s"]
            >= row["connected_to_result_s"]
            >= row["warm_up_s"] + row["first_track_s"] - 0.02
        )


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
    bench.scale.build(tmp_path / "bench-fma", 20, seconds=3.0, sample_rate=22050, seed=0)
    assert [p.stat().st_mtime_ns for p in clips] == stamps  # cached, not written again


@pytest.mark.slow
def test_multiprocessing_rows_extract_the_same_files_as_the_dask_rows(bench_run):
    folder, _ = bench_run
    table = pd.read_csv(folder / "schedulers.csv")
    assert list(table.scheduler) == [*SCHEDULERS, *VARIANTS]
    assert (table.seconds > 0).all()
    dask_rows = table[table.scheduler.isin(SCHEDULERS)]
    assert table.files.nunique() == 1 and table.files.iloc[0] == 2
    # every variant extracted every segment the Dask schedulers did, no more, no fewer
    assert table.segments.nunique() == 1 and table.segments.iloc[0] == dask_rows.segments.iloc[0] > 0


@pytest.fixture(scope="module")
def training_run(tmp_path_factory, numba_cache):
    """The training and tuning probes alone, at tiny sizes (a 2 x 1 x 1 grid, 2 folds)."""
    out = tmp_path_factory.mktemp("bench-train")
    cfg = make_config(
        "bench",
        [f"output.dir={out}", "bench.extraction=false", "bench.training_rows=[300,600]",
         "bench.training_trees=4", "bench.tuning=true", "bench.tuning_rows=400",
         "search.cv_folds=2", "search.grid={max_depth:[2,3],learning_rate:[0.3]}",
         "model.params.n_estimators=3"],
    )  # fmt: skip
    record = run_stage(bench, cfg)
    return layout(cfg).bench, record


@pytest.mark.slow
def test_training_fits_every_method_at_every_size_with_the_same_trees(training_run):
    files, record = training_run
    table = pd.read_csv(files.training)
    methods = [name for name, _ in TRAINING_METHODS]
    for n in (300, 600):
        assert list(table.method[table.rows == n]) == methods
    assert (table["columns"] == len(feature_names())).all()
    assert (table.fit_seconds > 0).all()
    # the same trees everywhere: every fit ran the asked-for number of boosting rounds
    assert (table.n_estimators == 4).all() and (table.boosted_rounds == 4).all()
    assert table.speedup_vs_1_thread[table.method == methods[0]].tolist() == pytest.approx([1.0, 1.0])
    assert files.training_figure.stat().st_size > 1000
    assert "Dask workers" in record["training_note"]
    # the extraction parts were switched off
    assert not files.schedulers.exists() and "speed" not in record


@pytest.mark.slow
def test_tuning_searches_the_grid_on_each_worker_count(training_run):
    files, record = training_run
    table = pd.read_csv(files.tuning)
    assert list(table.workers) == [1, 2]
    assert (table.candidates == 2).all() and (table.fits == 4).all() and (table.failed_fits == 0).all()
    assert (table.seconds > 0).all()
    assert table.efficiency.iloc[0] == pytest.approx(1.0)
    assert table.efficiency.iloc[1] == pytest.approx(table.speedup.iloc[1] / 2)
    # the same search on either cluster finds the same best score
    assert table.best_cv_score.nunique() == 1


def test_feature_rows_have_the_schema_width_and_whole_tracks_of_one_genre():
    x, y, tracks = feature_rows(1000, n_classes=10, n_features=len(feature_names()), seed=0)
    assert x.shape == (1000, 174) and x.dtype == "float32"
    assert len(y) == len(tracks) == 1000
    per_track = pd.DataFrame({"track": tracks, "y": y}).groupby("track").y
    assert (per_track.nunique() == 1).all() and (per_track.size() == ROWS_PER_TRACK).all()
    assert set(y) == set(range(10))
