"""Dual numbers as an IR -> IR transform: the forward-mode derivative of an elementwise function.

:func:`jvp_function` turns an elementwise IR function (the kind that runs as
one kernel) into one that returns, after the function's own results, the
partial derivative of each result with respect to each chosen parameter --
forward mode, one tangent per parameter, computed alongside the values and
following each lane's own control flow (its branches and loop trips).  The
output is ordinary IR, so the kernel generator compiles it into the same kind
of kernel; it runs just as well on the numpy runtime, which the tests use as
the reference.

Guarantees:

* the blocks, branches and value computations are those of the input, in the
  same order, so the values are bitwise those of the plain function;
* every variable whose value may depend on a chosen parameter ("active",
  found by a fixed point over all assignments) gets one tangent variable per
  parameter, assigned wherever the variable is (zero where the assigned value
  does not depend on a parameter), so a tangent is defined wherever its
  variable is;
* the derivative rules are the primitives' ``jvp`` entries
  (:mod:`.jvp_rules`); an active operation without one raises
  :class:`NotDifferentiable`, and the caller differentiates in reverse mode
  instead -- never a silently wrong derivative.

The cost is one extra chain of scalar work per parameter: it grows linearly
with the number of differentiated parameters, which :data:`MAX_TANGENTS` caps.
"""
from __future__ import annotations

import itertools

from ..ir import Block, Const, Function, Instr, Jump, Return, Var
from ..passes.taint import tainted_targets
from ..primitives import PRIMITIVES
from . import jvp_rules  # noqa: F401  (attaches the rules)
from .jvp_rules import ZERO_DERIVATIVE

#: Above this many differentiated parameters a region is differentiated in reverse mode.
MAX_TANGENTS = 8


class NotDifferentiable(Exception):
    """The function cannot be differentiated in forward mode (the message says why)."""


class TangentEmitter:
    """Appends IR instructions; rules build tangent expressions through it (None is zero)."""

    def __init__(self, out, line, counter, prefix="$tj", keep_zero=True):
        self.out, self.line, self._counter, self._prefix = out, line, counter, prefix
        self.keep_zero = keep_zero

    def op(self, name, *args):
        target = f"{self._prefix}{next(self._counter)}"
        self.out.append(Instr(name, target, tuple(args), {}, self.line))
        return Var(target)

    @staticmethod
    def zero_if_none(t):
        return Const(0.0) if t is None else t

    def add(self, a, b):
        if a is None or b is None:
            return b if a is None else a
        return self.op("add", a, b)

    def sub(self, a, b):
        if b is None:
            return a
        return self.neg(b) if a is None else self.op("sub", a, b)

    def mul(self, t, d):
        """Tangent ``t`` scaled by ``d``; an exactly zero tangent stays zero (see :meth:`_keep_zero`)."""
        if t is None or d is None:
            return None
        return self._keep_zero(t, self.op("mul", t, d))

    def div(self, t, d):
        """Tangent ``t`` divided by ``d`` (numpy's division: never raises)."""
        return None if t is None else self._keep_zero(t, self.op("np.divide", t, d))

    def _keep_zero(self, t, scaled):
        # A tangent that is exactly zero on a lane (the lane's value did not depend on
        # the input along the path it took) must not become NaN through 0 * inf at a
        # singular point (sqrt at 0...): reverse mode never visits such a path at all.
        if isinstance(t, Const) or not self.keep_zero:
            return scaled
        return self.op("select", self.op("eq", t, Const(0.0)), t, scaled)

    def neg(self, a):
        return None if a is None else self.op("neg", a)


class _NullEmitter(TangentEmitter):
    """Runs rules for their None/not-None answer only (activity analysis)."""

    def __init__(self):
        super().__init__([], 0, itertools.count())

    def op(self, name, *args):
        return Var("$tj")


def tangent_name(name, k):
    return f"{name}$d{k}"


def _rule(ins):
    prim = PRIMITIVES.get(ins.op)
    if ins.op in ZERO_DERIVATIVE:
        return None
    if prim is None or prim.jvp is None:
        raise NotDifferentiable(f"line {ins.line}: no forward-mode rule for '{ins.op}'")
    return prim.jvp


def active_variables(fn, wrt_names):
    """The variables whose value may depend on the parameters ``wrt_names``."""
    null = _NullEmitter()

    def spreads(ins, active):
        if ins.op == "tuple":
            return False
        tans = [Var("$tj") if isinstance(a, Var) and a.name in active else None for a in ins.args]
        if all(t is None for t in tans):
            return False
        rule = _rule(ins)
        return rule is not None and rule(null, Var(ins.target), ins.args, tans) is not None
    return tainted_targets(fn, wrt_names, spreads)


def jvp_function(fn: Function, wrt, keep=None) -> Function:
    """``fn`` returning ``(*results, *partials)``: ``partials[j * len(wrt) + k]`` is d result_j / d param wrt[k].

    ``wrt`` are parameter positions.  A plain (non-tuple) result counts as one
    result.  ``keep``: the positions of the partials to return (default all;
    :func:`zero_partials` names those that are zero on every path).  Raises
    :class:`NotDifferentiable` when an active operation has no forward-mode
    rule or ``len(wrt) > MAX_TANGENTS``.
    """
    wrt = list(wrt)
    if len(wrt) > MAX_TANGENTS:
        raise NotDifferentiable(f"{len(wrt)} differentiated inputs (forward mode is capped at {MAX_TANGENTS})")
    names = [fn.params[k] for k in wrt]
    # per direction, so that a tangent that is zero everywhere is never computed
    actives = [active_variables(fn, [name]) for name in names]
    counter = itertools.count()
    line = source_line(fn)
    # the seeds, in a new entry block (the old one may be a loop target): d param_k / d param_k = 1,
    # and 0 for every other active parameter (one not differentiated, or another direction's), so
    # that a tangent is bound wherever its variable is -- a parameter is bound on entry, and one
    # that the function reassigns from an active value is active without being differentiated
    # (a kernel region's loop-carried variable, uniform on its first trip: UnboundLocalError)
    entry = max(fn.blocks) + 1
    seeds = [Instr("copy", tangent_name(p, k), (Const(1.0 if p == name else 0.0),), {}, line)
             for k, (name, active) in enumerate(zip(names, actives)) for p in fn.params if p in active]
    blocks = {entry: Block(entry, seeds, Jump(fn.entry, line), "tangent seeds")}
    for bid, blk in fn.blocks.items():
        out = []
        tuple_returns = _returned_tuples(blk)
        # generated instructions without a line of their own (a kernel region's exits...) take the
        # block's, else the function's: a lane error never names line 0
        blk_line = _block_line(blk) or line
        for ins in blk.instrs:
            if ins.target in tuple_returns:
                continue
            _transform(ins, actives, out, counter, blk_line)
        term = blk.term
        if isinstance(term, Return):
            term = _return_with_tangents(term, tuple_returns, actives, out, counter, keep, blk_line)
        blocks[bid] = Block(bid, out, term, blk.label)
    return Function(f"{fn.name}$jvp", list(fn.params), blocks, entry, fn.source, fn.python_function)


def source_line(fn: Function) -> int:
    """A real source line for code generated in ``fn`` that has none: its first statement's line,
    else its ``def`` line (never 0, which names no source line in an error)."""
    lines = [ins.line for blk in fn.blocks.values() for ins in blk.instrs if ins.line]
    lines += [blk.term.line for blk in fn.blocks.values() if blk.term is not None and blk.term.line]
    return min(lines) if lines else max(1, fn.source.first_line)


def _block_line(blk):
    for ins in blk.instrs:
        if ins.line:
            return ins.line
    return blk.term.line if blk.term is not None else 0


def _returned_tuples(blk):
    """Temporaries built by ``tuple`` and returned by this block's terminator."""
    t = blk.term
    if isinstance(t, Return) and isinstance(t.value, Var):
        for ins in blk.instrs:
            if ins.op == "tuple" and ins.target == t.value.name:
                return {ins.target: ins}
    return {}


def _tangent(op, active, k):
    if isinstance(op, Var) and op.name in active:
        return Var(tangent_name(op.name, k))
    return None


def _transform(ins, actives, out, counter, default_line=0):
    target = ins.target
    directions = [k for k, active in enumerate(actives) if target in active]
    if not directions:
        out.append(ins)
        return
    line = ins.line or default_line
    value = Var(f"$tj{next(counter)}")
    out.append(Instr(ins.op, value.name, ins.args, ins.attrs, line))
    rule = _rule(ins)
    e = TangentEmitter(out, line, counter)
    tangents = []
    for k in directions:
        tans = [_tangent(a, actives[k], k) for a in ins.args]
        # no rule (a zero derivative) or no active argument: the tangent is 0, still assigned
        t = None if rule is None or all(x is None for x in tans) else rule(e, value, ins.args, tans)
        tangents.append(e.zero_if_none(t))
    out.append(Instr("copy", target, (value,), {}, line))
    for k, t in zip(directions, tangents):
        out.append(Instr("copy", tangent_name(target, k), (t,), {}, line))


def _returned_values(term, tuple_returns):
    if tuple_returns:
        (tup,) = tuple_returns.values()
        return list(tup.args)
    if isinstance(term.value, Const) and isinstance(term.value.value, tuple):
        return [Const(v) for v in term.value.value]
    return [term.value]


def zero_partials(fn: Function, wrt):
    """The positions (as in :func:`jvp_function`) of the partials that are zero on every path:
    results that do not depend on that parameter wherever the function returns."""
    names = [fn.params[k] for k in wrt]
    actives = [active_variables(fn, [name]) for name in names]
    nonzero = set()
    m = None
    for blk in fn.blocks.values():
        if isinstance(blk.term, Return):
            results = _returned_values(blk.term, _returned_tuples(blk))
            m = len(results)
            for j, r in enumerate(results):
                for k, active in enumerate(actives):
                    if _tangent(r, active, k) is not None:
                        nonzero.add(j * len(wrt) + k)
    return [] if m is None else [i for i in range(m * len(wrt)) if i not in nonzero]


def _return_with_tangents(term, tuple_returns, actives, out, counter, keep=None, default_line=0):
    results = _returned_values(term, tuple_returns)
    partials = [_tangent(r, active, k) or Const(0.0) for r in results for k, active in enumerate(actives)]
    if keep is not None:
        partials = [partials[i] for i in keep]
    line = term.line or default_line
    target = f"$tj{next(counter)}"
    out.append(Instr("tuple", target, tuple(results) + tuple(partials), {}, line))
    return Return(Var(target), line)


def cotangent_names(m):
    return [f"cot${j}" for j in range(m)]


def vjp_kernel_function(fn: Function, wrt) -> Function:
    """A reverse-mode step built from forward mode: ``(*params, *cotangents) -> (*grads,)``.

    With ``m`` results, ``cotangents`` are one per result (parameters named by
    :func:`cotangent_names`) and ``grads[k] = sum_j cot_j * d result_j / d
    param wrt[k]`` per lane: the function's dual numbers and their contraction
    with the upstream gradients in one pass (the "recompute" policy's
    backward kernel).
    """
    dual = jvp_function(fn, wrt)
    count = result_count(fn)
    m, k = (1 if count is None else count), len(wrt)
    cots = cotangent_names(m)
    counter = itertools.count()
    blocks = {}
    for bid, blk in dual.blocks.items():
        tuples = _returned_tuples(blk)
        if not tuples:
            blocks[bid] = blk
            continue
        (tup,) = tuples.values()
        out = [ins for ins in blk.instrs if ins is not tup]
        grads = contract(TangentEmitter(out, tup.line, counter, "$tc"), [Var(c) for c in cots], tup.args[m:], k)
        out.append(Instr("tuple", tup.target, tuple(grads), {}, tup.line))
        blocks[bid] = Block(bid, out, blk.term, blk.label)
    return Function(f"{fn.name}$vjp", list(fn.params) + cots, blocks, dual.entry, fn.source, fn.python_function)


def contract(e, cotangents, partials, k):
    """``[sum_j cotangents[j] * partials[j * k + i] for i < k]`` emitted through ``e``."""
    grads = []
    for i in range(k):
        acc = None
        for j, cot in enumerate(cotangents):
            p = partials[j * k + i]
            if isinstance(p, Const) and p.value == 0:
                continue  # no dependence at all
            acc = e.add(acc, e.op("mul", cot, p))
        grads.append(Const(0.0) if acc is None else acc)
    return grads


def contraction_function(m, k, source, keep=None) -> Function:
    """``(cot$0.., p$0..) -> (*grads,)``: the contraction of stored partials with cotangents.

    ``keep``: the positions of the partials passed (default all); the others are zero.
    """
    cots = cotangent_names(m)
    keep = list(range(m * k)) if keep is None else list(keep)
    partials = [f"p${i}" for i in keep]
    operands = [Const(0.0)] * (m * k)
    for i, p in zip(keep, partials):
        operands[i] = Var(p)
    out = []
    line = max(1, source.first_line)  # (no statement of its own: the function's def line, never 0)
    grads = contract(TangentEmitter(out, line, itertools.count(), "$tc"), [Var(c) for c in cots], operands, k)
    out.append(Instr("tuple", "$tc_result", tuple(grads), {}, line))
    blocks = {0: Block(0, out, Return(Var("$tc_result"), line), "contraction")}
    name = f"contract_{m}x{k}" + ("" if len(keep) == m * k else "_" + "_".join(map(str, keep)))
    return Function(name, cots + partials, blocks, 0, source)


def result_count(fn: Function) -> int | None:
    """How many results ``fn`` returns: a returned tuple's length, else None (one plain result)."""
    for blk in fn.blocks.values():
        tuples = _returned_tuples(blk)
        if tuples:
            return len(next(iter(tuples.values())).args)
        t = blk.term
        if isinstance(t, Return) and isinstance(t.value, Const) and isinstance(t.value.value, tuple):
            return len(t.value.value)
    return None


__all__ = ["jvp_function", "vjp_kernel_function", "contraction_function", "active_variables", "zero_partials",
           "result_count", "NotDifferentiable", "MAX_TANGENTS", "TangentEmitter", "tangent_name", "source_line"]
