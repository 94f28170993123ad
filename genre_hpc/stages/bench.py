"""The bench stage: the package's extractor against the origin study's, value parity, and Dask scaling.

One run on one set of files: (1) both extractors timed single-process after warm-up, (2) their
values compared feature by feature, (3) the origin study's comparison of Dask schedulers and a
sweep of the number of workers, (4) peak memory per worker, the time a fresh worker takes to
its first result, and peak memory for a long file against a short one; (5) when asked
(bench.training_rows, bench.tuning), the origin study's xgboost training and grid-search
measurements, and (bench.mp3_clips) both extractors end to end on 44.1 kHz stereo MP3. Tables
go to the log and to `output.dir/bench/` as CSV and JSON, with PNGs.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from genre_hpc.bench import extraction, learning, mp3, new_worker, scale, training
from genre_hpc.core.atomic import write_csv, write_text
from genre_hpc.core.errors import ConfigError
from genre_hpc.core.layout import BenchFiles, OutputLayout
from genre_hpc.flow import corpus, demo, plots
from genre_hpc.flow.parity import parity_summary, parity_table
from genre_hpc.infra import config, manifest

log = logging.getLogger(__name__)


def run(cfg: DictConfig, client: Any, out: OutputLayout) -> dict[str, Any]:
    """Run every part of the benchmark; write the tables and return the record (builds its own clusters)."""
    timer = manifest.StageTimer(out, cfg)
    spec = cfg.bench
    files = out.bench
    sizes = [int(n) for n in spec.get("scale") or []]
    if sizes:  # the scale probe runs alone: it is long, and measures other things
        if any(n < 1 for n in sizes):
            raise ConfigError("bench.scale", f"{sizes} must be positive track counts", "e.g. [1000]")
        table = scale.run(cfg, sizes, files.folder)
        write_csv(files.scale, table)
        _log_table("scale probe (validate + extract by the console command)", table)
        record = {"machine": extraction.machine(), "command": _command(), "scale": table.to_dict("records")}
        timer.finish("bench", record)
        return record
    learning_sizes = [int(n) for n in spec.get("learning") or []]
    if learning_sizes:  # the learning probe runs alone too: it runs the learning stages for minutes
        if any(n < 10 * len(learning.GENRES) for n in learning_sizes):
            raise ConfigError(
                "bench.learning", f"{learning_sizes} must be row counts of at least 160", "e.g. [100000]"
            )
        table = learning.run(cfg, learning_sizes, files.folder)
        write_csv(files.learning, table)
        shown = table.drop(columns=["log"], errors="ignore")
        _log_table("learning probe (learning stages by the console command)", shown)
        record = {"machine": extraction.machine(), "command": _command()}
        record["learning"] = table.to_dict("records")
        timer.finish("bench", record)
        return record
    record: dict[str, Any] = {"machine": extraction.machine(), "command": _command()}
    log.info("bench: machine: %s", record["machine"]["summary"])
    if spec.extraction:
        _extraction(cfg, files, record)
    if spec.mp3_clips:
        _mp3(cfg, files, record)
    if spec.new_worker:
        table = new_worker.probe(cfg, bench_corpus(cfg, 1)[0])
        write_csv(files.new_worker, table)
        _log_table(f"a new worker's first result (cluster={cfg.cluster.kind})", table)
        record["new_worker"] = table.to_dict(orient="records")
    if spec.training_rows:
        timings = training.time_training(cfg)
        write_csv(files.training, timings)
        plots.training_png(timings, files.training_figure)
        _log_table("xgboost training, same trees and parameters", timings)
        record["training"] = timings.to_dict(orient="records")
        record["training_note"] = training.payoff_note(timings)
        log.info("bench: %s", record["training_note"])
    if spec.tuning:
        tuning = training.time_tuning(cfg)
        write_csv(files.tuning, tuning)
        _log_table("dask-ml GridSearchCV over search.grid", tuning)
        record["tuning"] = tuning.to_dict(orient="records")
    write_text(files.record, json.dumps(record, indent=2, default=str) + "\n")
    timer.finish("bench", record)
    log.info("bench: results in %s", files.folder)
    return record


def _extraction(cfg: DictConfig, files: BenchFiles, record: dict[str, Any]) -> None:
    """Extractor speed and parity, schedulers and the worker sweep, start-up and memory."""
    from threadpoolctl import threadpool_limits

    spec = cfg.bench
    params = config.feature_params(cfg)
    paths = bench_corpus(cfg, int(spec.clips))
    record["files"] = len(paths)
    log.info("bench: %d files", len(paths))

    # "per core": the single-process parts must not spread BLAS over the other core
    with threadpool_limits(1):
        speed, ours, theirs = extraction.time_extractors(paths[: int(spec.speed_clips)], params, spec)
        parity = parity_table(ours, theirs, params, tolerance=float(spec.tolerance))
    write_csv(files.speed, speed)
    write_csv(files.parity, parity)
    _log_table("extractors, single process after warm-up", speed)
    _log_table("parity: largest relative difference over all segments", parity_summary(parity))
    record["speed"] = speed.to_dict(orient="records")
    record["speedup_vs_reference"] = float(speed.speedup.iloc[-1])
    record["parity_ok"] = bool(parity.ok.all())

    scaling = extraction.sweep_workers(cfg, paths, params)
    write_csv(files.scaling, scaling)
    _log_table("distributed, worker sweep", scaling)
    schedulers = extraction.time_schedulers(cfg, paths, params, scaling)
    write_csv(files.schedulers, schedulers)
    _log_table("Dask schedulers, same files", schedulers)
    record["schedulers"] = schedulers.to_dict(orient="records")
    record["scaling"] = scaling.to_dict(orient="records")

    record["startup"] = extraction.startup_probe(cfg, paths[0])
    _log_table("a fresh process's first result", pd.DataFrame(record["startup"]))
    record["memory_vs_length"] = extraction.memory_probe(cfg, paths[0], files.long_files)
    _log_table("peak memory against file length", pd.DataFrame(record["memory_vs_length"]))
    plots.scaling_png(schedulers, scaling, files.figure)


def _mp3(cfg: DictConfig, files: BenchFiles, record: dict[str, Any]) -> None:
    """End to end and decode alone on 44.1 kHz stereo MP3, single process, one core."""
    from threadpoolctl import threadpool_limits

    spec = cfg.bench
    counts = tuple(int(n) for n in spec.mp3_clips)
    if len(counts) != 2:
        raise ConfigError("bench.mp3_clips", f"{list(counts)} must be two clip counts", "e.g. [10, 50]")
    root = Path(str(spec.mp3_root)).expanduser()
    paths = mp3.mp3_corpus(root, max(counts), seconds=float(spec.seconds), seed=cfg.data.demo.seed)
    params = config.feature_params(cfg)
    with threadpool_limits(1):
        end_to_end, decoding, ours, theirs = mp3.time_mp3(
            paths, counts, params, repeats=int(spec.repeats), block_segments=int(spec.block_segments)
        )
        parity = parity_table(ours, theirs, params, tolerance=float(spec.tolerance))
    write_csv(files.mp3, end_to_end)
    write_csv(files.mp3_decode, decoding)
    write_csv(files.mp3_parity, parity)
    _log_table("44.1 kHz stereo MP3, end to end (decode + features), marginal cost per clip", end_to_end)
    _log_table("44.1 kHz stereo MP3, decode alone, against libsndfile's own decode", decoding)
    _log_table("MP3 parity: largest relative difference over all segments", parity_summary(parity))
    record["mp3"] = end_to_end.to_dict(orient="records")
    record["mp3_decode"] = decoding.to_dict(orient="records")
    record["mp3_speedup_vs_reference"] = float(end_to_end.speedup.iloc[-1])
    record["mp3_parity_ok"] = bool(parity.ok.all())


def bench_corpus(cfg: DictConfig, n: int) -> list[str]:
    """`n` files, genres interleaved: data.root's, or the demo corpus grown to size."""
    if cfg.data.root is not None:
        tracks = corpus.load(cfg).tracks
    else:
        root = Path(str(cfg.bench.demo_root)).expanduser()
        demo.generate(
            root,
            n_per_genre=math.ceil(n / len(demo.GENRES)),
            seconds=float(cfg.bench.seconds),
            sample_rate=cfg.features.sample_rate,
            seed=cfg.data.demo.seed,
        )
        tracks = corpus.scan(root, extensions=(".wav",))
    order = tracks.assign(rank=tracks.groupby("label").cumcount()).sort_values(["rank", "label"])
    if len(order) < n:
        raise ConfigError("bench.clips", f"asks for {n} files, the corpus has {len(order)}", "use fewer")
    return order.path.head(n).tolist()


def _command() -> str:
    return " ".join(["genre-hpc", "bench", *sys.argv[1:]])


def _log_table(title: str, table: pd.DataFrame) -> None:
    text = table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    log.info("bench: %s\n%s", title, text)
