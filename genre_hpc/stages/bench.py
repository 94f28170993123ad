"""The bench stage: the package's extractor against the origin study's, value parity, and Dask scaling.

One run on one set of files: (1) both extractors timed single-process after warm-up, (2) their
values compared feature by feature, (3) the origin study's comparison of Dask schedulers and a
sweep of the number of workers, (4) peak memory per worker, the time a fresh worker takes to
its first result, and peak memory for a long file against a short one. Tables go to the log
and to `output.dir/bench/` as CSV and JSON, with a PNG of the scaling.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from genre_hpc.core.atomic import atomic_path, write_text
from genre_hpc.core.errors import ConfigError
from genre_hpc.flow import corpus, demo, features, reference
from genre_hpc.flow.features import FeatureParams
from genre_hpc.infra import config, manifest
from genre_hpc.infra.cluster import warm_workers
from genre_hpc.stages import extract

log = logging.getLogger(__name__)

BENCH_DIR = "bench"
SCHEDULERS = ("synchronous", "threads", "processes", "distributed")

# Features whose definition deliberately differs from the origin study's, and why.
_HPSS = "HPSS on the mel spectrogram, energy share of the frame RMS (librosa: full-res HPSS + iSTFT)"
BY_DESIGN = {
    "harmonic_rms": _HPSS,
    "percussive_rms": _HPSS,
    "chroma": "one tuning per track, the median of the per-chunk estimates (librosa: one per chunk)",
}


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run every part of the benchmark; write the tables and return the record."""
    from threadpoolctl import threadpool_limits

    spec = cfg.bench
    out = config.output_dir(cfg) / BENCH_DIR
    out.mkdir(parents=True, exist_ok=True)
    params = config.feature_params(cfg)
    paths = bench_corpus(cfg, int(spec.clips))
    record: dict[str, Any] = {"machine": machine(), "files": len(paths), "command": _command()}
    log.info("bench: %d files, machine: %s", len(paths), record["machine"]["summary"])

    # "per core": the single-process parts must not spread BLAS over the other core
    with threadpool_limits(1):
        speed, ours, theirs = time_extractors(paths[: int(spec.speed_clips)], params, spec)
        parity = compare(ours, theirs, params, tolerance=float(spec.tolerance))
    _write_csv(speed, out / "speed.csv")
    _write_csv(parity, out / "parity.csv")
    _log_table("extractors, single process after warm-up", speed)
    _log_table("parity: largest relative difference over all segments", _parity_summary(parity))
    record["speed"] = speed.to_dict(orient="records")
    record["speedup_vs_reference"] = float(speed.speedup.iloc[-1])
    record["parity_ok"] = bool(parity.ok.all())

    scaling = sweep_workers(cfg, paths, params)
    _write_csv(scaling, out / "scaling.csv")
    _log_table("distributed, worker sweep", scaling)
    schedulers = time_schedulers(cfg, paths, params, scaling)
    _write_csv(schedulers, out / "schedulers.csv")
    _log_table("Dask schedulers, same files", schedulers)
    record["schedulers"] = schedulers.to_dict(orient="records")
    record["scaling"] = scaling.to_dict(orient="records")

    record["startup"] = startup_probe(cfg, paths[0])
    _log_table("a fresh process's first result", pd.DataFrame(record["startup"]))
    record["memory_vs_length"] = memory_probe(cfg, paths[0], out)
    _log_table("peak memory against file length", pd.DataFrame(record["memory_vs_length"]))
    plot(schedulers, scaling, out / "scaling.png")
    write_text(out / "bench.json", json.dumps(record, indent=2, default=str) + "\n")
    manifest.update(config.output_dir(cfg), "bench", record, config=config.plain(cfg))
    log.info("bench: results in %s", out)
    return record


def bench_corpus(cfg: DictConfig, n: int) -> list[str]:
    """`n` files, genres interleaved: data.root's, or the demo corpus grown to size."""
    if cfg.data.root is not None:
        tracks = corpus.scan(Path(str(cfg.data.root)), extensions=tuple(cfg.data.extensions))
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


def time_extractors(
    paths: list[str], params: FeatureParams, spec: DictConfig
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Seconds per 30 s of audio for the reference and the package, same files, after warm-up."""
    features.warm_up()
    reference.extract_chunk(np.random.default_rng(0).standard_normal(params.segment_samples), params=params)
    rows, values = [], {}
    runs = {
        "reference (origin study's method)": lambda p: reference.track_features(p, params=params),
        "genre-hpc": lambda p: extract.track_features(
            p, params=params, block_segments=int(spec.block_segments)
        )[params.names()].to_numpy(),
    }
    for name, function in runs.items():
        best = math.inf
        for _ in range(int(spec.repeats)):
            started = time.perf_counter()
            values[name] = [function(p) for p in paths]
            best = min(best, time.perf_counter() - started)
        segments = sum(len(v) for v in values[name])
        audio = segments * params.segment_seconds
        rows.append({"extractor": name, "files": len(paths), "audio_s": audio, "seconds": best,
                     "s_per_30s_audio": best / audio * 30.0, "audio_s_per_s": audio / best})  # fmt: skip
    table = pd.DataFrame(rows)
    table["speedup"] = table.s_per_30s_audio.iloc[0] / table.s_per_30s_audio
    theirs, ours = (np.vstack(values[name]) for name in runs)
    return table, ours, theirs


def compare(ours: np.ndarray, theirs: np.ndarray, params: FeatureParams, *, tolerance: float) -> pd.DataFrame:
    """Per feature, the largest relative difference over all segments.

    Relative to the reference value, or near zero to 0.1 % of the feature's largest
    magnitude over the segments (means of deltas, MFCCs that cross zero).
    """
    if ours.shape != theirs.shape:
        raise ValueError(f"extractors disagree on the segments: {ours.shape} vs {theirs.shape}")
    floor = 1e-3 * np.abs(theirs).max(axis=0)
    rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), np.maximum(floor, 1e-12))
    rows = []
    for j, name in enumerate(params.names()):
        why = next((text for key, text in BY_DESIGN.items() if name.startswith(key)), "")
        worst = float(rel[:, j].max())
        rows.append({"feature": name, "definition": "differs by design" if why else "same",
                     "max_rel_diff": worst, "median_rel_diff": float(np.median(rel[:, j])),
                     "tolerance": None if why else tolerance,
                     "ok": True if why else worst <= tolerance, "why": why})  # fmt: skip
    return pd.DataFrame(rows)


def _parity_summary(parity: pd.DataFrame) -> pd.DataFrame:
    same = parity[parity.definition == "same"].nlargest(8, "max_rel_diff")
    design = parity[parity.definition != "same"]
    groups = design.assign(group=design.feature.str.extract(r"^(chroma|harmonic_rms|percussive_rms)")[0])
    by_group = groups.groupby("group")[["max_rel_diff", "median_rel_diff"]].max().reset_index()
    by_group = by_group.rename(columns={"group": "feature"}).assign(definition="differs by design", ok=True)
    columns = ["feature", "definition", "max_rel_diff", "median_rel_diff", "ok"]
    return pd.concat([same[columns], by_group[columns]], ignore_index=True)


def _batch_rows(paths: list[str], params: FeatureParams, block_segments: int) -> int:
    """One Dask task: a batch of tracks, as the extract stage runs them (rows, not files, back)."""
    return sum(len(extract.track_features(p, params=params, block_segments=block_segments)) for p in paths)


def _graph(paths: list[str], params: FeatureParams, cfg: DictConfig) -> list:
    import dask

    size = int(cfg.bench.batch_size)
    task = dask.delayed(_batch_rows, pure=False)
    return [
        task(paths[i : i + size], params, int(cfg.bench.block_segments)) for i in range(0, len(paths), size)
    ]


def time_schedulers(
    cfg: DictConfig, paths: list[str], params: FeatureParams, scaling: pd.DataFrame
) -> pd.DataFrame:
    """The origin study's comparison: every Dask scheduler on the same files and cores.

    The distributed row is the worker sweep's run with as many workers, when it has one.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import dask
    from threadpoolctl import threadpool_limits

    n = int(cfg.bench.scheduler_workers) or (os.cpu_count() or 1)
    rows = []
    for name in cfg.bench.schedulers:
        if name not in SCHEDULERS:
            raise ConfigError("bench.schedulers", f"unknown scheduler {name!r}", f"use {list(SCHEDULERS)}")
        graph = _graph(paths, params, cfg)
        if name == "distributed" and n in set(scaling.workers):
            seconds = float(scaling.seconds[scaling.workers == n].iloc[0])
        elif name == "distributed":
            with _client(cfg, n) as client:
                seconds = _timed(lambda g=graph, c=client: c.gather(c.compute(g)))
        elif name == "processes":
            # a pool whose processes are warmed before the clock starts, as the workers are
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(n, mp_context=context, initializer=_warm_process) as pool:
                list(pool.map(time.sleep, [0.5] * n))  # start all n processes
                seconds = _timed(lambda g=graph, p=pool: dask.compute(*g, scheduler="processes", pool=p))
        else:
            with threadpool_limits(1):
                workers = 1 if name == "synchronous" else n
                seconds = _timed(
                    lambda g=graph, w=workers, s=name: dask.compute(*g, scheduler=s, num_workers=w)
                )
        rows.append({"scheduler": name, "workers": 1 if name == "synchronous" else n, "seconds": seconds})
        log.info("bench: %s scheduler, %d files in %.2f s", name, len(paths), seconds)
    table = pd.DataFrame(rows)
    serial = table.seconds[table.scheduler == "synchronous"]
    if len(serial):
        table["speedup_vs_synchronous"] = float(serial.iloc[0]) / table.seconds
    return table


def sweep_workers(cfg: DictConfig, paths: list[str], params: FeatureParams) -> pd.DataFrame:
    """distributed with 1..N single-threaded workers: time, speedup, efficiency, memory, first result."""
    rows = []
    for k in cfg.bench.workers:
        started = time.perf_counter()
        with _client(cfg, int(k), warm=False) as client:
            ready = time.perf_counter() - started
            # a fresh worker: warm-up (numba JIT or its cache), then one track
            first = time.perf_counter()
            warm_workers(client, features.warm_up)
            warm = time.perf_counter() - first
            client.submit(_batch_rows, paths[:1], params, int(cfg.bench.block_segments), pure=False).result()
            first_result = time.perf_counter() - first
            graph = _graph(paths, params, cfg)
            seconds = _timed(lambda g=graph, c=client: c.gather(c.compute(g)))
            peaks = client.run(_peak_rss_mb)
        rows.append({"workers": int(k), "seconds": seconds, "load_1min": os.getloadavg()[0],
                     "cluster_start_s": ready, "warm_up_s": warm,
                     "first_result_s": first_result, "peak_worker_mb": max(peaks.values())})  # fmt: skip
        log.info("bench: %d workers, %d files in %.2f s", k, len(paths), seconds)
    table = pd.DataFrame(rows)
    base = table.seconds[table.workers == 1]
    if len(base):
        table["speedup"] = float(base.iloc[0]) / table.seconds
        table["efficiency"] = table.speedup / table.workers
    return table


def _client(cfg: DictConfig, n_workers: int, *, warm: bool = True):
    """A LocalCluster of `n_workers` single-threaded workers, built by cluster.connect."""
    from contextlib import contextmanager

    from genre_hpc.infra.cluster import connect

    if cfg.cluster.kind != "local":
        raise ConfigError("cluster", "bench times workers on this machine", "use cluster=local")
    local = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    OmegaConf.update(local, "cluster.n_workers", n_workers)
    OmegaConf.update(local, "cluster.threads_per_worker", 1)

    @contextmanager
    def session():
        with connect(local) as client:
            client.wait_for_workers(n_workers)
            if warm:
                warm_workers(client, features.warm_up)
            yield client

    return session()


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _warm_process() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    features.warm_up()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# --- probes in fresh processes -------------------------------------------------------------

_PROBE = """
import json, resource, sys, time
started = time.perf_counter()
from genre_hpc.stages import extract
from genre_hpc.flow import features
from genre_hpc.flow.features import FeatureParams
imported = time.perf_counter() - started
args = json.loads(sys.argv[1])
params = FeatureParams(**args["params"])
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
result = {"import_s": imported}
if args["kind"] == "startup":
    for label in ("first_track_s", "second_track_s"):
        t = time.perf_counter()
        extract.track_features(args["path"], params=params, block_segments=args["block_segments"])
        result[label] = time.perf_counter() - t
else:
    features.warm_up()
    result["rss_before_mb"] = rss()
    t = time.perf_counter()
    frame = extract.track_features(args["path"], params=params, block_segments=args["block_segments"])
    result["seconds"] = time.perf_counter() - t
    result["segments"] = len(frame)
    result["peak_rss_mb"] = rss()
print(json.dumps(result))
"""


def _probe(kind: str, path: str, cfg: DictConfig, env: dict[str, str]) -> dict[str, Any]:
    from dataclasses import asdict

    args = {"kind": kind, "path": path, "params": asdict(config.feature_params(cfg)),
            "block_segments": int(cfg.bench.block_segments)}  # fmt: skip
    # one core's worth of BLAS, as on a worker
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **env}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench probe {kind} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def startup_probe(cfg: DictConfig, path: str) -> list[dict[str, Any]]:
    """A fresh process's first and second track, with an empty and with a filled numba cache."""
    rows = []
    with tempfile.TemporaryDirectory() as empty:
        kinds = [("empty numba cache", empty)] if cfg.bench.cold_cache_probe else []
        # the workers of the sweep have filled their cache by now
        for label, folder in [*kinds, ("numba cache filled", _numba_cache(cfg))]:
            rows.append({"process": label, **_probe("startup", path, cfg, {"NUMBA_CACHE_DIR": folder})})
    return rows


def _numba_cache(cfg: DictConfig) -> str:
    """The folder the workers cache numba's code in (cluster.connect sets the variable)."""
    folder = os.environ.get("NUMBA_CACHE_DIR") or str(cfg.cluster.numba_cache_dir)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return folder


def memory_probe(cfg: DictConfig, path: str, out: Path) -> list[dict[str, Any]]:
    """Peak RSS extracting a short file and the same audio repeated to `bench.long_minutes`."""
    import soundfile as sf

    clip, sr = sf.read(path, dtype="float32")
    minutes = float(cfg.bench.long_minutes)
    long_path = out / "long-files" / f"{Path(path).stem}.x{minutes:g}min.wav"
    if not long_path.exists():
        long_path.parent.mkdir(parents=True, exist_ok=True)
        with (
            atomic_path(long_path) as tmp,
            sf.SoundFile(tmp, "w", samplerate=sr, channels=1, subtype="PCM_16", format="WAV") as f,
        ):
            for _ in range(math.ceil(minutes * 60 / (len(clip) / sr))):
                f.write(clip)
    env = {"NUMBA_CACHE_DIR": _numba_cache(cfg)}
    rows = []
    for label, p in (("short", path), ("long", str(long_path))):
        seconds = sf.info(p).duration
        rows.append({"file": label, "audio_s": round(seconds, 1), **_probe("memory", p, cfg, env)})
    return rows


# --- reporting ----------------------------------------------------------------------------


def plot(schedulers: pd.DataFrame, scaling: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].bar(schedulers.scheduler, schedulers.seconds, color="tab:blue")
    axes[0].set(title="Dask schedulers, same files", ylabel="seconds")
    if "speedup" in scaling:
        axes[1].plot(scaling.workers, scaling.speedup, "o-", label="measured")
        axes[1].plot(scaling.workers, scaling.workers, "--", color="grey", label="ideal")
        axes[1].set(title="speedup (distributed)", xlabel="workers", ylabel="T(1) / T(n)")
        axes[1].legend()
        axes[2].plot(scaling.workers, scaling.efficiency, "o-")
        axes[2].axhline(0.9, ls=":", color="grey")
        axes[2].set(title="parallel efficiency", xlabel="workers", ylabel="speedup / workers", ylim=(0, 1.1))
    for ax in axes[1:]:
        ax.set_xticks(list(scaling.workers))
    fig.tight_layout()
    try:
        with atomic_path(path, durable=False) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count() or 1
    info = {"cpu": cpu, "cores": cores, "python": platform.python_version(), "platform": platform.platform()}
    info["load_average_1min"] = os.getloadavg()[0]
    info["versions"] = {k: v for k, v in manifest.versions().items() if k in ("librosa", "numpy", "dask")}
    info["summary"] = f"{cpu}, {cores} cores, Python {info['python']}"
    return info


def _command() -> str:
    return " ".join(["genre-hpc", "bench", *sys.argv[1:]])


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def _log_table(title: str, table: pd.DataFrame) -> None:
    text = table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    log.info("bench: %s\n%s", title, text)
