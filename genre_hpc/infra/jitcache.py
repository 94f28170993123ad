"""numba's on-disk JIT cache, written by one process only: primed once, then copied into each process.

Why: numba caches a ``guvectorize`` function (librosa's ``localmax``, ``_zc_wrapper``, ...) as two
files whose native names carry an ABI tag that depends on the order in which the writing process
compiled its functions (numba issues 4807 and 10128; fix proposed in numba PR 10545, in no release
up to 0.68.1). Two processes that compile into one cache directory can leave a pair written by
different processes, and the next process that loads it calls a null pointer (SIGSEGV).

So no two processes ever write one cache directory:

- `prime` compiles every numba code path the stages call in ONE child process, into a folder of
  its own that it then renames to one named after the interpreter, the libraries and this
  package's source. Once published, that folder is never written again.
- `use` gives the calling process a private copy of that folder (hard links, so it costs
  milliseconds; numba replaces files by rename, so writing a copy never touches the primed
  original). A function the primer missed is compiled into the private copy, costing time, never a
  crash. Dask workers call it through the `dask_setup` preload hook before they import numba code.

The primer also leaves Python's own bytecode of every module a worker imports in ``pyc/`` of the
folder, and workers read it through ``sys.pycache_prefix`` (PYTHONPYCACHEPREFIX). An environment
installed without bytecode (uv's default), read-only, or run with PYTHONDONTWRITEBYTECODE=1 (many
container images) otherwise compiles some 1,300 modules from source in every new worker: 3.7 s of
a 6-s first result on the 2-core dev machine. Python writes a pyc it misses atomically, so workers
may add to ``pyc/``; nothing else in the folder is written after it is published.
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
from pathlib import Path

from genre_hpc.core.errors import ConfigError, JitCacheError

log = logging.getLogger("genre_hpc")

PRIMED_ENV = "GENRE_HPC_JIT_PRIMED"  # the primed folder a process copies (workers inherit it)
SCRATCH_ENV = "GENRE_HPC_JIT_SCRATCH"  # where private copies go (node-local scratch on SLURM)
STAMP = "PRIMED"
BYTECODE = "pyc"  # PYTHONPYCACHEPREFIX tree inside a primed folder
_COMPILE_TIMEOUT = 1800  # seconds; about 25 s on one core
_LIBRARIES = ("numba", "llvmlite", "numpy", "scipy", "librosa")


def key() -> str:
    """What a primed cache depends on: interpreter, libraries and this package's source."""
    parts = [sys.version, os.path.realpath(sys.executable), sys.prefix]
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

    Safe to call from many processes at once (a driver, SLURMRunner ranks, two runs sharing
    GENRE_HPC_NUMBA_CACHE): each compiles into a folder of its own and publishes it with one
    atomic rename, so a published folder is complete and never written again. A file lock keeps
    the others waiting instead of compiling too, where the filesystem's locks reach them.
    """
    folder = primed_folder(root)
    if (folder / STAMP).exists():
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock = open(folder.parent / f".{folder.name}.lock", "a")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise ConfigError("cluster.numba_cache_dir", f"cannot write {folder.parent}: {exc}") from None
    with lock:
        with contextlib.suppress(OSError):  # e.g. Lustre mounted with noflock: the rename still holds
            fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / STAMP).exists():  # another process primed it while this one waited
            return folder
        building = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            _compile_into(building)
            (building / STAMP).write_text(f"{folder.name}\n")
            try:
                os.rename(building, folder)
            except OSError as exc:
                if not (folder / STAMP).exists():
                    raise JitCacheError(
                        f"cannot publish numba's cache as {folder}: {exc}; delete it"
                    ) from None
                # another process published first, where the lock did not reach it: use theirs
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return folder


def _compile_into(folder: Path) -> None:
    log.info("numba: compiling librosa's and genre-hpc's JIT code once, for %s", folder.parent)
    started = time.perf_counter()
    module = __spec__.name if __name__ == "__main__" else __name__
    try:
        env = {**os.environ, "NUMBA_CACHE_DIR": str(folder), "PYTHONPYCACHEPREFIX": str(folder / BYTECODE)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        done = subprocess.run(
            [sys.executable, "-m", module, "--compile"],
            env=env,
            capture_output=True, text=True, timeout=_COMPILE_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise JitCacheError(f"compiling numba's code took over {_COMPILE_TIMEOUT} s") from None
    if done.returncode != 0:
        raise JitCacheError(
            f"compiling numba's code into {folder} failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
        )
    log.info("numba: cache primed in %.1f s", time.perf_counter() - started)


_private: tuple[int, Path] | None = None  # (pid, folder) of this process's copy, once `use` made it


def use(primed: str | os.PathLike | None, scratch: str | os.PathLike | None = None) -> Path:
    """Point this process's numba at a private copy of `primed` (an empty one if it is not primed).

    Copies go to `scratch`, else $GENRE_HPC_JIT_SCRATCH, else a ``proc`` folder beside `primed`
    (else ``genre-hpc-numba`` in the temporary folder); `scratch` holds nothing else. Must run
    before any of `JIT_MODULES` is imported: numba fixes a function's cache folder when the
    function is decorated. A second call in one process keeps the first copy, and so does a
    process forked after its parent imported one of them (cluster.warm_start's workers, forked by
    a nanny that loaded the compiled code): its functions are bound to the parent's copy, which
    the parent, waiting for its child, no longer writes to.
    """
    global _private
    if _private is not None and (_private[0] == os.getpid() or _jit_code_imported()):
        return _private[1]
    if imported := _jit_code_imported():
        raise JitCacheError(f"jitcache.use() must run before {imported} is imported")
    base = scratch or os.environ.get(SCRATCH_ENV)
    if not base:
        base = Path(primed).parent / "proc" if primed else Path(tempfile.gettempdir()) / "genre-hpc-numba"
    base = Path(base)
    try:
        base.mkdir(parents=True, exist_ok=True)
        _sweep(base)
        private = Path(tempfile.mkdtemp(prefix=f"{socket.gethostname()}-{os.getpid()}-", dir=base))
        if primed and (Path(primed) / STAMP).exists():
            # bytecode is read where it was primed: copying its 45 MB to a node costs more than it saves
            shutil.copytree(primed, private, dirs_exist_ok=True, copy_function=_link_or_copy,
                            ignore=shutil.ignore_patterns(STAMP, BYTECODE))  # fmt: skip
            for folder in (private, *(p for p in private.rglob("*") if p.is_dir())):
                folder.chmod(folder.stat().st_mode | 0o700)  # numba skips a folder it cannot write
            os.environ[PRIMED_ENV] = str(primed)
            if sys.pycache_prefix is None and (Path(primed) / BYTECODE).is_dir():
                sys.pycache_prefix = str(Path(primed) / BYTECODE)  # for the imports still to come
    except OSError as exc:
        raise JitCacheError(f"cannot make a private numba cache in {base}: {exc}") from None
    os.environ["NUMBA_CACHE_DIR"] = str(private)
    if "numba" in sys.modules:  # numba read the variable when it was imported
        from numba.core import config

        config.reload_config()
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    _private = (os.getpid(), private)
    return private


# Modules that decorate numba functions with cache=True when imported (each takes its cache folder then)
JIT_MODULES = ("librosa", "genre_hpc.flow.features", "genre_hpc.flow.median_kernels")


def _jit_code_imported() -> str | None:
    return next((name for name in JIT_MODULES if name in sys.modules), None)


def dask_setup(worker: object = None) -> None:
    """Dask preload hook (``--preload genre_hpc.infra.jitcache``): each worker process its own copy.

    Dask logs a preload that raises and starts the worker anyway, which would then compile into
    whatever folder it inherited; so fall back to an empty private copy, or refuse to start."""
    try:
        use(os.environ.get(PRIMED_ENV))
    except Exception as exc:
        try:
            use(None, scratch=Path(tempfile.gettempdir()) / "genre-hpc-numba")
        except Exception:
            raise SystemExit(f"genre-hpc: no numba cache of its own for this worker: {exc}") from exc
        log.warning("numba: %s; this worker compiles into an empty cache of its own", exc)
    if worker is not None and hasattr(worker, "heartbeat"):  # a Worker, not a Nanny or a pool
        from genre_hpc.infra.worker_logs import quiet_heartbeat_at_close

        quiet_heartbeat_at_close(worker)


def warm_process() -> None:
    """Initializer of a process pool (bench): its own copy, one BLAS thread, compiled code loaded."""
    dask_setup()
    from threadpoolctl import threadpool_limits

    from genre_hpc.flow import features

    threadpool_limits(1)
    features.warm_up()


def bytecode_folder(primed: str | os.PathLike) -> Path:
    """The PYTHONPYCACHEPREFIX tree a primed folder holds (workers set it before they start)."""
    return Path(primed) / BYTECODE


def compile_all() -> None:
    """Call every numba function that a stage reaches (extraction, the reference, the plots), and
    import every module a worker may import, so their bytecode lands in PYTHONPYCACHEPREFIX."""
    import importlib
    import pkgutil

    import numpy as np

    import genre_hpc
    from genre_hpc.flow import features, plots, reference
    from genre_hpc.flow.params import FeatureParams

    for module in ("distributed.cli.dask_worker", "dask_jobqueue", "xgboost.dask", "dask_ml.model_selection",
                   "sklearn.neighbors", "sklearn.ensemble", "sklearn.svm", "sklearn.neural_network",
                   "sklearn.calibration", "threadpoolctl", "psutil"):  # fmt: skip
        importlib.import_module(module)
    for info in pkgutil.walk_packages(genre_hpc.__path__, f"{genre_hpc.__name__}."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)

    features.warm_up()
    params = FeatureParams()
    y = np.random.default_rng(0).standard_normal(params.segment_samples).astype(np.float32)
    reference.extract_chunk(y, params=params)
    with tempfile.TemporaryDirectory() as folder:
        plots.genre_example_png(y, params.sample_rate, Path(folder) / "example.png", title="warm-up",
                                n_fft=params.n_fft, hop=params.hop_length)  # fmt: skip


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem (shared primed cache, node-local copy)
        shutil.copy2(source, target)


def _sweep(base: Path) -> None:
    """Remove copies left by processes of this host that were killed before their atexit ran."""
    host = socket.gethostname()
    for folder in base.glob(f"{host}-*-*"):
        owner, pid, _ = folder.name.rsplit("-", 2)  # mkdtemp's suffix has no "-"
        if owner == host and pid.isdigit() and not _alive(int(pid)):
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
