"""Merge the calls in the two arms of a per-lane ``if`` into one call after them.

``if x > t: return f(node.left, x) else: return f(node.right, x)`` makes two
calls, each on the lanes of its arm.  Under recursion each of them makes two
again, so a batch that walks decision trees, or searches binary trees, takes a
number of calls that grows with the paths it takes (up to one per lane and
level) instead of one per level.  When each arm of an ``if`` (or of a
conditional expression) is a single block whose calls all call the same
function, as many in each arm, with the same keywords, and no call reads
another's result, the arms are split around their calls::

    H:  sel = truth(cond); branch sel ? T : F
    T:  <T before its calls>; $armargN_c_j = copy(argument j of T's call c); jump M
    F:  <F before its calls>; the same with F's arguments; jump M
    M:  $armcallN_c = call($armargN_c_0, ...) for each c; branch sel ? T2 : F2
    T2: <T's call targets> = copy($armcallN_c); <T after its calls>; T's terminator
    F2: the same for F

so each call runs once, on the lanes of both arms, each lane with the
arguments of the arm it takes (``if_convert``, which runs next, usually turns
``T`` and ``F`` into selects, and ``merge_calls`` then makes M's calls one).
Instructions between two calls of an arm that read no call's result (and
write nothing a call reads) count as before its calls.

Guarantees: every lane calls the callee exactly when, and with the argument
values that, it did before, and then runs the rest of its own arm; only the
order of the calls changes, which per-sample code cannot observe (calls have
no side effects a caller can see).  Arms are left alone when an expression
temporary of the part before the calls is read after them, or when the
branch is not an ``if``.  One thing can differ: the arguments of the two arms are
joined into one batched value per position, so an ``int`` in one arm and a
``float`` in the other become ``float`` on both, as any variable assigned
both ways does (see README, "Semantics").
"""
from __future__ import annotations

from ..ir import Branch, Function, Instr, Jump, Var, is_temp

_KINDS = ("if", "ifexp")


def merge_branch_calls(fn: Function) -> Function:
    counter = 0
    changed = True
    while changed:
        changed = False
        preds = fn.predecessors()
        for h in sorted(fn.blocks):
            arms = _mergeable_arms(fn, h, preds)
            if arms is not None:
                counter += 1
                _split(fn, h, arms, counter)
                changed = True
                break
    return fn


def _arm_calls(blk):
    """``(instructions before, calls, instructions after)`` of an arm whose calls are all plain
    ``call``s that read no earlier call's result, or None.  Instructions between two calls
    that read no call's result move before the first (they are independent of the calls)."""
    if any(ins.op in ("method", "map_call", "map_method") or "groups" in ins.attrs for ins in blk.instrs):
        return None
    calls = [k for k, ins in enumerate(blk.instrs) if ins.op == "call"]
    if not calls or any(blk.instrs[k].target is None for k in calls):
        return None
    results, read, before, between = set(), set(), blk.instrs[:calls[0]], []
    for ins in blk.instrs[calls[0]:calls[-1] + 1]:
        if any(u in results for u in ins.uses()):
            return None
        if ins.op == "call":
            results.add(ins.target)
            read.update(ins.uses())
        elif ins.target in read or ins.target in results:
            return None  # (moved before an earlier call, it would change what that call reads)
        else:
            between.append(ins)
    pre = before + between
    post = blk.instrs[calls[-1] + 1:]
    temps = {i.target for i in pre if i.target is not None and is_temp(i.target)}
    if any(u in temps for u in [u for i in post for u in i.uses()] + list(blk.term.uses())):
        return None
    return pre, [blk.instrs[k] for k in calls], post


def _mergeable_arms(fn, h, preds):
    t = fn.blocks[h].term
    if not isinstance(t, Branch) or t.kind not in _KINDS or t.if_true == t.if_false:
        return None
    arms = []
    for b in (t.if_true, t.if_false):
        blk = fn.blocks[b]
        if preds[b] != [h] or blk.term is None:
            return None
        parts = _arm_calls(blk)
        if parts is None:
            return None
        arms.append((b, parts))
    calls_t, calls_f = arms[0][1][1], arms[1][1][1]
    if len(calls_t) != len(calls_f):
        return None
    callee = calls_t[0].attrs["callee"]
    for ct, cf in zip(calls_t, calls_f):
        if ct.attrs["callee"] is not callee or cf.attrs["callee"] is not callee \
                or len(ct.args) != len(cf.args) or _other_attrs(ct) != _other_attrs(cf):
            return None
    return arms


def _other_attrs(ins):
    return {k: v for k, v in ins.attrs.items() if k != "callee"}


def _split(fn, h, arms, n):
    head = fn.blocks[h]
    sel = f"$armsel{n}"
    head.instrs.append(Instr("truth", sel, (head.term.cond,), {}, head.term.line))
    head.term = Branch(Var(sel), head.term.if_true, head.term.if_false, head.term.line, head.term.kind)
    merge_id = max(fn.blocks) + 1
    after = []
    for side, (b, (pre, calls, post)) in enumerate(arms):
        blk = fn.blocks[b]
        copies = [Instr("copy", f"$armarg{n}_{c}_{j}", (a,), {}, ins.line)
                  for c, ins in enumerate(calls) for j, a in enumerate(ins.args)]
        results = [Instr("copy", ins.target, (Var(f"$armcall{n}_{c}"),), {}, ins.line)
                   for c, ins in enumerate(calls)]
        rest_id = merge_id + 1 + side
        fn.blocks[rest_id] = type(blk)(rest_id, results + post, blk.term, blk.label)
        after.append(rest_id)
        blk.instrs = pre + copies
        blk.term = Jump(merge_id, calls[0].line)
    merged = [Instr("call", f"$armcall{n}_{c}", tuple(Var(f"$armarg{n}_{c}_{j}") for j in range(len(ins.args))),
                    dict(ins.attrs), ins.line) for c, ins in enumerate(arms[0][1][1])]
    fn.blocks[merge_id] = type(head)(merge_id, merged, Branch(Var(sel), after[0], after[1], head.term.line,
                                                               head.term.kind), head.label)
