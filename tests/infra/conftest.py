"""Corpora and the local dry run that the tests on a real scheduler (SLURM, SGE) compare against."""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from genre_hpc.flow import demo
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.track import batch_features

from ..helpers import REPO, dataset_rows, extract_stage, script_env


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    demo.generate(root, n_per_genre=2, seconds=6)
    return root


@pytest.fixture(scope="session")
def long_corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Enough audio for a run that lasts while a test cancels a job mid-run."""
    return demo.generate(tmp_path_factory.mktemp("long-corpus"), n_per_genre=4, seconds=15)


@pytest.fixture(scope="session")
def lifetime_corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Work that outlasts a worker job of `SHORT_LIVES` on this machine: two clips of 300 s, one
    timed here, and as many hard links to each as make a batch of one genre about 60 s of one
    core's work, 1.5 times the longest worker life (40 s: the walltime less the margin, the latest
    retirement the stagger allows), so a batch is always cut (a fixed 24 tracks fitted in a
    worker's life when the machine was idle). Each link is extracted as a track of its own. (90 s
    made each batch last five worker lives on SGE, 6-8 min for the test, where two
    suffice to show a cut batch resumed.)

    Timed in CPU seconds on one thread, not wall seconds: timed under a load that then went away
    (other jobs on the machine), a wall-clock calibration sized batches that SGE's workers finished
    in 28 s, inside their 30-40 s lives, and the test failed. A worker job has one core, so a
    batch's wall time is at least its CPU time, whatever the load."""
    root = tmp_path_factory.mktemp("lifetime-corpus")
    clips = demo.generate(root, n_per_genre=1, seconds=300, genres=("jazz", "rock"))
    one = [(clips[0].name, str(clips[0]), "jazz", 0)]
    batch_features(one, params=FeatureParams(), block_segments=10, stage="test")  # numba, once
    with threadpool_limits(1):  # as a worker's BLAS: Dask's nanny starts it with one thread
        started = time.process_time()
        batch_features(one, params=FeatureParams(), block_segments=10, stage="test")
        per_genre = max(8, math.ceil(60 / (time.process_time() - started)))
    tracks = []
    for clip in clips:
        for i in range(per_genre):
            track = clip.with_name(f"{clip.parent.name}.{i:05d}.wav")
            if not track.exists():
                track.hardlink_to(clip)
            tracks.append(track)
    return tracks


@pytest.fixture(scope="session")
def local_rows(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The dry run: the sbatch script run by bash with cluster=local, no scheduler involved."""
    out = tmp_path_factory.mktemp("local")
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", "slurm/extract.sh", "cluster=local", f"output.dir={out}", f"data.root={corpus}"],
        cwd=REPO,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seconds = time.perf_counter() - started
    print(f"\nlocal extraction: {seconds:.1f} s wall, stage {extract_stage(out)['wall_seconds']:.1f} s")
    return dataset_rows(out)
