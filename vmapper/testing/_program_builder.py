"""The random program builder behind :func:`vmapper.testing.program_generator.generate_program`."""
from __future__ import annotations
import math
import random
import re
from typing import NamedTuple

from .program_generator import (
    P_IFEXP, P_OR, P_AND, P_NOT, P_CMP, P_ADD, P_MUL, P_UNARY, P_ATOM, EXPR_LIMIT, VAR_LIMIT, ASSIGN_LIMIT, INT_ARG_BOUND, FLOAT_ARG_BOUND, INT_VARS, FLOAT_VARS, INT_PARAMS, FLOAT_PARAMS, FUNC_NAME, _FLOAT_CONSTS, _WRAP_MODULI, _CMP_OPS)


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
