"""Array primitives that reshape, gather, count, round and take traces of per-sample arrays:
``np.reshape``, ``np.take``, ``np.count_nonzero``, ``np.round``/``np.around`` and ``np.trace``,
with the methods ``x.reshape()``, ``x.take()``, ``x.round()`` and ``x.trace()``.

Each runs numpy's own function once over the batched array, along the data axes that stand
for the per-sample axes (per-sample axis ``k`` is data axis ``k + 1``; negative axes count
from the end of the per-sample shape), so every lane gets exactly the per-sample call's
result and dtype:

* ``np.reshape(a, shape, order)``: the per-sample shape (``-1`` resolved by numpy against
  the per-sample size) with the lane axis in front; ``order="F"`` reshapes each lane's
  transposed array.  ``order="A"`` depends on the per-sample array's memory layout, which
  the batched run does not keep: it is not supported, nor is ``copy=False``;
* ``np.take(a, indices, axis, mode)``: uniform indices are one ``np.take`` over the lanes;
  per-sample indices (one integer or an integer array per lane) gather each lane's own
  elements.  An active lane with an index out of range raises :class:`LaneError` naming the
  lane and the index (``mode="raise"``, as ``x[i]`` does); ``"wrap"`` and ``"clip"`` map it
  as numpy does;
* ``np.count_nonzero(a, axis, keepdims)``: numpy's count, an int64 per lane (an array with
  ``axis``);
* ``np.round(a, decimals)`` (``np.around``): numpy's ``rint(a * 10**decimals) / 10**decimals``,
  elementwise and so bitwise the per-sample call (a Python float comes back a ``float64``,
  as numpy returns it);
* ``np.trace(a, offset, axis1, axis2, dtype)``: each lane's diagonal, made contiguous, summed by
  ``np.add.reduce`` as the per-sample call sums its diagonal (pairwise, in the same order).

Errors are the per-sample call's: a bad shape or argument raises numpy's own message (numpy
checks it on an empty stand-in for the per-sample array), an axis out of range names the
axis and the per-sample dimension.  Only the array arguments (``a``; ``indices`` of
``np.take``) may differ per sample.  A uniform call is numpy's, once.
"""
from __future__ import annotations

import numpy as np

from ..runtime.values import Lanes
from .array_ops import METHODS, _contains_lanes, _lane_axis, normalize_lane_indices
from .array_scans import _varying, check_int
from .registry import register
from .signatures import bind_call, check_binding

#: ``name: (parameters, defaults, positional-only count, keyword-only parameters)``.
SIGNATURES = {
    "reshape": (["a", "shape", "order", "copy"], {"order": "C", "copy": None}, 1, ("copy",)),
    "take": (["a", "indices", "axis", "out", "mode"], {"axis": None, "out": None, "mode": "raise"}, 0, ()),
    "count_nonzero": (["a", "axis", "keepdims"], {"axis": None, "keepdims": False}, 0, ("keepdims",)),
    "round": (["a", "decimals", "out"], {"decimals": 0, "out": None}, 0, ()),
    "trace": (["a", "offset", "axis1", "axis2", "dtype", "out"],
              {"offset": 0, "axis1": 0, "axis2": 1, "dtype": None, "out": None}, 0, ()),
    "transpose": (["a", "axes"], {"axes": None}, 0, ()),
}
#: The arguments that may hold per-sample values.
VARYING = {"reshape": ("a",), "take": ("a", "indices"), "count_nonzero": ("a",), "round": ("a",),
           "trace": ("a",), "transpose": ("a",)}


def bind(name, args, kwnames):
    """``{parameter: value}`` for a call of ``np.<name>``, or the ``TypeError`` message."""
    return bind_call(name, args, kwnames, *SIGNATURES[name])


def bound(ctx, name, args, attrs):
    return check_binding(ctx, name, bind(name, args, attrs.get("kw") or ()), VARYING[name])


def _uniform(ctx, name, b):
    """The call on uniform arguments: numpy's, once (its errors as the per-sample run's)."""
    names, defaults = SIGNATURES[name][:2]
    kw = {k: b[k] for k in names[1:] if k not in defaults or b[k] is not defaults[k]}
    fn = getattr(np, name)
    return ctx.uniform(lambda: fn(b["a"], **kw))


def stand_in(sample_shape, dtype):
    """An array of the per-sample shape and dtype that holds no data (every stride 0): numpy
    checks a call's arguments on it and raises exactly the per-sample call's errors."""
    return np.broadcast_to(np.zeros((), dtype), sample_shape)


def numpy_check(ctx, fn):
    """``fn()``; numpy's ValueError, TypeError or IndexError raised for every active lane."""
    try:
        return fn()
    except (ValueError, TypeError, IndexError) as exc:  # (AxisError is a ValueError and an IndexError)
        raise ctx.lane_error_all(str(exc), type(exc)) from None


def axes_of(ctx, axis, sample_ndim):
    """The data axes (non-negative) that per-sample ``axis`` (an int or a tuple) stands for."""
    if isinstance(axis, tuple):
        return tuple(axes_of(ctx, a, sample_ndim) for a in axis)
    return _lane_axis(check_int(ctx, axis), sample_ndim, ctx) % (sample_ndim + 1)


# ---- reshape -----------------------------------------------------------------------------------

def reshape_data(data, lane, shape, order):
    """``data`` reshaped to per-sample (or uniform) ``shape`` in ``order`` ("C" or "F")."""
    lead = data.shape[:1] if lane else ()
    shape = tuple(shape)
    if order == "C":
        return data.reshape(lead + shape)
    # a.reshape(s, order="F") is a.T.reshape(s[::-1]).T, for each lane
    k = len(lead)
    t = data.transpose(tuple(range(k)) + tuple(range(data.ndim - 1, k - 1, -1)))
    r = t.reshape(lead + shape[::-1])
    return r.transpose(tuple(range(k)) + tuple(range(r.ndim - 1, k - 1, -1)))


def reshape_order(order):
    """"C" or "F" for an ``order`` numpy accepted, None for one the batched run cannot follow."""
    return {"C": "C", "F": "F", "c": "C", "f": "F", None: "C"}.get(order) if isinstance(order, (str, type(None))) \
        else None


def reshape_lanes(ctx, x, shape, order="C", copy=None):
    """Per-sample ``np.reshape(x, shape, order=order, copy=copy)`` of per-lane ``x``."""
    d = x.data
    res = numpy_check(ctx, lambda: np.reshape(stand_in(d.shape[1:], d.dtype), shape, order=order))
    o = reshape_order(order)
    if o is None:
        raise ctx.unsupported(f"np.reshape() with order={order!r}",
                              hint="the per-sample array's memory layout decides it; use 'C' or 'F'")
    if copy is not None and not copy:
        raise ctx.unsupported("np.reshape() with copy=False",
                              hint="whether the per-sample array needs a copy depends on its memory layout")
    out = reshape_data(d, True, res.shape, o)
    return Lanes(out.copy() if copy else out, False)


@register("np.reshape", callables=(np.reshape,))
def _reshape(ctx, args, attrs):
    b = bound(ctx, "reshape", args, attrs)
    if not _contains_lanes(b["a"]):
        kw = {k: b[k] for k in ("order", "copy") if b[k] is not SIGNATURES["reshape"][1][k]}
        return ctx.uniform(lambda: np.reshape(b["a"], b["shape"], **kw))
    return reshape_lanes(ctx, _varying(ctx, b["a"]), b["shape"], b["order"], b["copy"])


@register("np.transpose", callables=(np.transpose,))
def _transpose(ctx, args, attrs):
    """``np.transpose(a, axes)``: ``a.transpose(axes)``'s rule (the batch axis stays first)."""
    b = bound(ctx, "transpose", args, attrs)
    if not _contains_lanes(b["a"]):
        return _uniform(ctx, "transpose", b)
    return METHODS["transpose"](ctx, _varying(ctx, b["a"]), () if b["axes"] is None else (b["axes"],), ())


def _reshape_method(ctx, v, args, kw):
    """``x.reshape(2, 3)``, ``x.reshape((2, 3), order="F")``: np.reshape's rule."""
    npos = len(args) - len(kw)
    opts = dict(zip(kw, args[npos:]))
    for k in opts:
        if k not in ("order", "copy"):
            raise ctx.type_error(f"'{k}' is an invalid keyword argument for this function")
    if not npos:
        raise ctx.type_error("reshape() takes exactly 1 argument (0 given)")
    shape = args[0] if npos == 1 else tuple(args[:npos])
    if _contains_lanes(shape):
        raise ctx.unsupported("reshape() with a per-sample shape")
    return reshape_lanes(ctx, v, shape, opts.get("order", "C"), opts.get("copy"))


# ---- take ------------------------------------------------------------------------------------------

def take_mode(ctx, mode):
    """``mode`` as "raise", "wrap" or "clip" (numpy's ValueError for anything else)."""
    numpy_check(ctx, lambda: np.take(np.zeros(1), 0, mode=mode))
    try:  # (numpy also takes None and its enum values: ask it what the mode does)
        probe = np.take(np.arange(3), [-4, 3], mode=mode)
    except IndexError:
        return "raise"
    return "wrap" if probe[0] == 2 else "clip"


def take_layout(data, lane, axis):
    """``(array, axis)``: the array the gather runs on (flattened per sample for ``axis=None``)
    and its data axis (the per-sample axis, after the lane axis for a per-lane array)."""
    lead = data.shape[:1] if lane else ()
    if axis is None:
        return data.reshape(lead + (-1,)), len(lead)
    return data, axis + len(lead)


def lane_take_indices(ctx, ind, size, mode, axis):
    """Per-lane integer indices (an array, lane axis first) mapped into ``[0, size)`` as the
    per-sample ``np.take`` maps them.  ``mode="raise"``: an active lane with an index out of
    range raises :class:`LaneError` (its first such index shown); inactive lanes read 0."""
    d = ind.astype(np.int64, copy=False)
    if size == 0:
        if d.ndim > 1 and d.shape[1:] and 0 in d.shape[1:]:
            return d
        raise ctx.lane_error_all("cannot do a non-empty take from an empty axes.", IndexError)
    if mode == "wrap":
        return np.mod(d, size)
    if mode == "clip":
        return np.clip(d, 0, size - 1)
    if d.ndim == 1:  # one index per lane: x[i]'s own check and message
        ix = (slice(None),) * axis + (Lanes(d, False),)
        return normalize_lane_indices(ctx, ix, (1,) * axis + (size,))[axis]
    if not d.size or 0 <= d.min() and d.max() < size:
        return d
    bad = (d < -size) | (d >= size)
    flat = bad.reshape(len(d), -1)
    first = np.where(bad, d, 0).reshape(len(d), -1)[np.arange(len(d)), flat.argmax(axis=1)]
    ctx.fail_where(flat.any(axis=1), f"index out of range for axis {axis} with size {size}", IndexError,
                   values=first)
    return np.where(bad, 0, np.where(d < 0, d + size, d))


def gather(A, lane_a, idx, lane_idx, ax, n):
    """``take(A, idx, axis=ax)`` per lane: ``A`` and ``idx`` per lane (lane axis first) or uniform;
    ``idx`` already in range.  Returns the per-lane result (lane axis first)."""
    if not lane_idx:
        return np.take(A, idx, axis=ax)
    if not lane_a:  # a shared array, per-lane indices: the lane axis of idx lands at ax
        return np.moveaxis(np.take(A, idx, axis=ax), ax, 0)
    pre = ax - 1
    Am = np.moveaxis(A, ax, 1)  # (lanes, size, *pre, *post)
    lanes = np.arange(n).reshape((n,) + (1,) * (idx.ndim - 1))
    G = Am[lanes, idx]  # (lanes, *indices, *pre, *post)
    k = idx.ndim - 1
    return np.moveaxis(G, tuple(range(1 + k, 1 + k + pre)), tuple(range(1, 1 + pre)))


def take_plan(ctx, b):
    """Everything a per-sample ``np.take`` needs: ``(A, lane_a, idx, lane_idx, ax)`` with
    ``idx`` mapped into range (errors raised here)."""
    a, ind = b["a"], b["indices"]
    lane_a, lane_idx = _contains_lanes(a), _contains_lanes(ind)
    A = _varying(ctx, a).data if lane_a else np.asarray(a)
    shape = A.shape[1:] if lane_a else A.shape
    mode = take_mode(ctx, b["mode"])
    axis = b["axis"]
    if axis is not None:
        axis = check_int(ctx, axis)
        _lane_axis(axis, len(shape), ctx)  # (AxisError out of range)
        axis %= len(shape)
    size = int(np.prod(shape, dtype=np.int64)) if axis is None else shape[axis]
    if lane_idx:
        I = _varying(ctx, ind).data
        if I.dtype.kind not in "biu":
            raise ctx.unsupported(f"np.take() with per-sample {I.dtype.name} indices",
                                  hint="per-sample indices must be integers")
        idx = lane_take_indices(ctx, I, size, mode, 0 if axis is None else axis)
    else:
        # the per-sample call's own errors (index out of bounds, float arrays...), then the
        # indices mapped by numpy itself
        numpy_check(ctx, lambda: np.take(stand_in(shape, A.dtype), ind, axis=axis, mode=mode))
        idx = np.take(np.arange(size), ind, mode=mode)
    work, ax = take_layout(A, lane_a, axis)
    return work, lane_a, idx, lane_idx, ax


@register("np.take", callables=(np.take,), may_fail=True)
def _take(ctx, args, attrs):
    b = bound(ctx, "take", args, attrs)
    if not any(_contains_lanes(b[k]) for k in VARYING["take"]):
        return _uniform(ctx, "take", b)
    A, lane_a, idx, lane_idx, ax = take_plan(ctx, b)
    return Lanes(np.asarray(gather(A, lane_a, idx, lane_idx, ax, ctx.n)), False)


# ---- count_nonzero ------------------------------------------------------------------------------------

#: Whether ``np.count_nonzero(a)`` (no axis) returns a Python int (numpy 1.x) or an np.intp (2.x).
_COUNT_IS_INT = type(np.count_nonzero(np.zeros(1))) is int


@register("np.count_nonzero", callables=(np.count_nonzero,))
def _count_nonzero(ctx, args, attrs):
    b = bound(ctx, "count_nonzero", args, attrs)
    if not _contains_lanes(b["a"]):
        return _uniform(ctx, "count_nonzero", b)
    d = _varying(ctx, b["a"]).data
    n, nd = d.shape[0], d.ndim - 1
    if b["axis"] is None:
        out = np.count_nonzero(d.reshape(n, -1), axis=1)
        if b["keepdims"]:
            return Lanes(out.reshape((n,) + (1,) * nd), False)
        return Lanes(out.astype(np.int64) if _COUNT_IS_INT else out, _COUNT_IS_INT)
    ax = axes_of(ctx, b["axis"], nd)
    return Lanes(np.asarray(numpy_check(ctx, lambda: np.count_nonzero(d, axis=ax, keepdims=bool(b["keepdims"])))),
                 False)


# ---- round, around --------------------------------------------------------------------------------------

@register("np.round", callables=(np.round, np.around))
def _round(ctx, args, attrs):
    b = bound(ctx, "round", args, attrs)
    if not _contains_lanes(b["a"]):
        return _uniform(ctx, "round", b)
    d = _varying(ctx, b["a"]).data
    dec = b["decimals"]
    numpy_check(ctx, lambda: np.round(np.zeros(1, d.dtype), dec))  # decimals: numpy's checks
    return Lanes(np.asarray(np.round(d, dec)), False)


# ---- trace ------------------------------------------------------------------------------------------------

def trace_axes(ctx, b, sample_ndim):
    """``(offset, axis1, axis2)``: the data axes (lane axis 0) of a per-sample ``np.trace``."""
    offset = check_int(ctx, b["offset"], "offset")
    if sample_ndim < 2:
        raise ctx.lane_error_all("diag requires an array of at least two dimensions", ValueError)
    a1, a2 = (axes_of(ctx, b[k], sample_ndim) for k in ("axis1", "axis2"))
    if a1 == a2:
        raise ctx.lane_error_all("axis1 and axis2 cannot be the same", ValueError)
    return offset, a1, a2


def diagonal_index(shape, offset, a1, a2):
    """``(rows, cols)``: the positions along axes ``a1``, ``a2`` of ``shape`` that the diagonal
    with ``offset`` holds (what ``np.diagonal`` reads)."""
    r0, c0 = max(-offset, 0), max(offset, 0)
    k = max(0, min(shape[a1] - r0, shape[a2] - c0))
    return np.arange(r0, r0 + k), np.arange(c0, c0 + k)


@register("np.trace", callables=(np.trace,))
def _trace(ctx, args, attrs):
    b = bound(ctx, "trace", args, attrs)
    if not _contains_lanes(b["a"]):
        return _uniform(ctx, "trace", b)
    d = _varying(ctx, b["a"]).data
    offset, a1, a2 = trace_axes(ctx, b, d.ndim - 1)
    diag = d.diagonal(offset, a1, a2)  # (lanes, *other axes, diagonal)
    return Lanes(np.asarray(numpy_check(ctx, lambda: np.add.reduce(diag, axis=-1, dtype=b["dtype"]))), False)


# ---- methods of per-sample arrays ------------------------------------------------------------------------

def _method(name, impl):
    """``x.<name>(...)``: ``np.<name>(x, ...)`` (the methods take the function's parameters after ``a``)."""
    def method(ctx, v, args, kw):
        return impl(ctx, (v,) + tuple(args), {"kw": kw})
    return method


#: The methods these rules serve (``x.reshape()`` included: np.reshape's rule, with order= and copy=).
MISC_METHODS = ("reshape", "take", "round", "trace")
METHODS.update({"reshape": _reshape_method, "take": _method("take", _take), "round": _method("round", _round),
                "trace": _method("trace", _trace)})
