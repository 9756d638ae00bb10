"""Tree nodes passed broadcast (in_axes=None): recursion over them, their methods, and
per-lane choices among them batch like the per-sample loop; nodes of two forests in one
per-lane value raise an error that says so."""
import networkx as nx
import numpy as np
import pytest

import vmapper
from vmapper.testing import check_batching


def weight_sum(n):
    s = n.w
    for c in n.children:
        s = s + weight_sum(c)
    return s


def scaled_sum(a, b):
    return a.w * weight_sum(b)


def first_child_weight(a, b):
    return a.w + b.child(0).w


def lane_child_weight(a, b):
    return b.child(a.num_children % b.num_children).w


def chosen_child(a, b):
    n = b.left if a.w > 0 else b.right
    return n.w


def zipped_children(a, b):
    s = 0.0
    for ca, cb in zip(a.children, b.children):
        s = s + ca.w * cb.w
    return s


def either_forest(a, b):
    n = a if a.w > b.w else b
    return n.w


def sum_of_either(a, b):
    if a.w > 0:
        return weight_sum(a)
    else:
        return weight_sum(b)


def _star(sign, kids):
    g = nx.DiGraph()
    g.add_node(0, w=sign * 1.0)
    for i in range(1, kids + 1):
        g.add_node(i, w=float(i))
        g.add_edge(0, i)
    return g


def _forest(seed, trees=6):
    rng = np.random.default_rng(seed)
    return vmapper.Forest.from_networkx(
        [_star(rng.choice([-1, 1]), int(rng.integers(2, 5))) for _ in range(trees)], attrs=["w"])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("fn", [scaled_sum, first_child_weight, lane_child_weight, chosen_child,
                                zipped_children])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_broadcast_node_batches_like_the_per_sample_loop(fn, backend, seed):
    forest = _forest(seed)
    shared = _forest(seed + 10, trees=2).tree(1)
    out = check_batching(fn, (forest.roots, shared), in_axes=(0, None), backend=backend)
    assert len(out) == len(forest)


@pytest.mark.parametrize("fn, hint", [(either_forest, None), (sum_of_either, "both arms of this if")])
def test_nodes_of_two_forests_in_one_value_name_the_two_forests(fn, hint):
    f1, f2 = _forest(2), _forest(3)
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="two different Forest objects") as info:
        vmapper.batched(fn, backend="numpy")(f1.roots, f2.roots)
    if hint:
        assert hint in str(info.value)
