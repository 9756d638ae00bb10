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

A loop therefore stores its values for every trip; with ``checkpoint_loops``,
:mod:`.checkpoint` drops them from stretches of trips (each entry keeps
``fwd``, the way to recompute its output) and recomputes them in the sweep.
"""
from __future__ import annotations

import contextvars

import numpy as np

from ..runtime.values import Lanes, Traced, gather, materialize
from .sparse import OuterSum, Placed, RowSparse, densify, densify_all

current_tape = contextvars.ContextVar("vmapper_tape", default=None)


class Entry:
    """One recorded step.  ``fwd`` recomputes ``out`` from ``args``: the primitive
    (run with ``mask`` and ``n``), or a function of the raw arguments; None for a
    step that cannot be recomputed (a compiled kernel), which checkpointing keeps whole."""
    __slots__ = ("vjp", "args", "out", "attrs", "parents", "mask", "n", "name", "fwd")

    def __init__(self, vjp, args, out, attrs, parents, mask, n, name, fwd=None):
        self.vjp, self.args, self.out, self.attrs = vjp, args, out, attrs
        self.parents, self.mask, self.n, self.name, self.fwd = parents, mask, n, name, fwd


class Tape:
    def __init__(self, checkpoint_loops=None):
        self.entries = []
        # Loops of more than this many trips keep their values only at every
        # checkpoint_loops-th trip (vmapper.autodiff.checkpoint); None: keep everything.
        self.checkpoint_loops = checkpoint_loops
        self.segments = []  # the outermost checkpointed stretches, in tape order
        self.measure = False  # track the bytes the backward sweep recomputes (tape_stats)
        self.recompute_peak_bytes = 0
        # In a vmapper.profile() block: its Profile, and node -> (program, line) of the
        # operation that recorded it, so that the sweep's rows name the user's lines.
        self.profile = None
        self.where = {}
        # Backward sweeps started over this tape: a rule that keeps state between entries
        # (DAG mode's gradient buffers, runtime/memo.py) starts afresh in each.
        self.sweeps = 0

    def leaf(self, value):
        self.entries.append(None)
        return Traced(value, len(self.entries) - 1)

    def record(self, name, vjp, args, out, attrs, parents, mask=None, n=None, fwd=None):
        self.entries.append(Entry(vjp, args, out, attrs, parents, mask, n, name, fwd))
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
    tv = type(v)
    if tv is Traced:
        return v.value, v.node
    if tv is tuple:
        for x in v:  # (a loop, not any(genexpr): called for every operand of a tuple)
            tx = type(x)
            if tx is Traced or tx is tuple:
                pairs = [unwrap(x) for x in v]
                return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    return v, None


def has_traced(v) -> bool:
    tv = type(v)
    if tv is Traced:
        return True
    if tv is tuple:
        for x in v:
            tx = type(x)
            if tx is Traced or tx is tuple and has_traced(x):
                return True
    return False


def apply_traced(prim, ctx, args, attrs):
    """Run ``prim`` on raw values; trace the output if it is a float (or a tuple holding floats)."""
    if prim.passes_traced is not None and prim.passes_traced(args, attrs):
        return prim.impl(ctx, args, attrs)
    raw, parents = [], []
    traced_args = False
    for a in args:
        ta = type(a)
        if ta is Traced:
            raw.append(a.value)
            parents.append(a.node)
            traced_args = True
        elif ta is tuple:
            r, p = unwrap(a)
            raw.append(r)
            parents.append(p)
            traced_args = traced_args or p is not None
        else:
            raw.append(a)
            parents.append(None)
    out = prim.impl(ctx, raw, attrs)
    if not traced_args:
        return out
    tape = current_tape.get()
    if tape is None:
        return out
    to = type(out)
    if to is Lanes:
        if out.data.dtype.kind not in "fc":
            return out
    elif to is tuple:
        if not any(is_float_value(o) for o in out):
            return out
    elif not is_float_value(out):
        return out
    if prim.vjp is None:
        raise ctx.unsupported(f"differentiating {prim.name!r} (no derivative rule registered)")
    if prim.vjp_refuses is not None:
        why = prim.vjp_refuses(attrs)
        if why is not None:
            raise ctx.unsupported(f"differentiating {why}")
    n = ctx.frame.n  # (ctx.n, without the property call)
    if to is not Lanes and to is not tuple and any(_varies(r) for r in raw):
        # One value on every lane from per-lane operands (``w if x > 0 else w``): its gradient
        # would come summed over the lanes, which the rule would then apply on every lane.
        out = materialize(out, n)
    traced = tape.record(prim.name, prim.vjp, raw, out, attrs, parents, ctx.mask, n, prim)
    if tape.profile is not None:
        tape.where[traced.node] = (ctx.program, ctx.line)
    if to is not tuple:
        return traced
    return project_results(tape, traced, n)


def project_results(tape, group, n):
    """The traced results of a tape entry ``group`` whose output is a tuple.

    A primitive (or kernel) with several results, an LSTM cell's h and c, is one
    entry whose gradient is a tuple (None where a result got no gradient), plus
    a projection entry per float result."""
    out = group.value
    k = len(out)
    return tuple(tape.record("item", _item_vjp(j, k), [out], o, {}, [group.node], None, n, _item_fwd(j))
                 if is_float_value(o) else o for j, o in enumerate(out))


_ITEM_RULES = {}


def _item_vjp(j, k):
    rule = _ITEM_RULES.get((j, k))
    if rule is None:
        def rule(g, out, args, attrs, n):
            return [tuple(g if i == j else None for i in range(k))]
        _ITEM_RULES[j, k] = rule
    return rule


_ITEM_FWDS = {}


def _item_fwd(j):
    fwd = _ITEM_FWDS.get(j)
    if fwd is None:
        fwd = _ITEM_FWDS[j] = lambda args: args[0][j]
    return fwd


def record_structural(name, vjp, raw_args, out, parents, n=None, attrs=None, fwd=None):
    """Record a runtime move of values (select, gather, scatter, concat); ``fwd(raw_args)``
    recomputes ``out`` (for checkpointing)."""
    tape = current_tape.get()
    if tape is None:
        raise RuntimeError("traced value outside a differentiated call")
    return tape.record(name, vjp, raw_args, out, attrs or {}, parents, None, n, fwd)


# ---- the backward sweep -----------------------------------------------------------------------

class _Grads(dict):
    """node -> gradient, plus the nodes whose array this sweep allocated itself:
    only those may be added into in place (any other may be shared, or a view)."""
    __slots__ = ("owned",)

    def __init__(self, seeds):
        super().__init__(seeds)
        self.owned = set()


def accumulate(grads, node, g):
    if g is None or node is None:
        return
    if type(node) is tuple:
        for nd, gi in zip(node, g):
            accumulate(grads, nd, gi)
        return
    prev = grads.get(node)
    if prev is None:
        grads[node] = g
        return
    owned = getattr(grads, "owned", None)
    if type(prev) is np.ndarray and type(g) is np.ndarray and prev.shape == g.shape \
            and prev.dtype == g.dtype:  # the common case: two arrays of one dtype and shape
        if owned is not None and node in owned:
            np.add(prev, g, out=prev)
            return
        total = grads[node] = prev + g
        if owned is not None and type(total) is np.ndarray:  # (0-d arrays add to a scalar)
            owned.add(node)
        return
    if type(prev) is Placed and type(g) is Placed and prev.shape == g.shape:
        grads[node] = prev.merged(g)  # slices of one array: summed once, when needed
        return
    if owned is not None and node in owned and _add_into(prev, g):
        return
    total = _add(prev, g)
    grads[node] = total
    if owned is not None and isinstance(total, np.ndarray):
        owned.add(node)


def _add_into(buf, g):
    """``buf += g`` in place when that gives what ``buf + g`` would; False otherwise."""
    if isinstance(g, Placed):
        if g.shape != buf.shape or np.result_type(buf, g.dtype) != buf.dtype:
            return False
        g.add_into(buf)
        return True
    if isinstance(g, OuterSum):
        g = g.to_dense()
    if not isinstance(g, np.ndarray) or g.shape != buf.shape or np.result_type(buf, g) != buf.dtype:
        return False
    np.add(buf, g, out=buf)
    return True


def _add(a, b):
    if type(a) is tuple:  # the gradient of a primitive with several results; None: no gradient
        return tuple(y if x is None else x if y is None else _add(x, y) for x, y in zip(a, b))
    if isinstance(a, Placed):
        a, b = b, a
    if isinstance(b, Placed):
        if isinstance(a, Placed):
            if a.shape == b.shape:
                return a.merged(b)
            a = a.to_dense()
        elif not isinstance(a, np.ndarray) or a.shape != b.shape:
            return densify(a) + b.to_dense()
        else:
            a = a.astype(np.result_type(a, b.dtype), copy=True)
        b.add_into(a)
        return a
    if isinstance(a, OuterSum) or isinstance(b, OuterSum):
        if isinstance(a, OuterSum) and isinstance(b, OuterSum):
            return a + b
        return densify(a) + densify(b)
    return a + b


def _lanes_of(g, idx):
    if type(g) is tuple:
        return tuple(None if x is None else x[idx] for x in g)
    return g[idx]


def _compact_entry(e, g, idx):
    """Restrict an entry to its active lanes (for rules that must not see masked lanes)."""
    args = [gather(a, idx) if _varies(a) else a for a in e.args]
    out = gather(e.out, idx)
    return args, out, _lanes_of(g, idx)


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
    if isinstance(ga, Placed):
        return ga.on_lanes(idx, n)
    if isinstance(ga, RowSparse):
        ga = ga.to_dense()
    full = np.zeros((n,) + np.shape(ga)[1:], dtype=np.asarray(ga).dtype)
    full[idx] = ga
    return full


def _lane_mask(mask, ndim):
    return mask.reshape(mask.shape + (1,) * (ndim - 1))


def _zero_inactive(g, mask):
    if g is None:
        return None
    if type(g) is tuple:
        return tuple(_zero_inactive(x, mask) for x in g)
    g = np.asarray(g)
    return np.where(_lane_mask(mask, g.ndim), g, np.zeros((), g.dtype))


def _select_lanes(ga, arg, mask):
    """Zero a per-lane gradient on inactive lanes (select, never multiply)."""
    if ga is None:
        return None
    if type(arg) is tuple:
        return tuple(_select_lanes(gi, ai, mask) for gi, ai in zip(ga, arg))
    if isinstance(ga, Placed):
        if isinstance(arg, Lanes) and all(type(k[0]) is slice and k[0] == slice(None) for k, _ in ga.parts):
            out = Placed.__new__(Placed)
            out.shape = ga.shape
            out.parts = [(k, np.where(_lane_mask(mask, v.ndim), v, np.zeros((), v.dtype))) for k, v in ga.parts]
            return out
        ga = ga.to_dense()
    if isinstance(arg, Lanes) and not isinstance(ga, RowSparse):
        ga = np.asarray(ga)
        return np.where(_lane_mask(mask, ga.ndim), ga, np.zeros((), ga.dtype))
    return ga


#: VJP rules that take the entry's parents as a sixth argument (None where an operand is not
#: differentiated), to skip the gradients nothing needs; see :func:`wants_parents`.
_PARENT_AWARE = set()


def wants_parents(rule):
    """Mark ``rule`` as ``rule(g, out, args, attrs, n, parents)``: it may return None for an
    operand whose parent is None (no gradient needed there)."""
    _PARENT_AWARE.add(rule)
    return rule


def _call_vjp(e, g, out, args, n):
    if e.vjp in _PARENT_AWARE:
        return e.vjp(g, out, args, e.attrs, n, e.parents)
    return e.vjp(g, out, args, e.attrs, n)


#: A shared input at most this large gets its gradient from the all-lanes rule, checked finite.
_SMALL_SHARED = 4096


def _masked_vjp(e, g):
    """A rule's input gradients for an entry recorded under a mask.

    Fast path: the rule runs on all lanes with the gradient zero on inactive
    ones; per-lane input gradients are then selected to the active lanes.  A
    shared (uniform) input's gradient sums over lanes, where an inactive
    lane's garbage (inf, NaN) times 0 could leak: for a small one, a finite
    sum proves it did not (those terms were exactly 0).  The entry runs on
    its active lanes only (gathered) instead when at most half the lanes are
    active, when a large shared input is traced (a matrix: the check would
    cost a pass over it, and the products on inactive lanes are wasted), or
    when the check fails.
    """
    mask = e.mask
    n = len(mask)
    idx = np.flatnonzero(mask)
    shared = [k for k, (a, p) in enumerate(zip(e.args, e.parents)) if p is not None and not _varies(a)]
    if 2 * len(idx) > n and all(_size(e.args[k]) <= _SMALL_SHARED for k in shared):
        arg_grads = _call_vjp(e, _zero_inactive(g, mask), e.out, e.args, e.n)
        if all(_finite(arg_grads[k]) for k in shared):
            return [None if p is None else _select_lanes(ga, a, mask)
                    for ga, a, p in zip(arg_grads, e.args, e.parents)]
    args, out, gc = _compact_entry(e, g, idx)
    arg_grads = _call_vjp(e, gc, out, args, len(idx))
    return [None if p is None else _expand(ga, idx, a, n)
            for ga, a, p in zip(arg_grads, e.args, e.parents)]


def _size(v):
    if type(v) in (tuple, list):
        return sum(_size(x) for x in v)
    return np.size(v) if isinstance(v, (np.ndarray, np.generic, float, int, complex)) else _SMALL_SHARED + 1


def _finite(ga):
    if ga is None:
        return True
    if type(ga) is tuple:
        return all(_finite(x) for x in ga)
    if isinstance(ga, Placed):
        return all(bool(np.all(np.isfinite(v))) for _, v in ga.parts)
    values = ga.values if isinstance(ga, RowSparse) else densify(ga)
    return bool(np.all(np.isfinite(values)))


def backward(tape: Tape, seeds: dict):
    """Propagate ``seeds`` (node -> gradient of the output) to every node; returns node -> grad."""
    from ..api import collector_paused
    tape.sweeps += 1
    with np.errstate(all="ignore"), collector_paused():  # inactive lanes compute garbage that is selected away
        prof = tape.profile
        if prof is not None:
            return _backward_profiled(tape, _Grads(seeds), prof)
        grads = _backward(tape, _Grads(seeds))
        return densify_all(grads)


def _backward_profiled(tape, grads, prof):
    """:func:`_backward` through ``_step``, each entry's rule timed under the line that recorded it."""
    entries, where = tape.entries, tape.where

    def timed_step(grads, node, e):
        t0 = prof.start()
        _step(grads, node, e)
        program, line = where.get(node, (None, 0))
        prof.stop(t0, "backward", program, line, e.name, e.n or 0)

    if tape.segments:
        from .checkpoint import sweep
        sweep(tape, grads, timed_step)
    else:
        for node in range(len(entries) - 1, -1, -1):
            if node in grads and entries[node] is not None:
                timed_step(grads, node, entries[node])
    t0 = prof.start()
    out = densify_all(grads)
    prof.stop(t0, "backward", None, 0, "sum of products", 0, label="(gradients of shared arrays)")
    return out


def _backward(tape, grads):
    entries = tape.entries
    if tape.segments:  # checkpointed stretches are recomputed on the way
        from .checkpoint import sweep
        sweep(tape, grads, _step)
        return grads
    # _step, inlined: ~10^3 entries per call, so per-entry dispatch counts
    pop, get, parent_aware, lazy = grads.pop, grads.get, _PARENT_AWARE, _LAZY
    for node in range(len(entries) - 1, -1, -1):
        if node not in grads:
            continue
        e = entries[node]
        if e is None:
            continue  # a leaf keeps its gradient
        g = pop(node)
        tg = type(g)
        if tg is not np.ndarray and tg is not tuple and isinstance(g, lazy):
            g = g.to_dense()
        if e.mask is not None and _varies(e.out):
            arg_grads = _masked_vjp(e, g)
        elif e.vjp in parent_aware:
            arg_grads = e.vjp(g, e.out, e.args, e.attrs, e.n, e.parents)
        else:
            arg_grads = e.vjp(g, e.out, e.args, e.attrs, e.n)
        for parent, ga in zip(e.parents, arg_grads):
            if ga is None or parent is None:
                continue
            if type(parent) is int and get(parent) is None:
                grads[parent] = ga  # the first gradient: kept as it is
            else:
                accumulate(grads, parent, ga)
    return grads  # what is left: the leaves' gradients


_LAZY = (RowSparse, Placed, OuterSum)


def _step(grads, node, e):
    """Propagate the gradient of ``node`` (entry ``e``) to its parents."""
    g = grads.pop(node)
    tg = type(g)
    if tg is not np.ndarray and tg is not tuple and isinstance(g, _LAZY):  # only leaves keep lazy gradients
        g = g.to_dense()
    if e.mask is not None and _varies(e.out):
        arg_grads = _masked_vjp(e, g)
    else:
        arg_grads = _call_vjp(e, g, e.out, e.args, e.n)
    for parent, ga in zip(e.parents, arg_grads):
        if parent is not None and ga is not None:
            accumulate(grads, parent, ga)
