"""Run-time support that lockstep kernels (:mod:`.codegen_lockstep`) import.

* ``arr_<code>_<W>()`` (e.g. ``arr_f8_16``, created on first import by
  name): a 1-d C array of ``W`` elements of dtype ``<code>`` (numpy's
  ``dtype.str[1:]``: ``b1 i1 ... u8 f4 f8``) whose storage is an ``alloca``
  in the entry block of the function it is called from (never freed, never
  moved, 64-byte aligned, uninitialised).  A lane chunk keeps its state in
  such arrays because LLVM knows a stack slot aliases nothing else: the loops
  over the chunk then vectorize without run-time alias checks, which it does
  not do with heap arrays (``np.empty``).  Call it only outside loops (one
  slot per call site, reused by every iteration).
* ``select(c, a, b)``, ``both(a, b)``, ``either(a, b)``: ``a if c else b``,
  ``a and b``, ``a or b`` (truth values) as one LLVM ``select``/``and``/``or``,
  both operands evaluated.  numba lowers conditional and boolean expressions
  to branches and phis: many more IR blocks to type and SSA-rewrite (compile
  time), which LLVM must if-convert again before it can vectorize.
* ``load(a, j)``, ``store(a, j, v)``, ``put(a, j, m, v)``: ``a[j]``,
  ``a[j] = v`` and ``a[j] = v if m else a[j]`` (``v`` cast to the array's
  dtype) for a 1-d C array and ``0 <= j < len(a)``: no index wraparound or
  bounds code, and none of the registry lookups numba's own indexing does
  (compile time: a kernel does hundreds of these).
* ``sin_small_f64 ... cos_small_f32``: :func:`vmapper.kernels.vmath.sin_f64`
  and friends without the Payne-Hanek reduction for ``|x| >= 2**20`` (15
  table gathers per float64 lane, a third of sin's cost).  Guaranteed
  bitwise equal to the vmath function for every ``x`` with ``|x| < 2**20``
  and for NaN and +-inf (the same operations on the same values: the full
  reduction selects exactly these for such ``x``); wrong for finite
  ``|x| >= 2**20``, so a kernel calls them only when no active lane of the
  chunk has such an argument (``tests/kernels/test_codegen_lockstep.py``).
* ``SOURCE_TAG``: a hash of this file (kernels inline it: it goes into the
  kernel source header, so an edit here gives new kernel files).
"""
from __future__ import annotations

import hashlib
import os

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.numpy_support import from_dtype

from .vmath_common import D, F, I64, _SJIT
from .vmath_f64 import _D0, _D_SHIFT
from .vmath_trig import (_P0, _P1, _P2, _P3, _D_INVPIO2, _D_2P20, _two_sum, _sincos_reduced_f32,
                         _sincos_reduced_f64)

with open(os.path.abspath(__file__), "rb") as _f:
    SOURCE_TAG = hashlib.sha256(_f.read()).hexdigest()[:16]

ARRAY_CODES = ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8")
_arrays: dict = {}


def _stack_array(code, width):
    nbty = from_dtype(np.dtype(code))
    arrty = types.Array(nbty, 1, "C")

    @intrinsic
    def stack_array(typingctx):
        def codegen(context, builder, sig, args):
            llty = context.get_data_type(nbty)
            ptr = cgutils.alloca_once(builder, llty, size=width)
            ptr.align = 64
            ary = cgutils.create_struct_proxy(arrty)(context, builder)  # (see _element)
            itemsize = context.get_abi_sizeof(llty)
            context.populate_array(ary, data=ptr,
                                   shape=[context.get_constant(types.intp, width)],
                                   strides=[context.get_constant(types.intp, itemsize)],
                                   itemsize=context.get_constant(types.intp, itemsize),
                                   meminfo=None)
            return ary._getvalue()
        return arrty(), codegen
    return stack_array


def _truth(context, builder, ty, val):
    return val if isinstance(ty, types.Boolean) else context.is_true(builder, ty, val)


def _scalar(ty):
    return isinstance(ty, (types.Number, types.Boolean))


@intrinsic
def select(typingctx, c, a, b):
    if not (_scalar(c) and _scalar(a) and _scalar(b)):
        return None
    a, b = types.unliteral(a), types.unliteral(b)
    ty = a if a == b else typingctx.unify_pairs(a, b)
    if ty is None or not _scalar(ty):
        return None

    def codegen(context, builder, sig, args):
        cv, av, bv = args
        av = context.cast(builder, av, sig.args[1], ty)
        bv = context.cast(builder, bv, sig.args[2], ty)
        return builder.select(_truth(context, builder, sig.args[0], cv), av, bv)
    return ty(c, a, b), codegen


@intrinsic
def both(typingctx, a, b):
    if not (_scalar(a) and _scalar(b)):
        return None

    def codegen(context, builder, sig, args):
        return builder.and_(_truth(context, builder, sig.args[0], args[0]),
                            _truth(context, builder, sig.args[1], args[1]))
    return types.boolean(a, b), codegen


@intrinsic
def either(typingctx, a, b):
    if not (_scalar(a) and _scalar(b)):
        return None

    def codegen(context, builder, sig, args):
        return builder.or_(_truth(context, builder, sig.args[0], args[0]),
                           _truth(context, builder, sig.args[1], args[1]))
    return types.boolean(a, b), codegen


def _element(context, builder, aryty, ary, j):
    # The data pointer straight from the array struct: context.make_array() would first look
    # for an ``__array__`` implementation, and each failed lookup reloads numba's registries
    # (about a millisecond of compile time per array access).
    data = cgutils.create_struct_proxy(aryty)(context, builder, value=ary).data
    return builder.gep(data, [j], inbounds=True)


def _array_index(ary, j):
    return (isinstance(ary, types.Array) and ary.ndim == 1 and ary.layout == "C"
            and isinstance(j, types.Integer))


@intrinsic
def load(typingctx, ary, j):
    if not _array_index(ary, j):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element(context, builder, sig.args[0], args[0], args[1])
        return context.unpack_value(builder, ary.dtype, ptr)
    return ary.dtype(ary, j), codegen


@intrinsic
def store(typingctx, ary, j, v):
    if not (_array_index(ary, j) and _scalar(v)):
        return None
    v = types.unliteral(v)

    def codegen(context, builder, sig, args):
        ptr = _element(context, builder, sig.args[0], args[0], args[1])
        context.pack_value(builder, ary.dtype, context.cast(builder, args[2], v, ary.dtype), ptr)
        return context.get_dummy_value()
    return types.none(ary, j, v), codegen


@intrinsic
def put(typingctx, ary, j, m, v):
    if not (_array_index(ary, j) and _scalar(m) and _scalar(v)):
        return None
    v = types.unliteral(v)

    def codegen(context, builder, sig, args):
        ptr = _element(context, builder, sig.args[0], args[0], args[1])
        old = context.unpack_value(builder, ary.dtype, ptr)
        new = context.cast(builder, args[3], v, ary.dtype)
        mv = _truth(context, builder, sig.args[2], args[2])
        context.pack_value(builder, ary.dtype, builder.select(mv, new, old), ptr)
        return context.get_dummy_value()
    return types.none(ary, j, m, v), codegen


def __getattr__(name):
    # arr_<code>_<width>: made on demand, so kernels of any width can import theirs
    if name.startswith("arr_"):
        parts = name.split("_")
        if len(parts) == 3 and parts[1] in ARRAY_CODES and parts[2].isdigit() and 0 < int(parts[2]) <= 1024:
            if name not in _arrays:
                _arrays[name] = _stack_array(parts[1], int(parts[2]))
            return _arrays[name]
    raise AttributeError(name)


# ---- sin/cos without the large-argument reduction --------------------------------------------
# Mirrors vmath_trig._rem_pio2 / _sincos_f64 with ``big`` false: y1..y3 are the
# same literal zeros, so every operation (signed zeros included) is the one
# the full function performs for |x| < 2**20.

@njit(**_SJIT)
def _rem_small_f64(ax):
    y0 = ax if ax < _D_2P20 else _D0
    y1 = _D0
    y2 = _D0
    y3 = _D0
    kf = (y0 * _D_INVPIO2 + _D_SHIFT) - _D_SHIFT
    s1, e1 = _two_sum(y0 - kf * _P0, y1 - kf * _P1)
    s2, e2 = _two_sum(y2 - kf * _P2, y3 - kf * _P3)
    hi, e3 = _two_sum(s1, s2)
    lo = e1 + e2 + e3
    r = hi + lo
    return I64(kf) & 3, r, lo - (r - hi)


@njit(**_SJIT)
def _sincos_small_f64(x, want_cos):
    k, y0, y1 = _rem_small_f64(abs(x))
    return _sincos_reduced_f64(x, k, y0, y1, want_cos)


@njit(**_SJIT)
def sin_small_f64(x):
    return _sincos_small_f64(x, False)


@njit(**_SJIT)
def cos_small_f64(x):
    return _sincos_small_f64(x, True)


@njit(**_SJIT)
def _rem_small_f32(ax):
    xd = D(ax)
    small = ax < F(1048576.0)
    xs = xd if small else _D0
    kf = (xs * _D_INVPIO2 + _D_SHIFT) - _D_SHIFT
    rs = ((xs - kf * _P0) - kf * _P1) - kf * _P2
    return I64(kf) & 3, rs


@njit(**_SJIT)
def _sincos_small_f32(x, want_cos):
    k, r = _rem_small_f32(abs(x))
    return _sincos_reduced_f32(x, k, r, want_cos)


@njit(**_SJIT)
def sin_small_f32(x):
    return _sincos_small_f32(x, False)


@njit(**_SJIT)
def cos_small_f32(x):
    return _sincos_small_f32(x, True)
