"""Activation kernels called from per-sample code: batched results equal the
per-sample calls, gradients (several results, masks, shared weights) match
finite differences, and lazily summed gradients (slices, shared matrices) equal
dense ones."""
import numpy as np

import vmapper
from vmapper.kernels.activations import sigmoid, tanh, tree_lstm_cell
from vmapper.testing import check_batching, check_grads

RNG = np.random.default_rng(3)
H = 4


def cell_branches(x, cl, W, b):
    """A multi-result kernel under a mask, a Python-float operand, and slices of one gate vector."""
    g = W @ x + b
    if x[0] > 0:
        h, c = tree_lstm_cell(g[0:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:4 * H], g[4 * H:5 * H],
                              cl, 0.5 * cl)
        return np.sum(h * h) + np.sum(c)
    h, c = tree_lstm_cell(g[0:H], 0.0, 0.0, g[H:2 * H], g[2 * H:3 * H], 0.0, 0.0)
    return np.sum(h) - np.sum(tanh(c) * sigmoid(g[4 * H:5 * H]))


def _args(n=9):
    return (RNG.normal(size=(n, 3)), RNG.normal(size=(n, H)), RNG.normal(size=(5 * H, 3)),
            RNG.normal(size=5 * H))


def test_kernel_calls_batch_like_the_per_sample_calls():
    f = vmapper.batched(cell_branches, in_axes=(0, 0, None, None))
    # matmul and sums round differently batched (GEMM) than per sample; the kernels do not
    check_batching(f, _args(), in_axes=(0, 0, None, None), exact=False, rtol=1e-13, atol=1e-14)


def test_kernel_gradients_match_finite_differences():
    f = vmapper.batched(cell_branches, in_axes=(0, 0, None, None))
    check_grads(f, _args(), argnums=(0, 1, 2, 3), rtol=1e-6)


def test_float32_operands_with_python_floats_stay_float32():
    f = vmapper.batched(cell_branches, in_axes=(0, 0, None, None))
    args = tuple(a.astype(np.float32) for a in _args())
    out = f(*args)
    assert out.dtype == np.float32
    _, grads = vmapper.value_and_grad(f, argnums=(2, 3))(*args)
    assert all(np.asarray(g).dtype == np.float32 for g in grads)


def shared_matrix_levels(x, W):
    """One shared matrix applied at several depths: its gradient sums the products of all."""
    y = x
    k = 0
    while k < 3 and np.sum(y) < 50.0:
        y = np.tanh(W @ y) + y
        k += 1
    return np.sum(y * y)


def test_shared_matrix_gradient_over_loop_trips_matches_finite_differences():
    x = RNG.normal(size=(7, 4))
    W = RNG.normal(size=(4, 4)) * 0.5
    check_grads(vmapper.batched(shared_matrix_levels, in_axes=(0, None)), (x, W), argnums=(0, 1))
