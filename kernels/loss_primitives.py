"""``vmapper.kernels.losses.cross_entropy`` as a primitive of the per-sample language.

Per sample, ``cross_entropy(logits, label)`` takes one sample's logits (classes
on the last axis) and an integer label; batched, it is one kernel call over
every lane's rows, and one tape entry whose VJP is the fused
``softmax - onehot`` kernel.  A label outside ``[0, classes)`` on an active
lane is a ``LaneError`` (an ``IndexError``, as the per-sample call raises);
inactive lanes never raise, whatever their labels hold.
"""
from __future__ import annotations

import numpy as np

from vmapper.primitives.registry import register
from vmapper.runtime.values import Lanes

from . import losses as L


def _rows_of(n, logits, label, error):
    """``(logits as rows (r, C), C-contiguous float; int64 labels (r,); per-lane batch shape)``:
    the lane's rows one after the other (per-sample broadcasting of the labels applied);
    ``error(message, type)`` makes the exception to raise."""
    if type(logits) is Lanes and type(label) is Lanes:
        x, lab = logits.data, label.data
        if x.ndim == 2 and lab.ndim == 1 and x.dtype.type in _FLOATS and lab.dtype == np.int64 \
                and x.flags.c_contiguous:
            return x, lab, ()  # (the usual case: one logits vector and one label per lane)
    x = logits.data if type(logits) is Lanes else np.broadcast_to(np.asarray(logits), (n,) + np.shape(logits))
    if x.ndim < 2:
        raise error("cross_entropy: logits need a class axis (the last one)", ValueError)
    if x.dtype.kind not in "biuf":
        raise error(f"cross_entropy: logits must hold real numbers, not {x.dtype}", TypeError)
    if x.dtype.type not in _FLOATS:
        x = x.astype(np.float64)
    lab = label.data if type(label) is Lanes else np.asarray(label)
    if lab.dtype.kind not in "iu":
        raise error(f"cross_entropy: labels must be integers, not {lab.dtype}", TypeError)
    if type(label) is not Lanes:
        lab = np.broadcast_to(lab, (n,) + lab.shape)
    batch = x.shape[1:-1]
    if lab.ndim - 1 > len(batch):
        raise error(f"cross_entropy: labels of shape {lab.shape[1:]} for logits of shape {x.shape[1:]}",
                    ValueError)
    # per-sample broadcasting aligns trailing axes: new axes go after the lane axis
    lab = lab.reshape((n,) + (1,) * (len(batch) - lab.ndim + 1) + lab.shape[1:])
    try:
        lab = np.broadcast_to(lab, x.shape[:-1])
    except ValueError as exc:
        raise error(f"cross_entropy: {exc}", ValueError)
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    return rows, np.ascontiguousarray(lab, dtype=np.int64).reshape(-1), batch


_FLOATS = (np.float32, np.float64)


def _impl(ctx, args, attrs):
    if attrs.get("kw") or len(args) != 2:
        raise ctx.unsupported("cross_entropy() with these arguments (pass logits and label positionally)")
    logits, label = args
    if type(logits) is not Lanes and type(label) is not Lanes:
        return ctx.uniform(L.cross_entropy, logits, label)
    rows, lab, batch = _rows_of(ctx.n, logits, label, ctx.lane_error_all)
    nll, bad = L.nll_of_rows(rows, lab)
    if bad:
        classes = rows.shape[1]
        per_lane = lab.reshape(ctx.n, -1)
        out_of_range = (per_lane < 0) | (per_lane >= classes)
        first_bad = per_lane[np.arange(ctx.n), out_of_range.argmax(axis=1)]  # (each lane's own label)
        if np.result_type(label.data if type(label) is Lanes else label) == np.uint64:
            first_bad = first_bad.astype(np.uint64)  # (the int64 cast wrapped those past 2**63)
        ctx.fail_where(out_of_range.any(axis=1), f"cross_entropy: label out of range for {classes} classes",
                       IndexError, values=first_bad)
    return Lanes(nll.reshape((ctx.n,) + batch), False)


def _vjp(g, out, args, attrs, n):
    logits, label = args
    # (the forward run raised for any active lane these checks could fail on)
    rows, lab, batch = _rows_of(n, logits, label, lambda message, exc_type: exc_type(message))
    g = np.broadcast_to(np.asarray(g, dtype=rows.dtype), (n,) + batch).reshape(-1)
    dl = L.nll_vjp_of_rows(rows, lab, g)
    if type(logits) is Lanes:
        if logits.data.dtype.kind != "f":
            return [None, None]
        return [dl.reshape(logits.data.shape).astype(logits.data.dtype, copy=False), None]
    if np.asarray(logits).dtype.kind != "f":
        return [None, None]
    return [dl.reshape((n,) + np.shape(logits)).sum(axis=0), None]


register("kernels.cross_entropy", _impl, callables=(L.cross_entropy,), vjp=_vjp,
         doc="vmapper.kernels.losses.cross_entropy, every lane's rows in one kernel call")
