"""Per-instruction typing for kernels: ``Plan`` and ``infer_op`` (how each
operation is computed and which checks it needs)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vmapper.ir import Const, Instr

from .typing_rules import (ARITH_BINARY, BIT_BINARY, BOOL, CAST_OPS, COMPARE, F64,
    I64, KernelUnsupported, MATH_FUNCS, MATH_INT_FUNCS, MATH_PRED_FUNCS,
    NUMPY_BINARY, NUMPY_UNARY, ST, TT, UNARY, check_dtype, const_type,
    is_const_collection, is_number_const, prepare, promote, resolve)

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
                # (Python's 0 ** -1 raises ZeroDivisionError; numpy's ints, ValueError for any base)
                checks = ("pow_int_zero", "pow_int") if weak else ("pow_int",)
        elif weak:
            checks = ("pow_float",)
    elif op in ("lshift", "rshift") and weak and (const_b is None or const_b < 0):
        checks = ("shift",)  # (Python ints raise; numpy's shift by a negative count gives 0)
    narrow = _narrowed_weak_int(ts, (pa, pb), args)
    if op in COMPARE:
        if narrow is not None:
            # a Python int per lane beside a narrower int: compared exactly, as numpy compares a
            # Python int (int64 both, or uint64 against int64 through cmp_iu)
            k, strong = narrow
            wide = strong if strong == np.dtype(np.uint64) else I64
            loop = (I64, wide) if k == 0 else (wide, I64)
            return Plan("compare", ST(BOOL, weak), loop, checks, {"op": op, "prep": loop})
        return Plan("compare", ST(BOOL, weak), (la, lb), checks, {"op": op, "prep": (pa.dtype, pb.dtype)})
    if op in ("truediv", "floordiv", "mod", "pow", "lshift", "rshift") or op in BIT_BINARY or op in (
            "add", "sub", "mul"):
        if lo.kind == "b" and op not in ("add", "mul", "bitand", "bitor", "bitxor"):
            raise KernelUnsupported(f"'{op}' of booleans")
    extra = {"op": op, "prep": (pa.dtype, pb.dtype)}
    if narrow is not None:
        extra["weak_range"] = (narrow[0], narrow[1])  # (OverflowError where the int does not fit)
    if op in ("floordiv", "mod") and lo.kind in "iu" and pa.dtype.kind in "iu" and \
            isinstance(const_b, (int, np.integer)) and not isinstance(const_b, bool):
        v = int(const_b)
        if v > 1 and v & (v - 1) == 0:
            extra["shift"] = v.bit_length() - 1
    return Plan("binary", ST(lo, weak), (la, lb), checks, extra)


def _narrowed_weak_int(ts, prepared, args):
    """``(k, dtype)`` when operand ``k`` is a Python int per lane (not a literal: those are
    checked when compiled) that ``prepare`` narrows to the integer ``dtype``, which may not
    hold it; else None."""
    for k, (t, p, a) in enumerate(zip(ts, prepared, args)):
        if t.weak and t.dtype.kind == "i" and not isinstance(a, Const) and p.dtype.kind in "iu" \
                and p.dtype != t.dtype and not np.can_cast(t.dtype, p.dtype):
            return k, p.dtype
    return None


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
    if name == "trunc" and not ts[0].weak and ts[0].dtype != F64:
        raise KernelUnsupported("math.trunc of a numpy scalar other than float64 (a TypeError)")
    if name in MATH_INT_FUNCS:
        if len(ts) == 1 and ts[0].weak and ts[0].dtype.kind in "biu":  # a Python int is its own floor
            return Plan("int", ST(I64, True), (), ())
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
        checks = ("int_nan", "int_inf", "int_big") if ts[0].dtype.kind == "f" else \
            ("int_big",) if ts[0].dtype == np.uint64 else ()
        return Plan("int", ST(I64, True), (), checks)
    if op == "round":
        if len(ts) != 1:
            raise KernelUnsupported("round() with ndigits")
        if ts[0].dtype.kind not in "iuf" and not (ts[0].dtype.kind == "b" and ts[0].weak):
            raise KernelUnsupported(f"round() of {ts[0]} (a TypeError)")  # (a numpy bool too)
        checks = ("round_nonfinite", "round_big") if ts[0].dtype.kind == "f" else \
            ("round_big",) if ts[0].dtype == np.uint64 else ()
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
            if t.dtype.kind not in "biu" or t.dtype.kind == "b" and not t.weak:  # (numpy's bool is no int)
                return Plan("range_type_error", None, (), (), {"type": t, "index": j})
        return Plan("range_check", None, (), ("range_step",))
    if op == "range_cond":
        if any(t.dtype.kind not in "biu" for t in ts):
            raise KernelUnsupported("range() over non-integers")
        return Plan("range_cond", ST(BOOL, True))
    raise KernelUnsupported(f"operation '{op}'")


