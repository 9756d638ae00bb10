"""Scalar activation functions for numba code: the per-element maths of
:mod:`.activations` (``@njit``, inlined, generic over float32/float64;
``exact=True`` uses libm instead of :mod:`.vmath`)."""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from . import vmath as vm

_SJ = dict(error_model="numpy", cache=True, forceinline=True)


def _like(v, x):
    """``v`` converted to ``x``'s float type (keeps float32 math float32)."""
    return np.float64(v)


@overload(_like, jit_options=dict(forceinline=True))
def _ov_like(v, x):
    if x == types.float32:
        return lambda v, x: np.float32(v)
    return lambda v, x: np.float64(v)


@njit(**_SJ)
def _exp(x, exact):
    return math.exp(x) if exact else vm.exp(x)


@njit(**_SJ)
def _th(x, exact):
    return math.tanh(x) if exact else vm.tanh(x)


@njit(**_SJ)
def _erf(x, exact):
    return math.erf(x) if exact else vm.erf(x)


@njit(**_SJ)
def _log1p(x, exact):
    return math.log1p(x) if exact else vm.log1p(x)


@njit(**_SJ)
def sigmoid_scalar(x, exact=False):
    one = _like(1.0, x)
    e = _exp(-abs(x), exact)                       # never overflows
    return (one if x >= _like(0.0, x) else e) / (one + e)


@njit(**_SJ)
def tanh_scalar(x, exact=False):
    return _th(x, exact)


@njit(**_SJ)
def relu_scalar(x, exact=False):
    return x if (x > _like(0.0, x)) | (x != x) else _like(0.0, x)


@njit(**_SJ)
def softplus_scalar(x, exact=False):
    # max(x, 0) + log1p(exp(-|x|)): no overflow, full accuracy in both tails
    pos = x if x > _like(0.0, x) else _like(0.0, x)
    return pos + _log1p(_exp(-abs(x), exact), exact)


@njit(**_SJ)
def silu_scalar(x, exact=False):
    y = x * sigmoid_scalar(x, exact)
    return -_like(0.0, x) if x == -_like(np.inf, x) else y   # silu(-inf) = -0


_GK = 0.7978845608028654        # sqrt(2/pi)
_GC = 0.044715
_RSQRT2 = 0.7071067811865476
_RSQRT2PI = 0.3989422804014327


@njit(**_SJ)
def _sig_pair(z, exact):
    """(sigmoid(z), sigmoid(-z)) from one exp, both to full relative accuracy
    (no 1 - s cancellation in either tail)."""
    one = _like(1.0, z)
    e = _exp(-abs(z), exact)
    d = one + e
    pos = z >= _like(0.0, z)
    return (one if pos else e) / d, (e if pos else one) / d


# vmath sigmoid/tanh as fractions (p, d, q): value p/d, derivative factor
# q/d**2 (sigma*(1 - sigma), 1 - tanh**2, without cancellation); d in [1, 6].
# A vector divide costs as much as ~30 multiplies here, so the fused kernels
# combine several fractions into one division (see vmath_f64._exp_rat_f64).
_sig_frac = vm.sig_frac
_tanh_frac = vm.tanh_frac


@njit(**_SJ)
def _one_plus_erf(z, exact):
    """``1 + erf(z)``; below z = -0.35 as ``erfc(-z)`` (libm), where 1 + erf(z) would cancel:
    the erf GELU's negative tail keeps its relative accuracy instead of flushing to 0."""
    if z >= _like(-0.35, z) or z != z:
        return _like(1.0, z) + _erf(z, exact)
    return math.erfc(-z)


@njit(**_SJ)
def gelu_scalar(x, approx_tanh=True, exact=False):
    half, one = _like(0.5, x), _like(1.0, x)
    if approx_tanh:
        # 0.5*(1 + tanh(u)) == sigmoid(2u): same cost, but no cancellation
        # in 1 + tanh(u) for x << 0 (float32 loses all digits there)
        z = _like(2 * _GK, x) * (x + _like(_GC, x) * x * x * x)
        if exact:
            y = x * _sig_pair(z, exact)[0]
        else:
            p, d, _ = _sig_frac(z)          # float64: exp's division folded in
            y = x * (p / d)
    else:
        y = half * x * _one_plus_erf(x * _like(_RSQRT2, x), exact)
    return -_like(0.0, x) if x == -_like(np.inf, x) else y   # gelu(-inf) = -0


@njit(**_SJ)
def sigmoid_vjp_scalar(x, g, exact=False):
    # sigmoid(x) * sigmoid(-x), not s * (1 - s): 1 - s cancels as s saturates
    if exact:
        sp, sn = _sig_pair(x, exact)
        return g * (sp * sn)
    _, d, q = _sig_frac(x)
    return g * (q / (d * d))


@njit(**_SJ)
def tanh_vjp_scalar(x, g, exact=False):
    # 1 - tanh(x)**2 = 4 sigmoid(2x) sigmoid(-2x), without the cancellation of 1 - t*t
    if exact:
        sp, sn = _sig_pair(x + x, exact)
        return g * (_like(4.0, x) * sp * sn)
    _, d, q = _tanh_frac(x)
    return g * (q / (d * d))


@njit(**_SJ)
def relu_vjp_scalar(x, g, exact=False):
    return g if x > _like(0.0, x) else _like(0.0, x)      # as torch and JAX: 0 at 0 and at NaN


@njit(**_SJ)
def softplus_vjp_scalar(x, g, exact=False):
    return g * sigmoid_scalar(x, exact)


@njit(**_SJ)
def silu_vjp_scalar(x, g, exact=False):
    one = _like(1.0, x)
    s = sigmoid_scalar(x, exact)
    big = _like(1e4, x)                 # past this s*(1-s) terms are exact 0/1
    xc = x if x < big else big
    xc = xc if xc > -big else -big
    return g * (s * (one + xc * (one - s)))


@njit(**_SJ)
def gelu_vjp_scalar(x, g, approx_tanh=True, exact=False):
    half, one = _like(0.5, x), _like(1.0, x)
    lim = _like(40.0, x)            # beyond: the second term is exactly 0
    xc = x if x < lim else lim
    xc = xc if xc > -lim else -lim
    if approx_tanh:
        # d/dx x*sigmoid(z) = s(z) + x * z'(x) * s(z) * s(-z), z = 2u
        k2, c = _like(2 * _GK, x), _like(_GC, x)
        z = k2 * (x + c * x * x * x)
        if exact:
            sp, sn = _sig_pair(z, exact)
            ss = sp * sn
        else:                       # one division: s(z) = p/d, s(z)s(-z) = e/d**2
            p, dd, e = _sig_frac(z)
            r = one / dd
            sp, ss = p * r, e * r * r
        d = sp + xc * k2 * (one + _like(3.0, x) * c * xc * xc) * ss
    else:
        d = half * _one_plus_erf(x * _like(_RSQRT2, x), exact) + xc * _like(_RSQRT2PI, x) * _exp(
            -half * xc * xc, exact)
    return g * d


@njit(**_SJ)
def _lstm_fast(i, f, o, u, c_prev):
    # vmath: two divisions instead of five (see _sig_frac): one for
    # sigma(i), tanh(u), sigma(f) together, one for sigma(o)*tanh(c).
    pi_, di, _ = _sig_frac(i)
    pf, df, _ = _sig_frac(f)
    po, do, _ = _sig_frac(o)
    nu, du, _ = _tanh_frac(u)
    ddu = di * du
    r = _like(1.0, i) / (ddu * df)
    c = pi_ * nu * df * r + pf * ddu * r * c_prev   # sigma(f) in full before c_prev
    nc, dc, _ = _tanh_frac(c)
    return (po * nc) / (do * dc), c


@njit(**_SJ)
def lstm_cell_scalar(i, f, o, u, c_prev, exact=False):
    if not exact:
        return _lstm_fast(i, f, o, u, c_prev)
    c = sigmoid_scalar(i, exact) * _th(u, exact) + sigmoid_scalar(f, exact) * c_prev
    return sigmoid_scalar(o, exact) * _th(c, exact), c


@njit(**_SJ)
def _recip4(a, b, c, d):
    """1/a, 1/b, 1/c, 1/d from one division (Montgomery's trick; all in [1, 6])."""
    ab = a * b
    abc = ab * c
    r = _like(1.0, a) / (abc * d)
    rabc = r * d
    rab = rabc * c
    return rab * b, rab * a, rabc * ab, r * abc


@njit(**_SJ)
def _lstm_vjp_fast(i, f, o, u, c_prev, gh, gc):
    # vmath: two divisions instead of five; sigma*(1 - sigma) and 1 - tanh**2
    # come from exp(-|x|) (_sig_frac/_tanh_frac), without cancellation.
    pi_, di, ei = _sig_frac(i)
    pf, df, ef = _sig_frac(f)
    po, do, eo = _sig_frac(o)
    nu, du, eu = _tanh_frac(u)
    ri, rf, ro, ru = _recip4(di, df, do, du)
    si, sf, so, tu = pi_ * ri, pf * rf, po * ro, nu * ru
    nc, dc_, ec = _tanh_frac(si * tu + sf * c_prev)
    rc = _like(1.0, i) / dc_
    dc = gc + gh * so * (ec * rc * rc)       # total gradient reaching c
    return (dc * tu * (ei * ri * ri), dc * c_prev * (ef * rf * rf),
            gh * (nc * rc) * (eo * ro * ro), dc * si * (eu * ru * ru), dc * sf)


@njit(**_SJ)
def lstm_cell_vjp_scalar(i, f, o, u, c_prev, gh, gc, exact=False):
    if not exact:
        return _lstm_vjp_fast(i, f, o, u, c_prev, gh, gc)
    one = _like(1.0, i)
    si, sf, so = sigmoid_scalar(i, exact), sigmoid_scalar(f, exact), sigmoid_scalar(o, exact)
    tu = _th(u, exact)
    tc = _th(si * tu + sf * c_prev, exact)
    dc = gc + gh * so * (one - tc * tc)           # total gradient reaching c
    return (dc * tu * si * (one - si), dc * c_prev * sf * (one - sf),
            gh * tc * so * (one - so), dc * si * (one - tu * tu), dc * sf)


@njit(**_SJ)
def _tree_fast(i, fl, fr, o, u, cl, cr):
    # as _lstm_fast: one division for sigma(i), sigma(fl), sigma(fr), tanh(u)
    pi_, di, _ = _sig_frac(i)
    pl, dl, _ = _sig_frac(fl)
    pr, dr, _ = _sig_frac(fr)
    po, do, _ = _sig_frac(o)
    nu, du, _ = _tanh_frac(u)
    ri, rl, rr, ru = _recip4(di, dl, dr, du)
    c = (pi_ * ri) * (nu * ru) + (pl * rl) * cl + (pr * rr) * cr
    nc, dc, _ = _tanh_frac(c)
    return (po * nc) / (do * dc), c


@njit(**_SJ)
def tree_lstm_cell_scalar(i, fl, fr, o, u, cl, cr, exact=False):
    if not exact:
        return _tree_fast(i, fl, fr, o, u, cl, cr)
    c = (sigmoid_scalar(i, exact) * _th(u, exact)
         + sigmoid_scalar(fl, exact) * cl + sigmoid_scalar(fr, exact) * cr)
    return sigmoid_scalar(o, exact) * _th(c, exact), c


@njit(**_SJ)
def _tree_vjp_fast(i, fl, fr, o, u, cl, cr, gh, gc):
    pi_, di, qi = _sig_frac(i)
    pl, dl, ql = _sig_frac(fl)
    pr, dr, qr = _sig_frac(fr)
    po, do, qo = _sig_frac(o)
    nu, du, qu = _tanh_frac(u)
    ri, rl, rr, rud = _recip4(di, dl, dr, du * do)
    ru, ro = rud * do, rud * du
    si, sl, sr, so, tu = pi_ * ri, pl * rl, pr * rr, po * ro, nu * ru
    nc, dc_, qc = _tanh_frac(si * tu + sl * cl + sr * cr)
    rc = _like(1.0, i) / dc_
    dc = gc + gh * so * (qc * rc * rc)
    return (dc * tu * (qi * ri * ri), dc * cl * (ql * rl * rl),
            dc * cr * (qr * rr * rr), gh * (nc * rc) * (qo * ro * ro),
            dc * si * (qu * ru * ru), dc * sl, dc * sr)


@njit(**_SJ)
def tree_lstm_cell_vjp_scalar(i, fl, fr, o, u, cl, cr, gh, gc, exact=False):
    if not exact:
        return _tree_vjp_fast(i, fl, fr, o, u, cl, cr, gh, gc)
    one = _like(1.0, i)
    si, so = sigmoid_scalar(i, exact), sigmoid_scalar(o, exact)
    sl, sr = sigmoid_scalar(fl, exact), sigmoid_scalar(fr, exact)
    tu = _th(u, exact)
    tc = _th(si * tu + sl * cl + sr * cr, exact)
    dc = gc + gh * so * (one - tc * tc)
    return (dc * tu * si * (one - si), dc * cl * sl * (one - sl),
            dc * cr * sr * (one - sr), gh * tc * so * (one - so),
            dc * si * (one - tu * tu), dc * sl, dc * sr)
