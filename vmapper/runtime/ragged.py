"""Per-lane sequences of results stored in one flat value: what a hoisted loop call returns.

``Ragged(flat, size, offsets, lengths, strides)``: lane ``j``'s item ``k`` is
``flat[offsets[j] + k * strides[j]]`` for ``k < lengths[j]``; ``flat`` is any
value over ``size`` lanes (traced or not).  Indexing by a per-lane position
gathers each lane's item.
"""
from __future__ import annotations

import numpy as np

from .values import Lanes, concat_sized, gather


class Ragged:
    __slots__ = ("flat", "size", "offsets", "lengths", "strides")
    __vmapper_varying__ = True

    def __init__(self, flat, size, offsets, lengths, strides):
        self.flat, self.size, self.offsets, self.lengths, self.strides = flat, size, offsets, lengths, strides

    def __vmapper_getitem__(self, ctx, ix):
        (i,) = ix
        k = i.data if isinstance(i, Lanes) else np.full(len(self.offsets), i)
        bad = (k < 0) | (k >= self.lengths)
        ctx.fail_where(bad, "index out of range of a hoisted loop's results", IndexError)
        return gather(self.flat, np.where(bad, 0, self.offsets + k * self.strides))

    def __vmapper_gather__(self, idx):
        return Ragged(self.flat, self.size, self.offsets[idx], self.lengths[idx], self.strides[idx])

    def __vmapper_blank__(self, n):
        return Ragged(None, 0, np.zeros(n, np.int64), np.zeros(n, np.int64), np.ones(n, np.int64))

    @staticmethod
    def _joined(a, b):
        """One flat holding ``a``'s items then ``b``'s; returns (flat, size, shift of b's offsets)."""
        if b.flat is None or b.flat is a.flat:
            return a.flat, a.size, 0
        if a.flat is None:
            return b.flat, b.size, 0
        return concat_sized([a.flat, b.flat], [a.size, b.size]), a.size + b.size, a.size

    @staticmethod
    def __vmapper_select__(mask, new, old, n):
        if not (isinstance(new, Ragged) and isinstance(old, Ragged)):
            raise TypeError("a loop's hoisted results on some lanes and another value on others")
        flat, size, shift = Ragged._joined(new, old)
        return Ragged(flat, size, np.where(mask, new.offsets, old.offsets + shift),
                      np.where(mask, new.lengths, old.lengths), np.where(mask, new.strides, old.strides))

    @staticmethod
    def __vmapper_scatter__(dest, src, idx, n):
        flat, size, shift = Ragged._joined(dest, src)
        offsets, lengths, strides = dest.offsets.copy(), dest.lengths.copy(), dest.strides.copy()
        offsets[idx] = src.offsets + shift
        lengths[idx] = src.lengths
        strides[idx] = src.strides
        return Ragged(flat, size, offsets, lengths, strides)
