"""The block priority order of lockstep kernels (:func:`schedule_order`).

A lockstep kernel runs, at each step, the block of smallest priority among
the live lanes of its chunk (min-PC scheduling) for the lanes waiting there.
Any total order is *correct* -- every step advances at least one lane along
its own path, so each lane executes exactly its scalar sequence of blocks --
the order only decides how often lanes of a chunk run together:

1. **tail blocks** first: blocks outside every loop from which no loop can be
   reached (returns, and the straight-line code before them).  A lane there
   finishes within a few steps and frees its slot for the next lane, instead
   of waiting for the rest of the chunk to leave the loop.  (The kernel
   defers them until enough lanes wait there, see
   :mod:`.codegen_lockstep_kernel`: then they run for all those lanes at
   once.)
2. then the other blocks in a topological order of the forward edges
   (back edges removed) in which **every loop is contiguous**: once a loop's
   header is placed, the loop's remaining blocks come before anything
   outside it (innermost open loop first, then reverse postorder).  So a lane
   that leaves a loop waits at the exit until the last lane of its chunk
   leaves too, and the chunk runs the next loop, or the code after it,
   together; lanes that branch apart inside a loop body meet again at the
   join, which comes after both arms.

Blocks before the first loop get small priorities: lanes just loaded into a
chunk catch up with the others at the loop header before the loop runs on.
Falls back to reverse postorder when the CFG is irreducible.
"""
from __future__ import annotations


def schedule_order(fn, rpo):
    """``(order, ntail)``: ``rpo`` (the reachable blocks of ``fn`` in reverse postorder) in
    priority order, the first ``ntail`` of them the tail blocks."""
    from vmapper.passes.loops import find_loops
    try:
        find_loops(fn)
    except ValueError:
        return list(rpo), 0
    loops = fn.annotations["loops"]
    live = set(rpo)
    idx = {b: i for i, b in enumerate(rpo)}
    succ = {b: [s for s in fn.blocks[b].successors() if s in live] for b in rpo}
    in_loop = {b: [h for h, lp in loops.items() if b in lp.blocks] for b in rpo}

    # blocks that can reach a loop (reverse search from the loop blocks)
    preds = {b: [] for b in rpo}
    for b in rpo:
        for s in succ[b]:
            preds[s].append(b)
    reach = set()
    stack = [b for b in rpo if in_loop[b]]
    while stack:
        b = stack.pop()
        if b in reach:
            continue
        reach.add(b)
        stack.extend(preds[b])
    tail = [b for b in rpo if b not in reach]
    rest = [b for b in rpo if b in reach]

    # Kahn's algorithm on the forward edges of the non-tail blocks, preferring
    # the blocks of the innermost loop whose header is placed and body is not
    rest_set = set(rest)
    fwd_preds = {b: {p for p in preds[b] if p in rest_set and idx[p] < idx[b]} for b in rest}
    depth = {h: _depth(loops, h) for h in loops}
    placed, out = set(), []
    while len(out) < len(rest):
        ready = [b for b in rest if b not in placed and fwd_preds[b] <= placed]
        if not ready:  # cannot happen for a reducible CFG; stay correct anyway
            return tail + out + [b for b in rest if b not in placed], len(tail)
        open_loops = [h for h in loops if h in placed and not loops[h].blocks <= placed]

        def key(b):
            d = max((depth[h] for h in open_loops if b in loops[h].blocks), default=-1)
            return (-d, idx[b])
        b = min(ready, key=key)
        placed.add(b)
        out.append(b)
    return tail + out, len(tail)


def _depth(loops, h):
    d = 0
    while loops[h].parent is not None:
        h = loops[h].parent
        d += 1
    return d
