"""The saved model: one standardisation for training and prediction, and a model.ubj that matches its
preprocess.json or is refused."""

from __future__ import annotations

import json
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import xgboost

from genre_hpc.core.errors import ConfigError, ModelError
from genre_hpc.core.layout import ModelFiles
from genre_hpc.flow import demo, model
from genre_hpc.flow.params import FeatureParams

CLASSES = ["blues", "metal", "pop"]
NAMES = FeatureParams().names()


def _booster(seed: int) -> xgboost.Booster:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((60, len(NAMES))).astype(np.float32)
    labels = np.arange(60) % len(CLASSES)
    params = {"objective": "multi:softprob", "num_class": len(CLASSES), "seed": seed}
    return xgboost.train(params, xgboost.DMatrix(x, label=labels), num_boost_round=3)


def _scaler() -> model.Standardizer:
    rng = np.random.default_rng(1)
    mean = pd.Series(rng.standard_normal(len(NAMES)), index=NAMES)
    std = pd.Series(rng.uniform(0.5, 2.0, len(NAMES)), index=NAMES)
    return model.Standardizer(NAMES, mean, std)


# what save() reads of the training data
DATA = SimpleNamespace(
    feature_params=asdict(FeatureParams()),
    names=NAMES,
    classes=CLASSES,
    split=SimpleNamespace(summary=lambda: {"name": "grouped", "leaky": False}),
)


def test_scaling_is_the_float64_standardisation_prediction_always_used():
    scaler = _scaler()
    rows = pd.DataFrame(np.random.default_rng(2).standard_normal((5, len(NAMES))), columns=NAMES)
    rows = rows.astype(np.float32)
    mean, std = scaler.to_json()["mean"], scaler.to_json()["std"]
    by_hand = ((rows.to_numpy(np.float64) - mean) / std).astype(np.float32)
    np.testing.assert_array_equal(scaler.scale(rows).to_numpy(), by_hand)
    again = model.Standardizer.from_json({"feature_names": NAMES, "mean": mean, "std": std})
    np.testing.assert_array_equal(again.scale(rows).to_numpy(), by_hand)


def test_a_saved_model_loads_back_and_names_its_genres(tmp_path):
    files = ModelFiles(tmp_path / "model")
    model.save(files, _booster(0), scaler=_scaler(), data=DATA)
    info = json.loads(files.preprocess.read_text())
    assert {"feature_names", "mean", "std", "classes", "feature_version", "model_sha256"} <= set(info)
    assert files.booster.read_bytes() == bytes(_booster(0).save_raw("ubj"))
    loaded = model.SavedModel(files)
    assert loaded.classes == CLASSES
    y = demo.synthesize("metal", np.random.default_rng(0), seconds=4.0, sample_rate=22050)
    sf.write(tmp_path / "clip.wav", y, 22050)
    proba = loaded.track_probabilities(str(tmp_path / "clip.wav"))
    assert proba.shape == (3,) and proba.sum() == pytest.approx(1.0, abs=1e-5)


def test_a_model_from_another_run_than_its_preprocessing_is_refused(tmp_path):
    """A run stopped between writing model.ubj and preprocess.json leaves a pair of two runs."""
    files = ModelFiles(tmp_path / "model")
    model.save(files, _booster(0), scaler=_scaler(), data=DATA)
    files.booster.write_bytes(bytes(_booster(1).save_raw("ubj")))
    with pytest.raises(ModelError, match="not the model"):
        model.SavedModel(files)


def test_a_folder_without_a_model_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as caught:
        model.SavedModel(ModelFiles(tmp_path))
    assert caught.value.key == "model_dir"


def _blocks_of_rows(seed: int, columns: int, *, scale: float, shift: float) -> tuple[list[str], pd.DataFrame]:
    """Feature rows over three of model's scaling blocks, the last one short, and a track column."""
    rng = np.random.default_rng(seed)
    names = [f"f{i}" for i in range(columns)]
    n = 2 * model.SCALE_BLOCK_ROWS + 17
    rows = pd.DataFrame((rng.standard_normal((n, columns)) * scale + shift).astype(np.float32), columns=names)
    rows.insert(0, "track_id", "t")
    return names, rows


def test_scale_array_is_scale_bit_for_bit_across_its_blocks():
    names, rows = _blocks_of_rows(0, 5, scale=7, shift=3)
    scaler = model.Standardizer(names, rows[names].mean().astype(float), rows[names].std().astype(float))
    blocked = scaler.scale_array(rows)
    assert blocked.dtype == np.float32 and blocked.flags.c_contiguous
    assert np.array_equal(blocked, scaler.scale(rows).to_numpy())


def test_a_shares_moments_are_taken_a_block_at_a_time_and_combine_to_the_whole_ones():
    names, rows = _blocks_of_rows(1, 4, scale=5, shift=100)
    count, mean, m2 = model._moments(names, rows)
    whole = rows[names].to_numpy(np.float64)
    assert count == len(rows)
    np.testing.assert_allclose(mean, whole.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(m2, ((whole - whole.mean(axis=0)) ** 2).sum(axis=0), rtol=1e-9)
    # two shares' moments combine to the standardisation of all their rows
    halves = [model._moments(names, rows.iloc[:1000]), model._moments(names, rows.iloc[1000:])]
    combined = model.Standardizer.combine(halves, names)
    np.testing.assert_allclose(combined.std.to_numpy(), whole.std(axis=0, ddof=1), rtol=1e-9)
