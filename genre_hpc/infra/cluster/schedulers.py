"""The batch schedulers dask-jobqueue drives, as one table: what differs between them, and nothing else.

`cluster=slurm|sge|pbs|lsf|htcondor|oar` share their keys (conf/cluster/base/jobqueue.yaml);
jobqueue.py turns them into one dask-jobqueue class through the row of the scheduler named by
`cluster.kind`. A row says which class, how its walltime is written, which keyword the shared
`account` key becomes, which of the scheduler's own keys pass through, and the commands that
check a worker job before submitting and report its state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from genre_hpc.core.errors import ConfigError
from genre_hpc.infra.cluster import sge, slurm


def clock_seconds(walltime: str, *, fields: str) -> int:
    """Seconds in a colon-separated time whose last field is `fields[-1]` ("hms": [[H:]M:]S;
    "hm": [H:]M) or, with fields="h:ms" (OAR), whose first field is always hours (H[:M[:S]])."""
    text = str(walltime).strip()
    if not re.fullmatch(r"\d+(:\d+){0,2}", text):
        raise ConfigError("cluster.walltime", f"{walltime!r} is not a time", "e.g. 02:00:00")
    values = [int(v) for v in text.split(":")]
    units = {"h": 3600, "m": 60, "s": 1}
    if fields == "h:ms":  # OAR: 1:30 is an hour and a half
        names = "hms"[: len(values)]
    else:
        if len(values) > len(fields):
            raise ConfigError("cluster.walltime", f"{walltime!r} has too many fields", f"use {fields}")
        names = fields[-len(values) :]
    return sum(units[name] * value for name, value in zip(names, values, strict=True))


@dataclass(frozen=True)
class Scheduler:
    """One batch system: what dask-jobqueue calls it and what genre-hpc must know of it."""

    cls: str  # the dask_jobqueue class
    submit: str  # the command that submits a worker job (must be on PATH)
    walltime_seconds: Callable[[str], int]  # its walltime format
    # the keyword that `cluster.account` becomes; None: the scheduler has no such keyword
    account: str | None
    # keys of this scheduler's own YAML, passed to the class under the same name
    own_keys: tuple[str, ...] = ()
    # header lines every worker job needs here (before the user's job_extra_directives); {log_directory}
    # and {job_name} are filled in
    directives: tuple[str, ...] = ()
    # raise ClusterError naming the keys to check if the scheduler refuses the worker job script
    preflight: Callable[[str, str], None] | None = None
    # {id: "STATE reason"} of worker job ids the scheduler lists (None: it cannot be asked), and
    # whether a state (None: not listed; listed before or not) means the job is over: the driver
    # stops waiting for workers once every job is over, and says why
    states: Callable[[list[str]], dict[str, str] | None] | None = None
    ended: Callable[[str | None, bool], bool] | None = None
    # signals the scheduler sends before it kills a job (besides SIGTERM): the driver then ends
    # cleanly, deleting its worker jobs
    notice_signals: tuple[str, ...] = ()
    # the job runs its prologue through /bin/sh -c (HTCondor): no `source`, no $(...) (a submit macro)
    posix_prologue: bool = False


SCHEDULERS: dict[str, Scheduler] = {
    "slurm": Scheduler(
        "SLURMCluster", "sbatch", slurm.walltime_seconds, account="account",
        preflight=slurm.preflight, states=slurm.states, ended=slurm.ended,
    ),
    # SGE's queue shell, not the #! line, runs a job script (posix_compliant): ask for bash
    "sge": Scheduler(
        "SGECluster", "qsub", lambda w: clock_seconds(w, fields="hms"), account="project",
        own_keys=("resource_spec",), directives=("-S /bin/bash",),
        preflight=sge.preflight, states=sge.states, ended=sge.ended,
        notice_signals=("SIGUSR2",),  # qsub -notify
    ),
    "pbs": Scheduler(
        "PBSCluster", "qsub", lambda w: clock_seconds(w, fields="hms"), account="account",
        own_keys=("resource_spec",),
    ),
    "lsf": Scheduler(
        "LSFCluster", "bsub", lambda w: clock_seconds(w, fields="hm"), account="project",
        own_keys=("lsf_units", "use_stdin"),
    ),
    # HTCondor has no walltime or account keyword: both become submit-description commands
    "htcondor": Scheduler(
        "HTCondorCluster", "condor_submit", lambda w: clock_seconds(w, fields="hms"), account=None,
        own_keys=("disk",), posix_prologue=True,
    ),
    "oar": Scheduler(
        "OARCluster", "oarsub", lambda w: clock_seconds(w, fields="h:ms"), account="project",
        own_keys=("resource_spec", "memory_per_core_property_name"),
        # dask-jobqueue writes no log lines for OAR, whose default is OAR.<id>.stdout in the cwd
        directives=("-O {log_directory}/{job_name}.%jobid%.out", "-E {log_directory}/{job_name}.%jobid%.err"),
    ),
}  # fmt: skip
KINDS = tuple(SCHEDULERS)
