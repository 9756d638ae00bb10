"""Per-operation emission for the kernel generator: ``_EmitterOps``, the part of
the emitter that turns operands, casts, scalar arithmetic, comparisons, math
and numpy calls and single IR instructions into numba source text."""
from __future__ import annotations

import numpy as np

from vmapper.ir import Const, is_temp
from . import typing as kt
from .codegen_idioms import logistic_chains
from .typing import TT, KernelUnsupported, BOOL, I64, F64
from .codegen_helpers import (_CTOR, _HELPER_DEPS, _MATH_NP, _NATIVE, _NP_SAME,
    _TRANSCENDENTAL, _hex)


#: math functions whose result is never infinite (for any argument: no range error).
_BOUNDED = frozenset({"sin", "cos", "tanh", "erf", "asin", "acos", "atan", "atan2"})


class _EmitterOps:
    """Operands, casts and instructions (mixed into ``_Emitter``)."""
    # ---- small utilities -------------------------------------------------------------------
    def err(self, line, exc_type, message) -> int:
        # code the compiler generated without a source line of its own (a region's exits, tangent
        # seeds...) reports the function's first line: an error never names line 0
        key = (int(line or 0) or self.fallback_line(), exc_type, message)
        if key not in self.errors:
            self.errors[key] = len(self.errors) + 1
        return self.errors[key]

    def fallback_line(self) -> int:
        line = self.__dict__.get("_fallback_line")
        if line is None:
            fn = self.fn
            lines = [ins.line for blk in fn.blocks.values() for ins in blk.instrs if ins.line]
            lines += [blk.term.line for blk in fn.blocks.values() if blk.term is not None and blk.term.line]
            line = self._fallback_line = min(lines) if lines else max(1, int(fn.source.first_line or 0))
        return line

    def fail(self, code) -> str:
        # The lane stops: leave the dispatch loop with the error code.  (No ``return``
        # inside the loop: numba's SSA reconstruction mistypes some loops that
        # return from the middle of a block holding a branch.)
        return f"code = {code}; blk = -1; continue"

    def helper(self, name, dtype=None):
        s = None
        if dtype is not None:
            s = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}[np.dtype(dtype)]
        for dep in _HELPER_DEPS.get(name, ()):
            self.helper(dep, dtype)
        if (name, s) not in self.helpers:
            self.helpers.append((name, s))
        base = name[:-2] if name.endswith("_f") else name
        return f"_{base}_{s}" if s else f"_{name}"

    def const(self, value, dtype) -> str:
        """A module-level constant holding ``value`` as ``dtype`` (already converted)."""
        dtype = np.dtype(dtype)
        if dtype == BOOL:
            return "True" if bool(value) else "False"
        if dtype.kind == "f":
            key = (dtype.str, _hex(value))
            src = f"{_CTOR[dtype]}(float.fromhex('{_hex(value)}'))"
        else:
            key = (dtype.str, int(value))
            src = f"{_CTOR[dtype]}({int(value)})"
        if key not in self.consts:
            name = f"_K{len(self.consts)}"
            self.consts[key] = name
            self.const_defs.append(f"{name} = {src}")
        return self.consts[key]

    def zero(self, dtype):
        return self.const(0, dtype)

    def tmp(self, dtype) -> str:
        self.ntmp += 1
        name = f"t{self.ntmp}"
        return name

    def vname(self, var, dtype) -> str:
        base = self.bases.get(var)
        if base is None:
            base = self.bases[var] = f"v{len(self.bases)}"
        dtype = np.dtype(dtype)
        name = f"{base}_{dtype.str[1:]}"
        if not is_temp(var):  # temporaries are assigned before use in their block: no initial value
            self.typed[name] = dtype
        return name

    def flag(self, var) -> str:
        base = self.bases.get(var)
        if base is None:
            base = self.bases[var] = f"v{len(self.bases)}"
        return f"d_{base}"

    def emit(self, ind, text):
        self.lines.append("    " * ind + text)

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
        """Expression of operand ``a`` cast through the dtypes in ``path``; returns (expr, dtype)."""
        if isinstance(a, Const):
            v, dt = self.const_value(a.value, path)
            return self.const(v, dt), dt
        t = env[a.name]
        if a.name in self.inline:
            expr, dt = self.inline[a.name][0], t.dtype
        else:
            expr, dt = self.vname(a.name, t.dtype), t.dtype
        for nxt in path:
            expr = self.cast(expr, dt, nxt)
            dt = np.dtype(nxt)
        return expr, dt

    def cast(self, expr, src, dst) -> str:
        src, dst = np.dtype(src), np.dtype(dst)
        if src == dst:
            return expr
        if dst == BOOL:
            return f"({expr} != {self.zero(src)})"
        if src == BOOL:
            return f"{_CTOR[dst]}({expr})"
        if src.kind == "f" and dst.kind in "iu":
            if dst == I64:
                return f"{self.helper('f2i64')}({expr})"
            if dst.kind == "i" or dst.itemsize < 4:
                return f"{_CTOR[dst]}({self.helper('f2i32')}({expr}))"
            if dst == np.dtype(np.uint32):
                return f"{_CTOR[dst]}({self.helper('f2i64')}({expr}))"
            return f"{self.helper('f2u64')}({expr})"
        return f"{_CTOR[dst]}({expr})"

    def truth(self, expr, dtype) -> str:
        dtype = np.dtype(dtype)
        if dtype == BOOL:
            return expr
        return f"({expr} != {self.zero(dtype)})"

    def truth_operand(self, a, env):
        if isinstance(a, Const):
            return "True" if bool(a.value) else "False"
        t = env[a.name]
        if a.name in self.inline:
            return self.truth(self.inline[a.name][0], t.dtype)
        return self.truth(self.vname(a.name, t.dtype), t.dtype)

    def assign(self, ind, var, expr, st, env, typed=True):
        """``var = expr``; ``typed``: numba types ``expr`` as ``st.dtype`` when that is a native type."""
        if isinstance(st, TT):
            raise AssertionError("tuple assignment")
        if st.dtype != BOOL and not (typed and st.dtype in _NATIVE):
            expr = f"{_CTOR[st.dtype]}({expr})"
        env[var] = st
        if self.cur in self.dead:  # nothing reads it: its checks ran, its value is not needed
            return
        if var in self.inline_ok:
            self.inline[var] = (expr if expr.startswith("(") or expr.isidentifier() else f"({expr})", st)
            return
        name = self.vname(var, st.dtype)
        self.emit(ind, f"{name} = {expr}")
        if var in self.ft.flagged:
            self.emit(ind, f"{self.flag(var)} = True")

    # ---- scalar operations ----------------------------------------------------------------
    def arith(self, op, A, B, dt, shift=None, const_divisor=None):
        """``A op B`` computed in dtype ``dt`` as numpy's loop does (operands already ``dt``)."""
        dt = np.dtype(dt)
        if dt == BOOL:
            return {"add": f"({A} | {B})", "mul": f"({A} & {B})", "bitand": f"({A} & {B})",
                    "bitor": f"({A} | {B})", "bitxor": f"({A} ^ {B})"}[op]
        sym = {"add": "+", "sub": "-", "mul": "*", "bitand": "&", "bitor": "|", "bitxor": "^"}
        if dt.kind == "f":
            if op in ("add", "sub", "mul"):
                return f"({A} {sym[op]} {B})"
            if op == "truediv":
                return f"({A} / {B})"
            if op == "floordiv":
                return f"{self.helper('floordiv_f', dt)}({A}, {B})"
            if op == "mod":
                return f"{self.helper('mod_f', dt)}({A}, {B})"
            if op == "pow":
                return f"({A} ** {B})"
            raise KernelUnsupported(f"'{op}' of floats")
        # integers
        if op == "truediv":
            raise KernelUnsupported("integer true division loop")
        if op in sym:
            return f"({A} {sym[op]} {B})"
        u64 = dt == np.dtype(np.uint64)
        w = lambda e: e if u64 or dt == I64 else f"np.int64({e})"  # noqa: E731 - narrow ints compute in int64
        if op in ("floordiv", "mod") and const_divisor is not None and const_divisor not in (0, -1):
            # numba's // and % on integers floor like Python; only 0 and -1 need numpy's guards
            return f"({w(A)} {'//' if op == 'floordiv' else '%'} {w(B)})"
        if op in ("floordiv", "mod") and shift is not None:
            if op == "floordiv":
                return f"({A} >> {self.const(shift, dt)})"
            return f"({A} & {self.const((1 << shift) - 1, dt)})"
        if op == "floordiv":
            return f"{self.helper('floordiv_u64' if u64 else 'floordiv_i64')}({w(A)}, {w(B)})"
        if op == "mod":
            return f"{self.helper('mod_u64' if u64 else 'mod_i64')}({w(A)}, {w(B)})"
        if op == "pow":
            return f"{self.helper('pow_u64' if u64 else 'pow_i64')}({w(A)}, {w(B)})"
        if op == "lshift":
            if u64:
                return f"{self.helper('lshift_u64')}({A}, {B})"
            return f"{self.helper('lshift_i64')}({w(A)}, {w(B)}, {dt.itemsize * 8})"
        if op == "rshift":
            if u64:
                return f"{self.helper('rshift_u64')}({A}, {B})"
            return f"{self.helper('rshift_i64')}({w(A)}, {w(B)}, {dt.itemsize * 8})"
        raise KernelUnsupported(f"operation '{op}'")

    def compare(self, op, A, B, la, lb):
        sym = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}[op]
        la, lb = np.dtype(la), np.dtype(lb)
        if la == lb:
            return f"({A} {sym} {B})"
        u64 = np.dtype(np.uint64)
        if la.kind in "iu" and lb.kind in "iu" and (la == u64) != (lb == u64):
            if la == u64:
                return f"(0 {sym} {self.helper('cmp_iu')}(np.int64({B}), {A}))"
            return f"({self.helper('cmp_iu')}(np.int64({A}), {B}) {sym} 0)"
        raise KernelUnsupported(f"comparison loop {la.name} vs {lb.name}")

    def transcendental(self, name, x, dt):
        dt = np.dtype(dt)
        s = "f32" if dt == np.float32 else "f64"
        if not self.exact and name in _TRANSCENDENTAL:
            fname = f"{name}_{s}"
            self.vm.add(fname)
            return f"_vm_{fname}({x})"
        if name == "erf":
            return f"math.erf({x})"
        return f"np.{name}({x})"

    # ---- instructions -------------------------------------------------------------------
    def select_idioms(self, b, stop):
        """Mark the idioms of block ``b`` that run as one vmath function (codegen_idioms)."""
        self.idioms = {} if self.exact else logistic_chains(
            self.fn.blocks[b], b, self.ft.plans, self.ft.flagged, None if stop is None else stop[0])

    def instr(self, ind, b, k, ins, plan, env):
        ft = self.ft
        for (bb, kk, u) in ft.maybe_unbound:
            if bb == b and kk == k:
                self.unbound_check(ind, u, ins.line)
        idiom = self.idioms.get(k)
        if idiom is not None:
            if idiom[0] == "logistic":
                self.logistic(ind, ins, idiom[1], ft.plans[(b, idiom[2])], plan.result, env)
            return  # ("fused",): computed by the chain's last instruction
        kind = plan.kind
        line = ins.line
        args = ins.args
        res = plan.result
        tgt = ins.target
        if kind == "copy":
            (a,) = args
            if isinstance(res, TT):
                raise KernelUnsupported("copy of a tuple")
            expr, _ = self.operand(a, env)
            self.assign(ind, tgt, expr, res, env)
        elif kind == "binary":
            op = plan.extra["op"]
            pa, pb = plan.extra["prep"]
            la, lb = plan.loop
            narrowed = plan.extra.get("weak_range")
            if narrowed is not None:
                self.weak_range_check(ind, self.operand(args[narrowed[0]], env)[0], narrowed[1], line)
            A, _ = self.operand(args[0], env, (pa, la))
            B, _ = self.operand(args[1], env, (pb, lb))
            for chk in plan.checks:
                self.binary_check(ind, chk, A, B, la, lb, line)
            cb = args[1].value if isinstance(args[1], Const) and type(args[1].value) is not bool else None
            out = self.arith(op, A, B, la, plan.extra.get("shift"), cb)
            if "pow_float" in plan.checks:
                r = self.tmp(res.dtype)
                self.emit(ind, f"{r} = {_CTOR[res.dtype]}({out})")
                fin = f"(np.isfinite({A}) and np.isfinite({B}))"
                self.emit(ind, f"if {r} != {r} and not ({A} != {A} or {B} != {B}):")
                self.emit(ind + 1, self.fail(self.err(line, ValueError, kt.MSG_POW_DOMAIN)))
                self.emit(ind, f"if np.isinf({r}) and {fin}:")
                self.emit(ind + 1, self.fail(self.err(line, OverflowError, kt.MSG_POW_OVERFLOW)))
                out = r
            self.assign(ind, tgt, self.cast_to(out, la, res.dtype), res, env)
        elif kind == "compare":
            op = plan.extra["op"]
            pa, pb = plan.extra["prep"]
            la, lb = plan.loop
            A, _ = self.operand(args[0], env, (pa, la))
            B, _ = self.operand(args[1], env, (pb, lb))
            self.assign(ind, tgt, self.compare(op, A, B, la, lb), res, env)
        elif kind == "unary":
            op = plan.extra["op"]
            (p,) = plan.extra["prep"]
            (la,) = plan.loop
            A, _ = self.operand(args[0], env, (p, la))
            self.assign(ind, tgt, self.unary(op, A, la), res, env)
        elif kind == "truth":
            e = self.truth_operand(args[0], env)
            self.assign(ind, tgt, f"(not {e})" if plan.extra["negate"] else e, res, env)
        elif kind == "select":
            c = self.truth_operand(args[0], env)
            A, _ = self.operand(args[1], env, (res.dtype,))
            B, _ = self.operand(args[2], env, (res.dtype,))
            self.assign(ind, tgt, f"({A} if {c} else {B})", res, env)
        elif kind == "cast":
            A, _ = self.operand(args[0], env, (plan.extra["dtype"],))
            self.assign(ind, tgt, A, res, env)
        elif kind in ("int", "round"):
            A, dt = self.operand(args[0], env)
            if dt.kind == "f":
                if kind == "int":
                    src, big = A, kt.MSG_INT_BIG
                else:
                    src, big = self.tmp(dt), kt.MSG_ROUND_BIG
                    self.emit(ind, f"{src} = np.rint({A})")
                self.to_int64(ind, src, dt, big, tgt, res, env, line)
            else:
                if dt == np.uint64:  # (Python's int would hold it; vmapper's are int64)
                    self.emit(ind, f"if {A} > np.uint64({2 ** 63 - 1}):")
                    self.emit(ind + 1, self.fail(self.err(line, OverflowError, kt.MSG_INT_UINT_BIG)))
                self.assign(ind, tgt, self.cast(A, dt, I64), res, env)
        elif kind == "minmax":
            self.minmax(ind, plan, args, env, tgt)
        elif kind == "math":
            self.math(ind, plan, args, env, tgt, line)
        elif kind == "math_int":
            A, _ = self.operand(args[0], env, (F64,))
            r = self.tmp(F64)
            self.emit(ind, f"{r} = np.{plan.extra['name']}({A})")
            self.to_int64(ind, r, F64, kt.int_big_message(plan.extra["name"]), tgt, res, env, line)
        elif kind == "math_pred":
            A, _ = self.operand(args[0], env, (F64,))
            self.assign(ind, tgt, f"np.{plan.extra['name']}({A})", res, env)
        elif kind == "numpy":
            self.numpy_fn(ind, plan, args, env, tgt)
        elif kind == "isin":
            parts = []
            for v, pla, plb in plan.extra["cmps"]:
                A, _ = self.operand(args[plan.extra["item"]], env, pla)
                vv, vdt = self.const_value(v, plb)
                parts.append(self.compare("eq", A, self.const(vv, vdt), pla[-1], plb[-1]))
            self.assign(ind, tgt, " | ".join(parts) if parts else "False", res, env)
        elif kind == "range_check":
            step = args[2]
            if isinstance(step, Const):
                if step.value == 0:
                    self.emit(ind, self.fail(self.err(line, ValueError, kt.MSG_RANGE_STEP)))
            else:
                S, dt = self.operand(step, env)
                self.emit(ind, f"if {S} == {self.zero(dt)}:")
                self.emit(ind + 1, self.fail(self.err(line, ValueError, kt.MSG_RANGE_STEP)))
            # (a constant bound is an int64; a range of constants only is checked when folded)
            if any(isinstance(a, Const) or env[a.name].dtype.itemsize == 8 for a in args):
                A, B, S = (self.operand(a, env, (I64,))[0] for a in args)
                hi, lo = self.const(kt.INT64_MAX, I64), self.const(kt.INT64_MIN, I64)
                self.emit(ind, f"if ({S} > 0 and {A} < {B} and {B} - 1 > {hi} - {S}) or "
                               f"({S} < 0 and {A} > {B} and {B} + 1 < {lo} - {S}):")
                self.emit(ind + 1, self.fail(self.err(line, OverflowError, kt.MSG_RANGE_EDGE)))
        elif kind == "range_cond":
            I, _ = self.operand(args[0], env, (I64,))
            S, _ = self.operand(args[1], env, (I64,))
            P, _ = self.operand(args[2], env, (I64,))
            self.assign(ind, tgt, f"(({I} < {S}) if {P} > 0 else ({I} > {S}))", res, env)
        elif kind == "tuple":
            names = []
            for j, (a, t) in enumerate(zip(args, res.items)):
                expr, _ = self.operand(a, env)
                name = self.vname(f"{tgt}#{j}", t.dtype)
                self.emit(ind, f"{name} = {_CTOR[t.dtype] if t.dtype != BOOL else ''}({expr})")
                names.append(name)
            env[tgt] = res
        else:
            raise KernelUnsupported(f"plan '{kind}'")

    def cast_to(self, expr, loop_dt, res_dt):
        loop_dt, res_dt = np.dtype(loop_dt), np.dtype(res_dt)
        return expr if loop_dt == res_dt else self.cast(expr, loop_dt, res_dt)

    def unbound_check(self, ind, var, line):
        shown = var if not var.startswith("$") else "a temporary"
        code = self.err(line, UnboundLocalError, f"local variable '{shown}' referenced before assignment")
        self.emit(ind, f"if not {self.flag(var)}:")
        self.emit(ind + 1, self.fail(code))

    def weak_range_check(self, ind, expr, dtype, line):
        """OverflowError where the Python int ``expr`` does not fit the integer ``dtype`` it
        meets (numpy's NEP 50 error per sample; a cast would wrap)."""
        dtype = np.dtype(dtype)
        info = np.iinfo(dtype)
        lo, hi = (f"np.int64({info.min})", f"np.int64({info.max})") if dtype.kind == "i" or dtype.itemsize < 8 \
            else ("np.int64(0)", None)
        test = f"{expr} < {lo}" + (f" or {expr} > {hi}" if hi is not None else "")
        self.emit(ind, f"if {test}:")
        self.emit(ind + 1, self.fail(self.err(line, OverflowError, f"Python integer out of bounds for {dtype.name}")))

    def binary_check(self, ind, chk, A, B, la, lb, line):
        if chk == "div":
            self.emit(ind, f"if {B} == {self.zero(lb)}:")
            self.emit(ind + 1, self.fail(self.err(line, ZeroDivisionError, kt.MSG_DIV)))
        elif chk == "pow_int_zero":
            self.emit(ind, f"if {A} == {self.zero(la)} and {B} < {self.zero(lb)}:" if np.dtype(lb).kind == "i"
                      else "if False:")
            self.emit(ind + 1, self.fail(self.err(line, ZeroDivisionError, kt.MSG_POW_ZERO)))
        elif chk == "pow_int":
            self.emit(ind, f"if {B} < {self.zero(lb)}:" if np.dtype(lb).kind == "i" else "if False:")
            self.emit(ind + 1, self.fail(self.err(line, ValueError, kt.MSG_POW_INT)))
        elif chk == "pow_float":
            # (Python's 0.0 ** -inf is inf)
            self.emit(ind, f"if {A} == {self.zero(la)} and {B} < {self.zero(lb)} and not np.isinf({B}):")
            self.emit(ind + 1, self.fail(self.err(line, ZeroDivisionError, kt.MSG_POW_ZERO)))
        elif chk == "shift":
            self.emit(ind, f"if {B} < {self.zero(lb)}:" if np.dtype(lb).kind == "i" else "if False:")
            self.emit(ind + 1, self.fail(self.err(line, ValueError, kt.MSG_SHIFT)))

    def unary(self, op, A, dt):
        dt = np.dtype(dt)
        if op == "pos":
            return A
        if op == "neg":
            return f"(-{A})"
        if op == "invert":
            return f"(not {A})" if dt == BOOL else f"(~{A})"
        if op == "abs":
            if dt == BOOL or dt.kind == "u":
                return A
            return f"abs({A})"
        raise KernelUnsupported(op)

    def to_int64(self, ind, src, dt, big, tgt, res, env, line):
        """``tgt = src`` as an int64, with Python's errors for a NaN or an infinity and an
        ``OverflowError`` (message ``big``) beyond int64, where Python's int would grow."""
        self.emit(ind, f"if {src} != {src}:")
        self.emit(ind + 1, self.fail(self.err(line, ValueError, kt.MSG_INT_NAN)))
        self.emit(ind, f"if np.isinf({src}):")
        self.emit(ind + 1, self.fail(self.err(line, OverflowError, kt.MSG_INT_INF)))
        lo, hi = self.const(-2.0 ** 63, dt), self.const(2.0 ** 63, dt)
        self.emit(ind, f"if not ({src} >= {lo} and {src} < {hi}):")
        self.emit(ind + 1, self.fail(self.err(line, OverflowError, big)))
        self.assign(ind, tgt, f"np.int64({src})", res, env)

    def minmax(self, ind, plan, args, env, tgt):
        steps = plan.extra["steps"]
        better = "lt" if plan.extra["op"] == "min" else "gt"
        cur_arg = args[0]
        cur_expr, cur_t = None, kt.const_type(cur_arg.value) if isinstance(cur_arg, Const) else env[cur_arg.name]
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
            cmp = self.compare(better, N, C, ln, lc)
            self.emit(ind, f"{r} = {Nn} if {cmp} else {Cn}")
            cur_expr, cur_t = r, new
        self.assign(ind, tgt, cur_expr, plan.result, env)

    def logistic(self, ind, ins, x, neg, res, env):
        """``ins.target = 1/(1 + exp(-x))`` by vmath's logistic; ``neg``: the plan of ``-x``."""
        X, _ = self.operand(x, env, (neg.extra["prep"][0], neg.loop[0]))
        self.vm.add("logistic_f64")  # (float64 only: codegen_idioms)
        self.assign(ind, ins.target, f"_vm_logistic_f64({X})", res, env)

    def math(self, ind, plan, args, env, tgt, line):
        name = plan.extra["name"]
        xs = [self.operand(a, env, (F64,))[0] for a in args]
        x = xs[0]
        if name == "log" and len(xs) == 2:
            return self.log_base(ind, plan, xs, env, tgt, line)
        if name in _TRANSCENDENTAL and len(xs) == 1:
            expr = self.transcendental(name, x, F64)
        elif name == "pow":
            expr = f"({xs[0]} ** {xs[1]})"
        elif name in ("degrees", "radians"):
            k = np.float64(180.0) / np.float64(np.pi) if name == "degrees" else np.float64(np.pi) / np.float64(180.0)
            expr = f"({x} * {self.const(k, F64)})"
        elif name == "fabs":
            expr = f"abs({x})"
        else:
            expr = f"np.{_MATH_NP[name]}({', '.join(xs)})"
        r = self.tmp(F64)
        self.emit(ind, f"{r} = np.float64({expr})")
        nan_in = " or ".join(f"{v} != {v}" for v in xs)
        fin_in = " and ".join(f"np.isfinite({v})" for v in xs)
        domain = self.err(line, ValueError, kt.MSG_MATH_DOMAIN)
        self.emit(ind, f"if {r} != {r} and not ({nan_in}):")
        self.emit(ind + 1, self.fail(domain))
        # the code is registered even where no check is emitted (a function that never returns
        # inf): the error table stays the CUDA generator's
        overflow = self.err(line, OverflowError, kt.MSG_MATH_RANGE)
        inf_error = kt.math_inf_error(name)  # CPython's: a range error, a pole, or none
        if name not in _BOUNDED and inf_error is not None:
            self.emit(ind, f"if np.isinf({r}) and {fin_in}:")
            if name == "pow":  # pow(0.0, negative) is a pole
                self.emit(ind + 1, f"if {x} == 0.0:")
                self.emit(ind + 2, self.fail(domain))
            self.emit(ind + 1, self.fail(overflow if inf_error is OverflowError else domain))
        self.assign(ind, tgt, r, plan.result, env)

    def log_base(self, ind, plan, xs, env, tgt, line):
        """``math.log(x, base)`` as CPython computes it: ValueError for an argument <= 0 (NaN
        passes), ZeroDivisionError where log(base) is 0, else log(x) / log(base)."""
        x, b = xs
        domain = self.err(line, ValueError, kt.MSG_MATH_DOMAIN)
        by_zero = self.err(line, ZeroDivisionError, kt.MSG_LOG_BASE_ONE)
        self.emit(ind, f"if {x} <= 0.0 or {b} <= 0.0:")
        self.emit(ind + 1, self.fail(domain))
        den = self.tmp(F64)
        self.emit(ind, f"{den} = np.float64({self.transcendental('log', b, F64)})")
        self.emit(ind, f"if {den} == 0.0:")
        self.emit(ind + 1, self.fail(by_zero))
        r = self.tmp(F64)
        self.emit(ind, f"{r} = np.float64({self.transcendental('log', x, F64)} / {den})")
        self.assign(ind, tgt, r, plan.result, env)

    def numpy_fn(self, ind, plan, args, env, tgt):
        name = plan.extra["name"]
        prep = plan.extra["prep"]
        res = plan.result
        ops = [self.operand(a, env, (p, l))[0] for a, p, l in zip(args, prep, plan.loop)]
        lt = [np.dtype(d) for d in plan.loop]
        dt = lt[0] if lt else res.dtype
        A = ops[0]
        B = ops[1] if len(ops) > 1 else None
        isf = dt.kind == "f"
        if name == "where":
            expr = f"({ops[1]} if {self.truth(ops[0], lt[0])} else {ops[2]})"
        elif name == "clip":
            if isf:
                expr = f"{self.helper('clip_f', dt)}({A}, {B}, {ops[2]})"
            else:
                t = self.tmp(dt)
                self.emit(ind, f"{t} = {A} if {A} > {B} else {B}")
                expr = f"({t} if {t} < {ops[2]} else {ops[2]})"
        elif name in _TRANSCENDENTAL:
            expr = self.transcendental(name, A, dt)
        elif name in ("square",):
            expr = self.arith("mul", A, A, dt)
        elif name in ("abs", "absolute", "fabs"):
            expr = self.unary("abs", A, dt)
        elif name in ("negative", "positive"):
            expr = self.unary("neg" if name == "negative" else "pos", A, dt)
        elif name in ("floor", "ceil", "trunc") and not isf:
            expr = A
        elif name in ("isnan", "isinf", "isfinite") and not isf:
            expr = "True" if name == "isfinite" else "False"
        elif name == "sign":
            if isf:
                expr = f"{self.helper('sign_f', dt)}({A})"
            else:
                expr = f"{_CTOR[dt]}(1 if {A} > 0 else (-1 if {A} < 0 else 0))"
        elif name == "reciprocal":
            expr = f"({self.const(1, dt)} / {A})"
        elif name == "logical_not":
            expr = f"(not {self.truth(A, dt)})"
        elif name in ("logical_and", "logical_or", "logical_xor"):
            sym = {"logical_and": "&", "logical_or": "|", "logical_xor": "^"}[name]
            expr = f"({self.truth(A, lt[0])} {sym} {self.truth(B, lt[1])})"
        elif name in ("deg2rad", "rad2deg"):
            T = dt.type
            k = T(np.pi) / T(180) if name == "deg2rad" else T(180) / T(np.pi)
            expr = f"({A} * {self.const(k, dt)})"
        elif name in ("maximum", "minimum", "fmax", "fmin"):
            if not isf:
                if dt == BOOL:
                    expr = f"({A} | {B})" if name in ("maximum", "fmax") else f"({A} & {B})"
                else:
                    sym = ">" if name in ("maximum", "fmax") else "<"
                    expr = f"({A} if {A} {sym} {B} else {B})"
            elif name == "maximum":
                expr = f"({A} if ({A} > {B} or {A} != {A}) else {B})"
            elif name == "minimum":
                expr = f"({A} if ({A} < {B} or {A} != {A}) else {B})"
            elif name == "fmax":
                expr = f"({A} if ({A} >= {B} or {B} != {B}) else {B})"
            else:
                expr = f"({A} if ({A} <= {B} or {B} != {B}) else {B})"
        elif name in ("add", "subtract", "multiply", "divide", "true_divide", "power", "float_power"):
            op = {"add": "add", "subtract": "sub", "multiply": "mul", "divide": "truediv",
                  "true_divide": "truediv", "power": "pow", "float_power": "pow"}[name]
            expr = self.arith(op, A, B, dt)
            if name == "power" and isf:  # numpy's scalar loop: sqrt for an exponent of 0.5
                expr = f"(np.sqrt({A}) if {B} == 0.5 else {expr})"
        elif name == "heaviside":
            expr = f"{self.helper('heaviside_f', dt)}({A}, {B})"
        elif name in _NP_SAME and isf:
            expr = f"np.{_NP_SAME[name]}({', '.join(ops)})"
        else:
            raise KernelUnsupported(f"np.{name} on {dt.name}")
        self.assign(ind, tgt, expr if res.dtype == dt or name in (
            "where", "clip", "isnan", "isinf", "isfinite", "signbit", "logical_not", "logical_and",
            "logical_or", "logical_xor") else self.cast(expr, dt, res.dtype), res, env)

