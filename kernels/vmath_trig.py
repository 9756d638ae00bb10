"""sin/cos for :mod:`vmapper.kernels.vmath` (float32 and float64): branch-free
Cody-Waite / table Payne-Hanek argument reduction and the polynomials."""
import math

import numpy as np
from numba import njit

from .vmath_common import D, F, I64, _SJIT, _f32_bits, _f64_bits
from .vmath_f64 import _D0, _D1, _DH, _DINF, _D_SHIFT
from .vmath_f32 import _F0
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
    k, y0, y1 = _rem_pio2(abs(x))
    return _sincos_reduced_f64(x, k, y0, y1, want_cos)


@njit(**_SJIT)
def _sincos_reduced_f64(x, k, y0, y1, want_cos):
    # fdlibm __kernel_sin / __kernel_cos on the double-double (y0, y1) = |x| - k*pi/2.
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
    return _sincos_reduced_f32(x, k, r, want_cos)


@njit(**_SJIT)
def _sincos_reduced_f32(x, k, r, want_cos):
    # r = |x| - k*pi/2 in float64
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


