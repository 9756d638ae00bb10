"""Lockstep kernels (vmapper.kernels.codegen_lockstep*) against per-sample Python and the scalar kernel.

With the lockstep variant forced (``compile_kernel(..., lockstep=True)`` or
``$VMAPPER_LOCKSTEP=1`` for the runtime), every test requires what the scalar
kernel guarantees: bitwise equal results and dtypes, the same lane error code
on the smallest failing lane (also when that lane fails later in time than
another, sits in a later chunk, the other task or the tail), ``max_iters``
per lane and loop entry, tuple results, dtype changes on CFG edges, uniform
arguments, and batch sizes around the chunk width.  100 generated programs
are compiled and checked in two worker processes that run while the other
tests do, since compiling dominates (about a second per kernel); everything
else shares a few kernels.  ``VMAPPER_LOCKSTEP_PROGRAMS`` sets how many
programs.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import vmapper  # noqa: E402
from vmapper import LaneError, NonTerminationError  # noqa: E402
from vmapper.program import get_program  # noqa: E402
from vmapper.testing import check_batching  # noqa: E402
from vmapper.testing.programs import collatz_steps, escape_time  # noqa: E402
from vmapper.kernels.codegen import compile_kernel  # noqa: E402
from vmapper.kernels.codegen_lockstep_policy import WIDTH, lockstep_width  # noqa: E402

SIZES = (1, 7, WIDTH - 1, WIDTH + 1, 1000)
N_GENERATED = int(os.environ.get("VMAPPER_LOCKSTEP_PROGRAMS", "100"))
RNG = np.random.default_rng(20240612)


@pytest.fixture
def lockstep_env(monkeypatch):
    monkeypatch.setenv("VMAPPER_LOCKSTEP", "1")


def specs(args, uniform=()):
    return [("uniform", a) if j in uniform else ("lanes", np.asarray(a).dtype, False)
            for j, a in enumerate(args)]


def both_kernels(fn, args, uniform=(), max_iters=None, exact_math=False):
    ir = get_program(fn).ir
    ls = compile_kernel(ir, specs(args, uniform), exact_math=exact_math, max_iters=max_iters, lockstep=True)
    sc = compile_kernel(ir, specs(args, uniform), exact_math=exact_math, max_iters=max_iters, lockstep=False)
    assert ls.variant == "lockstep" and sc.variant == "scalar"
    return ls, sc


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint8).reshape(a.shape + (a.itemsize,))


def assert_same(got, want):
    gots = got if isinstance(got, tuple) else (got,)
    wants = want if isinstance(want, tuple) else (want,)
    assert len(gots) == len(wants)
    for g, w in zip(gots, wants):
        assert g.dtype == w.dtype and g.shape == w.shape
        bad = np.flatnonzero(~np.all(bits(g) == bits(w), axis=-1))
        assert bad.size == 0, f"lanes {bad[:8]}: lockstep {g[bad[:8]]} vs scalar {w[bad[:8]]}"


def run_both(fn, args, uniform=(), max_iters=None, exact_math=False):
    """Both kernels on ``args``: equal results and error; returns (lockstep kernel, its result)."""
    ls, sc = both_kernels(fn, args, uniform, max_iters, exact_math)
    n = next(len(a) for j, a in enumerate(args) if j not in uniform)
    res_l, lane_l, code_l = ls(list(args), n)
    res_s, lane_s, code_s = sc(list(args), n)
    assert lane_l == lane_s, (lane_l, lane_s)
    if lane_s >= 0:
        assert ls.errors[code_l] == sc.errors[code_s]
    else:
        assert_same(res_l, res_s)
    return ls, (res_l, lane_l, code_l)


# ---- per-sample functions ----------------------------------------------------------------------

def euler(y0, T, theta):
    y = y0
    t = 0.0
    while t < T:
        y = y + 0.01 * (-theta * y + math.sin(t))
        t = t + 0.01
    return y


def failing(kind, a, x):
    """After a loop of ``a`` trips, the lane fails as ``kind`` says (0: it does not)."""
    s = 0
    i = 0
    while i < a:          # a lane with a large ``a`` fails after the others
        s += i + 1
        i += 1
    if kind == 1:
        return s // (a - a)                    # ZeroDivisionError
    if kind == 2:
        return int(math.sqrt(x - 1e9))         # ValueError: math domain error
    if kind == 3:
        assert x > 1e9, "small x"              # AssertionError
    if kind == 4:
        if x > 1e9:
            y = 1
        return y                               # UnboundLocalError
    if kind == 5:
        for t in range(0, a, a - a):           # ValueError: range() step 0
            s += t
    return s


def spin(a, x):
    total = 0
    for i in range(3):
        j = 0
        while j < a + i:  # entry i takes a + i trips
            j += 1
            total += j
    while x % 2 == 1:     # odd x: never ends
        x = x + 0
    return total + x


def mixed(a, x, k):
    """Tuple result, a variable int on one path and float on another, a uniform argument,
    sin/cos of float32 and of huge float64 arguments, early return and break."""
    v = a * 2
    if x > 0.0:
        v = x * 0.5
    w = np.float32(x) * np.float32(0.25)
    s = 0.0
    for i in range(a % 9):
        s = s + math.cos(x * k + i) + math.sin(x * 1e7)
        w = w + np.sin(w)
        if s > 3.0:
            break
        if i == 7:
            return (a - 1, s + v, w)
    return (a, s + v, w)


def short_constant_loop(x):
    s = 0.0
    for k in range(4):       # LLVM unrolls it: the scalar kernel vectorizes
        s = s * x + x * 0.5 - x * x + s * 0.25 + (x - 1.0) * (x + 1.0) + 1.0
    return s


def branchy(x):
    if x > 0.0:
        y = math.exp(-x) * math.sin(x) + math.log(1.0 + x)
    else:
        y = math.cos(x) * math.exp(x) - x * x * x
    return y


def straight(x):
    return math.tanh(x * 0.5) + math.exp(-x * x)


# ---- the vmath fast path -----------------------------------------------------------------------

def test_small_argument_sin_cos_equal_vmath():
    from vmapper.kernels import vmath
    from vmapper.kernels import codegen_lockstep_rt as rt

    @numba.njit
    def apply(x, y):
        out = np.empty((4, x.size))
        out32 = np.empty((4, y.size), np.float32)
        for i in range(x.size):
            out[0, i], out[1, i] = rt.sin_small_f64(x[i]), vmath.sin_f64(x[i])
            out[2, i], out[3, i] = rt.cos_small_f64(x[i]), vmath.cos_f64(x[i])
        for i in range(y.size):
            out32[0, i], out32[1, i] = rt.sin_small_f32(y[i]), vmath.sin_f32(y[i])
            out32[2, i], out32[3, i] = rt.cos_small_f32(y[i]), vmath.cos_f32(y[i])
        return out, out32

    n = 200_000
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 2.0 ** 20, -(2.0 ** 20),
               np.nextafter(2.0 ** 20, 0), np.pi / 4, 1e-300]
    x = np.concatenate([RNG.uniform(-2 ** 20, 2 ** 20, n), np.exp(RNG.uniform(-700, 14, n)),
                        RNG.integers(0, 2 ** 63, n).view(np.float64), special])
    with np.errstate(all="ignore"):
        y = np.concatenate([x.astype(np.float32), RNG.integers(0, 2 ** 31, n, dtype=np.int64)
                            .astype(np.uint32).view(np.float32)])
    out, out32 = apply(x, y)
    small = ~(np.abs(x) >= 2.0 ** 20)
    small32 = ~(np.abs(y) >= 2.0 ** 20)
    for o, ok in ((out, small), (out32, small32)):
        for k in (0, 2):
            assert np.array_equal(bits(o[k][ok]), bits(o[k + 1][ok])) or \
                np.array_equal(o[k][ok], o[k + 1][ok], equal_nan=True)


# ---- the program suite and batch sizes ---------------------------------------------------------

@pytest.mark.parametrize("n", SIZES)
def test_collatz(lockstep_env, n):
    x = RNG.integers(1, 5000, n)
    check_batching(collatz_steps, (x,), backend="numba")
    run_both(collatz_steps, [x])


@pytest.mark.parametrize("n", SIZES)
def test_escape_time(lockstep_env, n):
    cr, ci = RNG.uniform(-2.0, 1.0, n), RNG.uniform(-1.5, 1.5, n)
    check_batching(escape_time, (cr, ci), backend="numba")
    run_both(escape_time, [cr, ci, 64], uniform=(2,))


@pytest.mark.parametrize("n", SIZES)
def test_euler_sin_fast_path(lockstep_env, n):
    y0, T = RNG.normal(size=n), RNG.uniform(0.1, 2.0, n)
    # vmath's sin is within an ulp of libm's: per-sample Python to rounding, the scalar kernel bitwise
    check_batching(euler, (y0, T, 0.7), in_axes=(0, 0, None), backend="numba", exact=False, rtol=1e-10)
    run_both(euler, [y0, T, 0.7], uniform=(2,))


@pytest.mark.parametrize("n", SIZES)
def test_tuple_results_edge_casts_uniforms_and_large_trig_arguments(lockstep_env, n):
    a = RNG.integers(-20, 40, n)
    x = RNG.normal(0, 3, n)
    x[::5] = 0.0
    x[1::7] = -0.0
    check_batching(mixed, (a, x, 0.3), in_axes=(0, 0, None), backend="numba", exact=False, rtol=1e-5)
    run_both(mixed, [a, x, 0.3], uniform=(2,))


def test_functions_without_loops(lockstep_env):
    x = RNG.normal(0, 2, 1000)
    x[::9] = 0.0
    for fn in (branchy, short_constant_loop):
        check_batching(fn, (x,), backend="numba", exact=False, rtol=1e-12)
        run_both(fn, [x])


def test_exact_math_kernels_are_lockstep_too():
    x = RNG.normal(size=300)
    ls, _ = run_both(euler, [x, np.abs(x), 0.7], uniform=(2,), exact_math=True)
    assert ls.variant == "lockstep"


# ---- lane errors ----------------------------------------------------------------------------------

ERRORS = {1: ZeroDivisionError, 2: ValueError, 3: AssertionError, 4: UnboundLocalError, 5: ValueError}


@pytest.mark.parametrize("where", ["late-small-lane", "later-chunk", "tail", "second-task", "none"])
def test_smallest_failing_lane(where):
    n = 5000 if where == "second-task" else 1000
    kind = np.zeros(n, np.int64)
    a, x = RNG.integers(0, 30, n), RNG.uniform(0.0, 10.0, n)
    if where == "late-small-lane":
        kind[5], a[5] = 1, 400       # fails after hundreds of trips...
        kind[900], a[900] = 2, 0     # ...lane 900 at once; lane 5 is the one to report
        want = 5
    elif where == "later-chunk":
        kind[3 * WIDTH + 3] = 3
        kind[7 * WIDTH + 1] = 1
        want = 3 * WIDTH + 3
    elif where == "tail":
        kind[n - 1] = 4
        want = n - 1
    elif where == "second-task":     # (with 2+ threads the lanes split into two tasks)
        kind[n - 10] = 5
        kind[n - 3] = 1
        want = n - 10
    else:
        want = -1
    ls, (_, lane, code) = run_both(failing, [kind, a, x])
    assert lane == want
    if want >= 0:
        assert ls.errors[code][1] is ERRORS[kind[want]]


@pytest.mark.parametrize("k", sorted(ERRORS))
def test_every_error_kind_through_the_runtime(lockstep_env, k):
    kind = np.zeros(300, np.int64)
    a, x = RNG.integers(0, 30, 300), RNG.uniform(0.0, 10.0, 300)
    kind[[123, 250]] = k
    ls, (_, lane, code) = run_both(failing, [kind, a, x])
    assert lane == 123 and ls.errors[code][1] is ERRORS[k]
    with pytest.raises(LaneError) as info:
        vmapper.batched(failing, backend="numba")(kind, a, x)
    assert int(np.min(info.value.lanes)) == 123 and info.value.python_error is ERRORS[k]


def test_max_iters_per_lane_and_loop_entry(lockstep_env):
    a, x = np.array([3, 6, 2, 0, 6] * 200), np.arange(1000) * 2   # at most 8 trips per loop entry
    ls, (res, lane, _) = run_both(spin, [a, x], max_iters=8)
    assert lane == -1
    check_batching(spin, (a, x), backend="numba", max_iters=8)
    a[[70, 601]] = 7                  # the third entry of the inner loop takes 9 trips
    x[[513, 900]] = 7                 # odd: the second loop never ends
    ls, (_, lane, code) = run_both(spin, [a, x], max_iters=8)
    assert lane == 70 and ls.errors[code][1] is NonTerminationError
    a[70] = 3
    with pytest.raises(NonTerminationError) as info:
        vmapper.batched(spin, backend="numba", max_iters=8)(a, x)
    assert int(np.min(info.value.lanes)) == 513


# ---- gradients through a loop ---------------------------------------------------------------------

def test_value_and_grad_through_the_loop(monkeypatch):
    """The dual-number JVP kernel of the Euler loop: lockstep by the policy, against all-scalar."""
    from vmapper.autodiff.forward_mode import jvp_function
    y0, T = RNG.normal(size=3000), RNG.uniform(0.1, 2.0, 3000)
    out = {}
    for flag in ("", "0"):
        monkeypatch.setenv("VMAPPER_LOCKSTEP", flag)
        f = vmapper.batched(euler, in_axes=(0, 0, None), backend="numba")
        out[flag] = vmapper.value_and_grad(f, argnums=(0, 2))(y0, T, 0.7)
    monkeypatch.setenv("VMAPPER_LOCKSTEP", "")
    jvp = compile_kernel(jvp_function(get_program(euler).ir, (0, 2)), specs([y0, T, 0.7], (2,)))
    assert jvp.variant == "lockstep"  # what the first run used
    (v1, (gy1, gth1)), (v0, (gy0, gth0)) = out[""], out["0"]
    np.testing.assert_array_equal(v1, v0)
    np.testing.assert_allclose(gy1, gy0, rtol=1e-15, atol=0)
    np.testing.assert_allclose(gth1, gth0, rtol=1e-13)


# ---- the policy -------------------------------------------------------------------------------------

def test_policy_and_overrides(monkeypatch):
    monkeypatch.delenv("VMAPPER_LOCKSTEP", raising=False)
    f64 = [("lanes", np.dtype(np.float64), False)]
    euler_specs = f64 * 2 + [("uniform", 0.7)]
    assert lockstep_width(get_program(euler).ir, euler_specs, False) == WIDTH   # sin in the loop
    assert lockstep_width(get_program(euler).ir, euler_specs, True) is None     # libm sin
    assert lockstep_width(get_program(escape_time).ir, f64 * 2 + [("uniform", 64)], False) == WIDTH
    collatz = get_program(collatz_steps).ir
    i64 = [("lanes", np.dtype(np.int64), False)]
    assert lockstep_width(collatz, i64, False) is None                          # integer work
    assert lockstep_width(get_program(failing).ir, i64 * 2 + f64, False) is None  # // by a variable
    assert lockstep_width(get_program(short_constant_loop).ir, f64, False) is None
    assert lockstep_width(get_program(branchy).ir, f64, False) == WIDTH         # no loop, branches
    assert lockstep_width(get_program(straight).ir, f64, False) is None          # vectorizes already
    assert lockstep_width(collatz, i64, False, force=True) == WIDTH
    monkeypatch.setenv("VMAPPER_LOCKSTEP", "1")
    assert lockstep_width(collatz, i64, False) == WIDTH
    assert lockstep_width(collatz, i64, False, force=False) is None
    monkeypatch.setenv("VMAPPER_LOCKSTEP", "0")
    assert lockstep_width(get_program(euler).ir, euler_specs, False) is None


# ---- generated programs -------------------------------------------------------------------------

_WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    from vmapper.program import get_program
    from vmapper.kernels import cache
    from vmapper.kernels.codegen import Kernel, compile_kernel
    from vmapper.kernels.codegen_lockstep_policy import WIDTH
    from vmapper.kernels.codegen_source import generate_source
    from vmapper.testing.program_generator import generate_program, compile_program, run_per_sample
    cases, scalar_seeds = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
    SIZES = (1, 7, 63, 65, 200)
    failures = []

    def lockstep_task_kernel(ir, types):
        # the lockstep kernel whatever the policy; at these sizes it runs as one task, so
        # its prange driver is never compiled
        src, meta = generate_source(ir, types, width=WIDTH)
        module, path = cache.load_module(src)
        return Kernel(module, meta, types, None, src, path)

    def column(res, k=None):
        vals = [r if k is None else r[k] for r in res]
        return np.array(vals, dtype=np.int64 if isinstance(vals[0], int) else np.float64)

    for seed, size in cases:
        prog = generate_program(seed, **size)
        fn = compile_program(prog)
        n = SIZES[seed % len(SIZES)]
        args = list(prog.make_args(np.random.default_rng(seed), n))
        types = [("lanes", a.dtype, False) for a in args]
        try:
            k = lockstep_task_kernel(get_program(fn).ir, types)
            got, lane, code = k(args, n)
            assert lane == -1, k.errors.get(code)
            ref = run_per_sample(fn, args)
            wants = (column(ref, 0), column(ref, 1)) if isinstance(ref[0], tuple) else (column(ref),)
            gots = got if isinstance(got, tuple) else (got,)
            if seed in scalar_seeds:
                alt = compile_kernel(get_program(fn).ir, types, lockstep=False)(args, n)[0]
                wants += alt if isinstance(alt, tuple) else (alt,)
                gots += gots
            for w, g in zip(wants, gots):
                assert g.dtype == w.dtype, (g.dtype, w.dtype)
                bad = np.flatnonzero(g.view(np.uint64) != w.view(np.uint64))
                assert bad.size == 0, f"lanes {bad[:5]}: {g[bad[:5]]} vs {w[bad[:5]]}"
        except Exception as exc:
            failures.append(f"seed {seed} ({size or 'default size'}, n={n}): {type(exc).__name__}: {exc}")
    print(json.dumps(failures))
""")


@pytest.fixture(scope="module", autouse=True)
def generated_programs(request):
    """Two processes start compiling and checking the generated programs as soon as this
    module's tests begin (compiling is most of the time; the other tests run meanwhile)."""
    if not any(item.name == "test_generated_programs" for item in request.session.items):
        yield None
        return
    cases = [(seed, {}) for seed in range(N_GENERATED - 1)]
    cases.append((N_GENERATED, {"max_depth": 4, "max_stmts": 8}))   # nests loops three deep
    env = dict(os.environ, VMAPPER_LOCKSTEP="1")
    scalar = json.dumps([0, 1, 2, 3])
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, json.dumps(cases[w::2]), scalar],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for w in range(2)]
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.communicate()


def test_generated_programs(generated_programs):
    """100 generated programs (one of them large), as lockstep kernels: bitwise
    equal to the per-sample Python results, and (4 of them) to the scalar kernel.  (The tests
    above run compile_kernel's own lockstep kernels, prange driver included.)"""
    failures = []
    for p in generated_programs:
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
        failures += json.loads(out.strip().splitlines()[-1])
    assert not failures, "\n".join(failures)
