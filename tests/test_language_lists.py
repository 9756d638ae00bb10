"""Local lists: ``r.append(v)``, ``r.extend(s)``, ``r += s`` and ``r[i] = v`` on a list the function builds.

vmapper holds a list as a tuple of per-lane values and appends as a value update, so
every case where Python's in-place change would show somewhere else (another name, a
container, the caller, an alias of an appended array) and every list whose length
would differ per lane must raise, naming the line; the rest must equal the per-sample run.
"""
import numpy as np
import pytest

import vmapper
from vmapper.testing import check_batching, check_grads
from lane_inputs import N, floats, ints, sizes  # noqa: F401
from source_lines import line_of


# ---- supported -------------------------------------------------------------------------------

def append_in_uniform_loop(x):
    r = []
    for i in range(3):
        r.append(x * i)
    return r[0] + r[1] * r[2], len(r)


@sizes
def test_append_in_a_uniform_range_loop_equals_per_sample_run_bitwise(n):
    check_batching(append_in_uniform_loop, (floats(1, -5, 5)[:n] if n <= N else
                                            np.random.default_rng(n).normal(size=n),))


def literal_then_append_extend_and_plus_equals(x, y):
    r = [x, y]
    r.append(x * y)
    r.extend([x - y, 2.0])
    r += [y / 3.0]
    r += (x,)
    return sum(r), len(r), r[-1] - r[2]


def test_append_extend_and_plus_equals_on_a_list_literal_match_python_bitwise():
    check_batching(literal_then_append_extend_and_plus_equals, (floats(2), floats(3) + 10.0))


def loop_over_len_of_another_list(a):
    r0 = [a, a + 1, a * 2]
    out = []
    for i in range(len(r0)):
        out.append(r0[i] - i)
    for v in r0:  # the loop snapshot does not share the list: out may grow afterwards
        out.append(v // 2)
    return out[0] + out[4], len(out)


def test_append_in_loop_bounded_by_len_of_a_list_and_over_a_list_matches_python():
    check_batching(loop_over_len_of_another_list, (ints(4, -100, 100),))


def extend_by_a_per_sample_array(X):
    r = [X[0]]
    r.extend(X)
    r.extend(np.arange(2))
    return r[0] + r[3] + r[-1], len(r)


def test_extend_by_a_per_sample_array_adds_its_items_as_in_python():
    check_batching(extend_by_a_per_sample_array, (floats(5, -3, 3, shape=(4,)),))


def hidden_states(x):
    hs = [np.zeros(2) + x]
    for t in range(3):
        prev = hs[-1]  # an item of the list: the list itself stays unshared
        hs.append(np.tanh(prev * 0.5 + t))
    return hs[-1] + hs[1]


def test_reading_an_array_item_of_a_list_then_appending_matches_python():
    check_batching(hidden_states, (floats(6),))


def _collect(x, k):
    acc = []
    for i in range(k):
        acc.append(x + i)
    return sum(acc)


def uses_helper_with_its_own_list(x):
    mine = [x]
    mine.append(_collect(x, 3))
    return mine[0] * mine[1]


def test_append_in_a_helper_on_its_own_local_list_matches_python():
    check_batching(uses_helper_with_its_own_list, (floats(7),))


def append_then_sum(x, w):
    r = []
    for i in range(3):
        r.append(x[i] * w)
    r.extend([x[0] * x[1]])
    return sum(r) + r[0] * r[2]


def test_gradient_flows_through_appended_and_extended_values():
    x = np.random.default_rng(8).normal(size=(9, 3))
    w = np.random.default_rng(9).normal(size=9)
    check_grads(append_then_sum, (x, w), argnums=(0, 1))


def balanced_uniform_branch(x, flag):
    r = [x]
    if flag > 0:  # uniform at run time: every lane takes the same arm
        r.append(x * 2.0)
    return len(r)


def item_assignments(x, i):
    r = [x, x * 2, x * 3, 0.5]
    r[i] = -x                      # a per-lane index, negatives from the end
    r[-1] = r[-1] * x
    if x > 0:
        r[(i + 1) % 4] = x * x     # only on the lanes that take the branch
    for k in range(4):
        r[k] = r[k] * 2
    return r[0] + r[1] * 10 + r[2] * 100 + r[3] * 1000


def buffers_made_by_repetition_and_concatenation(x, k):
    r = [0.0] * 3
    q = [x] + [x * 2, 1.0]
    for i in range(k):
        r[i % 3] += x * i  # a per-lane index
    return r[0] + 10 * r[1] + 100 * r[2] + q[k % 3]


def item_assignment_out_of_range(x, i):
    r = [x, x]
    r[i] = 1.0  # marker-list-index
    return r[0]


def item_assignment_seen_by_another_name(x):
    r = [x, x]
    q = r
    r[0] = 1.0  # marker-list-setitem-alias
    return q[0]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_item_assignment_on_a_local_list_with_uniform_and_per_lane_indices_matches_python(backend):
    r = np.random.default_rng(7)
    x, i = r.normal(size=N), r.integers(-4, 4, size=N)
    check_batching(item_assignments, (x, i), backend=backend)
    check_grads(vmapper.batched(item_assignments, backend=backend), (x, i), argnums=0)
    k = r.integers(0, 7, size=N)
    check_batching(buffers_made_by_repetition_and_concatenation, (x, k), backend=backend)
    check_grads(vmapper.batched(buffers_made_by_repetition_and_concatenation, backend=backend), (x, k), argnums=0)


def loop_assigning_items_of_the_list_it_iterates(x, i):
    r = [x, x * 2.0, 3.0]
    total = 0.0
    for v in r:
        r[2] = r[2] + v
        if v > 1.0:
            r[i] = v * 0.5  # a per-lane index, under a per-lane branch
        total = total + v
    for k, v in enumerate(r):
        r[k] = v + r[-1]
    for a, b in zip(r, [1.0, 2.0, 3.0]):
        r[0] = r[0] * b - a
    return total, r[0], r[1], r[2]


def loss_of_loop_assigning_items(x, i):
    total, a, b, c = loop_assigning_items_of_the_list_it_iterates(x, i)
    return total + a * b - c


def loop_over_dict_values_assigning_them(x):
    d = {"a": x, "b": x + 1.0}
    s = 0.0
    for v in d.values():
        d["b"] = 100.0 * v
        s = s + v
    for key, v in d.items():
        d["a"] = d["a"] + v
    return s, d["a"], d["b"]


def loop_rebinding_and_assigning_the_list_it_iterates(x):
    r = [x, x]
    for v in r:
        r[1] = v + 1.0  # marker-rebound-iterated
        r = [v, v]
    return r[0]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_loop_over_a_list_sees_the_items_its_body_assigns_as_python_does(backend):
    r = np.random.default_rng(11)
    x, i = r.normal(size=N), r.integers(-3, 3, size=N)
    check_batching(loop_assigning_items_of_the_list_it_iterates, (x, i), backend=backend)
    check_batching(loop_over_dict_values_assigning_them, (x,), backend=backend)
    check_grads(vmapper.batched(loss_of_loop_assigning_items, backend=backend), (x, i), argnums=0)


def test_a_loop_that_rebinds_and_assigns_items_of_the_list_it_iterates_raises_naming_the_line():
    # Python's iterator keeps the first list, which the first trip's r[1] = ... changes.
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="another name") as info:
        vmapper.batched(loop_rebinding_and_assigning_the_list_it_iterates)(np.ones(3))
    assert str(line_of(loop_rebinding_and_assigning_the_list_it_iterates, "marker-rebound-iterated")) \
        in str(info.value)


def repeated_by_a_per_lane_count(x, k):
    r = [x] * k  # marker-repeat-count
    s = k * [1.0, x]
    return len(r) + len(s), r[-1] * s[-1]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_list_repeated_by_a_per_lane_count_equal_on_every_lane_matches_python(backend):
    x = floats(3)
    check_batching(repeated_by_a_per_lane_count, (x, np.full(N, 3)), backend=backend)
    check_batching(repeated_by_a_per_lane_count, (x, np.full(N, 2, np.int8)), backend=backend)


def test_a_list_repeated_by_a_count_that_differs_per_lane_or_is_a_float_raises_naming_the_line():
    line = str(line_of(repeated_by_a_per_lane_count, "marker-repeat-count"))
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="repeated a number of times that differs per lane") \
            as info:
        vmapper.batched(repeated_by_a_per_lane_count)(np.ones(3), np.array([1, 2, 2]))
    assert line in str(info.value)
    with pytest.raises(vmapper.LaneError, match="can't multiply sequence by non-int of type 'float64'") as info:
        vmapper.batched(repeated_by_a_per_lane_count)(np.ones(3), np.array([1.0, 2.0, 2.0]))
    assert info.value.python_error is TypeError and line in str(info.value)


def grown_by_concatenation_then_assigned(x, n):
    r = [7.0]
    r.append(x)
    r = r + [x * 2.0]  # a new list, from the list itself: still one of this function's lists
    r = [1.0] + r
    r[n % 4] += 1.0
    r.append(3.0)
    return r[0] + 10.0 * r[1] + 100.0 * r[2] + 1000.0 * r[3] + r[-1], len(r)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_list_rebound_to_itself_plus_a_list_takes_appends_and_item_assignments(backend):
    check_batching(grown_by_concatenation_then_assigned, (floats(5), ints(6, 0, 9)), backend=backend)


def comprehension_then_assigned(x, n):
    r = [x * k for k in range(3)]
    r[n % 3] += 1.0
    r.append(x - 1.0)
    r[-1] = r[-1] * 2.0
    return r[0] + 10.0 * r[1] + 100.0 * r[2] + 1000.0 * r[3], len(r)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_list_made_by_a_comprehension_takes_appends_and_item_assignments(backend):
    check_batching(comprehension_then_assigned, (floats(5), ints(6, 0, 9)), backend=backend)


def test_item_assignment_out_of_range_or_by_a_float_raises_pythons_error_on_those_lanes():
    with pytest.raises(vmapper.LaneError, match="list assignment index out of range") as info:
        vmapper.batched(item_assignment_out_of_range)(np.ones(3), np.array([0, 5, -3]))
    assert list(info.value.lanes) == [1, 2] and info.value.python_error is IndexError
    assert str(line_of(item_assignment_out_of_range, "marker-list-index")) in str(info.value)
    with pytest.raises(vmapper.LaneError, match="list indices must be integers or slices, not float"):
        vmapper.batched(item_assignment_out_of_range)(np.ones(3), np.array([0.0, 1.0, 1.0]))


def slice_assignment(x):
    r = [x, x, x]
    r[0:2] = [1.0, 2.0]  # marker-list-slice
    return r[0]


def test_slice_assignment_on_a_local_list_raises_naming_the_line():
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="other than one integer index") as info:
        vmapper.batched(slice_assignment)(np.ones(3))
    assert str(line_of(slice_assignment, "marker-list-slice")) in str(info.value)


def test_item_assignment_on_a_list_another_name_reaches_raises_naming_the_line():
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="another name") as info:
        vmapper.batched(item_assignment_seen_by_another_name)(np.ones(3))
    assert str(line_of(item_assignment_seen_by_another_name, "marker-list-setitem-alias")) in str(info.value)


def test_append_under_a_condition_every_lane_agrees_on_matches_python():
    check_batching(balanced_uniform_branch, (floats(10), np.ones(N)))


# ---- errors: another name can reach the list ---------------------------------------------------

def append_through_alias(x):
    r = [x]
    b = r
    b.append(1.0)  # marker-alias
    return len(r)


def extend_through_alias_plus_equals(x):
    r = [x]
    b = r
    r += [x * 2.0]  # marker-plus-equals
    return len(b)


def plus_equals_on_alias(x):
    r = [x]
    b = r
    b += [x * 2.0]  # marker-alias-plus-equals
    return len(r)


def append_to_list_inside_tuple(x):
    r = [x]
    t = (r, 1)
    r.append(x)  # marker-in-tuple
    return len(t[0])


def _append_to_param(r, x):
    r.append(x)  # marker-param
    return 0


def append_to_callers_list(x):
    r = [x]
    _append_to_param(r, x)
    return len(r)


@pytest.mark.parametrize("fn, marker, construct", [
    (append_through_alias, "marker-alias", "'.append()' of a list or tuple that is not a local list"),
    (extend_through_alias_plus_equals, "marker-plus-equals", "'r += ...' on list 'r', which another name"),
    (plus_equals_on_alias, "marker-alias-plus-equals", "'b += ...' on list 'b', which another name"),
    (append_to_list_inside_tuple, "marker-in-tuple", "r.append() on list 'r', which another name"),
    (_append_to_param, "marker-param", "'.append()' of a list or tuple that is not a local list"),
])
def test_changing_a_list_another_name_can_reach_raises_naming_the_line(fn, marker, construct):
    target = append_to_callers_list if fn is _append_to_param else fn
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=construct.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.").replace("+", r"\+")) as info:
        vmapper.batched(target)(floats(11))
    assert info.value.line == line_of(fn, marker)


def appended_array_updated_in_place(x):
    a = np.zeros(3)
    a[1] = x
    r = []
    r.append(a)
    a[0] = 5.0  # marker-item (Python: r[0][0] is 5.0 now)
    return r[0][0]


def test_in_place_update_of_an_appended_array_raises_where_python_would_change_the_list():
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="in-place update of array 'a'") as info:
        vmapper.batched(appended_array_updated_in_place)(floats(12))
    assert info.value.line == line_of(appended_array_updated_in_place, "marker-item")


# ---- errors: the length would differ per lane, or it is not a list -------------------------------

def append_under_varying_if(x):
    r = []
    if x > 0:
        r.append(x)
    return len(r)  # marker-if


def append_in_varying_while(x):
    r = []
    i = 0.0
    while i < x:
        r.append(i)
        i += 1.0
    return sum(r)  # marker-while


def returns_lists_of_different_lengths(x):
    r = []
    if x > 0:
        r.append(x)
        return r
    s = [x, x]
    return s  # marker-return


@pytest.mark.parametrize("n", [7, 200])  # masked stores, and compacted loop frames
@pytest.mark.parametrize("fn, marker, construct", [
    (append_under_varying_if, "marker-if", "reading 'r', which holds a list or tuple whose length differs per lane"),
    (append_in_varying_while, "marker-while", "reading 'r', which holds a list or tuple whose length differs"),
    (returns_lists_of_different_lengths, "marker-return", "a list or tuple whose length differs per lane"),
])
def test_list_whose_length_differs_per_lane_raises_naming_the_line(n, fn, marker, construct):
    x = np.linspace(-2.0, 3.0, n)
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=construct) as info:
        vmapper.batched(fn)(x)
    assert info.value.line == line_of(fn, marker)
    assert "same length on every lane" in str(info.value)


def plus_under_varying_if(x):
    r = [x]
    if x > 0:  # marker-select
        r = r + [x]
    return len(r)


def test_concatenation_under_varying_if_raises_with_both_lengths():
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="length 2 on some lanes and 1 on others") as info:
        vmapper.batched(plus_under_varying_if)(np.linspace(-1.0, 1.0, 9))
    assert info.value.line == line_of(plus_under_varying_if, "marker-select")


def append_to_array(x):
    a = np.zeros(3) + x
    a.append(1.0)  # marker-array
    return a


def append_to_float(x):
    f = float(x) * 2.0
    f.append(1.0)  # marker-float
    return f


def append_to_numpy_scalar(x):
    x.append(1.0)  # marker-scalar
    return x


@pytest.mark.parametrize("fn, marker, kind", [(append_to_array, "marker-array", "numpy.ndarray"),
                                              (append_to_float, "marker-float", "float"),
                                              (append_to_numpy_scalar, "marker-scalar", "numpy.float64")])
def test_append_to_a_per_sample_value_raises_pythons_attribute_error(fn, marker, kind):
    with pytest.raises(vmapper.LaneError, match=f"'{kind}' object has no attribute 'append'") as info:
        vmapper.batched(fn)(floats(13))
    assert info.value.python_error is AttributeError
    assert info.value.line == line_of(fn, marker)


def extend_by_a_number(x):
    r = [x]
    r.extend(x)  # marker-number
    return len(r)


def test_extend_by_a_per_sample_number_raises_pythons_type_error():
    with pytest.raises(vmapper.LaneError, match="not iterable") as info:
        vmapper.batched(extend_by_a_number)(floats(14))
    assert info.value.python_error is TypeError
    assert info.value.line == line_of(extend_by_a_number, "marker-number")


def inserts_into_a_local_list(x):
    t = [x, 2 * x]
    t.insert(0, 5.0)  # marker-insert
    return t[0]


def test_a_list_mutator_other_than_append_and_extend_on_a_local_list_is_named():
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=r"'t\.insert\(\)' on a local list") as info:
        vmapper.batched(inserts_into_a_local_list)(np.arange(3.0))
    assert info.value.line == line_of(inserts_into_a_local_list, "marker-insert")


def appends_on_every_arm(x):
    out = []
    for v in x:
        if v > 0.5:
            out.append(v * 2.0)
        elif v < -0.5:
            out.append(-v)
        else:
            w = v + 1.0
            out.append(w * w)
    return sum(out) + out[0] * out[-1]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_an_append_that_ends_every_arm_of_an_if_grows_the_list_on_every_lane(backend):
    x = np.random.default_rng(8).normal(size=(40, 5))
    check_batching(appends_on_every_arm, (x,), backend=backend)
    check_grads(vmapper.batched(appends_on_every_arm, backend=backend), (x,))
