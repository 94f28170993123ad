"""The sbatch scripts and the SLURM clusters on a real SLURM (`bash slurm/dev-cluster.sh start`): nodes n1, n2
of 2 CPUs, partition debug. Skipped only where SLURM does not answer, and never when CI=true."""

from __future__ import annotations

import json
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
from genre_hpc.infra.cluster.slurm import ENDED

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


def _slurm_problem() -> str | None:
    return scheduler_problem(
        "SLURM",
        ("sinfo", "sbatch"),
        ["sinfo", "-h", "-o", "%P %a"],
        lambda out: bool(out.strip()),
        "no partitions",
    )


@pytest.fixture(scope="module")
def slurm() -> None:
    require_scheduler(_slurm_problem(), "SLURM", "slurm/dev-cluster.sh")


@pytest.fixture
def names() -> Iterator[Callable[[str], str]]:
    """Unique job names for one test; whatever still runs under them is cancelled afterwards."""
    yield from job_names(["scancel", "-n"])


def test_extract_script_dry_run_with_cluster_local(local_rows: pd.DataFrame, corpus: Path) -> None:
    assert set(local_rows.track_id) == {str(p.relative_to(corpus)) for p in corpus.rglob("*.wav")}
    assert not local_rows.duplicated(["track_id", "segment"]).any()


@pytest.mark.slurm
def test_sbatch_extract_equals_local_with_the_jobs_asked_for_on_both_nodes(
    slurm: None, names: Callable[[str], str], corpus: Path, local_rows: pd.DataFrame, tmp_path: Path
) -> None:
    worker, driver = names("worker"), names("driver")
    submitted = time.perf_counter()
    job = _sbatch(
        "slurm/extract.sh", f"output.dir={tmp_path}", f"data.root={corpus}", "cluster.jobs=3",
        f"cluster.job_name={worker}", driver=driver, log=tmp_path / "driver.out",
    )  # fmt: skip
    seen: dict[str, set[str]] = {}  # worker job id -> nodes it ran on
    others: set[str] = set()  # jobs of anyone else that held the dev cluster's CPUs meanwhile

    def watch() -> None:
        for job_id, state, nodes in _squeue(worker):
            seen.setdefault(job_id, set())
            if state == "RUNNING":
                seen[job_id].add(nodes)
        others.update(_running_except(worker, driver))

    _wait(job, on_poll=watch)
    seconds = time.perf_counter() - submitted
    stage_seconds = extract_stage(tmp_path)["wall_seconds"]
    print(f"\nSLURM extraction: {seconds:.1f} s sbatch to end, stage {stage_seconds:.1f} s,")
    print(f"{_first_worker(tmp_path)}")
    _assert_completed(job, tmp_path)
    assert len(seen) == 3, seen  # cluster.jobs=3 -> three worker jobs in squeue
    # the driver starts work with its first worker, so the others start only if CPUs are free: on
    # an idle dev cluster SLURM spreads them over both nodes; another user's jobs (a developer's
    # test run) can leave room for one only, and the 40 tracks are done before the next starts
    if not others:
        assert set().union(*seen.values()) == {"n1", "n2"}, seen
    else:
        print(f"placement not asserted: other jobs held the dev cluster ({sorted(others)})")
        assert set().union(*seen.values()) & {"n1", "n2"}, seen
    pd.testing.assert_frame_equal(dataset_rows(tmp_path), local_rows, check_exact=False, rtol=1e-5, atol=1e-5)
    _assert_no_jobs_left(worker)
    assert len(list((tmp_path / "logs" / "slurm").glob(f"{worker}-*.err"))) == 3
    assert list(tmp_path.glob(".dask-tls-*")) == []  # credentials deleted


@pytest.mark.slow
@pytest.mark.slurm
def test_sbatch_train_trains_and_tunes_on_one_set_of_worker_jobs(
    slurm: None, names: Callable[[str], str], long_corpus: list[Path], tmp_path: Path
) -> None:
    root = long_corpus[0].parents[1]
    done = subprocess.run(
        ["bash", "slurm/extract.sh", "cluster=local", f"output.dir={tmp_path}", f"data.root={root}"],
        cwd=REPO, env=script_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    job = _sbatch(
        "slurm/train.sh", f"output.dir={tmp_path}", f"data.root={root}", "cluster.jobs=2",
        f"cluster.job_name={names('worker')}", "split.test_fraction=0.5", "search.cv_folds=2",
        "search.n_estimators=20", "model.params.n_estimators=20",
        driver=names("driver"), log=tmp_path / "driver.out",
    )  # fmt: skip
    _wait(job)
    _assert_completed(job, tmp_path)
    stages = json.loads((tmp_path / "manifest.json").read_text())["stages"]
    assert {"train", "tune"} <= set(stages)
    assert stages["train"]["split"]["name"] == "grouped"
    assert (tmp_path / "tune" / "best_params.json").exists() and (tmp_path / "report" / "index.html").exists()
    log = (tmp_path / "driver.out").read_text()
    assert log.count("submitting 2 worker jobs") == 1  # train and tune shared one cluster
    _assert_no_jobs_left(names("worker"))


@pytest.mark.slow
@pytest.mark.slurm
def test_scancel_of_a_worker_mid_run_keeps_every_row_exactly_once(
    slurm: None, names: Callable[[str], str], long_corpus: list[Path], tmp_path: Path
) -> None:
    tracks = long_corpus
    corpus = tracks[0].parent.parent
    out = tmp_path / "out"
    worker = names("worker")
    job = _sbatch(
        "slurm/extract.sh", f"output.dir={out}", f"data.root={corpus}", "extract.batch_size=1",
        "cluster.adapt.minimum=2", "cluster.adapt.maximum=2", f"cluster.job_name={worker}",
        driver=names("driver"), log=tmp_path / "driver.out",
    )  # fmt: skip
    cancelled: list[str] = []
    workers: set[str] = set()

    def cancel_one_once_busy() -> None:
        running = [job_id for job_id, state, _ in _squeue(worker) if state == "RUNNING"]
        workers.update(running)
        parts = list((out / "features").rglob("*.parquet")) if (out / "features").exists() else []
        if not cancelled and len(running) == 2 and len(parts) >= 2:
            subprocess.run(["scancel", running[0]], check=True)
            cancelled.append(running[0])

    _wait(job, on_poll=cancel_one_once_busy)
    _assert_completed(job, out)
    assert cancelled, "the run ended before a worker could be cancelled mid-run"
    assert_every_row_once(out, tracks)
    _assert_no_jobs_left(worker)
    print(f"\nworker jobs seen: {sorted(workers)}, cancelled {cancelled}")


@pytest.mark.slurm
@pytest.mark.long
def test_worker_jobs_shorter_than_a_batch_finish_every_row_once_logging_progress(
    slurm: None, names: Callable[[str], str], lifetime_corpus: list[Path], tmp_path: Path
) -> None:
    """Issue 18: worker jobs retire (--lifetime) mid-batch and are replaced; batches resume."""
    tracks = lifetime_corpus
    out = tmp_path / "out"
    worker = names("worker")
    started = time.perf_counter()
    job = _sbatch(
        "slurm/extract.sh", f"output.dir={out}", f"data.root={tracks[0].parents[1]}", *SHORT_LIVES,
        f"extract.batch_size={len(tracks) // 2}",
        f"cluster.job_name={worker}", driver=names("driver"), log=tmp_path / "driver.out",
    )  # fmt: skip
    workers: set[str] = set()
    _wait(
        job,
        timeout=StallDeadline(300, lambda: logged_tracks(tmp_path / "driver.out")),
        on_poll=lambda: workers.update(j for j, state, _ in _squeue(worker) if state == "RUNNING"),
    )
    seconds = time.perf_counter() - started
    _assert_completed(job, out)
    assert_every_row_once(out, tracks)
    assert_cut_batches_resumed_with_progress((tmp_path / "driver.out").read_text(), len(tracks))
    assert len(workers) > 2, workers  # worker jobs retired and were replaced
    _assert_no_jobs_left(worker)
    print(f"\nshort-lived SLURM workers: {seconds:.0f} s, {len(workers)} worker jobs, {extract_stage(out)}")


@pytest.mark.slow
@pytest.mark.slurm
def test_cancelling_the_driver_cancels_its_workers(
    slurm: None, names: Callable[[str], str], long_corpus: list[Path], tmp_path: Path
) -> None:
    """scancel (and the walltime) send SIGTERM: the driver still closes its cluster."""
    worker = names("worker")
    job = _sbatch(
        "slurm/extract.sh", f"output.dir={tmp_path}", f"data.root={long_corpus[0].parent.parent}",
        "extract.batch_size=1", f"cluster.job_name={worker}",
        driver=names("driver"), log=tmp_path / "driver.out",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len([j for j in _squeue(worker) if j[1] == "RUNNING"]) < 2:
        assert time.monotonic() < deadline, f"workers did not start: {_squeue(worker)}"
        assert _job(job).get("JobState") not in ENDED, _job(job)
        time.sleep(0.25)
    subprocess.run(["scancel", job], check=True)
    _assert_no_jobs_left(worker, within=15)
    _wait(job, timeout=60)
    assert _job(job)["JobState"] == "CANCELLED"
    assert list(tmp_path.glob(".dask-tls-*")) == []  # and deleted the credentials


@pytest.mark.slurm
def test_slurm_runner_in_a_two_node_allocation(
    slurm: None, names: Callable[[str], str], corpus: Path, local_rows: pd.DataFrame, tmp_path: Path
) -> None:
    driver = names("runner")
    job = _sbatch(
        "slurm/extract.sh", "cluster=slurm_runner", f"output.dir={tmp_path}", f"data.root={corpus}",
        driver=driver, log=tmp_path / "runner.out", extra=["-N", "2", "--ntasks-per-node=2"],
    )  # fmt: skip
    _wait(job)
    info = _assert_completed(job, tmp_path)
    assert info["NodeList"] == "n[1-2]" and info["NumTasks"] == "4"
    assert extract_stage(tmp_path)["workers"] == 2  # 4 tasks: scheduler, client, 2 workers
    pd.testing.assert_frame_equal(dataset_rows(tmp_path), local_rows, check_exact=False, rtol=1e-5, atol=1e-5)
    _assert_no_jobs_left(driver)


@pytest.mark.slurm
def test_tls_refuses_a_client_without_the_credentials(
    slurm: None, names: Callable[[str], str], tmp_path: Path
) -> None:
    worker = names("worker")
    cfg = _compose("cluster=slurm", f"output.dir={tmp_path}", "cluster.jobs=1", f"cluster.job_name={worker}")
    with connect(cfg) as client:
        address = client.scheduler.address
        assert address.startswith("tls://")
        assert client.submit(sum, [40, 2]).result(timeout=60) == 42  # the run's own client works
        # another user's process: no credentials, plain TCP to the TLS port, a certificate of its own
        for attempt in ("plain", "tcp", "other-certificate"):
            outcome = _foreign_client(address, attempt)
            assert outcome.startswith("refused"), f"{attempt}: {outcome}"
        assert len(client.scheduler_info()["workers"]) == 1
    _assert_no_jobs_left(worker)
    assert list(tmp_path.glob(".dask-tls-*")) == []


@pytest.mark.slurm
def test_a_warm_started_worker_is_forked_with_the_feature_code_loaded_and_is_restarted_so(
    slurm: None, names: Callable[[str], str], tmp_path: Path
) -> None:
    worker = names("worker")
    cfg = _compose(
        "cluster=slurm", f"output.dir={tmp_path}", "cluster.jobs=1", f"cluster.job_name={worker}",
        "cluster.warm_start=true",
    )  # fmt: skip

    def started_with() -> dict:  # by value (a closure): the worker need not import the tests
        import os
        import sys

        loaded = "genre_hpc.flow.features" in sys.modules  # before this task imports anything
        compiled = 0
        if loaded:
            from genre_hpc.flow import features

            compiled = len(features._spectral_shape.signatures)
        return {"loaded": loaded, "compiled": compiled, "pid": os.getpid(), "parent": os.getppid()}

    with connect(cfg) as client:
        first = client.submit(started_with, pure=False).result(timeout=120)
        # the nanny imported the features and loaded their compiled code, then forked this worker
        assert first["loaded"] and first["compiled"] >= 1

        # a worker that dies is forked again by its nanny, warm as the first (the task that killed it
        # is run again there, and returns)
        def die_in(pid: int) -> int:
            import os

            if os.getpid() == pid:
                os._exit(1)
            return os.getpid()

        assert client.submit(die_in, first["pid"], pure=False).result(timeout=120) != first["pid"]
        again = client.submit(started_with, pure=False).result(timeout=120)
        assert again["pid"] != first["pid"] and again["parent"] == first["parent"]
        assert again["loaded"] and again["compiled"] >= 1

        # SIGTERM (scancel's, the walltime's) ends a forked worker as it ends a spawned one; with
        # the nanny's handler inherited, the worker ignored it and this task returned its own pid
        def terminated_in(pid: int) -> int:
            import os
            import signal
            import time

            if os.getpid() == pid:
                os.kill(pid, signal.SIGTERM)
                time.sleep(20)
            return os.getpid()

        third = client.submit(terminated_in, again["pid"], pure=False).result(timeout=120)
        assert third != again["pid"]
    _assert_no_jobs_left(worker)


@pytest.mark.slurm
def test_at_the_end_of_a_run_worker_jobs_end_on_their_own_with_logs_free_of_tracebacks(
    slurm: None, names: Callable[[str], str], tmp_path: Path
) -> None:
    """The driver closes its workers before the cluster's close would scancel them: their jobs end
    COMPLETED, and no SIGTERM lands mid-close (which left a traceback or two in every worker's log
    and every worker job CANCELLED)."""
    worker = names("worker")
    cfg = _compose("cluster=slurm", f"output.dir={tmp_path}", "cluster.jobs=1", f"cluster.job_name={worker}")
    with connect(cfg) as client:
        assert client.submit(sum, [40, 2]).result(timeout=60) == 42
        (job,) = [j[0] for j in _squeue(worker)]
    _wait(job, timeout=30)
    info = _job(job)
    log = tmp_path / "logs" / "slurm" / f"{worker}-{job}.err"
    assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0"), log.read_text()[-3000:]
    assert_worker_log_ended_cleanly(log)


@pytest.mark.slurm
def test_wrong_queue_fails_at_once_naming_the_keys(
    slurm: None, names: Callable[[str], str], tmp_path: Path, primed_numba_cache: Path
) -> None:
    worker = names("worker")
    cfg = _compose(
        "cluster=slurm", f"output.dir={tmp_path}", "cluster.queue=no-such-queue", f"cluster.job_name={worker}"
    )
    started = time.perf_counter()
    with (
        pytest.raises(ClusterError, match=r"invalid partition.*cluster\.queue"),
        connect(cfg),
    ):
        pass
    assert time.perf_counter() - started < 30
    assert _squeue(worker) == []


@pytest.mark.slurm
def test_workers_that_never_connect_time_out_and_are_cancelled(
    slurm: None, names: Callable[[str], str], tmp_path: Path
) -> None:
    worker = names("worker")
    cfg = _compose(
        "cluster=slurm", f"output.dir={tmp_path}", "cluster.jobs=1", "cluster.connect_timeout=5",
        "cluster.job_extra_directives=['--begin=now+1hour']", f"cluster.job_name={worker}",
    )  # fmt: skip
    with (
        pytest.raises(ClusterError, match=r"connect_timeout=5.*PENDING.*cluster\.queue"),
        connect(cfg),
    ):
        pass
    _assert_no_jobs_left(worker)


@pytest.mark.slurm
def test_worker_jobs_that_end_without_connecting_stop_the_wait_at_once_quoting_their_log(
    slurm: None, names: Callable[[str], str], tmp_path: Path, primed_numba_cache: Path
) -> None:
    """A worker job that cannot start its worker (a wrong module, Python or venv) ends in seconds;
    the driver says so from its log instead of waiting connect_timeout (10 minutes by default)."""
    worker = names("worker")
    cfg = _compose(
        "cluster=slurm", f"output.dir={tmp_path}", "cluster.jobs=2", "cluster.connect_timeout=600",
        FAILING_PROLOGUE, f"cluster.job_name={worker}",
    )  # fmt: skip
    message = ended_without_connecting(cfg)
    assert message.count("FAILED NonZeroExitCode") == 2, message
    assert "module-not-found: gcc/99" in message and "cluster.job_script_prologue" in message, message
    _assert_no_jobs_left(worker)


FOREIGN_CLIENT = """
import sys
from distributed import Client, Security
address, attempt = sys.argv[1:]
kwargs = {"security": Security.temporary()} if attempt == "other-certificate" else {}
if attempt == "tcp":
    address = address.replace("tls://", "tcp://")
try:
    Client(address, timeout=5, **kwargs).close()
except Exception as exc:
    print("refused:", type(exc).__name__, exc)
else:
    print("CONNECTED")
"""


def _foreign_client(address: str, attempt: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", FOREIGN_CLIENT, address, attempt], capture_output=True, text=True, timeout=60
    )
    return done.stdout.strip() or done.stderr.strip()[-500:]


# --- helpers -------------------------------------------------------------------------------------------


def _compose(*overrides: str):
    cfg = make_config("extract", list(overrides))
    config.check(cfg)
    return cfg


def _sbatch(script: str, *overrides: str, driver: str, log: Path, extra: list[str] = ()) -> str:
    done = subprocess.run(
        ["sbatch", "--parsable", f"--job-name={driver}", f"--output={log}", *extra, script, *overrides],
        cwd=REPO,
        env=script_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().split(";")[0]


def _job(job_id: str) -> dict[str, str]:
    done = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True)
    return dict(re.findall(r"(\w+)=(\S*)", done.stdout))


def _wait(job_id: str, **wait: Any) -> None:
    """Until the job ends (wait_for_job's `timeout`, `on_poll`); a failure quotes its output file."""
    stdout = _job(job_id).get("StdOut")
    wait_for_job(job_id, finished=_ended, cancel=["scancel"], log=Path(stdout) if stdout else None, **wait)


def _ended(job_id: str) -> bool:
    return _job(job_id).get("JobState") in ENDED


def _assert_completed(job_id: str, out: Path) -> dict[str, str]:
    info = _job(job_id)
    if info.get("JobState") != "COMPLETED" or info.get("ExitCode") != "0:0":
        log = Path(info.get("StdOut", ""))
        text = log.read_text()[-4000:] if log.is_file() else "(no log)"
        pytest.fail(f"job {job_id}: {info.get('JobState')} exit {info.get('ExitCode')}\n{text}")
    return info


def _squeue(name: str) -> list[tuple[str, str, str]]:
    done = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i %T %N"], capture_output=True, text=True)
    return [tuple((line.split() + ["", ""])[:3]) for line in done.stdout.splitlines() if line.strip()]


def _running_except(*names: str) -> set[str]:
    """Ids of running jobs not named any of `names`."""
    done = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %j"], capture_output=True, text=True)
    return {job for job, name in (line.split(maxsplit=1) for line in done.stdout.splitlines() if line.strip())
            if name not in names}  # fmt: skip


def _assert_no_jobs_left(name: str, within: float = 20) -> None:
    """The driver cancelled its workers: none pending or running (COMPLETING is on its way out)."""
    deadline = time.monotonic() + within
    while (jobs := [j for j in _squeue(name) if j[1] != "COMPLETING"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert jobs == [], f"jobs named {name} still queued: {jobs}"


def _first_worker(out: Path) -> str:
    logs = "".join(p.read_text() for p in out.glob("driver.out"))
    match = re.search(r"first worker connected ([\d.]+) s after submission", logs)
    return f"first worker {match.group(1)} s after the driver submitted" if match else "no first-worker line"
