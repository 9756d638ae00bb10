"""Array primitives that are neither elementwise nor reductions: scans along a per-sample
axis (``np.cumsum``, ``np.cumprod``, ``np.diff``), sorting (``np.sort``, ``np.argsort``)
and ``np.outer``, with the methods ``x.cumsum()``, ``x.cumprod()`` and ``x.argsort()``.

Each runs numpy's own function once over the batched array, along the data axis that
stands for the per-sample axis (per-sample axis ``k`` is data axis ``k + 1``; negative
axes count from the end of the per-sample shape), so every lane gets exactly what the
per-sample call computes: cumulative sums and products accumulate in the same order,
and numpy sorts each lane's row with the same algorithm as the per-sample call (the
``kind`` given, numpy's default when none is).  ``axis=None`` flattens each lane's array
as numpy flattens the per-sample one.  A uniform argument is computed once, by numpy.

Errors are the per-sample call's: an axis out of range names the axis and the per-sample
dimension, ``np.diff`` of a per-sample scalar or with a negative ``n`` raises numpy's
ValueError, and only the array arguments may differ per sample (an ``axis`` or ``n``
that differs per sample would give lanes different shapes).
"""
from __future__ import annotations

import operator

import numpy as np

from ..runtime.values import Lanes
from .array_ops import METHODS, _array, _contains_lanes, _lane_axis
from .registry import register
from .signatures import bind_call, check_binding

#: Stands for an argument the call left out (numpy's ``np._NoValue`` for ``prepend``/``append``).
NOT_GIVEN = object()

SIGNATURES = {
    "cumsum": (["a", "axis", "dtype", "out"], {"axis": None, "dtype": None, "out": None}),
    "cumprod": (["a", "axis", "dtype", "out"], {"axis": None, "dtype": None, "out": None}),
    "diff": (["a", "n", "axis", "prepend", "append"],
             {"n": 1, "axis": -1, "prepend": NOT_GIVEN, "append": NOT_GIVEN}),
    "sort": (["a", "axis", "kind", "order", "stable"], {"axis": -1, "kind": None, "order": None, "stable": None}),
    "argsort": (["a", "axis", "kind", "order", "stable"], {"axis": -1, "kind": None, "order": None, "stable": None}),
    "outer": (["a", "b", "out"], {"out": None}),
}
#: The arguments that may hold per-sample values.
VARYING = {"cumsum": ("a",), "cumprod": ("a",), "diff": ("a", "prepend", "append"), "sort": ("a",),
           "argsort": ("a",), "outer": ("a", "b")}


def bind(name, args, kwnames):
    """``{parameter: value}`` for a call of ``np.<name>``, or the ``TypeError`` message."""
    return bind_call(name, args, kwnames, *SIGNATURES[name])


def _bound(ctx, name, args, attrs):
    return check_binding(ctx, name, bind(name, args, attrs.get("kw") or ()), VARYING[name])


def _uniform(ctx, name, b):
    """The call on uniform arguments: numpy's, once (its errors as the per-sample run's)."""
    names, defaults = SIGNATURES[name]
    kw = {k: b[k] for k in names[1:] if b[k] is not defaults[k]}
    fn = getattr(np, name)
    return ctx.uniform(lambda: fn(b["a"], **kw))


def _varying(ctx, v):
    """``v`` as Lanes: a per-sample array, or a list or tuple that holds per-sample values."""
    if isinstance(v, Lanes):
        return v
    return _array(ctx, (v,), {})


def check_int(ctx, value, what="axis"):
    """``operator.index(value)``, raising the per-sample TypeError for a non-integer."""
    try:
        return operator.index(value)
    except TypeError:
        raise ctx.type_error(f"'{type(value).__name__}' object cannot be interpreted as an integer "
                             f"(the {what})")


def data_axis(ctx, axis, sample_ndim):
    """The axis of the batched data that per-sample ``axis`` stands for (negative: from the end)."""
    return _lane_axis(check_int(ctx, axis), sample_ndim, ctx)


def layout(data, lane, axis, scalar_as_vector):
    """``(array, axis)``: the array to run the function on and the axis it runs along.

    ``data`` is a per-lane array (``lane``: axis 0 is the lanes) or a uniform one;
    ``axis=None`` flattens the per-sample array; with ``scalar_as_vector`` a per-sample
    scalar is a vector of one element (numpy's cumsum, cumprod and argsort do that)."""
    lead = data.shape[:1] if lane else ()
    if axis is None:
        return data.reshape(lead + (-1,)), len(lead)
    if scalar_as_vector and data.ndim == len(lead):
        data = data.reshape(lead + (1,))
    return data, axis


def _along_axis(ctx, name, fn, data, axis, scalar_as_vector, kw):
    """``fn`` (``np.<name>``) of per-lane ``data`` along per-sample ``axis`` (None: flattened),
    numpy's errors named at the user's line."""
    nd = max(data.ndim - 1, 1) if scalar_as_vector else data.ndim - 1
    ax = None if axis is None else data_axis(ctx, axis, nd)
    work, ax = layout(data, True, ax, scalar_as_vector)
    try:
        return Lanes(fn(work, axis=ax, **kw), False)
    except (TypeError, ValueError) as exc:
        raise ctx.lane_error_all(f"np.{name}: {exc}", type(exc))


# ---- cumsum, cumprod ---------------------------------------------------------------------

def _scan(name):
    fn = getattr(np, name)

    def impl(ctx, args, attrs):
        b = _bound(ctx, name, args, attrs)
        x = b["a"]
        if not _contains_lanes(x):
            return _uniform(ctx, name, b)
        kw = {} if b["dtype"] is None else {"dtype": b["dtype"]}
        # a per-sample scalar scans as a vector of one element
        return _along_axis(ctx, name, fn, _varying(ctx, x).data, b["axis"], True, kw)
    return impl


register("np.cumsum", _scan("cumsum"), callables=(np.cumsum,))
register("np.cumprod", _scan("cumprod"), callables=(np.cumprod,))


# ---- diff ------------------------------------------------------------------------------------

def diff_parts(ctx, b, data, ax):
    """The per-lane arrays ``np.diff`` concatenates: ``prepend``, the array, ``append``
    (a scalar ``prepend``/``append`` is broadcast to one element along the axis)."""
    parts = []
    for key in ("prepend", "a", "append"):
        v = b[key]
        if key == "a":
            parts.append(data)
            continue
        if v is NOT_GIVEN:
            continue
        if _contains_lanes(v):
            p = _varying(ctx, v).data
        else:
            p = np.asanyarray(v)
            p = np.broadcast_to(p, data.shape[:1] + p.shape)
        if p.ndim == 1:  # a scalar per sample: one element along the axis
            shape = list(data.shape)
            shape[ax] = 1
            p = np.broadcast_to(p.reshape((-1,) + (1,) * (data.ndim - 1)), tuple(shape))
        elif p.ndim != data.ndim:
            raise ctx.lane_error_all(
                f"np.diff: all the input arrays must have same number of dimensions, but the "
                f"{key} array has {p.ndim - 1} dimension(s) and the array has {data.ndim - 1}", ValueError)
        else:
            for k in range(1, data.ndim):
                if k != ax % data.ndim and p.shape[k] != data.shape[k]:
                    raise ctx.lane_error_all(
                        f"np.diff: all the input array dimensions except for the concatenation axis "
                        f"must match exactly, but along dimension {k - 1}, the {key} array has size "
                        f"{p.shape[k]} and the array has size {data.shape[k]}", ValueError)
        parts.append(p)
    return parts


@register("np.diff", callables=(np.diff,))
def _diff(ctx, args, attrs):
    b = _bound(ctx, "diff", args, attrs)
    if not any(_contains_lanes(b[k]) for k in VARYING["diff"]):
        return _uniform(ctx, "diff", b)
    n = check_int(ctx, b["n"], "order n")
    if n < 0:
        raise ctx.lane_error_all(f"order must be non-negative but got {n!r}", ValueError)
    if _contains_lanes(b["a"]):
        data = _varying(ctx, b["a"]).data
    else:  # a shared array with a per-sample prepend or append
        data = np.asanyarray(b["a"])
        data = np.broadcast_to(data, (ctx.n,) + data.shape)
    if data.ndim == 1:
        raise ctx.lane_error_all("diff requires input that is at least one dimensional", ValueError)
    ax = data_axis(ctx, b["axis"], data.ndim - 1)
    parts = diff_parts(ctx, b, data, ax)
    full = np.concatenate(parts, axis=ax) if len(parts) > 1 else data
    return Lanes(np.diff(full, n=n, axis=ax), False)


# ---- sort, argsort ---------------------------------------------------------------------------

def _sorting(name):
    fn = getattr(np, name)

    def impl(ctx, args, attrs):
        b = _bound(ctx, name, args, attrs)
        x = b["a"]
        if not _contains_lanes(x):
            return _uniform(ctx, name, b)
        if b["order"] is not None:
            raise ctx.lane_error_all("Cannot specify order when the array has no fields.", ValueError)
        kw = {k: b[k] for k in ("kind", "stable") if b[k] is not None}
        # np.argsort treats a scalar as a vector of one element, np.sort raises
        return _along_axis(ctx, name, fn, _varying(ctx, x).data, b["axis"], name == "argsort", kw)
    return impl


register("np.sort", _sorting("sort"), callables=(np.sort,))
register("np.argsort", _sorting("argsort"), callables=(np.argsort,))


# ---- outer ----------------------------------------------------------------------------------------

def outer_operands(v, n):
    """``np.outer``'s operand ``v`` flattened: ``(lanes, size)`` per lane, ``(1, size)`` uniform."""
    if isinstance(v, Lanes):
        return v.data.reshape(n, -1)
    return np.asarray(v).reshape(1, -1)


@register("np.outer", callables=(np.outer,))
def _outer(ctx, args, attrs):
    b = _bound(ctx, "outer", args, attrs)
    a, c = b["a"], b["b"]
    if not any(_contains_lanes(v) for v in (a, c)):
        return ctx.uniform(lambda: np.outer(a, c))
    A, B = (outer_operands(_varying(ctx, v) if _contains_lanes(v) else v, ctx.n) for v in (a, c))
    return Lanes(np.multiply(A[:, :, None], B[:, None, :]), False)


# ---- methods of per-sample arrays ---------------------------------------------------------------------

def _method(name):
    impl = {"cumsum": _scan("cumsum"), "cumprod": _scan("cumprod"), "argsort": _sorting("argsort")}[name]
    return lambda ctx, v, args, kw: impl(ctx, (v,) + tuple(args), {"kw": kw})


#: ``x.sort()`` sorts in place and returns None: not one of these (it stays unsupported).
SCAN_METHODS = ("cumsum", "cumprod", "argsort")
METHODS.update({name: _method(name) for name in SCAN_METHODS})
