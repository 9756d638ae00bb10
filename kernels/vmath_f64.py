"""float64 scalar implementations for :mod:`vmapper.kernels.vmath`: exp, log,
log1p, expm1, tanh, sigmoid, erf."""
import numpy as np
from numba import njit

from .vmath_common import D, I64, _SJIT, _bits_f64, _f64_bits, fma
# ============================================================== float64 ====
_D0, _D1, _D2, _DH = D(0.0), D(1.0), D(2.0), D(0.5)
_DINF, _DNAN = D(np.inf), D(np.nan)
_D_SHIFT = D(6755399441055744.0)    # 1.5*2**52
_D_LOG2E = D(1.4426950408889634)
_D_LN2HI, _D_LN2LO = D(6.93147180369123816490e-01), D(1.90821492927058770002e-10)
# exp(r) = 1 + r + r*r*Q(r), |r| <= ln2/2: Q a relative-minimax fit of
# (exp(r) - 1 - r)/r**2 (error 2.7e-18).  No division (fdlibm's rational form
# needs one, and a divide is the slowest vector instruction: 16 cycles per 8
# lanes here, so the activation kernels were bound on it); the reconstruction
# 1 + (hi - (lo - r*r*Q)) keeps the hi/lo split of the reduction, max 1 ulp.
_D_EQ = [D(c) for c in (
    0.5, 0.1666666666666667, 0.041666666666666616, 0.008333333333326162,
    0.001388888888891799, 0.0001984126987474086, 2.4801587245688026e-05,
    2.7557255488765165e-06, 2.755734965173676e-07, 2.5105184234259897e-08,
    2.088936969391941e-09)]
_DQ0, _DQ1, _DQ2, _DQ3, _DQ4, _DQ5, _DQ6, _DQ7, _DQ8, _DQ9, _DQ10 = _D_EQ


@njit(**_SJIT)
def _scale_f64(p, k):
    k1 = k >> 1
    s1 = _bits_f64(I64((k1 + 1023) << 52))
    s2 = _bits_f64(I64((k - k1 + 1023) << 52))
    return (p * s1) * s2


@njit(**_SJIT)
def _exp_q_f64(r):
    # Estrin's scheme: the same terms as Horner's in a shorter dependency chain
    r2 = r * r
    r4 = r2 * r2
    a = fma(r2, fma(_DQ3, r, _DQ2), fma(_DQ1, r, _DQ0))
    b = fma(r2, fma(_DQ7, r, _DQ6), fma(_DQ5, r, _DQ4))
    c = fma(r2, _DQ10, fma(_DQ9, r, _DQ8))
    return fma(r4, fma(r4, c, b), a)


@njit(**_SJIT)
def exp_f64(x):
    # fdlibm's range reduction; a division-free polynomial (see _D_EQ).
    xc = x if x > D(-746.0) else D(-746.0)
    xc = xc if xc < D(710.0) else D(710.0)
    kf = fma(xc, _D_LOG2E, _D_SHIFT) - _D_SHIFT
    hi = fma(-kf, _D_LN2HI, xc)             # exact: LN2HI has 32 bits
    lo = kf * _D_LN2LO
    r = hi - lo
    y = _D1 + (hi - fma(-(r * r), _exp_q_f64(r), lo))
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
    t1 = w * fma(w, fma(w, _LG6, _LG4), _LG2)
    t2 = z * fma(w, fma(w, fma(w, _LG7, _LG5), _LG3), _LG1)
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
    kf = fma(xc, _D_LOG2E, _D_SHIFT) - _D_SHIFT
    hi = fma(-kf, _D_LN2HI, xc)
    r = fma(-kf, _D_LN2LO, hi)
    q = fma(r, _DM9, _DM8)
    for c in (_DM7, _DM6, _DM5, _DM4, _DM3, _DM2, _DM1, _DM0, _DH):
        q = fma(q, r, c)
    em = fma(r * r, q, r)
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
    p = fma(_DT10, z, _DT9)
    for c in (_DT8, _DT7, _DT6, _DT5, _DT4, _DT3, _DT2, _DT1, _DT0):
        p = fma(p, z, c)
    small = fma(x * z, p, x)
    # 1 - 2/(exp(2a) + 1) with exp(-2a) = n/m from the rational form: one division in all,
    # and a shorter polynomial than exp_f64's (same 2 ulp; 20% faster over 10**7 points)
    r, R, k = _exp_rat_f64(-(a + a))
    n = _scale_f64(R + r, k)
    big = _D1 - (n + n) / ((R - r) + n)
    big = big if x > _D0 else -big
    res = small if a < D(0.55) else big
    res = x if a < _D_TINY else res
    return res if x == x else x


@njit(**_SJIT)
def sigmoid_f64(x):
    e = exp_f64(-abs(x))
    return (_D1 if x >= _D0 else e) / (_D1 + e)


# fdlibm's rational form of exp on the reduced range: exp(r) = (R + r)/(R - r)
# with R = 2 + r*r*P(r*r) (error < 2**-59).  fdlibm evaluates it with a
# division of its own; the fraction helpers below return numerator and
# denominator instead, and the fused activation kernels fold them into the
# division that sigmoid/tanh need anyway (several of those into one).
_DP1, _DP2 = D(1.66666666666666019037e-01), D(-2.77777777770155933842e-03)
_DP3, _DP4 = D(6.61375632143793436117e-05), D(-1.65339022054652515390e-06)
_DP5 = D(4.13813679705723846039e-08)


@njit(**_SJIT)
def _exp_rat_f64(x):
    """``(r, R, k)`` with ``exp(x) = 2**k * (R + r)/(R - r)``, for x <= 0
    (a NaN gives finite garbage: callers select it out).  Clamped at -760,
    not -746: 2**k*(R + r) itself must underflow to 0 where exp(x) does."""
    xc = x if x > D(-760.0) else D(-760.0)
    kf = fma(xc, _D_LOG2E, _D_SHIFT) - _D_SHIFT
    r = fma(-kf, _D_LN2LO, fma(-kf, _D_LN2HI, xc))
    z = r * r
    R = fma(z, fma(z, fma(z, fma(z, fma(z, _DP5, _DP4), _DP3), _DP2), _DP1), _D2)
    return r, R, I64(kf)


@njit(**_SJIT)
def _sig_frac_f64(x):
    """``(p, d, q)``: sigmoid(x) = p/d and sigmoid(x)*sigmoid(-x) = q/d**2,
    from exp(-|x|) = n/m (no division; p, d, q in (0, 6])."""
    r, R, k = _exp_rat_f64(-abs(x))
    n = _scale_f64(R + r, k)
    m = R - r
    p = m if x >= _D0 else n
    nan = x != x
    return (x if nan else p), m + n, (x if nan else n * m)


@njit(**_SJIT)
def _tanh_frac_f64(x):
    """``(t, d, q)``: tanh(x) = t/d and 1 - tanh(x)**2 = q/d**2, from
    e = exp(-2|x|) = s*n/m as (1 - e)/(1 + e); 1 - s*n/m is formed as
    R*(1 - s) - r*(1 + s), without cancellation (k = 0: -2r exactly)."""
    a = abs(x)
    r, R, k = _exp_rat_f64(-(a + a))
    s = _scale_f64(_D1, k)                  # 2**k: 1 - s, 1 + s exact for k >= -53
    m = R - r
    n = s * (R + r)
    t = R * (_D1 - s) - r * (_D1 + s)
    t = t if x > _D0 else -t
    t = t if a > _D0 else x                 # +-0, NaN
    return t, m + n, (D(4.0) * n * m if x == x else x)


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


#: The largest x whose exp(x) numpy gives finite (exp overflows above it).
_D_EXP_FINITE = D(709.782712893384)


@njit(**_SJIT)
def logistic_f64(x):
    """``1/(1 + exp(-x))`` as numpy evaluates the expression, within 4 ulp: the sigmoid
    as one fraction (one division, no exp division of its own), and 0 where the
    expression's exp(-x) overflows (x < -709.78), as numpy's does."""
    p, d, _ = _sig_frac_f64(x)
    s = p / d
    return _D0 if -x > _D_EXP_FINITE else s
