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

from ..runtime.values import Lanes, Traced, is_varying, is_weak, result_dtype, aligned, truth, select, _scalar_array
from ..kernels.typing_rules import (MSG_INT_BIG, MSG_INT_UINT_BIG, MSG_INT_INF, MSG_INT_NAN, MSG_LOG_BASE_ONE,
                                    MSG_MATH_DOMAIN, MSG_MATH_RANGE, MSG_ROUND_BIG, MSG_SHIFT, empty_extreme_message,
                                    int_big_message, math_inf_error)
from ..runtime.buffers import same_dtype_result
from .registry import register

_ARITH_NAMES = {"add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos",
                "invert", "abs"}


def _is_numeric(v):
    return isinstance(v, (Lanes, bool, int, float, complex, np.ndarray, np.generic))


def prepare(args, arithmetic, ctx=None, compare=False):
    """Cast weak varying operands to the NEP 50 result type; Python bools to ints for
    arithmetic among Python values only (beside a numpy value, NEP 50 decides: a Python bool
    plus an ``np.bool_`` is a logical or, as per sample).

    A Python int per lane that the result type does not hold (``300`` beside an int8) is,
    as per sample, compared exactly (``compare``: left in int64, where numpy promotes the
    comparison) or, given ``ctx``, an ``OverflowError`` on its lanes; it would wrap."""
    out = list(args)
    if arithmetic and all(is_weak(v) for v in out):
        for i, v in enumerate(out):
            if isinstance(v, Lanes) and v.weak and v.data.dtype == np.bool_:
                out[i] = Lanes(v.data.astype(np.int64), True)
            elif type(v) is bool:
                out[i] = int(v)
    if any(not is_weak(v) for v in out) and any(isinstance(v, Lanes) and v.weak for v in out):
        dt = result_dtype(out)
        if dt is not None:
            out = [_cast_weak(v, dt, ctx, compare) if isinstance(v, Lanes) and v.weak
                   and v.data.dtype != dt else v for v in out]
    return out


def _cast_weak(v, dt, ctx, compare):
    """The weak per-lane value ``v`` as a ``dt`` operand (see :func:`prepare`)."""
    data = v.data
    if dt.kind in "iu" and data.dtype.kind in "iu" and data.size:
        info = np.iinfo(dt)
        outside = (data < info.min) | (data > info.max)
        if outside.any():
            if compare:
                return Lanes(data, False)
            if ctx is not None:
                ctx.fail_where(per_lane(outside, data.shape), f"Python integer out of bounds for {dt}",
                               OverflowError, values=data if data.ndim == 1 else None)
    return Lanes(data.astype(dt), False)


def ufunc_apply(ctx, ufunc, args, arithmetic=False, weak_result=None):
    """Apply a numpy callable lane-wise to varying and uniform operands."""
    args = prepare(args, arithmetic, ctx)
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
            return da, _as_lane_int(b, a), a.weak
        return None
    if tb is Lanes and ta in _SCALAR_TYPES:
        db = b.data
        if db.ndim != 1 or arithmetic and b.weak and db.dtype == np.bool_:
            return None
        return _as_lane_int(a, b), db, b.weak
    return None


def _as_lane_int(v, lanes):
    """A Python int beyond int64 meeting Python ints held per lane wraps into int64, as those
    lanes' own ints wrap (README, values); numpy would raise OverflowError.  Anything else
    as it is."""
    if type(v) is int and not -0x8000000000000000 <= v <= 0x7FFFFFFFFFFFFFFF \
            and lanes.weak and lanes.data.dtype.kind in "ib":
        return _scalar_array(v).item()  # (the wrap values.materialize applies)
    return v


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
            try:
                out = ufunc(ra, rb) if buf is None else ufunc(ra, rb, out=buf)
            except TypeError:  # no such loop (a str per lane): the general path below says what to do
                out = None
            if out is not None:
                if check is not None:
                    check(ctx, ra, rb, out, weak)
                return Lanes(out, weak)
        a, b = args
        ta, tb = type(a), type(b)
        if ta is Lanes and not a.weak and (tb is Lanes and not b.weak or tb is np.ndarray) \
                and not (_is_str(a) or _is_str(b)):
            # numpy values only, per-sample arrays included: NEP 50 is numpy's own promotion
            da = a.data
            db = b.data if tb is Lanes else b
            if da.ndim != db.ndim + (tb is np.ndarray):
                da, db = aligned([a, b], ctx.n)
            out = _apply(ctx, name, ufunc, da, db, a, b)
            if check is not None:
                check(ctx, da, db, out, False)
            return Lanes(out, False)
        if ta is not Lanes and tb is not Lanes and not isinstance(a, Lanes) and not isinstance(b, Lanes):
            if hasattr(a, "__vmapper_varying__") or hasattr(b, "__vmapper_varying__"):
                return _objects_per_lane(ctx, name, a, b)
            if ta is tuple and tb is tuple and name in _COMPARISONS and (is_varying(a) or is_varying(b)):
                return _tuples_per_lane(ctx, name, a, b)
            return ctx.uniform(op, a, b)
        if name == "mul" and (ta is tuple) != (tb is tuple):
            return _repeated(ctx, a, b) if ta is tuple else _repeated(ctx, b, a)
        if _is_str(a) or _is_str(b):
            return _str_binary(ctx, name, ufunc, a, b)
        if not (_is_numeric(a) and _is_numeric(b)):
            raise ctx.type_error(f"unsupported operand types for '{name}': "
                                 f"{ctx.describe(a)} and {ctx.describe(b)}")
        a, b = prepare([a, b], arithmetic, ctx, compare=name in _COMPARISONS)
        ra, rb = aligned([a, b], ctx.n)
        out = np.asarray(_apply(ctx, name, ufunc, ra, rb, a, b))
        if check is not None:
            check(ctx, ra, rb, out, is_weak(a) and is_weak(b))
        return Lanes(out, is_weak(a) and is_weak(b))
    # ``+`` and ``*`` of lists or tuples join or repeat them: their differentiated items pass
    # as they are (each keeps its own tape entry)
    containers = _joins_containers if name in ("add", "mul") else None
    register(name, impl, elementwise=True, may_fail=check is not None, scalar=op, passes_traced=containers)


def _repeated(ctx, items, count):
    """``items * count`` for a list (or tuple) and a count per lane: one length on every
    active lane, or the list would differ in length per lane."""
    if not isinstance(count, Lanes) or count.data.ndim != 1 or count.data.dtype.kind not in "biu":
        raise ctx.type_error(f"can't multiply sequence by non-int of type '{ctx.describe(count)}'")
    on = count.data[ctx.active_indices()]
    if on.size and (on != on[0]).any():
        from ..runtime.context import LIST_LENGTH_HINT
        raise ctx.unsupported("a list or tuple repeated a number of times that differs per lane "
                              "(its length would differ per lane)", hint=LIST_LENGTH_HINT)
    return items * int(on[0]) if on.size else ()


def _joins_containers(args, attrs):
    return type(args[0]) is tuple or type(args[1]) is tuple


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
        if python_scalars:  # (numpy's ints raise ValueError whatever the base)
            ctx.fail_where(per_lane((a == 0) & (b < 0), out.shape), "0.0 cannot be raised to a negative power",
                           ZeroDivisionError)
        ctx.fail_where(per_lane(b < 0, out.shape),
                       "integer to a negative integer power (Python would return a float, "
                       "numpy raises; convert the base with float())", ValueError)
    elif python_scalars:
        fin = np.isfinite(a) & np.isfinite(b)
        ctx.fail_where(per_lane((a == 0) & (b < 0) & (b != -np.inf), out.shape),  # (0.0 ** -inf is inf)
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
    if b > np.iinfo(a.dtype).max:  # (numpy's own call decides: an OverflowError for a Python int)
        return None
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
    out = np.power(a, b)
    if np.ndim(b) == 0 and b == 0.5 and isinstance(out, np.ndarray) and out.dtype.kind == "f":
        # An array to a scalar 0.5 takes numpy's sqrt; the per-sample ``x ** 0.5`` (a Python or
        # numpy scalar) takes C's pow, which differs only at -inf (inf, not nan) and -0.0 (0.0).
        a = np.broadcast_to(a, out.shape)
        out[(a == -np.inf) | (a == 0)] = np.abs(a[(a == -np.inf) | (a == 0)])
    return out


def _np_power(a, b):
    """``np.power`` as the per-sample call computes it: numpy's loop for a scalar exponent of
    0.5 is sqrt (nan at -inf, -0.0 at -0.0, where C's pow gives inf and 0.0), which a lane's
    exponent of 0.5 in an array of exponents does not take."""
    out = np.power(a, b)
    if np.ndim(b) and isinstance(out, np.ndarray) and out.dtype.kind == "f":
        half = np.broadcast_to(b == 0.5, out.shape)
        if half.any():
            out[half] = np.sqrt(np.broadcast_to(a, out.shape)[half]).astype(out.dtype, copy=False)
    return out




def _float_operands(*xs):
    return any(np.asarray(x).dtype.kind == "f" for x in xs)


def _np_fmax(a, b):
    """np.fmax as numpy's scalar loop computes it: ``a`` on a tie (its vector loop returns
    ``b`` for fmax(0.0, -0.0), so the sign of a zero would depend on the batch size)."""
    if not _float_operands(a, b):
        return np.fmax(a, b)
    return np.where((a >= b) | (b != b), a, b)


def _np_fmin(a, b):
    """np.fmin as numpy's scalar loop computes it (see :func:`_np_fmax`)."""
    if not _float_operands(a, b):
        return np.fmin(a, b)
    return np.where((a <= b) | (b != b), a, b)


def _np_clip(a, lo, hi):
    """np.clip as numpy's scalar loop computes it: max then min, NaN from any operand, ``a``
    kept on a tie (the sign of a zero included), which its loop over arrays of bounds is not."""
    bounds = [x for x in (lo, hi) if x is not None]  # (a None bound: that half is skipped)
    if not bounds or not _float_operands(a, *bounds):
        return np.clip(a, lo, hi)
    t = a if lo is None else np.where((a != a) | ~((lo > a) | (lo != lo)), a, lo)
    return t if hi is None else np.where((t != t) | ~((hi < t) | (hi != hi)), t, hi)


_SCALAR_LOOP = {"power": _np_power, "fmax": _np_fmax, "fmin": _np_fmin}


binary("pow", operator.pow, _power, check=_check_pow)


def _check_shift(ctx, a, b, out, python_scalars):
    """Python ints raise for a negative shift count (numpy's shift gives 0 or -1)."""
    if python_scalars and np.asarray(b).dtype.kind == "i":
        ctx.fail_where(per_lane(np.asarray(b) < 0, out.shape), MSG_SHIFT, ValueError)


binary("lshift", operator.lshift, np.left_shift, check=_check_shift)
binary("rshift", operator.rshift, np.right_shift, check=_check_shift)
binary("bitand", operator.and_, np.bitwise_and, arithmetic=False)
binary("bitor", operator.or_, np.bitwise_or, arithmetic=False)
binary("bitxor", operator.xor, np.bitwise_xor, arithmetic=False)
for _name, _op, _uf in (("lt", operator.lt, np.less), ("le", operator.le, np.less_equal),
                        ("gt", operator.gt, np.greater), ("ge", operator.ge, np.greater_equal),
                        ("eq", operator.eq, np.equal), ("ne", operator.ne, np.not_equal)):
    binary(_name, _op, _uf, arithmetic=False)


def _is_str(v):
    return type(v) is str or isinstance(v, Lanes) and v.data.dtype.kind == "U"


_COMPARISONS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})


def _apply(ctx, name, ufunc, ra, rb, a, b):
    """``ufunc(ra, rb)``; where numpy has no loop for the operands' types (``%`` of complex
    numbers), the TypeError Python raises per sample, naming the operation and the types."""
    try:
        return ufunc(ra, rb)
    except TypeError:
        raise ctx.type_error(f"unsupported operand types for '{name}': {ctx.describe(a)} and {ctx.describe(b)}") \
            from None


def _str_binary(ctx, name, ufunc, a, b):
    """A binary operation where an operand is a str that differs per lane: comparisons (by
    code point, as Python's) and ``+``; a str never equals a number."""
    if _is_str(a) and _is_str(b):
        ra, rb = aligned([a, b], ctx.n)
        if name in _COMPARISONS:
            return Lanes(np.asarray(ufunc(ra, rb)), True)
        if name == "add":
            return Lanes(np.strings.add(ra, rb), True)
    elif name in ("eq", "ne"):
        return Lanes(np.full(ctx.n, name == "ne"), True)
    elif name == "mul":
        raise ctx.unsupported("repeating a str (s * n) where the str or the count differs per lane")
    raise ctx.type_error(f"unsupported operand types for '{name}': {ctx.describe(a)} and {ctx.describe(b)}")


def _tuples_per_lane(ctx, name, a, b):
    """``a == b`` / ``a != b`` of tuples (lists) holding per-lane values: per lane, as Python
    compares them, item by item (each item's ``==`` taken for its truth); a Python bool per
    lane.  Ordering tuples per lane is not supported."""
    if name not in ("eq", "ne"):
        raise ctx.unsupported(f"ordering comparison ('{name}') of lists or tuples holding per-sample values",
                              hint="compare their items one by one")
    if len(a) != len(b):
        return name == "ne"
    same = True  # a Python bool while every item is equal or unequal on all lanes alike
    for x, y in zip(a, b):
        t = truth(ctx.call_primitive("eq", (x, y)), ctx.n)
        if t is False:
            same = False
            break
        if t is not True:
            same = t if same is True else same & t
    if isinstance(same, bool):
        return same if name == "eq" else not same
    return Lanes(same if name == "eq" else ~same, True)


def _objects_per_lane(ctx, name, a, b):
    """``a == b`` / ``a != b`` where an operand is an object with a value per lane (a tree
    node): its own ``__vmapper_eq__`` compares lane by lane; other operations raise."""
    if name in ("eq", "ne"):
        for x, y in ((a, b), (b, a)):
            eq = getattr(x, "__vmapper_eq__", None)
            if eq is not None:
                same = eq(y, ctx.n)
                return Lanes(same if name == "eq" else ~same, True)
    raise ctx.type_error(f"unsupported operand types for '{name}': {ctx.describe(a)} and {ctx.describe(b)}")


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
    """``item in container``: a shared collection (a dict: its keys), or a per-sample array (any
    element equal)."""
    container, item = args
    hook = getattr(container, "__vmapper_contains__", None)
    if hook is not None:
        return hook(ctx, item)
    per_lane_items = type(container) in (tuple, list) and any(is_varying(v) for v in container)
    if not is_varying(container) and not is_varying(item) and not per_lane_items:
        return ctx.uniform(operator.contains, container, item)
    if isinstance(container, Lanes):
        if _compares_per_lane(item):  # a tree node: equal to no number of the array
            return Lanes(np.zeros(ctx.n, dtype=bool), True)
        if container.data.dtype.kind == "U":
            from .array_ops import STR_HINT
            raise ctx.unsupported("'in' on a str that differs per lane", hint=STR_HINT)
        if container.data.ndim < 2:
            raise ctx.type_error(f"argument of type '{container.data.dtype.name}' is not iterable")
        eq = ufunc_apply(ctx, np.equal, [container, _expand_item(item)])
        return Lanes(eq.data.reshape(ctx.n, -1).any(axis=1), True)
    if isinstance(container, dict):  # a shared dict: is the lane's key among its keys
        container = tuple(container)
    if isinstance(container, (tuple, list, set, frozenset, range)) or hasattr(container, "__len__") \
            and not isinstance(container, (dict, str, np.ndarray)):
        out = np.zeros(ctx.n, dtype=bool)
        text = item.data.dtype.kind in "US" if isinstance(item, Lanes) else isinstance(item, str)
        for v in container:
            if v is item:  # Python's ``in`` tests identity first (a NaN finds itself)
                out[:] = True
            elif _compares_per_lane(v) or _compares_per_lane(item):  # a tree node, per lane
                out |= _objects_per_lane(ctx, "eq", item, v).data
            elif isinstance(v, Lanes):
                if v.data.ndim != 1:
                    raise ctx.unsupported("'in' on a collection holding per-sample arrays")
                if (v.data.dtype.kind in "US") == text:  # (a number never equals a string)
                    out |= truth(ufunc_apply(ctx, np.equal, [item, v]), ctx.n)
            elif isinstance(v, str):
                if text:
                    out |= truth(ufunc_apply(ctx, np.equal, [item, v]), ctx.n)
            elif isinstance(v, (bool, int, float, complex, np.generic)):
                if not text:
                    out |= truth(ufunc_apply(ctx, np.equal, [item, v]), ctx.n)
            else:
                raise ctx.unsupported(f"'in' on a collection holding {type(v).__name__}")
        return Lanes(out, True)
    if isinstance(container, np.ndarray):
        return Lanes(np.isin(item.data, container), True)
    raise ctx.unsupported(f"'in' on a {type(container).__name__} with a per-sample item")


def _compares_per_lane(v):
    """Whether ``v`` is an object held per lane that compares itself lane by lane (a node)."""
    return hasattr(type(v), "__vmapper_eq__")


def _in_range(item, start, stop, step):
    """Python's ``item in range(start, stop, step)`` (the bounds already checked)."""
    return item in range(start, stop, step)


@register("contains_range", may_fail=True, scalar=_in_range)
def _contains_range(ctx, args, attrs):
    """``item in range(start, stop, step)`` with per-lane bounds, by arithmetic instead of a
    scan: ``start <= item < stop`` (``stop < item <= start`` for a negative step) and a whole
    number of steps from ``start``.  An item equal to a member, whatever its type, is in (as
    Python's ``==`` search finds it); a bound that is not an integer, or a zero step, raises
    the TypeError / ValueError the per-sample ``range()`` call would."""
    item, start, stop, step = args
    if not any(isinstance(a, Lanes) for a in args):
        for b in (start, stop, step):
            if not isinstance(b, (int, np.integer)):
                raise ctx.type_error(f"'{type(b).__name__}' object cannot be interpreted as an integer")
        if step == 0:
            raise ctx.lane_error_all("range() arg 3 must not be zero", ValueError)
        return ctx.uniform(_in_range, item, int(start), int(stop), int(step))
    for b in (start, stop, step):
        dtype = b.data.dtype if isinstance(b, Lanes) else np.asarray(b).dtype
        if dtype.kind not in "iub":
            raise ctx.type_error(f"'{'float' if dtype.kind == 'f' else dtype.name}' object cannot be "
                                 "interpreted as an integer")
    n = ctx.n
    raw = [np.broadcast_to(a.data if isinstance(a, Lanes) else np.asarray(a), (n,)) for a in args]
    x, lo, hi, st = raw[0], *(r.astype(np.int64) for r in raw[1:])
    ctx.fail_where(st == 0, "range() arg 3 must not be zero", ValueError)
    if x.ndim != 1:
        raise ctx.unsupported("'in range(...)' of a per-sample array (Python compares the whole array)")
    up = st > 0
    with np.errstate(all="ignore"):
        inside = np.where(up, (lo <= x) & (x < hi), (hi < x) & (x <= lo))
        step = np.where(st == 0, 1, st)  # (a zero step raised above)
        if x.dtype.kind in "iub":
            # the distance from start in uint64: exact where the item is inside, even when
            # the int64 difference would overflow (|step| of -2**63 included)
            xu, lu = x.astype(np.int64).view(np.uint64), lo.view(np.uint64)
            dist = np.where(up, xu - lu, lu - xu)
            whole = dist % np.abs(step).view(np.uint64) == 0
        else:  # a float item is a member only at a whole number of steps (``%`` of floats is exact)
            whole = np.where(up, x - lo, lo - x) % np.abs(step) == 0
    return Lanes(np.asarray(inside & whole, dtype=bool), True)


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
        return _to_int64(ctx, np.trunc(d), MSG_INT_BIG)
    _refuse_uint64_beyond_int64(ctx, d)
    return Lanes(_converted(ctx, d, np.int64, int), True)


def _refuse_uint64_beyond_int64(ctx, d):
    """``OverflowError`` on the lanes of a uint64 that a Python int (int64 here) cannot hold."""
    if d.dtype == np.uint64:
        fail_first(ctx, [(d > np.uint64(2 ** 63 - 1), MSG_INT_UINT_BIG, OverflowError)])


def _converted(ctx, d, dtype, convert):
    """``d.astype(dtype)``; of strs, on the active lanes only (a masked-off lane's str may be no
    number), with ``convert``'s error (``int``, ``float``, a numpy type) on the active lanes
    whose str it refuses, the first one's message."""
    if d.dtype.kind not in "US":
        return d.astype(dtype)
    lanes = ctx.active_indices()
    out = np.zeros(d.shape, dtype)
    try:
        out[lanes] = d[lanes].astype(dtype)
        return out
    except (ValueError, OverflowError):
        pass
    bad, first = np.zeros(len(d), dtype=bool), None
    for i in lanes.tolist():  # (the error path only: which lanes, and Python's message)
        try:
            convert(d[i])
        except (ValueError, OverflowError) as exc:
            bad[i] = True
            first = first or exc
    if first is None:  # (numpy refuses what Python takes: name every lane, numpy's words)
        return d.astype(dtype)
    ctx.fail_where(bad, str(first), type(first))  # (raises: every lane in bad is active)


def _to_int64(ctx, d, big):
    """Whole floats ``d`` as Python ints (int64): Python's errors for NaN and infinity, and an
    ``OverflowError`` (message ``big``) beyond int64, where Python's int would grow."""
    fail_first(ctx, [(np.isnan(d), MSG_INT_NAN, ValueError), (np.isinf(d), MSG_INT_INF, OverflowError),
                     (~_fits_int64(d) & np.isfinite(d), big, OverflowError)])
    return Lanes(d.astype(np.int64), True)


@register("float", callables=(float,), elementwise=True, scalar=float, may_fail=True)  # (float("abc"))
def _float(ctx, args, attrs):
    (a,) = args
    if not isinstance(a, Lanes):
        return ctx.uniform(float, a)
    return Lanes(_converted(ctx, _scalar_lanes(ctx, a, "float()"), np.float64, float), True)


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
        return _to_int64(ctx, np.rint(d), MSG_ROUND_BIG)
    if d.dtype.kind not in "iu" and not (d.dtype.kind == "b" and a.weak):  # (complex, str, a numpy bool)
        what = "str" if d.dtype.kind == "U" else "complex" if a.weak else f"numpy.{d.dtype.name}"
        raise ctx.type_error(f"type {what} doesn't define __round__ method")
    _refuse_uint64_beyond_int64(ctx, d)
    return Lanes(d.astype(np.int64), True)


def _real_lanes(ctx, a, what):
    """A math function's operand: Python's ``TypeError`` for a str (numpy would parse it)."""
    d = _scalar_lanes(ctx, a, what)
    if d.dtype.kind in "US":
        raise ctx.type_error(f"must be real number, not {'str' if d.dtype.kind == 'U' else 'bytes'}")
    return d


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
        d = a.data
        if dtype is np.uint32 and d.dtype.kind == "f":
            # numpy's scalar cast goes through int64, wrapping a float past uint32's range
            # (the array cast makes those 0): the per-sample call is the scalar one, and it
            # warns for the same values (NaN, inf, beyond int64) as this int64 cast
            d = d.astype(np.int64)
        return Lanes(_converted(ctx, d, dtype, dtype), False)
    return impl


for _t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
           np.uint8, np.uint16, np.uint32, np.uint64, np.bool_):
    # (a str that is no number, a Python int the type does not hold: failures of some values)
    register(f"np.{_t.__name__}", _numpy_cast(_t), callables=(_t,), elementwise=True, scalar=_t,
             may_fail=_t is not np.bool_)


# ---- min / max: Python's left fold, keeping the first extreme --------------------

def _fold_extreme(name, better, better_name):
    def impl(ctx, args, attrs):
        if attrs.get("kw"):
            raise ctx.unsupported(f"{name}() with keyword arguments")
        items = list(args)
        if len(items) == 1:
            items = ctx.sequence_items(items[0], f"{name}() argument")
        if not items:
            raise ctx.lane_error_all(empty_extreme_message(name), ValueError)
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
    name = fn.__name__
    inf_error = math_inf_error(name)

    def impl(ctx, args, attrs):
        if not any(isinstance(a, Lanes) for a in args):
            return ctx.uniform(fn, *args)
        if name == "trunc" and not args[0].weak and args[0].data.dtype != np.float64:
            # math.trunc calls __trunc__, which of numpy's scalars only float64 (a float) has
            raise ctx.type_error(f"type numpy.{args[0].data.dtype.name} doesn't define __trunc__ method")
        if returns_int and len(args) == 1 and args[0].weak and args[0].data.dtype.kind in "biu":
            # a Python int (or bool) is its own floor, ceil and trunc, exactly (numpy ints go
            # through float, as math does with them)
            return Lanes(_scalar_lanes(ctx, args[0], name + "()").astype(np.int64), True)
        conv = [Lanes(_real_lanes(ctx, a, name + "()").astype(np.float64), True)
                if isinstance(a, Lanes) else float(a) for a in args]
        raw = [c.data if isinstance(c, Lanes) else c for c in conv]
        if name == "log" and len(raw) == 2:
            return Lanes(_log_base(ctx, *raw), True)
        out = np.asarray(ufunc(*raw))
        finite_in = np.ones(ctx.n, dtype=bool)
        nan_in = np.zeros(ctx.n, dtype=bool)
        for r in raw:
            finite_in &= np.isfinite(r)
            nan_in |= np.isnan(r)
        if returns_int:
            return _to_int64(ctx, out, int_big_message(name))
        domain = np.isnan(out) & ~nan_in
        inf = np.isinf(out) & finite_in  # a pole, an overflow or neither: math_inf_error says
        none = np.zeros_like(inf)
        pole = inf & (raw[0] == 0) if name == "pow" else inf if inf_error is ValueError else none
        overflow = inf & ~pole if inf_error is OverflowError else none
        fail_first(ctx, [(domain | pole, MSG_MATH_DOMAIN, ValueError), (overflow, MSG_MATH_RANGE, OverflowError)])
        return Lanes(out.astype(np.float64, copy=False), True)
    return impl


def _log_base(ctx, x, base):
    """``math.log(x, base)`` as CPython computes it: ``log(x) / log(base)``, each log raising
    ValueError for an argument <= 0 (x's first), then ZeroDivisionError where log(base) is 0."""
    x, base = np.broadcast_to(x, (ctx.n,)), np.broadcast_to(base, (ctx.n,))
    with np.errstate(all="ignore"):
        num, den = np.log(x), np.log(base)
        fail_first(ctx, [((x <= 0) | (base <= 0), MSG_MATH_DOMAIN, ValueError),
                         (den == 0, MSG_LOG_BASE_ONE, ZeroDivisionError)])
        return num / den


def fail_first(ctx, checks):
    """Raise the error the per-sample run meets first: at the first active lane that fails any
    of ``checks`` (``(bad lanes, message, exception type)``, in the order a lane meets them),
    that lane's error, naming every lane with the same one."""
    first = None
    for k, (bad, _, _) in enumerate(checks):
        hit = bad if ctx.mask is None else bad & ctx.mask
        if hit.any():
            lane = int(np.argmax(hit))
            if first is None or lane < first[0]:
                first = (lane, k)
    if first is not None:
        k = first[1]
        earlier = np.zeros(ctx.n, dtype=bool)  # (a lane failing an earlier check raises that)
        for bad, _, _ in checks[:k]:
            earlier |= bad
        bad, message, exc = checks[k]
        ctx.fail_where(bad & ~earlier, message, exc)


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
        return Lanes(ufunc(_real_lanes(ctx, a, fn.__name__ + "()").astype(np.float64)), True)
    return impl


for _fn, _uf in ((math.isnan, np.isnan), (math.isfinite, np.isfinite), (math.isinf, np.isinf)):
    register(f"math.{_fn.__name__}", _math_predicate(_fn, _uf), callables=(_fn,), elementwise=True, scalar=_fn)


# ---- numpy elementwise functions ------------------------------------------------------

def _numpy_elementwise(fn, nargs, on_lanes=None):
    """``fn`` on uniform operands; on per-lane ones ``on_lanes`` (default ``fn``): a function
    that computes over arrays what ``fn`` computes on each lane's scalars."""
    on_lanes = on_lanes or fn

    def impl(ctx, args, attrs):
        kw = attrs.get("kw") or ()
        if kw:
            raise ctx.unsupported(f"np.{fn.__name__}() with keyword arguments {kw}")
        if len(args) not in nargs:
            raise ctx.type_error(f"np.{fn.__name__}() takes {'/'.join(map(str, nargs))} arguments")
        if not any(isinstance(a, Lanes) for a in args):
            return ctx.uniform(fn, *args)
        if fn is np.power:
            args = _integer_exponents(ctx, args)
        return ufunc_apply(ctx, on_lanes, args, weak_result=False)
    return impl


def _integer_exponents(ctx, args):
    """``np.power``'s operands with a per-lane integer exponent of an integer base: numpy's
    ``ValueError`` on the active lanes whose exponent is negative, and those of the other
    lanes (masked off, whose values are left over) made 0, so that numpy computes."""
    base, exp = args
    if type(exp) is not Lanes or exp.data.dtype.kind not in "biu" \
            or np.asarray(base.data if type(base) is Lanes else base).dtype.kind not in "biu":
        return args
    negative = exp.data < 0
    if not negative.any():
        return args
    ctx.fail_where(per_lane(negative, exp.data.shape), "Integers to negative integer powers are not allowed.",
                   ValueError)
    return [base, Lanes(np.where(negative, 0, exp.data).astype(exp.data.dtype, copy=False), exp.weak)]


_NUMPY_UNARY = ["exp", "exp2", "log", "log2", "log10", "log1p", "expm1", "tanh", "sinh", "cosh",
                "sqrt", "cbrt", "square", "sin", "cos", "tan", "arcsin", "arccos", "arctan",
                "arcsinh", "arccosh", "arctanh", "abs", "absolute", "fabs", "floor", "ceil",
                "trunc", "rint", "sign", "isnan", "isfinite", "isinf", "negative", "positive",
                "reciprocal", "logical_not", "signbit", "deg2rad", "rad2deg"]
_NUMPY_BINARY = ["maximum", "minimum", "fmax", "fmin", "arctan2", "hypot", "power", "float_power",
                 "copysign", "logaddexp", "logaddexp2", "logical_and", "logical_or", "logical_xor",
                 "heaviside", "add", "subtract", "multiply", "divide", "true_divide", "nextafter", "remainder",
                 "fmod", "floor_divide"]
for _n in _NUMPY_UNARY:
    register(f"np.{_n}", _numpy_elementwise(getattr(np, _n), (1,)), callables=(getattr(np, _n),),
             elementwise=True, scalar=getattr(np, _n))
for _n in _NUMPY_BINARY:
    register(f"np.{_n}", _numpy_elementwise(getattr(np, _n), (2,), _SCALAR_LOOP.get(_n)),
             callables=(getattr(np, _n),), elementwise=True, scalar=getattr(np, _n),
             may_fail=_n == "power")  # (an int to a negative int power, as ``**``)
register("np.where", _numpy_elementwise(np.where, (3,)), callables=(np.where,), elementwise=True,
         scalar=lambda c, a, b: a if c else b)
register("np.clip", _numpy_elementwise(np.clip, (3,), _np_clip), callables=(np.clip,), elementwise=True,
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
