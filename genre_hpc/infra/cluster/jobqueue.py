"""dask-jobqueue clusters: the scheduler runs here (the driver), every worker is a batch job of its own.

One builder for SLURM, SGE, PBS, LSF, HTCondor and OAR: `cluster.*` keys shared by all of them
(conf/cluster/base/jobqueue.yaml) plus the row of schedulers.SCHEDULERS that `cluster.kind` names.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import signal
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
from distributed.comm import CommClosedError
from omegaconf import DictConfig

from genre_hpc.core.errors import ClusterError, ConfigError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.infra import jitcache
from genre_hpc.infra.cluster.schedulers import SCHEDULERS, Scheduler
from genre_hpc.infra.cluster.worker_env import FORK_ENV, JOB_WORKER_ENV, PRELOAD, WARM_NANNY
from genre_hpc.infra.tasks import describe

log = logging.getLogger(__name__)

# Keys a user may need to change when worker jobs are refused or never connect.
WORKER_KEYS = (
    "cluster.queue, cluster.account, cluster.cores, cluster.memory, cluster.walltime, cluster.interface"
)


def connect(cfg: DictConfig) -> Iterator[Client]:
    """A client on a new cluster of `cfg.cluster.kind` with its worker jobs submitted; on exit the jobs
    are cancelled."""
    spec = cfg.cluster
    with _ends_on_signals(SCHEDULERS[spec.kind].notice_signals), jobqueue_cluster(cfg) as cluster:
        if spec.print_job_script:
            log.info("dask: worker job script:\n%s", cluster.job_script())
        _preflight(cluster, spec)
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
            try:
                yield client
            except Exception:  # not at SIGTERM or Ctrl-C (SystemExit, KeyboardInterrupt): end at once
                _end_worker_jobs(client, cluster, spec)
                raise
            _end_worker_jobs(client, cluster, spec)


@contextmanager
def jobqueue_cluster(cfg: DictConfig) -> Iterator[Any]:
    """The dask-jobqueue cluster `cfg.cluster` describes (no jobs submitted yet); on exit its jobs are
    cancelled and its temporary TLS credentials deleted."""
    import dask_jobqueue

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
        cls = getattr(dask_jobqueue, SCHEDULERS[spec.kind].cls)
        cluster = cls(**cluster_kwargs(spec, out=out.root, credentials=credentials))
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


def cluster_kwargs(spec: DictConfig, *, out: Path, credentials: Path | None) -> dict[str, Any]:
    """Keyword arguments of the dask-jobqueue class for the `cluster=<kind>` config `spec`."""
    row = SCHEDULERS[spec.kind]
    python = str(spec.python or sys.executable)
    lifetime, stagger = lifetime_seconds(spec)
    extra_args = ["--preload", PRELOAD]  # each worker its own copy of the primed numba cache
    if spec.get("warm_start", False):  # the nanny loads the code and forks its worker (infra/warm_nanny)
        extra_args += ["--preload-nanny", WARM_NANNY]
    if lifetime is not None:
        extra_args += ["--lifetime", f"{lifetime}s", "--lifetime-stagger", f"{stagger}s"]
    dashboard = spec.dashboard_address
    logs = _absolute(spec.log_directory)
    built_in = [line.format(log_directory=logs, job_name=spec.job_name) for line in row.directives]
    kwargs: dict[str, Any] = {
        "cores": spec.cores,
        "processes": spec.processes,
        "memory": spec.memory,
        "queue": spec.queue,
        "job_name": spec.job_name,
        "job_extra_directives": [*built_in, *map(str, spec.job_extra_directives)],
        "interface": spec.interface,
        "local_directory": str(spec.local_directory),
        "log_directory": str(logs),
        "job_script_prologue": _prologue(spec, python, posix=row.posix_prologue),
        "worker_extra_args": extra_args,
        "death_timeout": spec.death_timeout,
        "python": python,
        # the http server always runs (health, metrics); without a dashboard keep it on localhost
        "scheduler_options": {"dashboard": bool(dashboard), "dashboard_address": dashboard or "127.0.0.1:0"},
    }
    kwargs.update({key: spec[key] for key in row.own_keys})
    if spec.kind == "htcondor":
        _htcondor(kwargs, spec, row)
    else:
        kwargs["walltime"] = spec.walltime
        kwargs[row.account] = spec.account
    if credentials is not None:
        kwargs["security"] = True
        kwargs["shared_temp_directory"] = str(credentials)
    return kwargs


def _htcondor(kwargs: dict[str, Any], spec: DictConfig, row: Scheduler) -> None:
    """HTCondor's submit description is a dict, and it has no walltime or account keyword: they
    become `allowed_execute_duration` (the job is held past it) and `accounting_group`."""
    directives = {}
    for line in kwargs["job_extra_directives"]:  # "key = value" (check_spec made sure)
        key, _, value = line.partition("=")
        directives[key.strip()] = value.strip()
    directives["allowed_execute_duration"] = row.walltime_seconds(spec.walltime)
    if spec.account is not None:
        directives["accounting_group"] = spec.account
    kwargs["job_extra_directives"] = directives
    kwargs.pop("queue")  # HTCondor matches machines; there is no queue to name


def _prologue(spec: DictConfig, python: str, *, posix: bool) -> list[str]:
    # HTCondor runs the prologue with /bin/sh -c, and $(...) is a submit-file macro there
    lines = ['export USER="${USER:-`id -un`}"' if posix else 'export USER="${USER:-$(id -un)}"']
    activate = Path(python).parent / "activate"
    if activate.is_file():  # a venv: its bin/ on PATH for any tool the worker calls
        lines.append(f"{'.' if posix else 'source'} {activate}")
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
    lines += [f"export {name}={value}" for name, value in JOB_WORKER_ENV.items()]
    if spec.get("warm_start", False):
        lines.append(f"export {FORK_ENV}=fork")
    return lines + [str(line) for line in spec.job_script_prologue]


def lifetime_seconds(spec: DictConfig) -> tuple[int | None, int]:
    """(--lifetime, --lifetime-stagger) in seconds: workers retire before the walltime kills them."""
    if spec.lifetime_margin is None:
        return None, 0
    wall = SCHEDULERS[spec.kind].walltime_seconds(spec.walltime)
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
    """Values of a dask-jobqueue cluster or of slurm_runner that cannot work (called by config.check)."""
    if spec.kind in SCHEDULERS:
        if spec.processes > spec.cores:
            raise ConfigError(
                "cluster.processes", f"{spec.processes} is more than cluster.cores={spec.cores}"
            )
        for key in ("memory", *(("disk",) if spec.kind == "htcondor" else ())):
            try:
                parse_bytes(str(spec[key]))
            except ValueError:
                raise ConfigError(f"cluster.{key}", f"{spec[key]!r} is not a size", "e.g. 16GB") from None
        for key in ("lifetime_margin", "lifetime_stagger"):
            try:
                parse_timedelta(spec[key] or 0)
            except (ValueError, KeyError):
                raise ConfigError(f"cluster.{key}", f"{spec[key]!r} is not a duration", "e.g. 5m") from None
        lifetime_seconds(spec)
        if not all(isinstance(line, str) for line in spec.job_extra_directives):
            raise ConfigError(
                "cluster.job_extra_directives", "must be a list of strings", "e.g. ['-l gpu=1']"
            )
        if spec.kind == "htcondor" and (bad := [x for x in spec.job_extra_directives if "=" not in x]):
            raise ConfigError(
                "cluster.job_extra_directives",
                f"{bad[0]!r} is not a submit command",
                'e.g. "+MaxRuntime = 3600"',
            )
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


def _worker_keys(row: Scheduler) -> str:
    return ", ".join([WORKER_KEYS, *(f"cluster.{key}" for key in row.own_keys)])


def _preflight(cluster: Any, spec: DictConfig) -> None:
    """Ask the scheduler about the worker script before submitting: a wrong queue, account or size
    fails here, at once, where the scheduler can tell (SLURM, SGE)."""
    row = SCHEDULERS[spec.kind]
    if shutil.which(row.submit) is None:
        raise ClusterError(
            f"cluster={spec.kind}: `{row.submit}` is not on PATH; run on a submit host or use cluster=local"
        )
    if row.preflight is not None:
        row.preflight(cluster.job_script(), _worker_keys(row))


# Seconds between the driver's looks at its worker jobs while none has connected: soon at first (a
# job that cannot start its worker ends within seconds), then rarely enough to spare the scheduler.
FIRST_LOOK_S, LONGEST_LOOK_S = 2.0, 30.0


def _wait_for_first_worker(client: Client, cluster: Any, spec: DictConfig) -> None:
    """Return once a worker has connected. Stop early, quoting a job's log, once every worker job has
    ended without connecting (where the scheduler can say, `Scheduler.ended`); otherwise after
    cluster.connect_timeout, naming the jobs' states and the keys to check."""
    row = SCHEDULERS[spec.kind]
    logs = Path(cluster._dummy_job.log_directory)
    deadline = time.monotonic() + spec.connect_timeout
    look, told, listed, states = FIRST_LOOK_S, set(), set(), None
    while True:
        try:
            client.wait_for_workers(1, timeout=max(0.1, min(look, deadline - time.monotonic())))
            return
        except (TimeoutError, asyncio.TimeoutError):
            pass
        look = min(2 * look, LONGEST_LOOK_S)
        ids = _job_ids(cluster)
        states = row.states(ids) if (row.states and ids) else None
        if states is not None and row.ended is not None:
            over = [i for i in ids if row.ended(states.get(i), i in listed)]
            listed.update(states)
            for job_id in sorted(set(over) - told):
                log.warning(
                    "dask: worker job %s ended without connecting (%s); its log: %s",
                    job_id, states.get(job_id, "gone"), _log_tail(logs, job_id),
                )  # fmt: skip
                told.add(job_id)
            if len(over) == len(ids) and not client.nthreads():  # nthreads asks the scheduler now
                raise ClusterError(
                    f"every worker job ended without a Dask worker connecting "
                    f"({_job_states(ids, states)}); "
                    f"the last lines of job {ids[0]}'s log: {_log_tail(logs, ids[0])}. Fix what it says "
                    f"(often cluster.python, cluster.job_script_prologue or cluster.interface; "
                    f"cluster.walltime or cluster.memory if a state says TIMEOUT or OUT_OF_MEMORY); "
                    f"all logs are in {logs}"
                )
        if time.monotonic() >= deadline:
            break
    state = f"worker jobs: {_job_states(ids, states)}" if ids else "no worker job could be submitted"
    raise ClusterError(
        f"no Dask worker connected within cluster.connect_timeout={spec.connect_timeout} s ({state}). "
        f"Pending jobs: check {_worker_keys(row)}; running jobs that never connect: check "
        f"cluster.interface and the worker logs in {logs}"
    ) from None


# Seconds the driver waits, once its workers have closed, for their jobs to end on their own
JOBS_END_S = 10.0


def _end_worker_jobs(client: Client, cluster: Any, spec: DictConfig) -> None:
    """Close every connected worker through its nanny, then wait (JOBS_END_S at most, where the
    scheduler can say, `Scheduler.ended`) for their jobs to end on their own. The cluster's close
    then cancels only what is left: jobs still pending, a worker that would not close.

    dask-jobqueue's close cancels the jobs while the scheduler's own close is closing their
    workers, so SIGTERM arrived mid-close: at the end of every run, each worker's log had a
    traceback or two of that race (a batched comm closed under it, a TLS listener stopped in a
    handshake) and SLURM recorded each worker job as CANCELLED. Through the nanny rather than the
    worker: a worker process that closes by itself waits 2 s for its stop-queue thread
    (distributed joins that thread before telling it to stop).
    """
    try:
        closed = client.run_on_scheduler(_terminate_nannies, reason="run-finished")
    except Exception as error:  # the scheduler cannot be reached: the cancel below still ends the jobs
        log.debug("dask: could not close the workers before cancelling their jobs: %r", error)
        return
    row = SCHEDULERS[spec.kind]
    ids = _job_ids(cluster, of_workers=closed)
    if not ids or row.states is None or row.ended is None:
        return
    deadline = time.monotonic() + JOBS_END_S
    while (states := row.states(ids)) is not None and time.monotonic() < deadline:
        if all(row.ended(states.get(i), True) for i in ids):
            return
        time.sleep(0.2)
    if states is None:
        log.info(
            "dask: the scheduler cannot say whether worker jobs %s ended: cancelling them", ", ".join(ids)
        )
    else:
        log.info("dask: worker jobs %s had not ended %.0f s after their workers closed: cancelling them",
                 _job_states(ids, states), JOBS_END_S)  # fmt: skip


def _job_ids(cluster: Any, of_workers: list[str] | None = None) -> list[str]:
    """The scheduler's ids of the cluster's submitted worker jobs, in submission order; with
    `of_workers`, only the jobs that run one of those workers (a job of `processes` workers names
    them <job name>-<i>)."""
    # A copy, as the cluster's event loop changes the dict, and no name for a job outside the
    # comprehension: a job object that outlives the cluster's close (kept, say, by the traceback of
    # an error raised while waiting) fails SpecCluster's check that each job it made is closed,
    # which dask-jobqueue's Job.close never marks; only the WeakSet of made jobs dropping it lets
    # that check pass.
    return sorted(
        (
            str(job.job_id)
            for name, job in list(cluster.workers.items())
            if getattr(job, "job_id", None)
            and (of_workers is None or any(w == name or w.startswith(f"{name}-") for w in of_workers))
        ),
        key=lambda i: (len(i), i),  # numeric ids in submission order
    )


async def _terminate_nannies(dask_scheduler: Any, reason: str) -> list[str]:
    """(On the scheduler) close each worker's nanny, which closes its worker and then itself, so the
    job's command ends; the names of the workers whose nannies closed."""
    nannies = {ws.nanny: str(ws.name) for ws in dask_scheduler.workers.values() if ws.nanny}

    async def terminate(address: str) -> bool:
        try:
            await dask_scheduler.rpc(address).terminate(reason=reason)
        except (CommClosedError, OSError):
            return True  # the nanny closes its comms as it closes: the reply may never come
        except Exception as error:
            log.debug("dask: nanny %s did not close: %r", address, error)
            return False
        return True

    done = await asyncio.wait_for(asyncio.gather(*map(terminate, nannies)), timeout=30)
    return [name for name, ok in zip(nannies.values(), done, strict=True) if ok]


def _job_states(ids: list[str], states: dict[str, str] | None) -> str:
    if states is None:  # the scheduler cannot say
        return ", ".join(ids)
    return "; ".join(f"{i} {states.get(i, 'gone')}" for i in ids)


def _log_tail(folder: Path, job_id: str, lines: int = 3) -> str:
    """The last `lines` non-empty lines of the job's log files (stderr first), for a message."""
    # SLURM writes <job_name>-<id>.err and .out; Grid Engine <job_name>.o<id> (and .e<id>)
    pattern = re.compile(rf"(-{re.escape(job_id)}\.(err|out)|\.[eo]{re.escape(job_id)})$")
    tails = []
    try:
        files = sorted(path for path in folder.iterdir() if pattern.search(path.name))
    except OSError:
        files = []
    for path in sorted(files, key=lambda path: not re.search(r"(\.err|\.e\d+)$", path.name)):
        try:
            text = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:  # gone, or unreadable, on a shared filesystem: the message still goes out
            continue
        if text:
            tails.append(f"{path.name}: " + " | ".join(text[-lines:]))
    return " / ".join(tails)[-1500:] if tails else f"none yet in {folder}"


@contextmanager
def _ends_on_signals(notices: tuple[str, ...]) -> Iterator[None]:
    """scancel, qdel and the walltime send SIGTERM (or a notice such as SGE's SIGUSR2 before its
    SIGKILL): turn them into SystemExit so `finally` cancels the workers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = [signal.SIGTERM, *(getattr(signal, name) for name in notices)]
    previous = {n: signal.signal(n, lambda signum, frame: sys.exit(128 + signum)) for n in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


_SIGINT_AT_START = signal.getsignal(signal.SIGINT)


def _restore_sigint_after_jobqueue_import() -> None:
    """Importing dask_jobqueue sets SIGINT to sys.exit (for its runner); keep Ctrl-C a KeyboardInterrupt."""
    if threading.current_thread() is threading.main_thread() and _SIGINT_AT_START is not None:
        signal.signal(signal.SIGINT, _SIGINT_AT_START)


def _absolute(path: Any) -> Path:
    path = Path(str(path)).expanduser()
    return path if path.is_absolute() else (Path.cwd() / path).resolve()
