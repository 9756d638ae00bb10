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


def _per_lane(n, logits, label, error):
    """``(logits (n, ..., C) float, labels (n, ...) int64 with out-of-range labels at 0,
    where they were out of range)``; ``error(message, type)`` makes the exception to raise."""
    x = logits.data if type(logits) is Lanes else np.broadcast_to(np.asarray(logits), (n,) + np.shape(logits))
    if x.ndim < 2:
        raise error("cross_entropy: logits need a class axis (the last one)", ValueError)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    lab = label.data if type(label) is Lanes else np.asarray(label)
    if lab.dtype.kind not in "iu":
        raise error(f"cross_entropy: labels must be integers, not {lab.dtype}", TypeError)
    if type(label) is not Lanes:
        lab = np.broadcast_to(lab, (n,) + lab.shape)
    batch = x.shape[1:-1]
    if lab.ndim - 1 > len(batch):
        raise error(f"cross_entropy: labels of shape {lab.shape[1:]} for logits of shape "
                                 f"{x.shape[1:]}", ValueError)
    # per-sample broadcasting aligns trailing axes: new axes go after the lane axis
    lab = lab.reshape((n,) + (1,) * (len(batch) - lab.ndim + 1) + lab.shape[1:])
    try:
        lab = np.broadcast_to(lab, x.shape[:-1])
    except ValueError as exc:
        raise error(f"cross_entropy: {exc}", ValueError)
    bad = (lab < 0) | (lab >= x.shape[-1])
    if bad.any():
        lab = np.where(bad, 0, lab)
    return x, np.ascontiguousarray(lab, dtype=np.int64), bad


def _impl(ctx, args, attrs):
    if attrs.get("kw") or len(args) != 2:
        raise ctx.unsupported("cross_entropy() with these arguments (pass logits and label positionally)")
    logits, label = args
    if type(logits) is not Lanes and type(label) is not Lanes:
        return ctx.uniform(L.cross_entropy, logits, label)
    x, lab, bad = _per_lane(ctx.n, logits, label, ctx.lane_error_all)
    per_row = bad.reshape(len(bad), -1).any(axis=1)
    ctx.fail_where(per_row, f"cross_entropy: label out of range for {x.shape[-1]} classes", IndexError,
                   values=np.asarray(label.data if type(label) is Lanes else label))
    classes = x.shape[-1]
    nll = L.nll_of_rows(np.ascontiguousarray(x).reshape(-1, classes), lab.reshape(-1))
    return Lanes(nll.reshape(x.shape[:-1]), False)


def _vjp(g, out, args, attrs, n):
    logits, label = args
    # (the forward run raised for any active lane these checks could fail on)
    x, lab, _ = _per_lane(n, logits, label, lambda message, exc_type: exc_type(message))
    classes = x.shape[-1]
    g = np.broadcast_to(np.asarray(g, dtype=x.dtype), x.shape[:-1]).reshape(-1)
    dl = L.nll_vjp_of_rows(np.ascontiguousarray(x).reshape(-1, classes), lab.reshape(-1), g).reshape(x.shape)
    if type(logits) is Lanes:
        return [dl.astype(logits.data.dtype, copy=False) if logits.data.dtype.kind == "f" else None, None]
    if np.asarray(logits).dtype.kind != "f":
        return [None, None]
    return [dl.sum(axis=0).reshape(np.shape(logits)), None]


register("kernels.cross_entropy", _impl, callables=(L.cross_entropy,), vjp=_vjp,
         doc="vmapper.kernels.losses.cross_entropy, every lane's rows in one kernel call")
