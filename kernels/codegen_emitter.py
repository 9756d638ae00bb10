"""The kernel generator's ``_Emitter``: per-block control flow (edges, blocks,
inlining, stops) and the lane function, plus the liveness analysis it uses.
Per-operation emission is inherited from :mod:`.codegen_ops`."""
from __future__ import annotations

from vmapper.ir import Branch, Const, Jump, Raise, Return, is_temp
from vmapper.errors import NonTerminationError
from . import typing as kt
from .typing import TT, KernelUnsupported, BOOL
from .codegen_helpers import _CTOR
from .codegen_ops import _EmitterOps
from .interrupt import POLL_TRIPS, kernel_polls

class _Emitter(_EmitterOps):
    def __init__(self, ft: kt.FunctionTypes, exact_math: bool, count_loops: bool):
        self.ft = ft
        self.fn = ft.fn
        self.exact = exact_math
        self.count_loops = count_loops
        self.errors = {}          # (line, exc_type, message) -> code
        self.consts = {}          # key -> global name
        self.const_defs = []
        self.helpers = []         # ordered (name, S) keys
        self.vm = set()           # vmath functions imported
        self.bases = {}           # IR variable -> numba base name
        self.typed = {}           # numba variable -> dtype (initialised at entry)
        self.lines = []
        self.ntmp = 0
        self.loops = {}
        self.polls = False        # whether the lane function polls interrupt.STOP (it loops)
        self.live_in, self.dead = _liveness(self.fn, ft.order)
        self.cur = None           # (block, instruction index) being emitted
        self.inline = {}          # temporary -> (expression, ST): computed where it is used
        self.inline_ok = set()    # temporaries of the current block that may be inlined
        self.idioms = {}          # instruction index -> idiom (select_idioms), current block

    # ---- blocks, edges, the lane function -----------------------------------------------------
    def edge(self, ind, p, s, env):
        """Conversions of variables whose type changes on the edge p -> s, loop counters."""
        tin = self.ft.block_in[s]
        wrote = False
        for var, t in sorted(tin.items()):
            have = env.get(var)
            if have is None or isinstance(t, TT) or have.dtype == t.dtype or var not in self.live_in[s]:
                continue
            self.emit(ind, f"{self.vname(var, t.dtype)} = "
                           f"{self.cast(self.vname(var, have.dtype), have.dtype, t.dtype)}")
            wrote = True
        if self.count_loops and s in self.loops and p not in self.loops[s].blocks:
            self.emit(ind, f"c{s} = -1")  # the first arrival is not a trip: trips = back edges taken
            wrote = True
        self.emit(ind, f"blk = {s}")
        return wrote

    def block(self, ind, b):
        ft = self.ft
        blk = self.fn.blocks[b]
        env = dict(ft.block_in[b])
        if self.count_loops and b in self.loops:
            code = self.err(self.loops[b].line, NonTerminationError, "loop passed max_iters")
            self.emit(ind, f"c{b} += 1")
            self.emit(ind, f"if c{b} > mi:")
            self.emit(ind + 1, self.fail(code))
        if self.polls and b in self.loops:
            # Ctrl-C (kernels/interrupt.py): the lane gives up, the caller discards the results
            self.emit(ind, "tk -= 1")
            self.emit(ind, "if tk == 0:")
            self.emit(ind + 1, f"tk = {POLL_TRIPS}")
            self.emit(ind + 1, "if _stop_requested(stop):")
            self.emit(ind + 2, "blk = -1; continue")
        stop = ft.stop_at.get(b)
        self.inline = {}
        self.inline_ok = self.inlinable(b)
        self.select_idioms(b, stop)
        for k, ins in enumerate(blk.instrs):
            if stop is not None and k == stop[0]:
                if stop[1] is None:  # the failing instruction's own operands may need checks
                    for (bb, kk, u) in ft.maybe_unbound:
                        if bb == b and kk == k:
                            self.unbound_check(ind, u, ins.line)
                self.stop(ind, b, stop, ins.line)
                return
            self.cur = (b, k)
            self.instr(ind, b, k, ins, ft.plans[(b, k)], env)
            self.cur = None
        if stop is not None:
            self.stop(ind, b, stop, blk.term.line)
            return
        for (bb, kk, u) in ft.maybe_unbound:
            if bb == b and kk == "term":
                self.unbound_check(ind, u, blk.term.line)
        t = blk.term
        if isinstance(t, Jump):
            self.edge(ind, b, t.target, env)
        elif isinstance(t, Branch):
            self.emit(ind, f"if {self.truth_operand(t.cond, env)}:")
            self.edge(ind + 1, b, t.if_true, env)
            self.emit(ind, "else:")
            self.edge(ind + 1, b, t.if_false, env)
        elif isinstance(t, Return):
            res = ft.result
            if isinstance(res, TT) and isinstance(t.value, Const):
                parts = [self.operand(Const(v), env, (r.dtype,))[0] for v, r in zip(t.value.value, res.items)]
            elif isinstance(res, TT):
                have = env[t.value.name]
                parts = []
                for j, (h, r) in enumerate(zip(have.items, res.items)):
                    parts.append(self.cast(self.vname(f"{t.value.name}#{j}", h.dtype), h.dtype, r.dtype))
            else:
                expr, _ = self.operand(t.value, env, (res.dtype,))
                parts = [expr]
            self.emit(ind, "; ".join([f"r{j} = {p}" for j, p in enumerate(parts)] + ["blk = -1"]))
        elif isinstance(t, Raise):
            msg = t.message or f"{t.exc_type.__name__} raised"
            self.emit(ind, self.fail(self.err(t.line, t.exc_type, msg)))
        else:
            raise KernelUnsupported(f"terminator {type(t).__name__}")

    def inlinable(self, b):
        """Temporaries of block ``b`` to compute at their single use instead of storing them.

        A temporary qualifies when it is read once, by an operation that spells
        each operand once, and nothing between its definition and that use
        assigns a variable its expression reads.
        """
        ft = self.ft
        blk = self.fn.blocks[b]
        uses = {}
        for j, ins in enumerate(blk.instrs):
            for u in ins.uses():
                uses.setdefault(u, []).append(j)
        for u in blk.term.uses():
            uses.setdefault(u, []).append("term")
        reads = {}
        ok = set()
        for k, ins in enumerate(blk.instrs):
            plan = ft.plans.get((b, k))
            r = set()
            for u in ins.uses():
                r |= reads.get(u, set()) if u in ok else {u}
            t = ins.target
            if t is None or not is_temp(t) or plan is None or isinstance(plan.result, TT) \
                    or t in ft.flagged:
                continue
            us = uses.get(t, [])
            if len(us) != 1:
                continue
            j = us[0]
            if j == "term":
                if not isinstance(blk.term, (Branch, Return)):
                    continue
                end = len(blk.instrs)
            else:
                if not _single_ref(ft.plans.get((b, j)), blk.instrs[j]):
                    continue
                end = j
            if any(blk.instrs[m].target in r for m in range(k + 1, end)):
                continue
            ok.add(t)
            reads[t] = r
        return ok

    def stop(self, ind, b, stop, line):
        """Every lane that gets here fails: a read of a never-assigned variable, or range() of a float."""
        k, var = stop
        if var is None:
            ins = self.fn.blocks[b].instrs[k]
            plan = self.ft.plans[(b, k)]
            a = ins.args[plan.extra["index"]]
            t = plan.extra["type"]
            desc = type(a.value).__name__ if isinstance(a, Const) else "numpy.bool" if t.dtype.kind == "b" else \
                ("Python " if t.weak else "") + t.dtype.name
            self.emit(ind, self.fail(self.err(ins.line, TypeError,
                                              f"'{desc}' object cannot be interpreted as an integer")))
            return
        shown = var if not var.startswith("$") else "a temporary"
        self.emit(ind, self.fail(self.err(line, UnboundLocalError,
                                          f"local variable '{shown}' referenced before assignment")))

    def lane_function(self, max_iters):
        from vmapper.passes.loops import find_loops
        self.max_iters = max_iters
        ft = self.ft
        fn = self.fn
        find_loops(fn)
        self.loops = fn.annotations["loops"]
        self.polls = kernel_polls(self.loops, ft.order)
        res = ft.result
        items = res.items if isinstance(res, TT) else (res,)
        body_start = len(self.lines)
        for j, b in enumerate(ft.order):
            if len(ft.order) == 1:
                self.emit(2, "if True:")
            elif j == 0:
                self.emit(2, f"if blk == {b}:")
            elif j == len(ft.order) - 1:
                self.emit(2, "else:")
            else:
                self.emit(2, f"elif blk == {b}:")
            self.block(3, b)
        body = self.lines[body_start:]
        del self.lines[body_start:]
        params = [f"p{j}" for j in range(len(fn.params))]
        head = []
        # parameters into their typed variables
        for j, (name, t) in enumerate(zip(fn.params, ft.params)):
            head.append(f"    {self.vname(name, t.dtype)} = {_CTOR[t.dtype] if t.dtype != BOOL else ''}(p{j})")
        param_vars = {self.vname(name, t.dtype) for name, t in zip(fn.params, ft.params)}
        for name, dt in sorted(self.typed.items()):
            if name not in param_vars:
                head.append(f"    {name} = {self.zero(dt)}")
        for var in sorted(ft.flagged):
            head.append(f"    {self.flag(var)} = {'True' if var in fn.params else 'False'}")
        if self.count_loops:
            for h in sorted(self.loops):
                head.append(f"    c{h} = -1")
        if self.polls:
            head.append("    tk = 1")  # (a lane's first loop trip polls: lanes after a stop end at once)
        for j, t in enumerate(items):
            head.append(f"    r{j} = {self.zero(t.dtype)}")
        head.append("    code = 0")
        sig = ", ".join(params + (["mi"] if self.count_loops else []) + (["stop"] if self.polls else []))
        tail = ["    return code, " + ", ".join(f"r{j}" for j in range(len(items))) + ("," if len(items) == 1 else "")]
        out = (["@njit(**_LANE_OPTS)", f"def lane({sig}):"] + head + [f"    blk = {ft.order[0]}", "    while blk >= 0:"]
               + body + tail)
        return out

def _liveness(fn, order):
    """Per block: the variables live at its end, and per instruction whether its target is read later."""
    uses_defs = {}
    for b in order:
        blk = fn.blocks[b]
        use, defs = set(), set()
        for ins in blk.instrs:
            use.update(u for u in ins.uses() if u not in defs)
            if ins.target:
                defs.add(ins.target)
        use.update(u for u in blk.term.uses() if u not in defs)
        uses_defs[b] = (use, defs)
    live_in = {b: set() for b in order}
    changed = True
    while changed:
        changed = False
        for b in reversed(order):
            out = set().union(*(live_in.get(s, set()) for s in fn.blocks[b].successors()))
            use, defs = uses_defs[b]
            new = use | (out - defs)
            if new != live_in[b]:
                live_in[b] = new
                changed = True
    dead = set()
    for b in order:
        blk = fn.blocks[b]
        live = set().union(*(live_in.get(s, set()) for s in blk.successors()))
        live |= set(blk.term.uses())
        for k in range(len(blk.instrs) - 1, -1, -1):
            ins = blk.instrs[k]
            if ins.target is not None:
                if ins.target not in live:
                    dead.add((b, k))
                live.discard(ins.target)
            live.update(ins.uses())
    return live_in, dead

def _single_ref(plan, ins):
    """True when the code for ``plan`` spells each of its operands exactly once."""
    if plan is None:
        return False
    k = plan.kind
    if k in ("copy", "truth", "select", "cast", "compare", "math_pred", "range_cond", "tuple"):
        return True
    if k == "binary":
        return not plan.checks
    if k == "unary":
        return plan.extra["op"] in ("neg", "pos", "invert", "abs")
    return False

