"""VJP rules of ``np.einsum``, ``np.tensordot``, ``np.linalg.solve``, ``np.linalg.inv`` and
``np.linalg.det`` (:mod:`vmapper.primitives.linalg_ops`).

* ``einsum`` (and ``tensordot``, an einsum): the gradient of each operand is the einsum of
  the result's gradient with the other operands into that operand's subscripts, on the
  batched subscripts the forward call ran (the lane letter first on per-lane operands).
  A shared operand's subscripts lack the lane letter, so its gradient sums over the lanes
  by itself.  A letter of the operand found nowhere else (an axis it summed alone) is
  broadcast back, an axis numpy broadcast from size 1 is summed back, and a repeated
  letter (a diagonal, ``"ii->i"``) puts the gradient on that diagonal;
* ``solve`` (``x = A^{-1} b``): ``db = A^{-T} g`` and ``dA = -db x^T`` (summed over the
  right-hand sides and, for a shared matrix, over the lanes: one product);
* ``inv``: ``dA = -A^{-T} G A^{-T}``, from the result itself;
* ``det``: ``dA = g det(A) A^{-T}``, the transposed adjugate.  At an exactly singular
  matrix (where numpy's LU finds a zero pivot) the inverse does not exist: there the
  adjugate comes from the SVD ``A = U S V^H``, ``det(U) det(V^H) conj(U) adj(S) conj(V^H)``,
  ``adj(S)`` holding the products of the other singular values (the derivative of a
  polynomial exists everywhere).

Transposes, never conjugates: the derivative convention of the other rules (``mul``'s
gradient is ``g * b``).  A masked-off lane may hold a singular matrix: the backward solve
puts the identity there (its gradient is zero anyway), as the forward call did.  No JVP
rules: these operations never run inside a kernel.
"""
from __future__ import annotations

import numpy as np

from ..errors import BatchingError
from ..primitives.linalg_ops import (LinAlgError, batched_subscripts, bind, computed, contract, einsum_bind,
                                     lane_flags, parse_subscripts, singular, solve_layout, stacked_solve,
                                     tensordot_subscripts, with_identity)
from ..runtime.values import Lanes
from .rules import defvjp, sum_to
from .tape import wants_parents


def _raw(v):
    return v.data if isinstance(v, Lanes) else np.asarray(v)


def _is_float_arg(v):
    if isinstance(v, Lanes):
        return v.data.dtype.kind in "fc"
    if isinstance(v, (tuple, list)):
        return any(_is_float_arg(x) for x in v)
    return np.asarray(v).dtype.kind in "fc"


def _wanted(parents, k):
    return parents is None or parents[k] is not None


def to_arg(gx, v, n):
    """The gradient for operand ``v`` from ``gx``, shaped like the array it was computed as
    (:func:`~vmapper.primitives.linalg_ops.computed`): a per-lane array's, a tuple of the
    items' for a list holding per-lane values, the shared value's (summed over the lanes)."""
    if isinstance(v, Lanes):
        return np.asarray(gx).reshape(v.data.shape) if v.data.dtype.kind in "fc" else None
    if isinstance(v, (tuple, list)) and lane_flags([v])[0]:
        gx = np.asarray(gx)
        return tuple(to_arg(gx[:, j], x, n) for j, x in enumerate(v))
    if np.asarray(v).dtype.kind not in "fc":
        return None
    return np.asarray(sum_to(gx, np.shape(v)))


# ---- einsum, tensordot --------------------------------------------------------------------------

def operand_grad(k, subs, output, arrays, g):
    """The gradient of operand ``k`` of ``einsum(subs -> output, *arrays)`` for result gradient ``g``."""
    s = subs[k]
    shape = np.shape(arrays[k])
    uniq = "".join(dict.fromkeys(s))
    size = {c: shape[s.index(c)] for c in uniq}
    other_subs = [output] + [x for j, x in enumerate(subs) if j != k]
    other_arrays = [g] + [x for j, x in enumerate(arrays) if j != k]
    avail = set("".join(other_subs))
    target = "".join(c for c in uniq if c in avail)
    G = np.asarray(contract(other_subs, target, other_arrays))
    # the operand's axes in order, an axis of 1 where its letter is found nowhere else
    G = G.reshape([G.shape[target.index(c)] if c in target else 1 for c in uniq])
    for ax, c in enumerate(uniq):
        if size[c] == 1 and G.shape[ax] != 1:  # numpy broadcast this axis: sum it back
            G = G.sum(axis=ax, keepdims=True)
    want = tuple(size[c] for c in uniq)
    if G.shape != want:
        G = np.array(np.broadcast_to(G, want))
    if len(uniq) == len(s):
        return G
    Z = np.zeros(shape, dtype=G.dtype)  # a repeated letter: the gradient lies on the diagonal
    view = np.einsum(f"{s}->{uniq}", Z)
    if view.flags.writeable and np.shares_memory(view, Z):
        view[...] = G
        return Z
    grid = np.indices(want, sparse=True)
    Z[tuple(grid[uniq.index(c)] for c in s)] = G
    return Z


def _contraction_vjp(g, n, parents, operands, first, subs, output):
    """The gradients of the operands (``first``: the index of the first one among the
    primitive's arguments) of the einsum ``subs -> output``."""
    arrays = [computed(v, n) for v in operands]
    g = np.asarray(g)
    res = {}
    for k, v in enumerate(operands):
        if not _wanted(parents, first + k) or not _is_float_arg(v):
            continue
        res[first + k] = to_arg(operand_grad(k, subs, output, arrays, g), v, n)
    return res


@wants_parents
def _einsum_vjp(g, out, args, attrs, n, parents=None):
    ops, _ = einsum_bind(args, attrs.get("kw") or ())
    subscripts, operands = ops[0], ops[1:]
    lanes = lane_flags(operands)
    ndims = [computed(v, n).ndim - lane for v, lane in zip(operands, lanes)]
    parsed = parse_subscripts(subscripts, ndims)
    if parsed is None:
        raise BatchingError(f"the gradient of np.einsum() with subscripts {subscripts!r} is not supported "
                            f"(write the subscripts as a string)")
    subs, output = batched_subscripts(*parsed, lanes)
    res = _contraction_vjp(g, n, parents, operands, 1, subs, output)
    return [res.get(i) for i in range(len(args))]


defvjp("np.einsum", _einsum_vjp)


@wants_parents
def _tensordot_vjp(g, out, args, attrs, n, parents=None):
    b = bind("tensordot", args, attrs.get("kw") or ())
    operands = [b["a"], b["b"]]
    lanes = lane_flags(operands)
    nda, ndb = (computed(v, n).ndim - lane for v, lane in zip(operands, lanes))
    subs, output = batched_subscripts(*tensordot_subscripts(nda, ndb, b["axes"]), lanes)
    kw = tuple(attrs.get("kw") or ())
    names = ["a", "b", "axes"][:len(args) - len(kw)] + list(kw)
    res = _contraction_vjp(g, n, None if parents is None else [parents[names.index(x)] for x in ("a", "b")],
                           operands, 0, subs, output)
    return [res.get(("a", "b").index(x)) if x in ("a", "b") else None for x in names]


defvjp("np.tensordot", _tensordot_vjp)


# ---- solve, inv, det ------------------------------------------------------------------------------

def _swap(x):
    return np.swapaxes(x, -1, -2)


def solve_any(A, B):
    """:func:`stacked_solve`, with the identity in place of singular matrices (lanes that
    were masked off: their gradient is zero)."""
    try:
        return stacked_solve(A, B)
    except LinAlgError:
        return stacked_solve(with_identity(A, singular(A)), B)


def _fit(gx, layout_shape, v, n):
    """The gradient of operand ``v`` from ``gx`` over the solve's layout of it."""
    gx = sum_to(gx, layout_shape)
    return to_arg(gx.reshape(computed(v, n).shape) if lane_flags([v])[0] else gx, v, n)


@wants_parents
def _solve_vjp(g, out, args, attrs, n, parents=None):
    b = bind("solve", args, attrs.get("kw") or ())
    kw = tuple(attrs.get("kw") or ())
    names = ["a", "b"][:len(args) - len(kw)] + list(kw)
    a, rhs = b["a"], b["b"]
    want_a = _wanted(parents, names.index("a")) and _is_float_arg(a)
    want_b = _wanted(parents, names.index("b")) and _is_float_arg(rhs)
    A, B, vector = solve_layout(a, rhs, n)
    X, G = _raw(out), np.asarray(g)
    if vector:
        X, G = X[..., None], G[..., None]
    with np.errstate(all="ignore"):
        GB = solve_any(_swap(A), G)
        res = {}
        if want_a:
            if A.ndim == 2:  # a shared matrix: one product over every lane and right-hand side
                m = A.shape[0]
                ga = -(np.moveaxis(GB, -2, 0).reshape(m, -1) @ np.moveaxis(X, -2, 0).reshape(m, -1).T)
            else:
                ga = -(GB @ _swap(X))
            res["a"] = _fit(ga, A.shape, a, n)
        if want_b:
            gb = sum_to(GB, B.shape)
            res["b"] = _fit(gb[..., 0] if vector else gb, B.shape[:-1] if vector else B.shape, rhs, n)
    return [res.get(x) for x in names]


defvjp("np.linalg.solve", _solve_vjp)


def _inv_vjp(g, out, args, attrs, n):
    a = args[0]
    if not _is_float_arg(a):
        return [None]
    Ai = _swap(_raw(out))
    with np.errstate(all="ignore"):
        ga = -(Ai @ np.asarray(g) @ Ai)
    return [to_arg(ga, a, n)]


defvjp("np.linalg.inv", _inv_vjp)


def adjugate_t(A, det):
    """The transposed adjugate ``det(A) A^{-T}`` of a stack of matrices (the SVD's at
    exactly singular ones)."""
    try:
        return det[..., None, None] * _swap(np.linalg.inv(A))
    except LinAlgError:
        pass
    bad = singular(A)
    C = det[..., None, None] * _swap(np.linalg.inv(with_identity(A, bad)))
    U, s, Vh = np.linalg.svd(A[bad])
    ones = np.ones(s.shape[:-1] + (1,), s.dtype)
    before = np.cumprod(np.concatenate([ones, s[..., :-1]], axis=-1), axis=-1)
    after = np.flip(np.cumprod(np.flip(np.concatenate([s[..., 1:], ones], axis=-1), -1), axis=-1), -1)
    sign = np.linalg.det(U) * np.linalg.det(Vh)
    C[bad] = sign[..., None, None] * ((U.conj() * (before * after)[..., None, :]) @ Vh.conj())
    return C


def _det_vjp(g, out, args, attrs, n):
    a = args[0]
    if not _is_float_arg(a):
        return [None]
    A = computed(a, n)
    G = np.asarray(g)[..., None, None]
    with np.errstate(all="ignore"):
        C = adjugate_t(A, _raw(out))
        ga = np.where(G == 0, np.zeros((), np.result_type(G, C)), G * C)
    return [to_arg(ga, a, n)]


defvjp("np.linalg.det", _det_vjp)
