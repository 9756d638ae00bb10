"""``runtime/nodes.py``: the node API in per-sample code batches like the per-sample loop."""
import numpy as np
import pytest

import vmapper
from vmapper.testing import check_batching


def last_child_is_a_child(node):
    if node.is_leaf:
        return False
    return node.child(-1) in node.children


def membership_of_other_values(node, other):
    return (node in node.children, 5 in node.children, other in node.children,
            node.child(0) not in node.children if not node.is_leaf else True)


def grandchild_is_a_child(node):
    if node.is_leaf or node.child(0).is_leaf:
        return False
    return node.child(0).child(0) in node.children


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("memo", [False, True])
def test_in_node_children_tests_each_lanes_node_against_its_children(backend, memo):
    forest = vmapper.Forest.from_nested([((1, 2), 3), 4, (5, 6), ((7, (8, 9)), 10)])
    out = check_batching(last_child_is_a_child, (forest.roots,), backend=backend, memo=memo)
    np.testing.assert_array_equal(out, [True, False, True, True])
    out = check_batching(grandchild_is_a_child, (forest.roots,), backend=backend, memo=memo)
    np.testing.assert_array_equal(out, [False, False, False, False])  # (a grandchild is no child)
    shared = forest.tree(0).children[0]  # a broadcast node, a child of tree 0's root only
    out = check_batching(membership_of_other_values, (forest.roots, shared), in_axes=(0, None), backend=backend)
    np.testing.assert_array_equal(out[2], [True, False, False, False])


def node_comparisons(node, shared, other):
    return (node == shared, node != shared, shared == node, node == other, node in (shared,),
            node in (other, shared), node in [shared], 5 in (node,))


def node_keyed_lookups(node, table):
    found = table[node] if node in table else -1
    return found, table.get(node, -2)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_node_compares_with_shared_nodes_and_is_found_in_collections_and_dicts_keyed_by_nodes(backend):
    # Node.__eq__ per lane: the same node of the same forest (it was False on every lane)
    from vmapper.forest import NodeBatch
    forest = vmapper.Forest.from_nested([(1, 2), (3, 4), 5])
    every = NodeBatch(forest, np.arange(forest.num_nodes))
    shared = forest.tree(1)
    out = check_batching(node_comparisons, (every, shared, every), in_axes=(0, None, 0), backend=backend)
    np.testing.assert_array_equal(out[0], every.ids == shared.id)
    assert out[4].sum() == 1 and out[5].all() and not out[7].any()
    table = {forest.tree(0): 10, shared.children[1]: 20}
    found, got = check_batching(node_keyed_lookups, (every, table), in_axes=(0, None), backend=backend)
    assert sorted(found[found >= 0]) == [10, 20] and (got >= 0).sum() == 2
    with pytest.raises(vmapper.LaneError, match="KeyError"):
        vmapper.batched(item_keyed_by_node, in_axes=(0, None), backend=backend)(every, table)


def item_keyed_by_node(node, table):
    return table[node]


def children_comparisons(node):
    empty, nonempty = node.children == (), node.children != ()
    if node.is_leaf:
        return empty, nonempty, False, False, False
    return (empty, nonempty, node.children == (node.left, node.child(-1)), node.children == node.children,
            node.left.children == node.children)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_node_children_compare_as_the_tuple_node_children_is(backend):
    forest = vmapper.Forest.from_nested([(1.0, 2.0), 3.0, ((1.0, 2.0), 4.0, 5.0), ((1.0,),), (6.0, 7.0)])
    out = check_batching(children_comparisons, (forest.roots,), backend=backend)
    np.testing.assert_array_equal(out[0], [False, True, False, False, False])
    np.testing.assert_array_equal(out[2], [True, False, False, False, True])


def child_by_numpy_bool(node):
    return node.child(node.num_children > 1).value


def child_by_python_bool(node):
    return node.child(bool(node.num_children > 1)).value


def test_a_numpy_bool_child_index_raises_the_per_sample_type_error_and_a_python_bool_is_an_int():
    forest = vmapper.Forest.from_nested([(1, 2), (3, 4, 5)])
    with pytest.raises(vmapper.LaneError, match="'numpy.bool' object cannot be interpreted as an integer") as err:
        vmapper.batched(child_by_numpy_bool)(forest.roots)
    assert err.value.python_error is TypeError
    np.testing.assert_array_equal(check_batching(child_by_python_bool, (forest.roots,)), [2, 4])


def is_none(node):
    return node.w is None


def test_an_object_attribute_is_refused_by_name_in_batched_code():
    import networkx as nx
    g = nx.DiGraph()
    g.add_node("r", w=None)
    g.add_node("c", w=1.0)
    g.add_edge("r", "c")
    h = nx.DiGraph()
    h.add_node("x", w=2.0)
    forest = vmapper.Forest.from_networkx([g, h], attrs="w")
    assert [is_none(r) for r in forest] == [True, False]
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="node attribute 'w' of dtype object"):
        vmapper.batched(is_none)(forest.roots)


def update_attribute_copy(node):
    v = node.emb
    v[0] = 5.0  # per sample, node.emb is a copy of the node's row: nothing else changes
    return v.sum() + node.emb[0]


def update_broadcast_attribute_copy(x, node):
    v = node.emb
    v[1] = x
    return v.sum() + node.emb[1]


def update_shared_attribute_copy(node):
    v = node.emb
    w = v
    v[0] = 5.0
    return w.sum()


def _vector_forest():
    import networkx as nx
    graphs = []
    for k in range(3):
        g = nx.DiGraph()
        g.add_node(0, emb=np.array([1.0 + k, 2.0]))
        g.add_node(1, emb=np.array([3.0, 4.0 * k]))
        g.add_edge(0, 1)
        graphs.append(g)
    return vmapper.Forest.from_networkx(graphs, attrs="emb")


@pytest.mark.parametrize("generate", [True, False])
def test_a_node_attribute_read_is_a_fresh_array_that_may_be_updated_in_place(monkeypatch, generate):
    from vmapper.runtime import block_compiler
    monkeypatch.setattr(block_compiler, "GENERATE", generate)
    forest = _vector_forest()
    out = check_batching(update_attribute_copy, (forest.roots,))
    np.testing.assert_array_equal(out, [8.0, 9.0, 10.0])
    shared = forest.tree(1)  # a broadcast node's attribute is a copy too
    out = check_batching(update_broadcast_attribute_copy, (np.arange(3.0), shared), in_axes=(0, None))
    np.testing.assert_array_equal(out, [4.0, 5.0, 6.0])  # the root [2, 2]: 2 + x, + 2
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="in-place update of array 'v'"):
        vmapper.batched(update_shared_attribute_copy)(forest.roots)


def id_plus_int8(node):
    return node.id + np.int8(1)


def test_node_id_is_a_python_int_per_sample_and_promotes_as_one():
    forest = vmapper.Forest.from_nested([(1, 2), 3, (4, (5, 6))])
    out = check_batching(id_plus_int8, (forest.roots,))  # (dtypes compared too)
    assert out.dtype == np.int8
