"""Failures of if-converted arms (runtime/speculation.py): on the lanes that take the arm only."""
import numpy as np
import pytest

import vmapper
from vmapper.runtime import block_compiler
from vmapper.testing import check_batching


def negated_flag_when_large(x):
    b = x > 0
    return -b if x > 100 else 1  # numpy refuses - of a bool: a TypeError, whatever the value


def flag_difference_when_large(x):
    b = x > 0
    return b - b if x > 100 else 1


def negated_flag_in_an_if(x):
    b = x > 0
    r = 1
    if x > 1:
        r = -b
    return r


def inverted_when_positive(x, k):
    return ~k if k > 0 else x  # ~ of a float: a TypeError


def nested_arms(x):
    b = x > 0
    r = 0
    if x > 2:
        if x > 100:
            r = -b
        else:
            r = 2
    return r


def tuple_from_an_arm(x):
    b = x > 0
    t = (1, 2)
    if x > 100:
        t = (-b, 3)
    return t[0] + t[1]


def _per_sample_failures(fn, args):
    failing = []
    for lane in range(len(args[0])):
        try:
            fn(*(a[lane] for a in args))
        except TypeError:
            failing.append(lane)
    return failing


@pytest.fixture(params=["generated", "generic", "profiled"])
def execution(request, monkeypatch):
    """The three ways a block runs: its generated function, the generic loop, and profiled."""
    if request.param == "generic":
        monkeypatch.setattr(block_compiler, "GENERATE", False)
    if request.param == "profiled":
        with vmapper.profile():
            yield
    else:
        yield


INTS = np.random.default_rng(0).integers(-10, 10, 40)


@pytest.mark.parametrize("fn", [negated_flag_when_large, flag_difference_when_large, nested_arms,
                                tuple_from_an_arm])
def test_a_type_failure_in_an_arm_no_lane_takes_is_no_failure(fn, execution):
    f = vmapper.batched(fn)
    assert "select(" in f.explain()  # (the arm did become a select: what this pins)
    check_batching(fn, (INTS,))


@pytest.mark.parametrize("fn, args", [
    (negated_flag_when_large, (np.array([1, 300, 5, 101]),)),
    (flag_difference_when_large, (np.array([101, 3, 102]),)),
    (negated_flag_in_an_if, (np.linspace(-3, 3, 13),)),
    (inverted_when_positive, (np.array([1.5, -2e20, 3.0, np.inf, np.nan, -0.5, 8.0]),) * 2),
    (nested_arms, (np.array([1, 3, 200, 150, -5]),)),
    (tuple_from_an_arm, (np.array([1, 300, 2]),)),
])
def test_a_type_failure_in_an_arm_names_the_lanes_that_take_it(fn, args, execution):
    expected = _per_sample_failures(fn, args)
    assert 0 < len(expected) < len(args[0])
    with pytest.raises(vmapper.LaneError) as info:
        vmapper.batched(fn)(*args)
    assert list(info.value.lanes) == expected
    assert info.value.python_error is TypeError


def test_a_kernel_backend_names_the_lanes_that_take_the_arm_too():
    args = (np.array([1, 3, 200, 150, -5]),)
    with pytest.raises(vmapper.LaneError) as info:
        vmapper.batched(nested_arms, backend="numba")(*args)
    assert set(info.value.lanes) <= {2, 3} and len(info.value.lanes)
    check_batching(nested_arms, (INTS,), backend="numba")
