"""The bench stage's measurements: both extractors timed, Dask schedulers and worker counts, fresh processes.

Timing clusters of several sizes is the point here, so this module builds them (through
cluster.connect, the one place clusters are built) where a stage is handed one.
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
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from genre_hpc.bench import mpvariants
from genre_hpc.core.atomic import atomic_path
from genre_hpc.core.errors import ConfigError
from genre_hpc.core.versions import versions
from genre_hpc.flow import features, reference
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.track import track_features
from genre_hpc.infra import config, jitcache
from genre_hpc.infra.cluster import connect
from genre_hpc.infra.tasks import warm_workers

log = logging.getLogger(__name__)

SCHEDULERS = ("synchronous", "threads", "processes", "distributed")


def time_extractors(
    paths: list[str], params: FeatureParams, spec: DictConfig
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Seconds per 30 s of audio for the reference and the package, same files, after warm-up."""
    features.warm_up()
    reference.extract_chunk(np.random.default_rng(0).standard_normal(params.segment_samples), params=params)
    rows, values = [], {}
    runs = {
        "reference (origin study's method)": lambda p: reference.track_features(p, params=params),
        "genre-hpc": lambda p: track_features(p, params=params, block_segments=int(spec.block_segments))[
            params.names()
        ].to_numpy(),
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


def _batch_rows(paths: list[str], params: FeatureParams, block_segments: int) -> int:
    """One Dask task: a batch of tracks, as the extract stage runs them (rows, not files, back)."""
    return sum(len(track_features(p, params=params, block_segments=block_segments)) for p in paths)


def _batches(paths: list[str], cfg: DictConfig) -> list[list[str]]:
    size = int(cfg.bench.batch_size)
    return [paths[i : i + size] for i in range(0, len(paths), size)]


def _graph(paths: list[str], params: FeatureParams, cfg: DictConfig) -> list:
    import dask

    task = dask.delayed(_batch_rows, pure=False)
    return [task(batch, params, int(cfg.bench.block_segments)) for batch in _batches(paths, cfg)]


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
    files = len(paths)
    for name in cfg.bench.schedulers:
        if name not in SCHEDULERS:
            raise ConfigError("bench.schedulers", f"unknown scheduler {name!r}", f"use {list(SCHEDULERS)}")
        graph = _graph(paths, params, cfg)
        if name == "distributed" and n in set(scaling.workers):
            seconds = float(scaling.seconds[scaling.workers == n].iloc[0])
            segments = int(scaling.segments[scaling.workers == n].iloc[0])
        elif name == "distributed":
            with local_client(cfg, n) as client:
                seconds, segments = _timed_sum(lambda g=graph, c=client: c.gather(c.compute(g)))
        elif name == "processes":
            # a pool whose processes are warmed before the clock starts, as the workers are
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(n, mp_context=context, initializer=jitcache.warm_process) as pool:
                list(pool.map(time.sleep, [0.5] * n))  # start all n processes
                seconds, segments = _timed_sum(
                    lambda g=graph, p=pool: dask.compute(*g, scheduler="processes", pool=p)
                )
        else:
            with threadpool_limits(1):
                workers = 1 if name == "synchronous" else n
                seconds, segments = _timed_sum(
                    lambda g=graph, w=workers, s=name: dask.compute(*g, scheduler=s, num_workers=w)
                )
        rows.append({"scheduler": name, "workers": 1 if name == "synchronous" else n, "seconds": seconds,
                     "files": files, "segments": segments})  # fmt: skip
        log.info("bench: %s scheduler, %d files in %.2f s", name, len(paths), seconds)
    if cfg.bench.multiprocessing:
        task = partial(_batch_rows, params=params, block_segments=int(cfg.bench.block_segments))
        for row in mpvariants.time_variants(task, _batches(paths, cfg), n=n):
            rows.append(row)
            log.info("bench: %s, %d files in %.2f s", row["scheduler"], row["files"], row["seconds"])
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
        with local_client(cfg, int(k), warm=False) as client:
            ready = time.perf_counter() - started
            # a fresh worker: warm-up (numba JIT or its cache), then one track
            first = time.perf_counter()
            warm_workers(client, features.warm_up)
            warm = time.perf_counter() - first
            client.submit(_batch_rows, paths[:1], params, int(cfg.bench.block_segments), pure=False).result()
            first_result = time.perf_counter() - first
            graph = _graph(paths, params, cfg)
            seconds, segments = _timed_sum(lambda g=graph, c=client: c.gather(c.compute(g)))
            peaks = client.run(_peak_rss_mb)
        rows.append({"workers": int(k), "seconds": seconds, "segments": segments,
                     "load_1min": os.getloadavg()[0], "cluster_start_s": ready, "warm_up_s": warm,
                     "first_result_s": first_result, "peak_worker_mb": max(peaks.values())})  # fmt: skip
        log.info("bench: %d workers, %d files in %.2f s", k, len(paths), seconds)
    return with_speedup(pd.DataFrame(rows))


def with_speedup(table: pd.DataFrame) -> pd.DataFrame:
    """`table` (workers, seconds) with speedup and efficiency against its 1-worker row, if it has one."""
    base = table.seconds[table.workers == 1]
    if len(base):
        table["speedup"] = float(base.iloc[0]) / table.seconds
        table["efficiency"] = table.speedup / table.workers
    return table


def local_client(cfg: DictConfig, n_workers: int, *, warm: bool = True):
    """A LocalCluster of `n_workers` single-threaded workers, built by cluster.connect."""
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


def _timed_sum(function) -> tuple[float, int]:
    """Seconds of `function()` and the sum of what it returns (segments per batch)."""
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, int(sum(result))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# --- probes in fresh processes -------------------------------------------------------------

_PROBE = """
import json, os, resource, sys, time
started = time.perf_counter()
from genre_hpc.infra import jitcache
jitcache.use(os.environ.get(jitcache.PRIMED_ENV) or None)  # as a worker starts: its own copy
from genre_hpc.flow import features
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.track import track_features
imported = time.perf_counter() - started
args = json.loads(sys.argv[1])
params = FeatureParams(**args["params"])
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
result = {"import_s": imported}
if args["kind"] == "startup":
    for label in ("first_track_s", "second_track_s"):
        t = time.perf_counter()
        track_features(args["path"], params=params, block_segments=args["block_segments"])
        result[label] = time.perf_counter() - t
else:
    features.warm_up()
    result["rss_before_mb"] = rss()
    t = time.perf_counter()
    frame = track_features(args["path"], params=params, block_segments=args["block_segments"])
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
    kinds = [("empty numba cache", "")] if cfg.bench.cold_cache_probe else []
    for label, primed in [*kinds, ("numba cache filled", _primed_cache(cfg))]:
        rows.append({"process": label, **_probe("startup", path, cfg, {jitcache.PRIMED_ENV: primed})})
    return rows


def _primed_cache(cfg: DictConfig) -> str:
    """The primed numba cache the workers copy (cluster.connect primes it and sets the variable)."""
    return os.environ.get(jitcache.PRIMED_ENV) or str(jitcache.prime(cfg.cluster.numba_cache_dir))


def memory_probe(cfg: DictConfig, path: str, long_files: Path) -> list[dict[str, Any]]:
    """Peak RSS extracting a short file and the same audio repeated to `bench.long_minutes`."""
    import soundfile as sf

    clip, sr = sf.read(path, dtype="float32")
    minutes = float(cfg.bench.long_minutes)
    long_path = long_files / f"{Path(path).stem}.x{minutes:g}min.wav"
    if not long_path.exists():
        with (
            atomic_path(long_path) as tmp,
            sf.SoundFile(tmp, "w", samplerate=sr, channels=1, subtype="PCM_16", format="WAV") as f,
        ):
            for _ in range(math.ceil(minutes * 60 / (len(clip) / sr))):
                f.write(clip)
    env = {jitcache.PRIMED_ENV: _primed_cache(cfg)}
    rows = []
    for label, p in (("short", path), ("long", str(long_path))):
        seconds = sf.info(p).duration
        rows.append({"file": label, "audio_s": round(seconds, 1), **_probe("memory", p, cfg, env)})
    return rows


# --- the machine ---------------------------------------------------------------------------


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
    info["versions"] = {k: v for k, v in versions().items() if k in ("librosa", "numpy", "dask")}
    info["summary"] = f"{cpu}, {cores} cores, Python {info['python']}"
    return info
