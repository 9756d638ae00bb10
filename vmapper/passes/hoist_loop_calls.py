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
function, else the method itself over all items at once.  A loop over child
indices, ``for i in range(node.num_children): ... f(node.child(i))`` (or
``range(len(node.children))`` and ``node.children[i]``), is the same loop over
``node.children`` and hoists the same way, as does
``for c in reversed(node.children)``.

Guarantees: the callee runs on exactly the (lane, item) pairs the loop would
call it on -- every item of the sequence, since every trip reaches the call and
the loop leaves only from its header (no ``break``, ``return`` or ``raise``
inside: a lane that leaves early never calls its later items) --
with the same arguments; each trip sees the result of its own item.  Only the
order of calls changes, which per-sample code cannot observe (calls have no
side effects a caller can see), except where the loop fails: an operation that raises on
some trip ends the per-sample run before its later items' calls, which the hoisted call has
already made (their own errors, or a loop that never ends, come first).  Refusing to hoist
there would make a walk of a batch of binary trees k**depth calls instead of depth.
"""
from __future__ import annotations

import re

from ..ir import Function, Instr, Var, Const, Jump, Branch, is_temp
from .if_conversion import speculatable
from .loops import find_loops
from .merge_calls import method_receiver

_COUNTER = re.compile(r"^\$for(\d+)_i$")
_REVERSED_SEQ = re.compile(r"^_vm_reversed\d+_seq$")  # (frontend_builtins._reversed_by_index)
_NO_DEFINITION = Instr("undefined", None, (), {}, 0)


def hoist_loop_calls(fn: Function) -> Function:
    find_loops(fn)
    loops = fn.annotations["loops"]
    preds = fn.predecessors()
    for header, loop in loops.items():
        _hoist(fn, header, loop, preds)
    return fn


def _for_header(fn, header, loop, preds, test_op):
    """(loop number, test, preheader) of a frontend ``for`` whose header tests ``test_op``."""
    blk = fn.blocks[header]
    t = blk.term
    if not isinstance(t, Branch) or t.kind != "for" or t.if_true not in loop.blocks:
        return None
    test = next((i for i in blk.instrs if i.target == getattr(t.cond, "name", None)), None)
    if test is None or test.op != test_op or not all(isinstance(a, Var) for a in test.args):
        return None
    m = _COUNTER.match(test.args[0].name)
    outside = [p for p in preds[header] if p not in loop.blocks]
    if not m or len(outside) != 1 or not isinstance(fn.blocks[outside[0]].term, Jump):
        return None
    return m.group(1), test, fn.blocks[outside[0]]


def _loop_shape(fn, header, loop, preds):
    """(counter, sequence, its definition to add or None, body entry, preheader, item test) of a
    frontend ``for`` over a sequence, or of a ``range`` loop over its indices (``_range_loop_shape``),
    or None.
    The item test ``(instruction, counter aliases)`` says whether it reads the trip's item."""
    loop_for_seq = _for_header(fn, header, loop, preds, "lt")
    if loop_for_seq is not None:
        k, test, pre = loop_for_seq
        seq = f"$for{k}_seq0"
        if not any(i.target == seq for i in pre.instrs):
            return None
        return (test.args[0].name, seq, None, fn.blocks[header].term.if_true, pre,
                lambda ins, counters: ins.op == "getitem" and ins.args == (Var(seq), Var(test.args[0].name)))
    return _range_loop_shape(fn, header, loop, preds)


def _range_loop_shape(fn, header, loop, preds):
    """The shape of a ``range`` loop over the indices of a sequence, each index once:
    ``for i in range(node.num_children)`` (or ``range(len(node.children))``) whose items are
    ``node.child(i)`` or ``node.children[i]`` (the sequence is
    ``node.children``, read before the loop: ``node`` is the value whose ``num_children`` the
    range took, as neither the loop nor the rest of the preheader assigns it), or the frontend's
    ``for t in reversed(s)``, ``for j in range(len(s) - 1, -1, -1): t = s[j]``."""
    found = _for_header(fn, header, loop, preds, "range_cond")
    if found is None:
        return None
    k, test, pre = found
    counter, stop, step = (a.name for a in test.args)
    if (stop, step) != (f"$for{k}_stop", f"$for{k}_step"):
        return None
    defs = {i.target: (pos, i) for pos, i in enumerate(pre.instrs) if i.target is not None}

    def definition(operand):
        """The instruction that computed ``operand``, through the ``int()`` the frontend puts on
        a range's bounds (a count of children or an index is an int already)."""
        at, ins = defs.get(operand.name, (None, None)) if isinstance(operand, Var) else (None, None)
        while ins is not None and ins.op == "int" and len(ins.args) == 1 and isinstance(ins.args[0], Var):
            at, ins = defs.get(ins.args[0].name, (None, None))
        return (at, ins) if ins is not None else (None, _NO_DEFINITION)

    start, stop_def, step_def = (definition(Var(v))[1] for v in (counter, stop, step))
    assigned_in_loop = {i.target for b in loop.blocks for i in fn.blocks[b].instrs if i.target}
    body = fn.blocks[header].term.if_true
    if (start.args, step_def.args) == ((Const(0),), (Const(1),)) and stop_def.op == "copy":
        at, count = definition(stop_def.args[0])
        if count.op == "len":  # range(len(node.children))
            at, count = definition(count.args[0])
            if count.attrs.get("name") != "children":
                return None
        elif count.attrs.get("name") != "num_children":
            return None
        if count.op != "getattr" or not isinstance(count.args[0], Var):
            return None
        node = count.args[0]
        if node.name in assigned_in_loop or any(i.target == node.name for i in pre.instrs[at + 1:]):
            return None
        seq = f"$for{k}_seq0"
        return (counter, seq, Instr("getattr", seq, (node,), {"name": "children"}, count.line), body, pre,
                _child_item_test(node))
    if (stop_def.args, step_def.args) == ((Const(-1),), (Const(-1),)) and start.op == "copy":
        last = definition(start.args[0])[1]
        length = definition(last.args[0])[1] if last.op == "sub" and last.args[1:] == (Const(1),) else _NO_DEFINITION
        seq = length.args[0].name if length.op == "len" and isinstance(length.args[0], Var) else ""
        if not _REVERSED_SEQ.match(seq) or seq in assigned_in_loop:
            return None
        return (counter, seq, None, body, pre,
                lambda ins, counters: ins.op == "getitem" and len(ins.args) == 2 and ins.args[0] == Var(seq)
                and isinstance(ins.args[1], Var) and ins.args[1].name in counters)
    return None


def _child_item_test(node):
    """The item test of a loop over ``node``'s child indices: ``node.child(i)``, or
    ``node.children[i]`` (a read of ``node.children`` in the body, then its item ``i``)."""
    children = set()

    def is_item(ins, counters):
        if ins.op == "getattr" and ins.attrs.get("name") == "children" and ins.args == (node,):
            children.add(ins.target)
            return False
        index = ins.args[-1] if len(ins.args) == 2 else None
        if not (isinstance(index, Var) and index.name in counters):
            return False
        if ins.op == "method":
            return ins.attrs.get("name") == "child" and not ins.attrs.get("kw") and ins.args[0] == node
        return ins.op == "getitem" and isinstance(ins.args[0], Var) and ins.args[0].name in children
    return is_item


def _hoist(fn, header, loop, preds):
    if any(src != header for src, _ in loop.exits):
        return  # a break, return or raise may end the loop early: later items are never called
    shape = _loop_shape(fn, header, loop, preds)
    if shape is None:
        return
    counter, seq, seq_def, body_id, pre, is_item = shape
    body = fn.blocks[body_id]
    assigned_in_loop = {i.target for b in loop.blocks for i in fn.blocks[b].instrs if i.target}
    # The trip's item (`$t = getitem(seq, counter)`, or `node.child(i)`) then possibly
    # `c = copy($t)`; the counter too may be copied (`i`).  Copies count if assigned once.
    counters, items = {counter}, set()
    for ins in body.instrs:
        if is_item(ins, counters):
            items.add(ins.target)
        elif ins.op == "copy" and isinstance(ins.args[0], Var) and ins.args[0].name in items | counters:
            defs = [i for b in loop.blocks for i in fn.blocks[b].instrs if i.target == ins.target]
            if len(defs) == 1:
                (items if ins.args[0].name in items else counters).add(ins.target)
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
            if seq_def is not None:
                pre.instrs.append(seq_def)
                seq_def = None
            for t in _definitions_needed(hoisted.args, invariant):
                if t not in moved:
                    pre.instrs.append(invariant[t])
                    moved.add(t)
            pre.instrs.append(hoisted)
            new_instrs.append(Instr("getitem", ins.target, (Var(mapped), Var(counter)), {}, ins.line))
        else:
            new_instrs.append(ins)
    body.instrs = _without_unread_items([i for i in new_instrs if i.target not in moved], items, fn, body)


def _without_unread_items(instrs, items, fn, body):
    """``instrs`` (the new instructions of ``body``) less the item reads, and their copies, that
    nothing reads any more: hoisted calls took their place, and an item read cannot fail."""
    while True:
        read = {name for b in fn.blocks.values() for i in (instrs if b is body else b.instrs)
                for name in i.uses()}
        read |= {name for b in fn.blocks.values() if b.term is not None for name in b.term.uses()}
        kept = [i for i in instrs if i.target not in items or i.target in read]
        if len(kept) == len(instrs):
            return kept
        instrs = kept


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
