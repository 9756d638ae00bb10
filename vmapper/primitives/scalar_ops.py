"""Elementwise primitives: arithmetic, comparisons, casts and math functions.

Uniform operands are computed with Python's own operators, so the result is
exactly the per-sample one.  Varying operands run as numpy ufuncs over all
lanes; weak (Python-scalar) operands are first cast to the NEP 50 result type
so that promotion matches the per-sample run.  Where Python raises per sample
(division by zero, a math domain error, ``int(nan)``...) the rule raises
:class:`LaneError` for the active lanes that do it; inactive lanes never
raise and never warn.
"""
from __future__ import annotations

import builtins
import math
import operator
import sys

import numpy as np

from ..runtime.values import Lanes, Traced, is_varying, is_weak, result_dtype, aligned, truth, select
from ..runtime.buffers import same_dtype_result
from .registry import register

_ARITH_NAMES = {"add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos",
                "invert", "abs"}


def _is_numeric(v):
    return isinstance(v, (Lanes, bool, int, float, complex, np.ndarray, np.generic))


def prepare(args, arithmetic):
    """Cast weak varying operands to the NEP 50 result type; Python bools to ints for arithmetic."""
    out = list(args)
    if arithmetic:
        for i, v in enumerate(out):
            if isinstance(v, Lanes) and v.weak and v.data.dtype == np.bool_:
                out[i] = Lanes(v.data.astype(np.int64), True)
            elif type(v) is bool:
                out[i] = int(v)
    if any(not is_weak(v) for v in out) and any(isinstance(v, Lanes) and v.weak for v in out):
        dt = result_dtype(out)
        if dt is not None:
            out = [Lanes(v.data.astype(dt), False) if isinstance(v, Lanes) and v.weak
                   and v.data.dtype != dt else v for v in out]
    return out


def ufunc_apply(ctx, ufunc, args, arithmetic=False, weak_result=None):
    """Apply a numpy callable lane-wise to varying and uniform operands."""
    args = prepare(args, arithmetic)
    raw = aligned(args, ctx.n)
    res = ufunc(*raw)
    weak = all(is_weak(a) for a in args) if weak_result is None else weak_result
    if isinstance(res, tuple):
        return tuple(Lanes(np.asarray(r), weak) for r in res)
    return Lanes(np.asarray(res), weak)


def per_lane(cond, shape):
    """Collapse a condition broadcastable to ``shape`` (lane axis first) to one bool per lane."""
    c = np.broadcast_to(np.asarray(cond), shape)
    return c.reshape(shape[0], -1).any(axis=1) if len(shape) > 1 else c


def _python_floats(args):
    return all(is_weak(a) for a in args)


_SCALAR_TYPES = (int, float)
# ufuncs whose result has the dtype of their operands when both have it (or one is a
# Python scalar of the same kind): such a result may go into a dead operand's buffer.
_SAME_DTYPE_UFUNCS = {np.add, np.subtract, np.multiply}  # + floordiv and mod, below


def _fast_operands(a, b, arithmetic):
    """Raw operands and weakness when ``prepare``/``aligned`` would leave a and b as they are:
    per-lane scalars of equal weakness, or one with a Python int/float; else None."""
    ta, tb = type(a), type(b)
    if ta is Lanes:
        da = a.data
        if da.ndim != 1 or arithmetic and a.weak and da.dtype == np.bool_:
            return None
        if tb is Lanes:
            db = b.data
            if db.ndim != 1 or a.weak is not b.weak or arithmetic and b.weak and db.dtype == np.bool_:
                return None
            return da, db, a.weak
        if tb in _SCALAR_TYPES:
            return da, b, a.weak
        return None
    if tb is Lanes and ta in _SCALAR_TYPES:
        db = b.data
        if db.ndim != 1 or arithmetic and b.weak and db.dtype == np.bool_:
            return None
        return a, db, b.weak
    return None


def _result_buffer(ctx, args, ra, rb, operands=True):
    """An array for the result: a dead operand's own (when ``operands``: not for operations
    whose check reads the operands afterwards), or one from the call's pool (None: allocate)."""
    if ctx.frame.state.tape is not None:
        return None
    pool = ctx.frame.state.pool
    for k in ((0, 1) if operands else ()):
        r, other = (ra, rb) if k == 0 else (rb, ra)
        # Refs to the Lanes: the args list and getrefcount's argument (any name, dict or
        # container holding it adds one).  To its array: the Lanes, the caller's ra/rb,
        # our parameter and r, getrefcount's argument.
        if type(args[k]) is Lanes and sys.getrefcount(args[k]) <= 2 and sys.getrefcount(r) <= 5 \
                and (r.base is None or pool.sole_view(r)) and r.flags.writeable and same_dtype_result(r, other):
            return r
    for r, other in ((ra, rb), (rb, ra)):
        if type(r) is np.ndarray and same_dtype_result(r, other):
            return pool.take(r.dtype, r.shape)
    return None


def binary(name, op, ufunc, *, arithmetic=True, check=None):
    reuse = ufunc in _SAME_DTYPE_UFUNCS

    def impl(ctx, args, attrs):
        fast = _fast_operands(args[0], args[1], arithmetic)
        if fast is not None:
            ra, rb, weak = fast
            del fast
            buf = _result_buffer(ctx, args, ra, rb, check is None) if reuse else None
            out = ufunc(ra, rb) if buf is None else ufunc(ra, rb, out=buf)
            if check is not None:
                check(ctx, ra, rb, out, weak)
            return Lanes(out, weak)
        a, b = args
        ta, tb = type(a), type(b)
        if ta is Lanes and not a.weak and (tb is Lanes and not b.weak or tb is np.ndarray):
            # numpy values only, per-sample arrays included: NEP 50 is numpy's own promotion
            da = a.data
            db = b.data if tb is Lanes else b
            if da.ndim != db.ndim + (tb is np.ndarray):
                da, db = aligned([a, b], ctx.n)
            out = ufunc(da, db)
            if check is not None:
                check(ctx, da, db, out, False)
            return Lanes(out, False)
        if ta is not Lanes and tb is not Lanes and not isinstance(a, Lanes) and not isinstance(b, Lanes):
            return ctx.uniform(op, a, b)
        if not (_is_numeric(a) and _is_numeric(b)):
            raise ctx.type_error(f"unsupported operand types for '{name}': "
                                 f"{ctx.describe(a)} and {ctx.describe(b)}")
        a, b = prepare([a, b], arithmetic)
        ra, rb = aligned([a, b], ctx.n)
        out = np.asarray(ufunc(ra, rb))
        if check is not None:
            check(ctx, ra, rb, out, is_weak(a) and is_weak(b))
        return Lanes(out, is_weak(a) and is_weak(b))
    register(name, impl, elementwise=True, may_fail=check is not None, scalar=op)


def _check_division(ctx, a, b, out, python_scalars):
    """ZeroDivisionError where Python raises: any int division, or Python floats."""
    if (type(b) in _SCALAR_TYPES or type(b) is not np.ndarray and np.ndim(b) == 0) and b != 0:
        return  # a uniform nonzero divisor (tested by type first: np.ndim costs a microsecond)
    ints = np.asarray(a).dtype.kind in "biu" and np.asarray(b).dtype.kind in "biu"
    if ints or python_scalars:
        ctx.fail_where(per_lane(b == 0, out.shape), "division or modulo by zero", ZeroDivisionError)


def _check_pow(ctx, a, b, out, python_scalars):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "biu" and b.dtype.kind in "biu":
        ctx.fail_where(per_lane(b < 0, out.shape),
                       "integer to a negative integer power (Python would return a float, "
                       "numpy raises; convert the base with float())", ValueError)
    elif python_scalars:
        fin = np.isfinite(a) & np.isfinite(b)
        ctx.fail_where(per_lane((a == 0) & (b < 0), out.shape),
                       "0.0 cannot be raised to a negative power", ZeroDivisionError)
        ctx.fail_where(per_lane(np.isnan(out) & ~np.isnan(a) & ~np.isnan(b), out.shape),
                       "negative number to a fractional power (Python returns a complex number)",
                       ValueError)
        ctx.fail_where(per_lane(np.isinf(out) & fin, out.shape), "float power overflowed", OverflowError)


binary("add", operator.add, np.add)
binary("sub", operator.sub, np.subtract)
binary("mul", operator.mul, np.multiply)


def _power_of_two_shift(a, b):
    """k if ``a`` is an integer array and ``b`` a uniform integer 2**k (k >= 1), else None."""
    if type(b) is not int and not isinstance(b, np.integer) or not isinstance(a, np.ndarray) \
            or a.dtype.kind not in "iu":
        return None
    b = int(b)
    return b.bit_length() - 1 if b > 1 and b & (b - 1) == 0 else None


def _floor_divide(a, b, out=None):
    # Exact strength reduction: for two's complement ints, x // 2**k == x >> k
    # and x % 2**k == x & (2**k - 1), with Python's floor semantics for negatives.
    k = _power_of_two_shift(a, b)
    return np.right_shift(a, k, out=out) if k is not None else np.floor_divide(a, b, out=out)


def _remainder(a, b, out=None):
    k = _power_of_two_shift(a, b)
    return np.bitwise_and(a, (1 << k) - 1, out=out) if k is not None else np.remainder(a, b, out=out)


_SAME_DTYPE_UFUNCS.update({_floor_divide, _remainder})


binary("truediv", operator.truediv, np.true_divide, check=_check_division)
binary("floordiv", operator.floordiv, _floor_divide, check=_check_division)
binary("mod", operator.mod, _remainder, check=_check_division)
def _power(a, b):
    # numpy refuses negative integer exponents for the whole array, even on
    # lanes that are masked off; those lanes are checked (and fail) separately.
    # A scalar exponent stays a scalar so that NEP 50 keeps float32 ** 2 float32.
    if np.asarray(a).dtype.kind in "biu" and np.asarray(b).dtype.kind in "iu":
        b = np.maximum(b, 0) if isinstance(b, np.ndarray) else (b if b >= 0 else type(b)(0))
    return np.power(a, b)


binary("pow", operator.pow, _power, check=_check_pow)
binary("lshift", operator.lshift, np.left_shift)
binary("rshift", operator.rshift, np.right_shift)
binary("bitand", operator.and_, np.bitwise_and, arithmetic=False)
binary("bitor", operator.or_, np.bitwise_or, arithmetic=False)
binary("bitxor", operator.xor, np.bitwise_xor, arithmetic=False)
for _name, _op, _uf in (("lt", operator.lt, np.less), ("le", operator.le, np.less_equal),
                        ("gt", operator.gt, np.greater), ("ge", operator.ge, np.greater_equal),
                        ("eq", operator.eq, np.equal), ("ne", operator.ne, np.not_equal)):
    binary(_name, _op, _uf, arithmetic=False)


def unary(name, op, ufunc, *, arithmetic=True, callables=()):
    def impl(ctx, args, attrs):
        (a,) = args
        if not isinstance(a, Lanes):
            return ctx.uniform(op, a)
        return ufunc_apply(ctx, ufunc, [a], arithmetic)
    register(name, impl, elementwise=True, scalar=op, callables=callables)


unary("neg", operator.neg, np.negative)
unary("pos", operator.pos, np.positive)
unary("invert", operator.invert, np.invert)
unary("abs", builtins.abs, np.absolute, callables=(builtins.abs,))


@register("not", elementwise=True, scalar=operator.not_)
def _not(ctx, args, attrs):
    t = truth(args[0], ctx.n)
    if isinstance(t, np.ndarray):
        return Lanes(~t, True)
    return not t


@register("is", scalar=operator.is_)
def _is(ctx, args, attrs):
    a, b = args
    if isinstance(a, Lanes) or isinstance(b, Lanes):
        if a is None or b is None:  # a varying number is never None
            return False
        raise ctx.type_error("'is' between per-sample values (use ==)")
    return a is b


@register("is_not", scalar=lambda a, b: a is not b)
def _is_not(ctx, args, attrs):
    return not _is(ctx, args, attrs)


@register("contains", scalar=operator.contains)
def _contains(ctx, args, attrs):
    """``item in container``: a shared collection, or a per-sample array (any element equal)."""
    container, item = args
    if not isinstance(container, Lanes) and not isinstance(item, Lanes):
        return ctx.uniform(operator.contains, container, item)
    if isinstance(container, Lanes):
        if container.data.ndim < 2:
            raise ctx.type_error(f"argument of type '{container.data.dtype.name}' is not iterable")
        eq = ufunc_apply(ctx, np.equal, [container, _expand_item(item)])
        return Lanes(eq.data.reshape(ctx.n, -1).any(axis=1), True)
    if isinstance(container, (tuple, list, set, frozenset, range)) or hasattr(container, "__len__") \
            and not isinstance(container, (dict, str, np.ndarray)):
        out = np.zeros(ctx.n, dtype=bool)
        for v in container:
            if isinstance(v, (bool, int, float, complex, np.generic)):
                out |= truth(ufunc_apply(ctx, np.equal, [item, v]), ctx.n)
            else:
                raise ctx.unsupported(f"'in' on a collection holding {type(v).__name__}")
        return Lanes(out, True)
    if isinstance(container, np.ndarray):
        return Lanes(np.isin(item.data, container), True)
    raise ctx.unsupported(f"'in' on a {type(container).__name__} with a per-sample item")


def _expand_item(item):
    if isinstance(item, Lanes):
        return Lanes(item.data[:, None], item.weak)
    return item


# ---- casts ------------------------------------------------------------------------

def _fits_int64(d):
    return (d >= -9.223372036854775808e18) & (d < 9.223372036854775808e18)


@register("int", callables=(int,), elementwise=True, may_fail=True, scalar=int)
def _int(ctx, args, attrs):
    if len(args) != 1:
        raise ctx.unsupported("int() with a base argument")
    (a,) = args
    if not isinstance(a, Lanes):
        return ctx.uniform(int, a)
    d = _scalar_lanes(ctx, a, "int()")
    if d.dtype.kind == "f":
        ctx.fail_where(np.isnan(d), "cannot convert float NaN to integer", ValueError)
        ctx.fail_where(np.isinf(d), "cannot convert float infinity to integer", OverflowError)
        ctx.fail_where(~_fits_int64(d) & np.isfinite(d), "int() of a float beyond int64", OverflowError)
        return Lanes(np.trunc(d).astype(np.int64), True)
    return Lanes(d.astype(np.int64), True)


@register("float", callables=(float,), elementwise=True, scalar=float)
def _float(ctx, args, attrs):
    (a,) = args
    if not isinstance(a, Lanes):
        return ctx.uniform(float, a)
    return Lanes(_scalar_lanes(ctx, a, "float()").astype(np.float64), True)


@register("bool", callables=(bool,), elementwise=True, scalar=bool)
def _bool(ctx, args, attrs):
    (a,) = args
    t = truth(a, ctx.n)
    return Lanes(np.asarray(t), True) if isinstance(t, np.ndarray) else t


def _round(ctx, args, attrs):
    """``round(number)``: an int per lane (registered below, with ``round(number, ndigits)``)."""
    (a,) = args
    if not isinstance(a, Lanes):
        return ctx.uniform(round, a)
    d = _scalar_lanes(ctx, a, "round()")
    if d.dtype.kind == "f":
        ctx.fail_where(~np.isfinite(d), "cannot round a NaN or infinity to an integer", ValueError)
        return Lanes(np.rint(d).astype(np.int64), True)
    return Lanes(d.astype(np.int64), True)


def _scalar_lanes(ctx, a, what):
    d = a.data
    if d.ndim > 1:
        if int(np.prod(d.shape[1:])) != 1:
            raise ctx.type_error(f"{what} of a per-sample array with more than one element")
        d = d.reshape(d.shape[0])
    return d


def _numpy_cast(dtype):
    def impl(ctx, args, attrs):
        (a,) = args
        if not isinstance(a, Lanes):
            return ctx.uniform(dtype, a)
        return Lanes(a.data.astype(dtype), False)
    return impl


for _t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
           np.uint8, np.uint16, np.uint32, np.uint64, np.bool_):
    register(f"np.{_t.__name__}", _numpy_cast(_t), callables=(_t,), elementwise=True, scalar=_t)


# ---- min / max: Python's left fold, keeping the first extreme --------------------

def _fold_extreme(name, better, better_name):
    def impl(ctx, args, attrs):
        if attrs.get("kw"):
            raise ctx.unsupported(f"{name}() with keyword arguments")
        items = list(args)
        if len(items) == 1:
            items = ctx.sequence_items(items[0], f"{name}() argument")
        if not items:
            raise ctx.lane_error_all(f"{name}() arg is an empty sequence", ValueError)
        if not any(is_varying(v) for v in items) and not ctx.frame.state.tape:
            return ctx.uniform(getattr(builtins, name), *items)
        cur = items[0]
        for nxt in items[1:]:
            # Python keeps the first extreme: take the next item only if strictly better.
            take = truth(ctx.call_primitive(better_name, (nxt, cur)), ctx.n)
            cur = select(take, nxt, cur, ctx.n) if isinstance(take, np.ndarray) else (nxt if take else cur)
        return cur
    return impl


register("min", _fold_extreme("min", np.less, "lt"), callables=(builtins.min,), elementwise=True, scalar=builtins.min)
register("max", _fold_extreme("max", np.greater, "gt"), callables=(builtins.max,), elementwise=True, scalar=builtins.max)


# ---- the math module: Python floats in, Python floats out, Python's errors ----------

def _math_function(fn, ufunc, returns_int=False):
    def impl(ctx, args, attrs):
        if not any(isinstance(a, Lanes) for a in args):
            return ctx.uniform(fn, *args)
        conv = [Lanes(_scalar_lanes(ctx, a, fn.__name__ + "()").astype(np.float64), True)
                if isinstance(a, Lanes) else float(a) for a in args]
        raw = [c.data if isinstance(c, Lanes) else c for c in conv]
        out = np.asarray(ufunc(*raw))
        finite_in = np.ones(ctx.n, dtype=bool)
        nan_in = np.zeros(ctx.n, dtype=bool)
        for r in raw:
            finite_in &= np.isfinite(r)
            nan_in |= np.isnan(r)
        if returns_int:
            ctx.fail_where(np.isnan(out), "cannot convert float NaN to integer", ValueError)
            ctx.fail_where(np.isinf(out), "cannot convert float infinity to integer", OverflowError)
            return Lanes(out.astype(np.int64), True)
        ctx.fail_where(np.isnan(out) & ~nan_in, "math domain error", ValueError)
        ctx.fail_where(np.isinf(out) & finite_in, "math range error", OverflowError)
        return Lanes(out.astype(np.float64, copy=False), True)
    return impl


_MATH = {"sqrt": np.sqrt, "exp": np.exp, "log": None, "log1p": np.log1p, "expm1": np.expm1,
         "log2": np.log2, "log10": np.log10, "sin": np.sin, "cos": np.cos, "tan": np.tan,
         "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "atan2": np.arctan2,
         "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "asinh": np.arcsinh,
         "acosh": np.arccosh, "atanh": np.arctanh, "fabs": np.fabs, "hypot": np.hypot,
         "copysign": np.copysign, "fmod": np.fmod, "pow": np.power, "erf": None,
         "degrees": np.degrees, "radians": np.radians}


def _np_log(x, base=None):
    return np.log(x) if base is None else np.log(x) / np.log(base)


def _np_erf(x):
    from math import erf
    return np.vectorize(erf, otypes=[np.float64])(x)


for _n, _uf in _MATH.items():
    _uf = {"log": _np_log, "erf": _np_erf}.get(_n, _uf)
    register(f"math.{_n}", _math_function(getattr(math, _n), _uf), callables=(getattr(math, _n),),
             elementwise=True, may_fail=True, scalar=getattr(math, _n))
for _n, _uf in (("floor", np.floor), ("ceil", np.ceil), ("trunc", np.trunc)):
    register(f"math.{_n}", _math_function(getattr(math, _n), _uf, returns_int=True),
             callables=(getattr(math, _n),), elementwise=True, may_fail=True, scalar=getattr(math, _n))


def _math_predicate(fn, ufunc):
    def impl(ctx, args, attrs):
        (a,) = args
        if not isinstance(a, Lanes):
            return ctx.uniform(fn, a)
        return Lanes(ufunc(_scalar_lanes(ctx, a, fn.__name__ + "()").astype(np.float64)), True)
    return impl


for _fn, _uf in ((math.isnan, np.isnan), (math.isfinite, np.isfinite), (math.isinf, np.isinf)):
    register(f"math.{_fn.__name__}", _math_predicate(_fn, _uf), callables=(_fn,), elementwise=True, scalar=_fn)


# ---- numpy elementwise functions ------------------------------------------------------

def _numpy_elementwise(fn, nargs):
    def impl(ctx, args, attrs):
        kw = attrs.get("kw") or ()
        if kw:
            raise ctx.unsupported(f"np.{fn.__name__}() with keyword arguments {kw}")
        if len(args) not in nargs:
            raise ctx.type_error(f"np.{fn.__name__}() takes {'/'.join(map(str, nargs))} arguments")
        if not any(isinstance(a, Lanes) for a in args):
            return ctx.uniform(fn, *args)
        return ufunc_apply(ctx, fn, args, weak_result=False)
    return impl


_NUMPY_UNARY = ["exp", "exp2", "log", "log2", "log10", "log1p", "expm1", "tanh", "sinh", "cosh",
                "sqrt", "cbrt", "square", "sin", "cos", "tan", "arcsin", "arccos", "arctan",
                "arcsinh", "arccosh", "arctanh", "abs", "absolute", "fabs", "floor", "ceil",
                "trunc", "rint", "sign", "isnan", "isfinite", "isinf", "negative", "positive",
                "reciprocal", "logical_not", "signbit", "deg2rad", "rad2deg"]
_NUMPY_BINARY = ["maximum", "minimum", "fmax", "fmin", "arctan2", "hypot", "power", "float_power",
                 "copysign", "logaddexp", "logaddexp2", "logical_and", "logical_or", "logical_xor",
                 "heaviside", "add", "subtract", "multiply", "divide", "true_divide", "nextafter"]
for _n in _NUMPY_UNARY:
    register(f"np.{_n}", _numpy_elementwise(getattr(np, _n), (1,)), callables=(getattr(np, _n),),
             elementwise=True, scalar=getattr(np, _n))
for _n in _NUMPY_BINARY:
    register(f"np.{_n}", _numpy_elementwise(getattr(np, _n), (2,)), callables=(getattr(np, _n),),
             elementwise=True, scalar=getattr(np, _n))
register("np.where", _numpy_elementwise(np.where, (3,)), callables=(np.where,), elementwise=True,
         scalar=lambda c, a, b: a if c else b)
register("np.clip", _numpy_elementwise(np.clip, (3,)), callables=(np.clip,), elementwise=True,
         scalar=lambda x, lo, hi: min(max(x, lo), hi))


@register("divmod", callables=(builtins.divmod,), may_fail=True)
def _divmod(ctx, args, attrs):
    """``divmod(a, b)``: ``(a // b, a % b)``, with the floor semantics and errors of both."""
    if len(args) != 2 or attrs.get("kw"):
        raise ctx.type_error(f"divmod expected 2 positional arguments, got {len(args)}")
    a, b = args
    if not isinstance(a, (Lanes, Traced)) and not isinstance(b, (Lanes, Traced)):
        return ctx.uniform(divmod, a, b)
    return ctx.call_primitive("floordiv", (a, b)), ctx.call_primitive("mod", (a, b))


# ---- pow(a, b, m): Python's modular exponentiation of Python ints --------------------------

_MULMOD_MAX = 3037000499  # the largest modulus whose products of residues (< m**2) fit in int64
_INT64_MIN = np.iinfo(np.int64).min


def _pow_mod_operand(ctx, v, args):
    """Lane values (int64) of a Python int or bool operand of three-argument pow, as Python
    allows it; TypeError for anything else, with Python's message."""
    if isinstance(v, Lanes) and v.weak and v.data.ndim == 1 and v.data.dtype.kind in "biu" \
            or type(v) in (int, bool):
        return v.data.astype(np.int64) if isinstance(v, Lanes) else np.int64(v)
    if all(type(a) in (int, bool, float) or isinstance(a, Lanes) and a.weak and a.data.ndim == 1
           for a in args):
        raise ctx.type_error("pow() 3rd argument not allowed unless all arguments are integers")
    kinds = ", ".join(f"'{ctx.describe(a)}'" for a in args)
    raise ctx.type_error(f"unsupported operand type(s) for ** or pow(): {kinds} (three-argument pow "
                         f"takes Python ints: convert numpy integers with int())")


def _modular_inverse(a, m):
    """Per lane ``(a**-1 mod m, whether it exists)`` for ``0 <= a < m`` (extended Euclid)."""
    r0, r1 = m.copy(), a.copy()
    t0, t1 = np.zeros_like(m), np.ones_like(m)
    while True:
        live = r1 != 0
        if not live.any():
            return t0 % m, r0 == 1
        q = r0 // np.where(live, r1, 1)
        r0, r1 = np.where(live, r1, r0), np.where(live, r0 - q * r1, r1)
        t0, t1 = np.where(live, t1, t0), np.where(live, t0 - q * t1, t1)


def _modular_power(base, e, m):
    """Per lane ``base**e mod m`` for ``0 <= base < m <= _MULMOD_MAX`` and ``e >= 0``."""
    result = np.ones_like(m) % m
    while e.any():
        odd = (e & 1).astype(bool)
        result = np.where(odd, result * base % m, result)
        e = e >> 1
        base = base * base % m
    return result


@register("pow_mod", may_fail=True)
def _pow_mod(ctx, args, attrs):
    """``pow(a, b, m)``: Python's modular exponentiation of Python ints, a Python int per lane.
    ``m == 0`` raises ValueError; a negative ``b`` takes the inverse of ``a`` modulo ``m``
    (ValueError where there is none); the result has the sign of ``m``.  A modulus whose
    residues' products do not fit in int64 (``|m| > 3037000499``) raises UnsupportedSyntaxError."""
    a, b, m = args
    if m is None:
        return ctx.call_primitive("pow", (a, b))
    if not any(isinstance(v, Lanes) for v in args):
        return ctx.uniform(pow, a, b, m)
    if type(m) is int and not _INT64_MIN <= m <= -(_INT64_MIN + 1):
        raise ctx.unsupported("pow() with a modulus beyond int64",
                              hint="vmapper holds Python ints as int64; the result may not fit")
    try:
        A, B, M = (np.broadcast_to(_pow_mod_operand(ctx, v, args), (ctx.n,)) for v in (a, b, m))
    except OverflowError:
        raise ctx.unsupported("pow() with an operand beyond int64",
                              hint="vmapper holds Python ints as int64") from None
    ctx.fail_where(M == 0, "pow() 3rd argument cannot be 0", ValueError)
    unsafe = (M > _MULMOD_MAX) | (M < -_MULMOD_MAX) | (B == _INT64_MIN)
    big = unsafe if ctx.mask is None else unsafe & ctx.mask
    if big.any():  # products of residues would overflow int64: not batched (yet)
        lanes = ctx.frame.lane_ids()[np.flatnonzero(big)]
        raise ctx.unsupported(f"pow(a, b, m) with |m| > {_MULMOD_MAX} (or b = -2**63), on lane(s) "
                              f"{', '.join(str(int(x)) for x in lanes[:10])}{', ...' if len(lanes) > 10 else ''}",
                              hint="the batched modular power multiplies residues in int64")
    out = np.zeros(ctx.n, dtype=np.int64)
    failed = {}  # Python's ValueError message -> the lanes that raise it
    if not unsafe.all():  # (inactive lanes' unsafe operands are replaced, never computed with)
        mod = np.where(unsafe | (M == 0), 2, np.abs(M))
        neg = B < 0
        base = A % mod
        if neg.any():
            inv, ok = _modular_inverse(base, mod)
            failed["base is not invertible for the given modulus"] = neg & ~ok & ~unsafe & (mod != 1) & (M != 0)
            base = np.where(neg, inv, base)
        small = _modular_power(base, np.abs(np.where(unsafe, 0, B)), mod)
        out = np.where((M < 0) & (small != 0), small + M, small)
    for message, bad in failed.items():
        ctx.fail_where(bad, message, ValueError)
    return Lanes(out, True)


# =====================================================================================================
# ---- round(number, ndigits) and math.isclose --------------------------------------------------------
# (``round`` is registered here: the rule serves round(number, ndigits) and hands round(number)
# to ``_round`` above.)

_POW10 = np.array([float(10 ** k) for k in range(23)])  # 10**k, exact in float64 up to 10**22
_SPLITTER = 134217729.0  # 2**27 + 1: Veltkamp's split of a double into two 26-bit halves
_NDIGITS_MAX, _NDIGITS_MIN = 323, -308  # CPython's: beyond them a float rounds to itself / to +-0.0


def _two_product(a, b):
    """``(p, e)``: ``p = fl(a * b)`` and ``p + e == a * b`` exactly (Dekker; no overflow, and
    no underflow where the result matters)."""
    p = a * b
    t = _SPLITTER * a
    ah = t - (t - a)
    al = a - ah
    t = _SPLITTER * b
    bh = t - (t - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _half_even(n0, above, below):
    """The integer nearest ``t``, ties to even, from ``n0`` (an integer within 1 of it) and the
    signs of ``above = t - (n0 + 1/2)`` and ``below = t - (n0 - 1/2)``."""
    n = n0 + (above > 0) - (below < 0)
    tie = (above == 0) | (below == 0)
    if tie.any():
        low = np.where(above == 0, n0, n0 - 1)  # the tie lies between low and low + 1
        n = np.where(tie, np.where(np.fmod(low, 2) == 0, low, low + 1), n)
    return n


def python_round_floats(x, ndigits):
    """``round(x, ndigits)`` of Python floats, elementwise and bitwise Python's; returns
    ``(result, unbatched)``, ``unbatched`` marking the elements it cannot round exactly (their
    ``result`` is garbage: the caller raises on the active ones).

    CPython rounds the exact binary value of ``x`` half-to-even at ``ndigits`` decimals and
    returns the float nearest that decimal (``round(2.675, 2) == 2.67``: 2.675 is stored a
    little below).  Here, for ``0 <= ndigits <= 22``, ``N = round_half_even(x * 10**ndigits)``
    is decided from the exact product (``_two_product``), and the result ``N / 10**ndigits``
    is the correctly rounded quotient of two exact doubles; for ``-22 <= ndigits < 0``,
    ``N = round_half_even(x / 10**-ndigits)`` is decided by comparing ``x`` with the
    halfway points exactly, and ``N * 10**-ndigits`` is correctly rounded.  Values that round
    to themselves (``|x| / 10**-ndigits >= 2**53``: the change is below half an ulp) or to
    zero are recognised by their magnitude.  What is left (products or quotients between
    2**51 and 2**54, more than 22 digits either way) would need more than double precision:
    ``unbatched``."""
    with np.errstate(all="ignore"):  # huge products overflow: those elements round to themselves
        return _round_floats(np.asarray(x, dtype=np.float64), ndigits)


def _round_floats(x, ndigits):
    nd = np.broadcast_to(np.asarray(ndigits, dtype=np.int64), x.shape)
    out = x.copy()  # NaN, infinities, ndigits > 323, and |x| far above 10**-ndigits round to x
    unbatched = np.zeros(x.shape, dtype=bool)
    todo = np.isfinite(x) & (nd <= _NDIGITS_MAX)
    tiny = todo & (nd < _NDIGITS_MIN)
    out[tiny] = 0.0 * x[tiny]
    todo &= ~tiny
    sel = np.flatnonzero(todo & (nd >= 0) & (nd <= 22))
    if sel.size:
        xs = x[sel]
        p = _POW10[nd[sel]]
        y, e = _two_product(xs, p)
        ok = np.abs(y) < 2.0 ** 52
        n0 = np.rint(y)
        a = y - n0  # exact
        n = _half_even(n0, (a - 0.5) + e, (a + 0.5) + e)
        out[sel[ok]] = np.copysign(n / p, xs)[ok]
        unbatched[sel[~ok & (np.abs(y) < 2.0 ** 55)]] = True  # from 2**55 on, x rounds to itself
    sel = np.flatnonzero(todo & (nd < 0) & (nd >= -22))
    if sel.size:
        xs = x[sel]
        p = _POW10[-nd[sel]]
        q = xs / p
        ok = np.abs(q) < 2.0 ** 51
        n0 = np.where(ok, np.rint(q), 0.0)
        half = 0.5 * p
        h, l = _two_product(2.0 * n0 + 1.0, half)
        above = (xs - h) - l  # the sign of x - (n0 + 1/2) * 10**-ndigits
        h, l = _two_product(2.0 * n0 - 1.0, half)
        below = (xs - h) - l
        n = _half_even(n0, above, below)
        out[sel[ok]] = np.copysign(n * p, xs)[ok]
        unbatched[sel[~ok & (np.abs(q) < 2.0 ** 54)]] = True  # (a computed q >= 2**54: x/p >= 2**53)
    sel = np.flatnonzero(todo & ((nd > 22) | (nd < -22)))
    if sel.size:
        xs, scale = np.abs(x[sel]), np.power(10.0, -nd[sel].astype(np.float64))
        zero = xs < 0.4 * scale  # |x| * 10**ndigits < 1/2: +-0.0
        itself = (nd[sel] > 0) & (xs >= 2.0 ** 56 * scale)
        out[sel[zero]] = 0.0 * x[sel[zero]]
        unbatched[sel[~zero & ~itself]] = True
    return out, unbatched


_INT64_MAX = np.iinfo(np.int64).max
_POW10_INT = np.array([10 ** k for k in range(19)], dtype=np.int64)
_QUOTIENT_MAX = np.array([_INT64_MAX // 10 ** k for k in range(19)], dtype=np.int64)
_QUOTIENT_MIN = np.array([-(2 ** 63 // 10 ** k) for k in range(19)], dtype=np.int64)


def python_round_ints(x, ndigits):
    """``round(x, ndigits)`` of Python ints held as int64: ``x`` for ``ndigits >= 0``, else the
    multiple of ``10**-ndigits`` nearest ``x``, ties to even; returns ``(result, beyond)``
    (``beyond``: where Python's result does not fit in int64)."""
    x = np.asarray(x, dtype=np.int64)
    nd = np.broadcast_to(np.asarray(ndigits, dtype=np.int64), x.shape)
    out = x.copy()
    beyond = np.zeros(x.shape, dtype=bool)
    big = nd < -18  # 10**-ndigits > 2**63: 0, or +-10**19 beyond int64
    out[big] = 0
    beyond |= (nd == -19) & ((x > 5 * 10 ** 18) | (x < -5 * 10 ** 18))
    sel = np.flatnonzero((nd < 0) & ~big)
    if sel.size:
        k = -nd[sel]
        xs, p = x[sel], _POW10_INT[k]
        q = xs // p
        r = xs - q * p  # 0 <= r < p
        q = q + ((2 * r > p) | (2 * r == p) & (q % 2 != 0))
        beyond[sel] = (q > _QUOTIENT_MAX[k]) | (q < _QUOTIENT_MIN[k])
        out[sel] = q * p
    return out, beyond


def _ndigits_lanes(ctx, nd):
    """Per-lane ``ndigits`` as int64 (Python's TypeError for a float)."""
    d = nd.data
    if d.ndim != 1:
        raise ctx.type_error("'numpy.ndarray' object cannot be interpreted as an integer")
    if d.dtype.kind not in "biu":
        name = "float" if nd.weak and d.dtype.kind == "f" else \
            ("complex" if nd.weak else f"numpy.{d.dtype.name}")
        raise ctx.type_error(f"'{name}' object cannot be interpreted as an integer")
    return d.astype(np.int64)


@register("round", callables=(round,), elementwise=True, may_fail=True, scalar=round)
def _round_ndigits(ctx, args, attrs):
    """``round(number)`` (``_round`` above) and ``round(number, ndigits)``: Python's decimal
    rounding of a Python float (:func:`python_round_floats`, a Python float per lane) or int
    (an int); a numpy value's ``__round__``, ``np.round`` (its dtype kept).  ``ndigits`` may
    differ per lane."""
    kw = attrs.get("kw") or ()
    npos = len(args) - len(kw)
    if npos > 2:
        raise ctx.type_error(f"round() takes at most 2 arguments ({npos} given)")
    b = dict(zip(("number", "ndigits"), args[:npos]))
    for k, v in zip(kw, args[npos:]):
        if k not in ("number", "ndigits"):
            raise ctx.type_error(f"'{k}' is an invalid keyword argument for round()")
        if k in b:
            raise ctx.type_error(f"argument for round() given by name ('{k}') and position "
                                 f"({1 if k == 'number' else 2})")
        b[k] = v
    if "number" not in b:
        raise ctx.type_error("round() missing required argument 'number' (pos 1)")
    x, nd = b["number"], b.get("ndigits")
    if nd is None:
        return _round(ctx, [x], {})
    if not isinstance(x, Lanes) and not isinstance(nd, Lanes):
        return ctx.uniform(round, x, nd)
    x = materialize_scalar(x, ctx.n)
    d = x.data
    if isinstance(nd, Lanes):
        digits = _ndigits_lanes(ctx, nd)
    else:
        try:
            digits = operator.index(nd)
        except TypeError:
            raise ctx.type_error(f"'{type(nd).__name__}' object cannot be interpreted as an integer") from None
    if x.weak:
        kind = d.dtype.kind
        if kind == "c":
            raise ctx.type_error("type complex doesn't define __round__ method")
        clipped = np.clip(digits, -10 ** 6, 10 ** 6) if isinstance(digits, np.ndarray) else \
            min(max(digits, -10 ** 6), 10 ** 6)  # (Python clips ndigits to a Py_ssize_t)
        if kind == "f":
            res, unbatched = python_round_floats(d, clipped)
            bad = unbatched if ctx.mask is None else unbatched & ctx.mask
            if bad.any():
                lanes = ctx.frame.lane_ids()[np.flatnonzero(bad)]
                raise ctx.unsupported(
                    f"round(x, ndigits) of a float that double precision cannot round exactly "
                    f"(|ndigits| > 22, or |x| * 10**ndigits between 2**51 and 2**55), on lane(s) "
                    f"{', '.join(str(int(v)) for v in lanes[:10])}{', ...' if len(lanes) > 10 else ''}",
                    hint="round with at most 22 digits, or with np.round (numpy's scaled rounding)")
            return Lanes(res, True)
        res, beyond = python_round_ints(d.astype(np.int64), clipped)
        bad = beyond if ctx.mask is None else beyond & ctx.mask
        if bad.any():
            raise ctx.unsupported("round() of an int whose result is beyond int64",
                                  hint="vmapper holds Python ints as int64")
        return Lanes(res, True)
    if d.ndim == 1 and d.dtype.kind in "bc":  # (numpy arrays of them round, their scalars do not)
        raise ctx.type_error(f"type numpy.{d.dtype.name} doesn't define __round__ method")
    # a numpy scalar or array: its __round__ is np.round, which keeps the dtype
    try:
        if not isinstance(digits, np.ndarray):
            return Lanes(np.asarray(np.round(d, digits)), False)
        out = np.empty(d.shape, dtype=np.round(d[:0], 0).dtype)
        for v in np.unique(digits):
            sel = digits == v
            out[sel] = np.round(d[sel], int(v))
        return Lanes(out, False)
    except (OverflowError, ValueError, TypeError) as exc:
        raise ctx.lane_error_all(str(exc), type(exc)) from None


def materialize_scalar(v, n):
    """``v`` as Lanes over ``n`` lanes (a uniform number broadcast, weak if a Python scalar)."""
    if isinstance(v, Lanes):
        return v
    arr = np.asarray(v)
    return Lanes(np.broadcast_to(arr, (n,) + arr.shape), is_weak(v))


_REAL = (bool, int, float, np.bool_, np.integer, np.floating)


@register("math.isclose", callables=(math.isclose,), may_fail=True, scalar=math.isclose)
def _isclose(ctx, args, attrs):
    """``math.isclose(a, b, *, rel_tol=1e-09, abs_tol=0.0)``, Python's test per lane:
    ``a == b``, else False if either is infinite, else ``|b - a| <= |rel_tol * b|`` or
    ``<= |rel_tol * a|`` or ``<= abs_tol`` (in float64, as CPython computes it); ValueError
    on lanes whose tolerances are negative.  A Python bool per lane.  Not elementwise to the
    kernel generator (it has no isclose), so it never runs inside a kernel."""
    kw = attrs.get("kw") or ()
    npos = len(args) - len(kw)
    if npos > 2:
        raise ctx.type_error(f"isclose() takes exactly 2 positional arguments ({npos} given)")
    b = dict(zip(("a", "b"), args[:npos]))
    b.setdefault("rel_tol", 1e-09)
    b.setdefault("abs_tol", 0.0)
    for k, v in zip(kw, args[npos:]):
        if k not in ("a", "b", "rel_tol", "abs_tol"):
            raise ctx.type_error(f"isclose() got an unexpected keyword argument '{k}'")
        if k in ("a", "b") and k in b:
            raise ctx.type_error(f"argument for isclose() given by name ('{k}') and position "
                                 f"({1 if k == 'a' else 2})")
        b[k] = v
    for k, pos in (("a", 1), ("b", 2)):
        if k not in b:
            raise ctx.type_error(f"isclose() missing required argument '{k}' (pos {pos})")
    values = [b[k] for k in ("a", "b", "rel_tol", "abs_tol")]
    if not any(isinstance(v, Lanes) for v in values):
        return ctx.uniform(lambda: math.isclose(values[0], values[1], rel_tol=values[2], abs_tol=values[3]))
    conv = []
    for v in values:
        if isinstance(v, Lanes):
            if v.data.dtype.kind == "c":
                raise ctx.type_error("must be real number, not complex")
            conv.append(_scalar_lanes(ctx, v, "isclose()").astype(np.float64))
        elif isinstance(v, _REAL) or isinstance(v, np.ndarray) and v.size == 1 and v.dtype.kind in "biuf":
            conv.append(np.float64(float(v)))
        else:
            raise ctx.type_error(f"must be real number, not {type(v).__name__}")
    a, c, rel, tol = conv
    ctx.fail_where(np.broadcast_to((rel < 0.0) | (tol < 0.0), (ctx.n,)), "tolerances must be non-negative",
                   ValueError)
    diff = np.abs(c - a)
    close = (diff <= np.abs(rel * c)) | (diff <= np.abs(rel * a)) | (diff <= tol)
    res = (a == c) | ~(np.isinf(a) | np.isinf(c)) & close
    return Lanes(np.broadcast_to(res, (ctx.n,)).copy(), True)
