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
