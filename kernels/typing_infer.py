"""Whole-function type inference over the CFG (:func:`infer_function`,
``FunctionTypes``): reverse-postorder dataflow with per-edge type joins and
unbound-variable detection."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vmapper.ir import Branch, Const, Function, Return, Var, is_temp

from .typing_rules import (CONTAINER, F64, KernelUnsupported, ST, TT, arg_type,
    const_type, is_const_collection, is_number_const, literal_type, promote)
from .typing_ops import infer_op
@dataclass
class FunctionTypes:
    fn: Function                     # the prepared IR copy
    params: list                     # ST per parameter
    block_in: dict                   # block -> {var: type} at block entry
    block_out: dict                  # block -> {var: type} at block end (None: never ends)
    plans: dict                      # (block, index) -> Plan
    result: Any                      # ST or TT of the return value
    stop_at: dict                    # block -> (index, var): a read of a never-assigned var
    maybe_unbound: set               # (block, index or 'term', var) reads that need a defined check
    flagged: set                     # variables that carry a defined flag
    order: list                      # reachable blocks in reverse post-order


def _operand_type(a, env):
    if isinstance(a, Const):
        if a.value is None:
            raise KernelUnsupported("None as a value")
        if isinstance(a.value, tuple) and all(is_number_const(v) for v in a.value):
            return TT(tuple(const_type(v) for v in a.value))
        if is_const_collection(a.value):
            return CONTAINER
        return literal_type(a.value)
    return env.get(a.name)


def _rpo(fn):
    seen, order = set(), []

    def visit(b):
        stack = [(b, iter(fn.blocks[b].successors()))]
        seen.add(b)
        while stack:
            node, it = stack[-1]
            for s in it:
                if s not in seen:
                    seen.add(s)
                    stack.append((s, iter(fn.blocks[s].successors())))
                    break
            else:
                order.append(node)
                stack.pop()
    visit(fn.entry)
    return order[::-1]


def _transfer(fn, b, env_in, plans, stop_at, final):
    env = dict(env_in)
    blk = fn.blocks[b]
    for k, ins in enumerate(blk.instrs):
        ts = []
        for a in ins.args:
            t = _operand_type(a, env)
            if t is None:  # never assigned on any path here: every lane reaching it fails
                stop_at[b] = (k, a.name)
                return None
            ts.append(t)
        try:
            plan = infer_op(ins, ts)
        except KernelUnsupported as exc:
            if final:
                raise KernelUnsupported(f"line {ins.line}: {exc}") from None
            plan = None
        plans[(b, k)] = plan
        if ins.target is not None:
            if plan is None or plan.result is None:
                env.pop(ins.target, None)
            else:
                env[ins.target] = plan.result
        if plan is not None and plan.kind == "range_type_error":
            a = ins.args[plan.extra["index"]]
            if isinstance(a, Var) and a.name in _assigned(fn):
                # typed float (or numpy bool) by a join (an int or a Python bool on some paths,
                # one type for all), its lanes may hold ints: the runtime knows which lanes fail
                raise KernelUnsupported(f"line {ins.line}: range() of a variable typed "
                                        f"{plan.extra['type'].dtype.name}")
            stop_at[b] = (k, None)
            return None
    stop_at.pop(b, None)
    t = blk.term
    if isinstance(t, Branch) and isinstance(t.cond, Var) and t.cond.name not in env:
        stop_at[b] = (len(blk.instrs), t.cond.name)
        return None
    if isinstance(t, Return) and isinstance(t.value, Var) and t.value.name not in env:
        stop_at[b] = (len(blk.instrs), t.value.name)
        return None
    plans[(b, "term")] = env
    # expression temporaries never live across an edge (passes/temporaries.py)
    return {k: v for k, v in env.items() if not is_temp(k)}


def _join_env(a, b):
    if a is None:
        return dict(b)
    out = dict(a)
    for k, v in b.items():
        out[k] = promote(out.get(k), v)
    return out


def _assigned(fn):
    """The variables some instruction of ``fn`` assigns (cached on it)."""
    hit = fn.annotations.get("assigned")
    if hit is None:
        hit = fn.annotations["assigned"] = frozenset(
            i.target for blk in fn.blocks.values() for i in blk.instrs if i.target is not None)
    return hit


def infer_function(fn: Function, arg_types) -> FunctionTypes:
    """Types of every variable at every block boundary of ``fn`` (a :func:`prepare_ir` copy)."""
    params = [arg_type(s) for s in arg_types]
    if len(params) != len(fn.params):
        raise KernelUnsupported(f"{len(arg_types)} argument types for {len(fn.params)} parameters")
    order = _rpo(fn)
    preds = {b: [] for b in fn.blocks}
    for b in order:
        for s in fn.blocks[b].successors():
            preds[s].append(b)
    base = {fn.entry: dict(zip(fn.params, params))}
    block_in = {fn.entry: dict(base[fn.entry])}
    block_out = {}
    plans, stop_at = {}, {}
    work = list(order)
    in_work = set(work)
    rounds = 0
    while work:
        rounds += 1
        if rounds > 100 * len(order) + 1000:
            raise KernelUnsupported("type inference did not converge")
        b = work.pop(0)
        in_work.discard(b)
        if b not in block_in:
            continue
        out = _transfer(fn, b, block_in[b], plans, stop_at, final=False)
        if b in block_out and out == block_out[b]:
            continue
        block_out[b] = out
        for s in fn.blocks[b].successors():
            new = base.get(s)
            new = None if new is None else dict(new)
            for p in preds[s]:
                if block_out.get(p) is not None:
                    new = _join_env(new, block_out[p])
            if new is not None and new != block_in.get(s):
                block_in[s] = new
                if s not in in_work:
                    work.append(s)
                    in_work.add(s)
    # final pass: plans with the converged types (raises what is really unsupported)
    plans, stop_at = {}, {}
    live = [b for b in order if b in block_in]
    for b in live:
        block_out[b] = _transfer(fn, b, block_in[b], plans, stop_at, final=True)
    result = None
    for b in live:
        t = fn.blocks[b].term
        if isinstance(t, Return) and block_out[b] is not None:
            if isinstance(t.value, Const) and t.value.value is None:
                raise KernelUnsupported("the function returns None")
            result = promote(result, _operand_type(t.value, plans[(b, "term")]))
    if result is None:
        result = ST(F64, False)  # every lane fails: any dtype will do
    maybe_unbound = _unbound_reads(fn, live, block_in, preds, stop_at)
    flagged = {v for (_, _, v) in maybe_unbound}
    return FunctionTypes(fn, params, block_in, block_out, plans, result, stop_at, maybe_unbound,
                         flagged, live)


def _unbound_reads(fn, live, block_in, preds, stop_at):
    """Reads of variables that are assigned on some but not all paths to them."""
    defs = {}
    for b in live:
        d = set()
        for ins in fn.blocks[b].instrs:
            if ins.target:
                d.add(ins.target)
        defs[b] = d
    universe = set(fn.params).union(*defs.values()) if defs else set(fn.params)
    state = {b: set(universe) for b in live}
    state[fn.entry] = set(fn.params)
    changed = True
    while changed:
        changed = False
        for b in live:
            if b == fn.entry:
                continue
            ps = [p for p in preds[b] if p in state]
            new = set.intersection(*[state[p] | defs[p] for p in ps]) if ps else set()
            if new != state[b]:
                state[b] = new
                changed = True
    out = set()
    for b in live:
        have = set(state[b])
        blk = fn.blocks[b]
        stop, stop_var = stop_at.get(b, (None, None))
        for k, ins in enumerate(blk.instrs):
            if stop is not None and (k > stop or k == stop and stop_var is not None):
                break
            for u in ins.uses():
                if u not in have:
                    out.add((b, k, u))
            if ins.target:
                have.add(ins.target)
        if stop is None or stop >= len(blk.instrs):
            for u in blk.term.uses():
                if u not in have:
                    out.add((b, "term", u))
    return out
