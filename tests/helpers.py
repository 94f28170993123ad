"""Helpers the tests share: composed configs, the console command in a fresh process, bad audio files,
and what the tests on a real batch scheduler (SLURM, SGE) read back from a run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hydra import compose, initialize_config_module

from genre_hpc.core.layout import OutputLayout

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SR = 22050
# On CI a scheduler the tests need must be up: its tests fail instead of skipping.
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def make_config(stage: str, overrides: list[str]):
    with initialize_config_module(config_module="genre_hpc.conf", version_base="1.3"):
        return compose(config_name=stage, overrides=overrides)


def layout(cfg) -> OutputLayout:
    """The output layout a stage gets from the CLI for `cfg`."""
    return OutputLayout.of(cfg)


def run_cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """The console command as a user runs it, in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", "genre_hpc", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"genre-hpc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def write_bad_files(root: Path) -> dict[str, str]:
    """One file of each kind of bad input under root/bad/; returns name -> expected reason word."""
    folder = root / "bad"
    folder.mkdir(parents=True, exist_ok=True)
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(SR * 6) / SR)).astype(np.float32)
    sf.write(folder / "good.wav", tone, SR, subtype="PCM_16")
    data = (folder / "good.wav").read_bytes()
    (folder / "good.wav").unlink()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 3])
    sf.write(folder / "source.flac", tone, SR)
    flac = bytearray((folder / "source.flac").read_bytes())
    (folder / "source.flac").unlink()
    middle = len(flac) // 2
    flac[middle : middle + 2000] = bytes(b ^ 0xFF for b in flac[middle : middle + 2000])
    (folder / "corrupt.flac").write_bytes(bytes(flac))
    (folder / "zero.wav").write_bytes(b"")
    (folder / "text.wav").write_text("these are words, not samples\n" * 20)
    sf.write(folder / "silent.wav", np.zeros(SR * 6, np.float32), SR, subtype="PCM_16")
    sf.write(folder / "tiny.wav", tone[: SR // 10], SR, subtype="PCM_16")
    return {
        "truncated.wav": "truncated",
        "corrupt.flac": "corrupt",
        "zero.wav": "empty file",
        "text.wav": "not a recognised audio format",
        "silent.wav": "silent",
        "tiny.wav": "too short",
    }


def run_stage(module, cfg, client=None):
    """A stage as the CLI runs it: `run(cfg, client, output layout)`."""
    return module.run(cfg, client, OutputLayout.of(cfg))


def require_scheduler(problem: str | None, name: str, start: str) -> None:
    """Skip a test that needs scheduler `name` when `problem` says it is not usable; fail on CI."""
    if problem and CI:
        pytest.fail(f"CI=true but {name} is not usable: {problem} (.ci/run starts it with {start})")
    if problem:
        pytest.skip(f"{problem}; start one with `bash {start} start`")


def scheduler_problem(
    name: str, commands: tuple[str, str], probe: list[str], works: Callable[[str], bool], empty: str
) -> str | None:
    """Why a scheduler is not usable here (its `commands` missing, `probe` failing, or its output
    not what `works` expects; `empty` names what is missing then), or None."""
    if any(shutil.which(command) is None for command in commands):
        return f"{name}'s commands ({', '.join(commands)}) are not installed"
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return f"{probe[0]} does not answer within 20 s"
    if done.returncode != 0 or not works(done.stdout):
        return f"{probe[0]} fails: {done.stderr.strip() or empty}"
    return None


def job_names(cancel: list[str]) -> Iterator[Callable[[str], str]]:
    """Unique job names for one test (a fixture's body); whatever still runs under them is removed
    afterwards with `cancel` + the name."""
    tag = f"ghpc-test-{uuid.uuid4().hex[:8]}"
    made: list[str] = []

    def name(role: str) -> str:
        made.append(f"{tag}-{role}")
        return made[-1]

    yield name
    for job_name in made:
        subprocess.run([*cancel, job_name], capture_output=True)


# Worker jobs that end at once without starting a worker, as a wrong module or venv makes them
FAILING_PROLOGUE = "cluster.job_script_prologue=['echo module-not-found: gcc/99 >&2','exit 3']"


def ended_without_connecting(cfg) -> str:
    """connect(cfg) to worker jobs that end without connecting (FAILING_PROLOGUE, connect_timeout
    600 s): it must stop long before the timeout, saying so. Its message, for more checks."""
    from genre_hpc.core.errors import ClusterError
    from genre_hpc.infra.cluster import connect

    started = time.perf_counter()
    with pytest.raises(ClusterError) as raised, connect(cfg):
        pass
    message = str(raised.value)
    assert time.perf_counter() - started < 120, message
    assert message.startswith("every worker job ended without a Dask worker connecting"), message
    return message


def script_env() -> dict[str, str]:
    """The environment of a driver script: it runs the test's own interpreter, and conftest's
    GENRE_HPC_NUMBA_CACHE is inherited, so numba's code is primed once per session, not per output.dir."""
    return {**os.environ, "GENRE_HPC_PYTHON": sys.executable}


def dataset_rows(out: Path) -> pd.DataFrame:
    """The dataset in a fixed order; float32 features agree to rounding across BLAS thread counts."""
    frame = pd.read_parquet(out / "features")
    frame["label"] = frame["label"].astype(str)
    frame = frame[sorted(frame.columns)]
    return frame.sort_values(["track_id", "segment"]).reset_index(drop=True)


def extract_stage(out: Path) -> dict:
    """What manifest.json records of the extract stage in `out`."""
    return json.loads((out / "manifest.json").read_text())["stages"]["extract"]


def assert_every_row_once(out: Path, tracks: list[Path]) -> None:
    """Every track of equal-length clips has all its segments exactly once (after a lost worker)."""
    assert extract_stage(out)["tracks_processed"] == len(tracks)
    rows = dataset_rows(out)
    assert not rows.duplicated(["track_id", "segment"]).any()
    per_track = rows.groupby("track_id").segment.agg(["count", "min", "max"])
    assert len(per_track) == len(tracks)
    assert (per_track["min"] == 0).all() and (per_track["count"] == per_track["max"] + 1).all()
    assert per_track["count"].nunique() == 1  # equal clips, equal segment counts


# Worker jobs that live 30-40 s (a 1-minute walltime, retired 20 +- 5 s before it), replaced as they
# go: shorter than a batch of one genre of lifetime_corpus, as issue 18 measured with long tracks.
SHORT_LIVES = [
    "cluster.walltime=00:01:00",
    "cluster.lifetime_margin=20s",
    "cluster.lifetime_stagger=5s",
    "cluster.adapt.minimum=2",
    "cluster.adapt.maximum=2",
]


def logged_tracks(log: Path) -> int:
    """The last "extract: N/M tracks" count a driver's log shows (0 before the first)."""
    text = log.read_text() if log.is_file() else ""
    done = re.findall(r"extract: (\d+)/\d+ tracks", text)
    return int(done[-1]) if done else 0


class StallDeadline:
    """A deadline `seconds` after the last progress (`progress()` grew), not after the start: a run
    of short-lived worker jobs takes as long as the machine's load makes each job's start-up (a
    fixed 900-s deadline failed a run that was at 181 of 196 tracks and finishing: CI beside a
    probe on 2 cores), but a run that stops progressing still fails, `seconds` after its last
    track."""

    def __init__(self, seconds: float, progress: Callable[[], int]) -> None:
        self.seconds = seconds
        self.progress = progress
        self.best = -1
        self.until = 0.0

    def expired(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        count = self.progress()
        if count > self.best:
            self.best, self.until = count, now + self.seconds
        return now > self.until

    def __str__(self) -> str:
        return f"{self.seconds:.0f} s without progress (last at {self.best})"


def wait_for_job(
    job_id: str,
    *,
    finished: Callable[[str], bool],
    cancel: list[str],
    timeout: float | StallDeadline = 300,
    on_poll: Callable[[], None] | None = None,
    log: Path | None = None,
) -> None:
    """Until `finished(job_id)` (it left the scheduler's queue), or cancel it (`cancel` + its id) and
    fail at `timeout`: seconds from now, or a StallDeadline. The failure quotes the tail of the
    job's `log`, where the reason is: a job whose every start waited 60 s on a stale lock said so
    only there, and the failure without it read "300 s without progress (last at 0)"."""
    stall = timeout if isinstance(timeout, StallDeadline) else None
    deadline = time.monotonic() + (0 if stall else float(timeout))
    while not finished(job_id):
        if stall.expired() if stall else time.monotonic() > deadline:
            subprocess.run([*cancel, job_id], capture_output=True)
            tail = log.read_text()[-3000:] if log and log.is_file() else "(no log)"
            pytest.fail(f"job {job_id} did not finish: {stall or f'{timeout} s'}\n{log}:\n{tail}")
        if on_poll:
            on_poll()
        time.sleep(0.25)


def assert_cut_batches_resumed_with_progress(log: str, tracks: int) -> None:
    """The driver's log: some batch was cut by its worker's lifetime and resumed, and progress was
    logged as tracks finished, before the run's end."""
    assert re.search(r"extract: task \w+ resumed on \S+: [1-9]\d* of its \d+ tracks were already", log), log[
        -4000:
    ]
    done = [int(n) for n in re.findall(rf"extract: (\d+)/{tracks} tracks", log)]
    assert done and done[-1] == tracks, log[-4000:]
    assert any(0 < n < tracks for n in done), done  # lines while tracks finish, not only at the end


def assert_worker_log_ended_cleanly(log: Path) -> None:
    """A worker job's log that ends with its worker's own end, and holds no traceback or error."""
    text = log.read_text()
    assert "Traceback" not in text and " ERROR " not in text, text[-3000:]
    assert "End worker" in text.splitlines()[-1], text[-3000:]
