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
:func:`shrink_failure` reduces a failing program and batch to a small
reproducer.

From the command line::

    python -m vmapper.testing.program_generator 17 18          # print programs
    python -m vmapper.testing.program_generator --shrink 169 --large --batch 64
"""
from __future__ import annotations

import ast
import linecache
import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = [
    "GeneratedProgram", "generate_program", "compile_program",
    "run_per_sample", "instrument_program", "ProgramProbe",
    "program_features", "shrink_failure", "EXPR_LIMIT", "VAR_LIMIT", "MAX_LOOP_STEPS",
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
# Shrinking a failure to a small reproducer
# ---------------------------------------------------------------------------

# Loop counters (``n3``): stepping and testing them inside a ``while`` is what
# makes the loop terminate, so shrinking never removes those statements.
_COUNTER = re.compile(r"\bn\d+\b")


def _single_edits(tree: ast.Module):
    """Every one-statement simplification of ``tree``: (node, field, new body).

    A statement is deleted, or a compound statement replaced by its body or
    its ``else`` branch.  In a ``while`` body, the counter statements
    (``n3 += 1``, the ``if n3 > ...: break`` of ``while True``) and the inside
    of that exit test are left alone.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Module) or (
                isinstance(node, ast.If) and _COUNTER.search(ast.unparse(node.test))):
            continue
        for field in ("body", "orelse"):
            body = getattr(node, field, None)
            if not (isinstance(body, list) and body and isinstance(body[0], ast.stmt)):
                continue
            for k, stmt in enumerate(body):
                head = ast.unparse(stmt).split("\n", 1)[0]
                if (isinstance(node, ast.While) and not isinstance(stmt, ast.While)
                        and _COUNTER.search(head)):
                    continue
                rest = body[:k] + body[k + 1:]
                yield node, field, rest or ([] if field == "orelse" else [ast.Pass()])
                if isinstance(stmt, (ast.If, ast.For, ast.While)):
                    yield node, field, body[:k] + stmt.body + body[k + 1:]
                    if stmt.orelse:
                        yield node, field, body[:k] + stmt.orelse + body[k + 1:]


def shrink_failure(source: str, args, fails: Callable, *, max_checks: int = 3000):
    """Greedily reduce a failing program and batch; returns ``(source, args)``.

    ``fails(fn, args)`` says whether the failure of interest still happens
    (for instance: ``check_batching(fn, args)`` raises AssertionError); an
    exception out of it counts as "no".  Lanes are dropped first (halves,
    quarters, ... single lanes), then statements one at a time (see
    :func:`_single_edits`; an edit is kept when the program still fails and
    got shorter), then lanes again.  Loop counters are never touched, so every
    candidate still terminates.  At most ``max_checks`` calls of ``fails``.
    The result is re-printed by :func:`ast.unparse` (4-space indented).
    """
    checks = 0

    def still_fails(src, lane_args) -> bool:
        nonlocal checks
        if checks >= max_checks:
            return False
        checks += 1
        filename = f"<vmapper-shrink-{checks}>"
        linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        try:
            namespace = {"math": math, "__name__": "vmapper_shrink"}
            exec(compile(src, filename, "exec"), namespace)
            return bool(fails(namespace[FUNC_NAME], lane_args))
        except Exception:   # SyntaxError (break outside a loop), NameError, ...
            return False
        finally:
            linecache.cache.pop(filename, None)

    def shrink_lanes(src, lane_args):
        lanes = list(range(len(lane_args[0])))
        chunk = len(lanes) // 2
        while chunk >= 1:
            i = 0
            while i < len(lanes):
                trial = lanes[:i] + lanes[i + chunk:]
                if trial and still_fails(src, tuple(np.asarray(a)[trial] for a in lane_args)):
                    lanes = trial
                else:
                    i += chunk
            chunk //= 2
        return tuple(np.asarray(a)[lanes] for a in lane_args)

    if not still_fails(source, args):
        raise ValueError("the program does not fail on these arguments")
    args = shrink_lanes(source, args)
    changed = True
    while changed and checks < max_checks:
        # One pass over the edits; repeated while it helps, because a deletion
        # can enable an earlier one (``n = 0`` once ``n += 1`` is gone).
        changed, index = False, 0
        while checks < max_checks:
            tree = ast.parse(source)
            edits = list(_single_edits(tree))
            if index >= len(edits):
                break
            node, field, new_body = edits[index]
            setattr(node, field, new_body)
            candidate = ast.unparse(tree) + "\n"
            if len(candidate) < len(source) and still_fails(candidate, args):
                source, changed = candidate, True   # the edits shifted: same index again
            else:
                index += 1
    return source, shrink_lanes(source, args)


def _main(argv=None) -> None:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m vmapper.testing.program_generator",
                                     description="Print generated programs, or shrink a failing one.")
    parser.add_argument("seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--large", action="store_true", help="max_depth=4, max_stmts=8")
    parser.add_argument("--shrink", action="store_true",
                        help="run check_batching on the seed's batch and shrink the failure")
    parser.add_argument("--batch", type=int, default=64, help="batch size for --shrink")
    parser.add_argument("--backend", default=None, help="vmapper backend for --shrink")
    opts = parser.parse_args(argv)
    config = {"max_depth": 4, "max_stmts": 8} if opts.large else {}
    for seed in opts.seeds:
        program = generate_program(seed, **config)
        if not opts.shrink:
            print(f"# seed {seed}: {' '.join(sorted(program_features(program.source)))}")
            print(program.source)
            continue
        from . import check_batching
        kwargs = {"backend": opts.backend} if opts.backend else {}
        args = program.make_args(np.random.default_rng(seed), opts.batch)
        try:
            check_batching(compile_program(program), args, **kwargs)
        except Exception as exc:   # the kind of failure to keep while shrinking
            kind = type(exc)
            print(f"# seed {seed}: {kind.__name__}: {str(exc).splitlines()[0]}")
        else:
            print(f"# seed {seed}: no failure")
            continue

        def fails(fn, lane_args):
            try:
                check_batching(fn, lane_args, **kwargs)
            except kind:
                return True
            return False
        source, args = shrink_failure(program.source, args, fails)
        print(source)
        print("args = (" + ", ".join(f"np.array({a.tolist()!r})" for a in args) + ")")


if __name__ != "__main__":
    # Probing tools live in their own module; re-exported for existing imports.
    from .program_probe import (  # noqa: E402,F401
        ProgramProbe, instrument_program, program_features)
else:   # pragma: no cover - command-line helper
    # Run the copy imported under the module's own name: program_probe imports
    # that name, and importing it from this __main__ copy would be circular.
    from vmapper.testing.program_generator import _main as _module_main
    _module_main()
