"""The qsub scripts and SGECluster on a real Grid Engine (`bash sge/dev-cluster.sh start`): one host,
queue all.q of 4 slots whose shell is /bin/sh. Skipped only where Grid Engine does not answer, and
never when CI=true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from genre_hpc.core.errors import ClusterError
from genre_hpc.infra import config
from genre_hpc.infra.cluster import connect

from ..helpers import (
    FAILING_PROLOGUE,
    REPO,
    SHORT_LIVES,
    StallDeadline,
    assert_cut_batches_resumed_with_progress,
    assert_every_row_once,
    assert_worker_log_ended_cleanly,
    dataset_rows,
    ended_without_connecting,
    extract_stage,
    job_names,
    logged_tracks,
    make_config,
    require_scheduler,
    scheduler_problem,
    script_env,
    wait_for_job,
)

pytestmark = pytest.mark.sge


def _sge_problem() -> str | None:
    return scheduler_problem(
        "Grid Engine",
        ("qstat", "qsub"),
        ["qstat", "-f", "-q", "all.q"],
        lambda out: "all.q@" in out,
        "no queue all.q",
    )


@pytest.fixture(scope="module")
def sge() -> None:
    require_scheduler(_sge_problem(), "Grid Engine", "sge/dev-cluster.sh")


@pytest.fixture
def names() -> Iterator[Callable[[str], str]]:
    """Unique job names for one test; whatever still runs under them is deleted afterwards."""
    yield from job_names(["qdel", "-f"])


def test_a_job_starts_without_the_login_files_of_its_user(
    sge: None, names: Callable[[str], str], tmp_path: Path
) -> None:
    """sge/dev-cluster.sh sets login_shells none. As a login shell, bash read root's ~/.profile and
    ~/.bashrc (`pyenv init` on these machines) before a job's first command, and once a killed job
    had left pyenv's rehash lock behind every job start waited 60 s: worker jobs of a minute's
    walltime never reached Python (stop 26's CI)."""
    script = tmp_path / "shell.sh"
    script.write_text(
        "#$ -S /bin/bash\n#$ -j y\n"
        'shopt -q login_shell && echo login || echo not-login\necho "PYENV_SHELL=${PYENV_SHELL-}"\n'
    )
    out = tmp_path / "shell.out"
    _wait(_qsub(str(script), driver=names("shell"), log=out), timeout=60, log=out)
    assert out.read_text().split() == ["not-login", "PYENV_SHELL="], out.read_text()


@pytest.mark.slow
def test_qsub_extract_equals_local_with_the_jobs_asked_for(
    sge: None, names: Callable[[str], str], corpus: Path, local_rows: pd.DataFrame, tmp_path: Path
) -> None:
    worker = names("worker")
    submitted = time.perf_counter()
    job = _qsub(
        "sge/extract.sh", "cluster=sge", "cluster.jobs=2", f"output.dir={tmp_path}", f"data.root={corpus}",
        f"cluster.job_name={worker}", driver=names("driver"), log=tmp_path / "driver.out",
    )  # fmt: skip
    seen: set[str] = set()  # worker job ids qstat showed running

    def watch() -> None:
        seen.update(job_id for job_id, state in _qstat(worker) if state == "r")

    _wait(job, on_poll=watch, log=tmp_path / "driver.out")
    seconds = time.perf_counter() - submitted
    stage_seconds = extract_stage(tmp_path)["wall_seconds"]
    print(f"\nSGE extraction: {seconds:.1f} s qsub to end, stage {stage_seconds:.1f} s")
    _assert_completed(job, tmp_path / "driver.out")
    assert len(seen) == 2, seen  # cluster.jobs=2 -> two worker jobs
    pd.testing.assert_frame_equal(dataset_rows(tmp_path), local_rows, check_exact=False, rtol=1e-5, atol=1e-5)
    _assert_no_jobs_left(worker)
    # the workers ran under bash although the queue's shell is /bin/sh, and logged where configured
    logs = sorted((tmp_path / "logs" / "sge").glob(f"{worker}.o*"))
    assert len(logs) == 2 and all("Start Nanny" in log.read_text() for log in logs), logs
    assert list(tmp_path.glob(".dask-tls-*")) == []  # credentials deleted


@pytest.mark.slow
def test_qdel_of_a_worker_mid_run_keeps_every_row_exactly_once(
    sge: None, names: Callable[[str], str], long_corpus: list[Path], tmp_path: Path
) -> None:
    tracks = long_corpus
    out = tmp_path / "out"
    worker = names("worker")
    job = _qsub(
        "sge/extract.sh", f"output.dir={out}", f"data.root={tracks[0].parents[1]}", "extract.batch_size=1",
        "cluster.adapt.minimum=2", "cluster.adapt.maximum=2", f"cluster.job_name={worker}",
        driver=names("driver"), log=tmp_path / "driver.out",
    )  # fmt: skip
    deleted: list[str] = []
    workers: set[str] = set()

    def delete_one_once_busy() -> None:
        running = [job_id for job_id, state in _qstat(worker) if state == "r"]
        workers.update(running)
        parts = list((out / "features").rglob("*.parquet")) if (out / "features").exists() else []
        if not deleted and len(running) == 2 and len(parts) >= 2:
            subprocess.run(["qdel", running[0]], check=True, capture_output=True)
            deleted.append(running[0])

    _wait(job, on_poll=delete_one_once_busy, log=tmp_path / "driver.out")
    _assert_completed(job, tmp_path / "driver.out")
    assert deleted, "the run ended before a worker could be deleted mid-run"
    assert_every_row_once(out, tracks)
    _assert_no_jobs_left(worker)
    print(f"\nworker jobs seen: {sorted(workers)}, deleted {deleted}")


@pytest.mark.long
def test_worker_jobs_shorter_than_a_batch_finish_every_row_once_logging_progress(
    sge: None, names: Callable[[str], str], lifetime_corpus: list[Path], tmp_path: Path
) -> None:
    """Issue 18: worker jobs retire (--lifetime) before h_rt mid-batch and are replaced; batches resume."""
    tracks = lifetime_corpus
    out = tmp_path / "out"
    worker = names("worker")
    started = time.perf_counter()
    job = _qsub(
        "sge/extract.sh", f"output.dir={out}", f"data.root={tracks[0].parents[1]}", *SHORT_LIVES,
        f"extract.batch_size={len(tracks) // 2}",
        f"cluster.job_name={worker}", driver=names("driver"), log=tmp_path / "driver.out",
    )  # fmt: skip
    workers: set[str] = set()
    _wait(
        job,
        timeout=StallDeadline(300, lambda: logged_tracks(tmp_path / "driver.out")),
        on_poll=lambda: workers.update(j for j, state in _qstat(worker) if state == "r"),
        log=tmp_path / "driver.out",
    )
    seconds = time.perf_counter() - started
    _assert_completed(job, tmp_path / "driver.out")
    assert_every_row_once(out, tracks)
    assert_cut_batches_resumed_with_progress((tmp_path / "driver.out").read_text(), len(tracks))
    assert len(workers) > 2, workers  # worker jobs retired and were replaced
    _assert_no_jobs_left(worker)
    print(f"\nshort-lived SGE workers: {seconds:.0f} s, {len(workers)} worker jobs, {extract_stage(out)}")


@pytest.mark.slow
def test_qdel_of_the_driver_deletes_its_workers_and_credentials_and_a_rerun_finishes(
    sge: None, names: Callable[[str], str], long_corpus: list[Path], tmp_path: Path
) -> None:
    """The scripts' -notify makes qdel send SIGUSR2 before its SIGKILL: the driver still closes its
    cluster."""
    worker = names("worker")
    job = _qsub(
        "sge/extract.sh", f"output.dir={tmp_path}", f"data.root={long_corpus[0].parents[1]}",
        "extract.batch_size=1", f"cluster.job_name={worker}",
        driver=names("driver"), log=tmp_path / "driver.out",
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while len([j for j in _qstat(worker) if j[1] == "r"]) < 2:
        assert time.monotonic() < deadline, f"workers did not start: {_qstat(worker)}"
        time.sleep(0.25)
    subprocess.run(["qdel", job], check=True, capture_output=True)
    _assert_no_jobs_left(worker, within=15)
    _wait(job, timeout=60, log=tmp_path / "driver.out")
    assert list(tmp_path.glob(".dask-tls-*")) == []  # and deleted the credentials
    assert "submitting 2 worker jobs" in (tmp_path / "driver.out").read_text()
    # a rerun in the same output.dir picks up what the deleted run left and finishes every track once
    rerun = subprocess.run(
        ["bash", "sge/extract.sh", "cluster=local", f"output.dir={tmp_path}",
         f"data.root={long_corpus[0].parents[1]}"],
        cwd=REPO, env=script_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert re.search(r"extract: .*; \d+ already done, \d+ to do", rerun.stderr)
    rows = dataset_rows(tmp_path)
    assert set(rows.track_id) == {str(p.relative_to(long_corpus[0].parents[1])) for p in long_corpus}
    assert not rows.duplicated(["track_id", "segment"]).any()


def test_at_the_end_of_a_run_worker_jobs_end_on_their_own_with_logs_free_of_tracebacks(
    sge: None, names: Callable[[str], str], tmp_path: Path
) -> None:
    """The driver closes its workers before the cluster's close would qdel them: their jobs exit 0,
    and no signal lands mid-close to leave a traceback in the worker's log."""
    worker = names("worker")
    cfg = make_config(
        "extract", ["cluster=sge", f"output.dir={tmp_path}", "cluster.jobs=1", f"cluster.job_name={worker}"]
    )
    config.check(cfg)
    with connect(cfg) as client:
        assert client.submit(sum, [40, 2]).result(timeout=60) == 42
        (job,) = [j[0] for j in _qstat(worker)]
    log = tmp_path / "logs" / "sge" / f"{worker}.o{job}"  # dask-jobqueue joins stderr to stdout (-j y)
    _wait(job, log=log, timeout=30)
    _assert_completed(job, log)
    assert_worker_log_ended_cleanly(log)


def test_wrong_queue_fails_at_once_naming_the_keys(
    sge: None, names: Callable[[str], str], tmp_path: Path, primed_numba_cache: Path
) -> None:
    worker = names("worker")
    overrides = ["cluster=sge", f"output.dir={tmp_path}", "cluster.queue=no-such-queue"]
    cfg = make_config("extract", [*overrides, f"cluster.job_name={worker}"])
    config.check(cfg)
    started = time.perf_counter()
    with (
        pytest.raises(ClusterError, match=r"unknown queue \"no-such-queue\".*cluster\.queue.*resource_spec"),
        connect(cfg),
    ):
        pass
    assert time.perf_counter() - started < 30
    assert _qstat(worker) == []


def test_worker_jobs_that_end_without_connecting_stop_the_wait_at_once_quoting_their_log(
    sge: None, names: Callable[[str], str], tmp_path: Path, primed_numba_cache: Path
) -> None:
    """A finished Grid Engine job leaves qstat at once: the driver stops waiting for workers when every
    job it submitted has gone, and quotes the job's log (<job_name>.o<id>: dask-jobqueue joins stderr
    to stdout with `-j y`)."""
    worker = names("worker")
    overrides = ["cluster=sge", f"output.dir={tmp_path}", "cluster.jobs=2", FAILING_PROLOGUE]
    cfg = make_config("extract", [*overrides, "cluster.connect_timeout=600", f"cluster.job_name={worker}"])
    config.check(cfg)
    message = ended_without_connecting(cfg)
    assert re.search(rf"\b{re.escape(worker)}\.o\d+: module-not-found: gcc/99", message), message
    assert _qstat(worker) == []


# --- helpers -------------------------------------------------------------------------------------------


def _qsub(script: str, *overrides: str, driver: str, log: Path) -> str:
    # qsub passes no environment: the driver is told which Python and which primed numba cache to use
    env = f"GENRE_HPC_PYTHON={sys.executable},GENRE_HPC_NUMBA_CACHE={os.environ['GENRE_HPC_NUMBA_CACHE']}"
    done = subprocess.run(
        ["qsub", "-terse", "-N", driver, "-o", str(log), "-v", env, script, *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _qstat(name: str) -> list[tuple[str, str]]:
    """(job id, state) of the jobs named `name` that Grid Engine still holds (qw, r, dr, Eqw, ...)."""
    done = subprocess.run(["qstat", "-u", "*", "-r"], capture_output=True, text=True)
    jobs, current = [], None
    for line in done.stdout.splitlines():
        fields = line.split()
        if fields and fields[0].isdigit():
            current = (fields[0], fields[4])
        elif current and line.strip().startswith("Full jobname:") and fields[-1] == name:
            jobs.append(current)
    return jobs


def _wait(job_id: str, *, log: Path, **wait: Any) -> None:
    """Until the job leaves the queue (wait_for_job's `timeout`, `on_poll`)."""
    wait_for_job(job_id, finished=_gone, cancel=["qdel"], log=log, **wait)


def _gone(job_id: str) -> bool:
    return subprocess.run(["qstat", "-j", job_id], capture_output=True).returncode != 0


def _assert_completed(job_id: str, log: Path) -> dict[str, str]:
    """qacct's record of the finished job (written a moment after qstat forgets it): exit status 0."""
    deadline = time.monotonic() + 20
    while (done := subprocess.run(["qacct", "-j", job_id], capture_output=True, text=True)).returncode:
        assert time.monotonic() < deadline, f"no accounting record of job {job_id}: {done.stderr}"
        time.sleep(0.5)
    info = dict(re.findall(r"^(\w+)\s+(.*?)\s*$", done.stdout, flags=re.M))
    if info.get("exit_status") != "0" or not info.get("failed", "").startswith("0"):
        text = log.read_text()[-4000:] if log.is_file() else "(no log)"
        pytest.fail(f"job {job_id}: failed {info.get('failed')}, exit {info.get('exit_status')}\n{text}")
    return info


def _assert_no_jobs_left(name: str, within: float = 20) -> None:
    """The driver deleted its workers: none pending or running (dr: on its way out)."""
    deadline = time.monotonic() + within
    while (jobs := [j for j in _qstat(name) if "d" not in j[1]]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert jobs == [], f"jobs named {name} still queued: {jobs}"
