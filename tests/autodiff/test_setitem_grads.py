"""Gradients through item assignment ``a[i] = v`` (the ``setitem`` primitive).

``a`` gets the gradient with the assigned positions zeroed, ``v`` the gradient at those
positions summed over its broadcasting; the indices get none.  Each case is checked
against central finite differences (``check_grads``) and against the per-sample truth:
the gradient of the plain Python function, lane by lane, by central differences
element by element (lanes are independent, so that is the gradient of the sum)."""
import numpy as np
import pytest

import vmapper
from vmapper.testing import check_grads

N = 6
SEEDS = (0, 1, 2)
BACKENDS = ("numpy", "numba")
H = 1e-6


# ---- the per-sample functions ---------------------------------------------------------------

def const_index(v):
    w = v * 2.0
    w[0] = 5.0
    w[2] = v[1] * v[0]
    w[-1] = np.sin(v[3])
    return np.sum(w * v)


def slice_assign(v):
    w = v * 1.5
    w[1:3] = v[:2] * v[:2]
    w[::2] = np.cos(w[::2])
    return np.sum(np.sin(w) * v)


def lane_index(v, i):
    w = v * v
    w[i] = v[0] * 3.0 + v[i]
    return np.sum(w * v)


def lane_index_negative(v, i):
    w = np.exp(v)
    w[-i] = v[1] * v[2]  # i in 1..len: a negative index on every lane
    return np.sum(w * w)


def fill_buffer(x):
    out = np.zeros(x.shape[0])
    for k in range(x.shape[0]):
        out[k] = np.sin(x[k]) * x[k]
    return np.sum(out * x) + out[1] * out[2]


def newton_sqrt(a):
    y = a
    for _ in range(20):  # scalar code with a loop: a numba kernel of its own on that backend
        y = 0.5 * (y + a / y)
    return y


def fill_buffer_helper(x):
    out = np.zeros(x.shape[0])
    for k in range(x.shape[0]):
        out[k] = newton_sqrt(x[k] * x[k] + 1.0)
    return np.sum(out * x)


def fill_buffer_lane_trips(x, m):
    out = np.zeros(x.shape[0])
    for k in range(m):  # a per-lane trip count: lanes stop at different trips
        out[k] = x[k] * x[k] + out[k - 1]
    return np.sum(out * x)


def in_if(v):
    w = v * 2.0
    if v[0] * v[1] > 0.0:
        w[1] = v[0] * v[2]
    else:
        w[2:] = v[1] ** 2
    return np.sum(w * w) + w[0]


def in_while(v):
    w = v.copy()
    k = 0
    while k < 3 and w[k] < 0.5:  # lanes leave the loop at different trips
        w[k] = w[k] * 0.5 + v[3]
        k += 1
    return np.sum(w * v)


def scalar_into_slice(v):
    w = v * 1.0
    w[1:3] = v[0] * v[3]  # a per-lane scalar broadcast over the slice
    w[3:] = 2.0
    return np.sum(np.tanh(w) * v)


def shared_scalar_into_slice(v, p):
    w = v * 1.0
    w[:2] = p  # one scalar for every lane, broadcast over the slice
    w[2] = p * v[0]
    return np.sum(w * w * v)


def shared_base(v, p):
    w = p * 2.0  # a shared (uniform) array, written per lane
    w[1] = v[0] * v[1]
    return np.sum(w * v) + np.sum(p * w)


def all_shared(v, p):
    w = p * 2.0  # every operand shared: numpy's own item assignment
    w[1] = p[0] * p[2]
    w[2:] = p[0]
    return np.sum(w * v)


def shared_index_array(v, p):
    w = p * 2.0  # shared operands, numpy index arrays: a repeated index keeps the last value
    idx = np.array([0, 0, 2])
    w[idx] = p[1:4] * p[0]
    w[np.array([True, False, False, True, False])] = p[4] * p[3]
    return np.sum(w * v)


def tuple_value(a, p):
    m = a * 1.0
    m[:2, :2] = ((p, 2.0 * p), (p * p, 1.5))  # shared items (a per-lane item is refused forward)
    m[2, 1:] = (p, 3.0)
    return np.sum(m * a)


def overwrite(v):
    w = v * 2.0
    w[1] = v[0] ** 2  # overwritten below: gets no gradient
    w[1] = v[2] * 3.0
    w[2] = w[2] * v[0]  # read, then written
    w[3] += v[1] * v[2]  # augmented item assignment
    return np.sum(w * v)


def read_before_write(v):
    w = v * 2.0
    old = w[0]  # an element read before the update keeps the old value
    w[0] = v[1] * v[2]
    w[1:3] = old * v[3]
    return old * v[0] + np.sum(w * w)


def update_seen_through_an_alias(v):
    w = v * 2.0
    b = w  # Python would show the update through b
    w[0] = v[1] * v[2]
    return np.sum(b * v) + np.sum(w * w)


def matrix_tuple_index(a):
    m = a * 2.0
    m[1, 2] = a[0, 0] * a[1, 1]
    m[0, :] = a[2, :] ** 2
    m[:, 1] = a[:, 0]
    m[1:, 0] = np.sin(a[0, 2])
    m[0:2, 1:] = a[2, 1:] * a[0, 0]  # a per-sample row broadcast over two rows
    return np.sum(m * a) + np.sum(m * m)


def matrix_lane_index(a, i, j):
    m = a * 1.0
    m[i, j] = a[0, 0] * a[2, 2]
    m[j] = np.cos(a[i])  # a per-lane row
    m[:, i] = a[1, 1]  # a per-lane column, a scalar broadcast into it
    return np.sum(m * a)


# ---- inputs and the per-sample truth --------------------------------------------------------

def _vec(rng, size=5):
    return rng.normal(size=(N, size))


CASES = {
    "const_index": (const_index, lambda r: (_vec(r),), 0, None),
    "slice": (slice_assign, lambda r: (_vec(r),), 0, None),
    "lane_index": (lane_index, lambda r: (_vec(r), r.integers(0, 5, N)), 0, None),
    "lane_index_negative": (lane_index_negative, lambda r: (_vec(r), r.integers(1, 6, N)), 0, None),
    "fill_buffer": (fill_buffer, lambda r: (_vec(r),), 0, None),
    "fill_buffer_helper": (fill_buffer_helper, lambda r: (_vec(r),), 0, None),
    "fill_buffer_lane_trips": (fill_buffer_lane_trips, lambda r: (_vec(r), r.integers(0, 6, N)), 0, None),
    "in_if": (in_if, lambda r: (_vec(r),), 0, None),
    "in_while": (in_while, lambda r: (_vec(r),), 0, None),
    "scalar_into_slice": (scalar_into_slice, lambda r: (_vec(r),), 0, None),
    "shared_scalar_into_slice": (shared_scalar_into_slice, lambda r: (_vec(r), float(r.normal())), (0, 1),
                                 (0, None)),
    "shared_base": (shared_base, lambda r: (_vec(r), r.normal(size=5)), (0, 1), (0, None)),
    "all_shared": (all_shared, lambda r: (_vec(r), r.normal(size=5)), (0, 1), (0, None)),
    "shared_index_array": (shared_index_array, lambda r: (_vec(r), r.normal(size=5)), (0, 1), (0, None)),
    "tuple_value": (tuple_value, lambda r: (r.normal(size=(N, 3, 3)), float(r.normal())), (0, 1), (0, None)),
    "overwrite": (overwrite, lambda r: (_vec(r),), 0, None),
    "read_before_write": (read_before_write, lambda r: (_vec(r),), 0, None),
    "matrix_tuple_index": (matrix_tuple_index, lambda r: (r.normal(size=(N, 3, 3)),), 0, None),
    "matrix_lane_index": (matrix_lane_index,
                          lambda r: (r.normal(size=(N, 3, 3)), r.integers(0, 3, N), r.integers(-3, 3, N)), 0,
                          None),
}

#: per-sample functions written with copies where vmapper's value semantics differ from numpy's
TRUTH = {}

_BATCHED = {}


def _batched(fn, in_axes, backend):
    key = (fn, in_axes, backend)
    if key not in _BATCHED:
        _BATCHED[key] = vmapper.batched(fn, in_axes=0 if in_axes is None else in_axes, backend=backend)
    return _BATCHED[key]


def _per_sample_total(fn, args, in_axes):
    axes = (0,) * len(args) if in_axes is None else in_axes
    total = 0.0
    for lane in range(N):
        total += float(fn(*[a if ax is None else np.copy(a[lane]) for a, ax in zip(args, axes)]))
    return total


def _truth(fn, args, argnum, in_axes):
    """d(sum over lanes of fn(lane's args))/d args[argnum], element by element."""
    base = np.asarray(args[argnum], dtype=np.float64)
    grad = np.zeros(base.shape)
    for idx in np.ndindex(base.shape):
        vals = []
        for s in (H, -H):
            a = np.array(base, copy=True)
            a[idx] += s
            moved = list(args)
            moved[argnum] = a if np.ndim(args[argnum]) else float(a)
            vals.append(_per_sample_total(fn, moved, in_axes))
        grad[idx] = (vals[0] - vals[1]) / (2 * H)
    return grad


def _values(fn, args, in_axes):
    axes = (0,) * len(args) if in_axes is None else in_axes
    return np.array([fn(*[a if ax is None else np.copy(a[lane]) for a, ax in zip(args, axes)])
                     for lane in range(N)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_setitem_gradients(case, seed, backend):
    fn, make, argnums, in_axes = CASES[case]
    truth_fn = TRUTH.get(fn, fn)
    args = make(np.random.default_rng(seed))
    f = _batched(fn, in_axes, backend)
    nums = (argnums,) if isinstance(argnums, int) else argnums
    vals, grads = vmapper.value_and_grad(f, nums)(*args)
    np.testing.assert_allclose(vals, _values(truth_fn, args, in_axes), rtol=1e-12, atol=1e-12)
    for k, g in zip(nums, grads):
        np.testing.assert_allclose(g, _truth(truth_fn, args, k, in_axes), rtol=1e-6, atol=1e-7,
                                   err_msg=f"d/d args[{k}]")
    check_grads(f, args, argnums=argnums)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_update_another_name_would_see_is_refused_with_or_without_gradients(backend):
    """``b = w; w[0] = ...``: Python shows the update through ``b``; vmapper's value semantics
    would not, so the update is refused -- in a differentiated call too, where ``w`` is traced."""
    args = (np.random.default_rng(3).normal(size=(N, 5)),)
    f = _batched(update_seen_through_an_alias, None, backend)
    for call in (lambda: f(*args), lambda: vmapper.value_and_grad(f)(*args)):
        with pytest.raises(vmapper.UnsupportedSyntaxError, match="in-place update of array 'w'"):
            call()


def test_overwritten_value_gets_no_gradient():
    def f(v, p):
        w = v * 1.0
        w[1] = p * 7.0  # overwritten on every lane
        w[1] = v[0]
        return np.sum(w)

    x = np.random.default_rng(4).normal(size=(N, 3))
    _, (gv, gp) = vmapper.value_and_grad(vmapper.batched(f, in_axes=(0, None)), (0, 1))(x, 0.3)
    assert gp == 0.0
    np.testing.assert_array_equal(gv, np.tile([2.0, 0.0, 1.0], (N, 1)))


def test_masked_lanes_pass_the_gradient_through():
    """A lane that skips the assignment gives its whole gradient to the old array and none
    to the value, even where the value is NaN there."""
    def f(v):
        w = v * 3.0
        if v[0] > 0.0:
            w[1:] = np.sqrt(v[0]) * v[2]  # NaN on the lanes that skip it, if computed there
        return np.sum(w)

    x = np.random.default_rng(5).normal(size=(8, 3))
    x[:, 0] = [1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0]
    g = vmapper.grad(vmapper.batched(f))(x)
    on = x[:, 0] > 0
    assert np.isfinite(g).all()
    np.testing.assert_array_equal(g[~on], np.full((4, 3), 3.0))
    expect = np.stack([0.5 / np.sqrt(x[on, 0]) * x[on, 2] * 2 + 3.0, np.zeros(4),
                       2 * np.sqrt(x[on, 0])], axis=1)
    np.testing.assert_allclose(g[on], expect, rtol=1e-12)


def test_vjp_cotangent_per_lane():
    def f(v):
        w = np.zeros(3)
        w[0] = v[0] * v[1]
        w[2] = v[2]
        return w

    x = np.random.default_rng(6).normal(size=(N, 3))
    out, back = vmapper.vjp(vmapper.batched(f), x)
    ct = np.random.default_rng(7).normal(size=(N, 3))
    (g,) = back(ct)
    expect = np.stack([ct[:, 0] * x[:, 1], ct[:, 0] * x[:, 0], ct[:, 2]], axis=1)
    np.testing.assert_allclose(g, expect, rtol=1e-12)


def test_checkpointed_loop_matches():
    x = np.random.default_rng(8).normal(size=(N, 8))
    f = vmapper.batched(fill_buffer)
    _, g = vmapper.value_and_grad(f)(x)
    _, gc = vmapper.value_and_grad(f, checkpoint_loops=2)(x)
    np.testing.assert_array_equal(g, gc)
