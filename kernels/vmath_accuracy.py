"""Accuracy tools for :mod:`vmapper.kernels.vmath`: ulp distance, test-argument
sweeps, special values, numpy/scipy reference results and the accuracy table."""
import math

import numpy as np

from .vmath_common import FUNCTIONS
from .vmath_array import ARRAY_FUNCS
# ============================================================= accuracy ===
def _ordered(a, dtype):
    """Map floats to integers whose difference counts representable values
    between them (+0 and -0 both map to 0)."""
    it = np.int32 if np.dtype(dtype) == np.float32 else np.int64
    b = np.asarray(a, dtype=dtype).view(it).astype(np.int64)
    return np.where(b < 0, -(b & np.int64(np.iinfo(it).max)), b)


def ulp_error(ours, reference, dtype):
    """Elementwise distance in ulps (number of representable ``dtype`` values
    between the two results).  NaN vs NaN is 0, NaN vs non-NaN is inf; equal
    infinities are 0; +0 and -0 are 0 apart."""
    a = np.asarray(ours, dtype=dtype)
    b = np.asarray(reference, dtype=dtype)
    d = np.array(np.abs(_ordered(a, dtype) - _ordered(b, dtype)), np.float64)
    na, nb = np.isnan(a), np.isnan(b)
    d[na & nb] = 0.0
    d[na ^ nb] = np.inf
    return d


# Range of "interesting" arguments per function (uniform sampling there).
_RANGES = {"exp": (-750.0, 710.0), "log": (0.0, 4.0), "log1p": (-1.0, 4.0),
           "expm1": (-50.0, 90.0), "tanh": (-25.0, 25.0),
           "sigmoid": (-100.0, 100.0), "erf": (-7.0, 7.0),
           "sin": (-1e5, 1e5), "cos": (-1e5, 1e5)}
_RANGES32 = {"exp": (-105.0, 90.0)}


def special_values(dtype):
    """Signed zeros, subnormals, extremes, inf and NaN (and a few neighbours)."""
    fi = np.finfo(dtype)
    tiny_sub = np.array(fi.smallest_subnormal, dtype)
    v = [0.0, 1.0, 0.5, 2.0, np.inf, np.nan, fi.max, fi.tiny, tiny_sub,
         fi.tiny - tiny_sub, fi.eps, np.pi / 2, np.pi, 1e5, 88.72283935546875,
         709.782712893384, 0.875, 0.55]
    v = np.array(v, dtype=dtype)
    return np.concatenate([v, -v])


def sweep_inputs(name, dtype, n=10 ** 6, seed=0):
    """``n`` test arguments plus special values: a third random bit patterns
    (every exponent, including subnormals, inf and NaN), a third uniform on
    the function's interesting range, a third log-uniform magnitudes in
    [1e-30, 1e3] with random sign."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    m = n // 3
    ibits = np.uint32 if dtype == np.float32 else np.uint64
    bits = rng.integers(0, np.iinfo(ibits).max, m, dtype=ibits, endpoint=True)
    lo, hi = (_RANGES32 if dtype == np.float32 else {}).get(name, _RANGES[name])
    uni = rng.uniform(lo, hi, m)
    mag = 10.0 ** rng.uniform(-30, 3, n - 2 * m) * rng.choice([-1.0, 1.0], n - 2 * m)
    x = np.concatenate([bits.view(dtype), uni.astype(dtype), mag.astype(dtype),
                        special_values(dtype)])
    if name == "log":        # mostly positive arguments are the useful ones
        x[: len(x) * 3 // 4] = np.abs(x[: len(x) * 3 // 4])
    return x


def reference(name, x):
    """numpy's result for ``name`` (same dtype as ``x``).  numpy has no
    sigmoid or erf: sigmoid is the stable numpy formula evaluated in a wider
    type (float64 for float32, long double for float64) and rounded; erf is
    scipy.special.erf (math.erf without scipy), float32 via float64."""
    x = np.asarray(x)
    dt = x.dtype
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            # scipy's expit flushes to 0 below -709; use extended precision
            xl = x.astype(np.float64 if dt == np.float32 else np.longdouble)
            e = np.exp(-np.abs(xl))
            return (np.where(xl >= 0, 1, e) / (1 + e)).astype(dt)
        if name == "erf":
            xd = x.astype(np.float64)
            try:
                import scipy.special as sp
                r = sp.erf(xd)
            except ImportError:          # pragma: no cover - scipy is present
                r = np.frompyfunc(math.erf, 1, 1)(xd).astype(np.float64)
            return r.astype(dt)
        return getattr(np, name)(x)


def accuracy_table(n=10 ** 6, seed=0, funcs=FUNCTIONS):
    """{(name, dtype_name): max ulp of ``v<name>`` vs :func:`reference`}
    over :func:`sweep_inputs` (``n`` random points + specials)."""
    out = {}
    for name in funcs:
        for dt in (np.float32, np.float64):
            x = sweep_inputs(name, dt, n, seed)
            with np.errstate(all="ignore"):
                err = ulp_error(ARRAY_FUNCS[name](x), reference(name, x), dt)
            out[(name, np.dtype(dt).name)] = float(err.max())
    return out

