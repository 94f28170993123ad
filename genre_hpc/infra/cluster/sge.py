"""What only Grid Engine needs: `qsub -w v` of a worker job, and its jobs' states from qstat."""

from __future__ import annotations

import subprocess
import tempfile

from genre_hpc.core.errors import ClusterError


def preflight(job_script: str, keys: str) -> None:
    """`qsub -w v` validates the worker script against the cell without submitting it: an unknown
    queue, project or resource is refused here, at once, rather than pending for ever."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh") as script:
        script.write(job_script)
        script.flush()
        done = subprocess.run(["qsub", "-w", "v", script.name], capture_output=True, text=True)
    if done.returncode != 0:
        message = " ".join((done.stderr or done.stdout).replace("Exiting.", "").split())
        raise ClusterError(f"Grid Engine refuses the worker job ({message}): check {keys}")


def states(ids: list[str]) -> dict[str, str] | None:
    """{id: state} of this user's Grid Engine jobs that qstat lists (qw pending, r running, Eqw in
    error); None when qstat cannot be asked."""
    try:
        done = subprocess.run(["qstat"], capture_output=True, text=True, errors="replace", timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    wanted = set(ids)
    return {
        fields[0]: fields[4]
        for fields in (line.split() for line in done.stdout.splitlines()[2:])
        if len(fields) > 4 and fields[0] in wanted
    }


def ended(state: str | None, listed_before: bool) -> bool:
    """Whether a job in `state` will never run a worker: gone from qstat's list (qsub returns once
    the job is registered, and a finished job leaves the list at once), or held in error (E), which
    only an administrator's `qmod -cj` releases."""
    return state is None or "E" in state
