"""Vectorizable elementary functions for numba kernels.

numba on this platform has no SVML, so ``math.exp`` / ``math.tanh`` inside a
numba loop become scalar libm calls that stop LLVM from vectorizing the loop.
This module re-implements the functions the activation kernels need as
branch-free arithmetic (range reduction + polynomial, exponent bit tricks
through bitcasts, selects instead of branches), so that a loop calling them
compiles to SIMD code (``vmulps ymm``/``zmm``).  No fastmath flags are used:
``+ - * /`` round exactly as written, results are bitwise reproducible, and
NaN/inf/signed zeros/subnormals are handled explicitly.  The one exception is
explicit: the range reductions and polynomials of exp (its polynomial form, used
by ``exp``, ``sigmoid`` and ``erf``, and fdlibm's rational form
``_exp_rat_f32``/``_exp_rat_f64``, used by the sigmoid/tanh fractions
``sig_frac``/``tanh_frac`` and by ``tanh`` for |x| >= 0.55), of expm1, of log
(and log1p) and of tanh for |x| < 0.55 use ``vmath_common.fma``: one rounding
per multiply-add where the CPU fuses them.  exp runs 1.35-1.6x faster in a
vectorized loop, expm1 1.3-1.5x, tanh and log 1.05-1.2x, the fused cell kernels
10-25%, with the same measured ulp bounds (the table below is unchanged).

float32 versions compute in float32 (twice the SIMD width of float64), except
the sin/cos argument reduction, which needs more than 24 bits and is done in
float64 (the polynomial is evaluated in float64 too; it costs the same).

Public API
----------
* ``exp_f32 ... cos_f64``: scalar njit functions (``FUNCTIONS`` x f32/f64).
* ``exp, log, ...``: dtype-generic scalar functions callable from njit code
  (resolved at compile time through ``numba.extending.overload``) and from
  Python.
* ``SCALAR_IMPLS[(name, np.float32)]``: the typed scalar implementations, for
  generated numba code; ``EXACT_IMPLS``: the same keys mapped to libm
  (``math.exp`` ...; a njit formula for sigmoid).
* ``vexp(x) ... vcos(x)``: whole-array functions (any shape, float32/float64
  preserved, other dtypes computed in float64; ``parallel=True`` prange
  kernel for large arrays, a serial call below 32768 elements).
* ``logistic_f64``: the float64 expression ``1/(1 + exp(-x))`` as numpy evaluates it
  (0 where its exp overflows), within 4 ulp, with one division: the kernel
  generator computes that idiom of per-sample code with it.
* ``sig_frac(x) -> (p, d, q)``, ``tanh_frac(x) -> (t, d, q)`` (njit code
  only): sigmoid = p/d, tanh = t/d, and their derivative factors q/d**2, with
  no division, for kernels that share one division between several of them.
* ``ulp_error(ours, reference, dtype)``, ``sweep_inputs(name, dtype)``,
  ``reference(name, x)`` and ``accuracy_table()`` to measure accuracy.

Domains: everything is full-range (overflow, underflow to subnormals, signed
zeros, inf and NaN as numpy), sin/cos included: |x| < 2**20 uses Cody-Waite
with a 4-part pi/2, larger |x| a branch-free table form of Payne-Hanek
(float64: 2**e mod pi/2 tables, 15 gathers; float32: glibc's integer
reduction, 3 gathers), so there is no libm fallback and every lane takes the
same vectorized path (sin/cos cost ~2x exp because of it).

Accuracy (max ulp vs numpy, ``python -m vmapper.kernels.vmath`` /
``accuracy_table()``: 10**6 points per row -- random bit patterns, uniform
and log-uniform ranges -- plus special values; numpy has no sigmoid/erf, see
:func:`reference`):

    ========  =======  =======
    function  float32  float64
    ========  =======  =======
    exp       2        1
    log       4        1
    log1p     2        1
    expm1     2        2
    tanh      2        2
    sigmoid   2        2
    erf       1        3
    sin       1        1
    cos       1        1
    ========  =======  =======

Against correctly rounded results (mpmath spot checks of the worst points)
these functions are within 1 ulp where checked; the larger numbers above are
the reference's own error (numpy's float32 log is up to 3 ulp off,
scipy's float64 erf up to 2-3 ulp).

Coefficients: fdlibm/musl for log, sin/cos (f64) kernels (and the rational
exp of the sigmoid/tanh fractions, ``sig_frac``/``tanh_frac``); Cephes for
expf; the float64 exp polynomial (division-free) and the rest are near-minimax fits (Lawson-iterated weighted least
squares in 50-digit mpmath on Chebyshev nodes, coefficients rounded to the
target type and re-verified).

The code lives in sibling modules (this module re-exports it): ``vmath_common``
(jit options, bitcasts), ``vmath_f32`` / ``vmath_f64`` (scalar exp/log family,
tanh, sigmoid, erf), ``vmath_trig`` (sin/cos), ``vmath_generic`` (tables and
dtype-generic functions), ``vmath_array`` (whole-array functions) and
``vmath_accuracy`` (ulp measurement).
"""
from .vmath_common import FUNCTIONS, F, D, I32, I64  # noqa: F401
from .vmath_f32 import (exp_f32, log_f32, log1p_f32, expm1_f32,  # noqa: F401
                        tanh_f32, sigmoid_f32, erf_f32)
from .vmath_f64 import (exp_f64, log_f64, log1p_f64, expm1_f64,  # noqa: F401
                        tanh_f64, sigmoid_f64, erf_f64, logistic_f64)
from .vmath_trig import sin_f32, cos_f32, sin_f64, cos_f64  # noqa: F401
from .vmath_trig import _PI4_HEX, _TEMIN, _TEMAX, _PIO2_TAB, _TQ  # noqa: F401
from .vmath_generic import (SCALAR_IMPLS, EXACT_IMPLS, exp, log, log1p,  # noqa: F401
                            expm1, tanh, sigmoid, erf, sin, cos,
                            sig_frac, tanh_frac)
from .vmath_array import (vexp, vlog, vlog1p, vexpm1, vtanh, vsigmoid,  # noqa: F401
                          verf, vsin, vcos, ARRAY_FUNCS)
from .vmath_accuracy import (ulp_error, special_values, sweep_inputs,  # noqa: F401
                             reference, accuracy_table)

__all__ = ["FUNCTIONS", "SCALAR_IMPLS", "EXACT_IMPLS", "ulp_error",
           "sweep_inputs", "special_values", "reference", "accuracy_table"]
__all__ += list(FUNCTIONS)
__all__ += ["v" + n for n in FUNCTIONS] + ["ARRAY_FUNCS"]


if __name__ == "__main__":                  # python -m kernels.vmath
    tab = accuracy_table()
    print(f"{'function':10s} {'float32':>8s} {'float64':>8s}")
    for fname in FUNCTIONS:
        print(f"{fname:10s} {tab[(fname, 'float32')]:8.0f} "
              f"{tab[(fname, 'float64')]:8.0f}")
