"""Merge independent calls to the same function into one batched call.

Within each block the instructions are list-scheduled along their data
dependences (read-after-write, write-after-read, write-after-write on
variables): every other ready instruction is emitted first, and when only
calls are ready, the ready calls to the same function become one
``call`` with several argument groups.  ``f(node.left) + f(node.right)``
thus runs as one call over twice the lanes, so a batch of trees is walked in
as many call levels as the trees are deep.  Calls through the object of a
method, ``self.f(node.left)`` and ``self.f(node.right)`` (``self`` or ``cls``
being the function's first parameter), merge the same way into one ``method``
instruction with several argument groups; the runtime makes it one batched
call when ``self.f`` turns out to be a user function, and runs the groups one
after another otherwise.

Guarantees: each instruction still runs after everything it depends on, on
the same lanes (all instructions of a block share its mask); results and
per-lane semantics are unchanged.  Only the order among independent
instructions, and so which of several failing operations reports first, may
change.
"""
from __future__ import annotations

from ..ir import Const, Function, Instr, Var


def method_receiver(fn: Function):
    """The function's first parameter if it is named ``self`` or ``cls`` (a method's object,
    whose ``self.f(...)`` calls may be calls of user functions), else None."""
    return fn.params[0] if fn.params and fn.params[0] in ("self", "cls") else None


def merge_calls(fn: Function) -> Function:
    counter = 0
    receiver = method_receiver(fn)
    for blk in fn.blocks.values():
        keys = [_call_key(i, receiver) for i in blk.instrs]
        merged = [k for k in keys if k is not None and keys.count(k) > 1]
        if not merged:
            continue
        blk.instrs, counter = _schedule(blk.instrs, keys, set(merged), counter, blk.id)
    return fn


def _call_key(ins, receiver):
    """What calls must share to merge (None: not a call): the callee, or for a method call
    through ``receiver``, the method's name and its keyword names (the receiver is the same
    object: no instruction between two ready calls can rebind it)."""
    if ins.op == "call" and "groups" not in ins.attrs:
        return ("call", id(ins.attrs["callee"]))
    if ins.op == "method" and receiver is not None and ins.args and ins.args[0] == Var(receiver) \
            and "groups" not in ins.attrs:
        return ("method", ins.attrs["name"], tuple(ins.attrs.get("kw") or ()), len(ins.args))
    return None


def _dependences(instrs):
    deps = [set() for _ in instrs]
    last_def, uses_since = {}, {}
    for k, ins in enumerate(instrs):
        for u in ins.uses():
            if u in last_def:
                deps[k].add(last_def[u])
        if ins.target is not None:
            t = ins.target
            if t in last_def:
                deps[k].add(last_def[t])
            deps[k].update(uses_since.get(t, ()))
        for u in ins.uses():
            uses_since.setdefault(u, set()).add(k)
        if ins.target is not None:
            last_def[ins.target] = k
            uses_since[ins.target] = set()
    return deps


def _schedule(instrs, keys, mergeable, counter, bid):
    deps = _dependences(instrs)
    done, out = set(), []
    pending = list(range(len(instrs)))
    while pending:
        ready = [k for k in pending if deps[k] <= done]
        plain = [k for k in ready if keys[k] not in mergeable]
        if plain:
            k = plain[0]
            out.append(instrs[k])
            done.add(k)
            pending.remove(k)
            continue
        groups = {}
        for k in ready:
            groups.setdefault(keys[k], []).append(k)
        for ks in groups.values():
            if len(ks) == 1:
                out.append(instrs[ks[0]])
            else:
                counter += 1
                first = instrs[ks[0]]
                tmp = f"$t_calls{bid}_{counter}"
                if first.op == "call":
                    args = tuple(a for k in ks for a in instrs[k].args)
                else:  # the receiver once, then each call's own arguments
                    args = first.args[:1] + tuple(a for k in ks for a in instrs[k].args[1:])
                out.append(Instr(first.op, tmp, args, {**first.attrs, "groups": len(ks)}, first.line))
                for j, k in enumerate(ks):
                    if instrs[k].target is not None:
                        out.append(Instr("getitem", instrs[k].target, (Var(tmp), Const(j)), {}, instrs[k].line))
            done.update(ks)
            pending = [k for k in pending if k not in ks]
    return out, counter
