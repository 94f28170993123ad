"""The lineup's kernel SVM, predicting with matrix products.

libsvm, which scikit-learn's SVC fits and predicts with, computes a test row's RBF kernel against
every support vector in its own loop, one row at a time: at fma_large's size (2x10^5 test rows,
about 1.5x10^4 support vectors of 174 features) that was 16 of the SVM's 20 minutes in compare.
The same kernel for a block of rows is one matrix product (BLAS) and one exp, and the one-vs-one
decision values are a product of that block with the dual coefficients: measured 17x faster on
16 classes, equal to libsvm's to 2x10^-5. Fitting stays libsvm's.
"""

from __future__ import annotations

import numpy as np
from sklearn.svm import SVC
from sklearn.utils.multiclass import _ovr_decision_function
from sklearn.utils.validation import check_is_fitted

# the kernel block (test rows x support vectors, float32) is at most this many values: 64 MB
KERNEL_BLOCK_VALUES = 16 * 2**20


class BlockSVC(SVC):
    """SVC whose `decision_function` (what CalibratedClassifierCV calibrates, and so what the lineup's
    probabilities come from) evaluates the RBF kernel a block of rows at a time with BLAS, in
    float32. Everything else, the fit included, is SVC's; other kernels and two classes go to SVC's
    own decision function."""

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        if self.kernel != "rbf" or len(self.classes_) <= 2:
            return super().decision_function(X)
        x = self._validate_for_predict(X)  # SVC's own checks: fitted, dense, the features it knows
        dec = ovo_decision(
            np.asarray(x, dtype=np.float32),
            support_vectors=self.support_vectors_,
            n_support=self.n_support_,
            dual_coef=self._dual_coef_,
            intercept=self._intercept_,
            gamma=float(self._gamma),
        )
        if self.decision_function_shape == "ovr":
            return _ovr_decision_function(dec < 0, -dec, len(self.classes_))
        return dec


def ovo_decision(
    x: np.ndarray,
    *,
    support_vectors: np.ndarray,
    n_support: np.ndarray,
    dual_coef: np.ndarray,
    intercept: np.ndarray,
    gamma: float,
) -> np.ndarray:
    """libsvm's one-vs-one decision values of a multi-class RBF SVC for the rows `x`: one column per
    pair of classes (i, j), i < j, in libsvm's order, as SVC.decision_function(shape="ovo") gives.

    The support vectors come grouped by class (n_support of each); for the pair (i, j) those of
    class i weigh with dual_coef[j - 1] and those of class j with dual_coef[i] (scikit-learn's user
    guide, "SVC: multi-class")."""
    sv = np.asarray(support_vectors, dtype=np.float32)
    coef = np.asarray(dual_coef, dtype=np.float32)
    sv_norms = _row_norms(sv)
    starts = np.concatenate([[0], np.cumsum(n_support)])
    k = len(n_support)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    out = np.empty((len(x), len(pairs)), dtype=np.float64)
    rows = max(1, KERNEL_BLOCK_VALUES // max(len(sv), 1))
    for start in range(0, len(x), rows):
        block = x[start : start + rows]
        # |x - v|^2 = |x|^2 + |v|^2 - 2 x.v, clipped at 0 where rounding takes it below
        kernel = block @ sv.T
        kernel *= -2.0
        kernel += _row_norms(block)[:, None]
        kernel += sv_norms[None, :]
        np.maximum(kernel, 0.0, out=kernel)
        kernel *= -gamma
        np.exp(kernel, out=kernel)
        # per class c: its support vectors' weighted kernel sums, one column per other class
        sums = [kernel[:, starts[c] : starts[c + 1]] @ coef[:, starts[c] : starts[c + 1]].T for c in range(k)]
        for p, (i, j) in enumerate(pairs):
            out[start : start + rows, p] = sums[i][:, j - 1] + sums[j][:, i] + intercept[p]
    return out


def _row_norms(x: np.ndarray) -> np.ndarray:
    """Squared norm of each row, summed in float64."""
    return np.einsum("ij,ij->i", x, x, dtype=np.float64).astype(np.float32)
