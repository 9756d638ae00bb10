"""JVP (forward-mode) rules of the elementwise primitives, attached to their registry entries.

A rule is ``jvp(e, out, args, tangents) -> tangent operand or None``: it
*emits IR* through the :class:`~vmapper.autodiff.forward_mode.TangentEmitter`
``e`` (so the dual-number program is an ordinary IR function that the kernel
generator compiles like any other).  ``out`` and ``args`` are operands
(:class:`~vmapper.ir.Var` or :class:`~vmapper.ir.Const`) holding the value of
the result and of the arguments; ``tangents[i]`` is the tangent operand of
argument ``i``, or None where it is zero.  ``None`` as the result means a zero
tangent.

The derivatives are the ones the VJP rules of :mod:`.rules` use, including
their zero-derivative points (comparisons, ``floor``-like functions, ``//``,
``%`` in its second argument uses ``-(a // b)``) and one-sided choices
(``abs`` at 0 gives 0; ``max``/``min`` give the whole tangent to the argument
they return, the first one on ties for the builtins).  Tangent arithmetic that
can divide by zero or take a power uses numpy's operations (``np.divide``,
``np.power``), which return inf/NaN where the forward value already did:
a derivative never raises where the value did not.

Operations whose result carries no derivative (comparisons, casts to int or
bool, ``truth``, ``isnan``...) are listed in :data:`ZERO_DERIVATIVE`.
"""
from __future__ import annotations

import math

from ..ir import Const
from ..primitives import PRIMITIVES

#: Operations whose result has derivative zero with respect to every argument.
ZERO_DERIVATIVE = frozenset(
    {"eq", "ne", "lt", "le", "gt", "ge", "not", "truth", "bool", "int", "round", "isin", "contains",
     "range_check", "range_cond", "floordiv", "invert", "and_", "or_", "xor", "lshift", "rshift",
     "math.floor", "math.ceil", "math.trunc", "math.isnan", "math.isfinite", "math.isinf"}
    | {f"np.{n}" for n in ("floor", "ceil", "trunc", "rint", "sign", "isnan", "isfinite", "isinf",
                           "logical_not", "logical_and", "logical_or", "logical_xor", "signbit",
                           "int8", "int16", "int32", "int64", "uint8", "uint16",
                           "uint32", "uint64", "bool_")})


def defjvp(name, rule):
    PRIMITIVES[name].jvp = rule


def _unary(derivative):
    """A rule ``t * derivative(e, out, x)`` for a one-argument function."""
    def rule(e, out, args, tans):
        if tans[0] is None:
            return None
        return e.mul(tans[0], derivative(e, out, args[0]))
    return rule


def _same(e, out, args, tans):
    return tans[0]


def _add(e, out, args, tans):
    return e.add(tans[0], tans[1])


def _sub(e, out, args, tans):
    return e.sub(tans[0], tans[1])


def _mul(e, out, args, tans):
    a, b = args
    return e.add(e.mul(tans[0], b), e.mul(tans[1], a))


def _truediv(e, out, args, tans):
    # d(a/b) = (da - (a/b) db) / b
    a = args[0]
    if tans[0] is None and isinstance(a, Const) and type(a.value) in (int, float) and a.value == 1:
        # d(1/b) = -(1/b)**2 db: a product instead of a second division (1/(1 + exp(-x)),
        # the sigmoid, is the common case; a vector division costs ~10 multiplications)
        return e.neg(e.mul(tans[1], e.op("mul", out, out)))
    return e.div(e.sub(tans[0], e.mul(tans[1], out)), args[1])


def _neg(e, out, args, tans):
    return e.neg(tans[0])


def _mod(e, out, args, tans):
    a, b = args
    tb = None if tans[1] is None else e.mul(tans[1], e.op("neg", e.op("floordiv", a, b)))
    return e.add(tans[0], tb)


def _pow(e, out, args, tans):
    a, b = args
    ta = None
    if tans[0] is not None:  # b * a**(b - 1), and 0 where b == 0 (a**0 is constant; 0 * inf at a = 0)
        da = e.op("mul", b, e.op("np.power", a, e.op("sub", b, Const(1.0))))
        ta = e.mul(tans[0], e.op("select", e.op("eq", b, Const(0)), Const(0.0), da))
    tb = None
    if tans[1] is not None:  # o * log(a) where a > 0, else 0 (as the VJP rule)
        positive = e.op("gt", a, Const(0))
        safe = e.op("select", positive, a, Const(1.0))
        tb = e.mul(tans[1], e.op("select", positive, e.op("mul", out, e.op("np.log", safe)), Const(0.0)))
    return e.add(ta, tb)


def _sign(e, out, x):
    return e.op("np.sign", x)


def _select_by(cond_op, first_on_tie):
    """Tangent of a two-argument max/min: the tangent of the argument returned."""
    def rule(e, out, args, tans):
        if tans[0] is None and tans[1] is None:
            return None
        a, b = args
        # builtins return the first argument unless the second is strictly better
        cond = e.op(cond_op, b, a) if first_on_tie else e.op(cond_op, a, b)
        ta, tb = e.zero_if_none(tans[0]), e.zero_if_none(tans[1])
        return e.op("select", cond, tb, ta) if first_on_tie else e.op("select", cond, ta, tb)
    return rule


def _fold_extreme(cond_op):
    pair = _select_by(cond_op, True)

    def rule(e, out, args, tans):
        if len(args) < 2:
            return None
        acc, tacc = args[0], tans[0]
        for x, tx in zip(args[1:], tans[1:]):
            t = pair(e, None, (acc, x), (tacc, tx))
            acc, tacc = e.op("max" if cond_op == "gt" else "min", acc, x), t
        return tacc
    return rule


def _select(e, out, args, tans):
    if tans[1] is None and tans[2] is None:
        return None
    return e.op("select", args[0], e.zero_if_none(tans[1]), e.zero_if_none(tans[2]))


def _where(e, out, args, tans):
    if tans[1] is None and tans[2] is None:
        return None
    return e.op("np.where", args[0], e.zero_if_none(tans[1]), e.zero_if_none(tans[2]))


def _clip(e, out, args, tans):
    x, lo, hi = args
    tx, tlo, thi = (e.zero_if_none(t) for t in tans)
    if all(t is None for t in tans):
        return None
    inner = e.op("select", e.op("eq", out, hi), thi, Const(0.0))
    inner = e.op("select", e.op("eq", out, lo), tlo, inner)
    return e.op("select", e.op("eq", out, x), tx, inner)


def _heaviside(e, out, args, tans):
    """``heaviside(x, h0)``: flat in ``x``; ``h0`` where ``x == 0`` (derivative 1 there)."""
    if tans[1] is None:
        return None
    return e.op("select", e.op("eq", args[0], Const(0)), tans[1], Const(0.0))


def _maximum(cond_op):
    def rule(e, out, args, tans):
        if tans[0] is None and tans[1] is None:
            return None
        return e.op("select", e.op(cond_op, args[0], args[1]), e.zero_if_none(tans[0]),
                    e.zero_if_none(tans[1]))
    return rule


def _cast(op):
    def rule(e, out, args, tans):
        return None if tans[0] is None else e.op(op, tans[0])
    return rule


def _log_base(e, out, args, tans):
    x = args[0]
    if len(args) == 1:
        return None if tans[0] is None else e.div(tans[0], x)
    base = args[1]
    log_base = e.op("np.log", base)
    tx = None if tans[0] is None else e.div(tans[0], e.op("mul", x, log_base))
    tb = None if tans[1] is None else e.mul(tans[1], e.op("neg", e.op("np.divide", out, e.op("mul", base, log_base))))
    return e.add(tx, tb)


def _hypot(e, out, args, tans):
    a, b = args
    return e.div(e.add(e.mul(tans[0], a), e.mul(tans[1], b)), out)


def _atan2(e, out, args, tans):
    y, x = args
    r2 = e.op("add", e.op("mul", x, x), e.op("mul", y, y))
    return e.div(e.sub(e.mul(tans[0], x), e.mul(tans[1], y)), r2)


def _logaddexp(e, out, args, tans):
    a, b = args
    ta = None if tans[0] is None else e.mul(tans[0], e.op("np.exp", e.op("sub", a, out)))
    tb = None if tans[1] is None else e.mul(tans[1], e.op("np.exp", e.op("sub", b, out)))
    return e.add(ta, tb)


def _inv_sqrt(e, expr):
    return e.op("np.divide", Const(1.0), e.op("np.sqrt", expr))


_LN2, _LN10 = math.log(2.0), math.log(10.0)

# d out / d x for one-argument functions, emitted as IR: (e, out, x) -> operand
_UNARY = {
    "exp": lambda e, o, x: o,
    "exp2": lambda e, o, x: e.op("mul", o, Const(_LN2)),
    "expm1": lambda e, o, x: e.op("add", o, Const(1.0)),
    "log": lambda e, o, x: e.op("np.divide", Const(1.0), x),
    "log2": lambda e, o, x: e.op("np.divide", Const(1.0), e.op("mul", x, Const(_LN2))),
    "log10": lambda e, o, x: e.op("np.divide", Const(1.0), e.op("mul", x, Const(_LN10))),
    "log1p": lambda e, o, x: e.op("np.divide", Const(1.0), e.op("add", x, Const(1.0))),
    "sqrt": lambda e, o, x: e.op("np.divide", Const(0.5), o),
    "cbrt": lambda e, o, x: e.op("np.divide", Const(1.0), e.op("mul", Const(3.0), e.op("mul", o, o))),
    "square": lambda e, o, x: e.op("mul", Const(2.0), x),
    "sin": lambda e, o, x: e.op("np.cos", x),
    "cos": lambda e, o, x: e.op("neg", e.op("np.sin", x)),
    "tan": lambda e, o, x: e.op("add", Const(1.0), e.op("mul", o, o)),
    "tanh": lambda e, o, x: e.op("sub", Const(1.0), e.op("mul", o, o)),
    "sinh": lambda e, o, x: e.op("np.cosh", x),
    "cosh": lambda e, o, x: e.op("np.sinh", x),
    "arcsin": lambda e, o, x: _inv_sqrt(e, e.op("sub", Const(1.0), e.op("mul", x, x))),
    "arccos": lambda e, o, x: e.op("neg", _inv_sqrt(e, e.op("sub", Const(1.0), e.op("mul", x, x)))),
    "arctan": lambda e, o, x: e.op("np.divide", Const(1.0), e.op("add", Const(1.0), e.op("mul", x, x))),
    "arcsinh": lambda e, o, x: _inv_sqrt(e, e.op("add", e.op("mul", x, x), Const(1.0))),
    "arccosh": lambda e, o, x: _inv_sqrt(e, e.op("sub", e.op("mul", x, x), Const(1.0))),
    "arctanh": lambda e, o, x: e.op("np.divide", Const(1.0), e.op("sub", Const(1.0), e.op("mul", x, x))),
    "reciprocal": lambda e, o, x: e.op("neg", e.op("mul", o, o)),
    "negative": lambda e, o, x: Const(-1.0),
    "positive": lambda e, o, x: Const(1.0),
    "deg2rad": lambda e, o, x: Const(math.pi / 180.0),
    "rad2deg": lambda e, o, x: Const(180.0 / math.pi),
}
_MATH_ALIASES = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh",
                 "acosh": "arccosh", "atanh": "arctanh", "degrees": "rad2deg", "radians": "deg2rad"}


def _register():
    for name in ("copy", "pos", "np.positive"):
        defjvp(name, _same)
    defjvp("add", _add)
    defjvp("sub", _sub)
    defjvp("mul", _mul)
    defjvp("truediv", _truediv)
    defjvp("neg", _neg)
    defjvp("mod", _mod)
    for name in ("pow", "math.pow", "np.power"):
        defjvp(name, _pow)
    for name in ("abs", "np.abs", "np.absolute", "np.fabs", "math.fabs"):
        defjvp(name, _unary(_sign))
    for name, d in _UNARY.items():
        defjvp(f"np.{name}", _unary(d))
    for name in ("sqrt", "exp", "log1p", "expm1", "log2", "log10", "sin", "cos", "tan", "sinh", "cosh",
                 "tanh", "asin", "acos", "atan", "asinh", "acosh", "atanh", "degrees", "radians"):
        defjvp(f"math.{name}", _unary(_UNARY[_MATH_ALIASES.get(name, name)]))
    defjvp("math.log", _log_base)
    defjvp("math.erf", _unary(lambda e, o, x: e.op("mul", Const(2.0 / math.sqrt(math.pi)),
                                                    e.op("np.exp", e.op("neg", e.op("mul", x, x))))))
    for name in ("math.hypot", "np.hypot"):
        defjvp(name, _hypot)
    for name in ("math.atan2", "np.arctan2"):
        defjvp(name, _atan2)
    for name, base in (("np.add", _add), ("np.subtract", _sub), ("np.multiply", _mul),
                       ("np.divide", _truediv), ("np.true_divide", _truediv)):
        defjvp(name, base)
    defjvp("np.logaddexp", _logaddexp)
    defjvp("float", _cast("float"))
    for t in ("float32", "float64"):
        defjvp(f"np.{t}", _cast(f"np.{t}"))
    defjvp("max", _fold_extreme("gt"))
    defjvp("min", _fold_extreme("lt"))
    for name in ("np.maximum", "np.fmax"):
        defjvp(name, _maximum("ge"))
    for name in ("np.minimum", "np.fmin"):
        defjvp(name, _maximum("le"))
    defjvp("np.heaviside", _heaviside)
    defjvp("select", _select)
    defjvp("np.where", _where)
    defjvp("np.clip", _clip)


_register()
