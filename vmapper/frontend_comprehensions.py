"""List comprehensions, ``sum(<generator>)`` and ``any``/``all`` of one, as the loops they stand for.

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
"""
from __future__ import annotations

import ast
import copy


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


def locate(tree, where):
    """Give every synthesized node of ``tree`` the position of ``where`` (errors name its line)."""
    for sub in ast.walk(tree):
        if "lineno" in sub._attributes and not hasattr(sub, "lineno"):
            ast.copy_location(sub, where)
