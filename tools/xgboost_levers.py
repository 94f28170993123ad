"""What xgboost's parameters do to a boosting round's cost and to track accuracy, side by side, one thread.

Reads a learning-probe dataset (`genre-hpc bench bench.learning=[N]` writes it under
bench.learning_root), splits its tracks 70 / 10 / 20 (training, early-stopping validation, test; whole
tracks, seeded), and fits `model.params` and variants of it one after the other in this process:
rounds used, seconds per round (xgboost's own round clock), and the test tracks' accuracy with its
bootstrap interval (`flow.metrics.evaluate`: a track averages its segments' probabilities). The
variants run in turns on the same rows, so their ratios hold on a loaded machine:

    python tools/xgboost_levers.py /work/probe-runs/datasets/rows100000-seed0 base bins32 depth4
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import xgboost as xgb

from genre_hpc.flow.metrics import evaluate

BASE = {"max_depth": 6, "learning_rate": 0.2, "max_bin": 64, "subsample": 0.8, "colsample_bytree": 0.8}
VARIANTS = {
    "base": BASE,  # conf/model/xgboost.yaml
    "bins32": {**BASE, "max_bin": 32},
    "depth4": {**BASE, "max_depth": 4},
    "bytree0.4": {**BASE, "colsample_bytree": 0.4},
    "bynode0.5": {**BASE, "colsample_bytree": 1.0, "colsample_bynode": 0.5},
    "bylevel0.5": {**BASE, "colsample_bylevel": 0.5},
    "multi_output": {**BASE, "multi_strategy": "multi_output_tree"},
    "rate0.3": {**BASE, "learning_rate": 0.3},
}


class RoundClock(xgb.callback.TrainingCallback):
    def before_training(self, model):
        self.times = [time.perf_counter()]
        return model

    def after_iteration(self, model, epoch, evals_log):
        self.times.append(time.perf_counter())
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--early-stopping", type=int, default=20)
    args = parser.parse_args()

    files = sorted((args.dataset / "features").glob("label=*/*.parquet"))
    frame = pd.concat(
        [pd.read_parquet(f).assign(label=unquote(f.parent.name.split("=", 1)[1])) for f in files],
        ignore_index=True,
    )
    columns = [c for c in frame.columns if frame[c].dtype == np.float32]
    classes = sorted(frame.label.unique())
    x = frame[columns].to_numpy(np.float32)
    y = frame.label.map({c: i for i, c in enumerate(classes)}).to_numpy()
    tracks = np.random.default_rng(0).permutation(np.asarray(frame.track_id.unique(), dtype=object))
    n = len(tracks)
    side = pd.Series("train", index=tracks)
    side.iloc[: n // 5] = "test"
    side.iloc[n // 5 : n // 5 + n // 10] = "validation"
    where = frame.track_id.map(side).to_numpy()
    train, valid, test = (where == s for s in ("train", "validation", "test"))
    counts = side.value_counts()
    print(
        f"{len(frame):,} rows, {len(columns)} features, {len(classes)} genres; tracks: {counts['train']:,} "
        f"training, {counts['validation']:,} validation, {counts['test']:,} test",
        flush=True,
    )

    for name in args.variants:
        params = {**VARIANTS[name], "objective": "multi:softprob", "num_class": len(classes),
                  "nthread": 1, "seed": 0, "tree_method": "hist", "eval_metric": "mlogloss"}  # fmt: skip
        matrix = xgb.QuantileDMatrix(x[train], y[train], max_bin=params["max_bin"])
        watched = xgb.DMatrix(x[valid], y[valid])
        clock = RoundClock()
        booster = xgb.train(
            params, matrix, args.rounds, evals=[(watched, "validation")],
            early_stopping_rounds=args.early_stopping, callbacks=[clock], verbose_eval=False,
        )  # fmt: skip
        per_round = np.diff(clock.times)
        proba = booster.predict(xgb.DMatrix(x[test]), iteration_range=(0, booster.best_iteration + 1))
        scores = evaluate(proba, frame.loc[test, ["track_id", "label"]], classes)
        low, high = scores["track_accuracy_interval"]["low"], scores["track_accuracy_interval"]["high"]
        print(
            f"{name:13s} {len(per_round):3d} rounds (best {booster.best_iteration + 1:3d}), "
            f"{per_round.mean():.3f} s a round, {per_round.sum():6.1f} s of rounds, track accuracy "
            f"{scores['track_accuracy']:.3f} ({low:.3f}-{high:.3f}), {scores['test_tracks']:,} test tracks",
            flush=True,
        )


if __name__ == "__main__":
    main()
