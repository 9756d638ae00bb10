"""The per-call buffer pool: slabs are handed out again only when no view of them is alive."""
import numpy as np

import vmapper
from vmapper.runtime.buffers import MIN_POOLED_BYTES, POOL_CAPACITY, BufferPool
from vmapper.runtime.frame import LaneIndices, as_mask
from vmapper.testing import check_batching

N = MIN_POOLED_BYTES // 8 * 4  # int64 lanes well above the pooling threshold


def test_a_slab_is_not_handed_out_while_a_view_of_it_lives():
    pool = BufferPool()
    a = pool.take(np.int64, (N,))
    b = pool.take(np.int64, (N,))
    assert a is not None and b is not None
    assert not np.shares_memory(a, b)


def test_a_slab_is_reused_once_its_views_are_gone_and_serves_smaller_requests():
    pool = BufferPool()
    a = pool.take(np.float64, (N,))
    slab = id(a.base)  # not the slab itself: a reference would keep it busy
    del a
    c = pool.take(np.float64, (N // 2,))
    assert id(c.base) == slab and c.shape == (N // 2,) and c.flags.c_contiguous
    # a view of the view keeps the slab busy too
    d = c[::2]
    del c
    e = pool.take(np.float64, (N // 2,))
    assert id(e.base) != slab
    del d


def test_small_requests_and_other_dtypes_are_not_pooled_together():
    pool = BufferPool()
    assert pool.take(np.int64, (8,)) is None
    a = pool.take(np.int64, (N,))
    slab = id(a.base)
    del a
    f = pool.take(np.float64, (N,))
    assert id(f.base) != slab and f.dtype == np.float64


def test_the_pool_stops_growing_at_its_capacity():
    pool = BufferPool()
    held = [pool.take(np.int64, (N,)) for _ in range(POOL_CAPACITY)]
    assert all(h is not None for h in held)
    assert pool.take(np.int64, (N,)) is None


def test_sole_view_is_false_for_a_second_view_of_the_slab():
    pool = BufferPool()
    a = pool.take(np.int64, (N,))
    assert pool.sole_view(a)
    b = a[1:]
    assert not pool.sole_view(a)
    del b
    assert not pool.sole_view(np.zeros(N))


def test_lane_indices_become_the_mask_of_their_lanes():
    li = LaneIndices(6, [np.array([4]), np.array([1, 4])])
    np.testing.assert_array_equal(as_mask(li), [False, True, False, False, True, False])
    m = np.array([True, False])
    assert as_mask(m) is m and as_mask(None) is None


def _collatz_with_aliases(n):
    steps = 0
    history = 0
    while n != 1:
        half = n // 2
        kept = half  # a second name for a pooled result: its slab must stay busy
        if n % 2 == 0:
            n = half
        else:
            n = 3 * n + 1
        history = history + kept % 7
        steps += 1
    return steps * 1000 + history


def test_pooled_results_equal_the_per_sample_run_on_large_batches():
    # large enough that every temporary comes from the pool, with lanes leaving each trip
    rng = np.random.default_rng(3)
    n = rng.integers(1, 10 ** 6, size=MIN_POOLED_BYTES // 8 + 4000)
    check_batching(vmapper.batched(_collatz_with_aliases, backend="numpy"), (n,))


def _collatz_like(n, k):
    # both arms are temporaries that die at the if-converted select; ``k`` is a variable
    if n % 2 == 0:
        m = n // 2
    else:
        m = 3 * n + k
    return m + k


def _arms_are_variables(x, y):
    a = x * 2
    b = y + 1
    if x > y:
        r = a
    else:
        r = b
    return r + a + b, x if x > 0 else y


def test_a_dying_temporary_arm_of_a_select_holds_its_result(monkeypatch):
    from vmapper.kernels import lane_select
    calls = []
    real = lane_select.select_in_place
    monkeypatch.setattr(lane_select, "select_in_place", lambda *a: calls.append(a[3]) or real(*a))
    n = np.random.default_rng(3).integers(1, 10**6, N)
    got = vmapper.batched(_collatz_like, in_axes=(0, None), backend="numpy")(n, 7)
    assert calls, "the select wrote a fresh buffer instead of a dying arm's"
    assert np.array_equal(got, np.array([_collatz_like(int(v), 7) for v in n]))


def test_a_select_never_writes_into_a_variable_or_the_callers_arrays():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=N), rng.normal(size=N)
    x0, y0 = x.copy(), y.copy()
    check_batching(_arms_are_variables, (x, y), backend="numpy")
    assert np.array_equal(x, x0) and np.array_equal(y, y0)
