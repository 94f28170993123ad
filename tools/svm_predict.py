"""The lineup's SVM prediction: libsvm's (scikit-learn's SVC) against BLAS's (flow/kernel_svm.py's
BlockSVC), side by side on the same fitted model, one thread:

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python tools/svm_predict.py --train 16000 --test 20000

Prints the seconds of each, their ratio, the largest difference of the decision values and the
share of rows whose predicted class agrees. Rows: 16 overlapping Gaussian classes, 174 features.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.svm import SVC
from sklearn.utils.multiclass import _ovr_decision_function

from genre_hpc.flow.kernel_svm import BlockSVC


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--train", type=int, default=16_000)
    args.add_argument("--test", type=int, default=20_000)
    args.add_argument("--classes", type=int, default=16)
    opts = args.parse_args()
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(opts.classes, 174)) * 0.3
    y = rng.integers(0, opts.classes, opts.train)
    x = (centers[y] + rng.normal(size=(opts.train, 174))).astype(np.float32)
    drawn = rng.integers(0, opts.classes, opts.test)
    test = (centers[drawn] + rng.normal(size=(opts.test, 174))).astype(np.float32)
    started = time.perf_counter()
    # one-vs-one values: the pairwise decisions themselves (the one-vs-rest shape adds their votes,
    # which a difference of 1e-6 flips for a pair at 0)
    svm = BlockSVC(C=10.0, decision_function_shape="ovo").fit(x, y)
    vectors = int(svm.n_support_.sum())
    print(f"fit (libsvm) {time.perf_counter() - started:.1f} s, {vectors:,} support vectors")
    started = time.perf_counter()
    theirs = SVC.decision_function(svm, test)  # the same model, libsvm's prediction
    libsvm = time.perf_counter() - started
    started = time.perf_counter()
    ours = svm.decision_function(test)
    blas = time.perf_counter() - started
    print(f"libsvm {libsvm:.2f} s, BLAS {blas:.2f} s: {libsvm / blas:.1f}x")
    # the class each names by one-vs-rest votes (BlockSVC.predict is libsvm's own, not compared)
    classes = len(svm.classes_)
    agree = (
        _ovr_decision_function(ours < 0, -ours, classes).argmax(1)
        == _ovr_decision_function(theirs < 0, -theirs, classes).argmax(1)
    ).mean()
    print(f"largest difference {np.abs(ours - theirs).max():.2e} (of up to {np.abs(theirs).max():.2f})")
    print(f"same class on {agree:.2%} of rows")


if __name__ == "__main__":
    main()
