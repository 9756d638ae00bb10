"""If-conversion: small branches whose arms are safe become selects.

For a block ``H`` ending in ``branch c ? T : F`` where each arm is a single
block (or absent) that jumps to the same join ``J``, holds at most
:data:`MAX_ARM_INSTRS` instructions, and only safe elementwise operations
(no calls, no operation that can raise on some lanes), the arms' code is
moved into ``H`` with their assignments renamed to temporaries, followed by
``v = select(truth(c), v_T, v_F)`` for every variable an arm assigns, and
``H`` jumps to ``J``.  This is what a human does by hand with ``np.where``:
one select instead of two masked stores and two mask updates.

Guarantees: per-lane results are unchanged.  Both arms now run on every lane
of ``H``'s mask, so conversion happens only when running an arm on a lane
that would not have taken it cannot fail for that lane's value (a failure that
depends on a type, such as numpy's ``-`` of a bool, would fail on every lane
alike: each moved instruction carries the arm's condition in ``guards``, and the
runtime reports such a failure on the lanes that take the arm only, or on none:
``runtime/speculation.py``) nor read a variable that may
be unbound there (every variable an arm reads is definitely assigned at the
branch, by a must-be-assigned data-flow analysis) nor hold ``None`` there (an
arm whose operations read a variable that may be assigned ``None`` stays a
branch), and every variable an arm assigns is definitely assigned before the
branch or assigned in both arms.  A branch on a test of what a value is (``is None``
of an argument, a shape, a dtype, a comparison with a string: :func:`type_test_results`)
is not converted: its arms may be valid only for the values that pass it.
"""
from __future__ import annotations

from ..ir import Branch, Const, Function, Instr, Jump, Var, is_temp
from .. import primitives
from .cfg_cleanup import cleanup_cfg
from .taint import tainted_targets

MAX_ARM_INSTRS = 12
_SAFE_STRUCTURAL = {"copy", "tuple", "truth", "select"}
_DIVISIONS = {"truediv", "floordiv", "mod"}
_EXTREMES = {"min", "max"}  # of one sequence: an empty one raises
#: Operations whose result has an integer operand's dtype: numpy raises OverflowError when a
#: Python int constant does not fit it (``x + 1000`` with an int8 ``x``, ``x - 300`` with uint8).
_INT_ARITHMETIC = {"add", "sub", "mul", "floordiv", "mod", "pow", "bitand", "bitor", "bitxor",
                   "lshift", "rshift", "np.add", "np.subtract", "np.multiply", "np.floor_divide",
                   "np.remainder", "np.fmod", "np.power", "np.maximum", "np.minimum", "np.fmax",
                   "np.fmin", "np.bitwise_and", "np.bitwise_or", "np.bitwise_xor"}


def _narrow_int_may_reject(arg):
    """Whether ``arg`` is an int constant that some integer dtype cannot hold (int8 holds
    -128..127, uint8 0..255: only 0..127 fits every one)."""
    return isinstance(arg, Const) and type(arg.value) is int and not 0 <= arg.value <= 127


def if_convert(fn: Function) -> Function:
    changed = True
    while changed:
        changed = False
        defined = definitely_assigned(fn)
        preds = fn.predecessors()
        maybe_none = may_hold_none(fn)
        type_tests = type_test_results(fn, maybe_none)
        for h in sorted(fn.blocks):
            if _try_convert(fn, h, preds, defined, maybe_none, type_tests):
                cleanup_cfg(fn)
                changed = True
                break
    return fn


def definitely_assigned(fn: Function) -> dict:
    """For each block, the variables assigned on every path from the entry to its start."""
    defs = {b: {i.target for i in blk.instrs if i.target} for b, blk in fn.blocks.items()}
    preds = fn.predecessors()
    universe = set(fn.params).union(*defs.values())
    state = {b: set(universe) for b in fn.blocks}
    state[fn.entry] = set(fn.params)
    changed = True
    while changed:
        changed = False
        for b in sorted(fn.blocks):
            if b == fn.entry:
                continue
            ps = preds[b]
            new = set.intersection(*[state[p] | defs[p] for p in ps]) if ps else set()
            if new != state[b]:
                state[b] = new
                changed = True
    return state


def may_hold_none(fn: Function) -> set:
    """Variables that may hold ``None`` on some lane: assigned ``None``, or copied or
    selected from such a variable.  ``best is None or v > best`` must not compare ``v``
    with ``None`` on the lanes where ``best`` is still None."""
    def spreads(ins, maybe_none):
        if ins.op not in ("copy", "select"):
            return False
        sources = ins.args[1:] if ins.op == "select" else ins.args
        return any(isinstance(a, Const) and a.value is None or isinstance(a, Var) and a.name in maybe_none
                   for a in sources)
    return tainted_targets(fn, (), spreads)


_SHAPE_ATTRS = ("shape", "ndim", "size", "dtype")
_STRING_TESTS = ("eq", "ne", "contains")


def _holds_str(value):
    if isinstance(value, (tuple, list, frozenset, set)):
        return any(isinstance(v, str) for v in value)
    return isinstance(value, str)


def type_test_results(fn: Function, maybe_none) -> set:
    """Variables computed from a test of what a value is rather than of its number: ``v is
    None`` (of a ``v`` the function never sets to None itself: an argument, a global), its
    shape or dtype, or a comparison with a string (``mode == "scale"``, ``kind in ("a", "b")``:
    an option, usually the same on every lane).  A branch on such a test guards arms that
    only make sense for the values that pass it (``if scale is not None: z = x * scale``); it
    stays a branch, which runs only the arm (or arms) its lanes pick."""
    def seeds(ins):
        if ins.op in ("is", "is_not"):
            return not any(isinstance(a, Var) and a.name in maybe_none for a in ins.args)
        if ins.op in _STRING_TESTS:
            return any(isinstance(a, Const) and _holds_str(a.value) for a in ins.args)
        return ins.op == "getattr" and ins.attrs.get("name") in _SHAPE_ATTRS

    def spreads(ins, tainted):
        return seeds(ins) or any(u in tainted for u in ins.uses())
    return tainted_targets(fn, (), spreads)


def speculatable(ins: Instr) -> bool:
    """Whether ``ins`` may run on lanes that would not run it: it cannot fail (or raise) there.
    Types are not known here, so an operation that fails for some dtype counts as failing."""
    if ins.op in _SAFE_STRUCTURAL:
        return True
    prim = primitives.PRIMITIVES.get(ins.op)
    if prim is None or not prim.elementwise:
        return False
    if ins.op in _INT_ARITHMETIC and any(_narrow_int_may_reject(a) for a in ins.args):
        return False
    if ins.op in _DIVISIONS:
        d = ins.args[1]
        return isinstance(d, Const) and isinstance(d.value, (int, float)) and d.value != 0 \
            and not isinstance(d.value, bool)
    if ins.op in _EXTREMES and len(ins.args) == 1:
        return False
    return not prim.may_fail


def _arm(fn, b, h, join, preds, maybe_none):
    """The arm's block if it is convertible (single pred ``h``, jumps to ``join``), else False."""
    if b == join:
        return None
    blk = fn.blocks[b]
    if preds[b] != [h] or not isinstance(blk.term, Jump) or blk.term.target != join:
        return False
    if len(blk.instrs) > MAX_ARM_INSTRS or not all(speculatable(i) for i in blk.instrs):
        return False
    if any(u in maybe_none for i in blk.instrs if i.op not in _SAFE_STRUCTURAL for u in i.uses()):
        return False
    return blk


def _try_convert(fn, h, preds, defined, maybe_none, type_tests):
    blk = fn.blocks[h]
    t = blk.term
    if not isinstance(t, Branch) or t.kind in ("while", "for", "assert"):
        return False
    if isinstance(t.cond, Var) and t.cond.name in type_tests:
        return False
    join = _join_of(fn, t)
    if join is None:
        return False
    arms = [_arm(fn, t.if_true, h, join, preds, maybe_none), _arm(fn, t.if_false, h, join, preds, maybe_none)]
    if any(a is False for a in arms) or all(a is None for a in arms):
        return False
    avail = set(defined[h]) | {i.target for i in blk.instrs if i.target}
    assigned = [set() if a is None else {i.target for i in a.instrs if i.target and not is_temp(i.target)}
                for a in arms]
    for a, mine in zip(arms, assigned):
        if a is None:
            continue
        local = set()
        for ins in a.instrs:
            if any(u not in avail and u not in local for u in ins.uses() if not is_temp(u)):
                return False
            if ins.target:
                local.add(ins.target)
    for v in assigned[0] ^ assigned[1]:
        if v not in avail:
            return False
    # Rewrite: arms' code into h with renamed assignments, then one select per variable.
    counter = [0]

    def fresh():
        counter[0] += 1
        return f"$t_ifc{h}_{len(blk.instrs)}_{counter[0]}"

    cond = fresh()
    line = t.line
    blk.instrs.append(Instr("truth", cond, (t.cond,), {}, line))
    finals = []
    for taken, a in zip((True, False), arms):
        rename = {}
        if a is not None:
            for ins in a.instrs:
                args = tuple(Var(rename[x.name]) if isinstance(x, Var) and x.name in rename else x
                             for x in ins.args)
                target = ins.target
                if target is not None:
                    rename[target] = fresh()
                    target = rename[target]
                guards = tuple((rename.get(c, c), t) for c, t in ins.guards)  # (an inner if's, renamed)
                blk.instrs.append(Instr(ins.op, target, args, ins.attrs, ins.line, guards + ((cond, taken),)))
        finals.append(rename)
    for v in sorted(assigned[0] | assigned[1]):
        tv = Var(finals[0].get(v, v))
        fv = Var(finals[1].get(v, v))
        # (a merged call's argument, passes/merge_branch_calls.py: its errors say so)
        attrs = {"merged_call_argument": True} if v.startswith("$armarg") else {}
        blk.instrs.append(Instr("select", v, (Var(cond), tv, fv), attrs, line))
    blk.term = Jump(join, line)
    for a in arms:
        if a is not None:
            del fn.blocks[a.id]
    return True


def _join_of(fn, t):
    """The common successor of the two arms (an arm may be the join itself)."""
    def succ(b):
        term = fn.blocks[b].term
        return term.target if isinstance(term, Jump) else None
    a, b = t.if_true, t.if_false
    if succ(a) is not None and (succ(a) == b or succ(a) == succ(b)):
        return succ(a)
    if succ(b) == a:
        return a
    return None
