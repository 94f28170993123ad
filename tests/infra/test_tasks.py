"""What stages ask of their client: batch sizes, and numba code loaded by every worker from its own copy."""

import time
from pathlib import Path

import pandas as pd
import pytest

from genre_hpc.infra.tasks import MAX_BATCH, batch_size, batches, chunks, still_wanted, warm_workers


@pytest.mark.parametrize(
    ("items", "slots", "size"),
    [(0, 2, 1), (1, 2, 1), (50, 2, 7), (100, 2, 13), (10_000, 2, MAX_BATCH), (10_000, 100, 25)],
)
def test_about_four_batches_per_slot_of_one_to_max_items(items, slots, size):
    assert batch_size(items, slots) == size


def test_batches_cover_the_table_in_order():
    table = pd.DataFrame({"track_id": [f"t{i}" for i in range(10)]})
    cut = batches(table, 4)
    assert [len(b) for b in cut] == [4, 4, 2]
    assert pd.concat(cut).track_id.tolist() == table.track_id.tolist()


@pytest.mark.parametrize(
    ("seconds", "sizes"),
    [
        ([], []),
        ([30.0] * 10, [4, 4, 2]),  # GTZAN clips: four to a chunk of 120 s
        ([3.0] * 100, [40, 40, 20]),
        ([240.0, 240.0, 60.0, 30.0, 30.0], [1, 1, 3]),  # a long track alone, not cut
        ([30.0, float("nan"), 30.0], [1, 1, 1]),  # an unknown length alone
    ],
)
def test_chunks_hold_up_to_the_budget_of_seconds_and_at_least_one_item(seconds, sizes):
    assert chunks(seconds, 120) == sizes


def _jit_state() -> tuple[int, str, list[str], str]:
    """A worker's pid, its numba cache folder, the files in it, and where numba really caches our code."""
    import os
    from pathlib import Path

    from genre_hpc.flow import features

    folder = os.environ["NUMBA_CACHE_DIR"]
    files = sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*.nb[ic]"))
    return os.getpid(), folder, files, features._spectral_shape._cache._cache_path


def test_each_worker_loads_numba_code_from_its_own_copy_of_the_primed_cache(client, numba_cache):
    import os
    from pathlib import Path

    from genre_hpc.infra import jitcache

    primed = numba_cache / jitcache.key()
    primed_files = sorted(str(p.relative_to(primed)) for p in primed.rglob("*.nb[ic]"))
    assert primed_files, "the cluster was started without a primed cache"
    warm_workers(client, lambda: None)
    states = list(client.run(_jit_state).values())
    folders = {folder for _, folder, _, _ in states}
    assert len(folders) == len(states) == 2  # no two workers write one folder
    assert os.environ["NUMBA_CACHE_DIR"] not in folders and str(primed) not in folders
    for _, folder, files, used in states:
        assert Path(folder).parent == numba_cache / "proc"
        assert set(primed_files) <= set(files)  # a full copy: the workers load, never compile
        assert Path(used).is_relative_to(folder)  # and numba itself caches there


def _run_until_unwanted(marker: str) -> None:
    """A task that says whether it was wanted when it started, then runs until it is not."""
    Path(marker + ".started").write_text("wanted" if still_wanted() else "unwanted")
    deadline = time.monotonic() + 60
    while still_wanted() and time.monotonic() < deadline:
        time.sleep(0.05)
    Path(marker).write_text("timeout" if still_wanted() else "unwanted")


def test_a_task_learns_it_is_no_longer_wanted_once_cancelled_though_its_thread_goes_on(client, tmp_path):
    assert still_wanted()  # outside a worker: a task function called directly
    marker = tmp_path / "marker"
    future = client.submit(_run_until_unwanted, str(marker), pure=False)
    deadline = time.monotonic() + 60
    while not Path(f"{marker}.started").exists():
        assert time.monotonic() < deadline, future
        time.sleep(0.05)
    assert Path(f"{marker}.started").read_text() == "wanted"
    client.cancel(future)  # as a retiring worker cancels what it runs
    while not marker.exists():
        assert time.monotonic() < deadline, "the cancelled task never noticed"
        time.sleep(0.05)
    assert marker.read_text() == "unwanted"
