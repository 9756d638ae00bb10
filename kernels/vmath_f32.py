"""float32 scalar implementations for :mod:`vmapper.kernels.vmath`: exp, log,
log1p, expm1, tanh, sigmoid, erf (computed in float32)."""
import numpy as np
from numba import njit

from .vmath_common import F, I32, _SJIT, _bits_f32, _f32_bits, fma
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
    kf = fma(xc, _F_LOG2E, _F_SHIFT) - _F_SHIFT
    r = fma(-kf, _F_LN2LO, fma(-kf, _F_LN2HI, xc))
    q = fma(fma(fma(fma(fma(_FE0, r, _FE1), r, _FE2), r, _FE3), r, _FE4), r, _FE5)
    p = fma(q, r * r, r) + _F1
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
    R = fma(z, fma(w, _F_LG3, _F_LG1), w * fma(w, _F_LG4, _F_LG2))
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
    kf = fma(xc, _F_LOG2E, _F_SHIFT) - _F_SHIFT
    r = fma(-kf, _F_LN2LO, fma(-kf, _F_LN2HI, xc))      # exact r = x if k=0
    q = fma(fma(fma(fma(fma(_FM4, r, _FM3), r, _FM2), r, _FM1), r, _FM0), r, _FH)
    em = fma(r * r, q, r)                               # expm1(r)
    k = I32(kf)
    ks = k if k < 25 else 25
    s = _bits_f32(I32((ks + 127) << 23))
    small = em * s + (s - _F1)             # s - 1 exact for k <= 24
    big = _scale_f32(em + _F1, k) - _F1
    res = small if k < 25 else big
    res = res if x == x else x
    return x if abs(x) < _F_TINY else res


# fdlibm's rational form of expf on the reduced range (see vmath_f64's
# _exp_rat_f64): exp(r) = (R + r)/(R - r), R = 2 + r*r*(P1 + r*r*P2),
# |error| < 2**-27.7; the fused activation kernels fold its division into theirs.
_F_P1, _F_P2 = F(1.6666625440e-1), F(-2.7667332906e-3)


@njit(**_SJIT)
def _exp_rat_f32(x):
    """``(r, R, k)`` with ``exp(x) = 2**k * (R + r)/(R - r)``, for x <= 0
    (a NaN gives finite garbage: callers select it out).  Clamped at -120,
    not -104: 2**k*(R + r) itself must underflow to 0 where exp(x) does."""
    xc = x if x > F(-120.0) else F(-120.0)
    kf = fma(xc, _F_LOG2E, _F_SHIFT) - _F_SHIFT
    r = fma(-kf, _F_LN2LO, fma(-kf, _F_LN2HI, xc))
    z = r * r
    R = fma(z, fma(z, _F_P2, _F_P1), _F2)
    return r, R, I32(kf)


@njit(**_SJIT)
def _sig_frac_f32(x):
    """``(p, d, q)``: sigmoid(x) = p/d, sigmoid(x)*sigmoid(-x) = q/d**2
    (see vmath_f64._sig_frac_f64)."""
    r, R, k = _exp_rat_f32(-abs(x))
    n = _scale_f32(R + r, k)
    m = R - r
    p = m if x >= _F0 else n
    nan = x != x
    return (x if nan else p), m + n, (x if nan else n * m)


@njit(**_SJIT)
def _tanh_frac_f32(x):
    """``(t, d, q)``: tanh(x) = t/d, 1 - tanh(x)**2 = q/d**2
    (see vmath_f64._tanh_frac_f64)."""
    a = abs(x)
    r, R, k = _exp_rat_f32(-(a + a))
    s = _scale_f32(_F1, k)
    m = R - r
    n = s * (R + r)
    t = R * (_F1 - s) - r * (_F1 + s)
    t = t if x > _F0 else -t
    t = t if a > _F0 else x                 # +-0, NaN
    return t, m + n, (F(4.0) * n * m if x == x else x)


_F_TH = [F(c) for c in (-0.33333316, 0.13332586, -0.053852312, 0.021071685,
                        -0.0062742475)]
_FT0, _FT1, _FT2, _FT3, _FT4 = _F_TH


@njit(**_SJIT)
def tanh_f32(x):
    a = abs(x)
    z = x * x
    small = fma(x * z, fma(fma(fma(fma(_FT4, z, _FT3), z, _FT2), z, _FT1), z, _FT0), x)
    r, R, k = _exp_rat_f32(-(a + a))                    # see tanh_f64
    n = _scale_f32(R + r, k)
    big = _F1 - (n + n) / ((R - r) + n)
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


