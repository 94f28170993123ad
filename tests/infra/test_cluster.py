"""The cluster package without SLURM: configs compose, the SLURM worker job script renders as configured."""

from __future__ import annotations

import logging
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from dask.utils import parse_timedelta

from genre_hpc.core.errors import ConfigError
from genre_hpc.infra import config, jitcache
from genre_hpc.infra.cluster import connect, jobqueue, slurm

from ..helpers import make_config


def job_script(tmp_path: Path, *overrides: str) -> tuple[str, dict]:
    cfg = make_config("extract", ["cluster=slurm", f"output.dir={tmp_path}", *overrides])
    config.check(cfg)
    with jobqueue.jobqueue_cluster(cfg) as built:
        script = built.job_script()
        credentials = sorted(tmp_path.glob(".dask-tls-*"))
        http_port = built.scheduler.http_server.port
        seen = {
            "credentials": credentials,
            "modes": [d.stat().st_mode & 0o777 for d in credentials],
            "files": sorted(p.name for d in credentials for p in d.iterdir()),
            "address": built.scheduler_address,
            "status_page": _http_status(f"http://127.0.0.1:{http_port}/status"),
            "http_bound_to": {
                sock.getsockname()[0] for sock in built.scheduler.http_server._sockets.values()
            },
        }
    seen["left_after_close"] = sorted(tmp_path.glob(".dask-tls-*"))
    return script, seen


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("kind", ["local", "slurm", "slurm_runner", "sge", "pbs", "lsf", "htcondor", "oar"])
@pytest.mark.parametrize("stage", ["extract", "train", "tune", "run"])
def test_every_cluster_option_composes_and_checks(kind: str, stage: str) -> None:
    cfg = make_config(stage, [f"cluster={kind}"])
    config.check(cfg)
    assert cfg.cluster.kind == kind


def test_site_overrides_land_in_the_sbatch_header(tmp_path: Path) -> None:
    script, _ = job_script(
        tmp_path,
        "cluster.cores=8",
        "cluster.processes=2",
        "cluster.memory=16GB",
        "cluster.walltime=02:00:00",
        "cluster.queue=compute",
        "cluster.account=myproj",
        "cluster.job_extra_directives=['--qos=short','--constraint=intel']",
    )
    header = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH -J genre-hpc-worker" in header
    assert "#SBATCH -p compute" in header
    assert "#SBATCH -A myproj" in header
    assert "#SBATCH --cpus-per-task=8" in header
    assert "#SBATCH --mem=15G" in header  # 16 GB is 14.9 GiB, which SLURM calls G
    assert "#SBATCH -t 02:00:00" in header
    assert header[-2:] == ["#SBATCH --qos=short", "#SBATCH --constraint=intel"]
    # 2 processes of 4 threads and 8 GB each
    assert "--nworkers 2" in script and "--nthreads 4" in script and "--memory-limit 7.45GiB" in script


def test_warm_start_has_each_nanny_load_the_code_and_fork_its_worker(tmp_path: Path) -> None:
    default, _ = job_script(tmp_path / "default")
    warm, _ = job_script(tmp_path / "warm", "cluster.warm_start=true")
    assert "--preload-nanny" not in default and "MULTIPROCESSING_METHOD" not in default
    assert "--preload-nanny genre_hpc.infra.warm_nanny" in warm.splitlines()[-1]
    assert "export DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD=fork" in warm.splitlines()


def test_logs_go_under_the_output_dir(tmp_path: Path) -> None:
    script, _ = job_script(tmp_path)
    logs = tmp_path / "logs" / "slurm"
    assert f"#SBATCH -o {logs}/genre-hpc-worker-%J.out" in script
    assert f"#SBATCH -e {logs}/genre-hpc-worker-%J.err" in script
    assert logs.is_dir()


def test_workers_run_this_python_with_node_local_scratch_and_numba_cache(tmp_path: Path) -> None:
    script, _ = job_script(tmp_path, "cluster.job_script_prologue=[module load gcc]")
    lines = script.splitlines()
    command = lines[-1]
    assert command.startswith(f"{sys.executable} -m distributed.cli.dask_worker ")
    assert "--local-directory ${TMPDIR:-/tmp}/genre-hpc-$USER/dask" in command
    # numba's code: primed under output.dir (shared), copied by each worker to node-local scratch
    assert "--preload genre_hpc.infra.jitcache" in command
    spec = make_config("extract", ["cluster=slurm", f"output.dir={tmp_path}"]).cluster
    primed = jitcache.primed_folder(spec.numba_cache_dir)
    assert f'export GENRE_HPC_JIT_PRIMED="{primed}"' in lines
    # and Python's bytecode, unless the user's environment names a prefix of its own
    bytecode = jitcache.bytecode_folder(primed)
    assert f'export PYTHONPYCACHEPREFIX="${{PYTHONPYCACHEPREFIX:-{bytecode}}}"' in lines
    assert 'export GENRE_HPC_JIT_SCRATCH="${TMPDIR:-/tmp}/genre-hpc-$USER/numba"' in lines
    assert not any("NUMBA_CACHE_DIR" in line for line in lines)  # never one folder for all workers
    activate = Path(sys.executable).parent / "activate"
    if activate.is_file():
        assert f"source {activate}" in lines
    # the user's prologue runs after the built-in lines, before the worker
    assert lines[-2] == "module load gcc"
    assert lines.index('export USER="${USER:-$(id -un)}"') < lines.index("module load gcc")


def test_workers_can_be_told_to_ignore_the_primed_caches(tmp_path: Path) -> None:
    script, _ = job_script(tmp_path, "cluster.prime_worker_caches=false")
    lines = script.splitlines()
    assert 'export GENRE_HPC_JIT_PRIMED=""' in lines
    assert not any("PYTHONPYCACHEPREFIX" in line for line in lines)


def _worker_caches() -> tuple[str, str | None, str | None]:
    import os

    return (
        os.environ.get("GENRE_HPC_JIT_PRIMED", ""),
        os.environ.get("PYTHONPYCACHEPREFIX"),
        sys.pycache_prefix,
    )


def test_local_workers_read_the_primed_bytecode_from_their_first_import(tmp_path: Path, numba_cache) -> None:
    seen = {}
    for primed in (True, False):
        cfg = make_config("extract", [f"output.dir={tmp_path}", "cluster.n_workers=1",
                                      f"cluster.prime_worker_caches={str(primed).lower()}"])  # fmt: skip
        with connect(cfg) as client:
            seen[primed] = next(iter(client.run(_worker_caches).values()))
    folder = jitcache.primed_folder(numba_cache)
    bytecode = str(jitcache.bytecode_folder(folder))
    assert seen[True] == (str(folder), bytecode, bytecode)  # set at the worker's start, not later
    assert seen[False] == ("", None, None)


@pytest.mark.parametrize(
    ("walltime", "margin", "stagger", "lifetime"),
    [
        ("02:00:00", "5m", "1m", 7200 - 300 - 60),
        ("1-00:00:00", "10m", "2m", 86400 - 600 - 120),
        ("30", "5m", "1m", 1800 - 360),  # minutes only
        ("00:03:00", "60s", "5s", 180 - 65),
    ],
)
def test_workers_retire_a_margin_before_the_walltime(
    tmp_path: Path, walltime: str, margin: str, stagger: str, lifetime: int
) -> None:
    script, _ = job_script(
        tmp_path,
        f"cluster.walltime={walltime}",
        f"cluster.lifetime_margin={margin}",
        f"cluster.lifetime_stagger={stagger}",
    )
    command = script.splitlines()[-1]
    stagger_s = lifetime_s = None
    match = re.search(r"--lifetime (\d+)s --lifetime-stagger (\d+)s", command)
    assert match, command
    lifetime_s, stagger_s = int(match.group(1)), int(match.group(2))
    assert lifetime_s == lifetime
    # the latest a worker retires is still `margin` before SLURM's kill
    assert lifetime_s + stagger_s <= slurm.walltime_seconds(walltime) - parse_timedelta(margin)


def test_lifetime_can_be_turned_off(tmp_path: Path) -> None:
    script, _ = job_script(tmp_path, "cluster.lifetime_margin=null")
    assert "--lifetime" not in script


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["cluster.walltime=00:05:00"], "cluster.walltime"),  # 5 min - 5 min margin - 1 min stagger
        (["cluster.walltime=soon"], "cluster.walltime"),
        (["cluster.memory=lots"], "cluster.memory"),
        (["cluster.processes=4", "cluster.cores=2"], "cluster.processes"),
        (["cluster.adapt.maximum=4"], "cluster.adapt"),
        (["cluster.adapt.minimum=0", "cluster.adapt.maximum=4"], "cluster.adapt"),
        (["cluster.adapt.minimum=5", "cluster.adapt.maximum=4"], "cluster.adapt"),
        (["cluster.jobs=0"], "cluster.jobs"),
        (["cluster.connect_timeout=0"], "cluster.connect_timeout"),
        (["cluster.lifetime_margin=later"], "cluster.lifetime_margin"),
    ],
)
def test_check_names_the_key_that_cannot_work(overrides: list[str], key: str) -> None:
    cfg = make_config("extract", ["cluster=slurm", *overrides])
    with pytest.raises(ConfigError) as caught:
        config.check(cfg)
    assert caught.value.key == key


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("45", 2700),
        ("10:30", 630),
        ("01:02:03", 3723),
        ("2-03", 183600),
        ("1-00:30", 88200),
        ("1-1:1:1", 90061),
    ],
)
def test_walltime_formats(text: str, seconds: int) -> None:
    assert slurm.walltime_seconds(text) == seconds


def test_tls_by_default_with_private_credentials_deleted_on_close(tmp_path: Path) -> None:
    script, seen = job_script(tmp_path)
    assert seen["address"].startswith("tls://")
    (credentials,) = seen["credentials"]
    assert seen["modes"] == [0o700]  # private to the user
    assert any(name.startswith(".dask-jobqueue.worker.") for name in seen["files"])
    for flag in ("--tls-ca-file", "--tls-cert", "--tls-key"):
        value = re.search(rf"{flag} (\S+)", script).group(1)
        assert Path(value).parent == credentials
    assert seen["left_after_close"] == []


def test_plain_tcp_when_security_is_off(tmp_path: Path) -> None:
    script, seen = job_script(tmp_path, "cluster.security=false")
    assert seen["address"].startswith("tcp://")
    assert "--tls-" not in script and seen["credentials"] == []


def test_interface_is_the_hosts_default_unless_set(tmp_path: Path) -> None:
    script, _ = job_script(tmp_path)
    assert "--interface" not in script
    script, seen = job_script(tmp_path, "cluster.interface=lo")
    assert "--interface lo" in script
    assert "127.0.0.1" in seen["address"]


def test_dashboard_is_off_unless_asked_for(tmp_path: Path) -> None:
    # the scheduler's http server (health, metrics) always runs, on localhost only; the dashboard
    # is off unless asked for. (Whether /status then answers 404 was seen to vary from process
    # to process, so the test reads the scheduler's options instead.)
    out = tmp_path.resolve()
    default = jobqueue.cluster_kwargs(
        make_config("extract", ["cluster=slurm", f"output.dir={out}"]).cluster, out=out, credentials=None
    )
    assert default["scheduler_options"]["dashboard"] is False
    _, seen = job_script(tmp_path)
    assert seen["http_bound_to"] == {"127.0.0.1"}
    _, seen = job_script(tmp_path, "cluster.dashboard_address=127.0.0.1:0")
    assert seen["status_page"] == 200 and seen["http_bound_to"] == {"127.0.0.1"}


def test_job_script_is_one_flag_away(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """print_job_script logs the script before anything is submitted; a refused job fails at once."""
    cfg = make_config(
        "extract",
        [
            "cluster=slurm",
            f"output.dir={tmp_path}",
            "cluster.print_job_script=true",
            "cluster.queue=no-such-queue",
        ],
    )
    caplog.set_level(logging.INFO, logger="genre_hpc")
    with pytest.raises(Exception), connect(cfg):  # noqa: B017 - refused by SLURM, or no sbatch here
        pass
    assert "#SBATCH -p no-such-queue" in caplog.text
    assert "dask_worker" in caplog.text
    assert list(tmp_path.glob(".dask-tls-*")) == []
