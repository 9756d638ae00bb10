"""``passes/gathered_rows.py`` and the ``linear`` primitive's ``mm_rows`` terms: a product of
rows gathered from a shared table is computed once per distinct row, with the values and
gradients of one product per lane."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import vmapper
import vmapper.primitives.linear as linear
from vmapper.program import get_program
from vmapper.testing import check_batching


def terms_of(fn):
    return [ins.attrs["terms"] for blk in get_program(fn).blocks.values() for ins in blk.instrs
            if ins.op == "linear"]


def project(i, p):
    x = p["emb"][i]
    return np.sum(np.tanh(p["W"] @ x + p["b"]))


def project_inline(i, p):
    return np.sum(np.tanh(p["W"] @ p["emb"][i] + p["b"]))


def index_changed_between(i, p):
    x = p["emb"][i]
    i = i + 1
    return np.sum(p["W"] @ x + p["b"]) + i


def row_used_between(i, p):
    x = p["emb"][i]
    s = np.sum(x)
    return np.sum(p["W"] @ x + p["b"]) + s


def row_reassigned(i, p):
    x = p["emb"][i]
    x = x * 2.0
    return np.sum(p["W"] @ x + p["b"])


def row_used_after(i, p):
    x = p["emb"][i]
    y = p["W"] @ x + p["b"]
    return np.sum(np.tanh(y)) + np.sum(x * x)


def two_gathers(i, j, p):
    return np.sum(np.tanh(p["W"] @ p["emb"][i] + p["W"] @ p["emb"][j] + p["b"]))


def in_a_branch(i, p):
    if i % 3 == 0:
        return np.sum(np.tanh(p["W"] @ p["emb"][i] + p["b"]))
    return 0.0


def test_a_product_of_a_gathered_row_learns_the_table_and_the_index():
    assert terms_of(project) == [("mm_rows", "value")]
    assert terms_of(project_inline) == [("mm_rows", "value")]
    assert terms_of(two_gathers) == [("mm_rows", "mm_rows", "value")]
    assert terms_of(row_used_after) == [("mm_rows", "value")]


@pytest.mark.parametrize("fn", [index_changed_between, row_used_between, row_reassigned])
def test_a_row_that_may_have_changed_keeps_a_plain_product(fn):
    assert terms_of(fn) == [("mm", "value")]


def _params(rng, dtype, rows=7, width=5, out=4):
    return {"emb": rng.normal(size=(rows, width)).astype(dtype), "W": rng.normal(size=(out, width)).astype(dtype),
            "b": rng.normal(size=out).astype(dtype)}


def _without_sharing(monkeypatch):
    monkeypatch.setattr(linear, "_DEDUP_MAX_DISTINCT", 0.0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(64, 300), rows=st.integers(1, 40),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_shared_rows_give_the_per_sample_values(seed, n, rows, dtype):
    rng = np.random.default_rng(seed)
    p = _params(rng, dtype, rows=rows)
    i = rng.integers(0, rows, size=n)
    f = vmapper.batched(project, in_axes=(0, None))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    check_batching(f, (i, p), exact=False, rtol=tol, atol=tol)
    distinct = len(np.unique(i))
    shared = f.last_stats["shared_row_products"]
    assert shared == (n - distinct if distinct <= 0.8 * n else 0)


@pytest.mark.parametrize("fn", [project, row_used_after])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shared_rows_give_the_gradients_of_one_product_per_lane(fn, dtype, monkeypatch):
    rng = np.random.default_rng(3)
    p = _params(rng, dtype)
    i = rng.integers(0, 7, size=200)
    vg = vmapper.value_and_grad(vmapper.batched(fn, in_axes=(0, None)), argnums=1)
    loss, grads = vg(i, p)
    # the reference, by hand: loss_l = sum(tanh(W emb[i_l] + b)) (+ sum(emb[i_l]**2))
    z = p["emb"][i] @ p["W"].T + p["b"]
    dz = 1.0 - np.tanh(z) ** 2
    ref = {"emb": np.zeros_like(p["emb"]), "W": dz.T @ p["emb"][i], "b": dz.sum(0)}
    np.add.at(ref["emb"], i, dz @ p["W"] + (2 * p["emb"][i] if fn is row_used_after else 0))
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for k in p:
        got = grads[k].to_dense() if hasattr(grads[k], "to_dense") else np.asarray(grads[k])
        np.testing.assert_allclose(got, ref[k], rtol=tol, atol=tol, err_msg=k)
    if fn is project:  # the table's gradient: one row per distinct index, not one per lane
        assert sorted(grads["emb"].indices) == sorted(set(i))
    _without_sharing(monkeypatch)
    loss_plain, _ = vg(i, p)
    assert np.array_equal(np.asarray(loss), np.asarray(loss_plain))


def test_two_gathered_products_are_not_shared_and_a_branch_keeps_its_values():
    rng = np.random.default_rng(5)
    p = _params(rng, np.float64)
    i, j = rng.integers(0, 3, size=(2, 100))
    f = vmapper.batched(two_gathers, in_axes=(0, 0, None))
    check_batching(f, (i, j, p), exact=False, rtol=1e-12, atol=1e-12)
    assert f.last_stats["shared_row_products"] == 0
    g = vmapper.batched(in_a_branch, in_axes=(0, None))
    check_batching(g, (i, p), exact=False, rtol=1e-12, atol=1e-12)
    _, grads = vmapper.value_and_grad(g, argnums=1)(i, p)
    taken = i[i % 3 == 0]
    dz = 1.0 - np.tanh(p["emb"][taken] @ p["W"].T + p["b"]) ** 2
    ref = np.zeros_like(p["emb"])
    np.add.at(ref, taken, dz @ p["W"])
    np.testing.assert_allclose(grads["emb"].to_dense(), ref, rtol=1e-12, atol=1e-12)


def project_in_a_loop(ids, p):
    s = 0.0
    for t in range(3):
        x = p["emb"][ids[t]]
        s = s + np.sum(np.tanh(p["W"] @ x + p["b"]))
    return s


def test_shared_rows_in_a_checkpointed_loop_give_the_same_gradients_bitwise():
    rng = np.random.default_rng(0)
    p = _params(rng, np.float64, rows=5)
    ids = rng.integers(0, 5, size=(100, 3))
    f = vmapper.batched(project_in_a_loop, in_axes=(0, None))
    v0, g0 = vmapper.value_and_grad(f, argnums=1)(ids, p)
    assert f.last_stats["shared_row_products"] > 0
    v1, g1 = vmapper.value_and_grad(f, argnums=1, checkpoint_loops=1)(ids, p)
    assert np.array_equal(v0, v1)
    for k in p:
        a, b = (g[k].to_dense() if hasattr(g[k], "to_dense") else g[k] for g in (g0, g1))
        assert np.array_equal(a, b), k
