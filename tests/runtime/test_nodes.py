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
