"""Column means and spreads of float rows, a block of rows at a time in float64, combined in order.

Light on purpose (numpy and pandas only): the config check imports the lineup, which uses these,
before the numba cache is set up, so nothing here may import numba code (jitcache.JIT_MODULES).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SCALE_BLOCK_ROWS = 32_768  # 45 MB of float64 at 174 features


def combine_moments(
    moments: list[tuple[int, np.ndarray, np.ndarray]], width: int
) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, mean, squared deviations) of rows held in pieces, from each piece's, combined in
    order (Chan et al.'s pairwise update): the same numbers every run."""
    n, mean, m2 = 0, np.zeros(width), np.zeros(width)
    for count, part_mean, part_m2 in moments:
        if not count:
            continue
        delta = part_mean - mean
        total = n + count
        mean = mean + delta * count / total
        m2 = m2 + part_m2 + delta**2 * n * count / total
        n = total
    return n, mean, m2


def array_moments(values: np.ndarray | pd.DataFrame) -> tuple[int, np.ndarray, np.ndarray]:
    """Count, mean and squared deviations of each column (float64), a block of rows at a time: the
    whole of a worker's share in float64, twice over, was 4x its float32 size (13 GB for a share
    of 5x10^6 rows)."""
    blocks = []
    for start in range(0, len(values), SCALE_BLOCK_ROWS):
        stop = start + SCALE_BLOCK_ROWS
        if isinstance(values, pd.DataFrame):
            block = values.iloc[start:stop].to_numpy(dtype=np.float64)
        else:
            block = values[start:stop].astype(np.float64)
        mean = block.mean(axis=0)
        blocks.append((len(block), mean, ((block - mean) ** 2).sum(axis=0)))
    return combine_moments(blocks, values.shape[1])


def sample_std(n: int, m2: np.ndarray) -> np.ndarray:
    """The standard deviation (n - 1) from combined moments; 1 for a constant column, which is
    then only centred."""
    std = np.sqrt(m2 / max(n - 1, 1))
    return np.where(std == 0.0, 1.0, std)
