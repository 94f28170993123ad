"""bench's learning scale probe: feature datasets of N segment rows written straight into the dataset
layout, and the learning stages (train, tune, evaluate, compare) run on them by the console command,
timed, with the peak memory of the driver and of each worker.

The dataset is what extract would leave (features/ parts with the real schema and part metadata,
content hashes, tracks.parquet), so `genre-hpc train output.dir=X` reads it as it reads a real one.
Its rows are FMA-shaped: 16 genres (FMA's top-level names), 10 segments of 3 s per track up to
`long_tracks_from` rows, long tracks of about 90 segments from there (fma_full's untrimmed audio).
Each genre is a mixture of styles in a low-dimensional latent space seen through a fixed loading
of the 174 columns; each track draws its own offset (a track's segments are correlated, as in real
audio) and each segment its noise. Genres overlap, so the signal can be learned but not perfectly.
Every track's rows come from its own random stream (seed, track number): the rows do not depend on
how they are cut into parts, and the same seed writes the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import xgboost
from omegaconf import DictConfig

from genre_hpc.core.atomic import write_json, write_parquet
from genre_hpc.core.errors import ConfigError
from genre_hpc.core.layout import ModelFiles, OutputLayout
from genre_hpc.flow.dataset import FeatureStore
from genre_hpc.flow.metadata import fma_path
from genre_hpc.flow.params import FeatureParams
from genre_hpc.infra import config, manifest

log = logging.getLogger(__name__)

# FMA's 16 top-level genres (genre_top of fma_large); the slash must stay one hive folder
GENRES = (
    "Blues", "Classical", "Country", "Easy Listening", "Electronic", "Experimental", "Folk",
    "Hip-Hop", "Instrumental", "International", "Jazz", "Old-Time / Historic", "Pop", "Rock",
    "Soul-RnB", "Spoken",
)  # fmt: skip
STAGES = ("train", "tune", "evaluate", "compare")
SEGMENT_SECONDS = 3.0
CLIP_SEGMENTS = 10  # a 30-s FMA clip
# The generator, in numbers; bump GENERATOR when any of them changes, so kept datasets are rebuilt.
GENERATOR = "1"
LATENT = 12  # dimensions of the style space the 174 columns are seen through
STYLES = 3  # styles (mixture components) per genre
STYLE_SPREAD = 1.0  # spread of the style centres in the latent space
TRACK_SPREAD = 1.05  # a track's own offset from its style: what makes whole tracks hard
SEGMENT_SPREAD = 0.9  # a segment's latent noise around its track
COLUMN_NOISE = 0.6  # each column's own noise (after the loading)


@dataclass(frozen=True)
class Plan:
    """The tracks of a dataset of `rows` segment rows: ids, genre codes, segments each, split side."""

    rows: int
    ids: np.ndarray  # FMA track ids (int), ascending
    genres: np.ndarray  # index into GENRES
    lengths: np.ndarray  # segments of each track
    sides: np.ndarray  # FMA's split column: training / validation / test

    @property
    def tracks(self) -> int:
        return len(self.ids)


def plan(rows: int, *, seed: int, long_tracks: bool, long_segments: int = 90) -> Plan:
    """The tracks of `rows` segment rows: 10 segments each, or (long_tracks) lengths drawn around
    `long_segments` (log-normal, as fma_full's durations), the last track cut so the total is `rows`.
    Genres balanced, interleaved in id order as FMA's are."""
    rng = np.random.default_rng([seed, 0])
    if long_tracks:
        draw = rng.lognormal(mean=math.log(long_segments) - 0.125, sigma=0.5, size=rows // 10 + 16)
        lengths = np.clip(np.round(draw), 10, 20 * long_segments).astype(np.int64)
    else:
        lengths = np.full(math.ceil(rows / CLIP_SEGMENTS), CLIP_SEGMENTS, dtype=np.int64)
    ends = np.cumsum(lengths)
    n = int(np.searchsorted(ends, rows)) + 1  # tracks needed to reach `rows`
    lengths = lengths[:n]
    lengths[-1] -= int(ends[n - 1]) - rows
    genres = rng.permutation(np.resize(np.arange(len(GENRES)), n))
    sides = rng.choice(np.array(["training", "validation", "test"]), size=n, p=[0.8, 0.1, 0.1])
    return Plan(rows, np.arange(2, n + 2, dtype=np.int64), genres, lengths, sides)


@dataclass(frozen=True)
class Styles:
    """The generator's fixed parameters: style centres per genre, the column loading, column scales."""

    centres: np.ndarray  # (genres, STYLES, LATENT)
    loading: np.ndarray  # (LATENT, columns)
    scale: np.ndarray  # (columns,)
    offset: np.ndarray  # (columns,)

    @classmethod
    def draw(cls, seed: int, columns: int) -> Styles:
        rng = np.random.default_rng([seed, 1])
        # genres share a common component, so some are close to others (as Rock, Pop and
        # Experimental are): classes overlap, not sit in clean clusters
        shared = rng.standard_normal((1, STYLES, LATENT))
        own = rng.standard_normal((len(GENRES), STYLES, LATENT))
        centres = STYLE_SPREAD * (0.5 * shared + own)
        loading = rng.standard_normal((LATENT, columns)) / math.sqrt(LATENT)
        loading *= rng.uniform(0.0, 1.0, size=columns) ** 2  # some columns carry little signal
        scale = np.exp(rng.uniform(-3.0, 6.0, size=columns))  # features of very different units
        offset = rng.uniform(-1.0, 1.0, size=columns) * scale * 3.0
        return cls(centres, loading, scale, offset)

    def track_rows(self, seed: int, track_id: int, genre: int, segments: int) -> np.ndarray:
        """The feature rows (float32) of one track, from its own random stream."""
        rng = np.random.default_rng([seed, 2, track_id])
        style = self.centres[genre, rng.integers(STYLES)]
        track = style + TRACK_SPREAD * rng.standard_normal(LATENT)
        latent = track + SEGMENT_SPREAD * rng.standard_normal((segments, LATENT))
        columns = self.loading.shape[1]
        values = latent @ self.loading + COLUMN_NOISE * rng.standard_normal((segments, columns))
        return (values * self.scale + self.offset).astype(np.float32)


def parts_of(p: Plan, part_rows: int) -> list[tuple[int, np.ndarray]]:
    """(genre, track indices) of every part: each genre's tracks in id order, cut into runs of whole
    tracks of at least `part_rows` rows, a short remainder joining the genre's last run, as
    extract's merge leaves them (a genre with fewer rows in all is one part)."""
    parts: list[tuple[int, np.ndarray]] = []
    for genre in range(len(GENRES)):
        chosen = np.flatnonzero(p.genres == genre)
        runs: list[np.ndarray] = []
        start, total = 0, 0
        for i, index in enumerate(chosen):
            total += int(p.lengths[index])
            if total >= part_rows:
                runs.append(chosen[start : i + 1])
                start, total = i + 1, 0
        if start < len(chosen):
            if runs:
                runs[-1] = np.concatenate([runs[-1], chosen[start:]])
            else:
                runs.append(chosen[start:])
        parts += [(genre, run) for run in runs]
    return parts


def part_frame(p: Plan, tracks: np.ndarray, styles: Styles, *, seed: int, names: list[str],
               audio_root: str) -> pd.DataFrame:  # fmt: skip
    """The rows of one part (its tracks, in order), with the id columns extract writes."""
    values = np.concatenate(
        [styles.track_rows(seed, int(p.ids[t]), int(p.genres[t]), int(p.lengths[t])) for t in tracks]
    )
    lengths = p.lengths[tracks]
    track_ids = np.repeat([fma_path(int(i)) for i in p.ids[tracks]], lengths)
    segment = np.concatenate([np.arange(n, dtype=np.int32) for n in lengths])
    ids = pd.DataFrame(
        {
            "track_id": track_ids,
            "path": [f"{audio_root}/{t}" for t in track_ids],
            "label": GENRES[int(p.genres[tracks[0]])],
            "segment": segment,
            "start_s": segment * SEGMENT_SECONDS,
            "duration_s": SEGMENT_SECONDS,
        }
    )
    return pd.concat([ids, pd.DataFrame(values, columns=names)], axis=1)


def content_hash(seed: int, track_id: int) -> str:
    """A track's stand-in for the sha1 of its decoded audio: distinct per track, as real audio is."""
    return hashlib.sha1(f"learning/{seed}/{track_id}".encode()).hexdigest()


def build(
    root: Path, rows: int, *, seed: int, part_rows: int, params: FeatureParams, long_tracks: bool,
    long_segments: int = 90,
) -> OutputLayout:  # fmt: skip
    """The dataset of `rows` rows under root/rows<rows>-seed<seed>/ (an output.dir whose features/,
    .hashes/ and tracks.parquet are what extract writes), built part by part, one part in memory at
    a time. Kept: a later probe with the same settings reuses it; a build killed midway resumes at
    the first part not written (parts are written atomically); other settings rebuild it."""
    out = OutputLayout(root / f"rows{rows}-seed{seed}")
    recipe = {
        "rows": rows, "seed": seed, "part_rows": part_rows, "long_tracks": long_tracks,
        "long_segments": long_segments, "generator": GENERATOR, "feature_params": params.__dict__,
    }  # fmt: skip
    done = out.root / "learning-dataset.json"
    started_file = out.root / "learning-recipe.json"
    if done.exists() and json.loads(done.read_text()).get("recipe") == recipe:
        log.info("bench: learning probe, reusing the dataset of %d rows in %s", rows, out.root)
        return out
    if started_file.exists() and json.loads(started_file.read_text()) != recipe:
        shutil.rmtree(out.root)  # another recipe's parts must not mix with this one's
    done.unlink(missing_ok=True)
    write_json(started_file, recipe)
    started = time.perf_counter()
    p = plan(rows, seed=seed, long_tracks=long_tracks, long_segments=long_segments)
    names = params.names()
    styles = Styles.draw(seed, len(names))
    store = FeatureStore(out)
    # named, never read (the rows are made, not extracted), and the same wherever the dataset is
    # kept: the same seed writes the same bytes
    audio_root = f"/bench-learning/{out.root.name}/audio"
    parts = parts_of(p, part_rows)
    log.info("bench: learning probe, writing %d rows of %d tracks (%d genres) in %d parts to %s",
             rows, p.tracks, len(GENRES), len(parts), out.root)  # fmt: skip
    for number, (genre, tracks) in enumerate(parts):
        batch = f"learning-{genre:02d}-{number:05d}"
        if store.written([batch]):
            continue  # resumed
        frame = part_frame(p, tracks, styles, seed=seed, names=names, audio_root=audio_root)
        hashes = {fma_path(int(i)): content_hash(seed, int(i)) for i in p.ids[tracks]}
        store.write_batch(batch, frame, [], params=params, corpus_root=audio_root, hashes=hashes)
    tracks = pd.DataFrame(
        {
            "track_id": [fma_path(int(i)) for i in p.ids],
            "label": [GENRES[g] for g in p.genres],
            "subset": "full" if long_tracks else "large",
            "split": p.sides,
        }
    )
    write_parquet(out.tracks, pa.Table.from_pandas(tracks, preserve_index=False))
    summary = {
        "rows": rows, "tracks": p.tracks, "genres": len(GENRES), "parts": len(parts),
        "mean_segments_per_track": round(rows / p.tracks, 2),
        "build_seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    write_json(done, {"recipe": recipe, "summary": summary})
    log.info("bench: learning probe, dataset of %d rows written in %.1f s", rows, summary["build_seconds"])
    return out


def dataset_summary(out: OutputLayout) -> dict[str, Any]:
    return json.loads((out.root / "learning-dataset.json").read_text())["summary"]


# --- running the stages ------------------------------------------------------------------------


@dataclass
class Watched:
    """What one console command did: exit code (None: stopped at the time limit), wall seconds, the
    peak RSS of its own process and of each of its worker processes."""

    code: int | None
    seconds: float
    pid: int  # also the id of its process group
    driver_peak_mb: float
    worker_peaks_mb: list[float]


def run_watched(args: list[str], logfile: Path, *, timeout: float | None, interval: float = 0.2) -> Watched:
    """Run `python -m genre_hpc args...` (output to `logfile`), polling its process tree every
    `interval` seconds for RSS; past `timeout` seconds, stop it and every process it started."""
    import psutil

    logfile.parent.mkdir(parents=True, exist_ok=True)
    workers: dict[Any, float] = {}
    started = time.perf_counter()
    with logfile.open("w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "genre_hpc", *args], stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout stops the workers too
        )  # fmt: skip
        watched = psutil.Process(proc.pid)
        try:
            code = _poll(proc, watched, workers, started, timeout=timeout, interval=interval)
        except BaseException:  # the probe itself interrupted: leave no stage running on its own
            _stop(proc, watched)
            raise
        driver_peak = workers.pop("driver", 0.0)
    mb = 1024.0 * 1024.0
    peaks = [v / mb for v in workers.values()]
    return Watched(code, time.perf_counter() - started, proc.pid, driver_peak / mb, peaks)


def _poll(
    proc: subprocess.Popen, watched: Any, peaks: dict[Any, float], started: float, *,
    timeout: float | None, interval: float,
) -> int | None:  # fmt: skip
    """Until the command ends or its time is up: the peak RSS of the command (key "driver") and of
    each worker process (by pid) in `peaks`. Its exit code, or None once stopped at the limit."""
    import psutil

    while True:
        try:
            peaks["driver"] = max(peaks.get("driver", 0), watched.memory_info().rss)
            for child in watched.children(recursive=True):
                try:
                    if _is_worker(child):
                        peaks[child.pid] = max(peaks.get(child.pid, 0), child.memory_info().rss)
                except psutil.Error:
                    pass  # gone between the listing and the reading
        except psutil.Error:
            pass
        code = proc.poll()
        if code is not None:
            return code
        if timeout is not None and time.perf_counter() - started > timeout:
            _stop(proc, watched)
            return None
        time.sleep(interval)


def _is_worker(proc: Any) -> bool:
    """A Dask worker process of LocalCluster (multiprocessing's spawn), not its resource tracker."""
    cmdline = " ".join(proc.cmdline())
    return "multiprocessing" in cmdline and "resource_tracker" not in cmdline and "forkserver" not in cmdline


def _stop(proc: subprocess.Popen, watched: Any) -> None:
    """SIGTERM to the command's process group (the command and the workers it spawned), SIGKILL
    to whatever is left after 10 s."""
    import psutil

    try:
        family = [watched, *watched.children(recursive=True)]
    except psutil.Error:
        family = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=10)
    for left in alive:
        with contextlib.suppress(psutil.Error):
            left.kill()
    proc.wait()


def _rounds(value: Any) -> float | None:
    """`rounds_used` as a stage records it: a number, a list (per fold) or {mean: ...}."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return _rounds(value.get("mean"))
    if isinstance(value, list) and value:
        found = [_rounds(v) for v in value]
        found = [v for v in found if v is not None]
        return float(np.mean(found)) if found else None
    return None


def _find(record: Any, key: str) -> Any:
    """The first value of `key` anywhere in a JSON record (depth first), or None."""
    if isinstance(record, dict):
        if key in record:
            return record[key]
        for value in record.values():
            found = _find(value, key)
            if found is not None:
                return found
    elif isinstance(record, list):
        for value in record:
            found = _find(value, key)
            if found is not None:
                return found
    return None


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def stage_results(stage: str, out: OutputLayout) -> dict[str, Any]:
    """What a finished stage recorded: fit seconds, rounds used, track accuracy (with its interval)
    and the protocol that produced it."""
    found: dict[str, Any] = {}
    if stage in ("train", "tune"):
        metrics = _read_json(out.metrics if stage == "train" else out.tune_metrics)
        if metrics is not None:
            interval = metrics.get("track_accuracy_interval") or {}
            found.update(
                fit_s=metrics.get("fit_seconds"), rounds_used=_rounds(_find(metrics, "rounds_used")),
                track_accuracy=metrics.get("track_accuracy"), accuracy_low=interval.get("low"),
                accuracy_high=interval.get("high"), accuracy_of=metrics.get("evaluated_on"),
            )  # fmt: skip
    elif stage == "evaluate":
        summary = _read_json(out.evaluation.summary)
        if summary is not None:
            track = summary["metrics"]["track_accuracy"]
            found.update(
                rounds_used=_rounds(_find(summary, "rounds_used")), track_accuracy=track.get("mean"),
                accuracy_low=track.get("low"), accuracy_high=track.get("high"),
                accuracy_of=f"mean over {summary.get('folds')} folds: {summary.get('protocol')}",
            )  # fmt: skip
    elif stage == "compare":
        comparisons = out.comparisons()
        summary = _read_json(next(iter(comparisons.values())).summary) if comparisons else None
        if summary is not None:
            models = {row["model"]: row for row in summary["models"]}
            best = models.get("xgboost") or max(models.values(), key=lambda r: r["track_accuracy"])
            found.update(
                fit_s=sum(float(r.get("fit_seconds") or 0.0) for r in models.values()),
                rounds_used=_rounds(best.get("rounds_used")), track_accuracy=best["track_accuracy"],
                accuracy_low=best.get("track_accuracy_low"), accuracy_high=best.get("track_accuracy_high"),
                accuracy_of=f"{best['model']} (of {len(models)} models), {summary.get('label')}",
                models=" ".join(f"{name}={row['track_accuracy']:.3f}" for name, row in models.items()),
            )  # fmt: skip
    if stage in ("train", "tune") and found.get("rounds_used") is None:
        found["rounds_used"] = saved_rounds(out.model if stage == "train" else out.tune_model)
    stages = manifest.read(out).get("stages", {})
    record = stages.get(stage) or next((v for k, v in stages.items() if k.startswith(stage)), None)
    if record is not None:
        found["stage_s"] = _round(record.get("wall_seconds"))
    found["fit_s"] = _round(found.get("fit_s"))
    return found


def run_folder(dataset: OutputLayout, run_dir: Path) -> OutputLayout:
    """A fresh output folder for one stage on `dataset`: its features/, content hashes and
    tracks.parquet linked, not copied (10^7 rows are 7 GB), so every stage starts from the dataset
    alone and a stage that fails leaves no result a later reading could take for its own."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    for name in ("features", ".hashes", "tracks.parquet"):
        if (dataset.root / name).exists():
            (run_dir / name).symlink_to(dataset.root / name)
    return OutputLayout(run_dir)


def saved_rounds(files: ModelFiles) -> int | None:
    """The boosting rounds of a saved model (a stage that does not record `rounds_used` still saves
    its booster; with early stopping, xgboost keeps the rounds past the best one too)."""
    if not files.booster.exists():
        return None
    import xgboost

    return int(xgboost.Booster(model_file=str(files.booster)).num_boosted_rounds())


def probe_stage(
    dataset: OutputLayout, stage: str, run_dir: Path, *, workers: int, timeout: float | None,
    overrides: list[str], numba_cache: str | None,
) -> dict[str, Any]:  # fmt: skip
    """Run one stage on `dataset` in a fresh output folder `run_dir` and measure it."""
    out = run_folder(dataset, run_dir)
    args = [stage, f"output.dir={run_dir}", "cluster=local", f"cluster.n_workers={workers}",
            "cluster.threads_per_worker=1", *overrides]  # fmt: skip
    if numba_cache:
        args.append(f"cluster.numba_cache_dir={numba_cache}")
    log.info("bench: learning probe, `genre-hpc %s`", " ".join(args))
    watched = run_watched(args, run_dir / f"{stage}.log", timeout=timeout)
    status = "finished" if watched.code == 0 else ("timeout" if watched.code is None else "failed")
    row: dict[str, Any] = {
        "stage": stage, "status": status, "exit_code": watched.code, "wall_s": round(watched.seconds, 2),
        "driver_peak_rss_mb": round(watched.driver_peak_mb, 1),
        "worker_peak_rss_mb": round(max(watched.worker_peaks_mb), 1) if watched.worker_peaks_mb else None,
        "workers_seen": len(watched.worker_peaks_mb),
        "worker_peaks_mb": " ".join(str(round(v)) for v in watched.worker_peaks_mb),
        "overrides": " ".join(overrides),
        "log": str(run_dir / f"{stage}.log"),
    }  # fmt: skip
    if status == "finished":
        row.update(stage_results(stage, out))
    log.info("bench: learning probe, %s %s in %.1f s (driver %.0f MB, workers %s MB)", stage,
             status, watched.seconds, watched.driver_peak_mb,
             [round(v) for v in watched.worker_peaks_mb])  # fmt: skip
    return row


COLUMNS = [
    "rows", "tracks", "segments_per_track", "dataset_mb", "stage", "workers", "status", "exit_code",
    "wall_s", "stage_s", "fit_s", "rounds_used", "driver_peak_rss_mb", "worker_peak_rss_mb",
    "workers_seen", "worker_peaks_mb", "track_accuracy", "accuracy_low", "accuracy_high", "accuracy_of",
    "models", "seconds_per_round", "matrix_s", "overhead_s", "timeout_s", "overrides", "load_1min",
    "machine_round_s", "log",
]  # fmt: skip


# The machine's speed at the work that dominates learning, measured in the same run as the stages:
# one thread of xgboost `hist` on fixed rows. The probe's figures came from machines of the same
# shape (2 cores) whose rounds differed 2.7x (BENCHMARKS.md, issue 17): a stage's seconds over this
# reference compare across them, seconds alone only within one run.
REFERENCE_ROWS = 50_000
REFERENCE_ROUNDS = (1, 4)


def machine_round_seconds(seed: int = 0) -> float:
    """Seconds of one boosting round of xgboost `hist` (16 classes, depth 6, 64 bins, one thread)
    on REFERENCE_ROWS fixed random rows of 174 features: the difference of a fit of
    REFERENCE_ROUNDS[1] rounds and one of REFERENCE_ROUNDS[0], so set-up cancels out."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(GENRES), REFERENCE_ROWS)
    x = (rng.normal(size=(REFERENCE_ROWS, 174)) + 0.3 * y[:, None] * rng.normal(size=174)).astype(np.float32)
    matrix = xgboost.QuantileDMatrix(x, y, max_bin=64)
    params = {"objective": "multi:softprob", "num_class": len(GENRES), "max_depth": 6, "max_bin": 64,
              "nthread": 1, "seed": seed}  # fmt: skip
    took = []
    for rounds in REFERENCE_ROUNDS:
        started = time.perf_counter()
        xgboost.train(params, matrix, num_boost_round=rounds)
        took.append(time.perf_counter() - started)
    return round((took[1] - took[0]) / (REFERENCE_ROUNDS[1] - REFERENCE_ROUNDS[0]), 3)


def run(cfg: DictConfig, sizes: list[int], folder: Path) -> pd.DataFrame:
    """The learning table: per size, the dataset (built or reused), then each asked stage; with
    bench.learning_rounds, train's first rounds at each of those round counts, and their difference."""
    spec = cfg.bench
    stages = [str(s) for s in spec.learning_stages]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ConfigError("bench.learning_stages", f"unknown {unknown}", f"choose from {list(STAGES)}")
    rounds = [int(r) for r in spec.get("learning_rounds") or []]
    if rounds and (len(rounds) != 2 or not 0 < rounds[0] < rounds[1]):
        raise ConfigError("bench.learning_rounds", f"{rounds} must be two round counts, the first smaller",
                          "e.g. [2, 6], or [] for none")  # fmt: skip
    workers = int(spec.learning_workers)
    if workers < 1:
        raise ConfigError("bench.learning_workers", f"{workers} is not a positive worker count", "e.g. 2")
    timeout = spec.get("learning_timeout")
    timeout = float(timeout) if timeout is not None else None
    if timeout is not None and timeout <= 0:
        raise ConfigError("bench.learning_timeout", f"{timeout} is not a positive number of seconds",
                          "e.g. 1800, or null for no limit")  # fmt: skip
    overrides = [str(o) for o in spec.get("learning_overrides") or []]
    root = Path(str(spec.learning_root)).expanduser().resolve()
    params = config.feature_params(cfg)
    numba_cache = cfg.cluster.get("numba_cache_dir")
    reference = machine_round_seconds()
    log.info("bench: learning probe, this machine's reference: %.3f s a boosting round (machine_round_s: "
             "one thread, %d rows, 16 classes)", reference, REFERENCE_ROWS)  # fmt: skip
    rows = []
    for n in sizes:
        long_tracks = n >= int(spec.learning_long_tracks_from)
        dataset = build(root, n, seed=int(spec.learning_seed), part_rows=int(cfg.extract.part_rows),
                        params=params, long_tracks=long_tracks,
                        long_segments=int(spec.learning_long_segments))  # fmt: skip
        shape = dataset_summary(dataset)
        size = sum(p.stat().st_size for p in dataset.features.rglob("*.parquet")) / 1024.0 / 1024.0
        common = {"rows": n, "tracks": shape["tracks"], "dataset_mb": round(size, 1), "workers": workers,
                  "segments_per_track": shape["mean_segments_per_track"], "timeout_s": timeout,
                  "machine_round_s": reference}  # fmt: skip
        for stage in stages:
            row = probe_stage(dataset, stage, folder / f"learning-{n}" / stage, workers=workers,
                              timeout=timeout, overrides=overrides, numba_cache=numba_cache)  # fmt: skip
            rows.append({**common, **row, "load_1min": round(os.getloadavg()[0], 2)})
        if rounds:
            rows += _first_rounds(dataset, rounds, folder / f"learning-{n}", common, workers=workers,
                                  timeout=timeout, overrides=overrides, numba_cache=numba_cache)  # fmt: skip
    table = pd.DataFrame(rows)
    return table.reindex(columns=[c for c in COLUMNS if c in table.columns or c in ("stage", "rows")])


def _first_rounds(
    dataset: OutputLayout, rounds: list[int], folder: Path, common: dict[str, Any], *, workers: int,
    timeout: float | None, overrides: list[str], numba_cache: str | None,
) -> list[dict[str, Any]]:  # fmt: skip
    """train with exactly `rounds[0]` and `rounds[1]` boosting rounds (no early stopping): seconds per
    round from the difference of the two fits, and the rest of a fit (loading the shares, building
    the matrices) as the small fit less its rounds."""
    found = []
    for r in rounds:
        extra = [*overrides, f"model.params.n_estimators={r}", "model.early_stopping_rounds=null"]
        row = probe_stage(dataset, "train", folder / f"train-rounds-{r}", workers=workers, timeout=timeout,
                          overrides=extra, numba_cache=numba_cache)  # fmt: skip
        found.append({**common, **row, "stage": f"train {r} rounds", "rounds_used": row.get("rounds_used", r),
                      "load_1min": round(os.getloadavg()[0], 2)})  # fmt: skip
    small, large = found
    if small["status"] == large["status"] == "finished" and small.get("fit_s") and large.get("fit_s"):
        per_round = (large["fit_s"] - small["fit_s"]) / (rounds[1] - rounds[0])
        for row in found:
            row["seconds_per_round"] = round(per_round, 3)
        for row, r in zip(found, rounds, strict=True):
            # the fit less its rounds: xgboost.dask's set-up and its quantile matrices
            row["matrix_s"] = round(row["fit_s"] - r * per_round, 2)
            # the whole stage less its rounds: start-up, reading and scaling the shares, the
            # matrices, predicting the test side, saving
            if row.get("stage_s") is not None:
                row["overhead_s"] = round(row["stage_s"] - r * per_round, 2)
    return found
