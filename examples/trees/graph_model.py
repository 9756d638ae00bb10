"""A DAG-RNN over networkx DAGs, written per graph and batched with vmapper.

Each node's state aggregates a VARYING number of children::

    h(v) = tanh(W x_v + U * sum_{c in children(v)} h(c) + b)

and a graph's score is ``v . h(root)``. The per-graph code walks the DAG recursively
(``for c in node.children``); a node shared by several parents is visited once per path,
exactly as the per-sample Python does. Random DAGs (one root, edges from lower to
higher node numbers) are built with networkx and packed with ``Forest.from_networkx``.

Run:  python examples/trees/graph_model.py
"""
from __future__ import annotations

import time

import numpy as np

import vmapper
from vmapper.testing import check_batching


def dag_state(node, p):
    """The node's hidden state: a sum over however many children it has."""
    acc = np.zeros(p["U"].shape[1])
    for c in node.children:
        acc = acc + dag_state(c, p)
    return np.tanh(p["W"] @ node.x + p["U"] @ acc + p["b"])


@vmapper.batched(in_axes=(0, None))
def dag_score(root, p):
    """A graph's scalar score from its root state."""
    return p["v"] @ dag_state(root, p)


@vmapper.batched(in_axes=(0, None), memo=True)
def dag_state_memo(node, p):
    """``dag_state`` in vmapper's DAG mode (``memo=True``): each distinct node evaluated once.

    The function is pure, so the results equal ``dag_state``'s; a node shared by several
    parents is computed once per call instead of once per path.
    """
    acc = np.zeros(p["U"].shape[1])
    for c in node.children:
        acc = acc + dag_state_memo(c, p)
    return np.tanh(p["W"] @ node.x + p["U"] @ acc + p["b"])


@vmapper.batched
def longest_path(node):
    """Nodes on the longest root-to-leaf path (integer work: exact batching)."""
    best = 0
    for c in node.children:
        best = max(best, longest_path(c))
    return best + 1


@vmapper.batched
def count_paths(node):
    """Root-to-leaf paths: shared nodes are counted once per path through them."""
    if node.num_children == 0:
        return 1
    total = 0
    for c in node.children:
        total += count_paths(c)
    return total


def random_dag(rng, n_nodes, p_edge=0.3, max_children=4, feat_dim=4):
    """A networkx DiGraph with one root (node 0); every other node has >= 1 parent."""
    import networkx as nx

    g = nx.DiGraph()
    for v in range(n_nodes):
        g.add_node(v, x=rng.normal(size=feat_dim))
    for v in range(1, n_nodes):
        parents = [u for u in range(v) if rng.random() < p_edge] or [int(rng.integers(v))]
        for u in parents:
            if g.out_degree(u) < max_children or u == parents[-1]:
                g.add_edge(u, v)
    return g


def random_dags(n_graphs, seed=0, min_nodes=1, max_nodes=12, feat_dim=4):
    rng = np.random.default_rng(seed)
    return [random_dag(rng, int(rng.integers(min_nodes, max_nodes + 1)), feat_dim=feat_dim)
            for _ in range(n_graphs)]


def node_visits(forest):
    """How many node visits a plain recursive walk makes: each node once per path to it."""
    visits = np.zeros(forest.num_nodes, dtype=np.int64)
    visits[forest.root_ids] = 1
    for v in range(forest.num_nodes - 1, -1, -1):  # parents have larger ids than children
        kids = forest.child_idx[forest.child_ptr[v]:forest.child_ptr[v + 1]]
        np.add.at(visits, kids, visits[v])
    return int(visits.sum())


def init_params(feat_dim=4, hidden=8, seed=0):
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(0, 0.5, (hidden, feat_dim)),
            "U": rng.normal(0, 0.5 / np.sqrt(hidden), (hidden, hidden)),
            "b": rng.normal(0, 0.1, hidden),
            "v": rng.normal(0, 1.0, hidden)}


def check(n_graphs=64, seed=0):
    """Batched results against the per-sample loop (vmapper.testing.check_batching)."""
    forest = vmapper.Forest.from_networkx(random_dags(n_graphs, seed), attrs=["x"])
    p = init_params(seed=seed)
    scores = check_batching(dag_score, (forest.roots, p), in_axes=(0, None),
                            exact=False, rtol=1e-12, atol=1e-12)
    depth = check_batching(longest_path, (forest.roots,))
    paths = check_batching(count_paths, (forest.roots,))
    memo = check_batching(dag_state_memo, (forest.roots, p), in_axes=(0, None),
                          exact=False, rtol=1e-12, atol=1e-12)
    plain = vmapper.batched(dag_state, in_axes=(0, None))(forest.roots, p)
    np.testing.assert_allclose(memo, plain, rtol=1e-12, atol=1e-12)
    return forest, scores, depth, paths


def main():
    forest = vmapper.Forest.from_networkx(random_dags(1000, seed=1), attrs=["x"])
    p = init_params(seed=1)
    print(f"{forest}: {'a forest of trees' if forest.is_tree else 'DAGs with shared nodes'}")
    for f, args in ((dag_score, (forest.roots, p)), (longest_path, (forest.roots,)),
                    (count_paths, (forest.roots,))):
        t = time.perf_counter()
        out = f(*args)
        dt = time.perf_counter() - t
        print(f"{f.per_sample.__name__}: {np.round(out[:6], 4)} ... ({dt:.3f}s)")
        print(f"    last_stats: {f.last_stats}")
    state_memo = dag_state_memo(forest.roots, p)
    st = dag_state_memo.last_stats
    plain = vmapper.batched(dag_state, in_axes=(0, None))(forest.roots, p)
    print(f"dag_state_memo (memo=True): {st['memo_evaluated']} memoized evaluations (+ "
          f"{len(forest)} roots) for {forest.num_nodes} distinct nodes, where the plain walk visits "
          f"{node_visits(forest)} (node, path) pairs; max |memo - plain| = "
          f"{np.abs(state_memo - plain).max():.1e}")
    print(f"    last_stats: {st}")
    height = forest.depth
    assert np.array_equal(longest_path(forest.roots), height), "longest path != Forest.depth"
    check()
    print("batched results equal the per-sample loop (check_batching), "
          "and longest_path equals Forest.depth")


if __name__ == "__main__":
    import argparse
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()  # (--help; no options)
    main()
