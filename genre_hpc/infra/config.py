"""The stages and their configs: a composed config checked once, up front, section by section.

Also what turns a config into the typed values stages use (FeatureParams).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from genre_hpc.core.errors import ConfigError

if TYPE_CHECKING:
    from genre_hpc.flow.params import FeatureParams


@dataclass(frozen=True)
class Stage:
    """One CLI stage: `genre-hpc <name>`, its Hydra config conf/<name>.yaml, its module stages/<module>.py."""

    name: str
    summary: str
    # the CLI builds a cluster and hands the stage its client; the others need none or build their own
    on_cluster: bool
    # may be listed in `genre-hpc run stages=[...]`, sharing that run's client
    in_run: bool

    @property
    def module(self) -> str:
        return f"genre_hpc.stages.{self.name.replace('-', '_')}"


# The one list of stages: the CLI's usage, its dispatch and the check of `run`'s `stages` read it.
STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("validate", "List the tracks (skips and why); read each file's header: format, rate, duration.",
              on_cluster=True, in_run=True),
        Stage("extract",
              "validate, then decode each file once: features as partitioned Parquet, content hashes.",
              on_cluster=True, in_run=True),
        Stage("train", "Train xgboost.dask on the features; evaluate on held-out tracks.",
              on_cluster=True, in_run=True),
        Stage("tune", "dask-ml GridSearchCV with track-grouped folds, then train the best model.",
              on_cluster=True, in_run=True),
        Stage("evaluate", "K-fold cross-validation over whole tracks: accuracy, spread, 95 % interval.",
              on_cluster=True, in_run=True),
        Stage("compare", "The origin study's models (k-NN, RF, SVM, MLP, XGBoost, XGBoost-RF) on one split.",
              on_cluster=True, in_run=True),
        Stage("run", "validate, extract, train, tune, evaluate on one shared Dask cluster, then the report.",
              on_cluster=True, in_run=False),
        Stage("report", "One HTML page (PNG figures beside it) of the run in output.dir.",
              on_cluster=False, in_run=True),
        Stage("demo-data", "Write the demo corpus (data.demo.*): GTZAN-shaped, or FMA-shaped with data=fma.",
              on_cluster=False, in_run=False),
        Stage("bench", "Time the extractor against the origin study's method; scaling over Dask schedulers.",
              on_cluster=False, in_run=False),
        Stage("predict", "Top genres of new audio files (inputs=[a.mp3,b.flac] or a folder) from model_dir.",
              on_cluster=False, in_run=False),
    )
}  # fmt: skip
RUNNABLE_STAGES = tuple(name for name, stage in STAGES.items() if stage.in_run)


def steps(cfg: DictConfig) -> list[str]:
    """The stages one command runs, in order, on one client: `run` runs `stages` (run.yaml) and
    `extract` validates first (its duplicate groups are what the splits keep together)."""
    if cfg.stage == "run":
        return list(cfg.stages)  # checked by check()
    if cfg.stage == "extract":
        return ["validate", "extract"]
    return [cfg.stage]


def check(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key whose value cannot work."""
    for section in (_check_stages, _check_data, _check_extract, _check_features, _check_cluster,
                    _check_split, _check_model, _check_search, _check_compare, _check_evaluate):  # fmt: skip
        section(cfg)


def feature_params(cfg: DictConfig) -> FeatureParams:
    """`features.*` as the typed settings of the feature set (its keys and types checked)."""
    # deferred, as the other heavy imports here: the CLI reads STAGES for `--help` and must stay instant
    from genre_hpc.flow.params import FeatureParams

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


# --- one check per section ------------------------------------------------------------------


def _check_stages(cfg: DictConfig) -> None:
    if cfg.stage == "run":
        stages = _get(cfg, "stages")
        if not OmegaConf.is_list(stages) or not stages or set(stages) - set(RUNNABLE_STAGES):
            raise ConfigError(
                "stages", f"{stages!r} is not a list of stages", f"choose from {RUNNABLE_STAGES}"
            )


def _check_data(cfg: DictConfig) -> None:
    kind = _get(cfg, "data.kind", "folders")
    if kind not in ("folders", "fma", "table"):
        raise ConfigError(
            "data.kind", f"unknown corpus kind {kind!r}", "use data=folders, data=fma or data=table"
        )
    for key in ("root", "tracks"):
        if OmegaConf.is_missing(cfg.data, key):
            raise ConfigError(f"data.{key}", "is not set", f"data={kind} needs data.{key}=/path/to/...")
    if kind == "fma":
        subsets = ("small", "medium", "large")
        if _get(cfg, "data.subset") not in subsets:
            raise ConfigError("data.subset", f"{cfg.data.subset!r} is not an FMA subset", " | ".join(subsets))
        if cfg.data.root is not None and cfg.data.tracks is None:
            raise ConfigError("data.tracks", "is not set", "give fma_metadata/tracks.csv with data.root")
        for key in ("genres", "artists_per_genre", "tracks_per_artist"):
            _positive_int(cfg, f"data.demo.{key}")
        if cfg.data.demo.genres > 6:
            raise ConfigError("data.demo.genres", f"{cfg.data.demo.genres} > 6", "the demo has 6 genres")
    if kind == "table":
        for key in ("path", "label"):
            if not isinstance(_get(cfg, f"data.columns.{key}"), str):
                raise ConfigError(f"data.columns.{key}", "must name a column of the table")


def _check_extract(cfg: DictConfig) -> None:
    _positive_int(cfg, "extract.batch_size", allow_none=True)
    _positive_int(cfg, "extract.chunk_seconds")
    _positive_int(cfg, "extract.block_segments")
    _positive_int(cfg, "extract.part_rows")


def _check_features(cfg: DictConfig) -> None:
    feature_params(cfg).check()


def _check_cluster(cfg: DictConfig) -> None:
    # deferred (dask-jobqueue is slow to import); the checks live beside the code that uses the values
    from genre_hpc.infra.cluster import CLUSTER_KINDS, jobqueue

    kind = _get(cfg, "cluster.kind")
    if kind not in CLUSTER_KINDS:
        raise ConfigError("cluster", f"unknown kind {kind!r}", f"use cluster={' | '.join(CLUSTER_KINDS)}")
    if kind == "local":
        _positive_int(cfg, "cluster.n_workers", allow_none=True)
        _positive_int(cfg, "cluster.threads_per_worker")
        return
    if kind == "slurm_runner":
        _positive_int(cfg, "cluster.threads", allow_none=True)
    else:  # a batch scheduler through dask-jobqueue (infra/cluster/schedulers.py)
        for key in ("jobs", "cores", "processes", "death_timeout"):
            _positive_int(cfg, f"cluster.{key}")
    jobqueue.check_spec(cfg.cluster)


def _check_split(cfg: DictConfig) -> None:
    from genre_hpc.flow.split import SPLITS  # deferred: scikit-learn is slow to import

    if _get(cfg, "split.name") not in SPLITS:
        raise ConfigError("split", f"unknown split {cfg.split.name!r}", f"use split={' | '.join(SPLITS)}")
    group_by = _get(cfg, "split.group_by", None)
    if group_by is not None and (not isinstance(group_by, str) or not group_by):
        raise ConfigError(
            "split.group_by", f"{group_by!r} is not a column name", "e.g. split.group_by=artist"
        )
    if cfg.split.name == "official":
        for key in ("train_on", "test_on"):
            values = _get(cfg, f"split.{key}")
            if not OmegaConf.is_list(values) or not values:
                raise ConfigError(f"split.{key}", f"{values!r} is not a list of split values", "e.g. [test]")
    if cfg.split.name == "predefined":
        for side in cfg.split.lists:
            if OmegaConf.is_missing(cfg.split.lists, side):
                raise ConfigError(f"split.lists.{side}", "is not set", "give a file with one path per line")
    fraction = _get(cfg, "split.test_fraction", None)
    if fraction is not None and not (isinstance(fraction, float) and 0.0 < fraction < 1.0):
        raise ConfigError("split.test_fraction", f"{fraction!r} is not between 0 and 1", "e.g. 0.2")


def _check_model(cfg: DictConfig) -> None:
    _positive_int(cfg, "model.early_stopping_rounds", allow_none=True)
    _positive_int(cfg, "model.segments_per_track", allow_none=True)
    fraction = _get(cfg, "model.validation_fraction")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError("model.validation_fraction", f"{fraction!r} is not between 0 and 1", "e.g. 0.1")


def _check_search(cfg: DictConfig) -> None:
    from sklearn.metrics import get_scorer_names

    scoring = _get(cfg, "search.scoring")
    if scoring not in get_scorer_names():
        raise ConfigError(
            "search.scoring", f"{scoring!r} is not a scikit-learn scorer", "e.g. accuracy, f1_macro"
        )
    _positive_int(cfg, "search.cv_folds")
    if _get(cfg, "search.cv_folds") < 2:
        raise ConfigError("search.cv_folds", "needs at least 2 folds")
    grid = _get(cfg, "search.grid")
    if not isinstance(grid, DictConfig) or not grid:
        raise ConfigError("search.grid", "must map parameter names to lists of values")
    for name, values in grid.items():
        if not OmegaConf.is_list(values) or len(values) == 0:
            raise ConfigError(f"search.grid.{name}", "must be a non-empty list, e.g. [3, 6]")
    _positive_int(cfg, "search.sample_tracks", allow_none=True)
    _positive_int(cfg, "search.n_estimators", allow_none=True)


def _check_compare(cfg: DictConfig) -> None:
    if cfg.stage == "compare":
        # deferred: the lineup imports every model's library
        from genre_hpc.flow.lineup import MODELS, QUADRATIC

        unknown = sorted(set(_get(cfg, "compare.models")) - set(MODELS))
        if unknown:
            raise ConfigError("compare.models", f"unknown {unknown}", f"choose from {list(MODELS)}")
        sample = _get(cfg, "compare.sample_tracks")
        if not isinstance(sample, DictConfig):
            raise ConfigError(
                "compare.sample_tracks", f"{sample!r} is not a mapping", "e.g. {knn: 2000, svm: 2000}"
            )
        for name in sample:
            if name not in QUADRATIC:
                raise ConfigError(
                    f"compare.sample_tracks.{name}", "only the models that cannot scale are sampled",
                    f"name one of {list(QUADRATIC)}",
                )  # fmt: skip
            _positive_int(cfg, f"compare.sample_tracks.{name}", allow_none=True)
        for key in ("forest_rows", "boost_rows", "mlp_row_passes"):
            _positive_int(cfg, f"compare.{key}", allow_none=True)
        if _get(cfg, "compare.engine") not in ("auto", "tasks", "dask"):
            raise ConfigError("compare.engine", f"{cfg.compare.engine!r} is not auto, tasks or dask")
        _check_bytes(cfg, "compare.worker_memory")
        _positive_int(cfg, "compare.worker_rows")


def _check_evaluate(cfg: DictConfig) -> None:
    if cfg.stage == "evaluate" or (cfg.stage == "run" and "evaluate" in cfg.stages):
        for key in ("evaluate.folds", "evaluate.large_folds"):
            if key == "evaluate.folds" and _get(cfg, key) == "auto":
                continue
            _positive_int(cfg, key)
            if _get(cfg, key) < 2:
                raise ConfigError(key, "needs at least 2 folds", f"e.g. {key}=10, or evaluate.folds=auto")
        _positive_int(cfg, "evaluate.large_from_rows")
        if _get(cfg, "evaluate.engine") not in ("auto", "tasks", "dask"):
            raise ConfigError("evaluate.engine", f"{cfg.evaluate.engine!r} is not auto, tasks or dask")
        _check_bytes(cfg, "evaluate.worker_memory")
    if cfg.stage == "compare":
        folds = _get(cfg, "compare.folds")
        if folds is not None:
            _positive_int(cfg, "compare.folds")
            if folds < 2:
                raise ConfigError("compare.folds", "needs at least 2 folds", "or null for the one split")


def _check_bytes(cfg: DictConfig, key: str) -> None:
    """null, a positive number of bytes, or a size such as "4GB" or "512 MiB"."""
    from dask.utils import parse_bytes

    value = _get(cfg, key)
    if value is None:
        return
    try:
        size = parse_bytes(value) if isinstance(value, str) else value
    except ValueError:
        size = None
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(key, f"{value!r} is not a memory size", 'e.g. 4GB, "512 MiB", or null')


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
