"""A worker that retires mid-batch (as `--lifetime` makes it before a short walltime): its finished
tracks are kept, the batch resumes on another worker, and the driver logs progress per track."""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from genre_hpc.flow import demo
from genre_hpc.infra.cluster import connect
from genre_hpc.stages import extract

from ..helpers import assert_every_row_once, make_config, run_stage


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    """Two genres of five 30-s clips: two batches of five tracks, ten chunks of one."""
    return demo.generate(
        tmp_path_factory.mktemp("corpus"), n_per_genre=5, seconds=30, genres=("jazz", "rock")
    )


def test_a_batch_cut_by_a_retiring_worker_resumes_elsewhere_keeping_what_it_finished(
    tracks, tmp_path, numba_cache, caplog
):
    out = tmp_path / "out"
    overrides = ["cluster.n_workers=2", "cluster.threads_per_worker=1", "extract.batch_size=5"]
    overrides.append("extract.chunk_seconds=30")  # a chunk per 30-s track
    cfg = make_config("extract", [f"output.dir={out}", f"data.root={tracks[0].parents[1]}", *overrides])
    caplog.set_level(logging.INFO, logger="genre_hpc")
    with connect(cfg) as client, ThreadPoolExecutor(1) as pool:  # its own cluster: a worker goes
        running = pool.submit(run_stage, extract, cfg, client)
        retired, before = _retire_a_worker_mid_batch(client, running)
        record = running.result(timeout=600)
        events = [message for _, message in client.get_events(extract.PROGRESS_TOPIC)]

    assert_every_row_once(out, tracks)
    pieces = Counter(m["piece"] for m in events if "piece" in m)
    assert len(pieces) == 10  # every chunk (one track) reported as it was written
    # what the retired worker finished before it went was kept, not extracted again
    assert before and all(pieces[piece] == 1 for piece in before), (before, pieces)
    resumed = [m for m in events if m.get("resumed")]
    assert len(resumed) == 1 and resumed[0]["worker"] != retired
    assert resumed[0]["resumed"] == record["tracks_resumed"] >= len(before)
    assert record["rows_written"] == record["rows_total"] == 10 * 10  # 30-s clips: 10 segments
    assert record["audio_seconds"] == 10 * 30  # the retired worker's tracks count too
    assert record["parts_total"] == 2  # chunks compacted, then merged: one part per genre
    assert not list((out / "features").rglob("part-*.parquet"))
    log = caplog.text
    assert "resumed on" in log and "already written" in log
    assert "extract: 10/10 tracks, 2/2 batches" in log


def _retire_a_worker_mid_batch(client, running) -> tuple[str, list[str]]:
    """Once a worker has written one or two chunks of its batch, and not all, retire it as
    `--lifetime` does (`Worker.close_gracefully`); return it and the chunks it had reported."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not running.done():
        busy = {w for w, keys in client.processing().items() if any(k.startswith("extract-") for k in keys)}
        reported: dict[str, list[str]] = {}
        for _, message in client.get_events(extract.PROGRESS_TOPIC):
            if "piece" in message:
                reported.setdefault(message["worker"], []).append(message["piece"])
        ready = [w for w in busy if 1 <= len(reported.get(w, [])) < 4]
        if ready:
            client.run(_close_gracefully, workers=ready[:1])
            return ready[0], reported[ready[0]]
        time.sleep(0.05)
    pytest.fail("the run ended (or hung) before a worker could be retired mid-batch")


async def _close_gracefully(dask_worker) -> None:
    """What a worker does when its `--lifetime` is up."""
    dask_worker.loop.add_callback(dask_worker.close_gracefully, reason="test: lifetime")
