"""Static types for compiling an elementwise IR function into one numba kernel.

The numpy runtime decides dtypes at run time, lane group by lane group; a
kernel must decide them once, when it is generated.  This module infers, for
every variable at every program point, a :class:`ST` (numpy dtype + NEP 50
``weak`` flag) with the rules of :mod:`vmapper.runtime.values` and
:mod:`vmapper.primitives.scalar_ops`:

* operands are *prepared* as ``scalar_ops.prepare`` does: weak bools become
  weak int64 in arithmetic, and weak operands are cast to the NEP 50 result
  type of the operand list when a strong operand is present;
* the ufunc loop is then chosen by numpy itself (``ufunc.resolve_dtypes``), so
  the kernel computes in exactly the dtype numpy would;
* a result is weak iff all (prepared) operands are weak, except for the ops
  that say otherwise (``np.*`` functions: strong; ``int()``/``float()``/
  ``math.*``/comparisons of weak values: weak...);
* a variable that reaches a block with different types on different paths is
  merged as ``values._merge_dtype`` merges lanes (``np.promote_types``, or the
  NEP 50 result type when a weak value meets a strong one; weak iff weak on
  every path), as ``values.select`` / masked stores do.

Types are flow-sensitive: within a block an assignment replaces the
variable's type; joins promote.  The runtime can give a narrower dtype when
no lane of a batch takes one of the paths (it only promotes what it sees);
the kernel promotes statically.

Uniform computations whose operands are all literal constants are folded
here with Python semantics (as the runtime computes uniform values), and a
fold that raises turns into an unconditional error at that point.

Anything whose batched semantics the kernel cannot reproduce exactly raises
:class:`KernelUnsupported`; the caller then uses the numpy runtime, which
also produces the precise error message for type errors.
"""
from __future__ import annotations

import builtins
import math
import operator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vmapper.ir import Block, Branch, Const, Function, Instr, Jump, Raise, Return, Var, is_temp
from vmapper import primitives

__all__ = ["KernelUnsupported", "ST", "TT", "Plan", "FunctionTypes", "const_type", "arg_type",
           "promote", "infer_function", "SUPPORTED_OPS", "MATH_FUNCS", "NUMPY_UNARY",
           "NUMPY_BINARY", "CAST_OPS", "prepare_ir"]


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
    """Scalar type of a per-lane value: its numpy dtype and NEP 50 weakness."""
    dtype: np.dtype
    weak: bool

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
        # values._merge_dtype: as np.where would under NEP 50, a Python scalar merged with
        # a numpy value takes the numpy value's type where that holds it (0.0 with float32)
        strong, weak = (b, a) if a.weak else (a, b)
        dt = np.result_type(strong.dtype, _WEAK_EXAMPLE[weak.dtype.kind])
    else:
        dt = np.promote_types(a.dtype, b.dtype)
    return ST(check_dtype(dt), a.weak and b.weak)


def result_dtype(ts) -> np.dtype:
    """NEP 50 promotion of operands, weak ones entering as Python scalars."""
    return np.result_type(*[_WEAK_EXAMPLE[t.dtype.kind] if t.weak else t.dtype for t in ts])


def prepare(ts, arithmetic):
    """``scalar_ops.prepare`` on types: weak bools -> int64 (arithmetic), weak -> NEP 50 type."""
    out = list(ts)
    if arithmetic:
        out = [ST(I64, True) if t.weak and t.dtype.kind == "b" else t for t in out]
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
MSG_INT_NAN = "cannot convert float NaN to integer"
MSG_INT_INF = "cannot convert float infinity to integer"
MSG_INT_BIG = "int() of a float beyond int64"
MSG_ROUND = "cannot round a NaN or infinity to an integer"
MSG_ROUND_BIG = "round() of a float beyond int64"
MSG_MATH_DOMAIN = "math domain error"
MSG_MATH_RANGE = "math range error"
MSG_RANGE_STEP = "range() arg 3 must not be zero"


CONTAINER = TT(("container",))  # the type of a literal collection operand of ``in``


@dataclass
class Plan:
    """How one instruction computes: its result type and what codegen needs to know."""
    kind: str
    result: Any                    # ST, TT, or None (effect only)
    loop: tuple = ()               # dtypes the operands are cast to before the operation
    checks: tuple = ()             # error checks, by name
    extra: dict = field(default_factory=dict)


def _const_operand(a):
    return isinstance(a, Const)


def plan_binary(op, ts, args):
    ta, tb = ts
    if op in ARITH_BINARY:
        uf, arithmetic = ARITH_BINARY[op], True
    elif op in BIT_BINARY:
        uf, arithmetic = BIT_BINARY[op], False
    else:
        uf, arithmetic = COMPARE[op], False
    pa, pb = prepare([ta, tb], arithmetic)
    la, lb, lo = resolve(uf, (pa.dtype, pb.dtype))
    weak = pa.weak and pb.weak
    checks = ()
    b = args[1]
    const_b = b.value if isinstance(b, Const) else None
    ints = pa.dtype.kind in "biu" and pb.dtype.kind in "biu"
    if op in ("truediv", "floordiv", "mod"):
        nonzero_const = const_b is not None and const_b != 0
        if not nonzero_const and (ints or weak):
            checks = ("div",)
    elif op == "pow":
        if ints:
            if const_b is None or const_b < 0:
                checks = ("pow_int",)
        elif weak:
            checks = ("pow_float",)
    if op in COMPARE:
        return Plan("compare", ST(BOOL, weak), (la, lb), checks, {"op": op, "prep": (pa.dtype, pb.dtype)})
    if op in ("truediv", "floordiv", "mod", "pow", "lshift", "rshift") or op in BIT_BINARY or op in (
            "add", "sub", "mul"):
        if lo.kind == "b" and op not in ("add", "mul", "bitand", "bitor", "bitxor"):
            raise KernelUnsupported(f"'{op}' of booleans")
    extra = {"op": op, "prep": (pa.dtype, pb.dtype)}
    if op in ("floordiv", "mod") and lo.kind in "iu" and pa.dtype.kind in "iu" and \
            isinstance(const_b, (int, np.integer)) and not isinstance(const_b, bool):
        v = int(const_b)
        if v > 1 and v & (v - 1) == 0:
            extra["shift"] = v.bit_length() - 1
    return Plan("binary", ST(lo, weak), (la, lb), checks, extra)


def plan_unary(op, t):
    (p,) = prepare([t], True)
    la, lo = resolve(UNARY[op], (p.dtype,))
    if lo.kind == "b" and op in ("neg", "pos"):
        raise KernelUnsupported(f"'{op}' of a boolean")
    return Plan("unary", ST(lo, p.weak), (la,), (), {"op": op, "prep": (p.dtype,)})


def plan_numpy(name, ts):
    uf = getattr(np, name)
    ps = prepare(ts, False)
    if name in ("where", "clip"):
        if name == "where":
            dt = np.result_type(ps[1].dtype, ps[2].dtype)
            loop = (ps[0].dtype, dt, dt)
        else:
            with np.errstate(all="ignore"):
                dt = np.clip(*[np.zeros(1, p.dtype) for p in ps]).dtype
            loop = (dt, dt, dt)
        check_dtype(dt, f"np.{name}")
        return Plan("numpy", ST(dt, False), loop, (), {"name": name, "prep": tuple(p.dtype for p in ps)})
    loop = resolve(uf, [p.dtype for p in ps])
    *ins, out = loop
    if name in ("reciprocal",) and out.kind != "f":
        raise KernelUnsupported("np.reciprocal of integers")
    if name in ("sign", "square", "negative", "positive", "absolute", "abs", "floor", "ceil", "trunc",
                "maximum", "minimum", "fmax", "fmin", "add", "subtract", "multiply", "power") \
            and out.kind == "b" and name not in ("absolute", "abs", "maximum", "minimum", "fmax", "fmin",
                                                  "add", "multiply"):
        raise KernelUnsupported(f"np.{name} of booleans")
    if name in ("power",) and out.kind in "iu":
        raise KernelUnsupported("np.power of integers")  # numpy raises for negative exponents
    return Plan("numpy", ST(out, False), tuple(ins), (), {"name": name, "prep": tuple(p.dtype for p in ps)})


def plan_math(name, ts):
    if any(t.dtype.kind not in "biuf" for t in ts):
        raise KernelUnsupported(f"math.{name} of {ts}")
    loop = tuple(F64 for _ in ts)
    if name in MATH_INT_FUNCS:
        return Plan("math_int", ST(I64, True), loop, ("int_nan", "int_inf"), {"name": name})
    if name in MATH_PRED_FUNCS:
        return Plan("math_pred", ST(BOOL, True), loop, (), {"name": name})
    nargs = MATH_FUNCS[name]
    if len(ts) not in ((nargs,) if isinstance(nargs, int) else nargs):
        raise KernelUnsupported(f"math.{name} with {len(ts)} arguments")
    return Plan("math", ST(F64, True), loop, ("math_domain", "math_range"), {"name": name})


def plan_fold_extreme(op, ts):
    """min/max of several values: Python's left fold, keeping the first extreme."""
    better = np.less if op == "min" else np.greater
    steps = []
    cur = ts[0]
    for nxt in ts[1:]:
        pn, pc = prepare([nxt, cur], False)
        ln, lc, _ = resolve(better, (pn.dtype, pc.dtype))
        new = promote(nxt, cur)
        steps.append(((ln, lc), new, (pn.dtype, pc.dtype)))
        cur = new
    return Plan("minmax", cur, (), (), {"op": op, "steps": steps})


def plan_contains(ins, ts):
    """``item in (v1, v2, ...)``: ``truth(np.equal(item, v))`` per element, as scalar_ops._contains."""
    container = ins.args[0]
    if not (isinstance(container, Const) and is_const_collection(container.value)):
        raise KernelUnsupported("'in' on something other than a literal collection of numbers")
    item = ts[1]
    if isinstance(item, TT):
        raise KernelUnsupported("'in' with a tuple item")
    cmps = []
    for v in container.value:
        pa, pb = prepare([item, const_type(v)], False)
        la, lb, _ = resolve(np.equal, (pa.dtype, pb.dtype))
        cmps.append((v, (pa.dtype, la), (pb.dtype, lb)))
    return Plan("isin", ST(BOOL, True), (), (), {"cmps": cmps, "item": 1})


def infer_op(ins: Instr, ts: list) -> Plan:
    """The plan of one instruction given its operand types (scalars only)."""
    op, args = ins.op, ins.args
    if op == "tuple":
        if any(isinstance(t, TT) for t in ts):
            raise KernelUnsupported("nested tuples")
        return Plan("tuple", TT(tuple(ts)))
    if op == "contains":
        return plan_contains(ins, ts)
    if op in ("copy",):
        return Plan("copy", ts[0])
    if any(isinstance(t, TT) for t in ts):
        raise KernelUnsupported(f"'{op}' of a tuple")
    if ins.attrs.get("kw"):
        raise KernelUnsupported(f"'{op}' with keyword arguments")
    if op in ARITH_BINARY or op in BIT_BINARY or op in COMPARE:
        return plan_binary(op, ts, args)
    if op in UNARY:
        return plan_unary(op, ts[0])
    if op in ("not", "truth", "bool"):
        return Plan("truth", ST(BOOL, True), (), (), {"negate": op == "not"})
    if op == "select":
        return Plan("select", promote(ts[1], ts[2]))
    if op == "int":
        if len(ts) != 1:
            raise KernelUnsupported("int() with a base")
        checks = ("int_nan", "int_inf", "int_big") if ts[0].dtype.kind == "f" else ()
        return Plan("int", ST(I64, True), (), checks)
    if op == "round":
        if len(ts) != 1:
            raise KernelUnsupported("round() with ndigits")
        checks = ("round_nonfinite", "round_big") if ts[0].dtype.kind == "f" else ()
        return Plan("round", ST(I64, True), (), checks)
    if op == "float":
        return Plan("cast", ST(F64, True), (), (), {"dtype": F64})
    if op in CAST_OPS:
        if len(ts) != 1:
            raise KernelUnsupported(f"{op}() with {len(ts)} arguments")
        return Plan("cast", ST(CAST_OPS[op], False), (), (), {"dtype": CAST_OPS[op]})
    if op in ("min", "max"):
        if len(ts) < 2:
            raise KernelUnsupported(f"{op}() of a sequence")
        return plan_fold_extreme(op, ts)
    if op.startswith("math."):
        return plan_math(op[5:], ts)
    if op.startswith("np."):
        name = op[3:]
        if name in NUMPY_UNARY and len(ts) == 1 or name in NUMPY_BINARY and len(ts) == 2 or \
                name in ("where", "clip") and len(ts) == 3:
            return plan_numpy(name, ts)
        raise KernelUnsupported(f"{op} with {len(ts)} arguments")
    if op == "isin":
        values = ins.attrs["values"]
        cmps = []
        for v in values:
            if v is None or isinstance(v, str):
                continue
            if not is_number_const(v):
                raise KernelUnsupported(f"'in' with a {type(v).__name__} value")
            # ``data == v``: v is a Python scalar (NEP 50 weak) or a numpy scalar
            pa, pb = prepare([ts[0], const_type(v)], False)
            la, lb, _ = resolve(np.equal, (pa.dtype, pb.dtype))
            cmps.append((v, (pa.dtype, la), (pb.dtype, lb)))
        return Plan("isin", ST(BOOL, True), (), (), {"cmps": cmps, "item": 0})
    if op == "range_check":
        for j, t in enumerate(ts):
            if t.dtype.kind not in "biu":
                return Plan("range_type_error", None, (), (), {"type": t, "index": j})
        return Plan("range_check", None, (), ("range_step",))
    if op == "range_cond":
        if any(t.dtype.kind not in "biu" for t in ts):
            raise KernelUnsupported("range() over non-integers")
        return Plan("range_cond", ST(BOOL, True))
    raise KernelUnsupported(f"operation '{op}'")


# ---- the IR copy the kernel is generated from ---------------------------------------------------

def _fold_value(ins: Instr, values):
    """Evaluate an instruction on uniform literal operands as the runtime would (Python)."""
    op = ins.op
    if op == "isin":
        return values[0] in ins.attrs["values"]
    if op == "range_check":
        if any(not isinstance(v, (int, np.integer)) for v in values):
            raise TypeError(f"'{type(next(v for v in values if not isinstance(v, (int, np.integer)))).__name__}'"
                            " object cannot be interpreted as an integer")
        if values[2] == 0:
            raise ValueError(MSG_RANGE_STEP)
        return None
    if op == "tuple":
        return tuple(values)
    if op in ("not",):
        return not bool(values[0])
    if op in ("truth", "bool"):
        return bool(values[0])
    prim = primitives.PRIMITIVES[op]
    if ins.attrs.get("kw"):
        raise KernelUnsupported("keyword arguments")
    if prim.scalar is None:
        raise KernelUnsupported(f"folding '{op}'")
    return prim.scalar(*values)


def prepare_ir(fn: Function) -> Function:
    """A private copy of ``fn`` with uniform literal computations folded and dead blocks dropped.

    Instructions whose operands are all literals are evaluated as the runtime
    evaluates uniform values (with Python); a named variable whose every
    definition assigns the same literal becomes that literal where it is
    definitely assigned; a branch on a literal becomes a jump, and blocks no
    lane can reach are dropped (their types would otherwise widen the
    static types of the variables and the result).  A fold that raises ends
    its block with a :class:`Raise` of that error (the lanes that get there
    fail, as in the runtime).
    """
    blocks = {bid: Block(bid, [replace(i) for i in blk.instrs], replace(blk.term), blk.label)
              for bid, blk in fn.blocks.items()}
    for _ in range(100):
        for blk in blocks.values():
            _fold_block(blk)
        blocks = _reachable(blocks, fn.entry)
        if not _propagate_named_constants(blocks, fn.entry, set(fn.params)):
            break
    return Function(fn.name, list(fn.params), blocks, fn.entry, fn.source, fn.python_function, {})


def _fold_block(blk):
    consts = {}
    instrs = []
    term = blk.term
    for ins in blk.instrs:
        args = tuple(Const(consts[a.name]) if isinstance(a, Var) and a.name in consts else a
                     for a in ins.args)
        ins = replace(ins, args=args)
        if ins.op == "select" and isinstance(args[0], Const):
            # a uniform condition: the runtime returns the chosen value as it is (no merge)
            ins = Instr("copy", ins.target, (args[1] if bool(args[0].value) else args[2],), {}, ins.line)
            args = ins.args
        if ins.op == "copy" and isinstance(args[0], Const) and is_temp(ins.target or ""):
            consts[ins.target] = args[0].value
            continue
        if args and all(isinstance(a, Const) for a in args) and ins.op in SUPPORTED_OPS \
                and ins.op != "copy":
            vals = [a.value for a in args]
            try:
                with np.errstate(all="ignore"):
                    value = _fold_value(ins, vals)
            except KernelUnsupported:
                raise
            except Exception as exc:  # noqa: BLE001 - the per-sample error, reported per lane
                term = Raise(type(exc), str(exc) or type(exc).__name__, ins.line)
                break
            if ins.target is None:
                continue
            if type(value) is tuple:
                instrs.append(ins)
                continue
            if not (value is None or is_number_const(value)):
                raise KernelUnsupported(f"uniform value of type {type(value).__name__} at line {ins.line}")
            if is_temp(ins.target):
                consts[ins.target] = value
                continue
            ins = Instr("copy", ins.target, (Const(value),), {}, ins.line)
        if ins.target is not None:
            consts.pop(ins.target, None)  # reassigned (a temporary may be, by and/or lowering)
        instrs.append(ins)
    else:
        if isinstance(term, Branch) and isinstance(term.cond, Var) and term.cond.name in consts:
            term = replace(term, cond=Const(consts[term.cond.name]))
        if isinstance(term, Return) and isinstance(term.value, Var) and term.value.name in consts:
            term = Return(Const(consts[term.value.name]), term.line)
        if isinstance(term, Branch) and isinstance(term.cond, Const):
            term = Jump(term.if_true if bool(term.cond.value) else term.if_false, term.line)
    blk.instrs = instrs
    blk.term = term


def _reachable(blocks, entry):
    seen, stack = set(), [entry]
    while stack:
        b = stack.pop()
        if b in seen:
            continue
        seen.add(b)
        stack.extend(blocks[b].successors())
    return {b: blocks[b] for b in sorted(seen)}


def _const_key(v):
    return (type(v), v.hex() if isinstance(v, float) else repr(v))


def _propagate_named_constants(blocks, entry, params) -> bool:
    """Replace reads of variables that only ever hold one literal; True if anything changed."""
    value = {}
    bad = set(params)
    for blk in blocks.values():
        for ins in blk.instrs:
            t = ins.target
            if t is None or t in bad:
                continue
            if ins.op == "copy" and isinstance(ins.args[0], Const) and is_number_const(ins.args[0].value):
                v = ins.args[0].value
                if t in value and _const_key(value[t]) != _const_key(v):
                    bad.add(t)
                    value.pop(t)
                else:
                    value[t] = v
            else:
                bad.add(t)
                value.pop(t, None)
    if not value:
        return False
    # only where the variable is definitely assigned (elsewhere the read may fail as unbound)
    preds = {b: [] for b in blocks}
    for b, blk in blocks.items():
        for s in blk.successors():
            preds[s].append(b)
    defs = {b: {i.target for i in blk.instrs if i.target} for b, blk in blocks.items()}
    universe = set(params).union(*defs.values())
    state = {b: set(universe) for b in blocks}
    state[entry] = set(params)
    changed = True
    while changed:
        changed = False
        for b in blocks:
            if b == entry:
                continue
            new = set.intersection(*[state[p] | defs[p] for p in preds[b]]) if preds[b] else set()
            if new != state[b]:
                state[b] = new
                changed = True
    did = False

    def sub(a, have):
        nonlocal did
        if isinstance(a, Var) and a.name in value and a.name in have:
            did = True
            return Const(value[a.name])
        return a

    for b, blk in blocks.items():
        have = set(state[b])
        for ins in blk.instrs:
            new_args = tuple(sub(a, have) for a in ins.args)
            if new_args != ins.args:
                ins.args = new_args
            if ins.target:
                have.add(ins.target)
        t = blk.term
        if isinstance(t, Branch):
            t.cond = sub(t.cond, have)
        elif isinstance(t, Return):
            t.value = sub(t.value, have)
    return did


# ---- whole-function inference --------------------------------------------------------------------

@dataclass
class FunctionTypes:
    fn: Function                     # the prepared IR copy
    params: list                     # ST per parameter
    block_in: dict                   # block -> {var: type} at block entry
    block_out: dict                  # block -> {var: type} at block end (None: never ends)
    plans: dict                      # (block, index) -> Plan
    result: Any                      # ST or TT of the return value
    stop_at: dict                    # block -> (index, var): a read of a never-assigned var
    maybe_unbound: set               # (block, index or 'term', var) reads that need a defined check
    flagged: set                     # variables that carry a defined flag
    order: list                      # reachable blocks in reverse post-order


def _operand_type(a, env):
    if isinstance(a, Const):
        if a.value is None:
            raise KernelUnsupported("None as a value")
        if isinstance(a.value, tuple) and all(is_number_const(v) for v in a.value):
            return TT(tuple(const_type(v) for v in a.value))
        if is_const_collection(a.value):
            return CONTAINER
        return const_type(a.value)
    return env.get(a.name)


def _rpo(fn):
    seen, order = set(), []

    def visit(b):
        stack = [(b, iter(fn.blocks[b].successors()))]
        seen.add(b)
        while stack:
            node, it = stack[-1]
            for s in it:
                if s not in seen:
                    seen.add(s)
                    stack.append((s, iter(fn.blocks[s].successors())))
                    break
            else:
                order.append(node)
                stack.pop()
    visit(fn.entry)
    return order[::-1]


def _transfer(fn, b, env_in, plans, stop_at, final):
    env = dict(env_in)
    blk = fn.blocks[b]
    for k, ins in enumerate(blk.instrs):
        ts = []
        for a in ins.args:
            t = _operand_type(a, env)
            if t is None:  # never assigned on any path here: every lane reaching it fails
                stop_at[b] = (k, a.name)
                return None
            ts.append(t)
        try:
            plan = infer_op(ins, ts)
        except KernelUnsupported as exc:
            if final:
                raise KernelUnsupported(f"line {ins.line}: {exc}") from None
            plan = None
        plans[(b, k)] = plan
        if ins.target is not None:
            if plan is None or plan.result is None:
                env.pop(ins.target, None)
            else:
                env[ins.target] = plan.result
        if plan is not None and plan.kind == "range_type_error":
            stop_at[b] = (k, None)
            return None
    stop_at.pop(b, None)
    t = blk.term
    if isinstance(t, Branch) and isinstance(t.cond, Var) and t.cond.name not in env:
        stop_at[b] = (len(blk.instrs), t.cond.name)
        return None
    if isinstance(t, Return) and isinstance(t.value, Var) and t.value.name not in env:
        stop_at[b] = (len(blk.instrs), t.value.name)
        return None
    plans[(b, "term")] = env
    # expression temporaries never live across an edge (passes/temporaries.py)
    return {k: v for k, v in env.items() if not is_temp(k)}


def _join_env(a, b):
    if a is None:
        return dict(b)
    out = dict(a)
    for k, v in b.items():
        out[k] = promote(out.get(k), v)
    return out


def infer_function(fn: Function, arg_types) -> FunctionTypes:
    """Types of every variable at every block boundary of ``fn`` (a :func:`prepare_ir` copy)."""
    params = [arg_type(s) for s in arg_types]
    if len(params) != len(fn.params):
        raise KernelUnsupported(f"{len(arg_types)} argument types for {len(fn.params)} parameters")
    order = _rpo(fn)
    preds = {b: [] for b in fn.blocks}
    for b in order:
        for s in fn.blocks[b].successors():
            preds[s].append(b)
    base = {fn.entry: dict(zip(fn.params, params))}
    block_in = {fn.entry: dict(base[fn.entry])}
    block_out = {}
    plans, stop_at = {}, {}
    work = list(order)
    in_work = set(work)
    rounds = 0
    while work:
        rounds += 1
        if rounds > 100 * len(order) + 1000:
            raise KernelUnsupported("type inference did not converge")
        b = work.pop(0)
        in_work.discard(b)
        if b not in block_in:
            continue
        out = _transfer(fn, b, block_in[b], plans, stop_at, final=False)
        if b in block_out and out == block_out[b]:
            continue
        block_out[b] = out
        for s in fn.blocks[b].successors():
            new = base.get(s)
            new = None if new is None else dict(new)
            for p in preds[s]:
                if block_out.get(p) is not None:
                    new = _join_env(new, block_out[p])
            if new is not None and new != block_in.get(s):
                block_in[s] = new
                if s not in in_work:
                    work.append(s)
                    in_work.add(s)
    # final pass: plans with the converged types (raises what is really unsupported)
    plans, stop_at = {}, {}
    live = [b for b in order if b in block_in]
    for b in live:
        block_out[b] = _transfer(fn, b, block_in[b], plans, stop_at, final=True)
    result = None
    for b in live:
        t = fn.blocks[b].term
        if isinstance(t, Return) and block_out[b] is not None:
            if isinstance(t.value, Const) and t.value.value is None:
                raise KernelUnsupported("the function returns None")
            result = promote(result, _operand_type(t.value, plans[(b, "term")]))
    if result is None:
        result = ST(F64, False)  # every lane fails: any dtype will do
    maybe_unbound = _unbound_reads(fn, live, block_in, preds, stop_at)
    flagged = {v for (_, _, v) in maybe_unbound}
    return FunctionTypes(fn, params, block_in, block_out, plans, result, stop_at, maybe_unbound,
                         flagged, live)


def _unbound_reads(fn, live, block_in, preds, stop_at):
    """Reads of variables that are assigned on some but not all paths to them."""
    defs = {}
    for b in live:
        d = set()
        for ins in fn.blocks[b].instrs:
            if ins.target:
                d.add(ins.target)
        defs[b] = d
    universe = set(fn.params).union(*defs.values()) if defs else set(fn.params)
    state = {b: set(universe) for b in live}
    state[fn.entry] = set(fn.params)
    changed = True
    while changed:
        changed = False
        for b in live:
            if b == fn.entry:
                continue
            ps = [p for p in preds[b] if p in state]
            new = set.intersection(*[state[p] | defs[p] for p in ps]) if ps else set()
            if new != state[b]:
                state[b] = new
                changed = True
    out = set()
    for b in live:
        have = set(state[b])
        blk = fn.blocks[b]
        stop, stop_var = stop_at.get(b, (None, None))
        for k, ins in enumerate(blk.instrs):
            if stop is not None and (k > stop or k == stop and stop_var is not None):
                break
            for u in ins.uses():
                if u not in have:
                    out.add((b, k, u))
            if ins.target:
                have.add(ins.target)
        if stop is None or stop >= len(blk.instrs):
            for u in blk.term.uses():
                if u not in have:
                    out.add((b, "term", u))
    return out
