"""Blocks prepared once per program for the executor's inner loop.

``run_block`` runs every instruction of a block once per step, ~10^3 times
per batched call, so everything about an instruction that does not depend on
the values it sees is worked out here, once: its primitive's rule, a reader
that builds its argument list (constants inline, temporaries from the block's
dict, variables from the frame's environment, with the slow path only for
what a subframe has not gathered yet or what may be unbound), whether it may
need the tape, the variables its result may alias, and the temporaries that
die after it.  ``$t = op(...); x = copy($t)`` with ``$t`` read nowhere else
becomes one step that assigns ``x``.

Plans are cached on the :class:`~vmapper.program.Program`; they hold no
runtime state, so concurrent calls share them.
"""
from __future__ import annotations

from .. import primitives
from ..ir import Branch, Const, Jump, Raise, Return, Var, is_temp

# Operations that move traced values around without computing on them (or whose
# rule is built from other traced primitives): they see Traced values as they are.
TAPE_PASSTHROUGH = frozenset({"copy", "tuple", "call", "map_call", "sum", "min", "max"})
# Operations whose array result may be the very object (or a view of) an operand,
# as in Python: ``b = a``, ``t[0]``, ``a[1:]``, ``a.T``, ``a.reshape(...)``, a call's result.
ALIASING_OPS = frozenset({"copy", "getitem", "getattr", "method", "call", "load_global", "np.asarray",
                          "tuple"})
VIEW_METHODS = frozenset({"reshape", "ravel", "transpose", "view", "squeeze", "swapaxes"})

#: ``InstrPlan.tape``: never taped; taped unless its first operand is a container; taped
TAPE_NEVER, TAPE_UNLESS_CONTAINER, TAPE_ALWAYS = 0, 1, 2
#: terminator kinds
T_JUMP, T_BRANCH, T_RETURN, T_RAISE, T_NONE = range(5)


class InstrPlan:
    __slots__ = ("ins", "op", "prim", "impl", "attrs", "read", "target", "to_temp", "line", "dying",
                 "inplace_name", "alias", "alias_temps", "alias_vars", "tape", "fresh_if_unaliased")

    def __init__(self, ins, dying):
        self.ins = ins
        self.op = op = ins.op
        self.prim = primitives.PRIMITIVES.get(op)
        # an unknown op fails when it runs (as a KeyError naming the line), not here
        self.impl = self.prim.impl if self.prim is not None else _unknown(op)
        self.attrs = ins.attrs
        self.read = make_reader(ins.args)
        self.target = ins.target
        self.to_temp = ins.target is not None and is_temp(ins.target)
        self.line = ins.line
        self.dying = tuple(dying) if dying else ()
        # the variable an in-place update writes through (checked against aliases first)
        self.inplace_name = ins.target if op == "setitem" else ins.attrs.get("inplace")
        self.alias = op in ALIASING_OPS and (op != "method" or ins.attrs.get("name") in VIEW_METHODS)
        self.alias_temps = tuple(a.name for a in ins.args if isinstance(a, Var) and is_temp(a.name))
        self.alias_vars = frozenset(a.name for a in ins.args if isinstance(a, Var) and not is_temp(a.name))
        # a copy of a fresh temporary is fresh (no alias to record)
        self.fresh_if_unaliased = op == "copy"
        if op in TAPE_PASSTHROUGH:
            self.tape = TAPE_NEVER
        elif op in ("getitem", "getattr"):
            self.tape = TAPE_UNLESS_CONTAINER
        else:
            self.tape = TAPE_ALWAYS


class BlockPlan:
    __slots__ = ("block", "instrs", "rows", "term", "term_kind", "term_read", "n_instrs", "live_out")

    def __init__(self, program, block):
        self.block = block
        last_use = program.ir.annotations.get("last_use", {}).get(block.id)
        if last_use is not None and len(last_use) != len(block.instrs):
            last_use = None  # stale: some pass changed the block afterwards
        plans, instrs, i = [], block.instrs, 0
        while i < len(instrs):
            ip = InstrPlan(instrs[i], last_use[i] if last_use is not None else ())
            if last_use is not None and i + 1 < len(instrs) and _copies_dying_temp(instrs[i], instrs[i + 1],
                                                                                   last_use[i + 1]):
                # ``$t = op(...); x = copy($t)``: op assigns x itself, one dispatch fewer
                ip.target = instrs[i + 1].target
                ip.to_temp = is_temp(ip.target)
                ip.fresh_if_unaliased = True
                i += 1
            plans.append(ip)
            i += 1
        self.instrs = tuple(plans)
        # what the executor's loop reads of each instruction, unpacked in one step
        self.rows = tuple((ip.line, ip.inplace_name, ip.read, ip.dying, ip.tape, ip.impl, ip.attrs, ip.target,
                           ip.to_temp, ip.alias, ip) for ip in plans)
        self.n_instrs = len(block.instrs)
        term = self.term = block.term
        if isinstance(term, Jump):
            self.term_kind, self.term_read = T_JUMP, None
        elif isinstance(term, Branch):
            self.term_kind, self.term_read = T_BRANCH, make_reader((term.cond,))
        elif isinstance(term, Return):
            self.term_kind, self.term_read = T_RETURN, make_reader((term.value,))
        elif isinstance(term, Raise):
            self.term_kind, self.term_read = T_RAISE, None
        else:
            self.term_kind, self.term_read = T_NONE, None
        live = program.ir.annotations.get("live_in")
        succ = block.successors()
        self.live_out = None if live is None or any(s not in live for s in succ) \
            else frozenset().union(*(live[s] for s in succ)) | {"$ret"}


def _copies_dying_temp(ins, nxt, nxt_dying):
    """Whether ``nxt`` is ``x = copy(t)`` of the temporary ``ins`` assigns, read nowhere else."""
    return (nxt.op == "copy" and not nxt.attrs and nxt.target is not None and ins.target is not None
            and is_temp(ins.target) and len(nxt.args) == 1 and isinstance(nxt.args[0], Var)
            and nxt.args[0].name == ins.target and ins.target in nxt_dying
            and ins.op in primitives.PRIMITIVES and nxt.line == ins.line)


def _unknown(op):
    def impl(ctx, args, attrs):  # registered since the plan was made, or a KeyError naming the op
        return primitives.PRIMITIVES[op].impl(ctx, args, attrs)
    return impl


def make_reader(operands):
    """``read(temps, env, undef, slow) -> [values]`` for these operands.

    A temporary missing from ``temps`` raises KeyError, and a variable not in
    ``env`` or possibly unbound goes through ``slow(name)`` (which gathers it
    from a parent frame or raises the unbound-variable error).
    """
    ns, parts = {}, []
    for k, a in enumerate(operands):
        if isinstance(a, Const):
            ns[f"K{k}"] = a.value
            parts.append(f"K{k}")
        elif is_temp(a.name):
            parts.append(f"T[{a.name!r}]")
        else:
            n = repr(a.name)
            parts.append(f"(E[{n}] if {n} in E and {n} not in U else S({n}))")
    src = f"def read(T, E, U, S):\n    return [{', '.join(parts)}]\n"
    exec(compile(src, "<vmapper block reader>", "exec"), ns)
    return ns["read"]


def block_plan(program, block) -> BlockPlan:
    """The plan of ``block`` (made on first use, then cached on the program)."""
    cache = program.__dict__.get("_block_plans")
    if cache is None:
        cache = program.__dict__.setdefault("_block_plans", {})
    plan = cache.get(block.id)
    if plan is None or plan.block is not block or plan.n_instrs != len(block.instrs):
        plan = cache[block.id] = BlockPlan(program, block)
    return plan
