"""The binary Tree-LSTM step with its gates packed in one vector, as one matrix product makes them.

A Tree-LSTM computes all of a node's gate pre-activations with one product,
``g = U_l h_l + U_r h_r + b``, and a leaf's with ``g = W x + b_leaf``.
:func:`tree_lstm_cell_packed` takes that ``g`` as it is, gates side by side
along its last axis::

    internal node: g = [i | f_l | f_r | o | u]  (width 5H), with the children's cl, cr
    leaf:          g = [i | o | u]              (width 3H), no children (cl = cr = None)

and returns ``(h, c)`` exactly as :func:`.activations.tree_lstm_cell` does on
the slices (``tree_lstm_cell(g[:H], g[H:2H], ..., cl, cr)``, a leaf with zero
forget gates and children's states): bitwise the same values.

Called in per-sample code it is one primitive, one kernel over all lanes that
reads the gates in place, and one tape entry whose backward writes the packed
gradient of ``g`` directly: no five slices, five copies, five tape entries and
the concatenation of their gradients that the unpacked call costs per node.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from vmapper.primitives.registry import register
from vmapper.runtime.values import Lanes

from . import activations as A
from .activation_primitives import _FAST_MAX, _FLOATS, _inputs, _to_arg, on_lanes, refuse_in_per_sample_code
from .activations import _BLOCK
from .activation_scalars import tree_lstm_cell_scalar, tree_lstm_cell_vjp_scalar
from .vector_width import wide_vectors

__all__ = ["tree_lstm_cell_packed", "tree_lstm_cell_packed_vjp"]


def _gate_width(g, leaf):
    width = np.shape(g)[-1] if np.ndim(g) else 0
    k = 3 if leaf else 5
    if width == 0 or width % k:
        layout = "[i | o | u] (width 3H) for a leaf" if leaf else "[i | f_l | f_r | o | u] (width 5H)"
        raise ValueError(f"tree_lstm_cell_packed: gates of width {width} along the last axis; "
                         f"expected {layout}")
    return width // k


def _check_shapes(g, H, **others):
    """Each of ``others`` (children's states, output gradients) must broadcast with one gate."""
    gate = np.shape(g)[:-1] + (H,)
    for name, v in others.items():
        if v is None:
            continue
        try:
            np.broadcast_shapes(gate, np.shape(v))
        except ValueError:
            raise ValueError(f"tree_lstm_cell_packed: {name} of shape {np.shape(v)} does not broadcast with "
                             f"one gate {gate} of g (shape {np.shape(g)}, gates of width {H})") from None


def _is_leaf(cl, cr):
    if (cl is None) != (cr is None):
        raise TypeError("tree_lstm_cell_packed: pass both children's cell states (cl, cr), or neither for a leaf")
    return cl is None


def tree_lstm_cell_packed(g, cl=None, cr=None, exact_math=False):
    """``(h, c)`` of the binary Tree-LSTM step from packed gates ``g`` (see the module docstring)."""
    leaf = _is_leaf(cl, cr)
    H = _gate_width(g, leaf)
    _check_shapes(g, H, cl=cl, cr=cr)
    gates = [g[..., k * H:(k + 1) * H] for k in range(3 if leaf else 5)]
    if leaf:
        i, o, u = gates
        return A.tree_lstm_cell(i, 0.0, 0.0, o, u, 0.0, 0.0, exact_math=exact_math)
    return A.tree_lstm_cell(*gates, cl, cr, exact_math=exact_math)


def tree_lstm_cell_packed_vjp(g, cl, cr, gh, gc, exact_math=False):
    """Gradients ``(dg, dcl, dcr)`` of :func:`tree_lstm_cell_packed` (``(dg,)`` for a leaf,
    ``cl = cr = None``) given ``gh``, ``gc``; ``dg`` is packed like ``g``."""
    leaf = _is_leaf(cl, cr)
    H = _gate_width(g, leaf)
    _check_shapes(g, H, cl=cl, cr=cr, gh=gh, gc=gc)
    xp = np if not A._is_cupy(g) else __import__("cupy")
    gates = [g[..., k * H:(k + 1) * H] for k in range(3 if leaf else 5)]
    if leaf:
        i, o, u = gates
        di, _, _, do, du, _, _ = A.tree_lstm_cell_vjp(i, 0.0, 0.0, o, u, 0.0, 0.0, gh, gc, exact_math=exact_math)
        return (xp.concatenate([di, do, du], axis=-1),)
    di, dfl, dfr, do, du, dcl, dcr = A.tree_lstm_cell_vjp(*gates, cl, cr, gh, gc, exact_math=exact_math)
    return xp.concatenate([di, dfl, dfr, do, du], axis=-1), dcl, dcr


# ---- on lanes: the gates read where the matrix product left them ----------------------------------

def _at(x, r, k):
    return x[r, k]


@overload(_at, jit_options=dict(forceinline=True))
def _ov_at(x, r, k):
    if isinstance(x, types.Array):
        return lambda x, r, k: x[r, k]
    return lambda x, r, k: x


def _put(out, r, k, v):
    out[r, k] = v


@overload(_put, jit_options=dict(forceinline=True))
def _ov_put(out, r, k, v):
    if isinstance(out, types.Array):
        def impl(out, r, k, v):
            out[r, k] = v
        return impl
    return lambda out, r, k, v: None


_KJ = dict(error_model="numpy", cache=True)
_PJ = dict(error_model="numpy", cache=True, parallel=True)


@njit(**_KJ)
def _internal_rows(g, cl, cr, h, c, lo, hi):
    wide_vectors()
    H = h.shape[1]
    for r in range(lo, hi):
        for k in range(H):
            h[r, k], c[r, k] = tree_lstm_cell_scalar(g[r, k], g[r, H + k], g[r, 2 * H + k], g[r, 3 * H + k],
                                                     g[r, 4 * H + k], _at(cl, r, k), _at(cr, r, k), False)


@njit(**_KJ)
def _leaf_rows(g, zero, h, c, lo, hi):
    wide_vectors()
    H = h.shape[1]
    for r in range(lo, hi):
        for k in range(H):
            h[r, k], c[r, k] = tree_lstm_cell_scalar(g[r, k], zero, zero, g[r, H + k], g[r, 2 * H + k],
                                                     zero, zero, False)


# The gate gradients go to separate contiguous arrays, concatenated afterwards: stores at five
# offsets of one array keep LLVM from vectorizing the loop (it cannot rule out their overlap),
# which costs 8x the concatenation.

@njit(**_KJ)
def _internal_vjp_rows(g, cl, cr, gh, gc, di, dfl, dfr, do, du, dcl, dcr, lo, hi):
    wide_vectors()
    H = di.shape[1]
    for r in range(lo, hi):
        for k in range(H):
            a, b, c, d, e, f, w = tree_lstm_cell_vjp_scalar(
                g[r, k], g[r, H + k], g[r, 2 * H + k], g[r, 3 * H + k], g[r, 4 * H + k],
                _at(cl, r, k), _at(cr, r, k), _at(gh, r, k), _at(gc, r, k), False)
            di[r, k] = a
            dfl[r, k] = b
            dfr[r, k] = c
            do[r, k] = d
            du[r, k] = e
            _put(dcl, r, k, f)
            _put(dcr, r, k, w)


@njit(**_KJ)
def _leaf_vjp_rows(g, zero, gh, gc, di, do, du, lo, hi):
    wide_vectors()
    H = di.shape[1]
    for r in range(lo, hi):
        for k in range(H):
            a, _, _, d, e, _, _ = tree_lstm_cell_vjp_scalar(g[r, k], zero, zero, g[r, H + k], g[r, 2 * H + k],
                                                           zero, zero, _at(gh, r, k), _at(gc, r, k), False)
            di[r, k] = a
            do[r, k] = d
            du[r, k] = e


# Above _FAST_MAX cells, row blocks of about _BLOCK cells run on numba's threads.

@njit(**_PJ)
def _internal_par(g, cl, cr, h, c, rows):
    n = h.shape[0]
    for b in prange((n + rows - 1) // rows):
        _internal_rows(g, cl, cr, h, c, b * rows, min(n, (b + 1) * rows))


@njit(**_PJ)
def _leaf_par(g, zero, h, c, rows):
    n = h.shape[0]
    for b in prange((n + rows - 1) // rows):
        _leaf_rows(g, zero, h, c, b * rows, min(n, (b + 1) * rows))


@njit(**_PJ)
def _internal_vjp_par(g, cl, cr, gh, gc, di, dfl, dfr, do, du, dcl, dcr, rows):
    n = di.shape[0]
    for b in prange((n + rows - 1) // rows):
        _internal_vjp_rows(g, cl, cr, gh, gc, di, dfl, dfr, do, du, dcl, dcr, b * rows, min(n, (b + 1) * rows))


@njit(**_PJ)
def _leaf_vjp_par(g, zero, gh, gc, di, do, du, rows):
    n = di.shape[0]
    for b in prange((n + rows - 1) // rows):
        _leaf_vjp_rows(g, zero, gh, gc, di, do, du, b * rows, min(n, (b + 1) * rows))


def _launch(serial, parallel, args, n, H):
    """One kernel over rows ``0:n`` of width ``H``: on the calling thread when small."""
    if n * H < _FAST_MAX:
        serial(*args, 0, n)
    else:
        parallel(*args, max(1, _BLOCK // H))


def _fast_operands(args):
    """``(g, cl, cr, H, dtype)`` for the lane kernels: ``g`` a float per-lane matrix of the
    packed width, each child state a per-lane ``(n, H)`` array of its dtype or a Python
    scalar (cast to it); None when some operand needs the generic path."""
    g = args[0]
    if type(g) is not Lanes or g.weak or g.data.ndim != 2 or g.data.dtype.type not in _FLOATS:
        return None
    d, dt = g.data, g.data.dtype
    leaf = len(args) == 1
    k = 3 if leaf else 5
    if d.shape[1] == 0 or d.shape[1] % k:
        return None  # (the generic path raises the error)
    H = d.shape[1] // k
    states = []
    for x in args[1:]:
        if type(x) is Lanes:
            s = x.data
            if x.weak or s.shape != (d.shape[0], H) or s.dtype != dt:
                return None
            states.append(np.ascontiguousarray(s))
        elif type(x) in (float, int, bool):
            states.append(dt.type(x))
        else:
            return None
    return (np.ascontiguousarray(d), *states, H, dt)


def _core(args):
    """The operands without explicit ``None`` children's states (a leaf: ``g`` alone)."""
    return args[:1] if len(args) == 3 and args[1] is None and args[2] is None else args


def _impl(ctx, args, attrs):
    if attrs.get("kw") or len(args) not in (1, 3):
        raise ctx.unsupported("tree_lstm_cell_packed() with these arguments (pass g, or g, cl, cr, positionally)")
    if len(args) == 3:
        _is_leaf(args[1], args[2])  # (both children's states, or neither)
    args = _core(args)
    prep = _fast_operands(args)
    if prep is not None:
        g, *states, H, dt = prep
        h, c = np.empty((g.shape[0], H), dt), np.empty((g.shape[0], H), dt)
        if states:
            _launch(_internal_rows, _internal_par, (g, states[0], states[1], h, c), g.shape[0], H)
        else:
            _launch(_leaf_rows, _leaf_par, (g, dt.type(0), h, c), g.shape[0], H)
        return Lanes(h, False), Lanes(c, False)
    if not any(isinstance(x, Lanes) for x in args):
        return ctx.uniform(tree_lstm_cell_packed, *args)
    h, c = on_lanes(tree_lstm_cell_packed, list(args), ctx.n)
    return Lanes(np.asarray(h), False), Lanes(np.asarray(c), False)


def _vjp(g, out, args, attrs, n, parents=None):
    pad = [None] * (len(args) - len(_core(args)))
    args = _core(args)
    gh, gc = g
    if parents is not None:
        grads = _fast_vjp(gh, gc, args, parents[:len(args)])
        if grads is not None:
            return grads + pad
    raw = _inputs(list(args), n)
    o = out[0].data if isinstance(out[0], Lanes) else np.asarray(out[0])
    gh, gc = (np.zeros((), o.dtype) if gk is None else gk for gk in (gh, gc))
    if len(raw) == 1:
        return [_to_arg(tree_lstm_cell_packed_vjp(raw[0], None, None, gh, gc)[0], args[0], raw[0])] + pad
    grads = tree_lstm_cell_packed_vjp(*raw, gh, gc)
    return [_to_arg(gk, a, r) for gk, a, r in zip(grads, args, raw)]


def _fast_vjp(gh, gc, args, parents):
    """The needed input gradients from one lane-kernel pass; None: the generic rule runs
    (a traced Python scalar's gradient is a sum over the lanes)."""
    prep = _fast_operands(args)
    if prep is None:
        return None
    g, *states, H, dt = prep
    shape = (g.shape[0], H)
    cot = []
    for gk in (gh, gc):
        if gk is None:
            cot.append(dt.type(0))
        elif type(gk) is np.ndarray and gk.shape == shape and gk.dtype == dt:
            cot.append(np.ascontiguousarray(gk))
        else:
            return None
    if any(p is not None and type(x) is not Lanes for x, p in zip(args, parents)):
        return None
    if not states:
        if parents[0] is None:
            return [None]
        parts = [np.empty(shape, dt) for _ in range(3)]
        _launch(_leaf_vjp_rows, _leaf_vjp_par, (g, dt.type(0), cot[0], cot[1], *parts), g.shape[0], H)
        return [np.concatenate(parts, axis=1)]
    parts = [np.empty(shape, dt) for _ in range(5)]  # (the kernel writes every gate's gradient)
    dcl, dcr = (np.empty(shape, dt) if p is not None else dt.type(0) for p in parents[1:])
    _launch(_internal_vjp_rows, _internal_vjp_par, (g, states[0], states[1], cot[0], cot[1], *parts, dcl, dcr),
            g.shape[0], H)
    return [np.concatenate(parts, axis=1) if parents[0] is not None else None,
            dcl if parents[1] is not None else None, dcr if parents[2] is not None else None]


def _register():
    from vmapper.autodiff.tape import wants_parents
    wants_parents(_vjp)
    register("kernels.tree_lstm_cell_packed", _impl, callables=(tree_lstm_cell_packed,), vjp=_vjp,
             doc="vmapper.kernels.packed_cells.tree_lstm_cell_packed, on all lanes in one kernel launch")
    refuse_in_per_sample_code(tree_lstm_cell_packed_vjp)


_register()
