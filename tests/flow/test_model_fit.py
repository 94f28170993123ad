"""The fit train and tune share (flow/model.py's fit_and_evaluate) on small generated datasets in the
dataset's own layout, on a real two-worker LocalCluster: early stopping on whole held-out training
groups, the segment cap over each track, the saved model cut to its best round, the same bytes twice."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import xgboost
from omegaconf import OmegaConf

from genre_hpc.core.layout import ModelFiles, OutputLayout
from genre_hpc.flow import model
from genre_hpc.flow.dataset import FeatureStore, batch_id
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.schema import feature_names
from genre_hpc.flow.trainset import TrainingData

from ..helpers import make_config

GENRES = ("blues", "jazz", "metal")
NAMES = feature_names()
# two columns carry who a row is, so a test can read it back off the scaled training arrays
TRACK_COLUMN, SEGMENT_COLUMN = NAMES[-1], NAMES[-2]
SPLIT = OmegaConf.create({"name": "grouped", "test_fraction": 0.25, "seed": 0, "group_by": None})
PARAMS = {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.3, "tree_method": "hist", "random_state": 0}
FITTING = model.Fitting(early_stopping_rounds=5, validation_fraction=0.25, segments_per_track=None)


def write_dataset(
    root, *, tracks_per_genre: int, segments, signal: float, pair_groups: bool = False, seed: int = 0
) -> OutputLayout:
    """Feature rows of the real schema under root/features, one batch per genre.

    Track t of a genre has `segments(t)` segments; genre k shifts the first 20 columns by
    `signal` * (k - 1) (0: labels are noise). With `pair_groups`, tracks 2i and 2i+1 of a genre share
    a content hash: one group, which every split and validation slice keeps together."""
    out = OutputLayout(root)
    store = FeatureStore(out)
    rng = np.random.default_rng(seed)
    # track numbers in no genre's order: the column must not tell the genre
    numbers = iter(rng.permutation(len(GENRES) * tracks_per_genre))
    for k, genre in enumerate(GENRES):
        frames, hashes = [], {}
        for t in range(tracks_per_genre):
            track_id = f"{genre}/{genre}.{t:05d}.wav"
            n = segments(t)
            x = rng.standard_normal((n, len(NAMES))).astype(np.float32)
            x[:, :20] += signal * (k - 1)
            frame = pd.DataFrame(x, columns=NAMES)
            frame[TRACK_COLUMN] = float(next(numbers))
            frame[SEGMENT_COLUMN] = np.arange(n, dtype=np.float32)
            ids = pd.DataFrame({"track_id": track_id, "path": f"/corpus/{track_id}", "label": genre,
                                "segment": np.arange(n, dtype=np.int32), "start_s": 3.0 * np.arange(n),
                                "duration_s": 3.0})  # fmt: skip
            frames.append(pd.concat([ids, frame], axis=1))
            hashes[track_id] = f"{genre}-{t // 2}" if pair_groups else track_id
        store.write_batch(batch_id(hashes), pd.concat(frames, ignore_index=True), [],
                          params=FeatureParams(), corpus_root="/corpus", hashes=hashes)  # fmt: skip
    return out


def _number(data: TrainingData) -> dict[str, float]:
    rows = data.frame[["track_id", TRACK_COLUMN]].compute().drop_duplicates()
    return dict(zip(rows.track_id, rows[TRACK_COLUMN], strict=True))


def unscaled(arrays: model.TrainingArrays, x) -> pd.DataFrame:
    """The identity columns of scaled rows, as written."""
    frame = pd.DataFrame(np.asarray(x.compute(), dtype=np.float64), columns=arrays.scaler.names)
    frame = frame * arrays.scaler.std + arrays.scaler.mean
    return frame[[TRACK_COLUMN, SEGMENT_COLUMN]].round().astype(int)


def test_noise_stops_early_a_signal_uses_more_rounds_and_the_model_keeps_its_best(client, tmp_path, caplog):
    found = {}
    for name, signal in (("noise", 0.0), ("signal", 1.5)):
        out = write_dataset(tmp_path / name, tracks_per_genre=16, segments=lambda t: 8, signal=signal)
        data = TrainingData(out, SPLIT)
        files = ModelFiles(tmp_path / name / "model")
        with caplog.at_level(logging.INFO, logger="genre_hpc.flow.model"):
            found[name] = model.fit_and_evaluate(client, data, params=PARAMS, files=files, fitting=FITTING)
        booster = xgboost.Booster(model_file=str(files.booster))
        metrics = found[name]
        # the saved model is the best round's: rounds_used rounds of one tree per genre
        assert booster.num_boosted_rounds() == metrics["rounds_used"]
        assert len(booster.get_dump()) == metrics["rounds_used"] * len(GENRES)
        assert model.CLOCK_ATTRIBUTE not in booster.attributes()
        losses = metrics["validation_loss"]
        assert losses["best"] <= min(losses["first"], losses["last"])
        assert metrics["max_rounds"] == 60 and metrics["early_stopping_rounds"] == 5
        # 25 % of the 12 training tracks of each genre
        assert metrics["validation_tracks"] == 9 and metrics["validation_segments"] == 72
        assert metrics["train_segments"] + metrics["validation_segments"] == 36 * 8
        assert metrics["fit_seconds"] >= metrics["boosting_seconds"] > 0
        # every round timed on the worker (the clock says which it missed, if it does)
        assert "round clock:" not in caplog.text, caplog.text
        assert metrics["per_round_seconds"] == pytest.approx(
            metrics["boosting_seconds"] / metrics["rounds_trained"]
        )
    noise, signal = found["noise"], found["signal"]
    # noise: the validation loss is best within a few rounds, and training stops 5 rounds later
    assert noise["rounds_trained"] == noise["rounds_used"] + 5 < 60
    assert noise["rounds_used"] <= 10
    assert signal["rounds_used"] >= 2 * noise["rounds_used"] + 5
    assert signal["track_accuracy"] > 0.9
    stopped = [r.getMessage() for r in caplog.records if "stopped at round" in r.getMessage()]
    assert f"train: stopped at round {noise['rounds_trained']} of at most 60" in stopped[0]
    assert "on 9 held-out training tracks" in stopped[0]


def test_validation_tracks_are_whole_groups_of_every_genre_never_in_the_training_rows(client, tmp_path):
    out = write_dataset(tmp_path, tracks_per_genre=20, segments=lambda t: 3 + t % 4, signal=0.5,
                        pair_groups=True)  # fmt: skip
    data = TrainingData(out, SPLIT)
    validation = model.validation_tracks(data, FITTING)
    again = model.validation_tracks(TrainingData(out, SPLIT), FITTING)
    assert validation == again  # fixed by the split's seed
    assert validation <= data.split.train_tracks
    groups = data.tracks.set_index("track_id").group
    held = set(groups[list(validation)])
    # whole groups: every track of a held-out group is held out
    assert set(groups.index[groups.isin(held)]) == validation
    assert set(data.tracks.label[data.tracks.track_id.isin(validation)]) == set(GENRES)

    arrays = model.training_arrays(client, data, data.train_classes(), validation=validation)
    trained, watched = unscaled(arrays, arrays.x), unscaled(arrays, arrays.x_valid)
    numbers = _number(data)
    assert set(watched[TRACK_COLUMN]) == {numbers[t] for t in validation}
    assert set(trained[TRACK_COLUMN]) == {numbers[t] for t in data.split.train_tracks - validation}
    # every segment of a held-out track is in the validation rows, once
    rows = data.frame[["track_id", "segment"]].compute()
    assert len(watched) == rows.track_id.isin(validation).sum()
    assert not watched.duplicated().any()
    assert arrays.rows_before_cap == len(trained) + len(watched)


def test_the_cap_keeps_every_training_track_with_segments_spread_over_it(client, tmp_path):
    lengths = {0: 2, 1: 5, 2: 12, 3: 31}
    out = write_dataset(tmp_path, tracks_per_genre=8, segments=lambda t: lengths[t % 4], signal=0.5)
    data = TrainingData(out, SPLIT)
    off = replace(FITTING, early_stopping_rounds=None, segments_per_track=5)
    arrays = model.training_arrays(client, data, data.train_classes(), cap=5)
    trained = unscaled(arrays, arrays.x)
    numbers = _number(data)
    kept = trained.groupby(TRACK_COLUMN)[SEGMENT_COLUMN].apply(sorted)
    assert set(kept.index) == {numbers[t] for t in data.split.train_tracks}  # whole tracks, all of them
    lengths_of = data.frame[["track_id", "segment"]].compute().groupby("track_id").size()
    for track in data.split.train_tracks:
        n, segments = lengths_of[track], kept[numbers[track]]
        assert len(segments) == min(n, 5)
        if n > 5:  # spread: one in each fifth of the track, first and last fifths included
            assert [s * 5 // n for s in segments] == [0, 1, 2, 3, 4]
    left_out = sum(max(lengths_of[t] - 5, 0) for t in data.split.train_tracks)
    assert arrays.rows_before_cap - arrays.rows == left_out > 0

    metrics = model.fit_and_evaluate(client, data, params=PARAMS, files=None, fitting=off)
    assert metrics["segments_per_track"] == 5 and metrics["segments_left_out_by_cap"] == left_out
    # the test side keeps every segment
    assert metrics["test_segments"] == lengths_of[list(data.split.test_tracks)].sum()
    assert metrics["rounds_trained"] == metrics["rounds_used"] == 60 and metrics["validation_tracks"] == 0


def test_the_same_data_and_workers_give_the_same_model_bytes_and_metrics(client, tmp_path):
    out = write_dataset(tmp_path, tracks_per_genre=12, segments=lambda t: 6 + t % 3, signal=0.4)
    runs = []
    for i in range(2):
        files = ModelFiles(tmp_path / f"model-{i}")
        data, capped = TrainingData(out, SPLIT), replace(FITTING, segments_per_track=7)
        params = {**PARAMS, "subsample": 0.7}
        metrics = model.fit_and_evaluate(client, data, params=params, files=files, fitting=capped)
        runs.append(
            (files.booster.read_bytes(), {k: v for k, v in metrics.items() if not k.endswith("_seconds")})
        )
    assert runs[0][0] == runs[1][0]
    assert runs[0][1] == runs[1][1]
    assert runs[0][1]["rounds_used"] < 60 or runs[0][1]["rounds_trained"] == 60
    info = json.loads((tmp_path / "model-0" / "preprocess.json").read_text())
    assert info["classes"] == list(GENRES)


def test_too_few_groups_to_spare_trains_every_round_and_says_why(client, tmp_path, caplog):
    # 4 tracks per genre: 3 to train on, and 10 % of 3 rounds to no validation track
    out = write_dataset(tmp_path, tracks_per_genre=4, segments=lambda t: 4, signal=0.5)
    data = TrainingData(out, SPLIT)
    few = replace(FITTING, validation_fraction=0.1)
    with caplog.at_level(logging.INFO, logger="genre_hpc.flow.model"):
        metrics = model.fit_and_evaluate(client, data, params=PARAMS, files=None, fitting=few)
    assert metrics["validation_tracks"] == 0 and metrics["early_stopping_rounds"] is None
    assert metrics["rounds_used"] == metrics["rounds_trained"] == 60
    assert metrics["train_segments"] == 4 * len(data.split.train_tracks)
    assert any("early stopping off: no validation tracks" in r.getMessage() for r in caplog.records)


def test_the_round_clock_times_every_round_and_a_clock_that_missed_one_says_which(caplog):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 5)), rng.integers(0, 3, 200)
    train, valid = xgboost.DMatrix(x[:150], y[:150]), xgboost.DMatrix(x[150:], y[150:])
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1}
    booster = xgboost.train(params, train, 40, evals=[(valid, "v")], early_stopping_rounds=3,
                            callbacks=[model.RoundClock()], verbose_eval=False)  # fmt: skip
    clock = json.loads(booster.attr(model.CLOCK_ATTRIBUTE))
    rounds = booster.num_boosted_rounds()
    assert rounds < 40  # early stopping ended it: its last round is timed too
    assert clock["epochs"] == list(range(rounds)) and len(clock["seconds"]) == rounds
    assert clock["started"] and clock["rounds"] == rounds and min(clock["seconds"]) >= 0
    # the mechanism on xgboost < 3.1: callbacks in a set, the first to say stop ends the round's
    # calls; with EarlyStopping first the clock never sees the last after_iteration
    stop_first = xgboost.callback.CallbackContainer(
        [xgboost.callback.EarlyStopping(rounds=3), clock_ := model.RoundClock()]
    )
    stop_first.callbacks = list(stop_first.callbacks)
    stop_first.callbacks.sort(key=lambda c: c is clock_)
    again = xgboost.Booster(params, [train, valid])
    again = stop_first.before_training(again)
    for i in range(40):
        again.update(train, i)
        if stop_first.after_iteration(again, i, train, [(valid, "v")]):
            break
    again = stop_first.after_training(again)
    seen = json.loads(again.attr(model.CLOCK_ATTRIBUTE))
    assert again.num_boosted_rounds() == rounds
    assert seen["epochs"] == list(range(rounds)) and len(seen["seconds"]) == rounds

    class Fitted:  # what best_rounds reads of a fitted DaskXGBClassifier
        early_stopping_rounds = None

        def get_booster(self):
            return booster

    booster.set_attr(**{model.CLOCK_ATTRIBUTE: json.dumps({**clock, "seconds": clock["seconds"][:-1],
                                                           "epochs": clock["epochs"][:-1]})})  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="genre_hpc.flow.model"):
        _, info = model.best_rounds(Fitted())
    assert len(info["round_seconds"]) == rounds - 1
    assert f"{rounds - 1} round times for {rounds} rounds trained" in caplog.text
    assert model.CLOCK_ATTRIBUTE not in booster.attributes()


def test_the_stages_settings_are_the_shipped_config_and_the_default():
    cfg = make_config("train", [])
    assert model.Fitting.from_config(cfg) == model.Fitting.defaults()
    assert model.Fitting.defaults().early_stopping_rounds == cfg.model.early_stopping_rounds
    changed = make_config("train", ["model.early_stopping_rounds=null", "model.segments_per_track=30"])
    assert model.Fitting.from_config(changed) == replace(
        model.Fitting.defaults(), early_stopping_rounds=None, segments_per_track=30
    )


def test_the_leaky_split_holds_out_whole_tracks_from_training_too(client, tmp_path):
    # random_segments puts segments of every track on both sides: the validation tracks are drawn
    # from all of them, and none of their training-side segments trains the model
    out = write_dataset(tmp_path, tracks_per_genre=10, segments=lambda t: 6, signal=0.5)
    leaky = OmegaConf.create({"name": "random_segments", "test_fraction": 0.25, "seed": 0})
    data = TrainingData(out, leaky)
    validation = model.validation_tracks(data, FITTING)
    assert len(validation) == 3 * round(0.25 * 10)
    arrays = model.training_arrays(client, data, data.train_classes(), validation=validation)
    numbers = _number(data)
    trained, watched = unscaled(arrays, arrays.x), unscaled(arrays, arrays.x_valid)
    assert set(watched[TRACK_COLUMN]) == {numbers[t] for t in validation}
    assert not set(trained[TRACK_COLUMN]) & set(watched[TRACK_COLUMN])
