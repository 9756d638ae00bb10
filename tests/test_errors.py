"""The errors vmapper raises, and what their messages name (the masked-lane safety rules
are in test_errors_masked_lanes.py)."""
import math
import re
import warnings

import numpy as np
import pytest

import vmapper
from vmapper import (BatchError, BatchingError, LaneError, NonTerminationError,
                     UnsupportedSyntaxError, batched)
from vmapper.testing import check_batching
from source_lines import line_of

THIS_FILE = __file__


# ---- UnsupportedSyntaxError -------------------------------------------------------------------

def uses_with(x):
    with open(x):  # marker-with
        y = x + 1
    return y


def uses_try(x):
    try:  # marker-try
        y = x + 1
    except ValueError:
        y = 0
    return y


def uses_lambda(x):
    g = lambda v: v + 1  # noqa: E731  marker-lambda
    return x


def uses_dictcomp(X):
    ys = {k: v * 2 for k, v in enumerate(X)}  # marker-dictcomp
    return X


def uses_print(x):
    y = x * 2
    print(y)  # marker-print
    return y


def uses_nested_def(x):
    def inner(v):  # marker-def
        return v + 1
    return x


COUNTER = 0


def uses_global(x):
    global COUNTER  # marker-global
    return x


UNSUPPORTED = [
    (uses_with, "'with' statement", "marker-with"),
    (uses_try, "'try' statement", "marker-try"),
    (uses_lambda, "lambda", "marker-lambda"),
    (uses_dictcomp, "dict comprehension", "marker-dictcomp"),
    (uses_print, "print", "marker-print"),
    (uses_nested_def, "nested function definition", "marker-def"),
    (uses_global, "'global' statement", "marker-global"),
]


@pytest.mark.parametrize("fn,construct,marker", UNSUPPORTED, ids=[u[0].__name__ for u in UNSUPPORTED])
def test_unsupported_syntax_names_construct_file_line_and_shows_source(fn, construct, marker):
    arg = np.ones((4, 3)) if fn is uses_dictcomp else np.arange(4)
    with pytest.raises(UnsupportedSyntaxError) as info:
        batched(fn)(arg)
    err = info.value
    line = line_of(fn, marker)
    msg = str(err)
    assert construct in msg
    assert err.filename == THIS_FILE and THIS_FILE in msg
    assert err.line == line and f":{line}" in msg
    assert marker in msg  # the offending source line is shown
    assert isinstance(err, BatchingError)


@pytest.mark.parametrize("fn,construct,marker", UNSUPPORTED[:3], ids=[u[0].__name__ for u in UNSUPPORTED[:3]])
def test_unsupported_syntax_is_raised_by_explain_too(fn, construct, marker):
    with pytest.raises(UnsupportedSyntaxError, match=construct):
        batched(fn).explain()


add_one = lambda x: x + 1  # noqa: E731  marker-toplevel-lambda


for _lambda in [lambda x: x * 2]:  # marker-lambda-in-a-for-header
    LAMBDA_IN_A_FOR_HEADER = _lambda


def test_a_lambda_whose_line_is_a_statement_header_is_named_not_a_parse_error():
    with pytest.raises(UnsupportedSyntaxError, match=r"not a plain 'def' function \(a lambda\)") as info:
        batched(LAMBDA_IN_A_FOR_HEADER)(np.arange(3))
    assert "marker-lambda-in-a-for-header" in str(info.value)  # (the line shown)


def test_a_lambda_as_the_batched_function_is_named_with_its_line():
    with pytest.raises(UnsupportedSyntaxError) as info:
        batched(add_one)(np.arange(3))
    assert "not a plain 'def' function" in str(info.value)
    assert info.value.line == line_of(add_one, "marker-toplevel-lambda")


def test_unsupported_syntax_inside_a_called_helper_names_the_helper_line():
    def caller(x):
        return uses_with(x) + 1

    with pytest.raises(UnsupportedSyntaxError) as info:
        batched(caller)(np.arange(3))
    assert info.value.line == line_of(uses_with, "marker-with")
    assert "'with' statement" in str(info.value)


# ---- BatchError ---------------------------------------------------------------------------------

def add2(a, b):
    return a + b


def ident(x):
    return x


def test_batch_sizes_that_disagree_name_both_arguments():
    with pytest.raises(BatchError) as info:
        batched(add2)(np.arange(3), np.arange(5))
    msg = str(info.value)
    assert "'a'" in msg and "'b'" in msg and "3" in msg and "5" in msg
    assert isinstance(info.value, ValueError)


def test_batch_sizes_that_disagree_inside_a_pytree_name_the_leaf():
    with pytest.raises(BatchError) as info:
        batched(ident)({"p": np.arange(3), "q": np.arange(4)})
    msg = str(info.value)
    assert "p" in msg and "q" in msg and "3" in msg and "4" in msg


def test_wrong_in_axes_length():
    with pytest.raises(BatchError) as info:
        batched(add2, in_axes=(0,))(np.arange(3), np.arange(3))
    assert "in_axes" in str(info.value) and "1" in str(info.value) and "2" in str(info.value)
    with pytest.raises(BatchError, match="in_axes"):
        batched(add2, in_axes=(0, 0, 0))(np.arange(3), np.arange(3))


@pytest.mark.parametrize("leaf,kind", [("abc", "str"), (object(), "object")], ids=["str", "object"])
def test_leaf_that_is_not_an_array_or_scalar_names_the_argument(leaf, kind):
    with pytest.raises(BatchError) as info:
        batched(add2)(np.arange(3), leaf)
    msg = str(info.value)
    assert "'b'" in msg and kind in msg


def test_object_dtype_array_is_rejected_naming_the_argument():
    with pytest.raises(BatchError) as info:
        batched(add2)(np.arange(3), np.array([1, "x", None], dtype=object))
    assert "'b'" in str(info.value) and "object" in str(info.value)


@pytest.mark.parametrize("leaf", [np.array([b"a", b"bb", b"ccc"]), np.zeros(3, dtype=[("u", "f8")])],
                         ids=["bytes", "records"])
def test_bytes_and_record_arrays_are_rejected_naming_the_argument_and_dtype(leaf):
    # (they reached per-lane operations that failed naming the user's line)
    with pytest.raises(BatchError, match=rf"argument 'b' has dtype {re.escape(str(leaf.dtype))}"):
        batched(add2)(np.arange(3), leaf)


def scaled_by_default(x, y=2.0, z=3.0):
    return x * y + z


def test_a_call_with_nothing_batched_says_which_in_axes_entries_went_to_defaults():
    f = batched(scaled_by_default, in_axes=(None, 0, None))
    with pytest.raises(BatchError, match=r"'y', were left to their defaults, which are broadcast"):
        f(1.0)
    np.testing.assert_array_equal(f(1.0, np.array([1.0, 2.0])), [4.0, 5.0])
    with pytest.raises(BatchError, match=r"every in_axes entry is None"):
        batched(scaled_by_default, in_axes=None)(1.0)
    # a default is broadcast whatever its entry (0 here)
    np.testing.assert_array_equal(batched(scaled_by_default)(np.array([1.0, 2.0])), [5.0, 7.0])
    with pytest.raises(BatchError, match=r"no argument is batched \('x' \(a tuple\) holds no array to batch\)"):
        batched(scaled_by_default, in_axes=(0, None, None))((), 1.0)


def test_a_masked_array_argument_is_refused_rather_than_losing_its_mask():
    masked, plain = np.ma.array([1.0, 2.0], mask=[False, True]), np.array([1.0, 2.0])
    for in_axes, args in [((0, None, None), (masked, 1.0)), ((None, 0, None), (masked, plain))]:
        with pytest.raises(BatchError, match=r"argument 'x' is a numpy masked array.*x.filled"):
            batched(scaled_by_default, in_axes=in_axes)(*args)


def first_item_sum(p, b):
    return p[0] + p[1][0] + b


def test_an_in_axes_structure_unlike_its_arguments_names_the_item_it_was_given_for():
    p = (np.zeros(3), (np.zeros(3), 3.0))
    with pytest.raises(BatchError, match=r"entry for argument 'p\[1\]' is a dict \(\{'a': 0\}\), but the argument is a tuple"):
        batched(first_item_sum, in_axes=((0, {"a": 0}), 0))(p, np.zeros(3))
    with pytest.raises(BatchError, match=r"entry for argument 'b' is a tuple"):
        batched(first_item_sum, in_axes=((0, (0, None)), (0,)))(p, np.zeros(3))
    np.testing.assert_array_equal(batched(first_item_sum, in_axes=((0, (0, None)), 0))(p, np.ones(3)), [1.0] * 3)


def rounded(x):
    return round(x), math.floor(x), int(x)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_float_to_int_conversion_raises_the_error_of_the_first_failing_lane(backend):
    # lane 1 (inf) fails first in the per-sample loop: OverflowError, not lane 3's ValueError (NaN)
    with pytest.raises(LaneError) as info:
        batched(rounded, backend=backend)(np.array([1.0, np.inf, 2.0, np.nan]))
    assert info.value.python_error is OverflowError and list(info.value.lanes) == [1]


def truncated(x):
    return math.trunc(x), math.trunc(x * 1.0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_math_trunc_of_a_numpy_scalar_other_than_float64_raises_as_python_does(backend):
    # numpy's scalars have no __trunc__ (float64 inherits float's): the values came back
    check_batching(truncated, (np.array([1.5, -2.5]),), backend=backend)
    for x in (np.array([1.5, -2.5], np.float32), np.array([3, -4], np.int64)):
        with pytest.raises(LaneError, match=f"type numpy.{x.dtype.name} doesn't define __trunc__ method"):
            batched(truncated, backend=backend)(x)


def test_axis_out_of_range_names_argument_axis_and_shape():
    with pytest.raises(BatchError) as info:
        batched(add2, in_axes=(0, 2))(np.arange(3), np.ones((3, 4)))
    msg = str(info.value)
    assert "'b'" in msg and "2" in msg and "(3, 4)" in msg


def test_scalar_with_axis_zero_names_the_argument():
    with pytest.raises(BatchError) as info:
        batched(add2)(np.arange(3), 5)
    msg = str(info.value)
    assert "'b'" in msg and "scalar" in msg
    with pytest.raises(BatchError, match="'b'"):
        batched(add2)(np.arange(3), np.float64(1.5))


def test_no_batched_argument_and_empty_batch_are_batch_errors():
    with pytest.raises(BatchError):
        batched(add2, in_axes=None)(np.arange(3), np.arange(3))
    with pytest.raises(BatchError):
        batched(add2)(np.arange(0), np.arange(0))


# ---- NonTerminationError -------------------------------------------------------------------------

def never_ends_for_odd(x):
    while x != 0:  # marker-loop
        x -= 2
    return x


def test_max_iters_raises_naming_the_loop_line_and_the_lanes_still_running():
    x = np.array([0, 3, 4, 7, 10, -2, 5])
    f = batched(never_ends_for_odd, max_iters=50)
    with pytest.raises(NonTerminationError) as info:
        f(x)
    err = info.value
    line = line_of(never_ends_for_odd, "marker-loop")
    assert sorted(np.asarray(err.lanes).tolist()) == [1, 3, 5, 6]  # odd, or negative
    assert err.line == line
    msg = str(err)
    assert f":{line}" in msg and "max_iters=50" in msg and "marker-loop" in msg
    for lane in (1, 3, 5, 6):
        assert str(lane) in msg


@batched(max_iters=5)
def limited_never_ends_for_odd(x):
    while x != 0:  # marker-limited-loop
        x -= 2
    return x


def calls_the_limited_function(x):
    return limited_never_ends_for_odd(x) * 2


def calls_the_limited_function_per_item(v):
    s = 0
    for x in v:
        s += limited_never_ends_for_odd(x)
    return s


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_callees_own_max_iters_holds_when_another_batched_function_calls_it(backend):
    # (it was dropped there: the loop ran forever)
    with pytest.raises(NonTerminationError, match=r"max_iters=5") as info:
        batched(calls_the_limited_function, backend=backend)(np.array([0, 3, 4]))
    assert info.value.line == line_of(limited_never_ends_for_odd.per_sample, "marker-limited-loop")
    with pytest.raises(NonTerminationError, match=r"max_iters=5"):
        batched(calls_the_limited_function_per_item, backend=backend)(np.array([[0, 4], [3, 2]]))
    np.testing.assert_array_equal(batched(calls_the_limited_function, backend=backend)(np.array([0, 4, 10])), [0, 0, 0])
    with pytest.raises(NonTerminationError, match=r"max_iters=2"):  # (a smaller limit of the caller's stays)
        batched(calls_the_limited_function, max_iters=2, backend=backend)(np.array([0, 10]))


def test_max_iters_is_not_hit_by_loops_that_finish_in_time():
    x = np.array([0, 4, 10, 2, 60])
    assert np.array_equal(batched(never_ends_for_odd, max_iters=50)(x), [0, 0, 0, 0, 0])


def test_max_iters_allows_a_loop_of_exactly_max_iters_trips():
    # x = 100 runs the body exactly 50 times: "more than max_iters trips" is not reached
    x = np.array([0, 100, 2])
    assert np.array_equal(batched(never_ends_for_odd, max_iters=50)(x), [0, 0, 0])
    with pytest.raises(NonTerminationError):
        batched(never_ends_for_odd, max_iters=49)(x)


def calls_looping_helper(x):
    if x > 100:
        return 0
    return never_ends_for_odd(x)


def test_max_iters_lanes_are_batch_positions_inside_helper_calls():
    x = np.array([200, 2, 201, 3, 4, 5])
    with pytest.raises(NonTerminationError) as info:
        batched(calls_looping_helper, max_iters=20)(x)
    assert sorted(np.asarray(info.value.lanes).tolist()) == [3, 5]


def never_ends_inner(x):
    s = 0
    for k in range(3):
        while x != k:  # marker-inner
            x -= 2
        s += x
    return s


def test_max_iters_in_a_large_batch_names_batch_positions_after_compaction():
    x = np.full(500, 10)
    x[[17, 333, 480]] = 101  # odd: never reaches 0; the other lanes leave early
    with pytest.raises(NonTerminationError) as info:
        batched(never_ends_inner, max_iters=200)(x)
    assert np.asarray(info.value.lanes).tolist() == [17, 333, 480]
    assert info.value.line == line_of(never_ends_inner, "marker-inner")


# ---- LaneError -----------------------------------------------------------------------------------

def int_div(a, b):
    q = a // b  # marker-div
    return q


def int_mod(a, b):
    return int(a) % int(b)  # marker-mod


def test_integer_division_by_zero_names_lane_and_line():
    a = np.arange(8)
    b = np.array([1, 2, 3, 0, 1, 1, 2, 1])
    with pytest.raises(LaneError) as info:
        batched(int_div)(a, b)
    err = info.value
    line = line_of(int_div, "marker-div")
    assert np.asarray(err.lanes).tolist() == [3]
    assert err.line == line
    assert err.python_error is ZeroDivisionError
    msg = str(err)
    assert "3" in msg and f":{line}" in msg and "ZeroDivisionError" in msg and "marker-div" in msg


def test_modulo_by_zero_names_every_failing_lane():
    b = np.array([0, 2, 3, 0, 1, 0, 2])
    with pytest.raises(LaneError) as info:
        batched(int_mod)(np.arange(7), b)
    assert np.asarray(info.value.lanes).tolist() == [0, 3, 5]
    assert info.value.line == line_of(int_mod, "marker-mod")
    assert "[0, 3, 5]" in str(info.value)


def index_oob(X, i):
    return X[i]  # marker-index


def test_index_out_of_bounds_on_an_active_lane():
    X = np.ones((5, 4))
    i = np.array([0, 3, 4, -4, -5])
    with pytest.raises(LaneError) as info:
        batched(index_oob)(X, i)
    err = info.value
    assert sorted(np.asarray(err.lanes).tolist()) == [2, 4]
    assert err.python_error is IndexError
    assert err.line == line_of(index_oob, "marker-index")
    assert "IndexError" in str(err)


def test_gather_out_of_bounds_from_a_broadcast_table():
    with pytest.raises(LaneError) as info:
        batched(index_oob, in_axes=(None, 0))(np.arange(3), np.array([0, 1, 2, 3]))
    assert np.asarray(info.value.lanes).tolist() == [3]


def sqrt_of(x):
    return math.sqrt(x)  # marker-sqrt


_MATH_EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e308, -1e308, 710.0, -710.0, math.inf, -math.inf, math.nan, 5e-324]
_MATH_ONE = ["sqrt", "exp", "log", "log1p", "expm1", "log2", "log10", "sin", "cos", "tan", "asin", "acos", "atan",
             "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "fabs", "erf", "degrees", "radians"]
_MATH_TWO = ["atan2", "hypot", "copysign", "fmod", "pow", "log"]


def _math_outcome(call):
    try:
        return "ok", call()
    except LaneError as exc:
        return exc.python_error.__name__, None
    except Exception as exc:  # noqa: BLE001 - the per-sample run's own exception
        return type(exc).__name__, None


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_math_functions_raise_what_cpython_raises_at_poles_overflows_and_domain_edges(backend):
    """``log(0.0)`` and ``atanh(1.0)`` are poles (ValueError), ``exp(1000.0)`` a range error
    (OverflowError), ``degrees(1e308)`` and ``hypot`` overflow to inf without one,
    ``pow(0.0, -1.0)`` is a pole, ``log(x, 1.0)`` divides by zero: one lane at a time, as
    CPython's ``math`` raises it."""
    wrong = []
    # (numba: the functions whose errors differ by kind, each a kernel to compile)
    pairs = [(n, False) for n in _MATH_ONE] + [(n, True) for n in _MATH_TWO]
    if backend == "numba":
        pairs = [(n, two) for n, two in pairs if n in ("log", "log1p", "atanh", "sqrt", "exp", "cosh", "degrees",
                                                         "hypot", "pow", "fmod")]
    for name, two in pairs:
        fn = getattr(math, name)
        per = (lambda x, y, fn=fn: fn(x, y)) if two else (lambda x, fn=fn: fn(x))
        f = batched(_MATH_FUNCTIONS[(name, two)], backend=backend)
        cases = [(x, y) for x in _MATH_EDGES[:10] + [math.inf, math.nan] for y in _MATH_EDGES[:10] + [math.inf, math.nan]] \
            if two else [(x,) for x in _MATH_EDGES]
        for args in cases:
            want = _math_outcome(lambda: per(*args))
            got = _math_outcome(lambda: float(f(*[np.array([a]) for a in args])[0]))
            same = want[0] == got[0] and (want[0] != "ok" or np.isclose(want[1], got[1], rtol=4e-16, atol=0.0,
                                                                          equal_nan=True))
            if not same:
                wrong.append((name, args, want, got))
    assert not wrong, wrong[:10]


def str_or_int(x):
    key = "s" if x > 0 else 7  # marker-str-or-int
    return key == "s"


def test_a_variable_holding_a_str_on_some_lanes_and_an_int_on_others_names_both():
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="a str on some lanes and an int on others") as info:
        batched(str_or_int)(np.array([1.0, -1.0]))
    assert str(line_of(str_or_int, "marker-str-or-int")) in str(info.value)


def log_of(x):
    return math.log(x)  # marker-log


def test_a_math_error_names_the_first_failing_lane_with_its_own_exception():
    with pytest.raises(LaneError) as info:  # lane 1 is a pole (ValueError), lane 3 too; lane 2 a domain error
        batched(log_of, backend="numpy")(np.array([1.0, 0.0, -1.0, -0.0]))
    assert info.value.python_error is ValueError and np.asarray(info.value.lanes).tolist() == [1, 2, 3]


def test_math_sqrt_of_negative_on_an_active_lane():
    with pytest.raises(LaneError) as info:
        batched(sqrt_of)(np.array([4.0, 1.0, -1.0, 9.0]))
    err = info.value
    assert np.asarray(err.lanes).tolist() == [2]
    assert err.python_error is ValueError
    assert "math domain error" in str(err)
    assert err.line == line_of(sqrt_of, "marker-sqrt")


def asserts_positive(x):
    y = x * 2
    assert y > 0, "needs positive"  # marker-assert
    return y


def test_failing_assert_on_a_lane():
    with pytest.raises(LaneError) as info:
        batched(asserts_positive)(np.array([1, 2, -3, 4, 0]))
    err = info.value
    assert sorted(np.asarray(err.lanes).tolist()) == [2, 4]
    assert err.python_error is AssertionError
    assert err.line == line_of(asserts_positive, "marker-assert")
    assert "needs positive" in str(err)


def raises_value_error(x):
    if x > 10:
        raise ValueError("too big")  # marker-raise
    return x


def test_raise_reached_by_a_lane():
    with pytest.raises(LaneError) as info:
        batched(raises_value_error)(np.array([1, 20, 3, 11]))
    err = info.value
    assert np.asarray(err.lanes).tolist() == [1, 3]
    assert err.python_error is ValueError
    assert err.line == line_of(raises_value_error, "marker-raise")
    assert "too big" in str(err) and "ValueError" in str(err)


def test_raise_not_reached_by_any_lane_is_silent():
    check_batching(raises_value_error, (np.array([1, 2, 3, 10]),))


def late_failure(x):
    i = 0
    while i < x:
        i += 1
        if i == 50:
            i = i // (x - x)  # marker-late
    return i


def test_lane_error_in_a_large_batch_names_batch_positions_after_compaction():
    x = np.full(500, 10)
    x[[17, 333, 480]] = 100
    with pytest.raises(LaneError) as info:
        batched(late_failure)(x)
    assert np.asarray(info.value.lanes).tolist() == [17, 333, 480]
    assert info.value.line == line_of(late_failure, "marker-late")
    assert "[17, 333, 480]" in str(info.value)


def div_in_loop(x):
    s = 0
    for k in range(3, -3, -1):
        s += x // k  # marker-loopdiv
    return s


def test_lane_error_inside_a_loop_names_the_lanes_reaching_it():
    x = np.arange(5)
    with pytest.raises(LaneError) as info:
        batched(div_in_loop)(x)
    assert np.asarray(info.value.lanes).tolist() == [0, 1, 2, 3, 4]
    assert info.value.line == line_of(div_in_loop, "marker-loopdiv")


def helper_div(a, b):
    return a // b  # marker-helperdiv


def calls_div_on_some(a, b):
    if a > 5:
        return helper_div(a, b)
    return 0


def test_lane_error_inside_a_helper_reports_batch_positions():
    a = np.array([1, 7, 2, 9, 8, 6])
    b = np.array([0, 1, 0, 0, 2, 0])
    with pytest.raises(LaneError) as info:
        batched(calls_div_on_some)(a, b)
    assert np.asarray(info.value.lanes).tolist() == [3, 5]
    assert info.value.line == line_of(helper_div, "marker-helperdiv")


# ---- more lane errors: where Python raises per sample, and where numpy does not ---------------------

def python_float_div(x, y):
    return float(x) / float(y)  # marker-fdiv


def numpy_float_div(x, y):
    return x / y


def test_python_float_division_by_zero_is_a_lane_error():
    with pytest.raises(LaneError) as info:
        batched(python_float_div)(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 2.0]))
    assert np.asarray(info.value.lanes).tolist() == [1]
    assert info.value.python_error is ZeroDivisionError
    assert info.value.line == line_of(python_float_div, "marker-fdiv")


def test_numpy_float_division_by_zero_gives_inf_and_nan_like_numpy():
    # per sample, np.float64(1.0) / np.float64(0.0) is inf (numpy warns, does not raise)
    x = np.array([1.0, -1.0, 0.0, 2.0])
    y = np.array([0.0, 0.0, 0.0, 4.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = check_batching(numpy_float_div, (x, y))
    assert np.isposinf(res[0]) and np.isneginf(res[1]) and np.isnan(res[2])


def int_of_float(x):
    return int(x)  # marker-int


def test_int_of_nan_is_a_lane_error():
    with pytest.raises(LaneError) as info:
        batched(int_of_float)(np.array([1.5, np.nan, 2.0]))
    assert np.asarray(info.value.lanes).tolist() == [1]
    assert info.value.python_error is ValueError
    assert info.value.line == line_of(int_of_float, "marker-int")


def floor_of(x):
    return math.floor(x)


def ceil_of(x):
    return math.ceil(x)


def trunc_of(x):
    return math.trunc(x)


def round_of(x):
    return round(x)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("fn", [floor_of, ceil_of, trunc_of, round_of, int_of_float])
def test_float_to_int_conversions_beyond_int64_nan_and_inf_raise_on_their_lanes(fn, backend):
    """Python's int would grow beyond int64: an OverflowError, never INT64_MIN; NaN and the
    infinities raise what Python raises (``round(inf)`` too: OverflowError)."""
    f = batched(fn, backend=backend)
    np.testing.assert_array_equal(f(np.array([1.5, -2.5, 9.2e18])), [fn(1.5), fn(-2.5), fn(9.2e18)])
    for bad, error in [(1e20, OverflowError), (-9.3e18, OverflowError), (np.inf, OverflowError),
                       (-np.inf, OverflowError), (np.nan, ValueError)]:
        if not np.isfinite(bad):
            with pytest.raises(error):
                fn(bad)
        with pytest.raises(LaneError) as info:
            f(np.array([0.5, bad]))
        assert info.value.python_error is error and np.asarray(info.value.lanes).tolist() == [1]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("fn", [round_of, int_of_float])
def test_a_uint64_beyond_int64_made_a_python_int_raises_overflow_not_a_negative_int(fn, backend):
    """Python's int holds 2**63 exactly; vmapper's Python ints are int64, so the conversion
    raises on those lanes (it gave -2**63 before), and smaller uint64s convert."""
    f = batched(fn, backend=backend)
    ok = np.array([0, 5, 2 ** 63 - 1], dtype=np.uint64)
    np.testing.assert_array_equal(f(ok), [fn(v) for v in ok.tolist()])
    with pytest.raises(LaneError) as info:
        f(np.array([7, 2 ** 63, 2 ** 64 - 1], dtype=np.uint64))
    assert info.value.python_error is OverflowError and "uint64 beyond int64" in str(info.value)
    assert np.asarray(info.value.lanes).tolist() == ([1, 2] if backend == "numpy" else [1])


def sqrt_of_item(s):
    return math.sqrt(s)


def floor_and_isnan(s):
    return math.floor(s) + math.isnan(s)


def isclose_to_four(s):
    return math.isclose(s, 4.0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("fn", [sqrt_of_item, floor_and_isnan, isclose_to_four])
def test_math_functions_refuse_per_lane_strs_as_python_does(fn, backend):
    """numpy would parse "4" as 4.0; Python's math module raises TypeError."""
    with pytest.raises(TypeError, match="must be real number, not str"):
        fn("4")
    with pytest.raises(LaneError, match="must be real number, not str") as info:
        batched(fn, backend=backend)(np.array(["4", "9"]))
    assert info.value.python_error is TypeError


def reads_an_undefined_name_on_big_lanes(x):
    if x > 100:
        return x + NEVER_DEFINED_ANYWHERE  # noqa: F821  marker-undefined-read
    return x


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_an_undefined_name_raises_nameerror_only_on_the_lanes_that_read_it(backend):
    f = batched(reads_an_undefined_name_on_big_lanes, backend=backend)
    np.testing.assert_array_equal(f(np.array([1.0, 2.0])), [1.0, 2.0])
    with pytest.raises(LaneError, match="name 'NEVER_DEFINED_ANYWHERE' is not defined") as info:
        f(np.array([1.0, 200.0, 300.0]))
    assert info.value.python_error is NameError and np.asarray(info.value.lanes).tolist() == [1, 2]
    assert info.value.line == line_of(reads_an_undefined_name_on_big_lanes, "marker-undefined-read")


def two_args(a, b):
    return a + b


def calls_an_undefined_function(x):
    if x > 100:
        return undefined_helper(x)  # noqa: F821
    return x


def passes_a_wrong_keyword(x):
    return two_args(x, c=x)


def reads_a_missing_numpy_function(x):
    return np.no_such_function(x)


@pytest.mark.parametrize("fn, message, error", [
    (calls_an_undefined_function, "name 'undefined_helper' is not defined", NameError),
    (passes_a_wrong_keyword, "two_args\\(\\) got an unexpected keyword argument 'c'", TypeError),
    (reads_a_missing_numpy_function, "module 'numpy' has no attribute 'no_such_function'", AttributeError),
])
def test_mistakes_found_when_compiling_are_worded_as_pythons_error_not_as_a_limitation(fn, message, error):
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=message) as info:
        batched(fn)(np.array([1.0, 2.0]))
    text = str(info.value)
    assert info.value.python_error is error and f"{error.__name__} per sample" in text
    assert "not supported" not in text


def inverse_or_key(x):
    if x > 5:
        raise KeyError("big")
    return 1 // x


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_lane_error_is_also_the_python_error_the_per_sample_loop_raises(backend):
    """``except ZeroDivisionError`` catches the batched run's error as it caught the loop's;
    the message stays vmapper's (KeyError would quote it); it pickles with its lanes."""
    import pickle
    f = batched(inverse_or_key, backend=backend)
    with pytest.raises(ZeroDivisionError) as info:
        f(np.array([1, 0, 2]))
    err = info.value
    assert isinstance(err, LaneError) and err.python_error is ZeroDivisionError and list(err.lanes) == [1]
    again = pickle.loads(pickle.dumps(err))
    assert isinstance(again, ZeroDivisionError) and list(again.lanes) == [1] and str(again) == str(err)
    with pytest.raises(KeyError) as info:
        f(np.array([1, 9]))
    assert str(info.value).startswith("KeyError: big on lane(s) [1]")


def unbound_on_some_lanes(x):
    if x > 0:
        y = x * 2
    return y  # marker-unbound


def test_reading_a_variable_unassigned_on_an_active_lane_names_it():
    check_batching(unbound_on_some_lanes, (np.array([1, 2, 3]),))
    with pytest.raises(LaneError) as info:
        batched(unbound_on_some_lanes)(np.array([1, -2, 3, 0]))
    err = info.value
    assert np.asarray(err.lanes).tolist() == [1, 3]
    assert err.python_error is UnboundLocalError
    assert "'y'" in str(err)
    assert err.line == line_of(unbound_on_some_lanes, "marker-unbound")


def unpack_three(X):
    a, b, c = X  # marker-unpack
    return a


def test_unpacking_the_wrong_number_of_values_is_a_lane_error():
    with pytest.raises(LaneError) as info:
        batched(unpack_three)(np.ones((3, 4)))
    assert info.value.python_error is ValueError
    assert info.value.line == line_of(unpack_three, "marker-unpack")
    assert "unpack" in str(info.value)


def lane_error_shows_source(a, b):
    total = a + b
    return total // (b - b)  # marker-show


def test_lane_error_message_shows_the_source_line_and_file():
    with pytest.raises(LaneError) as info:
        batched(lane_error_shows_source)(np.arange(3), np.arange(3))
    msg = str(info.value)
    assert "marker-show" in msg and THIS_FILE in msg
    assert np.asarray(info.value.lanes).tolist() == [0, 1, 2]
    assert isinstance(info.value, BatchingError)


def branch_local_shapes(x):
    if x > 0:
        g = np.ones(3) * x
        y = g.sum()
    else:
        g = np.ones(5) * x
        y = g.sum() * 2
    return y


def mixed_shapes_read_after(x):
    if x > 0:
        g = np.ones(3) * x
    else:
        g = np.ones(5) * x
    return g.sum()


def test_a_variable_may_hold_different_shapes_on_different_lanes_until_a_read_mixes_them():
    from vmapper.testing import check_batching
    x = np.array([-1.0, 2.0, 3.0, -4.0])
    check_batching(branch_local_shapes, (x,))
    with pytest.raises(UnsupportedSyntaxError, match="different shapes") as err:
        batched(mixed_shapes_read_after)(x)
    assert "return g.sum()" in str(err.value)


def _math_function_sources():
    """One per-sample function per math function (vmapper reads their source)."""
    import linecache
    src = "import math\n"
    for name in _MATH_ONE:
        src += f"def m1_{name}(x):\n    return math.{name}(x)\n"
    for name in _MATH_TWO:
        src += f"def m2_{name}(x, y):\n    return math.{name}(x, y)\n"
    filename = "<vmapper-test-math-functions>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    ns = {}
    exec(compile(src, filename, "exec"), ns)
    return {**{(n, False): ns[f"m1_{n}"] for n in _MATH_ONE}, **{(n, True): ns[f"m2_{n}"] for n in _MATH_TWO}}


_MATH_FUNCTIONS = _math_function_sources()


def index_by(x, i):
    return x[i]


def tuple_item(i):
    t = (1.0, 2.0, 3.0)
    return t[i]


def tuple_item_by_comparison(x):
    t = (1.0, 2.0, 3.0)
    return t[float(x) > 0]  # (a Python bool)


def test_a_per_lane_bool_index_is_not_read_as_an_int():
    x = np.arange(12.0).reshape(4, 3)
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="per-sample bool"):
        batched(index_by)(x, np.array([True, False, True, False]))  # (numpy: a boolean mask)
    with pytest.raises(LaneError, match="not numpy.bool") as info:  # (a list or tuple: TypeError)
        batched(tuple_item)(np.array([True, False]))
    assert info.value.python_error is TypeError
    # a Python bool is an int to a tuple, as in Python
    check_batching(tuple_item_by_comparison, (np.array([1.0, -1.0, 0.0]),))


def test_a_uint64_index_beyond_int64_is_out_of_range_not_negative():
    x = np.arange(12.0).reshape(4, 3)
    with pytest.raises(LaneError) as info:
        batched(index_by)(x, np.array([0, 1, 2, 2**64 - 1], dtype=np.uint64))
    assert info.value.python_error is IndexError and np.asarray(info.value.lanes).tolist() == [3]


def stores_into_int64(x, i):
    y = np.zeros(3, dtype=np.int64)
    y[i] = x
    return y


def stores_into_int8(x):
    y = np.zeros(3, dtype=np.int8)
    y[0] = x
    return y


@pytest.mark.parametrize("fn, args, error, lanes", [
    (stores_into_int64, (np.array([1.7, np.nan]), np.array([0, 1])), ValueError, [1]),
    (stores_into_int64, (np.array([1.7, np.inf]), np.array([0, 1])), OverflowError, [1]),
    (stores_into_int64, (np.array([1.7, 3e30]), np.array([0, 1])), OverflowError, [1]),
    (stores_into_int8, (np.array([1, 300]),), OverflowError, [1]),
    (stores_into_int8, (np.array([-129, 5]),), OverflowError, [0]),
])
def test_storing_a_value_an_int_array_cannot_hold_raises_as_numpy_does(fn, args, error, lanes):
    for k in lanes:
        with pytest.raises(error):
            fn(*[a[k] for a in args])
    with pytest.raises(LaneError) as info:
        batched(fn)(*args)
    assert info.value.python_error is error and np.asarray(info.value.lanes).tolist() == lanes
    ok = [np.delete(a, lanes) for a in args]
    np.testing.assert_array_equal(batched(fn)(*ok), [fn(*v) for v in zip(*ok)])


def raises_with_values(x):
    if x < 0:
        raise ValueError(f"negative: {x}, {x:.2f}, {x!r}")  # marker-fstring
    assert x < 10, f"too big: {x * 2}"
    return x


def test_an_f_string_message_is_formatted_with_the_first_failing_lanes_values():
    f = batched(raises_with_values, backend="numpy")
    with pytest.raises(LaneError) as info:
        f(np.array([1.0, -1.5, 3.0, -2.0]))
    with pytest.raises(ValueError) as per_sample:
        raises_with_values(np.float64(-1.5))
    assert f"ValueError: {per_sample.value} (the message of lane 1)" in str(info.value)
    assert np.asarray(info.value.lanes).tolist() == [1, 3]
    assert info.value.line == line_of(raises_with_values, "marker-fstring")
    with pytest.raises(LaneError, match=r"AssertionError: too big: 24\.0 on lane") as info:
        f(np.array([1.0, 12.0]))


def test_a_kernel_reports_an_f_string_message_as_written():
    with pytest.raises(LaneError, match=r"ValueError: negative: \{x\}, \{x:\.2f\}, \{x!r\} on lane"):
        batched(raises_with_values, backend="numba")(np.array([1.0, -1.5]))


def fixed_index(x):
    return x[1, 7]


def test_a_fixed_index_out_of_range_names_the_per_sample_axis():
    with pytest.raises(IndexError) as per_sample:
        fixed_index(np.zeros((4, 4)))
    with pytest.raises(LaneError) as info:
        batched(fixed_index)(np.zeros((3, 4, 4)))
    assert str(per_sample.value) in str(info.value)  # axis 1 of the sample, not of the batch


def shifts(x, s):
    k = int(x)
    return (k << int(s)) + (k >> int(s))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_negative_shift_count_of_python_ints_raises_value_error(backend):
    with pytest.raises(ValueError, match="negative shift count"):
        shifts(4, -2)
    with pytest.raises(LaneError, match="negative shift count") as info:
        batched(shifts, backend=backend)(np.array([1, 4, 5]), np.array([1, -2, 3]))
    assert info.value.python_error is ValueError and np.asarray(info.value.lanes).tolist() == [1]
    check_batching(shifts, (np.array([1, 4, -5]), np.array([1, 2, 60])), backend=backend)


def grows_past_int64(n):
    y = 0
    for _ in range(n):
        y += 2**62
    return y


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_python_int_that_grows_past_int64_wraps_as_on_every_lane_never_to_float(backend):
    out = batched(grows_past_int64, backend=backend)(np.array([1, 2, 3]))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [2**62, -2**63, -2**62])  # 2**63 and 3 * 2**62, wrapped


def _pair_sum(x, y):
    return x + y


def _leaf_sum(node):
    if node.is_leaf:
        return node.value
    return _leaf_sum(node.left) + _leaf_sum(node.right)


def test_a_list_of_numbers_or_of_trees_gets_a_hint_toward_arrays_and_forests():
    with pytest.raises(vmapper.BatchError, match=r"np\.asarray.*Forest\.from_nested\(trees\)\.roots"):
        vmapper.batched(_pair_sum)([1, 2, 3], [4, 5, 6])
    with pytest.raises(vmapper.BatchError, match=r"is a Forest: pass forest\.roots"):
        vmapper.batched(_leaf_sum)(vmapper.Forest.from_nested([(1, 2)]))


@pytest.mark.parametrize("options, message", [({"max_iters": 0}, "max_iters"), ({"backend": "torch"}, "backend"),
                                              ({"memo": "yes"}, "memo"), ({"out_axes": None}, "out_axes")])
def test_bad_options_raise_a_batch_error_naming_the_option(options, message):
    with pytest.raises(vmapper.BatchError, match=message):
        vmapper.batched(_pair_sum, **options)


def test_a_bad_backend_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("VMAPPER_BACKEND", "torch")
    with pytest.raises(vmapper.BatchError, match=r"\$VMAPPER_BACKEND"):
        vmapper.batched(_pair_sum)
