"""VJP rules of the scans, sorts and ``np.outer`` (:mod:`vmapper.primitives.array_scans`).

* ``cumsum``: the cumulative sum of ``g`` taken from the end of the axis;
* ``cumprod``: ``revcumsum(g * out) / x`` before the first zero of the axis; at the first
  zero ``z``, ``prod(x[:z]) * sum_{i >= z} g_i prod(x[z+1:i+1])``; 0 after it (every
  product there holds the zero twice, once besides the element itself), so a zero
  element never divides;
* ``diff``: the adjoint of differencing, ``-diff(g)`` of ``g`` padded with a zero at both
  ends, ``n`` times; ``prepend``/``append`` get their part of it;
* ``sort``: ``g`` scattered back through the stable ``argsort`` permutation (tied
  elements get the gradient in their order, one choice of subgradient);
* ``outer``: ``g @ b`` and ``g.T @ a`` (summed over the lanes for a shared operand).

``argsort`` has an integer result and no rule.  The methods ``x.cumsum()`` and
``x.cumprod()`` use the functions' rules: the rule of ``method`` is chained, so the other
methods keep theirs.  No JVP rules: like the reductions and joins, these operations never
run inside a kernel.
"""
from __future__ import annotations

import numpy as np

from ..primitives import PRIMITIVES
from ..primitives.array_scans import NOT_GIVEN, SCAN_METHODS, SIGNATURES, bind, layout, outer_operands
from ..primitives.array_ops import _lane_axis
from ..runtime.values import Lanes
from .array_rules import METHOD_VJP_NAMES, _AxisCtx, _fit
from .rules import defvjp, sum_to


def _raw(v):
    return v.data if isinstance(v, Lanes) else np.asarray(v)


def _is_float(v):
    return _raw(v).dtype.kind in "fc"


def _lane(v):
    """Whether ``v`` is per lane: a Lanes, or a list or tuple holding one."""
    return isinstance(v, Lanes) or isinstance(v, (tuple, list)) and any(_lane(x) for x in v)


def _as_array(v, n):
    """The raw array a primitive computed with for operand ``v`` (lists stacked per lane)."""
    if isinstance(v, Lanes):
        return v.data
    if isinstance(v, (tuple, list)) and _lane(v):
        items = [x.data if isinstance(x, Lanes) else np.broadcast_to(np.asarray(x), (n,)) for x in v]
        return np.stack(items, axis=1)
    return np.asarray(v)


def _to_arg(gx, v, n):
    """The gradient for operand ``v`` from ``gx``, shaped like the array computed with."""
    if isinstance(v, Lanes):
        return gx.reshape(v.data.shape) if _is_float(v) else None
    if isinstance(v, (tuple, list)):
        if _lane(v):  # np.cumsum([a, b]): one gradient per item
            return tuple(_fit(gx[:, k], x) for k, x in enumerate(v))
        return None if np.asarray(v).dtype.kind not in "fc" else gx.reshape(np.shape(v))
    return gx.reshape(np.shape(v)) if _is_float(v) else None


def _axis(b, lane, nd):
    """The axis of the raw array that per-sample (or uniform) axis ``b['axis']`` stands for."""
    if b["axis"] is None:
        return None
    if lane:
        return _lane_axis(b["axis"], nd, _AxisCtx())
    return b["axis"]


def _flip_cumsum(g, ax):
    return np.flip(np.cumsum(np.flip(g, ax), axis=ax), ax)


def _work(b, x, n, scalar_as_vector=True):
    """``(xd, work, ax, lane)``: the input array, the array the scan ran over, and its axis."""
    lane = _lane(x)
    xd = _as_array(x, n)
    nd = max(xd.ndim - lane, 1) if scalar_as_vector else xd.ndim - lane
    work, ax = layout(xd, lane, _axis(b, lane, nd), scalar_as_vector)
    return xd, work, ax, lane


def _bound(name, args, attrs):
    b = bind(name, args, attrs.get("kw") or ())
    if isinstance(b, str):  # the forward call bound; this cannot happen
        raise TypeError(b)
    return b


# ---- cumsum ---------------------------------------------------------------------------------

def _cumsum_vjp(g, out, args, attrs, n):
    b = _bound("cumsum", args, attrs)
    x = args[0]
    xd, work, ax, lane = _work(b, x, n)
    ge = np.asarray(g).reshape(work.shape)
    gx = _flip_cumsum(ge, ax)
    if xd.dtype.kind in "fc":
        gx = gx.astype(np.result_type(xd.dtype, ge.dtype), copy=False)
    return [_to_arg(gx, x, n)] + [None] * (len(args) - 1)


defvjp("np.cumsum", _cumsum_vjp)


# ---- cumprod ------------------------------------------------------------------------------------

def cumprod_grad(x, out, g):
    """The gradient of ``out = cumprod(x)`` along the last axis, zero elements included."""
    m = x.shape[-1]
    if m == 0:
        return np.zeros(x.shape, dtype=np.result_type(x.dtype, g.dtype))
    zero = x == 0
    has_zero = zero.any(axis=-1)
    first = np.where(has_zero, zero.argmax(axis=-1), m)[..., None]  # m: no zero
    pos = np.arange(m)
    before = pos < first
    with np.errstate(divide="ignore", invalid="ignore"):
        gx = np.where(before, _flip_cumsum(g * out, -1) / np.where(before, x, 1), 0)
    if has_zero.any():
        # at the first zero z: prod(x[:z]) * sum_{i >= z} g_i * prod(x[z+1 : i+1])
        after = np.cumprod(np.where(pos <= first, np.ones((), x.dtype), x), axis=-1)
        tail = np.sum(np.where(pos >= first, g * after, 0), axis=-1, keepdims=True)
        head = np.prod(np.where(before, x, np.ones((), x.dtype)), axis=-1, keepdims=True)
        gx = np.where(pos == first, head * tail, gx)
    return gx


def _cumprod_vjp(g, out, args, attrs, n):
    b = _bound("cumprod", args, attrs)
    x = args[0]
    xd, work, ax, lane = _work(b, x, n)
    if xd.dtype.kind not in "fc":
        return [None] * len(args)
    od = _raw(out)
    ge = np.asarray(g).reshape(od.shape)
    xw = work.astype(od.dtype, copy=False)  # (dtype=: the product ran in the result's type)
    gx = np.moveaxis(cumprod_grad(np.moveaxis(xw, ax, -1), np.moveaxis(od, ax, -1), np.moveaxis(ge, ax, -1)), -1, ax)
    gx = gx.astype(np.result_type(xd.dtype, ge.dtype), copy=False)
    return [_to_arg(gx, x, n)] + [None] * (len(args) - 1)


defvjp("np.cumprod", _cumprod_vjp)


# ---- diff -----------------------------------------------------------------------------------------

def diff_adjoint(g, ax, order):
    """The adjoint of ``np.diff(., n=order, axis=ax)`` applied to ``g``."""
    for _ in range(order):
        pad = [(0, 0)] * g.ndim
        pad[ax] = (1, 1)
        g = -np.diff(np.pad(g, pad), axis=ax)
    return g


def _diff_vjp(g, out, args, attrs, n):
    b = _bound("diff", args, attrs)
    a = b["a"]
    parts = [k for k in ("prepend", "a", "append") if b[k] is not NOT_GIVEN]
    lane = any(_lane(b[k]) for k in parts)
    od = _raw(out)
    nd = od.ndim - lane
    ax = _lane_axis(b["axis"], nd, _AxisCtx()) if lane else b["axis"]
    ax %= od.ndim
    gfull = diff_adjoint(np.asarray(g).reshape(od.shape), ax, int(b["n"]))
    ad = _as_array(a, n)
    if lane and not _lane(a):
        ad = np.broadcast_to(ad, (n,) + ad.shape)
    grads = {}
    start = 0
    for k in parts:
        v = b[k]
        vd = ad if k == "a" else _as_array(v, n)
        shape = vd.shape[1:] if lane and (k == "a" or _lane(v)) else vd.shape  # per sample
        size = shape[ax - lane] if len(shape) == nd else 1  # (a scalar: one element along the axis)
        piece = np.take(gfull, np.arange(start, start + size), axis=ax)
        start += size
        grads[k] = _diff_part_grad(piece, v, lane, n, k == "a")
    kw = tuple(attrs.get("kw") or ())
    order = SIGNATURES["diff"][0][:len(args) - len(kw)] + list(kw)
    return [grads.get(k) for k in order]


def _diff_part_grad(piece, v, lane, n, is_array):
    """The gradient of one concatenated part of ``np.diff`` (a scalar one was broadcast)."""
    vd = _as_array(v, n)
    if vd.dtype.kind not in "fc":
        return None
    if _lane(v):
        if vd.ndim == 1 and not is_array:  # a per-sample scalar, broadcast along the other axes
            return _to_arg(piece.reshape(n, -1).sum(axis=1), v, n)
        return _to_arg(piece, v, n)
    if lane:  # a shared operand of per-lane differences: summed over the lanes
        piece = piece.sum(axis=0)
    return sum_to(piece, vd.shape) if vd.ndim else np.asarray(piece.sum(), dtype=piece.dtype)


defvjp("np.diff", _diff_vjp)


# ---- sort ----------------------------------------------------------------------------------------------

def _sort_vjp(g, out, args, attrs, n):
    b = _bound("sort", args, attrs)
    x = args[0]
    xd, work, ax, lane = _work(b, x, n, scalar_as_vector=False)
    if xd.dtype.kind not in "fc":
        return [None] * len(args)
    perm = np.argsort(work, axis=ax, kind="stable")
    ge = np.asarray(g).reshape(work.shape)
    gx = np.zeros(work.shape, dtype=np.result_type(xd.dtype, ge.dtype))
    np.put_along_axis(gx, perm, ge, axis=ax)
    return [_to_arg(gx, x, n)] + [None] * (len(args) - 1)


defvjp("np.sort", _sort_vjp)


# ---- outer ------------------------------------------------------------------------------------------------

def _outer_vjp(g, out, args, attrs, n):
    b = _bound("outer", args, attrs)
    a, c = b["a"], b["b"]
    la, lc = _lane(a), _lane(c)
    A = outer_operands(Lanes(_as_array(a, n)) if la else a, n)
    B = outer_operands(Lanes(_as_array(c, n)) if lc else c, n)
    ge = np.asarray(g).reshape((-1, A.shape[1], B.shape[1]))  # (lanes or 1, |a|, |b|)
    ga = np.einsum("lmk,lk->lm", ge, np.broadcast_to(B, (ge.shape[0], B.shape[1])))
    gb = np.einsum("lmk,lm->lk", ge, np.broadcast_to(A, (ge.shape[0], A.shape[1])))
    res = []
    for v, gv, lv in ((a, ga, la), (c, gb, lc)):
        if not lv:
            gv = gv.sum(axis=0)  # a shared operand: summed over the lanes
        res.append(_to_arg(gv, v, n))
    return res + [None] * (len(args) - 2)


defvjp("np.outer", _outer_vjp)


# ---- methods: x.cumsum(), x.cumprod() ------------------------------------------------------------------------

_METHOD_RULES = {"cumsum": _cumsum_vjp, "cumprod": _cumprod_vjp}
_other_methods = PRIMITIVES["method"].vjp


def _method_vjp(g, out, args, attrs, n):
    rule = _METHOD_RULES.get(attrs["name"])
    if rule is None:
        return _other_methods(g, out, args, attrs, n)
    return rule(g, out, args, {"kw": attrs.get("kw") or ()}, n)


assert set(_METHOD_RULES) <= set(SCAN_METHODS)
METHOD_VJP_NAMES.update(_METHOD_RULES)
defvjp("method", _method_vjp)
