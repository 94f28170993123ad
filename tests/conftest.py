"""Shared fixtures: a numba cache, a small generated corpus and one LocalCluster for the session.

Shared helpers (configs, the CLI, bad files) are in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from genre_hpc.flow import demo

from .helpers import make_config


@pytest.fixture(scope="session")
def numba_cache(tmp_path_factory) -> Path:
    """One JIT cache for every cluster the tests start: librosa compiles once, not per run."""
    path = tmp_path_factory.mktemp("numba-cache")
    os.environ.setdefault("NUMBA_CACHE_DIR", str(path))
    return Path(os.environ["NUMBA_CACHE_DIR"])


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """10 genres x 5 clips x 6 s (two 3-s segments each)."""
    root = tmp_path_factory.mktemp("corpus")
    demo.generate(root, n_per_genre=5, seconds=6.0, seed=1)
    return root


@pytest.fixture(scope="session")
def client(numba_cache, tmp_path_factory):
    """A real two-worker LocalCluster, built the way every stage gets its client."""
    from genre_hpc.infra.cluster import connect

    out = tmp_path_factory.mktemp("cluster-out")
    cfg = make_config("extract", [f"output.dir={out}", "cluster.n_workers=2"])
    with connect(cfg) as c:
        yield c
