"""The executor's fast paths give what its general paths give, bitwise.

Blocks run as generated functions (``block_compiler.GENERATE``) and tuple
unpackings run as one row each (``block_compiler.MERGE_UNPACKS``); a traced
value written back into a frame that lacks the variable is scattered into no
copied blank (``structural.scatter_fresh``).  Each is compared with the path it
replaces: results, gradients, launch counts and errors.
"""
import numpy as np
import pytest

import vmapper
from vmapper.autodiff import structural
from vmapper.errors import BatchingError
from vmapper.runtime import block_compiler
from vmapper.runtime.frame import blank_like
from vmapper.testing import check_batching, check_grads


def _node(node, w):
    if node.is_leaf:
        h = np.tanh(w * node.value)
        return h, h * h, 1
    hl, sl, nl = _node(node.left, w)
    hr, sr, nr = _node(node.right, w)
    h = np.tanh(w * (hl + hr))
    return h, sl + sr + h * h, nl + nr + 1


def tree_energy(root, w):
    h, s, n = _node(root, w)
    a, (b, c) = (s, (h, n))  # nested unpacking of a tuple built here
    return a + b * c


def unpack_array(x):
    a, b, c = x  # a per-sample array: the unpack row falls back to the instructions
    return a * b - c


def unpack_wrong(x):
    t = (x, 2.0 * x, 3.0 * x)
    a, b = t  # too many values: the unpack row falls back, check_len raises
    return a + b


def alias_then_update(x):
    t = (x, 2.0 * x)
    a, b = t
    a[0] = 5.0  # a is the caller's array: refused, as without the fast path
    return b[0]


def random_tree(rng, depth):
    if depth == 0 or rng.random() < 0.3:
        return float(rng.normal())
    return (random_tree(rng, depth - 1), random_tree(rng, depth - 1))


@pytest.fixture
def paths(monkeypatch):
    """A function setting (generate, merge_unpacks) for the calls that follow."""
    def use(generate, merge):
        monkeypatch.setattr(block_compiler, "GENERATE", generate)
        monkeypatch.setattr(block_compiler, "MERGE_UNPACKS", merge)
    return use


def _same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
        return
    if isinstance(a, (tuple, list)):
        for x, y in zip(a, b):
            _same(x, y)
        return
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), strict=True)


MODES = [(True, True), (True, False), (False, True), (False, False)]


def test_generated_blocks_and_unpack_rows_equal_the_generic_loop(paths):
    rng = np.random.default_rng(4)
    forest = vmapper.Forest.from_nested([random_tree(rng, 6) for _ in range(40)])
    f = vmapper.batched(tree_energy, in_axes=(0, None))
    results, stats = [], []
    for mode in MODES:
        paths(*mode)
        vg = vmapper.value_and_grad(f, argnums=1)
        results.append((f(forest.roots, 0.7), vg(forest.roots, 0.7)))
        stats.append(f.last_stats["launches"])
    for r in results[1:]:
        _same(r, results[0])
    assert len(set(stats)) == 1  # an unpack row counts the instructions it stands for
    check_batching(f, (forest.roots, 0.7), in_axes=(0, None))


@pytest.mark.parametrize("mode", MODES)
def test_unpacking_an_array_falls_back_to_the_instructions(paths, mode):
    paths(*mode)
    x = np.random.default_rng(0).normal(size=(9, 3))
    check_batching(unpack_array, (x,))
    check_grads(vmapper.batched(unpack_array), (x,))


@pytest.mark.parametrize("mode", MODES)
def test_unpacking_errors_name_the_same_line(paths, mode):
    paths(*mode)
    with pytest.raises(BatchingError) as exc:
        vmapper.batched(unpack_wrong)(np.array([1.0, -1.0, 2.0]))
    assert "unpack" in str(exc.value) and "a, b = t" in str(exc.value)
    with pytest.raises(BatchingError, match="in-place update"):
        vmapper.batched(alias_then_update)(np.ones((4, 3)))


def _scatter_general(src, idx, n):
    return structural.scatter_into(blank_like(src, n), src, idx, n)


def branchy(x, w):
    if x[0] > 0:
        y = np.tanh(w * x) * 2.0
        z = np.sum(y * x)
    else:
        y = w * x + 1.0
        z = np.sum(y)
    return z + np.sum(y * y)


def looped(x, w):
    acc = 0.0
    k = 0
    while k < 6:
        if x[k % 3] > 0.1 * k:
            t = np.tanh(w * x + k) * x
            u = np.sum(t * t)
        else:
            t = w * x - k
            u = np.sum(t)
        acc = acc + u * np.sum(t)
        k += 1
    return acc


@pytest.mark.parametrize("fn", [branchy, looped])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fresh_scatter_of_a_write_back_equals_the_general_scatter(monkeypatch, fn, dtype):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(70, 3)).astype(dtype)
    w = rng.normal(size=3).astype(dtype)
    f = vmapper.batched(fn, in_axes=(0, None))
    got = [vmapper.value_and_grad(f, argnums=(0, 1), checkpoint_loops=k)(x, w) for k in (None, 2)]
    monkeypatch.setattr(structural, "scatter_fresh", _scatter_general)
    want = [vmapper.value_and_grad(f, argnums=(0, 1), checkpoint_loops=k)(x, w) for k in (None, 2)]
    _same(got, want)
    _same(got[0], got[1])
    if dtype == np.float64:
        check_grads(f, (x, w), argnums=(0, 1))


def test_value_and_grad_restores_the_collector(paths):
    import gc
    x = np.random.default_rng(1).normal(size=(6, 3))
    assert gc.isenabled()
    vmapper.value_and_grad(vmapper.batched(unpack_array))(x)
    assert gc.isenabled()
    with pytest.raises(BatchingError):
        vmapper.value_and_grad(vmapper.batched(unpack_wrong))(np.ones(3))
    assert gc.isenabled()
    gc.disable()
    try:
        vmapper.value_and_grad(vmapper.batched(unpack_array))(x)
        assert not gc.isenabled()  # a caller's paused collector stays paused
    finally:
        gc.enable()
