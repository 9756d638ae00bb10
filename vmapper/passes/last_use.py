"""Last uses of expression temporaries within their block.

Guarantees: ``fn.annotations['last_use'][b]`` is a list with one entry per
instruction of block ``b``: the tuple of temporaries (``$t…``) that the
instruction reads and that neither a later instruction of the block nor its
terminator reads before assigning them again.  After that instruction the
temporary's value is dead, so the runtime may drop it and let the operation
write its result into the temporary's buffer (when nothing else refers to it).

Run it last: a pass that changes instructions afterwards makes it stale (the
runtime ignores a list whose length does not match the block).
"""
from __future__ import annotations

from ..ir import Function, is_temp


def find_last_uses(fn: Function) -> Function:
    out = {}
    for b, blk in fn.blocks.items():
        live = {x for x in blk.term.uses() if is_temp(x)} if blk.term is not None else set()
        dying = []
        for ins in reversed(blk.instrs):
            uses = {x for x in ins.uses() if is_temp(x)}
            dying.append(tuple(sorted(uses - live)))
            if ins.target is not None:
                live.discard(ins.target)
            live |= uses
        dying.reverse()
        out[b] = dying
    fn.annotations["last_use"] = out
    return fn
