"""Per-operation emission for the CUDA kernel generator: ``CudaOps`` turns
operands, casts, scalar arithmetic, comparisons, math and numpy calls and
single IR instructions (their typing :class:`~vmapper.kernels.typing.Plan`)
into C++ statements.

It mirrors :mod:`vmapper.kernels.codegen_ops` operation by operation -- the
same plans, the same casts, the same error checks registered in the same
order (so error codes equal the numba kernel's) -- with C++ spellings:

* every value has the C type of its dtype and every result is cast back to it
  (C promotes narrow integers to ``int``; the cast truncates as numpy wraps);
* signed ``+ - *``, negation and ``abs`` are computed in ``unsigned long long``
  (numpy wraps on overflow; signed overflow is undefined in C++);
* float literals are exact (:func:`.cuda_helpers.literal`) and float32 work
  stays float32 (``f32`` literals, ``expf``...); nothing is contracted into
  an FMA (kernels are compiled with ``--fmad=false``).

An operation the generator cannot spell exactly raises
:class:`~vmapper.kernels.typing.KernelUnsupported` naming it.
"""
from __future__ import annotations

import numpy as np

from vmapper.ir import Const
from . import typing as kt
from .typing import TT, KernelUnsupported, BOOL, I64, F64
from .cuda_helpers import MATH_TO_NP, NP_FLOAT_FUNCS, c_math, ctype, literal

_U64 = np.dtype(np.uint64)
_ARITH_SYM = {"add": "+", "sub": "-", "mul": "*", "bitand": "&", "bitor": "|", "bitxor": "^"}
_CMP_SYM = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
# numpy functions whose result is not cast back to the loop dtype (as codegen_ops.numpy_fn)
_NO_RESULT_CAST = ("where", "clip", "isnan", "isinf", "isfinite", "signbit", "logical_not",
                   "logical_and", "logical_or", "logical_xor")


class CudaOps:
    """Operands, casts and instructions (mixed into ``CudaEmitter``)."""

    # ---- small utilities -------------------------------------------------------------------
    def err(self, line, exc_type, message) -> int:
        key = (int(line or 0), exc_type, message)
        if key not in self.errors:
            self.errors[key] = len(self.errors) + 1
        return self.errors[key]

    def fail(self, code) -> str:
        return f"return {code};"

    def emit(self, ind, text):
        self.lines.append("    " * ind + text)

    def declare(self, name, dtype, init=None):
        dtype = np.dtype(dtype)
        if name not in self.decls:
            self.decls[name] = (ctype(dtype), literal(0, dtype) if init is None else init)
        return name

    def vname(self, var, dtype) -> str:
        base = self.bases.get(var)
        if base is None:
            base = self.bases[var] = f"v{len(self.bases)}"
        dtype = np.dtype(dtype)
        return self.declare(f"{base}_{dtype.str[1:]}", dtype)

    def flag(self, var) -> str:
        base = self.bases.get(var)
        if base is None:
            base = self.bases[var] = f"v{len(self.bases)}"
        name = f"d_{base}"
        if name not in self.decls:
            self.decls[name] = ("bool", "true" if var in self.fn.params else "false")
        return name

    def tmp(self, dtype) -> str:
        self.ntmp += 1
        return self.declare(f"t{self.ntmp}", dtype)

    def const(self, value, dtype) -> str:
        return literal(value, dtype)

    def zero(self, dtype) -> str:
        return literal(0, dtype)

    # ---- operands and casts ------------------------------------------------------------------
    def const_value(self, value, path):
        """Convert a literal through the dtypes of ``path`` as numpy would (NEP 50 weak scalars)."""
        src = kt.const_type(value).dtype
        v = value
        for dt in path:
            dt = np.dtype(dt)
            if dt == src:
                continue
            if type(v) is int and dt.kind in "iu":
                info = np.iinfo(dt)
                if not info.min <= v <= info.max:
                    raise KernelUnsupported(f"Python integer {v} out of bounds for {dt.name}")
                v = int(v)
            elif dt == BOOL:
                v = bool(v != 0)
            else:
                with np.errstate(all="ignore"):
                    v = np.array(v, dtype=src).astype(dt)[()]
            src = dt
        return v, src

    def operand(self, a, env, path=()):
        """C expression of operand ``a`` cast through the dtypes in ``path``; (expr, dtype)."""
        if isinstance(a, Const):
            v, dt = self.const_value(a.value, path)
            return self.const(v, dt), dt
        t = env[a.name]
        expr, dt = self.vname(a.name, t.dtype), t.dtype
        for nxt in path:
            expr = self.cast(expr, dt, nxt)
            dt = np.dtype(nxt)
        return expr, dt

    def cast(self, expr, src, dst) -> str:
        """numpy's ``astype`` from ``src`` to ``dst`` (float -> int as numpy on x86)."""
        src, dst = np.dtype(src), np.dtype(dst)
        if src == dst:
            return expr
        ct = ctype(dst)
        if dst == BOOL:
            return f"({expr} != {self.zero(src)})"
        if src == BOOL:
            return f"(({ct})({expr}))"
        if src.kind == "f" and dst.kind in "iu":
            if dst == I64:
                return f"vm_f2i64((f64)({expr}))"
            if dst.kind == "i" or dst.itemsize < 4:
                return f"(({ct})vm_f2i32((f64)({expr})))"
            if dst == np.dtype(np.uint32):
                return f"(({ct})vm_f2i64((f64)({expr})))"
            return f"vm_f2u64((f64)({expr}))"
        return f"(({ct})({expr}))"

    def truth(self, expr, dtype) -> str:
        dtype = np.dtype(dtype)
        if dtype == BOOL:
            return expr
        return f"({expr} != {self.zero(dtype)})"

    def truth_operand(self, a, env):
        if isinstance(a, Const):
            return "true" if bool(a.value) else "false"
        t = env[a.name]
        return self.truth(self.vname(a.name, t.dtype), t.dtype)

    def assign(self, ind, var, expr, st, env):
        if isinstance(st, TT):
            raise AssertionError("tuple assignment")
        env[var] = st
        name = self.vname(var, st.dtype)
        self.emit(ind, f"{name} = ({ctype(st.dtype)})({expr});")
        if var in self.ft.flagged:
            self.emit(ind, f"{self.flag(var)} = true;")

    def cast_to(self, expr, loop_dt, res_dt):
        loop_dt, res_dt = np.dtype(loop_dt), np.dtype(res_dt)
        return expr if loop_dt == res_dt else self.cast(expr, loop_dt, res_dt)

    # ---- scalar operations ----------------------------------------------------------------
    def arith(self, op, A, B, dt, shift=None):
        """``A op B`` computed in dtype ``dt`` as numpy's loop does (operands already ``dt``)."""
        dt = np.dtype(dt)
        ct = ctype(dt)
        if dt == BOOL:
            sym = {"add": "|", "mul": "&", "bitand": "&", "bitor": "|", "bitxor": "^"}[op]
            return f"((bool)({A} {sym} {B}))"
        if dt.kind == "f":
            if op in ("add", "sub", "mul"):
                return f"({A} {_ARITH_SYM[op]} {B})"
            if op == "truediv":
                return f"({A} / {B})"
            if op == "floordiv":
                return f"vm_floordiv_f<{ct}>({A}, {B})"
            if op == "mod":
                return f"vm_mod_f<{ct}>({A}, {B})"
            if op == "pow":
                return f"{c_math('pow', dt)}({A}, {B})"
            raise KernelUnsupported(f"'{op}' of floats")
        if op == "truediv":
            raise KernelUnsupported("integer true division loop")
        u64 = dt == _U64
        if op in ("add", "sub", "mul"):
            if u64:
                return f"({A} {_ARITH_SYM[op]} {B})"
            return f"(({ct})((u64)({A}) {_ARITH_SYM[op]} (u64)({B})))"
        if op in _ARITH_SYM:
            return f"(({ct})({A} {_ARITH_SYM[op]} {B}))"
        if op in ("floordiv", "mod") and shift is not None:
            # a power-of-two divisor: arithmetic shift and mask floor like numpy
            if op == "floordiv":
                return f"(({ct})({A} >> {shift}))"
            return f"(({ct})({A} & {self.const((1 << shift) - 1, dt)}))"
        if u64:
            fn = {"floordiv": "vm_floordiv_u64", "mod": "vm_mod_u64", "pow": "vm_pow_u64",
                  "lshift": "vm_lshift_u64", "rshift": "vm_rshift_u64"}.get(op)
            if fn is None:
                raise KernelUnsupported(f"operation '{op}'")
            return f"{fn}({A}, {B})"
        # narrower integers compute in int64, then wrap to their own width
        w = f"(i64)({A}), (i64)({B})"
        if op in ("floordiv", "mod", "pow"):
            return f"(({ct})vm_{op}_i64({w}))"
        if op in ("lshift", "rshift"):
            return f"(({ct})vm_{op}_i64({w}, {dt.itemsize * 8}))"
        raise KernelUnsupported(f"operation '{op}'")

    def compare(self, op, A, B, la, lb):
        sym = _CMP_SYM[op]
        la, lb = np.dtype(la), np.dtype(lb)
        if la == lb:
            return f"({A} {sym} {B})"
        if la.kind in "iu" and lb.kind in "iu" and (la == _U64) != (lb == _U64):
            if la == _U64:
                return f"(0 {sym} vm_cmp_iu((i64)({B}), {A}))"
            return f"(vm_cmp_iu((i64)({A}), {B}) {sym} 0)"
        raise KernelUnsupported(f"comparison loop {la.name} vs {lb.name}")

    def unary(self, op, A, dt):
        dt = np.dtype(dt)
        ct = ctype(dt)
        if op == "pos":
            return A
        if op == "neg":
            if dt.kind == "f":
                return f"(-{A})"
            return f"vm_neg_i<{ct}>({A})"
        if op == "invert":
            return f"(!{A})" if dt == BOOL else f"(({ct})(~{A}))"
        if op == "abs":
            if dt == BOOL or dt.kind == "u":
                return A
            if dt.kind == "f":
                return f"{c_math('fabs', dt)}({A})"
            return f"vm_abs_i<{ct}>({A})"
        raise KernelUnsupported(op)

    # ---- instructions -------------------------------------------------------------------
    def instr(self, ind, b, k, ins, plan, env):
        ft = self.ft
        for (bb, kk, u) in ft.maybe_unbound:
            if bb == b and kk == k:
                self.unbound_check(ind, u, ins.line)
        kind = plan.kind
        line = ins.line
        args = ins.args
        res = plan.result
        tgt = ins.target
        if kind == "copy":
            if isinstance(res, TT):
                raise KernelUnsupported("copy of a tuple")
            expr, _ = self.operand(args[0], env)
            self.assign(ind, tgt, expr, res, env)
        elif kind == "binary":
            self.binary(ind, plan, args, env, tgt, line)
        elif kind == "compare":
            pa, pb = plan.extra["prep"]
            la, lb = plan.loop
            A, _ = self.operand(args[0], env, (pa, la))
            B, _ = self.operand(args[1], env, (pb, lb))
            self.assign(ind, tgt, self.compare(plan.extra["op"], A, B, la, lb), res, env)
        elif kind == "unary":
            (p,) = plan.extra["prep"]
            (la,) = plan.loop
            A, _ = self.operand(args[0], env, (p, la))
            self.assign(ind, tgt, self.unary(plan.extra["op"], A, la), res, env)
        elif kind == "truth":
            e = self.truth_operand(args[0], env)
            self.assign(ind, tgt, f"(!{e})" if plan.extra["negate"] else e, res, env)
        elif kind == "select":
            c = self.truth_operand(args[0], env)
            A, _ = self.operand(args[1], env, (res.dtype,))
            B, _ = self.operand(args[2], env, (res.dtype,))
            self.assign(ind, tgt, self.pick(c, A, B, res.dtype), res, env)
        elif kind == "cast":
            A, _ = self.operand(args[0], env, (plan.extra["dtype"],))
            self.assign(ind, tgt, A, res, env)
        elif kind in ("int", "round"):
            self.int_round(ind, kind, args, env, tgt, res, line)
        elif kind == "minmax":
            self.minmax(ind, plan, args, env, tgt)
        elif kind == "math":
            self.math(ind, plan, args, env, tgt, line)
        elif kind == "math_int":
            A, _ = self.operand(args[0], env, (F64,))
            r = self.tmp(F64)
            self.emit(ind, f"{r} = {c_math(plan.extra['name'], F64)}({A});")
            self.to_int64(ind, r, F64, kt.int_big_message(plan.extra["name"]), tgt, res, env, line)
        elif kind == "math_pred":
            A, _ = self.operand(args[0], env, (F64,))
            self.assign(ind, tgt, f"{c_math(plan.extra['name'], F64)}({A})", res, env)
        elif kind == "numpy":
            self.numpy_fn(ind, plan, args, env, tgt)
        elif kind == "isin":
            parts = []
            for v, pla, plb in plan.extra["cmps"]:
                A, _ = self.operand(args[plan.extra["item"]], env, pla)
                vv, vdt = self.const_value(v, plb)
                parts.append(self.compare("eq", A, self.const(vv, vdt), pla[-1], plb[-1]))
            self.assign(ind, tgt, " | ".join(parts) if parts else "false", res, env)
        elif kind == "range_check":
            step = args[2]
            if isinstance(step, Const):
                if step.value == 0:
                    self.emit(ind, self.fail(self.err(line, ValueError, kt.MSG_RANGE_STEP)))
            else:
                S, dt = self.operand(step, env)
                self.emit(ind, f"if ({S} == {self.zero(dt)}) "
                               f"{self.fail(self.err(line, ValueError, kt.MSG_RANGE_STEP))}")
            # (a constant bound is an int64; a range of constants only is checked when folded)
            if any(isinstance(a, Const) or env[a.name].dtype.itemsize == 8 for a in args):
                A, B, S = (self.operand(a, env, (I64,))[0] for a in args)
                hi, lo = self.const(kt.INT64_MAX, I64), self.const(kt.INT64_MIN, I64)
                self.emit(ind, f"if (({S} > 0 && {A} < {B} && {B} - 1 > {hi} - {S}) || "
                               f"({S} < 0 && {A} > {B} && {B} + 1 < {lo} - {S})) "
                               f"{self.fail(self.err(line, OverflowError, kt.MSG_RANGE_EDGE))}")
        elif kind == "range_cond":
            I, _ = self.operand(args[0], env, (I64,))
            S, _ = self.operand(args[1], env, (I64,))
            P, _ = self.operand(args[2], env, (I64,))
            self.assign(ind, tgt, f"(({P} > 0) ? ({I} < {S}) : ({I} > {S}))", res, env)
        elif kind == "tuple":
            for j, (a, t) in enumerate(zip(args, res.items)):
                expr, _ = self.operand(a, env)
                self.emit(ind, f"{self.vname(f'{tgt}#{j}', t.dtype)} = ({ctype(t.dtype)})({expr});")
            env[tgt] = res
        else:
            raise KernelUnsupported(f"operation plan '{kind}' (line {line}) in a CUDA kernel")

    def binary(self, ind, plan, args, env, tgt, line):
        res = plan.result
        pa, pb = plan.extra["prep"]
        la, lb = plan.loop
        A, _ = self.operand(args[0], env, (pa, la))
        B, _ = self.operand(args[1], env, (pb, lb))
        for chk in plan.checks:
            self.binary_check(ind, chk, A, B, la, lb, line)
        out = self.arith(plan.extra["op"], A, B, la, plan.extra.get("shift"))
        if "pow_float" in plan.checks:
            r = self.tmp(la)
            self.emit(ind, f"{r} = {out};")
            dom = self.err(line, ValueError, kt.MSG_POW_DOMAIN)
            ovf = self.err(line, OverflowError, kt.MSG_POW_OVERFLOW)
            self.emit(ind, f"if ({r} != {r} && !({A} != {A} || {B} != {B})) {self.fail(dom)}")
            self.emit(ind, f"if (vm_isinf({r}) && vm_isfinite({A}) && vm_isfinite({B})) {self.fail(ovf)}")
            out = r
        self.assign(ind, tgt, self.cast_to(out, la, res.dtype), res, env)

    def binary_check(self, ind, chk, A, B, la, lb, line):
        if chk == "div":
            code = self.err(line, ZeroDivisionError, kt.MSG_DIV)
            self.emit(ind, f"if ({B} == {self.zero(lb)}) {self.fail(code)}")
        elif chk == "pow_int_zero":
            if np.dtype(lb).kind == "i":
                code = self.err(line, ZeroDivisionError, kt.MSG_POW_ZERO)
                self.emit(ind, f"if ({A} == {self.zero(la)} && {B} < {self.zero(lb)}) {self.fail(code)}")
        elif chk == "pow_int":
            code = self.err(line, ValueError, kt.MSG_POW_INT)
            if np.dtype(lb).kind == "i":
                self.emit(ind, f"if ({B} < {self.zero(lb)}) {self.fail(code)}")
        elif chk == "pow_float":
            code = self.err(line, ZeroDivisionError, kt.MSG_POW_ZERO)
            self.emit(ind, f"if ({A} == {self.zero(la)} && {B} < {self.zero(lb)} && !vm_isinf({B})) {self.fail(code)}")
        elif chk == "shift":
            if np.dtype(lb).kind == "i":
                self.emit(ind, f"if ({B} < {self.zero(lb)}) {self.fail(self.err(line, ValueError, kt.MSG_SHIFT))}")
        else:
            raise KernelUnsupported(f"check '{chk}'")

    def int_round(self, ind, kind, args, env, tgt, res, line):
        A, dt = self.operand(args[0], env)
        if dt.kind != "f":
            if dt == _U64:  # (Python's int would hold it; vmapper's are int64)
                fail = self.fail(self.err(line, OverflowError, kt.MSG_INT_UINT_BIG))
                self.emit(ind, f"if ({A} > {2 ** 63 - 1}ULL) {fail}")
            self.assign(ind, tgt, self.cast(A, dt, I64), res, env)
            return
        if kind == "int":
            src, big = A, kt.MSG_INT_BIG
        else:
            src = self.tmp(dt)
            self.emit(ind, f"{src} = {c_math('rint', dt)}({A});")  # round half to even, as Python
            big = kt.MSG_ROUND_BIG
        self.to_int64(ind, src, dt, big, tgt, res, env, line)

    def to_int64(self, ind, src, dt, big, tgt, res, env, line):
        """``tgt = src`` as an int64, with Python's errors for a NaN or an infinity and an
        ``OverflowError`` (message ``big``) beyond int64, where Python's int would grow."""
        self.emit(ind, f"if ({src} != {src}) {self.fail(self.err(line, ValueError, kt.MSG_INT_NAN))}")
        self.emit(ind, f"if (vm_isinf({src})) {self.fail(self.err(line, OverflowError, kt.MSG_INT_INF))}")
        lo, hi = self.const(-2.0 ** 63, dt), self.const(2.0 ** 63, dt)
        self.emit(ind, f"if (!({src} >= {lo} && {src} < {hi})) {self.fail(self.err(line, OverflowError, big))}")
        self.assign(ind, tgt, f"(i64)({src})", res, env)

    def unbound_check(self, ind, var, line):
        shown = var if not var.startswith("$") else "a temporary"
        code = self.err(line, UnboundLocalError, f"local variable '{shown}' referenced before assignment")
        self.emit(ind, f"if (!{self.flag(var)}) {self.fail(code)}")

    def minmax(self, ind, plan, args, env, tgt):
        """Python's min/max fold: the first extreme wins, NaN comparisons as Python's."""
        steps = plan.extra["steps"]
        better = "lt" if plan.extra["op"] == "min" else "gt"
        cur_arg = args[0]
        cur_expr = None
        cur_t = kt.const_type(cur_arg.value) if isinstance(cur_arg, Const) else env[cur_arg.name]
        for nxt_arg, ((ln, lc), new, (pn, pc)) in zip(args[1:], steps):
            N, _ = self.operand(nxt_arg, env, (pn, ln))
            if cur_expr is None:
                C, _ = self.operand(cur_arg, env, (pc, lc))
                Cn, _ = self.operand(cur_arg, env, (new.dtype,))
            else:
                C = self.cast(self.cast(cur_expr, cur_t.dtype, pc), pc, lc)
                Cn = self.cast(cur_expr, cur_t.dtype, new.dtype)
            Nn, _ = self.operand(nxt_arg, env, (new.dtype,))
            r = self.tmp(new.dtype)
            self.emit(ind, f"{r} = {self.pick(self.compare(better, N, C, ln, lc), Nn, Cn, new.dtype)};")
            cur_expr, cur_t = r, new
        self.assign(ind, tgt, cur_expr, plan.result, env)

    def math(self, ind, plan, args, env, tgt, line):
        """``math.<name>``: float64, with Python's domain (ValueError) and range (OverflowError) errors."""
        name = plan.extra["name"]
        xs = [self.operand(a, env, (F64,))[0] for a in args]
        x = xs[0]
        if name == "log" and len(xs) == 2:
            return self.log_base(ind, plan, xs, env, tgt, line)
        if name in ("degrees", "radians"):
            k = np.float64(180.0) / np.float64(np.pi) if name == "degrees" else \
                np.float64(np.pi) / np.float64(180.0)
            expr = f"({x} * {self.const(k, F64)})"
        elif name in MATH_TO_NP:
            expr = f"{c_math(MATH_TO_NP[name], F64)}({', '.join(xs)})"
        else:
            raise KernelUnsupported(f"math.{name} in a CUDA kernel")
        r = self.tmp(F64)
        self.emit(ind, f"{r} = {expr};")
        nan_in = " || ".join(f"{v} != {v}" for v in xs)
        fin_in = " && ".join(f"vm_isfinite({v})" for v in xs)
        domain = self.err(line, ValueError, kt.MSG_MATH_DOMAIN)
        self.emit(ind, f"if ({r} != {r} && !({nan_in})) {self.fail(domain)}")
        overflow = self.err(line, OverflowError, kt.MSG_MATH_RANGE)
        inf_error = kt.math_inf_error(name)  # CPython's: a range error, a pole, or none
        if inf_error is not None:
            if name == "pow":  # pow(0.0, negative) is a pole
                self.emit(ind, f"if (vm_isinf({r}) && {fin_in} && {x} == 0.0) {self.fail(domain)}")
            code = overflow if inf_error is OverflowError else domain
            self.emit(ind, f"if (vm_isinf({r}) && {fin_in}) {self.fail(code)}")
        self.assign(ind, tgt, r, plan.result, env)

    def log_base(self, ind, plan, xs, env, tgt, line):
        """``math.log(x, base)`` as CPython computes it (see the numba generator's)."""
        x, b = xs
        domain = self.err(line, ValueError, kt.MSG_MATH_DOMAIN)
        by_zero = self.err(line, ZeroDivisionError, kt.MSG_LOG_BASE_ONE)
        self.emit(ind, f"if ({x} <= 0.0 || {b} <= 0.0) {self.fail(domain)}")
        den = self.tmp(F64)
        self.emit(ind, f"{den} = log({b});")
        self.emit(ind, f"if ({den} == 0.0) {self.fail(by_zero)}")
        r = self.tmp(F64)
        self.emit(ind, f"{r} = log({x}) / {den};")
        self.assign(ind, tgt, r, plan.result, env)

    def numpy_fn(self, ind, plan, args, env, tgt):
        name = plan.extra["name"]
        res = plan.result
        ops = [self.operand(a, env, (p, l))[0] for a, p, l in zip(args, plan.extra["prep"], plan.loop)]
        lt = [np.dtype(d) for d in plan.loop]
        dt = lt[0] if lt else res.dtype
        ct = ctype(dt)
        A = ops[0]
        B = ops[1] if len(ops) > 1 else None
        isf = dt.kind == "f"
        if name == "where":
            expr = self.pick(self.truth(ops[0], lt[0]), ops[1], ops[2], res.dtype)
        elif name == "clip":
            if isf:
                expr = f"vm_clip_f<{ct}>({A}, {B}, {ops[2]})"
            else:
                t = self.tmp(dt)
                self.emit(ind, f"{t} = {A} > {B} ? {A} : {B};")
                expr = f"({t} < {ops[2]} ? {t} : {ops[2]})"
        elif name == "square":
            expr = self.arith("mul", A, A, dt)
        elif name in ("abs", "absolute", "fabs"):
            expr = self.unary("abs", A, dt)
        elif name in ("negative", "positive"):
            expr = self.unary("neg" if name == "negative" else "pos", A, dt)
        elif name in ("floor", "ceil", "trunc") and not isf:
            expr = A
        elif name in ("isnan", "isinf", "isfinite") and not isf:
            expr = "true" if name == "isfinite" else "false"
        elif name == "sign":
            expr = f"vm_sign_f<{ct}>({A})" if isf else f"(({ct})({A} > 0 ? 1 : ({A} < 0 ? -1 : 0)))"
        elif name == "reciprocal":
            expr = f"({self.const(1, dt)} / {A})"
        elif name == "logical_not":
            expr = f"(!{self.truth(A, dt)})"
        elif name in ("logical_and", "logical_or", "logical_xor"):
            sym = {"logical_and": "&", "logical_or": "|", "logical_xor": "^"}[name]
            expr = f"((bool)({self.truth(A, lt[0])} {sym} {self.truth(B, lt[1])}))"
        elif name in ("deg2rad", "rad2deg"):
            T = dt.type
            k = T(np.pi) / T(180) if name == "deg2rad" else T(180) / T(np.pi)
            expr = f"({A} * {self.const(k, dt)})"
        elif name in ("maximum", "minimum", "fmax", "fmin"):
            expr = self.extreme(name, A, B, dt)
        elif name in ("add", "subtract", "multiply", "divide", "true_divide", "power", "float_power"):
            op = {"add": "add", "subtract": "sub", "multiply": "mul", "divide": "truediv",
                  "true_divide": "truediv", "power": "pow", "float_power": "pow"}[name]
            expr = self.arith(op, A, B, dt)
            if name == "power" and isf:  # numpy's scalar loop: sqrt for an exponent of 0.5
                expr = f"({B} == 0.5 ? {c_math('sqrt', dt)}({A}) : {expr})"
        elif name == "heaviside":
            expr = f"vm_heaviside_f<{ct}>({A}, {B})"
        elif isf and name in NP_FLOAT_FUNCS:
            expr = f"{c_math(name, dt)}({', '.join(ops)})"
        else:
            raise KernelUnsupported(f"np.{name} on {dt.name} in a CUDA kernel")
        if not (res.dtype == dt or name in _NO_RESULT_CAST):
            expr = self.cast(expr, dt, res.dtype)
        self.assign(ind, tgt, expr, res, env)

    @staticmethod
    def pick(cond, A, B, dt):
        """``cond ? A : B``; a float choice through ``vm_pick``, which NVVM cannot turn into
        min/max (those differ from the choice on signed zeros)."""
        if np.dtype(dt).kind == "f":
            return f"vm_pick_{ctype(dt)}({cond}, {A}, {B})"
        return f"({cond} ? {A} : {B})"

    def extreme(self, name, A, B, dt):
        """np.maximum/minimum (NaN wins) and np.fmax/fmin (NaN loses), as numpy's loops."""
        if dt.kind != "f":
            if dt == BOOL:
                return f"((bool)({A} | {B}))" if name in ("maximum", "fmax") else f"((bool)({A} & {B}))"
            sym = ">" if name in ("maximum", "fmax") else "<"
            return f"({A} {sym} {B} ? {A} : {B})"
        if name == "maximum":
            return self.pick(f"{A} > {B} || {A} != {A}", A, B, dt)
        if name == "minimum":
            return self.pick(f"{A} < {B} || {A} != {A}", A, B, dt)
        if name == "fmax":
            return self.pick(f"{A} >= {B} || {B} != {B}", A, B, dt)
        return self.pick(f"{A} <= {B} || {B} != {B}", A, B, dt)
