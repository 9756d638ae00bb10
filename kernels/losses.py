"""Fused softmax cross-entropy: a classifier's loss and its gradient, one pass per row.

API::

    cross_entropy(logits, label) -> nll
        nll = log(sum(exp(logits - m))) - (logits[label] - m),  m = max(logits)
        (the negative log-softmax of the label's class, along the last axis)
    cross_entropy_vjp(logits, label, g) -> dlogits
        dlogits = g * (softmax(logits) - onehot(label))

``logits`` has the classes on its last axis; ``label`` holds integers in
``[0, classes)`` (an ``IndexError`` otherwise: no wrap-around of negative
labels), broadcastable to ``logits.shape[:-1]``.  The result has the logits'
float dtype (float32 stays float32; other dtypes compute in float64).

The formula is the max-shifted log-softmax a user writes by hand, and the
values equal it to rounding (``exp``/``log`` are libm's here, numpy's there).
A row holding ``+inf`` or NaN gives NaN, as that formula does.

In per-sample code, ``vmapper.kernels.losses.cross_entropy(logits, label)``
on one sample's logits vector is a primitive (:mod:`.loss_primitives`): the
batched run computes every lane's loss in one kernel call, and the gradient
is one call of the fused VJP instead of the half-dozen numpy operations of
the hand-written formula and their tape entries.  CuPy arrays take the same
formula in CuPy operations.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["cross_entropy", "cross_entropy_vjp"]


# The row kernels skip a row whose label is out of range (loss 0, gradient 0) and count
# them: the callers raise for those rows, or (per-sample code) for the active lanes among them.

@njit(cache=True, error_model="numpy")
def _nll_rows(x, label, out, zero):
    rows, classes = x.shape
    bad = 0
    for r in range(rows):
        lab = label[r]
        if lab < 0 or lab >= classes:
            out[r] = zero
            bad += 1
            continue
        m = x[r, 0]
        for k in range(1, classes):
            if x[r, k] > m or x[r, k] != x[r, k]:  # NaN wins, as np.max
                m = x[r, k]
        s = zero  # (the logits' dtype: float32 sums as numpy's float32 sum does)
        for k in range(classes):
            s += math.exp(x[r, k] - m)
        out[r] = math.log(s) - (x[r, lab] - m)
    return bad


@njit(cache=True, error_model="numpy")
def _nll_vjp_rows(x, label, g, out, zero):
    rows, classes = x.shape
    bad = 0
    for r in range(rows):
        lab = label[r]
        if lab < 0 or lab >= classes:
            for k in range(classes):
                out[r, k] = zero
            bad += 1
            continue
        m = x[r, 0]
        for k in range(1, classes):
            if x[r, k] > m or x[r, k] != x[r, k]:
                m = x[r, k]
        s = zero
        for k in range(classes):
            e = math.exp(x[r, k] - m)
            out[r, k] = e
            s += e
        scale = g[r] / s
        for k in range(classes):
            out[r, k] *= scale
        out[r, lab] -= g[r]
    return bad


def _float_dtype(x):
    return x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _rows(logits, label):
    """``(logits as contiguous rows, labels one per row, batch shape)``; checks the labels."""
    x = np.asarray(logits)
    if x.dtype.kind not in "biuf":  # (complex would lose its imaginary part)
        raise TypeError(f"cross_entropy: logits must hold real numbers, not {x.dtype}")
    if x.ndim == 0:
        raise ValueError("cross_entropy: logits need a class axis (the last one)")
    classes = x.shape[-1]
    if classes == 0:
        raise ValueError("cross_entropy: logits have no classes")
    lab = np.asarray(label)
    if lab.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: labels must be integers, not {lab.dtype}")
    batch = x.shape[:-1]
    try:
        lab = np.broadcast_to(lab, batch).reshape(-1)
    except ValueError:
        raise ValueError(f"cross_entropy: labels of shape {lab.shape} do not broadcast to the logits' rows "
                         f"{batch} (logits of shape {x.shape}: one label per row)") from None
    bad = (lab < 0) | (lab >= classes)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise IndexError(f"cross_entropy: label {int(lab[k])} is out of range for {classes} classes "
                         f"(row {k})")
    rows = np.ascontiguousarray(x, dtype=_float_dtype(x)).reshape(-1, classes)
    return rows, np.ascontiguousarray(lab, dtype=np.int64), batch


def cross_entropy(logits, label):
    """Negative log-softmax of ``label``'s class, along the last axis (see the module docstring)."""
    if _is_cupy(logits):
        return _cross_entropy_xp(_cupy(), logits, label)
    rows, lab, batch = _rows(logits, label)
    out = nll_of_rows(rows, lab)[0].reshape(batch)
    return out[()] if out.ndim == 0 else out


def nll_of_rows(rows, lab):
    """``(cross_entropy per row, how many rows have a label out of range)`` for float rows
    ``(r, classes)`` (C-contiguous) and int64 labels ``(r,)``; those rows get 0."""
    out = np.empty(len(rows), rows.dtype)
    bad = _nll_rows(rows, lab, out, rows.dtype.type(0)) if len(rows) else 0
    return out, bad


def nll_vjp_of_rows(rows, lab, g):
    """``cross_entropy_vjp`` per row, as :func:`nll_of_rows` (``g``: ``(r,)``; 0 on rows whose
    label is out of range)."""
    out = np.empty(rows.shape, rows.dtype)
    if len(rows):
        _nll_vjp_rows(rows, lab, np.ascontiguousarray(g, dtype=rows.dtype), out, rows.dtype.type(0))
    return out


def cross_entropy_vjp(logits, label, g):
    """``g * (softmax(logits) - onehot(label))``: the gradient with respect to ``logits``."""
    if _is_cupy(logits):
        return _cross_entropy_vjp_xp(_cupy(), logits, label, g)
    rows, lab, batch = _rows(logits, label)
    g = np.asarray(g)
    if g.dtype.kind not in "biuf":
        raise TypeError(f"cross_entropy_vjp: g must hold real numbers, not {g.dtype}")
    try:
        gr = np.broadcast_to(g.astype(rows.dtype, copy=False), batch).reshape(-1)
    except ValueError:
        raise ValueError(f"cross_entropy_vjp: g of shape {g.shape} does not broadcast to the logits' rows "
                         f"{batch} (one gradient per row)") from None
    return nll_vjp_of_rows(rows, lab, gr).reshape(np.shape(logits))


# ---- the same formula in any array module's operations (CuPy) ------------------------------------

def _is_cupy(x):
    return type(x).__module__.startswith("cupy")


def _cupy():
    import cupy
    return cupy


def _shifted(xp, logits, label):
    x = xp.asarray(logits)
    if x.dtype not in (xp.float32, xp.float64):
        x = x.astype(xp.float64)
    lab = xp.broadcast_to(xp.asarray(label), x.shape[:-1])
    if bool(xp.any((lab < 0) | (lab >= x.shape[-1]))):
        raise IndexError(f"cross_entropy: a label is out of range for {x.shape[-1]} classes")
    z = x - xp.max(x, axis=-1, keepdims=True)
    return z, lab.astype(xp.int64)[..., None]


def _cross_entropy_xp(xp, logits, label):
    z, lab = _shifted(xp, logits, label)
    picked = xp.take_along_axis(z, lab, axis=-1)[..., 0]
    return xp.log(xp.sum(xp.exp(z), axis=-1)) - picked


def _cross_entropy_vjp_xp(xp, logits, label, g):
    z, lab = _shifted(xp, logits, label)
    e = xp.exp(z)
    gz = xp.asarray(g, dtype=z.dtype)[..., None]
    out = e * (gz / xp.sum(e, axis=-1, keepdims=True))
    onehot = xp.arange(z.shape[-1]) == lab
    return out - xp.where(onehot, gz, xp.zeros((), z.dtype))


# Calls of cross_entropy in per-sample code become a vmapper primitive (with its VJP).
from . import loss_primitives  # noqa: E402,F401  (registration side effect)
