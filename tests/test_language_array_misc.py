"""Reshapes, gathers, counts, roundings, traces, norms along an axis and math.isclose on
per-sample values: np.reshape, np.take, np.count_nonzero, np.round/np.around, round(x, ndigits),
np.trace, np.linalg.norm(x, ord, axis, keepdims), math.isclose and the methods x.reshape(),
x.take(), x.round(), x.trace(); batched results must equal the per-sample loop bitwise, on
both backends.

Each test batches a per-sample function with :func:`vmapper.testing.check_batching` (the
per-sample call is the oracle, compared bitwise with its dtype).  ``np.trace`` and the
norms along an axis reduce with the per-sample call's numpy reductions over the same memory
layout, so they are bitwise too (the default ``np.linalg.norm(x)`` is numpy's BLAS dot per
sample: equal to rounding, tests/test_language_arrays.py).
"""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import vmapper
from vmapper.primitives.python_numbers import python_round_floats
from vmapper.passes import kernel_regions
from vmapper.program import get_program
from vmapper.testing import check_batching, check_grads
from lane_inputs import CF_SETTINGS, N, floats, ints, rng
from source_lines import line_of

BACKENDS = pytest.mark.parametrize("backend", ["numpy", "numba"])


def reshaping(shape, order):
    def per_sample(x):
        return np.reshape(x, shape, order=order)
    return per_sample


def taking(indices, axis):
    def per_sample(x):
        return np.take(x, indices, axis=axis)
    return per_sample


def counting(axis, keepdims):
    def per_sample(x):
        return np.count_nonzero(x, axis=axis, keepdims=keepdims)
    return per_sample


def rounding(fn, decimals, keyword=False):
    def per_sample(x):
        return fn(x, decimals=decimals) if keyword else fn(x, decimals)
    return per_sample


def tracing(offset=0, axis1=0, axis2=1):
    def per_sample(x):
        return np.trace(x, offset=offset, axis1=axis1, axis2=axis2)
    return per_sample


def norm(ord=None, axis=None, keepdims=False):
    def per_sample(x):
        return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)
    return per_sample


# ---- reshape ------------------------------------------------------------------------------------------

RESHAPES = [((12,), (3, 4)), ((12,), (-1, 2)), ((3, 4), (12,)), ((3, 4), -1), ((3, 4), (2, -1, 3)),
            ((2, 3, 4), (4, 6)), ((2, 3, 4), (-1,)), ((6,), (1, 6, 1)), ((), (1,)), ((1,), ())]


@BACKENDS
@pytest.mark.parametrize("shape, new", RESHAPES)
@pytest.mark.parametrize("order", ["C", "F"])
def test_reshape_to_every_shape_equals_the_per_sample_loop(shape, new, order, backend):
    check_batching(reshaping(new, order), (floats(1, shape=shape),), backend=backend)


def reshape_methods(X):
    return (X.reshape(4, 3), X.reshape((2, 6)), X.reshape(-1), X.reshape(2, -1, order="F"), X.reshape((6, 2), order="C"),
            X.reshape([12]), np.reshape(X, (4, 3), "F"), np.reshape(X, shape=(6, 2), copy=True), X.T.reshape(12),
            np.reshape(X[:, 1:3], -1, order="F"))


@BACKENDS
def test_reshape_methods_positional_shapes_orders_and_views(backend):
    check_batching(reshape_methods, (floats(2, shape=(3, 4)),), backend=backend)


def reshape_dtypes(M, s, t):
    return (np.reshape(M, (3, 2)), np.reshape(M > 0, -1), np.reshape(M.astype(np.float32), (2, 3)),
            np.reshape(s, (1, 1)), np.reshape([s, t, s * t, 1.0], (2, 2)), np.reshape(t, (1,)))


def test_reshape_keeps_dtypes_and_makes_arrays_of_scalars_and_lists():
    res = check_batching(reshape_dtypes, (ints(3, n=N * 6).reshape(N, 2, 3), floats(4), ints(5)))
    assert [r.dtype for r in res] == [np.int64, np.bool_, np.float32, np.float64, np.float64, np.int64]


# ---- take ----------------------------------------------------------------------------------------------

TAKE_INDICES = [3, -1, [0, 2, 2], np.array([[1, -3], [0, 0]]), np.int64(1)]


@BACKENDS
@pytest.mark.parametrize("axis", [None, 0, 1, -1, -2])
@pytest.mark.parametrize("indices", TAKE_INDICES, ids=["int", "negative", "list", "2d", "np.int64"])
def test_take_uniform_indices_along_every_axis(indices, axis, backend):
    check_batching(taking(indices, axis), (floats(6, shape=(4, 5)),), backend=backend)


def take_per_lane(X, i, J, k):
    return (np.take(X, i), np.take(X, i, axis=0), np.take(X, k, axis=1), np.take(X, k, axis=-1), np.take(X, J),
            np.take(X, J, axis=0), np.take(X, J, axis=-1), np.take(X, [i, k, 0]), np.take(X, [k, -1], axis=1),
            np.take(X[0], k), X.take(J), X[1].take(k), X.take(i, axis=0), np.take(X, i + 20, mode="wrap"),
            np.take(X, J * 3, axis=1, mode="clip"), np.take(X, k - 10, mode="clip"), np.take(X > 0, J),
            np.take(X, k, mode=None))


@BACKENDS
def test_take_per_sample_indices_gather_each_lanes_own_elements(backend):
    J = rng(7).integers(-3, 3, size=(N, 2, 3))
    check_batching(take_per_lane, (floats(8, shape=(3, 4)), ints(9, 0, 3), J, ints(10, -4, 4)), backend=backend)


def take_3d(X, J, k):
    return np.take(X, J, axis=1), np.take(X, k, axis=2), np.take(X, J, axis=0), np.take(X, J)


def test_take_from_three_dimensional_arrays():
    J = rng(11).integers(-2, 2, size=(N, 2, 2))
    check_batching(take_3d, (floats(12, shape=(2, 3, 4)), J, ints(13, -4, 4)))


def take_shared(T, i, J):
    return np.take(T, i), np.take(T, J, axis=1), np.take(T, J, axis=0), np.take(T, i % 4, axis=-1), np.take(T, [i, i])


def test_take_from_a_shared_array_with_per_sample_indices():
    T = rng(14).normal(size=(3, 4))
    J = rng(15).integers(-3, 3, size=(N, 2))
    check_batching(take_shared, (T, ints(16, -12, 12), J), in_axes=(None, 0, 0))


def take_of_scalars(s, t, i):
    return np.take(s, 0), np.take(s, [0, -1, 0]), np.take([s, t, s * t], i), np.take(t, i * 0)


def test_take_from_per_sample_scalars_and_lists():
    check_batching(take_of_scalars, (floats(17), ints(18), ints(19, -3, 3)))


# ---- count_nonzero ---------------------------------------------------------------------------------------

@BACKENDS
@pytest.mark.parametrize("shape, axis", [((6,), None), ((6,), 0), ((6,), -1), ((3, 4), None), ((3, 4), 0),
                                         ((3, 4), -1), ((3, 4), (0, 1)), ((2, 3, 4), (0, -1)), ((2, 3, 4), 1),
                                         ((2, 3, 4), ()), ((), None)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_count_nonzero_over_every_axis(shape, axis, keepdims, backend):
    x = rng(20).integers(-2, 3, size=(N,) + shape).astype(np.float64)
    x[x == 2] = np.nan  # NaN is nonzero
    res = check_batching(counting(axis, keepdims), (x,), backend=backend)
    assert res.dtype == np.int64


def counts(M, b, s):
    return np.count_nonzero(M), np.count_nonzero(M > 0, axis=0), np.count_nonzero(b), np.count_nonzero(s), \
        np.count_nonzero([s, 0.0, s * 2.0]), np.count_nonzero(M) * np.int32(2)  # (an int or an np.intp: numpy's)


def test_count_nonzero_of_ints_bools_scalars_and_lists():
    M = ints(21, -1, 2, n=N * 6).reshape(N, 2, 3)
    check_batching(counts, (M, M > 0, floats(22) * (ints(23, 0, 2) > 0)))


# ---- np.round, np.around ---------------------------------------------------------------------------------

def ties(seed, decimals, shape=(), n=N):
    """Floats at and next to the halfway points of ``decimals`` digits, as binary values have them."""
    k = rng(seed).integers(-2000, 2000, size=(n,) + shape)
    x = (k + 0.5) / 10.0 ** decimals
    pick = rng(seed + 1).integers(0, 4, size=x.shape)
    return np.where(pick == 1, np.nextafter(x, np.inf), np.where(pick == 2, np.nextafter(x, -np.inf),
                    np.where(pick == 3, rng(seed + 2).normal(size=x.shape) * 100, x)))


@BACKENDS
@pytest.mark.parametrize("decimals", [0, 1, 2, 3, 7, -1, -2])
@pytest.mark.parametrize("fn", [np.round, np.around], ids=["round", "around"])
def test_np_round_of_ties_every_decimals_equals_the_per_sample_call(fn, decimals, backend):
    check_batching(rounding(fn, decimals), (ties(24, decimals, shape=(5,)),), backend=backend)
    check_batching(rounding(fn, decimals, keyword=True), (ties(25, decimals),), backend=backend)


def np_rounds(x, X, k, b):
    return (np.round(x), np.round(x, 2), np.around(X.astype(np.float32), 1), np.round(k, -1), np.round(b),
            np.round(X * 1j + x, 1), X.round(2), X.round(decimals=-1), np.round(x * 1e10, 10), np.round([x, 1.5]))


def test_np_round_keeps_numpy_dtypes():
    res = check_batching(np_rounds, (ties(26, 2), ties(27, 1, shape=(3,)), ints(28), ints(29) > 0))
    assert [r.dtype for r in res] == [np.float64, np.float64, np.float32, np.int64, np.float16, np.complex128,
                                      np.float64, np.float64, np.float64, np.float64]


# ---- round(x, ndigits): Python's decimal rounding -------------------------------------------------------------

def builtin_round(ndigits):
    def per_sample(x):
        return round(x, ndigits)
    return per_sample


@BACKENDS
@pytest.mark.parametrize("ndigits", [0, 1, 2, 3, 5, 9, 15, 17, 22, 25, 40, 300, 400, -1, -2, -5, -22, -23,
                                     -40, -308, -309])
def test_builtin_round_of_python_floats_is_pythons_bitwise(ndigits, backend):
    def per_sample(v):
        return round(float(v), ndigits)
    x = ties(30, min(max(ndigits, -300), 300), n=400)
    x[:6] = [2.675, 1.005, 0.125, -0.0, 2.5e-324, 1.2e308]
    check_batching(per_sample, (batchable(x, ndigits),), backend=backend)
    y = rng(31).normal(size=400) * 10.0 ** rng(32).integers(-30, 30, size=400)
    check_batching(per_sample, (batchable(y, ndigits),), backend=backend)


def batchable(x, ndigits):
    """``x`` with the values that double precision cannot round at ``ndigits`` (those raise:
    test_round_beyond_double_precision_...) replaced by 0.0."""
    return np.where(python_round_floats(x, ndigits)[1], 0.0, x)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (np.round of huge np.float64 values, per sample)
@CF_SETTINGS
@given(data=st.data(), ndigits=st.integers(-30, 330))
def test_builtin_round_of_drawn_floats_is_pythons(data, ndigits):
    def per_sample(v, k):
        return round(float(v), k)
    xs = data.draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=30))
    ks = data.draw(st.lists(st.integers(-30, 330), min_size=len(xs), max_size=len(xs)))
    check_batching(builtin_round(ndigits), (np.array(xs),), backend="numpy")  # np.float64 lanes: np.round
    check_batching(per_sample, (batchable(np.array(xs), ndigits), np.full(len(xs), ndigits)))
    check_batching(per_sample, (batchable(np.array(xs), np.array(ks)), np.array(ks)))  # ndigits per lane


def rounds_of_python_numbers(x, k, d):
    f = float(x)
    n = int(k)
    return (round(f, 2), round(f, ndigits=1), round(number=f, ndigits=-1), round(f, d), round(n, -1), round(n, 2),
            round(n, d - 2), round(n > 0, 0), round(f, None), round(f * 1e-20, 22), round(n * 10 ** 15, -16))


def test_builtin_round_of_python_ints_and_per_sample_ndigits():
    k = ints(33, -1000, 1000)
    k[:6] = [5, 15, 25, -25, 35, -5]
    check_batching(rounds_of_python_numbers, (ties(34, 2), k, ints(35, -3, 4)))


def round_keeps_python_floats_weak(x):
    return round(float(x), 2) * np.float32(1.5), round(x, 2) * np.float32(1.5), round(x.astype(np.float32), 1)


def test_round_of_a_python_float_is_a_python_float_of_numpy_values_numpys():
    res = check_batching(round_keeps_python_floats_weak, (ties(36, 2),))
    # a Python float times float32 is float32; np.round(np.float64) stays float64
    assert [r.dtype for r in res] == [np.float32, np.float64, np.float32]


# ---- trace ----------------------------------------------------------------------------------------------------

TRACES = [((3, 3), {}), ((3, 5), {}), ((5, 3), {"offset": 1}), ((4, 4), {"offset": -2}), ((4, 4), {"offset": 9}),
          ((40, 40), {}), ((30, 50), {"offset": -3}), ((2, 3, 4), {}), ((2, 3, 4), {"axis1": 1, "axis2": 2}),
          ((20, 3, 30), {"axis1": -1, "axis2": 0, "offset": 2}), ((5, 5), {"axis1": 1, "axis2": 0, "offset": 1})]


@BACKENDS
@pytest.mark.parametrize("shape, kw", TRACES)
def test_trace_of_every_shape_offset_and_axes_equals_the_per_sample_loop_bitwise(shape, kw, backend):
    x = floats(37, shape=shape) * 10.0 ** rng(38).integers(-6, 6, size=(N,) + shape)  # rounding shows
    check_batching(tracing(**kw), (x,), backend=backend)
    check_batching(tracing(**kw), (x.astype(np.float32),), backend=backend)


def traces(M, K):
    return (np.trace(M.T), np.trace(M[:, ::2]), M.trace(), M.trace(1), np.trace(K), np.trace(K > 0),
            np.trace(K.astype(np.int32)), np.trace(M, dtype=np.float32), np.trace(K, 0, 0, 1, np.float64))


def test_trace_of_views_ints_and_bools_with_dtype():
    K = ints(39, n=N * 12).reshape(N, 3, 4)
    res = check_batching(traces, (floats(40, shape=(9, 9)) * 1e3, K))
    assert [r.dtype for r in res] == [np.float64] * 4 + [np.int64] * 3 + [np.float32, np.float64]


# ---- np.linalg.norm along an axis ---------------------------------------------------------------------------

NORMS = [((5,), {"ord": 1}), ((5,), {"ord": np.inf}), ((5,), {"ord": -np.inf}),
         ((5,), {"axis": 0}), ((5,), {"axis": -1, "ord": 1}), ((3, 4), {"axis": 0}), ((3, 4), {"axis": 1}),
         ((3, 4), {"axis": -1, "ord": 2}), ((3, 4), {"axis": 0, "ord": 1}), ((3, 4), {"axis": -2, "ord": np.inf}),
         ((3, 4), {"axis": 1, "ord": -np.inf}), ((3, 4), {"axis": (0, 1)}), ((3, 4), {"axis": (1, 0), "ord": "fro"}),
         ((3, 4), {"axis": (-1,), "ord": 1}), ((2, 3, 40), {"axis": 2}),
         ((2, 30, 4), {"axis": 1, "ord": 1}), ((2, 3, 4), {"axis": (0, 2)}), ((40, 3, 20), {"axis": (2, 0)})]


@BACKENDS
@pytest.mark.parametrize("shape, kw", NORMS)
@pytest.mark.parametrize("keepdims", [False, True])
def test_vector_and_frobenius_norms_along_axes_equal_the_per_sample_call_bitwise(shape, kw, keepdims, backend):
    x = floats(41, shape=shape) * 10.0 ** rng(42).integers(-6, 6, size=(N,) + shape)
    x[3] = 0.0
    check_batching(norm(keepdims=keepdims, **kw), (x,), backend=backend)
    check_batching(norm(keepdims=keepdims, **kw), (x.astype(np.float32),), backend=backend)


def norms_of_ints_and_complex(K, Z):
    return (np.linalg.norm(K, axis=0), np.linalg.norm(K, 1, -1), np.linalg.norm(K > 0, np.inf, 1), np.linalg.norm(Z, axis=1),
            np.linalg.norm(Z, ord=1, axis=0), np.linalg.norm(Z, np.inf, 0, True))


def test_norms_of_ints_bools_and_complex_numbers():
    K = ints(43, -9, 9, n=N * 12).reshape(N, 3, 4)
    Z = floats(44, shape=(3, 4)) + 1j * floats(45, shape=(3, 4))
    res = check_batching(norms_of_ints_and_complex, (K, Z))
    assert [r.dtype for r in res] == [np.float64] * 6


def default_norms_with_keepdims(M, v):
    return (np.linalg.norm(M, keepdims=True), np.linalg.norm(M, "fro"), np.linalg.norm(v, 2, keepdims=True),
            np.linalg.norm(M.astype(np.int64)))


def test_the_default_norm_with_keepdims_fro_and_ord_2_of_vectors():
    # numpy's BLAS dot per sample: equal to rounding
    res = check_batching(default_norms_with_keepdims, (floats(46, shape=(3, 4)), floats(47, shape=(5,))),
                         exact=False, rtol=1e-15)
    assert [r.shape for r in res] == [(N, 1, 1), (N,), (N, 1), (N,)]


# ---- math.isclose --------------------------------------------------------------------------------------------

SPECIAL = [0.0, -0.0, 1.0, 1.0 + 1e-9, 1.0 + 1e-8, 1e-10, -1e-10, math.inf, -math.inf, math.nan, 1e308, 5e-324]


def closeness(a, b, r, t):
    a, b = float(a), float(b)
    return (math.isclose(a, b), math.isclose(a, b, rel_tol=1e-3), math.isclose(a, b, abs_tol=1e-9),
            math.isclose(a, 1.0), math.isclose(2.0, b, rel_tol=r), math.isclose(a, b, rel_tol=r, abs_tol=t),
            math.isclose(b=a, a=b, abs_tol=0.5), math.isclose(a, b, rel_tol=math.inf), math.isclose(int(a > b), b))


@BACKENDS
def test_isclose_is_pythons_test_with_infinities_nan_and_signed_zeros(backend):
    grid = np.array(SPECIAL)
    a = np.repeat(grid, len(grid))
    b = np.tile(grid, len(grid))
    n = len(a)
    r = rng(46).choice([0.0, 1e-9, 1e-3, 0.5, math.inf, math.nan], size=n)
    t = rng(47).choice([0.0, 1e-300, 1e-9, 1.0, math.inf], size=n)
    res = check_batching(closeness, (a, b, r, t), backend=backend)
    assert all(v.dtype == np.bool_ for v in res)


@CF_SETTINGS
@given(st.lists(st.tuples(st.floats(), st.floats(), st.floats(0, 1), st.floats(0, 1e-6)), min_size=1, max_size=40))
def test_isclose_of_drawn_floats(rows):
    a, b, r, t = (np.array(c) for c in zip(*rows))
    check_batching(closeness, (a, b, r, t))


def isclose_mixed(x, k, f32):
    return math.isclose(x, k), math.isclose(k, 3), math.isclose(f32, x, rel_tol=1e-6), math.isclose(x > 0, True)


def test_isclose_of_ints_bools_and_float32():
    check_batching(isclose_mixed, (floats(48), ints(49, 0, 5), floats(50, dtype=np.float32)))


# ---- under a lane-dependent branch ----------------------------------------------------------------------------

def branchy(X, i, k):
    if X[0, 0] > 0:
        Y = np.take(X, i, axis=1)
        t = np.trace(X[:, :3]) + np.count_nonzero(X > 0)
        r = round(float(X[0, 1]), k)
    else:
        Y = np.reshape(X, (4, 3))[0]
        t = np.linalg.norm(X, ord=1, axis=0)[1]
        r = float(np.round(X[1, 1], 1))
    return Y, t, r, math.isclose(r, t, rel_tol=0.5), np.round(Y, 1)


@BACKENDS
def test_under_a_lane_dependent_branch(backend):
    X = floats(51, shape=(3, 4))
    i = ints(52, -4, 4)
    i[X[:, 0, 0] <= 0] = 99  # out of range on lanes that do not take the gather: never read
    check_batching(branchy, (X, i, ints(53, -2, 5)), backend=backend)


def scalars_then_loop(X, i):
    s = np.take(X, i) + np.trace(X[:2, :2]) + np.linalg.norm(X, axis=0)[0] + round(float(X[0, 0]), 1)
    t = 0.0
    while i > 0:
        t = t * 0.5 + s
        i -= 1
    return t, np.count_nonzero(X > 0)


def array_then_loop(X):
    y = np.reshape(X, (12,))
    z = y * 2.0
    for _ in range(3):
        z = z * 0.5 + y
    return np.sum(z)


@BACKENDS
def test_scalar_and_array_results_before_a_loop(backend):
    check_batching(scalars_then_loop, (floats(54, shape=(3, 4)), ints(55, 0, 6)), backend=backend)
    check_batching(array_then_loop, (floats(56, shape=(3, 4)),), backend=backend)


@pytest.mark.skipif(not {"np.reshape", "np.take", "np.round"} <= kernel_regions.ARRAY_MAKERS,
                    reason="np.reshape, np.take and np.round are not in kernel_regions.ARRAY_MAKERS yet")
def test_reshape_take_and_round_results_are_arrays_to_the_kernel_region_pass():
    pytest.importorskip("numba")

    def rounded_then_loop(X):
        y = np.round(X, 1)
        z = y * 2.0
        for _ in range(3):
            z = z * 0.5 + y
        return np.sum(z)

    def taken_then_loop(X, J):
        y = np.take(X, J)
        z = y * 2.0
        for _ in range(3):
            z = z * 0.5 + y
        return np.sum(z)
    for fn in (array_then_loop, rounded_then_loop):
        assert get_program(fn).ir.annotations["kernel_regions"] == []
    assert get_program(taken_then_loop).ir.annotations["kernel_regions"] == []


# ---- gradients --------------------------------------------------------------------------------------------------

W = np.arange(1.0, 13.0).reshape(3, 4) / 7.0


def reshape_loss(X):
    return (np.sum(np.reshape(X, (4, 3)) * W.T) + np.sum(np.reshape(X, (2, -1), order="F") ** 2 * W.reshape(2, 6))
            + np.sum(X.reshape(12) * W.ravel()) + np.sum(X.reshape((6, 2), order="F")[:, 0] ** 3)
            + np.sum(np.reshape(X.T, -1) * W.ravel()))


def take_loss(X, i, J):
    return (np.sum(np.take(X, J) ** 2) + np.sum(np.take(X, i, axis=1) * W[:, 0]) + np.take(X, 7) * 3.0
            + np.sum(np.take(X, [0, 0, -1], axis=0) * W[0]) + np.sum(np.take(X, J, axis=-1) ** 2)
            + np.sum(X[1].take(J[0])) + np.sum(np.take(X, J, axis=0) ** 3) + np.sum(np.take(X, J + 5, mode="wrap"))
            + np.sum(np.take(X, J * 2, axis=1, mode="clip") ** 2))


def trace_loss(X):
    return (np.trace(X[:, :3]) * 2.0 + np.trace(X, offset=1) ** 2 + np.trace(X, -1, 1, 0) + X[:, 1:].trace(1) * 3.0
            + np.trace(X.T * W.T))


def norm_loss(X):
    return (np.sum(np.linalg.norm(X, axis=0) * np.arange(4.0)) + np.sum(np.linalg.norm(X, ord=1, axis=1) ** 2)
            + np.sum(np.linalg.norm(X, ord=np.inf, axis=-1)) + np.sum(np.linalg.norm(X, ord=-np.inf, axis=0, keepdims=True))
            + np.linalg.norm(X[0], ord=np.inf) + np.linalg.norm(X, axis=(0, 1)) * 2.0
            + np.sum(np.linalg.norm(X, 2, 1, True) * W[:, :1]) + np.linalg.norm(X[1], 1))


def round_loss(X):
    return np.sum(np.round(X, 1) * X) + round(float(X[0, 0]), 2) * X[1, 1] + np.sum(X.round(2)) + np.sum(np.around(X) ** 2)


@BACKENDS
def test_reshape_gradient_is_the_gradient_reshaped_back(backend):
    check_grads(vmapper.batched(reshape_loss, backend=backend), (rng(60).normal(size=(9, 3, 4)),))


@BACKENDS
def test_take_gradient_scatter_adds_back_repeated_indices_included(backend):
    X = rng(61).normal(size=(9, 3, 4))
    check_grads(vmapper.batched(take_loss, backend=backend),
                (X, rng(62).integers(-4, 4, size=9), rng(63).integers(-3, 3, size=(9, 2, 2))))


def test_take_gradient_counts_an_element_taken_twice_twice():
    def f(x):
        return np.sum(np.take(x, [1, 1, -1]))
    _, g = vmapper.value_and_grad(vmapper.batched(f))(floats(64, shape=(3,)))
    assert np.array_equal(g, np.tile([0.0, 2.0, 1.0], (N, 1)))


@BACKENDS
def test_trace_gradient_is_the_gradient_on_the_diagonal(backend):
    check_grads(vmapper.batched(trace_loss, backend=backend), (rng(65).normal(size=(9, 3, 4)),))


@BACKENDS
def test_norm_gradients_along_axes(backend):
    check_grads(vmapper.batched(norm_loss, backend=backend), (rng(66).normal(size=(9, 3, 4)),))


def test_norm_gradients_at_zero_are_zero():
    X = rng(67).normal(size=(5, 3, 4))
    X[0] = 0.0
    X[1, :, 2] = 0.0
    _, g = vmapper.value_and_grad(vmapper.batched(norm_loss))(X)
    assert np.isfinite(g).all() and not g[0].any()


def test_round_has_derivative_zero():
    X = rng(68).normal(size=(7, 3, 4))
    _, g = vmapper.value_and_grad(vmapper.batched(round_loss))(X)
    expected = np.round(X, 1)
    expected[:, 1, 1] += np.array([round(float(v), 2) for v in X[:, 0, 0]])
    assert np.array_equal(g, expected)


def shared_parameter(x, T, J):
    return (np.sum(np.take(T, J, axis=1) * x) + np.sum(np.take(T * x, J)) + np.trace(T[:, :3] * x)
            + np.sum(np.reshape(T, (4, 3), order="F")[0] * x) + np.sum(np.linalg.norm(T * x, ord=1, axis=0))
            + np.sum(np.linalg.norm(T, axis=1)) * x)


def test_gradients_of_a_shared_parameter_sum_over_the_lanes():
    f = vmapper.batched(shared_parameter, in_axes=(0, None, 0))
    check_grads(f, (rng(69).normal(size=9), rng(70).normal(size=(3, 4)), rng(71).integers(-3, 3, size=(9, 2))),
                argnums=(0, 1))


def of_a_list(a, b, i):
    return np.sum(np.take([a, b, a * b], i)) + np.trace(np.reshape([a, b, b, a * 2.0], (2, 2)))


def test_gradients_through_lists_of_per_sample_scalars():
    check_grads(of_a_list, (rng(72).normal(size=9), rng(73).normal(size=9), rng(74).integers(-3, 3, size=9)),
                argnums=(0, 1))


def branch_loss(X, i):
    if X[0, 0] > 0:
        y = np.sum(np.take(X, i, axis=1) ** 2) + np.trace(X[:, :3]) + np.linalg.norm(X, ord=1, axis=0)[1]
    else:
        y = np.sum(np.reshape(X, (2, 6), order="F")[1] ** 2) + np.linalg.norm(X, axis=-1)[0]
    return y


@BACKENDS
def test_gradients_under_a_lane_dependent_branch(backend):
    X = rng(75).normal(size=(13, 3, 4))
    i = rng(76).integers(-4, 4, size=13)
    i[X[:, 0, 0] <= 0] = 99  # out of range where the gather does not run
    check_grads(vmapper.batched(branch_loss, backend=backend), (X, i))


def test_count_nonzero_and_isclose_have_no_gradient_and_do_not_raise():
    def f(x):
        return np.count_nonzero(x > 0.5) * x[0] + math.isclose(x[1], 0.0, abs_tol=0.5) * x[1]
    x = floats(77, shape=(3,))
    _, g = vmapper.value_and_grad(vmapper.batched(f))(x)
    expected = np.zeros_like(x)
    expected[:, 0] = np.count_nonzero(x > 0.5, axis=1)
    expected[:, 1] = np.abs(x[:, 1]) <= 0.5
    assert np.array_equal(g, expected)


# ---- errors -----------------------------------------------------------------------------------------------------

def reshape_bad_size(X):
    return np.reshape(X, (5,))


def reshape_two_unknowns(X):
    return X.reshape(-1, -1)


def reshape_bad_order(X):
    return np.reshape(X, 6, order="K")


def take_out_of_bounds(X):
    return np.take(X, [0, 6])


def take_axis_out_of_bounds(X):
    return np.take(X, 0, axis=2)


def take_negative_out_of_bounds(X):
    return np.take(X, -4, axis=1)


def take_float_indices(X):
    return np.take(X, np.array([1.0, 2.0]))


def take_bad_mode(X):
    return np.take(X, 0, mode="nearest")


def take_from_empty(X):
    return np.take(X[:, :0], 0, axis=1)


def count_axis_out_of_bounds(X):
    return np.count_nonzero(X, axis=-3)


def count_float_axis(X):
    return np.count_nonzero(X, axis=1.0)


def round_float_decimals(X):
    return np.round(X, 1.5)


def builtin_round_float_ndigits(X):
    return round(float(X[0, 0]), 1.5)


def builtin_round_complex(X):
    return round(X[0, 0] * 1j, 1)


def builtin_round_of_numpy_bool(X):
    return round(X[0, 0] > 0, 1)


def trace_of_a_vector(X):
    return np.trace(X[0])


def trace_same_axes(X):
    return np.trace(X, axis1=1, axis2=-1)


def trace_axis_out_of_bounds(X):
    return np.trace(X, axis2=2)


def norm_string_order_of_vectors(X):
    return np.linalg.norm(X, ord="fro", axis=0)


def norm_bad_matrix_order(X):
    return np.linalg.norm(X, ord="max", axis=(0, 1))


def norm_duplicate_axes(X):
    return np.linalg.norm(X, axis=(1, -1))


def norm_three_axes(X):
    return np.linalg.norm(X, axis=(0, 1, 0))


def norm_axis_out_of_bounds(X):
    return np.linalg.norm(X, ord=1, axis=2)


def norm_bad_axis(X):
    return np.linalg.norm(X, axis="rows")


def norm_of_three_dims(X):
    return np.linalg.norm(X[None], ord=1)


def isclose_negative_tolerance(X):
    return math.isclose(float(X[0, 0]), 1.0, rel_tol=-1.0)


def isclose_string(X):
    return math.isclose(float(X[0, 0]), "1")


@pytest.mark.parametrize("fn, error, message", [
    (reshape_bad_size, "ValueError", "cannot reshape array of size 6 into shape \\(5,\\)"),
    (reshape_two_unknowns, "ValueError", "can only specify one unknown dimension"),
    (reshape_bad_order, "ValueError", "order 'K' is not permitted for reshaping"),
    (take_out_of_bounds, "IndexError", "index 6 is out of bounds for axis 0 with size 6"),
    (take_axis_out_of_bounds, "AxisError", "axis 2 is out of bounds for a per-sample array of dimension 2"),
    (take_negative_out_of_bounds, "IndexError", "index -4 is out of bounds for axis 1 with size 3"),
    (take_float_indices, "TypeError", "Cannot cast array data from dtype\\('float64'\\)"),
    (take_bad_mode, "ValueError", "clipmode must be one of 'clip', 'raise', or 'wrap'"),
    (take_from_empty, "IndexError", "cannot do a non-empty take from an empty axes"),
    (count_axis_out_of_bounds, "AxisError", "axis -3 is out of bounds for a per-sample array of dimension 2"),
    (count_float_axis, "TypeError", "'float' object cannot be interpreted as an integer"),
    (round_float_decimals, "TypeError", "'float' object cannot be interpreted as an integer"),
    (builtin_round_float_ndigits, "TypeError", "'float' object cannot be interpreted as an integer"),
    (builtin_round_complex, "TypeError", "type numpy.complex128 doesn't define __round__ method"),
    (builtin_round_of_numpy_bool, "TypeError", "type numpy.bool doesn't define __round__ method"),
    (trace_of_a_vector, "ValueError", "diag requires an array of at least two dimensions"),
    (trace_same_axes, "ValueError", "axis1 and axis2 cannot be the same"),
    (trace_axis_out_of_bounds, "AxisError", "axis 2 is out of bounds for a per-sample array of dimension 2"),
    (norm_string_order_of_vectors, "ValueError", "Invalid norm order 'fro' for vectors"),
    (norm_bad_matrix_order, "ValueError", "Invalid norm order for matrices"),
    (norm_duplicate_axes, "ValueError", "Duplicate axes given"),
    (norm_three_axes, "ValueError", "Improper number of dimensions to norm"),
    (norm_axis_out_of_bounds, "AxisError", "axis 2 is out of bounds for a per-sample array of dimension 2"),
    (norm_bad_axis, "TypeError", "'axis' must be None, an integer or a tuple of integers"),
    (norm_of_three_dims, "ValueError", "Improper number of dimensions to norm"),
    (isclose_negative_tolerance, "ValueError", "tolerances must be non-negative"),
    (isclose_string, "TypeError", "must be real number, not str"),
])
def test_bad_arguments_raise_the_per_sample_error_naming_it(fn, error, message):
    X = floats(80, shape=(2, 3))
    with pytest.raises(vmapper.LaneError, match=f"{error}: .*{message}") as info:
        vmapper.batched(fn)(X)
    assert fn.__code__.co_firstlineno + 1 == info.value.line
    assert np.asarray(info.value.lanes).tolist() == list(range(N))  # every lane raises
    with pytest.raises(Exception) as per_sample:
        fn(X[0])
    assert type(per_sample.value).__name__ == error  # the per-sample run raises the same


def take_per_lane_index(X, i):
    return np.take(X, i, axis=1)


def take_per_lane_indices(X, J):
    return np.take(X, J)


def take_under_a_branch(X, i):
    if i > 0:
        return np.take(X, i)
    return X[0, 0]


def test_take_out_of_range_on_some_lanes_names_those_lanes_and_an_index():
    X = floats(81, shape=(2, 3))
    i = np.zeros(N, dtype=np.int64)
    i[[4, 9]] = [3, -5]
    with pytest.raises(vmapper.LaneError, match="IndexError: index out of range for axis 1 with size 3 "
                                                "\\(value \\S*3\\)? on lane 4\\) on lane\\(s\\) \\[4, 9\\]") as info:
        vmapper.batched(take_per_lane_index)(X, i)
    assert np.asarray(info.value.lanes).tolist() == [4, 9] and info.value.python_error is IndexError
    J = np.zeros((N, 2, 2), dtype=np.int64)
    J[7, 1, 0] = 6
    J[8, 0, 1] = -7
    with pytest.raises(vmapper.LaneError, match="IndexError: index out of range for axis 0 with size 6 "
                                                "\\(value \\S*6\\)? on lane 7\\) on lane\\(s\\) \\[7, 8\\]") as info:
        vmapper.batched(take_per_lane_indices)(X, J)
    assert info.value.line == take_per_lane_indices.__code__.co_firstlineno + 1
    i = np.arange(N) - 3  # lanes 0..3 do not take; from lane 9 on, the index is out of range
    with pytest.raises(vmapper.LaneError, match="on lane\\(s\\) \\[9, 10, ") as info:
        vmapper.batched(take_under_a_branch)(X, i)
    assert np.asarray(info.value.lanes).tolist() == list(range(9, N))


def round_far(x, k):
    if x > 0.0:
        return round(float(x), int(k))  # marker-round-far
    return 0.0


def test_round_beyond_double_precision_raises_on_the_lanes_that_reach_it():
    x = np.full(8, -1.0)
    k = np.full(8, 2)
    # 35 digits, 10**308 steps, |x| * 100 above 2**52 and not a double (lane 7's is: x itself)
    x[[2, 5, 6, 7]] = [1e-30, 1.7e308, 1e14 + 0.3, 1e14 + 0.5]
    k[[2, 5]] = [35, -308]
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=r"round\(x, ndigits\).* on lane\(s\) 2, 5, 6") as info:
        vmapper.batched(round_far)(x, k)
    assert f"{round_far.__code__.co_filename}:{line_of(round_far, 'marker-round-far')}" in str(info.value)
    x[[2, 5, 6]] = -x[[2, 5, 6]]  # the same values on lanes that do not reach round(): no error
    check_batching(round_far, (x, k))


def test_isclose_negative_tolerance_on_some_lanes_names_them():
    def f(x, t):
        return math.isclose(x, 1.0, abs_tol=t)
    t = np.full(N, 0.5)
    t[[2, 30]] = -1.0
    with pytest.raises(vmapper.LaneError, match="ValueError: tolerances must be non-negative on lane\\(s\\) \\[2, 30\\]"):
        vmapper.batched(f)(floats(82), t)


def per_sample_shape(X, k):
    return np.reshape(X, (k, -1))


def per_sample_axis(X, k):
    return np.take(X, 0, axis=k)


def per_sample_decimals(X, k):
    return np.round(X, k)


def reshape_order_a(X, k):
    return np.reshape(X, -1, order="A")


def reshape_no_copy(X, k):
    return np.reshape(X, -1, copy=False)


def take_out(X, k):
    return np.take(X, 0, out=np.zeros(()))


def take_float_per_lane(X, k):
    return np.take(X, k * 0.5)


def norm_order_three(X, k):
    return np.linalg.norm(X, ord=3, axis=0)


def norm_nuclear(X, k):
    return np.linalg.norm(X, ord="nuc")


@pytest.mark.parametrize("fn, message", [
    (per_sample_shape, "np.reshape\\(\\) with a per-sample value for 'shape'"),
    (per_sample_axis, "np.take\\(\\) with a per-sample value for 'axis'"),
    (per_sample_decimals, "np.round\\(\\) with a per-sample value for 'decimals'"),
    (reshape_order_a, "np.reshape\\(\\) with order='A'"),
    (reshape_no_copy, "np.reshape\\(\\) with copy=False"),
    (take_out, "np.take\\(\\) with out="),
    (take_float_per_lane, "np.take\\(\\) with per-sample float64 indices"),
    (norm_order_three, "np.linalg.norm\\(\\) of a per-sample array with ord=3"),
    (norm_nuclear, "np.linalg.norm\\(\\) of a per-sample array with ord='nuc' over two axes"),
])
def test_what_is_not_batched_is_unsupported_naming_it(fn, message):
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=message):
        vmapper.batched(fn)(floats(83, shape=(2, 3)), ints(84, 1, 3))


# ---- np.transpose and np.concatenate(axis=None) ------------------------------------------------

def transpose_forms(m, v):
    return (np.transpose(m), np.transpose(m, (1, 0)), np.transpose(m, axes=[1, 0])[0],
            np.transpose(np.ones((2, 3))), np.transpose([v, v]))


def test_np_transpose_function_form_equals_the_per_sample_call():
    check_batching(transpose_forms, (floats(120, shape=(3, 4)), floats(121)))


def concatenate_flattened(m, v):
    return (np.concatenate([m, m], axis=None), np.concatenate((m, v, np.ones(2)), axis=None),
            np.concatenate([v, 1.5], axis=None), np.concatenate([m], axis=None, dtype=np.float32))


def test_np_concatenate_with_axis_none_flattens_each_lanes_arrays():
    check_batching(concatenate_flattened, (floats(122, shape=(3, 4)), floats(123)))


def transpose_and_flat_join_loss(m, w):
    return np.sum(np.transpose(m) @ w) + np.sum(np.concatenate([m, w], axis=None) ** 2)


def test_gradients_through_np_transpose_and_a_flattened_concatenate():
    check_grads(vmapper.batched(transpose_and_flat_join_loss, in_axes=(0, None)),
                (rng(124).normal(size=(9, 3, 4)), rng(125).normal(size=3)), argnums=(0, 1))
