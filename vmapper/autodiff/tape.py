"""Reverse-mode differentiation of a batched run, by a tape of what ran.

While a differentiated call runs, every float value that depends on a
differentiated argument is a :class:`Traced` (``value`` + tape node).  Each
primitive applied to traced values appends an :class:`Entry` holding its VJP
rule, raw inputs and output, and the *mask* of lanes that were active.  The
runtime's own moves of values (masked assignments, compaction gathers,
write-back scatters, the concatenation and splitting of merged calls) are
recorded the same way, so control flow, loops and recursion are differentiated
by replaying exactly the lane movements the forward run made, backwards.

Masked lanes are safe: an entry recorded under a mask is differentiated on
its active lanes only (gathered), and its input gradients are scattered back,
so values computed on inactive lanes (possibly NaN or inf) never meet a
gradient -- select, never multiply.
"""
from __future__ import annotations

import contextvars

import numpy as np

from ..runtime.values import Lanes, Traced, gather
from .sparse import RowSparse

current_tape = contextvars.ContextVar("vmapper_tape", default=None)


class Entry:
    __slots__ = ("vjp", "args", "out", "attrs", "parents", "mask", "n", "name")

    def __init__(self, vjp, args, out, attrs, parents, mask, n, name):
        self.vjp, self.args, self.out, self.attrs = vjp, args, out, attrs
        self.parents, self.mask, self.n, self.name = parents, mask, n, name


class Tape:
    def __init__(self):
        self.entries = []

    def leaf(self, value):
        self.entries.append(None)
        return Traced(value, len(self.entries) - 1)

    def record(self, name, vjp, args, out, attrs, parents, mask=None, n=None):
        self.entries.append(Entry(vjp, args, out, attrs, parents, mask, n, name))
        return Traced(out, len(self.entries) - 1)


def is_float_value(v) -> bool:
    if isinstance(v, Lanes):
        return v.data.dtype.kind in "fc"
    if isinstance(v, (float, np.floating)):
        return True
    if isinstance(v, np.ndarray):
        return v.dtype.kind in "fc"
    return False


def unwrap(v):
    """The raw value, and the parent structure (node ids, None where untraced)."""
    if isinstance(v, Traced):
        return v.value, v.node
    if type(v) is tuple and any(isinstance(x, Traced) or type(x) is tuple for x in v):
        pairs = [unwrap(x) for x in v]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    return v, None


def has_traced(v) -> bool:
    if isinstance(v, Traced):
        return True
    if type(v) is tuple:
        return any(has_traced(x) for x in v)
    return False


def apply_traced(prim, ctx, args, attrs):
    """Run ``prim`` on raw values; trace the output if it is a float."""
    tape = current_tape.get()
    pairs = [unwrap(a) for a in args]
    raw = [p[0] for p in pairs]
    out = prim.impl(ctx, raw, attrs)
    parents = [p[1] for p in pairs]
    if tape is None or all(p is None for p in parents) or not is_float_value(out):
        return out
    if prim.vjp is None:
        raise ctx.unsupported(f"differentiating {prim.name!r} (no derivative rule registered)")
    return tape.record(prim.name, prim.vjp, raw, out, attrs, parents, ctx.mask, ctx.n)


def record_structural(name, vjp, raw_args, out, parents, n=None, attrs=None):
    """Record a runtime move of values (select, gather, scatter, concat)."""
    tape = current_tape.get()
    if tape is None:
        raise RuntimeError("traced value outside a differentiated call")
    return tape.record(name, vjp, raw_args, out, attrs or {}, parents, None, n)


# ---- the backward sweep -----------------------------------------------------------------------

def accumulate(grads, node, g):
    if g is None or node is None:
        return
    if type(node) is tuple:
        for nd, gi in zip(node, g):
            accumulate(grads, nd, gi)
        return
    prev = grads.get(node)
    grads[node] = g if prev is None else prev + g


def _compact_entry(e, g):
    """Restrict an entry to its active lanes (for rules that must not see masked lanes)."""
    idx = np.flatnonzero(e.mask)
    args = [gather(a, idx) if _varies(a) else a for a in e.args]
    out = gather(e.out, idx)
    return args, out, g[idx], idx


def _varies(v):
    if isinstance(v, Lanes):
        return True
    if type(v) is tuple:
        return any(_varies(x) for x in v)
    return False


def _expand(ga, idx, arg, n):
    """Scatter a gradient over active lanes back to all ``n`` lanes (zeros elsewhere)."""
    if ga is None:
        return None
    if type(arg) is tuple:
        return tuple(_expand(gi, idx, ai, n) for gi, ai in zip(ga, arg))
    if not isinstance(arg, Lanes):
        return ga  # a uniform argument's gradient is already summed over the active lanes
    if isinstance(ga, RowSparse):
        ga = ga.to_dense()
    full = np.zeros((n,) + np.shape(ga)[1:], dtype=np.asarray(ga).dtype)
    full[idx] = ga
    return full


def _lane_mask(mask, ndim):
    return mask.reshape(mask.shape + (1,) * (ndim - 1))


def _select_lanes(ga, arg, mask):
    """Zero a per-lane gradient on inactive lanes (select, never multiply)."""
    if ga is None:
        return None
    if type(arg) is tuple:
        return tuple(_select_lanes(gi, ai, mask) for gi, ai in zip(ga, arg))
    if isinstance(arg, Lanes) and not isinstance(ga, RowSparse):
        ga = np.asarray(ga)
        return np.where(_lane_mask(mask, ga.ndim), ga, np.zeros((), ga.dtype))
    return ga


def _finite(ga):
    if ga is None:
        return True
    if type(ga) is tuple:
        return all(_finite(x) for x in ga)
    values = ga.values if isinstance(ga, RowSparse) else ga
    return bool(np.all(np.isfinite(values)))


def _masked_vjp(e, g):
    """A rule's input gradients for an entry recorded under a mask.

    Fast path: the rule runs on all lanes with the gradient zero on inactive
    ones; per-lane input gradients are then selected to the active lanes.  A
    shared input's gradient sums over lanes, where an inactive lane's garbage
    (inf, NaN) times 0 could leak: a finite sum proves it did not (those terms
    were exactly 0), otherwise the entry is redone on its active lanes only.
    """
    mask = e.mask
    gz = np.where(_lane_mask(mask, np.ndim(g)), g, np.zeros((), np.asarray(g).dtype))
    arg_grads = e.vjp(gz, e.out, e.args, e.attrs, e.n)
    if all(_finite(ga) for ga, a in zip(arg_grads, e.args) if not _varies(a)):
        return [_select_lanes(ga, a, mask) for ga, a in zip(arg_grads, e.args)]
    args, out, gc, idx = _compact_entry(e, g)
    arg_grads = e.vjp(gc, out, args, e.attrs, len(idx))
    return [_expand(ga, idx, a, e.n) for ga, a in zip(arg_grads, e.args)]


def backward(tape: Tape, seeds: dict):
    """Propagate ``seeds`` (node -> gradient of the output) to every node; returns node -> grad."""
    from ..api import collector_paused
    with np.errstate(all="ignore"), collector_paused():  # inactive lanes compute garbage that is selected away
        return _backward(tape, dict(seeds))


def _backward(tape, grads):
    for node in range(len(tape.entries) - 1, -1, -1):
        e = tape.entries[node]
        if e is None or node not in grads:
            continue
        g = grads.pop(node)
        if isinstance(g, RowSparse):  # only leaves keep row-sparse gradients
            g = g.to_dense()
        if e.mask is not None and isinstance(e.out, Lanes):
            arg_grads = _masked_vjp(e, g)
        else:
            arg_grads = e.vjp(g, e.out, e.args, e.attrs, e.n)
        for parent, ga in zip(e.parents, arg_grads):
            accumulate(grads, parent, ga)
    return grads  # what is left: the leaves' gradients
