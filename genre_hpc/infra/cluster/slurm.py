"""SLURMCluster: the scheduler runs here (the driver), every worker is a SLURM job of its own."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dask.utils import parse_bytes, parse_timedelta
from distributed import Client
from omegaconf import DictConfig

from genre_hpc.core.errors import ClusterError, ConfigError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.infra import jitcache
from genre_hpc.infra.cluster.worker_env import PRELOAD, SLURM_WORKER_ENV
from genre_hpc.infra.tasks import describe

log = logging.getLogger(__name__)

# Keys a user may need to change when SLURM workers never connect.
WORKER_KEYS = (
    "cluster.queue, cluster.account, cluster.cores, cluster.memory, cluster.walltime, cluster.interface"
)


def connect(cfg: DictConfig) -> Iterator[Client]:
    """A client on a new SLURMCluster with its worker jobs submitted; on exit the jobs are cancelled."""
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
                time.perf_counter() - submitted, describe(client), cluster.scheduler_address,
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
    out = OutputLayout.of(cfg)
    out.tls_parent.mkdir(parents=True, exist_ok=True)
    credentials = None
    if spec.security:
        # private (0700) and per run: whoever reads the key can connect as a client
        credentials = Path(tempfile.mkdtemp(prefix=".dask-tls-", dir=out.tls_parent))
    cluster = None
    try:
        cluster = SLURMCluster(**slurm_kwargs(spec, out=out.root, credentials=credentials))
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
    extra_args = ["--preload", PRELOAD]  # each worker its own copy of the primed numba cache
    if lifetime is not None:
        extra_args += ["--lifetime", f"{lifetime}s", "--lifetime-stagger", f"{stagger}s"]
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
    # numba's cache, primed by the driver on the shared filesystem; each worker copies it to
    # node-local scratch (jitcache.dask_setup), so a new node loads compiled code instead of compiling
    primed = jitcache.primed_folder(spec.numba_cache_dir)
    if spec.get("prime_worker_caches", True):
        lines.append(f'export {jitcache.PRIMED_ENV}="{primed}"')
        # and Python's bytecode of every module a worker imports, read from the job's first import on
        bytecode = jitcache.bytecode_folder(primed)
        lines.append(f'export PYTHONPYCACHEPREFIX="${{PYTHONPYCACHEPREFIX:-{bytecode}}}"')
    else:
        lines.append(f'export {jitcache.PRIMED_ENV}=""')
    lines.append(f'export {jitcache.SCRATCH_ENV}="{spec.jit_scratch}"')
    lines += [f"export {name}={value}" for name, value in SLURM_WORKER_ENV.items()]
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


def _absolute(path: Any) -> Path:
    path = Path(str(path)).expanduser()
    return path if path.is_absolute() else (Path.cwd() / path).resolve()
