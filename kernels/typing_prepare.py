"""The IR copy a kernel is generated from (:func:`prepare_ir`): constant
folding, unreachable-block removal and named-constant propagation."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from vmapper.ir import Block, Branch, Const, Function, Instr, Jump, Raise, Return, Var, is_temp
from vmapper import primitives

from .typing_rules import (KernelUnsupported, MSG_RANGE_EDGE, MSG_RANGE_STEP, SUPPORTED_OPS,
    is_number_const, reaches_range_edge)
def _fold_value(ins: Instr, values):
    """Evaluate an instruction on uniform literal operands as the runtime would (Python)."""
    op = ins.op
    if op == "isin":
        return values[0] in ins.attrs["values"]
    if op == "range_check":
        if any(not isinstance(v, (int, np.integer)) for v in values):
            raise TypeError(f"'{type(next(v for v in values if not isinstance(v, (int, np.integer)))).__name__}'"
                            " object cannot be interpreted as an integer")
        if values[2] == 0:
            raise ValueError(MSG_RANGE_STEP)
        if reaches_range_edge(*(int(v) for v in values)):
            raise OverflowError(MSG_RANGE_EDGE)
        return None
    if op == "tuple":
        return tuple(values)
    if op in ("not",):
        return not bool(values[0])
    if op in ("truth", "bool"):
        return bool(values[0])
    prim = primitives.PRIMITIVES[op]
    if ins.attrs.get("kw"):
        raise KernelUnsupported("keyword arguments")
    if prim.scalar is None:
        raise KernelUnsupported(f"folding '{op}'")
    return prim.scalar(*values)


def prepare_ir(fn: Function) -> Function:
    """A private copy of ``fn`` with uniform literal computations folded and dead blocks dropped.

    Instructions whose operands are all literals are evaluated as the runtime
    evaluates uniform values (with Python); a named variable whose every
    definition assigns the same literal becomes that literal where it is
    definitely assigned; a branch on a literal becomes a jump, and blocks no
    lane can reach are dropped (their types would otherwise widen the
    static types of the variables and the result).  A fold that raises ends
    its block with a :class:`Raise` of that error (the lanes that get there
    fail, as in the runtime).
    """
    blocks = {bid: Block(bid, [replace(i) for i in blk.instrs], replace(blk.term), blk.label)
              for bid, blk in fn.blocks.items()}
    for _ in range(100):
        for blk in blocks.values():
            _fold_block(blk)
        blocks = _reachable(blocks, fn.entry)
        if not _propagate_named_constants(blocks, fn.entry, set(fn.params)):
            break
    return Function(fn.name, list(fn.params), blocks, fn.entry, fn.source, fn.python_function, {})


def _fold_block(blk):
    consts = {}
    instrs = []
    term = blk.term
    for ins in blk.instrs:
        args = tuple(Const(consts[a.name]) if isinstance(a, Var) and a.name in consts else a
                     for a in ins.args)
        ins = replace(ins, args=args)
        if ins.op == "select" and isinstance(args[0], Const):
            # a uniform condition: the runtime returns the chosen value as it is (no merge)
            ins = Instr("copy", ins.target, (args[1] if bool(args[0].value) else args[2],), {}, ins.line)
            args = ins.args
        if ins.op == "copy" and isinstance(args[0], Const) and is_temp(ins.target or ""):
            consts[ins.target] = args[0].value
            continue
        if args and all(isinstance(a, Const) for a in args) and ins.op in SUPPORTED_OPS \
                and ins.op != "copy":
            vals = [a.value for a in args]
            try:
                with np.errstate(all="ignore"):
                    value = _fold_value(ins, vals)
            except KernelUnsupported:
                raise
            except Exception as exc:  # noqa: BLE001 - the per-sample error, reported per lane
                term = Raise(type(exc), str(exc) or type(exc).__name__, ins.line)
                break
            if ins.target is None:
                continue
            if type(value) is tuple:
                instrs.append(ins)
                continue
            if not (value is None or is_number_const(value)):
                raise KernelUnsupported(f"uniform value of type {type(value).__name__} at line {ins.line}")
            if is_temp(ins.target):
                consts[ins.target] = value
                continue
            ins = Instr("copy", ins.target, (Const(value),), {}, ins.line)
        if ins.target is not None:
            consts.pop(ins.target, None)  # reassigned (a temporary may be, by and/or lowering)
        instrs.append(ins)
    else:
        if isinstance(term, Branch) and isinstance(term.cond, Var) and term.cond.name in consts:
            term = replace(term, cond=Const(consts[term.cond.name]))
        if isinstance(term, Return) and isinstance(term.value, Var) and term.value.name in consts:
            term = Return(Const(consts[term.value.name]), term.line)
        if isinstance(term, Branch) and isinstance(term.cond, Const):
            term = Jump(term.if_true if bool(term.cond.value) else term.if_false, term.line)
    blk.instrs = instrs
    blk.term = term


def _reachable(blocks, entry):
    seen, stack = set(), [entry]
    while stack:
        b = stack.pop()
        if b in seen:
            continue
        seen.add(b)
        stack.extend(blocks[b].successors())
    return {b: blocks[b] for b in sorted(seen)}


def _const_key(v):
    return (type(v), v.hex() if isinstance(v, float) else repr(v))


def _propagate_named_constants(blocks, entry, params) -> bool:
    """Replace reads of variables that only ever hold one literal; True if anything changed."""
    value = {}
    bad = set(params)
    for blk in blocks.values():
        for ins in blk.instrs:
            t = ins.target
            if t is None or t in bad:
                continue
            if ins.op == "copy" and isinstance(ins.args[0], Const) and is_number_const(ins.args[0].value):
                v = ins.args[0].value
                if t in value and _const_key(value[t]) != _const_key(v):
                    bad.add(t)
                    value.pop(t)
                else:
                    value[t] = v
            else:
                bad.add(t)
                value.pop(t, None)
    if not value:
        return False
    # only where the variable is definitely assigned (elsewhere the read may fail as unbound)
    preds = {b: [] for b in blocks}
    for b, blk in blocks.items():
        for s in blk.successors():
            preds[s].append(b)
    defs = {b: {i.target for i in blk.instrs if i.target} for b, blk in blocks.items()}
    universe = set(params).union(*defs.values())
    state = {b: set(universe) for b in blocks}
    state[entry] = set(params)
    changed = True
    while changed:
        changed = False
        for b in blocks:
            if b == entry:
                continue
            new = set.intersection(*[state[p] | defs[p] for p in preds[b]]) if preds[b] else set()
            if new != state[b]:
                state[b] = new
                changed = True
    did = False

    def sub(a, have):
        nonlocal did
        if isinstance(a, Var) and a.name in value and a.name in have:
            did = True
            return Const(value[a.name])
        return a

    for b, blk in blocks.items():
        have = set(state[b])
        for ins in blk.instrs:
            new_args = tuple(sub(a, have) for a in ins.args)
            if new_args != ins.args:
                ins.args = new_args
            if ins.target:
                have.add(ins.target)
        t = blk.term
        if isinstance(t, Branch):
            t.cond = sub(t.cond, have)
        elif isinstance(t, Return):
            t.value = sub(t.value, have)
    return did


