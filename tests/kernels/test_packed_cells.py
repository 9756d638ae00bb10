"""The Tree-LSTM cell on packed gates: the same values as the cell on the slices, per sample
and batched, its gradient the slices' gradients side by side, and clear errors."""
import numpy as np
import pytest

import vmapper
from vmapper.errors import BatchingError
from vmapper.kernels import packed_cells as PC
from vmapper.kernels.activations import tree_lstm_cell, tree_lstm_cell_vjp
from vmapper.kernels.packed_cells import tree_lstm_cell_packed, tree_lstm_cell_packed_vjp
from vmapper.primitives.registry import PRIMITIVES
from vmapper.runtime.values import Lanes
from vmapper.testing import check_batching, check_grads

RNG = np.random.default_rng(11)
H = 4


def _split(g, k):
    return [g[..., j * H:(j + 1) * H] for j in range(k)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lead", [(), (6,)])
def test_packed_cell_equals_the_cell_on_the_slices(dtype, lead):
    g = RNG.normal(0, 3, size=lead + (5 * H,)).astype(dtype)
    cl, cr, gh, gc = (RNG.normal(size=lead + (H,)).astype(dtype) for _ in range(4))
    for got, want in zip(tree_lstm_cell_packed(g, cl, cr), tree_lstm_cell(*_split(g, 5), cl, cr)):
        assert got.dtype == dtype and np.array_equal(got, want)
    dg, dcl, dcr = tree_lstm_cell_packed_vjp(g, cl, cr, gh, gc)
    want = tree_lstm_cell_vjp(*_split(g, 5), cl, cr, gh, gc)
    assert np.array_equal(dg, np.concatenate(want[:5], axis=-1))
    assert np.array_equal(dcl, want[5]) and np.array_equal(dcr, want[6])
    leaf = g[..., :3 * H]
    i, o, u = _split(leaf, 3)
    for got, want in zip(tree_lstm_cell_packed(leaf), tree_lstm_cell(i, 0.0, 0.0, o, u, 0.0, 0.0)):
        assert got.dtype == dtype and np.array_equal(got, want)
    (dleaf,) = tree_lstm_cell_packed_vjp(leaf, None, None, gh, gc)
    want = tree_lstm_cell_vjp(i, 0.0, 0.0, o, u, 0.0, 0.0, gh, gc)
    assert np.array_equal(dleaf, np.concatenate([want[0], want[3], want[4]], axis=-1))


def packed_branches(x, cl, W, b):
    """Internal and leaf cells under a mask, one child's state a Python float."""
    g = W @ x + b
    if x[0] > 0:
        h, c = tree_lstm_cell_packed(g, cl, 0.5 * cl)
        return np.sum(h * h) + np.sum(c)
    h, c = tree_lstm_cell_packed(g[0:3 * H])
    h2, c2 = tree_lstm_cell_packed(g, c, 0.25)
    return np.sum(h) - np.sum(c * h2) + np.sum(c2)


def _args(n=9, dtype=np.float64):
    return tuple(a.astype(dtype) for a in (RNG.normal(size=(n, 3)), RNG.normal(size=(n, H)),
                                           RNG.normal(size=(5 * H, 3)), RNG.normal(size=5 * H)))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_packed_cells_batch_like_the_per_sample_calls(backend):
    f = vmapper.batched(packed_branches, in_axes=(0, 0, None, None), backend=backend)
    # the matrix product rounds differently batched (GEMM) than per sample; the cells do not
    check_batching(f, _args(), in_axes=(0, 0, None, None), exact=False, rtol=1e-13, atol=1e-14)


def test_packed_cell_gradients_match_finite_differences():
    f = vmapper.batched(packed_branches, in_axes=(0, 0, None, None))
    check_grads(f, _args(), argnums=(0, 1, 2, 3), rtol=1e-6)


@pytest.mark.parametrize("other", ["generic path", "parallel drivers"])
def test_lane_kernels_equal_the_generic_path_and_the_parallel_drivers(monkeypatch, other):
    f = vmapper.batched(packed_branches, in_axes=(0, 0, None, None))
    vg = vmapper.value_and_grad(f, argnums=(0, 1, 2, 3))
    args = _args(n=13, dtype=np.float32)
    fast = vg(*args)
    if other == "generic path":
        monkeypatch.setattr(PC, "_fast_operands", lambda args: None)
    else:
        monkeypatch.setattr(PC, "_FAST_MAX", 0)  # every call runs on numba's threads
        monkeypatch.setattr(PC, "_BLOCK", 2 * H)  # row blocks of 2: several tasks
    slow = vg(*args)
    assert np.array_equal(fast[0], slow[0]) and fast[0].dtype == np.float32
    for a, b in zip(fast[1], slow[1]):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_fast_gradient_skips_what_no_parent_needs():
    n = 5
    prim = PRIMITIVES["kernels.tree_lstm_cell_packed"]
    g, cl = Lanes(RNG.normal(size=(n, 5 * H))), Lanes(RNG.normal(size=(n, H)))
    out = prim.impl(None, [g, cl, 0.0], {})
    cot = (np.ones((n, H)), None)  # c got no gradient
    grads = prim.vjp(cot, out, [g, cl, 0.0], {}, n, [1, None, None])
    want = tree_lstm_cell_packed_vjp(g.data, cl.data, 0.0, cot[0], 0.0)
    assert grads[1] is None and grads[2] is None and np.array_equal(grads[0], want[0])


def bad_width(x, W):
    g = W @ x
    h, c = tree_lstm_cell_packed(g, x[:2], x[:2])
    return np.sum(h)


def one_child(x, W):
    h, c = tree_lstm_cell_packed(W @ x, x, None)
    return np.sum(h)


def test_a_width_that_is_not_five_gates_names_the_layout_and_the_line():
    f = vmapper.batched(bad_width, in_axes=(0, None))
    with pytest.raises(BatchingError, match=r"width 7 .*\[i \| f_l \| f_r \| o \| u\]") as info:
        f(RNG.normal(size=(4, 3)), RNG.normal(size=(7, 3)))
    assert "test_packed_cells.py" in str(info.value)
    with pytest.raises(ValueError, match="width 7"):
        tree_lstm_cell_packed(np.zeros(7))


def test_one_child_state_without_the_other_is_an_error():
    f = vmapper.batched(one_child, in_axes=(0, None))
    with pytest.raises(BatchingError, match="both children's cell states"):
        f(RNG.normal(size=(4, 2)), RNG.normal(size=(10, 2)))


def test_states_and_gradients_that_do_not_fit_a_gate_are_named():
    g = np.zeros((2, 15))
    with pytest.raises(ValueError, match=r"cl of shape \(2, 4\) does not broadcast with one gate \(2, 3\) of g"):
        tree_lstm_cell_packed(g, np.zeros((2, 4)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"gh of shape \(5,\) does not broadcast"):
        tree_lstm_cell_packed_vjp(g, np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(5), 0.0)


def state_of_another_width(g, cl):
    return tree_lstm_cell_packed(g, cl, cl)


def test_a_state_that_does_not_fit_is_named_with_its_per_sample_shape_in_batched_code():
    # the message of the per-sample call, not the lane-stacked shapes
    f = vmapper.batched(state_of_another_width)
    with pytest.raises(vmapper.LaneError, match=r"cl of shape \(3,\) does not broadcast with one gate \(2,\) "
                                                r"of g \(shape \(10,\)"):
        f(np.ones((3, 10)), np.ones((3, 3)))
