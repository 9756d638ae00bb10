"""Checkpointing of long loops: recompute stretches of trips instead of storing them.

``value_and_grad(f, checkpoint_loops=K)``: while a loop runs, every K trips
close a *stretch*, the contiguous run of tape entries those trips recorded.
Closing a stretch drops the values its entries hold -- each entry's output,
and each argument that an entry of the same stretch computed -- and keeps
what cannot be recomputed from inside it: arguments from before the stretch
(the loop-carried state at its start, loop-invariant values), untraced
arguments (integers, comparisons), masks and lane indices (the control flow
that the forward run took).  Every entry keeps the function that made its
output (``Entry.fwd``: its primitive, or the runtime's select, gather,
scatter or concatenation), so the stretch can be rerun from those.

The backward sweep, on reaching a stretch, reruns its entries forward from
what was kept (:func:`_replay`), back-propagates through it, and drops the
recomputed values again.  The same operations run on the same inputs under
the same masks, so the gradients are bitwise those of the plain tape;
masked lanes are handled by the same rules as without checkpointing.

Nesting: a loop inside a loop (or in a helper called from one) closes its
stretches first; the outer stretch that contains them takes them as
*children*.  Rerunning the outer stretch keeps, of a child, only the values
the outer stretch reads (its *exports*); the child is rerun again when the
sweep reaches it.  An entry without ``fwd`` (a compiled kernel's) keeps its
values and is reused as recorded, so every stretch can be checkpointed.
"""
from __future__ import annotations

import bisect

import numpy as np



class _Dropped:
    __slots__ = ()

    def __repr__(self):
        return "<dropped: recomputed by the backward sweep>"


#: What a closed stretch's entries hold in place of the values they dropped.
DROPPED = _Dropped()


class Segment:
    """A closed stretch: tape entries ``a`` to ``b - 1``."""
    __slots__ = ("a", "b", "children", "exports")

    def __init__(self, a, b, children, exports):
        self.a, self.b = a, b
        self.children = children  # closed stretches inside this one, in tape order
        self.exports = exports    # nodes inside children whose value this stretch drops


def loop_stretches(tape):
    """The per-loop hook of the executor: None unless the tape checkpoints loops."""
    k = tape.checkpoint_loops
    return None if k is None else LoopStretches(tape, k)


class LoopStretches:
    """Closes a stretch of the tape every ``k`` trips of one running loop."""
    __slots__ = ("tape", "k", "start", "trips", "closed")

    def __init__(self, tape, k):
        self.tape, self.k = tape, k
        self.start = len(tape.entries)
        self.trips = 0
        self.closed = 0

    def trip(self):
        """Called before each trip (the loop test included)."""
        if self.trips and self.trips % self.k == 0:
            self._close_stretch()
        self.trips += 1

    def close(self):
        """Called when the loop ends: a loop that closed stretches closes its last one."""
        if self.closed:
            self._close_stretch()

    def _close_stretch(self):
        end = len(self.tape.entries)
        if end > self.start:
            close_segment(self.tape, self.start, end)
            self.closed += 1
        self.start = end


def close_segment(tape, a, b):
    """Drop the recomputable values of entries ``a`` to ``b - 1``, and register the stretch."""
    entries, segs = tape.entries, tape.segments
    j = len(segs)
    while j and segs[j - 1].a >= a:  # stretches closed inside this one become its children
        j -= 1
    children = segs[j:]
    del segs[j:]
    dropped = set()
    for k in range(a, b):
        e = entries[k]
        if e is None or e.fwd is None:
            continue  # a leaf, or an entry that cannot be recomputed: kept whole
        e.out = DROPPED
        args, new = e.args, None
        for i, p in enumerate(e.parents):
            if p is None:
                continue
            v = _drop(args[i], p, a, b, dropped)
            if v is not args[i]:
                if new is None:
                    new = list(args)
                new[i] = v
        if new is not None:
            e.args = new
    starts = [c.a for c in children]
    exports = frozenset(p for p in dropped if _child_of(p, children, starts) is not None)
    segs.append(Segment(a, b, children, exports))


def _drop(arg, parent, a, b, dropped):
    if type(parent) is tuple:
        new = tuple(_drop(x, q, a, b, dropped) for x, q in zip(arg, parent))
        return arg if all(x is y for x, y in zip(new, arg)) else new
    if parent is None or arg is DROPPED or not a <= parent < b:
        return arg
    dropped.add(parent)
    return DROPPED


def _child_of(node, children, starts):
    i = bisect.bisect_right(starts, node) - 1
    return children[i] if i >= 0 and node < children[i].b else None


def _dropped_parents(arg, parent, out):
    if type(parent) is tuple:
        for x, q in zip(arg, parent):
            _dropped_parents(x, q, out)
    elif arg is DROPPED:
        out.append(parent)


def _resolve(arg, parent, lookup):
    if type(parent) is tuple:
        return tuple(_resolve(x, q, lookup) for x, q in zip(arg, parent))
    return lookup(parent) if arg is DROPPED else arg


class _UncountedStats:
    """A replayed rule's counters: its counts were the forward run's, so these go nowhere."""

    def __getattr__(self, name):
        return 0

    def __setattr__(self, name, value):
        pass


class _ReplayFrame:
    """All that a primitive's batching rule reads of its frame (the lane count, and
    that a tape is recording: rules then never reuse an operand's buffer)."""
    __slots__ = ("n",)

    class state:
        tape = True
        pool = None  # (no buffer pool: a replayed rule allocates its results)
        stats = _UncountedStats()

    def __init__(self, n):
        self.n = n

    def lane_ids(self):
        return np.arange(self.n)


def _rerun(e, args):
    impl = getattr(e.fwd, "impl", None)
    if impl is None:
        return e.fwd(args)
    from ..runtime.context import Context
    return impl(Context(_ReplayFrame(e.n), e.mask, None), args, e.attrs)


def _chain_lookup(chain):
    def lookup(p):
        for m in reversed(chain):
            if p in m:
                return m[p]
        raise AssertionError(f"checkpointing: tape node {p} was neither kept nor recomputed")
    return lookup


def _replay(entries, seg, chain):
    """Rerun ``seg`` forward; returns node -> value for its own entries (those not in a
    child stretch) and its exports.  ``chain``: the values of the enclosing stretches
    being swept, innermost last.  Other values are freed after their last use."""
    a, b = seg.a, seg.b
    last = {}
    for k in range(a, b):
        e = entries[k]
        if e is None or e.fwd is None:
            continue
        ps = []
        for arg, p in zip(e.args, e.parents):
            if p is not None:
                _dropped_parents(arg, p, ps)
        for p in ps:
            if p >= a:
                last[p] = k
    dying = {}
    for p, k in last.items():
        dying.setdefault(k, []).append(p)
    outer = _chain_lookup(chain)
    vals, kept = {}, {}

    def lookup(p):
        return vals[p] if p >= a else outer(p)

    children, exports = seg.children, seg.exports
    ci = 0
    for k in range(a, b):
        e = entries[k]
        if e is None:
            continue
        while ci < len(children) and children[ci].b <= k:
            ci += 1
        if e.fwd is None:
            out = e.out
        else:
            out = _rerun(e, [_resolve(arg, p, lookup) for arg, p in zip(e.args, e.parents)])
        if not (ci < len(children) and children[ci].a <= k) or k in exports:
            kept[k] = out
        if k in last:
            vals[k] = out
        for p in dying.get(k, ()):
            del vals[p]
    return kept


def sweep(tape, grads, step):
    """The backward sweep over a tape with closed stretches: ``step(grads, node, entry)``
    for every node with a gradient, in reverse, rerunning each stretch that receives one."""
    _sweep(tape, grads, step, 0, len(tape.entries), tape.segments, [])


def _sweep(tape, grads, step, lo, hi, segs, chain):
    from .tape import Entry
    entries = tape.entries
    lookup = _chain_lookup(chain) if chain else None
    kept = chain[-1] if chain else None
    i = len(segs) - 1
    node = hi - 1
    while node >= lo:
        if i >= 0 and node < segs[i].b:
            s = segs[i]
            i -= 1
            if any(k in grads for k in range(s.a, s.b)):
                values = _replay(entries, s, chain)
                if tape.measure:
                    from .memory import note_recompute
                    note_recompute(tape, chain + [values])
                _sweep(tape, grads, step, s.a, s.b, s.children, chain + [values])
            node = s.a - 1
            continue
        if node in grads:
            e = entries[node]
            if e is not None:
                if kept is not None and e.fwd is not None:
                    e = Entry(e.vjp, [_resolve(arg, p, lookup) for arg, p in zip(e.args, e.parents)],
                              kept[node], e.attrs, e.parents, e.mask, e.n, e.name)
                step(grads, node, e)
        node -= 1


def count_stretches(tape) -> int:
    """How many stretches were closed (nested ones included)."""
    todo, count = list(tape.segments), 0
    while todo:
        s = todo.pop()
        count += 1
        todo.extend(s.children)
    return count
