"""Differential tests on randomly generated per-sample programs.

Each seed gives one function ``prog(a, b, x, y)`` with value-dependent
``if``/``while``/``for``/``break``/``continue``/``return`` (see
:mod:`vmapper.testing.program_generator`).  The main test runs it batched and
per sample and requires bitwise equal results; the other tests check the
generator itself, so that a failure of the main test points at vmapper and
not at an ill-formed program.

Programs come in two sizes: ``default`` (``generate_program``'s defaults) and
``large`` (deeper nesting, longer blocks), and run on the numpy runtime (the
test-suite's pinned backend) plus, for a few seeds, as numba kernels.  A
failure's message ends with the program, its size, batch size and backend;
to reproduce, e.g. for ``test_generated_program_batched[large-seed-N]``::

    from vmapper.testing.program_generator import generate_program, compile_program
    prog = generate_program(N, max_depth=4, max_stmts=8); print(prog.source)
    args = prog.make_args(np.random.default_rng(N), BATCH_SIZES[N % 3])
    vmapper.testing.check_batching(compile_program(prog), args)

(``python -m vmapper.testing.program_generator N`` prints a default-size
program.)  Set ``VMAPPER_GENERATED_PROGRAMS`` to run more (or fewer) seeds of
each size than the default 200.
"""
from __future__ import annotations

import ast
import inspect
import linecache
import math
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from vmapper.testing.program_generator import (
    EXPR_LIMIT, MAX_LOOP_STEPS, compile_program, generate_program, instrument_program,
    program_features, run_per_sample, shrink_failure)

N_PROGRAMS = int(os.environ.get("VMAPPER_GENERATED_PROGRAMS", "200"))
# Program sizes.  Large programs nest loops three deep inside branches more
# often, which is where masking bugs hide (and they are still fast to run).
SIZES = {"default": {}, "large": {"max_depth": 4, "max_stmts": 8}}
CASES = [(size, seed) for size in SIZES for seed in range(N_PROGRAMS)]
# Batch sizes cycle with the seed: 1 (the degenerate batch), 7 (odd, small)
# and 64 (lanes disagree on nearly every branch).
BATCH_SIZES = (1, 7, 64)
# Generated programs that exposed bugs, as shrunk by
# ``python -m vmapper.testing.program_generator --shrink SEED ...`` (stable
# whatever later changes to the generator): id -> (source, args).
REGRESSIONS = {
    # large seed 169, batch 64, numpy runtime: a float updated in a loop that
    # some lanes skip came out with its sign of zero flipped on those lanes
    # (batched -0.0 vs per-sample 0.0).  Smaller still: ``w = 0.0; for t in
    # range(n): w = -w; return w`` with n = [0, 1].
    "large-169-signed-zero-in-loop": ("""\
def prog(a, b, x, y):
    i = 0
    v = y * 0.25
    w = 0.0
    k = i - a
    for t3 in range(k % 3 - 2, i % 6):
        w = -w
        w /= abs(v) + 1.0
    return w
""", ([15, 1], [9, -3], [-7.052279463992555, -3.0], [-4.229570605312441, 3.3726421019728847])),
}
# Seeds also run with backend="numba" (one compiled kernel per program,
# about a second each to compile; the disk cache makes later runs cheap).
NUMBA_SEEDS = range(8)
# Lanes for the per-sample sanity run; enough to hit rare paths.
SANITY_LANES = 1000
# The coverage statistics are always taken over the same 200 seeds so that
# the thresholds do not move with VMAPPER_GENERATED_PROGRAMS.
COVERAGE_SEEDS = range(200)
REQUIRED_FEATURES = ("while", "for", "break", "continue", "return_in_loop",
                     "if_elif", "ifexp", "and_or")


def _seed_id(seed: int) -> str:
    return f"seed-{seed}"


def _case_id(case) -> str:
    size, seed = case
    return f"{size}-seed-{seed}"


def _repro_note(prog, size: str, batch_size: int, backend: str | None = None) -> str:
    kwargs = "".join(f", {k}={v}" for k, v in SIZES[size].items())
    how = f", backend={backend!r}" if backend else ""
    return (f"generated program ({size}, seed {prog.seed}, return kind {prog.return_kind}, "
            f"batch size {batch_size}{how}); reproduce with generate_program({prog.seed}{kwargs}), "
            f"make_args(np.random.default_rng({prog.seed}), {batch_size}) and "
            f"check_batching(compile_program(prog), args{how}):\n{prog.source}")


def _bits(value):
    """A hashable, bit-exact view of a result: floats by their hex form, so
    ``-0.0`` differs from ``0.0``; bools are rejected (never a valid result)."""
    if isinstance(value, tuple):
        return tuple(_bits(v) for v in value)
    if isinstance(value, (bool, np.bool_)):
        raise AssertionError(f"bool result {value!r}")
    if isinstance(value, (float, np.floating)):
        return ("float", float(value).hex())
    if isinstance(value, (int, np.integer)):
        return ("int", int(value))
    raise AssertionError(f"unexpected result type {type(value).__name__}: {value!r}")


# ---------------------------------------------------------------------------
# The differential test: batched vs per sample
# ---------------------------------------------------------------------------

def _check_batching():
    """vmapper.testing.check_batching, or skip while it is not written yet.

    Only a missing attribute skips: an error while importing vmapper.testing
    fails the test.
    """
    import vmapper.testing as vt
    check = getattr(vt, "check_batching", None)
    if check is None:
        pytest.skip("vmapper.testing.check_batching does not exist yet")
    return check


def _run_batched(size: str, seed: int, batch_size: int, **batched_kwargs) -> None:
    check_batching = _check_batching()
    prog = generate_program(seed, **SIZES[size])
    fn = compile_program(prog)
    args = prog.make_args(np.random.default_rng(seed), batch_size)
    try:
        check_batching(fn, args, **batched_kwargs)
    except Exception as exc:
        # Keep the original exception (AssertionError with the oracle's diff,
        # or a vmapper error) and append the program that triggered it.
        exc.add_note(_repro_note(prog, size, batch_size, batched_kwargs.get("backend")))
        raise


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_generated_program_batched(case):
    size, seed = case
    _run_batched(size, seed, BATCH_SIZES[seed % len(BATCH_SIZES)])


def _compile_source(source: str, filename: str):
    """Compile a ``prog`` from text, readable by inspect.getsource."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"math": math}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["prog"]


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_generated_program_regressions(name):
    source, columns = REGRESSIONS[name]
    fn = _compile_source(source, f"<vmapper-regression-{name}>")
    args = tuple(np.array(col, dtype=np.int64 if i < 2 else np.float64)
                 for i, col in enumerate(columns))
    try:
        _check_batching()(fn, args)
    except Exception as exc:
        exc.add_note(f"regression {name}:\n{source}")
        raise


@pytest.mark.parametrize("seed", NUMBA_SEEDS, ids=_seed_id)
def test_generated_program_batched_numba(seed):
    """The numba backend compiles each program into one kernel: a second,
    independent implementation of the same semantics."""
    pytest.importorskip("numba")
    _run_batched("default", seed, 64, backend="numba")


# ---------------------------------------------------------------------------
# The generator's programs are valid per-sample programs
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_generated_programs_run_per_sample(case):
    """Runs per sample on 1000 lanes, quickly, and within the guarantees.

    The instrumented run asserts, on every evaluation, that no value exceeds
    EXPR_LIMIT (so int64 cannot overflow and floats stay finite), that every
    variable keeps its type, that loops stop within MAX_LOOP_STEPS trips, and
    that the result has the program's return kind.  It runs first so a
    generator bug that made a loop endless fails instead of hanging.  Then
    the plain function runs twice: with Python scalars (the reference
    semantics) and with numpy scalars under ``np.errstate(all="raise")``
    (numpy's semantics, which the batched runtime builds on); the two must
    agree bitwise, which rules out programs whose per-sample result depends on
    arbitrary-precision ints or other Python-only behaviour.
    """
    size, seed = case
    prog = generate_program(seed, **SIZES[size])
    args = prog.make_args(np.random.default_rng(seed), SANITY_LANES)
    probe = instrument_program(prog)
    try:
        checked = run_per_sample(probe.fn, args)
    except Exception as exc:
        exc.add_note(_repro_note(prog, size, SANITY_LANES))
        raise
    assert probe.max_steps_seen <= MAX_LOOP_STEPS

    fn = compile_program(prog)
    reference = run_per_sample(fn, args)
    with np.errstate(all="raise"):
        with_numpy = [fn(*(arg[lane] for arg in args)) for lane in range(SANITY_LANES)]
    ref_bits = [_bits(r) for r in reference]
    assert [_bits(r) for r in checked] == ref_bits
    for lane, (r, n) in enumerate(zip(ref_bits, (_bits(r) for r in with_numpy))):
        assert r == n, (f"lane {lane}: Python scalars give {r}, numpy scalars {n}\n"
                        + _repro_note(prog, size, SANITY_LANES))


def test_generated_branches_go_both_ways():
    """Across the programs, most tests see both outcomes on a 256-lane batch.

    Guards against argument distributions or conditions that make branches
    constant (which would leave the batched control flow untested).
    """
    both = sites = 0
    for seed in COVERAGE_SEEDS:
        prog = generate_program(seed)
        probe = instrument_program(prog)
        run_per_sample(probe.fn, prog.make_args(np.random.default_rng(seed), 256))
        b, n = probe.branch_coverage()
        both += b
        sites += n
    assert sites > 1000
    assert both / sites >= 0.45, f"only {both}/{sites} tests went both ways"


def test_generated_source_is_well_formed():
    """Compiles, 4-space indented, ``def prog(a, b, x, y)``, every path returns."""
    def always_returns(body) -> bool:
        last = body[-1]
        if isinstance(last, ast.Return):
            return True
        return (isinstance(last, ast.If) and bool(last.orelse)
                and always_returns(last.body) and always_returns(last.orelse))

    for seed in COVERAGE_SEEDS:
        prog = generate_program(seed)
        tree = ast.parse(prog.source)
        assert len(tree.body) == 1 and isinstance(tree.body[0], ast.FunctionDef)
        func = tree.body[0]
        assert func.name == prog.func_name == "prog"
        assert [a.arg for a in func.args.args] == ["a", "b", "x", "y"]
        assert always_returns(func.body), prog.source
        for line in prog.source.splitlines():
            indent = len(line) - len(line.lstrip(" "))
            assert "\t" not in line and indent % 4 == 0, line
        compile(prog.source, prog.filename, "exec")


@pytest.mark.parametrize("max_depth", [1, 2, 4])
def test_generator_respects_max_depth(max_depth):
    def nesting(node, is_elif=False) -> int:
        # An ``elif`` is an If in its parent's ``orelse``: same level.
        elif_child = (node.orelse[0] if isinstance(node, ast.If) and len(node.orelse) == 1
                      and isinstance(node.orelse[0], ast.If) else None)
        inner = max((nesting(c, c is elif_child) for c in ast.iter_child_nodes(node)), default=0)
        own = isinstance(node, (ast.If, ast.For, ast.While)) and not is_elif
        return inner + own

    for seed in range(50):
        prog = generate_program(seed, max_depth=max_depth, max_stmts=4)
        assert nesting(ast.parse(prog.source)) <= max_depth, prog.source
        fn = compile_program(prog)
        run_per_sample(fn, prog.make_args(np.random.default_rng(seed), 50))


def test_getsource_works_on_compiled_programs():
    """vmapper's compiler reads the function back with inspect.getsource."""
    for seed in (0, 1, 17, 199):
        prog = generate_program(seed)
        fn = compile_program(prog)
        assert fn.__name__ == "prog"
        assert fn.__code__.co_filename == prog.filename == f"<vmapper-generated-{seed}>"
        assert inspect.getsource(fn) == prog.source
        # checkcache() must not evict the entry (it has no file on disk).
        linecache.checkcache()
        assert inspect.getsource(fn) == prog.source
        lines, first = inspect.getsourcelines(fn)
        assert "".join(lines) == prog.source and first == 1
        assert fn.__globals__["math"].sqrt(4.0) == 2.0


# ---------------------------------------------------------------------------
# Determinism and coverage of the generator
# ---------------------------------------------------------------------------

def test_generator_is_deterministic():
    for seed in range(50):
        assert generate_program(seed) == generate_program(seed)
    sources = {generate_program(seed).source for seed in COVERAGE_SEEDS}
    assert len(sources) == len(COVERAGE_SEEDS)
    # Same arguments from the same numpy seed.
    prog = generate_program(3)
    first = prog.make_args(np.random.default_rng(5), 64)
    second = prog.make_args(np.random.default_rng(5), 64)
    for x, y in zip(first, second):
        assert x.tobytes() == y.tobytes()


def test_generator_is_deterministic_across_processes():
    """No dependence on hash randomisation or other per-process state."""
    code = ("import hashlib\n"
            "from vmapper.testing.program_generator import generate_program\n"
            "text = ''.join(generate_program(s).source for s in range(30))\n"
            "print(hashlib.sha256(text.encode()).hexdigest())\n")
    import hashlib
    here = hashlib.sha256("".join(generate_program(s).source
                                  for s in range(30)).encode()).hexdigest()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONHASHSEED="12345",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, cwd=root)
    assert out.stdout.strip() == here


def test_make_args_mixes_signs_zeros_and_small_ints():
    prog = generate_program(0)
    a, b, x, y = prog.make_args(np.random.default_rng(0), 1000)
    for ints in (a, b):
        assert ints.dtype == np.int64 and ints.shape == (1000,)
        assert ints.min() < 0 < ints.max() and (ints == 0).any()
        assert np.abs(ints).max() <= 20
    for floats in (x, y):
        assert floats.dtype == np.float64 and floats.shape == (1000,)
        assert np.isfinite(floats).all() and np.abs(floats).max() <= 50.0
        zeros = floats == 0.0
        assert zeros.mean() > 0.05
        assert np.signbit(floats[zeros]).any() and not np.signbit(floats[zeros]).all()
        nonzero_ints = (floats == np.round(floats)) & ~zeros
        assert nonzero_ints.mean() > 0.05
        assert (floats < 0).any() and (floats > 0).any()
    assert prog.make_args(np.random.default_rng(0), 1)[0].shape == (1,)


def test_generator_covers_every_construct():
    """Each required construct appears in at least 10% of 200 programs."""
    counts = Counter()
    for seed in COVERAGE_SEEDS:
        counts.update(program_features(generate_program(seed).source))
    kinds = Counter(generate_program(seed).return_kind for seed in COVERAGE_SEEDS)
    needed = len(COVERAGE_SEEDS) // 10
    report = ", ".join(f"{name}={counts[name]}" for name in sorted(counts))
    missing = [name for name in REQUIRED_FEATURES if counts[name] < needed]
    assert not missing, f"constructs in < 10% of programs: {missing} ({report})"
    # Also exercised, if less often: while True, range steps, tuples, ...
    for name in ("while_true", "range_step", "tuple_return", "truthiness", "early_return",
                 "not", "augassign", "min_max", "sqrt", "floor", "int_conv", "float_conv",
                 "floordiv", "mod", "true_div", "if_else"):
        assert counts[name] >= needed // 2, f"{name} too rare ({report})"
    assert min(kinds[k] for k in ("int", "float", "tuple")) >= needed, kinds


def test_expr_limit_is_exact_for_int64_and_float64():
    """The premise of the bound analysis: EXPR_LIMIT-sized values are exact
    in int64 and convert to float64 and back without rounding."""
    assert EXPR_LIMIT < 2 ** 53 < np.iinfo(np.int64).max
    assert int(float(EXPR_LIMIT)) == EXPR_LIMIT


def test_shrink_failure_keeps_the_failure():
    """The shrinker on a stand-in bug: "fails" while some lane returns < 0."""
    def fails(fn, args):
        return any(r < 0 for r in run_per_sample(fn, args))

    for seed in COVERAGE_SEEDS:   # a program with loops and a negative result
        prog = generate_program(seed)
        features = program_features(prog.source)
        args = prog.make_args(np.random.default_rng(seed), 32)
        if (prog.return_kind != "tuple" and {"while", "for", "if"} <= features
                and fails(compile_program(prog), args)):
            break
    source, small_args = shrink_failure(prog.source, args, fails)
    assert len(source) < len(prog.source) and len(small_args[0]) == 1
    fn = _compile_source(source, "<vmapper-shrunk>")
    assert fails(fn, small_args)
    assert inspect.getsource(fn) == source
