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
    ``name = [...]`` (or ``[...] * n``, ``[...] + [...]``; one target) or ``name += ...``.
    Only on those may ``.append``/``.extend`` become value updates: vmapper holds lists as
    tuples, and a tuple from elsewhere (a caller's list, a helper's result, ``x.shape``) may
    be a Python list that others see, or a tuple."""
    literal, accepted = set(), set()
    for node in ast.walk(fdef):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            # (``a = b = []``: two names, one list)
            if len(targets) == 1 and isinstance(targets[0], ast.Name) and _new_list(node.value):
                literal.add(targets[0].id)
                accepted.add(id(targets[0]))
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) \
                and isinstance(node.op, ast.Add):
            accepted.add(id(node.target))
    bad = {a.arg for a in fdef.args.posonlyargs + fdef.args.args + fdef.args.kwonlyargs}
    bad |= {node.id for node in ast.walk(fdef) if isinstance(node, ast.Name)
            and isinstance(node.ctx, (ast.Store, ast.Del)) and id(node) not in accepted}
    return literal - bad


def _new_list(node) -> bool:
    """Whether ``node`` surely makes a new list: a literal, ``[...] * n`` or ``[...] + [...]``."""
    if isinstance(node, ast.List):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _new_list(node.left) or _new_list(node.right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _new_list(node.left) and _new_list(node.right)
    return False


def updates_list(loop, name) -> bool:
    """Whether ``loop`` appends to or extends the list ``name`` (Python's iteration would see it)."""
    for node in ast.walk(loop):
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return True
        if isinstance(node, ast.Attribute) and node.attr in LIST_METHODS and isinstance(node.value, ast.Name) \
                and node.value.id == name:
            return True
    return False
