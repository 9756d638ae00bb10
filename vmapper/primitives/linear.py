"""``linear``: a sum of matrix products and other terms, made by ``passes/fuse_linear.py``.

``linear(W, x, V, y, b; terms=("mm", "mm", "value"))`` is ``(W @ x + V @ y) + b``.  In the
usual case -- shared float matrices times per-lane vectors of their dtype, and terms of
that dtype that are per-lane arrays of the products' shape or shared arrays of the
per-sample shape -- the products are the ``matmul`` primitive's own GEMMs and the sums go
in place into the first product's (fresh) array: the values of the unfused chain, bitwise,
as one operation, and differentiated as one tape entry that applies the chain's own
``matmul`` and ``add`` rules.  Anything else runs as the
chain of ``matmul`` and ``add`` primitives, with their tape entries.
"""
from __future__ import annotations

import numpy as np

from ..runtime.values import Lanes, Traced
from .array_ops import matmul_lanes
from .registry import PRIMITIVES, register

MM = "mm"


def _pairs(terms, args):
    """``(kind, operands)`` per term, in order."""
    out, k = [], 0
    for kind in terms:
        n = 2 if kind == MM else 1
        out.append((kind, args[k:k + n]))
        k += n
    return out


def _raw(v):
    return v.value if type(v) is Traced else v


def _fusible(terms, args):
    """Whether the fused path applies to these raw values."""
    rows = width = dt = None
    for kind, ops in _pairs(terms, args):
        if kind == MM:
            w, x = ops
            if type(w) is not np.ndarray or type(x) is not Lanes or w.ndim != 2 or x.data.ndim != 2 \
                    or x.weak or w.dtype != x.data.dtype or w.dtype.kind != "f" or w.shape[1] != x.data.shape[1]:
                return False
            if dt is None:
                rows, width, dt = x.data.shape[0], w.shape[0], w.dtype
            elif (x.data.shape[0], w.shape[0], w.dtype) != (rows, width, dt):
                return False
        else:
            (v,) = ops
            if dt is None:  # (the pass puts a product first)
                return False
            if type(v) is Lanes:
                if v.weak or v.data.dtype != dt or v.data.shape != (rows, width):
                    return False
            elif type(v) is not np.ndarray or v.dtype != dt or v.shape != (width,):
                return False
    return True


def _fused(ctx, terms, args):
    acc = None
    for kind, ops in _pairs(terms, args):
        if kind == MM:
            part = matmul_lanes(ctx, *ops).data
            if acc is None:
                acc = part
                continue
        else:
            part = ops[0].data if type(ops[0]) is Lanes else ops[0]
        np.add(acc, part, out=acc)
    return Lanes(acc, False)


def _chain(ctx, terms, args):
    """The unfused chain of primitives (tape entries and all)."""
    acc = None
    for kind, ops in _pairs(terms, args):
        part = ctx.call_primitive("matmul", ops) if kind == MM else ops[0]
        acc = part if acc is None else ctx.call_primitive("add", (acc, part))
    return acc


@register("linear", may_fail=True)
def _linear(ctx, args, attrs):
    terms = attrs["terms"]
    raw = [_raw(a) for a in args]
    if not _fusible(terms, raw):
        return _chain(ctx, terms, args)
    out = _fused(ctx, terms, raw)
    parents = [a.node if type(a) is Traced else None for a in args]
    if all(p is None for p in parents):
        return out
    from ..autodiff.tape import current_tape
    tape = current_tape.get()
    traced = tape.record("linear", _linear_vjp, raw, out, attrs, parents, ctx.mask, ctx.frame.n,
                         PRIMITIVES["linear"])  # (reruns on raw values, for checkpointing)
    if tape.profile is not None:
        tape.where[traced.node] = (ctx.program, ctx.line)
    return traced


def _linear_vjp(g, out, args, attrs, n, parents):
    """The chain's own rules, term by term: ``matmul``'s for each product (given the sum's
    gradient) and ``add``'s for each other term (``out`` stands in for the partial sum
    before it: the fused path keeps one shape and dtype throughout)."""
    matmul_rule, add_rule = PRIMITIVES["matmul"].vjp, PRIMITIVES["add"].vjp
    grads = []
    for kind, ops in _pairs(attrs["terms"], args):
        p = parents[len(grads):len(grads) + len(ops)]
        if all(q is None for q in p):
            grads += [None] * len(ops)
        elif kind == MM:
            grads += matmul_rule(g, None, list(ops), {}, n)
        else:
            grads.append(add_rule(g, out, [out, ops[0]], {}, n)[1])
    return [None if q is None else ga for ga, q in zip(grads, parents)]


def _register_rule():
    from ..autodiff.tape import wants_parents
    wants_parents(_linear_vjp)


_register_rule()
