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

from vmapper.autodiff.sparse import RowSparse

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

    bitwise as numpy evaluates it in ``param``'s dtype (float32 or float64), in
    ``torch.optim.Adagrad``'s order.  ``grad`` is cast to that dtype first, and ``lr``, ``eps``,
    ``l2`` and ``scale`` are taken in it, as numpy takes Python numbers with an array (a
    float64 numpy scalar too, which numpy itself would promote the expression with).  ``acc``
    is the running sum of squares, an array like ``param``.

    ``grad`` is an array of ``param``'s shape or a row-sparse gradient (``RowSparse``, as
    ``vmapper.grad`` returns for an embedding table): its rows are summed per index (a
    negative index counts from the end; one out of range is an IndexError) and only those
    rows of ``param`` and ``acc`` change, the L2 term included (applied lazily, when a row
    is next touched).  numpy arrays only; the arrays must be C-contiguous.  Returns ``param``.
    """
    _check_state(param, acc)
    t = param.dtype.type
    consts = tuple(t(_number(name, v)) for name, v in (("lr", lr), ("eps", eps), ("l2", l2), ("scale", scale)))
    if isinstance(grad, RowSparse):
        rows, values = _rows(param, grad)
        width = values.shape[1]
        _adagrad_rows(param.reshape(param.shape[0], width), acc.reshape(acc.shape[0], width), rows, values,
                      *consts)
        return param
    g = np.asarray(grad)
    if g.shape != param.shape:
        raise ValueError(f"adagrad_update: grad of shape {g.shape} for a param of shape {param.shape}")
    _check_grad_dtype(g.dtype)
    g = np.ascontiguousarray(g, dtype=param.dtype)
    _adagrad_dense(param.reshape(-1), acc.reshape(-1), g.reshape(-1), *consts)
    return param


def _rows(param, grad):
    """The row-sparse gradient's distinct rows (a negative index counted from the end, as
    ``to_dense`` places it) and their summed values: ``(rows, values of shape (k, width))``."""
    if tuple(grad.shape) != param.shape:
        raise ValueError(f"adagrad_update: row-sparse grad of shape {tuple(grad.shape)} for a param of "
                         f"shape {param.shape}")
    if param.ndim == 0:
        raise ValueError("adagrad_update: a row-sparse grad needs a param with rows (ndim >= 1)")
    idx, values = np.asarray(grad.indices), np.asarray(grad.values)
    n = param.shape[0]
    if idx.ndim != 1 or values.shape != idx.shape + param.shape[1:]:
        raise ValueError(f"adagrad_update: row-sparse grad with indices of shape {idx.shape} and values of "
                         f"shape {values.shape}; expected (k,) and (k,) + {param.shape[1:]}")
    _check_grad_dtype(values.dtype)
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise IndexError(f"adagrad_update: row index {int(idx[bad][0])} of the grad is out of range for a "
                         f"param of {n} rows")
    summed = RowSparse(idx % n, values, grad.shape).coalesce()  # (-1 and n - 1 are one row)
    width = int(np.prod(param.shape[1:]))
    return (np.ascontiguousarray(summed.indices, dtype=np.int64),
            np.ascontiguousarray(summed.values, dtype=param.dtype).reshape(len(summed.indices), width))


def _number(name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"adagrad_update: {name} must be a real number, not {type(v).__name__}")
    return v


def _check_grad_dtype(dt):
    if dt.kind not in "biuf":
        raise TypeError(f"adagrad_update: grad must hold real numbers, not {dt}")


def _check_state(param, acc):
    for name, a in (("param", param), ("acc", acc)):
        if type(a) is not np.ndarray:
            raise TypeError(f"adagrad_update: {name} must be a numpy array, not {type(a).__name__}")
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"adagrad_update: {name} must be a float32 or float64 array, not {a.dtype}")
        if not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"adagrad_update: {name} must be a writeable C-contiguous array (it is updated "
                             f"in place)")
    if acc.shape != param.shape or acc.dtype != param.dtype:
        raise ValueError(f"adagrad_update: acc ({acc.dtype} {acc.shape}) must have param's dtype and shape "
                         f"({param.dtype} {param.shape})")
