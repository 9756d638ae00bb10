"""Gradients through batched control flow match finite differences, construct by construct."""
import math

import numpy as np
import pytest

import vmapper
from vmapper.testing import check_grads

RNG = np.random.default_rng(0)


def x_batch(n=9, scale=1.5):
    return RNG.normal(size=n) * scale


def branches(x, w):
    if x > 0.5:
        y = x * w
    elif x > -0.5:
        y = np.sin(x) * w * w
    else:
        y = -x / w
    return y


def while_loop(x, w):
    y = x
    trips = 0
    while abs(y) < 4.0 and trips < 30:
        y = y * 1.3 + w
        trips += 1
    return y


def for_break_continue(x, w):
    acc = 0.0
    for i in range(6):
        if i % 2 == 1:
            continue
        acc = acc + np.tanh(x * i + w)
        if acc > 1.5:
            break
    return acc


def early_return(x, w):
    for i in range(5):
        if x * i > 2.0:
            return x * w * i
    return math.exp(-x * x) * w


def helper(a, b):
    return a * b + np.sqrt(a * a + 1.0)


def calls_helper(x, w):
    return helper(x, w) - helper(w, x)


def fact_like(x, k):
    if k <= 0:
        return 1.0
    return x * fact_like(x, k - 1)


def recursion(x, w):
    return fact_like(x * w, 3) + fact_like(x, 2)


def gathers_and_matmul(i, x, table, W):
    v = table[i] * x
    h = np.tanh(W @ v)
    return np.sum(h * h) + v[0]


def reductions(X):
    return X.max() + X.mean() * X.sum() - np.min(X)


def masked_nan_trap(x, w):
    if x > 0:
        return np.sqrt(x) * w
    return w


def newton_sqrt(a, w):
    x = a
    steps = 0
    while abs(x * x - a) > 1e-12 * a and steps < 50:
        x = 0.5 * (x + a / x)
        steps += 1
    return x * w


@pytest.mark.parametrize("fn", [branches, while_loop, for_break_continue, early_return, calls_helper,
                                recursion, masked_nan_trap])
def test_scalar_constructs_match_finite_differences(fn):
    x = x_batch()
    check_grads(vmapper.batched(fn, in_axes=(0, None)), (x, 0.8), argnums=(0, 1))


def test_newton_to_tolerance_differentiates_through_the_adaptive_loop():
    a = RNG.uniform(0.5, 20.0, size=16)
    check_grads(vmapper.batched(newton_sqrt, in_axes=(0, None)), (a, 1.3), argnums=(0, 1), rtol=1e-5)


def test_gathers_scatter_add_back_and_matmul_with_broadcast_weights():
    idx = RNG.integers(0, 5, size=8)
    x = RNG.normal(size=8)
    table = RNG.normal(size=(5, 3))
    W = RNG.normal(size=(4, 3))
    f = vmapper.batched(gathers_and_matmul, in_axes=(0, 0, None, None))
    check_grads(f, (idx, x, table, W), argnums=(1, 2, 3))


def test_reductions_over_per_sample_axes():
    X = RNG.normal(size=(6, 4))
    check_grads(vmapper.batched(reductions), (X,))


def test_masked_lanes_leak_no_nan_into_gradients():
    x = np.array([-4.0, -1.0, 0.0, 2.0, 9.0])
    _, (gx, gw) = vmapper.value_and_grad(vmapper.batched(masked_nan_trap, in_axes=(0, None)), (0, 1))(x, 2.0)
    assert np.all(np.isfinite(gx)) and np.isfinite(gw)
    np.testing.assert_allclose(gx[3:], 2.0 * 0.5 / np.sqrt(x[3:]))
    assert np.all(gx[:3] == 0.0)


def test_broadcast_argument_gradient_is_summed_and_batched_keeps_its_axis():
    x = x_batch(5)
    vals, (gx, gw) = vmapper.value_and_grad(vmapper.batched(branches, in_axes=(0, None)), (0, 1))(x, 0.7)
    assert gx.shape == (5,) and np.ndim(gw) == 0
    per = [vmapper.value_and_grad(vmapper.batched(branches, in_axes=(0, None)), 1)(x[i:i + 1], 0.7)[1]
           for i in range(5)]
    assert np.isclose(gw, sum(per))


def sum_of_broadcast(x, w):
    return np.sum(w)


def broadcast_square(x, w):
    return w @ w


def rnn_over_lengths(n, p):
    h = np.zeros(3)
    for t in range(n):
        h = np.tanh(p["U"] @ h + p["b"])
    return np.sum(h * p["v"])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_result_that_depends_on_broadcast_values_only_has_their_summed_gradient(backend):
    x, w = np.arange(4.0), np.array([1.0, 2.0, 3.0])
    g = vmapper.grad(vmapper.batched(sum_of_broadcast, in_axes=(0, None), backend=backend), argnums=1)(x, w)
    np.testing.assert_array_equal(g, [4.0, 4.0, 4.0])
    f = vmapper.batched(broadcast_square, in_axes=(0, None), backend=backend)
    np.testing.assert_array_equal(vmapper.grad(f, argnums=1)(x, w), 4 * 2 * w)
    out, pullback = vmapper.vjp(f, x, w)
    np.testing.assert_array_equal(pullback(np.array([1.0, 2.0, 0.0, -1.0]))[1], 2 * 2 * w)
    # a loop that no lane enters leaves h = zeros: the same on every lane, and v's gradient is h's sum
    rng = np.random.default_rng(0)
    p = {"U": rng.normal(size=(3, 3)), "b": rng.normal(size=3), "v": rng.normal(size=3)}
    rnn = vmapper.batched(rnn_over_lengths, in_axes=(0, None), backend=backend)
    grads = vmapper.grad(rnn, argnums=1)(np.zeros(4, int), p)
    assert all(np.array_equal(grads[k], np.zeros_like(p[k])) for k in p)
    check_grads(rnn, (np.array([0, 2, 1, 0]), p), argnums=1)


def test_integer_arguments_get_no_gradient_and_pytrees_keep_structure():
    def f(params, k):
        return params["a"] * k + params["b"][0] * params["b"][1]
    params = {"a": 2.0, "b": (np.float64(3.0), np.float64(-1.0))}
    g = vmapper.grad(vmapper.batched(f, in_axes=(None, 0)), 0)(params, np.array([1, 2, 3]))
    assert set(g) == {"a", "b"} and np.isclose(g["a"], 6.0)
    assert np.isclose(g["b"][0], -3.0) and np.isclose(g["b"][1], 9.0)


class _Model:
    def __init__(self, w):
        self.w = w

    def score(self, x):
        return np.tanh(self.w * x)


def test_differentiating_an_object_argument_raises_naming_it_instead_of_a_silent_none():
    x = np.linspace(-1, 1, 5)
    with pytest.raises(TypeError, match=r"argument 'self', a _Model object"):
        vmapper.value_and_grad(vmapper.batched(_Model.score, in_axes=(None, 0)))(_Model(0.5), x)
    with pytest.raises(TypeError, match=r"argument 'params\['m'\]', a _Model object"):
        vmapper.grad(vmapper.batched(_scaled_by_the_model_in, in_axes=(None, 0)))({"m": _Model(0.5)}, x)
    # its float attribute, passed itself, differentiates
    g = vmapper.grad(vmapper.batched(_tanh_scaled, in_axes=(None, 0)))(0.5, x)
    assert np.isclose(g, np.sum(x * (1 - np.tanh(0.5 * x) ** 2)))


def _scaled_by_the_model_in(params, x):
    return params["m"].w * x


def _tanh_scaled(w, x):
    return np.tanh(w * x)


def test_vjp_of_a_tuple_result():
    def f(x):
        return x * x, np.sin(x)
    x = x_batch(4)
    out, back = vmapper.vjp(vmapper.batched(f), x)
    (gx,) = back((np.ones(4), 2 * np.ones(4)))
    np.testing.assert_allclose(gx, 2 * x + 2 * np.cos(x))


def test_vjp_leaves_the_cotangents_unchanged_when_one_value_is_returned_twice():
    def f(x):
        y = x * x
        return y, y
    x = x_batch(5)
    _, back = vmapper.vjp(vmapper.batched(f), x)
    c1, c2 = np.linspace(1.0, 2.0, 5), np.linspace(-1.0, 3.0, 5)
    k1, k2 = c1.copy(), c2.copy()
    (gx,) = back((c1, c2))
    np.testing.assert_allclose(gx, 2 * x * (c1 + c2))
    assert np.array_equal(c1, k1) and np.array_equal(c2, k2)
    (gx2,) = back((c1, c2))  # the backward may run again: its seeds were not consumed
    np.testing.assert_array_equal(gx, gx2)


def _loss_and_stats(x, w):
    y = np.tanh(w * x)
    if y > 0.0:
        return y * y, (y > 0.5, x * 2.0)
    return -y, (False, x * 2.0)


def _loss_and_count(x, w):
    k = 0
    while x * k < 3.0 and k < 10:
        k += 1
    return w * x * k, k


def test_has_aux_returns_the_aux_values_per_sample_and_differentiates_the_value_only():
    x = np.linspace(-2.0, 2.0, 9)
    f = vmapper.batched(_loss_and_stats, in_axes=(0, None))
    (values, (big, doubled)), gw = vmapper.value_and_grad(f, argnums=1, has_aux=True)(x, 0.7)
    per_sample = [_loss_and_stats(xi, 0.7) for xi in x]
    np.testing.assert_array_equal(values, [v for v, _ in per_sample])
    np.testing.assert_array_equal(big, [a[0] for _, a in per_sample])
    np.testing.assert_array_equal(doubled, 2.0 * x)
    # d/dw of sum(values): 2 y (1 - y^2) x where y > 0, else -(1 - y^2) x
    y = np.tanh(0.7 * x)
    expected = np.where(y > 0, 2 * y * (1 - y * y) * x, -(1 - y * y) * x).sum()
    np.testing.assert_allclose(gw, expected, rtol=1e-12)
    gw2, (big2, _) = vmapper.grad(f, argnums=1, has_aux=True)(x, 0.7)
    assert gw2 == gw and np.array_equal(big2, big)


def test_has_aux_with_an_int_aux_from_a_loop_keeps_its_dtype():
    x = np.array([0.5, 1.0, 4.0, 0.1])
    f = vmapper.batched(_loss_and_count, in_axes=(0, None))
    (values, k), gw = vmapper.value_and_grad(f, argnums=1, has_aux=True)(x, 2.0)
    ks = [_loss_and_count(xi, 2.0)[1] for xi in x]
    np.testing.assert_array_equal(k, ks)
    assert k.dtype == np.int64
    np.testing.assert_array_equal(values, 2.0 * x * k)
    assert gw == (x * k).sum()


def test_has_aux_needs_a_pair():
    f = vmapper.batched(_tanh_scaled, in_axes=(None, 0))
    with pytest.raises(vmapper.BatchError, match=r"has_aux=True needs a pair \(value, aux\) per sample; "
                                                 r"_tanh_scaled returns one value"):
        vmapper.value_and_grad(f, has_aux=True)(0.5, x_batch(3))
    with pytest.raises(vmapper.BatchError, match=r"or has_aux=True for a pair"):
        vmapper.value_and_grad(vmapper.batched(_loss_and_stats, in_axes=(0, None)), argnums=1)(x_batch(3), 0.5)


def test_value_and_grad_rejects_non_scalar_results():
    with pytest.raises(vmapper.BatchError, match="float scalar per sample"):
        vmapper.value_and_grad(vmapper.batched(lambda_free_vector))(np.ones((3, 2)))


def lambda_free_vector(x):
    return x * 2.0


def test_second_order_check_raises_a_clear_error():
    with pytest.raises(vmapper.BatchingError, match="second-order"):
        check_grads(vmapper.batched(branches, in_axes=(0, None)), (x_batch(), 0.5), order=2)


def embed(i, x, table):
    return np.sum(np.tanh(table[i] * x))


def test_gathered_table_gradient_is_row_sparse_and_equals_the_dense_one():
    from vmapper.autodiff.sparse import RowSparse
    idx = RNG.integers(0, 50, size=12)
    x = RNG.normal(size=12)
    table = RNG.normal(size=(50, 3))
    f = vmapper.batched(embed, in_axes=(0, 0, None))
    g_sparse = vmapper.grad(f, 2)(idx, x, table)
    g_dense = vmapper.grad(f, 2, sparse_tables=False)(idx, x, table)
    assert isinstance(g_sparse, RowSparse) and len(g_sparse.indices) == 12
    np.testing.assert_allclose(g_sparse.to_dense(), g_dense)
    c = g_sparse.coalesce()
    assert len(c.indices) == len(np.unique(idx))
    np.testing.assert_allclose(c.to_dense(), g_dense)
    updated = g_sparse.apply_to(table.copy(), -0.1)
    np.testing.assert_allclose(updated, table - 0.1 * g_dense)


def squared(x):
    return x * x


@pytest.mark.parametrize("argnums, error", [("x", TypeError), (1.0, TypeError), ((), TypeError),
                                            ((0, 0), ValueError), (True, TypeError)])
def test_argnums_must_be_an_int_or_a_tuple_of_distinct_ints(argnums, error):
    with pytest.raises(error, match="argnums"):
        vmapper.grad(squared, argnums=argnums)


def product(x, y):
    return x * y


def test_argnums_naming_one_argument_from_both_ends_is_named_twice():
    a = np.arange(3.0)
    with pytest.raises(ValueError, match=r"argnums \(0, -2\) names an argument twice"):
        vmapper.grad(product, (0, -2))(a, a)


def test_argnums_of_a_parameter_passed_by_keyword_says_to_pass_it_by_position():
    vg = vmapper.value_and_grad(vmapper.batched(branches, in_axes=(0, None)), argnums=1)
    with pytest.raises(vmapper.BatchError, match="'w' was passed by keyword: pass it by position"):
        vg(x_batch(), w=0.5)
    assert np.isfinite(vg(x_batch(), 0.5)[1])


def scaled_by_a_keyword_only_weight(x, *, w):
    return x * w


def test_argnums_of_a_keyword_only_parameter_says_to_make_it_positional():
    # (the hint said to pass it by position, which Python refuses for a keyword-only parameter)
    vg = vmapper.value_and_grad(vmapper.batched(scaled_by_a_keyword_only_weight), argnums=1)
    with pytest.raises(vmapper.BatchError, match="'w' is keyword-only: make it a positional parameter"):
        vg(x_batch(), w=0.5)


def test_kernels_submodules_load_on_first_attribute_use():
    import subprocess
    import sys
    code = "import vmapper; print(vmapper.kernels.losses.cross_entropy.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "cross_entropy"


def test_a_gradient_function_cannot_be_differentiated_again_and_says_so():
    with pytest.raises(vmapper.BatchingError, match="second-order gradients are not supported"):
        vmapper.grad(vmapper.grad(squared))(np.arange(3.0))
    np.testing.assert_array_equal(vmapper.grad(squared, argnums=np.int64(0))(np.arange(3.0)), [0.0, 2.0, 4.0])


def doubled_and_squared(x):
    return x * 2, x * x


def test_vjp_cotangents_must_have_the_outputs_structure_and_shapes():
    out, vjp_fn = vmapper.vjp(vmapper.batched(doubled_and_squared), np.arange(3.0))
    np.testing.assert_array_equal(vjp_fn((np.ones(3), np.ones(3)))[0], [2.0, 4.0, 6.0])
    with pytest.raises(vmapper.BatchError, match="cotangents must be a tuple of 2 like the outputs"):
        vjp_fn(np.ones(3))
    with pytest.raises(vmapper.BatchError, match=r"cotangents\[1\] has shape \(3, 1\); the output it goes with"):
        vjp_fn((np.ones(3), np.ones((3, 1))))
    with pytest.raises(vmapper.BatchError, match=r"cotangents\[0\] is complex \(complex128\) for a real output"):
        vjp_fn((np.ones(3) * 1j, np.ones(3)))  # (its imaginary part was dropped, with a warning)


def hinge(x, y, w):
    m = y * np.dot(w, x)
    if m >= 1.0:
        return 0
    return 1.0 - m


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_batch_that_takes_only_an_int_returning_path_has_zero_gradients(backend):
    # a hinge loss whose every sample is past the margin: the training step must not die there
    f = vmapper.batched(hinge, in_axes=(0, 0, None), backend=backend)
    w, X = np.array([2.0, 0.0]), np.array([[1.0, 0.0], [2.0, 1.0]])
    values, g = vmapper.value_and_grad(f, argnums=2)(X, np.array([1.0, 1.0]), w)
    np.testing.assert_array_equal(values, [0, 0])
    np.testing.assert_array_equal(g, [0.0, 0.0])
    values, g = vmapper.value_and_grad(f, argnums=2)(X, np.array([1.0, -1.0]), w)
    np.testing.assert_array_equal(g, [2.0, 1.0])


def max_of_zero(x, y, w):
    return max(0, 1.0 - y * (w @ x))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_max_of_an_int_that_wins_on_every_lane_is_that_int_with_zero_gradients(backend):
    # (value_and_grad returned the other operand's values, 1 - y * (w @ x), there)
    f = vmapper.batched(max_of_zero, in_axes=(0, 0, None), backend=backend)
    X, y, w = np.array([[2.0, 1.0], [-3.0, 0.0], [4.0, 1.0]]), np.array([1.0, -1.0, 1.0]), np.array([1.0, 0.5])
    values, g = vmapper.value_and_grad(f, argnums=2)(X, y, w)
    np.testing.assert_array_equal(values, f(X, y, w))
    assert values.dtype.kind == "i" and not values.any()
    np.testing.assert_array_equal(g, [0.0, 0.0])


def shared_kept_by_a_lane_branch(x, w):
    t = w
    if x > 0:
        t = max(t, 0.0)  # (w > 0: t is w on every lane)
    return t * 3.0 + x


def shared_on_both_arms(x, w):
    return (w if x < 0 else w) + x


def shared_in_a_ragged_loop(x, w):
    a = 0.0
    k = 0
    while k < x:  # (1, 2 or 3 trips)
        a = w
        k += 1
    return a * 2.0


def shared_vector_in_a_ragged_loop(x, W):
    h = np.zeros(2)
    k = 0
    while k < x:
        h = W
        k += 1
    return np.sum(h * 2.0)


def shared_replaces_a_lanes_value(x, w):
    a = x
    if w > 0.0:  # (a uniform condition)
        a = w
    return a * x


def shared_written_back_from_few_lanes(x, w):
    a = w
    b = x
    if x > 2.5:  # (two of eight lanes: the arm runs on them compacted, then writes back)
        a = w
        b = math.sin(x) * 2.0 + b * 3.0
        b = b * b + 1.0
    return a * x + b


def test_a_shared_value_written_back_from_compacted_lanes_gets_its_gradient_once():
    # (the write-back's gradient rule indexed the uniform value's summed gradient by lane)
    x = np.array([0.5, 2.0, 3.0, -1.5, 0.1, 0.2, 0.3, 2.7])
    check_grads(vmapper.batched(shared_written_back_from_few_lanes, in_axes=(0, None), backend="numpy"),
                (x, 0.7), argnums=(0, 1))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("fn, w", [(shared_kept_by_a_lane_branch, 0.7), (shared_on_both_arms, 0.7),
                                   (shared_in_a_ragged_loop, 1.5), (shared_vector_in_a_ragged_loop, np.array([1.0, 2.0])),
                                   (shared_replaces_a_lanes_value, 1.0)])
@pytest.mark.parametrize("x", [np.array([0.5, 2.0, 3.0, -1.5]), np.array([0.5, 2.0, 3.0])])
def test_a_shared_value_that_lanes_hold_through_branches_and_loops_gets_its_gradient_once(fn, w, x, backend):
    # (a uniform result of per-lane selects got a gradient once per lane: 4x or 2.3x too large,
    # or the backward sweep failed on its shape)
    check_grads(vmapper.batched(fn, in_axes=(0, None), backend=backend), (x, w), argnums=(0, 1))


def three_results(x):
    return x * 2.0, x * x, -x


def test_a_none_cotangent_is_a_zero_one():
    _, back = vmapper.vjp(vmapper.batched(three_results), np.arange(3.0))
    (gx,) = back((np.ones(3), None, None))
    np.testing.assert_array_equal(gx, [2.0, 2.0, 2.0])


def squared_norm_and_square(x, z):
    return x * (z * z)


def real_part_of_square(z):
    return (z * z).real


def test_complex_results_and_arguments_are_refused_rather_than_given_one_of_two_conventions():
    with pytest.raises(vmapper.BatchError, match="float scalar per sample"):
        vmapper.value_and_grad(vmapper.batched(squared_norm_and_square))(np.ones(2), np.array([1 + 1j, 2 - 0.5j]))
    with pytest.raises(vmapper.BatchError, match="argument 'z', which is complex"):
        vmapper.value_and_grad(vmapper.batched(real_part_of_square))(np.array([1 + 1j, 2 - 0.5j]))


class _KeywordModel:
    def loss(self, x, y):
        return (x * x).sum() * y


def test_a_methods_gradients_keep_their_axes_when_an_argument_is_passed_by_keyword():
    X, y = np.arange(6.0).reshape(2, 3), np.arange(2.0, 5.0)
    f = vmapper.batched(_KeywordModel().loss, in_axes=(None, 1, 0))
    by_position = vmapper.grad(f, 0)(X, y)
    np.testing.assert_array_equal(by_position, 2 * X * y)
    np.testing.assert_array_equal(vmapper.grad(f, 0)(X, y=y), by_position)
    _, pullback = vmapper.vjp(f, X, y=y)
    np.testing.assert_array_equal(pullback(np.ones(3))[0], by_position)


def powers_with_zero_exponents(x, n):
    return x ** 0 + math.pow(x, 0.0) + np.power(x, 0) + x ** n + 3.0 * x


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_gradient_of_a_zeroth_power_is_zero_at_zero(backend, dtype):
    # (b * a**(b - 1) is 0 * inf there: NaN poisoned the batch's summed gradients)
    x = np.array([0.0, -0.0, 2.0, 0.0], dtype)
    n = np.array([0.0, 0.0, 0.0, 2.0], dtype)
    g = vmapper.grad(vmapper.batched(powers_with_zero_exponents, backend=backend))(x, n)
    assert g.dtype == dtype
    np.testing.assert_array_equal(g, np.array([3.0, 3.0, 3.0, 3.0], dtype))


def heaviside_steps(x, w, h):
    s = np.heaviside(x, h) * w + x * h
    while x > 0.5:  # (a loop: the numba backend differentiates it in forward mode)
        x = x - 1.0
        s = s + np.heaviside(x, h) * w
    return s


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_heaviside_is_flat_in_x_and_passes_h0_where_x_is_zero_on_both_backends(backend):
    x = np.array([-1.0, 0.0, 2.0, 0.0, 3.5])
    h = np.array([0.25, 0.5, 0.75, 1.0, 0.3])
    f = vmapper.batched(heaviside_steps, in_axes=(0, None, 0), backend=backend)
    _, (gx, gw, gh) = vmapper.value_and_grad(f, argnums=(0, 1, 2))(x, 1.5, h)
    np.testing.assert_array_equal(gx, h)  # only x * h depends on x
    assert gw == 0.0 + 0.5 + (1.0 + 1.0 + 0.75) + 1.0 + 4 * 1.0  # every heaviside's value, h0 where x is 0
    # d/dh: x, plus w where the heaviside's x is 0 (lanes 1 and 3 at once, lane 2 after two trips)
    np.testing.assert_array_equal(gh, [-1.0, 1.5, 3.5, 1.5, 3.5])
