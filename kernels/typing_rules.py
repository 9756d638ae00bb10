"""Kernel type rules: the scalar/value types (``ST``, ``TT``), dtype promotion
and ufunc resolution, the supported operation tables and the error messages
kernels reproduce."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class KernelUnsupported(Exception):
    """The function (with these argument types) cannot become a kernel; use the runtime."""


# ---- types ------------------------------------------------------------------------------

SUPPORTED_DTYPES = frozenset(np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float32, np.float64))
_WEAK_EXAMPLE = {"b": False, "i": 0, "u": 0, "f": 0.0, "c": 0j}
BOOL = np.dtype(np.bool_)
I64 = np.dtype(np.int64)
F64 = np.dtype(np.float64)


@dataclass(frozen=True)
class ST:
    """Scalar type of a per-lane value: its numpy dtype and NEP 50 weakness; ``const``: the
    value of a literal Python scalar (None otherwise), which decides whether a narrower numpy
    type holds it where the two meet (:func:`promote`)."""
    dtype: np.dtype
    weak: bool
    const: object = None

    def __post_init__(self):
        object.__setattr__(self, "dtype", np.dtype(self.dtype))

    def __repr__(self):
        return f"{'weak ' if self.weak else ''}{self.dtype.name}"


@dataclass(frozen=True)
class TT:
    """A tuple of scalars (only as a return value)."""
    items: tuple

    def __repr__(self):
        return f"({', '.join(map(repr, self.items))})"


def check_dtype(dt, what="value"):
    dt = np.dtype(dt)
    if dt not in SUPPORTED_DTYPES:
        raise KernelUnsupported(f"{what} of dtype {dt.name}")
    return dt


def const_type(value) -> ST:
    """The type of a literal / uniform scalar as the runtime holds it."""
    if type(value) is bool:
        return ST(BOOL, True)
    if type(value) is int:
        if not -2 ** 63 <= value < 2 ** 63:
            raise KernelUnsupported(f"integer constant {value} beyond int64")
        return ST(I64, True)
    if type(value) is float:
        return ST(F64, True)
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        return ST(check_dtype(value.dtype, "constant"), False)
    raise KernelUnsupported(f"constant of type {type(value).__name__}")


def literal_type(value) -> ST:
    """``const_type`` of a literal of the program, which remembers a Python scalar's value
    (NaN aside: it is not equal to itself)."""
    t = const_type(value)
    if t.weak and value == value:
        return ST(t.dtype, True, value)
    return t


def holds_exactly(dtype, value) -> bool:
    """Whether numpy ``dtype`` holds the Python scalar ``value`` exactly (-200 is no int8,
    0.1 no float32)."""
    try:
        with np.errstate(all="ignore"):
            return np.dtype(dtype).type(value).item() == value  # (a numpy scalar == value casts value)
    except (OverflowError, ValueError, TypeError):
        return False


def is_number_const(value) -> bool:
    return type(value) in (bool, int, float) or isinstance(value, (np.bool_, np.integer, np.floating))


def is_const_collection(value) -> bool:
    """A literal tuple/list/set of numbers (the container of a kernel's ``in``)."""
    return isinstance(value, (tuple, list, frozenset, set)) and all(is_number_const(v) for v in value)


def arg_type(spec) -> ST:
    """``("lanes", dtype, weak)`` or ``("uniform", value)`` -> ST."""
    if spec[0] == "lanes":
        return ST(check_dtype(spec[1], "argument"), bool(spec[2]))
    if spec[0] == "uniform":
        return const_type(spec[1])
    raise ValueError(f"bad argument type spec {spec!r}")


def promote(a, b):
    """The type of a variable holding ``a`` on some lanes/paths and ``b`` on others."""
    if a is None:
        return b
    if b is None or a == b:
        return a
    if isinstance(a, TT) or isinstance(b, TT):
        if not (isinstance(a, TT) and isinstance(b, TT)) or len(a.items) != len(b.items):
            raise KernelUnsupported("a tuple on some paths and another value on others")
        return TT(tuple(promote(x, y) for x, y in zip(a.items, b.items)))
    if a.dtype == b.dtype:
        dt = a.dtype
    elif a.weak != b.weak:
        # values._merge_dtype: a Python scalar merged with a numpy value takes the numpy
        # value's type where that holds it (0.0 with float32, as np.where would under NEP 50);
        # a literal it does not hold (-200 with int8, 0.1 with float32) promotes, as an array
        # of the per-sample results would.  (A weak value computed at run time: NEP 50.)
        strong, weak = (b, a) if a.weak else (a, b)
        if weak.const is not None and not holds_exactly(strong.dtype, weak.const):
            # The numpy runtime's type then depends on which lanes took which path (the
            # literal where no lane holds the other, the wider type where lanes hold both),
            # and so does every result computed from it: one static type cannot follow it.
            raise KernelUnsupported(
                f"a variable holding the Python {type(weak.const).__name__} {weak.const!r} on some "
                f"paths and {strong.dtype.name} values on others (the literal is not exact in "
                f"{strong.dtype.name}, so its type depends on the paths the lanes take)")
        else:
            dt = np.result_type(strong.dtype, _WEAK_EXAMPLE[weak.dtype.kind])
            if weak.const is None and weak.dtype.kind == "i" and dt.kind in "iu" and not np.can_cast(weak.dtype, dt):
                # a Python int computed per lane, merged with a narrower int: numpy's runtime
                # type depends on whether every lane's int fits (values._merge_dtype)
                raise KernelUnsupported(
                    f"a variable holding a Python int on some paths and {strong.dtype.name} values on "
                    f"others (its type depends on whether the ints fit in {strong.dtype.name})")
    else:
        dt = np.promote_types(a.dtype, b.dtype)
    return ST(check_dtype(dt), a.weak and b.weak)


def result_dtype(ts) -> np.dtype:
    """NEP 50 promotion of operands, weak ones entering as Python scalars."""
    return np.result_type(*[_WEAK_EXAMPLE[t.dtype.kind] if t.weak else t.dtype for t in ts])


def prepare(ts, arithmetic):
    """``scalar_ops.prepare`` on types: weak bools -> int64 (arithmetic), weak -> NEP 50 type."""
    out = list(ts)
    if arithmetic and all(t.weak for t in out):
        out = [ST(I64, True) if t.dtype.kind == "b" else t for t in out]
    if any(not t.weak for t in out) and any(t.weak for t in out):
        dt = result_dtype(out)
        out = [ST(dt, False) if t.weak else t for t in out]
    return out


def resolve(ufunc, dtypes):
    """numpy's loop dtypes (inputs..., output) for ``ufunc`` on arrays of ``dtypes``."""
    try:
        loop = ufunc.resolve_dtypes(tuple(dtypes) + (None,))
    except Exception as exc:  # numpy raises TypeError/UFuncTypeError: no loop
        raise KernelUnsupported(f"np.{ufunc.__name__} on {[np.dtype(d).name for d in dtypes]}: {exc}")
    for d in loop:
        check_dtype(d, f"np.{ufunc.__name__} loop")
    return loop


# ---- operations -----------------------------------------------------------------------------

ARITH_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
                "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power,
                "lshift": np.left_shift, "rshift": np.right_shift}
BIT_BINARY = {"bitand": np.bitwise_and, "bitor": np.bitwise_or, "bitxor": np.bitwise_xor}
COMPARE = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
           "eq": np.equal, "ne": np.not_equal}
UNARY = {"neg": np.negative, "pos": np.positive, "invert": np.invert, "abs": np.absolute}
MATH_FUNCS = {"sqrt": 1, "exp": 1, "log": (1, 2), "log1p": 1, "expm1": 1, "log2": 1, "log10": 1,
              "sin": 1, "cos": 1, "tan": 1, "asin": 1, "acos": 1, "atan": 1, "atan2": 2,
              "sinh": 1, "cosh": 1, "tanh": 1, "asinh": 1, "acosh": 1, "atanh": 1, "fabs": 1,
              "hypot": 2, "copysign": 2, "fmod": 2, "pow": 2, "erf": 1, "degrees": 1, "radians": 1}
MATH_INT_FUNCS = ("floor", "ceil", "trunc")
MATH_PRED_FUNCS = ("isnan", "isfinite", "isinf")
NUMPY_UNARY = ("exp", "exp2", "log", "log2", "log10", "log1p", "expm1", "tanh", "sinh", "cosh",
               "sqrt", "cbrt", "square", "sin", "cos", "tan", "arcsin", "arccos", "arctan",
               "arcsinh", "arccosh", "arctanh", "abs", "absolute", "fabs", "floor", "ceil",
               "trunc", "rint", "sign", "isnan", "isfinite", "isinf", "negative", "positive",
               "reciprocal", "logical_not", "signbit", "deg2rad", "rad2deg")
NUMPY_BINARY = ("maximum", "minimum", "fmax", "fmin", "arctan2", "hypot", "power", "float_power",
                "copysign", "logaddexp", "logaddexp2", "logical_and", "logical_or", "logical_xor",
                "heaviside", "add", "subtract", "multiply", "divide", "true_divide", "nextafter")
CAST_OPS = {f"np.{t.__name__}": np.dtype(t) for t in (
    np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
    np.uint64, np.bool_)}

SUPPORTED_OPS = (set(ARITH_BINARY) | set(BIT_BINARY) | set(COMPARE) | set(UNARY)
                 | {"not", "copy", "select", "truth", "range_check", "range_cond", "min", "max",
                    "int", "float", "bool", "round", "isin", "contains", "tuple", "np.where", "np.clip"}
                 | {f"math.{n}" for n in MATH_FUNCS} | {f"math.{n}" for n in MATH_INT_FUNCS}
                 | {f"math.{n}" for n in MATH_PRED_FUNCS}
                 | {f"np.{n}" for n in NUMPY_UNARY} | {f"np.{n}" for n in NUMPY_BINARY}
                 | set(CAST_OPS))

MSG_DIV = "division or modulo by zero"
MSG_POW_INT = ("integer to a negative integer power (Python would return a float, numpy raises; "
               "convert the base with float())")
MSG_POW_ZERO = "0.0 cannot be raised to a negative power"
MSG_POW_DOMAIN = "negative number to a fractional power (Python returns a complex number)"
MSG_POW_OVERFLOW = "float power overflowed"
MSG_SHIFT = "negative shift count"
MSG_INT_NAN = "cannot convert float NaN to integer"
MSG_INT_INF = "cannot convert float infinity to integer"
MSG_INT_BIG = "int() of a float beyond int64"
MSG_ROUND_BIG = "round() of a float beyond int64"
MSG_INT_UINT_BIG = "a uint64 beyond int64 as a Python int (vmapper holds those as int64)"


def empty_extreme_message(name):
    """This Python's own ``ValueError`` message for ``max(())`` (``min(())``): it changed in 3.12."""
    try:
        (max if name == "max" else min)(())
    except ValueError as exc:
        return str(exc)


def int_big_message(name):
    """The ``OverflowError`` of ``math.<name>`` (floor, ceil, trunc) where Python's int would
    grow beyond int64."""
    return f"math.{name}() of a float beyond int64"
MSG_MATH_DOMAIN = "math domain error"
MSG_MATH_RANGE = "math range error"
MSG_LOG_BASE_ONE = "float division by zero"  # (math.log(x, 1): a division by log(1) == 0)


def math_inf_error(name):
    """What CPython's ``math.<name>`` raises where finite arguments give an infinite result:
    ``OverflowError`` (a range error) for the functions that overflow, None for those that
    return it (``degrees``, ``radians``, ``hypot``), else ``ValueError`` (a pole, a domain
    error: ``log(0.0)``, ``atanh(1.0)``).  ``pow`` overflows, except ``pow(0.0, negative)``:
    a pole (the caller checks the base)."""
    if name in ("exp", "expm1", "sinh", "cosh", "pow"):
        return OverflowError
    if name in ("degrees", "radians", "hypot", "fabs", "copysign"):
        return None
    return ValueError
MSG_RANGE_STEP = "range() arg 3 must not be zero"
#: A range whose stop lies within one step of int64's limit: the batched loop steps its counter
#: past the stop, and that step would wrap (not supported yet; per sample, Python's ints grow).
MSG_RANGE_EDGE = ("range() whose stop lies within one step of int64's limit is not supported: the batched "
                  "loop's counter would overflow past it (iterate over a range that stops further from it)")
INT64_MAX, INT64_MIN = int(np.iinfo(np.int64).max), int(np.iinfo(np.int64).min)


def reaches_range_edge(start, stop, step) -> bool:
    """Whether ``range(start, stop, step)`` of Python ints stops within one step of int64's
    limit (``MSG_RANGE_EDGE``): decided when a kernel's IR folds a range of constants."""
    return step > 0 and start < stop and stop - 1 > INT64_MAX - step \
        or step < 0 and start > stop and stop + 1 < INT64_MIN - step


CONTAINER = TT(("container",))  # the type of a literal collection operand of ``in``

