"""Write-back of compacted if-arms into the join: each arm's variables land on its lanes,
with the dtypes the per-sample run gives, and never through an array another name holds."""
import numpy as np
import pytest

import vmapper
from vmapper.runtime.values import Lanes, scatter_into


@vmapper.batched(in_axes=(0, None))
def arms_bind_new_names(x, W):
    # both arms are heavy (a matrix product), so each runs on a subframe of its lanes and
    # writes h, loss and count back; one arm binds loss and count to Python scalars
    if x[0] > 0:
        h = W @ x
        loss = 0.0
        count = 0
    else:
        h = W @ (x * 2.0)
        loss = x[1] * x[2]
        count = int(x[3] > 0) + 1
    return h, loss + h[0], count


@vmapper.batched(in_axes=(0, None))
def arms_rebind_an_aliased_name(x, W):
    h = x * 1.0
    kept = h  # the same array as h until an arm rebinds h
    if x[0] > 0:
        h = W @ x
        h = h + 1.0
        h = h * 3.0
    else:
        h = W @ (x * 2.0)
        h = h - 1.0
        h = h * 5.0
    return h, kept


def _inputs(rng, n, dtype):
    x = rng.normal(size=(n, 4)).astype(dtype)
    x[:, 0] = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    return x, rng.normal(size=(4, 4)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [7, 40, 300])
def test_both_arms_write_back_what_the_per_sample_run_returns(n, dtype):
    x, W = _inputs(np.random.default_rng(n), n, dtype)
    h, loss, count = arms_bind_new_names(x, W)
    assert arms_bind_new_names.last_stats["compactions"] >= 1
    per = [arms_bind_new_names.per_sample(xi, W) for xi in x]
    # a GEMM over the lanes sums in another order than per-sample matrix-vector products
    np.testing.assert_allclose(h, np.stack([p[0] for p in per]), rtol=1e-5 if dtype == np.float32 else 1e-13)
    assert h.dtype == dtype and loss.dtype == dtype  # 0.0 merged with float32 stays float32
    np.testing.assert_array_equal(count, [p[2] for p in per])
    assert count.dtype == np.int64
    leaf = x[:, 0] > 0
    np.testing.assert_array_equal(loss[leaf], h[leaf, 0])  # 0.0 + h[0], bitwise


def test_an_arm_writing_back_never_changes_an_alias_of_the_old_array():
    x, W = _inputs(np.random.default_rng(5), 50, np.float64)
    h, kept = arms_rebind_an_aliased_name(x, W)
    assert arms_rebind_an_aliased_name.last_stats["compactions"] >= 1
    np.testing.assert_array_equal(kept, x)


@pytest.mark.parametrize("dest, data, weak, dtype", [
    (0.0, np.arange(1, 3, dtype=np.float32), False, np.float32),
    (0, np.arange(1, 3, dtype=np.int64), True, np.int64),
    (0, np.arange(1, 3, dtype=np.float64), True, np.float64),
    (True, np.arange(1, 3, dtype=np.int64), True, np.int64),
    (2 ** 40 + 1, np.arange(1, 3, dtype=np.float64), False, np.float64),
])
def test_scalar_destination_takes_the_merged_dtype(dest, data, weak, dtype):
    out = scatter_into(dest, Lanes(data, weak), np.array([0, 2]), 4)
    assert out.data.dtype == dtype and out.weak == weak
    np.testing.assert_array_equal(out.data, np.array([data[0], dest, data[1], dest], dtype=dtype))
