"""``value_and_grad``, ``grad`` and ``vjp`` of batched functions."""
from __future__ import annotations

import numpy as np

from ..api import BatchedFunction, batched, bind_arguments
from ..errors import BatchError
from ..runtime.values import Lanes, Traced
from .kernel_partials import DEFAULT_POLICY, POLICIES
from .sparse import RowSparse
from .tape import Tape, backward, current_tape


def _as_batched(f):
    return f if isinstance(f, BatchedFunction) else batched(f)


def _is_float_leaf(v):
    if isinstance(v, Lanes):
        return v.data.dtype.kind in "fc"
    return isinstance(v, (float, np.floating)) or isinstance(v, np.ndarray) and v.dtype.kind in "fc"


def _trace_leaves(value, tape, leaves):
    """``value`` with every float leaf a fresh tape leaf; ``leaves`` collects (node, leaf)."""
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*[_trace_leaves(v, tape, leaves) for v in value])
    if isinstance(value, tuple):
        return tuple(_trace_leaves(v, tape, leaves) for v in value)
    if isinstance(value, dict):
        return {k: _trace_leaves(v, tape, leaves) for k, v in value.items()}
    if _is_float_leaf(value):
        t = tape.leaf(value)
        leaves.append((t.node, value))
        return t
    return value


def _grad_tree(original, bound, grads, in_axis, sparse):
    """The gradient, shaped like the user's argument ``original``."""
    if isinstance(original, tuple) and hasattr(original, "_fields"):
        return type(original)(*[_grad_tree(o, b, grads, _sub_axis(in_axis, i), sparse)
                                for i, (o, b) in enumerate(zip(original, bound))])
    if isinstance(original, (tuple, list)):
        return type(original)(_grad_tree(o, b, grads, _sub_axis(in_axis, i), sparse)
                              for i, (o, b) in enumerate(zip(original, bound)))
    if isinstance(original, dict):
        return {k: _grad_tree(original[k], bound[k], grads, _sub_axis(in_axis, k), sparse) for k in original}
    if not isinstance(bound, Traced):
        return None
    g = grads.get(bound.node)
    raw = bound.value
    if isinstance(raw, Lanes):
        g = np.zeros(raw.data.shape, raw.data.dtype) if g is None else np.asarray(g, raw.data.dtype)
        if in_axis not in (0, None):
            g = np.moveaxis(g, 0, in_axis)
        return g
    arr = np.asarray(raw)
    if isinstance(g, RowSparse):  # a table the code only gathered rows from
        return g.astype(arr.dtype) if sparse else g.to_dense().astype(arr.dtype)
    g = np.zeros(arr.shape, arr.dtype) if g is None else np.asarray(g, arr.dtype).reshape(arr.shape)
    return g if isinstance(original, np.ndarray) else type(original)(g) if np.ndim(g) == 0 else g


def _sub_axis(axis, key):
    if isinstance(axis, (tuple, list)) and isinstance(key, int):
        return axis[key]
    if isinstance(axis, dict):
        return axis[key]
    return axis


def _axes_for(bf, nargs):
    ax = bf.in_axes
    return list(ax) if isinstance(ax, (tuple, list)) else [ax] * nargs


def _run_traced(bf, args, kwargs, argnums, kernel_partials=None):
    kernel_partials = DEFAULT_POLICY if kernel_partials is None else kernel_partials
    if kernel_partials not in POLICIES:
        raise ValueError(f"kernel_partials must be one of {POLICIES}, not {kernel_partials!r}")
    values, n = bind_arguments(bf.per_sample, args, kwargs, bf.in_axes)
    tape = Tape()
    tape.kernel_partials = kernel_partials
    token = current_tape.set(tape)
    try:
        leaves = []
        for k in argnums:
            values[k] = _trace_leaves(values[k], tape, leaves)
        result = bf.execute(values, n, tape=tape)
    finally:
        current_tape.reset(token)
    return values, n, tape, result


def value_and_grad(f, argnums=0, *, sparse_tables=True, kernel_partials=None):
    """``g(*args) -> (values, grads)``: per-sample values and the gradient of their sum.

    ``f`` is a batched function (or a per-sample function, batched with defaults)
    whose per-sample result is a float scalar.  ``grads`` has the structure of
    ``args[argnums]`` (a tuple of them if ``argnums`` is a tuple): a batched
    argument's gradient keeps its batch axis, a broadcast one's is summed over
    the batch.  Integer and bool leaves get ``None``.  A shared table that the
    code only gathers rows from (an embedding) gets a
    :class:`~vmapper.autodiff.sparse.RowSparse` gradient (``.indices``,
    ``.values``, ``.to_dense()``, ``.apply_to(table, -lr)``) unless
    ``sparse_tables=False``.

    A function (or helper) that runs as one compiled kernel (``backend="numba"``)
    is differentiated by dual numbers, each result's partial derivatives with
    respect to its differentiated inputs: by default (``kernel_partials=None``:
    ``"recompute"``) the backward kernel recomputes them from the saved inputs
    and contracts them with the gradients in the same pass; ``"store"`` has
    the forward kernel compute and keep them; see
    :mod:`vmapper.autodiff.kernel_partials`.
    """
    bf = _as_batched(f)
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def value_and_grad_f(*args, **kwargs):
        for k in nums:
            if not -len(args) <= k < len(args):
                raise BatchError(f"argnums={k} but {bf.per_sample.__qualname__} got {len(args)} positional arguments")
        values, n, tape, result = _run_traced(bf, args, kwargs, nums, kernel_partials)
        out = bf.finish(result, n)
        if isinstance(out, tuple) or np.shape(out) != (n,) or np.asarray(out).dtype.kind not in "fc":
            raise BatchError(f"value_and_grad needs a float scalar per sample; {bf.per_sample.__qualname__} "
                             f"returns {'a tuple' if isinstance(out, tuple) else np.shape(out)[1:] or 'an int'} "
                             f"per sample (use vmapper.vjp for other results)")
        seeds = {}
        if isinstance(result, Traced):
            seeds[result.node] = np.ones(n, dtype=np.asarray(out).dtype)
        grads = backward(tape, seeds)
        axes = _axes_for(bf, len(args))
        gs = tuple(_grad_tree(args[k], values[k], grads, axes[k], sparse_tables) for k in nums)
        return out, (gs[0] if isinstance(argnums, int) else gs)

    value_and_grad_f.__name__ = f"value_and_grad({bf.per_sample.__name__})"
    return value_and_grad_f


def grad(f, argnums=0, *, sparse_tables=True, kernel_partials=None):
    """``g(*args) -> grads``: like :func:`value_and_grad` without the values."""
    vg = value_and_grad(f, argnums, sparse_tables=sparse_tables, kernel_partials=kernel_partials)

    def grad_f(*args, **kwargs):
        return vg(*args, **kwargs)[1]
    return grad_f


def vjp(f, *args, sparse_tables=False, kernel_partials=None, **kwargs):
    """``(outputs, vjp_fn)``: ``vjp_fn(cotangents)`` gives gradients for every argument.

    ``cotangents`` has the structure of the outputs (arrays over the batch);
    the gradients are a tuple with one entry per positional argument.
    """
    bf = _as_batched(f)
    nums = tuple(range(len(args)))
    values, n, tape, result = _run_traced(bf, args, kwargs, nums, kernel_partials)
    out = bf.finish(result, n)

    def vjp_fn(cotangents):
        seeds = {}
        _seed(result, cotangents, bf.out_axes, seeds)
        grads = backward(tape, seeds)
        axes = _axes_for(bf, len(args))
        return tuple(_grad_tree(args[k], values[k], grads, axes[k], sparse_tables) for k in nums)
    return out, vjp_fn


def _seed(result, cot, out_axes, seeds):
    if type(result) is tuple:
        axes = out_axes if isinstance(out_axes, (tuple, list)) else [out_axes] * len(result)
        for r, c, a in zip(result, cot, axes):
            _seed(r, c, a, seeds)
        return
    if isinstance(result, Traced):
        c = np.asarray(cot)
        if out_axes not in (0, None):
            c = np.moveaxis(c, out_axes, 0)
        seeds[result.node] = seeds.get(result.node, 0) + c
