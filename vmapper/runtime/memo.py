"""DAG mode (``batched(..., memo=True)``): each distinct node evaluated once per batched call.

A call of a memo function whose only per-lane argument is a tree node looks
the nodes up in the callee's :class:`MemoTable` and evaluates the missing
ones first.  A self-recursive function evaluates the missing nodes'
uncached descendants bottom-up by height, one batched run per height, so
that its own recursive calls are all lookups: a batch of trees runs in as
many batched steps as it is tall, with every leaf in the first one.

The table keeps each result leaf as a column of rows in evaluation order
(``slot_of`` maps a node id to its row): a per-lane array leaf in one
preallocated buffer (a store copies a height's rows in, a lookup is one
gather), a leaf that is the same on every lane as that one value, and
anything else (nodes, ragged values) as a value merged store by store.

Differentiated runs tape a store as one entry and a lookup as one entry per
differentiated column.  A lookup's gradient is scatter-added into the
column's gradient buffer, which the store of those rows reads in the
reverse sweep: every lookup of a row comes after its store, so the sweep
has summed all of them by then.  That costs O(rows) per batched call
however many heights read a row.
"""
from __future__ import annotations

import weakref

import numpy as np

from .values import Lanes, Traced, _merge_dtype, _same_uniform, concat_sized, gather, is_varying, take_rows

_SCALARS = (int, float, bool, complex, str, type(None))
#: column kinds
_UNIFORM, _ARRAY, _GENERIC = range(3)


def table_for(state, callee, args, at=0):
    """The memo table of ``callee`` for these arguments (the node at position ``at``): one per
    forest and per set of uniform arguments (``f(node, 0)`` and ``f(node, 1)`` are different
    results)."""
    forest = args[at].forest
    key = (callee, at, id(forest)) + tuple(
        (type(a), a.hex() if type(a) is float else a) if type(a) in _SCALARS else id(a)
        for k, a in enumerate(args) if k != at)
    table = state.memo.get(key)
    if table is None:
        table = state.memo[key] = MemoTable(forest, args)
    return table


class _Column:
    __slots__ = ("kind", "value", "buf", "weak", "traced", "grad", "grad_sweep")

    def __init__(self):
        self.kind = None
        self.value = self.buf = self.grad = None
        self.weak = self.traced = False
        self.grad_sweep = -1


class MemoTable:
    """One memo function's results by node over one batched call (see the module docstring)."""

    def __init__(self, forest, args):
        self.forest = forest
        self.args = args  # holds the uniform arguments, so that their ids in the key stay theirs
        self.slot_of = np.full(forest.num_nodes, -1, dtype=np.int64)
        self.size = 0
        self.capacity = 0
        self.spec = None
        self.flat = False  # the spec is a tuple of leaves
        self.columns = []
        self.token = None  # the tape node of the latest store of traced rows

    def rows_of(self, ids):
        return self.slot_of[ids]

    def reserve(self, k):
        """Room for ``k`` more rows (buffers grow to it at their next store)."""
        self.capacity = max(self.capacity, self.size + k)

    # ---- stores -----------------------------------------------------------------------------
    def store(self, ids, value):
        """The results ``value`` (over ``len(ids)`` lanes) of the distinct, new nodes ``ids``."""
        leaves = []
        spec = _flatten(value, leaves)
        if not self.columns:
            self.spec = spec
            self.flat = type(spec) is tuple and all(s is None for s in spec)
            self.columns = [_Column() for _ in leaves]
        elif spec != self.spec:
            raise TypeError("a tuple in one call and another value in another")
        lo, hi = self.size, self.size + len(ids)
        self.reserve(hi - lo)
        traced = []
        for col, leaf in zip(self.columns, leaves):
            if self._store_leaf(col, lo, hi, leaf):
                traced.append((col, leaf))
        if traced:
            self._tape_store(lo, hi, traced)
        self.slot_of[ids] = np.arange(lo, hi)
        self.size = hi

    def _store_leaf(self, col, lo, hi, v):
        """Store one leaf; True if it went into a traced array column as a traced value."""
        raw = v.value if type(v) is Traced else v
        if col.kind is None:
            col.kind = _ARRAY if type(raw) is Lanes else _GENERIC if is_varying(v) or type(v) is Traced \
                else _UNIFORM
            if col.kind != _ARRAY:
                col.value = v
                return False
        if col.kind == _UNIFORM:
            if not is_varying(v) and type(v) is not Traced and _same_uniform(col.value, v):
                return False
            col.kind, col.value = _GENERIC, concat_sized([col.value, v], [lo, hi - lo])
            return False
        if col.kind == _ARRAY:
            if type(raw) is Lanes and (col.buf is None or col.buf.shape[1:] == raw.data.shape[1:]):
                if col.buf is None or col.buf.shape[0] < self.capacity:
                    self._grow(col, raw)
                if raw.data.dtype != col.buf.dtype:
                    # as merged calls merge (a Python scalar's rows take a numpy value's type)
                    dt = _merge_dtype(Lanes(col.buf[:lo], col.weak), raw)
                    if dt != col.buf.dtype:
                        col.buf = col.buf.astype(dt)
                col.buf[lo:hi] = raw.data
                col.weak = col.weak and raw.weak
                if type(v) is Traced:
                    col.traced = True
                    return True
                return False
            # another kind of value on these lanes: merged generically from now on
            col.kind, col.value = _GENERIC, self._load_column(col, np.arange(lo))
        col.value = concat_sized([col.value, v], [lo, hi - lo])
        return False

    def _grow(self, col, raw):
        old = col.buf
        if old is None:
            col.buf = np.empty((max(self.capacity, 1),) + raw.data.shape[1:], raw.data.dtype)
            col.weak = raw.weak
            return
        col.buf = np.empty((max(self.capacity, 2 * old.shape[0]),) + old.shape[1:], old.dtype)
        col.buf[:self.size] = old[:self.size]

    # ---- lookups ---------------------------------------------------------------------------
    def load(self, rows):
        """The stored results of rows ``rows`` (one per lane)."""
        leaves = [self._load_column(col, rows) for col in self.columns]
        if self.spec is None:
            return leaves[0]
        if self.flat:  # (a flat tuple, the usual result: no walk of the spec)
            return tuple(leaves)
        return _unflatten(self.spec, iter(leaves))

    def _load_column(self, col, rows):
        if col.kind == _UNIFORM:
            return col.value
        if col.kind == _GENERIC:
            return gather(col.value, rows)
        out = Lanes(take_rows(col.buf, rows), col.weak)
        return self._tape_load(col, rows, out) if col.traced else out

    # ---- differentiation -------------------------------------------------------------------
    # Each store's entry has the previous store's as a parent, and a lookup's entry the latest
    # store's: a gradient reaching any lookup walks the whole chain of stores, once.

    def _tape_store(self, lo, hi, traced):
        tape = _tape()
        tape_ref = weakref.ref(tape.current_tape.get())  # (the tape holds this rule: no cycle)
        cols = [col for col, _ in traced]
        dtypes = [leaf.value.data.dtype for _, leaf in traced]
        chained = self.token is not None

        def store_vjp(g, out, args, attrs, n):
            sweep = tape_ref().sweeps
            grads = tuple(None if col.grad is None or col.grad_sweep != sweep  # (no lookup's gradient)
                          else col.grad[lo:hi].astype(dt, copy=False) for col, dt in zip(cols, dtypes))
            return [grads, 0.0 if chained else None]

        parents = [tuple(leaf.node for _, leaf in traced), self.token]
        self.token = tape.record_structural("memo_store", store_vjp, [], 0.0, parents, hi - lo).node

    def _tape_load(self, col, rows, value):
        tape = _tape()
        tape_ref = weakref.ref(tape.current_tape.get())

        def load_vjp(g, out, args, attrs, n):
            sweep = tape_ref().sweeps
            if col.grad is None or col.grad_sweep != sweep:
                col.grad = np.zeros(col.buf.shape, col.buf.dtype)
                col.grad_sweep = sweep
            g = np.asarray(tape.densify(g), dtype=col.grad.dtype)
            kernel = tape.row_kernel()
            if g.size == 0:
                pass
            elif kernel is None:
                np.add.at(col.grad, rows, g)
            else:  # rows are valid (from slot_of) and the buffer is ours: no checks needed
                kernel(col.grad.reshape(col.grad.shape[0], -1), rows,
                       np.ascontiguousarray(g).reshape(len(rows), -1))
            return [0.0]  # (reaches the stores, which hand the rows' gradients on)

        return tape.record_structural("memo_load", load_vjp, [], value, [self.token], len(rows))


_TAPE = []


def _tape():
    """The tape's functions, imported on first use (autodiff imports the runtime)."""
    if not _TAPE:
        from types import SimpleNamespace

        from ..autodiff import tape
        from ..autodiff.sparse import _row_kernel, densify
        _TAPE.append(SimpleNamespace(current_tape=tape.current_tape, record_structural=tape.record_structural,
                                     row_kernel=_row_kernel, densify=densify))
    return _TAPE[0]


def _flatten(v, leaves):
    if type(v) is tuple:
        return tuple(_flatten(x, leaves) for x in v)
    leaves.append(v)
    return None


def _unflatten(spec, leaves):
    if spec is None:
        return next(leaves)
    return tuple(_unflatten(s, leaves) for s in spec)
