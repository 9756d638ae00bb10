"""CFG cleanup: fold constant branches, drop unreachable blocks, thread empty jumps, merge
straight lines.

Guarantees: the program's per-lane behaviour is unchanged; no branch tests a
constant (``while True``: the edge it never takes, and the ``return None`` after
it, are gone); every remaining block is reachable from the entry; no block other
than the entry consists of a lone unconditional jump; a block whose single
successor has it as its only predecessor is merged with that successor.
"""
from __future__ import annotations

from ..ir import Branch, Const, Function, Jump


def cleanup_cfg(fn: Function) -> Function:
    _fold_constant_branches(fn)
    changed = True
    while changed:
        changed = _thread_jumps(fn) | _merge_chains(fn)
        _remove_unreachable(fn)
    return fn


def _fold_constant_branches(fn):
    for blk in fn.blocks.values():
        t = blk.term
        if isinstance(t, Branch) and isinstance(t.cond, Const) and type(t.cond.value) in (bool, int):
            blk.term = Jump(t.if_true if t.cond.value else t.if_false, t.line)


def _remove_unreachable(fn):
    seen, stack = set(), [fn.entry]
    while stack:
        b = stack.pop()
        if b in seen:
            continue
        seen.add(b)
        stack.extend(fn.blocks[b].successors())
    for b in list(fn.blocks):
        if b not in seen:
            del fn.blocks[b]


def _thread_jumps(fn):
    """Retarget edges that enter a block holding only ``jump X`` straight to X."""
    forward = {}
    for b, blk in fn.blocks.items():
        if b != fn.entry and not blk.instrs and isinstance(blk.term, Jump) and blk.term.target != b:
            forward[b] = blk.term.target

    def final(b):
        seen = set()
        while b in forward and b not in seen:
            seen.add(b)
            b = forward[b]
        return b

    changed = False
    for blk in fn.blocks.values():
        t = blk.term
        if isinstance(t, Jump):
            new = final(t.target)
            changed |= new != t.target
            t.target = new
        elif hasattr(t, "if_true"):
            nt, nf = final(t.if_true), final(t.if_false)
            changed |= (nt, nf) != (t.if_true, t.if_false)
            t.if_true, t.if_false = nt, nf
    return changed


def _merge_chains(fn):
    preds = fn.predecessors()
    changed = False
    for b in sorted(fn.blocks):
        blk = fn.blocks.get(b)
        while blk is not None and isinstance(blk.term, Jump):
            s = blk.term.target
            if s == b or s == fn.entry or len(preds.get(s, ())) != 1:
                break
            succ = fn.blocks.pop(s)
            blk.instrs.extend(succ.instrs)
            blk.term = succ.term
            for t in succ.successors():
                preds[t] = [b if p == s else p for p in preds[t]]
            changed = True
    return changed
