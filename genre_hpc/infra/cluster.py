"""Builds the Dask cluster a run uses (LocalCluster, SLURMCluster or SLURMRunner) and always closes it."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
from dask.utils import parse_bytes, parse_timedelta
from distributed import Client, LocalCluster
from omegaconf import DictConfig

from genre_hpc.core.errors import ClusterError, ConfigError

log = logging.getLogger(__name__)

# Keys a user may need to change when SLURM workers never connect.
WORKER_KEYS = (
    "cluster.queue, cluster.account, cluster.cores, cluster.memory, cluster.walltime, cluster.interface"
)


@contextmanager
def connect(cfg: DictConfig) -> Iterator[Client]:
    """Yield a Client on the cluster that `cfg.cluster` describes; close both on exit."""
    spec = cfg.cluster
    # dask logs every worker's start and stop at INFO; a batch log wants the stages' lines
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if spec.kind == "local":
        _prepare_numba_cache(spec)
        yield from _connect_local(spec)
    elif spec.kind == "slurm":
        yield from _connect_slurm(cfg)
    elif spec.kind == "slurm_runner":
        yield from _connect_runner(cfg)
    else:
        raise ConfigError(
            "cluster", f"unknown kind {spec.kind!r}", "use cluster=local, slurm or slurm_runner"
        )


# Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in every worker, which turns off glibc's dynamic
# mmap threshold: each large numpy array is then mmap'd and page-faulted anew, and feature
# extraction ran 1.6x slower in a worker than in a plain process (0.185 vs 0.113 s per 30-s clip).
LOCAL_WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
# SLURM workers start their own nanny, which keeps Dask's trim threshold; a large mmap threshold
# lets big arrays reuse heap memory again (0.127 s per clip).
SLURM_WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 * 2**20)}


def _connect_local(spec: DictConfig) -> Iterator[Client]:
    with dask.config.set(LOCAL_WORKER_CONFIG):
        cluster = _local(spec)
    try:
        with Client(cluster) as client:
            log.info("dask: %s, dashboard %s", _describe(client), client.dashboard_link)
            yield client
    finally:
        cluster.close()


def _local(spec: DictConfig) -> LocalCluster:
    n_workers = spec.n_workers or max(1, (os.cpu_count() or 1) // spec.threads_per_worker)
    Path(spec.local_directory).mkdir(parents=True, exist_ok=True)
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=spec.threads_per_worker,
        processes=True,
        memory_limit=spec.memory_limit,
        local_directory=str(spec.local_directory),
        dashboard_address=spec.dashboard_address,
        # the scheduler is only for this machine: do not listen on every interface
        host="127.0.0.1",
    )


# ---------------------------------------------------------------------------------------------------
# SLURMCluster: the scheduler runs here (the driver), every worker is a SLURM job of its own.


def _connect_slurm(cfg: DictConfig) -> Iterator[Client]:
    spec = cfg.cluster
    with _ends_on_sigterm(), slurm_cluster(cfg) as cluster:
        if spec.print_job_script:
            log.info("dask: worker job script:\n%s", cluster.job_script())
        _preflight(cluster)
        submitted = time.perf_counter()
        if spec.adapt.maximum is not None:
            cluster.adapt(minimum_jobs=spec.adapt.minimum, maximum_jobs=spec.adapt.maximum)
            log.info("dask: adaptive, %d to %d worker jobs", spec.adapt.minimum, spec.adapt.maximum)
        else:
            cluster.scale(jobs=spec.jobs)
            log.info("dask: submitting %d worker jobs", spec.jobs)
        with Client(cluster) as client:
            _wait_for_first_worker(client, cluster, spec)
            log.info(
                "dask: first worker connected %.1f s after submission; %s; scheduler %s, dashboard %s",
                time.perf_counter() - submitted, _describe(client), cluster.scheduler_address,
                client.dashboard_link if spec.dashboard_address else "off",
            )  # fmt: skip
            yield client


@contextmanager
def slurm_cluster(cfg: DictConfig) -> Iterator[Any]:
    """A SLURMCluster built from `cfg.cluster` (no jobs submitted yet); on exit its jobs are cancelled
    and its temporary TLS credentials deleted."""
    from dask_jobqueue import SLURMCluster

    _restore_sigint_after_jobqueue_import()
    spec = cfg.cluster
    out = Path(str(cfg.output.dir)).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    credentials = None
    if spec.security:
        # private (0700) and per run: whoever reads the key can connect as a client
        credentials = Path(tempfile.mkdtemp(prefix=".dask-tls-", dir=out))
    cluster = None
    try:
        cluster = SLURMCluster(**slurm_kwargs(spec, out=out, credentials=credentials))
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
            # the credential files live as long as these handles (close() deletes each file)
            for name, value in list(vars(cluster).items()):
                if name.startswith("_job_") and hasattr(value, "close"):
                    value.close()
        if credentials is not None:
            shutil.rmtree(credentials, ignore_errors=True)


def slurm_kwargs(spec: DictConfig, *, out: Path, credentials: Path | None) -> dict[str, Any]:
    """SLURMCluster keyword arguments for the `cluster=slurm` config `spec`."""
    python = str(spec.python or sys.executable)
    lifetime, stagger = lifetime_seconds(spec)
    extra_args = []
    if lifetime is not None:
        extra_args = ["--lifetime", f"{lifetime}s", "--lifetime-stagger", f"{stagger}s"]
    dashboard = spec.dashboard_address
    kwargs: dict[str, Any] = {
        "cores": spec.cores,
        "processes": spec.processes,
        "memory": spec.memory,
        "walltime": spec.walltime,
        "queue": spec.queue,
        "account": spec.account,
        "job_name": spec.job_name,
        "job_extra_directives": list(spec.job_extra_directives),
        "interface": spec.interface,
        "local_directory": str(spec.local_directory),
        "log_directory": str(_absolute(spec.log_directory)),
        "job_script_prologue": _prologue(spec, python),
        "worker_extra_args": extra_args,
        "death_timeout": spec.death_timeout,
        "python": python,
        # the http server always runs (health, metrics); without a dashboard keep it on localhost
        "scheduler_options": {"dashboard": bool(dashboard), "dashboard_address": dashboard or "127.0.0.1:0"},
    }
    if credentials is not None:
        kwargs["security"] = True
        kwargs["shared_temp_directory"] = str(credentials)
    return kwargs


def _prologue(spec: DictConfig, python: str) -> list[str]:
    lines = ['export USER="${USER:-$(id -un)}"']
    activate = Path(python).parent / "activate"
    if activate.is_file():  # a venv: its bin/ on PATH for any tool the worker calls
        lines.append(f"source {activate}")
    # librosa's numba JIT cache must be writable; site-packages often is not
    lines.append(f'export NUMBA_CACHE_DIR="{spec.numba_cache_dir}"')
    lines += [f"export {name}={value}" for name, value in SLURM_WORKER_ENV.items()]
    lines.append('mkdir -p "$NUMBA_CACHE_DIR"')
    return lines + [str(line) for line in spec.job_script_prologue]


def walltime_seconds(walltime: str) -> int:
    """Seconds in a SLURM time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", str(walltime).strip())
    if not match:
        raise ConfigError(
            "cluster.walltime", f"{walltime!r} is not a SLURM time", "e.g. 02:00:00 or 1-00:00:00"
        )
    days, a, b, c = (int(g) if g is not None else None for g in match.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        return days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    if c is not None:
        return a * 3600 + b * 60 + c
    if b is not None:
        return a * 60 + b
    return a * 60


def lifetime_seconds(spec: DictConfig) -> tuple[int | None, int]:
    """(--lifetime, --lifetime-stagger) in seconds: workers retire before the walltime kills them."""
    if spec.lifetime_margin is None:
        return None, 0
    wall = walltime_seconds(spec.walltime)
    margin = int(parse_timedelta(spec.lifetime_margin))
    stagger = int(parse_timedelta(spec.lifetime_stagger or 0))
    lifetime = wall - margin - stagger  # the stagger is +-, so the latest retirement is wall - margin
    if lifetime < 30:
        raise ConfigError(
            "cluster.walltime",
            f"{spec.walltime} leaves {lifetime} s of worker lifetime after lifetime_margin "
            f"{spec.lifetime_margin} and lifetime_stagger {spec.lifetime_stagger}",
            "raise cluster.walltime, or lower cluster.lifetime_margin / cluster.lifetime_stagger",
        )
    return lifetime, stagger


def check_spec(spec: DictConfig) -> None:
    """Values of cluster=slurm / slurm_runner that cannot work (called by config.check)."""
    if spec.kind == "slurm":
        if spec.processes > spec.cores:
            raise ConfigError(
                "cluster.processes", f"{spec.processes} is more than cluster.cores={spec.cores}"
            )
        try:
            parse_bytes(str(spec.memory))
        except ValueError:
            raise ConfigError("cluster.memory", f"{spec.memory!r} is not a size", "e.g. 16GB") from None
        for key in ("lifetime_margin", "lifetime_stagger"):
            try:
                parse_timedelta(spec[key] or 0)
            except (ValueError, KeyError):
                raise ConfigError(f"cluster.{key}", f"{spec[key]!r} is not a duration", "e.g. 5m") from None
        lifetime_seconds(spec)
        low, high = spec.adapt.minimum, spec.adapt.maximum
        if (low is None) != (high is None):
            raise ConfigError("cluster.adapt", "set both minimum and maximum, or neither")
        if high is not None and not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
            raise ConfigError(
                "cluster.adapt", f"minimum={low!r}, maximum={high!r}", "need 1 <= minimum <= maximum"
            )
    timeout = spec.connect_timeout
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise ConfigError("cluster.connect_timeout", f"{timeout!r} is not a positive number of seconds")


def _preflight(cluster: Any) -> None:
    """`sbatch --test-only` the worker script: a wrong queue, account or size fails here, at once."""
    if shutil.which("sbatch") is None:
        raise ClusterError("cluster=slurm: `sbatch` is not on PATH; run inside SLURM or use cluster=local")
    with tempfile.NamedTemporaryFile("w", suffix=".sh") as script:
        script.write(cluster.job_script())
        script.flush()
        done = subprocess.run(["sbatch", "--test-only", script.name], capture_output=True, text=True)
    if done.returncode != 0:
        message = " ".join((done.stderr or done.stdout).split())
        raise ClusterError(f"SLURM refuses the worker job ({message}): check {WORKER_KEYS}")


def _wait_for_first_worker(client: Client, cluster: Any, spec: DictConfig) -> None:
    try:
        client.wait_for_workers(1, timeout=spec.connect_timeout)
    except (TimeoutError, asyncio.TimeoutError):
        ids = [str(job.job_id) for job in cluster.workers.values() if getattr(job, "job_id", None)]
        state = "no worker job could be submitted"
        if ids:
            done = subprocess.run(
                ["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T %r"], capture_output=True, text=True
            )
            state = "worker jobs: " + ("; ".join(done.stdout.split("\n")).strip("; ") or "gone")
        raise ClusterError(
            f"no Dask worker connected within cluster.connect_timeout={spec.connect_timeout} s ({state}). "
            f"Pending jobs: check {WORKER_KEYS}; running jobs that never connect: check cluster.interface "
            f"and the worker logs in {cluster._dummy_job.log_directory}"
        ) from None


@contextmanager
def _ends_on_sigterm() -> Iterator[None]:
    """scancel and the walltime send SIGTERM: turn it into SystemExit so `finally` cancels the workers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_SIGINT_AT_START = signal.getsignal(signal.SIGINT)


def _restore_sigint_after_jobqueue_import() -> None:
    """Importing dask_jobqueue sets SIGINT to sys.exit (for its runner); keep Ctrl-C a KeyboardInterrupt."""
    if threading.current_thread() is threading.main_thread() and _SIGINT_AT_START is not None:
        signal.signal(signal.SIGINT, _SIGINT_AT_START)


# ---------------------------------------------------------------------------------------------------
# SLURMRunner: scheduler, client and workers are the tasks of one allocation (srun).


def _connect_runner(cfg: DictConfig) -> Iterator[Client]:
    """Every task of the srun step calls this: rank 0 serves as scheduler and rank 2+ as workers until
    the client ends (they leave through SystemExit, never reaching the stage); rank 1 gets the client."""
    spec = cfg.cluster
    _prepare_numba_cache(spec)
    if "SLURM_PROCID" not in os.environ:
        raise ClusterError(
            "cluster=slurm_runner runs inside an allocation of at least 3 tasks launched with srun: "
            "`sbatch -N 2 --ntasks-per-node=2 slurm/extract.sh cluster=slurm_runner`"
        )
    scheduler_file = Path(str(spec.scheduler_file)).expanduser().resolve()
    scheduler_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    threads = spec.threads or int(os.environ.get("SLURM_CPUS_PER_TASK", "1"))
    dashboard = spec.dashboard_address
    local_directory = str(spec.local_directory)
    Path(local_directory).mkdir(parents=True, exist_ok=True)
    runner = _runner_class()(
        scheduler_file=str(scheduler_file),
        wait_seconds=spec.connect_timeout,
        scheduler_options={
            "interface": spec.interface,
            "dashboard": bool(dashboard),
            "dashboard_address": dashboard or "127.0.0.1:0",
        },
        worker_options={
            "nthreads": threads,
            "memory_limit": spec.memory_limit,
            "local_directory": local_directory,
            "interface": spec.interface,
            "death_timeout": spec.connect_timeout,
        },
    )
    # only the client rank gets here
    with runner, Client(runner) as client:
        try:
            client.wait_for_workers(runner.n_workers, timeout=spec.connect_timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise ClusterError(
                f"{len(client.scheduler_info()['workers'])} of {runner.n_workers} runner workers connected "
                f"within cluster.connect_timeout={spec.connect_timeout} s: check cluster.interface"
            ) from None
        log.info("dask: SLURMRunner, %s; scheduler %s", _describe(client), runner.scheduler_address)
        yield client


def _runner_class() -> type:
    from dask_jobqueue.slurm import SLURMRunner

    class Runner(SLURMRunner):
        """SLURMRunner whose ranks give up on a scheduler file that never appears (a path the nodes
        do not share would otherwise hang until the walltime)."""

        def __init__(self, *args: Any, wait_seconds: float, **kwargs: Any) -> None:
            self._wait_seconds = wait_seconds
            super().__init__(*args, **kwargs)

        async def get_scheduler_address(self) -> str:
            deadline = time.monotonic() + self._wait_seconds
            while not self.scheduler_file.exists():
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"no scheduler file {self.scheduler_file} after {self._wait_seconds} s: "
                        "cluster.scheduler_file must be on a filesystem every node of the job sees"
                    )
                await asyncio.sleep(0.2)
            return await super().get_scheduler_address()

    return Runner


def _absolute(path: Any) -> Path:
    path = Path(str(path)).expanduser()
    return path if path.is_absolute() else (Path.cwd() / path).resolve()


def _prepare_numba_cache(spec: DictConfig) -> None:
    """librosa's numba JIT costs seconds per new process unless it can cache its compiled code;
    workers inherit the variable (LocalCluster, SLURMRunner) or get it from the job prologue (SLURM)."""
    cache = spec.get("numba_cache_dir")
    if cache and "NUMBA_CACHE_DIR" not in os.environ:
        Path(cache).mkdir(parents=True, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = str(cache)


def _describe(client: Client) -> str:
    workers = client.scheduler_info()["workers"]
    threads = sum(w["nthreads"] for w in workers.values())
    return f"{len(workers)} workers, {threads} threads"


def warm_workers(client: Client, warm_up: Callable[[], None]) -> None:
    """Run `warm_up` (numba's JIT) on every worker without two processes compiling into one cache.

    numba's cache is not safe against concurrent compilation: two processes writing the same
    function can leave a mismatched pair of files that segfaults whoever loads them later
    (numba issues 4807, 10128). So the driver compiles first (it shares the cache of a
    LocalCluster), then one worker per host (node-local caches on SLURM), then the rest, who
    only load.
    """
    warm_up()
    hosts: dict[str, list[str]] = {}
    for address, info in client.scheduler_info()["workers"].items():
        hosts.setdefault(info.get("host", address), []).append(address)
    first = [workers[0] for workers in hosts.values()]
    rest = [address for workers in hosts.values() for address in workers[1:]]
    client.run(warm_up, workers=first)
    if rest:
        client.run(warm_up, workers=rest)


def worker_slots(client: Client) -> int:
    """Threads across the workers connected now (at least 1)."""
    return max(1, sum(client.nthreads().values()))
