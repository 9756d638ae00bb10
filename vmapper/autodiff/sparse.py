"""Row-sparse gradients of tables that per-sample code only gathers rows from.

A gather ``table[i]`` by per-lane indices touches a few rows; a dense gradient
would cost a pass over the whole table per step.  Its gradient is a
:class:`RowSparse`: ``values[k]`` is added to row ``indices[k]`` (indices may
repeat).  Sums of row-sparse gradients stay row-sparse (concatenation); any
other use densifies.
"""
from __future__ import annotations

from operator import itemgetter

import numpy as np


class RowSparse:
    """Gradient rows of a table: ``to_dense()[indices[k]] += values[k]`` for every k.

    A sum of row-sparse gradients keeps its terms as parts until ``indices`` or
    ``values`` is read, then concatenates them once (summing the gathers of every
    level of a recursion costs one concatenation, not one per level).
    """
    __slots__ = ("_indices", "_values", "_parts", "shape")

    def __init__(self, indices, values, shape):
        self._indices = np.asarray(indices, dtype=np.int64)
        self._values = np.asarray(values)
        self._parts = None
        self.shape = tuple(shape)

    def _join(self):
        parts, self._parts = self._parts, None
        self._indices = np.concatenate([p[0] for p in parts])
        self._values = np.concatenate([p[1] for p in parts])

    @property
    def indices(self):
        if self._parts is not None:
            self._join()
        return self._indices

    @property
    def values(self):
        if self._parts is not None:
            self._join()
        return self._values

    @property
    def dtype(self):
        return self._values.dtype if self._parts is None else np.result_type(*[p[1] for p in self._parts])

    def _terms(self):
        return self._parts if self._parts is not None else [(self._indices, self._values)]

    def to_dense(self):
        out = np.zeros(self.shape, dtype=self.dtype)
        add_rows(out, self.indices, self.values)
        return out

    def coalesce(self):
        """The same gradient with unique, sorted indices (rows summed)."""
        uniq, inv = np.unique(self.indices, return_inverse=True)
        vals = np.zeros((len(uniq),) + self.values.shape[1:], dtype=self.values.dtype)
        add_rows(vals, inv, self.values)
        return RowSparse(uniq, vals, self.shape)

    def apply_to(self, table, scale=1.0):
        """``table += scale * gradient`` in place, touching only the rows present."""
        add_rows(table, self.indices, scale * self.values)
        return table

    def astype(self, dtype):
        return RowSparse(self.indices, self.values.astype(dtype, copy=False), self.shape)

    def __array__(self, dtype=None, copy=None):
        d = self.to_dense()
        return d if dtype is None else d.astype(dtype)

    def __add__(self, other):
        if isinstance(other, RowSparse):
            out = RowSparse.__new__(RowSparse)
            out._indices = out._values = None
            out._parts = self._terms() + other._terms()
            out.shape = self.shape
            return out
        return self.to_dense() + other

    __radd__ = __add__

    def __repr__(self):
        return f"RowSparse(shape={self.shape}, rows={len(self.indices)})"


class Placed:
    """A gradient that is zero except ``values`` at ``key`` (the VJP of a slice).

    Several slices of one array (a gate vector cut into gates) accumulate into
    one lazy gradient of several ``parts``, each a ``(key, values)`` pair, and
    so do the gradients of the lanes of a merged call's result (the VJP of a
    gather by a slice).  It becomes an array once, when needed: the parts laid
    side by side (one concatenation) when they tile the array along the lane
    axis or the first per-sample axis, otherwise one zero-filled buffer that
    each part is added into.
    """
    __slots__ = ("shape", "parts")

    def __init__(self, shape, key, values):
        self.shape = tuple(shape)
        self.parts = [(key, values)]

    @property
    def key(self):
        return self.parts[0][0]

    @property
    def values(self):
        return self.parts[0][1]

    @property
    def dtype(self):
        return np.result_type(*[v for _, v in self.parts])

    def merged(self, other):
        """The sum of two placed gradients of one array, as one placed gradient (lazy)."""
        out = Placed.__new__(Placed)
        out.shape = self.shape
        out.parts = self.parts + other.parts
        return out

    def to_dense(self):
        parts = self.parts
        if len(parts) > 1:
            tiled = _tiled(self.shape, parts)
            if tiled is not None:
                return tiled
        out = np.zeros(self.shape, dtype=self.dtype)
        (key, values), rest = parts[0], parts[1:]
        out[key] = values
        for key, values in rest:
            out[key] += values
        return out

    def add_into(self, buf):
        for key, values in self.parts:
            buf[key] += values

    def on_lanes(self, idx, n):
        """The same gradient over ``n`` lanes, these rows being lanes ``idx`` (lane axis first)."""
        out = Placed.__new__(Placed)
        out.shape = (n,) + self.shape[1:]
        out.parts = [((idx,) + tuple(key[1:]), values) for key, values in self.parts]
        return out

    def __array__(self, dtype=None, copy=None):
        d = self.to_dense()
        return d if dtype is None else d.astype(dtype)


def _tiled(shape, parts):
    """The parts' values side by side, when they are blocks ``[a:b]`` (rows) or ``[:, a:b]``
    (columns) of one dtype that tile ``shape`` exactly (each element in one part); None
    otherwise."""
    k0 = parts[0][0]
    axis = 0 if len(k0) == 1 else 1
    if len(shape) <= axis:
        return None
    width = shape[axis]
    blocks = []
    dt = parts[0][1].dtype
    for key, values in parts:
        if axis:
            if len(key) != 2 or type(key[0]) is not slice or key[0] != _ALL:
                return None
            k = key[1]
        else:
            if len(key) != 1:
                return None
            k = key[0]
        if type(k) is not slice or type(values) is not np.ndarray or values.dtype != dt:
            return None
        a, b, step = k.indices(width)
        if step != 1 or values.shape != shape[:axis] + (b - a,) + shape[axis + 1:]:
            return None
        blocks.append((a, b, values))
    blocks.sort(key=_first)
    pos = 0
    for a, b, _ in blocks:
        if a != pos:
            return None
        pos = b
    if pos != width:
        return None
    return np.concatenate([v for _, _, v in blocks], axis=axis)


_ALL = slice(None)
_first = itemgetter(0)


class OuterSum:
    """``sum_k lhs[k].T @ rhs[k]``, kept as its terms until needed.

    The gradient of a shared matrix applied to per-lane vectors, one term per
    application (a tree level): summed in ONE matrix product over all terms'
    rows at the end, instead of one thin product per level.
    """
    __slots__ = ("lhs", "rhs", "shape")

    def __init__(self, lhs, rhs, shape):
        self.lhs, self.rhs, self.shape = lhs, rhs, tuple(shape)

    @property
    def dtype(self):
        return np.result_type(self.lhs[0], self.rhs[0])

    def to_dense(self):
        if len(self.lhs) == 1:
            return (self.lhs[0].T @ self.rhs[0]).reshape(self.shape)
        return (np.concatenate(self.lhs).T @ np.concatenate(self.rhs)).reshape(self.shape)

    def __add__(self, other):
        if isinstance(other, OuterSum) and other.shape == self.shape:
            return OuterSum(self.lhs + other.lhs, self.rhs + other.rhs, self.shape)
        return self.to_dense() + np.asarray(other)

    __radd__ = __add__

    def __array__(self, dtype=None, copy=None):
        d = self.to_dense()
        return d if dtype is None else d.astype(dtype)


_ROW_KERNEL = []  # [the compiled kernel] once tried ([None] without numba)


def _row_kernel():
    if not _ROW_KERNEL:
        try:
            from numba import njit
        except ImportError:  # numba is optional: numpy's add.at does the same, slower
            _ROW_KERNEL.append(None)
        else:
            @njit(cache=True, error_model="numpy")
            def add_rows_kernel(out, rows, values):
                for k in range(rows.shape[0]):
                    r = rows[k]
                    for c in range(values.shape[1]):
                        out[r, c] += values[k, c]
            _ROW_KERNEL.append(add_rows_kernel)
    return _ROW_KERNEL[0]


def add_rows(out, rows, values):
    """``np.add.at(out, rows, values)`` for a row index: ``out[rows[k]] += values[k]`` for
    k = 0, 1, ... in that order (the same sums, bitwise), in one compiled pass where it can
    (add.at costs ~5 ns per element)."""
    rows = np.asarray(rows)
    values = np.asarray(values)
    if (out.ndim >= 2 and type(out) is np.ndarray and out.flags.c_contiguous and rows.ndim == 1
            and rows.dtype.kind in "iu" and values.dtype == out.dtype and out.dtype.type in (np.float32, np.float64)
            and values.shape == rows.shape + out.shape[1:] and rows.size and out.shape[0]
            and 0 <= rows.min() and rows.max() < out.shape[0]):
        kernel = _row_kernel()
        if kernel is not None:
            width = values[0].size
            kernel(out.reshape(out.shape[0], width), rows.astype(np.int64, copy=False),
                   np.ascontiguousarray(values).reshape(len(rows), width))
            return
    np.add.at(out, rows, values)


def densify(g):
    """A plain array for a lazily represented gradient (others unchanged)."""
    return g.to_dense() if isinstance(g, (Placed, OuterSum)) else g


def densify_all(grads):
    """``{k: densify(v)}``, where :class:`OuterSum` gradients over the very same ``lhs`` terms
    (``W @ x + V @ y``'s ``W`` and ``V``: one output gradient per level) are one product:
    ``lhs.T @ [rhs_W | rhs_V]``, the ``lhs`` laid end to end once, not once per matrix."""
    joint = {}
    for k, v in grads.items():
        if type(v) is OuterSum and _joinable(v):
            joint.setdefault(tuple(map(id, v.lhs)), []).append(k)
    out = {}
    for keys in joint.values():
        if len(keys) > 1:
            out.update(zip(keys, _joint_products([grads[k] for k in keys])))
    return {k: out[k] if k in out else densify(v) for k, v in grads.items()}


def _joinable(s):
    rhs0 = s.rhs[0]
    return s.lhs[0].ndim == 2 and rhs0.ndim == 2 and s.shape == (s.lhs[0].shape[1], rhs0.shape[1]) \
        and all(r.dtype == rhs0.dtype and r.ndim == 2 for r in s.rhs)


def _joint_products(sums):
    """The dense values of OuterSums over one ``lhs``: one matrix product for all of them."""
    lhs = sums[0].lhs
    dtypes = {s.rhs[0].dtype for s in sums}
    if len(dtypes) > 1:
        return [s.to_dense() for s in sums]
    widths = np.cumsum([0] + [s.shape[1] for s in sums])
    rows = sum(len(a) for a in lhs)
    right = np.empty((rows, widths[-1]), dtypes.pop())
    for s, a, b in zip(sums, widths[:-1], widths[1:]):
        np.concatenate(s.rhs, out=right[:, a:b])
    left = lhs[0] if len(lhs) == 1 else np.concatenate(lhs)
    product = left.T @ right
    return [np.ascontiguousarray(product[:, a:b]) for a, b in zip(widths[:-1], widths[1:])]
