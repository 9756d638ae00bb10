"""passes.merge_branch_calls: the calls of an if's two arms run as one call, so walks that
choose a child per lane (decision trees, binary search) take one call per level."""
import numpy as np
import pytest

import vmapper
from vmapper.frontend import build_function
from vmapper.passes.cfg_cleanup import cleanup_cfg
from vmapper.passes.merge_branch_calls import merge_branch_calls
from vmapper.testing import check_batching, check_grads
from source_lines import line_of


def full_tree(depth, rng):
    if depth == 0:
        return float(rng.integers(0, 10))
    return (full_tree(depth - 1, rng), full_tree(depth - 1, rng))


def walk(node, x):
    if node.is_leaf:
        return node.value * x
    if x > 0.0:
        return walk(node.left, x * 2.0 - 1.0)
    else:
        return walk(node.right, x * 2.0 + 1.0)


def walk_ifexp(node, x):
    if node.is_leaf:
        return node.value + x
    return walk_ifexp(node.left, x - 0.5) if x > node.value / 10 else walk_ifexp(node.right, 2 * x)


def walk_joined(node, x, depth):
    if node.is_leaf:
        return node.value + depth
    if x < 0:
        r = walk_joined(node.left, -x, depth + 1)
        r = r * 2
    else:
        r = walk_joined(node.right, x - 1, depth + 1)
    return r + 1


def sum_and_walk(node, x):
    if node.is_leaf:
        return x
    if x > 0:
        return sum_and_walk(node.left, x - 1)
    return abs(sum_and_walk(node.right, x + 1))


def different_callees(node, x):
    if node.is_leaf:
        return x
    if x > 0:
        return different_callees(node.left, x)
    return walk(node.right, x)


def _calls(fn):
    ir = merge_branch_calls(cleanup_cfg(build_function(fn)))
    return [i for blk in ir.blocks.values() for i in blk.instrs if i.op == "call"]


@pytest.mark.parametrize("fn", [walk, walk_ifexp, walk_joined, sum_and_walk])
def test_the_two_arms_calls_become_one(fn):
    assert len(_calls(fn)) == 1


def test_calls_of_different_functions_stay_apart():
    assert len(_calls(different_callees)) == 2


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("fn, extra", [(walk, ()), (walk_ifexp, ()), (walk_joined, (0,)), (sum_and_walk, ())])
def test_a_walk_down_full_trees_takes_one_call_per_level(fn, extra, backend):
    rng = np.random.default_rng(3)
    depth = 7
    forest = vmapper.Forest.from_nested([full_tree(depth, rng) for _ in range(3)] * 100)
    x = rng.uniform(-1, 1, len(forest))
    if fn is sum_and_walk:
        x = rng.integers(-3, 4, len(forest))
    f = vmapper.batched(fn, in_axes=(0, 0) + (None,) * len(extra), backend=backend)
    check_batching(f, (forest.roots, x, *extra), in_axes=(0, 0) + (None,) * len(extra))
    assert f.last_stats["calls"] == depth  # (it grew with the paths taken: 2**depth here)


def test_gradients_flow_through_the_merged_call():
    rng = np.random.default_rng(4)
    forest = vmapper.Forest.from_nested([full_tree(5, rng) for _ in range(40)])
    check_grads(vmapper.batched(walk), (forest.roots, rng.uniform(-1, 1, len(forest))), argnums=1)


def op_tree(node, k):
    if node.is_leaf:
        return node.value * k
    l, r = node.left, node.right
    if k % 2 == 0:
        return op_tree(l, k + 1) + op_tree(r, k // 2)
    else:
        return op_tree(l, k - 3) - 2 * op_tree(r, k)


def dependent_calls(node, x):
    if node.is_leaf:
        return x
    if x > 0:
        return dependent_calls(node.left, dependent_calls(node.right, x - 1))
    return dependent_calls(node.right, dependent_calls(node.left, x + 1))


def test_arms_with_two_calls_each_become_one_call_of_two_groups():
    assert len(_calls(op_tree)) == 2
    rng = np.random.default_rng(5)
    forest = vmapper.Forest.from_nested([full_tree(6, rng) for _ in range(50)])
    f = vmapper.batched(op_tree)
    check_batching(f, (forest.roots, rng.integers(-20, 20, 50)))
    assert f.last_stats["calls"] == 6


def test_a_call_reading_another_calls_result_keeps_the_arms_apart():
    assert len(_calls(dependent_calls)) == 4
    rng = np.random.default_rng(6)
    forest = vmapper.Forest.from_nested([full_tree(3, rng) for _ in range(20)])
    check_batching(vmapper.batched(dependent_calls), (forest.roots, rng.integers(-2, 3, 20)))


def times(a, b):
    return a * b


def narrow_or_wide(a8, a, c):
    if c > 0:
        r = times(a8, a8)  # int8 per sample: wraps
    else:
        r = times(a, a)
    return r


def int_or_float(n, x, c):
    if c > 0:
        r = times(n, 2)
    else:
        r = times(x, 1.5)
    return r


@pytest.mark.filterwarnings("ignore:overflow encountered")  # (the per-sample int8 product's own warning)
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_arms_passing_arrays_of_other_dtypes_are_refused_where_lanes_take_both(backend):
    a8, a = np.array([34, 100, 5], dtype=np.int8), np.array([3, 4, 5])
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="an int8 argument in one arm and an int64 argument"):
        vmapper.batched(narrow_or_wide, backend=backend)(a8, a, np.array([1, 1, -1]))
    # every lane takes one arm: that arm's arguments, in their own type (34 * 34 wraps)
    check_batching(narrow_or_wide, (a8, a, np.array([1, 1, 1])), backend=backend)
    check_batching(narrow_or_wide, (a8, a, np.array([-1, -1, -1])), backend=backend)
    # an int in one arm and a float in the other: one float call, as the README documents
    out = vmapper.batched(int_or_float, backend=backend)(np.array([3, 4]), np.array([0.5, 1.0]), np.array([1, -1]))
    np.testing.assert_array_equal(out, [6.0, 1.5])


def scaled_leaf(node, x):
    if node.is_leaf:
        return x * 100
    return scaled_leaf(node.left, x)


def children_of_two_dtypes(node, a, b, c):
    if c > 0:  # arms that cannot become selects (node.left, node.right): stores per arm
        return scaled_leaf(node.left, a)  # marker-arms-of-two-dtypes
    else:
        return scaled_leaf(node.right, b)


def one_arm_per_trip(node, a, b, n):
    total = 0
    for k in range(2):
        if k >= n:
            continue  # (lanes that skip the if on this trip: it runs on the others only)
        if k % 2 == 0:  # every lane takes the same arm on a trip: an int8 call, then an int64 one
            r = scaled_leaf(node.left, a)
        else:
            r = scaled_leaf(node.right, b)
        total = total + r
    return total


@pytest.mark.filterwarnings("ignore:overflow encountered")
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_arms_storing_arguments_of_other_dtypes_are_refused_where_lanes_take_both(backend):
    forest = vmapper.Forest.from_nested([(1, 2), ((3, 4), 5)])
    a8, a = np.array([100, 3], dtype=np.int8), np.array([100, 3])
    with pytest.raises(vmapper.UnsupportedSyntaxError,
                       match="an int8 argument in one arm and an int64 argument in the other") as info:
        vmapper.batched(children_of_two_dtypes, backend=backend)(forest.roots, a8, a, np.array([1, -1]))
    assert f"test_merge_branch_calls.py:{line_of(children_of_two_dtypes, 'marker-arms-of-two-dtypes')}" \
        in str(info.value)
    check_batching(children_of_two_dtypes, (forest.roots, a8, a, np.array([1, 1])), backend=backend)
    # each run of the if has its own arguments: a trip's int8 ones never meet the next trip's
    many = vmapper.Forest.from_nested([(1, 2)] * 10)
    check_batching(one_arm_per_trip, (many.roots, np.full(10, 3, np.int8), np.full(10, 3), np.array([2] * 9 + [1])),
                   backend=backend)
