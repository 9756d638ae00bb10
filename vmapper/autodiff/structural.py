"""Taped versions of the runtime's moves of values between lanes.

Masked assignment (select), compaction (gather), write-back (scatter) and the
argument concatenation of merged calls, each with its VJP, and the function
that redoes the move on raw values (for checkpointed loops).
"""
from __future__ import annotations

import numpy as np

from ..runtime import values as V
from ..runtime.values import Lanes
from .tape import record_structural, unwrap
from .rules import sum_to


def _to_arg(g, arg):
    """Reduce a gradient over materialized lanes to the shape of ``arg``."""
    if isinstance(arg, Lanes):
        return g.reshape(arg.data.shape) if g.shape != arg.data.shape else g
    return sum_to(g, np.shape(arg))


def select(mask, new, old, n):
    (rn, pn), (ro, po) = unwrap(new), unwrap(old)
    out = V.select(mask, rn, ro, n)

    def vjp(g, out, args, attrs, n_):
        m = mask.reshape(mask.shape + (1,) * (g.ndim - 1))
        zero = np.zeros((), g.dtype)
        return [_to_arg(np.where(m, g, zero), args[0]), _to_arg(np.where(m, zero, g), args[1])]
    return record_structural("select", vjp, [rn, ro], out, [pn, po], n,
                             fwd=lambda args: V.select(mask, args[0], args[1], n))


def gather(v, idx):
    raw, parent = unwrap(v)
    out = V.gather(raw, idx)
    if not isinstance(raw, Lanes):
        return v  # uniform values are the same on every lane

    def vjp(g, out, args, attrs, n_):
        full = np.zeros(args[0].data.shape, dtype=g.dtype)
        if isinstance(idx, slice):
            full[idx] += g
        else:
            np.add.at(full, idx, g)
        return [full]
    return record_structural("gather", vjp, [raw], out, [parent], fwd=lambda args: V.gather(args[0], idx))


def scatter_into(dest, src, idx, n):
    (rd, pd), (rs, ps) = unwrap(dest), unwrap(src)
    out = V.scatter_into(rd, rs, idx, n)

    def vjp(g, out, args, attrs, n_):
        gd = g.copy()
        gd[idx] = 0
        return [_to_arg(gd, args[0]), _to_arg(g[idx], args[1])]
    return record_structural("scatter", vjp, [rd, rs], out, [pd, ps], n,
                             fwd=lambda args: V.scatter_into(args[0], args[1], idx, n))


def concat(values, sizes):
    pairs = [unwrap(v) for v in values]
    raws = [p[0] for p in pairs]
    out = V.concat_sized(raws, sizes)
    if not isinstance(out, Lanes):
        return values[0]
    bounds = np.concatenate([[0], np.cumsum(sizes)])

    def vjp(g, out, args, attrs, n_):
        return [_to_arg(g[bounds[j]:bounds[j + 1]], a) for j, a in enumerate(args)]
    return record_structural("concat", vjp, raws, out, [p[1] for p in pairs],
                             fwd=lambda args: V.concat_sized(args, sizes))
