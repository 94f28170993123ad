import tracemalloc

import numpy as np
import pandas as pd
import pytest

from genre_hpc.flow.metrics import bootstrap_interval, evaluate, fold_interval, interval_text


def test_the_bootstrap_interval_holds_the_accuracy_and_narrows_with_more_tracks():
    small = np.array([1] * 17 + [0] * 3)  # 0.85 on 20 tracks
    large = np.tile(small, 10)  # 0.85 on 200 tracks
    a, b = bootstrap_interval(small), bootstrap_interval(large)
    assert a["low"] < 0.85 < a["high"] and b["low"] < 0.85 < b["high"]
    # the standard error sqrt(p(1-p)/n) is 0.080 at n = 20 and 0.025 at n = 200
    assert a["high"] - a["low"] == pytest.approx(4 * 0.080, abs=0.08)
    assert b["high"] - b["low"] == pytest.approx(4 * 0.025, abs=0.03)
    assert "20 test tracks" in a["method"]
    assert bootstrap_interval(small, seed=3) == bootstrap_interval(small, seed=3)


def test_the_bootstrap_draws_counts_as_resampling_tracks_would_without_holding_the_draws():
    rng = np.random.default_rng(1)
    outcomes = (rng.random(300) < 0.7).astype(float)
    # what resampling the tracks themselves gives, drawn here the slow way
    draws = outcomes[rng.integers(0, outcomes.size, size=(20000, outcomes.size))].mean(axis=1)
    low, high = np.quantile(draws, [0.025, 0.975])
    got = bootstrap_interval(outcomes, resamples=20000)
    assert got["low"] == pytest.approx(low, abs=0.01) and got["high"] == pytest.approx(high, abs=0.01)
    # fma_large's 10^5 test tracks: drawing tracks would hold 2000 x 10^5 indices (1.6 GB)
    many = np.tile(outcomes, 334)
    tracemalloc.start()
    try:
        wide = bootstrap_interval(many)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * many.nbytes
    assert wide["low"] < many.mean() < wide["high"] and wide["high"] - wide["low"] < 0.01


def test_the_bootstrap_takes_0_1_outcomes_only():
    with pytest.raises(ValueError, match="0/1 outcomes"):
        bootstrap_interval(np.array([0.2, 0.9, 1.0]))


def test_the_fold_interval_is_a_t_interval_around_the_mean():
    info = fold_interval([0.7, 0.8, 0.9, 0.8])
    assert info["mean"] == pytest.approx(0.8) and info["std"] == pytest.approx(
        np.std([0.7, 0.8, 0.9, 0.8], ddof=1)
    )
    assert info["low"] < 0.8 < info["high"]
    wider_than_normal = (info["high"] - info["mean"]) / (info["std"] / 2)
    assert 1.96 < wider_than_normal < 3.5  # t with 3 degrees of freedom: 3.18
    same = fold_interval([0.8] * 5)
    assert same["low"] == same["high"] == pytest.approx(0.8)


def test_every_accuracy_comes_with_its_interval_and_its_text():
    classes = ["a", "b"]
    ids = pd.DataFrame(
        {"track_id": ["t1", "t1", "t2", "t2", "t3", "t3"], "label": ["a", "a", "b", "b", "b", "b"]}
    )
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7], [0.8, 0.2], [0.7, 0.3]])
    scores = evaluate(proba, ids, classes)
    assert scores["track_accuracy"] == pytest.approx(2 / 3)
    interval = scores["track_accuracy_interval"]
    assert interval["low"] <= 2 / 3 <= interval["high"] and "3 test tracks" in interval["method"]
    assert interval_text(0.85, {"level": 0.95, "low": 0.7, "high": 0.95}) == "0.850 (95% CI 0.700-0.950)"


def test_the_fold_interval_stays_within_what_an_accuracy_can_be():
    info = fold_interval([1.0, 1.0, 0.95, 1.0])
    assert info["high"] == 1.0 and info["low"] < info["mean"]
