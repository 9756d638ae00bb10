"""Vectorizable elementary functions for numba kernels.

numba on this platform has no SVML, so ``math.exp`` / ``math.tanh`` inside a
numba loop become scalar libm calls that stop LLVM from vectorizing the loop.
This module re-implements the functions the activation kernels need as
branch-free arithmetic (range reduction + polynomial, exponent bit tricks
through bitcasts, selects instead of branches), so that a loop calling them
compiles to SIMD code (``vmulps ymm``/``zmm``).  No fastmath flags are used:
``+ - * /`` round exactly as written, results are bitwise reproducible, and
NaN/inf/signed zeros/subnormals are handled explicitly.

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

Coefficients: fdlibm/musl for exp (f64), log, sin/cos (f64) kernels; Cephes
for expf; the rest are near-minimax fits (Lawson-iterated weighted least
squares in 50-digit mpmath on Chebyshev nodes, coefficients rounded to the
target type and re-verified).
"""
import math

import numpy as np
from llvmlite import ir
from numba import literally, njit, prange, types
from numba.extending import intrinsic, overload

__all__ = ["FUNCTIONS", "SCALAR_IMPLS", "EXACT_IMPLS", "ulp_error",
           "sweep_inputs", "special_values", "reference", "accuracy_table"]

FUNCTIONS = ("exp", "log", "log1p", "expm1", "tanh", "sigmoid", "erf",
             "sin", "cos")

# error_model='numpy': a float division by zero must not raise (the raise
# branch would stop vectorization).  cache=True: compile once per machine.
_JIT = dict(error_model="numpy", cache=True)
# Scalar functions are marked LLVM ``alwaysinline`` (forceinline): the
# default inliner gives up on the larger ones (tanh/erf/sin with their
# inlined exp/reduction), and a call left in a loop body prevents
# vectorization.  (numba's inline='always' also works but re-types the IR at
# every call site: several times slower to compile.)
_SJIT = dict(_JIT, forceinline=True)


# ----------------------------------------------------------------- bitcasts
def _bitcast(src, dst, lltype):
    @intrinsic
    def cast(typingctx, x):
        if x != src:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], lltype)
        return dst(src), codegen
    return cast


_f32_bits = _bitcast(types.float32, types.int32, ir.IntType(32))
_bits_f32 = _bitcast(types.int32, types.float32, ir.FloatType())
_f64_bits = _bitcast(types.float64, types.int64, ir.IntType(64))
_bits_f64 = _bitcast(types.int64, types.float64, ir.DoubleType())

F, D, I32, I64 = np.float32, np.float64, np.int32, np.int64

# ============================================================== float32 ====
_F0, _F1, _F2, _FH = F(0), F(1), F(2), F(0.5)
_FINF, _FNAN = F(np.inf), F(np.nan)
_F_SHIFT = F(12582912.0)            # 1.5*2**23: (t + S) - S rounds t to int
_F_LOG2E = F(1.4426950408889634)
_F_LN2HI, _F_LN2LO = F(0.693359375), F(-2.12194440e-4)   # Cephes split
_F_EXP_P = [F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                           4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)]
_FE0, _FE1, _FE2, _FE3, _FE4, _FE5 = _F_EXP_P


@njit(**_SJIT)
def _scale_f32(p, k):
    # p * 2**k for k in [-252, 254]: two factors so that both stay normal and
    # the single final rounding gives correct subnormals / overflow to inf.
    k1 = k >> 1
    s1 = _bits_f32(I32((k1 + 127) << 23))
    s2 = _bits_f32(I32((k - k1 + 127) << 23))
    return (p * s1) * s2


@njit(**_SJIT)
def exp_f32(x):
    xc = x if x > F(-104.0) else F(-104.0)      # NaN -> -104, fixed below
    xc = xc if xc < F(89.0) else F(89.0)
    kf = (xc * _F_LOG2E + _F_SHIFT) - _F_SHIFT
    r = (xc - kf * _F_LN2HI) - kf * _F_LN2LO
    p = (((((_FE0 * r + _FE1) * r + _FE2) * r + _FE3) * r + _FE4) * r
         + _FE5) * (r * r) + r + _F1
    res = _scale_f32(p, I32(kf))
    return res if x == x else x


_F_LG1, _F_LG2 = F(0.66666662693), F(0.40000972152)       # musl logf
_F_LG3, _F_LG4 = F(0.28498786688), F(0.24279078841)
_F_LN2_HI, _F_LN2_LO = F(6.9313812256e-01), F(9.0580006145e-06)
_F_MINNORM, _F_2P25 = F(2.0 ** -126), F(2.0 ** 25)


@njit(**_SJIT)
def log_f32(x):
    sub = x < _F_MINNORM                       # subnormal: scale up first
    xs = x * _F_2P25 if sub else x
    ix = _f32_bits(xs) + (0x3F800000 - 0x3F3504F3)
    k = (ix >> 23) - 0x7F - (25 if sub else 0)
    m = _bits_f32(I32((ix & 0x007FFFFF) + 0x3F3504F3))   # in [sqrt.5, sqrt2)
    f = m - _F1
    s = f / (_F2 + f)
    z = s * s
    w = z * z
    R = z * (_F_LG1 + w * _F_LG3) + w * (_F_LG2 + w * _F_LG4)
    hfsq = _FH * f * f
    dk = F(k)
    res = s * (hfsq + R) + dk * _F_LN2_LO - hfsq + f + dk * _F_LN2_HI
    res = res if x < _FINF else x                         # +inf, NaN
    return res if x > _F0 else (-_FINF if x == _F0 else _FNAN)


_F_TINY = F(2.0 ** -25)


@njit(**_SJIT)
def log1p_f32(x):
    u = x + _F1
    lu = log_f32(u)
    # u - 1 is exact, so x - (u - 1) is exactly the rounding error of u;
    # log(u + e) = log(u) + e/u to first order.
    res = lu + (x - (u - _F1)) / u
    res = res if (u > _F0) & (u < _FINF) else lu        # -1, < -1, inf, NaN
    return x if abs(x) < _F_TINY else res               # keeps -0, subnormal


_F_EM = [F(c) for c in (0.16666666, 0.041666474, 0.008333423, 0.0013934126,
                        0.00019823787)]
_FM0, _FM1, _FM2, _FM3, _FM4 = _F_EM


@njit(**_SJIT)
def expm1_f32(x):
    xc = x if x > F(-20.0) else F(-20.0)
    xc = xc if xc < F(89.0) else F(89.0)
    kf = (xc * _F_LOG2E + _F_SHIFT) - _F_SHIFT
    r = (xc - kf * _F_LN2HI) - kf * _F_LN2LO            # exact r = x if k=0
    q = ((((_FM4 * r + _FM3) * r + _FM2) * r + _FM1) * r + _FM0) * r + _FH
    em = r + (r * r) * q                                # expm1(r)
    k = I32(kf)
    ks = k if k < 25 else 25
    s = _bits_f32(I32((ks + 127) << 23))
    small = em * s + (s - _F1)             # s - 1 exact for k <= 24
    big = _scale_f32(em + _F1, k) - _F1
    res = small if k < 25 else big
    res = res if x == x else x
    return x if abs(x) < _F_TINY else res


_F_TH = [F(c) for c in (-0.33333316, 0.13332586, -0.053852312, 0.021071685,
                        -0.0062742475)]
_FT0, _FT1, _FT2, _FT3, _FT4 = _F_TH


@njit(**_SJIT)
def tanh_f32(x):
    a = abs(x)
    z = x * x
    small = x + x * z * ((((_FT4 * z + _FT3) * z + _FT2) * z + _FT1) * z + _FT0)
    ac = a if a < F(10.0) else F(10.0)                  # tanh(10) == 1 in f32
    big = _F1 - _F2 / (exp_f32(ac + ac) + _F1)
    big = big if x > _F0 else -big
    res = small if a < F(0.55) else big
    res = x if a < _F_TINY else res          # keeps the sign of -0
    return res if x == x else x


@njit(**_SJIT)
def sigmoid_f32(x):
    # 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) for x < 0: never overflows and
    # keeps full relative accuracy in both tails.
    e = exp_f32(-abs(x))
    return (_F1 if x >= _F0 else e) / (_F1 + e)


_F_ERA = [F(c) for c in (0.12837917, -0.37612635, 0.11283733, -0.02686159,
                         0.0052067563, -0.0008211198, 8.6757704e-05)]
_F_ERB = [F(c) for c in (0.29628748, 1.0009191, 0.45077392, -0.42988798,
                         -0.15248315, 0.52775437, -0.36315846)]
_FA0, _FA1, _FA2, _FA3, _FA4, _FA5, _FA6 = _F_ERA
_FB0, _FB1, _FB2, _FB3, _FB4, _FB5, _FB6 = _F_ERB


@njit(**_SJIT)
def erf_f32(x):
    # |x| < 0.875: x + x*A(x^2).  Else 1 - exp(-x^2) * B(1/(1+|x|) - 0.375),
    # B ~ erfcx on [0.875, 3.95]; erf == 1 in float32 beyond.
    z = x * x
    small = x + x * ((((((_FA6 * z + _FA5) * z + _FA4) * z + _FA3) * z
                       + _FA2) * z + _FA1) * z + _FA0)
    a = abs(x)
    ac = a if a < F(3.95) else F(3.95)
    u = _F1 / (_F1 + ac) - F(0.375)
    b = (((((_FB6 * u + _FB5) * u + _FB4) * u + _FB3) * u + _FB2) * u
         + _FB1) * u + _FB0
    big = _F1 - exp_f32(-(ac * ac)) * b
    big = big if x > _F0 else -big
    res = small if a < F(0.875) else big
    return res if x == x else x


# ============================================================== float64 ====
_D0, _D1, _D2, _DH = D(0.0), D(1.0), D(2.0), D(0.5)
_DINF, _DNAN = D(np.inf), D(np.nan)
_D_SHIFT = D(6755399441055744.0)    # 1.5*2**52
_D_LOG2E = D(1.4426950408889634)
_D_LN2HI, _D_LN2LO = D(6.93147180369123816490e-01), D(1.90821492927058770002e-10)
_DP1, _DP2 = D(1.66666666666666019037e-01), D(-2.77777777770155933842e-03)
_DP3, _DP4 = D(6.61375632143793436117e-05), D(-1.65339022054652515390e-06)
_DP5 = D(4.13813679705723846039e-08)


@njit(**_SJIT)
def _scale_f64(p, k):
    k1 = k >> 1
    s1 = _bits_f64(I64((k1 + 1023) << 52))
    s2 = _bits_f64(I64((k - k1 + 1023) << 52))
    return (p * s1) * s2


@njit(**_SJIT)
def exp_f64(x):
    # fdlibm e_exp.c, made branch-free.
    xc = x if x > D(-746.0) else D(-746.0)
    xc = xc if xc < D(710.0) else D(710.0)
    kf = (xc * _D_LOG2E + _D_SHIFT) - _D_SHIFT
    hi = xc - kf * _D_LN2HI                 # exact: LN2HI has 32 bits
    lo = kf * _D_LN2LO
    r = hi - lo
    z = r * r
    c = r - z * (_DP1 + z * (_DP2 + z * (_DP3 + z * (_DP4 + z * _DP5))))
    y = _D1 - ((lo - (r * c) / (_D2 - c)) - hi)
    res = _scale_f64(y, I64(kf))
    return res if x == x else x


_LG1, _LG2 = D(6.666666666666735130e-01), D(3.999999999940941908e-01)
_LG3, _LG4 = D(2.857142874366239149e-01), D(2.222219843214978396e-01)
_LG5, _LG6 = D(1.818357216161805012e-01), D(1.531383769920937332e-01)
_LG7 = D(1.479819860511658591e-01)
_D_MINNORM, _D_2P54 = D(2.0 ** -1022), D(2.0 ** 54)


@njit(**_SJIT)
def log_f64(x):
    # musl log.c (fdlibm), 64-bit integer form.
    sub = x < _D_MINNORM
    xs = x * _D_2P54 if sub else x
    ix = _f64_bits(xs) + (0x3FF0000000000000 - 0x3FE6A09E00000000)
    k = (ix >> 52) - 0x3FF - (54 if sub else 0)
    m = _bits_f64((ix & 0x000FFFFFFFFFFFFF) + 0x3FE6A09E00000000)
    f = m - _D1
    hfsq = _DH * f * f
    s = f / (_D2 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    dk = D(k)
    res = s * (hfsq + (t2 + t1)) + dk * _D_LN2LO - hfsq + f + dk * _D_LN2HI
    res = res if x < _DINF else x
    return res if x > _D0 else (-_DINF if x == _D0 else _DNAN)


_D_TINY = D(2.0 ** -54)


@njit(**_SJIT)
def log1p_f64(x):
    u = x + _D1
    lu = log_f64(u)
    res = lu + (x - (u - _D1)) / u
    res = res if (u > _D0) & (u < _DINF) else lu
    return x if abs(x) < _D_TINY else res


_D_EM = [D(c) for c in (
    0.16666666666666677, 0.04166666666666657, 0.008333333333321258,
    0.0013888888888947018, 0.00019841269887563032, 2.4801587192009858e-05,
    2.755724236300366e-06, 2.755738973188995e-07, 2.5109798102014914e-08,
    2.0878956448295087e-09)]
_DM0, _DM1, _DM2, _DM3, _DM4, _DM5, _DM6, _DM7, _DM8, _DM9 = _D_EM


@njit(**_SJIT)
def expm1_f64(x):
    xc = x if x > D(-40.0) else D(-40.0)
    xc = xc if xc < D(710.0) else D(710.0)
    kf = (xc * _D_LOG2E + _D_SHIFT) - _D_SHIFT
    hi = xc - kf * _D_LN2HI
    r = hi - kf * _D_LN2LO
    q = (((((((((_DM9 * r + _DM8) * r + _DM7) * r + _DM6) * r + _DM5) * r
             + _DM4) * r + _DM3) * r + _DM2) * r + _DM1) * r + _DM0) * r + _DH
    em = r + (r * r) * q
    k = I64(kf)
    ks = k if k < 54 else 54
    s = _bits_f64(I64((ks + 1023) << 52))
    small = em * s + (s - _D1)             # s - 1 exact for k <= 53
    big = _scale_f64(em + _D1, k) - _D1
    res = small if k < 54 else big
    res = res if x == x else x
    return x if abs(x) < _D_TINY else res


_D_TH = [D(c) for c in (
    -0.333333333333333, 0.13333333333326622, -0.053968253963760926,
    0.021869488385864017, -0.00886323260156358, 0.0035920920315772233,
    -0.0014555428526127733, 0.0005884445128006687, -0.00023338162949826518,
    8.331653527403778e-05, -1.9494739531314743e-05)]
_DT0, _DT1, _DT2, _DT3, _DT4, _DT5, _DT6, _DT7, _DT8, _DT9, _DT10 = _D_TH


@njit(**_SJIT)
def tanh_f64(x):
    a = abs(x)
    z = x * x
    p = ((((((((((_DT10 * z + _DT9) * z + _DT8) * z + _DT7) * z + _DT6) * z
               + _DT5) * z + _DT4) * z + _DT3) * z + _DT2) * z + _DT1) * z
         + _DT0)
    small = x + x * z * p
    ac = a if a < D(22.0) else D(22.0)
    big = _D1 - _D2 / (exp_f64(ac + ac) + _D1)
    big = big if x > _D0 else -big
    res = small if a < D(0.55) else big
    res = x if a < _D_TINY else res
    return res if x == x else x


@njit(**_SJIT)
def sigmoid_f64(x):
    e = exp_f64(-abs(x))
    return (_D1 if x >= _D0 else e) / (_D1 + e)


_D_ERA = [D(c) for c in (
    0.1283791670955126, -0.37612638903183754, 0.11283791670955111,
    -0.026866170645126863, 0.005223977625377074, -0.0008548327017693369,
    0.00012055332654443926, -1.4925637861987422e-05, 1.646178698839979e-06,
    -1.6359933693986147e-07, 1.4734663372975106e-08, -1.1708959786141793e-09,
    6.619796891532709e-11)]
_D_ERB = [D(c) for c in (
    0.26546192199728147, 0.9715075859539968, 0.49001152977020324,
    -0.4054162092244868, -0.23925991810705524, 0.5745732065532186,
    -0.19637796867646204, -0.6366631994981371, 1.12302422061825,
    -0.43212808666017166, -1.5156688454754312, 3.409453816163148,
    -2.736139531978837, -2.2064496460445677, 8.18818257948622,
    -7.048631887168459)]
(_DA0, _DA1, _DA2, _DA3, _DA4, _DA5, _DA6, _DA7, _DA8, _DA9, _DA10, _DA11,
 _DA12) = _D_ERA
(_DB0, _DB1, _DB2, _DB3, _DB4, _DB5, _DB6, _DB7, _DB8, _DB9, _DB10, _DB11,
 _DB12, _DB13, _DB14, _DB15) = _D_ERB


@njit(**_SJIT)
def erf_f64(x):
    z = x * x
    pa = _DA12
    pa = pa * z + _DA11
    pa = pa * z + _DA10
    pa = pa * z + _DA9
    pa = pa * z + _DA8
    pa = pa * z + _DA7
    pa = pa * z + _DA6
    pa = pa * z + _DA5
    pa = pa * z + _DA4
    pa = pa * z + _DA3
    pa = pa * z + _DA2
    pa = pa * z + _DA1
    pa = pa * z + _DA0
    small = x + x * pa
    a = abs(x)
    ac = a if a < D(6.0) else D(6.0)
    u = _D1 / (_D1 + ac) - D(0.34375)
    b = _DB15
    b = b * u + _DB14
    b = b * u + _DB13
    b = b * u + _DB12
    b = b * u + _DB11
    b = b * u + _DB10
    b = b * u + _DB9
    b = b * u + _DB8
    b = b * u + _DB7
    b = b * u + _DB6
    b = b * u + _DB5
    b = b * u + _DB4
    b = b * u + _DB3
    b = b * u + _DB2
    b = b * u + _DB1
    b = b * u + _DB0
    big = _D1 - exp_f64(-(ac * ac)) * b
    big = big if x > _D0 else -big
    res = small if a < D(0.875) else big
    return res if x == x else x


# =============================================================== sin/cos ===
# Argument reduction, shared by float32 and float64, branch-free for every x:
#
# * |x| < 2**20: Cody-Waite, x - k*pi/2 with pi/2 = P0+P1+P2+P3 split at the
#   absolute bit positions 2**-31, 2**-62, 2**-93, so that k*P0, k*P1, k*P2
#   and the differences are exact (the fdlibm __rem_pio2 medium case).
# * |x| >= 2**20 (up to inf): Payne-Hanek in table form.  x = m*2**e with a
#   53-bit integer m = a0*2**35 + a1*2**17 + a2, and T[e] = 2**e mod pi/2
#   (split the same way; the whole quadrants q_e are kept mod 4 in an integer
#   table), so y = a0*T[e+35] + a1*T[e+17] + a2*T[e] is congruent to x mod
#   pi/2 and < 2**20.3 -- then the case above.  All partial products and
#   sums are exact; 3 gathers per piece.
# Both paths are computed for every lane and selected (no libm fallback):
# max error ~2**-125 absolute, enough for the worst double (|r| ~ 2**-61).
_PI4_HEX = (   # floor(pi/4 * 2**1280), from mpmath; checked in the tests
    "c90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22"
    "514a08798e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245"
    "e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7edee386bfb5a899fa5"
    "ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da48361c55d39a"
    "69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb9ed529077096966d")
_TEMIN, _TEMAX = -40, 1010


def _split4(num, scale):
    """num * 2**-scale (a non-negative integer ratio) as 4 doubles cut at
    2**-31, 2**-62, 2**-93 (the first three exact) plus the rounded rest."""
    out = []
    for lsb in (31, 62, 93):
        t = num >> (scale - lsb)
        num -= t << (scale - lsb)
        out.append(math.ldexp(float(t), -lsb))
    out.append(math.ldexp(float(num >> (scale - 93 - 64)), -(93 + 64)))
    return out


def _pio2_tables():
    pio2 = int(_PI4_HEX, 16) << 1            # pi/2 * 2**1280
    tab = np.empty((4, _TEMAX - _TEMIN + 1))
    quad = np.empty(_TEMAX - _TEMIN + 1, np.int64)
    for i, e in enumerate(range(_TEMIN, _TEMAX + 1)):
        q, rem = divmod(1 << (e + 1280), pio2)
        tab[:, i] = _split4(rem, 1280)
        quad[i] = q & 3                      # the quadrant matters mod 4
    return pio2, tab, quad


_PIO2_INT, _PIO2_TAB, _TQ = _pio2_tables()
_T0, _T1, _T2, _T3 = (np.ascontiguousarray(t) for t in _PIO2_TAB)
_P0, _P1, _P2, _P3 = (D(v) for v in _split4(_PIO2_INT, 1280))
_NT = I64(_TEMAX - _TEMIN)
_D_INVPIO2 = D(6.36619772367581382433e-01)
_D_2P20 = D(2.0 ** 20)


@njit(**_SJIT)
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(**_SJIT)
def _tidx(i):
    i = i if i > 0 else 0
    return i if i < _NT else _NT


@njit(**_SJIT)
def _rem_pio2(ax):
    """ax = |x| -> (k, hi, lo): ax - k*pi/2 == hi + lo, |hi| <~ pi/4."""
    ix = _f64_bits(ax)
    e = (ix >> 52) - 1075
    m = (ix & 0x000FFFFFFFFFFFFF) | 0x0010000000000000
    i0, i1, i2 = _tidx(e + 35 - _TEMIN), _tidx(e + 17 - _TEMIN), _tidx(e - _TEMIN)
    m0, m1, m2 = m >> 35, (m >> 17) & 0x3FFFF, m & 0x1FFFF
    a0, a1, a2 = D(m0), D(m1), D(m2)
    big = (ax >= _D_2P20) & (ax < _DINF)
    # 2**e = q_e*pi/2 + t_e: the q_e parts add whole quadrants
    qb = (m0 * _TQ[i0] + m1 * _TQ[i1] + m2 * _TQ[i2]) if big else 0
    y0 = a0 * _T0[i0] + a1 * _T0[i1] + a2 * _T0[i2]
    y1 = a0 * _T1[i0] + a1 * _T1[i1] + a2 * _T1[i2]
    y2 = a0 * _T2[i0] + a1 * _T2[i1] + a2 * _T2[i2]
    y3 = a0 * _T3[i0] + a1 * _T3[i1] + a2 * _T3[i2]
    y0 = y0 if big else (ax if ax < _D_2P20 else _D0)   # inf/NaN -> 0
    y1 = y1 if big else _D0
    y2 = y2 if big else _D0
    y3 = y3 if big else _D0
    kf = (y0 * _D_INVPIO2 + _D_SHIFT) - _D_SHIFT
    s1, e1 = _two_sum(y0 - kf * _P0, y1 - kf * _P1)   # both differences exact
    s2, e2 = _two_sum(y2 - kf * _P2, y3 - kf * _P3)
    hi, e3 = _two_sum(s1, s2)
    lo = e1 + e2 + e3
    r = hi + lo
    return (I64(kf) + qb) & 3, r, lo - (r - hi)


_KS1, _KS2 = D(-1.66666666666666324348e-01), D(8.33333333332248946124e-03)
_KS3, _KS4 = D(-1.98412698298579493134e-04), D(2.75573137070700676789e-06)
_KS5, _KS6 = D(-2.50507602534068634195e-08), D(1.58969099521155010221e-10)
_KC1, _KC2 = D(4.16666666666666019037e-02), D(-1.38888888888741095749e-03)
_KC3, _KC4 = D(2.48015872894767294178e-05), D(-2.75573143513906633035e-07)
_KC5, _KC6 = D(2.08757232129817482790e-09), D(-1.13596475577881948265e-11)


@njit(**_SJIT)
def _sincos_f64(x, want_cos):
    # fdlibm __kernel_sin / __kernel_cos on the double-double (y0, y1).
    k, y0, y1 = _rem_pio2(abs(x))
    z = y0 * y0
    v = z * y0
    rs = _KS2 + z * (_KS3 + z * (_KS4 + z * (_KS5 + z * _KS6)))
    s = y0 - ((z * (_DH * y1 - v * rs) - y1) - v * _KS1)
    w = z * z
    rc = z * (_KC1 + z * (_KC2 + z * _KC3)) + w * w * (_KC4 + z * (_KC5 + z * _KC6))
    hz = _DH * z
    w1 = _D1 - hz
    c = w1 + (((_D1 - w1) - hz) + (z * rc - y0 * y1))
    q = k + (1 if want_cos else 0)          # cos(x) = sin(|x| + pi/2)
    o = c if q & 1 else s
    o = -o if q & 2 else o
    o = -o if (_f64_bits(x) < 0) and not want_cos else o   # sin is odd (-0 too)
    return o if x - x == _D0 else x - x                    # inf, NaN -> NaN


@njit(**_SJIT)
def sin_f64(x):
    return _sincos_f64(x, False)


@njit(**_SJIT)
def cos_f64(x):
    return _sincos_f64(x, True)


# float32: |x| < 2**20 by Cody-Waite in float64; larger |x| (up to inf) by
# glibc's integer Payne-Hanek (sysdeps/ieee754/flt-32/s_sincosf.h,
# reduce_large): the 24-bit mantissa times a 96-bit window of 2/pi gives the
# quadrant and a 62-bit fraction exactly (3 gathers).  Polynomials in float64.
U64 = np.uint64
_INV_PIO4 = np.array([((1 << (8 * i + 8 + 1280)) // _PIO2_INT) & 0xFFFFFFFF
                      for i in range(24)], dtype=np.uint64)
_U1, _U7, _U15, _U23, _U26 = U64(1), U64(7), U64(15), U64(23), U64(26)
_U32, _U61, _U62 = U64(32), U64(61), U64(62)
_U_MANT, _U_IMPL = U64(0x7FFFFF), U64(0x800000)
_PI63 = D(1.5707963267948966 * 2.0 ** -62)
_SF = [D(c) for c in (-0.16666666640800898, 0.008333329305182751,
                      -0.00019839312357035335, 2.7181223167396007e-06)]
_CF = [D(c) for c in (0.041666666619487584, -0.0013888883499821114,
                      2.4799460099095326e-05, -2.720575028514781e-07)]
_S0, _S1, _S2, _S3 = _SF
_C0, _C1, _C2, _C3 = _CF


@njit(**_SJIT)
def _rem_pio2_f32(ax):
    """ax = |x| (float32) -> (k, r): ax - k*pi/2 == r (float64, ~2**-33 rel)."""
    xd = D(ax)
    small = ax < F(1048576.0)
    xs = xd if small else _D0
    kf = (xs * _D_INVPIO2 + _D_SHIFT) - _D_SHIFT
    rs = ((xs - kf * _P0) - kf * _P1) - kf * _P2
    xi = U64(_f32_bits(ax))
    j = (xi >> _U26) & _U15
    m = ((xi & _U_MANT) | _U_IMPL) << ((xi >> _U23) & _U7)
    r0 = (m * _INV_PIO4[j]) << _U32           # only the low 32 bits survive
    r0 = r0 + (m * _INV_PIO4[j + U64(4)]) + ((m * _INV_PIO4[j + U64(8)]) >> _U32)
    n = (r0 + (_U1 << _U61)) >> _U62
    r0 = r0 - (n << _U62)
    rl = D(I64(r0)) * _PI63
    k = I64(kf) if small else I64(n)
    return k & 3, (rs if small else rl)


@njit(**_SJIT)
def _sincos_f32(x, want_cos):
    k, r = _rem_pio2_f32(abs(x))
    z = r * r
    s = r + r * z * (((_S3 * z + _S2) * z + _S1) * z + _S0)
    c = _D1 - _DH * z + (z * z) * (((_C3 * z + _C2) * z + _C1) * z + _C0)
    q = k + (1 if want_cos else 0)
    o = c if q & 1 else s
    o = -o if q & 2 else o
    o = -o if (_f32_bits(x) < 0) and not want_cos else o
    return F(o) if x - x == _F0 else x - x


@njit(**_SJIT)
def sin_f32(x):
    return _sincos_f32(x, False)


@njit(**_SJIT)
def cos_f32(x):
    return _sincos_f32(x, True)


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
__all__ += list(FUNCTIONS)


# ======================================================== array wrappers ===
# One block function specialised on a literal ``op`` (closures over the
# scalar function would not be cacheable: numba keys its cache on pickled
# closure cells).  Small arrays run the block directly (no thread pool,
# ~1 us); large ones through a prange driver over blocks.
_BLOCK, _SERIAL_BELOW = 1 << 14, 1 << 15


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


def _as_float_array(x):
    """Contiguous float32/float64 array (other dtypes go to float64)."""
    a = np.asarray(x)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return a if a.flags.c_contiguous else a.copy(order="C")   # keeps 0-d


def _make_array_fn(name):
    op = FUNCTIONS.index(name)

    def fn(x):
        a = _as_float_array(x)
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
__all__ += ["v" + n for n in FUNCTIONS] + ["ARRAY_FUNCS"]


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


if __name__ == "__main__":                  # python -m kernels.vmath
    tab = accuracy_table()
    print(f"{'function':10s} {'float32':>8s} {'float64':>8s}")
    for fname in FUNCTIONS:
        print(f"{fname:10s} {tab[(fname, 'float32')]:8.0f} "
              f"{tab[(fname, 'float64')]:8.0f}")
