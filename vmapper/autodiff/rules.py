"""VJP rules of the primitives, attached to their registry entries.

A rule is ``vjp(g, out, args, attrs, n) -> [grad for each arg]``: ``g`` is the
gradient of the output in its raw form (``Lanes.data``, or the uniform
array/scalar), ``args`` the raw inputs, ``n`` the lanes.  A varying argument
gets a gradient shaped like its ``data``; a uniform one gets the gradient
summed over lanes (and over the axes it was broadcast along).  ``None`` means
no gradient (ints, bools, indices).

Zero-derivative points: comparisons, ``floor``/``ceil``/``trunc``/``rint``/
``round``, ``//``, ``%`` (in its first argument: derivative 1; second: 0),
``sign`` and casts to int have derivative 0.  One-sided choices: ``abs`` at 0
takes derivative 0 (numpy's ``sign``); ``max``/``min``/``maximum``/
``minimum`` give the whole gradient to the argument they return (the first one
on ties for the builtins, as Python returns it); ``clip`` passes the gradient
only strictly inside the interval and at the bounds it returned.
"""
from __future__ import annotations

import numpy as np

from ..primitives import PRIMITIVES
from ..runtime.values import Lanes, aligned


def sum_to(g, shape):
    """Sum ``g`` down to ``shape`` (the inverse of numpy broadcasting)."""
    g = np.asarray(g)
    shape = tuple(shape)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _is_float(v):
    d = v.data.dtype if isinstance(v, Lanes) else np.asarray(v).dtype
    return d.kind in "fc"


class _Constant:
    """A partial derivative that is the same number everywhere (``add``'s 1, ``sub``'s -1)."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __call__(self, o, *raw):
        return self.value


def elementwise(*partials):
    """A VJP from the partial derivatives of an elementwise op: ``partials[i](out, *raw) -> d out/d arg i``."""
    if partials and all(type(p) is _Constant for p in partials):
        return _linear(partials, elementwise_general(*partials))
    return elementwise_general(*partials)


def _linear(partials, general):
    """The VJP of an op whose partials are constants (``add``, ``sub``, ``neg``, casts): the
    gradient itself (or its negation) for a per-lane operand of the result's shape, its sum
    over the lanes for a shared array of the per-sample shape, the general rule otherwise."""
    signs = [p.value for p in partials]

    def vjp(g, out, args, attrs, n):
        if type(g) is not np.ndarray or g.dtype.kind not in "fc" or not g.ndim or len(args) != len(signs):
            return general(g, out, args, attrs, n)
        res = []
        for arg, c in zip(args, signs):
            ta = type(arg)
            if ta is Lanes:
                s = arg.data.shape
                if arg.data.dtype.kind not in "fc":
                    res.append(None)
                    continue
                d = g if c == 1.0 else -g if c == -1.0 else g * c
                if s == g.shape:
                    res.append(d)
                elif len(s) <= g.ndim:  # per-sample axes right-aligned, as ``aligned`` lays them
                    res.append(sum_to(d, (s[0],) + (1,) * (g.ndim - len(s)) + s[1:]).reshape(s))
                else:
                    return general(g, out, args, attrs, n)
            elif ta is np.ndarray and arg.shape == g.shape[1:] and arg.dtype.kind in "fc":
                d = g if c == 1.0 else -g if c == -1.0 else g * c
                res.append(d.sum(axis=0))  # what sum_to does for this shape
            elif _is_float(arg):
                res.append(sum_to(g if c == 1.0 else -g if c == -1.0 else g * c, np.shape(arg)))
            else:
                res.append(None)
        return res
    return vjp


def elementwise_general(*partials):
    def vjp(g, out, args, attrs, n):
        raw = aligned(args, n) if len(args) > 1 else [args[0].data if type(args[0]) is Lanes else args[0]]
        o = out.data if type(out) is Lanes else out
        res = []
        for i, arg in enumerate(args):
            if i >= len(partials) or partials[i] is None:
                res.append(None)
                continue
            p = partials[i]
            if type(p) is _Constant and type(g) is np.ndarray and g.dtype.kind in "fc":
                # g * 1.0 is g, g * -1.0 is -g: bitwise what the product gives, without its
                # finiteness check (a constant partial is finite)
                d = g if p.value == 1.0 else -g if p.value == -1.0 else g * p.value
            else:
                d = _scaled(g, p(o, *raw))
            res.append(to_arg(d, arg, raw[i]))
        return res
    return vjp


def to_arg(g, arg, aligned_arg):
    """The gradient for ``arg`` from a gradient shaped like the aligned computation."""
    if type(arg) is Lanes:
        d = arg.data
        if d.dtype.kind not in "fc":
            return None
        if type(g) is np.ndarray and g.shape == d.shape:
            return g
        return sum_to(g, np.shape(aligned_arg)).reshape(d.shape)
    if not _is_float(arg):
        return None
    return sum_to(g, np.shape(arg))


def _zero(*args):
    return None


def defvjp(name, vjp):
    PRIMITIVES[name].vjp = vjp


def _scaled(g, partial):
    """``g * partial``, exactly zero where ``g`` is: a lane that an if-converted branch computed
    but did not select gets no gradient, however singular its partial (sqrt at x < 0)."""
    d = g * partial
    if isinstance(d, np.ndarray) and d.dtype.kind in "fc" and not np.isfinite(d).all():
        d = np.where(g == 0, np.zeros((), d.dtype), d)
    return d


_ones = _Constant(1.0)
_minus_one = _Constant(-1.0)


defvjp("add", elementwise(_ones, _ones))
defvjp("sub", elementwise(_ones, _minus_one))
defvjp("mul", elementwise(lambda o, a, b: b, lambda o, a, b: a))
defvjp("truediv", elementwise(lambda o, a, b: 1.0 / b, lambda o, a, b: -o / b))
defvjp("neg", elementwise(_minus_one))
defvjp("pos", elementwise(_ones))
defvjp("copy", elementwise(_ones))
defvjp("floordiv", elementwise(lambda o, a, b: 0.0 * a, lambda o, a, b: 0.0 * b))
defvjp("mod", elementwise(_ones, lambda o, a, b: -np.floor_divide(a, b)))


def _pow_da(o, a, b):
    """``b * a**(b - 1)``, and 0 where ``b == 0``: ``a**0`` is the constant 1 (at ``a = 0`` the
    product is ``0 * inf``)."""
    with np.errstate(all="ignore"):
        d = b * np.power(a, b - 1)
    return np.where(np.equal(b, 0), np.zeros((), np.result_type(d)), d)


def _pow_db(o, a, b):
    with np.errstate(all="ignore"):
        return np.where(a > 0, o * np.log(np.where(a > 0, a, 1)), 0.0)


defvjp("pow", elementwise(_pow_da, _pow_db))
defvjp("abs", elementwise(lambda o, a: np.sign(a)))
defvjp("np.abs", elementwise(lambda o, a: np.sign(a)))
defvjp("np.absolute", elementwise(lambda o, a: np.sign(a)))
defvjp("np.fabs", elementwise(lambda o, a: np.sign(a)))

_UNARY = {
    "exp": lambda o, x: o,
    "exp2": lambda o, x: o * np.log(2.0),
    "expm1": lambda o, x: o + 1.0,
    "log": lambda o, x: 1.0 / x,
    "log2": lambda o, x: 1.0 / (x * np.log(2.0)),
    "log10": lambda o, x: 1.0 / (x * np.log(10.0)),
    "log1p": lambda o, x: 1.0 / (1.0 + x),
    "sqrt": lambda o, x: 0.5 / o,
    "cbrt": lambda o, x: 1.0 / (3.0 * o * o),
    "square": lambda o, x: 2.0 * x,
    "sin": lambda o, x: np.cos(x),
    "cos": lambda o, x: -np.sin(x),
    "tan": lambda o, x: 1.0 + o * o,
    "tanh": lambda o, x: 1.0 - o * o,
    "sinh": lambda o, x: np.cosh(x),
    "cosh": lambda o, x: np.sinh(x),
    "arcsin": lambda o, x: 1.0 / np.sqrt(1.0 - x * x),
    "arccos": lambda o, x: -1.0 / np.sqrt(1.0 - x * x),
    "arctan": lambda o, x: 1.0 / (1.0 + x * x),
    "arcsinh": lambda o, x: 1.0 / np.sqrt(x * x + 1.0),
    "arccosh": lambda o, x: 1.0 / np.sqrt(x * x - 1.0),
    "arctanh": lambda o, x: 1.0 / (1.0 - x * x),
    "reciprocal": lambda o, x: -o * o,
    "negative": _minus_one,
    "positive": _ones,
    "deg2rad": lambda o, x: np.pi / 180.0,
    "rad2deg": lambda o, x: 180.0 / np.pi,
}
for _n, _d in _UNARY.items():
    defvjp(f"np.{_n}", elementwise(_d))
_MATH_ALIASES = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh",
                 "acosh": "arccosh", "atanh": "arctanh", "degrees": "rad2deg", "radians": "deg2rad"}
for _n in ("sqrt", "exp", "log1p", "expm1", "log2", "log10", "sin", "cos", "tan", "sinh", "cosh", "tanh",
           "asin", "acos", "atan", "asinh", "acosh", "atanh", "degrees", "radians"):
    defvjp(f"math.{_n}", elementwise(_UNARY[_MATH_ALIASES.get(_n, _n)]))
defvjp("math.fabs", elementwise(lambda o, a: np.sign(a)))
defvjp("math.log", elementwise(lambda o, x, base=None: 1.0 / x if base is None else 1.0 / (x * np.log(base)),
                               lambda o, x, base: -o / (base * np.log(base))))
defvjp("math.erf", elementwise(lambda o, x: 2.0 / np.sqrt(np.pi) * np.exp(-x * x)))
defvjp("math.pow", PRIMITIVES["pow"].vjp)
defvjp("np.power", PRIMITIVES["pow"].vjp)
defvjp("math.hypot", elementwise(lambda o, a, b: a / o, lambda o, a, b: b / o))
defvjp("np.hypot", PRIMITIVES["math.hypot"].vjp)
defvjp("math.atan2", elementwise(lambda o, y, x: x / (x * x + y * y), lambda o, y, x: -y / (x * x + y * y)))
defvjp("np.arctan2", PRIMITIVES["math.atan2"].vjp)
for _n in ("add", "subtract", "multiply", "divide", "true_divide"):
    defvjp(f"np.{_n}", PRIMITIVES[{"add": "add", "subtract": "sub", "multiply": "mul",
                                   "divide": "truediv", "true_divide": "truediv"}[_n]].vjp)
defvjp("np.logaddexp", elementwise(lambda o, a, b: np.exp(a - o), lambda o, a, b: np.exp(b - o)))
defvjp("np.logaddexp2", elementwise(lambda o, a, b: np.exp2(a - o), lambda o, a, b: np.exp2(b - o)))
defvjp("np.float_power", PRIMITIVES["pow"].vjp)
# fmod(a, b) = a - b * trunc(a / b); copysign(a, b) = |a| * sign(b) (the sign bit's)
defvjp("math.fmod", elementwise(lambda o, a, b: np.ones_like(o), lambda o, a, b: -np.trunc(a / b)))
defvjp("math.copysign", elementwise(lambda o, a, b: np.copysign(1.0, a) * np.copysign(1.0, b),
                                    lambda o, a, b: 0.0 * o))
defvjp("np.copysign", PRIMITIVES["math.copysign"].vjp)
defvjp("np.fmod", PRIMITIVES["math.fmod"].vjp)
defvjp("np.remainder", elementwise(lambda o, a, b: np.ones_like(o), lambda o, a, b: -np.floor(a / b)))
defvjp("np.floor_divide", elementwise(lambda o, a, b: 0.0 * o, lambda o, a, b: 0.0 * o))
for _n in ("floor", "ceil", "trunc", "rint", "sign"):
    defvjp(f"np.{_n}", elementwise(lambda o, x: 0.0 * x))
defvjp("float", elementwise(_ones))
for _t in ("float16", "float32", "float64"):
    defvjp(f"np.{_t}", elementwise(_ones))
defvjp("np.heaviside", elementwise(lambda o, x, h0: np.zeros_like(o), lambda o, x, h0: (x == 0) * 1.0))
defvjp("np.maximum", elementwise(lambda o, a, b: (a >= b) * 1.0, lambda o, a, b: (a < b) * 1.0))
defvjp("np.minimum", elementwise(lambda o, a, b: (a <= b) * 1.0, lambda o, a, b: (a > b) * 1.0))
defvjp("np.fmax", PRIMITIVES["np.maximum"].vjp)
defvjp("np.fmin", PRIMITIVES["np.minimum"].vjp)
defvjp("np.where", elementwise(None, lambda o, c, a, b: (c != 0) * 1.0, lambda o, c, a, b: (c == 0) * 1.0))
defvjp("np.clip", elementwise(lambda o, x, lo, hi: (o == x) * 1.0,
                              lambda o, x, lo, hi: ((o == lo) & (o != x)) * 1.0,
                              lambda o, x, lo, hi: ((o == hi) & (o != x) & (o != lo)) * 1.0))


def _select_vjp(g, out, args, attrs, n):
    c, a, b = args
    cd = c.data if isinstance(c, Lanes) else np.asarray(c)
    ra, rb = aligned([a, b], n)
    m = cd.reshape(cd.shape + (1,) * (g.ndim - cd.ndim)) if cd.ndim else cd
    zero = np.zeros((), g.dtype)
    return [None, to_arg(np.where(m, g, zero), a, ra), to_arg(np.where(m, zero, g), b, rb)]


defvjp("select", _select_vjp)
