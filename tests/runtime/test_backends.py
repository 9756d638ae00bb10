"""The numba kernel backend agrees with the numpy runtime: results, dtypes and errors."""
import numpy as np
import pytest

import vmapper
from vmapper.testing import check_batching
from vmapper.testing.program_generator import compile_program, generate_program
from vmapper.testing.programs import collatz_steps as collatz, escape_time as escape

pytest.importorskip("numba")






def mixed(x, k):
    y = x * np.float32(1.5)
    for j in range(k % 5):
        if j == 2:
            continue
        y = y + j
    return y, k > 2


def divides(a, b):
    return a // b


def spin(n):
    while n > 0:
        n = n + 1
    return n


def both(fn, *args):
    k = vmapper.batched(fn, backend="numba")
    r = vmapper.batched(fn, backend="numpy")
    got, want = k(*args), r(*args)
    assert k.last_stats["kernel_launches"] == 1, "expected the whole function to run as one kernel"
    return got, want


def assert_same(got, want):
    got, want = (got if isinstance(got, tuple) else (got,)), (want if isinstance(want, tuple) else (want,))
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("fn,args", [
    (collatz, (np.arange(1, 3000),)),
    (escape, (np.linspace(-2, 1, 500), np.linspace(-1.5, 1.5, 500))),
    (mixed, (np.linspace(-3, 3, 40).astype(np.float32), np.arange(40))),
])
def test_kernel_equals_numpy_runtime_bitwise(fn, args):
    assert_same(*both(fn, *args))


@pytest.mark.parametrize("seed", range(12))
def test_generated_programs_agree_across_backends(seed):
    prog = generate_program(seed)
    fn = compile_program(prog)
    args = prog.make_args(np.random.default_rng(seed), 200)
    k = vmapper.batched(fn, backend="numba")
    r = vmapper.batched(fn, backend="numpy")
    assert_same(k(*args), r(*args))


def test_kernel_lane_errors_name_the_lane_and_line():
    a, b = np.arange(10), np.array([1, 2, 3, 0, 5, 6, 7, 0, 9, 1])
    with pytest.raises(vmapper.LaneError) as err:
        vmapper.batched(divides, backend="numba")(a, b)
    assert err.value.python_error is ZeroDivisionError and list(err.value.lanes) == [3]
    assert "return a // b" in str(err.value)


def test_kernel_max_iters_raises_non_termination_like_the_numpy_runtime():
    n = np.array([0, 3, -2])
    for backend in ("numba", "numpy"):
        with pytest.raises(vmapper.NonTerminationError) as err:
            vmapper.batched(spin, max_iters=20, backend=backend)(n)
        assert 1 in list(err.value.lanes)


def test_functions_with_calls_or_arrays_fall_back_to_the_numpy_runtime_not_per_sample():
    def with_array(x):
        v = np.zeros(3) + x
        return v.sum()
    f = vmapper.batched(with_array, backend="numba")
    np.testing.assert_array_equal(f(np.arange(5.0)), np.arange(5.0) * 3)
    assert f.last_stats["kernel_launches"] == 0 and f.last_stats["launches"] > 0


def fifty_trips(n):
    k = 0
    while k < n:
        k += 1
    return k


def bool_difference(x, y):
    return (x > 0) - (y > 0)


def test_max_iters_counts_trips_identically_on_both_backends():
    n = np.array([50, 3])
    for backend in ("numba", "numpy"):
        np.testing.assert_array_equal(vmapper.batched(fifty_trips, max_iters=50, backend=backend)(n), n)
        with pytest.raises(vmapper.NonTerminationError):
            vmapper.batched(fifty_trips, max_iters=49, backend=backend)(n)


def test_argument_types_a_kernel_cannot_take_fall_back_to_the_numpy_runtime():
    x = np.array([1.0, -1.0, 2.0])
    for backend in ("numba", "numpy"):
        with pytest.raises(vmapper.LaneError) as err:
            vmapper.batched(bool_difference, backend=backend)(x, x)
        assert err.value.python_error is TypeError
    half = vmapper.batched(lambda_free_half, backend="numba")
    np.testing.assert_array_equal(half(np.ones(4, np.float16)), np.full(4, 2.0, np.float16))
    assert half.last_stats["kernel_launches"] == 0


def lambda_free_half(x):
    return x * 2


def range_after_a_float_branch_no_lane_takes(n, flag):
    if flag > 100:   # no lane takes it, yet a kernel types n float on every path
        n = n / 2
    r = 0
    for i in range(n):
        r += i
    return r


def test_range_of_a_variable_a_kernel_types_float_runs_on_the_lanes_that_hold_ints():
    n, flag = np.array([3, 4, 5]), np.zeros(3, np.int64)
    check_batching(range_after_a_float_branch_no_lane_takes, (n, flag), backend="numba")


LIMIT = 3_000_000_000  # a module global beyond int32


def below_limit(x, limit):
    if x < limit:
        return 1
    return 0


def below_global_limit(x):
    if x < LIMIT:
        return 1
    return 0


def shifted(x, s):
    return x + s


@pytest.mark.parametrize("xs, limit", [(np.array([5, 2_000_000_000, -7], np.int32), LIMIT),
                                       (np.array([10, 200, 255], np.uint8), 256),
                                       (np.array([10, 200, 255], np.uint8), -1),
                                       (np.array([1, -2], np.int16), -40_000)])
def test_a_shared_python_int_beyond_the_lanes_integer_type_is_compared_exactly(xs, limit):
    # a kernel would cast it to the lanes' type (wrapping); numpy compares it exactly
    check_batching(vmapper.batched(below_limit, in_axes=(0, None), backend="numba"), (xs, limit),
                   in_axes=(0, None))
    if limit == LIMIT:
        check_batching(vmapper.batched(below_global_limit, backend="numba"), (xs,))


def test_arithmetic_with_a_shared_python_int_beyond_the_lanes_type_raises_as_numpy_does():
    f = vmapper.batched(shifted, in_axes=(0, None), backend="numba")
    with pytest.raises(vmapper.LaneError, match="OverflowError"):
        f(np.array([1, 2, 100], np.int8), 300)
    np.testing.assert_array_equal(f(np.array([1, 2], np.int8), 100), np.array([101, 102], np.int8))


def half_powers(x, p):
    return x ** 0.5, x ** p, np.power(x, 0.5), np.power(x, p)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_powers_of_one_half_follow_the_per_sample_call_at_minus_inf_and_minus_zero(backend, dtype):
    # x ** 0.5 is C's pow per sample (inf at -inf, 0.0 at -0.0); np.power(x, 0.5) is numpy's
    # sqrt loop (nan, -0.0); an array to 0.5 takes the sqrt loop, an array of exponents pow
    x = np.array([-np.inf, -0.0, 0.0, 4.0, 2.0, -1.0, np.inf, np.nan] * 5, dtype)
    p = np.array([0.5, 0.5, 0.5, 0.5, 1.5, 0.5, 0.5, 0.5] * 5, dtype)
    with np.errstate(all="ignore"):
        check_batching(vmapper.batched(half_powers, backend=backend), (x, p))


def zero_ties(a, b, c):
    return np.fmax(a, b), np.fmin(a, b), np.clip(a, b, c), np.clip(a, -1.0, c), np.maximum(a, b)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_fmax_fmin_and_clip_keep_the_per_sample_sign_of_zero_and_nan(backend):
    # numpy's vector loops break +-0 ties the other way from its scalar loop (from 16 lanes on)
    import itertools
    vals = [-1.0, -0.0, 0.0, 1.0, np.nan, np.inf, -np.inf]
    a, b, c = (np.array(v) for v in zip(*itertools.product(vals, repeat=3)))
    check_batching(vmapper.batched(zero_ties, backend=backend), (a, b, c))


def float_then_narrow(x):
    y = 0.1
    if x > 0:
        y = y + x
    return y


def test_explain_says_why_a_call_with_these_argument_types_ran_on_the_numpy_runtime():
    f = vmapper.batched(float_then_narrow, backend="numba")
    f(np.array([1.0, -1.0], np.float32))
    assert f.last_stats["kernel_launches"] == 0
    last = f.explain().splitlines()[-1]
    assert "with the argument types (float32 per lane) it ran on the numpy runtime" in last
    assert "the Python float 0.1 on some paths and float32 values on others" in last


def test_the_cupy_backend_without_cupy_says_what_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "cupy", None)  # (import cupy raises ImportError)
    with pytest.raises(vmapper.CupyBackendError, match=r"backend='cupy' needs CuPy and a CUDA GPU .*\[gpu\]"):
        vmapper.batched(float_then_narrow, backend="cupy")(np.array([1.0, 2.0]))
