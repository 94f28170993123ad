"""The one atomic writer: a file is published whole or not at all, and a failed write leaves no trace."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genre_hpc.core import atomic


class Boom(RuntimeError):
    pass


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_failing_write_leaves_neither_the_target_nor_a_temporary_file(tmp_path):
    target = tmp_path / "sub" / "data.parquet"
    with pytest.raises(Boom), atomic.atomic_path(target) as tmp:
        tmp.write_bytes(b"half a file")
        raise Boom
    assert not target.exists()
    assert _leftovers(target.parent) == []


def test_an_existing_target_survives_a_failed_overwrite(tmp_path):
    target = tmp_path / "model.ubj"
    target.write_bytes(b"the good model")
    with pytest.raises(Boom), atomic.atomic_path(target) as tmp:
        tmp.write_bytes(b"the first bytes of a new model")
        raise Boom
    assert target.read_bytes() == b"the good model"
    assert _leftovers(tmp_path) == ["model.ubj"]


def test_a_writer_that_fails_before_creating_its_file_is_cleaned_up_too(tmp_path):
    table = pa.table({"x": [1, 2]})
    with pytest.raises(Boom), atomic.atomic_path(tmp_path / "t.parquet"):
        raise Boom
    assert _leftovers(tmp_path) == []
    with atomic.atomic_path(tmp_path / "t.parquet") as tmp:
        pq.write_table(table, tmp)
    assert pq.read_table(tmp_path / "t.parquet").equals(table)


def test_the_temporary_name_is_hidden_beside_the_target(tmp_path):
    seen = []
    with atomic.atomic_path(tmp_path / "errors.parquet") as tmp:
        seen.append(tmp)
        tmp.write_bytes(b"x")
    (tmp,) = seen
    # same folder (the rename stays on one filesystem); a dot name that dataset readers skip
    assert tmp.parent == tmp_path and tmp.name.startswith(".errors.parquet.") and tmp.suffix == ".tmp"
    assert _leftovers(tmp_path) == ["errors.parquet"]


@pytest.mark.parametrize("durable", [True, False])
def test_every_kind_of_file_the_package_writes(tmp_path, durable):
    atomic.write_text(tmp_path / "index.html", "<p>é</p>\n", durable=durable)
    atomic.write_bytes(tmp_path / "copy.png", b"\x89PNG", durable=durable)
    atomic.write_json(tmp_path / "m.json", {"b": np.float32(0.5), "a": np.int64(2)})
    frame = pd.DataFrame({"x": [1.5]})
    with atomic.atomic_path(tmp_path / "t.csv", durable=durable) as tmp:
        frame.to_csv(tmp, index=False)
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    with atomic.atomic_path(tmp_path / "f.png", durable=durable) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    assert (tmp_path / "index.html").read_text(encoding="utf-8") == "<p>é</p>\n"
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 2, "b": 0.5}
    assert (tmp_path / "m.json").read_text().index('"a"') < (tmp_path / "m.json").read_text().index('"b"')
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), frame)
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*"))
