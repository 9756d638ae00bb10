"""Control flow in per-sample code, at batch sizes 1, 7 and 1000, inputs drawn by hypothesis.

Every test compares the batched run with the per-sample Python loop
(:func:`vmapper.testing.check_batching`, bitwise for integer work).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vmapper
from vmapper.errors import LaneError
from vmapper.testing import check_batching
from source_lines import line_of
from lane_inputs import SIZES, CF_SETTINGS, sizes, lane_test, int_lanes, float_lanes, draw_ints  # noqa: F401


# ---- if / elif / else ---------------------------------------------------------------------------

def classify(x):
    if x < -10:
        return -2
    elif x < 0:
        r = -1
    elif x == 0:
        r = 0
    else:
        if x % 2 == 0:
            r = 2
        elif x > 50:
            r = 3
        else:
            r = x * 10
    return r


@lane_test
def test_if_elif_else_and_nested_ifs(n, data):
    check_batching(classify, (draw_ints(data, n, -20, 60),))


def nested_ifs_assigning(a, b):
    s = 0
    if a > 0:
        if b > 0:
            s = a + b
        else:
            s = a - b
            if s > 10:
                s = 10
    elif b > a:
        s = b
    return s


@lane_test
def test_nested_ifs_with_masked_assignments(n, data):
    check_batching(nested_ifs_assigning, (draw_ints(data, n, -15, 15), draw_ints(data, n, -15, 15)))


# ---- while ------------------------------------------------------------------------------------

def collatz_steps(x):
    steps = 0
    while x > 1:
        if x % 2 == 0:
            x = x // 2
        else:
            x = 3 * x + 1
        steps += 1
    return steps


@lane_test
def test_while_with_per_sample_trip_counts_including_zero_trips(n, data):
    x = draw_ints(data, n, -5, 300)  # lanes <= 1 run zero trips
    res = check_batching(collatz_steps, (x,))
    assert res.dtype == np.int64


def countdown_sum(n, k):
    total = 0.0
    i = 0
    while i < n:
        total += i * k
        i += 1
    return total, i


@lane_test
def test_while_accumulating_floats_with_per_sample_bounds(n, data):
    check_batching(countdown_sum, (draw_ints(data, n, -3, 40), data.draw(float_lanes(n, -2, 2))))


def trips(x):
    i = 0
    while i < x:
        i += 1
    return i


@lane_test
def test_while_where_one_lane_runs_zero_trips_and_one_runs_the_most(n, data):
    x = draw_ints(data, n, 0, 30)
    x[0] = 0
    x[-1] = 400 if n > 1 else x[-1]
    res = check_batching(trips, (x,))
    assert res[0] == 0 and res[-1] == x[-1]


# ---- for ... in range ----------------------------------------------------------------------------

def range_sum(a, b, s):
    total = 0
    count = 0
    for i in range(a, b, s):
        total += i
        count += 1
    return total, count


def range_one_two_args(a, b):
    t = 0
    for i in range(a):
        t += i
    for j in range(b, a):
        t = t * 2 - j
    return t


@lane_test
def test_for_range_with_per_sample_start_stop_and_step_of_either_sign(n, data):
    a = draw_ints(data, n, -20, 20)
    b = draw_ints(data, n, -20, 20)
    s = draw_ints(data, n, -4, 4)
    s = np.where(s == 0, 1, s)
    check_batching(range_sum, (a, b, s))


@lane_test
def test_for_range_with_one_and_two_arguments(n, data):
    check_batching(range_one_two_args, (draw_ints(data, n, -3, 12), draw_ints(data, n, -3, 12)))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
def test_for_range_yields_python_ints_whatever_the_dtype_of_its_bounds(backend, dtype):
    # an int8 start made the counter int8: sums wrapped, and range(a, 127, 2) never ended
    a = np.array([0, 1, 3, 100], dtype)
    b = np.array([10, 100, 127, 120], dtype)
    s = np.array([1, 2, 2, 3], dtype)
    check_batching(range_sum, (a, b, s), backend=backend, max_iters=1000)
    check_batching(range_one_two_args, (np.array([3, 50, 0, 40], dtype), np.array([1, 2, 4, 0], dtype)),
                   backend=backend)


def range_from_flag(x, n):
    t = 0
    for i in range(x > 0, n):  # a numpy bool: Python's range() refuses it
        t += i
    return t


def range_from_python_bool(x, n):
    t = 0
    for i in range(int(x) > 0, n):  # a Python bool is an int
        t += i
    return t


def range_count(a, b, s):
    c = 0
    for _ in range(a, b, s):
        c += 1
        if c > 10:
            break
    return c


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_range_bound_that_is_a_numpy_bool_raises_as_python_does(backend):
    x, n = np.array([1, -1, 2]), np.array([4, 4, 2])
    with pytest.raises(LaneError, match=r"TypeError: 'numpy.bool' object cannot be interpreted as an integer"):
        vmapper.batched(range_from_flag, backend=backend)(x, n)
    check_batching(range_from_python_bool, (x, n), backend=backend)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_range_stopping_within_a_step_of_int64s_limit_is_refused_not_wrapped(backend):
    # the batched counter steps past the stop: there it would wrap, and loop on (or stop wrong)
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    a = np.array([0, big - 3, small, big - 5, 5, small + 3])
    b = np.array([10, big, big, big, small, small])
    s = np.array([3, 2, 2 ** 62, 1, -2, -1])
    with pytest.raises(LaneError, match=r"OverflowError: range\(\) whose stop lies within one step of "
                                        r"int64's limit is not supported.* on lane\(s\) \[1"):
        vmapper.batched(range_count, backend=backend)(a, b, s)
    check_batching(range_count, (a[[0, 3, 5]], b[[0, 3, 5]], s[[0, 3, 5]]), backend=backend)  # step ±1: fine
    with pytest.raises(LaneError, match=r"on lane\(s\) \[1\]"):
        vmapper.batched(range_count, backend=backend)(a[[0, 4]], b[[0, 4]], s[[0, 4]])


def range_of_constants_to_the_limit(x):
    c = 0
    for _ in range(2 ** 63 - 4, 2 ** 63 - 1, 2):  # marker-constant-range-edge
        c += 1
    return c + x


def range_from_a_narrow_int_to_the_limit(a8):
    c = 0
    for _ in range(a8, 2 ** 63 - 1, 2 ** 62):  # marker-narrow-range-edge
        c += 1
    return c


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("fn, marker, args", [
    (range_of_constants_to_the_limit, "marker-constant-range-edge", (np.array([0, 1]),)),
    (range_from_a_narrow_int_to_the_limit, "marker-narrow-range-edge", (np.array([0, 1], np.int8),)),
])
def test_a_range_to_int64s_limit_with_constant_or_narrow_bounds_is_refused_not_endless(backend, fn, marker, args):
    with pytest.raises(LaneError, match=r"OverflowError: range\(\) whose stop lies within one step") as info:
        vmapper.batched(fn, backend=backend, max_iters=100)(*args)
    assert f":{line_of(fn, marker)}" in str(info.value)


# ---- for over arrays, enumerate, zip ------------------------------------------------------------

def positive_sum(X):
    s = 0.0
    for v in X:
        if v > 0:
            s += v
    return s


def enum_zip(X, Y):
    best, best_i = -1e300, -1
    for i, v in enumerate(X):
        if v > best:
            best, best_i = v, i
    acc = 0.0
    for p, q in zip(X, Y):
        acc = acc * 0.5 + p * q
    return best_i, acc


@lane_test
def test_for_over_a_per_sample_array(n, data):
    check_batching(positive_sum, (data.draw(float_lanes(n, -5, 5, (6,))),))


@lane_test
def test_enumerate_and_zip(n, data):
    X = data.draw(float_lanes(n, -5, 5, (5,)))
    Y = data.draw(float_lanes(n, -5, 5, (5,)))
    check_batching(enum_zip, (X, Y))


def enumerate_zip_and_start(X, Y):
    acc = 0.0
    for i, (p, q) in enumerate(zip(X, Y[:3])):
        if p > q:
            continue
        acc += i * p - q
    for j, (p, q) in enumerate(zip(X, Y), start=-2):
        acc = acc * 0.5 + j * p
    for k, p in enumerate(X, 1):
        acc += k * p
    return acc


def ranges_among_the_sequences(X, k):
    s = 0.0
    for i, b in enumerate(range(k)):
        s += i * b
    for j, x in zip(range(2, 20, 3), X):
        s = s * 0.5 + j * x
    for i, (a, x) in enumerate(zip(range(k, -1, -1), X), 1):
        s += i * a * x
    return s


@lane_test
def test_a_range_among_the_sequences_of_zip_and_enumerate(n, data):
    X = data.draw(float_lanes(n, -5, 5, (4,)))
    k = draw_ints(data, n, -2, 7)
    check_batching(ranges_among_the_sequences, (X, k))
    check_batching(ranges_among_the_sequences, (X, k), backend="numba")


@lane_test
def test_enumerate_of_zip_and_enumerate_with_start(n, data):
    X = data.draw(float_lanes(n, -5, 5, (5,)))
    Y = data.draw(float_lanes(n, -5, 5, (4,)))
    check_batching(enumerate_zip_and_start, (X, Y))
    check_batching(enumerate_zip_and_start, (X, Y), backend="numba")


# ---- break / continue / else ---------------------------------------------------------------------

def first_big_skipping_odds(X, limit):
    found = -1
    for i in range(len(X)):
        if X[i] % 2 == 1:
            continue
        if X[i] > limit:
            found = i
            break
    return found


def while_break_continue(x):
    i = 0
    acc = 0
    while True:
        i += 1
        if i > 30:
            break
        if (x + i) % 3 == 0:
            continue
        acc += i
        if acc > x:
            break
    return acc, i


@lane_test
def test_break_and_continue_in_for(n, data):
    X = draw_ints(data, n * 6, -10, 10).reshape(n, 6)
    check_batching(first_big_skipping_odds, (X, draw_ints(data, n, -10, 10)))


@lane_test
def test_break_and_continue_in_while_true(n, data):
    check_batching(while_break_continue, (draw_ints(data, n, -5, 400),))


def smallest_divisor_while_else(x):
    d = 2
    while d * d <= x:
        if x % d == 0:
            break
        d += 1
    else:
        d = x
    return d


def is_prime_for_else(x):
    for d in range(2, x):
        if x % d == 0:
            r = False
            break
    else:
        r = x >= 2
    return r


@lane_test
def test_while_else_and_for_else(n, data):
    x = draw_ints(data, n, -3, 200)
    check_batching(smallest_divisor_while_else, (x,))
    check_batching(is_prime_for_else, (x,))


# ---- early return ------------------------------------------------------------------------------

def find_pair(X, target):
    for i in range(len(X)):
        for j in range(i + 1, len(X)):
            if X[i] + X[j] == target:
                return i, j
        if X[i] == target:
            return i, -1
    return -1, -1


def return_in_while(x):
    while x > 0:
        if x == 7:
            return 100
        x -= 2
    if x == 0:
        return 0
    return x


@lane_test
def test_early_return_inside_nested_loops(n, data):
    X = draw_ints(data, n * 5, -5, 5).reshape(n, 5)
    check_batching(find_pair, (X, draw_ints(data, n, -6, 6)))


@lane_test
def test_early_return_inside_while_and_after_it(n, data):
    check_batching(return_in_while, (draw_ints(data, n, -3, 40),))


# ---- variables assigned in one branch only ---------------------------------------------------------

def assigned_in_one_branch(x):
    if x > 0:
        y = x * 2
    if x > 0:
        return y
    z = -1
    for i in range(x):  # zero trips here (x <= 0)
        z = i
    return z


@lane_test
def test_variable_assigned_in_one_branch_read_only_where_assigned(n, data):
    check_batching(assigned_in_one_branch, (draw_ints(data, n, -10, 10),))


# ---- uniform control flow -----------------------------------------------------------------------

def uniform_branch(x, mode, k):
    if mode == 1:
        y = x * 2
    elif mode == 2:
        y = -x
    else:
        y = x
    for _ in range(k):
        y = y + mode
    while k > 0:
        k -= 1
        y -= 1
    return y


@sizes
@CF_SETTINGS
@given(data=st.data(), mode=st.integers(0, 3), k=st.integers(0, 5))
def test_uniform_control_flow_on_broadcast_values(n, data, mode, k):
    check_batching(uniform_branch, (draw_ints(data, n, -50, 50), mode, k), in_axes=(0, None, None))


def test_uniform_branch_does_not_split_lanes():
    f = vmapper.batched(uniform_branch, in_axes=(0, None, None))
    out = f(np.arange(10), 2, 3)
    assert np.array_equal(out, -np.arange(10) + 3)
    assert f.last_stats["lane_utilization"] == pytest.approx(1.0)  # every op ran on every lane


# ---- a longer mix ---------------------------------------------------------------------------------

def mixed_program(x, y):
    acc = 0
    for i in range(abs(x) % 9):
        j = 0
        while j < i:
            if (i + j + y) % 5 == 0:
                break
            j += 1
        else:
            acc += 1
            continue
        acc += j if y > 0 else -j
        if acc > 20:
            return acc, i
    return acc, -1


@lane_test
def test_nested_loops_with_break_continue_else_and_return(n, data):
    check_batching(mixed_program, (draw_ints(data, n, -50, 50), draw_ints(data, n, -10, 10)))


# ---- Python's loop semantics -------------------------------------------------------------------

def loop_variable_semantics(a, X):
    last = -1
    for last in range(a):
        pass
    s = 0
    for i in range(4):
        i += 10  # rebinding the target does not change the iteration
        s += i
    m = a
    for j in range(m):  # range() evaluates its bounds once
        m -= 1
        s += j
    t = 0.0
    for v in X:  # iterates over the array bound when the loop started
        X = X * 2.0
        t += v
    return last, s, m, t, X[0]


@lane_test
def test_for_target_rebinding_and_bounds_evaluated_once(n, data):
    a = draw_ints(data, n, -3, 9)
    check_batching(loop_variable_semantics, (a, data.draw(float_lanes(n, -3, 3, (3,)))))


def reverse_range(X):
    out = 0
    for i in range(len(X) - 1, -1, -1):
        if X[i] < 0 and out > 0 or X[i] == 0:
            continue
        out = out * 3 + X[i]
    return out


@lane_test
def test_reverse_range_with_compound_conditions(n, data):
    check_batching(reverse_range, (draw_ints(data, n * 5, -3, 3).reshape(n, 5),))


def int_or_float_result(x):
    if x > 0:
        return 1
    return 2.5


@lane_test
def test_results_of_different_python_types_on_different_lanes(n, data):
    check_batching(int_or_float_result, (draw_ints(data, n, -5, 5),))


def float_branch_no_lane_takes(x, n):
    k = n + 1
    if x > 100.0:  # no lane: k stays an int, exactly (2**60 + 1 would round as a float)
        k = 0.5
    b = x > 0
    if x > 100.0:
        b = 2
    return k, b, min(x, n)


def test_a_branch_no_lane_takes_leaves_a_variables_type_as_the_per_sample_run_has_it():
    x, n = np.array([1.0, -2.0, 3.0]), np.array([2 ** 60, 7, -3])
    k, b, m = check_batching(float_branch_no_lane_takes, (x, n))
    assert k.dtype == np.int64 and k[0] == 2 ** 60 + 1 and b.dtype == np.bool_
    # where lanes differ, the types promote (min keeps a float on lane 0, an int elsewhere)
    assert m.dtype == np.float64


# ---- loops that write into per-sample arrays ------------------------------------------------------

def insertion_sort(X):
    X = X.copy()
    for k in range(1, len(X)):
        v = X[k]
        j = k - 1
        while j >= 0 and X[j] > v:
            X[j + 1] = X[j]
            j -= 1
        X[j + 1] = v
    return X


@lane_test
def test_insertion_sort_with_per_lane_index_writes_in_a_while_loop(n, data):
    X = draw_ints(data, n * 7, -20, 20).reshape(n, 7)
    res = check_batching(insertion_sort, (X,))
    assert np.array_equal(res, np.sort(X, axis=1))


def _returns_two_shapes(x):
    if x > 0:
        return np.zeros(2)  # mixed-return-array
    return 1.0  # mixed-return-float


def test_returns_of_different_shapes_on_different_lanes_raise_naming_both_returns():
    """Some lanes return an array, others a float: one batched result cannot hold both,
    and keeping only some lanes' values would be a silent wrong answer."""
    with pytest.raises(vmapper.UnsupportedSyntaxError) as info:
        vmapper.batched(_returns_two_shapes)(np.array([1.0, -1.0, 2.0]))
    msg = str(info.value)
    assert "different shapes or kinds" in msg
    for marker in ("mixed-return-array", "mixed-return-float"):
        assert str(line_of(_returns_two_shapes, marker)) in msg
