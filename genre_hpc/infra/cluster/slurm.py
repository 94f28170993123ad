"""What only SLURM needs: its time format, `sbatch --test-only` of a worker job, its jobs' states and
which of them are over."""

from __future__ import annotations

import re
import subprocess
import tempfile

from genre_hpc.core.errors import ClusterError, ConfigError


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


def preflight(job_script: str, keys: str) -> None:
    """`sbatch --test-only` the worker script: SLURM names a wrong queue, account or size at once."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh") as script:
        script.write(job_script)
        script.flush()
        done = subprocess.run(["sbatch", "--test-only", script.name], capture_output=True, text=True)
    if done.returncode != 0:
        message = " ".join((done.stderr or done.stdout).split())
        raise ClusterError(f"SLURM refuses the worker job ({message}): check {keys}")


# What squeue calls a job that is over (`squeue -t all` lists them for MinJobAge, then forgets them).
# Not REVOKED: that is the sibling record of a federated job that runs on another cluster.
ENDED = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
    "PREEMPTED", "SPECIAL_EXIT", "TIMEOUT",
})  # fmt: skip


def states(ids: list[str]) -> dict[str, str] | None:
    """{id: "STATE reason"} of the SLURM jobs squeue knows (ended ones too, for MinJobAge); None when
    squeue cannot be asked."""
    try:
        done = subprocess.run(
            ["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i %T %r"],
            capture_output=True, text=True, errors="replace", timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        # ids it does not know are an error to squeue; anything else (slurmctld busy or down) says nothing
        return {} if "Invalid job id" in done.stderr else None
    rows = (line.split(maxsplit=1) for line in done.stdout.splitlines() if line.strip())
    return {row[0]: " ".join(row[1:]) for row in rows}


def ended(state: str | None, listed_before: bool) -> bool:
    """Whether a job in `state` will never run a worker. A job squeue does not list (None) is over
    only if it listed it before: one it never listed may belong to another cluster (`--clusters`)
    or not be visible yet."""
    if state is None:
        return listed_before
    return bool(state.split()) and state.split()[0] in ENDED
