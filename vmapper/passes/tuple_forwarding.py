"""Forward tuple elements: ``a, b = x, y`` becomes plain copies, no tuple.

For ``t = tuple(e0, e1, ...)`` with ``t`` a temporary, each element is first
copied into a fresh temporary (so a later reassignment of a named operand,
as in ``x, y = y, x``, cannot change what the tuple held), reads
``getitem(t, k)`` with a constant ``k`` in the same block become copies of
element ``k``, a ``check_len(t, n)`` with the right ``n`` is dropped, and the
tuple itself is dropped when nothing else uses it.  Reads of constant tuples
(``a, b = 0.0, 1.0``) fold to constants.

Guarantees: every variable receives the same value as before; an unpacking
of the wrong length still raises (its check is kept, and so is the tuple).
"""
from __future__ import annotations

from ..ir import Const, Function, Instr, Var, is_temp


def forward_tuples(fn: Function) -> Function:
    for blk in fn.blocks.values():
        blk.instrs = _forward_block(blk.instrs, blk.id)
    return fn


def _fold_constant(ins):
    """``getitem``/``check_len`` of a constant tuple, folded (None: leave the instruction)."""
    base = ins.args[0] if ins.args else None
    if not (isinstance(base, Const) and type(base.value) is tuple):
        return None
    if ins.op == "check_len" and ins.attrs.get("n") == len(base.value):
        return []
    if ins.op == "getitem" and len(ins.args) == 2 and isinstance(ins.args[1], Const) \
            and isinstance(ins.args[1].value, int) and -len(base.value) <= ins.args[1].value < len(base.value):
        return [Instr("copy", ins.target, (Const(base.value[ins.args[1].value]),), {}, ins.line)]
    return None


def _forward_block(instrs, bid):
    folded = []
    for ins in instrs:
        f = _fold_constant(ins)
        folded.extend([ins] if f is None else f)
    instrs = folded
    unpacked = {ins.args[0].name for ins in instrs
                if ins.op == "getitem" and ins.args and isinstance(ins.args[0], Var)}
    tuples = {ins.target: ins for ins in instrs
              if ins.op == "tuple" and ins.target and is_temp(ins.target) and ins.target in unpacked}
    if not tuples:
        return instrs
    elems = {}
    out = []
    for k, ins in enumerate(instrs):
        if ins.op == "tuple" and ins.target in tuples:
            names = []
            for j, a in enumerate(ins.args):
                name = f"$t_tup{bid}_{k}_{j}"
                out.append(Instr("copy", name, (a,), {}, ins.line))
                names.append(name)
            elems[ins.target] = names
            out.append(ins)
            continue
        base = ins.args[0] if ins.args else None
        if isinstance(base, Var) and base.name in elems:
            names = elems[base.name]
            if ins.op == "getitem" and len(ins.args) == 2 and isinstance(ins.args[1], Const) \
                    and isinstance(ins.args[1].value, int) and -len(names) <= ins.args[1].value < len(names):
                out.append(Instr("copy", ins.target, (Var(names[ins.args[1].value]),), {}, ins.line))
                continue
            if ins.op == "check_len" and ins.attrs.get("n") == len(names):
                continue
        out.append(ins)
    # Drop tuples that nothing reads any more (their elements live on as temporaries).
    used = {u for ins in out for u in ins.uses()}
    return [ins for ins in out if not (ins.op == "tuple" and ins.target in elems and ins.target not in used)]
