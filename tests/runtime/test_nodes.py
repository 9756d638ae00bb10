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
