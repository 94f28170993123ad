"""The console command: `genre-hpc <stage> [Hydra overrides...]`; picks the stage's config and runs it."""

from __future__ import annotations

import faulthandler
import importlib
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from genre_hpc.core.errors import GenreHpcError

log = logging.getLogger("genre_hpc")

STAGES: dict[str, str] = {
    "validate": "Probe every file (format, rate, duration, content hash); report duplicates.",
    "extract": "validate, then decode the corpus; write per-segment features as partitioned Parquet.",
    "train": "Train xgboost.dask on the features; evaluate on held-out tracks.",
    "tune": "dask-ml GridSearchCV with track-grouped folds, then train the best model.",
    "compare": "The origin study's models (k-NN, RF, SVM, MLP, XGBoost, XGBoost-RF) on one split.",
    "run": "validate, extract, train, tune on one shared Dask cluster, then the report.",
    "report": "One HTML page (PNG figures beside it) of the run in output.dir.",
    "demo-data": "Write the synthetic GTZAN-shaped demo corpus (data.demo.*).",
    "bench": "Time the extractor against the origin study's method; scaling over Dask schedulers.",
    "predict": "Top genres of new audio files (inputs=[a.mp3,b.flac] or a folder) from model_dir.",
}

# Stages that build their own clusters (or need none) instead of sharing one client.
STANDALONE = {
    "demo-data": "genre_hpc.cli:_demo_data",
    "bench": "genre_hpc.stages.bench:run",
    "predict": "genre_hpc.stages.predict:run",
    "report": "genre_hpc.stages.report:run",
}

USAGE = "usage: genre-hpc <stage> [key=value ...] [--help | --cfg job | --multirun]\n\nstages:\n" + "".join(
    f"  {name:<10} {text}\n" for name, text in STAGES.items()
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
    from genre_hpc.infra import config

    config.check(cfg)
    if cfg.stage in STANDALONE:
        module, function = STANDALONE[cfg.stage].split(":")
        return getattr(importlib.import_module(module), function)(cfg)
    from genre_hpc.flow.corpus import check_root
    from genre_hpc.infra.cluster import connect

    stages = _stage_functions(cfg)
    if {"validate", "extract"} & set(dict(stages)):
        check_root(cfg)  # a wrong data.root fails before any cluster or job starts
    with connect(cfg) as client:
        results = {}
        for name, function in stages:
            started = time.perf_counter()
            results[name] = function(cfg, client)
            log.info("%s: done in %.1f s", name, time.perf_counter() - started)
    return results


def _stage_functions(cfg: DictConfig) -> list[tuple[str, Callable]]:
    """The stages a command runs, in order, on one client: `run` runs `stages` (run.yaml)."""
    from genre_hpc.stages import compare, extract, report, train, tune, validate

    table = {
        "validate": validate.run, "extract": extract.run, "train": train.run,
        "tune": tune.run, "compare": compare.run, "report": report.run,
    }  # fmt: skip
    if cfg.stage == "extract":
        names = ["validate", "extract"]
    elif cfg.stage == "run":
        names = list(cfg.stages)  # checked by config.check
    else:
        names = [cfg.stage]
    return [(name, table[name]) for name in names]


def _demo_data(cfg: DictConfig) -> list:
    from genre_hpc.core.errors import ConfigError
    from genre_hpc.flow.corpus import resolve_root

    if cfg.data.root is not None:
        raise ConfigError("data.root", "is set; demo-data writes to data.demo.root", "unset data.root")
    root = resolve_root(cfg)
    log.info("demo-data: corpus ready in %s", root)
    return [str(root)]


if __name__ == "__main__":
    main()
