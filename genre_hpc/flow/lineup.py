"""The origin study's model lineup (k-NN, RF, SVM, MLP, XGBoost, XGBoost-RF), one fit per Dask task."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from xgboost import XGBClassifier, XGBRFClassifier

# Settings are common defaults, one thread per fit (the cluster provides the parallelism, one
# model per task).
MODELS = {
    "knn": lambda seed: KNeighborsClassifier(n_neighbors=5),
    "random_forest": lambda seed: RandomForestClassifier(n_estimators=300, n_jobs=1, random_state=seed),
    "svm": lambda seed: SVC(C=10.0, probability=True, random_state=seed),
    "mlp": lambda seed: MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=400, random_state=seed),
    "xgboost": lambda seed: XGBClassifier(n_estimators=300, max_depth=6, n_jobs=1, random_state=seed),
    "xgboost_rf": lambda seed: XGBRFClassifier(n_estimators=300, max_depth=8, n_jobs=1, random_state=seed),
}


def fit_and_predict(
    name: str | BaseEstimator,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    *,
    n_classes: int,
    seed: int,
) -> tuple[np.ndarray, float]:
    """Fit one model (standardised inputs) and return its test probabilities; runs on a worker.

    `name` is one of MODELS, or an unfitted estimator (evaluate's configured xgboost).
    """
    estimator = MODELS[name](seed) if isinstance(name, str) else clone(name)
    model = make_pipeline(StandardScaler(), estimator)
    # XGBoost wants the classes it sees numbered 0..n-1: a class absent from the training side
    # (a genre only the test side has) leaves a gap, so number the present ones afresh
    present, y_local = np.unique(y_train, return_inverse=True)
    started = time.perf_counter()
    model.fit(x_train, y_local)
    fit_seconds = time.perf_counter() - started
    proba = model.predict_proba(x_test)
    # the absent classes get a column of zeros: their tracks count as wrong
    full = np.zeros((len(x_test), n_classes))
    full[:, present[model.classes_]] = proba
    return full, fit_seconds


def fit_and_predict_fold(
    name: str | BaseEstimator,
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    fold: int,
    *,
    n_classes: int,
    seed: int,
) -> tuple[np.ndarray, float]:
    """fit_and_predict trained on every row outside `fold`, tested on the rows of `fold`: one
    cross-validation fold as one task, the data scattered to every worker once for all folds."""
    test = folds == fold
    return fit_and_predict(name, x[~test], y[~test], x[test], n_classes=n_classes, seed=seed)
