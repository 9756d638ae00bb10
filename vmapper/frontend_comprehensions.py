"""List comprehensions, ``sum(<generator>)``, ``any``/``all`` and ``min``/``max`` of one, as the
loops they stand for.

``[elt for t in it if c ...]`` becomes ``r = []`` and the ``for`` loops (with
their ``if`` guards) around ``r.append(elt)``; ``sum(elt for ...)`` becomes
``acc = start`` (0 by default) and the loops around ``acc = acc + elt``, which
is what Python's ``sum`` computes (a left fold of ``+``).  The frontend then
lowers these statements like any other, so the lists and loops follow the
rules of the language: a comprehension whose length differs per lane is an
error at the line that reads it, and ``sum`` over a per-lane number of items
(``node.children``, ``range(n)``) is a loop with a per-lane trip count.

As in Python, a comprehension's own variables live in a scope of their own:
they are renamed to fresh names, so they neither read nor change the
function's variables of the same name; the first iterable is evaluated in the
function's scope, the later ones (and the conditions and the element) in the
comprehension's.

``any(<generator>)`` and ``all(<generator>)`` (:func:`search_loops`, called by
``frontend_builtins``) are the same loops around ``if elt: r = True; break``
(``all``: ``if not elt: r = False; break``), from ``r = False`` (``True``); an
outer loop breaks too once ``r`` is decided.  So, as with Python's
short-circuit, a lane evaluates no element after the one that decides it.

``max(<generator>)`` and ``min(<generator>)`` (:func:`extreme_loops`) are the
loops around "the first item, then each later item that is strictly greater
(less)", which is how Python's ``max`` (``min``) keeps the first extreme; an
empty generator raises Python's ``ValueError``, or gives ``default=``.
"""
from __future__ import annotations

import ast
import copy

from .kernels.typing_rules import empty_extreme_message


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping):
        self.mapping = mapping

    def visit_Name(self, node):
        new = self.mapping.get(node.id)
        return node if new is None else ast.copy_location(ast.Name(id=new, ctx=node.ctx), node)


def _renamed(node, mapping):
    return _Rename(mapping).visit(copy.deepcopy(node))


def _bound_names(target):
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for e in target.elts for n in _bound_names(e)]
    return []  # (an attribute or subscript target: the lowering rejects it, naming the line)


def loops_of(node, fresh, accumulate=None):
    """``(result name, locals it introduces, statements)`` for a ``ListComp`` (``accumulate``
    None) or the ``GeneratorExp`` of ``sum`` (``accumulate``: the start value's expression).
    ``fresh(prefix)`` makes a name no other variable has."""
    result = fresh("_vm_listcomp_" if accumulate is None else "_vm_sum_")
    mapping, loops, elt = _clauses(node, fresh)
    load, store = ast.Name(id=result, ctx=ast.Load()), ast.Name(id=result, ctx=ast.Store())
    if accumulate is None:
        init = ast.Assign(targets=[store], value=ast.List(elts=[], ctx=ast.Load()))
        inner = ast.Expr(value=ast.Call(func=ast.Attribute(value=load, attr="append", ctx=ast.Load()),
                                        args=[elt], keywords=[]))
    else:
        init = ast.Assign(targets=[store], value=accumulate)
        inner = ast.Assign(targets=[copy.copy(store)], value=ast.BinOp(left=copy.copy(load), op=ast.Add(), right=elt))
    body = inner
    for target, it, ifs in reversed(loops):
        for cond in reversed(ifs):
            body = ast.If(test=cond, body=[body], orelse=[])
        body = ast.For(target=target, iter=it, body=[body], orelse=[])
    stmts = [init, body]
    for s in stmts:
        locate(s, node)
    return result, [result, *mapping.values()], stmts


def _clauses(node, fresh):
    """``(renaming, [(target, iterable, conditions)] outermost first, element)`` of a
    comprehension, its own variables renamed to fresh names."""
    mapping, loops = {}, []
    for k, gen in enumerate(node.generators):
        it = gen.iter if k == 0 else _renamed(gen.iter, mapping)
        for name in _bound_names(gen.target):
            mapping[name] = fresh(f"_vm_{name}_")
        loops.append((_renamed(gen.target, mapping), it, [_renamed(c, mapping) for c in gen.ifs]))
    return mapping, loops, _renamed(node.elt, mapping)


def search_loops(node, fresh, is_any):
    """``(result name, locals it introduces, statements)`` for ``any(<generator>)`` (``is_any``)
    or ``all(<generator>)``: the loops with a ``break`` where Python's short-circuit stops, so
    that no lane evaluates an element (or a later iterable or condition) after the one that
    decided its result."""
    result = fresh("_vm_any_" if is_any else "_vm_all_")
    mapping, loops, elt = _clauses(node, fresh)
    load = lambda: ast.Name(id=result, ctx=ast.Load())  # noqa: E731
    store = lambda: ast.Name(id=result, ctx=ast.Store())  # noqa: E731
    found = ast.If(test=elt if is_any else ast.UnaryOp(op=ast.Not(), operand=elt),
                   body=[ast.Assign(targets=[store()], value=ast.Constant(is_any)), ast.Break()], orelse=[])
    decided = load() if is_any else ast.UnaryOp(op=ast.Not(), operand=load())
    body = [found]
    for depth, (target, it, ifs) in enumerate(reversed(loops)):
        for cond in reversed(ifs):
            body = [ast.If(test=cond, body=body, orelse=[])]
        loop = ast.For(target=target, iter=it, body=body, orelse=[])
        outer = depth < len(loops) - 1  # an enclosing loop stops too once the result is decided
        body = [loop, ast.If(test=copy.deepcopy(decided), body=[ast.Break()], orelse=[])] if outer else [loop]
    stmts = [ast.Assign(targets=[store()], value=ast.Constant(not is_any)), *body]
    for s in stmts:
        locate(s, node)
    return result, [result, *mapping.values()], stmts


def extreme_loops(node, fresh, is_max, default=None):
    """``(result name, locals it introduces, statements)`` for ``max(<generator>)`` (``is_max``)
    or ``min(<generator>)``, with ``default`` (an expression) or None: Python's ``ValueError``
    when no item comes.  ``default`` is evaluated before the loops, as Python evaluates the
    argument before it iterates."""
    kind = "max" if is_max else "min"
    result, found, item = fresh(f"_vm_{kind}_"), fresh(f"_vm_{kind}_found_"), fresh(f"_vm_{kind}_item_")
    fallback = fresh(f"_vm_{kind}_default_") if default is not None else None
    mapping, loops, elt = _clauses(node, fresh)

    def load(name):
        return ast.Name(id=name, ctx=ast.Load())

    def assign(name, value):
        return ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())], value=value)

    better = ast.Compare(left=load(item), ops=[ast.Gt() if is_max else ast.Lt()], comparators=[load(result)])
    body = [assign(item, elt),
            ast.If(test=load(found), body=[ast.If(test=better, body=[assign(result, load(item))], orelse=[])],
                   orelse=[assign(result, load(item)), assign(found, ast.Constant(True))])]
    for target, it, ifs in reversed(loops):
        for cond in reversed(ifs):
            body = [ast.If(test=cond, body=body, orelse=[])]
        body = [ast.For(target=target, iter=it, body=body, orelse=[])]
    if default is None:
        empty = [ast.Raise(exc=ast.Call(func=load("ValueError"), args=[ast.Constant(empty_extreme_message(kind))],
                                        keywords=[]), cause=None)]
    else:
        empty = [assign(result, load(fallback))]
    stmts = ([assign(fallback, default)] if default is not None else []) + [
        assign(found, ast.Constant(False)), *body,
        ast.If(test=ast.UnaryOp(op=ast.Not(), operand=load(found)), body=empty, orelse=[])]
    for s in stmts:
        locate(s, node)
    names = [result, found, item] + ([fallback] if fallback else [])
    return result, [*names, *mapping.values()], stmts


def locate(tree, where):
    """Give every synthesized node of ``tree`` the position of ``where`` (errors name its line)."""
    for sub in ast.walk(tree):
        if "lineno" in sub._attributes and not hasattr(sub, "lineno"):
            ast.copy_location(sub, where)
