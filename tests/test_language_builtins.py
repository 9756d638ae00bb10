"""The builtins ``pow``, ``any``, ``all`` and ``reversed``, with Python's per-sample semantics.

``any``/``all`` of a generator run as the loops they stand for, with a ``break``
where Python's short-circuit stops: the inputs below make a later element raise
(ZeroDivisionError, IndexError) on lanes that stop before it, so a batched run
that evaluated it would raise where the per-sample loop does not.
"""
import importlib.util
import math

import numpy as np
import pytest

import vmapper
from vmapper.testing import check_batching, check_grads
from lane_inputs import draw_ints, lane_test, random_nary_forest
from source_lines import line_of

RNG = np.random.default_rng(0)
SIZES = [1, 7, 300]
BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="numba is not installed"))]


def check(fn, args, backend="numpy", **kw):
    return check_batching(vmapper.batched(fn, backend=backend), args, **kw)


def raises_at(fn, marker, error, match, *args):
    """``fn(*args)`` batched raises ``error`` matching ``match``, naming the file and the line
    of ``fn`` that holds ``marker``; returns the exception."""
    with pytest.raises(error, match=match) as info:
        vmapper.batched(fn)(*args)
    assert f"{fn.__code__.co_filename}:{line_of(fn, marker)}" in str(info.value)
    return info.value


# ---- pow(a, b): the ** operator -------------------------------------------------------------------

def pow_calls(x, y):
    return pow(x, y), pow(x, 2), pow(base=x, exp=0.5), pow(2.0, exp=y), pow(x, -1.5, None)


def power_operators(x, y):
    return x ** y, x ** 2, x ** 0.5, 2.0 ** y, x ** -1.5


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", SIZES)
def test_pow_of_two_arguments_is_the_power_operator_bitwise(n, backend):
    x, y = RNG.uniform(0.1, 4.0, n), RNG.uniform(-3.0, 3.0, n)
    got = check(pow_calls, (x, y), backend, exact=False, rtol=1e-14)
    want = vmapper.batched(power_operators, backend=backend)(x, y)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and np.array_equal(g, w)


def int_pow(a, e):
    return pow(a, e), pow(2, e), pow(a, 2), pow(int(a), int(e))


def float32_pow(x):
    return pow(np.float32(x), 2), pow(np.float32(x), 0.5)


@pytest.mark.parametrize("n", SIZES)
def test_pow_keeps_the_dtypes_of_the_power_operator(n):
    res = check(int_pow, (RNG.integers(-10, 10, n), RNG.integers(0, 8, n)))
    assert all(r.dtype == np.int64 for r in res)
    res = check(float32_pow, (RNG.uniform(0.0, 3.0, n),), exact=False, rtol=1e-6)
    assert all(r.dtype == np.float32 for r in res)  # NEP 50: float32 ** 2 stays float32


def int_pow_negative(a, e):
    return pow(a, e)  # marker-int-pow


def masked_int_pow(a, e):
    return pow(a, e) if e >= 0 else 0


def python_int_pow(a, e):
    return int(a) ** int(e) if e > -2 else 0  # marker-python-int-pow


def python_float_pow(x, y):
    return pow(float(x), float(y))  # marker-float-pow


def test_pow_raises_where_the_power_operator_raises_and_only_on_active_lanes():
    a, e = np.array([2, 3, 4, 5]), np.array([1, -1, 2, -2])
    exc = raises_at(int_pow_negative, "marker-int-pow", vmapper.LaneError, "ValueError: integer to a negative",
                    a, e)
    assert list(exc.lanes) == [1, 3] and exc.python_error is ValueError
    check(masked_int_pow, (a, e))
    exc = raises_at(python_int_pow, "marker-python-int-pow", vmapper.LaneError, "ZeroDivisionError: 0.0 cannot",
                    np.array([2, 0, 0, 5]), np.array([1, -1, 2, -3]))
    assert list(exc.lanes) == [1] and exc.python_error is ZeroDivisionError  # (lane 3 takes the else)
    exc = raises_at(python_float_pow, "marker-float-pow", vmapper.LaneError, "ZeroDivisionError",
                    np.array([1.0, 0.0, 2.0]), np.array([2.0, -1.0, -1.0]))
    assert list(exc.lanes) == [1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_to_minus_infinity_is_infinity_as_in_python(backend):
    # (only a finite negative power of 0.0 raises ZeroDivisionError in Python)
    check(python_float_pow, (np.array([0.0, -0.0, 2.0, 0.0]), np.array([-np.inf, -np.inf, 1.0, np.inf])),
          backend=backend)


def pow_sum(x, y):
    return pow(x, y) + pow(x, 2) * 3.0 + pow(2.0, exp=y)


def power_sum(x, y):
    return x ** y + x ** 2 * 3.0 + 2.0 ** y


def test_gradients_flow_through_pow_as_through_the_power_operator():
    x, y = RNG.uniform(0.5, 2.0, 9), RNG.uniform(-2.0, 2.0, 9)
    check_grads(vmapper.batched(pow_sum), (x, y), argnums=(0, 1))
    g_pow = vmapper.grad(vmapper.batched(pow_sum), argnums=(0, 1))(x, y)
    g_op = vmapper.grad(vmapper.batched(power_sum), argnums=(0, 1))(x, y)
    for a, b in zip(g_pow, g_op):
        assert np.array_equal(a, b)


# ---- pow(a, b, m): modular exponentiation of Python ints --------------------------------------------

def pow_mod(a, b, m):
    return pow(int(a), int(b), int(m))


def pow_mod_uniform_modulus(a, b):
    return pow(int(a), int(b), 97), pow(int(a), 3, mod=-10), pow(7, int(b) % 50, 1_000_000_007)


def _invertible_exponents(a, b, m):
    """``b`` with its negative exponents made positive where ``a`` has no inverse modulo ``m``."""
    ok = np.array([math.gcd(int(x), int(z)) == 1 for x, z in zip(a, m)], dtype=bool)
    return np.where((b < 0) & ~ok, -b, b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", SIZES)
def test_three_argument_pow_is_pythons_modular_exponentiation(n, backend):
    a = RNG.integers(-10 ** 6, 10 ** 6, n)
    m = RNG.integers(1, 60, n) * RNG.choice([-1, 1], n)
    m[::5] = RNG.integers(-3037000499, 3037000500, len(m[::5]))  # the largest moduli batched
    m[m == 0] = 1
    m[1::11] = 1
    b = RNG.integers(-50, 200, n)
    b[::7] = RNG.integers(10 ** 9, 10 ** 12, len(b[::7]))
    b = _invertible_exponents(a, b, m)
    res = check(pow_mod, (a, b, m), backend)
    assert res.dtype == np.int64
    res = check(pow_mod_uniform_modulus, (a, RNG.integers(0, 10 ** 12, n)), backend)
    assert all(r.dtype == np.int64 for r in res)


@lane_test
def test_three_argument_pow_on_small_drawn_operands(n, data):
    a, b, m = draw_ints(data, n, -30, 30), draw_ints(data, n, -6, 12), draw_ints(data, n, -12, 12)
    m[m == 0] = 5
    check(pow_mod, (a, _invertible_exponents(a, b, m), m))


def pow_mod_marked(a, b, m):
    return pow(int(a), int(b), int(m))  # marker-pow-mod


def masked_pow_mod(a, b, m, ok):
    if ok:
        return pow(int(a), int(b), int(m))
    return -1


def pow_mod_of_numpy_ints(a, m):
    return pow(a, 2, m)  # marker-numpy-ints


def pow_mod_of_floats(a, m):
    return pow(float(a), 2, int(m))  # marker-floats


def pow_mod_huge_modulus(a):
    return pow(int(a), 2, 10 ** 30)  # marker-huge


@pytest.mark.parametrize("m, lanes, match", [
    ([7, 0, 9, 0], [1, 3], "ValueError: pow\\(\\) 3rd argument cannot be 0"),
    ([7, 10, 9, 10 ** 9], [1, 3], "ValueError: base is not invertible for the given modulus"),
])
def test_three_argument_pow_raises_pythons_value_errors_on_the_lanes_that_do(m, lanes, match):
    a, b, m = np.array([3, 4, 5, 6]), np.array([-1, -1, -1, -1]), np.array(m)
    exc = raises_at(pow_mod_marked, "marker-pow-mod", vmapper.LaneError, match, a, b, m)
    assert list(exc.lanes) == lanes and exc.python_error is ValueError
    ok = np.ones(4, dtype=bool)
    ok[lanes] = False
    check(masked_pow_mod, (a, b, m, ok))  # lanes that do not reach the call never raise


@pytest.mark.parametrize("fn, marker, error, match", [
    (pow_mod_of_numpy_ints, "marker-numpy-ints", vmapper.LaneError, "TypeError: unsupported operand type"),
    (pow_mod_of_floats, "marker-floats", vmapper.LaneError,
     "TypeError: pow\\(\\) 3rd argument not allowed unless all arguments are integers"),
    (pow_mod_huge_modulus, "marker-huge", vmapper.UnsupportedSyntaxError, "pow\\(\\) with a modulus beyond int64"),
])
def test_three_argument_pow_of_other_than_int64_python_ints_raises(fn, marker, error, match):
    args = (np.array([2, 3]),) if fn is pow_mod_huge_modulus else (np.array([2, 3]), np.array([5, 7]))
    if error is vmapper.LaneError:
        with pytest.raises(TypeError):  # as the per-sample run does
            fn(*(x[0] for x in args))
    raises_at(fn, marker, error, match, *args)


def pow_four_arguments(x):
    return pow(x, 2, 3, 4)  # marker-four


def pow_unknown_keyword(x):
    return pow(x, e=2)  # marker-keyword


def pow_without_exponent(x):
    return pow(x)  # marker-no-exponent


@pytest.mark.parametrize("fn, marker, match", [
    (pow_four_arguments, "marker-four", "pow\\(\\) with 4 positional arguments"),
    (pow_unknown_keyword, "marker-keyword", "pow\\(\\) with keyword argument 'e'"),
    (pow_without_exponent, "marker-no-exponent", "pow\\(\\) without its base and exponent"),
])
def test_pow_with_arguments_python_refuses_raises_naming_the_line(fn, marker, match):
    raises_at(fn, marker, vmapper.UnsupportedSyntaxError, match, np.ones(3))


# ---- any / all of a generator: short-circuit per lane ------------------------------------------------

def any_reciprocal(x, n):
    # 1/(x - i) > 0.5 first holds at i = x - 1, before i = x would divide by zero
    return any(1.0 / (float(x) - i) > 0.5 for i in range(n))


def all_reciprocal(x, n):
    return all(1.0 / (float(x) - i) < 0.5 for i in range(n))


def any_reciprocal_list(x, n):
    return any([1.0 / (float(x) - i) > 0.5 for i in range(n)])  # marker-eager


def reciprocal_lanes(n, draw=None):
    """x in [1, 6] and n in [0, 9]: lanes with n > x would divide by zero at i = x without the
    short-circuit (which stops them at i = x - 1)."""
    if draw is not None:
        return draw_ints(draw, n, 1, 6), draw_ints(draw, n, 0, 9)
    x, k = RNG.integers(1, 7, n), RNG.integers(0, 10, n)
    k[0] = 9  # some lane short-circuits before the division by zero
    return x, k


@lane_test
def test_any_and_all_of_a_generator_stop_where_python_does(n, data):
    x, k = reciprocal_lanes(n, data)
    check(any_reciprocal, (x, k))
    check(all_reciprocal, (x, k))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", SIZES)
def test_any_and_all_short_circuit_on_every_backend(n, backend):
    x, k = reciprocal_lanes(n)
    assert (k > x).any()
    res = check(any_reciprocal, (x, k), backend)
    assert res.dtype == np.bool_ and not res[k == 0].any()  # any() of nothing is False
    res = check(all_reciprocal, (x, k), backend)
    assert res.dtype == np.bool_ and res[k == 0].all()  # all() of nothing is True


def test_a_list_comprehension_is_evaluated_whole_before_any_sees_it():
    x, k = np.array([3, 3, 4, 7]), np.array([6, 6, 6, 6])
    exc = raises_at(any_reciprocal_list, "marker-eager", vmapper.LaneError, "ZeroDivisionError", x, k)
    assert list(exc.lanes) == [0, 1]  # as in Python: the whole list is built first (i = 3 comes first)
    check(any_reciprocal_list, (np.array([3, 4, 5]), np.array([2, 2, 2])))


def any_index(arr, k):
    return any(arr[j] > 2 for j in range(k))


def all_index(arr, k):
    return all(arr[j] <= 2 for j in range(k))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", SIZES)
def test_any_and_all_never_index_past_where_they_stop(n, backend):
    arr, k = RNG.integers(0, 4, (n, 4)), RNG.integers(0, 9, n)
    k[0] = 8
    far = (k > 4) & (arr <= 2).all(axis=1)  # would read arr[4]: give them an early hit
    arr[far, RNG.integers(0, 4, far.sum())] = 3
    check(any_index, (arr, k), backend)
    check(all_index, (arr, k), backend)


def any_nested(x, n):
    # pairs (i, j) in order have non-decreasing i + j: i + j = x - 1 comes before i + j = x
    return any(1.0 / (float(x) - i - j) > 0.5 for i in range(n) for j in range(2) if j <= i or n > 3)


def all_nested(x, n):
    return all(1.0 / (float(x) - i - j) < 0.5 for i in range(n) if i >= 0 for j in range(2))


@lane_test
def test_any_and_all_of_several_for_clauses_stop_every_loop(n, data):
    x, k = reciprocal_lanes(n, data)
    check(any_nested, (x, k))
    check(all_nested, (x, k))


def sequences(a, b, arr):
    items = [a > 0, b > 0]
    return (any(arr), all(arr), any((a, b)), all((a, b)), any(items), all(items), any([]), all([]),
            any(()), all(()), any(x > 0.5 for x in arr), all(v for v in [a, b, 0.0] if v != 0.0))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", SIZES)
def test_any_and_all_of_arrays_lists_and_tuples_use_the_truth_of_each_item(n, backend):
    a, b = RNG.choice([0.0, -0.0, 1.5, np.nan], n), RNG.choice([0.0, 2.0], n)
    arr = RNG.choice([0.0, -0.0, 0.75, np.nan, -1.0], (n, 3))
    res = check(sequences, (a, b, arr), backend)
    assert all(r.dtype == np.bool_ for r in res)
    check(sequences, (a, b, np.zeros((n, 0))), backend)  # per-sample arrays of no items


def any_of_ints(v):
    return any(v), all(v), any(v[1:]), all(v[:0])


def test_any_and_all_of_integer_arrays():
    check(any_of_ints, (RNG.integers(0, 2, (50, 3)),))


def any_child_leaf(node):
    return any(c.is_leaf for c in node.children), all(c.is_leaf for c in node.children)


def test_any_and_all_over_the_children_of_tree_nodes():
    check(any_child_leaf, (random_nary_forest(5).roots,))


def branch_on_any(x, n):
    if any(x * i > 3.0 for i in range(n)):
        return x * x
    return pow(x, 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_flow_around_any_which_has_none_of_its_own(backend):
    x, k = RNG.uniform(0.5, 2.0, 12), RNG.integers(0, 6, 12)
    check_grads(vmapper.batched(branch_on_any, backend=backend), (x, k), argnums=0)
    grad = vmapper.grad(vmapper.batched(branch_on_any, backend=backend))(x, k)
    took = np.array([any(xi * i > 3.0 for i in range(ki)) for xi, ki in zip(x, k)])
    np.testing.assert_allclose(grad, np.where(took, 2 * x, 3 * x ** 2), rtol=1e-12)


def any_two_arguments(x):
    return any(x, x)  # marker-any-two


def all_keyword(x):
    return all(x, key=None)  # marker-all-keyword


def any_of_a_number(x):
    return any(x)  # marker-any-number


def test_any_and_all_with_arguments_python_refuses_raise_naming_the_line():
    raises_at(any_two_arguments, "marker-any-two", vmapper.UnsupportedSyntaxError,
              "any\\(\\) with other than one positional argument", np.ones(3))
    raises_at(all_keyword, "marker-all-keyword", vmapper.UnsupportedSyntaxError,
              "all\\(\\) with other than one positional argument", np.ones(3))
    exc = raises_at(any_of_a_number, "marker-any-number", vmapper.LaneError, "TypeError", np.ones(3))
    assert exc.python_error is TypeError  # as Python's: a number is not iterable


# ---- reversed --------------------------------------------------------------------------------------

def reversed_ranges(a, b, s):
    h, trips, first = 0, 0, -999
    for i in reversed(range(a, b, s)):
        h = (h * 31 + i) % 1000003
        if trips == 0:
            first = i
        trips += 1
    for i in reversed(range(b)):
        h = (h * 7 + i) % 1000003
    for i in reversed(range(a, b)):
        if i == b - 3:
            break
        h = (h * 5 + i) % 1000003
    else:
        h = -h
    return h, trips, first


def range_lanes(n, draw=None):
    if draw is not None:
        a, b, s = draw_ints(draw, n, -12, 12), draw_ints(draw, n, -12, 12), draw_ints(draw, n, -4, 4)
    else:
        a, b, s = RNG.integers(-12, 13, n), RNG.integers(-12, 13, n), RNG.integers(-4, 5, n)
    s[s == 0] = -1
    s[0] = -3  # a negative step, and an empty range
    a[0], b[0] = 2, 5
    return a, b, s


@lane_test
def test_reversed_ranges_with_per_lane_bounds_and_steps(n, data):
    check(reversed_ranges, range_lanes(n, data))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", SIZES)
def test_reversed_ranges_on_every_backend(n, backend):
    a, b, s = range_lanes(n)
    res = check(reversed_ranges, (a, b, s), backend)
    assert res[0].dtype == np.int64


def reversed_range_in_comprehensions(a, b):
    ys = [i * a for i in reversed(range(4))]
    return (ys[0], ys[3], sum(i * 3 for i in reversed(range(bool(a > 0), 4))),
            sum(i * 2 for i in reversed(range(b, 5 - b, 2))), np.float32(1.0) * sum(i for i in reversed(range(b))))


def test_reversed_ranges_in_comprehensions_give_python_ints():
    res = check(reversed_range_in_comprehensions, (RNG.integers(-1, 2, 40), RNG.integers(0, 6, 40)))
    assert res[2].dtype == np.int64 and res[4].dtype == np.float32  # weak ints, as range's items


def reversed_range_zero_step(a, s):
    for i in reversed(range(0, a, s)):  # marker-zero-step
        a += i
    return a


def reversed_range_float(x):
    for i in reversed(range(x)):  # marker-float-range
        x += i
    return x


def test_reversed_ranges_raise_as_range_does():
    exc = raises_at(reversed_range_zero_step, "marker-zero-step", vmapper.LaneError,
                    "ValueError: range\\(\\) arg 3 must not be zero", np.array([3, 4, 5]), np.array([1, 0, 0]))
    assert list(exc.lanes) == [1, 2]
    raises_at(reversed_range_float, "marker-float-range", vmapper.LaneError,
              "TypeError: .* cannot be interpreted as an integer", np.array([1.0, 2.0]))


def reversed_sequences(x, a, b):
    lst = [a, b, a * b]
    h = 0.0
    for v in reversed(x):
        h = h * 0.5 + v
    for i, v in enumerate(reversed(lst)):
        h = h * 0.25 + i * v
    for v, w in zip(reversed(x), (a, b)):
        h = h - v * w
    for v in reversed(lst):
        lst.append(v)  # Python's reverse iterator never sees the appended items
    ys = [2.0 * v for v in reversed(x)]
    return (h, sum(reversed(x)), sum(reversed(lst), 1.0), max(reversed(x)), min(reversed(lst)), ys[0],
            any(v > 1.0 for v in reversed(x)), all(reversed(lst)), len(lst))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", SIZES)
def test_reversed_arrays_lists_and_tuples_iterate_from_the_end(n, backend):
    check(reversed_sequences, (RNG.normal(size=(n, 5)), RNG.normal(size=n), RNG.normal(size=n)), backend)


def reversed_rows(m):
    out = np.zeros(m.shape[1])
    for k, row in enumerate(reversed(m)):
        out = out * 0.5 + k * row
    return out


def test_reversed_per_sample_matrix_iterates_its_rows_from_the_last():
    check(reversed_rows, (RNG.normal(size=(30, 4, 3)),))


def reversed_children(node):
    h = 0
    for c in reversed(node.children):
        h = (h * 7 + c.id + reversed_children(c)) % 1000003
    return h


def test_reversed_children_of_tree_nodes():
    check(reversed_children, (random_nary_forest(7).roots,))


def reversed_weighted(x, w):
    t = 0.0
    for v in reversed(x):
        t = t * w + v * v
    for i in reversed(range(1, 4)):
        t = t * w + i
    return t


def test_gradients_flow_through_reversed_iteration():
    check_grads(vmapper.batched(reversed_weighted), (RNG.normal(size=(9, 4)), RNG.uniform(0.5, 1.5, 9)),
                argnums=(0, 1))


def reversed_as_a_value(x):
    r = reversed(x)  # marker-value
    return sum(r)


def reversed_enumerate(x):
    for i, v in reversed(enumerate(x)):  # marker-enumerate
        x = v
    return x


def reversed_range_as_a_value(n):
    return sum(reversed(range(n)))  # marker-range-value


def reversed_of_a_number(x):
    for v in reversed(x):  # marker-number
        x = v
    return x


def test_reversed_where_python_would_not_iterate_it_at_once_raises_naming_the_line():
    raises_at(reversed_as_a_value, "marker-value", vmapper.UnsupportedSyntaxError,
              "reversed\\(\\) outside a 'for' loop header", np.ones((2, 3)))
    raises_at(reversed_enumerate, "marker-enumerate", vmapper.UnsupportedSyntaxError,
              "'enumerate' object is not reversible", np.ones((2, 3)))
    raises_at(reversed_range_as_a_value, "marker-range-value", vmapper.UnsupportedSyntaxError,
              "reversed\\(range\\(...\\)\\) outside a 'for' loop header", np.arange(3))
    exc = raises_at(reversed_of_a_number, "marker-number", vmapper.LaneError, "TypeError", np.ones(3))
    assert exc.python_error is TypeError  # as Python's: a number is not reversible


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_modulus_whose_products_overflow_int64_raises_on_the_lanes_that_reach_it(backend):
    a, b = np.array([3, 4, 5, 6]), np.array([2, 3, 4, 5])
    m = np.array([7, 3037000500, 9, -10 ** 15])
    exc = raises_at(pow_mod_marked, "marker-pow-mod", vmapper.UnsupportedSyntaxError,
                    r"\|m\| > 3037000499 .*on lane\(s\) 1, 3", a, b, m)
    assert "int64" in str(exc)
    ok = np.array([True, False, True, False])
    check(masked_pow_mod, (a, b, m, ok), backend)  # lanes that do not reach the call never raise


def enumerate_reversed_children(node):
    s = 0
    for i, c in enumerate(reversed(node.children)):  # marker-reversed-children
        s += i * c.value
    return s


def test_reversed_children_inside_enumerate_names_the_construct_and_the_line():
    forest = vmapper.Forest.from_nested([((1, 2), 3), (4, (5, 6, 7))])
    exc = raises_at(enumerate_reversed_children, "marker-reversed-children", vmapper.UnsupportedSyntaxError,
                    r"a slice of node\.children", forest.roots)
    assert "for c in reversed(node.children)" in str(exc)


def round_of_a_clamp(x):
    return round(min(x, 0.35), 1)  # every lane's min is the Python float 0.35


def round_after_a_branch_no_lane_takes(x):
    y = 0.15
    if x > 100.0:
        y = x
    return round(y, 1)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("fn", [round_of_a_clamp, round_after_a_branch_no_lane_takes])
def test_a_python_float_stays_one_where_no_lane_takes_the_numpy_side(fn, backend):
    """round(0.35, 1) is 0.3 for a Python float (decimal rounding) and 0.4 for np.float64: a
    branch (or min) whose numpy side no lane takes leaves the Python float as it is."""
    x = np.array([1.0, 2.0, 3.0])
    got = vmapper.batched(fn, backend=backend)(x)
    assert got.tolist() == [fn(v) for v in x.tolist()] == [fn(v) for v in x]


def inverse_after_a_branch_no_lane_takes(x):
    y = 0.0
    if x > 100.0:
        y = x
    return 1.0 / y


def test_a_python_float_zero_from_a_branch_no_lane_takes_still_raises_on_division():
    with pytest.raises(vmapper.LaneError) as info:
        vmapper.batched(inverse_after_a_branch_no_lane_takes, backend="numpy")(np.array([1.0, 2.0]))
    assert info.value.python_error is ZeroDivisionError


def floor_ceil_trunc_of_an_int(a):
    n = int(a)
    return math.floor(n), math.ceil(n), math.trunc(n), math.floor(n > 3)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_math_floor_ceil_trunc_of_a_python_int_are_the_int_exactly(backend):
    a = np.array([2 ** 53 + 1, 2 ** 63 - 1, -(2 ** 62) - 3, 5])
    check_batching(floor_ceil_trunc_of_an_int, (a,), backend=backend)


def nan_past_four(x):
    if x > 4.0:
        return float("nan")
    return max(x, float("-inf")) + int("2")


def test_float_and_int_of_a_str_literal_are_constants_and_keep_the_function_one_kernel():
    f = vmapper.batched(nan_past_four, backend="numba")
    check_batching(nan_past_four, (np.array([1.0, 5.0, 3.5]),), backend="numba")
    f(np.array([1.0, 5.0]))
    assert f.last_stats["kernel_launches"] == 1 and f.last_stats["launches"] == 1
