"""Forward taint: the variables an instruction rule spreads a property to, to a fixed point.

Used by analyses that ask which variables may hold something (``None``, a per-lane
array, a value that depends on a differentiated parameter): a property starts at
some variables and passes from an instruction's operands to its target by a rule of
the instruction; loops feed targets back into operands, hence the fixed point.
"""
from __future__ import annotations

from ..ir import Function


def tainted_targets(fn: Function, seeds, spreads) -> set:
    """``seeds`` plus every instruction target for which ``spreads(ins, tainted)`` holds
    (``tainted``: the set so far), iterated until no target is added."""
    tainted = set(seeds)
    changed = True
    while changed:
        changed = False
        for blk in fn.blocks.values():
            for ins in blk.instrs:
                if ins.target is not None and ins.target not in tainted and spreads(ins, tainted):
                    tainted.add(ins.target)
                    changed = True
    return tainted
