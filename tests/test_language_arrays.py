"""Per-sample arrays: indexing, gathers, numpy functions, reductions, matmul, constructors,
attributes, methods and item assignment; batched results must equal the per-sample loop.

Each test batches a per-sample function with :func:`vmapper.testing.check_batching`,
which compares with running the function once per sample (bitwise unless a
tolerance is given) and checks that the dtype is the one the per-sample results have.
"""
import numpy as np
import pytest

import vmapper

from vmapper.testing import check_batching, check_grads
from lane_inputs import N, rng, ints, floats  # noqa: F401


# ---- indexing and slicing --------------------------------------------------------------------

def uniform_indexing(X):
    return X[0], X[-1], X[1:4], X[::2], X[::-1], X[-3:], X[2:2]


def test_uniform_indexing_and_slices_of_per_sample_vectors():
    check_batching(uniform_indexing, (floats(30, shape=(6,)),))


def uniform_indexing_2d(M):
    return M[1, 2], M[:, 1], M[1:, :2], M[-1], M[..., 0], M[1][3]


def test_uniform_indexing_of_per_sample_matrices():
    check_batching(uniform_indexing_2d, (ints(31, n=N * 12).reshape(N, 3, 4),))


def per_lane_index(X, i, j):
    return X[i], X[j], X[i] + X[j]


def test_per_lane_integer_indices_including_negative():
    check_batching(per_lane_index, (floats(32, shape=(7,)), ints(33, 0, 7), ints(34, -7, 0)))


def per_lane_index_2d(M, i, j):
    return M[i, j], M[i], M[-1, j], M[i][j]


def test_per_lane_indices_into_per_sample_matrices():
    check_batching(per_lane_index_2d, (floats(35, shape=(3, 5)), ints(36, -3, 3), ints(37, -5, 5)))


def gather_table(i, table):
    return table[i]


def gather_table_2d(i, j, table):
    return table[i, j], table[i][j], table[-1, j]


def test_gather_rows_from_a_broadcast_table_with_per_lane_indices():
    table = np.arange(40.0).reshape(8, 5) ** 1.5
    check_batching(gather_table, (ints(38, -8, 8), table), in_axes=(0, None))
    check_batching(gather_table, (ints(39, -10, 10), np.arange(20) * 3 - 7), in_axes=(0, None))


def test_two_dimensional_gather_from_a_broadcast_table():
    table = np.arange(24).reshape(4, 6) - 11
    check_batching(gather_table_2d, (ints(40, -4, 4), ints(41, -6, 6), table), in_axes=(0, 0, None))


def bag_of_rows(ids, p):
    return np.sum(np.tanh(p["W"] @ np.mean(p["emb"][ids], axis=0)))


def rows_of_a_per_sample_array(X, ids):
    return np.sum(X[ids].sum(axis=0) * X[ids][0])


def test_indexing_by_an_integer_array_per_sample_gathers_rows_with_gradients():
    g = np.random.default_rng(42)
    ids = g.integers(-7, 7, (N, 4))
    p = {"emb": g.normal(size=(7, 3)), "W": g.normal(size=(2, 3))}
    check_batching(bag_of_rows, (ids, p), in_axes=(0, None), exact=False, rtol=1e-12)
    bf = vmapper.batched(bag_of_rows, in_axes=(0, None))
    assert type(vmapper.grad(bf, 1)(ids, p)["emb"]).__name__ == "RowSparse"  # rows of a table, as for one id
    check_grads(bf, (ids, p), argnums=1)
    X = g.normal(size=(N, 5, 3))
    check_batching(rows_of_a_per_sample_array, (X, ids % 5), exact=False, rtol=1e-12)
    check_grads(vmapper.batched(rows_of_a_per_sample_array), (X, ids % 5), argnums=0)
    with pytest.raises(vmapper.LaneError, match="IndexError"):
        vmapper.batched(rows_of_a_per_sample_array)(X, ids % 5 + 1)


SHARED_INDEX = np.array([2, 0, 2])
SHARED_MASK = np.array([True, False, True, False])


def by_a_shared_index_array(x, m):
    return x[SHARED_INDEX] * 2.0 + x[1:][np.array([0, 1])].sum(), x[SHARED_MASK], m[SHARED_INDEX, :], \
        m[..., np.array([1])]


def loss_by_a_shared_index_array(x):
    return (x[SHARED_INDEX] ** 2).sum()


def shared_index_array_and_an_integer(m):
    return m[SHARED_INDEX, 1]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_indexing_by_one_shared_index_or_mask_array_equals_numpy_per_sample(backend):
    g = np.random.default_rng(5)
    x, m = g.normal(size=(N, 4)), g.normal(size=(N, 3, 4))
    check_batching(by_a_shared_index_array, (x, m), backend=backend)
    check_grads(vmapper.batched(loss_by_a_shared_index_array, backend=backend), (x,))
    # numpy moves the axis of an index array with an integer apart from it: refused, with a way round
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="index in two steps"):
        vmapper.batched(shared_index_array_and_an_integer, backend=backend)(m)


def gather_tuple(i):
    return (10, 20, 30, 40)[i]


def test_indexing_a_constant_tuple_with_a_per_lane_index():
    check_batching(gather_tuple, (ints(42, -4, 4),))


# ---- numpy elementwise functions ------------------------------------------------------------------

def np_unary(x):
    return (np.exp(x), np.log(np.abs(x) + 1.0), np.log1p(np.abs(x)), np.expm1(x), np.tanh(x),
            np.sqrt(np.abs(x)), np.sin(x), np.cos(x))


def np_exact(x):
    return (np.abs(x), np.floor(x), np.ceil(x), np.maximum(x, 0.0), np.minimum(x, 1.0),
            np.where(x > 0, x, -x), np.clip(x, -1.0, 2.0), np.sign(x), np.isnan(x), np.isfinite(x))


def test_numpy_transcendental_elementwise_functions():
    check_batching(np_unary, (floats(52),), exact=False, rtol=1e-13)


def test_numpy_transcendental_on_per_sample_vectors():
    check_batching(np_unary, (floats(53, shape=(4,)),), exact=False, rtol=1e-13)


def test_numpy_exact_elementwise_functions_with_nan_and_inf():
    x = floats(54)
    x[:5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    check_batching(np_exact, (x,))
    X = floats(55, shape=(3,))
    X[0, 1] = np.nan
    check_batching(np_exact, (X,))


def np_float32(x):
    return np.exp(x), np.sqrt(np.abs(x)), np.maximum(x, 0.5), np.where(x > 0, x, 0.0)


def test_numpy_functions_keep_float32():
    res = check_batching(np_float32, (floats(56, dtype=np.float32),), exact=False, rtol=1e-6)
    assert all(r.dtype == np.float32 for r in res)


# ---- reductions ------------------------------------------------------------------------------

def reductions(X):
    return (np.sum(X), np.sum(X, axis=0), np.sum(X, axis=1), np.sum(X, axis=-1), np.mean(X),
            np.mean(X, axis=0), np.max(X), np.max(X, axis=1), np.min(X), np.min(X, axis=0),
            np.prod(X, axis=1), np.argmax(X), np.argmin(X), np.argmax(X, axis=1),
            np.argmin(X, axis=0))


def test_reductions_over_per_sample_axes_ints():
    check_batching(reductions, (ints(57, -5, 6, n=N * 12).reshape(N, 3, 4),))


def test_reductions_over_per_sample_axes_floats():
    check_batching(reductions, (floats(58, shape=(3, 4)),), exact=False, rtol=1e-12)


def reductions_keepdims(X):
    return np.sum(X, axis=1, keepdims=True), np.max(X, axis=0, keepdims=True)


def test_reduction_keepdims():
    check_batching(reductions_keepdims, (ints(59, n=N * 6).reshape(N, 2, 3),))


def spreads_with_ddof(X):
    return np.std(X, ddof=1), X.var(axis=0, ddof=1), np.var(X, 1, None, None, 1, True), np.max(X, 0, None, False)


def sum_where_positive(X):
    return np.sum(X, where=X > 0)


def max_with_initial(X):
    return np.max(X, initial=0.0)


def test_reductions_take_numpys_parameters_in_its_order_and_ddof():
    check_batching(spreads_with_ddof, (floats(60, n=N * 6).reshape(N, 2, 3),), exact=False, rtol=1e-12)


def test_reduction_options_the_batched_form_does_not_compute_are_refused_by_name():
    X = floats(61, n=N * 3).reshape(N, 3)
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="'where'"):
        vmapper.batched(sum_where_positive)(X)
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=r"np.max\(\.\.\., initial=\.\.\.\)"):
        vmapper.batched(max_with_initial)(X)


# ---- matmul ----------------------------------------------------------------------------------

def vec_mat(x, W):
    return x @ W, np.dot(x, W), np.matmul(x, W)


def mat_vec(W, x):
    return W @ x, np.dot(W, x), np.matmul(W, x)


def mat_mat(X, W):
    return X @ W


def vec_vec(x, y):
    return x @ y, np.dot(x, y)


def test_vector_at_broadcast_matrix():
    W = rng(60).normal(size=(4, 3))
    check_batching(vec_mat, (floats(61, shape=(4,)), W), in_axes=(0, None), exact=False, rtol=1e-12)


def test_broadcast_matrix_at_vector():
    W = rng(62).normal(size=(3, 4))
    check_batching(mat_vec, (W, floats(63, shape=(4,))), in_axes=(None, 0), exact=False, rtol=1e-12)


def test_per_sample_matrix_at_broadcast_matrix_and_integer_matmul():
    W = rng(64).normal(size=(4, 5))
    check_batching(mat_mat, (floats(65, shape=(2, 4)), W), in_axes=(0, None), exact=False, rtol=1e-12)
    Wi = np.arange(12).reshape(4, 3) - 5
    check_batching(vec_mat, (ints(66, n=N * 4).reshape(N, 4), Wi), in_axes=(0, None))


def test_per_sample_vector_dot_vector():
    check_batching(vec_vec, (floats(67, shape=(5,)), floats(68, shape=(5,))), exact=False, rtol=1e-12)


# ---- constructors and joins ------------------------------------------------------------------

def constructors(x, a):
    z = np.zeros(3)
    o = np.ones((2, 2))
    r = np.arange(4)
    f = np.full(3, 2.5)
    return z + x, o * x, r * a, f * a, np.arange(1, 7, 2) + a, np.zeros(2, dtype=np.int32) + a


def full_per_lane_fill(x, a):
    return np.full(3, x), np.full((2,), a)


def test_zeros_ones_full_arange_with_uniform_sizes():
    check_batching(constructors, (floats(69), ints(70)))


def test_np_full_with_a_per_lane_fill_value():
    check_batching(full_per_lane_fill, (floats(69), ints(70)))


def joins(X, Y, a, b, x):
    return (np.concatenate([X, Y]), np.concatenate((X, np.zeros(2))), np.stack([X, Y]),
            np.stack([X, Y], axis=1), np.array([a, b, a + b]), np.array([a, x]),
            np.array([[a, b], [b, a]]))


def test_concatenate_stack_and_array_of_per_sample_values():
    check_batching(joins, (floats(71, shape=(3,)), floats(72, shape=(3,)), ints(73), ints(74), floats(75)))


def array_of_float32_and_python_float(x):
    return np.array([x, 1.0])


def array_of_int32_and_python_int(a):
    return np.array([a, 1])


def test_np_array_of_float32_scalar_and_python_float_is_float64_like_numpy():
    # np.array([np.float32(2), 1.0]).dtype is float64: the Python float is not weak here
    check_batching(array_of_float32_and_python_float, (floats(76, dtype=np.float32),))


def test_np_array_of_int32_scalar_and_python_int_is_int64_like_numpy():
    check_batching(array_of_int32_and_python_int, (ints(77, dtype=np.int32),))


# ---- attributes and methods ------------------------------------------------------------------

def attributes(M):
    r, c = M.shape
    return r, c, M.ndim, M.size, len(M), M.T, M.T.shape[0], M.dtype == np.float32


def methods(M):
    return (M.sum(), M.mean(), M.max(), M.min(), M.sum(axis=0), M.max(axis=1), M.astype(np.float32),
            M.astype(int), np.zeros(2, M.dtype) + M[0, 0])


def test_array_attributes_shape_ndim_size_dtype_T():
    check_batching(attributes, (floats(78, shape=(2, 3)),))


def test_array_methods_sum_mean_max_min_astype():
    check_batching(methods, (floats(79, -9, 9, shape=(2, 3)),), exact=False, rtol=1e-12)


def astype_exact(M):
    return M.astype(np.float32), M.astype(int), M.astype(bool)


def test_astype_results_bitwise_and_dtypes():
    res = check_batching(astype_exact, (floats(80, -9, 9, shape=(2, 3)),))
    assert [r.dtype for r in res] == [np.float32, np.int64, np.bool_]


# ---- item assignment --------------------------------------------------------------------------

def item_assign(x, i, a):
    z = np.zeros(4)
    z[i] = x
    z[0] += 1.0
    z[-1] = a
    w = np.arange(6)
    w[1:3] = a
    w[i] -= 5
    return z, w


def test_item_assignment_with_per_lane_and_uniform_indices():
    check_batching(item_assign, (floats(81), ints(82, -4, 4), ints(83)))


def item_assign_in_branch(X, i):
    X = X.copy()
    if X[0] > 0:
        X[i] = -1.0
    else:
        X[1:] = 0.0
    return X


def test_item_assignment_under_a_lane_dependent_branch():
    check_batching(item_assign_in_branch, (floats(84, shape=(5,)), ints(85, -5, 5)))


def item_assign_2d(M, i, j, v):
    M = M.copy()
    M[i, j] = v
    M[0] = M[1] * 2
    return M


def test_item_assignment_into_per_sample_matrices():
    check_batching(item_assign_2d, (floats(86, shape=(3, 4)), ints(87, 0, 3), ints(88, -4, 4), floats(89)))


# ---- bool and float32 arrays -------------------------------------------------------------------

def bool_array_reductions(X):
    p = X > 0
    return p.sum(), np.any(p), np.all(p), p.sum(axis=0), np.sum(p) * 1.5


def test_reductions_of_per_sample_bool_arrays():
    check_batching(bool_array_reductions, (ints(105, -3, 3, n=N * 6).reshape(N, 2, 3),))


def float32_power_and_gather(x, i, table):
    return x ** 2, x ** 0.5, table[i] * x


def test_float32_power_and_float32_gather_stay_float32():
    table = np.linspace(-1, 1, 9).astype(np.float32)
    res = check_batching(float32_power_and_gather, (floats(106, 0, 4, dtype=np.float32), ints(107, -9, 9), table),
                         in_axes=(0, 0, None))
    assert all(r.dtype == np.float32 for r in res)


def alias_augmented(X):
    Y = X
    Y += 1.0  # in place on the same array: X sees it
    return X, Y


def alias_item_assignment(X):
    Y = X
    Y[0] = 5.0
    return X


def test_augmented_assignment_to_an_alias_raises_instead_of_diverging():
    # Python updates the shared array through both names; vmapper holds arrays as
    # values, so it refuses (naming the line) rather than give a different answer.
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="in-place update of array 'Y'") as err:
        vmapper.batched(alias_augmented)(floats(111, shape=(3,)))
    assert "copy()" in str(err.value)


def test_item_assignment_through_an_alias_raises_instead_of_diverging():
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="in-place update of array"):
        vmapper.batched(alias_item_assignment)(floats(112, shape=(3,)))


def chained_alias_item_assignment(x):
    a = b = np.zeros(3)
    a[1] = x
    return b[1]


def chained_alias_augmented(x):
    a = b = np.ones(2) * x
    a += 1.0
    return b[0]


def chained_list_item_assignment(x):
    a = b = [x, x + 1.0]
    a[0] = 7.0
    return b[0]


def chained_unpacking_and_name(x):
    a, b = c = (np.zeros(2) + x, x)
    a[0] = 3.0
    return c[0][0]


def chained_names_of_one_value(x):
    a = b = x * 2.0
    return a + b


def test_chained_assignment_makes_both_names_reach_one_array():
    # ``a = b = v`` binds both names to one array: an update through ``a`` would show
    # through ``b`` per sample, so it is refused, as for ``b = a``
    xs = floats(114)
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="in-place update of array 'a'"):
        vmapper.batched(chained_alias_item_assignment)(xs)
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="in-place update of array 'a'"):
        vmapper.batched(chained_alias_augmented)(xs)
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="'a\\[...\\] = ...' on list 'a'"):
        vmapper.batched(chained_list_item_assignment)(xs)
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="in-place update of array 'a'"):
        vmapper.batched(chained_unpacking_and_name)(xs)
    check_batching(chained_names_of_one_value, (xs,))
    check_grads(chained_names_of_one_value, (xs,))


def test_item_assignment_into_a_parameter_raises_because_the_caller_would_see_it():
    def mutate_argument(X):
        X[0] = 5.0
        return X.sum()
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="in-place update of array 'X'"):
        vmapper.batched(mutate_argument)(floats(113, shape=(3,)))


def test_array_code_on_a_batch_of_one_lane():
    check_batching(methods, (floats(100, shape=(2, 3), n=1),), exact=False, rtol=1e-12)
    check_batching(gather_table, (np.array([-1]), np.arange(5.0)), in_axes=(0, None))
    check_batching(item_assign, (floats(101, n=1), ints(102, -4, 4, n=1), ints(103, n=1)))


# ---- more shapes --------------------------------------------------------------------------------

def per_sample_matmat(M):
    return M @ M.T, M.T @ M


def broadcast_vector_at_matrix(v, M):
    return v @ M


def test_per_sample_matrix_products_and_broadcast_vector_at_per_sample_matrix():
    check_batching(per_sample_matmat, (floats(104, shape=(2, 3)),), exact=False, rtol=1e-12)
    check_batching(broadcast_vector_at_matrix, (rng(105).normal(size=3), floats(106, shape=(3, 4))),
                   in_axes=(None, 0), exact=False, rtol=1e-12)


def slice_assign_and_swap(X, i, j):
    z = np.zeros(4)
    z[1:3] = X[:2]
    X = X.copy()
    X[i], X[j] = X[j], X[i]
    return z, X


def test_slice_assignment_from_a_per_sample_array_and_per_lane_swaps():
    check_batching(slice_assign_and_swap, (floats(107, shape=(4,)), ints(108, -4, 4), ints(109, -4, 4)))


def joins_on_other_axes(X, Y):
    return (np.stack([X, Y], axis=-1), np.concatenate([X, Y], axis=1),
            np.concatenate([X, Y], axis=-1), X.sum(axis=(0, 1)), np.max(X, axis=(0,)))


def where_on_arrays(X, t):
    return np.where(X > t, X, 0.0), np.where(X > 0, 1, -1), np.clip(X, t, 1.0)


def test_joins_and_reductions_over_negative_and_tuple_axes():
    check_batching(joins_on_other_axes, (floats(110, shape=(2, 3)), floats(111, shape=(2, 3))),
                   exact=False, rtol=1e-12)


def test_where_and_clip_mixing_per_sample_arrays_and_scalars():
    check_batching(where_on_arrays, (floats(112, shape=(3,)), floats(113, -1, 0)))


def merge_python_float_with_float32(x):
    if x > 0:
        s = 0.0
    else:
        s = x * np.float32(2)
    return s + x


def test_a_python_float_merged_with_float32_lanes_stays_float32_like_np_where():
    res = check_batching(merge_python_float_with_float32, (np.array([1.5, -1.25, 3.0], np.float32),))
    assert res.dtype == np.float32


# ---- np.linalg.norm --------------------------------------------------------------------------

def norms(X, M, k):
    return np.linalg.norm(X), np.linalg.norm(M), np.linalg.norm(k), np.linalg.norm(np.arange(3.0))


def test_linalg_norm_is_the_2_norm_of_vectors_and_frobenius_of_matrices():
    X, M = floats(40, shape=(5,)), floats(41, shape=(3, 4))
    X[0] = 0.0
    K = rng(42).integers(-9, 9, size=(N, 4))  # ints: the norm is float64, as numpy's
    check_batching(norms, (X, M, K), exact=False, rtol=1e-14)


def norm_of_float32(X):
    return np.linalg.norm(X.astype(np.float32))


def test_linalg_norm_keeps_float32():
    check_batching(norm_of_float32, (floats(43, shape=(6,)),), exact=False, rtol=1e-6)


def scaled_norm(X, M):
    return np.linalg.norm(X) * 2.0 + np.linalg.norm(M * X[0])


def test_linalg_norm_gradient_is_x_over_norm():
    X = np.random.default_rng(44).normal(size=(7, 4))
    M = np.random.default_rng(45).normal(size=(7, 2, 3))
    check_grads(scaled_norm, (X, M), argnums=(0, 1))


def norm_at_zero(X):
    return np.linalg.norm(X * 0.0) + X[0]


def test_linalg_norm_gradient_at_zero_is_zero():
    X = np.random.default_rng(46).normal(size=(5, 3))
    _, g = vmapper.value_and_grad(vmapper.batched(norm_at_zero))(X)
    expected = np.zeros_like(X)
    expected[:, 0] = 1.0
    assert np.array_equal(g, expected)


def norm_with_ord(X):
    return np.linalg.norm(X, ord=1)  # a matrix norm (axis and vector norms: test_language_array_misc.py)


def norm_with_axis(X):
    return np.linalg.norm(X, ord=3, axis=0)


@pytest.mark.parametrize("fn, named", [(norm_with_ord, "ord=1 over two axes"), (norm_with_axis, "ord=3")])
def test_linalg_norm_with_an_order_that_is_not_batched_is_unsupported_naming_it(fn, named):
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=f"np.linalg.norm\\(\\) of a per-sample array with {named}"):
        vmapper.batched(fn)(floats(47, shape=(3, 2)))


W = np.arange(6.0).reshape(2, 3)


def norm_of_shared(x):
    return x * np.linalg.norm(W, axis=1)[0] + np.linalg.norm(W)


def test_linalg_norm_of_a_shared_array_calls_numpy():
    check_batching(norm_of_shared, (floats(48),))


def transposed_with_axes(x):
    y = x.reshape(2, 2, 3).transpose(2, 0, 1)
    z = x.reshape(3, 4)
    return np.sum(y[0] * np.arange(4.0).reshape(2, 2)) + z.transpose((1, 0))[1, 2] + z.T[0, 1]


def transposed_badly(x):
    return x.reshape(3, 4).transpose(0, 0)


def test_transpose_with_axes_keeps_the_batch_axis_first_and_checks_the_axes():
    x = np.random.default_rng(0).normal(size=(5, 12))
    check_batching(transposed_with_axes, (x,), exact=False, rtol=1e-12)
    with pytest.raises(vmapper.LaneError, match="axes don't match array"):
        vmapper.batched(transposed_badly)(x)


def edit_distance_rows(n, m, x):
    """A DP table filled item by item, under per-lane trip counts (masked lanes), with a
    copy of a row taken midway and a row read back: the in-place updates change only the
    table itself."""
    d = np.zeros((6, 6))
    for i in range(n):
        d[i, 0] = i * x
        for j in range(m):
            d[i + 1, j + 1] = min(d[i, j + 1] + 1.0, d[i + 1, j] + 1.0, d[i, j] + (i != j) * x)
        if i == 1:
            snapshot = d[1].copy()
    if n < 2:
        snapshot = d[0].copy()
    return d, snapshot, d[n, m]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_item_assignments_in_loops_update_only_their_array_bitwise(backend):
    rng = np.random.default_rng(7)
    n, m = rng.integers(0, 6, 40), rng.integers(0, 6, 40)
    check_batching(edit_distance_rows, (n, m, rng.random(40)), backend=backend)
