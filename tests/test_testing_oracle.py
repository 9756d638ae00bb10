"""vmapper.testing.check_batching: what it compares and how strictly."""
import numpy as np
import pytest

import vmapper
from vmapper.testing import check_batching
from vmapper.testing.oracle import _compare


def log_of(x):
    return np.log(x)


def test_a_nans_sign_bit_is_payload_but_the_sign_of_zero_counts():
    with np.errstate(invalid="ignore"):
        check_batching(log_of, (np.array([1.0, -1.0, np.nan]),), backend="numba")  # its NaN's sign may differ
    _compare(np.array([np.nan, 1.0]), np.array([-np.nan, 1.0]), True, 0.0, 0.0, "result")
    with pytest.raises(AssertionError, match="1 mismatching element"):
        _compare(np.array([0.0, 1.0]), np.array([-0.0, 1.0]), True, 0.0, 0.0, "result")


def nested_results(n):
    return n, (n + 1, n * 2.0)


def test_nested_tuples_of_results_are_compared_leaf_by_leaf():
    got = check_batching(nested_results, (np.arange(5),))
    np.testing.assert_array_equal(got[1][1], np.arange(5) * 2.0)


def test_results_are_compared_where_out_axes_puts_the_batch_axis():
    check_batching(vmapper.batched(lambda_free_pair, out_axes=1), (np.arange(4.0),))


def lambda_free_pair(x):
    return np.array([x, 2 * x])


def test_options_for_an_already_batched_function_are_refused_not_ignored():
    f = vmapper.batched(lambda_free_pair, in_axes=0)
    check_batching(f, (np.arange(3.0),), in_axes=0)  # (its own axes: fine)
    with pytest.raises(ValueError, match="in_axes"):
        check_batching(f, (np.arange(3.0),), in_axes=None)
    with pytest.raises(ValueError, match="backend"):
        check_batching(f, (np.arange(3.0),), backend="numba")


def returns_a_list(x):
    return [x, x + 1.0]


def test_a_returned_list_is_compared_item_by_item_like_a_tuple():
    out = check_batching(returns_a_list, (np.arange(3.0),), backend="numpy")
    assert isinstance(out, tuple) and out[1].tolist() == [1.0, 2.0, 3.0]


def plus(x, y):
    return x + y


@pytest.mark.parametrize("args, in_axes, message", [
    (([1, 2, 3], [3, 2, 1]), 0, r"argument 'x\[0\]' is a scalar"),
    (({"s": np.zeros(3), "t": np.zeros(3)}, np.zeros(3)), ({"s": 0}, 0), "no entry for key 't'"),
])
def test_arguments_the_batched_call_refuses_raise_its_batch_error_not_the_loops_crash(args, in_axes, message):
    # (the per-sample loop indexed them first: IndexError, KeyError)
    with pytest.raises(vmapper.BatchError, match=message):
        check_batching(plus, args, in_axes=in_axes)


def test_args_that_are_not_a_tuple_are_refused_with_how_to_pass_one_argument():
    with pytest.raises(TypeError, match=r"args must be a tuple .* got ndarray \(one argument x is args=\(x,\)\)"):
        check_batching(log_of, np.arange(1.0, 4.0))
