"""Tables and numba helper sources for the kernel generator: numpy dtype
constructors, the math/numpy function maps, and the helper functions (numpy's
integer/float division, shifts, casts ...) emitted into kernel files that need
them."""
from __future__ import annotations

import numpy as np

from .typing import BOOL
# ---- source generation ---------------------------------------------------------------------------

_CTOR = {np.dtype(t): f"np.{np.dtype(t).name}" for t in (
    np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float32,
    np.float64)}
_CTOR[BOOL] = "np.bool_"
# dtypes whose numba arithmetic on same-typed operands stays in the same type
_NATIVE = frozenset(np.dtype(t) for t in (np.int64, np.uint64, np.float32, np.float64))
_TRANSCENDENTAL = {"exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "erf"}
_NP_SAME = {"exp2": "exp2", "log2": "log2", "log10": "log10", "sinh": "sinh", "cosh": "cosh",
            "tan": "tan", "arcsin": "arcsin", "arccos": "arccos", "arctan": "arctan",
            "arcsinh": "arcsinh", "arccosh": "arccosh", "arctanh": "arctanh", "cbrt": "cbrt",
            "sqrt": "sqrt", "floor": "floor", "ceil": "ceil", "trunc": "trunc", "rint": "rint",
            "signbit": "signbit", "isnan": "isnan", "isinf": "isinf", "isfinite": "isfinite",
            "arctan2": "arctan2", "hypot": "hypot", "copysign": "copysign", "nextafter": "nextafter",
            "logaddexp": "logaddexp", "logaddexp2": "logaddexp2"}
_MATH_NP = {"sqrt": "sqrt", "log2": "log2", "log10": "log10", "tan": "tan", "asin": "arcsin",
            "acos": "arccos", "atan": "arctan", "atan2": "arctan2", "sinh": "sinh", "cosh": "cosh",
            "asinh": "arcsinh", "acosh": "arccosh", "atanh": "arctanh", "fabs": "fabs",
            "hypot": "hypot", "copysign": "copysign", "fmod": "fmod"}

# numba helpers, emitted into each kernel file that needs them.  {T} is the
# float constructor for the float variants.
_HELPERS = {
    "floordiv_i64": '''
@njit(**_OPTS)
def _floordiv_i64(a, b):
    # numpy floor_divide for int64: b == 0 -> 0, MIN // -1 -> MIN (wraps)
    if b == 0:
        return np.int64(0)
    if b == -1:
        return np.int64(np.uint64(0) - np.uint64(a))
    return a // b
''',
    "mod_i64": '''
@njit(**_OPTS)
def _mod_i64(a, b):
    # numpy remainder for int64 (sign of the divisor); b == 0 or -1 -> 0
    if b == 0 or b == -1:
        return np.int64(0)
    return a % b
''',
    "floordiv_u64": '''
@njit(**_OPTS)
def _floordiv_u64(a, b):
    if b == 0:
        return np.uint64(0)
    return a // b
''',
    "mod_u64": '''
@njit(**_OPTS)
def _mod_u64(a, b):
    if b == 0:
        return np.uint64(0)
    return a % b
''',
    "pow_i64": '''
@njit(**_OPTS)
def _pow_i64(a, b):
    # integer power by squaring, wrapping mod 2**64 (b >= 0 was checked)
    r = np.uint64(1)
    x = np.uint64(a)
    e = np.int64(b)
    while e > 0:
        if e & 1:
            r = r * x
        x = x * x
        e = e >> 1
    return np.int64(r)
''',
    "pow_u64": '''
@njit(**_OPTS)
def _pow_u64(a, b):
    r = np.uint64(1)
    x = np.uint64(a)
    e = np.uint64(b)
    while e > np.uint64(0):
        if e & np.uint64(1):
            r = r * x
        x = x * x
        e = e >> np.uint64(1)
    return r
''',
    "lshift_i64": '''
@njit(**_OPTS)
def _lshift_i64(a, b, bits):
    # numpy left_shift: a shift by a count outside [0, bits) gives 0
    if b >= 0 and b < bits:
        return np.int64(np.uint64(a) << np.uint64(b))
    return np.int64(0)
''',
    "rshift_i64": '''
@njit(**_OPTS)
def _rshift_i64(a, b, bits):
    # numpy right_shift (arithmetic): a count outside [0, bits) gives -1 or 0
    if b >= 0 and b < bits:
        return a >> b
    return np.int64(-1) if a < 0 else np.int64(0)
''',
    "lshift_u64": '''
@njit(**_OPTS)
def _lshift_u64(a, b):
    if b < np.uint64(64):
        return a << b
    return np.uint64(0)
''',
    "rshift_u64": '''
@njit(**_OPTS)
def _rshift_u64(a, b):
    if b < np.uint64(64):
        return a >> b
    return np.uint64(0)
''',
    "cmp_iu": '''
@njit(**_OPTS)
def _cmp_iu(a, b):
    # exact three-way comparison of an int64 with a uint64
    if a < 0:
        return -1
    ua = np.uint64(a)
    return -1 if ua < b else (1 if ua > b else 0)
''',
    "f2i64": '''
@njit(**_OPTS)
def _f2i64(x):
    # float -> int64 as numpy casts on x86: out of range or NaN -> INT64_MIN
    if x >= -9.223372036854775808e18 and x < 9.223372036854775808e18:
        return np.int64(x)
    return np.int64(-9223372036854775808)
''',
    "f2i32": '''
@njit(**_OPTS)
def _f2i32(x):
    # float -> int32 (and narrower, after truncation) as numpy casts on x86
    if x > -2147483649.0 and x < 2147483648.0:
        return np.int64(x)
    return np.int64(-2147483648)
''',
    "f2u64": '''
@njit(**_OPTS)
def _f2u64(x):
    if x >= 9.223372036854775808e18:
        if x < 1.8446744073709551616e19:
            return np.uint64(x)
        return np.uint64(0)
    if x >= -9.223372036854775808e18:
        return np.uint64(np.int64(x))
    return np.uint64(9223372036854775808)
''',
    "divmod_f": '''
@njit(**_OPTS)
def _divmod_{S}(a, b):
    # numpy's npy_divmod ({S}): Python's floor division and modulo for floats
    mod = np.fmod(a, b)
    div = (a - mod) / b
    if mod != {T}(0):
        if (b < {T}(0)) != (mod < {T}(0)):
            mod = mod + b
            div = div - {T}(1)
    else:
        mod = np.copysign({T}(0), b)
    if div != {T}(0):
        floordiv = np.floor(div)
        if div - floordiv > {T}(0.5):
            floordiv = floordiv + {T}(1)
    else:
        floordiv = np.copysign({T}(0), a / b)
    return floordiv, mod
''',
    "floordiv_f": '''
@njit(**_OPTS)
def _floordiv_{S}(a, b):
    if b == {T}(0):
        return a / b
    return _divmod_{S}(a, b)[0]
''',
    "mod_f": '''
@njit(**_OPTS)
def _mod_{S}(a, b):
    if b == {T}(0):
        return np.fmod(a, b)
    return _divmod_{S}(a, b)[1]
''',
    "sign_f": '''
@njit(**_OPTS)
def _sign_{S}(x):
    if x > {T}(0):
        return {T}(1)
    if x < {T}(0):
        return {T}(-1)
    if x == {T}(0):
        return {T}(0)
    return x
''',
    "heaviside_f": '''
@njit(**_OPTS)
def _heaviside_{S}(x, h0):
    if x != x:
        return {T}(np.nan)
    if x == {T}(0):
        return h0
    if x < {T}(0):
        return {T}(0)
    return {T}(1)
''',
    "clip_f": '''
@njit(**_OPTS)
def _clip_{S}(x, lo, hi):
    # numpy's scalar clip: max then min, NaN from any operand, x kept on a tie (the sign of
    # a zero included: clip(0.0, -0.0, 1.0) is 0.0)
    t = x if (x != x or not (lo > x or lo != lo)) else lo
    return t if (t != t or not (hi < t or hi != hi)) else hi
''',
}
_HELPER_DEPS = {"floordiv_f": ("divmod_f",), "mod_f": ("divmod_f",)}


def _hex(v):
    return float(v).hex()


