"""Classify expression temporaries.

Guarantees: afterwards every variable named ``$t…`` is defined once, in one
block, and used only later in that same block, so the runtime may keep it out
of the variable environment and store it without a mask.  A temporary that
escapes its block (an operand evaluated before a short-circuit or a call with
branches) is renamed to ``$v…`` and treated as an ordinary variable.
"""
from __future__ import annotations

from ..ir import Branch, Function, Return, Var, is_temp


def classify_temporaries(fn: Function) -> Function:
    def_block, use_blocks = {}, {}
    for b, blk in fn.blocks.items():
        for ins in blk.instrs:
            for u in ins.uses():
                use_blocks.setdefault(u, set()).add(b)
            if ins.target and is_temp(ins.target):
                def_block.setdefault(ins.target, set()).add(b)
        for u in blk.term.uses():
            use_blocks.setdefault(u, set()).add(b)
    escaping = {t for t, bs in def_block.items()
                if len(bs) != 1 or not use_blocks.get(t, set()) <= bs}
    if not escaping:
        return fn
    rename = {t: "$v" + t[2:] for t in escaping}

    def ren(op):
        return Var(rename[op.name]) if isinstance(op, Var) and op.name in rename else op

    for blk in fn.blocks.values():
        for ins in blk.instrs:
            ins.args = tuple(ren(a) for a in ins.args)
            if ins.target in rename:
                ins.target = rename[ins.target]
        t = blk.term
        if isinstance(t, Branch):
            t.cond = ren(t.cond)
        elif isinstance(t, Return):
            t.value = ren(t.value)
    return fn
