"""Calls in per-sample code: helper functions, @batched helpers, recursion, default
arguments, closures and module globals; at batch sizes 1, 7 and 1000, inputs drawn by hypothesis.

Every test compares the batched run with the per-sample Python loop
(:func:`vmapper.testing.check_batching`, bitwise for integer work).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vmapper
from vmapper.testing import check_batching
from lane_inputs import SIZES, CF_SETTINGS, sizes, lane_test, int_lanes, draw_ints  # noqa: F401


# ---- helper functions and recursion ---------------------------------------------------------------

def helper_scale(v, k=3):
    if v < 0:
        return -v * k
    return v + k


@vmapper.batched
def batched_helper(v):
    t = 0
    while v > 0:
        t += v
        v -= 3
    return t


def uses_helpers(x):
    a = helper_scale(x)
    b = helper_scale(x, 5)
    c = helper_scale(v=x, k=-1)
    d = batched_helper(x) if x % 2 == 0 else 0
    return a, b, c, d


@lane_test
def test_calls_of_plain_and_batched_helper_functions(n, data):
    check_batching(uses_helpers, (draw_ints(data, n, -20, 20),))


def test_batched_helper_called_directly_still_batches():
    x = np.arange(-3, 12)
    check_batching(batched_helper, (x,))


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def factorial(n):
    return 1 if n <= 1 else n * factorial(n - 1)


def gcd(a, b):
    if b == 0:
        return a
    return gcd(b, a % b)


def is_even(n):
    if n == 0:
        return True
    return is_odd(n - 1)


def is_odd(n):
    if n == 0:
        return False
    return is_even(n - 1)


@vmapper.batched
def fib_batched(n):
    return n if n < 2 else fib_batched(n - 1) + fib_batched(n - 2)


@sizes
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_direct_recursion_fib_factorial_gcd(n, data):
    check_batching(fib, (draw_ints(data, n, 0, 11),))
    check_batching(factorial, (draw_ints(data, n, 0, 20),))
    check_batching(gcd, (draw_ints(data, n, 0, 500), draw_ints(data, n, 0, 500)))


@sizes
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_recursion_through_the_batched_name(n, data):
    check_batching(fib_batched, (draw_ints(data, n, 0, 10),))


@sizes
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutual_recursion_is_even_is_odd(n, data):
    x = draw_ints(data, n, 0, 40)
    assert check_batching(is_even, (x,)).dtype == np.bool_
    check_batching(is_odd, (x,))


# ---- default arguments, closures, globals -------------------------------------------------------

def with_defaults(x, scale=3, offset=-1):
    return x * scale + offset


@lane_test
def test_default_arguments_of_the_batched_function(n, data):
    x = draw_ints(data, n, -100, 100)
    check_batching(with_defaults, (x,))
    check_batching(with_defaults, (x, 5), in_axes=(0, None))
    check_batching(with_defaults, (x, x), in_axes=(0, 0))


@lane_test
def test_closures_over_scalars_arrays_and_functions(n, data):
    k = 7
    table = np.array([3, 1, 4, 1, 5, 9, 2, 6])

    def inner(v):
        return v * k - 1

    def closure_user(x):
        if x > 0:
            return inner(x) + table[x % 8]
        return table[-1] + k

    check_batching(closure_user, (draw_ints(data, n, -20, 20),))


OFFSET = 11
WEIGHTS = np.array([0.5, -1.0, 2.0])


def uses_globals(x):
    s = 0.0
    for w in WEIGHTS:
        s += w * x
    return s + OFFSET


@lane_test
def test_module_globals(n, data):
    check_batching(uses_globals, (draw_ints(data, n, -20, 20),))


def test_module_global_rebound_between_calls_is_read_again():
    global OFFSET
    f = vmapper.batched(uses_globals)
    x = np.arange(5)
    before = f(x)
    OFFSET = 100
    try:
        after = f(x)
        check_batching(uses_globals, (x,))
    finally:
        OFFSET = 11
    assert np.array_equal(after - before, np.full(5, 89.0))


# ---- calls inside loops ---------------------------------------------------------------------------

def loop_calling_helper_with_loop(x):
    acc = 0
    for i in range(x % 6):
        acc += batched_helper(x - i) + helper_scale(i - x)
        if acc > 200:
            break
    return acc


@lane_test
def test_helper_calls_inside_loops_on_a_subset_of_lanes(n, data):
    check_batching(loop_calling_helper_with_loop, (draw_ints(data, n, -30, 30),))


def positive(v):
    return v > 0


def loop_condition_calls_helper(x):
    while positive(x):
        x -= 3
    return x


@lane_test
def test_helper_call_in_a_while_condition(n, data):
    check_batching(loop_condition_calls_helper, (draw_ints(data, n, -10, 60),))


# ---- more recursion --------------------------------------------------------------------------------

def bsearch(table, x, lo, hi):
    if lo >= hi:
        return lo
    mid = (lo + hi) // 2
    if table[mid] < x:
        return bsearch(table, x, mid + 1, hi)
    return bsearch(table, x, lo, mid)


def bsearch_entry(x, table):
    return bsearch(table, x, 0, len(table))


def fib_pair(n):
    if n == 0:
        return 0, 1
    a, b = fib_pair(n - 1)
    return b, a + b


def sum_to(n):
    if n <= 0:
        return 0
    return n + sum_to(n - 1)


@lane_test
def test_recursive_binary_search_over_a_broadcast_table(n, data):
    table = np.sort(draw_ints(data, 25, 0, 40))
    x = draw_ints(data, n, -5, 45)
    res = check_batching(bsearch_entry, (x, table), in_axes=(0, None))
    assert np.array_equal(res, np.searchsorted(table, x, side="left"))


@lane_test
def test_recursion_returning_tuples(n, data):
    check_batching(fib_pair, (draw_ints(data, n, 0, 40),))


@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_deep_recursion_of_a_few_hundred_levels(data):
    check_batching(sum_to, (draw_ints(data, 50, -5, 600),))
