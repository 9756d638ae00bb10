"""When a masked block runs on a subframe of its active lanes (compaction) instead of masked."""
import numpy as np

import vmapper
from vmapper.runtime import executor


@vmapper.batched(in_axes=(0, None))
def heavy_branch(x, W):
    if x[0] > 0:
        y = W @ x
        y = y + 1.0
        y = y * 2.0
    else:
        y = x * 3.0
    return y


@vmapper.batched
def scalar_branch(x):
    if x > 0:
        y = x * 2.0
        y = y + 1.0
        y = y * 5.0
        y = y - 3.0
    else:
        y = x
    return y


def _check_matches_per_sample(out, x, W):
    # a GEMM over the lanes sums in another order than per-sample matrix-vector products
    np.testing.assert_allclose(out, np.stack([heavy_branch.per_sample(xi, W) for xi in x]), rtol=1e-13, atol=1e-13)


def test_heavy_block_compacts_in_a_small_frame():
    rng = np.random.default_rng(0)
    n = 20
    assert n < executor.COMPACT_MIN_LANES
    x = rng.normal(size=(n, 4))
    x[:, 0] = np.where(np.arange(n) < 6, 1.0, -1.0)  # 6 of 20 lanes take the matmul branch
    W = rng.normal(size=(4, 4))
    out = heavy_branch(x, W)
    assert heavy_branch.last_stats["compactions"] >= 1
    _check_matches_per_sample(out, x, W)


def test_heavy_block_on_most_lanes_stays_masked():
    rng = np.random.default_rng(1)
    n = 20
    x = rng.normal(size=(n, 4))
    x[:, 0] = np.where(np.arange(n) < 18, 1.0, -1.0)  # 90% of the lanes: masking is cheaper
    W = rng.normal(size=(4, 4))
    out = heavy_branch(x, W)
    assert heavy_branch.last_stats["compactions"] == 0
    _check_matches_per_sample(out, x, W)


def test_scalar_block_in_a_small_frame_stays_masked():
    x = np.where(np.arange(20) < 4, 1.5, -2.0)
    out = scalar_branch(x)
    assert scalar_branch.last_stats["compactions"] == 0
    np.testing.assert_array_equal(out, np.array([scalar_branch.per_sample(v) for v in x]))
