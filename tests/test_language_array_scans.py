"""Scans, sorts and outer products of per-sample arrays: np.cumsum, np.cumprod, np.diff,
np.sort, np.argsort, np.outer and the methods x.cumsum(), x.cumprod(), x.argsort();
batched results must equal the per-sample loop bitwise, on both backends.

Each test batches a per-sample function with :func:`vmapper.testing.check_batching`
(the per-sample numpy call is the oracle).  Sorting passes the ``kind`` on to numpy,
which sorts every lane's row with the per-sample call's algorithm: numpy's default
(not stable: with AVX-512 even short float64 arrays with ties come back in another
order than ``kind="stable"`` gives) equals the per-sample default, ties, NaN and signed
zeros included, and ``kind="stable"`` the per-sample stable sort.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import vmapper
from vmapper.autodiff.scan_rules import cumprod_grad
from vmapper.program import get_program
from vmapper.testing import check_batching, check_grads
from lane_inputs import CF_SETTINGS, N, floats, ints, rng

BACKENDS = pytest.mark.parametrize("backend", ["numpy", "numba"])

#: (per-sample shape, axes to try): every valid axis, negative ones and None.
SHAPES = [((), (None, 0, -1)), ((6,), (None, 0, -1)), ((3, 5), (None, 0, 1, -1, -2)),
          ((2, 3, 4), (None, 0, 1, 2, -1, -3))]
CASES = [(shape, axis) for shape, axes in SHAPES for axis in axes]


def along(fn, axis):
    """``fn(x, axis=axis)`` as a per-sample function (vmapper reads the closure's values)."""
    def per_sample(x):
        return fn(x, axis=axis)
    return per_sample


def sorting(fn, axis=-1, kind=None):
    def per_sample(x):
        return fn(x, axis=axis, kind=kind)
    return per_sample


def differences(order, axis):
    def per_sample(x):
        return np.diff(x, n=order, axis=axis)
    return per_sample


def tied(seed, shape, n=N):
    """Floats with many ties, signed zeros and a NaN: where sorting algorithms differ."""
    x = rng(seed).choice([-1.5, -0.0, 0.0, 0.25, 2.0, 7.0], size=(n,) + shape)
    if x.size > 3:
        x.flat[3] = np.nan
    return x


# ---- cumsum, cumprod ----------------------------------------------------------------------------

@BACKENDS
@pytest.mark.parametrize("shape, axis", CASES)
@pytest.mark.parametrize("fn", [np.cumsum, np.cumprod], ids=["cumsum", "cumprod"])
def test_cumsum_and_cumprod_over_every_axis_equal_the_per_sample_loop_bitwise(fn, shape, axis, backend):
    check_batching(along(fn, axis), (floats(1, -2, 2, shape=shape),), backend=backend)


def scans_of_ints_and_bools(M):
    return (np.cumsum(M), np.cumsum(M, axis=0), np.cumprod(M, axis=-1), np.cumsum(M > 0, axis=1),
            np.cumsum(M.astype(np.int32)), np.cumsum(M, dtype=np.float32), np.cumprod(M.astype(np.uint8), 0))


def test_scans_of_integers_and_bools_promote_as_numpy_does():
    res = check_batching(scans_of_ints_and_bools, (ints(2, -3, 4, n=N * 6).reshape(N, 2, 3),))
    assert [r.dtype for r in res] == [np.int64, np.int64, np.int64, np.int64, np.int64, np.float32, np.uint64]


def scans_of_float32(x):
    return np.cumsum(x), np.cumprod(x, axis=0), np.sort(x), np.diff(x), np.outer(x, x)


def test_scans_sorts_and_outer_keep_float32():
    res = check_batching(scans_of_float32, (floats(3, shape=(5,), dtype=np.float32),))
    assert all(r.dtype == np.float32 for r in res)


def scans_of_scalars(s, k, b):
    return np.cumsum(s), np.cumprod(s, axis=0), np.cumsum(k, axis=-1), np.cumsum(b), np.argsort(s)


def test_scans_of_per_sample_scalars_are_vectors_of_one_element():
    check_batching(scans_of_scalars, (floats(4), ints(5), ints(6) > 0))


def methods(M):
    return (M.cumsum(), M.cumsum(axis=0), M.cumsum(1), M.cumprod(), M.cumprod(axis=-1),
            M.argsort(), M.argsort(axis=0), M.argsort(axis=None, kind="stable"), M.cumsum(dtype=np.float32))


@BACKENDS
def test_methods_cumsum_cumprod_argsort(backend):
    check_batching(methods, (floats(7, shape=(3, 4)),), backend=backend)
    check_batching(methods, (tied(8, (3, 4)),), backend=backend)


def scans_of_lists(a, b):
    return np.cumsum([a, b, a * b]), np.sort([b, a]), np.outer([a, 1.0], [b, a, 2.0])


def test_lists_of_per_sample_scalars_are_arrays():
    check_batching(scans_of_lists, (floats(9), floats(10)))


# ---- diff -----------------------------------------------------------------------------------------

DIFF_CASES = [((6,), 0), ((6,), -1), ((3, 5), 0), ((3, 5), 1), ((3, 5), -2), ((2, 3, 4), 1), ((2, 3, 4), -1)]


@BACKENDS
@pytest.mark.parametrize("shape, axis", DIFF_CASES)
@pytest.mark.parametrize("order", [0, 1, 2, 7])
def test_diff_of_every_order_and_axis_equals_the_per_sample_loop_bitwise(order, shape, axis, backend):
    check_batching(differences(order, axis), (floats(11, shape=shape),), backend=backend)


def diff_default_and_positional(X):
    return np.diff(X), np.diff(X, 2), np.diff(X, 1, 0), np.diff(X > 0), np.diff(X.astype(np.int64))


def test_diff_defaults_positional_arguments_ints_and_bools():
    check_batching(diff_default_and_positional, (floats(12, shape=(4, 5)),))


def diff_prepend_append(X, s, v):
    return (np.diff(X, prepend=0.0), np.diff(X, append=s), np.diff(X, axis=0, prepend=v[None, :]),
            np.diff(X, prepend=X[:, :1], append=2), np.diff(v, prepend=s, append=s * 2.0),
            np.diff(X, axis=0, append=np.ones((1, 3))))


def test_diff_with_uniform_and_per_sample_prepend_and_append():
    check_batching(diff_prepend_append, (floats(13, shape=(2, 3)), floats(14), floats(15, shape=(3,))))


# ---- sort, argsort ---------------------------------------------------------------------------------

SORT_CASES = [c for c in CASES if c[0] != () or c[1] is None]  # np.sort of a scalar raises


@BACKENDS
@pytest.mark.parametrize("shape, axis", SORT_CASES)
@pytest.mark.parametrize("fn", [np.sort, np.argsort], ids=["sort", "argsort"])
def test_sort_and_argsort_over_every_axis_equal_the_per_sample_loop_bitwise(fn, shape, axis, backend):
    check_batching(along(fn, axis), (floats(16, shape=shape),), backend=backend)


@pytest.mark.parametrize("kind", [None, "stable", "quicksort", "heapsort", "mergesort"])
@pytest.mark.parametrize("fn", [np.sort, np.argsort], ids=["sort", "argsort"])
def test_sort_kinds_with_ties_nan_and_signed_zeros_equal_the_per_sample_call(fn, kind):
    for shape, axis in [((5,), -1), ((40,), 0), ((300,), -1), ((3, 20), 0), ((3, 20), 1), ((4, 5), None)]:
        check_batching(sorting(fn, axis, kind), (tied(17, shape),))


def stable_keywords(x):
    return np.argsort(x, stable=True), np.sort(x, stable=True), np.argsort(x, kind="stable")


def test_the_stable_keyword():
    check_batching(stable_keywords, (tied(18, (9,)),))


@CF_SETTINGS
@given(data=st.data(), n=st.integers(1, 9), m=st.integers(0, 40),
       kind=st.sampled_from([None, "stable", "quicksort", "heapsort"]))
def test_sorting_drawn_lanes_with_ties_equals_the_per_sample_call(data, n, m, kind):
    values = st.sampled_from([-2.0, -0.0, 0.0, 0.5, 1.0, 3.0, float("nan"), float("inf")])
    x = np.array(data.draw(st.lists(values, min_size=n * m, max_size=n * m))).reshape(n, m)
    check_batching(sorting(np.sort, kind=kind), (x,))
    check_batching(sorting(np.argsort, kind=kind), (x,))


# ---- outer ------------------------------------------------------------------------------------------

def outers(s, v, M, w):
    return (np.outer(v, w), np.outer(w, v), np.outer(v, v), np.outer(M, v), np.outer(s, v), np.outer(v, 3),
            np.outer(M, M), np.outer(w, 2.0), np.outer(v, [1.0, -2.0]))


@BACKENDS
def test_outer_of_per_sample_and_shared_operands_of_any_shape(backend):
    w = rng(19).normal(size=4)
    check_batching(outers, (floats(20), floats(21, shape=(3,)), floats(22, shape=(2, 2)), w),
                   in_axes=(0, 0, 0, None), backend=backend)


def outer_ints(a, b):
    return np.outer(a, b), np.outer(a, 2.5), np.outer(a > 0, b)


def test_outer_promotes_as_numpy_does():
    res = check_batching(outer_ints, (ints(23, n=N * 3).reshape(N, 3), ints(24, dtype=np.int32)))
    assert [r.dtype for r in res] == [np.int64, np.float64, np.int32]


# ---- uniform arguments ----------------------------------------------------------------------------

def shared_arrays(x, W):
    return (x * np.cumsum(W), x + np.sort(W)[0], np.diff(W, axis=0) * x, np.outer(W[0], W[1]) + x,
            x * np.argsort(W, axis=None)[2], np.cumprod(W, axis=1) - x)


def test_a_shared_array_is_computed_once_by_numpy():
    W = rng(25).normal(size=(2, 3))
    check_batching(shared_arrays, (floats(26), W), in_axes=(0, None))


# ---- kernel regions ----------------------------------------------------------------------------------

def scan_then_loop(x):
    y = np.cumsum(x)
    z = y * 2.0
    for _ in range(3):
        z = z * 0.5 + y
    return np.sum(z)


def sorted_element_then_loop(x, k):
    m = np.sort(x)[1]
    t = 0.0
    while k > 0:
        t = t * 0.5 + m
        k -= 1
    return t


def test_results_are_arrays_to_the_kernel_region_pass():
    pytest.importorskip("numba")
    assert get_program(scan_then_loop).ir.annotations["kernel_regions"] == []  # y is an array per lane
    f = vmapper.batched(scan_then_loop, backend="numba")
    check_batching(f, (floats(27, shape=(4,)),))
    # an element of a sorted array is a scalar: the loop after it is one kernel
    g = vmapper.batched(sorted_element_then_loop, backend="numba")
    check_batching(g, (floats(28, shape=(5,)), ints(29, 0, 6)))
    assert len(get_program(sorted_element_then_loop).ir.annotations["kernel_regions"]) == 1
    assert g.last_stats["kernel_launches"] == 1


def under_a_branch(X):
    if X[0] > 0:
        Y = np.cumsum(X)
    else:
        Y = np.sort(X)
    return Y, np.diff(Y)


@BACKENDS
def test_under_a_lane_dependent_branch(backend):
    check_batching(under_a_branch, (floats(30, shape=(5,)),), backend=backend)


# ---- errors --------------------------------------------------------------------------------------------

def cumsum_axis_2(X):
    return np.cumsum(X, axis=2)


def argsort_axis_minus_3(X):
    return np.argsort(X, axis=-3)


def sort_of_a_scalar(x):
    return np.sort(x)


def diff_of_a_scalar(x):
    return np.diff(x)


def diff_negative_order(X):
    return np.diff(X, n=-1)


def diff_float_order(X):
    return np.diff(X, n=1.5)


def cumprod_float_axis(X):
    return np.cumprod(X, axis=1.0)


def sort_bad_kind(X):
    return np.sort(X, kind="fastest")


def argsort_order(X):
    return np.argsort(X, order="f")


def diff_prepend_wrong_ndim(X):
    return np.diff(X, axis=0, prepend=np.zeros(3))


def diff_prepend_wrong_size(X):
    return np.diff(X, axis=0, prepend=np.zeros((1, 4)))


@pytest.mark.parametrize("fn, error, message", [
    (cumsum_axis_2, "AxisError", "axis 2 is out of bounds for a per-sample array of dimension 2"),
    (argsort_axis_minus_3, "AxisError", "axis -3 is out of bounds for a per-sample array of dimension 2"),
    (diff_negative_order, "ValueError", "order must be non-negative but got -1"),
    (diff_float_order, "TypeError", "'float' object cannot be interpreted as an integer"),
    (cumprod_float_axis, "TypeError", "'float' object cannot be interpreted as an integer"),
    (sort_bad_kind, "ValueError", "sort kind must be one of"),
    (argsort_order, "ValueError", "Cannot specify order when the array has no fields"),
    (diff_prepend_wrong_ndim, "ValueError", "the prepend array has 1 dimension\\(s\\) and the array has 2"),
    (diff_prepend_wrong_size, "ValueError", "along dimension 1, the prepend array has size 4 and the array has size 3"),
])
def test_bad_arguments_raise_the_per_sample_error_naming_it(fn, error, message):
    X = floats(31, shape=(2, 3))
    with pytest.raises(vmapper.LaneError, match=f"{error}: .*{message}") as info:
        vmapper.batched(fn)(X)
    assert fn.__code__.co_firstlineno + 1 == info.value.line
    with pytest.raises(Exception) as per_sample:
        fn(X[0])
    assert type(per_sample.value).__name__ == error  # the per-sample run raises the same


@pytest.mark.parametrize("fn, message", [
    (sort_of_a_scalar, "AxisError: axis -1 is out of bounds for a per-sample array of dimension 0"),
    (diff_of_a_scalar, "ValueError: diff requires input that is at least one dimensional"),
])
def test_per_sample_scalars_raise_where_numpy_does(fn, message):
    with pytest.raises(vmapper.LaneError, match=message):
        vmapper.batched(fn)(floats(32))


def per_sample_axis(X, k):
    return np.cumsum(X, axis=k)


def per_sample_order(X, k):
    return np.diff(X, n=k)


def with_out(X):
    return np.cumsum(X, out=np.zeros(3))


@pytest.mark.parametrize("fn, message", [
    (per_sample_axis, "np.cumsum\\(\\) with a per-sample value for 'axis'"),
    (per_sample_order, "np.diff\\(\\) with a per-sample value for 'n'"),
])
def test_per_sample_axis_or_order_is_unsupported_naming_it(fn, message):
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=message):
        vmapper.batched(fn)(floats(33, shape=(3,)), ints(34, 0, 1))


def test_out_is_unsupported():
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="np.cumsum\\(\\) with out="):
        vmapper.batched(with_out)(floats(35, shape=(3,)))


# ---- gradients -----------------------------------------------------------------------------------------

W = np.arange(1.0, 13.0).reshape(3, 4) / 7.0


def cumsum_loss(X):
    return (np.sum(np.cumsum(X) * W.ravel()) + np.sum(np.cumsum(X, axis=0) ** 2)
            + np.sum(X.cumsum(axis=-1) * W) + np.cumsum(X[0])[-1])


def cumprod_loss(X):
    return (np.sum(np.cumprod(X, axis=1) * W) + np.sum(np.cumprod(X) * W.ravel())
            + np.sum(X.cumprod(0) ** 2) + np.sum(np.cumprod(X, axis=-2) * W))


def diff_loss(X, s):
    return (np.sum(np.diff(X) ** 2) + np.sum(np.diff(X, n=2, axis=0) * W[:1]) + np.sum(np.diff(X, 3) * W[:, :1])
            + np.sum(np.diff(X, prepend=s, append=X[:, :1] * 2.0) ** 2) + np.sum(np.diff(X, n=0) * W))


def sort_loss(X):
    return (np.sum(np.sort(X) * W) + np.sum(np.sort(X, axis=None) ** 3 * W.ravel())
            + np.sum(np.sort(X, axis=0) * W) + np.sort(X[1])[0] * 2.0)


def outer_loss(X, v):
    return np.sum(np.outer(v, X[0]) * W) + np.sum(np.outer(X[1], v) ** 2) + np.sum(np.outer(X[2], X[0]) * X[1, 0])


def test_cumsum_gradient_is_the_reversed_cumulative_sum():
    check_grads(cumsum_loss, (rng(40).normal(size=(7, 3, 4)),))


def test_cumprod_gradient_with_zero_elements():
    X = rng(41).normal(size=(9, 3, 4))
    X[0, 1, 2] = 0.0                 # one zero in a row
    X[1, 0, 0] = X[1, 0, 3] = 0.0    # a zero first and last
    X[2, 2, 1] = X[2, 2, 2] = 0.0    # two zeros in a row
    X[3, :, 1] = 0.0                 # a zero column
    X[4] = 0.0                       # all zeros
    check_grads(cumprod_loss, (X,))
    _, g = vmapper.value_and_grad(vmapper.batched(cumprod_loss))(X)
    assert np.isfinite(g).all()


@pytest.mark.parametrize("row", [[2.0, 0.0, 3.0, -1.5], [0.0, 0.0, 4.0, 2.0], [1.5, -2.0, 0.5, 0.0],
                                 [0.0, 2.0, 0.0, 3.0], [1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
def test_cumprod_gradient_equals_the_exact_jacobian(row):
    x = np.array(row)
    g = np.array([0.5, -1.0, 2.0, 3.0])
    m = len(x)
    # d out_i / d x_k = prod_{j <= i, j != k} x_j for k <= i
    jac = np.array([[np.prod([x[j] for j in range(i + 1) if j != k]) if k <= i else 0.0 for k in range(m)]
                    for i in range(m)])
    np.testing.assert_allclose(cumprod_grad(x, np.cumprod(x), g), g @ jac, rtol=1e-14, atol=0)


def test_diff_gradient_is_the_adjoint_of_differencing():
    check_grads(diff_loss, (rng(42).normal(size=(7, 3, 4)), rng(43).normal(size=7)), argnums=(0, 1))


def test_sort_gradient_follows_the_permutation():
    check_grads(sort_loss, (rng(44).normal(size=(7, 3, 4)),))


def test_outer_gradients_of_per_sample_and_shared_operands():
    check_grads(outer_loss, (rng(45).normal(size=(7, 3, 4)), rng(46).normal(size=(7, 3))), argnums=(0, 1))
    f = vmapper.batched(outer_loss, in_axes=(0, None))
    check_grads(f, (rng(47).normal(size=(7, 3, 4)), rng(48).normal(size=3)), argnums=(0, 1))


def shared_parameter(x, p):
    return np.sum(np.cumsum(p) * x) + np.sum(np.cumprod(p * x)) + np.sum(np.diff(p, prepend=x) ** 2) + \
        np.sum(np.sort(p * x) * p)


def test_gradients_of_a_shared_parameter_sum_over_the_lanes():
    f = vmapper.batched(shared_parameter, in_axes=(0, None))
    check_grads(f, (rng(49).normal(size=11), rng(50).normal(size=5)), argnums=(0, 1))


def branches_and_argsort(X):
    if X[0] > 0:
        y = np.sum(np.cumprod(X) * W[0])
    else:
        y = np.sum(np.diff(np.sort(X)) ** 2)
    return y + X[np.argsort(X)[0]] * 3.0  # argsort: an integer index, no gradient of its own


@BACKENDS
def test_gradients_under_a_lane_dependent_branch_and_through_argsort_indices(backend):
    X = rng(51).normal(size=(13, 4))
    X[2, 1] = 0.0
    check_grads(vmapper.batched(branches_and_argsort, backend=backend), (X,))


def test_argsort_alone_has_no_gradient_and_does_not_raise():
    def f(x):
        return np.sum(np.argsort(x) * 1.0) + x[0]
    vals, g = vmapper.value_and_grad(vmapper.batched(f))(floats(52, shape=(4,)))
    assert np.array_equal(g[:, 0], np.ones(N)) and not g[:, 1:].any()
