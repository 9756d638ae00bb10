"""Random per-sample programs for differential testing of ``vmapper.batched``.

:func:`generate_program` turns a seed into the source of one function
``def prog(a, b, x, y)`` (``a, b`` ints, ``x, y`` floats) built from random
nested ``if/elif/else``, ``while``, ``for ... in range(...)``, ``break``,
``continue`` and ``return`` (also inside loops), with conditions and loop
bounds that depend on the sample's values, so that lanes of one batch take
different paths.  Running such a function per sample in a Python loop and
batched with ``vmapper.batched`` must give bitwise equal results.

What the generated code guarantees, by construction, so that any difference
between the two runs is a bug of the batched runtime and never of the program:

* **Every variable is defined before use.**  The six locals ``i, j, k`` (int)
  and ``u, v, w`` (float) are initialised at the top; loop counters right
  before their loop; a ``for`` target is read only inside its own body
  (Python leaves it undefined after a zero-trip loop).
* **A variable keeps one type on every path**, and no expression yields
  different types on different lanes: ``and``/``or``/``not`` only combine
  conditions, ``min``/``max``/``p if c else q`` only same-typed operands, ``/``
  only float work, and the return value always has the same kind (int,
  float, or an ``(int, float)`` tuple).
* **No int64 overflow, no inf/nan.**  The per-sample run uses Python's
  arbitrary-precision ints, the batched run int64, so values must stay
  small.  The generator carries an interval bound for every expression and
  variable (:class:`_Expr.bound`): every expression it emits, intermediate
  ones included, is at most :data:`EXPR_LIMIT` (1e15 < 2**53, so int<->float
  conversions and mixed int/float comparisons are exact too), and a variable
  that may exceed :data:`VAR_LIMIT` is wrapped (``% 9973``, a clamp with
  ``min``/``max``, ...) before control can flow back to a loop head, so loops
  cannot accumulate growth.
* **No operation can raise.**  Divisors are nonzero constants or of the form
  ``(abs(e) + 1.0)`` / ``(abs(i) % 5 + 1)``; ``math.sqrt`` only sees ``abs``.
* **Every loop terminates quickly.**  ``while`` loops are driven by a counter
  that is incremented as the *first* statement of the body (so ``continue``
  cannot skip it) and compared against a bound of the form
  ``abs(e) % K`` -- at most ``K - 1`` whatever the body does to ``e``;
  ``for`` loops run over ``range`` objects of at most a handful of trips.
  Trip limits shrink with nesting depth.
* **No dead code**: a block stops after a statement that always jumps.

Use :func:`compile_program` to get a callable whose source ``inspect`` can
read back (the compiler of ``vmapper`` needs ``inspect.getsource``), and
:meth:`GeneratedProgram.make_args` to draw a batch of arguments.
:func:`instrument_program` compiles a checked variant that asserts the
guarantees above at run time; the test-suite uses it to validate this module.

Run ``python -m vmapper.testing.program_generator SEED`` to print a program.
"""
from __future__ import annotations

import ast
import linecache
import math
import random
import re
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

__all__ = [
    "GeneratedProgram", "generate_program", "compile_program",
    "run_per_sample", "instrument_program", "ProgramProbe",
    "program_features", "EXPR_LIMIT", "VAR_LIMIT", "MAX_LOOP_STEPS",
]

#: Largest magnitude any generated expression (intermediates included) can
#: take.  Below 2**53, so every int in range converts to float exactly and
#: Python's exact int/float comparisons agree with numpy's convert-then-compare.
EXPR_LIMIT = 10 ** 15
#: Magnitude a variable may have when control reaches a loop head (loop entry,
#: end of body, ``continue``, ``break``).  Small so products of two or three
#: variables stay far below EXPR_LIMIT without wrapping every operand.
VAR_LIMIT = 10 ** 4
#: Magnitude above which an assigned value is wrapped right away.  Between
#: loop heads a variable may hold up to this much; ``normalize_all`` brings it
#: back under VAR_LIMIT before control can reach a loop head.
ASSIGN_LIMIT = 10 ** 6
#: Bounds of the arguments drawn by :meth:`GeneratedProgram.make_args`.
INT_ARG_BOUND = 20
FLOAT_ARG_BOUND = 50.0
#: Generous cap on loop-body executions per call, checked by the
#: instrumented run (actual programs stay far below it).
MAX_LOOP_STEPS = 5000

INT_VARS = ("i", "j", "k")
FLOAT_VARS = ("u", "v", "w")
INT_PARAMS = ("a", "b")
FLOAT_PARAMS = ("x", "y")
FUNC_NAME = "prog"

# Operator precedence levels, used to print only the parentheses needed
# (plus a few more for readability).
P_IFEXP, P_OR, P_AND, P_NOT, P_CMP, P_ADD, P_MUL, P_UNARY, P_ATOM = 0, 1, 2, 3, 4, 5, 6, 7, 9

# Float literals with short, exact-looking reprs; 0.0 makes ``== 0.0`` tests
# meaningful against the exact zeros in the arguments.
_FLOAT_CONSTS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 0.25, 0.1, -0.5, -1.0, -2.0, 10.0)
# Moduli used to wrap values back into range; primes so wrapped values look
# "random".  All below VAR_LIMIT.
_WRAP_MODULI = (9973, 997, 101)
_CMP_OPS = ("<", "<=", ">", ">=", "==", "!=")


# ---------------------------------------------------------------------------
# The program object and how to run it
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class GeneratedProgram:
    """One generated per-sample function and what is needed to call it."""

    seed: int
    source: str          #: text of ``def prog(a, b, x, y): ...``, 4-space indented
    name: str            #: short identifier, e.g. ``"generated-17"`` (test ids)
    return_kind: str     #: ``"int"``, ``"float"`` or ``"tuple"`` (``(int, float)``)
    func_name: str = FUNC_NAME

    @property
    def filename(self) -> str:
        """The pseudo file name the function's code object carries."""
        return f"<vmapper-generated-{self.seed}>"

    def make_args(self, rng: np.random.Generator, batch_size: int):
        """Draw a batch ``(a, b, x, y)``: int64 ``a, b`` and float64 ``x, y``.

        Ints are uniform in [-20, 20], so ``%``, ``//``, ``abs`` and sign tests
        see negatives, zeros and positives.  Floats are ``normal * 5`` with
        about a quarter of the entries replaced by exact zeros (``0.0`` and
        ``-0.0``) and small integers, so equality tests and ties (``min``/``max``
        of equal values, ``math.floor`` of integers) happen on some lanes.
        Floats are clipped to +-50, the bound the generator assumes.
        """
        n = int(batch_size)
        a = rng.integers(-INT_ARG_BOUND, INT_ARG_BOUND + 1, size=n, dtype=np.int64)
        b = rng.integers(-INT_ARG_BOUND, INT_ARG_BOUND + 1, size=n, dtype=np.int64)
        return a, b, _draw_floats(rng, n), _draw_floats(rng, n)


def _draw_floats(rng: np.random.Generator, n: int) -> np.ndarray:
    vals = rng.normal(0.0, 5.0, size=n)
    kind = rng.random(n)
    vals = np.where(kind < 0.10, 0.0, vals)
    vals = np.where((kind >= 0.10) & (kind < 0.13), -0.0, vals)
    small = rng.integers(-3, 4, size=n).astype(np.float64)
    vals = np.where((kind >= 0.13) & (kind < 0.25), small, vals)
    return np.clip(vals, -FLOAT_ARG_BOUND, FLOAT_ARG_BOUND).astype(np.float64)


def _exec_source(prog: GeneratedProgram, source: str, filename: str,
                 extra_globals: dict | None = None) -> Callable:
    """Compile ``source`` under ``filename`` and register it with linecache."""
    # linecache entries with mtime None are never evicted by checkcache(),
    # which inspect.getsource() calls; this is what makes getsource work for
    # code that has no file on disk.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"math": math, "__name__": f"vmapper_generated_{prog.seed}"}
    if extra_globals:
        namespace.update(extra_globals)
    exec(compile(source, filename, "exec"), namespace)
    return namespace[prog.func_name]


def compile_program(prog: GeneratedProgram) -> Callable:
    """Return the function of ``prog``; ``inspect.getsource`` works on it.

    The code runs in a fresh namespace with ``math`` imported; its
    ``co_filename`` is ``prog.filename`` (``<vmapper-generated-SEED>``), so
    tracebacks and vmapper's error messages point into the generated text.
    """
    return _exec_source(prog, prog.source, prog.filename)


def run_per_sample(fn: Callable, args) -> list:
    """Call ``fn`` once per lane with Python scalars; return the results.

    ``tolist()`` turns the array elements into Python ints and floats, so this
    is the reference semantics: arbitrary-precision ints, IEEE doubles.
    (``check_batching``'s own loop passes numpy scalars; the tests check that
    both give the same bits.)
    """
    n = len(args[0])
    cols = [np.asarray(arg).tolist() for arg in args]
    return [fn(*(col[lane] for col in cols)) for lane in range(n)]


# ---------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------

class _Expr(NamedTuple):
    src: str
    prec: int
    bound: float   # static upper bound of abs(value) on every lane and path
    nonneg: bool = False   # known >= 0 (abs, sqrt, % by a positive number)


def _paren(e: _Expr, min_prec: int) -> str:
    return e.src if e.prec >= min_prec else f"({e.src})"


def _int_const(value: int) -> _Expr:
    return _Expr(str(value), P_UNARY if value < 0 else P_ATOM, abs(value))


def _float_const(value: float) -> _Expr:
    return _Expr(repr(value), P_UNARY if value < 0 else P_ATOM, abs(value))


_NOT_VARIABLES = frozenset({"abs", "min", "max", "int", "float", "math", "sqrt", "floor",
                            "if", "else", "and", "or", "not"})
_LITERAL = re.compile(r"-?\d+(\.\d*)?")


def _is_constant(src: str) -> bool:
    """True when ``src`` reads no variable (e.g. ``abs(-2) % 5 + 1``)."""
    return not set(re.findall(r"[A-Za-z_]\w*", src)) - _NOT_VARIABLES


def _is_silly(e: _Expr) -> bool:
    # A compound expression of constants only (``10.0 * 0.5``) is legal but
    # tests nothing and reads badly; a plain literal is fine.
    return _is_constant(e.src) and not _LITERAL.fullmatch(e.src)


class _Generator:
    """Builds one program; all randomness comes from ``random.Random(seed)``."""

    def __init__(self, seed: int, max_depth: int, max_stmts: int):
        self.rng = random.Random(seed)
        self.max_depth = max_depth
        self.max_stmts = max(2, max_stmts)
        self.lines: list[str] = []
        # Current bound of every assignable variable (flow-sensitive: joined
        # with max at control-flow merges, reset to VAR_LIMIT at loop heads).
        self.bounds: dict[str, float] = {}
        # Read-only ints in scope: loop counters and ``for`` targets -> bound.
        self.scoped: dict[str, float] = {}
        self.n_loops = 0
        self.return_kind = self.rng.choice(("int", "float", "tuple"))

    # -- output ------------------------------------------------------------

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    # -- expressions -------------------------------------------------------
    # Every builder returns an _Expr whose bound is <= EXPR_LIMIT: _binop
    # shrinks its operands *before* applying the operator, so no
    # intermediate value exceeds the limit either, and the other builders
    # cannot grow a bound past their operands' (conversions, ``//``, ``abs``)
    # or only by a little (``math.floor``: + 1).

    def _shrink_int(self, e: _Expr, limit: float) -> _Expr:
        """``e`` if within ``limit`` (>= 100), else ``e % m`` with m - 1 <= limit."""
        if e.bound <= limit:
            return e
        m = max(m for m in _WRAP_MODULI if m - 1 <= limit)
        return _Expr(f"{_paren(e, P_MUL)} % {m}", P_MUL, m - 1, True)

    def _shrink_float(self, e: _Expr, limit: float) -> _Expr:
        """``e`` if within ``limit`` (>= 100), else a clamp of it."""
        if e.bound <= limit:
            return e
        c = 100.0 if limit < 1000.0 else 1000.0
        return _Expr(f"min(max({e.src}, {-c!r}), {c!r})", P_ATOM, c)

    def _int_var(self) -> _Expr:
        """An int that varies per lane: a variable or an int argument."""
        name = self.rng.choice(INT_VARS + INT_PARAMS)
        return _Expr(name, P_ATOM, self.bounds.get(name, INT_ARG_BOUND))

    def _float_var(self) -> _Expr:
        name = self.rng.choice(FLOAT_VARS + FLOAT_PARAMS)
        return _Expr(name, P_ATOM, self.bounds.get(name, FLOAT_ARG_BOUND))

    def _int_leaf(self) -> _Expr:
        r = self.rng.random()
        if r < 0.45:
            var = self.rng.choice(INT_VARS)
            return _Expr(var, P_ATOM, self.bounds[var])
        if r < 0.65:
            return _Expr(self.rng.choice(INT_PARAMS), P_ATOM, INT_ARG_BOUND)
        if r < 0.8 and self.scoped:
            name = self.rng.choice(sorted(self.scoped))
            return _Expr(name, P_ATOM, self.scoped[name])
        return _int_const(self.rng.choice((1, 2, 3, 4, 5, 7, 10, -1, -2, -3, 0)))

    def _float_leaf(self) -> _Expr:
        r = self.rng.random()
        if r < 0.5:
            var = self.rng.choice(FLOAT_VARS)
            return _Expr(var, P_ATOM, self.bounds[var])
        if r < 0.75:
            return _Expr(self.rng.choice(FLOAT_PARAMS), P_ATOM, FLOAT_ARG_BOUND)
        return _float_const(self.rng.choice(_FLOAT_CONSTS))

    def _binop(self, left: _Expr, op: str, right: _Expr, shrink, shrink_right=None) -> _Expr:
        """``left op right``; ``shrink``/``shrink_right`` wrap an operand of the
        operand's own type (an int operand of float arithmetic must be
        wrapped as an int, or ``min``/``max`` would mix types)."""
        shrink_right = shrink_right or shrink
        if op == "-" and left.src == right.src:
            op = "+"    # ``x - x`` is a constant 0 on every lane
        prec = P_ADD if op in "+-" else P_MUL

        def result_bound(l, r):
            return l.bound + r.bound if op in "+-" else l.bound * r.bound
        # Shrink the larger operand until the result is in range.
        while result_bound(left, right) > EXPR_LIMIT:
            if left.bound >= right.bound:
                left = shrink(left, 100)
            else:
                right = shrink_right(right, 100)
        # Left-associative: the right operand needs strictly higher
        # precedence; negative literals on the right get parentheses too.
        rs = _paren(right, prec + 1)
        if right.prec == P_UNARY:
            rs = f"({right.src})"
        return _Expr(f"{_paren(left, prec)} {op} {rs}", prec, result_bound(left, right))

    def _small_divisor(self) -> _Expr:
        """A nonzero int divisor: a constant or ``(abs(e) % 5 + 1)``."""
        if self.rng.random() < 0.7:
            return _int_const(self.rng.choice((2, 3, 4, 5, 7, 10, -2, -3, -7)))
        inner = self._int_var()
        return _Expr(f"(abs({inner.src}) % 5 + 1)", P_ATOM, 5)

    def int_expr(self, depth: int) -> _Expr:
        e = self._int_expr(depth)
        return self._int_var() if _is_silly(e) else e

    def float_expr(self, depth: int) -> _Expr:
        e = self._float_expr(depth)
        return self._float_var() if _is_silly(e) else e

    def _int_expr(self, depth: int) -> _Expr:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.25:
            return self._int_leaf()
        r = rng.random()
        if r < 0.42:
            op = rng.choice("+-+-*")
            right = self.int_expr(depth - 1)
            if op == "*" and rng.random() < 0.5:
                # Multiplying by a small constant is the common case and
                # needs no wrapping.
                right = _int_const(rng.choice((2, 3, 5, -1, -2, -3)))
            return self._binop(self.int_expr(depth - 1), op, right, self._shrink_int)
        if r < 0.57:
            # Python floors ``//`` and gives ``%`` the divisor's sign; numpy's
            # integer floor_divide/remainder must agree, negatives included.
            left = self.int_expr(depth - 1)
            div = self._small_divisor()
            op = rng.choice(("//", "%", "%"))
            bound = left.bound if op == "//" else div.bound - 1
            rs = f"({div.src})" if div.prec == P_UNARY else div.src
            nonneg = op == "%" and not div.src.startswith("-")
            return _Expr(f"{_paren(left, P_MUL)} {op} {rs}", P_MUL, bound, nonneg)
        if r < 0.64:
            e = self.int_expr(depth - 1)
            return _Expr(f"abs({e.src})", P_ATOM, e.bound, True)
        if r < 0.72:
            fn = rng.choice(("min", "max"))
            args = [self.int_expr(depth - 1) for _ in range(rng.choice((2, 2, 3)))]
            return _Expr(f"{fn}({', '.join(e.src for e in args)})", P_ATOM,
                         max(e.bound for e in args))
        if r < 0.80:
            return self._ifexp(self.int_expr(depth - 1), self.int_expr(depth - 1), depth)
        if r < 0.92:
            # int() truncates toward zero, math.floor rounds down: both on
            # floats < 2**53 so the conversion is exact in int64 too.
            f = self.float_expr(depth - 1)
            fn = rng.choice(("int", "math.floor"))
            return _Expr(f"{fn}({f.src})", P_ATOM, math.floor(f.bound) + 1)
        e = self.int_expr(depth - 1)
        return _Expr(f"-{_paren(e, P_ATOM)}", P_UNARY, e.bound)

    def _float_expr(self, depth: int) -> _Expr:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.25:
            return self._float_leaf()
        r = rng.random()
        if r < 0.40:
            op = rng.choice("+-+-*")
            left = self.float_expr(depth - 1)
            if rng.random() < 0.15:
                # int operand, promoted to float (exact: ints are < 2**53).
                return self._binop(left, op, self.int_expr(depth - 1),
                                   self._shrink_float, self._shrink_int)
            if op == "*" and rng.random() < 0.4:
                right = _float_const(rng.choice((0.5, 0.25, 1.5, 2.0, -0.5, 0.1)))
            else:
                right = self.float_expr(depth - 1)
            return self._binop(left, op, right, self._shrink_float)
        if r < 0.52:
            num = self.float_expr(depth - 1)
            if rng.random() < 0.7:
                den = self.float_expr(depth - 1)
                den_src = f"(abs({den.src}) + 1.0)"
            else:
                den_src = f"(abs({self._int_var().src}) % 5 + 1)"
            return _Expr(f"{_paren(num, P_MUL)} / {den_src}", P_MUL, num.bound)
        if r < 0.60:
            e = self.float_expr(depth - 1)
            return _Expr(f"math.sqrt(abs({e.src}))", P_ATOM, math.sqrt(e.bound) + 1, True)
        if r < 0.66:
            e = self.float_expr(depth - 1)
            return _Expr(f"abs({e.src})", P_ATOM, e.bound, True)
        if r < 0.75:
            fn = rng.choice(("min", "max"))
            args = [self.float_expr(depth - 1) for _ in range(rng.choice((2, 2, 3)))]
            return _Expr(f"{fn}({', '.join(e.src for e in args)})", P_ATOM,
                         max(e.bound for e in args))
        if r < 0.84:
            return self._ifexp(self.float_expr(depth - 1), self.float_expr(depth - 1), depth)
        if r < 0.94:
            e = self.int_expr(depth - 1)
            return _Expr(f"float({e.src})", P_ATOM, e.bound)
        e = self.float_expr(depth - 1)
        return _Expr(f"-{_paren(e, P_ATOM)}", P_UNARY, e.bound)

    def _ifexp(self, yes: _Expr, no: _Expr, depth: int) -> _Expr:
        cond = self.cond(max(0, depth - 1))
        # Conditions of a conditional expression are parenthesised when they
        # are boolean operations, for the reader's sake.
        cs = _paren(cond, P_NOT)
        return _Expr(f"{_paren(yes, P_OR)} if {cs} else {_paren(no, P_OR)}", P_IFEXP,
                     max(yes.bound, no.bound))

    def cond(self, depth: int, allow_bare: bool = True) -> _Expr:
        """A condition, used only for its truth value.

        With ``allow_bare`` it may be a bare int/float (``if i % 3:``);
        operands of ``and``/``or`` never are, so those always yield bools
        and never an int on some lanes and a bool or float on others.
        """
        rng = self.rng
        r = rng.random()
        if depth > 0 and r < 0.22:
            op = rng.choice(("and", "or"))
            prec = P_AND if op == "and" else P_OR
            # Operands are comparisons, ``not``, or the same boolean op; a
            # different boolean op is parenthesised even where not required.
            l, rr = self.cond(depth - 1, False), self.cond(depth - 1, False)
            return _Expr(f"{_paren(l, prec if l.prec == prec else P_NOT)} {op} "
                         f"{_paren(rr, prec if rr.prec == prec else P_NOT)}", prec, 1)
        if depth > 0 and r < 0.30:
            c = self.cond(depth - 1)
            if c.prec == P_NOT:     # no ``not not``
                return c
            return _Expr(f"not {_paren(c, P_ATOM)}", P_NOT, 1)
        if r < 0.36:
            # Truthiness of an int or a float: ``if i % 3:``, ``not u``.
            if rng.random() < 0.6:
                e = self.int_expr(1)
                if _is_constant(e.src):
                    e = self._int_var()
                e = _Expr(f"{_paren(e, P_MUL)} % {rng.choice((2, 3, 4))}", P_MUL, 3)
            else:
                e = _Expr(rng.choice(FLOAT_VARS + FLOAT_PARAMS), P_ATOM, 1)
            if allow_bare and rng.random() < 0.7:
                return e
            return _Expr(f"not {_paren(e, P_ATOM)}", P_NOT, 1)
        # The constants compared against are chosen so that, on typical
        # arguments, the test goes both ways: small values, never negative
        # against a quantity known to be >= 0.
        kind = rng.random()
        op = rng.choice(_CMP_OPS)
        if kind < 0.45:
            left = self.int_expr(min(depth, 1) + rng.randint(0, 1))
            if rng.random() < 0.6:
                right = _int_const(rng.randint(0 if left.nonneg else -5, 5))
            else:
                right = self.int_expr(1)
        elif kind < 0.85:
            if op in ("==", "!="):
                # Computed floats are rarely equal, but the arguments (and so
                # the variables, often) hold exact zeros on some lanes.
                left, right = self._float_var(), _float_const(0.0)
            else:
                left = self.float_expr(min(depth, 1) + rng.randint(0, 1))
                if rng.random() < 0.5:
                    right = _float_const(rng.choice((0.0, 1.0, 2.5, 0.5) if left.nonneg
                                                    else (0.0, 1.0, -1.0, 2.5, 0.5)))
                else:
                    right = self.float_expr(1)
        else:
            # Mixed int/float comparison: exact in Python; numpy converts the
            # int to float64, which is exact below 2**53.
            left, right = self.int_expr(1), self.float_expr(1)
            if rng.random() < 0.5:
                left, right = right, left
        if _is_constant(left.src) and _is_constant(right.src):
            left = self._float_var() if "." in left.src else self._int_var()
        if left.src == right.src:       # ``i > i`` is the same on every lane
            right = _int_const(1)
        return _Expr(f"{_paren(left, P_ADD)} {op} {_paren(right, P_ADD)}", P_CMP, 1)

    def return_expr(self) -> str:
        if self.return_kind == "int":
            return self.int_expr(self.rng.randint(1, 2)).src
        if self.return_kind == "float":
            return self.float_expr(self.rng.randint(1, 2)).src
        i, f = self.int_expr(self.rng.randint(0, 2)), self.float_expr(self.rng.randint(0, 2))
        return f"({_paren(i, P_IFEXP + 1)}, {_paren(f, P_IFEXP + 1)})"

    # -- bounds maintenance ------------------------------------------------

    def normalize(self, indent: int, var: str) -> None:
        """Emit a statement that brings ``var`` back to at most VAR_LIMIT."""
        rng = self.rng
        if var in INT_VARS:
            style = rng.random()
            if style < 0.45:
                m = rng.choice(_WRAP_MODULI)
                self.emit(indent, f"{var} %= {m}")
                self.bounds[var] = m - 1
            elif style < 0.75:
                self.emit(indent, f"{var} = min(max({var}, -{VAR_LIMIT}), {VAR_LIMIT})")
                self.bounds[var] = VAR_LIMIT
            else:
                self.emit(indent, f"{var} = {var} % 2001 - 1000")
                self.bounds[var] = 1000
        else:
            style = rng.random()
            if style < 0.55:
                self.emit(indent, f"{var} = min(max({var}, -10000.0), 10000.0)")
                self.bounds[var] = 1e4
            elif style < 0.8:
                # A smooth squashing map into (-100, 100).
                self.emit(indent, f"{var} = {var} / (abs({var}) + 1.0) * 100.0")
                self.bounds[var] = 100.0
            else:
                self.emit(indent, f"{var} = math.sqrt(abs({var}))")
                self.bounds[var] = math.sqrt(self.bounds[var]) + 1

    def normalize_all(self, indent: int) -> None:
        for var in INT_VARS + FLOAT_VARS:
            if self.bounds[var] > VAR_LIMIT:
                self.normalize(indent, var)

    # -- statements --------------------------------------------------------
    # Each statement builder returns True when control never falls through
    # (the statement always ends in return/break/continue), so the enclosing
    # block stops and no dead code is produced.

    def block(self, indent: int, depth: int, loop_depth: int, n_max: int,
              jump_prob: float = 0.0, n_min: int = 1) -> bool:
        n = self.rng.randint(n_min, n_max)
        for _ in range(n):
            if self.statement(indent, depth, loop_depth):
                return True
        if self.rng.random() < jump_prob:
            return self.jump(indent, loop_depth)
        return False

    def statement(self, indent: int, depth: int, loop_depth: int) -> bool:
        rng = self.rng
        compound = depth < self.max_depth
        # Deeper loops are made rarer so the per-sample loop stays fast.
        loop_w = 1.1 if loop_depth == 0 else 0.5 if loop_depth == 1 else 0.2
        choices = [("assign", 3.0), ("aug", 2.0)]
        if compound:
            choices += [("if", 2.2), ("while", loop_w), ("for", loop_w)]
        if compound:   # a guard is an ``if`` too
            choices.append(("guard", 1.3 if loop_depth else 0.35))
        kinds, weights = zip(*choices)
        kind = rng.choices(kinds, weights)[0]
        if kind == "assign":
            self.assign(indent)
        elif kind == "aug":
            self.aug_assign(indent)
        elif kind == "if":
            return self.if_stmt(indent, depth, loop_depth)
        elif kind == "while":
            self.while_stmt(indent, depth, loop_depth)
        elif kind == "for":
            self.for_stmt(indent, depth, loop_depth)
        else:
            self.guard(indent, loop_depth)
        return False

    def assign(self, indent: int) -> None:
        var = self.rng.choice(INT_VARS + FLOAT_VARS)
        depth = self.rng.randint(1, 3)
        make = self.int_expr if var in INT_VARS else self.float_expr
        e = make(depth)
        while e.src == var:      # no ``i = i``
            e = make(depth)
        if var in INT_VARS:
            if e.bound > ASSIGN_LIMIT:
                if self.rng.random() < 0.7:
                    m = self.rng.choice(_WRAP_MODULI)
                    e = _Expr(f"{_paren(e, P_MUL)} % {m}", P_MUL, m - 1)
                else:
                    e = _Expr(f"min(max({e.src}, -{VAR_LIMIT}), {VAR_LIMIT})", P_ATOM, VAR_LIMIT)
        else:
            if e.bound > ASSIGN_LIMIT:
                e = _Expr(f"min(max({e.src}, -10000.0), 10000.0)", P_ATOM, 1e4)
        self.emit(indent, f"{var} = {e.src}")
        self.bounds[var] = e.bound

    def aug_assign(self, indent: int) -> None:
        rng = self.rng
        var = rng.choice(INT_VARS + FLOAT_VARS)
        # Keep the accumulated value well inside EXPR_LIMIT.
        if self.bounds[var] > VAR_LIMIT:
            self.normalize(indent, var)
        cur = self.bounds[var]
        if var in INT_VARS:
            op = rng.choice(("+=", "-=", "+=", "*=", "//=", "%="))
            if op in ("+=", "-="):
                e = self._shrink_int(self.int_expr(rng.randint(0, 2)), VAR_LIMIT)
                new = cur + e.bound
            elif op == "*=":
                e = _int_const(rng.choice((2, 3, -1, -2)))
                new = cur * e.bound
            else:
                e = self._small_divisor()
                new = cur if op == "//=" else e.bound - 1
        else:
            op = rng.choice(("+=", "-=", "*=", "/="))
            if op in ("+=", "-="):
                e = self._shrink_float(self.float_expr(rng.randint(0, 2)), VAR_LIMIT)
                new = cur + e.bound
            elif op == "*=":
                # Mostly contractions, so repeated updates do not blow up.
                if rng.random() < 0.6:
                    e = _float_const(rng.choice((0.5, 0.25, -0.5, 1.5, 0.9)))
                else:
                    e = self._shrink_float(self.float_expr(1), 100)
                new = cur * e.bound
            else:
                den = self.float_expr(rng.randint(0, 1))
                e = _Expr(f"(abs({den.src}) + 1.0)", P_ATOM, 1)
                new = cur
        self.emit(indent, f"{var} {op} {e.src}")
        self.bounds[var] = new

    def jump(self, indent: int, loop_depth: int) -> bool:
        """Emit break/continue (inside loops) or return; always jumps."""
        r = self.rng.random()
        if loop_depth and r < 0.4:
            self.normalize_all(indent)
            self.emit(indent, "break")
        elif loop_depth and r < 0.75:
            self.normalize_all(indent)
            self.emit(indent, "continue")
        else:
            self.emit(indent, f"return {self.return_expr()}")
        return True

    def guard(self, indent: int, loop_depth: int) -> None:
        """``if cond: [assignment] jump`` -- the common early-exit shape."""
        self.emit(indent, f"if {self.cond(self.rng.randint(0, 2)).src}:")
        saved = dict(self.bounds)
        if self.rng.random() < 0.3:
            self.assign(indent + 1)
        self.jump(indent + 1, loop_depth)
        # The guarded branch never falls through: state after is the entry state.
        self.bounds = saved

    def if_stmt(self, indent: int, depth: int, loop_depth: int) -> bool:
        rng = self.rng
        entry = dict(self.bounds)
        exits: list[dict] = []
        n_max = max(1, self.max_stmts // (2 + depth))
        jump_prob = 0.3 if loop_depth else 0.12
        shape = rng.random()
        n_elif = 0 if shape < 0.7 else rng.randint(1, 2)
        has_else = shape >= 0.35
        headers = ["if"] + ["elif"] * n_elif + (["else"] if has_else else [])
        for header in headers:
            self.bounds = dict(entry)   # each branch starts from the entry state
            if header == "else":
                self.emit(indent, "else:")
            else:
                self.emit(indent, f"{header} {self.cond(rng.randint(0, 2)).src}:")
            if not self.block(indent + 1, depth + 1, loop_depth, n_max, jump_prob):
                exits.append(self.bounds)
        if not has_else:
            exits.append(entry)
        if not exits:
            return True
        self.bounds = {var: max(e[var] for e in exits) for var in entry}
        return False

    def _loop_prologue(self, indent: int) -> None:
        # Loop heads are where growth could accumulate: enter with every
        # variable within VAR_LIMIT and assume only that inside the body.
        self.normalize_all(indent)
        for var in self.bounds:
            self.bounds[var] = VAR_LIMIT

    def _loop_body(self, indent: int, depth: int, loop_depth: int) -> None:
        n_max = max(1, self.max_stmts // (2 + depth))
        if not self.block(indent, depth + 1, loop_depth + 1, n_max):
            self.normalize_all(indent)   # the end of the body flows to the head
        for var in self.bounds:
            self.bounds[var] = VAR_LIMIT

    def _trip_limit(self, loop_depth: int) -> int:
        # At most this many trips; nested loops get fewer so the product of
        # trip counts (and the per-sample reference run) stays small.
        return (7, 4, 3)[min(loop_depth, 2)]

    def _bound_src(self, modulus: int) -> str:
        """``abs(e) % modulus``: a per-sample trip bound, < modulus always."""
        e = self.int_expr(self.rng.randint(0, 1))
        if _is_constant(e.src):
            e = self._int_var()
        return f"abs({e.src}) % {modulus}"

    def while_stmt(self, indent: int, depth: int, loop_depth: int) -> None:
        rng = self.rng
        self._loop_prologue(indent)
        counter = f"n{self.n_loops}"
        self.n_loops += 1
        limit = self._trip_limit(loop_depth)
        self.emit(indent, f"{counter} = 0")
        shape = rng.random()
        if depth + 1 >= self.max_depth:
            shape *= 0.8    # no room for the ``if`` of the ``while True`` form
        if shape < 0.5:
            self.emit(indent, f"while {counter} < {self._bound_src(limit)}:")
        elif shape < 0.8:
            # An extra value-dependent exit condition; ``and`` keeps the
            # counter bound in force.
            c = self.cond(1, allow_bare=False)
            self.emit(indent, f"while {counter} < {self._bound_src(limit)} and "
                              f"{_paren(c, P_NOT)}:")
        else:
            self.emit(indent, "while True:")
        # Incrementing first means no continue/break/return can skip it.
        self.emit(indent + 1, f"{counter} += 1")
        if shape >= 0.8:
            self.emit(indent + 1, f"if {counter} > {self._bound_src(limit)}:")
            self.emit(indent + 2, "break")
        self.scoped[counter] = limit
        self._loop_body(indent + 1, depth, loop_depth)
        del self.scoped[counter]

    def for_stmt(self, indent: int, depth: int, loop_depth: int) -> None:
        rng = self.rng
        self._loop_prologue(indent)
        target = f"t{self.n_loops}"
        self.n_loops += 1
        limit = self._trip_limit(loop_depth)
        shape = rng.random()
        lo = f"{self._int_var().src} % 3 - 2"         # in [-2, 0]
        hi = f"{self._int_var().src} % {limit - 1}"   # in [0, limit - 2]
        if shape < 0.4:
            header, bound = f"range({self._bound_src(limit)})", limit
        elif shape < 0.65:
            header, bound = f"range({lo}, {hi})", limit
        elif shape < 0.85:
            header, bound = f"range({hi}, {lo}, -1)", limit
        elif shape < 0.93:
            header, bound = f"range({lo}, {hi} + 2, 2)", limit + 1
        else:
            k = rng.randint(1, limit - 1)
            header, bound = f"range({k})", k
        self.emit(indent, f"for {target} in {header}:")
        # The target is in scope only inside the body (undefined after a
        # zero-trip loop).
        self.scoped[target] = bound
        self._loop_body(indent + 1, depth, loop_depth)
        del self.scoped[target]

    # -- whole program -----------------------------------------------------

    def program(self) -> str:
        rng = self.rng
        self.emit(0, f"def {FUNC_NAME}(a, b, x, y):")
        inits = {
            "i": ("a", "b", "a + b", "a * 2 - b", "0", "abs(a) % 5"),
            "j": ("b", "a - b", "1", "b % 7", "a * b % 11"),
            "k": ("0", "1", "3", "a", "b // 3", "max(a, b)"),
            "u": ("x", "x + y", "x * 0.5", "0.0", "float(a)"),
            "v": ("y", "y - x", "1.0", "abs(y)", "y * 0.25"),
            "w": ("0.0", "1.5", "x", "float(b) * 0.5", "min(x, y)"),
        }
        init_bounds = {"i": 60, "j": 400, "k": 20, "u": 100.0, "v": 100.0, "w": 50.0}
        for var, options in inits.items():
            self.emit(1, f"{var} = {rng.choice(options)}")
            self.bounds[var] = init_bounds[var]
        if not self.block(1, 0, 0, self.max_stmts, n_min=2):
            self.emit(1, f"return {self.return_expr()}")
        return "\n".join(self.lines) + "\n"


def generate_program(seed: int, *, max_depth: int = 3, max_stmts: int = 6) -> GeneratedProgram:
    """Generate the program for ``seed`` (deterministic: same seed, same text).

    ``max_depth`` bounds the nesting of ``if``/``while``/``for`` statements
    (early-exit guards ``if c: break`` included); ``max_stmts`` the number of
    random statements of the top-level block (nested blocks get fewer;
    wrapping statements that keep values in range and the final ``return``
    come on top).
    """
    gen = _Generator(seed, max_depth, max_stmts)
    source = gen.program()
    return GeneratedProgram(seed=seed, source=source, name=f"generated-{seed}",
                            return_kind=gen.return_kind)


# ---------------------------------------------------------------------------
# Instrumented runs: check the generator's guarantees at run time
# ---------------------------------------------------------------------------

_EXPECTED_TYPES = {name: int for name in INT_VARS + INT_PARAMS}
_EXPECTED_TYPES.update({name: float for name in FLOAT_VARS + FLOAT_PARAMS})


class ProgramProbe:
    """Runtime checks and statistics for an instrumented program.

    ``fn`` behaves like the generated function but asserts, on every
    evaluation, that values stay within :data:`EXPR_LIMIT` (finite for floats),
    that each variable has its declared type, and that loop bodies run at most
    :data:`MAX_LOOP_STEPS` times per call; it also records which way every
    ``if``/``while``/``x if c else y`` test went (``outcomes``).
    """

    def __init__(self, prog: GeneratedProgram):
        self.prog = prog
        self.outcomes: dict[int, set] = {}
        self.steps = 0
        self.max_steps_seen = 0
        self.n_sites = 0
        self.site_text: list[str] = []   # source of each test, by site id
        tree = ast.parse(prog.source)
        tree = _Instrumenter(self).visit(tree)
        ast.fix_missing_locations(tree)
        source = ast.unparse(tree) + "\n"
        filename = f"<vmapper-generated-{prog.seed}-instrumented>"
        inner = _exec_source(prog, source, filename, {
            "__chk": self._check_value, "__var": self._check_var,
            "__step": self._step, "__br": self._branch})
        kind = prog.return_kind

        def fn(*args):
            self.steps = 0
            result = inner(*args)
            self.max_steps_seen = max(self.max_steps_seen, self.steps)
            _check_return(result, kind)
            return result
        self.fn = fn

    @staticmethod
    def _check_value(v):
        if isinstance(v, bool):
            raise AssertionError(f"bool {v!r} used as a number")
        if isinstance(v, int):
            if abs(v) > EXPR_LIMIT:
                raise AssertionError(f"int {v} exceeds EXPR_LIMIT")
        elif isinstance(v, float):
            if not math.isfinite(v) or abs(v) > EXPR_LIMIT:
                raise AssertionError(f"float {v!r} exceeds EXPR_LIMIT")
        return v

    def _check_var(self, name, v):
        expected = _EXPECTED_TYPES.get(name, int)   # counters and targets: int
        if type(v) is not expected:
            raise AssertionError(f"{name} is {type(v).__name__}, expected {expected.__name__}")
        return self._check_value(v)

    def _step(self):
        self.steps += 1
        if self.steps > MAX_LOOP_STEPS:
            raise AssertionError(f"more than {MAX_LOOP_STEPS} loop trips in one call")

    def _branch(self, site, value):
        self.outcomes.setdefault(site, set()).add(bool(value))
        return value

    def branch_coverage(self) -> tuple[int, int]:
        """(sites whose test went both ways, sites in the program)."""
        both = sum(1 for s in range(self.n_sites) if len(self.outcomes.get(s, ())) == 2)
        return both, self.n_sites


def _check_return(result, kind: str) -> None:
    expected = {"int": int, "float": float}
    if kind == "tuple":
        ok = (type(result) is tuple and len(result) == 2
              and type(result[0]) is int and type(result[1]) is float)
    else:
        ok = type(result) is expected[kind]
    if not ok:
        raise AssertionError(f"return value {result!r} is not of kind {kind!r}")


class _Instrumenter(ast.NodeTransformer):
    """Rewrites a generated program to call the hooks of a ProgramProbe."""

    def __init__(self, probe: ProgramProbe):
        self.probe = probe

    @staticmethod
    def _call(name: str, *args: ast.expr) -> ast.Call:
        return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])

    def _site(self, test: ast.expr, text: str) -> ast.Call:
        site = self.probe.n_sites
        self.probe.n_sites += 1
        self.probe.site_text.append(text)
        return self._call("__br", ast.Constant(site), test)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id not in ("math", "abs", "min", "max",
                                                               "int", "float", "range"):
            return self._call("__var", ast.Constant(node.id), node)
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        return self._call("__chk", node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        return node if isinstance(node.op, ast.Not) else self._call("__chk", node)

    def visit_Call(self, node):
        self.generic_visit(node)   # callees (abs, math.sqrt, ...) are not wrapped
        return self._call("__chk", node)

    def visit_IfExp(self, node):
        text = ast.unparse(node.test)
        self.generic_visit(node)
        node.test = self._site(node.test, text)
        return node

    def visit_If(self, node):
        text = ast.unparse(node.test)
        self.generic_visit(node)
        node.test = self._site(node.test, text)
        return node

    def visit_While(self, node):
        text = ast.unparse(node.test)
        self.generic_visit(node)
        if not (isinstance(node.test, ast.Constant) and node.test.value is True):
            node.test = self._site(node.test, text)
        node.body.insert(0, ast.Expr(self._call("__step")))
        return node

    def visit_For(self, node):
        self.generic_visit(node)
        node.body.insert(0, ast.Expr(self._call("__step")))
        return node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        # Check the updated value right away.
        check = ast.Expr(self._call("__var", ast.Constant(node.target.id),
                                    ast.Name(id=node.target.id, ctx=ast.Load())))
        return [node, check]


def instrument_program(prog: GeneratedProgram) -> ProgramProbe:
    """Compile a checked variant of ``prog``; see :class:`ProgramProbe`."""
    return ProgramProbe(prog)


# ---------------------------------------------------------------------------
# Which constructs a program uses
# ---------------------------------------------------------------------------

def program_features(source: str) -> set[str]:
    """Names of the constructs ``source`` uses, found by parsing it.

    ``while``, ``while_true``, ``for``, ``range_step``, ``break``,
    ``continue``, ``return_in_loop``, ``early_return`` (a ``return`` before
    the last statement), ``if``, ``if_else``, ``if_elif``, ``ifexp``,
    ``and_or``, ``not``, ``truthiness`` (a bare int/float tested),
    ``augassign``, ``min_max``, ``abs``, ``sqrt``, ``floor``, ``int_conv``,
    ``float_conv``, ``floordiv``, ``mod``, ``true_div``, ``tuple_return``.
    """
    tree = ast.parse(source)
    func = tree.body[0]
    found: set[str] = set()
    calls = {"min": "min_max", "max": "min_max", "abs": "abs", "int": "int_conv",
             "float": "float_conv", "sqrt": "sqrt", "floor": "floor"}

    def visit(node: ast.AST, in_loop: bool) -> None:
        if isinstance(node, ast.While):
            is_true = isinstance(node.test, ast.Constant) and node.test.value is True
            found.add("while_true" if is_true else "while")
        elif isinstance(node, ast.For):
            found.add("for")
            if len(node.iter.args) == 3:
                found.add("range_step")
        elif isinstance(node, ast.Break):
            found.add("break")
        elif isinstance(node, ast.Continue):
            found.add("continue")
        elif isinstance(node, ast.Return):
            if in_loop:
                found.add("return_in_loop")
            if isinstance(node.value, ast.Tuple):
                found.add("tuple_return")
        elif isinstance(node, ast.If):
            found.add("if")
            if node.orelse:
                is_elif = len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If)
                found.add("if_elif" if is_elif else "if_else")
        elif isinstance(node, ast.IfExp):
            found.add("ifexp")
        elif isinstance(node, ast.BoolOp):
            found.add("and_or")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            found.add("not")
        elif isinstance(node, ast.AugAssign):
            found.add("augassign")
        elif isinstance(node, ast.BinOp):
            op = {ast.FloorDiv: "floordiv", ast.Mod: "mod", ast.Div: "true_div"}.get(type(node.op))
            if op:
                found.add(op)
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in calls:
                found.add(calls[name])
        tests = []
        if isinstance(node, (ast.If, ast.While, ast.IfExp)):
            tests.append(node.test)
        if isinstance(node, ast.BoolOp):
            tests.extend(node.values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            tests.append(node.operand)
        if any(not isinstance(t, (ast.Compare, ast.BoolOp, ast.Constant)) and
               not (isinstance(t, ast.UnaryOp) and isinstance(t.op, ast.Not)) for t in tests):
            found.add("truthiness")
        for child in ast.iter_child_nodes(node):
            visit(child, in_loop or isinstance(node, (ast.For, ast.While)))

    for index, stmt in enumerate(func.body):
        visit(stmt, False)
        if index < len(func.body) - 1 and any(isinstance(n, ast.Return) for n in ast.walk(stmt)):
            found.add("early_return")
    return found


if __name__ == "__main__":   # pragma: no cover - manual inspection helper
    import sys
    for arg in sys.argv[1:] or ["0"]:
        program = generate_program(int(arg))
        print(f"# seed {arg}: {' '.join(sorted(program_features(program.source)))}")
        print(program.source)
