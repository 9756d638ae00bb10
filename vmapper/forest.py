"""Batches of trees and DAGs stored as flat arrays, for batched tree walks.

A :class:`Forest` holds every node of every tree in one id space:

* children in CSR form: the children of node ``v`` are
  ``child_idx[child_ptr[v]:child_ptr[v + 1]]``, in order;
* per-node attributes ``attrs[name]`` (arrays of length ``num_nodes``, 2-D for
  vector attributes);
* tree ``t`` owns the contiguous id range ``tree_ptr[t]:tree_ptr[t + 1]`` and
  its root is the last id of that range (``root_ids``).

Ids are topologically ordered: every child id is smaller than its parent's
(post-order for trees). Together with the contiguous ranges this makes
:meth:`Forest.subset` a handful of gathers, and it rules out cycles.

A shared node of a DAG is stored once; several parents' ``child_idx`` entries
point to it.

The per-sample code sees :class:`Node` objects (one tree, plain Python); the
batched runtime sees a :class:`NodeBatch` (one node id per lane) and calls the
vectorized accessors ``num_children_of``, ``child_of``, ``attr_of`` and
``is_leaf_of``, which agree with the :class:`Node` API lane by lane.
"""
from __future__ import annotations

import numbers
import operator
from functools import cached_property

import numpy as np

from . import _ptb
from .errors import ForestError

__all__ = ["Forest", "Node", "NodeBatch"]

# Attribute names that Node already uses; an attribute with one of these names
# could never be read as ``node.<name>``, so constructing such a forest fails.
_RESERVED = frozenset({"id", "forest", "children", "num_children", "child",
                       "left", "right", "is_leaf"})


def _concat_ranges(starts, lengths):
    """``concatenate([arange(s, s + l) for s, l in zip(starts, lengths)])``, vectorized."""
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    shift = np.repeat(np.asarray(starts, dtype=np.int64) - (ends - lengths), lengths)
    return shift + np.arange(total, dtype=np.int64)


def _index_array(a, what):
    a = np.asarray(a)
    if a.size == 0:
        a = a.astype(np.int64)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ForestError(f"{what} must be a 1-D integer array, got shape {a.shape} "
                          f"dtype {a.dtype}")
    out = np.array(a, dtype=np.int64)
    out.flags.writeable = False  # the cached heights etc. depend on the structure
    return out


_HEIGHT_KERNEL = []  # [the compiled one-pass kernel] once tried ([None] without numba)


def _height_kernel():
    if not _HEIGHT_KERNEL:
        try:
            from numba import njit
        except ImportError:
            _HEIGHT_KERNEL.append(None)
        else:
            @njit(cache=True)
            def heights_in_id_order(child_ptr, child_idx, h):
                for v in range(h.shape[0]):
                    top = 0
                    for e in range(child_ptr[v], child_ptr[v + 1]):
                        top = max(top, h[child_idx[e]])
                    h[v] = top + 1
            _HEIGHT_KERNEL.append(heights_in_id_order)
    return _HEIGHT_KERNEL[0]


def _heights(child_ptr, child_idx, n):
    """Per-node height (leaf = 1).

    Children's ids are smaller than their parents' (see the module docstring), so
    one compiled pass in id order meets every child before its parent.  Without
    numba, leaves are peeled level by level (Kahn): one round of numpy work per
    level, a node ready in the round its last child finishes.
    """
    h = np.zeros(n, dtype=np.int64)
    nch = np.diff(child_ptr)
    if n == 0:
        return h
    kernel = _height_kernel()
    if kernel is not None:
        if kernel.signatures:
            kernel(child_ptr, child_idx, h)
        else:  # (its first call compiles it, or loads it from numba's cache)
            from .profiler import compiling
            with compiling("Forest heights kernel"):
                kernel(child_ptr, child_idx, h)
        return h
    edge_parent = np.repeat(np.arange(n, dtype=np.int64), nch)
    by_child = np.argsort(child_idx, kind="stable")
    parents = edge_parent[by_child]
    pptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(child_idx, minlength=n), out=pptr[1:])
    pending = nch.copy()
    frontier = np.flatnonzero(nch == 0)
    level = 1
    while frontier.size:
        h[frontier] = level
        starts = pptr[frontier]
        ps = parents[_concat_ranges(starts, pptr[frontier + 1] - starts)]
        cand, cnt = np.unique(ps, return_counts=True)
        pending[cand] -= cnt
        frontier = cand[pending[cand] == 0]
        level += 1
    return h


def _missing_attr(forest, name):
    have = ", ".join(sorted(forest.attrs)) or "(none)"
    return AttributeError(f"node has no attribute {name!r}; available attributes: {have}")


def _describe_indices(indices):
    if indices is None:
        return "None"
    return f"an array of shape {np.shape(indices)}" if np.ndim(indices) > 1 else type(indices).__name__


class Forest:
    """A batch of trees (or single-rooted DAGs) stored as flat arrays.

    Usually built with :meth:`from_ptb`, :meth:`from_networkx` or
    :meth:`from_nested`. The constructor takes the raw arrays (see the module
    docstring for their invariants, which it checks) and is mainly for code
    that already has them.

    Attributes: ``child_ptr``, ``child_idx``, ``tree_ptr``, ``root_ids``
    (read-only int64 arrays), ``attrs`` (dict of per-node arrays), ``vocab``
    (word -> id, or None), ``tokens`` (object array of each leaf's original
    word for PTB input, else None) and ``node_keys`` (``(graph index, node)``
    per node for networkx input, else None).
    """

    def __init__(self, child_ptr, child_idx, tree_ptr, attrs=None, vocab=None, *,
                 tokens=None, node_keys=None, _check=True):
        self.child_ptr = _index_array(child_ptr, "child_ptr")
        self.child_idx = _index_array(child_idx, "child_idx")
        self.tree_ptr = _index_array(tree_ptr, "tree_ptr")
        self.root_ids = self.tree_ptr[1:] - 1
        self.root_ids.flags.writeable = False
        self.attrs = {name: np.asarray(a) for name, a in (attrs or {}).items()}
        self.vocab = vocab
        self.tokens = tokens
        self.node_keys = node_keys
        if _check:
            self._check()

    def _check(self):
        """Raise ForestError unless the arrays meet the invariants of the module docstring."""
        ptr, idx, tp = self.child_ptr, self.child_idx, self.tree_ptr
        if len(ptr) == 0 or ptr[0] != 0 or ptr[-1] != len(idx) or np.any(np.diff(ptr) < 0):
            raise ForestError("child_ptr must start at 0, never decrease and end at len(child_idx)")
        n = len(ptr) - 1
        if len(tp) == 0 or tp[0] != 0 or tp[-1] != n or np.any(np.diff(tp) <= 0):
            raise ForestError("tree_ptr must start at 0, strictly increase (no empty tree) "
                              "and end at num_nodes")
        parent = np.repeat(np.arange(n, dtype=np.int64), np.diff(ptr))
        tree_start = tp[np.searchsorted(tp, parent, side="right") - 1]
        bad = np.flatnonzero((idx >= parent) | (idx < tree_start))
        if bad.size:
            e = bad[0]
            raise ForestError(f"edge {parent[e]} -> {idx[e]}: a child id must be smaller than "
                              "its parent's and lie in the same tree's id range")
        indeg = np.bincount(idx, minlength=n)
        indeg[self.root_ids] = 1
        if n and indeg.min() == 0:
            raise ForestError(f"node {int(np.argmin(indeg))} is not its tree's root "
                              "but has no parent")
        for name, a in self.attrs.items():
            if not isinstance(name, str) or name.startswith("_") or name in _RESERVED:
                raise ForestError(f"attribute name {name!r} is reserved or invalid "
                                  f"(reserved: {', '.join(sorted(_RESERVED))})")
            if a.ndim == 0 or len(a) != n:
                raise ForestError(f"attribute {name!r} has shape {a.shape}, "
                                  f"expected length {n} (one value per node)")
        for what, extra in (("tokens", self.tokens), ("node_keys", self.node_keys)):
            if extra is not None and len(extra) != n:
                raise ForestError(f"{what} has length {len(extra)}, expected {n}")

    # -- sizes and derived per-node data ------------------------------------

    @property
    def num_nodes(self) -> int:
        return len(self.child_ptr) - 1

    def __len__(self) -> int:
        return len(self.root_ids)

    @cached_property
    def height_of(self) -> np.ndarray:
        """Per-node height: a leaf has height 1, a parent 1 + its tallest child's.

        Counting leaves as 1 makes ``height_of[root_ids] == depth``; nodes with
        equal height can be processed together, bottom-up, level by level.
        """
        h = _heights(self.child_ptr, self.child_idx, self.num_nodes)
        h.flags.writeable = False
        return h

    @cached_property
    def depth(self) -> np.ndarray:
        """Per-tree height in node levels (a tree that is one leaf has depth 1)."""
        return self.height_of[self.root_ids]

    @property
    def max_depth(self) -> int:
        return int(self.depth.max()) if len(self) else 0

    @cached_property
    def is_tree(self) -> bool:
        """True if no node has more than one parent (no DAG sharing)."""
        return not self.child_idx.size or int(np.bincount(self.child_idx).max()) <= 1

    @cached_property
    def tree_of(self) -> np.ndarray:
        """Per-node index of the tree that owns it."""
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.tree_ptr))

    # -- access --------------------------------------------------------------

    def __getitem__(self, name):
        if not isinstance(name, str):
            raise TypeError(f"forest[...] takes an attribute name, not {type(name).__name__}; "
                            "use forest.tree(i) or forest.subset(...) to select trees")
        try:
            return self.attrs[name]
        except KeyError:
            raise KeyError(str(_missing_attr(self, name))) from None

    @property
    def roots(self) -> "NodeBatch":
        """All roots as one NodeBatch: the batched argument of a per-tree function."""
        return NodeBatch(self, self.root_ids)

    def tree(self, i) -> "Node":
        """The root of tree ``i`` as a per-sample Node (negative ``i`` counts from the end)."""
        return Node(self, int(self.root_ids[operator.index(i)]))

    def __iter__(self):
        return (Node(self, int(r)) for r in self.root_ids)

    def subset(self, indices) -> "Forest":
        """A new Forest of the trees ``indices`` (ints, a slice or a bool mask), renumbered.

        Negative indices count from the end, as in numpy; one out of range raises
        ``IndexError``.  Repeated indices copy a tree. ``vocab`` is shared with this forest, so
        word ids keep their meaning.
        """
        # numpy's indexing already handles lists, negatives, slices and bool masks
        if type(indices) is tuple:  # (numpy would read it as an index per axis)
            indices = list(indices)
        try:
            idx = None if indices is None else np.atleast_1d(np.arange(len(self), dtype=np.int64)[indices])
        except IndexError as exc:
            raise IndexError(f"Forest.subset: {exc} (the forest's {len(self)} trees are numbered "
                             f"0 to {len(self) - 1}; negative indices count from the end)") from None
        if idx is None or idx.ndim != 1:  # (None, nested lists: numpy would add axes)
            raise IndexError(f"Forest.subset: indices must be an int, a flat list or array of ints, a slice or "
                             f"a bool mask of {len(self)} trees, not {_describe_indices(indices)}")
        starts = self.tree_ptr[idx]
        sizes = self.tree_ptr[idx + 1] - starts
        nodes = _concat_ranges(starts, sizes)
        tree_ptr = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(sizes, out=tree_ptr[1:])
        shift = np.repeat(tree_ptr[:-1] - starts, sizes)
        nch = np.diff(self.child_ptr)[nodes]
        child_ptr = np.zeros(len(nodes) + 1, dtype=np.int64)
        np.cumsum(nch, out=child_ptr[1:])
        edges = _concat_ranges(self.child_ptr[nodes], nch)
        child_idx = self.child_idx[edges] + np.repeat(shift, nch)
        return Forest(child_ptr, child_idx, tree_ptr,
                      {k: v[nodes] for k, v in self.attrs.items()}, self.vocab,
                      tokens=None if self.tokens is None else self.tokens[nodes],
                      node_keys=None if self.node_keys is None
                      else [self.node_keys[j] for j in nodes.tolist()],
                      _check=False)

    def __repr__(self):
        # (a DAG's shared nodes have several parents: more edges than a forest of trees has)
        kind = "tree" if len(self.child_idx) == self.num_nodes - len(self) else "DAG"
        return (f"Forest({len(self)} {kind}{'s' if len(self) != 1 else ''}, {self.num_nodes} nodes, "
                f"attrs=[{', '.join(self.attrs)}], max_depth={self.max_depth})")

    # -- vectorized accessors for the batched runtime -------------------------
    # Each takes an int64 array of node ids (one per lane) and returns an array
    # of the same length; lane j agrees with the per-sample Node(forest, ids[j]).

    def _ids(self, ids):
        """``ids`` as an int64 array, checked to be valid node ids."""
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu" and ids.size:
            raise TypeError(f"node ids must be integers, got dtype {ids.dtype}")
        ids = ids.astype(np.int64, copy=False)
        # Negative ids would silently wrap around in numpy indexing.
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_nodes):
            bad = ids[(ids < 0) | (ids >= self.num_nodes)][0]
            raise IndexError(f"node id {bad} out of range for a forest of {self.num_nodes} nodes")
        return ids

    def num_children_of(self, ids) -> np.ndarray:
        ids = self._ids(ids)
        return self.child_ptr[ids + 1] - self.child_ptr[ids]

    def is_leaf_of(self, ids) -> np.ndarray:
        ids = self._ids(ids)
        return self.child_ptr[ids + 1] == self.child_ptr[ids]

    def child_of(self, ids, k):
        """``(child_ids, valid)``: child ``k`` (int or per-lane ints; negative from the end).

        Where ``k`` is out of range for a lane's node, ``valid`` is False and
        the child id is 0; nothing is read out of bounds.
        """
        ids = self._ids(ids)
        k = np.asarray(k)
        if k.dtype.kind not in "iub":
            raise TypeError(f"child indices must be integers, got dtype {k.dtype}")
        k = k.astype(np.int64)
        start = self.child_ptr[ids]
        n = self.child_ptr[ids + 1] - start
        k = np.where(k < 0, k + n, k)
        valid = (k >= 0) & (k < n)
        if not self.child_idx.size:
            return np.zeros(valid.shape, dtype=np.int64), valid
        child = self.child_idx[np.where(valid, start + k, 0)]
        return np.where(valid, child, 0), valid

    def attr_of(self, name, ids) -> np.ndarray:
        try:
            a = self.attrs[name]
        except KeyError:
            raise _missing_attr(self, name) from None
        return a[self._ids(ids)]

    # -- constructors --------------------------------------------------------

    @classmethod
    def from_ptb(cls, lines, vocab=None, lowercase=False) -> "Forest":
        """Parse PTB-bracketed trees, one per line, e.g. ``(3 (2 It) (4 great))``.

        Every node gets ``label`` (int64); leaves get ``word`` (int64 id from
        ``vocab``), internal nodes ``word = -1``. Without ``vocab`` one is built
        (ids in order of first appearance, from 0) and kept as ``.vocab``; with
        one, unknown words map to ``vocab.get('<unk>', 0)``. ``lowercase``
        lowercases words before the vocab lookup only: ``to_ptb`` still prints
        the original words. Tokens are split on ASCII whitespace only, blank
        lines are skipped, and malformed input raises ForestError naming the
        tree (0-based), its line and column (1-based).
        """
        child_ptr, child_idx, tree_ptr, attrs, vocab, tokens = _ptb.parse_ptb(
            lines, vocab, lowercase)
        return cls(child_ptr, child_idx, tree_ptr, attrs, vocab, tokens=tokens)

    def to_ptb(self, i=None):
        """Bracket string of tree ``i``, or the list of all trees if ``i`` is None.

        Reproduces ``from_ptb`` input exactly when it was written with single
        spaces and plain integer labels (as SST is).
        """
        if self.tokens is None or "label" not in self.attrs:
            raise ForestError("to_ptb needs a forest read by from_ptb (leaf words and labels)")
        if i is None:
            trees = range(len(self))
        else:
            trees = [range(len(self))[operator.index(i)]]
        out = _ptb.format_ptb(self.child_ptr, self.child_idx, self.tree_ptr,
                              self.attrs["label"], self.tokens, trees)
        return out if i is None else out[0]

    @classmethod
    def from_networkx(cls, graphs, attrs=(), order=None) -> "Forest":
        """Build from networkx DiGraphs whose edges point parent -> child.

        Each graph needs exactly one root (no incoming edges) and no cycle.
        Children are ordered by the edge attribute ``order`` if given, else by
        edge insertion order. A node with several parents is stored once.
        ``attrs`` names node attributes copied into ``forest.attrs``; every
        node must have them. ``forest.node_keys[v]`` is ``(graph index, node)``.
        """
        import networkx as nx

        if isinstance(graphs, nx.Graph):
            graphs = [graphs]
        attrs = (attrs,) if isinstance(attrs, str) else tuple(attrs)
        repeated = sorted({a for a in attrs if attrs.count(a) > 1}, key=str)
        if repeated:
            raise ForestError(f"attrs names {', '.join(map(repr, repeated))} more than once")
        child_idx, child_ptr, tree_ptr, keys = [], [0], [0], []
        values = {a: [] for a in attrs}
        for g, graph in enumerate(graphs):
            if not isinstance(graph, nx.DiGraph):
                raise ForestError(f"graph {g}: expected a networkx DiGraph, "
                                  f"got {type(graph).__name__}")
            if graph.number_of_nodes() == 0:
                raise ForestError(f"graph {g} is empty")
            if not nx.is_directed_acyclic_graph(graph):
                cycle = [e[0] for e in nx.find_cycle(graph)]
                path = " -> ".join(repr(v) for v in cycle + cycle[:1])
                raise ForestError(f"graph {g} has a cycle through node {cycle[0]!r}: {path}")
            roots = [v for v, d in graph.in_degree() if d == 0]
            if len(roots) != 1:
                raise ForestError(f"graph {g} must have exactly one root (a node without "
                                  f"incoming edges); found {len(roots)}: {roots[:10]!r}")
            kids = _ordered_children(graph, g, order)
            post = _postorder(roots[0], kids)
            local = {v: len(keys) + j for j, v in enumerate(post)}
            for v in post:
                child_idx.extend([local[c] for c in kids[v]])
                child_ptr.append(len(child_idx))
                data = graph.nodes[v]
                for a in attrs:
                    if a not in data:
                        raise ForestError(f"graph {g}, node {v!r} has no attribute {a!r}")
                    values[a].append(data[a])
                keys.append((g, v))
            tree_ptr.append(len(keys))
        arrays = {a: _attribute_column(a, values[a], keys) for a in attrs}
        return cls(child_ptr, child_idx, tree_ptr, arrays, node_keys=keys)

    @classmethod
    def from_nested(cls, objs, leaf_attr="value") -> "Forest":
        """Build from nested tuples/lists, one tree per element of ``objs``.

        ``((1, 2), 3)`` is a root with children ``(1, 2)`` and the leaf ``3``.
        Anything that is not a tuple or list is a leaf whose value goes into
        ``attrs[leaf_attr]``: int64 (internal nodes 0) if every leaf is an
        integer or a bool (Python's or numpy's), else float64 (internal nodes
        NaN). An empty tuple/list is a childless node holding 0/NaN. Note that
        ``objs`` is the list of trees: pass ``[t]`` for a single tree ``t``.
        """
        if isinstance(objs, (str, bytes)) or not hasattr(objs, "__iter__"):
            raise ForestError(f"Forest.from_nested takes a list of trees, got {type(objs).__name__} "
                              f"{objs!r:.60}: pass [t] for a single tree t")
        child_idx, child_ptr, tree_ptr = [], [0], [0]
        leaf_ids, leaf_vals, leaf_tree = [], [], []
        for t, obj in enumerate(objs):
            # Explicit stack of [object, next child position, child ids] so deep
            # nesting cannot hit the recursion limit; on_path catches a list
            # that contains itself, which would otherwise loop forever.
            stack, on_path = [[obj, 0, []]], {id(obj)}
            while stack:
                frame = stack[-1]
                o, k, kids = frame
                is_seq = isinstance(o, (tuple, list))
                if is_seq and k < len(o):
                    frame[1] = k + 1
                    c = o[k]
                    if isinstance(c, (tuple, list)):
                        if id(c) in on_path:
                            raise ForestError(f"tree {t} contains itself (a cyclic list)")
                        on_path.add(id(c))
                    stack.append([c, 0, []])
                    continue
                stack.pop()
                v = len(child_ptr) - 1
                if is_seq:
                    on_path.discard(id(o))
                else:
                    leaf_ids.append(v)
                    leaf_vals.append(o)
                    leaf_tree.append(t)
                child_idx.extend(kids)
                child_ptr.append(len(child_idx))
                if stack:
                    stack[-1][2].append(v)
            tree_ptr.append(len(child_ptr) - 1)

        n = len(child_ptr) - 1
        if all(isinstance(x, (numbers.Integral, np.bool_)) for x in leaf_vals):  # (bools count as ints)
            values = np.zeros(n, dtype=np.int64)
        else:
            values = np.full(n, np.nan)
        for v, x, t in zip(leaf_ids, leaf_vals, leaf_tree):
            # Check the type: numpy would happily store the string "1.5".
            if not isinstance(x, (numbers.Real, np.bool_)):
                raise ForestError(f"tree {t}: leaf {x!r} is not a number "
                                  f"(needed for attribute {leaf_attr!r})")
            try:
                values[v] = x
            except OverflowError:
                raise ForestError(f"tree {t}: leaf {x!r} does not fit in {values.dtype}") from None
        return cls(child_ptr, child_idx, tree_ptr, {leaf_attr: values})


def _attribute_column(name, values, keys):
    """The nodes' ``values`` of attribute ``name`` as one array, refusing what numpy would
    store as something else: a number among strings (it becomes a string) and an int too
    large for int64 among negative ones (it becomes a float); ints of uint64's range that
    numpy would make floats become uint64.  ``keys``: ``(graph, node)``."""
    try:
        column = np.asarray(values)
    except ValueError as exc:
        raise ForestError(f"attribute {name!r}: values of different shapes ({exc})") from None
    if column.ndim != 1:
        return column
    if column.dtype.kind in "US":
        kind = str if column.dtype.kind == "U" else bytes
        for (g, v), x in zip(keys, values):
            if not isinstance(x, kind):
                raise ForestError(f"graph {g}, node {v!r}: attribute {name!r} holds {x!r} where other nodes "
                                  f"hold {kind.__name__}; an attribute holds one kind of value")
    elif column.dtype.kind == "f" and all(isinstance(x, numbers.Integral) for x in values):
        if all(0 <= int(x) < 2 ** 64 for x in values):
            return np.array([int(x) for x in values], dtype=np.uint64)
        for (g, v), x in zip(keys, values):
            if not -2 ** 63 <= int(x) < 2 ** 63:
                raise ForestError(f"graph {g}, node {v!r}: attribute {name!r} holds {x!r}, "
                                  "which does not fit in int64 beside the other nodes' values")
    return column


def _ordered_children(graph, g, order):
    """node -> list of children, by edge attribute ``order`` or insertion order."""
    kids = {}
    for v in graph:
        if order is None:
            kids[v] = [c for _, c in graph.out_edges(v)]
            continue
        edges = list(graph.out_edges(v, data=True))
        for _, c, d in edges:
            if order not in d:
                raise ForestError(f"graph {g}, edge {v!r} -> {c!r} has no attribute {order!r}")
        try:
            edges.sort(key=lambda e: e[2][order])
        except TypeError as exc:
            raise ForestError(f"graph {g}: cannot sort the children of node {v!r} "
                              f"by {order!r} ({exc})") from None
        kids[v] = [c for _, c, _ in edges]
    return kids


def _postorder(root, kids):
    """Nodes reachable from ``root`` in DFS post-order, each once (input is acyclic)."""
    out, seen = [], {root}
    stack = [(root, iter(kids[root]))]
    while stack:
        v, it = stack[-1]
        for c in it:
            if c not in seen:
                seen.add(c)
                stack.append((c, iter(kids[c])))
                break
        else:
            stack.pop()
            out.append(v)
    return out


class Node:
    """One node of one tree, for per-sample (plain Python) code.

    ``node.<attr>`` reads ``forest.attrs[attr][node.id]`` as a numpy scalar
    (or a copy of the row, for vector attributes). Equality and hashing are by
    forest identity and id.
    """

    __slots__ = ("forest", "id")

    def __init__(self, forest: Forest, id):
        id = operator.index(id)
        # A negative id would silently wrap around in the CSR lookups.
        if not 0 <= id < forest.num_nodes:
            raise IndexError(f"node id {id} out of range for a forest of {forest.num_nodes} nodes")
        self.forest = forest
        self.id = id

    @property
    def num_children(self) -> np.int64:
        ptr = self.forest.child_ptr
        return ptr[self.id + 1] - ptr[self.id]

    @property
    def is_leaf(self) -> np.bool_:
        ptr = self.forest.child_ptr
        return ptr[self.id + 1] == ptr[self.id]

    @property
    def children(self) -> tuple:
        f = self.forest
        kids = f.child_idx[f.child_ptr[self.id]:f.child_ptr[self.id + 1]]
        return tuple(Node(f, c) for c in kids.tolist())

    def child(self, i) -> "Node":
        """Child ``i``, indexed like a list (negative from the end, IndexError if out of range)."""
        i = operator.index(i)
        f = self.forest
        start, stop = int(f.child_ptr[self.id]), int(f.child_ptr[self.id + 1])
        n = stop - start
        if not -n <= i < n:
            raise IndexError(f"child index {i} out of range for node {self.id} "
                             f"with {n} children")
        return Node(f, int(f.child_idx[start + i % n]))

    @property
    def left(self) -> "Node":
        return self.child(0)

    @property
    def right(self) -> "Node":
        return self.child(1)

    __vmapper_fresh_attrs__ = True  # (a vector attribute reads as a copy: see NodeLanes)

    def __getattr__(self, name):
        # Only called when normal lookup fails; slots and dunders must not be
        # looked up in attrs (e.g. while unpickling, before `forest` is set).
        if name.startswith("_") or name in _RESERVED:
            raise AttributeError(name)
        a = self.forest.attrs.get(name)
        if a is None:
            raise _missing_attr(self.forest, name)
        v = a[self.id]
        return v.copy() if isinstance(v, np.ndarray) else v

    def __vmapper_hold__(self, n):
        """This node on each of ``n`` lanes, as batched code holds a node that differs per
        lane (a broadcast node chosen per lane, or passed to a batched call)."""
        from .runtime.nodes import NodeLanes
        return NodeLanes(self.forest, np.full(n, self.id, dtype=np.int64))

    def __vmapper_method__(self, ctx, name, args, kw):
        """``node.child(i)`` and other methods of a broadcast node: run as the per-sample code
        runs them, or, given per-lane arguments, on the node held per lane.  (Without this
        hook batched code would take ``Node.child`` for a user's function to batch.)"""
        from .runtime.values import is_varying
        if any(is_varying(a) for a in args):
            return self.__vmapper_hold__(ctx.n).__vmapper_method__(ctx, name, args, kw)
        npos = len(args) - len(kw)
        return ctx.uniform(lambda: getattr(self, name)(*args[:npos], **dict(zip(kw, args[npos:]))))

    def __eq__(self, other):
        if not isinstance(other, Node):
            return NotImplemented
        return self.forest is other.forest and self.id == other.id

    def __hash__(self):
        return hash((id(self.forest), self.id))

    def __repr__(self):
        shown = ", ".join(f"{k}={v[self.id]}" for k, v in list(self.forest.attrs.items())[:3]
                          if v.ndim == 1)
        return f"Node(id={self.id}{', ' if shown else ''}{shown})"


class NodeBatch:
    """One node per lane: the batched form of a :class:`Node` argument.

    ``batch[j]`` is lane ``j`` as a per-sample Node; the batched runtime reads
    the structure through ``batch.forest``'s vectorized accessors on
    ``batch.ids``.
    """

    __slots__ = ("forest", "ids")

    def __init__(self, forest: Forest, ids):
        ids = np.asarray(ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise TypeError(f"NodeBatch ids must be a 1-D integer array, got shape {ids.shape} "
                            f"dtype {ids.dtype}")
        self.forest = forest
        self.ids = forest._ids(ids)

    def __vmapper_lanes__(self):
        """The runtime's per-lane form of this batch (used by ``vmapper.batched``)."""
        from .runtime.nodes import NodeLanes
        return NodeLanes(self.forest, np.asarray(self.ids, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return NodeBatch(self.forest, self.ids[i])
        if isinstance(i, (np.ndarray, list)):  # a batch of some of these nodes (ints or a bool mask)
            idx = np.asarray(i)
            if idx.dtype.kind not in "biu" or idx.ndim != 1:
                raise IndexError(f"a NodeBatch is indexed by an int, a slice, or a 1-d int or bool array, "
                                 f"not an array of {idx.dtype} with shape {idx.shape}")
            return NodeBatch(self.forest, self.ids[idx])
        return Node(self.forest, int(self.ids[operator.index(i)]))

    def __iter__(self):
        return (Node(self.forest, i) for i in self.ids.tolist())

    def __repr__(self):
        return f"NodeBatch({len(self)} lanes, ids={np.array2string(self.ids, threshold=8)})"
