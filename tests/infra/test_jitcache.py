"""numba's cache under load: processes compiling in different orders never share a folder to write.

The mechanism (numba issues 4807, 10128): a `guvectorize` function is cached as two files whose
native names depend on the order in which the writing process compiled; two processes that compile
into one folder can leave a mismatched pair, and whoever loads it next dies with SIGSEGV.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from genre_hpc.infra import jitcache

# Calls that reach the package's numba code and librosa's, including guvectorize functions that
# priming does not cover (beat tracking, peak picking, float64 zero crossings), so that the
# processes below really compile, each in its own order.
CALLS = {
    "features": "from genre_hpc.flow import features; features.warm_up()",
    "chroma": "librosa.feature.chroma_stft(y=y, sr=22050)",
    "beats": "librosa.beat.beat_track(y=y, sr=22050); librosa.onset.onset_detect(y=y, sr=22050)",
    "crossings": "librosa.zero_crossings(y.astype(np.float64)); librosa.feature.zero_crossing_rate(y)",
}
ORDERS = [
    ["features", "chroma", "beats", "crossings"],
    ["beats", "crossings", "chroma", "features"],
    ["crossings", "features", "beats", "chroma"],
]


def _script(order: list[str]) -> str:
    # GENRE_HPC_TEST_UNPROTECTED=1 runs the same processes without jitcache.use, all writing the
    # one folder in NUMBA_CACHE_DIR: how genre-hpc ran before (it crashes most runs).
    return "\n".join([
        "import os",
        "from genre_hpc.infra import jitcache",
        "if os.environ.get('GENRE_HPC_TEST_UNPROTECTED') != '1':",
        "    jitcache.use(os.environ['GENRE_HPC_JIT_PRIMED'])",
        "import librosa, numpy as np",
        "y = np.random.default_rng(0).standard_normal(22050 * 4).astype(np.float32)",
        *(CALLS[name] for name in order),
    ])  # fmt: skip


def _files(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.mark.slow
def test_processes_compiling_in_different_orders_then_a_loader_never_crash(numba_cache: Path) -> None:
    primed = jitcache.prime(numba_cache)
    before = _files(primed)
    # a naive set-up: every process told to cache in the primed folder itself
    env = {**os.environ, "NUMBA_CACHE_DIR": str(primed), "GENRE_HPC_JIT_PRIMED": str(primed)}
    contenders = [
        subprocess.Popen([sys.executable, "-c", _script(order)], env=env, stderr=subprocess.PIPE, text=True)
        for order in ORDERS
    ]
    for process in contenders:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, f"a compiling process died ({process.returncode}):\n{err[-2000:]}"
    loader = subprocess.run(
        [sys.executable, "-c", _script(ORDERS[0])], env=env, capture_output=True, text=True, timeout=600
    )
    assert loader.returncode == 0, f"the loading process died ({loader.returncode}):\n{loader.stderr[-2000:]}"
    # nobody but the primer ever wrote the primed folder: same files, same inodes, same times
    assert _files(primed) == before


def test_a_copy_is_private_and_shares_no_file_with_later_writes(tmp_path: Path) -> None:
    """numba replaces a cache file by rename: writing a hard-linked copy leaves the original as it was."""
    primed = tmp_path / "root" / "abc"
    (primed / "sub").mkdir(parents=True)
    (primed / "sub" / "f.nbi").write_bytes(b"index")
    (primed / jitcache.STAMP).write_text("abc\n")
    code = (
        "import os, sys; from pathlib import Path; from genre_hpc.infra import jitcache\n"
        f"p = jitcache.use({str(primed)!r}); print(p)\n"
        "tmp = p / 'sub' / 'f.tmp'; tmp.write_bytes(b'recompiled'); os.replace(tmp, p / 'sub' / 'f.nbi')\n"
        "print((p / 'sub' / 'f.nbi').read_bytes().decode())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    private, content = done.stdout.split()
    assert content == "recompiled"
    assert (primed / "sub" / "f.nbi").read_bytes() == b"index"
    assert Path(private).parent == tmp_path / "root" / "proc"
    assert not Path(private).exists()  # removed when its process ended


def test_copies_of_processes_that_died_are_swept(tmp_path: Path) -> None:
    import socket

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f"{socket.gethostname()}-{int(dead.stdout)}-x1"
    stale.mkdir()
    alive = tmp_path / f"{socket.gethostname()}-{os.getpid()}-x2"
    alive.mkdir()
    jitcache._sweep(tmp_path)
    assert not stale.exists() and alive.exists()


@pytest.mark.parametrize(
    ("first", "named"), [("import librosa", "librosa"), ("from genre_hpc.flow import features", "features")]
)
def test_use_refuses_to_run_after_numba_code_is_imported(tmp_path: Path, first: str, named: str) -> None:
    # the features import no librosa, so librosa alone no longer tells that numba code was decorated
    code = f"{first}; from genre_hpc.infra import jitcache; jitcache.use(None, scratch={str(tmp_path)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0 and "must run before" in done.stderr and f"{named} is imported" in done.stderr


def test_a_worker_whose_copy_fails_still_gets_a_cache_of_its_own(tmp_path: Path) -> None:
    """Dask starts a worker whose preload raised: dask_setup must not leave it the inherited folder."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the scratch folder should be")
    code = (
        "import os\n"
        "from genre_hpc.infra import jitcache\n"
        "jitcache.dask_setup()\n"
        "print(os.environ['NUMBA_CACHE_DIR'])\n"
    )
    inherited = tmp_path / "inherited"
    env = {**os.environ, "GENRE_HPC_JIT_SCRATCH": str(blocked), "NUMBA_CACHE_DIR": str(inherited)}
    env.pop("GENRE_HPC_JIT_PRIMED", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip())
    assert folder != inherited and not folder.is_relative_to(blocked)
    assert "cache of its own" in done.stderr


def _loaded_from_bytecode(stderr: str, prefix: Path) -> set[str]:
    """Modules that `python -v` says it loaded from a .pyc under `prefix` (not compiled from source)."""
    found = set()
    for line in stderr.splitlines():
        if line.startswith("# code object from ") and str(prefix) in line:
            found.add(Path(line.split("'")[1]).name.split(".")[0])
    return found


def test_a_primed_folder_holds_the_bytecode_that_a_new_worker_reads(numba_cache: Path) -> None:
    """Workers in an environment without bytecode (uv's default install; PYTHONDONTWRITEBYTECODE=1)
    read the primed .pyc files instead of compiling librosa's and the package's source."""
    primed = jitcache.prime(numba_cache)
    bytecode = jitcache.bytecode_folder(primed)
    imports = "import librosa.filters, scipy.signal, genre_hpc.flow.features, distributed"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPYCACHEPREFIX", None)
    # a SLURM job's prologue exports the prefix: every import of the process reads it
    by_variable = subprocess.run([sys.executable, "-v", "-c", imports], capture_output=True, text=True,
                                 env={**env, "PYTHONPYCACHEPREFIX": str(bytecode)}, check=True)  # fmt: skip
    assert {"filters", "_signaltools", "features", "worker"} <= _loaded_from_bytecode(
        by_variable.stderr, bytecode
    )
    # a process that only calls jitcache.use (a SLURMRunner rank) reads it for the imports after it
    use = f"from genre_hpc.infra import jitcache; jitcache.use({str(primed)!r}); {imports}"
    by_use = subprocess.run(
        [sys.executable, "-v", "-c", use], capture_output=True, text=True, env=env, check=True
    )
    assert {"filters", "features"} <= _loaded_from_bytecode(by_use.stderr, bytecode)
    # and the copy a process makes of the primed folder leaves the bytecode where it is
    assert not any(p.name == jitcache.BYTECODE for p in Path(numba_cache, "proc").rglob("*"))
