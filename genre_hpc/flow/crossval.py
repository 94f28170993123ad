"""Cross-validation where the rows are: the driver plans (which tracks, which fold), the workers read
the dataset's parts themselves and fit the folds beside the rows they hold.

Two users:
- `tune`'s grid search (dask-ml GridSearchCV) runs on a track-stratified sample of the training
  tracks. Each worker reads its run of parts and keeps the sampled tracks' rows (`TrackRows`);
  one task joins them into the search's arrays and its fold column (`search_arrays`), so the
  graph dask-ml builds holds keys, not rows. `FoldColumn` is the splitter that reads that column.
- `evaluate`'s folds side by side: every worker reads all rows once (`read_held`, a pinned future
  per worker) and each fold is one single-threaded XGBClassifier fit on the worker that holds
  them (`fit_fold`), stopped early on a validation slice of the fold's training tracks, with the
  segment cap on the rows it trains on. `fits_worker` is the rule that says whether those folds
  fit a worker's memory at all.

Every function here is pure given its inputs (fixed seeds, rows in the dataset's part order), so
the same run gives the same folds, slices and models whichever worker computes them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from dask.utils import parse_bytes
from sklearn.model_selection._split import _BaseKFold
from xgboost import XGBClassifier

from genre_hpc.flow.dataset import FeatureStore
from genre_hpc.flow.sampling import cap_segments, stratified_tracks
from genre_hpc.flow.split import Split, segment_folds

KEYS = ["track_id", "segment", "label"]

# --- tune: the search sample --------------------------------------------------------------------


@dataclass(frozen=True)
class TrackRows:
    """Reads some parts on a worker and keeps the rows of `tracks` (the search's sample), at most
    `cap` segments of each, spread over the track (sampling.cap_segments). For the leaky
    random_segments split, whose tracks lie on both sides, `split` keeps its training side too.
    Small and picklable: what the driver sends is the track ids, never the rows."""

    store: FeatureStore
    names: list[str]
    tracks: frozenset[str]
    split: Split | None = None
    cap: int | None = None

    def __call__(self, parts: list[str]) -> pd.DataFrame:
        rows = self.store.read_parts(parts)
        keep = rows.track_id.isin(self.tracks).to_numpy()
        if self.split is not None:
            keep &= self.split.mask(rows, "train")
        rows = cap_segments(rows[keep], self.cap)
        return rows[KEYS + self.names].reset_index(drop=True)


def search_arrays(
    frames: list[pd.DataFrame],
    *,
    names: list[str],
    classes: list[str],
    fold_of_track: pd.Series | None,
    n_splits: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The search's features (float32), class codes (the order of `classes`) and fold of every row
    (-1: trained on in every fold), from the workers' frames in share order; runs as one task.

    Folds are whole groups (`fold_of_track`, drawn on the driver from the sampled tracks), or for the
    leaky split (`fold_of_track` None) a StratifiedKFold of the segments, as tune has always drawn."""
    rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    x = np.ascontiguousarray(rows[names].to_numpy(dtype=np.float32))
    y = rows.label.map({label: i for i, label in enumerate(classes)}).to_numpy(dtype=np.int32)
    if fold_of_track is not None:
        fold = rows.track_id.map(fold_of_track).to_numpy(dtype=np.int64)
    else:
        fold = segment_folds(y, n_splits=n_splits, seed=seed)
    return x, y, fold


class FoldColumn(_BaseKFold):
    """k folds read off a column of fold numbers, passed as `groups` (-1: in no test fold).

    A _BaseKFold, so that dask-ml takes n_splits as given instead of computing the rows to count
    the folds; the column itself is computed on a worker (`search_arrays`)."""

    def __init__(self, n_splits: int) -> None:
        super().__init__(n_splits=n_splits, shuffle=False, random_state=None)

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if groups is None:
            raise ValueError("FoldColumn reads the folds from groups")
        fold = np.asarray(groups)
        for k in range(self.n_splits):
            yield np.flatnonzero(fold != k), np.flatnonzero(fold == k)


# --- evaluate: folds side by side ---------------------------------------------------------------

# What a worker holds while it fits folds side by side, in units of the rows' float32 features
# (rows x features x 4 B), measured with XGBClassifier (hist, depth 6, 16 classes, one thread) on
# 2x10^5 and 5x10^5 random rows, peak RSS over the rows' size: the rows it holds for all its folds
# (features, ids, fold column) 1.02-1.19; one fold's fit (the training slice's copy, xgboost's
# quantised matrix, gradients, predictions) 2.6-3.3 over the fold's training rows.
HELD_FACTOR = 1.2
FIT_FACTOR = 3.5
# A worker's own memory (interpreter, numpy, pandas, xgboost, scikit-learn, dask): 360 MiB measured
# (RSS of a LocalCluster worker after importing what a fold task imports).
WORKER_BASE_BYTES = 400 * 2**20
# Dask pauses a worker at 80 % of its memory limit (distributed.worker.memory.pause).
USABLE_SHARE = 0.8
# What xgboost.dask needs to train on a worker's share of the rows (issue 17's bound): 1 GB plus
# 2.5x the share as float32. Folds side by side hold every row on every worker, so they are chosen
# only when they need no more than that: on many workers (small shares) or many rows, the dask
# engine, fold after fold over the whole cluster, is also the faster one.
SHARE_BASE_BYTES = 10**9
SHARE_FACTOR = 2.5


@dataclass(frozen=True)
class Fit:
    """Whether evaluate's folds fit a worker when they run side by side, and the numbers why."""

    fits: bool
    need_bytes: int
    limit_bytes: int | None
    rows: int
    fold_train_rows: int
    features: int
    threads: int
    share_bytes: int | None = None  # the share bound, when the number of workers is known

    def reason(self) -> str:
        gib = 2**30
        need = (
            f"{self.rows:,} rows held ({HELD_FACTOR} x rows x {self.features} features x 4 B) + "
            f"{self.threads} fit(s) at once of {self.fold_train_rows:,} training rows "
            f"({FIT_FACTOR} x rows x features x 4 B) + {WORKER_BASE_BYTES / gib:.2f} GiB = "
            f"{self.need_bytes / gib:.2f} GiB per worker"
        )
        bounds = []
        if self.limit_bytes is not None:
            usable, limit = USABLE_SHARE * self.limit_bytes / gib, self.limit_bytes / gib
            text = f"{usable:.2f} GiB ({USABLE_SHARE:.0%} of a worker's {limit:.2f} GiB limit)"
            bounds.append((usable, text))
        if self.share_bytes is not None:
            bounds.append(
                (self.share_bytes / gib,
                 f"{self.share_bytes / gib:.2f} GiB (what xgboost.dask would need for a worker's share: "
                 f"1 GB + {SHARE_FACTOR} x its rows x features x 4 B)")
            )  # fmt: skip
        if not bounds:
            return f"{need}; the workers have no memory limit"
        # the bound that decides: the first one exceeded, else the tightest
        exceeded = [text for size, text in bounds if self.need_bytes > size * gib]
        sign, text = (">", exceeded[0]) if exceeded else ("<=", min(bounds)[1])
        return f"{need} {sign} {text}"


def fits_worker(
    *,
    rows: int,
    fold_train_rows: int,
    features: int,
    threads: int,
    limit_bytes: int | None,
    workers: int | None = None,
) -> Fit:
    """The rule of evaluate.engine=auto: every worker holds all `rows` and fits `threads` folds of
    `fold_train_rows` at once; that must stay under the share of its memory limit where Dask
    pauses it (no limit, None or 0, is no bound), and, given the number of `workers`, under what
    xgboost.dask would need to train on a worker's share of the rows (SHARE_BASE_BYTES +
    SHARE_FACTOR x the share)."""
    unit = features * 4
    need = int(HELD_FACTOR * rows * unit + FIT_FACTOR * threads * fold_train_rows * unit + WORKER_BASE_BYTES)
    limit = limit_bytes or None
    share = None if not workers else int(SHARE_BASE_BYTES + SHARE_FACTOR * rows / workers * unit)
    fits = (limit is None or need <= USABLE_SHARE * limit) and (share is None or need <= share)
    return Fit(fits, need, limit, rows, fold_train_rows, features, threads, share)


def choose_engine(
    client: Any,
    *,
    key: str,
    asked: str,
    worker_memory: str | int | None,
    rows: int,
    fit_rows: int,
    features: int,
    tasks: str,
    dask: str,
) -> tuple[str, str]:
    """`asked` (the stage's `key`: auto, tasks or dask), or for auto the engine the rows call for,
    and why: "tasks" (every worker holds all `rows` and fits beside them, `fit_rows` training rows
    per fit, one per thread) when `fits_worker` says they fit, "dask" (xgboost.dask over the whole
    cluster) when they do not; `tasks` and `dask` say what each means to the stage. `worker_memory`
    (bytes or "4GB") stands in for the workers' own memory limit; the smallest worker decides."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    if worker_memory is not None:
        limit = parse_bytes(worker_memory) if isinstance(worker_memory, str) else int(worker_memory)
    else:  # 0 is no limit
        limit = min((int(w.get("memory_limit") or 0) for w in workers), default=0)
    fit = fits_worker(
        rows=rows, fold_train_rows=fit_rows, features=features,
        threads=max((int(w.get("nthreads") or 1) for w in workers), default=1), limit_bytes=limit,
        workers=len(workers),
    )  # fmt: skip
    if asked != "auto":
        return asked, f"as {key} asks ({'it would fit' if fit.fits else 'would not fit'}: {fit.reason()})"
    if fit.fits:
        return "tasks", f"auto: {tasks}, each worker holding all rows: {fit.reason()}"
    return "dask", f"auto: {dask}, since {fit.reason()}"


def fold_count(folds: int | str, *, rows: int, large_folds: int, large_from_rows: int) -> tuple[int, str]:
    """evaluate.folds, or for `auto` 10 folds (the GTZAN literature's protocol) below
    `large_from_rows` segment rows and `large_folds` from there on, and why. At that size each
    fold costs about a whole train on a fixed cluster, while the interval over folds is already
    narrow (10^5 tracks tested once each): fewer folds buy the time back, not the honesty."""
    if folds != "auto":
        return int(folds), f"evaluate.folds={folds}"
    if rows < large_from_rows:
        return 10, f"auto: 10 folds, {rows:,} rows < evaluate.large_from_rows={large_from_rows:,}"
    return large_folds, (
        f"auto: evaluate.large_folds={large_folds} folds, {rows:,} rows >= evaluate.large_from_rows="
        f"{large_from_rows:,} (each fold costs about a train at this size)"
    )


@dataclass(frozen=True)
class Held:
    """All rows of the dataset, as one worker holds them for the folds it fits: the features and
    small integer columns (track ids as positions in `tracks`), about rows x features x 4 B."""

    x: np.ndarray  # float32 features, C order
    y: np.ndarray  # class codes, the order of the classes
    track: np.ndarray  # position of the row's track in `tracks`
    segment: np.ndarray
    fold: np.ndarray  # the test fold of each row (-1: in none)
    tracks: np.ndarray  # track ids

    def __len__(self) -> int:
        return len(self.y)


def read_held(
    store: FeatureStore,
    parts: list[tuple[str, int]],
    *,
    names: list[str],
    classes: list[str],
    track_ids: np.ndarray,
    fold_of_track: np.ndarray | None,
    n_splits: int,
    seed: int,
) -> Held:
    """Read every part (`parts`: path and rows, in the dataset's fixed order) into one preallocated
    array, keeping the rows of `track_ids` (the tracks the run uses), one part at a time.

    Folds: `fold_of_track` (aligned with `track_ids`, drawn on the driver) for an honest split; for
    the leaky one (None), the StratifiedKFold of segments that evaluate has always drawn, drawn
    here on the rows in the dataset's order, the same on every worker."""
    ids = pd.Index(track_ids)
    codes = {label: i for i, label in enumerate(classes)}
    total = sum(n for _, n in parts)
    x = np.empty((total, len(names)), dtype=np.float32)
    y, track, segment = (np.empty(total, dtype=np.int32) for _ in range(3))
    at = 0
    for part, _ in parts:
        rows = store.read_parts([part])
        position = ids.get_indexer(rows.track_id)
        rows, position = rows[position >= 0], position[position >= 0]
        stop = at + len(rows)
        x[at:stop] = rows[names].to_numpy(dtype=np.float32)
        y[at:stop] = rows.label.map(codes).to_numpy(dtype=np.int32)
        track[at:stop] = position
        segment[at:stop] = rows.segment.to_numpy()
        at = stop
    x, y, track, segment = x[:at], y[:at], track[:at], segment[:at]
    if fold_of_track is not None:
        fold = np.asarray(fold_of_track, dtype=np.int64)[track]
    else:
        fold = segment_folds(y, n_splits=n_splits, seed=seed)
    return Held(x, y, track, segment, fold, ids.to_numpy(dtype=object))


def validation_tracks(
    tracks: pd.DataFrame, fold_of_track: pd.Series | None, fold: int, *, fraction: float, seed: int
) -> frozenset[str]:
    """The tracks a fold's fit watches for early stopping and never trains on: `fraction` of the
    groups among the fold's training tracks (all tracks for the leaky split, `fold_of_track` None,
    whose tracks lie in every fold), stratified by genre, each genre keeping a group to train on."""
    pool = tracks if fold_of_track is None else tracks[tracks.track_id.map(fold_of_track).to_numpy() != fold]
    return stratified_tracks(pool, fraction=fraction, seed=seed + fold, keep_one=True)


def fit_fold(
    held: Held,
    fold: int,
    validation: np.ndarray,
    *,
    params: dict[str, Any],
    n_classes: int,
    early_stopping_rounds: int | None,
    segments_per_track: int | None,
) -> dict[str, Any]:
    """One fold, fitted on the worker that holds the rows: XGBClassifier (one thread) on the rows
    outside `fold` and outside the `validation` tracks (positions in `held.tracks`), at most
    `segments_per_track` of each track, stopped once the validation tracks' loss has not improved
    for `early_stopping_rounds` rounds; then the fold's test rows' probabilities (over all
    `n_classes`) with their track ids and labels (as `classes` codes)."""
    trains, watches, test = fold_rows(held, fold, validation, segments_per_track=segments_per_track)
    # XGBoost wants the classes it trains on numbered 0..n-1: a genre absent from the fold's
    # training rows leaves a gap, so number the present ones afresh (validation rows of a genre
    # it does not train on cannot be scored by it, and are left out)
    present, y_train = np.unique(held.y[trains], return_inverse=True)
    watches = watches[np.isin(held.y[watches], present)]
    stop = early_stopping_rounds if len(watches) else None
    model = XGBClassifier(**{**params, "n_jobs": 1, "early_stopping_rounds": stop})
    started = time.perf_counter()
    model.fit(
        held.x[trains], y_train, verbose=False,
        eval_set=[(held.x[watches], np.searchsorted(present, held.y[watches]))] if stop else None,
    )  # fmt: skip
    fit_seconds = time.perf_counter() - started
    proba = np.zeros((int(test.sum()), n_classes))
    proba[:, present] = model.predict_proba(held.x[test])  # at the best round, when stopped early
    rounds = model.best_iteration + 1 if stop else model.get_booster().num_boosted_rounds()
    return {
        "fold": fold,
        "proba": proba,
        "track_id": held.tracks[held.track[test]],
        "segment": held.segment[test],
        "y": held.y[test],
        "rounds_used": int(rounds),
        "fit_seconds": fit_seconds,
        "train_segments": int(len(trains)),
        "train_tracks": int(len(np.unique(held.track[trains]))),
        "validation_segments": int(len(watches)),
        "validation_tracks": int(len(np.unique(held.track[watches]))),
    }


def fold_rows(
    held: Held, fold: int, validation: np.ndarray, *, segments_per_track: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fold's rows: the positions it trains on and those it watches (the rows outside the fold of
    the `validation` tracks, positions in `held.tracks`), both capped at `segments_per_track` per
    track, and its test mask."""
    test = held.fold == fold
    watched = ~test & np.isin(held.track, validation)
    trains = np.flatnonzero(~test & ~watched)
    watches = np.flatnonzero(watched)
    if segments_per_track is not None:
        trains, watches = (_capped(held, idx, segments_per_track) for idx in (trains, watches))
    return trains, watches, test


def _capped(held: Held, idx: np.ndarray, cap: int) -> np.ndarray:
    """The rows `idx` keeps under the cap of `cap` segments per track, in order."""
    rows = pd.DataFrame({"track_id": held.track[idx], "segment": held.segment[idx]}, index=idx)
    return cap_segments(rows, cap).index.to_numpy()
