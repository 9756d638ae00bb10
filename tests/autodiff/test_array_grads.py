"""Gradients of array operations at the points where a naive rule goes wrong: products
through zeros, extremes tied across several axes, variance and standard deviation, nested
np.array literals, transposes with axes, and a few binary math functions.  Each is compared
with the exact gradient or with central differences, on both backends."""
import math

import numpy as np
import pytest

import vmapper
from vmapper.testing import check_grads

BACKENDS = ["numpy", "numba"]


def product(x):
    return np.prod(x) + x.prod()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_gradient_of_a_product_through_zeros_is_the_product_of_the_others(backend):
    x = np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 5.0], [1.0, 2.0, 3.0]])
    g = vmapper.grad(vmapper.batched(product, backend=backend))(x)
    np.testing.assert_array_equal(g, 2 * np.array([[6.0, 0.0, 0.0], [0.0, 0.0, 0.0], [6.0, 3.0, 2.0]]))


def largest(m):
    return np.max(m) + np.min(m, axis=(0, 1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_extreme_tied_over_several_axes_takes_the_gradient_once_at_its_first_place(backend):
    m = np.array([[[1.0, 3.0], [3.0, 0.0]], [[0.0, 0.0], [2.0, 0.0]]])
    g = vmapper.grad(vmapper.batched(largest, backend=backend))(m)
    np.testing.assert_array_equal(g, [[[0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])


def spreads(x):
    return x.var() + x.std() + np.sum(np.var(x, axis=0)) + np.std(x, axis=1)[0] \
        + x.std(ddof=1) + np.sum(np.var(x, 0, None, None, 2))


def nested_literal(x, y):
    return np.sum(np.array([[x, y], [y * 3, 1.0]]) ** 2 * np.array([[1.0, 2.0], [3.0, 4.0]]))


def transposes(x):
    y = x.reshape(2, 2, 3).transpose(2, 0, 1)
    return np.sum(y[0] * np.arange(4.0).reshape(2, 2)) + np.sum(x.reshape(3, 4).transpose((1, 0))[1] ** 2)


def binary_math(x, y):
    return math.fmod(x, y) + math.copysign(x, y) * 2 + np.logaddexp2(x, y) + np.float_power(x, y)


@pytest.mark.parametrize("backend", BACKENDS)
def test_var_std_nested_literals_transposes_and_binary_math_match_finite_differences(backend):
    r = np.random.default_rng(0)
    check_grads(vmapper.batched(spreads, backend=backend), (r.normal(size=(5, 3, 4)),))
    check_grads(vmapper.batched(nested_literal, backend=backend), (r.normal(size=6), r.normal(size=6)),
                argnums=(0, 1))
    check_grads(vmapper.batched(transposes, backend=backend), (r.normal(size=(4, 12)),))
    check_grads(vmapper.batched(binary_math, backend=backend), (r.uniform(0.5, 3, 8), r.uniform(0.3, 2, 8)),
                argnums=(0, 1))


def halves_while_large(x):
    s = x
    for _ in range(3):
        if s > 1.0:
            s = s * 0.5
    return s


def test_checkpointed_loops_replay_branches_that_became_selects():
    f = vmapper.batched(halves_while_large, backend="numpy")
    x = np.array([0.5, 3.0, 9.0])
    np.testing.assert_array_equal(vmapper.grad(f, checkpoint_loops=2)(x), vmapper.grad(f)(x))
    np.testing.assert_array_equal(vmapper.grad(f)(x), [1.0, 0.25, 0.125])


def numpy_modulos(x, y):
    return np.mod(x, y) + np.fmod(x, y) * 2 + np.floor_divide(x, y) * 3 + np.remainder(x, 2.5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_numpy_remainder_fmod_and_floor_divide_batch_and_differentiate(backend):
    from vmapper.testing import check_batching
    r = np.random.default_rng(3)
    x, y = r.uniform(-5, 5, 9), r.choice([-1.5, 0.7, 2.2], 9)
    check_batching(numpy_modulos, (x, y), backend=backend)
    check_batching(numpy_modulos, (np.array([5, -7, 9]), np.array([3, 2, -4])), backend=backend)
    check_grads(vmapper.batched(numpy_modulos, backend=backend), (x, y), argnums=(0, 1))
