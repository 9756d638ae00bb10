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

from vmapper.primitives.registry import register
from vmapper.primitives.scalar_ops import prepare
from vmapper.runtime.values import Lanes, aligned

from . import activations as A

_KW = {"gelu": ("approximate",)}


def _options(ctx, name, args, attrs, n_in):
    """Split positional inputs from keyword options (only ``gelu``'s ``approximate``)."""
    kw = attrs.get("kw") or ()
    if len(args) - len(kw) != n_in or any(k not in _KW.get(name, ()) for k in kw):
        raise ctx.unsupported(f"{name}() with these arguments (pass the {n_in} inputs positionally)")
    opts = dict(zip(kw, args[n_in:]))
    if any(isinstance(v, Lanes) for v in opts.values()):
        raise ctx.unsupported(f"{name}() with an option that differs per sample")
    return list(args[:n_in]), opts


def _inputs(args, n):
    """Operands as the kernel sees them: weak per-lane scalars cast as NEP 50 says, lane axis first."""
    return aligned(prepare(args, False), n)


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


def _register(name, fwd, vjp, n_in, n_out):
    def impl(ctx, args, attrs):
        xs, opts = _options(ctx, name, args, attrs, n_in)
        varying = any(isinstance(x, Lanes) for x in xs)
        if not varying:
            return ctx.uniform(lambda *a: fwd(*a, **opts), *xs)
        return _lanes_out(fwd(*_inputs(xs, ctx.n), **opts), True)

    def rule(g, out, args, attrs, n):
        xs, opts = _options(None, name, args, attrs, n_in) if attrs.get("kw") else (list(args), {})
        raw = _inputs(xs, n)
        if n_out > 1:  # a gradient per result; None where a result got none
            o = out[0].data if isinstance(out[0], Lanes) else np.asarray(out[0])
            g = [np.zeros((), o.dtype) if gk is None else gk for gk in g]
            grads = vjp(*raw, *g, **opts)
        else:
            grads = (vjp(*raw, g, **opts),)
        return [_to_arg(gk, a, r) for gk, a, r in zip(grads, xs, raw)] + [None] * (len(args) - n_in)

    register(f"kernels.{name}", impl, callables=(fwd,), vjp=rule,
             doc=f"vmapper.kernels.activations.{name}, on all lanes in one kernel launch")


for _name in ("sigmoid", "tanh", "relu", "silu", "softplus", "gelu"):
    _register(_name, getattr(A, _name), getattr(A, _name + "_vjp"), 1, 1)
_register("lstm_cell", A.lstm_cell, A.lstm_cell_vjp, 5, 2)
_register("tree_lstm_cell", A.tree_lstm_cell, A.tree_lstm_cell_vjp, 7, 2)
