"""The console command: `genre-hpc <stage> [Hydra overrides...]`; picks the stage's config and runs it.

The only module that imports the stages; it builds the one cluster they share.
"""

from __future__ import annotations

import faulthandler
import importlib
import logging
import sys
import time
from types import ModuleType
from typing import Any

from omegaconf import DictConfig

from genre_hpc.core.errors import GenreHpcError
from genre_hpc.infra.config import STAGES

log = logging.getLogger("genre_hpc")

USAGE = "usage: genre-hpc <stage> [key=value ...] [--help | --cfg job | --multirun]\n\nstages:\n" + "".join(
    f"  {name:<10} {stage.summary}\n" for name, stage in STAGES.items()
)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return
    # a batch job that dies in native code (numba, xgboost, libsndfile) leaves a Python
    # traceback in its log instead of a bare "signal 11"
    faulthandler.enable()
    stage, overrides = argv[0], argv[1:]
    if stage not in STAGES:
        sys.stderr.write(f"genre-hpc: unknown stage {stage!r}\n\n{USAGE}")
        raise SystemExit(2)
    import hydra  # deferred: `genre-hpc --help` stays instant

    # Hydra reads its command line from sys.argv; the stage name is ours, not an override.
    sys.argv = [f"genre-hpc-{stage}", *overrides]
    app = hydra.main(version_base="1.3", config_path="pkg://genre_hpc.conf", config_name=stage)
    app(_task)()


def _task(cfg: DictConfig) -> Any:
    try:
        return _dispatch(cfg)
    except GenreHpcError as exc:
        log.error("%s", exc)
        raise SystemExit(exc.exit_code) from None


def _dispatch(cfg: DictConfig) -> Any:
    from genre_hpc.core.layout import OutputLayout
    from genre_hpc.infra import config

    config.check(cfg)
    out = OutputLayout.of(cfg)
    stage = STAGES[cfg.stage]
    if not stage.on_cluster:  # it needs no cluster, or builds its own (bench)
        if stage.name != "demo-data":  # the only stage that runs no numba code
            _use_jit_cache(cfg)
        return stage_module(stage.name).run(cfg, None, out)
    from genre_hpc.flow.corpus import check_root, read_once
    from genre_hpc.infra.cluster import connect

    names = config.steps(cfg)
    with read_once():  # the stages of this command read the corpus once between them
        if {"validate", "extract"} & set(names):
            check_root(cfg)  # a wrong data.root fails before any cluster or job starts
        _use_jit_cache(cfg)
        modules = [(name, stage_module(name)) for name in names]
        with connect(cfg) as client:
            results = {}
            for name, module in modules:
                started = time.perf_counter()
                results[name] = module.run(cfg, client, out)
                log.info("%s: done in %.1f s", name, time.perf_counter() - started)
    return results


def _use_jit_cache(cfg: DictConfig) -> None:
    """This process loads numba's code from its own copy of the primed cache (jitcache says why);
    before any stage module is imported, because numba binds a function's cache at import."""
    from genre_hpc.infra import jitcache

    jitcache.use(jitcache.prime(cfg.cluster.numba_cache_dir))


def stage_module(name: str) -> ModuleType:
    """genre_hpc/stages/<name>.py, imported when it runs (so `genre-hpc --help` stays instant)."""
    return importlib.import_module(STAGES[name].module)


if __name__ == "__main__":
    main()
