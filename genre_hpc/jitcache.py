"""numba's on-disk JIT cache, written by one process only: primed once, then copied into each process.

Why: numba caches a ``guvectorize`` function (librosa's ``localmax``, ``_zc_wrapper``, ...) as two
files whose native names carry an ABI tag that depends on the order in which the writing process
compiled its functions (numba issues 4807 and 10128; fix proposed in numba PR 10545, in no release
up to 0.68.1). Two processes that compile into one cache directory can leave a pair written by
different processes, and the next process that loads it calls a null pointer (SIGSEGV).

So no two processes ever write one cache directory:

- `prime` compiles every numba code path the stages call in ONE child process, under an exclusive
  file lock, into a folder named after the interpreter, the libraries and this package's source.
  Once its ``PRIMED`` stamp exists the folder is never written again.
- `use` gives the calling process a private copy of that folder (hard links, so it costs
  milliseconds; numba replaces files by rename, so writing a copy never touches the primed
  original). A function the primer missed is compiled into the private copy, costing time, never a
  crash. Dask workers call it through the `dask_setup` preload hook before they import librosa.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.metadata
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import ConfigError

log = logging.getLogger("genre_hpc")

PRIMED_ENV = "GENRE_HPC_JIT_PRIMED"  # the primed folder a process copies (workers inherit it)
SCRATCH_ENV = "GENRE_HPC_JIT_SCRATCH"  # where private copies go (node-local scratch on SLURM)
STAMP = "PRIMED"
_LIBRARIES = ("numba", "llvmlite", "numpy", "scipy", "librosa")


def key() -> str:
    """What a primed cache depends on: interpreter, libraries and this package's source."""
    parts = [sys.version, sys.executable]
    parts += [f"{name}=={importlib.metadata.version(name)}" for name in _LIBRARIES]
    package = Path(__file__).resolve().parent
    while (package.parent / "__init__.py").exists():
        package = package.parent
    digest = hashlib.sha256()
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode() + source.read_bytes())
    parts.append(digest.hexdigest())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def primed_folder(root: str | os.PathLike) -> Path:
    """Where `prime` puts the cache for this environment under `root`."""
    return Path(root).expanduser().absolute() / key()


def prime(root: str | os.PathLike) -> Path:
    """The primed cache folder under `root` for this environment; compiled first if missing.

    Safe to call from many processes at once (a driver, SLURMRunner ranks, two stages run side
    by side): one compiles, the others wait for its stamp.
    """
    folder = primed_folder(root)
    if (folder / STAMP).exists():
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("cluster.numba_cache_dir", f"cannot create {folder}: {exc}") from None
    with _locked(folder):
        if (folder / STAMP).exists():  # another process primed it while this one waited
            return folder
        for stale in folder.iterdir():  # left by a primer that was killed
            if stale.name != ".lock":
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        log.info("numba: compiling librosa's and genre-hpc's JIT code once into %s", folder)
        started = time.perf_counter()
        env = {**os.environ, "NUMBA_CACHE_DIR": str(folder)}
        done = subprocess.run(
            [sys.executable, "-m", "genre_hpc.jitcache", "--compile"],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"priming numba's cache in {folder} failed:\n{done.stderr[-3000:]}")
        (folder / STAMP).write_text(f"{key()}\n")
        log.info("numba: cache primed in %.1f s", time.perf_counter() - started)
    return folder


_private: Path | None = None  # this process's copy, once `use` has made it


def use(primed: str | os.PathLike | None, scratch: str | os.PathLike | None = None) -> Path:
    """Point this process's numba at a private copy of `primed` (an empty one if it is not primed).

    Copies go to `scratch`, else $GENRE_HPC_JIT_SCRATCH, else a ``proc`` folder beside `primed`
    (else ``genre-hpc-numba`` in the temporary folder); `scratch` holds nothing else. Must run
    before librosa is imported: numba fixes a function's cache folder when the function is
    decorated. A second call in one process keeps the first copy.
    """
    global _private
    if _private is not None:
        return _private
    if "librosa" in sys.modules:
        raise RuntimeError("jitcache.use() must run before librosa is imported")
    base = scratch or os.environ.get(SCRATCH_ENV)
    if not base:
        base = Path(primed).parent / "proc" if primed else Path(tempfile.gettempdir()) / "genre-hpc-numba"
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    _sweep(base)
    private = Path(tempfile.mkdtemp(prefix=f"{socket.gethostname()}-{os.getpid()}-", dir=base))
    if primed and (Path(primed) / STAMP).exists():
        shutil.copytree(primed, private, dirs_exist_ok=True, copy_function=_link_or_copy,
                        ignore=shutil.ignore_patterns(".lock", STAMP))  # fmt: skip
        os.environ[PRIMED_ENV] = str(primed)
    os.environ["NUMBA_CACHE_DIR"] = str(private)
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    _private = private
    return private


def dask_setup(worker: object = None) -> None:
    """Dask preload hook (``--preload genre_hpc.jitcache``): each worker process its own copy."""
    use(os.environ.get(PRIMED_ENV))


def warm_process() -> None:
    """Initializer of a process pool (bench): its own copy, one BLAS thread, compiled code loaded."""
    dask_setup()
    from threadpoolctl import threadpool_limits

    from . import features

    threadpool_limits(1)
    features.warm_up()


def compile_all() -> None:
    """Call every numba function that a stage reaches: extraction, the reference, the plots."""
    import numpy as np

    from . import features, plots, reference

    features.warm_up()
    params = features.FeatureParams()
    y = np.random.default_rng(0).standard_normal(params.segment_samples).astype(np.float32)
    reference.extract_chunk(y, params=params)
    with tempfile.TemporaryDirectory() as folder:
        plots.genre_example_png(y, params.sample_rate, Path(folder) / "example.png", title="warm-up",
                                n_fft=params.n_fft, hop=params.hop_length)  # fmt: skip


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem (shared primed cache, node-local copy)
        shutil.copy2(source, target)


def _sweep(base: Path) -> None:
    """Remove copies left by processes of this host that were killed before their atexit ran."""
    host = socket.gethostname()
    for folder in base.glob(f"{host}-*-*"):
        pid = folder.name[len(host) + 1 :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # PID 1 of a container may not reap: a killed process lingers as a zombie
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] not in ("Z", "X")
    return True


if __name__ == "__main__" and sys.argv[1:] == ["--compile"]:
    compile_all()
