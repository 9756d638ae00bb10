"""Calls in per-sample code: helper functions, @batched helpers, recursion, default
arguments, closures and module globals; at batch sizes 1, 7 and 1000, inputs drawn by hypothesis.

Every test compares the batched run with the per-sample Python loop
(:func:`vmapper.testing.check_batching`, bitwise for integer work).
"""
import re
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vmapper
from vmapper.testing import check_batching
from lane_inputs import SIZES, CF_SETTINGS, sizes, lane_test, int_lanes, draw_ints, random_binary_forest  # noqa: F401


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


# ---- methods of a model object ----------------------------------------------------------------

class Model:
    """The usual shape of a model: parameters on ``self``, helpers as methods, recursion
    through ``self``."""

    def __init__(self, seed=0):
        r = np.random.default_rng(seed)
        self.W, self.b, self.scale = r.normal(size=(3, 4)), r.normal(size=3), 0.75

    def hidden(self, x):
        return np.tanh(self.W @ x + self.b)

    @staticmethod
    def clip(v, lo=-1.0):
        return max(v, lo)

    def forward(self, x, k):
        h = self.hidden(x)
        s = 0.0
        for i in range(k):
            s += self.clip(h[i % 3] * i * self.scale, lo=-0.5)
        return s

    def steps(self, n):
        if n <= 1:
            return 0
        return 1 + self.steps(n // 2 if n % 2 == 0 else 3 * n + 1)

    def size(self, node):
        if node.is_leaf:
            return 1
        return 1 + sum(self.size(c) for c in node.children)

    def value(self, node):
        if node.is_leaf:
            return self.scale * node.value
        return np.tanh(sum(self.value(c) for c in node.children) - 0.5 * self.size(node))

    @staticmethod
    @vmapper.batched
    def quadrupled(v):
        return v * 4.0

    @classmethod
    def offset(cls, v):
        return v + cls.OFFSET

    OFFSET = 0.25

    def wrapped(self, x):
        return self.quadrupled(x[0]) + self.offset(x[1])

    @vmapper.batched
    def doubled(self, x):
        return self.forward(x, 3) * 2.0

    @vmapper.batched(in_axes=(None, 0))  # (the object's own None, as before methods were bound)
    def tripled(self, x):
        return self.forward(x, 3) * 3.0


MODEL = Model()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_bound_method_batches_with_its_object_broadcast_and_calls_through_self(backend):
    r = np.random.default_rng(1)
    x, k = r.normal(size=(40, 4)), r.integers(0, 6, size=40)
    # (W @ x is one GEMM batched, a GEMV per sample: equal to rounding)
    check_batching(vmapper.batched(MODEL.forward, backend=backend), (x, k), exact=False, rtol=1e-12)
    check_batching(vmapper.batched(MODEL.steps, backend=backend), (r.integers(1, 50, size=40),))


def test_static_batched_and_class_methods_are_called_through_self():
    x = np.random.default_rng(6).normal(size=(8, 4))
    check_batching(vmapper.batched(MODEL.wrapped), (x,))
    # (the oracle reads the object's own None at the front of a bound method's in_axes)
    check_batching(vmapper.batched(MODEL.forward, in_axes=(None, 0, None)), (x, 3), exact=False, rtol=1e-12)


class Affine:
    def __init__(self):
        self.b = np.array([0.5, -1.0, 2.0])

    def forward(self, W, v, z=0.0):
        return W @ v + self.b + z


def test_a_bound_methods_in_axes_with_one_entry_per_parameter_is_read_per_parameter():
    # (W, v, z) = (None, 0, 0), called with (W, v): the leading None was read as the object's,
    # and W batched, where explain() read it per parameter
    W, v = np.arange(9.0).reshape(3, 3), np.ones((4, 3))
    f = vmapper.batched(Affine().forward, in_axes=(None, 0, 0), backend="numpy")
    check_batching(f, (W, v))
    assert "varying (differ per lane): v, z" in f.explain()
    # one entry more than the parameters still starts with the object's None
    check_batching(vmapper.batched(Affine().forward, in_axes=(None, None, 0, 0), backend="numpy"), (W, v))


def test_batched_methods_bind_their_object_and_keep_last_stats():
    x = np.random.default_rng(2).normal(size=(7, 4))
    np.testing.assert_allclose(MODEL.doubled(x), [MODEL.forward(v, 3) * 2.0 for v in x], rtol=1e-12)
    assert MODEL.doubled.last_stats["batch_size"] == 7
    np.testing.assert_allclose(MODEL.tripled(x), [MODEL.forward(v, 3) * 3.0 for v in x], rtol=1e-12)
    other = Model(seed=5)  # each object its own parameters
    np.testing.assert_allclose(other.doubled(x), [other.forward(v, 3) * 2.0 for v in x], rtol=1e-12)


def _halved(v):
    return v * 0.5


class _Holder:
    halved = vmapper.batched(_halved)  # (stored on a class, not a method: no object)


def test_a_batched_method_called_through_its_class_takes_the_object_first():
    x = np.random.default_rng(3).normal(size=(6, 4))
    np.testing.assert_array_equal(Model.doubled(MODEL, x), MODEL.doubled(x))
    np.testing.assert_array_equal(Model.tripled(MODEL, x), MODEL.tripled(x))
    values, grads = vmapper.value_and_grad(Model.doubled, argnums=1)(MODEL, x)
    bound_values, bound_grads = vmapper.value_and_grad(MODEL.doubled, argnums=0)(x)
    np.testing.assert_array_equal(values, bound_values)
    np.testing.assert_array_equal(grads, bound_grads)
    assert "varying (differ per lane): x\n" in Model.doubled.explain(callees=False)  # (self: broadcast)
    np.testing.assert_array_equal(_Holder.halved(x[:, 0]), x[:, 0] * 0.5)


def test_explain_of_a_bound_method_lists_the_helpers_it_calls_through_self():
    def listed(method):
        text = vmapper.batched(method).explain(callees=True)
        return [line.split("(")[0].split()[-1] for line in text.splitlines() if line.startswith("batched program")]
    assert listed(MODEL.wrapped) == ["wrapped", "quadrupled", "offset"]
    assert listed(MODEL.forward) == ["forward", "hidden", "clip"]


def test_recursion_through_self_over_trees_runs_by_height_in_dag_mode():
    from lane_inputs import random_nary_forest
    forest = random_nary_forest(3, trees=40, depth=6)
    value = vmapper.batched(MODEL.value, memo=True)
    np.testing.assert_allclose(value(forest.roots), [MODEL.value(r) for r in forest.roots], rtol=1e-12)
    size = vmapper.batched(MODEL.size, memo=True)
    np.testing.assert_array_equal(size(forest.roots), [MODEL.size(r) for r in forest.roots])
    st = size.last_stats
    assert st["memo_evaluated"] == forest.num_nodes - len(forest)  # each node once (roots: the call itself)
    assert st["calls"] <= 10 * int(forest.depth.max())  # by height (a loop over up to 3 children), not by node


def test_gradients_through_a_bound_method_are_for_its_own_arguments():
    r = np.random.default_rng(3)
    x, k = r.normal(size=(9, 4)), np.full(9, 4)
    vg = vmapper.value_and_grad(vmapper.batched(MODEL.forward), argnums=-2)
    v, g = vg(x, k)
    fd = np.empty_like(x)
    for j in range(4):
        e = np.zeros(4)
        e[j] = 1e-6
        fd[:, j] = [(MODEL.forward(xi + e, 4) - MODEL.forward(xi - e, 4)) / 2e-6 for xi in x]
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def uses_an_object(model, x):
    return model.hidden(x)[0] + model.scale


def test_an_object_passed_with_in_axes_none_is_broadcast_as_it_is():
    x = np.random.default_rng(4).normal(size=(6, 4))
    check_batching(uses_an_object, (MODEL, x), in_axes=(None, 0), exact=False, rtol=1e-12)
    with pytest.raises(vmapper.BatchError, match="argument 'model' is a Model"):
        vmapper.batched(uses_an_object)(MODEL, x)


# ---- calls through self: merged and hoisted as calls of functions are ------------------------------

def depth_of(node):
    if node.is_leaf:
        return 1
    return 1 + max(depth_of(node.left), depth_of(node.right))


def size_of(node):
    return 1 + sum(size_of(c) for c in node.children)


class Walker:
    def __init__(self, weights):
        self.weights = weights

    def depth(self, node):
        if node.is_leaf:
            return 1
        return 1 + max(self.depth(node.left), self.depth(node.right))

    def size(self, node):
        return 1 + sum(self.size(c) for c in node.children)

    def weighted(self, node, p):
        if node.is_leaf:
            return p * self.weights[node.value]
        a = self.weighted(node.left, p)
        b = self.weighted(node.right, p * 0.5)
        return np.tanh(a - b)


def test_sibling_calls_through_self_merge_into_one_call_per_level_as_a_functions_do():
    forest = random_binary_forest(0, trees=48)
    walker = Walker(np.linspace(-1.0, 1.0, 9))
    for method, function in [(walker.depth, depth_of), (walker.size, size_of)]:
        by_method, by_function = vmapper.batched(method), vmapper.batched(function)
        expected = [function(r) for r in forest.roots]
        np.testing.assert_array_equal(by_method(forest.roots), expected)
        np.testing.assert_array_equal(by_function(forest.roots), expected)
        # one call per level (the size: the children loop's calls hoisted into one), not per node
        assert by_method.last_stats["calls"] == by_function.last_stats["calls"] <= int(forest.depth.max()) + 1
        assert by_method.last_stats["launches"] == by_function.last_stats["launches"]


def test_gradients_flow_through_merged_calls_through_self():
    forest = random_binary_forest(1, trees=12, depth=5)
    walker = Walker(np.linspace(-1.0, 1.0, 9))
    p = np.random.default_rng(2).normal(size=len(forest))
    vg = vmapper.value_and_grad(vmapper.batched(walker.weighted), argnums=1)
    v, g = vg(forest.roots, p)
    np.testing.assert_allclose(v, [walker.weighted(r, q) for r, q in zip(forest.roots, p)], rtol=1e-12)
    fd = [(walker.weighted(r, q + 1e-6) - walker.weighted(r, q - 1e-6)) / 2e-6 for r, q in zip(forest.roots, p)]
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8)


def dots(self, a, b, rows):
    """``self`` here is a per-sample array: its method calls merge and hoist, then run as
    the array method on every group (no user function behind them)."""
    t = self.dot(a) + self.dot(b)
    for row in rows:
        t += self.dot(row)
    return t


def test_merged_and_hoisted_calls_through_a_self_that_is_an_array_run_the_array_method():
    text = vmapper.batched(dots).explain()
    assert "method(self, a, b, name='dot', kw=(), groups=2)" in text and "map_method(self" in text
    r = np.random.default_rng(7)
    args = r.normal(size=(30, 4)), r.normal(size=(30, 4)), r.normal(size=(30, 4)), r.normal(size=(30, 3, 4))
    check_batching(dots, args, exact=False, rtol=1e-12)


def square_plus_half(a):
    return a * a + 0.5


def two_precisions(x32, x64):
    return square_plus_half(x32), square_plus_half(x64)


def times(a, b):
    return a * b


def int_and_float_calls(n, x):
    return times(n, 1), times(x, 1.5)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_independent_calls_with_arguments_of_other_types_are_not_merged_into_one_promoted_call(backend):
    x32 = np.array([1.1, 2.2], dtype=np.float32)
    p, q = check_batching(two_precisions, (x32, x32.astype(np.float64)), backend=backend)
    assert p.dtype == np.float32 and q.dtype == np.float64
    a, _ = check_batching(int_and_float_calls, (np.array([2**60 + 1, 3]), np.array([1.0, 2.0])), backend=backend)
    assert a[0] == 2**60 + 1


class Pair(NamedTuple):
    low: float
    high: float


class Box:
    def __init__(self, v):
        self.v = v


def returns_a_named_tuple(x):
    return Pair(x, x + 1.0)


def makes_an_object(x):
    return Box(x).v


@pytest.mark.parametrize("fn, construct, hint", [
    (returns_a_named_tuple, "building the NamedTuple Pair", r"Pair\(\*f\(\.\.\.\)\)"),
    (makes_an_object, "calling the class Box", "build objects from the batched results outside"),
])
def test_calling_a_class_is_refused_with_what_to_return_instead(fn, construct, hint):
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=construct) as info:
        vmapper.batched(fn)(np.arange(3.0))
    assert re.search(hint, str(info.value)) and info.value.line == fn.__code__.co_firstlineno + 1
