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

def generate_program(seed: int, *, max_depth: int = 3, max_stmts: int = 6) -> GeneratedProgram:
    """Generate the program for ``seed`` (deterministic: same seed, same text).

    ``max_depth`` bounds the nesting of ``if``/``while``/``for`` statements
    (early-exit guards ``if c: break`` included); ``max_stmts`` the number of
    random statements of the top-level block (nested blocks get fewer;
    wrapping statements that keep values in range and the final ``return``
    come on top).
    """
    from ._program_builder import _Generator
    gen = _Generator(seed, max_depth, max_stmts)
    source = gen.program()
    return GeneratedProgram(seed=seed, source=source, name=f"generated-{seed}",
                            return_kind=gen.return_kind)


# ---------------------------------------------------------------------------
# Instrumented runs: check the generator's guarantees at run time
# ---------------------------------------------------------------------------



# Probing tools live in their own module; re-exported for existing imports.
from .program_probe import (  # noqa: E402,F401
    ProgramProbe, instrument_program, program_features)
