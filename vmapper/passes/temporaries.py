"""Classify expression temporaries.

Guarantees: afterwards every variable named ``$t…`` is defined in one block
and used only after its definition in that same block, so the runtime may keep it out
of the variable environment and store it without a mask.  A temporary that
escapes its block (an operand evaluated before a short-circuit or a call with
branches) is renamed to ``$v…`` and treated as an ordinary variable.
"""
from __future__ import annotations

from ..ir import Branch, Function, Raise, Return, Var, is_temp


def classify_temporaries(fn: Function) -> Function:
    def_block, use_blocks = {}, {}
    for b, blk in fn.blocks.items():
        for ins in blk.instrs:
            for u in ins.uses():
                use_blocks.setdefault(u, set()).add(b)
            if ins.target and ins.target.startswith(("$t", "$v")):
                def_block.setdefault(ins.target, set()).add(b)
        for u in blk.term.uses():
            use_blocks.setdefault(u, set()).add(b)
    local = {t for t, bs in def_block.items() if len(bs) == 1 and use_blocks.get(t, set()) <= bs
             and _defined_before_use(fn.blocks[next(iter(bs))], t)}
    rename = {t: "$v" + t[2:] for t in def_block if is_temp(t) and t not in local}
    # frontend values made block-local by earlier passes (e.g. if-converted `and`) become temporaries
    rename.update({t: "$t" + t[2:] for t in local if t.startswith("$v")})
    if not rename:
        return fn

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
        elif isinstance(t, Raise):
            t.parts = tuple(p if type(p) is str else (ren(p[0]),) + p[1:] for p in t.parts)
    return fn


def _defined_before_use(blk, name):
    for ins in blk.instrs:
        if name in ins.uses():
            return False
        if ins.target == name:
            return True
    return False
