"""Shared fixtures: a numba cache, a small generated corpus and one LocalCluster for the session.

Shared helpers (configs, the CLI, bad files) are in helpers.py."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from genre_hpc.infra import jitcache

# Every command and cluster the tests start primes its numba cache here, once per session
# (cluster.numba_cache_dir's default reads this variable), instead of once per output.dir. Set it
# to a folder kept between sessions and only the first session compiles (about a minute).
if "GENRE_HPC_NUMBA_CACHE" not in os.environ:
    os.environ["GENRE_HPC_NUMBA_CACHE"] = tempfile.mkdtemp(prefix="genre-hpc-tests-numba-")
    atexit.register(shutil.rmtree, os.environ["GENRE_HPC_NUMBA_CACHE"], ignore_errors=True)
# This process (it calls librosa to check our features) takes a private copy of that cache if it is
# primed already, else compiles into an empty one of its own (about 40 s); never into one that
# another process writes. Before anything imports librosa (see jitcache). With a primed copy it also
# reads (and may add to) the primed bytecode, as every worker does, and its child processes inherit
# GENRE_HPC_JIT_PRIMED: the same folder they would prime themselves.
jitcache.use(jitcache.primed_folder(os.environ["GENRE_HPC_NUMBA_CACHE"]))

import pytest  # noqa: E402

from genre_hpc.flow import demo  # noqa: E402

from .helpers import make_config  # noqa: E402


@pytest.fixture(scope="session")
def numba_cache() -> Path:
    """`cluster.numba_cache_dir` of every cluster and command the tests start: primed once (by the
    first of them), then copied into each process, as in a user's runs."""
    return Path(os.environ["GENRE_HPC_NUMBA_CACHE"])


@pytest.fixture(scope="session")
def primed_numba_cache(numba_cache) -> Path:
    """The same cache, compiled before the test starts: for tests that time what comes after (the
    first run of a session compiles for about a minute)."""
    from genre_hpc.infra import jitcache

    return jitcache.prime(numba_cache)


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
