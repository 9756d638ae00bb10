"""Hoist calls out of ``for`` loops over sequences: one batched call for all items.

``for c in node.children: total += f(c)`` calls ``f`` once per trip.  When a
call's arguments are the loop item or loop-invariant values (variables the loop
does not assign, and expressions of them that cannot fail, such as ``depth + 1``:
those move before the loop with the call), and the call is
in the block that every trip enters (before any branch, ``break`` or
``return``), the call is made once before the loop, over the items of every
lane laid end to end (``map_call``), and the loop reads its trip's result
(``getitem`` of the ragged per-lane result by the trip counter).  A batch of
n-ary trees then walks in as many call levels as it is deep.  A method call
through the function's ``self`` (or ``cls``), ``self.f(c)``, is hoisted the
same way (``map_method``): one call of ``f`` over all items when it is a user
function, else the method itself over all items at once.

Guarantees: the callee runs on exactly the (lane, item) pairs the loop would
call it on -- every item of the sequence, since every trip reaches the call --
with the same arguments; each trip sees the result of its own item.  Only the
order of calls changes, which per-sample code cannot observe (calls have no
side effects a caller can see).
"""
from __future__ import annotations

import re

from ..ir import Function, Instr, Var, Const, Jump, Branch, is_temp
from .if_conversion import speculatable
from .loops import find_loops
from .merge_calls import method_receiver

_COUNTER = re.compile(r"^\$for(\d+)_i$")


def hoist_loop_calls(fn: Function) -> Function:
    find_loops(fn)
    loops = fn.annotations["loops"]
    preds = fn.predecessors()
    for header, loop in loops.items():
        _hoist(fn, header, loop, preds)
    return fn


def _loop_shape(fn, header, loop, preds):
    """(counter, sequence, body entry, preheader) of a frontend ``for`` over a sequence, or None."""
    blk = fn.blocks[header]
    t = blk.term
    if not isinstance(t, Branch) or t.kind != "for" or t.if_true not in loop.blocks:
        return None
    test = next((i for i in blk.instrs if i.target == getattr(t.cond, "name", None)), None)
    if test is None or test.op != "lt" or not isinstance(test.args[0], Var):
        return None
    m = _COUNTER.match(test.args[0].name)
    if not m:
        return None
    seq = f"$for{m.group(1)}_seq0"
    outside = [p for p in preds[header] if p not in loop.blocks]
    if len(outside) != 1 or not isinstance(fn.blocks[outside[0]].term, Jump):
        return None
    pre = fn.blocks[outside[0]]
    if not any(i.target == seq for i in pre.instrs):
        return None
    return test.args[0].name, seq, t.if_true, pre


def _hoist(fn, header, loop, preds):
    shape = _loop_shape(fn, header, loop, preds)
    if shape is None:
        return
    counter, seq, body_id, pre = shape
    body = fn.blocks[body_id]
    assigned_in_loop = {i.target for b in loop.blocks for i in fn.blocks[b].instrs if i.target}
    # The trip's item: `$t = getitem(seq, counter)` then possibly `c = copy($t)` (c assigned once).
    items = set()
    for ins in body.instrs:
        if ins.op == "getitem" and ins.args == (Var(seq), Var(counter)):
            items.add(ins.target)
        elif ins.op == "copy" and isinstance(ins.args[0], Var) and ins.args[0].name in items:
            defs = [i for b in loop.blocks for i in fn.blocks[b].instrs if i.target == ins.target]
            if len(defs) == 1:
                items.add(ins.target)
    if not items:
        return
    receiver = method_receiver(fn)
    invariant = _invariant_definitions(body, assigned_in_loop)
    new_instrs, moved = [], set()
    for ins in body.instrs:
        mapped = f"$map{header}_{len(pre.instrs)}"
        hoisted = _hoisted_call(ins, mapped, seq, items, assigned_in_loop, invariant) \
            or _hoisted_method_call(ins, mapped, seq, items, assigned_in_loop, invariant, receiver)
        if hoisted is not None:
            for t in _definitions_needed(hoisted.args, invariant):
                if t not in moved:
                    pre.instrs.append(invariant[t])
                    moved.add(t)
            pre.instrs.append(hoisted)
            new_instrs.append(Instr("getitem", ins.target, (Var(mapped), Var(counter)), {}, ins.line))
        else:
            new_instrs.append(ins)
    body.instrs = [i for i in new_instrs if i.target not in moved]


def _invariant_definitions(body, assigned_in_loop):
    """The temporaries of ``body`` computed from loop-invariant values alone by operations that
    cannot fail (``f(c, depth + 1)``'s ``depth + 1``): ``{temporary: its instruction}``.  They
    may run before the loop, on every lane that reaches it, as if-conversion runs an arm."""
    invariant = {}
    for ins in body.instrs:
        if ins.target is not None and is_temp(ins.target) and speculatable(ins) and all(
                isinstance(a, Const) or a.name in invariant or a.name not in assigned_in_loop for a in ins.args):
            invariant[ins.target] = ins
    return invariant


def _definitions_needed(args, invariant):
    """The invariant temporaries that ``args`` read, directly or not, each after those it reads."""
    out = []

    def visit(a):
        if isinstance(a, Var) and a.name in invariant and a.name not in out:
            for b in invariant[a.name].args:
                visit(b)
            out.append(a.name)
    for a in args:
        visit(a)
    return out


def _hoisted_call(ins, mapped, seq, items, assigned_in_loop, invariant):
    """``map_call`` for ``f(..., item, ...)``, or None."""
    if ins.op != "call" or "groups" in ins.attrs or not _hoistable(ins, items, assigned_in_loop, invariant):
        return None
    pos = _item_position(ins.args, items)
    if pos is None:
        return None
    others = tuple(a for k, a in enumerate(ins.args) if k != pos)
    return Instr("map_call", mapped, (Var(seq),) + others, {**ins.attrs, "item_pos": pos}, ins.line)


def _hoisted_method_call(ins, mapped, seq, items, assigned_in_loop, invariant, receiver):
    """``map_method`` for ``self.f(..., item, ...)`` (positional arguments only), or None."""
    if ins.op != "method" or receiver is None or ins.args[:1] != (Var(receiver),) or "groups" in ins.attrs \
            or ins.attrs.get("kw") or not _hoistable(ins, items, assigned_in_loop, invariant):
        return None
    pos = _item_position(ins.args[1:], items)
    if pos is None:
        return None
    others = tuple(a for k, a in enumerate(ins.args[1:]) if k != pos)
    return Instr("map_method", mapped, (Var(receiver), Var(seq)) + others,
                 {"name": ins.attrs["name"], "item_pos": pos}, ins.line)


def _item_position(args, items):
    """The position of the one argument that is the trip's item, or None."""
    pos = [k for k, a in enumerate(args) if isinstance(a, Var) and a.name in items]
    return pos[0] if len(pos) == 1 else None


def _hoistable(ins, items, assigned_in_loop, invariant):
    """Whether a call's operands are the item, constants, values the loop does not assign, or
    ``invariant`` temporaries (which move before the loop with the call)."""
    for a in ins.args:
        if isinstance(a, Const) or a.name in items or a.name in invariant:
            continue
        if a.name in assigned_in_loop or a.name.startswith("$t"):
            return False
    return ins.target is not None
