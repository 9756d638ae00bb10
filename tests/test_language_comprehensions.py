"""List comprehensions and ``sum(<generator>)``: lowered as the loops they stand for."""
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
    return max(x * i for i in range(3))  # marker-genexp


@pytest.mark.parametrize("fn", [squares, evens_as_array, two_generators, own_scope, first_iterable_in_function_scope,
                                sum_with_start])
@pytest.mark.parametrize("n", [1, 7, 200])
def test_comprehensions_over_uniform_ranges_equal_the_per_sample_run_bitwise(fn, n):
    check_batching(fn, (RNG.normal(size=n),))


@pytest.mark.parametrize("n", [1, 7, 200])
def test_sum_of_a_generator_with_a_per_lane_trip_count_equals_the_per_sample_run(n):
    check_batching(sum_over_a_per_lane_range, (RNG.normal(size=n), RNG.integers(0, 6, size=n)))


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


@pytest.mark.parametrize("fn, marker, construct", [
    (set_comprehension, "marker-setcomp", "set comprehension"),
    (generator_elsewhere, "marker-genexp", "generator expression"),
])
def test_other_comprehensions_raise_naming_the_construct_and_line(fn, marker, construct):
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=construct) as info:
        vmapper.batched(fn)(np.ones(3))
    assert str(line_of(fn, marker)) in str(info.value)
