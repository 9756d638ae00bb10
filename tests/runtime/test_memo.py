"""DAG mode (``batched(..., memo=True)``, ``vmapper/runtime/memo.py``): the same values and
gradients as plain recursion, each node evaluated once, bottom-up by height."""
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import vmapper
from vmapper.forest import NodeBatch
from vmapper.testing import check_batching
from lane_inputs import random_binary_forest


def ladder_forest(sizes=(12, 16, 20)):
    """Node k points to k+1 and k+2: shared nodes, paths doubling per rung."""
    graphs = []
    for size in sizes:
        g = nx.DiGraph()
        for k in range(size - 2):
            g.add_edge(k, k + 1)
            g.add_edge(k, k + 2)
        graphs.append(g)
    return vmapper.Forest.from_networkx(graphs)


def cell(node, p):
    """A small Tree-LSTM-like recursion: per-node vectors, a matmul, a per-node loss."""
    if node.is_leaf:
        h = np.tanh(p["E"][node.value])
        loss = 0.0
        count = 1
    else:
        hl, loss_l, count_l = cell(node.left, p)
        hr, loss_r, count_r = cell(node.right, p)
        h = np.tanh(p["U"] @ np.concatenate((hl, hr)) + p["b"])
        loss = loss_l + loss_r
        count = count_l + count_r + 1
    return h, loss + np.sum(h * p["w"]) ** 2, count


def tree_loss(root, p):
    _, loss, _ = cell(root, p)
    return loss


def params(seed, dim=4):
    rng = np.random.default_rng(seed)
    return {"E": rng.normal(size=(9, dim)), "U": rng.normal(size=(dim, 2 * dim)) / 3,
            "b": rng.normal(size=dim), "w": rng.normal(size=dim)}


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_memo_values_and_gradients_equal_plain_recursion(seed):
    forest, p = random_binary_forest(seed), params(seed)
    plain = vmapper.batched(tree_loss, in_axes=(0, None))
    memo = vmapper.batched(tree_loss, in_axes=(0, None), memo=True)
    check_batching(memo, (forest.roots, p), exact=False, atol=1e-12)  # (BLAS rounds a batch's products its own way)
    v_plain, g_plain = vmapper.value_and_grad(plain, argnums=1)(forest.roots, p)
    v_memo, g_memo = vmapper.value_and_grad(memo, argnums=1)(forest.roots, p)
    np.testing.assert_allclose(v_memo, v_plain, rtol=1e-12, atol=1e-12)
    for k in p:
        np.testing.assert_allclose(np.asarray(g_memo[k]), np.asarray(g_plain[k]), rtol=1e-10, atol=1e-12)


def test_memo_runs_a_batch_in_as_many_calls_as_it_is_tall():
    forest, p = random_binary_forest(1, trees=64), params(1)
    memo = vmapper.batched(tree_loss, in_axes=(0, None), memo=True)
    memo(forest.roots, p)
    st_ = memo.last_stats
    # one batched run per height (the roots' own height included) plus the top-level call
    assert st_["memo_evaluated"] == forest.num_nodes
    assert st_["calls"] <= 2 * forest.max_depth + 1
    assert st_["compactions"] == 0  # every node of one height is a leaf, or none is


def dag_sum(node, p):
    if node.is_leaf:
        return p["w"] * 1.0
    total = p["w"] * 0.0
    for c in node.children:
        total = total + np.tanh(dag_sum(c, p))
    return total


def test_memo_dag_gradients_count_every_parent_of_a_shared_node():
    forest = ladder_forest()
    p = {"w": np.array([0.3, -0.2])}
    plain = vmapper.batched(dag_sum, in_axes=(0, None))
    memo = vmapper.batched(dag_sum, in_axes=(0, None), memo=True)
    out_plain, vjp_plain = vmapper.vjp(plain, forest.roots, p)
    out_memo, vjp_memo = vmapper.vjp(memo, forest.roots, p)
    np.testing.assert_allclose(out_memo, out_plain, rtol=1e-13)
    cot = np.random.default_rng(0).normal(size=out_plain.shape)
    g_plain = vjp_plain(cot)[1]["w"]
    g_memo = vjp_memo(cot)[1]["w"]
    np.testing.assert_allclose(g_memo, g_plain, rtol=1e-12)
    assert memo.last_stats["memo_evaluated"] == forest.num_nodes - len(forest)  # (roots: the call itself)
    # a second backward sweep over the same tape starts from zero gradients
    np.testing.assert_allclose(vjp_memo(2 * cot)[1]["w"], 2 * g_plain, rtol=1e-12)


def depth_weighted(node, k):
    if node.is_leaf:
        return k * node.value
    return depth_weighted(node.left, k + 1) + depth_weighted(node.right, k + 1)


def test_memo_keeps_calls_with_other_uniform_arguments_apart():
    forest = random_binary_forest(3)
    plain = vmapper.batched(depth_weighted, in_axes=(0, None))
    memo = vmapper.batched(depth_weighted, in_axes=(0, None), memo=True)
    expected = check_batching(memo, (forest.roots, 1))
    np.testing.assert_array_equal(expected, plain(forest.roots, 1))


def leaf_or_node(node):
    """Results of changing kinds: a uniform 0.0 on leaves, per-lane floats above; a node."""
    if node.is_leaf:
        return 0.0, node
    a, _ = leaf_or_node(node.left)
    b, _ = leaf_or_node(node.right)
    return a + b + 0.5 * node.num_children, node.left


def test_memo_results_change_kind_between_heights():
    forest = random_binary_forest(4)
    plain = vmapper.batched(leaf_or_node)
    memo = vmapper.batched(leaf_or_node, memo=True)
    (v_plain, n_plain), (v_memo, n_memo) = plain(forest.roots), memo(forest.roots)
    np.testing.assert_array_equal(v_memo, v_plain)
    np.testing.assert_array_equal(n_memo.ids, n_plain.ids)


def bracketed(node):
    if node.is_leaf:
        return "L"
    s = "("
    for c in node.children:
        s = s + bracketed(c)
    return s + ")"


@pytest.mark.parametrize("memo", [False, True])
def test_str_results_of_every_height_join_per_lane(memo):
    # (strs of different lengths per lane, and a uniform "(" meeting the children's strs)
    forest = vmapper.Forest.from_nested([((1, 2), 3), 4, (5, (6, (7, 8)))])
    assert check_batching(bracketed, (forest.roots,), memo=memo).tolist() == ["((LL)L)", "L", "(L(L(LL)))"]


def test_memo_on_repeated_and_inner_nodes():
    forest, p = random_binary_forest(5), params(5)
    inner = forest.child_idx[forest.child_ptr[forest.root_ids[forest.depth > 2]]]
    ids = np.concatenate([inner, inner[:3], forest.root_ids[:2]])
    batch = NodeBatch(forest, ids)
    plain = vmapper.batched(tree_loss, in_axes=(0, None))
    memo = vmapper.batched(tree_loss, in_axes=(0, None), memo=True)
    check_batching(memo, (batch, p), exact=False, atol=1e-12)
    _, g_plain = vmapper.value_and_grad(plain, argnums=1)(batch, p)
    _, g_memo = vmapper.value_and_grad(memo, argnums=1)(batch, p)
    for k in p:
        np.testing.assert_allclose(np.asarray(g_memo[k]), np.asarray(g_plain[k]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_memo_promotes_like_merged_calls(dtype):
    def mixed(node, p):
        if node.is_leaf:
            return p["x"][node.value]  # dtype
        return mixed(node.left, p) + 1.0 * mixed(node.right, p)
    forest = random_binary_forest(6)
    p = {"x": np.arange(9, dtype=dtype) / 7}
    plain = vmapper.batched(mixed, in_axes=(0, None))
    memo = vmapper.batched(mixed, in_axes=(0, None), memo=True)
    got = check_batching(memo, (forest.roots, p))
    assert got.dtype == plain(forest.roots, p).dtype


def inverse_sum(node):
    if node.is_leaf:
        return 1 // node.value
    return inverse_sum(node.left) + inverse_sum(node.right)


@pytest.mark.parametrize("memo", [False, True])
def test_an_error_below_a_root_names_that_roots_lane(memo):
    trees = [((1, 2), 3), (4, (5, 0)), (6, 7)]  # lane 1 divides by zero, two levels down
    forest = vmapper.Forest.from_nested(trees)
    with pytest.raises(vmapper.LaneError) as info:
        vmapper.batched(inverse_sum, memo=memo)(forest.roots)
    assert list(info.value.lanes) == [1]
    assert "ZeroDivisionError" in str(info.value)


def looped_loss(root, p, trips):
    total = 0.0
    for j in range(trips):
        _, loss, _ = cell(root, p)
        total = total + loss * (j + 1)
    return total


@pytest.mark.parametrize("checkpoint", [None, 2])
def test_memo_results_outlive_loop_trips_and_checkpointing(checkpoint):
    forest, p = random_binary_forest(2), params(2)
    plain = vmapper.batched(looped_loss, in_axes=(0, None, None))
    memo = vmapper.batched(looped_loss, in_axes=(0, None, None), memo=True)
    v_plain, g_plain = vmapper.value_and_grad(plain, argnums=1)(forest.roots, p, 5)
    v_memo, g_memo = vmapper.value_and_grad(memo, argnums=1, checkpoint_loops=checkpoint)(forest.roots, p, 5)
    assert memo.last_stats["memo_evaluated"] == forest.num_nodes  # once, not once per trip
    np.testing.assert_allclose(v_memo, v_plain, rtol=1e-12)
    for k in p:
        np.testing.assert_allclose(np.asarray(g_memo[k]), np.asarray(g_plain[k]), rtol=1e-10, atol=1e-12)


def widening(node):
    if node.is_leaf:
        return np.zeros(2)  # the leaves: shape (2,)
    return np.concatenate((widening(node.left), widening(node.right)))  # marker-widening


@pytest.mark.parametrize("memo", [False, True])
def test_results_of_different_shapes_name_the_returns(memo):
    from source_lines import line_of
    forest = random_binary_forest(1)
    with pytest.raises(vmapper.UnsupportedSyntaxError) as info:
        vmapper.batched(widening, memo=memo)(forest.roots)
    assert "different shapes" in str(info.value)
    assert info.value.line == line_of(widening, "marker-widening")


@vmapper.batched(memo=True)
def paths_to_a_leaf(v):
    if v.is_leaf:
        return 1
    return sum(paths_to_a_leaf(c) for c in v.children)


@vmapper.batched
def calls_a_memo_function(v):
    return paths_to_a_leaf(v) + 1


def test_a_memo_function_called_from_a_plain_batched_function_still_runs_in_dag_mode():
    # a Fibonacci-shaped DAG: 2**(n/1.6) root-to-leaf paths, n + 1 nodes
    n = 30
    graph = nx.DiGraph([(k, k + 1) for k in range(n)] + [(k, k + 2) for k in range(n - 1)])
    forest = vmapper.Forest.from_networkx([graph, graph])
    np.testing.assert_array_equal(calls_a_memo_function(forest.roots), [1346270, 1346270])
    stats = calls_a_memo_function.last_stats
    assert stats["memo_evaluated"] == 2 * (n + 1)  # each node once, not once per path
    assert stats["calls"] <= n + 2


def test_a_memo_function_called_on_the_roots_sweeps_the_heights_once_for_both_children():
    forest, p = random_binary_forest(2, trees=64), params(2)
    direct = vmapper.batched(cell, in_axes=(0, None), memo=True)
    through = vmapper.batched(tree_loss, in_axes=(0, None), memo=True)
    loss = direct(forest.roots, p)[1]
    np.testing.assert_allclose(loss, through(forest.roots, p), rtol=1e-12)
    # the left and right children's lookups evaluate their missing nodes in one sweep together
    assert direct.last_stats["calls"] <= through.last_stats["calls"]
    assert direct.last_stats["memo_evaluated"] == forest.num_nodes - len(forest)


@vmapper.batched
def a_memo_function_at_two_call_sites(v):
    a = paths_to_a_leaf(v)
    if v.is_leaf:
        return a
    return a + paths_to_a_leaf(v.child(0))  # every node here was evaluated by the first call


def test_two_call_sites_of_a_memo_function_share_the_calls_tables():
    forest = vmapper.Forest.from_nested([((1, 2), (3, (4, 5))), (6, 7), 8])
    f = a_memo_function_at_two_call_sites
    check_batching(f, (forest.roots,))
    f(forest.roots)
    assert f.last_stats["memo_evaluated"] == forest.num_nodes  # each node once, the roots too


@vmapper.batched(memo=True)
def even_weight(v):
    t = 1.0 * v.value
    for c in v.children:
        t = t * 0.5 - odd_weight(c)
    return t


@vmapper.batched(memo=True)
def odd_weight(v):
    t = 2.0 * v.value
    for c in v.children:
        t = t * 0.5 + even_weight(c)
    return t


def test_mutual_memo_recursion_evaluates_each_node_once_per_function():
    # depth-first, a node reached by paths of several lengths was evaluated once per length
    n = 60
    graph = nx.DiGraph([(k, k + 1) for k in range(n)] + [(k, k + 2) for k in range(n - 1)])
    nx.set_node_attributes(graph, {k: k % 5 - 2 for k in graph}, "value")
    forest = vmapper.Forest.from_networkx([graph, graph], attrs="value")

    def plain(v, parity, cache):
        if (v.id, parity) not in cache:
            t = (1.0 if parity == 0 else 2.0) * v.value
            for c in v.children:
                t = t * 0.5 + (-1 if parity == 0 else 1) * plain(c, 1 - parity, cache)
            cache[(v.id, parity)] = t
        return cache[(v.id, parity)]
    expected = [plain(r, 0, {}) for r in forest]
    np.testing.assert_array_equal(even_weight(forest.roots), expected)
    assert even_weight.last_stats["memo_evaluated"] <= 2 * forest.num_nodes


class PathCounter:
    @vmapper.batched(memo=True)
    def paths(self, node):
        t = 1
        for c in node.children:
            t = t + self.paths(c)
        return t

    @vmapper.batched
    def through_self(self, node):
        return self.paths(node) * 2

    @vmapper.batched
    def over_children(self, node):
        t = 0
        for c in node.children:  # (a call hoisted out of the loop: one call over every child)
            t = t + self.paths(c)
        return t


@pytest.mark.parametrize("method", ["through_self", "over_children"])
def test_a_memo_method_called_through_self_runs_in_dag_mode(method):
    n = 30  # a Fibonacci-shaped DAG: ~1.3 million paths through 31 nodes
    graph = nx.DiGraph([(k, k + 1) for k in range(n)] + [(k, k + 2) for k in range(n - 1)])
    forest = vmapper.Forest.from_networkx([graph, graph])
    model = PathCounter()
    f = getattr(model, method)
    out = f(forest.roots)
    expected = 2 * model.paths(forest.roots) if method == "through_self" else model.paths(forest.roots) - 1
    np.testing.assert_array_equal(out, expected)
    # each node below the roots once (not once per path, nor 0: plain recursion)
    assert 2 * n <= f.last_stats["memo_evaluated"] <= 2 * (n + 1)


def float32_over_python_leaves(node, leaf):
    if node.is_leaf:
        return 1 if leaf == 0 else 0.5 if leaf == 1 else len(node.children) + node.id % 3
    t = np.float32(0.1)
    for c in node.children:
        t = t + float32_over_python_leaves(c, leaf) * np.float32(1.1)
    return t


@pytest.mark.parametrize("leaf", [0, 1, 2])  # a uniform int, a uniform float, a per-lane int
def test_memo_results_of_python_scalars_take_the_float32_of_the_heights_above(leaf):
    # the table's column promoted the leaves' Python numbers with float32 to float64
    chain = nx.path_graph(5, create_using=nx.DiGraph)
    dag = nx.DiGraph([(0, 1), (0, 2), (1, 2), (2, 3), (1, 3)])
    forest = vmapper.Forest.from_networkx([chain, dag])
    memo = vmapper.batched(float32_over_python_leaves, in_axes=(0, None), memo=True)
    out = check_batching(memo, (forest.roots, leaf))
    assert out.dtype == np.float32



def weighs_children_apart(node, p):
    if node.is_leaf:
        return p["w"] * float(node.id + 1)
    a = weighs_children_apart(node.left, p)
    b = weighs_children_apart(node.right, p)
    return np.tanh(a * 3.0) + b * 0.5


def test_merged_lookups_of_cached_children_give_each_child_its_own_value_and_gradient():
    # also where both children are the very same node
    graphs = []
    for size in (5, 7, 9):
        g = nx.MultiDiGraph()
        for k in range(size - 1):
            g.add_edge(k, k + 1)
            g.add_edge(k, k + 1 if k % 2 else size - 1)
        graphs.append(g)
    forest = vmapper.Forest.from_networkx(graphs)
    p = {"w": np.array([0.3, -0.2, 0.7])}
    plain = vmapper.batched(weighs_children_apart, in_axes=(0, None))
    memo = vmapper.batched(weighs_children_apart, in_axes=(0, None), memo=True)
    check_batching(memo, (forest.roots, p))
    out_plain, vjp_plain = vmapper.vjp(plain, forest.roots, p)
    out_memo, vjp_memo = vmapper.vjp(memo, forest.roots, p)
    np.testing.assert_array_equal(out_memo, out_plain)
    assert memo.last_stats["memo_evaluated"] == forest.num_nodes - len(forest)  # (roots: the call itself)
    cot = np.random.default_rng(1).normal(size=out_plain.shape)
    np.testing.assert_allclose(vjp_memo(cot)[1]["w"], vjp_plain(cot)[1]["w"], rtol=1e-13)
