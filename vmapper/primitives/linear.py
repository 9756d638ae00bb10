"""``linear``: a sum of matrix products and other terms, made by ``passes/fuse_linear.py``.

``linear(W, x, V, y, b; terms=("mm", "mm", "value"))`` is ``(W @ x + V @ y) + b``.  In the
usual case -- shared float matrices times per-lane vectors of their dtype, and terms of
that dtype that are per-lane arrays of the products' shape or shared arrays of the
per-sample shape -- the products are the ``matmul`` primitive's own GEMMs and the sums go
in place into the first product's (fresh) array: the values of the unfused chain, bitwise,
as one operation, and differentiated as one tape entry that applies the chain's own
``matmul`` and ``add`` rules.  Anything else runs as the
chain of ``matmul`` and ``add`` primitives, with their tape entries.

An ``mm_rows`` term (``passes/gathered_rows.py``), ``W @ x`` with ``x = table[index]``, runs
once per distinct index when enough lanes repeat one (:func:`_distinct_rows`): the rows'
values are those of a product per lane to rounding, and the gradients go per distinct row
(``W``'s as one term per row, the table's row-sparse over the distinct indices).
"""
from __future__ import annotations

import numpy as np

from ..runtime.values import Lanes, Traced
from .array_ops import matmul_lanes
from .registry import PRIMITIVES, register

MM, MM_ROWS = "mm", "mm_rows"
#: Operands per term kind (any other kind: one, its value).
OPERANDS = {MM: 2, MM_ROWS: 4}
#: Products over gathered rows are computed once per distinct row when at least this many
#: lanes ...
_DEDUP_MIN_LANES = 64
#: ... repeat an index that often: the saved GEMM rows must pay for finding the distinct
#: indices, handing their rows out and, in the backward, summing the lanes' gradients per row.
_DEDUP_MAX_DISTINCT = 0.8


def _pairs(terms, args):
    """``(kind, operands)`` per term, in order (an ``mm_rows`` term: ``W, x, table, index``)."""
    out, k = [], 0
    for kind in terms:
        n = OPERANDS.get(kind, 1)
        out.append((kind, args[k:k + n]))
        k += n
    return out


def _raw(v):
    return v.value if type(v) is Traced else v


def _fusible(terms, args):
    """Whether the fused path applies to these raw values."""
    rows = width = dt = None
    for kind, ops in _pairs(terms, args):
        if kind != "value":
            w, x = ops[:2]
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


def _distinct_rows(ctx, terms, args):
    """``(first, inverse)`` when the lone product's vector rows were gathered by an index that
    repeats (``passes/gathered_rows.py``) and every other term is shared: the lanes' rows
    are then those of ``first``'s lanes, by ``inverse``.  Else None."""
    if ctx.mask is not None or terms[0] != MM_ROWS or any(kind != "value" for kind in terms[1:]):
        return None
    _, x, table, index = args[:4]
    n = x.data.shape[0]
    if n < _DEDUP_MIN_LANES or type(index) is not Lanes or type(table) is not np.ndarray or table.ndim != 2 \
            or index.data.shape != (n,) or index.data.dtype.kind not in "iu" \
            or any(type(v) is Lanes for v in args[4:]):
        return None
    distinct, first, inverse = np.unique(index.data, return_index=True, return_inverse=True)
    if len(distinct) > _DEDUP_MAX_DISTINCT * n:
        return None
    ctx.frame.state.stats.shared_row_products += n - len(distinct)
    return first, inverse


def _fused(ctx, terms, args, rows=None):
    """The sum; with ``rows`` (``_distinct_rows``), computed on the distinct rows and then
    handed out to the lanes."""
    acc = None
    for kind, ops in _pairs(terms, args):
        if kind != "value":
            w, x = ops[:2]
            part = matmul_lanes(ctx, w, x if rows is None else Lanes(x.data[rows[0]], False)).data
            if acc is None:
                acc = part
                continue
        else:
            part = ops[0].data if type(ops[0]) is Lanes else ops[0]
        np.add(acc, part, out=acc)
    return Lanes(acc if rows is None else acc[rows[1]], False)


def _chain(ctx, terms, args):
    """The unfused chain of primitives (tape entries and all)."""
    acc = None
    for kind, ops in _pairs(terms, args):
        part = ops[0] if kind == "value" else ctx.call_primitive("matmul", ops[:2])
        acc = part if acc is None else ctx.call_primitive("add", (acc, part))
    return acc


@register("linear", may_fail=True)
def _linear(ctx, args, attrs):
    terms = attrs["terms"]
    raw = [_raw(a) for a in args]
    if not _fusible(terms, raw):
        return _chain(ctx, terms, args)
    rows = _distinct_rows(ctx, terms, raw) if MM_ROWS in terms else None
    out = _fused(ctx, terms, raw, rows)
    parents = [a.node if type(a) is Traced else None for a in args]
    if all(p is None for p in parents):
        return out
    from ..autodiff.tape import current_tape
    tape = current_tape.get()
    if rows is not None:
        attrs = {**attrs, "rows": rows}
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
    rows = attrs.get("rows")
    grads = []
    for kind, ops in _pairs(attrs["terms"], args):
        p = parents[len(grads):len(grads) + len(ops)]
        if all(q is None for q in p):
            grads += [None] * len(ops)
        elif kind == MM:
            grads += matmul_rule(g, None, list(ops), {}, n)
        elif kind == MM_ROWS:
            grads += _rows_vjp(matmul_rule, g, ops, rows, n)
        else:
            grads.append(add_rule(g, out, [out, ops[0]], {}, n)[1])
    return [None if q is None else ga for ga, q in zip(grads, parents)]


def _rows_vjp(matmul_rule, g, ops, rows, n):
    """Gradients of ``W``, ``x``, ``table`` and ``index`` for ``W @ x`` with ``x = table[index]``.

    Without ``rows``: ``matmul``'s rule (``x``'s gradient reaches the table through the gather).
    With ``rows``, the rule applied once per distinct row, to the sum of its lanes' gradients,
    and the rows' gradients go to the table directly, row-sparse over the distinct indices
    (``x`` is the gather's value, so that is where they would go, lane by lane)."""
    w, x, table, index = ops
    if rows is None:
        return matmul_rule(g, None, [w, x], {}, n) + [None, None]
    from ..autodiff.sparse import RowSparse, add_rows, densify
    first, inverse = rows
    g = densify(g)
    per_row = np.zeros((len(first),) + g.shape[1:], g.dtype)
    add_rows(per_row, inverse, g)
    gw, gx = matmul_rule(per_row, None, [w, Lanes(x.data[first], False)], {}, len(first))
    gt = None if gx is None else RowSparse(index.data[first] % table.shape[0], gx, table.shape)
    return [gw, None, gt, None]


def _register_rule():
    from ..autodiff.tape import wants_parents
    wants_parents(_linear_vjp)


_register_rule()
