"""``passes/fuse_linear.py`` and the ``linear`` primitive: a sum of matrix products becomes one
operation with the chain's values and gradients, bitwise; what it may not reorder stays."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import vmapper
from vmapper.frontend import build_function
from vmapper.passes.fuse_linear import fuse_linear
from vmapper.program import get_program
from vmapper.testing import check_batching


def ops_of(fn):
    return [ins.op for blk in get_program(fn).blocks.values() for ins in blk.instrs]


def two_products(x, y, p):
    return p["W"] @ x + p["V"] @ y + p["b"]


def two_products_unfused(x, y, p):
    a = p["W"] @ x  # named: not a temporary, so not fused
    c = p["V"] @ y
    s = a + c
    return s + p["b"]


def right_sum(x, y, p):
    return p["W"] @ x + (p["V"] @ y + p["b"])


def bias_first(x, y, p):
    return p["b"] + p["W"] @ x


def across_lines(x, y, p):
    return (p["W"] @ x
            + p["b"])


def product_used_twice(x, y, p):
    t = p["W"] @ x
    return t + t


def walrus(x, y, p):
    return p["W"] @ x + (x := x * 2.0)[:p["W"].shape[0]] + x[0]


def test_a_chain_of_products_and_a_bias_becomes_one_linear():
    assert ops_of(two_products).count("linear") == 1
    assert "matmul" not in ops_of(two_products) and "add" not in ops_of(two_products)
    ins = next(i for b in get_program(two_products).blocks.values() for i in b.instrs if i.op == "linear")
    assert ins.attrs["terms"] == ("mm", "mm", "value")


def test_what_fusion_may_not_reorder_stays_apart():
    # a right operand that is itself a sum keeps its association: two linears, not one
    assert ops_of(right_sum).count("linear") == 2
    assert ops_of(bias_first).count("linear") == 1  # one sum commutes exactly
    assert "linear" not in ops_of(across_lines)
    assert "linear" not in ops_of(product_used_twice)
    # the walrus assigns x between the product and the sum: the product may not move past it
    fused = fuse_linear(build_function(walrus))
    assert not any(i.op == "linear" for b in fused.blocks.values() for i in b.instrs)


def _args(rng, n, dtype, hidden=3, width=4):
    x = rng.normal(size=(n, hidden)).astype(dtype)
    y = rng.normal(size=(n, hidden + 1)).astype(dtype)
    p = {"W": rng.normal(size=(width, hidden)).astype(dtype), "V": rng.normal(size=(width, hidden + 1)).astype(dtype),
         "b": rng.normal(size=width).astype(dtype)}
    return x, y, p


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 40), dtype=st.sampled_from([np.float32, np.float64]))
def test_fused_values_and_gradients_equal_the_chain_bitwise(seed, n, dtype):
    x, y, p = _args(np.random.default_rng(seed), n, dtype)
    fused = vmapper.batched(two_products, in_axes=(0, 0, None))
    chain = vmapper.batched(two_products_unfused, in_axes=(0, 0, None))
    # (a batch's GEMM rounds its own way: the per-sample loop is compared within rounding)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    got = check_batching(fused, (x, y, p), exact=False, rtol=tol, atol=tol)
    assert np.array_equal(got, chain(x, y, p))
    cot = np.random.default_rng(seed + 1).normal(size=got.shape).astype(dtype)
    out_f, vjp_f = vmapper.vjp(fused, x, y, p)
    out_c, vjp_c = vmapper.vjp(chain, x, y, p)
    assert np.array_equal(out_f, out_c)
    for a, b in zip(vjp_f(cot), vjp_c(cot)):
        for k in (a if isinstance(a, dict) else {0: a}):
            ga, gb = (a[k], b[k]) if isinstance(a, dict) else (a, b)
            assert np.array_equal(np.asarray(ga), np.asarray(gb)), k


def masked_products(x, y, p):
    if x[0] > 0:
        z = p["W"] @ x + p["V"] @ y + p["b"]
    else:
        z = p["b"] * 2.0
    return np.sum(np.tanh(z))


def masked_products_unfused(x, y, p):
    if x[0] > 0:
        a = p["W"] @ x
        c = p["V"] @ y
        s = a + c
        z = s + p["b"]
    else:
        z = p["b"] * 2.0
    return np.sum(np.tanh(z))


@pytest.mark.parametrize("n", [3, 50])  # a masked block, and one compacted to its lanes
def test_fused_gradients_under_a_mask_equal_the_chain(n):
    x, y, p = _args(np.random.default_rng(n), n, np.float64)
    _, g_f = vmapper.value_and_grad(vmapper.batched(masked_products, in_axes=(0, 0, None)), argnums=(0, 1, 2))(x, y, p)
    _, g_c = vmapper.value_and_grad(vmapper.batched(masked_products_unfused, in_axes=(0, 0, None)),
                                    argnums=(0, 1, 2))(x, y, p)
    assert np.array_equal(g_f[0], g_c[0]) and np.array_equal(g_f[1], g_c[1])
    for k in p:
        assert np.array_equal(np.asarray(g_f[2][k]), np.asarray(g_c[2][k])), k


def mixed(x, y, q):
    return q["A"] @ x + q["c"]


@pytest.mark.parametrize("case", ["int matrix", "float32 matrix, float64 vector", "python scalar",
                                  "per-lane matrix", "per-lane term"])
def test_other_operands_run_as_the_chain(case):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3))
    y = rng.normal(size=(6, 4))
    q = {"A": rng.normal(size=(4, 3)), "c": rng.normal(size=4)}
    in_axes = (0, 0, None)
    if case == "int matrix":
        q["A"] = rng.integers(-3, 4, size=(4, 3))
    elif case == "float32 matrix, float64 vector":
        q["A"] = q["A"].astype(np.float32)
    elif case == "python scalar":
        q["c"] = 1.5
    elif case == "per-lane matrix":
        q = {"A": rng.normal(size=(6, 4, 3)), "c": q["c"]}
        in_axes = (0, 0, {"A": 0, "c": None})
    else:
        q = {"A": q["A"], "c": rng.normal(size=(6, 4))}
        in_axes = (0, 0, {"A": None, "c": 0})
    assert "linear" in ops_of(mixed)
    check_batching(vmapper.batched(mixed, in_axes=in_axes), (x, y, q), exact=False, rtol=1e-12)


def test_a_shape_error_in_a_fused_product_names_its_line():
    from source_lines import line_of

    def bad(x, p):
        return p["W"] @ x + p["b"]  # marker-bad-product
    x = np.ones((4, 3))
    with pytest.raises(vmapper.LaneError) as info:
        vmapper.batched(bad, in_axes=(0, None))(x, {"W": np.ones((2, 5)), "b": np.ones(2)})
    assert info.value.line == line_of(bad, "marker-bad-product")
