"""Per-lane references to nodes of a :class:`~vmapper.Forest`.

Inside batched code a node is a :class:`NodeLanes`: the forest (shared) and
one node id per lane.  Its attributes are gathers from the forest's flat
arrays (``node.left`` is a gather from the CSR child table), so walking a
batch of trees is array work.  ``node.children`` is a :class:`ChildLanes`
whose length differs per lane; ``for c in node.children`` runs as a loop with
per-lane trip counts.
"""
from __future__ import annotations

import numpy as np

from .values import LANE_KINDS, Lanes, all_true, held

_NODE_FIELDS = ("left", "right", "children", "num_children", "is_leaf", "id")


class _IdLanes:
    """Shared machinery: a forest and one node id per lane."""
    __slots__ = ("forest", "ids")
    __vmapper_varying__ = True

    def __init__(self, forest, ids):
        self.forest = forest
        self.ids = ids

    def _same(self, ids):
        return type(self)(self.forest, ids)

    def __vmapper_gather__(self, idx):
        return self._same(self.ids[idx])

    @staticmethod
    def __vmapper_select__(mask, new, old, n):
        _check_same_kind(new, old)
        return new._same(np.where(mask, new.ids, old.ids))

    @staticmethod
    def __vmapper_scatter__(dest, src, idx, n):
        _check_same_kind(dest, src)
        ids = dest.ids.copy()
        ids[idx] = src.ids
        return src._same(ids)

    @staticmethod
    def __vmapper_concat__(values):
        for v in values[1:]:
            _check_same_kind(values[0], v)
        return values[0]._same(np.concatenate([v.ids for v in values]))

    def __vmapper_blank__(self, n):
        return self._same(np.zeros(n, dtype=np.int64))

    def __repr__(self):
        return f"{type(self).__name__}({len(self.ids)} lanes)"


def _check_same_kind(a, b):
    """The TypeError of holding ``a`` and ``b`` in one per-lane value, unless both are nodes
    (or both children lists) of one forest."""
    if type(a) is type(b) and a.forest is b.forest:
        return
    if isinstance(a, _IdLanes) and isinstance(b, _IdLanes) and type(a) is type(b):
        raise TypeError("nodes of two different Forest objects: a node held per lane is an id in "
                        "one forest; build one Forest of all the trees (Forest.from_ptb(lines_a + "
                        "lines_b), say), or keep the two forests' nodes in separate variables and calls")
    raise TypeError("a node on some lanes and another value on others")


class NodeLanes(_IdLanes):
    """One node per lane."""
    __slots__ = ()
    __vmapper_type_name__ = "Node"  # (what the per-sample code sees, in messages)
    #: ``node.<attr>`` is a new array on every read, as ``Node.__getattr__``'s copy is: a name
    #: bound to it may be updated in place (the executor does not count the node as its source)
    __vmapper_fresh_attrs__ = True

    def __vmapper_truth__(self):
        return True  # a node object is always truthy

    def __vmapper_eq__(self, other, n):
        """Per lane, as ``Node.__eq__``: the same node of the same forest (anything else that is
        not a node is unequal; a shared node is the same node on every lane)."""
        other = held(other, n)
        if type(other) is NodeLanes and other.forest is self.forest:
            return self.ids == other.ids
        return np.zeros(n, dtype=bool)

    def __vmapper_output__(self):
        from ..forest import NodeBatch
        return NodeBatch(self.forest, self.ids)

    def child(self, ctx, k):
        f = self.forest
        if type(k) is int and k >= 0 and f.num_nodes and f.child_idx.size:
            # a fixed child (node.left, node.right): Forest.child_of without its id checks
            cp, ids = f.child_ptr, self.ids
            start = cp[ids]
            valid = cp[ids + 1] - start > k
            if not all_true(valid):
                self._fail_children(ctx, valid, k)
                return NodeLanes(f, np.where(valid, f.child_idx[np.where(valid, start + k, 0)], 0))
            return NodeLanes(f, f.child_idx[start + k])
        if type(k) is np.bool_ or isinstance(k, Lanes) and k.data.dtype.kind == "b" and not k.weak:
            # (a Python bool is an int, as Node.child's operator.index takes it; numpy's is not)
            raise ctx.lane_error_all("'numpy.bool' object cannot be interpreted as an integer", TypeError)
        kid, valid = self.forest.child_of(self.ids, k.data if isinstance(k, Lanes) else k)
        if not all_true(valid):
            self._fail_children(ctx, valid, k)
        return NodeLanes(self.forest, np.where(valid, kid, 0))

    def _fail_children(self, ctx, valid, k):
        """The per-sample run's IndexError, worded for the first active lane that fails."""
        bad = ~valid if ctx.mask is None else ~valid & ctx.mask
        if not bad.any():
            return
        j = int(np.flatnonzero(bad)[0])
        node = int(self.ids[j])
        index = int(k.data[j]) if isinstance(k, Lanes) else int(k)
        count = int(self.forest.child_ptr[node + 1] - self.forest.child_ptr[node])
        ctx.fail_where(~valid, f"child index {index} out of range for node {node} with {count} children",
                       IndexError)

    def __vmapper_getattr__(self, ctx, name):
        f = self.forest
        if name == "left":
            return self.child(ctx, 0)
        if name == "right":
            return self.child(ctx, 1)
        if name == "children":
            return ChildLanes(f, self.ids)
        if name == "num_children":
            return Lanes(f.num_children_of(self.ids), False)
        if name == "is_leaf":
            if f.num_nodes:  # lanes hold valid ids (or 0): no need for Forest's checks
                cp = f.child_ptr
                return Lanes(cp[self.ids + 1] == cp[self.ids], False)
            return Lanes(f.is_leaf_of(self.ids), False)
        if name == "id":
            return Lanes(self.ids.copy(), True)  # (a Python int per sample: Node.id)
        if name in f.attrs:
            if f.attrs[name].dtype.kind not in LANE_KINDS:
                raise ctx.unsupported(f"node attribute '{name}' of dtype {f.attrs[name].dtype} (Python objects, "
                                      f"such as None on some nodes)",
                                      hint="give the forest numbers, bools, str or fixed-shape arrays: for a "
                                           "missing value, NaN or a separate bool attribute")
            if f.num_nodes:
                return Lanes(f.attrs[name][self.ids], False)
            return Lanes(f.attr_of(name, self.ids), False)
        raise ctx.lane_error_all(f"node has no attribute '{name}' (the forest's attributes are "
                                 f"{sorted(f.attrs)})", AttributeError)

    def __vmapper_method__(self, ctx, name, args, kw):
        if name == "child" and len(args) == 1 and not kw:
            return self.child(ctx, args[0])
        raise ctx.unsupported(f"method '.{name}()' of a tree node")


class ChildLanes(_IdLanes):
    """``node.children`` per lane: a sequence whose length differs per lane."""
    __slots__ = ()

    def __vmapper_truth__(self):
        return self.forest.num_children_of(self.ids) > 0

    def __vmapper_eq__(self, other, n):
        """Per lane, as the tuple ``Node.children`` compares: equal to a tuple of as many items
        that are these children in order, and to another node's children that are the same
        nodes; unequal to anything else (a list included, as for a tuple)."""
        f = self.forest
        counts = f.num_children_of(self.ids)
        if type(other) is ChildLanes and other.forest is f:
            same = counts == f.num_children_of(other.ids)
            for k in range(int(counts.max(initial=0))):
                mine, valid = f.child_of(self.ids, k)
                same &= ~valid | (mine == f.child_of(other.ids, k)[0])
            return same
        if type(other) is not tuple:
            return np.zeros(n, dtype=bool)
        same = counts == len(other)
        for k, item in enumerate(other):
            kid, valid = f.child_of(self.ids, k)
            same &= valid & NodeLanes(f, np.where(valid, kid, 0)).__vmapper_eq__(item, n)
        return same

    def __vmapper_len__(self, ctx):
        return Lanes(self.forest.num_children_of(self.ids), True)

    def __vmapper_flatten__(self, idx):
        """All children of lanes ``idx`` end to end: (children, owner position in idx, counts)."""
        from ..forest import _concat_ranges
        f = self.forest
        ids = self.ids[idx]
        starts = f.child_ptr[ids]
        counts = f.child_ptr[ids + 1] - starts
        flat = f.child_idx[_concat_ranges(starts, counts)]
        return NodeLanes(f, flat), np.repeat(np.arange(len(ids)), counts), counts

    def __vmapper_contains__(self, ctx, item):
        """``item in node.children`` per lane: whether the lane's node is one of its children
        (compared as ``Node.__eq__`` compares; anything but a node of this forest is in none)."""
        item = held(item, len(self.ids))
        out = np.zeros(len(self.ids), dtype=bool)
        if type(item) is NodeLanes and item.forest is self.forest:
            flat, owner, _ = self.__vmapper_flatten__(np.arange(len(self.ids)))
            out[owner[flat.ids == item.ids[owner]]] = True
        return Lanes(out, True)

    def __vmapper_getitem__(self, ctx, ix):
        if len(ix) != 1:
            raise ctx.unsupported("multi-dimensional index of node.children")
        if type(ix[0]) is slice:  # the children's count differs per lane: so would the slice's
            raise ctx.unsupported("a slice of node.children (also reversed(node.children) inside "
                                  "enumerate(), zip() or a builtin)",
                                  hint="loop over the children directly (for c in node.children, "
                                       "for c in reversed(node.children)) or index node.child(k)")
        return NodeLanes(self.forest, self.ids).child(ctx, ix[0])
