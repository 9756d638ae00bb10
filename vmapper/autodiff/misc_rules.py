"""VJP rules of the reshapes, gathers, roundings and traces (:mod:`vmapper.primitives.array_misc`,
and ``round(x, ndigits)`` of :mod:`vmapper.primitives.scalar_ops`).

* ``np.reshape`` (``x.reshape()``): ``g`` reshaped back to the input's shape, in the same order;
* ``np.take`` (``x.take()``): ``g`` scatter-added back into zeros of the input's shape at the
  indices the gather read (mapped as numpy mapped them: negatives wrapped, ``"wrap"`` and
  ``"clip"`` applied), so an element taken twice gets both gradients; a shared array's
  gradient sums over the lanes.  The indices get none;
* ``np.trace`` (``x.trace()``): ``g`` placed on the diagonal the trace summed, zeros elsewhere;
* ``np.round``/``np.around`` (``x.round()``) and ``round(x, ndigits)``: derivative 0, a
  zero-derivative point like ``floor`` (the result is piecewise constant in ``x``).

``np.count_nonzero`` (an int) and ``math.isclose`` (a bool) have no gradient.  The norms along
an axis keep their rule next to the primitive (``np.linalg.norm`` in ``primitives/array_ops.py``).
No JVP rules: these operations never run inside a kernel.
"""
from __future__ import annotations

import numpy as np

from ..primitives import PRIMITIVES
from ..primitives.array_misc import (MISC_METHODS, bind, diagonal_index, gather, lane_take_indices, reshape_data,
                                     reshape_order, take_layout, take_mode)
from ..runtime.values import Lanes
from .array_rules import METHOD_VJP_NAMES, _KeyCtx, _method_vjp as _array_method_vjp
from .rules import defvjp
from .scan_rules import _as_array, _lane, _to_arg


class _QuietCtx(_KeyCtx):
    """A context to rebuild a call's plan in a rule: the forward call raised any error already;
    an inactive lane's index out of range reads 0 again."""

    def type_error(self, *a, **k):
        return RuntimeError("type error in backward")


def _bound(name, args, attrs):
    b = bind(name, args, attrs.get("kw") or ())
    if isinstance(b, str):  # the forward call bound; this cannot happen
        raise TypeError(b)
    return b


def _float(v, n):
    return _as_array(v, n).dtype.kind in "fc"


# ---- reshape ----------------------------------------------------------------------------------------

def _reshape_back(g, x, n, order):
    """``g`` (shaped like the reshape's result) in the shape of operand ``x``, same order."""
    lane = _lane(x)
    xd = _as_array(x, n)
    shape = xd.shape[1:] if lane else xd.shape
    return _to_arg(reshape_data(np.asarray(g), lane, shape, reshape_order(order)), x, n)


def _reshape_vjp(g, out, args, attrs, n):
    b = _bound("reshape", args, attrs)
    x = b["a"]
    if not _float(x, n):
        return [None] * len(args)
    return [_reshape_back(g, x, n, b["order"])] + [None] * (len(args) - 1)


defvjp("np.reshape", _reshape_vjp)


def _transpose_vjp(g, out, args, attrs, n):
    """``g`` transposed back: the method's rule, on the bound arguments."""
    b = _bound("transpose", args, attrs)
    axes = () if b["axes"] is None else (b["axes"],)
    if not _float(b["a"], n):
        return [None] * len(args)
    x = _as_array(b["a"], n)
    back = _array_method_vjp(g, out, [Lanes(x, False) if _lane(b["a"]) else x, *axes], {"name": "transpose"}, n)[0]
    return [_to_arg(back, b["a"], n)] + [None] * (len(args) - 1)


defvjp("np.transpose", _transpose_vjp)


def _reshape_method_vjp(g, out, args, attrs, n):
    x = args[0]
    kw = attrs.get("kw") or ()
    opts = dict(zip(kw, args[len(args) - len(kw):]))
    if not _float(x, n):
        return [None] * len(args)
    return [_reshape_back(g, x, n, opts.get("order", "C"))] + [None] * (len(args) - 1)


# ---- take -------------------------------------------------------------------------------------------

def _take_vjp(g, out, args, attrs, n):
    b = _bound("take", args, attrs)
    a, ind = b["a"], b["indices"]
    if not _float(a, n):
        return [None] * len(args)
    ctx = _QuietCtx(n)
    lane_a, lane_idx = _lane(a), _lane(ind)
    A = _as_array(a, n)
    shape = A.shape[1:] if lane_a else A.shape
    mode = take_mode(ctx, b["mode"])
    axis = b["axis"]
    if axis is not None:
        axis = int(axis) % len(shape)
    size = int(np.prod(shape, dtype=np.int64)) if axis is None else shape[axis]
    if lane_idx:
        idx = lane_take_indices(ctx, _as_array(ind, n), size, mode, 0 if axis is None else axis)
    else:
        idx = np.take(np.arange(size), ind, mode=mode)
    work, ax = take_layout(A, lane_a, axis)
    ge = np.asarray(g)
    if lane_a or lane_idx:
        ge = ge.reshape(np.shape(gather(work, lane_a, idx, lane_idx, ax, n)))
    gx = np.zeros(work.shape, dtype=np.result_type(work.dtype, ge.dtype))
    _scatter_add(gx, lane_a, idx, lane_idx, ax, ge, n)
    gx = gx.reshape(A.shape)
    res = _to_arg(gx, a, n)
    kw = tuple(attrs.get("kw") or ())
    names = ["a", "indices", "axis", "out", "mode"][:len(args) - len(kw)] + list(kw)
    return [res if k == "a" else None for k in names]


def _scatter_add(gx, lane_a, idx, lane_idx, ax, ge, n):
    """The adjoint of :func:`~vmapper.primitives.array_misc.gather`: ``ge`` added into ``gx``."""
    if not lane_idx:
        # take(A, idx, axis=ax): ge has idx's axes at ax
        gm = np.moveaxis(gx, ax, 0)
        k = np.ndim(idx)
        gem = np.moveaxis(ge, tuple(range(ax, ax + k)), tuple(range(k)))
        np.add.at(gm, idx, gem)
        return
    k = idx.ndim - 1  # per-lane index axes
    if not lane_a:  # shared array: ge is (lanes, *pre, *indices, *post) with pre = ax axes
        gm = np.moveaxis(gx, ax, 0)  # (size, *pre, *post)
        gem = np.moveaxis(ge, tuple(range(1 + ax, 1 + ax + k)), tuple(range(1, 1 + k)))
        np.add.at(gm, idx, gem)  # idx (lanes, *indices) indexes gm's first axis
        return
    pre = ax - 1
    gm = np.moveaxis(gx, ax, 1)  # (lanes, size, *pre, *post)
    gem = np.moveaxis(ge, tuple(range(1 + pre, 1 + pre + k)), tuple(range(1, 1 + k)))
    lanes = np.arange(n).reshape((n,) + (1,) * k)
    np.add.at(gm, (lanes, idx), gem)


defvjp("np.take", _take_vjp)


# ---- trace --------------------------------------------------------------------------------------------------

def _trace_vjp(g, out, args, attrs, n):
    b = _bound("trace", args, attrs)
    x = b["a"]
    if not _float(x, n):
        return [None] * len(args)
    lane = _lane(x)
    xd = _as_array(x, n)
    nd = xd.ndim - lane
    offset = int(b["offset"])
    a1, a2 = (int(b[k]) % nd + lane for k in ("axis1", "axis2"))
    rows, cols = diagonal_index(xd.shape, offset, a1, a2)
    ge = np.asarray(g)
    gx = np.zeros(xd.shape, dtype=np.result_type(xd.dtype, ge.dtype))
    gm = np.moveaxis(gx, (a1, a2), (-2, -1))  # a view: writes land in gx
    gm[..., rows, cols] = ge[..., None]
    return [_to_arg(gx, x, n)] + [None] * (len(args) - 1)


defvjp("np.trace", _trace_vjp)


# ---- round: derivative 0 -----------------------------------------------------------------------------------

def _zero_vjp(g, out, args, attrs, n):
    """Derivative 0 in the number rounded (the first operand); no gradient for the others."""
    x = args[0]
    if not _float(x, n):
        return [None] * len(args)
    xd = _as_array(x, n)
    return [_to_arg(np.zeros(xd.shape, dtype=xd.dtype), x, n)] + [None] * (len(args) - 1)


defvjp("np.round", _zero_vjp)
defvjp("round", _zero_vjp)  # round(x, ndigits) of floats (round(x) is an int: no gradient)


# ---- methods: x.reshape(), x.take(), x.round(), x.trace() -------------------------------------------------------

def _method_rule(rule):
    def method(g, out, args, attrs, n):
        return rule(g, out, args, {"kw": attrs.get("kw") or ()}, n)
    return method


_METHOD_RULES = {"reshape": _reshape_method_vjp, "take": _method_rule(_take_vjp),
                 "round": _method_rule(_zero_vjp), "trace": _method_rule(_trace_vjp)}
_other_methods = PRIMITIVES["method"].vjp


def _method_vjp(g, out, args, attrs, n):
    rule = _METHOD_RULES.get(attrs["name"])
    if rule is None:
        return _other_methods(g, out, args, attrs, n)
    return rule(g, out, args, attrs, n)


assert set(_METHOD_RULES) == set(MISC_METHODS)
METHOD_VJP_NAMES.update(_METHOD_RULES)
defvjp("method", _method_vjp)
