"""Tables and dtype-generic scalar functions of :mod:`vmapper.kernels.vmath`:
``SCALAR_IMPLS``, ``EXACT_IMPLS`` (libm) and ``exp, log, ...`` dispatching on
float32/float64 at numba compile time (``overload``)."""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .vmath_common import FUNCTIONS, _SJIT
from .vmath_f32 import _F0, _F1
from .vmath_f64 import _D0, _D1
from .vmath_f32 import (exp_f32, log_f32, log1p_f32, expm1_f32, tanh_f32,  # noqa: F401
                        sigmoid_f32, erf_f32)          # (SCALAR_IMPLS reads globals())
from .vmath_f64 import (exp_f64, log_f64, log1p_f64, expm1_f64, tanh_f64,  # noqa: F401
                        sigmoid_f64, erf_f64)
from .vmath_trig import sin_f32, cos_f32, sin_f64, cos_f64  # noqa: F401
from .vmath_f32 import _sig_frac_f32, _tanh_frac_f32
from .vmath_f64 import _sig_frac_f64, _tanh_frac_f64
# ====================================================== generic + tables ===
SCALAR_IMPLS = {}
for _name in FUNCTIONS:
    SCALAR_IMPLS[(_name, np.float32)] = globals()[_name + "_f32"]
    SCALAR_IMPLS[(_name, np.float64)] = globals()[_name + "_f64"]


@njit(**_SJIT)
def _sigmoid_exact_f32(x):
    e = math.exp(-abs(x))                 # libm expf
    return (_F1 if x >= _F0 else e) / (_F1 + e)


@njit(**_SJIT)
def _sigmoid_exact_f64(x):
    e = math.exp(-abs(x))
    return (_D1 if x >= _D0 else e) / (_D1 + e)


_LIBM = {"exp": math.exp, "log": math.log, "log1p": math.log1p,
         "expm1": math.expm1, "tanh": math.tanh, "erf": math.erf,
         "sin": math.sin, "cos": math.cos}
EXACT_IMPLS = {(n, dt): _LIBM[n] for n in FUNCTIONS if n != "sigmoid"
               for dt in (np.float32, np.float64)}
EXACT_IMPLS[("sigmoid", np.float32)] = _sigmoid_exact_f32
EXACT_IMPLS[("sigmoid", np.float64)] = _sigmoid_exact_f64


def _make_generic(name):
    f32, f64 = SCALAR_IMPLS[(name, np.float32)], SCALAR_IMPLS[(name, np.float64)]

    def generic(x):
        if isinstance(x, np.float32):
            return np.float32(f32(x))        # numba boxes float32 as float
        return np.float64(f64(np.float64(x)))
    generic.__name__ = generic.__qualname__ = name
    generic.__doc__ = (f"Vectorizable {name}(x) for float32/float64 scalars; "
                       f"usable inside njit code (dispatch at compile time).")

    @overload(generic, jit_options=dict(error_model="numpy", forceinline=True))
    def _ov(x):
        if x == types.float32:
            return lambda x: f32(x)
        if isinstance(x, (types.Float, types.Integer, types.Boolean)):
            return lambda x: f64(np.float64(x))
        return None
    return generic


exp = _make_generic("exp")
log = _make_generic("log")
log1p = _make_generic("log1p")
expm1 = _make_generic("expm1")
tanh = _make_generic("tanh")
sigmoid = _make_generic("sigmoid")
erf = _make_generic("erf")
sin = _make_generic("sin")
cos = _make_generic("cos")





def _make_frac(name, f32, f64, doc):
    def generic(x):
        raise TypeError(f"{name} is for njit code only")
    generic.__name__ = generic.__qualname__ = name
    generic.__doc__ = doc

    @overload(generic, jit_options=dict(error_model="numpy", forceinline=True))
    def _ov(x):
        if x == types.float32:
            return lambda x: f32(x)
        if x == types.float64:
            return lambda x: f64(x)
        return None
    return generic


# Fractions for the fused activation kernels (njit code only): each returns
# (numerator, denominator, q) with the denominator in [1, 6], so that a
# kernel can combine several into one division.  Not in the ulp table: the
# kernels that use them are checked against numpy (tests/kernels/test_activations.py).
sig_frac = _make_frac("sig_frac", _sig_frac_f32, _sig_frac_f64,
                      "(p, d, q): sigmoid(x) = p/d, sigmoid(x)*sigmoid(-x) = q/d**2.")
tanh_frac = _make_frac("tanh_frac", _tanh_frac_f32, _tanh_frac_f64,
                       "(t, d, q): tanh(x) = t/d, 1 - tanh(x)**2 = q/d**2.")
