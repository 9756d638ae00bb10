"""``kernels/optim.py``: the fused Adagrad step is bitwise numpy's expression, dense and on
the rows of a row-sparse gradient, and refuses state it cannot update in place."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmapper.autodiff.sparse import RowSparse
from vmapper.kernels.optim import adagrad_update


def numpy_adagrad(p, acc, g, lr, eps, l2, scale):
    d = np.asarray(g) * scale + l2 * p
    acc += d * d
    p -= lr * (d / (np.sqrt(acc) + eps))


def numpy_adagrad_rows(p, acc, rows, values, lr, eps, l2, scale):
    d = values * scale + l2 * p[rows]
    acc[rows] += d * d
    p[rows] -= lr * (d / (np.sqrt(acc[rows]) + eps))


def _state(seed, shape, dtype):
    r = np.random.default_rng(seed)
    p = r.normal(size=shape).astype(dtype)
    acc = r.uniform(0, 2, size=shape).astype(dtype)
    acc.flat[:3] = 0.0  # (a first step: sqrt(0) + eps)
    return p, acc


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]),
       shape=st.sampled_from([(7,), (5, 3), (2, 3, 4)]), lr=st.floats(1e-4, 1.0), l2=st.sampled_from([0.0, 1e-4]),
       scale=st.sampled_from([1.0, 0.04, 3.0]))
def test_dense_step_is_bitwise_the_numpy_expression(seed, dtype, shape, lr, l2, scale):
    p, acc = _state(seed, shape, dtype)
    g = np.random.default_rng(seed + 1).normal(size=shape).astype(dtype)
    g.flat[0], g.flat[1] = 0.0, -0.0
    p2, acc2 = p.copy(), acc.copy()
    numpy_adagrad(p2, acc2, g, lr, 1e-10, l2, scale)
    assert adagrad_update(p, acc, g, lr, 1e-10, l2, scale) is p
    np.testing.assert_array_equal(p, p2, strict=True)
    np.testing.assert_array_equal(acc, acc2, strict=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_sparse_step_touches_only_its_rows_summed_per_index(dtype):
    p, acc = _state(3, (10, 4), dtype)
    r = np.random.default_rng(4)
    indices = np.array([7, 2, 7, 0, 2])  # repeats: their rows are summed first
    values = r.normal(size=(5, 4)).astype(dtype)
    grad = RowSparse(indices, values, p.shape)
    p2, acc2 = p.copy(), acc.copy()
    co = grad.coalesce()
    numpy_adagrad_rows(p2, acc2, co.indices, co.values, 0.05, 1e-8, 1e-4, 0.5)
    before = p.copy()
    adagrad_update(p, acc, grad, 0.05, 1e-8, 1e-4, 0.5)
    np.testing.assert_array_equal(p, p2, strict=True)
    np.testing.assert_array_equal(acc, acc2, strict=True)
    untouched = np.setdiff1d(np.arange(10), indices)
    np.testing.assert_array_equal(p[untouched], before[untouched])


def test_row_indices_count_from_the_end_as_to_dense_places_them_and_out_of_range_ones_raise():
    p, acc = _state(8, (3, 1), np.float64)
    grad = RowSparse([-1, 2], np.array([[1.0], [1.0]]), p.shape)  # one row, given twice
    p2, acc2 = p.copy(), acc.copy()
    numpy_adagrad(p2, acc2, grad.to_dense(), 1.0, 1e-10, 0.0, 1.0)
    adagrad_update(p, acc, grad, 1.0)
    np.testing.assert_array_equal(p, p2)
    np.testing.assert_array_equal(acc, acc2)
    for bad in (3, -4):
        before = p.copy()
        with pytest.raises(IndexError, match=f"row index {bad} of the grad is out of range for a param of 3 rows"):
            adagrad_update(p, acc, RowSparse([0, bad], np.ones((2, 1)), p.shape), 1.0)
        np.testing.assert_array_equal(p, before)  # nothing written


def test_a_grad_of_another_dtype_is_taken_in_the_params_dtype():
    p, acc = _state(5, (6,), np.float32)
    g = np.random.default_rng(6).normal(size=6)  # float64
    p2, acc2 = p.copy(), acc.copy()
    numpy_adagrad(p2, acc2, g.astype(np.float32), 0.1, 1e-10, 0.0, 1.0)
    adagrad_update(p, acc, g, 0.1)
    np.testing.assert_array_equal(p, p2, strict=True)


def test_state_it_cannot_update_in_place_is_refused_by_name():
    p, acc = _state(7, (4, 3), np.float64)
    with pytest.raises(ValueError, match="grad of shape"):
        adagrad_update(p, acc, np.zeros(3), 0.1)
    with pytest.raises(ValueError, match="row-sparse grad of shape"):
        adagrad_update(p, acc, RowSparse([0], np.zeros((1, 3)), (5, 3)), 0.1)
    with pytest.raises(ValueError, match="param must be a writeable C-contiguous"):
        adagrad_update(np.asfortranarray(p), acc, np.zeros((4, 3)), 0.1)
    with pytest.raises(ValueError, match="acc .* must have param's dtype and shape"):
        adagrad_update(p, acc.astype(np.float32), np.zeros((4, 3)), 0.1)
    with pytest.raises(TypeError, match="param must be a float32 or float64 array, not int64"):
        adagrad_update(np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64), np.zeros(3), 0.1)
    with pytest.raises(TypeError, match="param must be a float32 or float64 array, not float16"):
        adagrad_update(np.zeros(3, dtype=np.float16), np.zeros(3, dtype=np.float16), np.zeros(3), 0.1)
    with pytest.raises(TypeError, match="lr must be a real number, not NoneType"):
        adagrad_update(p, acc, np.zeros((4, 3)), None)
    with pytest.raises(TypeError, match="eps must be a real number, not ndarray"):
        adagrad_update(p, acc, np.zeros((4, 3)), 0.1, eps=np.array([1e-8, 1e-9]))
    with pytest.raises(TypeError, match="grad must hold real numbers, not complex128"):
        adagrad_update(p, acc, np.zeros((4, 3), dtype=complex), 0.1)
    with pytest.raises(ValueError, match=r"indices of shape \(1,\) and values of shape \(1, 2\)"):
        adagrad_update(p, acc, RowSparse([0], np.zeros((1, 2)), (4, 3)), 0.1)
    with pytest.raises(TypeError, match="acc must be a numpy array"):
        adagrad_update(np.zeros(3), [0.0, 0.0, 0.0], np.zeros(3), 0.1)
