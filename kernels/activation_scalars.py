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


@njit(**_SJ)
def gelu_scalar(x, approx_tanh=True, exact=False):
    half, one = _like(0.5, x), _like(1.0, x)
    if approx_tanh:
        # 0.5*(1 + tanh(u)) == sigmoid(2u): same cost, but no cancellation
        # in 1 + tanh(u) for x << 0 (float32 loses all digits there)
        z = _like(2 * _GK, x) * (x + _like(_GC, x) * x * x * x)
        y = x * _sig_pair(z, exact)[0]
    else:
        y = half * x * (one + _erf(x * _like(_RSQRT2, x), exact))
    return -_like(0.0, x) if x == -_like(np.inf, x) else y   # gelu(-inf) = -0


@njit(**_SJ)
def sigmoid_vjp_scalar(x, g, exact=False):
    s = sigmoid_scalar(x, exact)
    return g * (s * (_like(1.0, x) - s))


@njit(**_SJ)
def tanh_vjp_scalar(x, g, exact=False):
    t = _th(x, exact)
    return g * (_like(1.0, x) - t * t)


@njit(**_SJ)
def relu_vjp_scalar(x, g, exact=False):
    return _like(0.0, x) if x <= _like(0.0, x) else g     # as torch


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
        sp, sn = _sig_pair(k2 * (x + c * x * x * x), exact)
        d = sp + xc * k2 * (one + _like(3.0, x) * c * xc * xc) * (sp * sn)
    else:
        t = _erf(x * _like(_RSQRT2, x), exact)
        d = half * (one + t) + xc * _like(_RSQRT2PI, x) * _exp(
            -half * xc * xc, exact)
    return g * d


@njit(**_SJ)
def lstm_cell_scalar(i, f, o, u, c_prev, exact=False):
    c = sigmoid_scalar(i, exact) * _th(u, exact) + sigmoid_scalar(f, exact) * c_prev
    return sigmoid_scalar(o, exact) * _th(c, exact), c


@njit(**_SJ)
def lstm_cell_vjp_scalar(i, f, o, u, c_prev, gh, gc, exact=False):
    one = _like(1.0, i)
    si, sf, so = sigmoid_scalar(i, exact), sigmoid_scalar(f, exact), sigmoid_scalar(o, exact)
    tu = _th(u, exact)
    tc = _th(si * tu + sf * c_prev, exact)
    dc = gc + gh * so * (one - tc * tc)           # total gradient reaching c
    return (dc * tu * si * (one - si), dc * c_prev * sf * (one - sf),
            gh * tc * so * (one - so), dc * si * (one - tu * tu), dc * sf)


@njit(**_SJ)
def tree_lstm_cell_scalar(i, fl, fr, o, u, cl, cr, exact=False):
    c = (sigmoid_scalar(i, exact) * _th(u, exact)
         + sigmoid_scalar(fl, exact) * cl + sigmoid_scalar(fr, exact) * cr)
    return sigmoid_scalar(o, exact) * _th(c, exact), c


@njit(**_SJ)
def tree_lstm_cell_vjp_scalar(i, fl, fr, o, u, cl, cr, gh, gc, exact=False):
    one = _like(1.0, i)
    si, so = sigmoid_scalar(i, exact), sigmoid_scalar(o, exact)
    sl, sr = sigmoid_scalar(fl, exact), sigmoid_scalar(fr, exact)
    tu = _th(u, exact)
    tc = _th(si * tu + sl * cl + sr * cr, exact)
    dc = gc + gh * so * (one - tc * tc)
    return (dc * tu * si * (one - si), dc * cl * sl * (one - sl),
            dc * cr * sr * (one - sr), gh * tc * so * (one - so),
            dc * si * (one - tu * tu), dc * sl, dc * sr)
