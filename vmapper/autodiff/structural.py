"""Taped versions of the runtime's moves of values between lanes.

Masked assignment (select), compaction (gather), write-back (scatter) and the
argument concatenation of merged calls, each with its VJP, and the function
that redoes the move on raw values (for checkpointed loops).
"""
from __future__ import annotations

import numpy as np

from ..runtime import values as V
from ..runtime.values import Lanes
from .tape import record_structural, unwrap, wants_parents
from .rules import sum_to
from .sparse import Placed


def _to_arg(g, arg):
    """Reduce a gradient over materialized lanes to the shape of ``arg``."""
    if isinstance(arg, Lanes):
        return g.reshape(arg.data.shape) if g.shape != arg.data.shape else g
    return sum_to(g, np.shape(arg))


def _distinct(idx):
    """Whether the lane indices are strictly increasing (so no lane repeats): a compaction's
    ``flatnonzero`` always is."""
    return (isinstance(idx, np.ndarray) and idx.ndim == 1 and idx.dtype.kind in "iu"
            and (len(idx) < 2 or bool((idx[1:] > idx[:-1]).all())))


def _uniform(out):
    return not isinstance(out, Lanes) and type(out) is not tuple


def _once(g, parents):
    """The gradient of a move that kept one uniform value, the same traced value on both sides
    (``_per_lane``): ``g`` is summed over the lanes already, and goes to it once, not per lane."""
    return [g, None] if parents[0] is not None else [None, g]


def _select_vjp(g, out, args, attrs, n_, parents):
    if _uniform(out):
        return _once(g, parents)
    mask = attrs["mask"]
    m = mask.reshape(mask.shape + (1,) * (g.ndim - 1))
    zero = np.zeros((), g.dtype)
    return [None if parents[0] is None else _to_arg(np.where(m, g, zero), args[0]),
            None if parents[1] is None else _to_arg(np.where(m, zero, g), args[1])]


def _per_lane(out, parents, n):
    """``out`` as a per-lane value where the move kept one uniform value (both operands' value,
    or the one side whose type no active lane's promotion changed) but the operands are different
    traced values: a uniform value's gradient is a sum over lanes, which could not be split
    between them."""
    if isinstance(out, Lanes) or type(out) is tuple or parents[0] == parents[1]:
        return out
    return V.materialize(out, n)


def select(mask, new, old, n):
    (rn, pn), (ro, po) = unwrap(new), unwrap(old)
    out = _per_lane(V.select(mask, rn, ro, n), (pn, po), n)
    if isinstance(out, Lanes) and out.data.dtype.kind in "biu":
        return out  # (``max(0, x)`` where every active lane kept the int: no gradient to carry)
    return record_structural("select", _select_vjp, [rn, ro], out, [pn, po], n, {"mask": mask},
                             fwd=lambda args: V.select(mask, args[0], args[1], n))


def _gather_vjp(g, out, args, attrs, n_, parents):
    idx = attrs["idx"]
    if type(idx) is slice and type(g) is np.ndarray:
        # the lanes of one merged call: placed lazily, so that the gradients of a result's
        # parts become one array laid end to end
        return [Placed(args[0].data.shape, (idx,), g)]
    full = np.zeros(args[0].data.shape, dtype=g.dtype)
    if isinstance(idx, slice) or attrs["distinct"]:  # (a compaction gathers each lane once)
        full[idx] += g
    else:
        np.add.at(full, idx, g)
    return [full]


def gather(v, idx):
    raw, parent = unwrap(v)
    out = V.gather(raw, idx)
    if not isinstance(raw, Lanes):
        return v  # uniform values are the same on every lane
    attrs = {"idx": idx, "distinct": not isinstance(idx, slice) and _distinct(idx)}
    return record_structural("gather", _gather_vjp, [raw], out, [parent], None, attrs,
                             fwd=lambda args: V.gather(args[0], idx))


def _scatter_vjp(g, out, args, attrs, n_, parents):
    if _uniform(out):
        return _once(g, parents)
    idx = attrs["idx"]
    gd = None
    if parents[0] is not None:  # (the blank a call's results are scattered into has none)
        gd = g.copy()
        gd[idx] = 0
        gd = _to_arg(gd, args[0])
    return [gd, None if parents[1] is None else _to_arg(g[idx], args[1])]


def scatter_into(dest, src, idx, n):
    (rd, pd), (rs, ps) = unwrap(dest), unwrap(src)
    out = _per_lane(V.scatter_into(rd, rs, idx, n), (pd, ps), n)
    return record_structural("scatter", _scatter_vjp, [rd, rs], out, [pd, ps], n, {"idx": idx},
                             fwd=lambda args: V.scatter_into(args[0], args[1], idx, n))


def scatter_fresh(src, idx, n):
    """``scatter_into(blank_like(src, n), src, idx, n)`` for a traced per-lane array: zeros
    on the other lanes, made in one pass (no blank to copy).  The blank has no gradient,
    so the entry keeps none (``args[0]`` is None)."""
    raw, parent = unwrap(src)
    return record_structural("scatter", _scatter_vjp, [None, raw], V.scatter_blank(raw, idx, n), [None, parent],
                             n, {"idx": idx}, fwd=lambda args: V.scatter_blank(args[1], idx, n))


def _concat_vjp(g, out, args, attrs, n_, parents):
    bounds = attrs["bounds"]
    return [None if p is None else _to_arg(g[bounds[j]:bounds[j + 1]], a)
            for j, (a, p) in enumerate(zip(args, parents))]


def concat(values, sizes):
    pairs = [unwrap(v) for v in values]
    raws = [p[0] for p in pairs]
    out = V.concat_sized(raws, sizes)
    if not isinstance(out, Lanes):
        return values[0]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return record_structural("concat", _concat_vjp, raws, out, [p[1] for p in pairs], None,
                             {"bounds": bounds}, fwd=lambda args: V.concat_sized(args, sizes))


for _rule in (_select_vjp, _gather_vjp, _scatter_vjp, _concat_vjp):
    wants_parents(_rule)
