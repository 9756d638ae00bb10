"""List comprehensions, ``sum(<generator>)`` and ``min``/``max`` of one: lowered as the loops they
stand for."""
import re

import numpy as np
import pytest

import vmapper
from vmapper.testing import check_batching, check_grads
from lane_inputs import random_nary_forest
from source_lines import line_of

RNG = np.random.default_rng(0)


def squares(x):
    ys = [x * i for i in range(4)]
    return ys[0] + ys[3] + len(ys)


def evens_as_array(x):
    return np.array([x * i for i in range(6) if i % 2 == 0]).sum()


def two_generators(x):
    return sum([x * i + j for i in range(3) for j in range(i)])


def own_scope(x):
    i = 10
    ys = [x + i for i in range(3)]  # this i is the comprehension's own
    return i + ys[2]


def first_iterable_in_function_scope(x):
    x_list = [1.0, 2.0]
    return [v * x for v in x_list][1]


def sum_over_a_per_lane_range(x, n):
    return sum(x * i for i in range(n))


def sum_of_a_list_over_a_per_lane_range(x, n):
    return sum([x * i for i in range(n)], 0.25)  # the list itself would differ in length per lane


def max_of_a_list_over_a_per_lane_range(x, n):
    return max([abs(x - i) for i in range(n + 1)]), min([x * i for i in range(n + 1)])


def length_of_filtered_lists(x, n):
    return len([v for v in x if v > 0.5]) + 10 * len([i * v for i in range(n) for v in x[:2] if i != 1])


def sum_with_start(x):
    return sum((x * i for i in range(3)), 0.5)


def sum_over_children(node):
    return 1.0 * node.value + sum(2.0 * sum_over_children(c) for c in node.children)


def length_differs_per_lane(x):
    ys = [x for i in range(3) if x > i]  # marker-listcomp
    return len(ys)


def set_comprehension(x):
    return len({x * i for i in range(3)})  # marker-setcomp


def generator_elsewhere(x):
    items = (x * i for i in range(3))  # marker-genexp
    return sum(items)


def max_over_a_per_lane_range(x, n):
    return max(abs(x - i) for i in range(n) if i % 3 != 1)


def min_with_default(x, n):
    return min((x * i for i in range(n)), default=-1.5)


def extremes_of_a_per_sample_array(v):
    return max(e * e for e in v), min(e for e in v if e > 0.5)


def max_of_nested_generators(x):
    return max(x * i - j for i in range(3) for j in range(i))


def ties_and_nans(v):
    # Python keeps the first extreme; a NaN first stays (every comparison with it is False)
    return max(e for e in v), min(e for e in v)


def max_of_an_empty_generator(x, n):
    return max(x * i for i in range(n))  # marker-empty-max


def max_with_key(x):
    return max((x * i for i in range(3)), key=abs)  # marker-key


@pytest.mark.parametrize("fn", [squares, evens_as_array, two_generators, own_scope, first_iterable_in_function_scope,
                                sum_with_start])
@pytest.mark.parametrize("n", [1, 7, 200])
def test_comprehensions_over_uniform_ranges_equal_the_per_sample_run_bitwise(fn, n):
    check_batching(fn, (RNG.normal(size=n),))


@pytest.mark.parametrize("n", [1, 7, 200])
def test_sum_of_a_generator_with_a_per_lane_trip_count_equals_the_per_sample_run(n):
    check_batching(sum_over_a_per_lane_range, (RNG.normal(size=n), RNG.integers(0, 6, size=n)))


def sums_of_ranges(n, m):
    range_item = 0.25  # (the sum's own loop variable is not this one)
    return sum(range(n)), sum(range(2, n, 3)), sum(range(n), 10), sum(range(m, n)) + range_item


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_sum_of_a_range_with_per_lane_bounds_adds_its_numbers(backend):
    n, m = RNG.integers(-5, 40, size=50), RNG.integers(-20, 20, size=50)
    res = check_batching(sums_of_ranges, (n, m), backend=backend)
    assert res[0].tolist() == [sum(range(k)) for k in n] and res[0].dtype == np.int64


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_sum_max_and_min_of_a_list_comprehension_of_per_lane_length_are_those_of_its_generator(backend):
    x, n = RNG.normal(size=60), RNG.integers(0, 6, size=60)
    check_batching(sum_of_a_list_over_a_per_lane_range, (x, n), backend=backend)
    check_batching(max_of_a_list_over_a_per_lane_range, (x, n), backend=backend)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_the_len_of_a_filtered_list_comprehension_is_counted_without_building_the_list(backend):
    x, n = RNG.normal(size=(50, 4)), RNG.integers(0, 5, size=50)
    check_batching(length_of_filtered_lists, (x, n), backend=backend)


def test_sum_of_a_generator_over_children_recurses_level_by_level():
    forest = random_nary_forest(3)
    f = vmapper.batched(sum_over_children)
    check_batching(f, (forest.roots,))
    assert f.last_stats["calls"] <= forest.max_depth  # one merged call per level, as the for loop


def test_gradients_flow_through_the_sum_of_a_generator():
    check_grads(vmapper.batched(sum_over_a_per_lane_range), (RNG.normal(size=9), RNG.integers(0, 5, size=9)),
                argnums=0)


def test_a_comprehension_whose_length_differs_per_lane_raises_naming_its_line():
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="list comprehension.*length differs per lane") as info:
        vmapper.batched(length_differs_per_lane)(np.array([0.5, 2.5, -1.0]))
    assert str(line_of(length_differs_per_lane, "marker-listcomp")) in str(info.value)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("seed", range(4))
def test_max_and_min_of_a_generator_equal_the_per_sample_run_bitwise(backend, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=40)
    check_batching(max_over_a_per_lane_range, (x, rng.integers(1, 7, size=40)), backend=backend)
    check_batching(min_with_default, (x, rng.integers(0, 4, size=40)), backend=backend)
    check_batching(max_of_nested_generators, (x,), backend=backend)
    check_batching(extremes_of_a_per_sample_array, (rng.uniform(0, 2, size=(40, 5)),), backend=backend)


def test_max_and_min_of_a_generator_keep_the_first_extreme_and_a_leading_nan():
    v = np.array([[1.0, 3.0, 3.0, -0.0], [np.nan, 2.0, 1.0, 5.0], [0.0, -0.0, 0.0, -0.0], [2.0, np.nan, 7.0, 1.0]])
    got = check_batching(ties_and_nans, (v,))
    assert np.isnan(got[0][1]) and np.isnan(got[1][1]) and got[0][3] == 7.0  # (bitwise: signs of zero too)


def test_gradients_flow_through_the_max_of_a_generator():
    x = np.random.default_rng(5).normal(size=9) + 0.25  # (away from the ties at integers)
    check_grads(vmapper.batched(max_over_a_per_lane_range), (x, np.arange(1, 10) % 5 + 1), argnums=0)


def test_the_max_of_an_empty_generator_raises_pythons_value_error_on_its_lanes():
    with pytest.raises(ValueError) as python:
        max(())
    with pytest.raises(vmapper.LaneError, match=re.escape(str(python.value))) as info:
        vmapper.batched(max_of_an_empty_generator)(np.ones(4), np.array([2, 0, 1, 0]))
    assert "lane(s) [1" in str(info.value) and str(line_of(max_of_an_empty_generator, "marker-empty-max")) in str(info.value)


def test_max_of_a_generator_with_key_raises_naming_the_line():
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="keyword argument 'key'") as info:
        vmapper.batched(max_with_key)(np.ones(3))
    assert str(line_of(max_with_key, "marker-key")) in str(info.value)


@pytest.mark.parametrize("fn, marker, construct", [
    (set_comprehension, "marker-setcomp", "set comprehension"),
    (generator_elsewhere, "marker-genexp", "generator expression"),
])
def test_other_comprehensions_raise_naming_the_construct_and_line(fn, marker, construct):
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=construct) as info:
        vmapper.batched(fn)(np.ones(3))
    assert str(line_of(fn, marker)) in str(info.value)
