"""Fused optimizer updates: Adagrad in one pass over a parameter (or over the rows a
row-sparse gradient touches), instead of the seven array passes of its numpy form.

The per-tree models train with small steps whose update is a visible share of the
step (the Tree-LSTM's dense weights are ~4*10^5 numbers): one compiled loop reads
each number once.  The arithmetic is the numpy expression's, operation by operation
in the parameter's dtype, so the result is bitwise the same.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["adagrad_update"]

_KJ = dict(error_model="numpy", cache=True)


@njit(**_KJ)
def _adagrad_dense(p, acc, g, lr, eps, l2, scale):
    for i in range(p.shape[0]):
        d = g[i] * scale + l2 * p[i]
        a = acc[i] + d * d
        acc[i] = a
        p[i] = p[i] - lr * (d / (np.sqrt(a) + eps))


@njit(**_KJ)
def _adagrad_rows(p, acc, rows, g, lr, eps, l2, scale):
    for r in range(rows.shape[0]):
        j = rows[r]
        for k in range(p.shape[1]):
            d = g[r, k] * scale + l2 * p[j, k]
            a = acc[j, k] + d * d
            acc[j, k] = a
            p[j, k] = p[j, k] - lr * (d / (np.sqrt(a) + eps))


def adagrad_update(param, acc, grad, lr, eps=1e-10, l2=0.0, scale=1.0):
    """Adagrad's step (Duchi et al. 2011) on ``param`` in place, with L2 and a gradient scale::

        d = grad * scale + l2 * param
        acc += d * d
        param -= lr * (d / (sqrt(acc) + eps))

    bitwise as numpy evaluates it in ``param``'s dtype, in ``torch.optim.Adagrad``'s order (``grad`` is cast to it first; the
    Python numbers ``lr``, ``eps``, ``l2`` and ``scale`` are taken in it, as numpy takes
    them with an array).  ``acc`` is the running sum of squares, an array like ``param``.

    ``grad`` is an array of ``param``'s shape or a row-sparse gradient (``RowSparse``, as
    ``vmapper.grad`` returns for an embedding table): its rows are summed per index
    (``coalesce()``) and only those rows of ``param`` and ``acc`` change, the L2 term
    included (applied lazily, when a row is next touched).  numpy arrays only; the
    arrays must be C-contiguous.  Returns ``param``.
    """
    _check_state(param, acc)
    t = param.dtype.type
    consts = (t(lr), t(eps), t(l2), t(scale))
    if hasattr(grad, "coalesce") and hasattr(grad, "indices"):
        if tuple(grad.shape) != param.shape:
            raise ValueError(f"adagrad_update: row-sparse grad of shape {tuple(grad.shape)} for a param of "
                             f"shape {param.shape}")
        if param.ndim == 0:
            raise ValueError("adagrad_update: a row-sparse grad needs a param with rows (ndim >= 1)")
        grad = grad.coalesce()
        rows = np.ascontiguousarray(grad.indices, dtype=np.int64)
        width = int(np.prod(param.shape[1:]))
        values = np.ascontiguousarray(grad.values, dtype=param.dtype).reshape(len(rows), width)
        _adagrad_rows(param.reshape(param.shape[0], width), acc.reshape(acc.shape[0], width), rows, values,
                      *consts)
        return param
    g = np.asarray(grad)
    if g.shape != param.shape:
        raise ValueError(f"adagrad_update: grad of shape {g.shape} for a param of shape {param.shape}")
    g = np.ascontiguousarray(g, dtype=param.dtype)
    _adagrad_dense(param.reshape(-1), acc.reshape(-1), g.reshape(-1), *consts)
    return param


def _check_state(param, acc):
    for name, a in (("param", param), ("acc", acc)):
        if type(a) is not np.ndarray:
            raise TypeError(f"adagrad_update: {name} must be a numpy array, not {type(a).__name__}")
        if a.dtype.kind != "f":
            raise TypeError(f"adagrad_update: {name} must be a float array, not {a.dtype}")
        if not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"adagrad_update: {name} must be a writeable C-contiguous array (it is updated "
                             f"in place)")
    if acc.shape != param.shape or acc.dtype != param.dtype:
        raise ValueError(f"adagrad_update: acc ({acc.dtype} {acc.shape}) must have param's dtype and shape "
                         f"({param.dtype} {param.shape})")
