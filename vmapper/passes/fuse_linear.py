"""Fuse sums of matrix products: ``W @ x + V @ y + b`` becomes one ``linear`` instruction.

Within a block, an ``add`` whose operand is a temporary made by ``matmul`` (or by an
already fused sum) and read nowhere else absorbs it, so the expression's chain of
products and sums becomes ``t = linear(W, x, V, y, b; terms=("mm", "mm", "value"))``
where its last ``add`` was.  The primitive (``primitives/linear.py``) computes the
products and the sums in the same order with the same numpy calls, so results are
bitwise those of the chain; it is one operation, and differentiated one tape entry,
instead of a product and a sum each.

Guarantees: every variable receives the same value as before, and the sums keep their
association (``(W @ x + V @ y) + b``; a right operand that is itself a sum of several
terms is not absorbed).  Instructions are fused only within one source line, and a
product moves later only past instructions of that line that assign none of its
operands, so the values it reads are the same and an error names the same line.
"""
from __future__ import annotations

from ..ir import Function, Instr, Var, is_temp

MM, VALUE = "mm", "value"


def fuse_linear(fn: Function) -> Function:
    for blk in fn.blocks.values():
        blk.instrs = _fuse_block(blk.instrs, blk.term)
    return fn


def _fuse_block(instrs, term):
    uses = {}
    for ins in instrs:
        for name in ins.uses():
            uses[name] = uses.get(name, 0) + 1
    for name in term.uses() if term is not None else ():
        uses[name] = uses.get(name, 0) + 1

    # temp -> (terms, args, indices of the instructions it absorbs, index where it is defined)
    chains = {}
    fused = {}  # index of an add -> the linear instruction that replaces it
    dropped = set()
    for i, ins in enumerate(instrs):
        if ins.op == "matmul" and len(ins.args) == 2 and not ins.attrs and ins.target and is_temp(ins.target):
            chains[ins.target] = ((MM,), ins.args, (i,), i)
            continue
        if ins.op != "add" or len(ins.args) != 2 or ins.attrs or not ins.target:
            continue
        left, right = (_chain(chains, uses, a, instrs, i, ins.line) for a in ins.args)
        if left is not None:
            terms, args, absorbed = left[0], left[1], left[2]
            if right is not None and len(right[0]) == 1:  # W @ x + V @ y: a single product
                terms, args, absorbed = terms + right[0], args + right[1], absorbed + right[2]
            else:
                terms, args = terms + (VALUE,), args + (ins.args[1],)
        elif right is not None:  # b + W @ x is W @ x + b (one sum commutes exactly)
            terms, args, absorbed = right[0] + (VALUE,), right[1] + (ins.args[0],), right[2]
        else:
            continue
        for k in absorbed:
            fused.pop(k, None)
            dropped.add(k)
        fused[i] = Instr("linear", ins.target, tuple(args), {"terms": terms}, ins.line)
        if is_temp(ins.target):
            chains[ins.target] = (terms, tuple(args), absorbed + (i,), i)
    if not fused:
        return instrs
    return [fused.get(i, ins) for i, ins in enumerate(instrs) if i in fused or i not in dropped]


def _chain(chains, uses, operand, instrs, at, line):
    """``(terms, args, absorbed)`` of a product or fused sum that ``operand`` names and the
    ``add`` at index ``at`` may absorb; None otherwise."""
    if not isinstance(operand, Var) or uses.get(operand.name) != 1 or operand.name not in chains:
        return None
    terms, args, absorbed, defined = chains[operand.name]
    if instrs[defined].line != line:
        return None
    skip = set(absorbed)
    for j in absorbed:  # each product moves to ``at``: nothing between may assign its operands
        if instrs[j].op != "matmul":
            continue
        operands = {a.name for a in instrs[j].args if isinstance(a, Var)}
        for k in range(j + 1, at):
            between = instrs[k]
            if k not in skip and (between.line != line or between.target in operands):
                return None
    return terms, tuple(args), tuple(absorbed)
