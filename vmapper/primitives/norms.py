"""``np.linalg.norm`` of per-sample arrays: the 2-norm of all elements, vector norms along a
per-sample axis (``ord`` None, 2, 1, inf, -inf) and the Frobenius norm over two axes, with
their gradients (0 at a kink: a zero norm, a zero element for ``ord=1``; ``inf``/``-inf``
pass it to the first extremal element only)."""
from __future__ import annotations

import operator

import numpy as np

from ..runtime.values import Lanes
from .array_ops import _bind, _lane_axis
from .registry import register


class _PlanCtx:
    """What :func:`norm_plan` raises with in a VJP rule (never: the forward call checked)."""

    def lane_error_all(self, message, exc_type):
        return exc_type(message)

    def type_error(self, message):
        return TypeError(message)

    def unsupported(self, construct, hint=None):
        return NotImplementedError(construct)


def _norm_args(args, kw):
    b = {"ord": None, "axis": None, "keepdims": False}
    npos = len(args) - len(kw)
    b.update(zip(["x", "ord", "axis", "keepdims"], args[:npos]))
    b.update(zip(kw, args[npos:]))
    return b


def _vector_kind(ord_):
    """The vector norm batched for numpy's ``ord`` (None: one that is not)."""
    if isinstance(ord_, str):
        return None
    if ord_ is None or ord_ == 2:
        return "two"
    if ord_ == 1:
        return "one"
    if ord_ == np.inf:
        return "inf"
    if ord_ == -np.inf:
        return "-inf"
    return None


def norm_plan(ctx, ord_, axis, sample_ndim):
    """``(kind, axes)``: how numpy computes ``np.linalg.norm(x, ord, axis)`` of a per-sample
    ``x``.  ``kind`` is ``"all"`` (the default: the 2-norm of every element), a vector norm
    ``"two"``, ``"one"``, ``"inf"``, ``"-inf"`` along one per-sample axis, or ``"frobenius"``
    over two; ``axes`` are per-sample axes (non-negative).  numpy's errors for bad arguments;
    UnsupportedSyntaxError for the norms that are not batched."""
    nd = sample_ndim
    if axis is None and (ord_ is None or ord_ in ("f", "fro") and nd == 2 or ord_ == 2 and nd == 1):
        return "all", None
    if axis is None:
        axes = tuple(range(nd))
    elif isinstance(axis, tuple):
        axes = axis
    else:
        try:
            axes = (int(axis),)
        except Exception:
            raise ctx.type_error("'axis' must be None, an integer or a tuple of integers") from None

    def per_sample(a):
        try:
            a = operator.index(a)
        except TypeError:
            raise ctx.type_error(f"'{type(a).__name__}' object cannot be interpreted as an integer") from None
        _lane_axis(a, nd, ctx)  # (AxisError out of range)
        return a % nd

    if len(axes) == 1:
        kind = _vector_kind(ord_)
        if kind is None:
            if isinstance(ord_, str):
                raise ctx.lane_error_all(f"Invalid norm order '{ord_}' for vectors", ValueError)
            raise ctx.unsupported(f"np.linalg.norm() of a per-sample array with ord={ord_!r}",
                                  hint="vector norms with ord None, 2, 1, np.inf or -np.inf are batched")
        return kind, (per_sample(axes[0]),)
    if len(axes) == 2:
        a1, a2 = per_sample(axes[0]), per_sample(axes[1])
        if a1 == a2:
            raise ctx.lane_error_all("Duplicate axes given.", ValueError)
        if ord_ is None or ord_ in ("fro", "f"):
            return "frobenius", (a1, a2)
        if ord_ in (2, -2, 1, -1, np.inf, -np.inf, "nuc"):
            raise ctx.unsupported(f"np.linalg.norm() of a per-sample array with ord={ord_!r} over two axes",
                                  hint="of the matrix norms only the Frobenius norm (ord=None or 'fro') "
                                       "is batched")
        raise ctx.lane_error_all("Invalid norm order for matrices.", ValueError)
    raise ctx.lane_error_all("Improper number of dimensions to norm.", ValueError)


def _norm_vjp(g, out, args, attrs, n):
    """``g`` times the norm's derivative, with a subgradient at the kinks:

    * the 2-norm and the Frobenius norm: ``x / norm(x)``, 0 where the norm is 0 (every
      direction there is a kink, and 0 is the one whose step does not grow the norm);
    * ``ord=1``: ``sign(x)`` (0 at an element 0, as ``abs`` gives);
    * ``ord=inf`` / ``-inf``: ``sign(x)`` at the first element of largest / smallest
      magnitude along the axis, 0 elsewhere (0 again where that element is 0).
    """
    b = _norm_args(args, attrs.get("kw") or ())
    x = b["x"]
    lane = isinstance(x, Lanes)
    xd = x.data if lane else np.asarray(x)
    if xd.dtype.kind not in "fc":
        return [None] * len(args)
    kind, axes = norm_plan(_PlanCtx(), b["ord"], b["axis"], xd.ndim - lane)
    od = np.asarray(out.data if isinstance(out, Lanes) else out)
    ge = np.asarray(g)
    dt = np.result_type(xd.dtype, od.dtype)
    if kind == "all":
        if lane:
            shape = xd.shape[:1] + (1,) * (xd.ndim - 1)
            od, ge = od.reshape(shape), ge.reshape(shape)
        else:
            ge = ge.sum()  # a uniform input's gradient sums over the lanes
    else:
        ax = tuple(a + lane for a in axes)
        if not b["keepdims"]:
            od, ge = np.expand_dims(od, ax), np.expand_dims(ge, ax)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind in ("all", "two", "frobenius"):
            gx = np.where(od == 0, np.zeros((), dt), ge * (xd / od))
        elif kind == "one":
            gx = ge * np.sign(xd)
        else:  # inf, -inf: the first element whose magnitude is the norm
            hit = np.abs(xd) == od
            first = hit & (np.cumsum(hit, axis=ax[0]) == 1)
            gx = np.where(first, ge * np.sign(xd), np.zeros((), dt))
    return [np.asarray(gx, dtype=dt)] + [None] * (len(args) - 1)


@register("np.linalg.norm", callables=(np.linalg.norm,), vjp=_norm_vjp)
def _norm(ctx, args, attrs):
    """numpy's norm of each lane's array: the 2-norm of all the elements (the default), a vector
    norm (``ord`` None, 2, 1, inf, -inf) along a per-sample ``axis``, or the Frobenius norm over
    two; ``keepdims`` keeps the reduced axes.  Along an axis, the same numpy reductions as the
    per-sample call, so bitwise its result."""
    kw = attrs.get("kw") or ()
    if not isinstance(args[0], Lanes):
        npos = len(args) - len(kw)
        return ctx.uniform(lambda: np.linalg.norm(*args[:npos], **dict(zip(kw, args[npos:]))))
    b = _bind(ctx, args, kw, ["x", "ord", "axis", "keepdims"], {"ord": None, "axis": None, "keepdims": False})
    d = b["x"].data
    if d.dtype.kind not in "fc":
        d = d.astype(np.float64)  # as numpy's norm does
    kind, axes = norm_plan(ctx, b["ord"], b["axis"], d.ndim - 1)
    keep = bool(b["keepdims"])
    if kind == "all":
        flat = d.reshape(d.shape[0], -1)
        sq = (flat.conj() * flat).real if flat.dtype.kind == "c" else flat * flat
        res = np.sqrt(np.add.reduce(sq, axis=1))
        return Lanes(res.reshape(res.shape + (1,) * (d.ndim - 1)) if keep else res, False)
    ax = tuple(a + 1 for a in axes)
    if kind in ("two", "frobenius"):
        res = np.sqrt(np.add.reduce((d.conj() * d).real, axis=ax, keepdims=keep))
    elif kind == "one":
        res = np.add.reduce(np.abs(d), axis=ax, keepdims=keep)
    elif kind == "inf":
        res = np.abs(d).max(axis=ax, keepdims=keep, initial=0)
    else:
        if d.shape[ax[0]] == 0:
            raise ctx.lane_error_all("zero-size array to reduction operation minimum which has no identity",
                                     ValueError)
        res = np.abs(d).min(axis=ax, keepdims=keep)
    return Lanes(np.asarray(res), False)
