"""BlockSVC predicts what scikit-learn's SVC (libsvm) predicts, with matrix products."""

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import SVC

from genre_hpc.flow import kernel_svm
from genre_hpc.flow.kernel_svm import BlockSVC


def _rows(classes: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).normal(size=(classes, 12))
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.normal(size=(n, 12))).astype(np.float32), y


def test_decision_values_equal_libsvms() -> None:
    x, y = _rows(5, 400, seed=0)
    test, _ = _rows(5, 300, seed=1)
    ours = BlockSVC(C=10.0, decision_function_shape="ovo").fit(x, y)
    theirs = SVC(C=10.0, decision_function_shape="ovo").fit(x, y)
    assert ours.n_support_.sum() == theirs.n_support_.sum()  # the same fit
    expected = theirs.decision_function(test)
    got = ours.decision_function(test)
    assert got.shape == expected.shape == (300, 10)  # a column per pair of the 5 classes
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_one_vs_rest_values_equal_libsvms_away_from_ties() -> None:
    x, y = _rows(5, 400, seed=0)
    test, _ = _rows(5, 300, seed=1)
    ours, theirs = BlockSVC(C=10.0).fit(x, y), SVC(C=10.0).fit(x, y)
    # the one-vs-rest shape counts each pair's vote: a pair within rounding of 0 may vote either way
    pairs = theirs.set_params(decision_function_shape="ovo").decision_function(test)
    clear = np.abs(pairs).min(axis=1) > 1e-3
    assert clear.mean() > 0.9
    theirs.set_params(decision_function_shape="ovr")
    got, expected = ours.decision_function(test), theirs.decision_function(test)
    assert got.shape == expected.shape == (300, 5)
    np.testing.assert_allclose(got[clear], expected[clear], atol=1e-4)
    # the class each names (BlockSVC.predict is libsvm's own: its decision values are the change)
    assert (got.argmax(axis=1) == expected.argmax(axis=1))[clear].all()


def test_blocks_of_rows_give_the_values_of_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _rows(4, 300, seed=2)
    test, _ = _rows(4, 101, seed=3)
    svm = BlockSVC(C=1.0).fit(x, y)
    whole = svm.decision_function(test)
    # a block of 7 rows: 15 blocks, the last one short (float32 products of other shapes may round
    # differently in the last bits, so not bit for bit)
    monkeypatch.setattr(kernel_svm, "KERNEL_BLOCK_VALUES", 7 * int(svm.n_support_.sum()))
    np.testing.assert_allclose(svm.decision_function(test), whole, atol=1e-5)
    np.testing.assert_array_equal(svm.decision_function(test), svm.decision_function(test))


def test_two_classes_and_other_kernels_are_svcs_own() -> None:
    x, y = _rows(2, 200, seed=4)
    test, _ = _rows(2, 50, seed=5)
    np.testing.assert_allclose(
        BlockSVC().fit(x, y).decision_function(test), SVC().fit(x, y).decision_function(test), atol=1e-6
    )
    x, y = _rows(3, 200, seed=6)
    np.testing.assert_array_equal(
        BlockSVC(kernel="linear").fit(x, y).decision_function(test),
        SVC(kernel="linear").fit(x, y).decision_function(test),
    )


def test_calibrated_probabilities_come_from_the_block_decision() -> None:
    x, y = _rows(4, 400, seed=7)
    test, _ = _rows(4, 200, seed=8)
    ours = CalibratedClassifierCV(BlockSVC(C=10.0), ensemble=False, cv=3).fit(x, y)
    theirs = CalibratedClassifierCV(SVC(C=10.0), ensemble=False, cv=3).fit(x, y)
    pairs = SVC(C=10.0, decision_function_shape="ovo").fit(x, y).decision_function(test)
    clear = np.abs(pairs).min(axis=1) > 1e-3  # as above: away from a pair's tie
    assert clear.mean() > 0.9
    np.testing.assert_allclose(ours.predict_proba(test)[clear], theirs.predict_proba(test)[clear], atol=1e-4)


def test_an_unfitted_svm_says_so() -> None:
    with pytest.raises(Exception, match="not fitted"):
        BlockSVC().decision_function(np.zeros((2, 3), dtype=np.float32))
