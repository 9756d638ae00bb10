"""Idioms the kernel generator computes as one vmath function: ``1/(1 + np.exp(-x))``."""
import math

import numpy as np
import pytest

import vmapper
from vmapper.program import get_program

pytest.importorskip("numba")

from vmapper.kernels import vmath as vm  # noqa: E402
from vmapper.kernels.codegen import compile_kernel  # noqa: E402
from numba import njit  # noqa: E402

F64_EXP_FINITE = 709.782712893384  # the largest x whose np.exp(x) is finite


def sigmoid_sample(x):
    return 1.0 / (1.0 + np.exp(-x))


def sigmoid_int_ones(x):
    return 1 / (np.exp(-x) + 1)


def exp_read_twice(x):
    e = np.exp(-x)
    return 1.0 / (1.0 + e) + e


def with_math_exp(x):
    return 1.0 / (1.0 + math.exp(-x))


def gate(i, u, c):
    return 1.0 / (1.0 + np.exp(-i)) * np.tanh(u) + 1.0 / (1.0 + np.exp(-c)) * c


def source(fn, dtype=np.float64, nargs=1, exact_math=False):
    ir = get_program(fn).ir
    return compile_kernel(ir, [("lanes", np.dtype(dtype), False)] * nargs, exact_math=exact_math).source


def edge_inputs():
    """The sweep, specials, and the floats around the overflow of exp(-x)."""
    up, down = [np.float64(-F64_EXP_FINITE)], [np.float64(-F64_EXP_FINITE)]
    for _ in range(30):
        up.append(np.nextafter(up[-1], np.inf))
        down.append(np.nextafter(down[-1], -np.inf))
    return np.concatenate([vm.sweep_inputs("sigmoid", np.float64, n=3 * 10 ** 5), vm.special_values(np.float64),
                           np.array(up + down), np.linspace(-40.0, 40.0, 10 ** 5)])


@njit(error_model="numpy")
def _logistic(x, out):
    for j in range(x.shape[0]):
        out[j] = vm.logistic_f64(x[j])


def test_logistic_is_the_expression_to_4_ulp_with_its_overflow_to_zero():
    x = edge_inputs()
    out = np.empty_like(x)
    _logistic(x, out)
    with np.errstate(over="ignore"):
        want = 1.0 / (1.0 + np.exp(-x))
    err = vm.ulp_error(out, want, np.float64)
    assert err.max() <= 4, (x[np.argmax(err)], err.max())
    assert np.array_equal(out == 0.0, want == 0.0)  # zero exactly where numpy's exp(-x) overflows


@pytest.mark.parametrize("fn", [sigmoid_sample, sigmoid_int_ones])
def test_the_idiom_runs_as_one_vmath_call_with_the_expressions_values(fn):
    assert "_vm_logistic_f64" in source(fn) and "_vm_exp_f64" not in source(fn)
    x = edge_inputs()
    got = vmapper.batched(fn, backend="numba")(x)
    with np.errstate(over="ignore"):
        want = np.array([fn(v) for v in x.tolist()])
    assert vm.ulp_error(got, want, np.float64).max() <= 4


def test_a_gate_expression_fuses_both_sigmoids_and_keeps_the_rest():
    src = source(gate, nargs=3)
    assert src.count("_vm_logistic_f64(") == 2 and "_vm_tanh_f64(" in src
    rng = np.random.default_rng(5)
    i, u, c = (rng.normal(0.0, 4.0, 5000) for _ in range(3))
    got = vmapper.batched(gate, backend="numba")(i, u, c)
    want = np.array([gate(*v) for v in zip(i.tolist(), u.tolist(), c.tolist())])
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)  # (a sum: absolute near 0)


@pytest.mark.parametrize("fn, dtype, exact", [
    (exp_read_twice, np.float64, False),   # exp(-x) is read again: computed as written
    (with_math_exp, np.float64, False),    # math.exp raises OverflowError: not the idiom
    (sigmoid_sample, np.float32, False),   # float32 keeps the expression (codegen_idioms)
    (sigmoid_sample, np.float64, True),    # exact_math keeps libm
])
def test_the_idiom_is_left_alone_where_it_would_be_observable(fn, dtype, exact):
    assert "logistic" not in source(fn, dtype, exact_math=exact)


def test_float32_and_exact_math_results_follow_the_expression():
    x = np.random.default_rng(6).normal(0.0, 10.0, 3000)
    for xs, kw in ((x.astype(np.float32), {}), (x, {"exact_math": True})):
        got = vmapper.batched(sigmoid_sample, backend="numba", **kw)(xs)
        ref = vmapper.batched(sigmoid_sample, backend="numpy")(xs)
        assert got.dtype == xs.dtype and vm.ulp_error(got, ref, xs.dtype).max() <= 2
