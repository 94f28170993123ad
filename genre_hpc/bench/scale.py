"""bench's scale probe: an FMA-shaped corpus of N short tracks (built once), run through validate and
extract by the console command, measured where the driver's cost grows with N."""

from __future__ import annotations

import logging
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from genre_hpc.core.errors import GenreHpcError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import corpus, demo
from genre_hpc.flow.trainset import TrainingData
from genre_hpc.infra import manifest

log = logging.getLogger(__name__)

# 4 genres, tracks of each artist in small, medium and large: data.subset=large holds them all
GENRES, PER_ARTIST = 4, 3


def build(
    root: Path, n: int, *, seconds: float, sample_rate: int, seed: int, distinct: int | None = None
) -> demo.FmaCorpus:
    """The corpus of at least `n` tracks under root/n<n>/ (kept: a second probe reuses it); with
    `distinct`, at most that many distinct clips per genre (demo.generate_fma)."""
    artists = math.ceil(n / (GENRES * PER_ARTIST))
    return demo.generate_fma(
        root / f"n{n}", genres=GENRES, artists_per_genre=artists, tracks_per_artist=PER_ARTIST,
        seconds=seconds, sample_rate=sample_rate, seed=seed, distinct=distinct,
    )  # fmt: skip


def probe(cfg: DictConfig, n: int, folder: Path) -> dict[str, Any]:
    """One row of the scale table for a corpus of `n` tracks (see README/BENCHMARKS for the columns)."""
    spec = cfg.bench
    log.info("bench: scale probe, building (or reusing) a corpus of %d tracks", n)
    made = build(Path(str(spec.scale_root)).expanduser(), n, seconds=float(spec.scale_seconds),
                 sample_rate=cfg.features.sample_rate, seed=cfg.data.demo.seed,
                 distinct=spec.get("scale_distinct"))  # fmt: skip
    data = {"kind": "fma", "root": str(made.audio), "tracks": str(made.tracks), "subset": "large"}
    started = time.perf_counter()
    tracks = corpus.load(OmegaConf.create({"data": data})).tracks
    scan_seconds = time.perf_counter() - started

    out = OutputLayout(folder / f"scale-{n}")
    overrides = [
        "data=fma", f"data.root={made.audio}", f"data.tracks={made.tracks}", "data.subset=large",
        f"output.dir={out.root}", "cluster=local", f"cluster.n_workers={int(spec.scale_workers)}",
        "cluster.threads_per_worker=1", f"cluster.numba_cache_dir={cfg.cluster.numba_cache_dir}",
    ]  # fmt: skip
    first = _stages(["run", "stages=[validate,extract]", *overrides], out, log_name="first")
    again = _stages(["extract", *overrides], out, log_name="resume")  # every track done

    parts = sorted(out.features.rglob("*.parquet"))
    rows = [pq.read_metadata(p).num_rows for p in parts]
    started = time.perf_counter()
    split = OmegaConf.create({"name": "grouped", "test_fraction": 0.2, "seed": 0, "group_by": None})
    train_data = TrainingData(out, split)
    train_data.frame[train_data.names].compute(scheduler="threads")
    read_seconds = time.perf_counter() - started

    validate, extract = first["validate"], first["extract"]
    n_tracks = len(tracks)
    return {
        "tracks": n_tracks,
        "workers": int(spec.scale_workers),
        "scan_and_table_s": round(scan_seconds, 3),
        "validate_s": round(validate["wall_seconds"], 2),
        "extract_s": round(extract["wall_seconds"], 2),
        "driver_cpu_ms_per_track": round(
            1000 * (validate["driver_cpu_seconds"] + extract["driver_cpu_seconds"]) / n_tracks, 3
        ),
        "tasks": int(validate.get("batches", 0)) + int(extract["batches"]),
        "parts_merged": int(extract.get("parts_merged", 0)),
        "parts": len(parts),
        "median_part_rows": statistics.median(rows) if rows else 0,
        "min_part_rows": min(rows) if rows else 0,
        "resume_check_s": round(again["validate"]["wall_seconds"] + again["extract"]["wall_seconds"], 2),
        "driver_peak_rss_mb": round(
            max(s["driver_peak_rss_mb"] for s in (validate, extract, *again.values())), 1
        ),
        "train_open_and_read_s": round(read_seconds, 2),
    }


def run(cfg: DictConfig, sizes: list[int], folder: Path) -> pd.DataFrame:
    """The scale table: one probe per corpus size."""
    return pd.DataFrame([probe(cfg, n, folder) for n in sizes])


def _stages(args: list[str], out: OutputLayout, *, log_name: str) -> dict[str, Any]:
    """Run the console command (its log beside its output) and return manifest.json's stage records."""
    out.root.mkdir(parents=True, exist_ok=True)
    logfile = out.root / f"scale-{log_name}.log"
    with logfile.open("w") as handle:
        code = subprocess.call([sys.executable, "-m", "genre_hpc", *args], stdout=handle, stderr=handle)
    if code != 0:
        raise GenreHpcError(f"bench: the scale probe's `genre-hpc {args[0]}` failed: read {logfile}")
    return manifest.read(out)["stages"]
