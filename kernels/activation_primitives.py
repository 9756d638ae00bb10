"""The activation kernels as primitives of vmapper's per-sample language.

Importing :mod:`vmapper.kernels.activations` registers its public functions
(``sigmoid tanh relu silu softplus gelu lstm_cell tree_lstm_cell``), so that
per-sample code may call them on per-sample vectors: the batched run applies
the same fused kernel to all lanes at once (one launch instead of one per
numpy operation), and differentiation uses the kernel's own VJP (one tape
entry, one fused backward pass).  Results equal the per-sample calls
bitwise: the kernels are elementwise, so batching changes nothing per element.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

from vmapper.primitives.registry import register
from vmapper.primitives.scalar_ops import prepare
from vmapper.runtime.values import Lanes, aligned

from . import activations as A
from .activation_scalars import (lstm_cell_scalar, lstm_cell_vjp_scalar, tree_lstm_cell_scalar,
                                 tree_lstm_cell_vjp_scalar)
from .vector_width import wide_vectors

#: The options after the inputs, in the public functions' order (positional or keyword).
_OPTIONS = {"gelu": ("approximate", "exact_math")}


def _options(ctx, name, args, attrs, n_in):
    """Split the positional inputs from the options (``exact_math``; ``gelu``'s ``approximate``
    first), which may be passed by position or by keyword, as the public functions take them."""
    kw = attrs.get("kw") or ()
    names = _OPTIONS.get(name, ("exact_math",))
    npos = len(args) - len(kw)
    extra = npos - n_in
    if extra < 0 or extra > len(names) or any(k not in names or k in names[:extra] for k in kw) \
            or len(set(kw)) != len(kw):
        raise ctx.unsupported(f"{name}() with these arguments (its {n_in} inputs positionally, then "
                              f"{', '.join(names)} by position or keyword)")
    opts = dict(zip(names, args[n_in:npos]))
    opts.update(zip(kw, args[npos:]))
    if any(isinstance(v, Lanes) for v in opts.values()):
        raise ctx.unsupported(f"{name}() with an option that differs per sample")
    return list(args[:n_in]), opts


def _inputs(args, n):
    """Operands as the kernel sees them: weak per-lane scalars cast as NEP 50 says, lane axis first."""
    return aligned(prepare(args, False), n)


def on_lanes(fn, xs, n, **opts):
    """``fn`` over every lane's operands ``xs`` at once.  A ``ValueError`` (operands whose
    shapes do not fit) is raised as the per-sample call raises it, with lane 0's shapes,
    not the batched ones with the lanes' axis."""
    try:
        return fn(*_inputs(xs, n), **opts)
    except ValueError:
        if n == 0:
            raise
        try:
            fn(*_inputs([x.data[0] if isinstance(x, Lanes) else x for x in xs], 1), **opts)
        except ValueError as per_sample:
            raise per_sample from None
        raise


def _lanes_out(res, varying):
    if not varying:
        return res
    if type(res) is tuple:
        return tuple(Lanes(np.asarray(r), False) for r in res)
    return Lanes(np.asarray(res), False)


def _to_arg(g, arg, raw):
    """``g`` (shaped like the kernel operand ``raw``) as the gradient of ``arg``."""
    if g is None or (arg.data.dtype if isinstance(arg, Lanes) else np.asarray(arg).dtype).kind not in "fc":
        return None
    if isinstance(arg, Lanes):
        return np.asarray(g).reshape(arg.data.shape)
    return np.asarray(g).reshape(np.shape(arg))


# ---- the cells on lanes: one serial kernel pass, operands as the lanes hold them ------------------
#
# A cell's gate inputs are usually slices of one matrix product (``g[:, 0:H]``...), and a
# leaf passes constants (``0.0``) for its children's states.  The kernels below read each
# operand as a flat array or as a scalar (no broadcast copies of constants), write only the
# gradients a parent needs (``None`` for the others), and skip the generic wrappers'
# per-call preparation.  Each element is the same scalar function as in
# :mod:`.activations`, so results are bitwise those kernels'.

def _at(x, j):
    return x[j]


@overload(_at, jit_options=dict(forceinline=True))
def _ov_at(x, j):
    if isinstance(x, types.Array):
        return lambda x, j: x[j]
    return lambda x, j: x


def _put(out, j, v):
    out[j] = v


@overload(_put, jit_options=dict(forceinline=True))
def _ov_put(out, j, v):
    if isinstance(out, types.Array):
        def impl(out, j, v):
            out[j] = v
        return impl
    return lambda out, j, v: None


_KJ = dict(error_model="numpy", cache=True)


@njit(**_KJ)
def _tree_fwd_flat(i, fl, fr, o, u, cl, cr, h, c, m):
    wide_vectors()
    for j in range(m):
        h[j], c[j] = tree_lstm_cell_scalar(_at(i, j), _at(fl, j), _at(fr, j), _at(o, j), _at(u, j),
                                           _at(cl, j), _at(cr, j), False)


@njit(**_KJ)
def _tree_vjp_flat(i, fl, fr, o, u, cl, cr, gh, gc, di, dfl, dfr, do, du, dcl, dcr, m):
    wide_vectors()
    for j in range(m):
        a, b, c, d, e, f, g = tree_lstm_cell_vjp_scalar(_at(i, j), _at(fl, j), _at(fr, j), _at(o, j),
                                                        _at(u, j), _at(cl, j), _at(cr, j), _at(gh, j),
                                                        _at(gc, j), False)
        _put(di, j, a)
        _put(dfl, j, b)
        _put(dfr, j, c)
        _put(do, j, d)
        _put(du, j, e)
        _put(dcl, j, f)
        _put(dcr, j, g)


@njit(**_KJ)
def _lstm_fwd_flat(i, f, o, u, cp, h, c, m):
    wide_vectors()
    for j in range(m):
        h[j], c[j] = lstm_cell_scalar(_at(i, j), _at(f, j), _at(o, j), _at(u, j), _at(cp, j), False)


@njit(**_KJ)
def _lstm_vjp_flat(i, f, o, u, cp, gh, gc, di, df, do, du, dcp, m):
    wide_vectors()
    for j in range(m):
        a, b, c, d, e = lstm_cell_vjp_scalar(_at(i, j), _at(f, j), _at(o, j), _at(u, j), _at(cp, j),
                                             _at(gh, j), _at(gc, j), False)
        _put(di, j, a)
        _put(df, j, b)
        _put(do, j, c)
        _put(du, j, d)
        _put(dcp, j, e)


#: Elements from which the generic path runs (its parallel driver splits the work).
_FAST_MAX = getattr(A, "_SERIAL_BELOW", 1 << 15)
_WEAK = (float, int, bool)


def _flat_operands(xs):
    """``(operands, shape, dtype)`` for the flat kernels: every per-lane operand as a flat
    contiguous array, every Python scalar as a scalar of the cells' dtype; None when some
    operand needs the generic path (per-lane arrays of different shapes or dtypes, weak
    per-lane values, shared arrays, numpy scalars, which take part in the dtype)."""
    shape = dt = None
    scalars = False
    for x in xs:  # (one pass of checks: runs twice per cell, forward and backward)
        if type(x) is Lanes:
            d = x.data
            if x.weak or type(d) is not np.ndarray:
                return None
            if shape is None:
                shape, dt = d.shape, d.dtype
            elif d.shape != shape or d.dtype != dt:
                return None
        elif type(x) in _WEAK:
            scalars = True
        else:
            return None
    if shape is None or dt.type not in _FLOATS or _size(shape) >= _FAST_MAX:
        return None
    if scalars:
        cast = dt.type
        return [np.ascontiguousarray(x.data).reshape(-1) if type(x) is Lanes else cast(x) for x in xs], shape, dt
    return [np.ascontiguousarray(x.data).reshape(-1) for x in xs], shape, dt


_FLOATS = (np.float32, np.float64)


def _size(shape):
    size = 1
    for s in shape:
        size *= s
    return size


def _flat_grad(g, shape, dt):
    """A result's gradient as a flat operand (zero when it got none); None: generic path."""
    if g is None:
        return dt.type(0)
    if type(g) is not np.ndarray or g.shape != shape or g.dtype != dt:
        return None
    return np.ascontiguousarray(g).reshape(-1)


_FAST = {
    "tree_lstm_cell": (_tree_fwd_flat, _tree_vjp_flat),
    "lstm_cell": (_lstm_fwd_flat, _lstm_vjp_flat),
}


def _register(name, fwd, vjp, n_in, n_out):
    fast = _FAST.get(name)

    def impl(ctx, args, attrs):
        if fast is not None and not attrs.get("kw") and len(args) == n_in:
            prep = _flat_operands(args)
            if prep is not None:
                ops, shape, dt = prep
                h, c = np.empty(shape, dt), np.empty(shape, dt)
                fast[0](*ops, h.reshape(-1), c.reshape(-1), h.size)
                return Lanes(h, False), Lanes(c, False)
        xs, opts = _options(ctx, name, args, attrs, n_in)
        varying = any(isinstance(x, Lanes) for x in xs)
        if not varying:
            return ctx.uniform(lambda *a: fwd(*a, **opts), *xs)
        return _lanes_out(on_lanes(fwd, xs, ctx.n, **opts), True)

    def rule(g, out, args, attrs, n, parents=None):
        if fast is not None and parents is not None and not attrs.get("kw") and len(args) == n_in:
            grads = _fast_vjp(fast[1], g, args, parents)
            if grads is not None:
                return grads
        xs, opts = _options(None, name, args, attrs, n_in) if attrs.get("kw") or len(args) > n_in \
            else (list(args), {})
        raw = _inputs(xs, n)
        if n_out > 1:  # a gradient per result; None where a result got none
            o = out[0].data if isinstance(out[0], Lanes) else np.asarray(out[0])
            g = [np.zeros((), o.dtype) if gk is None else gk for gk in g]
            grads = vjp(*raw, *g, **opts)
        else:
            grads = (vjp(*raw, g, **opts),)
        return [_to_arg(gk, a, r) for gk, a, r in zip(grads, xs, raw)] + [None] * (len(args) - n_in)

    if fast is not None:
        from vmapper.autodiff.tape import wants_parents
        wants_parents(rule)
    register(f"kernels.{name}", impl, callables=(fwd,), vjp=rule,
             doc=f"vmapper.kernels.activations.{name}, on all lanes in one kernel launch")


def _fast_vjp(kernel, g, args, parents):
    """The input gradients from one flat kernel pass, computing only those a parent needs;
    None where the generic rule must run (a needed gradient of a scalar operand)."""
    prep = _flat_operands(args)
    if prep is None:
        return None
    ops, shape, dt = prep
    gs = [_flat_grad(gk, shape, dt) for gk in g]
    if any(gk is None for gk in gs):
        return None
    outs, res = [], []
    for x, p in zip(args, parents):
        if p is None:
            outs.append(None)
            res.append(None)
        elif type(x) is not Lanes:
            return None  # a traced Python scalar: its gradient is a sum (generic rule)
        else:
            d = np.empty(shape, dt)
            outs.append(d.reshape(-1))
            res.append(d)
    m = 1
    for s in shape:
        m *= s
    kernel(*ops, *gs, *outs, m)
    return res


def refuse_in_per_sample_code(fn):
    """A call of the array function ``fn`` (a ``*_vjp``) in per-sample code raises an error
    naming the user's line: without a primitive, vmapper would try to batch the library's
    own source, and fail on a line of it."""
    name = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"

    def impl(ctx, args, attrs):
        raise ctx.unsupported(f"vmapper.kernels.{name}() in per-sample code",
                              hint="the *_vjp functions take whole arrays; in per-sample code, get "
                                   "gradients with vmapper.value_and_grad or vmapper.vjp")
    register(f"kernels.{fn.__name__}", impl, callables=(fn,),
             doc=f"vmapper.kernels.{name}: for whole arrays only (refused in per-sample code)")


for _name in ("sigmoid", "tanh", "relu", "silu", "softplus", "gelu"):
    _register(_name, getattr(A, _name), getattr(A, _name + "_vjp"), 1, 1)
_register("lstm_cell", A.lstm_cell, A.lstm_cell_vjp, 5, 2)
_register("tree_lstm_cell", A.tree_lstm_cell, A.tree_lstm_cell_vjp, 7, 2)
for _name in ("sigmoid", "tanh", "relu", "silu", "softplus", "gelu", "lstm_cell", "tree_lstm_cell"):
    refuse_in_per_sample_code(getattr(A, _name + "_vjp"))
