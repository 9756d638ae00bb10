"""Tell a ``linear`` which of its vectors are rows gathered from a table, and by which index.

``x = table[i]`` followed by ``W @ x + b`` (an embedding lookup and its projection) is
common, and lanes often gather the same row: in a batch of sentences, the same word.
When the pass can prove that a product's vector operand is, at the ``linear``, still the
value ``getitem(table, i)`` gave it, the term becomes ``("mm_rows", W, x, table, i)``:
the runtime may then compute the product once per distinct index and hand each lane
its row (``primitives/linear.py`` decides, at run time, from the index's values).

Guarantees: nothing is added, removed or reordered, and every variable receives the same
value as before (the term still names ``x``, whose rows the product uses; ``table`` and
``i`` only say which of those rows are equal).  The proof is local to one block: ``x`` is
assigned by that ``getitem`` (directly or through ``copy``), and no instruction between
it and the ``linear`` assigns ``x``, ``table`` or ``i``, or takes ``x`` as an operand
(which might change its rows in place).
"""
from __future__ import annotations

from ..ir import Function, Instr, Var
from ..primitives.linear import MM, MM_ROWS, OPERANDS


def mark_gathered_rows(fn: Function) -> Function:
    for blk in fn.blocks.values():
        blk.instrs = [_marked(blk.instrs, k) if ins.op == "linear" else ins
                      for k, ins in enumerate(blk.instrs)]
    return fn


def _marked(instrs, at):
    ins = instrs[at]
    terms, args, k = [], [], 0
    changed = False
    for kind in ins.attrs["terms"]:
        n = OPERANDS.get(kind, 1)
        ops = ins.args[k:k + n]
        k += n
        gathered = _gather_of(instrs, at, ops[1]) if kind == MM else None
        if gathered is not None:
            kind, ops = MM_ROWS, ops + gathered
            changed = True
        terms.append(kind)
        args.extend(ops)
    if not changed:
        return ins
    return Instr("linear", ins.target, tuple(args), {**ins.attrs, "terms": tuple(terms)}, ins.line)


def _gather_of(instrs, at, operand):
    """``(table, index)`` if ``operand`` holds, at instruction ``at``, what ``getitem(table,
    index)`` earlier in the block gave it; else None."""
    if not isinstance(operand, Var):
        return None
    name, chain, names = operand.name, set(), {operand.name}  # the copies it was made by
    for j in range(at - 1, -1, -1):
        ins = instrs[j]
        if ins.target != name:
            continue
        chain.add(j)
        if ins.op == "copy" and len(ins.args) == 1 and isinstance(ins.args[0], Var):
            name = ins.args[0].name
            names.add(name)
            continue
        if ins.op != "getitem" or len(ins.args) != 2 or ins.attrs or not all(isinstance(a, Var) for a in ins.args):
            return None
        table, index = ins.args
        watched = names | {table.name, index.name}
        for k in range(j + 1, at):
            between = instrs[k]
            if k in chain:
                continue
            if between.target in watched or any(u in names for u in between.uses()):
                return None
        return (table, index)
    return None
