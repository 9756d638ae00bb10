"""``check_grads``: compare vmapper's gradients with central finite differences."""
from __future__ import annotations

import numpy as np

from ..errors import BatchingError


def _float_leaves(x, path=()):
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        for f, v in zip(x._fields, x):
            yield from _float_leaves(v, path + (f,))
    elif isinstance(x, (tuple, list)):
        for i, v in enumerate(x):
            yield from _float_leaves(v, path + (i,))
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _float_leaves(v, path + (k,))
    elif isinstance(x, (float, np.floating)) or isinstance(x, np.ndarray) and x.dtype.kind == "f":
        yield path, x


def _replace(x, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return x._replace(**{head: _replace(getattr(x, head), rest, new)})
    if isinstance(x, (tuple, list)):
        items = list(x)
        items[head] = _replace(items[head], rest, new)
        return type(x)(items)
    d = dict(x)
    d[head] = _replace(d[head], rest, new)
    return d


def _get(x, path):
    for p in path:
        x = getattr(x, p) if isinstance(x, tuple) and hasattr(x, "_fields") and isinstance(p, str) else x[p]
    return x


def check_grads(f, args, argnums=0, *, eps=1e-6, rtol=1e-6, atol=1e-9, directions=3, order=1, seed=0):
    """Assert that ``vmapper.value_and_grad(f, argnums)`` matches central differences.

    For each differentiated float leaf, the directional derivative of the sum of
    per-sample values along ``directions`` random directions is compared with
    ``<grad, direction>``.  Use float64 inputs.  ``order=2`` (second-order
    gradients) is not supported yet and raises :class:`BatchingError`.
    """
    from ..api import BatchedFunction, batched
    from ..autodiff.api import value_and_grad
    if order != 1:
        raise BatchingError("check_grads: second-order gradients are not supported yet (order=1 only)")
    bf = f if isinstance(f, BatchedFunction) else batched(f)
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    _, grads = value_and_grad(bf, nums, sparse_tables=False)(*args)
    rng = np.random.default_rng(seed)

    def total(a):
        return float(np.sum(bf(*a)))

    for k, g in zip(nums, grads):
        for path, leaf in _float_leaves(args[k]):
            gl = np.asarray(_get(g, path), dtype=np.float64)
            for _ in range(directions):
                v = rng.normal(size=np.shape(leaf))
                plus = list(args)
                minus = list(args)
                plus[k] = _replace(args[k], path, np.asarray(leaf) + eps * v)
                minus[k] = _replace(args[k], path, np.asarray(leaf) - eps * v)
                fd = (total(plus) - total(minus)) / (2 * eps)
                an = float(np.sum(gl * v))
                if not np.isclose(an, fd, rtol=rtol, atol=atol):
                    raise AssertionError(f"gradient of argument {k} at {list(path)}: analytic {an!r} vs "
                                         f"finite differences {fd!r} along a random direction")
    return grads
