"""Whole-array functions of :mod:`vmapper.kernels.vmath` (``vexp(x) ... vcos(x)``,
``ARRAY_FUNCS``): a literal-op block kernel, serial for small arrays and a
prange driver for large ones."""
import numpy as np
from numba import literally, njit, prange

from .vmath_common import FUNCTIONS, _JIT
from .vmath_generic import cos, erf, exp, expm1, log, log1p, sigmoid, sin, tanh
# ======================================================== array wrappers ===
# One block function specialised on a literal ``op`` (closures over the
# scalar function would not be cacheable: numba keys its cache on pickled
# closure cells).  Small arrays run the block directly (no thread pool,
# ~1 us); large ones through a prange driver over blocks.
_BLOCK, _SERIAL_BELOW = 1 << 14, 1 << 19  # (see activations._SERIAL_BELOW)


@njit(**_JIT)
def _map_block(x, out, lo, hi, op):
    literally(op)
    x, out = x[lo:hi], out[lo:hi]     # index from 0: contiguous SIMD loads
    n = x.shape[0]
    if op == 0:
        for j in range(n):
            out[j] = exp(x[j])
    elif op == 1:
        for j in range(n):
            out[j] = log(x[j])
    elif op == 2:
        for j in range(n):
            out[j] = log1p(x[j])
    elif op == 3:
        for j in range(n):
            out[j] = expm1(x[j])
    elif op == 4:
        for j in range(n):
            out[j] = tanh(x[j])
    elif op == 5:
        for j in range(n):
            out[j] = sigmoid(x[j])
    elif op == 6:
        for j in range(n):
            out[j] = erf(x[j])
    elif op == 7:
        for j in range(n):
            out[j] = sin(x[j])
    else:
        for j in range(n):
            out[j] = cos(x[j])


@njit(parallel=True, **_JIT)
def _map_par(x, out, op):
    literally(op)
    n = x.shape[0]
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        _map_block(x, out, b * _BLOCK, min(n, (b + 1) * _BLOCK), op)


def _as_float_array(x, name):
    """Contiguous float32/float64 array (other real dtypes go to float64); TypeError for
    complex and non-numeric input (the functions are real)."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"v{name}: input of dtype {a.dtype} (a real array: bool, int or float)")
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return a if a.flags.c_contiguous else a.copy(order="C")   # keeps 0-d


def _make_array_fn(name):
    op = FUNCTIONS.index(name)

    def fn(x):
        a = _as_float_array(x, name)
        out = np.empty_like(a)
        n = a.size
        if n:
            kernel = _map_block if n < _SERIAL_BELOW else _map_par
            args = (0, n, op) if n < _SERIAL_BELOW else (op,)
            kernel(a.reshape(-1), out.reshape(-1), *args)
        return out if out.ndim else out[()]
    fn.__name__ = fn.__qualname__ = "v" + name
    fn.__doc__ = (f"Elementwise {name} of an array (any shape; float32 stays "
                  f"float32, other dtypes are computed in float64).")
    return fn


vexp, vlog, vlog1p, vexpm1, vtanh, vsigmoid, verf, vsin, vcos = (
    _make_array_fn(n) for n in FUNCTIONS)
ARRAY_FUNCS = {n: globals()["v" + n] for n in FUNCTIONS}


