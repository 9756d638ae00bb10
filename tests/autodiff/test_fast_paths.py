"""The backward sweep's fast paths give what the general rules give.

Lazily placed gradients (gate slices, the halves of a merged call) laid side by
side, row-sparse sums kept as parts, the compiled row accumulation, the cells'
flat kernels (scalar operands, gradients only where a parent needs one), the
rules of linear elementwise ops, per-lane index gathers and reductions: each
compared with the general computation, bitwise, and the whole through
``check_grads``.
"""
import numpy as np
import pytest

import vmapper
from vmapper.autodiff import rules as R
from vmapper.autodiff import tape as TP
from vmapper.autodiff.sparse import OuterSum, Placed, RowSparse, add_rows, densify_all
from vmapper.kernels import activations as A
from vmapper.kernels.activations import tree_lstm_cell
from vmapper.primitives import PRIMITIVES
from vmapper.runtime.values import Lanes, aligned
from vmapper.testing import check_grads

RNG = np.random.default_rng(11)
ALL = slice(None)


def _dense(shape, parts):
    """What a placed gradient stands for: zeros, each part added at its key."""
    out = np.zeros(shape, dtype=np.result_type(*[v for _, v in parts]))
    for key, values in parts:
        out[key] += values
    return out


def _placed(shape, parts):
    p = Placed(shape, *parts[0])
    for q in parts[1:]:
        p = p.merged(Placed(shape, *q))
    return p


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1)])
def test_column_blocks_that_tile_are_laid_side_by_side(order):
    n, H = 5, 3
    blocks = [((ALL, slice(k * H, (k + 1) * H)), RNG.normal(size=(n, H))) for k in range(3)]
    parts = [blocks[k] for k in order]
    got = _placed((n, 3 * H), parts).to_dense()
    assert np.array_equal(got, _dense((n, 3 * H), parts))


def test_row_blocks_that_tile_are_laid_end_to_end():
    parts = [((slice(4, 7),), RNG.normal(size=(3, 2))), ((slice(0, 4),), RNG.normal(size=(4, 2)))]
    assert np.array_equal(_placed((7, 2), parts).to_dense(), _dense((7, 2), parts))


@pytest.mark.parametrize("parts", [
    # overlapping blocks, a gap, a repeated block, mixed dtypes, a broadcast value
    [((ALL, slice(0, 3)), np.ones((2, 3))), ((ALL, slice(2, 4)), np.full((2, 2), 2.0))],
    [((ALL, slice(0, 1)), np.ones((2, 1))), ((ALL, slice(2, 4)), np.ones((2, 2)))],
    [((ALL, slice(0, 4)), np.ones((2, 4))), ((ALL, slice(0, 4)), np.ones((2, 4)))],
    [((ALL, slice(0, 2)), np.ones((2, 2), np.float32)), ((ALL, slice(2, 4)), np.ones((2, 2)))],
    [((ALL, slice(0, 2)), np.float64(3.0)), ((ALL, slice(2, 4)), np.ones((2, 2)))],
])
def test_parts_that_do_not_tile_are_summed(parts):
    got = _placed((2, 4), parts).to_dense()
    want = _dense((2, 4), parts)
    assert got.dtype == want.dtype and np.array_equal(got, want)


def test_placed_gradients_accumulate_lazily_and_into_buffers():
    grads = TP._Grads({})
    a = Placed((3, 4), (ALL, slice(0, 2)), np.ones((3, 2)))
    b = Placed((3, 4), (ALL, slice(2, 4)), np.full((3, 2), 2.0))
    TP.accumulate(grads, 7, a)
    TP.accumulate(grads, 7, b)
    assert isinstance(grads[7], Placed) and len(grads[7].parts) == 2
    TP.accumulate(grads, 7, np.ones((3, 4)))  # dense + placed: one owned buffer
    want = np.ones((3, 4)) + np.concatenate([np.ones((3, 2)), np.full((3, 2), 2.0)], axis=1)
    assert np.array_equal(grads[7], want) and 7 in grads.owned
    TP.accumulate(grads, 7, a)
    assert np.array_equal(grads[7], want + _dense((3, 4), a.parts))


def test_masked_placed_parts_keep_active_lanes_only():
    mask = np.array([True, False, True])
    bad = np.ones((3, 2))
    bad[1] = np.nan  # on the inactive lane only
    p = _placed((3, 4), [((ALL, slice(0, 2)), np.ones((3, 2))), ((ALL, slice(2, 4)), bad)])
    arg = Lanes(np.zeros((3, 4)))
    out = TP._select_lanes(p, arg, mask)
    assert np.array_equal(out.to_dense(), np.where(mask[:, None], p.to_dense(), 0.0))
    assert not TP._finite(p) and TP._finite(out)
    moved = p.on_lanes(np.array([0, 2, 4]), 5).to_dense()
    assert moved.shape == (5, 4) and np.array_equal(moved[[0, 2, 4]], p.to_dense(), equal_nan=True)


def test_row_sparse_sums_keep_parts_until_read():
    a = RowSparse([3, 1], RNG.normal(size=(2, 4)), (6, 4))
    b = RowSparse([1, 5, 3], RNG.normal(size=(3, 4)), (6, 4))
    s = a + b + a
    assert s.dtype == np.float64
    assert np.array_equal(s.indices, [3, 1, 1, 5, 3, 3, 1])
    assert np.array_equal(s.values, np.concatenate([a.values, b.values, a.values]))
    want = np.zeros((6, 4))
    np.add.at(want, s.indices, s.values)
    assert np.array_equal(s.to_dense(), want)
    c = s.coalesce()
    assert np.array_equal(c.indices, [1, 3, 5]) and np.array_equal(c.to_dense(), want)
    table = RNG.normal(size=(6, 4))
    expect = table.copy()
    np.add.at(expect, s.indices, -0.5 * s.values)
    assert np.array_equal(s.apply_to(table.copy(), -0.5), expect)


def test_outer_sums_over_the_same_output_gradients_are_one_product(monkeypatch):
    # W @ hl + V @ hr over three levels: both matrices' gradients sum g.T @ h over the same g's
    from vmapper.autodiff import sparse
    joint, products = [], sparse._joint_products
    monkeypatch.setattr(sparse, "_joint_products", lambda sums: joint.append(len(sums)) or products(sums))
    gs = [RNG.normal(size=(n, 5)) for n in (7, 3, 1)]
    hl, hr = [RNG.normal(size=(len(g), 4)) for g in gs], [RNG.normal(size=(len(g), 2)) for g in gs]
    w = OuterSum(gs[:1], hl[:1], (5, 4)) + OuterSum(gs[1:], hl[1:], (5, 4))
    v = OuterSum(list(gs), hr, (5, 2))
    other = OuterSum([g.copy() for g in gs], hl, (5, 4))  # equal values, other arrays: its own product
    single = OuterSum(gs[:1], hr[:1], (5, 2))
    out = densify_all({"w": w, "v": v, "other": other, "single": single, "plain": gs[0]})
    want_w = sum(g.T @ h for g, h in zip(gs, hl))
    np.testing.assert_allclose(out["w"], want_w, rtol=1e-13)
    np.testing.assert_allclose(out["v"], sum(g.T @ h for g, h in zip(gs, hr)), rtol=1e-13)
    np.testing.assert_allclose(out["other"], want_w, rtol=1e-13)
    np.testing.assert_array_equal(out["single"], single.to_dense())
    assert out["plain"] is gs[0]
    assert joint == [2]  # w and v together; other and single alone
    assert out["w"].flags.c_contiguous and out["v"].flags.c_contiguous
    f32 = OuterSum(list(gs), [h.astype(np.float32) for h in hr], (5, 2))  # (other dtypes: one by one)
    mixed = densify_all({"w": w, "v": f32})
    np.testing.assert_array_equal(mixed["v"], f32.to_dense())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_row_accumulation_is_add_at(dtype):
    rows = RNG.integers(0, 7, size=200)
    values = RNG.normal(size=(200, 3, 2)).astype(dtype)
    values[::5] = -0.0
    out = np.zeros((7, 3, 2), dtype)
    want = out.copy()
    add_rows(out, rows, values)
    np.add.at(want, rows, values)
    assert np.array_equal(out, want) and np.array_equal(np.signbit(out), np.signbit(want))


@pytest.mark.parametrize("case", ["negative rows", "view", "mixed dtypes", "1-d", "empty"])
def test_row_accumulation_falls_back_to_add_at(case):
    out = np.arange(12.0).reshape(6, 2)
    rows, values = np.array([0, 5, 0]), np.ones((3, 2))
    if case == "negative rows":
        rows = np.array([-1, 2, -1])
    elif case == "view":
        out = np.arange(24.0).reshape(6, 4)[:, ::2]
    elif case == "mixed dtypes":
        values = values.astype(np.float32)
    elif case == "1-d":
        out, values = np.arange(6.0), np.ones(3)
    else:
        rows, values = np.zeros(0, np.int64), np.ones((0, 2))
    want = out.copy()
    np.add.at(want, rows, values)
    add_rows(out, rows, values)
    assert np.array_equal(out, want)


# ---- the cells' flat kernels ---------------------------------------------------------------------

def _cell_args(n, H, dtype, leaf):
    g = RNG.normal(size=(n, 5 * H)).astype(dtype)
    gates = [Lanes(g[:, k * H:(k + 1) * H]) for k in range(5)]
    cl, cr = (Lanes(RNG.normal(size=(n, H)).astype(dtype)) for _ in range(2))
    if leaf:
        return [gates[0], 0.0, 0, gates[3], gates[4], 0.0, True]
    return gates + [cl, cr]


class _Ctx:
    def __init__(self, n):
        self.n, self.mask = n, None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("leaf", [False, True])
def test_tree_cell_flat_kernels_equal_the_activation_kernels(dtype, leaf):
    n, H = 7, 5
    args = _cell_args(n, H, dtype, leaf)
    prim = PRIMITIVES["kernels.tree_lstm_cell"]
    h, c = prim.impl(_Ctx(n), args, {})
    raw = [a.data if isinstance(a, Lanes) else a for a in args]
    h0, c0 = A.tree_lstm_cell(*raw)
    assert h.data.dtype == h0.dtype == dtype
    assert np.array_equal(h.data, h0) and np.array_equal(c.data, c0)
    gh, gc = (RNG.normal(size=(n, H)).astype(dtype) for _ in range(2))
    for g in ((gh, gc), (gh, None), (None, gc)):
        parents = [1 if isinstance(a, Lanes) else None for a in args]
        parents[1] = None  # a gradient nobody needs is not computed
        fast = prim.vjp(g, (h, c), args, {}, n, parents)
        slow = prim.vjp(g, (h, c), args, {}, n)  # the generic rule
        for k, (f, s) in enumerate(zip(fast, slow)):
            if parents[k] is None:
                assert f is None
            else:
                assert f.dtype == s.dtype and np.array_equal(f, s)


def test_lstm_cell_flat_kernels_equal_the_activation_kernels():
    n, H = 6, 4
    args = [Lanes(RNG.normal(size=(n, H))) for _ in range(4)] + [0.5]
    prim = PRIMITIVES["kernels.lstm_cell"]
    h, c = prim.impl(_Ctx(n), args, {})
    h0, c0 = A.lstm_cell(*[a.data if isinstance(a, Lanes) else a for a in args])
    assert np.array_equal(h.data, h0) and np.array_equal(c.data, c0)
    g = (RNG.normal(size=(n, H)), RNG.normal(size=(n, H)))
    fast = prim.vjp(g, (h, c), args, {}, n, [1, 2, 3, 4, None])
    slow = prim.vjp(g, (h, c), args, {}, n)
    assert fast[4] is None and all(np.array_equal(f, s) for f, s in zip(fast[:4], slow[:4]))


def test_cells_take_the_generic_path_where_the_flat_kernels_do_not_apply():
    n, H = 5, 3
    prim = PRIMITIVES["kernels.tree_lstm_cell"]
    x = Lanes(RNG.normal(size=(n, H)))
    shared = RNG.normal(size=H)  # a shared vector broadcast over the lanes
    args = [x, x, x, x, shared, x, np.float64(0.5)]
    h, c = prim.impl(_Ctx(n), args, {})
    h0, c0 = A.tree_lstm_cell(*[a.data if isinstance(a, Lanes) else a for a in args])
    assert np.array_equal(h.data, h0) and np.array_equal(c.data, c0)
    g = (np.ones((n, H)), np.ones((n, H)))
    grads = prim.vjp(g, (h, c), args, {}, n, [1, 1, 1, 1, 2, 1, 3])  # needs the shared one's sum
    assert grads[4].shape == (H,) and np.ndim(grads[6]) == 0


def tree_cells(x, cl, W, b):
    H = cl.shape[0]
    g = W @ x + b
    if x[0] > 0.3:
        h, c = tree_lstm_cell(g[0:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:4 * H], g[4 * H:5 * H], cl, cl * cl)
    else:
        h, c = tree_lstm_cell(g[0:H], 0.0, 0.0, g[H:2 * H], g[2 * H:3 * H], 0.0, 0.0)
    return np.sum(h * c) + np.max(h) - np.log(np.sum(np.exp(c - np.max(c))))


def test_cells_and_node_losses_match_finite_differences():
    n, H = 11, 3
    f = vmapper.batched(tree_cells, in_axes=(0, 0, None, None))
    args = (RNG.normal(size=(n, 4)), RNG.normal(size=(n, H)), RNG.normal(size=(5 * H, 4)),
            RNG.normal(size=5 * H))
    check_grads(f, args, argnums=(0, 1, 2, 3), rtol=1e-6)


# ---- linear elementwise rules, gathers, reductions -----------------------------------------------

@pytest.mark.parametrize("shapes", [
    [(6, 4), (6, 4)], [(6, 4), (4,)], [(6,), (6, 4)], [(6, 3, 4), (6, 4)], [(6, 4), ()],
    [(6, 1), (6, 4)], [(6, 4), (1, 4)], [(6, 4), "float"], [(6, 4), "int lanes"],
])
@pytest.mark.parametrize("name", ["add", "sub"])
def test_linear_rules_equal_the_general_rule(name, shapes):
    def make(s):
        if s == "float":
            return 2.5
        if s == "int lanes":
            return Lanes(np.arange(6))
        if len(s) and s[0] == 6:
            return Lanes(RNG.normal(size=s))
        return RNG.normal(size=s)
    args = [make(s) for s in shapes]
    g = RNG.normal(size=np.add(*aligned(args, 6)).shape)
    vjp = PRIMITIVES[name].vjp
    general = R.elementwise_general(*([R._ones] if name == "add" else [R._ones]) +
                                    ([R._ones] if name == "add" else [R._minus_one]))
    fast = vjp(g, None, args, {}, 6)
    slow = general(g, None, args, {}, 6)
    for f, s in zip(fast, slow):
        assert (f is None) == (s is None)
        if f is not None:
            assert np.shape(f) == np.shape(s) and np.array_equal(f, s)


def test_per_lane_index_gradients():
    x = Lanes(RNG.normal(size=(5, 4)))
    idx = Lanes(np.array([0, -1, 3, 2, -4]))
    g = RNG.normal(size=5)
    (gx, gi) = PRIMITIVES["getitem"].vjp(g, None, [x, idx], {}, 5)
    want = np.zeros((5, 4))
    want[np.arange(5), idx.data % 4] = g
    assert gi is None and np.array_equal(gx, want)
    table = RNG.normal(size=(9, 3))
    rows = Lanes(np.array([4, 0, 4, 8, 1]))
    gt = PRIMITIVES["getitem"].vjp(RNG.normal(size=(5, 3)), None, [table, rows], {}, 5)[0]
    assert isinstance(gt, RowSparse) and np.array_equal(gt.indices, rows.data)
    neg = Lanes(np.array([-1, 0, 2, 3, 4]))  # negative rows: normalized by the general path
    gt = PRIMITIVES["getitem"].vjp(np.ones((5, 3)), None, [table, neg], {}, 5)[0]
    assert np.array_equal(gt.indices, [8, 0, 2, 3, 4])


@pytest.mark.parametrize("name", ["np.sum", "np.max", "np.min", "np.mean", "np.argmax", "np.prod"])
def test_reductions_over_per_lane_vectors(name):
    x = Lanes(RNG.normal(size=(6, 5)))
    x.data[2, 1] = x.data[2, 3] = 9.0  # a tie: the first maximum gets the gradient
    fn = getattr(np, name[3:])
    out = PRIMITIVES[name].impl(_Ctx(6), [x], {})
    assert np.array_equal(out.data, fn(x.data, axis=1 if name == "np.argmax" else (1,)))
    if name == "np.argmax":
        return
    g = RNG.normal(size=6)
    (gx,) = PRIMITIVES[name].vjp(g, out, [x], {}, 6)
    general = PRIMITIVES[name].vjp(g, out, [x, None], {"kw": ("axis",)}, 6)[0]
    assert np.array_equal(gx, general)
    if name == "np.max":
        assert gx[2, 1] == g[2] and gx[2, 3] == 0.0
        x.data[4, 2] = np.nan  # a NaN maximum: no element equals it, none gets a gradient
        out = PRIMITIVES[name].impl(_Ctx(6), [x], {})
        (gx,) = PRIMITIVES[name].vjp(g, out, [x], {}, 6)
        assert np.array_equal(gx, PRIMITIVES[name].vjp(g, out, [x, None], {"kw": ("axis",)}, 6)[0])
        assert not gx[4].any()


def merged_halves(x, W):
    """Two recursive calls merged into one: each result's gradient comes back in halves."""
    return np.sum(_rec(x, W, 2) * x)


def _rec(x, W, d):
    if d == 0:
        return np.tanh(W @ x)
    return _rec(x, W, d - 1) + np.sin(_rec(0.5 * x, W, d - 1))


def test_merged_calls_gradients():
    f = vmapper.batched(merged_halves, in_axes=(0, None))
    args = (RNG.normal(size=(7, 3)), RNG.normal(size=(3, 3)))
    check_grads(f, args, argnums=(0, 1), rtol=1e-6)


def test_parent_aware_rules_get_the_entry_parents():
    seen = []

    def rule(g, out, args, attrs, n, parents):
        seen.append(parents)
        return [g, None]

    TP.wants_parents(rule)
    e = TP.Entry(rule, [Lanes(np.ones(3)), Lanes(np.ones(3))], Lanes(np.ones(3)), {}, [4, None], None, 3, "t")
    grads = TP._Grads({9: np.ones(3)})
    TP._step(grads, 9, e)
    assert seen == [[4, None]] and np.array_equal(grads[4], np.ones(3))
    e.mask = np.array([True, False, True])  # the masked path passes them too
    grads = TP._Grads({9: np.ones(3)})
    TP._step(grads, 9, e)
    assert seen[-1] == [4, None] and np.array_equal(grads[4], [1.0, 0.0, 1.0])


def scalar_cells(x, y):
    h, c = tree_lstm_cell(x, y, 0.5, x * y, y, x, 0.0)
    h2, c2 = tree_lstm_cell(h, c, c, h, 1.5 * x, c, h)
    return h2 * c2 + c


def test_cells_of_per_lane_scalars():
    f = vmapper.batched(scalar_cells)
    args = (RNG.normal(size=9), RNG.normal(size=9))
    out = f(*args)
    with vmapper.api.per_sample_mode():
        want = np.array([scalar_cells(a, b) for a, b in zip(*args)])
    assert np.array_equal(out, want)
    check_grads(f, args, argnums=(0, 1), rtol=1e-6)
