"""The numba kernel generator (vmapper.kernels.codegen) against the numpy runtime.

Every test compiles a per-sample function of this file (after the pass
pipeline) into one kernel and compares its result with ``vmapper.batched`` on
the same inputs: same dtype, same bits (transcendental functions within a
few ulp).  The reference is always the numpy runtime (``backend="numpy"``):
vmapper's default backend would run these very kernels.  Failing lanes must report the smallest failing lane and an error
code naming the line, the Python exception type and the message.

Compiles take about a second each; kernels are cached on disk (the default
cache directory, or $VMAPPER_CACHE_DIR), so later runs are faster.  Set
VMAPPER_KERNEL_PROGRAMS to compile more generated programs than the default.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vmapper
from vmapper import LaneError, NonTerminationError
from vmapper.program import get_program
from vmapper.testing.program_generator import compile_program, generate_program

numba = pytest.importorskip("numba")

from vmapper.kernels import cache  # noqa: E402
from vmapper.kernels.codegen import compile_kernel, kernel_eligible  # noqa: E402
from vmapper.kernels.typing import KernelUnsupported  # noqa: E402

N_GENERATED = int(os.environ.get("VMAPPER_KERNEL_PROGRAMS", "10"))


# ---- helpers -----------------------------------------------------------------------------------

def arg_types(args, uniform=()):
    return [("uniform", a) if j in uniform else ("lanes", np.asarray(a).dtype, False)
            for j, a in enumerate(args)]


def kernel_for(fn, *args, uniform=(), exact_math=True, max_iters=None):
    ir = get_program(fn).ir
    assert kernel_eligible(ir) is None, kernel_eligible(ir)
    return compile_kernel(ir, arg_types(args, uniform), exact_math=exact_math, max_iters=max_iters)


def run_kernel(fn, *args, uniform=(), exact_math=True, max_iters=None):
    k = kernel_for(fn, *args, uniform=uniform, exact_math=exact_math, max_iters=max_iters)
    n = next(len(a) for j, a in enumerate(args) if j not in uniform)
    return k, k(list(args), n)


def run_runtime(fn, *args, uniform=(), max_iters=None):
    in_axes = tuple(None if j in uniform else 0 for j in range(len(args)))
    return vmapper.batched(fn, in_axes=in_axes, max_iters=max_iters, backend="numpy")(*args)


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint8).reshape(a.shape + (a.itemsize,)) if a.dtype != np.bool_ else a


def assert_bitwise(got, want):
    gots = got if isinstance(got, tuple) else (got,)
    wants = want if isinstance(want, tuple) else (want,)
    assert len(gots) == len(wants)
    for g, w in zip(gots, wants):
        w = np.asarray(w)
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        assert g.shape == w.shape
        bad = np.flatnonzero(~np.all(bits(g) == bits(w), axis=-1) if g.dtype != np.bool_ else g != w)
        assert bad.size == 0, f"lanes {bad[:8]}: kernel {g[bad[:8]]} vs runtime {w[bad[:8]]}"


def ulps(a, b):
    a, b = np.asarray(a), np.asarray(b)
    it = np.int32 if a.dtype == np.float32 else np.int64
    ia, ib = a.view(it).astype(np.int64), b.view(it).astype(np.int64)
    ia = np.where(ia < 0, -(ia & np.iinfo(it).max), ia)
    ib = np.where(ib < 0, -(ib & np.iinfo(it).max), ib)
    d = np.abs(ia - ib).astype(np.float64)
    d[np.isnan(a) & np.isnan(b)] = 0
    return d


def check(fn, *args, uniform=(), exact_math=True):
    """Kernel == runtime, bitwise; returns the kernel."""
    k, (res, err_lane, err_code) = run_kernel(fn, *args, uniform=uniform, exact_math=exact_math)
    assert err_lane == -1, k.errors.get(err_code)
    assert_bitwise(res, run_runtime(fn, *args, uniform=uniform))
    return k


def check_error(fn, *args, uniform=(), max_iters=None):
    """The kernel fails on the runtime's smallest failing lane with its line, type and message."""
    k, (res, err_lane, err_code) = run_kernel(fn, *args, uniform=uniform, max_iters=max_iters)
    exc_type = NonTerminationError if max_iters is not None else LaneError
    with pytest.raises(exc_type) as info:
        run_runtime(fn, *args, uniform=uniform, max_iters=max_iters)
    exc = info.value
    assert err_lane == int(np.min(exc.lanes)), (err_lane, exc.lanes)
    line, etype, message = k.errors[err_code]
    assert line == exc.line
    if max_iters is None:
        assert etype is exc.python_error and message == exc.operation
    else:
        assert etype is NonTerminationError and f"max_iters={max_iters}" in message
    return k, err_lane, k.errors[err_code]


RNG = np.random.default_rng(20240611)


def floats(n, scale=10.0, dtype=np.float64, zeros=True):
    x = RNG.normal(0, scale, n)
    if zeros:
        x[::17] = 0.0
        x[5::23] = -0.0
        x[3::11] = np.round(x[3::11])
    return x.astype(dtype)


def ints(n, lo=-50, hi=50, dtype=np.int64):
    return RNG.integers(lo, hi, n).astype(dtype)


# ---- per-sample functions ----------------------------------------------------------------------

from vmapper.testing.programs import collatz_steps as collatz  # noqa: E402


def mandelbrot(cr, ci):
    zr = 0.0
    zi = 0.0
    i = 0
    while i < 256 and zr * zr + zi * zi <= 4.0:
        t = zr * zr - zi * zi + cr
        zi = 2.0 * zr * zi + ci
        zr = t
        i += 1
    return i


def nested_loops(a, b):
    total = 0
    for i in range(a % 7):
        if i == 3:
            continue
        j = 0
        while True:
            j += 1
            if j > b % 5:
                break
            if i * j > 12:
                return -total
            total += i * j
    return total


def elif_chain(x):
    if x < -1.0:
        y = -2
    elif x < 0.0:
        y = -1
    elif x == 0.0:
        y = 0
    elif x < 1.5:
        y = 1
    else:
        y = 2
    return y * 10 + (1 if x > 0.25 else 0)


def int_float_mix(a, b, x):
    q = a // 3 + a % 5 - (-a) // 4 + (-a) % 6 + a // (abs(b) + 1) + a % (abs(b) % 7 + 1)
    r = x // 0.7 + x % 0.7 + (-x) % 2.5 + x // -1.5
    s = a / 4 + x * a - 2 ** (abs(a) % 5) + x ** 2 + (a % 9) ** 3
    t = ((a << 3) + (a >> 2) ^ (a & 5)) | 8
    return q + r + s + t + abs(a) + abs(x) + min(a, x, 3) + max(x, 0.5, b)


def float32_work(x, y):
    z = x * 2.0 + y * 0.1 - 1
    if z > 0.1:
        z = z / 3.0
    w = np.float32(1.5) * z + np.sqrt(abs(z))
    if w < 10:
        return w
    return z // 2.5 + z % 0.75


def bool_result(x, y):
    return (x > 0 and y < 1) or x == y


def casts(a, x):
    i = int(x * 3.0) + round(x) + int(a > 2)
    f = float(a) + float(i) * 0.5 + float(x > 1.0)
    k = 1 if bool(x) else 0
    return i + f + k + np.float32(x) * 2 + np.int32(a) * 3


def math_functions(x):
    y = math.sqrt(abs(x)) + math.exp(x / 10) + math.log(abs(x) + 1) + math.sin(x) + math.cos(x)
    y += math.atan2(x, 2.0) + math.floor(x) + math.ceil(x / 3) + math.hypot(x, 1.0) + math.tanh(x)
    y += math.fabs(x) + math.copysign(1.0, x) + math.fmod(x, 1.5) + math.degrees(x) + math.radians(x)
    y += math.log1p(abs(x)) + math.expm1(x / 20) + math.erf(x / 4) + math.log(abs(x) + 2, 3.0)
    y += np.exp(x / 20) + np.log(abs(x) + 1) + np.tanh(x) + np.sqrt(abs(x)) + np.cbrt(x)
    y += np.maximum(x, 0.5) + np.minimum(x, -0.5) + np.clip(x, -3.0, 3.0) + np.sign(x)
    y += np.where(x > 0, x, 2 * x) + np.floor(x) + np.rint(x) + np.arctan(x) + np.hypot(x, 2.0)
    return y + (1.0 if math.isnan(x) else 0.0) + (2.0 if np.isfinite(x) else 0.0)


def float32_math(x):
    return np.exp(x / 8) + np.sin(x) + np.log(abs(x) + 1) + np.sqrt(abs(x)) + np.tanh(x)


def fma_candidate(a, b, c):
    return a * b + c


def fma_candidate32(a, b, c):
    return a * b + c - a * c


def narrow_ints(a, b):
    c = a + b
    d = a * b
    e = a - b
    f = a // (b | 1)
    g = a % (b | 1)
    h = -a
    return c ^ d ^ e ^ f ^ g ^ h ^ (a << 2) ^ (b >> 1) ^ ~a


def mixed_narrow(a, b, x):
    return a * x + b - a


def promoted_variable(x):
    if x > 0:
        y = 1
    else:
        y = 2.5
    return y


def membership(a, x):
    r = 0
    if a in (1, 2, 3):
        r += 1
    if a not in (5, 7):
        r += 10
    if x in (0.0, 1.5):
        r += 100
    return r


def tuple_result(a, x):
    if a > 0:
        return a, x
    return a * 2, x + 1.0


def bit_ops(a, b):
    return (a & b) | (a ^ 255) ^ (b << 3) ^ (a >> (b % 70)) ^ (b << (a % 65))


def comparisons_and_logic(a, x):
    return (a < x) + (a <= 3) * 2 + (x >= 0.5) * 4 + (x != a) * 8 + (not (a == 2)) * 16 + (3 < a < 9) * 32


def with_uniform(x, scale, offset):
    y = x * scale + offset
    if y > scale:
        y = y - offset * 2
    return y


def power_mix(x, a):
    return x ** 2 + abs(x) ** 0.5 + 2.0 ** a + a ** 2


# errors

def divide(a, b):
    return a // b + 1


def float_divide(x, y):
    return float(x) / float(y)


def sqrt_of(x):
    t = x * 2.0
    return math.sqrt(t)


def to_int(x):
    return int(x)


def asserts(x):
    assert x < 5.0, "x too big"
    return x * 2


def raises(a):
    if a > 3:
        raise ValueError("a is more than three")
    return a


def maybe_unbound(x):
    if x > 0:
        y = x
    return y


def range_with_step(a, s):
    t = 0
    for i in range(0, a, s):
        t += i
    return t


def never_ends_for_odd(x):
    while x != 0:  # the loop
        x -= 2
    return x


def int_power(a, b):
    return a ** b


def nested_spin(a):
    t = 0
    for i in range(3):
        j = 0
        while j < a + i:  # the inner loop
            j += 1
            t += 1
    return t


def python_float_power(x, y):
    return float(x) ** float(y)


def exp_of(x):
    return math.exp(x)


def range_of_float(x):
    t = 0
    for i in range(x):
        t += i
    return t


def weak_times_strong(x32, y):
    w = float(y) * 0.5
    return x32 * w + w


def weak_times_strong_kernel(x32, w):
    return x32 * w + w


def constant_tuple(a):
    if a > 0:
        return (1, 2.5)
    return a, 0.5


def set_membership(a):
    return 1 if a in {2, 4, 8} else 0


def flag_arg(x, flag):
    if flag:
        return x + 1
    return x - 1


# ---- correctness against the runtime -------------------------------------------------------------

def test_collatz():
    k = check(collatz, np.arange(1, 3001, dtype=np.int64))
    assert k.result_dtype == np.int64 and k.result_weak is True  # steps counts from 0: a Python int


def test_mandelbrot():
    xs, ys = np.meshgrid(np.linspace(-2, 1, 60), np.linspace(-1.5, 1.5, 50))
    check(mandelbrot, xs.ravel(), ys.ravel())


def test_nested_loops_break_continue_early_return():
    check(nested_loops, ints(400, 0, 30), ints(400, -20, 20))


def test_if_elif_chain():
    check(elif_chain, floats(500, 2.0))


def test_int_float_mix():
    check(int_float_mix, ints(600), ints(600), floats(600))


def test_float32_stays_float32():
    k = check(float32_work, floats(600, dtype=np.float32), floats(600, dtype=np.float32))
    assert k.result_dtype == np.float32


def test_bool_result():
    x, y = floats(300, 1.0), floats(300, 1.0)
    y[::7] = x[::7]
    k = check(bool_result, x, y)
    assert k.result_dtype == np.bool_


def test_casts():
    check(casts, ints(400), floats(400))


@pytest.mark.parametrize("exact_math", [True, False], ids=["libm", "vmath"])
def test_math_functions_within_a_few_ulp(exact_math):
    x = floats(800)
    k, (res, err_lane, _) = run_kernel(math_functions, x, exact_math=exact_math)
    assert err_lane == -1
    ref = run_runtime(math_functions, x)
    assert res.dtype == ref.dtype
    # a sum of ~40 terms: compare relative to the magnitude of the terms
    assert np.allclose(res, ref, rtol=1e-13, atol=1e-12)


def test_float32_transcendentals_within_a_few_ulp():
    x = floats(2000, dtype=np.float32)
    for exact in (True, False):
        k, (res, err_lane, _) = run_kernel(float32_math, x, exact_math=exact)
        ref = run_runtime(float32_math, x)
        assert res.dtype == ref.dtype == np.float32
        assert np.max(ulps(res, ref)) <= 8


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_no_fma_contraction(dtype):
    rng = np.random.default_rng(1)
    a, b, c = (rng.normal(0, 1e3, 20000).astype(dtype) for _ in range(3))
    check(fma_candidate, a, b, c)
    check(fma_candidate32, a, b, c)
    k, (res, _, _) = run_kernel(fma_candidate, a, b, c)
    assert np.array_equal(res, a * b + c)  # rounded twice, as numpy does


@pytest.mark.parametrize("da,db", [(np.int8, np.int8), (np.uint8, np.int8), (np.int32, np.int16),
                                   (np.uint32, np.uint32), (np.int64, np.uint8)])
def test_narrow_integer_dtypes_wrap_like_numpy(da, db):
    a = RNG.integers(np.iinfo(da).min, np.iinfo(da).max, 500, endpoint=True).astype(da)
    b = RNG.integers(np.iinfo(db).min, np.iinfo(db).max, 500, endpoint=True).astype(db)
    check(narrow_ints, a, b)


def test_narrow_ints_with_floats():
    check(mixed_narrow, ints(300, -100, 100, np.int8), ints(300, 0, 200, np.uint8),
          floats(300, dtype=np.float32))


def test_variable_promoted_across_paths():
    k = check(promoted_variable, floats(100))
    assert k.result_dtype == np.float64 and k.result_weak


def test_membership():
    a = ints(300, 0, 9)
    x = floats(300, 1.0)
    x[::5] = 1.5
    check(membership, a, x)


def test_tuple_result():
    k = check(tuple_result, ints(200), floats(200))
    assert k.result_dtype == (np.int64, np.float64)


def test_bit_operations():
    check(bit_ops, ints(500, -10 ** 6, 10 ** 6), ints(500, 0, 200))


def test_comparisons_and_logic():
    a = ints(400, 0, 12)
    x = floats(400, 3.0)
    x[::4] = a[::4]
    check(comparisons_and_logic, a, x)


def test_uniform_arguments_are_passed_not_baked():
    x = floats(300)
    k1 = check(with_uniform, x, 2.5, 1, uniform=(1, 2))
    before = dict(cache.stats)
    k2 = check(with_uniform, x, -0.5, 7, uniform=(1, 2))
    assert k2 is k1 and cache.stats["compiled"] == before["compiled"]
    check(with_uniform, x.astype(np.float32), np.float32(0.25), 3, uniform=(1, 2))


def test_powers():
    check(power_mix, floats(300, 3.0), ints(300, 0, 40))


# ---- errors ------------------------------------------------------------------------------------------

def test_integer_division_by_zero_reports_the_lane_line_and_type():
    a = ints(50, 1, 9)
    b = ints(50, 1, 9)
    b[[17, 33]] = 0
    k, lane, (line, etype, msg) = check_error(divide, a, b)
    assert lane == 17 and etype is ZeroDivisionError


def test_loop_free_kernel_split_over_threads_is_bitwise_and_reports_the_smallest_failing_lane(monkeypatch):
    # small loop-free kernels run on one thread (SERIAL_WORK); force the contiguous ranges
    from vmapper.kernels import codegen
    monkeypatch.setattr(codegen, "SERIAL_WORK", 0)
    a, b = ints(6000, -50, 50), ints(6000, 1, 9)
    k = check(divide, a, b)
    from numba import get_num_threads
    assert k.lane_cost is not None  # loop-free: the serial rule applies, and is off here
    assert codegen._scalar_task_count(6000, k.lane_cost) == min(6000 // codegen.SCALAR_LANES_PER_TASK,
                                                                get_num_threads())
    b[[4500, 5999]] = 0  # in the second range only
    k, lane, (line, etype, msg) = check_error(divide, a, b)
    assert lane == 4500 and etype is ZeroDivisionError


def test_python_float_division_by_zero():
    x, y = floats(40), floats(40) + 100
    y[[9, 30]] = 0.0
    check_error(float_divide, x, y)


def test_numpy_float_division_by_zero_is_no_error():
    x, y = floats(40), floats(40)
    y[[9, 30]] = 0.0
    check(fma_candidate, x, 1.0 / np.where(y == 0, np.inf, y), y)  # plain work still fine
    k, (res, lane, code) = run_kernel(lambda_free_div, x, y)
    assert lane == -1
    assert_bitwise(res, run_runtime(lambda_free_div, x, y))


def lambda_free_div(x, y):
    return x / y


def test_math_domain_error():
    x = floats(60) + 30
    x[[11, 40]] = -1.0
    k, lane, (line, etype, msg) = check_error(sqrt_of, x)
    assert lane == 11 and etype is ValueError and msg == "math domain error"


def test_int_of_nan_and_infinity():
    x = floats(30)
    x[13] = np.nan
    check_error(to_int, x)
    x[13] = 1.0
    x[20] = -np.inf
    check_error(to_int, x)


def test_assert_and_raise():
    x = floats(30, 1.0)
    x[[4, 9]] = 7.0
    k, lane, (line, etype, msg) = check_error(asserts, x)
    assert (lane, etype, msg) == (4, AssertionError, "x too big")
    k, lane, (line, etype, msg) = check_error(raises, ints(30, 0, 6))
    assert etype is ValueError and msg == "a is more than three"


def test_unbound_variable():
    x = floats(30, 1.0) + 5
    x[[6, 8]] = -1.0
    k, lane, (line, etype, msg) = check_error(maybe_unbound, x)
    assert lane == 6 and etype is UnboundLocalError and "'y'" in msg


def test_range_step_zero():
    s = ints(30, 1, 4)
    s[12] = 0
    check_error(range_with_step, ints(30, 0, 20), s)


def test_integer_to_negative_power():
    b = ints(30, 0, 5)
    b[[3, 7]] = -1
    check_error(int_power, ints(30, 1, 5), b)


def test_max_iters_fails_like_the_runtime():
    x = np.array([0, 4, 10, 2, 60, 100])
    k, (res, lane, code) = run_kernel(never_ends_for_odd, x, max_iters=50)
    assert lane == -1 and np.array_equal(res, np.zeros(6))
    x = np.array([0, 100, 2, 3, 8])
    check_error(never_ends_for_odd, x, max_iters=49)
    check_error(never_ends_for_odd, np.array([0, 3, 4, 7]), max_iters=50)


def test_max_iters_counts_per_loop_entry():
    a = np.array([5, 7, 2, 6, 0])
    k, (res, lane, code) = run_kernel(nested_spin, a, max_iters=9)  # inner: at most 7 + 2 trips
    assert lane == -1
    assert_bitwise(res, run_runtime(nested_spin, a, max_iters=9))
    k, lane, (line, etype, msg) = check_error(nested_spin, a, max_iters=8)  # only lane 1 needs 9
    assert lane == 1 and "max_iters=8" in msg


def test_python_float_power_errors():
    x, y = floats(40, 2.0) + 5, floats(40, 1.0)
    x[7], y[7] = 0.0, -1.0
    k, lane, (line, etype, msg) = check_error(python_float_power, x, y)
    assert (lane, etype) == (7, ZeroDivisionError)
    x[7], y[7] = -2.0, 0.5
    k, lane, (line, etype, msg) = check_error(python_float_power, x, y)
    assert (lane, etype) == (7, ValueError)
    x[7], y[7] = 10.0, 400.0
    k, lane, (line, etype, msg) = check_error(python_float_power, x, y)
    assert (lane, etype) == (7, OverflowError)


def test_math_range_error():
    x = floats(30)
    x[21] = 1000.0
    k, lane, (line, etype, msg) = check_error(exp_of, x)
    assert (lane, etype, msg) == (21, OverflowError, "math range error")


def test_range_of_a_float_is_a_type_error():
    k, lane, (line, etype, msg) = check_error(range_of_float, floats(10) + 100)
    assert lane == 0 and etype is TypeError


def test_weak_lane_arguments_follow_nep50():
    x32, y = floats(200, dtype=np.float32), floats(200)
    ir = get_program(weak_times_strong_kernel).ir
    k = compile_kernel(ir, [("lanes", np.float32, False), ("lanes", np.float64, True)])
    res, lane, _ = k([x32, y * 0.5], 200)
    assert res.dtype == np.float32 and k.result_weak is False
    assert_bitwise(res, run_runtime(weak_times_strong, x32, y))


def test_constant_tuple_and_set_membership():
    k = check(constant_tuple, ints(100))
    assert k.result_dtype == (np.int64, np.float64)
    check(set_membership, ints(100, 0, 10))


def test_uniform_bool_argument():
    x = floats(50)
    check(flag_arg, x, True, uniform=(1,))
    check(flag_arg, x, False, uniform=(1,))


def test_exact_math_flag_is_part_of_the_key():
    x = floats(20)
    a = kernel_for(exp_of, x, exact_math=True)
    b = kernel_for(exp_of, x, exact_math=False)
    assert a is not b and "_vm_exp_f64" in b.source and "_vm_exp" not in a.source


# ---- eligibility -----------------------------------------------------------------------------------

def calls_helper(x):
    return collatz(x)


def indexes(x):
    return x[0]


def returns_nothing(x):
    if x > 0:
        return
    return x


def test_eligibility_reasons():
    assert kernel_eligible(get_program(collatz).ir) is None
    assert "call" in kernel_eligible(get_program(calls_helper).ir)
    assert "getitem" in kernel_eligible(get_program(indexes).ir)
    assert "None" in kernel_eligible(get_program(returns_nothing).ir)


def doubled_first(v):
    xs = [v * k for k in range(3)]
    return xs[0]


def test_a_list_is_named_as_a_list_in_the_reason_not_as_a_compiler_temporary():
    assert kernel_eligible(get_program(doubled_first).ir).endswith("a list (lists cannot live in a kernel)")


def test_unsupported_types_raise_kernel_unsupported():
    with pytest.raises(KernelUnsupported):
        compile_kernel(get_program(collatz).ir, [("lanes", np.complex128, False)])


# ---- generated programs --------------------------------------------------------------------------------

GENERATED_SEEDS = list(range(N_GENERATED))


@pytest.mark.parametrize("seed", GENERATED_SEEDS, ids=lambda s: f"seed-{s}")
def test_generated_program(seed):
    prog = generate_program(seed)
    fn = compile_program(prog)
    ir = get_program(fn).ir
    assert kernel_eligible(ir) is None
    args = prog.make_args(np.random.default_rng(seed), 300)
    k = compile_kernel(ir, arg_types(args))
    res, lane, code = k(list(args), 300)
    assert lane == -1, k.errors.get(code)
    assert_bitwise(res, vmapper.batched(fn, backend="numpy")(*args))


# ---- the disk cache ------------------------------------------------------------------------------------

_CACHE_SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, {here!r})
    from test_codegen import collatz, mandelbrot
    from vmapper.program import get_program
    from vmapper.kernels.codegen import compile_kernel
    from vmapper.kernels import cache
    k = compile_kernel(get_program(collatz).ir, [("lanes", np.int64, False)])
    r, lane, code = k([np.arange(1, 100)], 99)
    assert lane == -1 and r[26] == 111, r[26]
    k = compile_kernel(get_program(mandelbrot).ir, [("lanes", np.float64, False)] * 2, exact_math=False)
    print(cache.stats["compiled"], cache.stats["loaded_from_disk"])
""")


def scale_add(x, s):
    return x * s + 1.0


def test_a_repeated_call_finds_its_kernel_by_function_and_argument_types():
    ir = get_program(scale_add).ir
    k = compile_kernel(ir, [("lanes", np.float64, False), ("uniform", 2.0)])
    hits = cache.stats["memory_hits"]
    assert compile_kernel(ir, [("lanes", np.float64, False), ("uniform", -7.5)]) is k  # the type, not the value
    assert cache.stats["memory_hits"] == hits + 1
    assert compile_kernel(ir, [("lanes", np.float32, False), ("uniform", 2.0)]) is not k
    assert compile_kernel(ir, [("lanes", np.float64, False), ("uniform", np.float32(2.0))]) is not k
    cache.clear_memory()  # forgets these kernels too: the next call loads the module again
    again = compile_kernel(ir, [("lanes", np.float64, False), ("uniform", 2.0)])
    assert again is not k
    res, lane, _ = again([np.array([1.0, -2.0]), 2.0], 2)
    assert lane == -1 and res.tolist() == [3.0, -3.0]


def test_a_new_process_compiles_nothing(tmp_path):
    env = dict(os.environ, VMAPPER_CACHE_DIR=str(tmp_path / "kernels"))
    script = _CACHE_SCRIPT.format(here=os.path.dirname(os.path.abspath(__file__)))
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr
        runs.append(tuple(int(v) for v in out.stdout.split()[-2:]))
    assert runs[0] == (2, 0)
    assert runs[1] == (0, 2)
    files = os.listdir(tmp_path / "kernels")
    assert sum(f.endswith(".py") for f in files) == 2


def accumulate_from_a_tenth(x, n):
    y = 0.1
    for _ in range(n):
        y = y + x
    return y


def test_a_literal_the_lanes_type_cannot_hold_keeps_the_function_off_the_kernel():
    # Per sample, 0.1 + np.float32 is float32 arithmetic; a kernel would have to type y once,
    # as float64 (the literal's type on lanes that skip the loop), and add in float64.
    x = np.array([0.5, 1.5, 2.0, 0.25], dtype=np.float32)
    n = np.array([1, 1, 2, 0])
    with pytest.raises(KernelUnsupported, match="not exact in float32"):
        kernel_for(accumulate_from_a_tenth, x, n)
    vmapper.testing.check_batching(accumulate_from_a_tenth, (x[:3], n[:3]), backend="numba")


def returns_an_empty_tuple(x):
    return ()


def test_a_kernel_returning_an_empty_tuple_returns_one():
    f = vmapper.batched(returns_an_empty_tuple, backend="numba")
    assert f(np.arange(3.0)) == () and f.last_stats["kernel_launches"] == 1
