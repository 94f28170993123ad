"""compare at scale, on a small generated dataset written straight into the dataset layout: the models
that cannot scale train on a sample of whole groups with every genre and say so next to their
numbers, the SVM gives probabilities without scikit-learn's deprecated option, and the same run
gives the same numbers."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import xgboost
from distributed import get_task_stream

from genre_hpc.flow import headline, lineup, moments, report
from genre_hpc.flow.dataset import FeatureStore, batch_id
from genre_hpc.flow.lineup import Limits, Rows, fit_model
from genre_hpc.flow.page import Page
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.schema import feature_names
from genre_hpc.flow.trainset import TrainingData
from genre_hpc.stages import compare

from ..helpers import layout, make_config, run_stage

GENRES = ["blues", "jazz", "metal", "pop", "rock", "soul"]
GROUPS = 12  # per genre; each group is two copies of one recording (one content hash)
SEGMENTS = 4


def _dataset(out) -> None:
    """6 genres x 12 groups x 2 tracks x 4 segments of the real schema, learnable but not perfectly."""
    params = FeatureParams()
    names = feature_names(n_mfcc=params.n_mfcc)
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((len(GENRES), len(names))).astype(np.float32)
    store = FeatureStore(layout(make_config("extract", [f"output.dir={out}"])))
    for g, genre in enumerate(GENRES):
        rows, hashes = [], {}
        for group in range(GROUPS):
            for copy in range(2):
                track = f"{genre}/{genre}.{group:02d}{copy}.wav"
                hashes[track] = f"{genre}-{group}"
                x = 0.4 * centres[g] + rng.standard_normal((SEGMENTS, len(names))).astype(np.float32)
                ids = {"track_id": track, "path": f"/corpus/{track}", "label": genre}
                for s in range(SEGMENTS):
                    rows.append({**ids, "segment": s, "start_s": 3.0 * s, "duration_s": 3.0,
                                 **dict(zip(names, x[s], strict=True))})  # fmt: skip
        frame = pd.DataFrame(rows)
        store.write_batch(batch_id(hashes), frame, [], params=params, corpus_root="/corpus", hashes=hashes)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare-out")
    _dataset(out)
    return out


def _cfg(out, *extra):
    return make_config("compare", [f"output.dir={out}", *extra])


SAMPLED = ("compare.sample_tracks.knn=20", "compare.sample_tracks.svm=20")


@pytest.fixture(scope="module")
def compared(dataset, client):
    cfg = _cfg(dataset, "compare.models=[knn,svm,mlp,xgboost]", *SAMPLED)
    table = run_stage(compare, cfg, client)
    # as this run wrote it (later tests write their own comparisons in the same folder)
    table.attrs["summary"] = json.loads(layout(cfg).comparison("grouped").summary.read_text())
    return table


def test_a_capped_model_says_it_was_capped_with_its_tracks_in_table_and_summary(compared, dataset):
    data = TrainingData(layout(_cfg(dataset)), _cfg(dataset).split)
    train_tracks = len(data.split.train_tracks)
    by_model = compared.set_index("model")
    for name in ("knn", "svm"):
        row = by_model.loc[name]
        assert bool(row.sampled)
        # whole groups of two copies, about 20 tracks in each genre's proportion
        assert 12 <= row.trained_on_tracks <= 24 and row.trained_on_tracks % 2 == 0
        assert row.trained_on_tracks < train_tracks
        assert f"sample of {row.trained_on_tracks} training tracks" in row.bound
        assert row.trained_on_rows == SEGMENTS * row.trained_on_tracks
    for name in ("mlp", "xgboost"):
        assert not by_model.loc[name].sampled
    # xgboost trains on the training tracks less the slice its early stopping watches
    assert by_model.loc["xgboost"].trained_on_tracks < train_tracks
    assert by_model.loc["xgboost"].rounds >= 1 and "early stopping" in by_model.loc["xgboost"].bound
    # the MLP stops early on the same validation tracks, whole groups it never trains on
    assert by_model.loc["mlp"].trained_on_tracks == by_model.loc["xgboost"].trained_on_tracks
    assert "early stopping after 10 epochs without gain" in by_model.loc["mlp"].bound
    files = layout(_cfg(dataset)).comparison("grouped")
    saved = pd.read_csv(files.table).set_index("model")
    assert (
        saved.loc["svm", "sampled"]
        and saved.loc["svm", "trained_on_tracks"] == by_model.loc["svm"].trained_on_tracks
    )
    summary = {m["model"]: m for m in json.loads(files.summary.read_text())["models"]}
    assert summary["knn"]["sampled"] is True and summary["xgboost"]["sampled"] is False
    assert summary["knn"]["trained_on_tracks"] == by_model.loc["knn"].trained_on_tracks


def test_the_report_names_the_sample_next_to_the_numbers(compared, dataset):
    summary = json.loads(layout(_cfg(dataset)).comparison("grouped").summary.read_text())
    table = report.comparison_table(summary["models"])
    svm = table[table.model.str.startswith("svm")].iloc[0]
    tracks = compared.set_index("model").loc["svm"].trained_on_tracks
    assert svm.model == f"svm (trained on a sample of {tracks} tracks)"
    assert {"trained on tracks", "sampled", "what bounds its cost"} <= set(table.columns)
    assert table[table.model == "xgboost"].shape[0] == 1  # not sampled: named as it is
    assert headline.model_name(summary["models"][0]).startswith("knn (trained on a sample of")


def test_the_sample_is_whole_groups_with_every_genre(dataset):
    data = TrainingData(layout(_cfg(dataset)), _cfg(dataset).split)
    plan = compare.Plan(Limits(sample_tracks={"svm": 20}), seed=0, cap=None, validation_fraction=0.1,
                        workers=[], slots={})  # fmt: skip
    tracks = compare._train_tracks(data)
    chosen = plan.sample("svm", tracks)
    picked = tracks[tracks.track_id.isin(chosen)]
    assert set(picked.label) == set(GENRES)
    # every track of a chosen group is chosen: both copies of a recording, never one
    assert set(tracks.track_id[tracks.group.isin(set(picked.group))]) == chosen
    assert plan.sample("mlp", tracks) is None  # a model that scales trains on all of them
    assert plan.sample("knn", tracks) is None  # no cap given for it


def _rows(n_tracks: int, seed: int) -> Rows:
    rng = np.random.default_rng(seed)
    tracks = np.repeat(np.arange(n_tracks), SEGMENTS)
    y = (tracks % 3).astype(np.int32)
    x = rng.standard_normal((len(y), 8)).astype(np.float32) + y[:, None]
    return Rows(
        x, y, np.array([f"t{t}" for t in tracks], dtype=object), np.array([str(c) for c in y], dtype=object)
    )


def test_probabilities_predicted_a_block_at_a_time_are_those_of_all_rows_at_once(monkeypatch):
    train, test = _rows(30, seed=0), _rows(9, seed=1)
    # a forest: each row's probabilities are its trees' alone, bit for bit (the SVM's float32
    # kernel products of other block shapes round differently in the last bits: test_kernel_svm)
    whole = fit_model("random_forest", train, test, n_classes=4, seed=0, limits=Limits()).proba
    monkeypatch.setattr(lineup, "PREDICT_BLOCK_ROWS", 5)  # 36 test rows: 8 blocks, the last short
    blocked = fit_model("random_forest", train, test, n_classes=4, seed=0, limits=Limits()).proba
    np.testing.assert_array_equal(blocked, whole)


def test_svm_gives_probabilities_without_a_deprecation_warning():
    train, test = _rows(30, seed=0), _rows(9, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SVC(probability=True) warns FutureWarning in scikit-learn 1.9
        fitted = fit_model("svm", train, test, n_classes=4, seed=0, limits=Limits())
    assert fitted.proba.shape == (len(test), 4)
    np.testing.assert_allclose(fitted.proba.sum(axis=1), 1.0)
    assert (fitted.proba[:, 3] == 0).all()  # a class it never saw
    assert (fitted.proba.argmax(axis=1) == test.y).mean() > 0.8
    assert list(fitted.ids.track_id) == list(test.track_id)


def test_the_comparison_gives_the_same_numbers_twice(compared, dataset, client):
    again = run_stage(compare, _cfg(dataset, "compare.models=[knn,svm,mlp,xgboost]", *SAMPLED), client)
    keep = [c for c in compared.columns if not c.endswith("_seconds")]
    pd.testing.assert_frame_equal(compared[keep], again[keep])


def test_folds_keep_the_caps(dataset, client):
    cfg = _cfg(
        dataset, "compare.folds=3", "compare.models=[svm,xgboost]", *SAMPLED, "model.segments_per_track=2"
    )
    table = run_stage(compare, cfg, client).set_index("model")
    per_fold = pd.read_csv(layout(cfg).comparison("grouped").folds)
    svm = per_fold[per_fold.model == "svm"]
    assert len(svm) == 3 and svm.sampled.all() and (svm.trained_on_tracks <= 24).all()
    # the segment cap: two of each track's four segments train
    assert (svm.trained_on_rows == 2 * svm.trained_on_tracks).all()
    assert table.loc["svm"].sampled and not table.loc["xgboost"].sampled
    xgb = per_fold[per_fold.model == "xgboost"]
    assert (xgb.trained_on_rows == 2 * xgb.trained_on_tracks).all()


def test_a_side_is_held_once_with_the_validation_tracks_last_so_a_fit_takes_both_as_views(dataset):
    cfg = _cfg(dataset)
    data = TrainingData(layout(cfg), cfg.split)
    parts = data.store.parts()
    tracks = compare._train_tracks(data)
    plan = compare.Plan(Limits(early_stopping_rounds=5), seed=0, cap=None, validation_fraction=0.2,
                        workers=[], slots={})  # fmt: skip
    validation = plan.validation("mlp", tracks)
    assert validation == plan.validation("xgboost", tracks) and plan.validation("knn", tracks) is None
    held = lineup.read_side(
        data.reader("train"), parts, names=data.names, classes=data.classes, last=validation
    )
    whole = lineup.read_side(data.reader("train"), parts, names=data.names, classes=data.classes)
    # the same rows, those of the validation tracks moved after all the others
    inside = whole.of_tracks(validation)
    np.testing.assert_array_equal(held.x, np.concatenate([whole.x[~inside], whole.x[inside]]))
    assert list(held.track_id) == list(whole.track_id[~inside]) + list(whole.track_id[inside])
    watched, trained = held.split_off(validation)
    assert set(watched.track_id) == validation and not set(trained.track_id) & validation
    assert np.shares_memory(watched.x, held.x) and np.shares_memory(trained.x, held.x)
    # other tracks than those read last: the same split, as copies
    other = frozenset(list(validation)[:2])
    watched, trained = held.split_off(other)
    assert set(watched.track_id) == other and not np.shares_memory(watched.x, held.x)
    assert len(watched) + len(trained) == len(held)


def test_the_block_scaler_standardises_as_the_training_stage_does(monkeypatch):
    monkeypatch.setattr(moments, "SCALE_BLOCK_ROWS", 7)  # many blocks, the last one short
    monkeypatch.setattr(lineup, "SCALE_BLOCK_ROWS", 7)
    x = (np.random.default_rng(0).standard_normal((100, 5)) * [1, 2, 3, 4, 0] + [0, 1, 2, 3, 4]).astype(
        np.float32
    )
    scaler = lineup.ArrayScaler.fit(x)
    std = x.astype(np.float64).std(axis=0, ddof=1)
    std[std == 0] = 1.0  # a constant column is left centred, not divided by zero
    np.testing.assert_allclose(scaler.transform(x), (x - x.astype(np.float64).mean(axis=0)) / std, atol=1e-5)
    assert scaler.transform(x).dtype == np.float32


def test_the_mlp_stops_on_its_validation_rows_and_keeps_its_best_epoch():
    train, watched, test = _rows(60, seed=0), _rows(12, seed=1), _rows(12, seed=2)
    mlp, _, _ = lineup.build("mlp", seed=0, n_rows=len(train), limits=Limits(mlp_row_passes=200 * len(train)))
    scaler = lineup.ArrayScaler.fit(train.x)
    epochs, stopped = lineup._fit_mlp(mlp, scaler, train.x, train.y, (watched.x, watched.y), seed=0)
    # three separable classes: the watched accuracy stops improving long before 200 epochs
    assert stopped and lineup.MLP_PATIENCE < epochs < 200
    assert (mlp.predict(scaler.transform(test.x)) == test.y).mean() > 0.7  # chance: 0.33
    # with nothing to watch it runs its epoch bound
    mlp, _, _ = lineup.build("mlp", seed=0, n_rows=len(train), limits=Limits(mlp_row_passes=3 * len(train)))
    assert lineup._fit_mlp(mlp, scaler, train.x, train.y, None, seed=0) == (3, False)


def test_a_fit_runs_with_scikit_learns_working_memory_bounded(monkeypatch):
    import sklearn
    from sklearn.neighbors import KNeighborsClassifier

    seen = []

    class Recording(KNeighborsClassifier):
        def predict_proba(self, X):
            seen.append(sklearn.get_config()["working_memory"])  # what chunked distances may take
            return super().predict_proba(X)

    monkeypatch.setattr(lineup, "build", lambda name, **_: (Recording(n_neighbors=3), "", {}))
    fit_model("knn", _rows(12, seed=0), _rows(3, seed=1), n_classes=3, seed=0, limits=Limits())
    assert seen == [lineup.WORKING_MEMORY_MB] and sklearn.get_config()["working_memory"] == 1024


def test_compares_boosted_models_bin_their_features_as_the_trained_model_does():
    trained = make_config("train", []).model.params.max_bin
    for name in ("xgboost", "xgboost_rf"):
        estimator, _, _ = lineup.build(name, seed=0, n_rows=1000, limits=Limits())
        assert estimator.get_params()["max_bin"] == lineup.MAX_BIN == trained


def test_xgboost_rf_is_the_forest_xgbrfclassifier_grows_without_its_deprecation():
    # xgboost 3.4 deprecates XGBRFClassifier (a FutureWarning on every compare); the lineup builds
    # the same forest on XGBClassifier: the same probabilities, and no warning on any version
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 12)).astype(np.float32), rng.integers(0, 3, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # XGBRFClassifier warns when it is made
        forest, _, _ = lineup.build("xgboost_rf", seed=0, n_rows=300, limits=Limits(forest_rows=200))
        forest.fit(x, y)
    params = {k: forest.get_params()[k] for k in ("max_depth", "subsample", "random_state", "max_bin")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reference = xgboost.XGBRFClassifier(n_estimators=100, n_jobs=1, **params).fit(x, y)
    assert params["subsample"] == pytest.approx(200 / 300)
    np.testing.assert_array_equal(forest.predict_proba(x), reference.predict_proba(x))


def test_rows_too_large_for_a_worker_run_xgboost_on_xgboost_dask_and_sample_the_rest(
    dataset, client, tmp_path
):
    out = tmp_path / "out"  # its own comparison, beside a copy of the dataset
    shutil.copytree(dataset, out, ignore=shutil.ignore_patterns("compare*", "report"))
    # 64 MiB per worker is far too little to hold every row and fit beside them: the dask engine
    cfg = _cfg(
        out, "compare.models=[random_forest,xgboost,xgboost_rf]", "compare.worker_memory=64MiB",
        "compare.worker_rows=160", "model.early_stopping_rounds=5",
    )  # fmt: skip
    with get_task_stream(client) as stream:
        table = run_stage(compare, cfg, client).set_index("model")
    summary = json.loads(layout(cfg).comparison("grouped").summary.read_text())
    assert summary["engine"] == "dask" and summary["engine_reason"].startswith(
        "auto: xgboost on xgboost.dask"
    )
    assert " > 0.05 GiB (80% of a worker's 0.06 GiB limit)" in summary["engine_reason"]
    keys = [str(t["key"]) for t in stream.data]
    # xgboost is no single-worker task (xgboost.dask's tasks run on every worker); the forests are
    assert not [k for k in keys if k.startswith("compare-fit-xgboost-")]
    assert [k for k in keys if k.startswith("compare-fit-random_forest")]
    assert [k for k in keys if k.startswith("compare-fit-xgboost_rf")]
    data = TrainingData(layout(cfg), cfg.split)
    train_tracks = len(data.split.train_tracks)
    boosted = table.loc["xgboost"]
    assert boosted.bound.startswith("xgboost.dask over 2 workers") and not boosted.sampled
    assert boosted.trained_on_rows == SEGMENTS * boosted.trained_on_tracks
    assert 0.3 < boosted.track_accuracy <= 1.0  # 6 genres: chance is 0.17
    # xgboost stops early on whole validation tracks it never trains on
    assert boosted.trained_on_tracks < train_tracks
    assert 1 <= boosted.rounds <= 300 and "early stopping after 5 rounds" in boosted.bound
    # the forests train inside one worker: on whole tracks of about 160 rows (40 of 4 segments)
    for name in ("random_forest", "xgboost_rf"):
        forest = table.loc[name]
        assert forest.sampled and 30 <= forest.trained_on_tracks <= 48 < train_tracks
        assert forest.trained_on_rows == SEGMENTS * forest.trained_on_tracks
        assert forest.bound.startswith(f"trained on a sample of {forest.trained_on_tracks} training tracks")
    # the report's table: a fit spread over the cluster has no one thread's CPU seconds, shown as a dash
    shown = Page.table(report.comparison_table(summary["models"]))
    assert "NaN" not in shown and "None" not in shown
    assert shown.count("<td>–</td>") == 1  # xgboost's


def test_the_one_split_runs_as_tasks_when_the_rows_fit_and_says_why(compared):
    summary = compared.attrs["summary"]
    assert summary["engine"] == "tasks"
    reason = summary["engine_reason"]
    assert reason.startswith("auto: every model a task beside the rows") and " <= " in reason
