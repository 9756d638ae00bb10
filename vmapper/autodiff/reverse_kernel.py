"""Reverse mode inside a kernel, for straight-line functions: an IR -> IR adjoint transform.

Forward mode costs one tangent sweep per differentiated input; reverse mode
one adjoint sweep for all of them.  For a function with more differentiated
inputs than results and no control flow left after if-conversion (one block
ending in ``return``: an LSTM cell, GELU, a loss term), :func:`adjoint_function`
builds ``(*params, *cotangents) -> (*grads,)`` the way a hand-written VJP
kernel would: the forward values (renamed to single assignments), then each
instruction's adjoint contributions in reverse order.

The partial derivative of an instruction with respect to argument ``i`` comes
from the same ``jvp`` rules as forward mode, evaluated with a unit tangent on
``i`` alone (the rules are linear in the tangents), so the two modes can
never disagree on a derivative.  Guarantees: values computed bitwise as in the
function; every differentiated parameter's gradient is ``sum_j cot_j *
d result_j / d param`` along the (single) path; an instruction that does not
depend on a differentiated parameter contributes nothing; raises
:class:`~vmapper.autodiff.forward_mode.NotDifferentiable` where an active
operation has no rule, and returns None for functions with control flow.
"""
from __future__ import annotations

import itertools

from ..ir import Block, Const, Function, Instr, Return, Var
from .forward_mode import (NotDifferentiable, TangentEmitter, _returned_tuples, _rule, active_variables,
                           cotangent_names, source_line)


def straight_line(fn: Function):
    """The instructions and returned operands of a one-block function, or None."""
    if len(fn.blocks) != 1:
        return None
    blk = fn.blocks[fn.entry]
    if not isinstance(blk.term, Return):
        return None
    tuples = _returned_tuples(blk)
    if tuples:
        (tup,) = tuples.values()
        return [ins for ins in blk.instrs if ins is not tup], list(tup.args), True
    value = blk.term.value
    if isinstance(value, Const) and isinstance(value.value, tuple):
        return list(blk.instrs), [Const(v) for v in value.value], True
    return list(blk.instrs), [value], False


def adjoint_function(fn: Function, wrt) -> Function | None:
    """``(*params, *cotangents) -> (*grads,)`` by adjoints, or None if ``fn`` has control flow."""
    body = straight_line(fn)
    if body is None:
        return None
    instrs, results, _ = body
    instrs, results = _single_assignment(instrs, results, fn.params)
    names = [fn.params[k] for k in wrt]
    single = Function(fn.name, list(fn.params), {0: Block(0, instrs, Return(Const(0.0)))}, 0, fn.source)
    active = active_variables(single, names)
    guarded = _feeds_a_choice(instrs)
    out = list(instrs)
    counter = itertools.count()
    line = source_line(fn)  # for generated code without a line of its own (never 0 in an error)
    e = TangentEmitter(out, line, counter, "$ta")
    # partials come from the rules with a unit tangent: nothing there to keep at zero
    partials = TangentEmitter(out, line, counter, "$ta", keep_zero=False)
    cots = cotangent_names(len(results))
    adjoint = {}
    for r, c in zip(results, cots):
        if isinstance(r, Var) and r.name in active:
            adjoint[r.name] = e.add(adjoint.get(r.name), Var(c))
    for ins in reversed(instrs):
        bar = adjoint.get(ins.target)
        if bar is None or ins.target not in active:
            continue
        rule = _rule(ins)
        if rule is None:
            continue  # derivative zero
        e.line = partials.line = ins.line or line
        for i, a in enumerate(ins.args):
            if not (isinstance(a, Var) and a.name in active):
                continue
            unit = [Const(1.0) if j == i else None for j in range(len(ins.args))]
            partial = rule(partials, Var(ins.target), ins.args, unit)
            if partial is not None:
                # in a value that feeds a choice (an if-converted branch's arm...), a zero
                # adjoint contributes zero whatever the partial: the unselected arm's values
                # may be anything (sqrt of a negative number); elsewhere a plain product
                term = e.mul(bar, partial) if ins.target in guarded else e.op("mul", bar, partial)
                adjoint[a.name] = e.add(adjoint.get(a.name), term)
    grads = [adjoint.get(name, Const(0.0)) for name in names]
    out.append(Instr("tuple", "$ta_result", tuple(grads), {}, line))
    blocks = {0: Block(0, out, Return(Var("$ta_result"), line), "adjoint")}
    return Function(f"{fn.name}$adjoint", list(fn.params) + cots, blocks, 0, fn.source, fn.python_function)


#: Operations that pass on one of their arguments per lane, discarding the others.
CHOICES = frozenset({"select", "np.where", "max", "min", "np.maximum", "np.minimum", "np.fmax", "np.fmin",
                     "np.clip"})


def _feeds_a_choice(instrs):
    """The (single-assignment) variables whose value reaches a choice's argument."""
    defs = {ins.target: ins for ins in instrs if ins.target is not None}
    todo = [a.name for ins in instrs if ins.op in CHOICES for a in ins.args if isinstance(a, Var)]
    seen = set()
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        if v in defs:
            todo.extend(a.name for a in defs[v].args if isinstance(a, Var))
    return seen


def _single_assignment(instrs, results, params):
    """Rename so that every variable is assigned once (the adjoint sweep reads old values)."""
    version = {}
    counter = itertools.count()

    def read(a):
        return Var(version.get(a.name, a.name)) if isinstance(a, Var) else a
    renamed = []
    for ins in instrs:
        args = tuple(read(a) for a in ins.args)
        target = ins.target
        if target is not None:
            if target in version or target in params:
                new = f"{'$t' if target.startswith('$t') else ''}{target}$s{next(counter)}"
                version[target] = new
                target = new
            else:
                version[target] = target
        renamed.append(Instr(ins.op, target, args, ins.attrs, ins.line))
    return renamed, [read(r) for r in results]


__all__ = ["adjoint_function", "straight_line", "NotDifferentiable"]
