"""The compare stage: the origin study's model lineup on one split, one model per Dask task; or,
with compare.folds=K, on K cross-validation folds, one model x fold per task.

The driver plans and scores, the workers hold the rows: each worker reads the train side and the
test side once (for folds: every row once), and every model task runs on a worker that holds them,
returning test probabilities with the test rows' ids. Tasks go to workers as slots free up, the
costliest first. What bounds each model (a sample of tracks for k-NN and SVM, rows per tree,
early stopping: flow/lineup.py) is written next to its numbers.

When all rows do not fit a worker (compare.engine=auto, the rule evaluate uses:
crossval.choose_engine), the one-split comparison runs xgboost on xgboost.dask over the whole
cluster, each worker holding its share of the rows, and the models that train inside one worker
(the scikit-learn models and xgboost_rf: flow/lineup.py's ON_DASK says why) on a stratified sample
of whole tracks of about compare.worker_rows rows; their rows say so.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pandas as pd
from distributed import Client, Future, as_completed
from omegaconf import DictConfig, OmegaConf

from genre_hpc.core.atomic import write_csv, write_json
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import crossval, model, plots, shares
from genre_hpc.flow.dataset import FeatureStore
from genre_hpc.flow.lineup import (
    ON_DASK,
    QUADRATIC,
    STOPS_EARLY,
    Fitted,
    Limits,
    fit_model,
    fit_model_fold,
    on_dask,
    read_folds,
    read_side,
    stopping_text,
    subsample_text,
)
from genre_hpc.flow.metrics import SCORES, evaluate, fold_interval, interval_text
from genre_hpc.flow.sampling import stratified_tracks
from genre_hpc.flow.split import Split, row_folds, track_folds
from genre_hpc.flow.trainset import TrainingData
from genre_hpc.infra import manifest

log = logging.getLogger(__name__)

# the order tasks start in: the costliest first, so the last to finish is a short one. Measured
# (one task each, 2 workers): at 10^5 rows xgboost_rf 134 s, svm 127 s, xgboost 81 s, random forest
# 30 s, mlp 11 s, knn 0 s; on the dask engine at 10^6 xgboost_rf 313 s, svm 321 s of fit (its
# 2,000 tracks whatever the size) and the rest under 75 s each
COST_ORDER = ("xgboost_rf", "svm", "xgboost", "random_forest", "mlp", "knn")


def run(cfg: DictConfig, client: Client, out: OutputLayout) -> pd.DataFrame:
    """Fit every model in `compare.models` on the split's train side and score its test side, or
    cross-validate each over `compare.folds` folds."""
    timer = manifest.StageTimer(out, cfg)
    data = TrainingData(out, cfg.split)
    names = list(cfg.compare.models)  # checked by config.check
    plan = Plan.of(cfg, data, client)
    _log_memory(client, data, plan)
    if cfg.compare.folds:
        rows, protocol, folds = _cross_validated(client, data, names, plan, k=int(cfg.compare.folds))
    else:
        rows, protocol, folds = _one_split(client, cfg, data, names, plan), data.split.label(), None
    table = pd.DataFrame(rows)
    files = out.comparison(data.split.name)
    write_csv(files.table, table)
    if folds is not None:
        write_csv(files.folds, folds)
    elif files.folds.exists():
        files.folds.unlink()  # a cross-validated comparison of an earlier run is not this one's
    label = f"{data.split.label()}, {protocol}" if folds is not None else data.split.label()
    write_json(
        files.summary,
        {"split": data.split.summary(), "label": label, "protocol": protocol, "engine": plan.engine,
         "engine_reason": plan.engine_reason, "models": rows},
    )  # fmt: skip
    plots.comparison_png(table, files.figure, title=label)
    timer.finish(
        f"compare_{data.split.name}", {"models": rows, "split": data.split.summary(), "protocol": protocol}
    )
    return table


@dataclass(frozen=True)
class Plan:
    """What every fit shares: the limits, the seed, the segment cap, the workers and their slots;
    and the engine: "tasks" (every model a task beside all rows) or "dask" (ON_DASK's models on
    xgboost.dask, the others on a sample of at most `worker_tracks` training tracks)."""

    limits: Limits
    seed: int
    cap: int | None
    validation_fraction: float | None
    workers: list[str]
    slots: dict[str, int]
    rows: int = 0  # the dataset's, from its parts' metadata
    engine: str = "tasks"
    engine_reason: str = ""
    worker_tracks: int = 1

    @classmethod
    def of(cls, cfg: DictConfig, data: TrainingData, client: Client) -> Plan:
        sample = OmegaConf.to_container(cfg.compare.sample_tracks, resolve=True) or {}
        limits = Limits(
            sample_tracks={name: count for name, count in sample.items() if count is not None},
            forest_rows=cfg.compare.forest_rows,
            boost_rows=cfg.compare.boost_rows,
            mlp_row_passes=cfg.compare.mlp_row_passes,
            early_stopping_rounds=OmegaConf.select(cfg, "model.early_stopping_rounds", default=None),
        )
        workers = shares.ranked_workers(client)
        threads = client.nthreads()
        cap = OmegaConf.select(cfg, "model.segments_per_track", default=None)
        rows = sum(n for _, n in data.store.parts())  # from the parts' metadata: no row is read
        train = _train_tracks(data)
        per_track = rows / max(len(data.tracks), 1)  # segments of a training track, after the cap
        per_track = per_track if cap is None else min(per_track, cap)
        if cfg.compare.folds:
            engine, why = "tasks", "compare.folds: every model x fold is a task beside all rows"
        else:
            engine, why = crossval.choose_engine(
                client, key="compare.engine", asked=cfg.compare.engine,
                worker_memory=cfg.compare.worker_memory, rows=rows, fit_rows=int(per_track * len(train)),
                features=len(data.names), tasks="every model a task beside the rows",
                dask=(f"{', '.join(ON_DASK)} on xgboost.dask over the cluster, the other models on a "
                      f"sample of compare.worker_rows={cfg.compare.worker_rows:,} rows' tracks"),
            )  # fmt: skip
        return cls(
            limits=limits,
            seed=int(cfg.split.seed),
            cap=cap,
            validation_fraction=OmegaConf.select(cfg, "model.validation_fraction", default=None),
            workers=workers,
            slots={w: max(1, int(threads.get(w, 1))) for w in workers},
            rows=rows,
            engine=engine,
            engine_reason=why,
            worker_tracks=max(1, int(cfg.compare.worker_rows / max(per_track, 1))),
        )

    def sample(self, name: str, tracks: pd.DataFrame) -> frozenset[str] | None:
        """The training tracks a model trains on (None: all), of the `tracks` it may use: a
        QUADRATIC model's sample, and on the dask engine that of every model not ON_DASK."""
        count = self.limits.sample_tracks.get(name) if name in QUADRATIC else None
        if self.engine == "dask" and name not in ON_DASK:
            count = self.worker_tracks if count is None else min(count, self.worker_tracks)
        if count is None or len(tracks) <= count:
            return None
        return stratified_tracks(tracks, count=count, seed=self.seed)

    def validation(
        self, name: str, tracks: pd.DataFrame, sample: frozenset[str] | None = None
    ) -> frozenset[str] | None:
        """The training tracks that xgboost's and the MLP's early stopping watch (never trained on),
        drawn from the `sample` the model trains on (None: all `tracks`), or None; the same tracks
        for both when neither is sampled."""
        if name not in STOPS_EARLY or not self.limits.early_stopping_rounds or not self.validation_fraction:
            return None
        if sample is not None:
            tracks = tracks[tracks.track_id.isin(sample)]
        return stratified_tracks(tracks, fraction=self.validation_fraction, seed=self.seed, keep_one=True)


def _log_memory(client: Client, data: TrainingData, plan: Plan) -> None:
    """Say how compare runs and what each worker holds: every row of the dataset as float32 (the
    train and the test side, or every fold), against its memory limit."""
    log.info("compare: engine=%s: %s", plan.engine, plan.engine_reason)
    if plan.engine == "dask":
        return
    rows = plan.rows
    held = rows * len(data.names) * 4
    limits = {w: info.get("memory_limit") for w, info in client.scheduler_info()["workers"].items()}
    limit = min((v for v in limits.values() if v), default=None)
    log.info(
        "compare: each of %d workers reads and holds %d rows (%.0f MiB as float32)%s; %d model tasks "
        "side by side, one per worker thread",
        len(plan.workers), rows, held / 2**20, f" of a {limit / 2**30:.1f} GiB memory limit" if limit else "",
        sum(plan.slots.values()),
    )  # fmt: skip


def _one_split(
    client: Client, cfg: DictConfig, data: TrainingData, names: list[str], plan: Plan
) -> list[dict[str, Any]]:
    rows = {}
    tracks = _train_tracks(data)
    if plan.engine == "dask":
        for name in [n for n in COST_ORDER if n in names and n in ON_DASK]:
            rows[name] = _on_dask(client, cfg, data, name, plan)
    tasks = [n for n in names if n not in rows]
    samples = {name: plan.sample(name, tracks) for name in tasks}
    validations = {name: plan.validation(name, tracks, samples[name]) for name in tasks}
    # on the dask engine the workers hold only the sampled tracks' rows (and every test row)
    keep = None
    if plan.engine == "dask" and tasks and all(samples[n] is not None for n in tasks):
        keep = frozenset().union(*samples.values())
    read = partial(read_side, parts=data.store.parts(), names=data.names, classes=data.classes)
    # every worker reads the train and the test side once; the driver never holds the rows. The
    # validation tracks' rows come last, so a model that stops early watches them without a copy
    last = next((validations[name] for name in STOPS_EARLY if name in tasks), None)
    held = {
        w: (
            _pinned(client, w, read, data.reader("train"), cap=plan.cap, last=last, keep=keep),
            _pinned(client, w, read, data.reader("test")),
        )
        for w in (plan.workers if tasks else [])
    }
    common = {"n_classes": len(data.classes), "seed": plan.seed, "limits": plan.limits}
    jobs = {
        name: partial(
            lambda w, name: _pinned(
                client, w, fit_model, name, *held[w], sample=samples[name], validation=validations[name],
                **common, key=f"compare-fit-{name}",
            ),
            name=name,
        )
        for name in tasks
    }  # fmt: skip
    for name, fitted in _schedule(client, jobs, plan):
        scores = evaluate(fitted.proba, fitted.ids, data.classes, seed=plan.seed)
        rows[name] = _row(name, data, scores, fitted.fit_seconds, _trained_on(fitted))
    return [rows[name] for name in names]


def _row(
    name: str, data: TrainingData, scores: dict[str, Any], fit_seconds: float, trained: dict[str, Any]
) -> dict[str, Any]:
    """One model's row of the one-split comparison, logged."""
    interval = scores["track_accuracy_interval"]
    log.info(
        "compare: %-13s %s, test side: segment accuracy %.3f, track accuracy %s, fit %.1f s; %s",
        name, data.split.label(), scores["segment_accuracy"],
        interval_text(scores["track_accuracy"], interval), fit_seconds, trained["bound"],
    )  # fmt: skip
    return {
        "model": name,
        "split": data.split.name,
        "leaky": data.split.leaky,
        **{key: scores[key] for key in SCORES},
        "track_accuracy_low": interval["low"],
        "track_accuracy_high": interval["high"],
        "interval": interval["method"],
        "fit_seconds": fit_seconds,
        **trained,
    }


def _on_dask(client: Client, cfg: DictConfig, data: TrainingData, name: str, plan: Plan) -> dict[str, Any]:
    """`name` (one of ON_DASK) trained with xgboost.dask on every worker's share of the training
    rows and scored on the test side, as `train` fits its model (flow/model.py)."""
    params, subsample_rows = on_dask(name, seed=plan.seed, limits=plan.limits)
    fitting = model.Fitting.from_config(cfg)
    if not plan.limits.early_stopping_rounds:
        fitting = dataclasses.replace(fitting, early_stopping_rounds=None)
    metrics = model.fit_and_evaluate(
        client, data, params=params, files=None, fitting=fitting, stage=f"compare: {name}",
        subsample_rows=subsample_rows, seed=plan.seed,
    )  # fmt: skip
    bound = subsample_text(float(metrics["model"]["params"].get("subsample") or 1.0))
    patience = metrics["early_stopping_rounds"]
    if patience is not None:
        bound += "; " + stopping_text(patience, "rounds", metrics["validation_tracks"])
    bound = f"xgboost.dask over {len(plan.workers)} workers, each on its share of the rows; {bound}"
    trained = {
        "fit_cpu_seconds": None,  # the cluster's, not one thread's
        "predict_cpu_seconds": None,
        "trained_on_tracks": metrics["train_tracks"],
        "trained_on_rows": metrics["train_segments"],
        "sampled": False,
        "rounds": metrics["rounds_used"],
        "bound": f"{bound}; {metrics['rounds_used']} rounds",
    }
    return _row(name, data, metrics, metrics["fit_seconds"], trained)


def _trained_on(fitted: Fitted) -> dict[str, Any]:
    """The comparison's columns that say what a model was trained on and what bounded it."""
    return {
        "fit_cpu_seconds": fitted.fit_cpu_seconds,
        "predict_cpu_seconds": fitted.predict_cpu_seconds,
        "trained_on_tracks": fitted.trained_on_tracks,
        "trained_on_rows": fitted.trained_on_rows,
        "sampled": fitted.sampled,
        "rounds": fitted.rounds,
        "bound": fitted.bound,
    }


def _cross_validated(
    client: Client, data: TrainingData, names: list[str], plan: Plan, *, k: int
) -> tuple[list[dict[str, Any]], str, pd.DataFrame]:
    """Every model on every fold (one task each); per model the mean over folds and its interval."""
    seed = plan.seed
    by_row = partial(_row_folds, tracks=data.tracks, split=data.split, k=k, seed=seed)
    parts = [p for p, _ in data.store.parts()]
    read = partial(
        read_folds, AllRows(data.store, data.kept), parts, names=data.names, classes=data.classes,
        folds=by_row, cap=plan.cap,
    )  # fmt: skip
    held = {w: _pinned(client, w, read) for w in plan.workers}
    # the folds are drawn on the workers, from the rows each reads in the same order: the same folds
    protocol = _pinned(client, plan.workers[0], _protocol, held[plan.workers[0]]).result()
    training = _fold_training_tracks(data, k=k, seed=seed)
    common = {"n_classes": len(data.classes), "seed": seed, "limits": plan.limits}
    jobs = {
        (name, fold): partial(
            lambda w, name, fold: _pinned(
                client, w, fit_model_fold, name, held[w], fold, sample=plan.sample(name, training[fold]),
                validation=plan.validation(name, training[fold]), **common, key=f"compare-fold-{name}-{fold}",
            ),
            name=name, fold=fold,
        )
        for name in names
        for fold in range(k)
    }  # fmt: skip
    per_fold = []
    for (name, fold), fitted in _schedule(client, jobs, plan):
        scores = evaluate(fitted.proba, fitted.ids, data.classes, seed=seed)
        per_fold.append(
            {
                "model": name,
                "fold": fold,
                **{key: scores[key] for key in SCORES},
                "fit_seconds": fitted.fit_seconds,
                **_trained_on(fitted),
            }
        )
    table = pd.DataFrame(per_fold).sort_values(["model", "fold"], key=_model_order(names))
    table = table.reset_index(drop=True)
    rows = []
    for name in names:
        mine = table[table.model == name]
        row: dict[str, Any] = {"model": name, "split": data.split.name, "leaky": data.split.leaky, "folds": k}
        infos = {key: fold_interval(mine[key].to_numpy()) for key in SCORES}
        for key, info in infos.items():
            row.update(
                {
                    key: info["mean"],
                    f"{key}_std": info["std"],
                    f"{key}_low": info["low"],
                    f"{key}_high": info["high"],
                }
            )
        row["interval"] = infos["track_accuracy"]["method"]
        row["fit_seconds"] = float(mine.fit_seconds.mean())
        row["fit_cpu_seconds"] = float(mine.fit_cpu_seconds.mean())
        row["predict_cpu_seconds"] = float(mine.predict_cpu_seconds.mean())
        row["trained_on_tracks"] = int(mine.trained_on_tracks.max())  # per fold: the largest
        row["trained_on_rows"] = int(mine.trained_on_rows.max())
        row["sampled"] = bool(mine.sampled.any())
        rounds = mine.rounds.dropna()
        row["rounds"] = float(rounds.mean()) if len(rounds) else None
        row["bound"] = str(mine.bound.iloc[0]) + (f" (fold 0 of {k})" if k > 1 else "")
        rows.append(row)
        log.info(
            "compare: %-13s %s: segment accuracy %.3f, track accuracy %s, mean over %d folds; %s",
            name, data.split.label(), row["segment_accuracy"],
            interval_text(row["track_accuracy"], infos["track_accuracy"]), k, row["bound"],
        )  # fmt: skip
    return rows, protocol, table


@dataclass(frozen=True)
class AllRows:
    """Reads every row of some parts (of the corpus's tracks), on a worker."""

    store: FeatureStore
    kept: frozenset[str] | None = None

    def __call__(self, parts: list[str]) -> pd.DataFrame:
        rows = self.store.read_parts(parts)
        if self.kept is not None:
            rows = rows[rows.track_id.isin(self.kept)].reset_index(drop=True)
        return rows


def _row_folds(rows: pd.DataFrame, *, tracks: pd.DataFrame, split: Split, k: int, seed: int) -> Any:
    return row_folds(rows, tracks, split, n_splits=k, seed=seed, key="compare.folds")


def _protocol(held: Any) -> str:
    return held.protocol


def _train_tracks(data: TrainingData) -> pd.DataFrame:
    """The tracks (track_id, label, group) that have rows on the split's train side."""
    if data.split.leaky:
        return data.tracks
    return data.tracks[data.tracks.track_id.isin(data.split.train_tracks)]


def _fold_training_tracks(data: TrainingData, *, k: int, seed: int) -> dict[int, pd.DataFrame]:
    """Per fold, the tracks with rows on its training side (the leaky split's folds are of
    segments: every track trains in every fold)."""
    if data.split.leaky:
        return dict.fromkeys(range(k), data.tracks)
    fold, _ = track_folds(data.tracks, n_splits=k, seed=seed, key="compare.folds")
    of_track = data.tracks.track_id.map(fold).to_numpy()
    return {f: data.tracks[of_track != f] for f in range(k)}


def _model_order(names: list[str]) -> Callable[[pd.Series], pd.Series]:
    order = {name: i for i, name in enumerate(names)}
    return lambda column: column.map(order) if column.name == "model" else column


def _schedule(client: Client, jobs: dict[Any, Callable[[str], Future]], plan: Plan) -> Any:
    """Run `jobs` (key -> submit on a given worker), the costliest first, each on the next worker with
    a free slot; yield (key, result) as they finish."""
    waiting = sorted(jobs, key=lambda key: _cost_rank(key))
    free = [w for w in plan.workers for _ in range(plan.slots[w])]
    running: dict[Future, tuple[Any, str]] = {}
    done = as_completed()
    while waiting or running:
        while waiting and free:
            worker = free.pop(0)
            key = waiting.pop(0)
            future = jobs[key](worker)
            running[future] = (key, worker)
            done.add(future)
        future = next(done)
        key, worker = running.pop(future)
        free.append(worker)
        yield key, future.result()


def _cost_rank(key: Any) -> tuple[int, Any]:
    name = key[0] if isinstance(key, tuple) else key
    return (COST_ORDER.index(name) if name in COST_ORDER else len(COST_ORDER), key)


def _pinned(
    client: Client, worker: str, fn: Callable, *args: Any, key: str | None = None, **kwargs: Any
) -> Future:
    """`fn` on `worker`, where its inputs are; pinned (Dask would otherwise copy a worker's rows to
    balance load)."""
    key = f"{key or getattr(fn, '__name__', 'compare-read')}-{uuid.uuid4().hex}"
    return client.submit(
        fn, *args, key=key, workers=[worker], allow_other_workers=False, pure=False, **kwargs
    )
