"""The driver scripts of every scheduler without its daemons: the directives that size the driver job,
and the one CLI call each makes with the user's overrides (however that scheduler passes them)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ..helpers import REPO

STAGES = ("extract", "run", "train")
# per scheduler: the prefix of its directives, and lines every driver script must hold ({name}: the stage)
DIRECTIVES = {
    "slurm": ("#SBATCH", ["--job-name=genre-hpc-{name}", "--cpus-per-task=1", "--time=04:00:00"]),
    "sge": ("#$", ["-N genre-hpc-{name}", "-S /bin/bash", "-cwd", "-j y", "-notify", "-l h_rt=04:00:00"]),
    "pbs": ("#PBS", ["-N genre-hpc-{name}", "-l walltime=04:00:00", "-j oe"]),
    "lsf": ("#BSUB", ["-J genre-hpc-{name}", "-n 1", "-W 04:00", "-o genre-hpc-{name}.%J.out"]),
    "oar": ("#OAR", ["-n genre-hpc-{name}", "-l /nodes=1/core=1,walltime=4:00:00"]),
}


@pytest.mark.parametrize("name", STAGES)
@pytest.mark.parametrize("kind", sorted(DIRECTIVES))
def test_driver_directives_size_the_driver_job(kind: str, name: str) -> None:
    prefix, expected = DIRECTIVES[kind]
    text = (REPO / kind / f"{name}.sh").read_text()
    directives = [line[len(prefix) :].strip() for line in text.splitlines() if line.startswith(prefix + " ")]
    missing = [line.format(name=name) for line in expected if line.format(name=name) not in directives]
    assert not missing, f"{kind}/{name}.sh lacks {missing}"
    assert os.access(REPO / kind / f"{name}.sh", os.X_OK)  # oarsub -S runs it as a command
    # a memory request for the driver where the scheduler has a portable one
    if kind in ("pbs", "lsf"):
        assert any("mem" in line.lower() or line.startswith("-M ") for line in directives), directives
    # the one CLI call of the stage, on this scheduler
    assert (
        text.rstrip()
        .splitlines()[-1]
        .startswith('exec "${launch[@]}" "$py"' if kind == "slurm" else 'exec "$py"')
    )
    assert f"cluster={kind}" in text.splitlines()[-1]


@pytest.mark.parametrize("name", STAGES)
def test_htcondor_submits_the_driver_on_the_access_point(name: str) -> None:
    lines = (REPO / "htcondor" / f"{name}.sub").read_text().splitlines()
    description = dict(
        (part.strip() for part in line.split("=", 1))
        for line in lines
        if "=" in line and not line.startswith("#")
    )
    assert description["universe"] == "local"  # where condor_submit works, so workers can be submitted
    assert description["executable"] == f"htcondor/{name}.sh"
    assert description["arguments"] == "$(overrides)"
    assert description["getenv"] == "true"
    assert lines[-1] == "queue"


@pytest.mark.parametrize("kind", ["sge", "pbs", "lsf", "oar", "htcondor"])
def test_driver_passes_the_overrides_to_one_cli_call(kind: str) -> None:
    """`bash <kind>/extract.sh ... --cfg job` prints the config the driver job would run with; PBS and
    LSF scripts also read GENRE_HPC_ARGS, since their jobs take no arguments."""
    env = {
        **os.environ,
        "GENRE_HPC_PYTHON": sys.executable,
        "GENRE_HPC_ARGS": "cluster.jobs=7 cluster.cores=3",
    }
    args = ["cluster.cores=3"] if kind in ("pbs", "lsf") else ["cluster.jobs=7", "cluster.cores=3"]
    done = subprocess.run(
        ["bash", f"{kind}/extract.sh", *args, "--cfg", "job", "-p", "cluster"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    shown = done.stdout.splitlines()
    assert f"kind: {kind}" in shown and "jobs: 7" in shown and "cores: 3" in shown, done.stdout
