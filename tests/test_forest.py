"""Tests of vmapper.forest: PTB/networkx/nested constructors, Node, NodeBatch, subset."""
import io
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import vmapper
from vmapper.errors import ForestError
from vmapper.forest import Forest, Node, NodeBatch

SST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst"


def children_ids(forest, v):
    return forest.child_idx[forest.child_ptr[v]:forest.child_ptr[v + 1]].tolist()


# -- from_ptb ------------------------------------------------------------------

def test_ptb_small_tree_structure_labels_words_vocab():
    f = Forest.from_ptb(["(3 (2 It) (4 (3 is) (4 great)))", "(1 (0 It) (2 bad))"])
    assert len(f) == 2 and f.num_nodes == 8
    assert f.vocab == {"It": 0, "is": 1, "great": 2, "bad": 3}
    root = f.tree(0)
    assert int(root.label) == 3 and int(root.word) == -1
    assert [int(c.label) for c in root.children] == [2, 4]
    assert int(root.left.word) == f.vocab["It"]
    assert int(root.right.right.word) == f.vocab["great"]
    assert int(f.tree(1).left.word) == f.vocab["It"]  # same word, same id
    # Post-order ids: children before parents, each tree's root last in its range.
    assert f.root_ids.tolist() == [4, 7]
    assert f["label"].tolist() == [2, 3, 4, 4, 3, 0, 2, 1]
    assert f["word"].tolist() == [0, 1, 2, -1, -1, 0, 3, -1]
    leaves = np.flatnonzero(f.is_leaf_of(np.arange(8)))
    assert [f.tokens[v] for v in leaves] == ["It", "is", "great", "It", "bad"]
    assert (f["word"][leaves] == [0, 1, 2, 0, 3]).all()
    assert (f["word"][~f.is_leaf_of(np.arange(8))] == -1).all()
    assert f["label"].dtype == np.int64 and f["word"].dtype == np.int64
    assert f.depth.tolist() == [3, 2] and f.max_depth == 3
    assert f.is_tree


def test_ptb_given_vocab_unknown_words_and_lowercase():
    vocab = {"<unk>": 7, "it": 1, "great": 2}
    f = Forest.from_ptb(["(3 (2 It) (4 great))", "(2 (2 it) (2 GREAT))"], vocab=vocab,
                        lowercase=True)
    assert f.vocab is vocab and len(vocab) == 3  # a given vocab is never extended
    leaves = np.flatnonzero(f.is_leaf_of(np.arange(f.num_nodes)))
    assert f["word"][leaves].tolist() == [1, 2, 1, 2]
    # lowercase only affects lookup: the printed trees keep the original case.
    assert f.to_ptb() == ["(3 (2 It) (4 great))", "(2 (2 it) (2 GREAT))"]
    g = Forest.from_ptb(["(3 (2 It) (4 unseen))"], vocab=vocab)
    assert g.tree(0).left.word == 7 and g.tree(0).right.word == 7  # 'It' is not 'it'
    built = Forest.from_ptb(["(3 (2 It) (4 it))"], lowercase=True)
    assert built.vocab == {"it": 0} and built.tree(0).right.word == 0
    h = Forest.from_ptb(["(3 (2 a) (4 b))"], vocab={"a": 5})
    assert h.tree(0).left.word == 5 and h.tree(0).right.word == 0  # no <unk>: id 0


def test_ptb_splits_on_ascii_whitespace_only():
    nbsp = "\u00a0"
    f = Forest.from_ptb([f"(2 (2 8{nbsp}1\\/2) (2\ta))\r\n"])
    leaf = f.tree(0).left
    assert leaf.is_leaf and f.tokens[leaf.id] == f"8{nbsp}1\\/2"
    assert f.vocab == {f"8{nbsp}1\\/2": 0, "a": 1}
    assert f.to_ptb(0) == f"(2 (2 8{nbsp}1\\/2) (2 a))"


def test_ptb_blank_lines_string_and_file_input():
    text = "\n(1 (1 a) (2 b))\n   \n\t\n(0 c)\n\n"
    for source in (text, io.StringIO(text), text.splitlines(keepends=True)):
        f = Forest.from_ptb(source)
        assert len(f) == 2
        assert f.to_ptb() == ["(1 (1 a) (2 b))", "(0 c)"]
    assert f.depth.tolist() == [2, 1]
    empty = Forest.from_ptb(["", "  "])
    assert len(empty) == 0 and empty.num_nodes == 0 and empty.max_depth == 0
    assert empty.to_ptb() == []


def test_ptb_round_trip_single_and_negative_index():
    lines = ["(3 (2 It) (4 (3 is) (4 great)))", "(-1 x)", "(12 (0 (1 a) (2 b)) (3 c))"]
    f = Forest.from_ptb(lines)
    assert [f.to_ptb(i) for i in range(3)] == lines
    assert f.to_ptb(-1) == lines[-1]
    with pytest.raises(IndexError):
        f.to_ptb(3)
    with pytest.raises(ForestError):
        Forest.from_nested([(1, 2)]).to_ptb()


# (input lines, tree index, line number, column, words the message must contain)
MALFORMED = [
    (["(3 (2 a)"], 0, 1, 9, "unbalanced"),
    (["(1 x)", "", "(3 (2 a)))"], 1, 3, 10, "unbalanced"),
    (["((2 a) (2 b))"], 0, 1, 2, "label"),
    (["(1 x)", "(a)"], 1, 2, 2, "label"),
    (["(2 (2 a) (2 b)) (2 c)"], 0, 1, 17, "trailing"),
    (["(1 x)", "(2 (2 a) (2 b)) c"], 1, 2, 17, "trailing"),
    (["  (3)"], 0, 1, 5, "empty tree"),
    (["()"], 0, 1, 2, "label"),
    (["(2 a b)"], 0, 1, 6, "one word"),
    (["(2 (2 a) b)"], 0, 1, 10, "word cannot follow"),
    (["(2 a (2 b))"], 0, 1, 6, "subtree cannot follow"),
    (["hello"], 0, 1, 1, "expected '('"),
    (["(1 x)", "(1 y)", "(2"], 2, 3, 3, "unbalanced"),
    (["(1 x)", "(1 y)", "( "], 2, 3, 2, "expected a label after '(' but the line ended"),
    (["(\u00b2 a)"], 0, 1, 2, "label"),
    (["(1 x)", "(99999999999999999999 a)"], 1, 2, 2, "label 99999999999999999999 does not fit in int64"),
    (["(-9223372036854775809 a)"], 0, 1, 2, "does not fit in int64"),
    (["(" + "9" * 5000 + " a)"], 0, 1, 2, "does not fit in int64"),
]


@pytest.mark.parametrize("lines, tree, line, column, words", MALFORMED)
def test_ptb_malformed_input_names_tree_line_and_column(lines, tree, line, column, words):
    with pytest.raises(ForestError) as info:
        Forest.from_ptb(lines)
    err = info.value
    msg = str(err)
    assert (err.tree, err.line, err.column) == (tree, line, column), msg
    assert f"tree {tree} (line {line}, column {column})" in msg
    assert words in msg


def test_ptb_malformed_error_shows_caret_under_position():
    with pytest.raises(ForestError) as info:
        Forest.from_ptb(["(2 (2 a) b)"])
    excerpt, caret = str(info.value).splitlines()[1:3]
    assert excerpt[caret.index("^")] == "b"


@pytest.mark.skipif(not SST.is_dir(), reason="SST data not available")
@pytest.mark.parametrize("split, trees, nodes, leaves, depth",
                         [("train", 8544, 318582, 163563, 30), ("dev", 1101, 41447, 21274, 28),
                          ("test", 2210, 82600, 42405, 29)])
def test_sst_round_trip(split, trees, nodes, leaves, depth):
    text = (SST / f"{split}.txt").read_text(encoding="utf-8")
    f = Forest.from_ptb(text.split("\n"))
    assert len(f) == trees and f.num_nodes == nodes
    assert int(f.is_leaf_of(np.arange(nodes)).sum()) == leaves
    assert f.max_depth == depth and f.is_tree
    nch = f.num_children_of(np.arange(nodes))
    assert set(nch.tolist()) == {0, 2}  # SST is strictly binary
    assert f.to_ptb() == [line.strip() for line in text.split("\n") if line.strip()]
    if split == "train":
        assert sum("\u00a0" in w for w in f.vocab) == 2  # '8 1\/2' and '2 1\/2'


# -- from_networkx ------------------------------------------------------------

def test_networkx_dag_shared_node_stored_once():
    g = nx.DiGraph()
    g.add_edge("root", "a")
    g.add_edge("root", "b")
    g.add_edge("a", "shared")
    g.add_edge("b", "shared")
    g.add_edge("b", "c")
    for i, v in enumerate(["root", "a", "b", "shared", "c"]):
        g.nodes[v]["x"] = i * 10
        g.nodes[v]["vec"] = np.array([i, -i], dtype=np.float32)
    leaf_only = nx.DiGraph()
    leaf_only.add_node(0, x=99, vec=np.zeros(2, np.float32))
    f = Forest.from_networkx([g, leaf_only], attrs=("x", "vec"))
    assert len(f) == 2 and f.num_nodes == 6  # 'shared' once
    assert not f.is_tree
    key = {k: v for v, k in enumerate(f.node_keys)}
    a, b, s = key[(0, "a")], key[(0, "b")], key[(0, "shared")]
    assert children_ids(f, a) == [s] and children_ids(f, b) == [s, key[(0, "c")]]
    assert f.tree(0).left.left == f.tree(0).right.left  # the same Node
    assert f["x"][s] == 30 and f["x"][key[(1, 0)]] == 99
    assert f["vec"].shape == (6, 2) and f["vec"].dtype == np.float32
    assert f.depth.tolist() == [3, 1]
    assert f.height_of[s] == 1 and f.height_of[b] == 2
    assert f.root_ids.tolist() == [key[(0, "root")], key[(1, 0)]]


def test_networkx_child_order_by_insertion_or_edge_attribute():
    g = nx.DiGraph()
    g.add_edge(0, 3, pos=2)
    g.add_edge(0, 1, pos=0)
    g.add_edge(0, 2, pos=1)
    f = Forest.from_networkx([g])
    assert [f.node_keys[c.id][1] for c in f.tree(0).children] == [3, 1, 2]
    f = Forest.from_networkx([g], order="pos")
    assert [f.node_keys[c.id][1] for c in f.tree(0).children] == [1, 2, 3]
    g.add_edge(1, 4)
    with pytest.raises(ForestError, match=r"graph 0, edge 1 -> 4 has no attribute 'pos'"):
        Forest.from_networkx([g], order="pos")


def test_networkx_multigraph_repeated_child():
    g = nx.MultiDiGraph()
    g.add_edge("f", "x")
    g.add_edge("f", "x")
    f = Forest.from_networkx(g)  # a single graph is accepted too
    root = f.tree(0)
    assert root.num_children == 2 and root.left == root.right and not f.is_tree


def test_networkx_cycle_error_names_graph_and_node():
    ok = nx.DiGraph([(0, 1)])
    g = nx.DiGraph([("r", "a"), ("a", "b"), ("b", "c"), ("c", "a")])
    with pytest.raises(ForestError, match=r"graph 1 has a cycle") as info:
        Forest.from_networkx([ok, g])
    assert any(f"node '{v}'" in str(info.value) for v in "abc")
    with pytest.raises(ForestError, match=r"graph 0 has a cycle through node 5"):
        Forest.from_networkx([nx.DiGraph([(5, 5)])])


def test_networkx_root_count_errors():
    g = nx.DiGraph([("r1", "x"), ("r2", "x")])
    with pytest.raises(ForestError, match=r"graph 1 must have exactly one root.*found 2") as info:
        Forest.from_networkx([nx.DiGraph([(0, 1)]), g])
    assert "'r1'" in str(info.value) and "'r2'" in str(info.value)
    with pytest.raises(ForestError, match=r"graph 0 is empty"):
        Forest.from_networkx([nx.DiGraph()])
    with pytest.raises(ForestError, match=r"graph 0: expected a networkx DiGraph"):
        Forest.from_networkx([nx.Graph([(0, 1)])])


def test_networkx_attribute_named_twice_is_an_error_naming_it():
    g = nx.DiGraph([(0, 1)])
    nx.set_node_attributes(g, 1.5, "a")
    with pytest.raises(ForestError, match=r"attrs names 'a' more than once"):
        Forest.from_networkx([g], attrs=["a", "a"])


def test_networkx_missing_attribute_error():
    g = nx.DiGraph([("r", "a"), ("r", "b")])
    nx.set_node_attributes(g, 1.5, "w")
    del g.nodes["b"]["w"]
    with pytest.raises(ForestError, match=r"graph 0, node 'b' has no attribute 'w'"):
        Forest.from_networkx([g], attrs=["w"])
    g = nx.DiGraph([(0, 1)])
    nx.set_node_attributes(g, 3, "id")
    with pytest.raises(ForestError, match=r"attribute name 'id' is reserved"):
        Forest.from_networkx([g], attrs="id")  # node.id could never read it


def test_networkx_attribute_values_numpy_would_convert_are_refused_naming_the_node():
    # numpy would store the 1 as the string '1', and 2**63 + 1 beside -1 as a float
    g = nx.DiGraph([("r", "a")])
    nx.set_node_attributes(g, {"r": "x", "a": 1}, "tag")
    with pytest.raises(ForestError, match=r"graph 0, node 'a': attribute 'tag' holds 1 where other nodes hold str"):
        Forest.from_networkx([g], attrs="tag")
    nx.set_node_attributes(g, {"r": -1, "a": 2 ** 63 + 1}, "big")
    with pytest.raises(ForestError, match=r"node 'a': attribute 'big' holds 9223372036854775809, which does not fit"):
        Forest.from_networkx([g], attrs="big")
    nx.set_node_attributes(g, {"r": "x", "a": "yz"}, "tag")
    nx.set_node_attributes(g, {"r": 2 ** 63 + 1, "a": 1}, "big")  # (all of uint64's)
    f = Forest.from_networkx([g], attrs=["tag", "big"])
    assert f.attrs["tag"].tolist() == ["yz", "x"] and f.attrs["big"].dtype == np.uint64
    assert sorted(f.attrs["big"].tolist()) == [1, 2 ** 63 + 1]  # (exactly: numpy would round it to a float)


# -- from_nested ----------------------------------------------------------------

def test_nested_int_and_float_leaves():
    f = Forest.from_nested([((1, 2), 3), 7, [4, [5, 6, 8]]])
    assert f["value"].dtype == np.int64 and len(f) == 3
    t0 = f.tree(0)
    assert (t0.left.left.value, t0.left.right.value, t0.right.value, t0.value) == (1, 2, 3, 0)
    assert f.tree(1).is_leaf and f.tree(1).value == 7
    assert [c.value for c in f.tree(2).right.children] == [5, 6, 8]
    assert f.depth.tolist() == [3, 1, 3]
    g = Forest.from_nested([(1, 2.5), (True,)], leaf_attr="v")
    assert g["v"].dtype == np.float64
    assert np.isnan(g.tree(0).v) and g.tree(0).right.v == 2.5 and g.tree(1).left.v == 1.0


def test_nested_edge_cases():
    deep = 1
    for _ in range(5000):  # deeper than the recursion limit
        deep = (deep,)
    f = Forest.from_nested([deep, ()])
    assert f.max_depth == 5001 and f.depth[1] == 1
    cyclic = [1]
    cyclic.append(cyclic)
    with pytest.raises(ForestError, match=r"tree 1 contains itself"):
        Forest.from_nested([(1,), cyclic])
    with pytest.raises(ForestError, match=r"tree 1: leaf 'x' is not a number"):
        Forest.from_nested([(1,), (2, "x")])


def test_nested_input_that_is_not_a_list_of_trees_says_so():
    for objs in (5, None, "ab", b"ab"):
        with pytest.raises(ForestError, match=r"takes a list of trees, got .*pass \[t\] for a single tree"):
            Forest.from_nested(objs)
    assert len(Forest.from_nested(iter([(1, 2), (3,)]))) == 2


def test_nested_bool_leaves_are_integers_whether_python_or_numpy_bools():
    for true in (True, np.True_):
        f = Forest.from_nested([(true, 2), (False,)])
        assert f["value"].dtype == np.int64 and f.tree(0).left.value == 1


def test_a_nested_leaf_too_large_names_the_column_type_it_does_not_fit():
    with pytest.raises(ForestError, match=r"tree 0: leaf 10{400} does not fit in int64"):
        Forest.from_nested([(10 ** 400, 1)])
    with pytest.raises(ForestError, match=r"tree 1: leaf 10{400} does not fit in float64"):
        Forest.from_nested([(1.5,), (10 ** 400, 1)])


# -- Node / NodeBatch ----------------------------------------------------------

def random_nested(rng, depth=0):
    if depth > 5 or rng.random() < 0.3:
        return int(rng.integers(-50, 50))
    return tuple(random_nested(rng, depth + 1) for _ in range(int(rng.integers(0, 4))))


def random_dag(rng, n):
    g = nx.DiGraph()
    g.add_node(0, x=0.0)
    for v in range(1, n):
        g.add_node(v, x=float(v))
        for p in rng.choice(v, size=min(v, int(rng.integers(1, 3))), replace=False):
            g.add_edge(int(p), v)
    return g


def random_forests():
    rng = np.random.default_rng(0)
    yield Forest.from_nested([random_nested(rng) for _ in range(40)])
    yield Forest.from_networkx([random_dag(rng, int(rng.integers(1, 30))) for _ in range(20)],
                               attrs=["x"])
    yield Forest.from_ptb(["(3 (2 It) (4 (3 is) (4 great)))", "(1 x)"])


@pytest.mark.parametrize("forest", list(random_forests()))
def test_vectorized_accessors_agree_with_node_api(forest):
    ids = np.arange(forest.num_nodes, dtype=np.int64)
    nodes = [Node(forest, v) for v in ids]
    nch = forest.num_children_of(ids)
    leaf = forest.is_leaf_of(ids)
    for v, node in zip(ids, nodes):
        assert node.num_children == nch[v] and type(node.num_children) is np.int64
        assert node.is_leaf == leaf[v] and type(node.is_leaf) is np.bool_
        assert [c.id for c in node.children] == children_ids(forest, v)
        for name in forest.attrs:
            got = getattr(node, name)
            assert isinstance(got, np.generic) and got == forest.attr_of(name, ids)[v]
    for k in range(-4, 5):
        child, valid = forest.child_of(ids, k)
        for v, node in zip(ids, nodes):
            try:
                expect = node.child(k).id
            except IndexError:
                assert not valid[v] and child[v] == 0
            else:
                assert valid[v] and child[v] == expect
    # Heights and depths against a per-sample recursion over the Node API.
    def height(node):
        return 1 + max((height(c) for c in node.children), default=0)
    assert [height(n) for n in nodes] == forest.height_of.tolist()
    assert [height(t) for t in forest] == forest.depth.tolist()
    # Every child id is smaller than its parent's (the topological id order).
    parents = np.repeat(ids, nch)
    assert (forest.child_idx < parents).all()
    batch = forest.roots
    assert isinstance(batch, NodeBatch) and len(batch) == len(forest)
    assert [batch[j] for j in range(len(batch))] == [forest.tree(j) for j in range(len(forest))]
    assert list(batch) == list(forest)


def test_child_of_out_of_range_and_per_lane_k():
    f = Forest.from_nested([((1, 2), 3), 4])
    ids = np.array([f.root_ids[0], f.root_ids[0], f.root_ids[0], f.root_ids[1], 0])
    k = np.array([0, 1, 2, 0, -1])
    child, valid = f.child_of(ids, k)
    r = f.tree(0)
    assert valid.tolist() == [True, True, False, False, False]
    assert child.tolist() == [r.left.id, r.right.id, 0, 0, 0]
    child, valid = f.child_of(ids, -2)
    assert valid.tolist() == [True] * 3 + [False] * 2 and child[0] == r.left.id
    # The last node is a leaf: its child_ptr start equals len(child_idx).
    child, valid = f.child_of(np.array([f.num_nodes - 1]), 0)
    assert not valid[0] and child[0] == 0
    leaves_only = Forest.from_nested([1, 2])  # child_idx is empty
    child, valid = leaves_only.child_of(np.array([0, 1]), 0)
    assert child.tolist() == [0, 0] and not valid.any()
    with pytest.raises(IndexError):
        f.num_children_of(np.array([-1]))
    with pytest.raises(TypeError):
        f.child_of(ids, 0.5)


def test_node_api_details():
    f = Forest.from_nested([((1, 2), 3)])
    f.attrs["emb"] = np.arange(f.num_nodes * 2, dtype=np.float32).reshape(-1, 2)
    root = f.tree(0)
    assert root.child(-1) == root.right and root.child(-2) == root.left
    with pytest.raises(IndexError):
        root.child(2)
    with pytest.raises(IndexError):
        root.child(-3)
    with pytest.raises(IndexError):
        root.right.left
    with pytest.raises(AttributeError, match=r"'label'.*available attributes: emb, value"):
        root.label
    assert not hasattr(root, "label") and hasattr(root, "value")
    row = root.emb
    assert row.dtype == np.float32 and row.shape == (2,)
    row += 100  # a copy: the forest is not changed
    assert f["emb"][root.id, 0] == root.id * 2
    assert type(root.value) is np.int64 and type(root.id) is int
    assert root == Node(f, np.int64(root.id)) and hash(root) == hash(Node(f, root.id))
    other = Forest.from_nested([((1, 2), 3)])
    assert root != other.tree(0) and len({root, Node(f, root.id), other.tree(0)}) == 2
    assert "Node(id=4" in repr(root)


def test_forest_getitem_and_nodebatch():
    f = Forest.from_nested([(1, 2), (3, (4, 5))])
    assert f["value"] is f.attrs["value"]
    with pytest.raises(KeyError, match="available attributes: value"):
        f["nope"]
    with pytest.raises(TypeError):
        f[0]
    b = NodeBatch(f, [0, 4, 4])
    assert len(b) == 3 and b.forest is f and b.ids.dtype == np.int64
    assert b[-1] == Node(f, 4) and b[1:].ids.tolist() == [4, 4]
    assert f.attr_of("value", b.ids).tolist() == [1, 4, 4]
    with pytest.raises(AttributeError, match="available attributes: value"):
        f.attr_of("label", b.ids)
    with pytest.raises(IndexError):
        NodeBatch(f, [f.num_nodes])
    with pytest.raises(IndexError):
        Node(f, -1)
    assert f.tree(-1) == Node(f, f.num_nodes - 1)


# -- subset and construction checks ---------------------------------------------

def test_subset_reindexes_trees():
    lines = ["(3 (2 It) (4 (3 is) (4 great)))", "(1 x)", "(0 (1 (2 a) (3 b)) (4 c))"]
    f = Forest.from_ptb(lines)
    s = f.subset([2, 0, 2, -2])
    assert len(s) == 4 and s.vocab is f.vocab
    assert s.to_ptb() == [lines[2], lines[0], lines[2], lines[1]]
    s._check()
    assert s.depth.tolist() == [3, 3, 3, 1]
    assert s.num_nodes == 5 + 5 + 5 + 1 and s.root_ids.tolist() == [4, 9, 14, 15]
    assert np.array_equal(s.subset([1]).to_ptb(), [lines[0]])
    assert len(f.subset([])) == 0 and f.subset(slice(1, None)).to_ptb() == lines[1:]
    with pytest.raises(IndexError, match=r"Forest.subset: index 3 .* 3 trees are numbered 0 to 2"):
        f.subset([3])
    with pytest.raises(IndexError, match=r"index -4 "):
        f.subset([-4])
    g = Forest.from_networkx([nx.DiGraph([(0, 1), (0, 2), (1, 2)]), nx.DiGraph([("a", "b")])],
                             attrs=())
    sg = g.subset([1, 0])
    assert sg.node_keys == [(1, "b"), (1, "a"), (0, 2), (0, 1), (0, 0)]
    assert not sg.is_tree and sg.subset([0]).is_tree


def test_subset_takes_a_tuple_as_a_list_and_refuses_none_and_nested_indices():
    f = Forest.from_nested([(1, 2), 3, (4,)])
    picked = f.subset((2, 0))
    assert picked.root_ids.tolist() == [1, 4] and picked.attrs["value"].tolist() == [4, 0, 1, 2, 0]
    for bad, what in ((None, "None"), ([[0, 1]], r"an array of shape \(1, 2\)")):
        with pytest.raises(IndexError, match=rf"Forest.subset: indices must be .* of 3 trees, not {what}"):
            f.subset(bad)


def test_constructor_checks_invariants():
    with pytest.raises(ForestError, match="smaller than its parent"):
        Forest([0, 1, 1], [1], [0, 2])  # node 0's child is node 1
    with pytest.raises(ForestError, match="same tree"):
        Forest([0, 0, 1], [0], [0, 1, 2])  # tree 1's root points into tree 0
    with pytest.raises(ForestError, match="no parent"):
        Forest([0, 0, 0], [], [0, 2])
    with pytest.raises(ForestError, match="expected length 2"):
        Forest([0, 0, 1], [0], [0, 2], {"x": np.zeros(3)})
    with pytest.raises(ForestError, match="integer"):
        Forest([0.0, 0.0], [], [0, 1])
    f = Forest([0, 0, 0, 2], [0, 1], [0, 3], {"x": np.array([5, 6, 7])})
    assert f.tree(0).left.x == 5 and f.depth.tolist() == [2]
    with pytest.raises(ValueError):
        f.child_ptr[0] = 1  # structure arrays are read-only


def test_a_nodebatch_takes_an_int_or_bool_index_array():
    f = Forest.from_nested([(1, 2), (3, (4, 5)), 7])
    picked = f.roots[np.array([2, 2, 0])]
    assert [n.id for n in picked] == [f.roots[2].id, f.roots[2].id, f.roots[0].id]
    assert [n.id for n in f.roots[[True, False, True]]] == [f.roots[0].id, f.roots[2].id]
    with pytest.raises(IndexError, match="1-d int or bool array"):
        f.roots[np.array([0.5])]


def test_passing_one_node_to_a_batched_function_says_to_pass_a_batch():
    f = Forest.from_nested([(1, 2)])
    with pytest.raises(vmapper.BatchError, match="argument 'n' is one Node: pass a batch of nodes"):
        vmapper.batched(is_a_leaf)(f.roots[0])


def is_a_leaf(n):
    return n.is_leaf


def test_repr_counts_trees_or_dags_and_nodes():
    assert repr(Forest.from_nested([(1, (2, 3)), 4])).startswith("Forest(2 trees, 6 nodes")
    g = nx.DiGraph()
    g.add_edges_from([(0, 1), (0, 2), (1, 3), (2, 3)])  # node 3 shared by two parents
    nx.set_node_attributes(g, 1.0, "v")
    assert repr(Forest.from_networkx([g], attrs=["v"])).startswith("Forest(1 DAG, 4 nodes")
