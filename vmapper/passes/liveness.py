"""Liveness: which variables a block may still read.

Guarantees: ``fn.annotations['live_in'][b]`` is a frozenset containing every
variable whose value on entry to block ``b`` may be read on some path from
``b`` (by an instruction or a terminator) before that path assigns it.  A
variable not in the set is dead there: every path assigns it before any read,
or never reads it again.  Expression temporaries (``$t…``) are never live
across an edge and never appear; ``$ret`` is written by ``return`` and read
by nobody in the function, so it never appears either.

The runtime relies on this when lanes leave a loop: only the variables live
at the block they go to are written back for them at that moment.
"""
from __future__ import annotations

from ..ir import Function, is_temp


def analyze_liveness(fn: Function) -> Function:
    use, kill = {}, {}
    for b, blk in fn.blocks.items():
        u, d = set(), set()
        for ins in blk.instrs:
            u.update(x for x in ins.uses() if x not in d)
            if ins.target is not None:
                d.add(ins.target)
        if blk.term is not None:
            u.update(x for x in blk.term.uses() if x not in d)
        use[b] = {x for x in u if not is_temp(x)}
        kill[b] = d
    live_in = {b: set(use[b]) for b in fn.blocks}
    preds = fn.predecessors()
    work = list(fn.blocks)
    queued = set(work)
    while work:  # backward dataflow to a fixed point
        b = work.pop()
        queued.discard(b)
        out = set()
        for s in fn.blocks[b].successors():
            out |= live_in[s]
        new = use[b] | (out - kill[b])
        if new != live_in[b]:
            live_in[b] = new
            for p in preds[b]:
                if p not in queued:
                    queued.add(p)
                    work.append(p)
    fn.annotations["live_in"] = {b: frozenset(v) for b, v in live_in.items()}
    return fn
