"""Every scheduler of cluster/<kind>.yaml without its daemons: the worker job script dask-jobqueue renders
from the config (what a site admin reads), the time formats, the checks, `--cfg job`."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from genre_hpc.core.errors import ConfigError
from genre_hpc.infra import config, jitcache
from genre_hpc.infra.cluster import jobqueue
from genre_hpc.infra.cluster.schedulers import SCHEDULERS, clock_seconds

from ..helpers import make_config, run_cli

SITE = ["cluster.cores=8", "cluster.processes=2", "cluster.memory=16GB", "cluster.queue=compute",
        "cluster.account=myproj"]  # fmt: skip
# per scheduler: its walltime of two hours, an extra directive, and the header lines a user needs
EXPECTED = {
    "sge": (
        "02:00:00", "-pe smp 8",
        ["#$ -q compute", "#$ -P myproj", "#$ -l h_rt=02:00:00", "#$ -S /bin/bash", "#$ -pe smp 8",
         "#$ -l mem_free=16G", "#$ -N genre-hpc-worker"],
    ),
    "pbs": (
        "02:00:00", "-l place=scatter",
        ["#PBS -q compute", "#PBS -A myproj", "#PBS -l walltime=02:00:00",
         "#PBS -l select=1:ncpus=8:mem=15GB", "#PBS -l place=scatter", "#PBS -N genre-hpc-worker"],
    ),
    "lsf": (
        "02:00", '-R "select[avx2]"',
        ["#BSUB -q compute", '#BSUB -P "myproj"', "#BSUB -W 02:00", "#BSUB -n 8", "#BSUB -M 16000",
         '#BSUB -R "span[hosts=1]"', '#BSUB -R "select[avx2]"', "#BSUB -J genre-hpc-worker"],
    ),
    "htcondor": (
        "02:00:00", "requirements = (OpSysMajorVer == 9)",
        ["MY.DaskWorkerCores = 8", "RequestCpus = MY.DaskWorkerCores", "MY.DaskWorkerMemory = 16000000000",
         "allowed_execute_duration = 7200", "accounting_group = myproj",
         "requirements = (OpSysMajorVer == 9)", "MY.DaskWorkerDisk = 1000000000"],
    ),
    "oar": (
        "2:00:00", "-t besteffort",
        ["#OAR -q compute", "#OAR --project myproj", "#OAR -l /nodes=1/core=8,walltime=2:00:00",
         "#OAR -t besteffort", "#OAR -n genre-hpc-worker"],
    ),
}  # fmt: skip


def render(tmp_path: Path, kind: str, *overrides: str) -> str:
    cfg = make_config("extract", [f"cluster={kind}", f"output.dir={tmp_path}", *overrides])
    config.check(cfg)
    with jobqueue.jobqueue_cluster(cfg) as built:
        return built.job_script()


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_worker_job_script_has_what_a_site_needs(tmp_path: Path, kind: str) -> None:
    walltime, extra, lines = EXPECTED[kind]
    overrides = [*SITE, f"cluster.walltime={walltime}", f"cluster.job_extra_directives=['{extra}']"]
    if kind == "sge":
        overrides.append("cluster.resource_spec='mem_free=16G'")
    if kind == "lsf":
        overrides.append("cluster.lsf_units=mb")
    script = render(tmp_path, kind, *overrides)
    missing = [line for line in lines if line not in script.splitlines()]
    assert not missing, f"{missing} not in:\n{script}"
    # the worker: this Python, 2 processes of 4 threads and 8 GB, retiring 5 min +- 1 min before 2 h
    assert f"{sys.executable} -m distributed.cli.dask_worker" in script
    assert "--nworkers 2" in script and "--nthreads 4" in script and "--memory-limit 7.45GiB" in script
    assert "--lifetime 6840s --lifetime-stagger 60s" in script
    # TLS with the run's temporary credentials, which are gone once the cluster is closed
    assert re.search(r"--tls-key \S+/\.dask-tls-\w+/", script)
    assert list(tmp_path.glob(".dask-tls-*")) == []
    # the environment set-up: the primed numba cache and bytecode, node-local scratch, the venv
    # (HTCondor's Arguments string doubles each quote inside it)
    script = script.replace('""', '"') if kind == "htcondor" else script
    spec = make_config("extract", [f"cluster={kind}", f"output.dir={tmp_path}"]).cluster
    primed = jitcache.primed_folder(spec.numba_cache_dir)
    assert f'export GENRE_HPC_JIT_PRIMED="{primed}"' in script
    assert f"PYTHONPYCACHEPREFIX:-{jitcache.bytecode_folder(primed)}" in script
    assert "--preload genre_hpc.infra.jitcache" in script
    assert "--local-directory ${TMPDIR:-/tmp}/genre-hpc-$USER/dask" in script
    activate = Path(sys.executable).parent / "activate"
    if activate.is_file():
        assert f"{'. ' if kind == 'htcondor' else 'source '}{activate}" in script


def test_htcondor_prologue_has_no_submit_macros(tmp_path: Path) -> None:
    """condor_submit expands $(...) itself; the prologue runs in /bin/sh -c, where `source` is unknown."""
    script = render(tmp_path, "htcondor")
    arguments = next(line for line in script.splitlines() if line.startswith("Arguments"))
    assert "$(" not in arguments.replace("$(ClusterId)", "").replace("$(ProcId)", "")
    assert "source " not in arguments and "`id -un`" in arguments


@pytest.mark.parametrize("kind", sorted(SCHEDULERS))
def test_logs_go_under_the_output_dir_named_after_the_scheduler(tmp_path: Path, kind: str) -> None:
    script = render(tmp_path, kind)
    assert str(tmp_path / "logs" / kind) in script
    assert (tmp_path / "logs" / kind).is_dir()


@pytest.mark.parametrize(
    ("kind", "walltime", "seconds"),
    [
        ("sge", "02:00:00", 7200), ("sge", "5400", 5400), ("sge", "90:00", 5400),
        ("pbs", "01:30:00", 5400), ("pbs", "5400", 5400),
        ("lsf", "01:30", 5400), ("lsf", "90", 5400),  # LSF: [HH:]MM
        ("oar", "1:30", 5400), ("oar", "2", 7200), ("oar", "1:30:00", 5400),  # OAR: H[:MM[:SS]]
        ("htcondor", "01:30:00", 5400),
        ("slurm", "90", 5400), ("slurm", "1-00:00:00", 86400),
    ],
)  # fmt: skip
def test_each_scheduler_reads_its_own_time_format(kind: str, walltime: str, seconds: int) -> None:
    assert SCHEDULERS[kind].walltime_seconds(walltime) == seconds


@pytest.mark.parametrize(
    ("kind", "overrides", "key"),
    [
        ("sge", ["cluster.walltime=00:05:00"], "cluster.walltime"),  # 5 min - 5 min margin - 1 min
        ("lsf", ["cluster.walltime=01:00:00"], "cluster.walltime"),  # LSF has no seconds field
        ("pbs", ["cluster.walltime=soon"], "cluster.walltime"),
        ("oar", ["cluster.memory=lots"], "cluster.memory"),
        ("htcondor", ["cluster.disk=big"], "cluster.disk"),
        ("htcondor", ["cluster.job_extra_directives=['+Flag']"], "cluster.job_extra_directives"),
        ("sge", ["cluster.processes=4", "cluster.cores=2"], "cluster.processes"),
        ("pbs", ["cluster.jobs=0"], "cluster.jobs"),
        ("lsf", ["cluster.adapt.maximum=4"], "cluster.adapt"),
        ("oar", ["cluster.lifetime_margin=later"], "cluster.lifetime_margin"),
    ],
)
def test_check_names_the_key_that_cannot_work(kind: str, overrides: list[str], key: str) -> None:
    cfg = make_config("extract", [f"cluster={kind}", *overrides])
    with pytest.raises(ConfigError) as caught:
        config.check(cfg)
    assert caught.value.key == key
    assert "\n" not in str(caught.value)


def test_unknown_kind_lists_every_scheduler() -> None:
    cfg = make_config("extract", ["cluster=sge", "cluster.kind=moab"])
    with pytest.raises(ConfigError, match="local | slurm | sge | pbs | lsf | htcondor | oar"):
        config.check(cfg)


def test_clock_refuses_what_is_not_a_time() -> None:
    with pytest.raises(ConfigError, match="cluster.walltime"):
        clock_seconds("1-00:00:00", fields="hms")


@pytest.mark.parametrize("kind", ["pbs", "lsf", "htcondor", "oar"])
def test_cfg_job_prints_the_scheduler_config(kind: str) -> None:
    shown = run_cli("run", f"cluster={kind}", "--cfg", "job", "-p", "cluster").stdout
    assert f"kind: {kind}" in shown
    for key in ("jobs: 2", "cores: 1", "memory: 2GB", "queue: null", "account: null", "security: true"):
        assert key in shown, shown
    assert {"lsf": "walltime: 01:00", "htcondor": "disk: 1GB"}.get(kind, "walltime: 01:00:00") in shown


def test_a_worker_job_is_over_only_when_its_scheduler_can_say_so() -> None:
    # SLURM lists ended jobs for MinJobAge (squeue -t all); a job it never listed may run on another
    # cluster (--clusters) or not be visible yet, so only one it listed before is over when unlisted
    over = SCHEDULERS["slurm"].ended
    assert not over("PENDING BeginTime", False) and not over("RUNNING None", True)
    assert over("FAILED NonZeroExitCode", False) and over("TIMEOUT TimeLimit", True)
    assert not over("REVOKED None", True)  # a federated sibling: the job runs elsewhere
    assert not over(None, False) and over(None, True)
    assert not over("", True)
    # Grid Engine lists a job from qsub's return until it ends; Eqw never runs without an admin
    over = SCHEDULERS["sge"].ended
    assert not over("qw", False) and not over("r", True)
    assert over("Eqw", True) and over(None, False)
    assert all(SCHEDULERS[kind].ended is None for kind in ("pbs", "lsf", "htcondor", "oar"))


def test_a_job_s_log_tail_quotes_its_own_files_errors_first(tmp_path: Path) -> None:
    (tmp_path / "genre-hpc-worker-12.out").write_text("starting\n")
    (tmp_path / "genre-hpc-worker-12.err").write_text("a\n\nmodule: command not found\n\n")
    (tmp_path / "genre-hpc-worker-123.err").write_text("another job\n")
    (tmp_path / "run12-5.err").write_text("job 5 of a job named run12\n")
    (tmp_path / "genre-hpc-worker.o12").write_text("Grid Engine's log\n")
    tail = jobqueue._log_tail(tmp_path, "12", lines=2)
    assert tail == (
        "genre-hpc-worker-12.err: a | module: command not found / "
        "genre-hpc-worker-12.out: starting / genre-hpc-worker.o12: Grid Engine's log"
    )
    assert jobqueue._log_tail(tmp_path, "5") == "run12-5.err: job 5 of a job named run12"
    assert jobqueue._log_tail(tmp_path / "missing", "12").startswith("none yet in ")
