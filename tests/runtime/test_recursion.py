"""Batched recursion: compacted calls, merged sibling calls, O(depth) launches over trees."""

import numpy as np
import pytest

import vmapper
from vmapper.testing import check_batching
from lane_inputs import random_nary_forest


@vmapper.batched
def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


@vmapper.batched
def is_even(n):
    if n == 0:
        return True
    return is_odd(n - 1)


@vmapper.batched
def is_odd(n):
    if n == 0:
        return False
    return is_even(n - 1)


def tree_value(node):
    if node.is_leaf:
        return 1.0 * node.value
    return 0.5 * tree_value(node.left) + tree_value(node.right) - 1.0


def count_nodes(node):
    total = 1
    for c in node.children:
        total += count_nodes(c)
    return total


def random_tree(rng, depth):
    if depth == 0 or rng.random() < 0.25:
        return int(rng.integers(-5, 6))
    return (random_tree(rng, depth - 1), random_tree(rng, depth - 1))


def test_fib_13_on_256_lanes_is_correct():
    n = np.arange(256) % 14
    got = check_batching(fib, (n,))
    assert got[13] == 233


@vmapper.batched
def never_ends(n):
    return never_ends(n - 1) + 1


def test_recursion_that_never_ends_raises_a_recursion_error_naming_the_function():
    with pytest.raises(RecursionError) as info:
        never_ends(np.array([3, 4]))
    assert isinstance(info.value, vmapper.RecursionDepthError)
    assert isinstance(info.value, vmapper.UnsupportedSyntaxError)
    assert "never_ends" in str(info.value) and "test_recursion.py" in str(info.value)
    assert "not supported" not in str(info.value)  # (Python's stack ran out; no construct was refused)


def countdown(n):
    if n == 0:
        return 0
    return 1 + countdown(n - 1)


@vmapper.batched
def calls_countdown(n):
    return countdown(n)


def test_runaway_recursion_in_a_helper_names_the_helper_its_line_and_the_lanes():
    with pytest.raises(vmapper.RecursionDepthError,
                       match=r"in countdown \(called from calls_countdown\), on lane\(s\) \[2\]") as info:
        calls_countdown(np.array([10, 20, -1, 30]))
    first = countdown.__code__.co_firstlineno
    assert info.value.line == first + 3  # the recursive call's line
    assert "memo=True" in info.value.hint


def chain_sum(node):
    s = node.value
    for c in node.children:
        s = s * 0.5 + chain_sum(c)
    return s


def test_runaway_recursion_in_a_child_loop_names_the_line_of_the_call():
    import networkx as nx
    g = nx.DiGraph()
    g.add_nodes_from((v, {"value": 1.0}) for v in range(3000))
    g.add_edges_from((v, v + 1) for v in range(2999))
    forest = vmapper.Forest.from_networkx([g], attrs=["value"])
    with pytest.raises(vmapper.RecursionDepthError) as info:
        vmapper.batched(chain_sum, backend="numpy")(forest.roots)
    assert info.value.line == chain_sum.__code__.co_firstlineno + 3


def leftmost_grandchild(node):
    return node.left.left.value


def test_a_missing_child_is_named_as_the_per_sample_run_names_it():
    forest = vmapper.Forest.from_nested([((1, 2), 3), (4, 5)])
    with pytest.raises(vmapper.LaneError, match=r"child index 0 out of range for node \d+ with 0 children "
                                                r"on lane\(s\) \[1\]"):
        vmapper.batched(leftmost_grandchild)(forest.roots)


def test_mutual_recursion():
    check_batching(is_even, (np.arange(0, 40),))


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_tree_recursion_equals_per_sample(batch):
    rng = np.random.default_rng(batch)
    forest = vmapper.Forest.from_nested([random_tree(rng, 7) for _ in range(batch)])
    check_batching(tree_value, (forest.roots,))
    check_batching(count_nodes, (forest.roots,))


@pytest.mark.parametrize("batch", [16, 64, 256])
def test_binary_tree_recursion_makes_one_call_per_level(batch):
    rng = np.random.default_rng(0)
    forest = vmapper.Forest.from_nested([random_tree(rng, 8) for _ in range(batch)])
    f = vmapper.batched(tree_value)
    f(forest.roots)
    depth = forest.max_depth
    assert f.last_stats["calls"] <= depth
    assert f.last_stats["launches"] <= 40 * depth


def test_launches_do_not_grow_with_the_batch():
    rng = np.random.default_rng(1)
    trees = [random_tree(rng, 6) for _ in range(256)]
    full_depth = ((((((1, 2), (3, 4)), 5), 6), 7), 8)
    f = vmapper.batched(tree_value)
    launches = []
    for b in (8, 64, 256):
        forest = vmapper.Forest.from_nested([full_depth] + trees[:b - 1])
        f(forest.roots)
        launches.append(f.last_stats["launches"])
    assert launches[0] == launches[1] == launches[2]


def test_sst_trees_walk_in_depth_many_calls():
    from pathlib import Path
    sst = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sst" / "dev.txt"
    if not sst.exists():
        pytest.skip("SST not available")
    forest = vmapper.Forest.from_ptb(sst.read_text().splitlines()[:64])

    def labels(node):
        if node.is_leaf:
            return node.label
        return labels(node.left) + labels(node.right) + node.label
    f = vmapper.batched(labels)
    check_batching(f, (forest.roots,))
    assert f.last_stats["calls"] <= forest.max_depth


def sum_children_twice(node):
    total = 1.0 * node.value
    for c in node.children:
        total = total + 2.0 * sum_children_twice(c)
    return total


def weighted_rows(X, w):
    acc = 0.0
    for row in X:
        acc = acc + helper_norm(row, w)
    return acc


def helper_norm(r, w):
    return np.sqrt(np.sum(r * r)) * w


def test_calls_in_a_loop_over_children_merge_into_one_call_per_level():
    forest = random_nary_forest(3)
    f = vmapper.batched(sum_children_twice)
    check_batching(f, (forest.roots,))
    assert f.last_stats["calls"] <= forest.max_depth


def test_calls_in_a_loop_over_per_sample_rows_stay_correct():
    X = np.random.default_rng(4).normal(size=(9, 3, 2))
    check_batching(weighted_rows, (X, 0.5), in_axes=(0, None), exact=False)


def test_gradients_flow_through_hoisted_child_calls():
    from vmapper.testing import check_grads
    rng = np.random.default_rng(5)
    forest = vmapper.Forest.from_nested([((1, 2, 3), (4,), 5), (6, (7, 8))])

    def score(node, w):
        total = w * node.value
        for c in node.children:
            total = total + np.tanh(score(c, w))
        return total
    check_grads(vmapper.batched(score, in_axes=(0, None)), (forest.roots, 0.7), argnums=1)


def dag_paths(node):
    if node.is_leaf:
        return 1
    total = 0
    for c in node.children:
        total += dag_paths(c)
    return total


def test_memo_evaluates_each_shared_dag_node_once():
    import networkx as nx
    # A "ladder" DAG: node k points to k+1 and k+2, so paths double per rung.
    graphs = []
    for size in (12, 16, 20):
        g = nx.DiGraph()
        for k in range(size - 2):
            g.add_edge(k, k + 1)
            g.add_edge(k, k + 2)
        graphs.append(g)
    forest = vmapper.Forest.from_networkx(graphs)
    plain = vmapper.batched(dag_paths)
    memo = vmapper.batched(dag_paths, memo=True)
    expected = check_batching(plain, (forest.roots,))
    got = memo(forest.roots)
    np.testing.assert_array_equal(got, expected)
    # every non-root node is evaluated exactly once (the roots are the call itself)
    assert memo.last_stats["memo_evaluated"] == forest.num_nodes - len(forest)
    # every child lookup finds its node evaluated, except the roots' own, which evaluate it
    n_children = np.diff(forest.child_ptr)
    assert memo.last_stats["memo_hits"] == n_children.sum() - n_children[forest.roots.ids].sum()
    assert memo.last_stats["calls"] <= 2 * forest.max_depth


def compares_nodes(n):
    if n.is_leaf:
        return n == n, n != n, n == 3
    return n.left == n.child(0), n.left != n.child(0), n.left == n.right


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_nodes_compare_per_lane_as_node_equality_does(backend):
    forest = vmapper.Forest.from_nested([(1, 2), (3, (4, 5)), 7, ((1, 1), 2)])
    eq, ne, other = check_batching(compares_nodes, (forest.roots,), backend=backend)
    assert eq.all() and not ne.any() and not other.any()


def orders_nodes(n):
    return n < n.left


def test_ordering_nodes_raises_a_type_error_naming_nodes():
    forest = vmapper.Forest.from_nested([(1, 2)])
    with pytest.raises(vmapper.LaneError, match="'lt': Node and Node"):
        vmapper.batched(orders_nodes)(forest.roots)


def reciprocal_sum(node):
    if node.is_leaf:
        return 1 // node.value
    return reciprocal_sum(node.left) + reciprocal_sum(node.right)


def test_a_sample_failing_at_several_nodes_is_named_once():
    forest = vmapper.Forest.from_nested([(1, 2), (0, 0), (3, 0)])
    with pytest.raises(vmapper.LaneError, match=r"on lane\(s\) \[1, 2\] ") as info:
        vmapper.batched(reciprocal_sum)(forest.roots)
    np.testing.assert_array_equal(info.value.lanes, [1, 2])


def unpacked_difference(node):
    if node.is_leaf:
        return node.value
    l, r = node.children
    return unpacked_difference(l) - unpacked_difference(r)


def test_unpacking_a_binary_nodes_children_takes_both_children():
    forest = vmapper.Forest.from_nested([(1, 2), ((4, 5), 6), 7])
    f = vmapper.batched(unpacked_difference)
    check_batching(f, (forest.roots,))
    assert f.last_stats["calls"] == 2


def test_unpacking_children_of_another_count_names_the_lanes():
    forest = vmapper.Forest.from_nested([(1, 2), (1, 2, 3), (4, 5)])
    with pytest.raises(vmapper.LaneError, match=r"unpacking needs exactly 2 values \(value 3 on lane 1\)"):
        vmapper.batched(unpacked_difference)(forest.roots)


def sums_by_depth(node, d):
    s = d
    for c in node.children:
        s += sums_by_depth(c, d + 1)  # (d + 1: the same on every trip, computed before the loop)
    return s


def scaled_walk(node, p):
    if node.is_leaf:
        return p * node.value
    t = 0.0
    for c in node.children:
        t = t + scaled_walk(c, p * 0.5 + 1)
    return t


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_child_calls_with_loop_invariant_expressions_still_hoist_into_one_call_per_level(backend):
    forest = random_nary_forest(5, trees=30, depth=5)
    levels = int(forest.depth.max())
    f = vmapper.batched(sums_by_depth, backend=backend)
    check_batching(sums_by_depth, (forest.roots, np.arange(30)), backend=backend)
    f(forest.roots, np.arange(30))
    assert f.last_stats["calls"] <= levels  # one per level below the roots, not one per child
    g = vmapper.batched(scaled_walk, in_axes=(0, None), backend=backend)
    check_batching(scaled_walk, (forest.roots, 2.0), in_axes=(0, None), backend=backend, exact=False, rtol=1e-12)
    g(forest.roots, 2.0)
    assert g.last_stats["calls"] <= levels


def weighted_by_child_index(node, d):
    t = d * node.value
    for i in range(node.num_children):
        j = i
        t = t + (j + 1) * weighted_by_child_index(node.child(j), d + 1)
    return t


def weighted_by_index_into_children(node, d):
    t = d * node.value
    for i in range(len(node.children)):
        t = t + (i + 1) * weighted_by_index_into_children(node.children[i], d + 1)
    return t


def child_index_walk_that_rebinds_its_node(node):
    t = 1
    same = node
    for i in range(node.num_children):
        t += child_index_walk_that_rebinds_its_node(node.child(i))
        node = same  # the loop assigns node: not hoisted (and still right)
    return t


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_calls_in_a_loop_over_child_indices_hoist_like_a_loop_over_children(backend):
    forest = random_nary_forest(7, trees=40, depth=5)
    levels = int(forest.depth.max())
    check_batching(weighted_by_child_index, (forest.roots, np.arange(40)), backend=backend)
    f = vmapper.batched(weighted_by_child_index, backend=backend)
    f(forest.roots, np.arange(40))
    assert f.last_stats["calls"] <= levels  # one per level below the roots, not one per child
    check_batching(weighted_by_index_into_children, (forest.roots, np.arange(40)), backend=backend)
    h = vmapper.batched(weighted_by_index_into_children, backend=backend)
    h(forest.roots, np.arange(40))
    assert h.last_stats["calls"] <= levels
    g = vmapper.batched(child_index_walk_that_rebinds_its_node, backend=backend)
    check_batching(g, (forest.roots,))
    from vmapper.testing import check_grads
    check_grads(vmapper.batched(weighted_by_child_index, in_axes=(0, None), backend=backend),
                (forest.roots, 0.7), argnums=1)


def horner_over_reversed_children(node):
    s = 1.0 * node.value
    for c in reversed(node.children):
        s = s * 0.5 + horner_over_reversed_children(c)
    return s


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_calls_in_a_loop_over_reversed_children_hoist(backend):
    forest = random_nary_forest(8, trees=40, depth=5)
    check_batching(horner_over_reversed_children, (forest.roots,), backend=backend)
    f = vmapper.batched(horner_over_reversed_children, backend=backend)
    f(forest.roots)
    assert f.last_stats["calls"] <= int(forest.depth.max())


def halvings_of_the_first_child(node):
    if node.is_leaf:
        x, n = node.value, 0
        while x > 1.0:  # never ends for x == inf
            x = x / 2.0
            n += 1
        return n
    for c in node.children:
        r = halvings_of_the_first_child(c)
        if r >= 0:
            return r  # per sample only the first child is ever visited
    return -1


def any_child_halves(node):
    if node.is_leaf:
        x, n = node.value, 0
        while x > 1.0:
            x = x / 2.0
            n += 1
        return n > 0
    return any(any_child_halves(c) for c in node.children)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_child_loop_that_can_end_early_calls_only_the_children_it_visits(backend):
    forest = vmapper.Forest.from_nested([(8.0, float("inf")), (2.0, float("inf"), 3.0)])
    for fn in (halvings_of_the_first_child, any_child_halves):
        check_batching(vmapper.batched(fn, backend=backend, max_iters=10_000), (forest.roots,))


def halves_sum(a):
    n = len(a)
    if n <= 1:
        return a.sum()
    mid = n // 2
    return halves_sum(a[:mid]) + halves_sum(a[mid:])  # halves of other shapes when n is odd


@pytest.mark.parametrize("length", [3, 7, 8])
def test_sibling_calls_on_halves_of_other_shapes_run_as_separate_calls(length):
    x = np.random.default_rng(length).normal(size=(6, length))
    check_batching(halves_sum, (x,), exact=False, rtol=1e-12)
