"""Masked-lane safety: lanes that a branch or short circuit turned off never raise, never
warn and never read out of bounds; only active lanes produce LaneErrors.

Companion of test_errors.py.  Every run is under ``warnings.simplefilter("error")``
and compared with the per-sample loop.
"""
import math
import warnings

import numpy as np
import pytest

from vmapper import LaneError, batched
from vmapper.testing import check_batching


# ---- masked-lane safety -----------------------------------------------------------------------

def guarded_div(x, y):
    if y != 0:
        r = x // y
    else:
        r = 0
    return r


def guarded_float_ops(x, y):
    if y != 0.0:
        a = x / y
    else:
        a = 0.0
    if x > 0:
        b = math.sqrt(x) + math.log(x) + np.log(x)
    else:
        b = -1.0
    c = 1.0 / y if y != 0.0 else 0.0
    return a, b, c


def guarded_index(a, i):
    v = -1.0
    if i < len(a) and i >= -len(a):
        v = a[i]
    return v


def guarded_gather(i, table):
    if 0 <= i < len(table):
        return table[i]
    return -1


def scan_until_zero(a):
    i = 0
    while i < len(a) and a[i] != 0:
        i += 1
    return i


def guarded_int_cast(x):
    if math.isfinite(x):
        return int(x)
    return 0


def guarded_pow(a, e):
    if e >= 0:
        return a ** e
    return 0


def guarded_raise(x):
    if x < 0:
        if x > 0:
            raise ValueError("unreachable")
        assert x < 0
    return x


def _no_warnings(fn, args, in_axes=0):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return check_batching(fn, args, in_axes=in_axes)


def test_inactive_lanes_do_not_raise_or_warn_on_integer_division_by_zero():
    x = np.arange(-6, 6)
    y = np.array([0, 1, 0, 2, -3, 0, 5, 0, 1, 0, 7, 0])
    _no_warnings(guarded_div, (x, y))


def test_inactive_lanes_do_not_warn_on_float_division_sqrt_or_log():
    x = np.array([-1.0, 0.0, 2.0, 3.5, -7.0, 1e-300])
    y = np.array([0.0, 1.0, 0.0, -2.0, 0.0, 3.0])
    _no_warnings(guarded_float_ops, (x, y))


def test_inactive_lanes_never_read_out_of_bounds():
    a = np.arange(20.0).reshape(5, 4)
    i = np.array([0, 4, -5, 100, -4])
    _no_warnings(guarded_index, (a, i))
    _no_warnings(guarded_gather, (np.array([-1, 0, 2, 3, 10 ** 9, -10 ** 9]), np.arange(3) * 2),
                 in_axes=(0, None))


def test_short_circuit_loop_condition_never_reads_past_the_end():
    a = np.array([[1, 2, 0, 4], [1, 1, 1, 1], [0, 1, 1, 1], [5, 6, 7, 0]])
    _no_warnings(scan_until_zero, (a,))


def test_inactive_lanes_do_not_fail_casts_powers_or_raises():
    x = np.array([1.5, np.nan, np.inf, -2.7, -np.inf])
    _no_warnings(guarded_int_cast, (x,))
    _no_warnings(guarded_pow, (np.array([2, 3, 4, 5]), np.array([3, -1, 0, -5])))
    _no_warnings(guarded_raise, (np.array([-1, 2, -3, 0]),))


def guarded_np_power(x, n):
    y = 1
    if n >= 0:
        y = np.power(x, n)
    return y


def np_power(x, n):
    return np.power(x, n)


def guarded_str_conversions(c, s):
    y = 0.0
    if c > 0:
        y = float(s) + int(np.float64(s)) + float(np.float32(s))
    return y


def guarded_str_to_int8(c, s):
    y = 0
    if c > 0:
        y = int(s) + int(np.int8(s))
    return y


def test_inactive_lanes_do_not_fail_numpy_powers_or_conversions_of_strs():
    _no_warnings(guarded_np_power, (np.array([2, 3, 4, 5]), np.array([3, -1, 2, -2])))
    _no_warnings(guarded_str_conversions, (np.array([1, 0, 1, 0, 1]), np.array(["1.5", "abc", "2", "x", "-7.25"])))
    _no_warnings(guarded_str_to_int8, (np.array([1, 0, 1, 0, 1]), np.array(["1", "abc", "-2", "999", "12"])))


@pytest.mark.parametrize("fn, args, lanes, error", [
    (np_power, (np.array([2, 3, 4, 5]), np.array([-1, 1, 2, -3])), [0, 3], ValueError),
    (guarded_str_conversions, (np.array([1, 1, 0, 1]), np.array(["1.5", "abc", "zz", "q"])), [1, 3], ValueError),
    (guarded_str_to_int8, (np.array([1, 0, 1]), np.array(["3", "x", "300"])), [2], OverflowError),
])
def test_active_lanes_that_fail_a_power_or_conversion_are_named_with_pythons_error(fn, args, lanes, error):
    with pytest.raises(LaneError) as info:
        batched(fn)(*args)
    assert list(info.value.lanes) == lanes and info.value.python_error is error


def guarded_in_loop(X, d):
    s = 0
    for k in range(len(X)):
        if d[k] == 0:
            continue
        s += X[k] // d[k]
    return s


def test_inactive_lanes_inside_loops_do_not_raise_or_warn():
    X = np.arange(12).reshape(3, 4)
    d = np.array([[0, 1, 2, 0], [3, 0, 0, 0], [1, 1, 1, 1]])
    _no_warnings(guarded_in_loop, (X, d))


def test_lane_error_raises_only_for_active_lanes_even_when_other_lanes_would_fail():
    # lane 1 divides by zero (active), lane 3 has y == 0 but is guarded off
    def partly_guarded(x, y, guard):
        if guard:
            return x // y
        return -1

    with pytest.raises(LaneError) as info:
        batched(partly_guarded)(np.arange(4), np.array([1, 0, 1, 0]), np.array([True, True, True, False]))
    assert np.asarray(info.value.lanes).tolist() == [1]
