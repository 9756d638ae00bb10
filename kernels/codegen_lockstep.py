"""Lockstep (SIMD across lanes) kernel bodies: :class:`LockstepEmitter`.

The scalar kernel (:mod:`.codegen_emitter`) gives every lane its own control
flow, so LLVM cannot vectorize across lanes.  A lockstep kernel instead runs
a *chunk* of ``W`` lanes through the function's CFG together:

* every lane ``j`` of the chunk has a program counter ``pc[j]``: the priority
  (:mod:`.codegen_lockstep_schedule`) of the block it is about to run, or
  ``DEAD`` once it returned or failed;
* at each step the chunk runs the block of smallest priority among its
  lanes, for the lanes whose ``pc`` equals it, as ONE loop ``for j in
  range(wr)`` over the chunk.  Its body loads the lane variables the block
  uses from per-lane arrays (``v3_f8 = Sv3_f8[j]``, spelled with the
  :mod:`.codegen_lockstep_rt` intrinsics), runs the block's scalar
  code on them, and stores back the ones it assigned, as selects on the
  block's entry mask (``Sv3_f8[j] = v3_f8 if mk0 else Sv3_f8[j]``): lanes
  elsewhere keep their values, and the body is branch-free, so LLVM
  vectorizes it.  (``wr`` == ``W`` at run time but unknown to LLVM: with a
  constant trip count it unrolls the loop fully and keeps the lanes in scalar
  registers instead);
* the terminator sets each active lane's next ``pc`` (and converts variables
  whose dtype changes on its edge, resets loop counters);
* the per-operation code is the scalar emitter's own (this class subclasses
  it and rewrites only the statements it emits), so each lane computes
  exactly what the scalar kernel computes.  Every statement is evaluated on
  the chunk's other lanes too, which is safe because the scalar expressions
  never trap (integer division and modulo go through numpy's helpers, 0 for a
  zero divisor; float -> int casts through range-checked helpers; float
  errors are non-trapping IEEE) and their values are discarded;
* a failure check ``if cond: fail`` becomes ``bad = mk and cond``: the lane
  leaves the mask ``mk`` with its error code, and its ``pc`` becomes ``DEAD``
  at the end of the block, so only active lanes fail, each with its first
  failure, and a failed lane runs nothing more.  (What a failed lane still
  stores is never read: its slot is re-initialised for the next lane.)

sin/cos (vmath, not ``exact_math``) get a uniform fast path: the block's
loop is split at the call, and the chunk calls the variant without the
large-argument reduction (:mod:`.codegen_lockstep_rt`, bitwise equal below
``2**20``) unless an active lane's argument is that large.  Lane variables are
stored and reloaded around the split, temporaries and masks kept in
per-lane scratch arrays.

Anything this class cannot express raises ``KernelUnsupported``; the caller
then uses the scalar kernel.
"""
from __future__ import annotations

import ast
import re

import numpy as np

from vmapper.errors import NonTerminationError
from vmapper.ir import Branch, Const, Jump, Raise, Return, is_temp
from .typing import TT, KernelUnsupported, BOOL
from .codegen_emitter import _Emitter

_FAIL = "\x00fail "
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TRIG = ("sin", "cos")


class _Lanewise(ast.NodeTransformer):
    """``a if c else b`` -> ``_ls_select(c, a, b)``, ``a and b`` -> ``_ls_both(a, b)``, ``or`` ->
    ``_ls_either``: selects instead of branches (the scalar expressions are side-effect free and
    never trap, so evaluating both operands gives the same values)."""

    def visit_IfExp(self, node):
        self.generic_visit(node)
        return ast.Call(ast.Name("_ls_select", ast.Load()), [node.test, node.body, node.orelse], [])

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        fn = "_ls_both" if isinstance(node.op, ast.And) else "_ls_either"
        out = node.values[0]
        for v in node.values[1:]:
            out = ast.Call(ast.Name(fn, ast.Load()), [out, v], [])
        return out


def lanewise(expr):
    """The expression ``expr`` (scalar emitter source) without conditional or boolean operators."""
    if " if " not in expr and " and " not in expr and " or " not in expr:
        return expr
    return ast.unparse(_Lanewise().visit(ast.parse(expr, mode="eval")))


class _Split:
    """A sin/cos call: the block's lane loop ends after ``store`` (its argument into ``TX``)."""

    def __init__(self, k, store):
        self.k = k
        self.store = store


class LockstepEmitter(_Emitter):
    """Block bodies of a lockstep kernel.

    ``prio`` maps every reachable block to its priority (its ``pc`` value);
    ``dead_pc`` = ``len(prio)``.  After :meth:`block_code` has run for every
    block, :meth:`lane_state` names every lane variable (flags, loop counters
    ``c<h>`` and results ``r<i>`` included) with its dtype: the kernel keeps
    each in the per-lane array ``S<name>``; ``scratch`` names the per-lane
    scratch arrays of split blocks.
    """

    def __init__(self, ft, exact_math, count_loops, prio):
        super().__init__(ft, exact_math, count_loops)
        self.prio = prio
        self.dead_pc = len(prio)
        self.state = {}      # name -> dtype: flags, loop counters, results (besides ``typed``)
        self.scratch = {}    # name -> dtype: per-lane scratch arrays of split blocks
        self.temps = set()   # block-local scalars (temporaries)
        self.temp_dtypes = {}
        self.small = set()   # sin/cos fast paths imported
        self.body = None     # the block being rendered: statements and _Split markers
        self.trig = []       # sin/cos calls of the block: (TX name, TY name, function, S, dtype)
        self.pending = None  # (indent, condition) of an ``if`` awaiting its failure
        self.fails = False   # the block has failure checks

    def lane_state(self):
        out = dict(self.typed)
        out.update(self.state)
        return out

    # ---- names --------------------------------------------------------------------------------
    def vname(self, var, dtype):
        name = super().vname(var, dtype)
        if is_temp(var):
            self.temps.add(name)
            self.temp_dtypes[name] = np.dtype(dtype)
        return name

    def tmp(self, dtype):
        name = super().tmp(dtype)
        self.temps.add(name)
        self.temp_dtypes[name] = np.dtype(dtype)
        return name

    def flag(self, var):
        name = super().flag(var)
        self.state[name] = BOOL
        return name

    def counter(self, header):
        self.state[f"c{header}"] = np.dtype(np.int64)
        return f"c{header}"

    def _scratch(self, name, dtype):
        self.scratch[name] = np.dtype(dtype)
        return name

    # ---- statements: the scalar emitter's output, made lane-parallel ------------------------------
    def fail(self, code):
        return f"{_FAIL}{code}"

    def emit(self, ind, text):
        if self.body is None:
            return super().emit(ind, text)
        if text.startswith(_FAIL):
            cond = None
            if self.pending is not None:
                pind, cond = self.pending
                self.pending = None
                if ind != pind + 1:
                    raise KernelUnsupported("lockstep: a failure outside its condition")
            self.lane_fail(cond, int(text[len(_FAIL):]))
            return
        if self.pending is not None:
            raise KernelUnsupported(f"lockstep: a condition guarding {text!r}")
        if text.startswith("if ") and text.endswith(":"):
            self.pending = (ind, text[3:-1])
            return
        lhs, sep, rhs = text.partition(" = ")
        if not sep or not _NAME.fullmatch(lhs):
            raise KernelUnsupported(f"lockstep: statement {text!r}")
        self.body.append(f"{lhs} = {lanewise(rhs)}")

    def lane_fail(self, cond, code):
        """Active lanes where ``cond`` holds (all of them if None) stop with error ``code``."""
        self.fails = True
        self.body.append("bad = mk" if cond is None else f"bad = _ls_both(mk, {lanewise(cond)})")
        self.body.append(f"fcode = _ls_select(bad, {code}, fcode)")
        self.body.append("mk = _ls_both(mk, not bad)")

    def transcendental(self, name, x, dt):
        if self.exact or name not in _TRIG or self.body is None:
            return super().transcendental(name, x, dt)
        s = "f32" if np.dtype(dt) == np.float32 else "f64"
        self.vm.add(f"{name}_{s}")
        self.small.add(f"{name}_small_{s}")
        k = len(self.trig)
        xin = self._scratch(f"TX{k}_{s}", dt)
        yout = self._scratch(f"TY{k}_{s}", dt)
        self.trig.append((xin, yout, name, s, dt))
        self.body.append(_Split(k, f"_ls_store({xin}, j, {x})"))
        return f"_ls_load({yout}, j)"

    # ---- blocks ------------------------------------------------------------------------------
    def block_code(self, b, ind, tag=""):
        """Source lines (at indentation ``ind``) running block ``b`` for the lanes at it, and
        whether they split at a sin/cos call; ``tag`` tells copies of one block apart."""
        body = self.render(b)
        return self.layout(b, body, ind, tag), any(isinstance(x, _Split) for x in body)

    def render(self, b):
        ft = self.ft
        blk = self.fn.blocks[b]
        env = dict(ft.block_in[b])
        self.body, self.trig, self.pending, self.fails = [], [], None, False
        if self.count_loops and b in self.loops:
            code = self.err(self.loops[b].line, NonTerminationError, "loop passed max_iters")
            c = self.counter(b)
            self.emit(0, f"{c} = {c} + 1")
            self.emit(0, f"if {c} > mi:")
            self.emit(1, self.fail(code))
        stop = ft.stop_at.get(b)
        self.inline = {}
        self.inline_ok = self.inlinable(b)
        self.select_idioms(b, stop)
        for k, ins in enumerate(blk.instrs):
            if stop is not None and k == stop[0]:
                if stop[1] is None:  # the failing instruction's own operands may need checks
                    for (bb, kk, u) in ft.maybe_unbound:
                        if bb == b and kk == k:
                            self.unbound_check(0, u, ins.line)
                self.stop(0, b, stop, ins.line)
                return self.finish(None)
            self.cur = (b, k)
            self.instr(0, b, k, ins, ft.plans[(b, k)], env)
            self.cur = None
        if stop is not None:
            self.stop(0, b, stop, blk.term.line)
            return self.finish(None)
        for (bb, kk, u) in ft.maybe_unbound:
            if bb == b and kk == "term":
                self.unbound_check(0, u, blk.term.line)
        return self.finish(self.terminator(b, blk.term, env))

    def finish(self, nxt):
        """The block's statements, ending with the error codes and ``pc`` updates.

        ``nxt``: the next ``pc`` of the lanes still active (an expression), or
        None when every lane that entered is done (returned or failed).
        """
        if self.pending is not None:
            raise KernelUnsupported("lockstep: a condition without its failure")
        body, self.body = self.body, None
        if self.fails:
            body.append("_ls_put(ecode, j, fcode != 0, fcode)")
            body.append(f"_ls_put(pc, j, fcode != 0, {self.dead_pc})")
        if nxt is None:  # every lane that entered is done
            body.append(f"_ls_put(pc, j, {'mk0' if self.fails else 'mk'}, {self.dead_pc})")
        else:
            body.append(f"_ls_put(pc, j, mk, {nxt})")
        return body

    def terminator(self, b, t, env):
        """Statements of the terminator; returns the active lanes' next ``pc`` (None: done)."""
        if isinstance(t, Jump):
            self.body += self.lane_edge(b, t.target, env, "mk")
            return str(self.prio[t.target])
        if isinstance(t, Branch):
            self.body.append(f"cnd = {lanewise(self.truth_operand(t.cond, env))}")
            on_true = self.lane_edge(b, t.if_true, env, "mt")
            on_false = self.lane_edge(b, t.if_false, env, "mf")
            if on_true:
                self.body.append("mt = _ls_both(mk, cnd)")
            if on_false:
                self.body.append("mf = _ls_both(mk, not cnd)")
            self.body += on_true + on_false
            return f"_ls_select(cnd, {self.prio[t.if_true]}, {self.prio[t.if_false]})"
        if isinstance(t, Return):
            for i, (part, dt) in enumerate(self.return_parts(t, env)):
                self.state[f"r{i}"] = np.dtype(dt)
                self.body.append(f"r{i} = {lanewise(part)}")
            return None
        if isinstance(t, Raise):
            msg = t.message or f"{t.exc_type.__name__} raised"
            self.emit(0, self.fail(self.err(t.line, t.exc_type, msg)))
            return None
        raise KernelUnsupported(f"terminator {type(t).__name__}")

    def return_parts(self, t, env):
        """(expression, dtype) of each result, as the scalar emitter's Return computes them."""
        res = self.ft.result
        if isinstance(res, TT) and isinstance(t.value, Const):
            return [(self.operand(Const(v), env, (r.dtype,))[0], r.dtype)
                    for v, r in zip(t.value.value, res.items)]
        if isinstance(res, TT):
            have = env[t.value.name]
            return [(self.cast(self.vname(f"{t.value.name}#{j}", h.dtype), h.dtype, r.dtype), r.dtype)
                    for j, (h, r) in enumerate(zip(have.items, res.items))]
        expr, _ = self.operand(t.value, env, (res.dtype,))
        return [(expr, res.dtype)]

    def lane_edge(self, p, s, env, mask):
        """Statements of the edge p -> s for the lanes in ``mask``: dtype conversions, loop counters."""
        tin = self.ft.block_in[s]
        out = []
        for var, t in sorted(tin.items()):
            have = env.get(var)
            if have is None or isinstance(t, TT) or have.dtype == t.dtype or var not in self.live_in[s]:
                continue
            dst = self.vname(var, t.dtype)
            src = lanewise(self.cast(self.vname(var, have.dtype), have.dtype, t.dtype))
            out.append(f"{dst} = _ls_select({mask}, {src}, {dst})")
        if self.count_loops and s in self.loops and p not in self.loops[s].blocks:
            c = self.counter(s)  # the first arrival is not a trip: trips = back edges taken
            out.append(f"{c} = _ls_select({mask}, -1, {c})")
        return out

    # ---- layout: statements -> lane loops ------------------------------------------------------
    def layout(self, b, body, ind, tag=""):
        """The rendered block as lane loops: one, or one per sin/cos call plus one.

        Each loop loads the lane variables it reads before assigning them,
        and stores back, on the entry mask, those it assigns; across a split
        the masks, the error code and the temporaries still needed go through
        scratch arrays.
        """
        pad = "    " * ind
        segs, splits = [[]], []
        for item in body:
            if isinstance(item, _Split):
                splits.append(item)
                segs.append([])
            else:
                segs[-1].append(item)
        state = self.lane_state()
        carried = {"mk": BOOL}
        if self.fails:  # mk changes in the block: stores need the entry mask
            carried.update({"mk0": BOOL, "fcode": np.dtype(np.int64)})
        store_mask = "mk0" if self.fails else "mk"
        ends = [seg + [splits[i].store] if i < len(splits) else seg for i, seg in enumerate(segs)]
        names = [set(_NAME.findall(" ".join(seg))) for seg in ends]
        later = [set().union(*names[i + 1:]) for i in range(len(segs))]
        temps = set()   # temporaries assigned by the loops so far
        lines = []
        # Before the block's first failure check the masks are the entry mask, which ``pc`` still
        # gives (only the block's last loop writes ``pc``), and the error code is 0: loops up
        # to there recompute them instead of passing them through scratch arrays.
        failed = [any(st.startswith("bad = ") for seg in segs[:i + 1] for st in seg) for i in range(len(segs))]
        for i, seg in enumerate(segs):
            if i == 0 or not failed[i - 1]:
                loop = [f"mk = _ls_load(pc, j) == {self.prio[b]}"]
                if self.fails:
                    loop += ["mk0 = mk", "fcode = 0"]
            else:
                loop = [f"{v} = _ls_load(A{v}, j)" for v in carried]
            if i > 0:  # what the previous loops computed
                needed = sorted(temps & (names[i] | later[i]))
                loop += [f"{v} = _ls_load(A{v}, j)" for v in needed]
            reads, assigned = _reads(ends[i], state.keys())
            loop += [f"{v} = _ls_load(S{v}, j)" for v in sorted(reads)]
            loop += seg
            loop += [f"_ls_put(S{v}, j, {store_mask}, {v})" for v in sorted(assigned & state.keys())]
            if i < len(splits):
                temps |= assigned & self.temps
                for v in carried if failed[i] else ():
                    loop.append(f"_ls_store({self._scratch('A' + v, carried[v])}, j, {v})")
                for v in sorted(temps & later[i]):
                    loop.append(f"_ls_store({self._scratch('A' + v, self.temp_dtypes[v])}, j, {v})")
                loop.append(splits[i].store)
                xin, _, _, _, dt = self.trig[splits[i].k]
                # any active lane beyond the fast path's range? (a reduction over the loop)
                loop.append(f"big |= _ls_both(mk, abs(_ls_load({xin}, j)) >= {self.const(2.0 ** 20, dt)})")
                lines.append(pad + "big = False")
            name = f"{self.prio[b]}{tag}_{i}"
            lines.append(pad + f"for j{name} in range(wr):")
            lines += [pad + "    " + st for st in _single_assignment(loop, name)]
            if i < len(splits):
                lines += self.trig_lines(splits[i].k, pad)
        return lines

    def trig_lines(self, k, pad):
        xin, yout, name, s, dt = self.trig[k]
        return [pad + "if big:",
                pad + "    for j in range(wr):",
                pad + f"        _ls_store({yout}, j, _vm_{name}_{s}(_ls_load({xin}, j)))",
                pad + "else:",
                pad + "    for j in range(wr):",
                pad + f"        _ls_store({yout}, j, _ls_{name}_small_{s}(_ls_load({xin}, j)))"]


def _reads(stmts, names):
    """(``names`` read before being assigned in ``stmts``, names assigned)."""
    reads, assigned = set(), set()
    for st in stmts:
        lhs, sep, rhs = st.partition(" = ")
        used = set(_NAME.findall(rhs if sep and _NAME.fullmatch(lhs) else st))
        reads |= (used & names) - assigned
        if sep and _NAME.fullmatch(lhs):
            assigned.add(lhs)
    return reads, assigned


class _Rename(ast.NodeTransformer):
    def __init__(self, names):
        self.names = names

    def visit_Name(self, node):
        new = self.names.get(node.id)
        return ast.copy_location(ast.Name(new, node.ctx), node) if new is not None else node


def _single_assignment(stmts, tag):
    """``stmts`` (a straight-line loop body over ``j``) with every local assigned exactly once.

    Each assignment gets a fresh name (``x`` -> ``x_<tag>_<k>``) and later reads
    the newest one; the lane index ``j`` becomes ``j<tag>``.  numba rebuilds
    SSA form for every variable assigned more than once, with a pass over the
    whole function per variable: with one name per block loop and per
    assignment, compiling a lockstep kernel costs a fraction of the time.
    """
    names = {"j": f"j{tag}"}
    out = []
    for k, st in enumerate(stmts):
        tree = ast.parse(st)
        node = tree.body[0]
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            node.value = _Rename(names).visit(node.value)
            new = f"{node.targets[0].id}_{tag}_{k}"
            names[node.targets[0].id] = new
            node.targets[0] = ast.Name(new, ast.Store())
        else:
            tree = _Rename(names).visit(tree)
        out.append(ast.unparse(tree))
    return out
