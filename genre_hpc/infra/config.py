"""Checks a composed config once, up front, and turns it into the typed values stages use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genre_hpc.core.errors import ConfigError
from genre_hpc.flow.features import FeatureParams

RUNNABLE_STAGES = ("validate", "extract", "train", "tune", "compare", "report")


def check(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key whose value cannot work."""
    if cfg.stage == "run":
        stages = _get(cfg, "stages")
        if not OmegaConf.is_list(stages) or not stages or set(stages) - set(RUNNABLE_STAGES):
            raise ConfigError(
                "stages", f"{stages!r} is not a list of stages", f"choose from {RUNNABLE_STAGES}"
            )
    _positive_int(cfg, "extract.batch_size", allow_none=True)
    _positive_int(cfg, "extract.block_segments")
    feature_params(cfg).check()
    kind = _get(cfg, "cluster.kind")
    if kind not in ("local", "slurm", "slurm_runner"):
        raise ConfigError("cluster", f"unknown kind {kind!r}", "use cluster=local, slurm or slurm_runner")
    if kind == "local":
        _positive_int(cfg, "cluster.n_workers", allow_none=True)
        _positive_int(cfg, "cluster.threads_per_worker")
    if kind == "slurm":
        _positive_int(cfg, "cluster.jobs")
        _positive_int(cfg, "cluster.cores")
        _positive_int(cfg, "cluster.processes")
        _positive_int(cfg, "cluster.death_timeout")
    if kind == "slurm_runner":
        _positive_int(cfg, "cluster.threads", allow_none=True)
    if kind in ("slurm", "slurm_runner"):
        from genre_hpc.infra.cluster import check_spec  # the checks live beside the code that uses the values

        check_spec(cfg.cluster)
    from genre_hpc.flow.split import SPLITS

    if _get(cfg, "split.name") not in SPLITS:
        raise ConfigError("split", f"unknown split {cfg.split.name!r}", f"use split={' | '.join(SPLITS)}")
    if cfg.split.name == "predefined":
        for side in cfg.split.lists:
            if OmegaConf.is_missing(cfg.split.lists, side):
                raise ConfigError(f"split.lists.{side}", "is not set", "give a file with one path per line")
    fraction = _get(cfg, "split.test_fraction", None)
    if fraction is not None and not (isinstance(fraction, float) and 0.0 < fraction < 1.0):
        raise ConfigError("split.test_fraction", f"{fraction!r} is not between 0 and 1", "e.g. 0.2")
    scoring = _get(cfg, "search.scoring")
    from sklearn.metrics import get_scorer_names

    if scoring not in get_scorer_names():
        raise ConfigError(
            "search.scoring", f"{scoring!r} is not a scikit-learn scorer", "e.g. accuracy, f1_macro"
        )
    if cfg.stage == "compare":
        from genre_hpc.stages.compare import MODELS

        unknown = sorted(set(_get(cfg, "compare.models")) - set(MODELS))
        if unknown:
            raise ConfigError("compare.models", f"unknown {unknown}", f"choose from {list(MODELS)}")
    _positive_int(cfg, "search.cv_folds")
    if _get(cfg, "search.cv_folds") < 2:
        raise ConfigError("search.cv_folds", "needs at least 2 folds")
    grid = _get(cfg, "search.grid")
    if not isinstance(grid, DictConfig) or not grid:
        raise ConfigError("search.grid", "must map parameter names to lists of values")
    for name, values in grid.items():
        if not OmegaConf.is_list(values) or len(values) == 0:
            raise ConfigError(f"search.grid.{name}", "must be a non-empty list, e.g. [3, 6]")


def feature_params(cfg: DictConfig) -> FeatureParams:
    values = OmegaConf.to_container(cfg.features, resolve=True)
    known = FeatureParams.__dataclass_fields__
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"features.{key}", "is not a feature setting", f"known: {', '.join(known)}")
        expected = type(getattr(FeatureParams(), key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        elif not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(f"features.{key}", f"{value!r} is not a {expected.__name__}")
    return FeatureParams(**values)


def output_dir(cfg: DictConfig) -> Path:
    return Path(str(cfg.output.dir)).expanduser().resolve()


def plain(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain data for manifests (interpolations resolved, Hydra's own keys left out)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _get(cfg: DictConfig, key: str, default: Any = ...) -> Any:
    value = OmegaConf.select(cfg, key, default=default)
    if value is ...:
        raise ConfigError(key, "is missing", "add it to the config or the command line")
    return value


def _positive_int(cfg: DictConfig, key: str, *, allow_none: bool = False) -> None:
    value = _get(cfg, key)
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(key, f"{value!r} is not a positive integer")
