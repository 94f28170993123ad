"""The origin study's model lineup (k-NN, RF, SVM, MLP, XGBoost, XGBoost-RF), one fit per Dask task,
each model's cost bounded so that the comparison finishes at fma_large's 10^6 rows.

What bounds each model (`Limits`, from compare.* and model.*; each row of the comparison says which
applied, next to its numbers):
- knn, svm: their fit or prediction grows with the square of the training rows, so they train on a
  sample of at most `sample_tracks[name]` training tracks (whole groups, every genre:
  sampling.stratified_tracks) and say so;
- random_forest, xgboost_rf: each tree grows on at most `forest_rows` rows (a bootstrap of that
  size, a subsample for xgboost's forest);
- xgboost: at most `boost_rows` rows per round (a subsample), and rounds as needed: early stopping
  on a slice of the training tracks (whole groups) that the model never trains on;
- mlp: early stopping on the same validation tracks as xgboost (whole groups, never trained on),
  and at most `mlp_row_passes` rows seen in all (epochs x rows).

Memory: a worker holds each side's rows once (`read_side`, part by part into one array, the
validation tracks' rows last so that a fit that stops early takes its two sets of rows as views),
and no fit copies them whole: the standardisation is fitted and applied a block at a time
(`ArrayScaler`), the MLP trains on shuffled blocks scaled as they are used (`_fit_mlp`), the random
forest has 100 trees. At 10^6 rows each of these copies had put a worker over 1 GB + 2.5x its share.

The rows are held by the workers (stages/compare.py reads them there); a fit gets them as `Rows`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import config_context
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from xgboost import XGBClassifier

from genre_hpc.flow.kernel_svm import BlockSVC
from genre_hpc.flow.moments import SCALE_BLOCK_ROWS, array_moments, sample_std
from genre_hpc.flow.sampling import cap_segments

MODELS = ("knn", "random_forest", "svm", "mlp", "xgboost", "xgboost_rf")
# the models whose cost grows with the square of their training rows: trained on a sample of tracks
QUADRATIC = ("knn", "svm")
# the models of trees: unchanged by standardisation
TREES = ("random_forest", "xgboost", "xgboost_rf")
# the models that stop early on validation tracks (Limits.early_stopping_rounds set)
STOPS_EARLY = ("xgboost", "mlp")


@dataclass(frozen=True)
class Limits:
    """What bounds each model's cost (see the module's docstring); None lifts a bound."""

    sample_tracks: dict[str, int | None] = field(default_factory=dict)
    forest_rows: int | None = None
    boost_rows: int | None = None
    mlp_row_passes: int | None = None
    early_stopping_rounds: int | None = None


@dataclass(frozen=True)
class Rows:
    """Feature rows held on a worker: float32 features, class codes (over all classes), track ids and
    labels, in the dataset's order."""

    x: np.ndarray
    y: np.ndarray
    track_id: np.ndarray
    label: np.ndarray
    # the tracks whose rows come last (read_side's `last`), from row `last_from` on
    last: frozenset[str] | None = None
    last_from: int | None = None

    def __len__(self) -> int:
        return len(self.y)

    def take(self, keep: np.ndarray | slice) -> Rows:
        return Rows(self.x[keep], self.y[keep], self.track_id[keep], self.label[keep])

    def split_off(self, tracks: frozenset[str]) -> tuple[Rows, Rows]:
        """(the rows of `tracks`, the others): views when they are the tracks read last, copies
        otherwise."""
        if self.last is not None and self.last_from is not None and tracks == self.last:
            return self.take(slice(self.last_from, None)), self.take(slice(0, self.last_from))
        inside = self.of_tracks(tracks)
        return self.take(inside), self.take(~inside)

    def of_tracks(self, tracks: frozenset[str]) -> np.ndarray:
        """Boolean mask of the rows of `tracks`."""
        return pd.Series(self.track_id).isin(tracks).to_numpy()

    def ids(self) -> pd.DataFrame:
        return pd.DataFrame({"track_id": self.track_id, "label": self.label})


@dataclass(frozen=True)
class Fitted:
    """One model's test probabilities (columns: all classes), the test rows' ids in the same order,
    and what it was trained on."""

    proba: np.ndarray
    ids: pd.DataFrame
    fit_seconds: float
    fit_cpu_seconds: float
    predict_cpu_seconds: float
    trained_on_tracks: int
    trained_on_rows: int
    sampled: bool
    bound: str
    rounds: int | None = None


# xgboost's histogram bins, as model.params has them: its histogram cache holds 174 features x bins
# x 16 B per node of the tree it grows, 364 MB at 256 bins for xgboost_rf's depth-8 trees; with the
# rows held, compare's workers reached 2.3 GB at 10^6 rows
MAX_BIN = 64

# scikit-learn's chunked pairwise distances (k-NN's prediction) may take this many MiB at once; its
# default, 1024, put a compare worker at 2.1 GB with 10^6 rows held
WORKING_MEMORY_MB = 128


def fit_model(name: str, train: Rows, test: Rows, **kwargs: Any) -> Fitted:
    """`_fit_model` with scikit-learn's working memory bounded (WORKING_MEMORY_MB)."""
    with config_context(working_memory=WORKING_MEMORY_MB):
        return _fit_model(name, train, test, **kwargs)


def _fit_model(
    name: str,
    train: Rows,
    test: Rows,
    *,
    n_classes: int,
    seed: int,
    limits: Limits,
    sample: frozenset[str] | None = None,
    validation: frozenset[str] | None = None,
) -> Fitted:
    """Fit one model of the lineup (standardised inputs) on `train` and return its test
    probabilities; runs on a worker.

    `sample`: the tracks the model trains on (None: all of `train`): QUADRATIC's, and every
    scikit-learn model's when all rows do not fit a worker; `validation`: the training tracks that
    xgboost's and the MLP's early stopping watch, never trained on (None: no early stopping).
    """
    if sample is not None:
        train = train.take(train.of_tracks(sample))
    watched = None
    if name in STOPS_EARLY and validation is not None and limits.early_stopping_rounds:
        inside, outside = train.split_off(validation)
        if len(inside) and len(outside):
            watched, train = inside, outside
    # XGBoost wants the classes it sees numbered 0..n-1: a class absent from the training side
    # (a genre only the test side has) leaves a gap, so number the present ones afresh
    present, y_local = np.unique(train.y, return_inverse=True)
    # trees split on the order of values, which standardising keeps: they skip its copy of the rows
    scaler = None if name in TREES else ArrayScaler.fit(train.x)
    estimator, bound, fit_params = build(name, seed=seed, n_rows=len(train), limits=limits)
    tracks = len(set(train.track_id))
    if sample is not None:
        sampled = f"trained on a sample of {tracks:,} training tracks (whole groups, every genre)"
        bound = f"{sampled}; {bound}" if bound else sampled
    elif name in QUADRATIC:
        bound = "trained on every training track"
    if name == "svm":
        estimator = _calibrated_svm(estimator, train, y_local)
    y_watched = None
    if watched is not None:
        codes = {c: i for i, c in enumerate(present)}
        known = np.isin(watched.y, present)
        y_watched = np.array([codes[c] for c in watched.y[known]], dtype=np.int32)
        watched = watched.take(known) if not known.all() else watched
        patience = limits.early_stopping_rounds if name == "xgboost" else MLP_PATIENCE
        unit = "rounds" if name == "xgboost" else "epochs"
        bound += "; " + stopping_text(patience, unit, len(set(watched.track_id)))
    if name == "xgboost" and watched is not None:
        fit_params["eval_set"] = [(watched.x, y_watched)]
        fit_params["verbose"] = False
    started, cpu = time.perf_counter(), time.thread_time()
    if name == "mlp":
        watching = None if watched is None else (watched.x, y_watched)
        epochs, stopped = _fit_mlp(estimator, scaler, train.x, y_local, watching, seed=seed)
        bound += f"; {epochs} epochs" + ("" if stopped else ", its epoch bound")
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            estimator.fit(_scaled(scaler, train.x), y_local, **fit_params)
        for w in caught:  # anything but convergence is still said
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    fit_seconds = time.perf_counter() - started
    # the fit's own CPU seconds (one thread: Dask's workers run BLAS and OpenMP single-threaded):
    # what the fit costs, whatever else shares the machine
    fit_cpu_seconds = time.thread_time() - cpu
    rounds = None
    if name == "xgboost":
        best = getattr(estimator, "best_iteration", None) if watched is not None else None
        rounds = int(best) + 1 if best is not None else int(estimator.n_estimators)
        bound += f"; {rounds} rounds"
    cpu = time.thread_time()
    proba = _predict_proba(estimator, scaler, test.x)
    predict_cpu_seconds = time.thread_time() - cpu  # k-NN's and the SVM's cost is mostly here
    # the absent classes get a column of zeros: their tracks count as wrong
    full = np.zeros((len(test), n_classes))
    full[:, present[estimator.classes_]] = proba
    return Fitted(
        proba=full,
        ids=test.ids(),
        fit_seconds=fit_seconds,
        fit_cpu_seconds=fit_cpu_seconds,
        predict_cpu_seconds=predict_cpu_seconds,
        trained_on_tracks=tracks,
        trained_on_rows=len(train),
        sampled=sample is not None,
        bound=bound,
        rounds=rounds,
    )


def _scaled(scaler: ArrayScaler | None, x: np.ndarray) -> np.ndarray:
    return x if scaler is None else scaler.transform(x)


PREDICT_BLOCK_ROWS = 32_768


def _predict_proba(estimator: BaseEstimator, scaler: ArrayScaler | None, x: np.ndarray) -> np.ndarray:
    """The estimator's probabilities for the rows `x`, a block of rows at a time (each row's are its
    own): the SVM's libsvm takes float64 copies of what it predicts and its 120 pairwise decision
    values, which for a test side of 2x10^5 rows at once put a worker 0.5-0.9 GB higher."""
    blocks = [
        estimator.predict_proba(_scaled(scaler, x[start : start + PREDICT_BLOCK_ROWS]))
        for start in range(0, max(len(x), 1), PREDICT_BLOCK_ROWS)
    ]
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]


@dataclass(frozen=True)
class ArrayScaler:
    """(x - mean) / std per column of float32 rows, fitted and applied a block of rows at a time
    in float64 (flow/moments.py, as the training stage standardises its shares).
    StandardScaler.fit subtracted the mean from all rows at once, a float64 copy twice the rows'
    size (1.1 GB at 8x10^5 rows)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> ArrayScaler:
        n, mean, m2 = array_moments(x)
        return cls(mean, sample_std(n, m2))

    def transform(self, x: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape, dtype=np.float32)
        for start in range(0, len(x), SCALE_BLOCK_ROWS):
            stop = start + SCALE_BLOCK_ROWS
            out[start:stop] = (x[start:stop].astype(np.float64) - self.mean) / self.std
        return out


# the MLP's early stopping: scikit-learn's defaults for MLPClassifier(early_stopping=True)
MLP_PATIENCE = 10
MLP_TOL = 1e-4
MLP_BLOCK_ROWS = 65_536  # rows scaled at once for partial_fit: 45 MB of float32 at 174 features


def _fit_mlp(
    mlp: MLPClassifier,
    scaler: ArrayScaler,
    x: np.ndarray,
    y: np.ndarray,
    watched: tuple[np.ndarray, np.ndarray] | None,
    *,
    seed: int,
) -> tuple[int, bool]:
    """Train `mlp` for at most mlp.max_iter epochs, each over all rows in a fresh random order, a
    block at a time (scaled as it is used, `partial_fit`); after each epoch score the `watched`
    rows (the validation tracks'), and stop once that accuracy has not improved by MLP_TOL for
    MLP_PATIENCE epochs, keeping the best epoch's weights. MLPClassifier.fit(early_stopping=True)
    held a scaled copy of all rows and copied them again for a validation split of random
    segments (whose tracks it also trained on). Returns the epochs run and whether it stopped."""
    classes = np.arange(int(y.max()) + 1)
    rng = np.random.default_rng(seed)
    best, best_score, stale = None, -np.inf, 0
    for epoch in range(1, int(mlp.max_iter) + 1):
        order = rng.permutation(len(y))
        for start in range(0, len(y), MLP_BLOCK_ROWS):
            rows = np.sort(order[start : start + MLP_BLOCK_ROWS])  # in order: a faster gather
            mlp.partial_fit(scaler.transform(x[rows]), y[rows], classes=classes)
        if watched is None:
            continue
        score = float((mlp.predict(scaler.transform(watched[0])) == watched[1]).mean())
        if score > best_score + MLP_TOL:
            best = ([c.copy() for c in mlp.coefs_], [b.copy() for b in mlp.intercepts_])
            best_score, stale = score, 0
        else:
            stale += 1
        if stale >= MLP_PATIENCE:
            mlp.coefs_, mlp.intercepts_ = best
            return epoch, True
    if best is not None:
        mlp.coefs_, mlp.intercepts_ = best
    return int(mlp.max_iter), False


def build(name: str, *, seed: int, n_rows: int, limits: Limits) -> tuple[BaseEstimator, str, dict[str, Any]]:
    """The unfitted estimator of `name` for `n_rows` training rows, what bounds its cost (as the
    comparison says it), and its fit's keyword arguments. One thread per fit: the cluster provides
    the parallelism, one model per task."""
    if name == "knn":
        return KNeighborsClassifier(n_neighbors=5), "", {}
    if name == "svm":
        return BlockSVC(C=10.0), "", {}  # SVC that predicts with BLAS (flow/kernel_svm.py)
    if name == "random_forest":
        per_tree = _rows_per_tree(n_rows, limits.forest_rows)
        # 100 trees (scikit-learn's default): 300 fully grown trees of 16 classes held 1.5 GB
        forest = RandomForestClassifier(n_estimators=100, max_samples=per_tree, n_jobs=1, random_state=seed)
        return forest, _per_tree_text(per_tree, n_rows, "100 trees, each on a bootstrap of"), {}
    if name == "mlp":
        epochs = 400
        if limits.mlp_row_passes is not None:
            epochs = max(1, min(epochs, math.ceil(limits.mlp_row_passes / max(n_rows, 1))))
        mlp = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=epochs, random_state=seed)
        return mlp, f"at most {epochs} epochs", {}
    if name == "xgboost":
        fraction = _fraction(n_rows, limits.boost_rows, 1.0)
        rounds = limits.early_stopping_rounds
        boost = XGBClassifier(
            n_estimators=300, max_depth=6, subsample=fraction, n_jobs=1, random_state=seed,
            early_stopping_rounds=rounds or None, max_bin=MAX_BIN,
        )  # fmt: skip
        return boost, subsample_text(fraction), {}
    if name == "xgboost_rf":
        fraction = _fraction(n_rows, limits.forest_rows, 0.8)  # 0.8: XGBRFClassifier's own default
        # 100 trees, not 300: a tree costs about the same whatever the rows (histograms over 174
        # features x 256 bins per node, depth 8, one tree per class), so 300 trees took 28-82 s on
        # the demo's 800 rows, the longest fit of the lineup.
        # XGBRFClassifier's forest, built as it builds it (one round of parallel trees, learning
        # rate 1, its colsample_bynode and lambda): xgboost 3.4 deprecates that class
        forest = XGBClassifier(
            n_estimators=1, num_parallel_tree=100, learning_rate=1.0, subsample=fraction,
            colsample_bynode=0.8, reg_lambda=1e-5, max_depth=8, n_jobs=1, random_state=seed,
            max_bin=MAX_BIN,
        )  # fmt: skip
        return forest, f"100 trees, each on a {fraction:.3g} subsample", {}
    raise KeyError(name)


# the models that xgboost.dask trains over the whole cluster when the rows do not fit a worker.
# Not xgboost_rf: its 100 x 16 trees of depth 8 each grow on a small subsample, so over the cluster
# its cost is the workers' histogram exchange per tree level, not the rows: at 10^6 rows on 2
# workers it took 963 s, against 546 s in one task holding every row. It joins the sampled models.
ON_DASK = ("xgboost",)


def on_dask(name: str, *, seed: int, limits: Limits) -> tuple[dict[str, Any], int | None]:
    """The parameters of DaskXGBClassifier for `name` (one of ON_DASK) as `build` sets them (threads
    are the workers'), and the rows a round may see (its subsample bound)."""
    if name not in ON_DASK:
        raise KeyError(name)
    estimator, _, _ = build(name, seed=seed, n_rows=0, limits=limits)
    params = {
        key: value
        for key, value in estimator.get_params().items()
        # threads are the workers'; the objective follows the classes, as the classifier sets it
        if value is not None and key not in ("n_jobs", "early_stopping_rounds", "callbacks", "objective")
    }
    return params, limits.boost_rows


def subsample_text(fraction: float) -> str:
    """What bounds a boosting round's rows, as the comparison says it."""
    return "all rows each round" if fraction == 1.0 else f"each round on a {fraction:.3g} subsample"


def stopping_text(patience: int, unit: str, tracks: int) -> str:
    """What ends the rounds (or epochs) of a model that stops early, as the comparison says it."""
    return f"early stopping after {patience} {unit} without gain on {tracks:,} validation tracks"


def _rows_per_tree(n_rows: int, cap: int | None) -> int | None:
    return cap if cap is not None and n_rows > cap else None


def _per_tree_text(per_tree: int | None, n_rows: int, what: str) -> str:
    return f"{what} {per_tree or n_rows:,} of {n_rows:,} rows"


def _fraction(n_rows: int, cap: int | None, default: float) -> float:
    if cap is None or n_rows <= 0:
        return default
    return min(default, cap / n_rows)


def _calibrated_svm(svm: BlockSVC, train: Rows, y: np.ndarray) -> CalibratedClassifierCV:
    """SVC's probabilities as scikit-learn 1.9 recommends them in place of the deprecated
    SVC(probability=True): CalibratedClassifierCV(SVC(), ensemble=False), one SVC on all the rows
    and a sigmoid per class fitted to decision values from cross-validation. The folds here keep
    each track's segments together (SVC's own folds split them: calibrated on segments whose
    neighbours it had trained on)."""
    per_class = pd.Series(train.track_id).groupby(y).nunique()
    folds = int(min(5, per_class.min()))
    if folds < 2:  # a genre of one track: nothing to cross-validate over, calibrate on rows
        return CalibratedClassifierCV(svm, method="sigmoid", ensemble=False, cv=2)
    splits = list(StratifiedGroupKFold(n_splits=folds).split(train.x, y, groups=train.track_id))
    return CalibratedClassifierCV(svm, method="sigmoid", ensemble=False, cv=splits)


def fit_model_fold(name: str, held: FoldRows, fold: int, **kwargs: Any) -> Fitted:
    """fit_model trained on every row outside `fold` (that the segment cap keeps), tested on the
    rows of `fold`: one cross-validation fold as one task, on a worker that read the rows once for
    all folds."""
    test = held.folds == fold
    keep = ~test if held.trains is None else ~test & held.trains
    return fit_model(name, held.rows.take(keep), held.rows.take(test), **kwargs)


# --- the rows, read on the workers ------------------------------------------------------------


@dataclass(frozen=True)
class FoldRows:
    """Every row of the dataset held on a worker for cross-validation: the rows, each row's fold,
    which rows a segment cap lets train (None: all) and how the folds were drawn, in words."""

    rows: Rows
    folds: np.ndarray
    trains: np.ndarray | None
    protocol: str


def as_rows(frame: pd.DataFrame, *, names: list[str], classes: list[str]) -> Rows:
    """A frame of dataset rows (track_id, label, features) as `Rows`. A track's segments share one
    track-id string and a genre's rows one label string (a string per row was 140 MB a side at
    10^6 rows)."""
    codes = {label: i for i, label in enumerate(classes)}
    y = frame.label.map(codes).to_numpy(np.int32)
    number, tracks = pd.factorize(frame.track_id)
    return Rows(
        x=np.ascontiguousarray(frame[names].to_numpy(np.float32)),
        y=y,
        track_id=np.asarray(tracks, dtype=object)[number],
        label=np.asarray(classes, dtype=object)[y],
    )


def read_side(
    read: Callable[[list[str]], pd.DataFrame],
    parts: list[tuple[str, int]],
    *,
    names: list[str],
    classes: list[str],
    cap: int | None = None,
    last: frozenset[str] | None = None,
    keep: frozenset[str] | None = None,
) -> Rows:
    """One side's rows of `parts` (path and rows, as FeatureStore.parts gives them), read on the
    worker that runs this (`read`: TrainingData.reader), only those of the `keep` tracks (None:
    all), at most `cap` segments of each track (sampling.cap_segments; None: all), the rows of the
    `last` tracks after all the others (Rows.split_off then gives both as views).

    Part by part into arrays sized for every row of the parts: the side keeps some of them, and
    the pages it does not fill are never touched, so they cost address space, not memory. The
    worker holds the side's rows once, plus one part and the `last` tracks' rows until they are
    copied in (pieces joined at the end had held the side twice: +1.3 GB at 10^6 rows)."""
    total = sum(n for _, n in parts)
    x = np.empty((total, len(names)), dtype=np.float32)
    y = np.empty(total, dtype=np.int32)
    track_id, label = np.empty(total, dtype=object), np.empty(total, dtype=object)
    at, then = 0, []

    def put(rows: Rows) -> None:
        nonlocal at
        stop = at + len(rows)
        x[at:stop], y[at:stop], track_id[at:stop], label[at:stop] = rows.x, rows.y, rows.track_id, rows.label
        at = stop

    for part, _ in parts:
        frame = read([part])
        if keep is not None:
            frame = frame[frame.track_id.isin(keep).to_numpy()]
        rows = as_rows(cap_segments(frame, cap), names=names, classes=classes)
        at_end = rows.of_tracks(last) if last else np.zeros(len(rows), dtype=bool)
        if at_end.any():
            then.append(rows.take(at_end))
            rows = rows.take(~at_end)
        put(rows)
    split_at = at
    while then:
        put(then.pop(0))
    return Rows(x[:at], y[:at], track_id[:at], label[:at], last=last, last_from=split_at)


def read_folds(
    read: Callable[[list[str]], pd.DataFrame],
    parts: list[str],
    *,
    names: list[str],
    classes: list[str],
    folds: Callable[[pd.DataFrame], tuple[np.ndarray, str]],
    cap: int | None = None,
) -> FoldRows:
    """Every row of `parts` with its fold and the protocol (`folds` of the rows), read on the worker
    that runs this;
    `trains` marks the rows the segment cap keeps for training (a test fold keeps every segment)."""
    frame = read(parts)
    trains = None
    if cap is not None:
        trains = np.zeros(len(frame), dtype=bool)
        trains[frame.index.get_indexer(cap_segments(frame, cap).index)] = True
    fold, protocol = folds(frame)
    return FoldRows(as_rows(frame, names=names, classes=classes), np.asarray(fold), trains, protocol)
