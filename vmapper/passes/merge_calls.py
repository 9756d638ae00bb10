"""Merge independent calls to the same function into one batched call.

Within each block the instructions are list-scheduled along their data
dependences (read-after-write, write-after-read, write-after-write on
variables): every other ready instruction is emitted first, and when only
calls are ready, the ready calls to the same function become one
``call`` with several argument groups.  ``f(node.left) + f(node.right)``
thus runs as one call over twice the lanes, so a batch of trees is walked in
as many call levels as the trees are deep.

Guarantees: each instruction still runs after everything it depends on, on
the same lanes (all instructions of a block share its mask); results and
per-lane semantics are unchanged.  Only the order among independent
instructions, and so which of several failing operations reports first, may
change.
"""
from __future__ import annotations

from ..ir import Const, Function, Instr, Var


def merge_calls(fn: Function) -> Function:
    counter = 0
    for blk in fn.blocks.values():
        if sum(1 for i in blk.instrs if i.op == "call") < 2:
            continue
        blk.instrs, counter = _schedule(blk.instrs, counter, blk.id)
    return fn


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


def _schedule(instrs, counter, bid):
    deps = _dependences(instrs)
    done, out = set(), []
    pending = list(range(len(instrs)))
    while pending:
        ready = [k for k in pending if deps[k] <= done]
        plain = [k for k in ready if instrs[k].op != "call"]
        if plain:
            k = plain[0]
            out.append(instrs[k])
            done.add(k)
            pending.remove(k)
            continue
        groups = {}
        for k in ready:
            groups.setdefault(id(instrs[k].attrs["callee"]), []).append(k)
        for ks in groups.values():
            if len(ks) == 1:
                out.append(instrs[ks[0]])
            else:
                counter += 1
                first = instrs[ks[0]]
                tmp = f"$t_calls{bid}_{counter}"
                args = tuple(a for k in ks for a in instrs[k].args)
                out.append(Instr("call", tmp, args, {"callee": first.attrs["callee"], "groups": len(ks)},
                                 first.line))
                for j, k in enumerate(ks):
                    if instrs[k].target is not None:
                        out.append(Instr("getitem", instrs[k].target, (Var(tmp), Const(j)), {}, instrs[k].line))
            done.update(ks)
            pending = [k for k in pending if k not in ks]
    return out, counter
