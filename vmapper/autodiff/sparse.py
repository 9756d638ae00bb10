"""Row-sparse gradients of tables that per-sample code only gathers rows from.

A gather ``table[i]`` by per-lane indices touches a few rows; a dense gradient
would cost a pass over the whole table per step.  Its gradient is a
:class:`RowSparse`: ``values[k]`` is added to row ``indices[k]`` (indices may
repeat).  Sums of row-sparse gradients stay row-sparse (concatenation); any
other use densifies.
"""
from __future__ import annotations

import numpy as np


class RowSparse:
    """Gradient rows of a table: ``to_dense()[indices[k]] += values[k]`` for every k."""
    __slots__ = ("indices", "values", "shape")

    def __init__(self, indices, values, shape):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.values = np.asarray(values)
        self.shape = tuple(shape)

    @property
    def dtype(self):
        return self.values.dtype

    def to_dense(self):
        out = np.zeros(self.shape, dtype=self.values.dtype)
        np.add.at(out, self.indices, self.values)
        return out

    def coalesce(self):
        """The same gradient with unique, sorted indices (rows summed)."""
        uniq, inv = np.unique(self.indices, return_inverse=True)
        vals = np.zeros((len(uniq),) + self.values.shape[1:], dtype=self.values.dtype)
        np.add.at(vals, inv, self.values)
        return RowSparse(uniq, vals, self.shape)

    def apply_to(self, table, scale=1.0):
        """``table += scale * gradient`` in place, touching only the rows present."""
        np.add.at(table, self.indices, scale * self.values)
        return table

    def astype(self, dtype):
        return RowSparse(self.indices, self.values.astype(dtype), self.shape)

    def __array__(self, dtype=None, copy=None):
        d = self.to_dense()
        return d if dtype is None else d.astype(dtype)

    def __add__(self, other):
        if isinstance(other, RowSparse):
            return RowSparse(np.concatenate([self.indices, other.indices]),
                             np.concatenate([self.values, other.values]), self.shape)
        return self.to_dense() + other

    __radd__ = __add__

    def __repr__(self):
        return f"RowSparse(shape={self.shape}, rows={len(self.indices)})"


class Placed:
    """A gradient that is zero except ``values`` at ``key`` (the VJP of a slice).

    Several slices of one array (a gate vector cut into gates) accumulate into
    one buffer, instead of one zero-filled array per slice summed pairwise.
    """
    __slots__ = ("shape", "key", "values")

    def __init__(self, shape, key, values):
        self.shape, self.key, self.values = tuple(shape), key, values

    @property
    def dtype(self):
        return self.values.dtype

    def to_dense(self):
        out = np.zeros(self.shape, dtype=self.values.dtype)
        out[self.key] = self.values
        return out

    def add_into(self, buf):
        buf[self.key] += self.values

    def on_lanes(self, idx, n):
        """The same gradient over ``n`` lanes, these rows being lanes ``idx`` (lane axis first)."""
        return Placed((n,) + self.shape[1:], (idx,) + tuple(self.key[1:]), self.values)

    def __array__(self, dtype=None, copy=None):
        d = self.to_dense()
        return d if dtype is None else d.astype(dtype)


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


def densify(g):
    """A plain array for a lazily represented gradient (others unchanged)."""
    return g.to_dense() if isinstance(g, (Placed, OuterSum)) else g
