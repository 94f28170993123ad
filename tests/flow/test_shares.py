"""Each worker's share of the training rows: cut in the data's order, read and held on the worker
xgboost.dask ranks for it, so the same data and worker count give the same model, byte for byte."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from distributed import wait
from xgboost.dask import DaskXGBClassifier

from genre_hpc.flow import shares

PARTS = [f"label=g{i % 3}/part-{i:02d}.parquet" for i in range(9)]
LENGTHS = [40, 10, 10, 60, 5, 5, 30, 20, 20]


class Reader:
    """Rows of the named parts, the same every time (as the dataset's files are)."""

    def __call__(self, parts: list[str]) -> pd.DataFrame:
        frames = []
        for part in parts:
            i = PARTS.index(part)
            rng = np.random.default_rng(i)
            x = rng.standard_normal((LENGTHS[i], 6))
            label = i % 3
            x[:, label] += 1.5  # learnable, not perfectly
            frame = pd.DataFrame(x, columns=[f"f{j}" for j in range(6)])
            frames.append(frame.assign(label=label, part=i))
        return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize(
    "lengths, n, expected",
    [
        ([10] * 6, 2, [(0, 3), (3, 6)]),
        ([10] * 6, 3, [(0, 2), (2, 4), (4, 6)]),
        ([100, 1, 1, 1], 2, [(0, 1), (1, 4)]),  # a large part is one share; never an empty one
        ([5], 4, [(0, 1)]),  # fewer parts than workers: fewer shares
        ([], 2, []),
    ],
)
def test_shares_are_contiguous_runs_of_parts_of_about_equal_rows(lengths, n, expected):
    assert shares.cut(lengths, n) == expected


def test_every_part_is_in_exactly_one_share_in_order():
    ranges = shares.cut(LENGTHS, 4)
    assert [i for start, stop in ranges for i in range(start, stop)] == list(range(len(LENGTHS)))
    rows = [sum(LENGTHS[start:stop]) for start, stop in ranges]
    assert max(rows) <= 2 * sum(LENGTHS) / 4


def test_workers_are_ranked_by_name_as_xgboost_ranks_them(client):
    names = client.run(lambda dask_worker: str(dask_worker.name))
    ranked = shares.ranked_workers(client)
    assert sorted(ranked) == sorted(names)
    assert [names[a] for a in ranked] == sorted(names.values())


def _fit(client, plan=LENGTHS) -> bytes:
    # `plan`: the row counts the cut is planned on (the rows read are always the same)
    placed = shares.place(client, Reader(), PARTS, plan)
    x = shares.array(client, placed, lambda r: r.filter(like="f").to_numpy(np.float32), tail=(6,),
                     dtype=np.float32, prefix="x")  # fmt: skip
    y = shares.array(client, placed, lambda r: r.label.to_numpy(np.int32), dtype=np.int32, prefix="y")
    chunks = [*x.__dask_graph__().values(), *y.__dask_graph__().values()]
    wait(chunks)
    # chunk i of x and of y lives on share i's worker
    where = client.who_has(chunks)
    assert [where[(x.name, i, 0)] for i in range(len(placed))] == [(s.worker,) for s in placed]
    assert [where[(y.name, i)] for i in range(len(placed))] == [(s.worker,) for s in placed]
    assert len(placed) == 2 and sum(s.length for s in placed) == sum(LENGTHS)
    assert [s.worker for s in placed] == shares.ranked_workers(client)
    model = DaskXGBClassifier(n_estimators=5, max_depth=3, subsample=0.7, random_state=0)
    model.client = client
    model.fit(x, y)
    return bytes(model.get_booster().save_raw(raw_format="ubj"))


def test_the_same_rows_in_the_same_shares_give_the_same_model_and_the_shares_decide_it(client):
    first, again = _fit(client), _fit(client)
    assert first == again
    # the mechanism this guards: the same rows split otherwise between the workers give another
    # model (what a layout left to Dask's load balancing did from run to run)
    assert _fit(client, plan=LENGTHS[::-1]) != first
