"""What stages ask of their client: batch sizes, and numba warmed up without two compilers at once."""

import pandas as pd
import pytest

from genre_hpc.infra.tasks import MAX_BATCH, batch_size, batches, warm_workers


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


def _mark(folder):
    """A warm-up stand-in: records which process ran it, and when."""
    import os
    import time

    (folder / f"{time.monotonic_ns()}-{os.getpid()}").touch()


def test_workers_are_warmed_after_the_driver_never_all_at_once(client, tmp_path):
    import functools
    import os

    warm_workers(client, functools.partial(_mark, tmp_path))
    runs = sorted(tmp_path.iterdir(), key=lambda p: int(p.name.split("-")[0]))
    pids = [int(p.name.split("-")[1]) for p in runs]
    workers = set(client.run(os.getpid).values())
    assert pids[0] == os.getpid()  # the driver compiles first
    assert set(pids[1:]) == workers and len(pids) == 1 + len(workers)
