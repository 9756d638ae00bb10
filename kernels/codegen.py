"""Compile an elementwise IR function into ONE numba kernel over lanes.

::

    from vmapper.kernels.codegen import kernel_eligible, compile_kernel
    reason = kernel_eligible(fn_ir)            # None, or why the function cannot be a kernel
    k = compile_kernel(fn_ir, arg_types, exact_math=False, max_iters=None)
    results, err_lane, err_code = k(args, n)
    k.errors[err_code]  # -> (line, exception type, message)
    k.result_weak       # NEP 50 weakness of the result (a tuple for tuple returns)
    k.result_dtype      # numpy dtype of the result (a tuple for tuple returns)

The kernel is a ``@njit(parallel=...)`` loop ``for i in prange(n)`` calling a
per-lane function generated from the CFG: every lane runs the function's
blocks with its own control flow, as a dispatch loop ``while blk >= 0: if blk
== 0: ... elif ...`` that LLVM jump-threads into the CFG itself (measured
within a few percent of hand-structured code, see
``benchmarks/kernel_loops_probe.py``).  Variables carry the dtypes that
:mod:`vmapper.kernels.typing` inferred (a variable whose type changes gets
one numba variable per dtype, converted on the CFG edges), every numpy cast
is spelled out, and numpy's own scalar algorithms are used (floor division
and remainder, shifts by out-of-range counts, min/max/clip with NaNs,
integer power by squaring...), so that results are bitwise equal to the
numpy runtime for integer and ``+ - * /`` float work.  No fastmath: LLVM
does not contract ``a*b + c`` into an FMA.  Transcendental functions use
:mod:`vmapper.kernels.vmath` (vectorizable, within a few ulp) unless
``exact_math`` asks for libm.

A lane that fails (where the per-sample run raises) stops with an error
code; the kernel reports the smallest failing lane and its code, which
:attr:`Kernel.errors` decodes.  The codes cover division/modulo by zero,
integer powers with negative exponents, Python-float ``**`` domain and
overflow errors, ``math.*`` domain/range errors, ``int()``/``round()`` of
NaN/inf/out-of-int64 floats, ``range()`` with step 0 or a float bound,
``assert``/``raise``, reads of unbound variables (a defined flag is kept only
for variables that are not definitely assigned where they are read) and
``max_iters`` (``NonTerminationError``, counted per lane and loop entry).

``compile_kernel`` raises :class:`~vmapper.kernels.typing.KernelUnsupported`
when the function with these argument types cannot be compiled exactly (a
dtype numba or this module does not handle, a type error the runtime would
report, a literal out of range of its NEP 50 type...); fall back to the runtime.

Known differences from the runtime (documented, by design):

* dtypes are inferred statically: a variable assigned an int on one path and
  a float on another is promoted on every lane, while the runtime promotes
  only when lanes of one batch actually take both paths (values are equal);
* computations on uniform values that the runtime does with Python objects
  (arbitrary-precision ints, ``int ** negative int`` giving a float) are done
  in the inferred dtypes unless all their operands are literals (those are
  folded with Python semantics at generation time);
* ``round()`` of a float beyond int64 fails with ``OverflowError`` (the
  runtime returns an unspecified value); out-of-range float -> int casts
  (``np.int32(1e20)``) follow numpy's x86 results for int64/int32 and
  narrower signed types, and are unspecified otherwise (numpy warns);
* numba emits signed ``add/sub/mul`` with LLVM's ``nsw`` flag: results wrap
  like numpy's on overflow in practice, but LLVM may assume they do not.
"""
from __future__ import annotations

import hashlib
import math
import threading

import numpy as np

from vmapper.ir import Branch, Const, Jump, Raise, Return, Var, is_temp
from vmapper.errors import NonTerminationError
from . import typing as kt
from .typing import ST, TT, KernelUnsupported, BOOL, I64, F64

__all__ = ["kernel_eligible", "compile_kernel", "generate_source", "Kernel", "KernelUnsupported",
           "CODEGEN_VERSION"]

CODEGEN_VERSION = 1

_FORBIDDEN = {"call", "getitem", "setitem", "getattr", "method", "load_global", "len", "check_len",
              "slice", "is", "is_not", "sum", "matmul"}


# ---- eligibility ---------------------------------------------------------------------------------

def kernel_eligible(fn) -> str | None:
    """None if every operation of ``fn`` can run inside a kernel, else the reason why not."""
    uses_in_term = {}
    for blk in fn.blocks.values():
        t = blk.term
        if t is None:
            return f"block b{blk.id} has no terminator"
        if isinstance(t, Return) and isinstance(t.value, Const) and not (
                kt.is_number_const(t.value.value) or isinstance(t.value.value, tuple)
                and all(kt.is_number_const(v) for v in t.value.value)):
            what = "None" if t.value.value is None else f"a {type(t.value.value).__name__}"
            return f"line {t.line}: the function returns {what}"
        for u in t.uses():
            uses_in_term.setdefault(u, []).append(blk.id)
    uses = {}
    for blk in fn.blocks.values():
        for ins in blk.instrs:
            for u in ins.uses():
                uses.setdefault(u, []).append(blk.id)
    for blk in fn.blocks.values():
        for ins in blk.instrs:
            op = ins.op
            where = f"line {ins.line}"
            if op in _FORBIDDEN or op not in kt.SUPPORTED_OPS:
                return f"{where}: operation '{op}' cannot run in a kernel"
            if ins.attrs.get("kw"):
                return f"{where}: '{op}' with keyword arguments"
            for j, a in enumerate(ins.args):
                if isinstance(a, Const) and not kt.is_number_const(a.value) and not (
                        op == "contains" and j == 0 and kt.is_const_collection(a.value)):
                    return f"{where}: constant of type {type(a.value).__name__} in '{op}'"
            if op == "contains" and not (isinstance(ins.args[0], Const)
                                         and kt.is_const_collection(ins.args[0].value)):
                return f"{where}: 'in' on something other than a literal collection of numbers"
            if op in ("min", "max") and len(ins.args) < 2:
                return f"{where}: {op}() of a sequence"
            if op in ("int", "round") and len(ins.args) != 1:
                return f"{where}: {op}() with two arguments"
            if op == "tuple":
                t = ins.target
                if t is None or not is_temp(t) or t in uses or \
                        uses_in_term.get(t) != [blk.id] or not isinstance(blk.term, Return):
                    return f"{where}: a tuple that is not returned directly"
            if op == "isin":
                for v in ins.attrs.get("values", ()):
                    if not (v is None or isinstance(v, str) or kt.is_number_const(v)):
                        return f"{where}: 'in' with a {type(v).__name__} value"
        t = blk.term
        if isinstance(t, Branch) and isinstance(t.cond, Const) and not kt.is_number_const(t.cond.value) \
                and t.cond.value is not None:
            return f"line {t.line}: branch on a constant of type {type(t.cond.value).__name__}"
    return None


# ---- source generation ---------------------------------------------------------------------------

_CTOR = {np.dtype(t): f"np.{np.dtype(t).name}" for t in (
    np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float32,
    np.float64)}
_CTOR[BOOL] = "np.bool_"
# dtypes whose numba arithmetic on same-typed operands stays in the same type
_NATIVE = frozenset(np.dtype(t) for t in (np.int64, np.uint64, np.float32, np.float64))
_TRANSCENDENTAL = {"exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "erf"}
_NP_SAME = {"exp2": "exp2", "log2": "log2", "log10": "log10", "sinh": "sinh", "cosh": "cosh",
            "tan": "tan", "arcsin": "arcsin", "arccos": "arccos", "arctan": "arctan",
            "arcsinh": "arcsinh", "arccosh": "arccosh", "arctanh": "arctanh", "cbrt": "cbrt",
            "sqrt": "sqrt", "floor": "floor", "ceil": "ceil", "trunc": "trunc", "rint": "rint",
            "signbit": "signbit", "isnan": "isnan", "isinf": "isinf", "isfinite": "isfinite",
            "arctan2": "arctan2", "hypot": "hypot", "copysign": "copysign", "nextafter": "nextafter",
            "logaddexp": "logaddexp", "logaddexp2": "logaddexp2"}
_MATH_NP = {"sqrt": "sqrt", "log2": "log2", "log10": "log10", "tan": "tan", "asin": "arcsin",
            "acos": "arccos", "atan": "arctan", "atan2": "arctan2", "sinh": "sinh", "cosh": "cosh",
            "asinh": "arcsinh", "acosh": "arccosh", "atanh": "arctanh", "fabs": "fabs",
            "hypot": "hypot", "copysign": "copysign", "fmod": "fmod"}

# numba helpers, emitted into each kernel file that needs them.  {T} is the
# float constructor for the float variants.
_HELPERS = {
    "floordiv_i64": '''
@njit(**_OPTS)
def _floordiv_i64(a, b):
    # numpy floor_divide for int64: b == 0 -> 0, MIN // -1 -> MIN (wraps)
    if b == 0:
        return np.int64(0)
    if b == -1:
        return np.int64(np.uint64(0) - np.uint64(a))
    return a // b
''',
    "mod_i64": '''
@njit(**_OPTS)
def _mod_i64(a, b):
    # numpy remainder for int64 (sign of the divisor); b == 0 or -1 -> 0
    if b == 0 or b == -1:
        return np.int64(0)
    return a % b
''',
    "floordiv_u64": '''
@njit(**_OPTS)
def _floordiv_u64(a, b):
    if b == 0:
        return np.uint64(0)
    return a // b
''',
    "mod_u64": '''
@njit(**_OPTS)
def _mod_u64(a, b):
    if b == 0:
        return np.uint64(0)
    return a % b
''',
    "pow_i64": '''
@njit(**_OPTS)
def _pow_i64(a, b):
    # integer power by squaring, wrapping mod 2**64 (b >= 0 was checked)
    r = np.uint64(1)
    x = np.uint64(a)
    e = np.int64(b)
    while e > 0:
        if e & 1:
            r = r * x
        x = x * x
        e = e >> 1
    return np.int64(r)
''',
    "pow_u64": '''
@njit(**_OPTS)
def _pow_u64(a, b):
    r = np.uint64(1)
    x = np.uint64(a)
    e = np.uint64(b)
    while e > np.uint64(0):
        if e & np.uint64(1):
            r = r * x
        x = x * x
        e = e >> np.uint64(1)
    return r
''',
    "lshift_i64": '''
@njit(**_OPTS)
def _lshift_i64(a, b, bits):
    # numpy left_shift: a shift by a count outside [0, bits) gives 0
    if b >= 0 and b < bits:
        return np.int64(np.uint64(a) << np.uint64(b))
    return np.int64(0)
''',
    "rshift_i64": '''
@njit(**_OPTS)
def _rshift_i64(a, b, bits):
    # numpy right_shift (arithmetic): a count outside [0, bits) gives -1 or 0
    if b >= 0 and b < bits:
        return a >> b
    return np.int64(-1) if a < 0 else np.int64(0)
''',
    "lshift_u64": '''
@njit(**_OPTS)
def _lshift_u64(a, b):
    if b < np.uint64(64):
        return a << b
    return np.uint64(0)
''',
    "rshift_u64": '''
@njit(**_OPTS)
def _rshift_u64(a, b):
    if b < np.uint64(64):
        return a >> b
    return np.uint64(0)
''',
    "cmp_iu": '''
@njit(**_OPTS)
def _cmp_iu(a, b):
    # exact three-way comparison of an int64 with a uint64
    if a < 0:
        return -1
    ua = np.uint64(a)
    return -1 if ua < b else (1 if ua > b else 0)
''',
    "f2i64": '''
@njit(**_OPTS)
def _f2i64(x):
    # float -> int64 as numpy casts on x86: out of range or NaN -> INT64_MIN
    if x >= -9.223372036854775808e18 and x < 9.223372036854775808e18:
        return np.int64(x)
    return np.int64(-9223372036854775808)
''',
    "f2i32": '''
@njit(**_OPTS)
def _f2i32(x):
    # float -> int32 (and narrower, after truncation) as numpy casts on x86
    if x > -2147483649.0 and x < 2147483648.0:
        return np.int64(x)
    return np.int64(-2147483648)
''',
    "f2u64": '''
@njit(**_OPTS)
def _f2u64(x):
    if x >= 9.223372036854775808e18:
        if x < 1.8446744073709551616e19:
            return np.uint64(x)
        return np.uint64(0)
    if x >= -9.223372036854775808e18:
        return np.uint64(np.int64(x))
    return np.uint64(9223372036854775808)
''',
    "divmod_f": '''
@njit(**_OPTS)
def _divmod_{S}(a, b):
    # numpy's npy_divmod ({S}): Python's floor division and modulo for floats
    mod = np.fmod(a, b)
    div = (a - mod) / b
    if mod != {T}(0):
        if (b < {T}(0)) != (mod < {T}(0)):
            mod = mod + b
            div = div - {T}(1)
    else:
        mod = np.copysign({T}(0), b)
    if div != {T}(0):
        floordiv = np.floor(div)
        if div - floordiv > {T}(0.5):
            floordiv = floordiv + {T}(1)
    else:
        floordiv = np.copysign({T}(0), a / b)
    return floordiv, mod
''',
    "floordiv_f": '''
@njit(**_OPTS)
def _floordiv_{S}(a, b):
    if b == {T}(0):
        return a / b
    return _divmod_{S}(a, b)[0]
''',
    "mod_f": '''
@njit(**_OPTS)
def _mod_{S}(a, b):
    if b == {T}(0):
        return np.fmod(a, b)
    return _divmod_{S}(a, b)[1]
''',
    "sign_f": '''
@njit(**_OPTS)
def _sign_{S}(x):
    if x > {T}(0):
        return {T}(1)
    if x < {T}(0):
        return {T}(-1)
    if x == {T}(0):
        return {T}(0)
    return x
''',
    "heaviside_f": '''
@njit(**_OPTS)
def _heaviside_{S}(x, h0):
    if x != x:
        return {T}(np.nan)
    if x == {T}(0):
        return h0
    if x < {T}(0):
        return {T}(0)
    return {T}(1)
''',
    "clip_f": '''
@njit(**_OPTS)
def _clip_{S}(x, lo, hi):
    # numpy's _NPY_MIN(_NPY_MAX(x, lo), hi) with NaN propagation
    t = x if (x != x or x > lo) else lo
    return t if (t != t or t < hi) else hi
''',
}
_HELPER_DEPS = {"floordiv_f": ("divmod_f",), "mod_f": ("divmod_f",)}


def _hex(v):
    return float(v).hex()


class _Emitter:
    def __init__(self, ft: kt.FunctionTypes, exact_math: bool, count_loops: bool):
        self.ft = ft
        self.fn = ft.fn
        self.exact = exact_math
        self.count_loops = count_loops
        self.errors = {}          # (line, exc_type, message) -> code
        self.consts = {}          # key -> global name
        self.const_defs = []
        self.helpers = []         # ordered (name, S) keys
        self.vm = set()           # vmath functions imported
        self.bases = {}           # IR variable -> numba base name
        self.typed = {}           # numba variable -> dtype (initialised at entry)
        self.lines = []
        self.ntmp = 0
        self.loops = {}
        self.live_in, self.dead = _liveness(self.fn, ft.order)
        self.cur = None           # (block, instruction index) being emitted
        self.inline = {}          # temporary -> (expression, ST): computed where it is used
        self.inline_ok = set()    # temporaries of the current block that may be inlined

    # ---- small utilities -------------------------------------------------------------------
    def err(self, line, exc_type, message) -> int:
        key = (int(line or 0), exc_type, message)
        if key not in self.errors:
            self.errors[key] = len(self.errors) + 1
        return self.errors[key]

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
            (a,) = args
            if isinstance(res, TT):
                raise KernelUnsupported("copy of a tuple")
            expr, _ = self.operand(a, env)
            self.assign(ind, tgt, expr, res, env)
        elif kind == "binary":
            op = plan.extra["op"]
            pa, pb = plan.extra["prep"]
            la, lb = plan.loop
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
                    self.emit(ind, f"if {A} != {A}:")
                    self.emit(ind + 1, self.fail(self.err(line, ValueError, kt.MSG_INT_NAN)))
                    self.emit(ind, f"if np.isinf({A}):")
                    self.emit(ind + 1, self.fail(self.err(line, OverflowError, kt.MSG_INT_INF)))
                    src = A
                    big = kt.MSG_INT_BIG
                else:
                    self.emit(ind, f"if not np.isfinite({A}):")
                    self.emit(ind + 1, self.fail(self.err(line, ValueError, kt.MSG_ROUND)))
                    src = self.tmp(dt)
                    self.emit(ind, f"{src} = np.rint({A})")
                    big = kt.MSG_ROUND_BIG
                lo, hi = self.const(-2.0 ** 63, dt), self.const(2.0 ** 63, dt)
                self.emit(ind, f"if not ({src} >= {lo} and {src} < {hi}):")
                self.emit(ind + 1, self.fail(self.err(line, OverflowError, big)))
                self.assign(ind, tgt, f"np.int64({src})", res, env)
            else:
                self.assign(ind, tgt, self.cast(A, dt, I64), res, env)
        elif kind == "minmax":
            self.minmax(ind, plan, args, env, tgt)
        elif kind == "math":
            self.math(ind, plan, args, env, tgt, line)
        elif kind == "math_int":
            A, _ = self.operand(args[0], env, (F64,))
            r = self.tmp(F64)
            self.emit(ind, f"{r} = np.{plan.extra['name']}({A})")
            self.emit(ind, f"if {r} != {r}:")
            self.emit(ind + 1, self.fail(self.err(line, ValueError, kt.MSG_INT_NAN)))
            self.emit(ind, f"if np.isinf({r}):")
            self.emit(ind + 1, self.fail(self.err(line, OverflowError, kt.MSG_INT_INF)))
            self.assign(ind, tgt, f"{self.helper('f2i64')}({r})", res, env)
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

    def binary_check(self, ind, chk, A, B, la, lb, line):
        if chk == "div":
            self.emit(ind, f"if {B} == {self.zero(lb)}:")
            self.emit(ind + 1, self.fail(self.err(line, ZeroDivisionError, kt.MSG_DIV)))
        elif chk == "pow_int":
            self.emit(ind, f"if {B} < {self.zero(lb)}:" if np.dtype(lb).kind == "i" else "if False:")
            self.emit(ind + 1, self.fail(self.err(line, ValueError, kt.MSG_POW_INT)))
        elif chk == "pow_float":
            self.emit(ind, f"if {A} == {self.zero(la)} and {B} < {self.zero(lb)}:")
            self.emit(ind + 1, self.fail(self.err(line, ZeroDivisionError, kt.MSG_POW_ZERO)))

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

    def math(self, ind, plan, args, env, tgt, line):
        name = plan.extra["name"]
        xs = [self.operand(a, env, (F64,))[0] for a in args]
        x = xs[0]
        if name in _TRANSCENDENTAL and len(xs) == 1:
            expr = self.transcendental(name, x, F64)
        elif name == "log":
            expr = f"({self.transcendental('log', xs[0], F64)} / {self.transcendental('log', xs[1], F64)})"
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
        self.emit(ind, f"if {r} != {r} and not ({nan_in}):")
        self.emit(ind + 1, self.fail(self.err(line, ValueError, kt.MSG_MATH_DOMAIN)))
        self.emit(ind, f"if np.isinf({r}) and {fin_in}:")
        self.emit(ind + 1, self.fail(self.err(line, OverflowError, kt.MSG_MATH_RANGE)))
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
        elif name == "heaviside":
            expr = f"{self.helper('heaviside_f', dt)}({A}, {B})"
        elif name in _NP_SAME and isf:
            expr = f"np.{_NP_SAME[name]}({', '.join(ops)})"
        else:
            raise KernelUnsupported(f"np.{name} on {dt.name}")
        self.assign(ind, tgt, expr if res.dtype == dt or name in (
            "where", "clip", "isnan", "isinf", "isfinite", "signbit", "logical_not", "logical_and",
            "logical_or", "logical_xor") else self.cast(expr, dt, res.dtype), res, env)

    # ---- blocks, edges, the lane function -----------------------------------------------------
    def edge(self, ind, p, s, env):
        """Conversions of variables whose type changes on the edge p -> s, loop counters."""
        tin = self.ft.block_in[s]
        wrote = False
        for var, t in sorted(tin.items()):
            have = env.get(var)
            if have is None or isinstance(t, TT) or have.dtype == t.dtype or var not in self.live_in[s]:
                continue
            self.emit(ind, f"{self.vname(var, t.dtype)} = "
                           f"{self.cast(self.vname(var, have.dtype), have.dtype, t.dtype)}")
            wrote = True
        if self.count_loops and s in self.loops and p not in self.loops[s].blocks:
            self.emit(ind, f"c{s} = -1")  # the first arrival is not a trip: trips = back edges taken
            wrote = True
        self.emit(ind, f"blk = {s}")
        return wrote

    def block(self, ind, b):
        ft = self.ft
        blk = self.fn.blocks[b]
        env = dict(ft.block_in[b])
        if self.count_loops and b in self.loops:
            code = self.err(self.loops[b].line, NonTerminationError, "loop passed max_iters")
            self.emit(ind, f"c{b} += 1")
            self.emit(ind, f"if c{b} > mi:")
            self.emit(ind + 1, self.fail(code))
        stop = ft.stop_at.get(b)
        self.inline = {}
        self.inline_ok = self.inlinable(b)
        for k, ins in enumerate(blk.instrs):
            if stop is not None and k == stop[0]:
                if stop[1] is None:  # the failing instruction's own operands may need checks
                    for (bb, kk, u) in ft.maybe_unbound:
                        if bb == b and kk == k:
                            self.unbound_check(ind, u, ins.line)
                self.stop(ind, b, stop, ins.line)
                return
            self.cur = (b, k)
            self.instr(ind, b, k, ins, ft.plans[(b, k)], env)
            self.cur = None
        if stop is not None:
            self.stop(ind, b, stop, blk.term.line)
            return
        for (bb, kk, u) in ft.maybe_unbound:
            if bb == b and kk == "term":
                self.unbound_check(ind, u, blk.term.line)
        t = blk.term
        if isinstance(t, Jump):
            self.edge(ind, b, t.target, env)
        elif isinstance(t, Branch):
            self.emit(ind, f"if {self.truth_operand(t.cond, env)}:")
            self.edge(ind + 1, b, t.if_true, env)
            self.emit(ind, "else:")
            self.edge(ind + 1, b, t.if_false, env)
        elif isinstance(t, Return):
            res = ft.result
            if isinstance(res, TT) and isinstance(t.value, Const):
                parts = [self.operand(Const(v), env, (r.dtype,))[0] for v, r in zip(t.value.value, res.items)]
            elif isinstance(res, TT):
                have = env[t.value.name]
                parts = []
                for j, (h, r) in enumerate(zip(have.items, res.items)):
                    parts.append(self.cast(self.vname(f"{t.value.name}#{j}", h.dtype), h.dtype, r.dtype))
            else:
                expr, _ = self.operand(t.value, env, (res.dtype,))
                parts = [expr]
            self.emit(ind, "; ".join(f"r{j} = {p}" for j, p in enumerate(parts)) + "; blk = -1")
        elif isinstance(t, Raise):
            msg = t.message or f"{t.exc_type.__name__} raised"
            self.emit(ind, self.fail(self.err(t.line, t.exc_type, msg)))
        else:
            raise KernelUnsupported(f"terminator {type(t).__name__}")

    def inlinable(self, b):
        """Temporaries of block ``b`` to compute at their single use instead of storing them.

        A temporary qualifies when it is read once, by an operation that spells
        each operand once, and nothing between its definition and that use
        assigns a variable its expression reads.
        """
        ft = self.ft
        blk = self.fn.blocks[b]
        uses = {}
        for j, ins in enumerate(blk.instrs):
            for u in ins.uses():
                uses.setdefault(u, []).append(j)
        for u in blk.term.uses():
            uses.setdefault(u, []).append("term")
        reads = {}
        ok = set()
        for k, ins in enumerate(blk.instrs):
            plan = ft.plans.get((b, k))
            r = set()
            for u in ins.uses():
                r |= reads.get(u, set()) if u in ok else {u}
            t = ins.target
            if t is None or not is_temp(t) or plan is None or isinstance(plan.result, TT) \
                    or t in ft.flagged:
                continue
            us = uses.get(t, [])
            if len(us) != 1:
                continue
            j = us[0]
            if j == "term":
                if not isinstance(blk.term, (Branch, Return)):
                    continue
                end = len(blk.instrs)
            else:
                if not _single_ref(ft.plans.get((b, j)), blk.instrs[j]):
                    continue
                end = j
            if any(blk.instrs[m].target in r for m in range(k + 1, end)):
                continue
            ok.add(t)
            reads[t] = r
        return ok

    def stop(self, ind, b, stop, line):
        """Every lane that gets here fails: a read of a never-assigned variable, or range() of a float."""
        k, var = stop
        if var is None:
            ins = self.fn.blocks[b].instrs[k]
            plan = self.ft.plans[(b, k)]
            a = ins.args[plan.extra["index"]]
            t = plan.extra["type"]
            desc = type(a.value).__name__ if isinstance(a, Const) else \
                ("Python " if t.weak else "") + t.dtype.name
            self.emit(ind, self.fail(self.err(ins.line, TypeError,
                                              f"'{desc}' object cannot be interpreted as an integer")))
            return
        shown = var if not var.startswith("$") else "a temporary"
        self.emit(ind, self.fail(self.err(line, UnboundLocalError,
                                          f"local variable '{shown}' referenced before assignment")))

    def lane_function(self, max_iters):
        from vmapper.passes.loops import find_loops
        self.max_iters = max_iters
        ft = self.ft
        fn = self.fn
        if self.count_loops:
            find_loops(fn)
            self.loops = fn.annotations["loops"]
        res = ft.result
        items = res.items if isinstance(res, TT) else (res,)
        body_start = len(self.lines)
        for j, b in enumerate(ft.order):
            if len(ft.order) == 1:
                self.emit(2, "if True:")
            elif j == 0:
                self.emit(2, f"if blk == {b}:")
            elif j == len(ft.order) - 1:
                self.emit(2, "else:")
            else:
                self.emit(2, f"elif blk == {b}:")
            self.block(3, b)
        body = self.lines[body_start:]
        del self.lines[body_start:]
        params = [f"p{j}" for j in range(len(fn.params))]
        head = []
        # parameters into their typed variables
        for j, (name, t) in enumerate(zip(fn.params, ft.params)):
            head.append(f"    {self.vname(name, t.dtype)} = {_CTOR[t.dtype] if t.dtype != BOOL else ''}(p{j})")
        param_vars = {self.vname(name, t.dtype) for name, t in zip(fn.params, ft.params)}
        for name, dt in sorted(self.typed.items()):
            if name not in param_vars:
                head.append(f"    {name} = {self.zero(dt)}")
        for var in sorted(ft.flagged):
            head.append(f"    {self.flag(var)} = {'True' if var in fn.params else 'False'}")
        if self.count_loops:
            for h in sorted(self.loops):
                head.append(f"    c{h} = -1")
        for j, t in enumerate(items):
            head.append(f"    r{j} = {self.zero(t.dtype)}")
        head.append("    code = 0")
        sig = ", ".join(params + (["mi"] if self.count_loops else []))
        tail = ["    return code, " + ", ".join(f"r{j}" for j in range(len(items))) + ("," if len(items) == 1 else "")]
        out = (["@njit(**_OPTS)", f"def lane({sig}):"] + head + [f"    blk = {ft.order[0]}", "    while blk >= 0:"]
               + body + tail)
        return out


def _liveness(fn, order):
    """Per block: the variables live at its end, and per instruction whether its target is read later."""
    uses_defs = {}
    for b in order:
        blk = fn.blocks[b]
        use, defs = set(), set()
        for ins in blk.instrs:
            use.update(u for u in ins.uses() if u not in defs)
            if ins.target:
                defs.add(ins.target)
        use.update(u for u in blk.term.uses() if u not in defs)
        uses_defs[b] = (use, defs)
    live_in = {b: set() for b in order}
    changed = True
    while changed:
        changed = False
        for b in reversed(order):
            out = set().union(*(live_in.get(s, set()) for s in fn.blocks[b].successors()))
            use, defs = uses_defs[b]
            new = use | (out - defs)
            if new != live_in[b]:
                live_in[b] = new
                changed = True
    dead = set()
    for b in order:
        blk = fn.blocks[b]
        live = set().union(*(live_in.get(s, set()) for s in blk.successors()))
        live |= set(blk.term.uses())
        for k in range(len(blk.instrs) - 1, -1, -1):
            ins = blk.instrs[k]
            if ins.target is not None:
                if ins.target not in live:
                    dead.add((b, k))
                live.discard(ins.target)
            live.update(ins.uses())
    return live_in, dead


def _single_ref(plan, ins):
    """True when the code for ``plan`` spells each of its operands exactly once."""
    if plan is None:
        return False
    k = plan.kind
    if k in ("copy", "truth", "select", "cast", "compare", "math_pred", "range_cond", "tuple"):
        return True
    if k == "binary":
        return not plan.checks
    if k == "unary":
        return plan.extra["op"] in ("neg", "pos", "invert", "abs")
    return False


def _result_items(res):
    return res.items if isinstance(res, TT) else (res,)


def generate_source(fn, arg_types, exact_math=False, count_loops=False):
    """The kernel module's source for ``fn`` (a post-pipeline IR function) and its metadata."""
    reason = kernel_eligible(fn)
    if reason is not None:
        raise KernelUnsupported(reason)
    ir = kt.prepare_ir(fn)
    ft = kt.infer_function(ir, arg_types)
    em = _Emitter(ft, exact_math, count_loops)
    lane = em.lane_function(max_iters=None)
    items = _result_items(ft.result)
    nparams = len(fn.params)
    lanes_args = [spec[0] == "lanes" for spec in arg_types]
    kargs = [f"a{j}" for j in range(nparams)]
    outs = [f"o{j}" for j in range(len(items))]
    call = ", ".join(f"a{j}[i]" if lanes_args[j] else f"a{j}" for j in range(nparams))
    if count_loops:
        call = call + (", " if call else "") + "mi"
    ksig = ", ".join(["n"] + kargs + outs + ["codes"] + (["mi"] if count_loops else []))
    kernel = ["@njit(parallel=_PARALLEL, **_OPTS)", f"def kernel({ksig}):",
              "    for i in prange(n):", f"        r = lane({call})",
              "        if r[0] != 0:", "            codes[i] = r[0]", "        else:"]
    kernel += [f"            o{j}[i] = r[{j + 1}]" for j in range(len(items))]
    helpers = []
    for name, s in em.helpers:
        src = _HELPERS[name]
        if s is not None:
            src = src.replace("{S}", s).replace("{T}", "np.float32" if s == "f32" else "np.float64")
        helpers.append(src.strip("\n"))
    from . import cache as _cache
    header = [
        "# vmapper kernel: generated by vmapper.kernels.codegen; do not edit",
        f"# function {fn.name} ({fn.source.filename}:{fn.source.first_line})",
        f"# codegen {CODEGEN_VERSION}; {_cache.environment_tag()}",
        f"# args {[_spec_key(s) for s in arg_types]}; exact_math={bool(exact_math)}; "
        f"count_loops={bool(count_loops)}",
        "import math",
        "import numpy as np",
        "from numba import njit, prange",
    ]
    header += [f"from vmapper.kernels.vmath import {f} as _vm_{f}" for f in sorted(em.vm)]
    header += ["", '_OPTS = dict(error_model="numpy", cache=True, nogil=True)',
               "# only the prange transformation: the other parfor passes cost compile time for nothing here",
               "_PARALLEL = dict(prange=True, fusion=False, comprehension=False, setitem=False, reduction=False,",
               "                 numpy=False, stencil=False, inplace_binop=False)", ""]
    src = "\n".join(header + em.const_defs + [""] + ["\n\n".join(helpers)] + ["", ""] + lane + ["", ""]
                    + kernel) + "\n"
    errors = {code: key for key, code in em.errors.items()}
    meta = {"errors": errors, "result": ft.result, "items": items, "types": ft}
    return src, meta


def _spec_key(spec):
    if spec[0] == "lanes":
        return ("lanes", np.dtype(spec[1]).str, bool(spec[2]))
    v = spec[1]
    if isinstance(v, np.generic):
        return ("uniform", np.dtype(v.dtype).str)
    return ("uniform", type(v).__name__)


_fingerprints: dict = {}


def fingerprint(fn) -> str:
    """A hash of everything in ``fn`` that the generated kernel depends on (memoized per object:
    IR functions are not changed after the pass pipeline)."""
    hit = _fingerprints.get(id(fn))
    if hit is not None and hit[0] is fn:
        return hit[1]
    fp = _fingerprint(fn)
    _fingerprints[id(fn)] = (fn, fp)
    return fp


def _fingerprint(fn) -> str:
    h = hashlib.sha256()

    def put(*parts):
        h.update(repr(parts).encode())
        h.update(b"\0")

    def op(a):
        if isinstance(a, Var):
            return ("V", a.name)
        v = a.value
        return ("C", type(v).__module__, type(v).__name__, repr(v) if not isinstance(v, float) else v.hex())

    put(fn.name, tuple(fn.params), fn.entry, fn.source.filename)
    for bid in sorted(fn.blocks):
        blk = fn.blocks[bid]
        put("block", bid)
        for ins in blk.instrs:
            attrs = tuple(sorted((k, repr(v)) for k, v in ins.attrs.items()))
            put(ins.op, ins.target, tuple(op(a) for a in ins.args), attrs, ins.line)
        t = blk.term
        if isinstance(t, Jump):
            put("jump", t.target, t.line)
        elif isinstance(t, Branch):
            put("branch", op(t.cond), t.if_true, t.if_false, t.line)
        elif isinstance(t, Return):
            put("return", op(t.value), t.line)
        elif isinstance(t, Raise):
            put("raise", t.exc_type.__module__, t.exc_type.__qualname__, t.message, t.line)
    return h.hexdigest()


# ---- the callable kernel ----------------------------------------------------------------------

class Kernel:
    """A compiled kernel: ``results, err_lane, err_code = k(args, n)``."""

    def __init__(self, module, meta, arg_types, max_iters, source, path):
        self._kernel = module.kernel
        self.module = module
        self.source = source
        self.path = path
        self.arg_types = [tuple(s) if s[0] == "lanes" else s for s in arg_types]
        self.max_iters = max_iters
        items = meta["items"]
        self.result_dtype = tuple(t.dtype for t in items) if isinstance(meta["result"], TT) else items[0].dtype
        self.result_weak = tuple(t.weak for t in items) if isinstance(meta["result"], TT) else items[0].weak
        self._dtypes = [t.dtype for t in items]
        self._tuple = isinstance(meta["result"], TT)
        self.errors = {code: (line, et, f"loop passed max_iters={max_iters}" if et is NonTerminationError
                              else msg) for code, (line, et, msg) in meta["errors"].items()}
        self._lanes = [s[0] == "lanes" for s in arg_types]
        self._arg_dtypes = [np.dtype(s[1]) if s[0] == "lanes" else None for s in arg_types]
        self._uniform_conv = [None if s[0] == "lanes" else _uniform_converter(s[1]) for s in arg_types]

    def signature(self):
        from numba import typeof, types
        sig = [types.int64]
        for lanes, dt, conv, spec in zip(self._lanes, self._arg_dtypes, self._uniform_conv, self.arg_types):
            if lanes:
                sig.append(types.Array(typeof(dt.type(0)), 1, "C"))
            else:
                sig.append(typeof(conv(spec[1])))
        for dt in self._dtypes:
            sig.append(types.Array(typeof(dt.type(0)), 1, "C"))
        sig.append(types.Array(types.int32, 1, "C"))
        if self.max_iters is not None:
            sig.append(types.int64)
        return tuple(sig)

    def __call__(self, args, n):
        n = int(n)
        call = [n]
        for a, lanes, dt, conv in zip(args, self._lanes, self._arg_dtypes, self._uniform_conv):
            if lanes:
                arr = np.ascontiguousarray(a, dtype=dt)
                if arr.shape != (n,):
                    raise ValueError(f"a lane argument of shape {arr.shape} for {n} lanes")
                call.append(arr)
            else:
                call.append(conv(a))
        outs = [np.empty(n, dt) for dt in self._dtypes]
        codes = np.zeros(n if self.errors else 1, np.int32)  # written only by failing lanes
        call += outs
        call.append(codes)
        if self.max_iters is not None:
            call.append(int(self.max_iters))
        self._kernel(*call)
        err_lane, err_code = -1, 0
        if self.errors and n and codes.any():
            err_lane = int(np.flatnonzero(codes)[0])
            err_code = int(codes[err_lane])
        results = tuple(outs) if self._tuple else outs[0]
        return results, err_lane, err_code

    def __repr__(self):
        return f"<vmapper kernel {self.path}>"


def _uniform_converter(example):
    if type(example) is bool:
        return lambda v: bool(v)
    if type(example) is int:
        def conv(v):
            if not -2 ** 63 <= v < 2 ** 63:
                raise KernelUnsupported(f"uniform integer {v} beyond int64")
            return np.int64(v)
        return conv
    if type(example) is float:
        return lambda v: np.float64(v)
    if isinstance(example, np.generic):
        t = type(example)
        return lambda v: t(v)
    raise KernelUnsupported(f"uniform argument of type {type(example).__name__}")


_lock = threading.RLock()


def compile_kernel(fn, arg_types, exact_math=False, max_iters=None) -> Kernel:
    """The kernel of ``fn`` for these argument types, cached in memory and on disk.

    ``arg_types``: per parameter ``("lanes", dtype, weak)`` or ``("uniform", value)``
    (uniform values are passed to the kernel as arguments, only their type is
    compiled in).  ``max_iters``: a loop header reached more than that many
    times in one entry of its loop fails the lane with ``NonTerminationError``.
    """
    from . import cache as _cache
    arg_types = [tuple(s) for s in arg_types]
    key = (fingerprint(fn), tuple(_spec_key(s) for s in arg_types), bool(exact_math), max_iters)
    k = _cache.memory_get(key)
    if k is not None:
        return k
    with _lock:
        k = _cache.memory_get(key)
        if k is not None:
            return k
        src, meta = generate_source(fn, arg_types, exact_math, max_iters is not None)
        module, path = _cache.load_module(src)
        k = Kernel(module, meta, arg_types, max_iters, src, path)
        _cache.ensure_compiled(module, k.signature())
        _cache.memory_put(key, k)
        return k
