"""Checkpointed loops (``checkpoint_loops=K``): the tape keeps a long loop's values every K
trips, the backward sweep recomputes the stretches, and the gradients are bitwise the
plain tape's (which match finite differences); the tape then holds a fraction of the bytes."""
import math

import numpy as np
import pytest

import vmapper
from vmapper.kernels.activations import lstm_cell
from vmapper.testing import check_grads

from .test_grads import early_return, for_break_continue, masked_nan_trap, newton_sqrt, while_loop



def grads_with(f, args, argnums, k):
    vg = vmapper.value_and_grad(f, argnums, sparse_tables=False, checkpoint_loops=k)
    with vmapper.autodiff.tape_stats() as stats:
        values, grads = vg(*args)
    assert vg.last_stats == stats and f.last_stats["tape_bytes"] == stats["tape_bytes"]
    return values, grads, stats


def assert_bitwise(a, b):
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_bitwise(x, y)
        return
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_bitwise(a[k], b[k])
        return
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), strict=True)


def check_checkpointing(fn, args, argnums, in_axes, ks=(1, 2, 3, 7), rtol=1e-6, stretches=True):
    """Finite differences for the plain tape, then every K gives the same bits."""
    f = vmapper.batched(fn, in_axes=in_axes)
    check_grads(f, args, argnums, rtol=rtol)
    values, grads, plain = grads_with(f, args, argnums, None)
    assert plain["tape_stretches"] == 0
    for k in ks:
        v, g, stats = grads_with(f, args, argnums, k)
        assert_bitwise(v, values)
        assert_bitwise(g, grads)
        if stretches and k <= 2:
            assert stats["tape_stretches"] > 0, "expected the loop to be checkpointed"
        assert stats["tape_entries"] == plain["tape_entries"]
    return grads


# ---- loops with per-sample trip counts ---------------------------------------------------------

@pytest.mark.parametrize("fn", [while_loop, for_break_continue, early_return, masked_nan_trap])
def test_scalar_loops_checkpoint_to_the_same_gradients(fn):
    rng = np.random.default_rng(1)
    x = rng.normal(size=9) * 1.5
    check_checkpointing(fn, (x, 0.8), (0, 1), (0, None), stretches=fn is not masked_nan_trap)


def test_newton_to_a_tolerance():
    rng = np.random.default_rng(2)
    a = rng.uniform(0.5, 20.0, size=16)
    check_checkpointing(newton_sqrt, (a, 1.3), (0, 1), (0, None), rtol=1e-5)


def damped_for(x, n, w):
    y = x
    for i in range(n):
        y = y - 0.1 * (np.sin(y) * w + y * (i % 3))
    return y


def test_for_range_with_per_sample_bounds():
    rng = np.random.default_rng(3)
    x = rng.normal(size=12)
    n = rng.integers(0, 25, size=12)
    check_checkpointing(damped_for, (x, n, 0.7), (0, 2), (0, 0, None), ks=(1, 4, 10))


def loop_break_continue_return(x, w):
    acc = 0.0
    k = 0
    while True:
        k += 1
        if k % 4 == 0:
            continue
        acc = acc + math.tanh(acc * w + x * k)
        if acc > 3.0 + x:
            break
        if k > 40:
            return acc * w
        if acc < -2.0:
            return -acc * x
    return acc * acc


def test_break_continue_and_early_return_inside_the_loop():
    rng = np.random.default_rng(4)
    x = rng.normal(size=24)
    check_checkpointing(loop_break_continue_return, (x, 0.6), (0, 1), (0, None), ks=(1, 3, 8))


# ---- nested loops, calls and recursion inside loops ---------------------------------------------

def nested(x, n, w):
    y = x
    for i in range(n):
        j = 0
        while j < i % 5 + 1:
            y = np.sin(y * w) + 0.3 * y
            j += 1
        y = y + 0.01 * i
    return y


def test_nested_loops_with_both_levels_checkpointed():
    rng = np.random.default_rng(5)
    x = rng.normal(size=10)
    n = rng.integers(3, 30, size=10)
    check_checkpointing(nested, (x, n, 0.9), (0, 2), (0, 0, None), ks=(1, 2, 3, 6))


def step_helper(y, w):
    t = 0.0
    for i in range(3):
        t = t + np.cos(y + i * w)
    return y + 0.1 * t


def fact_like(x, k):
    if k <= 0:
        return 1.0
    return x * fact_like(x, k - 1)


def calls_in_loop(x, n, w):
    y = x
    for i in range(n):
        if y > 0:
            y = step_helper(y, w)
        else:
            y = step_helper(y * 0.5, w) + fact_like(w, i % 3)
    return y


def test_helper_calls_and_recursion_inside_the_loop():
    rng = np.random.default_rng(6)
    x = rng.normal(size=11)
    n = rng.integers(0, 15, size=11)
    check_checkpointing(calls_in_loop, (x, n, 0.4), (0, 2), (0, 0, None), ks=(1, 2, 5))


def tree_sum(node, w):
    if node.is_leaf:
        y = node.value * w
        k = 0
        while k < node.value:  # a per-leaf trip count, in a recursive call
            y = math.sin(y) * w + 0.1 * k
            k += 1
        return y
    acc = 0.0
    for c in node.children:
        acc = acc + np.tanh(tree_sum(c, w) * w)
    return acc


def test_loops_in_recursive_calls_over_trees():
    forest = vmapper.Forest.from_nested([((3, 7), 12), (1, (5, (2, 9))), 15, ((4,),)])
    check_checkpointing(tree_sum, (forest.roots, 0.7), 1, (0, None), ks=(1, 2, 4))


# ---- loops over per-sample arrays, compaction, masked NaN traps ----------------------------------

def rnn(xs, n, h0, W, U):
    h = h0
    for t in range(n):
        h = np.tanh(W @ h + U @ xs[t % 4])
        if np.sum(h) > 2.0:
            break
    return np.sum(h * h)


def test_recurrence_over_per_sample_arrays_with_shared_weights():
    rng = np.random.default_rng(7)
    b = 7
    xs = rng.normal(size=(b, 4, 3))
    n = rng.integers(0, 12, size=b)
    h0 = rng.normal(size=(b, 5)) * 0.5
    W = rng.normal(size=(5, 5)) * 0.4
    U = rng.normal(size=(5, 3)) * 0.4
    check_checkpointing(rnn, (xs, n, h0, W, U), (0, 2, 3, 4), (0, 0, 0, None, None), ks=(1, 3))


def test_compacting_loop_over_many_lanes():
    rng = np.random.default_rng(8)
    # more than 64 lanes with staggered exits: the loop restricts to its live lanes and
    # blocks run compacted, so stretches hold gathers and write-back scatters
    x = rng.normal(size=150)
    n = rng.integers(0, 40, size=150)
    check_checkpointing(damped_for, (x, n, 0.7), (0, 2), (0, 0, None), ks=(1, 5, 16))


def lstm_loop(xs, n, W, U, b):
    h = np.zeros(4)
    c = np.zeros(4)
    for t in range(n):
        g = W @ xs[t % 3] + U @ h + b
        h, c = lstm_cell(g[0:4], g[4:8], g[8:12], g[12:16], c)  # one entry, two results
    return np.sum(h) + np.sum(c * c)


def test_lstm_cells_with_two_results_in_a_loop():
    rng = np.random.default_rng(9)
    args = (rng.normal(size=(8, 3, 2)), rng.integers(0, 12, size=8), rng.normal(size=(16, 2)),
            rng.normal(size=(16, 4)) * 0.5, rng.normal(size=16))
    check_checkpointing(lstm_loop, args, (0, 2, 3, 4), (0, 0, None, None, None), ks=(1, 5))


def kernel_step(y, w):
    return y + 0.1 * math.sin(y * w)


def loop_calling_a_kernel(v, n, w):
    for i in range(n):
        v = v * 0.9 + kernel_step(v[i % 3], w)
    return np.sum(v)


def test_kernel_calls_inside_a_loop_are_kept_whole():
    rng = np.random.default_rng(10)
    pytest.importorskip("numba")
    f = vmapper.batched(loop_calling_a_kernel, in_axes=(0, 0, None), backend="numba")
    args = (rng.normal(size=(8, 3)), rng.integers(0, 12, size=8), 0.7)
    v0, g0, plain = grads_with(f, args, (0, 2), None)
    assert f.last_stats["kernel_launches"] > 0  # the helper ran as a kernel: no tape inside
    v1, g1, ckpt = grads_with(f, args, (0, 2), 2)
    assert ckpt["tape_stretches"] > 0
    assert_bitwise((v1, g1), (v0, g0))
    vn, gn, _ = grads_with(vmapper.batched(loop_calling_a_kernel, in_axes=(0, 0, None)), args, (0, 2), 2)
    for a, b in zip(g1, gn):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def nan_trap_loop(x, w):
    y = x
    for i in range(12):
        # math.sqrt/math.log can fail, so each arm runs under its own mask: the lanes
        # that skip it compute NaN there, which must not reach the gradient
        if y > 0:
            y = math.sqrt(y) * w + 0.1 * i
        else:
            y = math.log(-y + 1.0) - w
        if y > 5.0:
            return y
    return y


def test_masked_nan_traps_inside_a_checkpointed_loop():
    rng = np.random.default_rng(11)
    x = rng.normal(size=20) * 2
    grads = check_checkpointing(nan_trap_loop, (x, 0.9), (0, 1), (0, None), ks=(1, 4), rtol=1e-5)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_vjp_fn_may_run_twice_and_agrees_with_the_plain_tape():
    rng = np.random.default_rng(12)
    x = rng.normal(size=9)
    f = vmapper.batched(damped_for, in_axes=(0, None, None))
    out, vjp_plain = vmapper.vjp(f, x, 30, 0.7)
    out_c, vjp_ckpt = vmapper.vjp(f, x, 30, 0.7, checkpoint_loops=4)
    cot = rng.normal(size=9)
    first = vjp_ckpt(cot)
    assert vjp_ckpt.last_stats["tape_stretches"] > 0
    assert_bitwise(vjp_ckpt(cot), first)
    assert_bitwise(first, vjp_plain(cot))
    assert_bitwise(out_c, out)


# ---- memory ---------------------------------------------------------------------------------

def long_loop(x, n, w):
    y = x
    k = 0
    while k < n:
        y = y + 0.001 * np.sin(y * w)
        k += 1
    return y


def test_checkpointing_a_1000_trip_loop_holds_a_small_fraction_of_the_bytes():
    rng = np.random.default_rng(13)
    x = rng.normal(size=256)
    n = rng.integers(900, 1001, size=256)  # per-sample trip counts: masked, then compacted trips
    f = vmapper.batched(long_loop, in_axes=(0, 0, None))
    v0, g0, plain = grads_with(f, (x, n, 0.5), (0, 2), None)
    v1, g1, ckpt = grads_with(f, (x, n, 0.5), (0, 2), 10)
    assert_bitwise((v0, g0), (v1, g1))
    assert ckpt["tape_stretches"] == -(-n.max() // 10)  # 10 trips a stretch
    assert plain["tape_bytes"] > 3 * 900 * 256 * 8  # several float64 values per lane and trip
    # kept: every 10th trip's state, and each trip's masks and lane indices
    assert ckpt["tape_bytes"] < 0.2 * plain["tape_bytes"]
    # recomputed at once: about one stretch of 10 trips
    assert ckpt["tape_recompute_bytes"] < 0.03 * plain["tape_bytes"]
    assert ckpt["tape_bytes"] + ckpt["tape_recompute_bytes"] < 0.25 * plain["tape_bytes"]


def test_short_loops_are_not_checkpointed():
    rng = np.random.default_rng(14)
    x = rng.normal(size=9)
    f = vmapper.batched(damped_for, in_axes=(0, None, None))
    _, _, stats = grads_with(f, (x, 5, 0.7), (0, 2), 10)
    assert stats["tape_stretches"] == 0


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_checkpoint_loops_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="checkpoint_loops"):
        vmapper.value_and_grad(damped_for, checkpoint_loops=bad)


def test_stats_without_measuring_count_entries_only():
    rng = np.random.default_rng(15)
    f = vmapper.batched(damped_for, in_axes=(0, None, None))
    vg = vmapper.value_and_grad(f, 0, checkpoint_loops=3)
    vg(rng.normal(size=5), 20, 0.7)
    assert vg.last_stats["tape_stretches"] == 7 and vg.last_stats["tape_entries"] > 100
    assert "tape_bytes" not in vg.last_stats
