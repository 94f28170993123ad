"""The parity table of the package's features against the origin study's extractor."""

import numpy as np
import pytest

from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.parity import parity_table


def test_parity_flags_a_feature_that_drifts():
    params = FeatureParams()
    rng = np.random.default_rng(0)
    theirs = rng.uniform(1.0, 2.0, size=(4, len(params.names()))).astype(np.float32)
    ours = theirs.copy()
    ours[:, 0] *= 1.02  # zero_crossing_rate_mean 2 % off
    ours[:, 1] = theirs[:, 1] + 1e-4 * np.abs(theirs[:, 1]).max()  # tiny absolute offset
    table = parity_table(ours, theirs, params=params, tolerance=0.01)
    assert not table.ok.iloc[0]
    assert table.max_rel_diff.iloc[0] == pytest.approx(0.02, rel=1e-3)
    assert table.ok.iloc[1:].all()
