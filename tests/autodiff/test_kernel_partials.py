"""Dual-number kernels: a function that runs as one numba kernel is differentiated by the
partials its forward kernel computes, and they equal the numpy runtime's reverse-mode tape."""
import math

import numpy as np
import pytest

import vmapper
from vmapper.autodiff.forward_mode import MAX_TANGENTS, NotDifferentiable, jvp_function
from vmapper.program import get_program
from vmapper.testing import check_grads
from vmapper.testing.program_generator import compile_program, generate_program

from .test_grads import branches, early_return, for_break_continue, masked_nan_trap, newton_sqrt, while_loop

RNG = np.random.default_rng(7)


def both_backends(fn, in_axes, args, argnums, **kw):
    """(values, grads) of value_and_grad on the numba kernel and on the numpy runtime."""
    out = []
    for backend in ("numba", "numpy"):
        f = vmapper.batched(fn, in_axes=in_axes, backend=backend)
        out.append(vmapper.value_and_grad(f, argnums, **kw)(*args))
        if backend == "numba":
            assert f.last_stats["kernel_launches"] >= 1, "expected the function to run as a kernel"
            # the dual kernel's values are the plain kernel's, bitwise
            np.testing.assert_array_equal(out[-1][0], f(*args))
    return out


def assert_same_grads(a, b, rtol=1e-11):
    (va, ga), (vb, gb) = a, b
    np.testing.assert_allclose(va, vb, rtol=1e-13)  # kernels' math functions: within a few ulp
    for x, y in zip(ga, gb):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-12)


def smooth_math(x, w):
    y = math.exp(-x * x) * w + np.tanh(x) / (1.0 + w * w)
    z = math.sqrt(x * x + 1.0) ** w + max(x, w) - min(x * 2.0, w) + abs(x - w)
    return y * math.log1p(z * z) + np.clip(x, -0.5, 0.5) * math.atan2(x, w)


@pytest.mark.parametrize("fn", [branches, while_loop, for_break_continue, early_return, masked_nan_trap,
                                smooth_math])
def test_kernel_partials_equal_the_reverse_mode_tape(fn):
    x = RNG.normal(size=33) * 1.5
    assert_same_grads(*both_backends(fn, (0, None), (x, 0.8), (0, 1)))


def test_adaptive_loop_partials_match_finite_differences():
    a = RNG.uniform(0.5, 20.0, size=16)
    check_grads(vmapper.batched(newton_sqrt, in_axes=(0, None), backend="numba"), (a, 1.3),
                argnums=(0, 1), rtol=1e-5)


@pytest.mark.parametrize("fn", [while_loop, smooth_math])
def test_store_and_recompute_policies_give_the_same_gradients(fn):
    x = RNG.normal(size=20)
    f = vmapper.batched(fn, in_axes=(0, None), backend="numba")
    stored = vmapper.value_and_grad(f, (0, 1), kernel_partials="store")(x, 0.3)
    recomputed = vmapper.value_and_grad(f, (0, 1), kernel_partials="recompute")(x, 0.3)
    assert_same_grads(stored, recomputed, rtol=1e-15)
    with pytest.raises(ValueError, match="kernel_partials"):
        vmapper.value_and_grad(f, kernel_partials="lazy")(x, 0.3)


def test_masked_lane_nan_never_reaches_a_kernel_gradient():
    x = np.array([-4.0, -1.0, 0.0, 2.0, 9.0])
    f = vmapper.batched(masked_nan_trap, in_axes=(0, None), backend="numba")
    _, (gx, gw) = vmapper.value_and_grad(f, (0, 1))(x, 2.0)
    assert np.all(np.isfinite(gx)) and np.isfinite(gw)
    assert np.all(gx[:3] == 0.0)
    np.testing.assert_allclose(gx[3:], 1.0 / np.sqrt(x[3:]))


def scalar_helper(a, b):
    t = a
    while t < b:
        t = t * 1.5 + 0.25
    return t * math.sin(b)


def array_caller(v, w):
    s = np.sum(v * v)  # a reduction: this function is not a kernel, its helper is
    return scalar_helper(s, w) + v[0]


def test_a_helper_kernel_inside_a_taped_function_gets_dual_partials():
    v = RNG.normal(size=(12, 3))
    w = RNG.uniform(1.0, 8.0, size=12)
    out = []
    for backend in ("numba", "numpy"):
        f = vmapper.batched(array_caller, backend=backend)
        out.append(vmapper.value_and_grad(f, (0, 1))(v, w))
        if backend == "numba":
            assert f.last_stats["kernel_launches"] == 1
    assert_same_grads(*out)


def tuple_result(x, y):
    s = x
    for _ in range(3):
        s = s * y + 1.0
    return s, x * math.cos(y)


@pytest.mark.parametrize("policy", ["store", "recompute"])
def test_vjp_of_a_tuple_returning_kernel(policy):
    x, y = RNG.normal(size=9), RNG.normal(size=9)
    got = []
    for backend in ("numba", "numpy"):
        out, back = vmapper.vjp(vmapper.batched(tuple_result, backend=backend), x, y, kernel_partials=policy)
        got.append((out, back((np.full(9, 0.5), np.arange(9.0)))))
    for a, b in zip(got[0][0], got[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-14)
    for a, b in zip(got[0][1], got[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_a_result_without_gradient_contributes_nothing():
    x, y = RNG.normal(size=9), RNG.normal(size=9)
    out, back = vmapper.vjp(vmapper.batched(tuple_result, backend="numba"), x, y)
    gx, gy = back((np.zeros(9), np.ones(9)))
    np.testing.assert_allclose(gx, np.cos(y), rtol=1e-14)


def float32_poly(x, w):
    y = x
    for i in range(4):
        y = y * w + np.float32(0.5)
    return y


def test_float32_inputs_get_float32_gradients():
    x = RNG.normal(size=10).astype(np.float32)
    f = vmapper.batched(float32_poly, in_axes=(0, None), backend="numba")
    v, (gx, gw) = vmapper.value_and_grad(f, (0, 1))(x, np.float32(0.7))
    assert v.dtype == np.float32 and gx.dtype == np.float32
    np.testing.assert_allclose(gx, np.full(10, 0.7 ** 4), rtol=1e-6)


def integer_branch(x, k):
    if k % 2 == 0:
        return float(k) * x
    return x // 1.0 + math.floor(x)  # zero derivative: floor-like


def test_integer_arguments_carry_no_tangent_and_floor_like_ops_have_zero_derivative():
    x = RNG.normal(size=12)
    k = np.arange(12)
    assert_same_grads(*both_backends(integer_branch, (0, 0), (x, k), (0,)))


def test_forward_mode_keeps_the_values_and_adds_one_partial_per_input():
    ir = get_program(while_loop).ir
    dual = jvp_function(ir, (0, 1))
    assert dual.params == ir.params
    assert "tangent seeds" in dual.dump() and "x$d0" in dual.dump() and "w$d1" in dual.dump()


def sort_of_unsupported(x, w):
    return np.nextafter(x, w)  # a derivative rule exists for neither mode


def test_an_op_without_a_forward_rule_is_not_silently_differentiated():
    with pytest.raises(NotDifferentiable, match="nextafter"):
        jvp_function(get_program(sort_of_unsupported).ir, (0,))
    with pytest.raises(NotDifferentiable, match="capped"):
        jvp_function(get_program(sort_of_unsupported).ir, tuple(range(MAX_TANGENTS + 1)))
    f = vmapper.batched(sort_of_unsupported, in_axes=(0, None), backend="numba")
    with pytest.raises(vmapper.BatchingError, match="nextafter"):  # reverse mode's own clear error
        vmapper.value_and_grad(f, 0)(np.array([1.5, 2.5]), 1.0)


def many_inputs(a, b, c, d, e, f, g, h, i):
    s = a * b + c * d + e * f + g * h * i
    while abs(s) > 1.0:  # control flow: no adjoint kernel, forward mode only
        s = s * 0.5
    return s


def test_more_inputs_than_the_cap_fall_back_to_reverse_mode_on_the_tape():
    args = [RNG.normal(size=5) for _ in range(9)]
    assert MAX_TANGENTS < 9
    f = vmapper.batched(many_inputs, backend="numba")
    _, grads = vmapper.value_and_grad(f, tuple(range(9)))(*args)
    assert f.last_stats["kernel_launches"] == 0  # ran on the numpy runtime's tape
    _, expected = vmapper.value_and_grad(vmapper.batched(many_inputs, backend="numpy"), tuple(range(9)))(*args)
    for a, b in zip(grads, expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", range(24))
def test_generated_programs_kernel_gradients_equal_the_tape(seed):
    prog = generate_program(seed)
    fn = compile_program(prog)
    a, b, x, y = prog.make_args(np.random.default_rng(seed), 64)
    got = []
    for backend in ("numba", "numpy"):
        f = vmapper.batched(fn, backend=backend)
        try:
            out, back = vmapper.vjp(f, a, b, x, y)
        except vmapper.BatchingError as exc:
            got.append(type(exc))
            continue
        cot = tuple(np.ones(len(x)) for _ in out) if isinstance(out, tuple) else np.ones(len(x))
        got.append((out, back(cot)))
    if not isinstance(got[0], tuple) or not isinstance(got[1], tuple):
        assert got[0] == got[1]  # both raise the same error
        return
    (out_k, g_k), (out_n, g_n) = got
    for o1, o2 in zip(out_k if isinstance(out_k, tuple) else (out_k,), out_n if isinstance(out_n, tuple) else (out_n,)):
        np.testing.assert_allclose(o1, o2, rtol=1e-13, equal_nan=True)
    for g1, g2 in zip(g_k[2:], g_n[2:]):
        if g2 is None:
            assert g1 is None or not np.any(g1)
            continue
        # At a singular point (sqrt(abs(x)) at x = 0: an infinite derivative times a zero
        # tangent) the tape gives NaN and the kernel keeps the zero tangent; nowhere else
        # may they differ, and the kernel never makes a NaN the tape does not.
        finite = np.isfinite(g2)
        assert np.all(np.isfinite(g1)[finite]), f"seed {seed}\n{prog.source}"
        np.testing.assert_allclose(g1[finite], g2[finite], rtol=1e-9, atol=1e-9,
                                   err_msg=f"seed {seed}\n{prog.source}")


# Every forward-mode rule against the tape's reverse-mode rule: (expression, input range).
RULE_CASES = [
    ("np.exp(x)", (-3, 3)), ("np.exp2(x)", (-3, 3)), ("np.expm1(x)", (-3, 3)), ("np.log(x)", (0.1, 5)),
    ("np.log2(x)", (0.1, 5)), ("np.log10(x)", (0.1, 5)), ("np.log1p(x)", (-0.5, 5)), ("np.sqrt(x)", (0.1, 5)),
    ("np.cbrt(x)", (0.1, 5)), ("np.square(x)", (-3, 3)), ("np.sin(x)", (-3, 3)), ("np.cos(x)", (-3, 3)),
    ("np.tan(x)", (-1, 1)), ("np.tanh(x)", (-3, 3)), ("np.sinh(x)", (-3, 3)), ("np.cosh(x)", (-3, 3)),
    ("np.arcsin(x)", (-0.9, 0.9)), ("np.arccos(x)", (-0.9, 0.9)), ("np.arctan(x)", (-3, 3)),
    ("np.arcsinh(x)", (-3, 3)), ("np.arccosh(x)", (1.1, 4)), ("np.arctanh(x)", (-0.9, 0.9)),
    ("np.reciprocal(x)", (0.5, 3)), ("np.negative(x)", (-3, 3)), ("np.deg2rad(x)", (-3, 3)),
    ("np.rad2deg(x)", (-3, 3)), ("math.exp(x)", (-3, 3)), ("math.log(x)", (0.1, 5)),
    ("math.log(x, y)", (1.5, 5)), ("math.sqrt(x)", (0.1, 5)), ("math.erf(x)", (-2, 2)),
    ("math.atan(x)", (-3, 3)), ("math.degrees(x)", (-3, 3)), ("math.hypot(x, y)", (0.5, 3)),
    ("math.atan2(x, y)", (0.5, 3)), ("np.logaddexp(x, y)", (-3, 3)), ("np.maximum(x, y)", (-3, 3)),
    ("np.minimum(x, y)", (-3, 3)), ("np.fmax(x, y)", (-3, 3)), ("max(x, y, 0.5)", (-3, 3)),
    ("min(x, y * 2.0)", (-3, 3)), ("np.clip(x, -1.0, y)", (-3, 3)), ("np.where(x > y, x * y, x - y)", (-3, 3)),
    ("x ** y", (0.5, 3)), ("x ** 3", (-3, 3)), ("math.pow(x, y)", (0.5, 3)), ("abs(x - y)", (-3, 3)),
    ("x % y", (0.5, 3)), ("x / y - x * y", (0.5, 3)), ("float(x) + -y", (-3, 3)),
]


def _rule_function(expr, i):
    import linecache
    source = f"def rule_case(x, y):\n    return {expr}\n"
    filename = f"<jvp-rule-case-{i}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"np": np, "math": math}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["rule_case"]


@pytest.mark.parametrize("i", range(len(RULE_CASES)), ids=[c[0] for c in RULE_CASES])
def test_each_forward_rule_equals_the_reverse_rule(i):
    expr, (lo, hi) = RULE_CASES[i]
    fn = _rule_function(expr, i)
    x, y = RNG.uniform(lo, hi, 16), RNG.uniform(lo, hi, 16)
    assert_same_grads(*both_backends(fn, (0, 0), (x, y), (0, 1)), rtol=1e-12)


def cell(i, f, o, u, c_prev):
    c = 1.0 / (1.0 + np.exp(-i)) * np.tanh(u) + 1.0 / (1.0 + np.exp(-f)) * c_prev
    c = c * 1.0  # a reassignment: the adjoint sweep needs the old value of c
    h = 1.0 / (1.0 + np.exp(-o)) * np.tanh(c)
    return h, c


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_straight_line_functions_with_more_inputs_than_results_use_an_adjoint_kernel(dtype):
    from vmapper.autodiff.reverse_kernel import adjoint_function
    assert adjoint_function(get_program(cell).ir, (0, 1, 2, 3, 4)) is not None
    assert adjoint_function(get_program(while_loop).ir, (0, 1)) is None  # control flow: forward mode
    args = [RNG.normal(size=21).astype(dtype) for _ in range(5)]
    cots = (RNG.normal(size=21).astype(dtype), RNG.normal(size=21).astype(dtype))
    got = []
    for backend in ("numba", "numpy"):
        out, back = vmapper.vjp(vmapper.batched(cell, backend=backend), *args)
        got.append(back(cots))
    for a, b in zip(*got):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=1e-11 if dtype == np.float64 else 2e-5, atol=1e-12)


def if_converted_singular_arm(x, w):
    if x > 0:
        y = np.sqrt(x) * w  # numpy functions never raise: the branch becomes a select over all lanes
    else:
        y = np.log(-x + 1.0) - w
    return y


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_an_if_converted_arm_with_a_singular_derivative_leaks_no_nan(backend):
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    f = vmapper.batched(if_converted_singular_arm, in_axes=(0, None), backend=backend)
    gx, gw = vmapper.grad(f, (0, 1))(x, 0.9)
    np.testing.assert_allclose(gx, [-1 / 3, -2 / 3, -1.0, 0.9 * 0.5 / np.sqrt(0.5), 0.9 * 0.5 / np.sqrt(3.0)])
    np.testing.assert_allclose(gw, -3 + np.sqrt(0.5) + np.sqrt(3.0))


def _gelu(x):
    return 0.5 * x * (1.0 + math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_value_and_grad_unit_seed_gives_the_stored_partials_bitwise(dtype):
    # value_and_grad seeds a broadcast 1: the store policy hands back its partials without the
    # contraction pass; a vjp with a dense cotangent of ones runs the contraction
    x = np.random.default_rng(3).standard_normal(5000).astype(dtype) * 4
    x[:6] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40]
    f = vmapper.batched(_gelu)
    v, g = vmapper.value_and_grad(f, kernel_partials="store")(x)
    out, back = vmapper.vjp(f, x, kernel_partials="store")
    (g_dense,) = back(np.ones(len(x), dtype))
    assert g.dtype == g_dense.dtype and g.tobytes() == g_dense.tobytes()
    assert v.tobytes() == out.tobytes()


def _identity(x):
    return x


def test_gradient_that_is_the_seed_comes_back_as_a_writable_array():
    g = vmapper.grad(vmapper.batched(_identity))(np.arange(4.0))
    assert g.flags.writeable and g.strides == (8,)
    np.testing.assert_array_equal(g, np.ones(4))
