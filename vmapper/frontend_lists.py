"""Which locals of a per-sample function are lists it builds itself.

vmapper holds a list as a tuple of per-lane values, so ``r.append(v)`` can only
become ``r = r + (v,)`` where nothing else can see the list: a local that is not
a parameter and is bound only by list literals (or ``+=``).  The frontend turns
appends to those into value updates; the runtime still refuses them when another
name reaches the list (``executor._check_not_shared``).
"""
from __future__ import annotations

import ast

LIST_METHODS = ("append", "extend")


def list_locals(fdef: ast.FunctionDef) -> set:
    """Locals that are surely lists built in ``fdef``: not parameters, and every binding is
    ``name = [...]`` (or ``[... for ...]``, ``[...] * n``, ``[...] + [...]``, ``name + [...]``; one target) or
    ``name += ...``.
    Only on those may ``.append``/``.extend`` become value updates: vmapper holds lists as
    tuples, and a tuple from elsewhere (a caller's list, a helper's result, ``x.shape``) may
    be a Python list that others see, or a tuple."""
    literal, accepted = set(), set()
    for node in ast.walk(fdef):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            # (``a = b = []``: two names, one list)
            if len(targets) == 1 and isinstance(targets[0], ast.Name) and _new_list(node.value, targets[0].id):
                literal.add(targets[0].id)
                accepted.add(id(targets[0]))
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) \
                and isinstance(node.op, ast.Add):
            accepted.add(id(node.target))
    bad = {a.arg for a in fdef.args.posonlyargs + fdef.args.args + fdef.args.kwonlyargs}
    bad |= {node.id for node in ast.walk(fdef) if isinstance(node, ast.Name)
            and isinstance(node.ctx, (ast.Store, ast.Del)) and id(node) not in accepted}
    return literal - bad


def _new_list(node, name=None) -> bool:
    """Whether ``node`` surely makes a new list: a literal or a comprehension, ``[...] * n`` or ``[...] + [...]``,
    where either side of ``+`` may be ``name`` itself (``r = r + [v]``, with ``r`` a list of
    this kind: list_locals accepts ``name`` only if every binding of it is one)."""
    if isinstance(node, (ast.List, ast.ListComp)):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _new_list(node.left) or _new_list(node.right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        sides = [_new_list(v, name) or isinstance(v, ast.Name) and v.id == name for v in (node.left, node.right)]
        return all(sides) and (_new_list(node.left, name) or _new_list(node.right, name))
    return False


def list_changes(loop, name):
    """How ``loop`` changes the local list ``name``: None (it does not), ``"items"`` (it only
    assigns items, ``name[i] = v`` or ``name[i] += v``: Python's iteration over the list sees
    the new items, and its length stays), or ``"other"`` (it appends, extends or rebinds it)."""
    how = None
    for node in ast.walk(loop):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, (ast.Store, ast.Del)):
            return "other"
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return "other"
        if isinstance(node, ast.Attribute) and node.attr in LIST_METHODS and isinstance(node.value, ast.Name) \
                and node.value.id == name:
            return "other"
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) \
                and isinstance(node.value, ast.Name) and node.value.id == name:
            how = "items"
    return how


def join_branch_appends(fdef: ast.FunctionDef) -> None:
    """Rewrite (in place) ``if c: ...; r.append(a)`` / ``else: ...; r.append(b)``, both arms
    ending with an append to the same list, as ``if c: ...; t = a`` / ``else: ...; t = b`` then
    ``r.append(t)`` after the ``if``: the same values in the same order, and the list grows on
    every lane at once (an append on one arm alone leaves lists of two lengths until the arms
    join, which vmapper's lists cannot hold).  ``elif`` chains join from the inside out."""
    _JoinAppends().visit(fdef)
    ast.fix_missing_locations(fdef)


class _JoinAppends(ast.NodeTransformer):
    def __init__(self):
        self.count = 0

    def visit_If(self, node):
        self.generic_visit(node)
        ends = [_final_append(arm) for arm in (node.body, node.orelse)]
        if None in ends or ends[0][0] != ends[1][0]:
            return node
        self.count += 1
        tmp = f"_vm_appended{self.count}"
        for arm, (_, value) in zip((node.body, node.orelse), ends):
            arm[-1] = ast.copy_location(ast.Assign(targets=[ast.Name(id=tmp, ctx=ast.Store())], value=value),
                                        arm[-1])
        call = ast.Call(func=ast.Attribute(value=ast.Name(id=ends[0][0], ctx=ast.Load()), attr="append",
                                           ctx=ast.Load()),
                        args=[ast.Name(id=tmp, ctx=ast.Load())], keywords=[])
        return [node, ast.copy_location(ast.Expr(value=call), node)]


def _final_append(stmts):
    """``(list name, appended expression)`` when ``stmts`` ends with ``name.append(expr)``."""
    if not stmts:
        return None
    last = stmts[-1]  # (an inner if already rewritten: its append follows it in ``stmts``)
    if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)):
        return None
    call = last.value
    f = call.func
    if isinstance(f, ast.Attribute) and f.attr == "append" and isinstance(f.value, ast.Name) \
            and len(call.args) == 1 and not call.keywords and not isinstance(call.args[0], ast.Starred):
        return f.value.id, call.args[0]
    return None
