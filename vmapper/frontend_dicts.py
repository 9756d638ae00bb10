"""Local dicts with constant keys, rewritten into the local lists they are held as.

A dict that the function builds itself from literals with constant keys
(``d = {"h": h, "c": c}``) and uses only through those keys is a record whose
keys are known when the function is compiled.  :func:`rewrite_dicts` rewrites
the function's AST before it is lowered:

- the literal becomes a list of its values in key order, so the name is a local
  list (:mod:`.frontend_lists`) and ``d["h"] = v`` / ``d["h"] += v`` are value
  updates of one item;
- ``d["h"]`` and ``d.get("h", default)`` become an item of that list (or the
  default, for a key the dict never holds), ``len(d)`` stays ``len``; a key that
  is not a constant (``d[k]``, ``d.get(k, default)``) is looked up per lane, with
  Python's KeyError (or the default);
- ``k in d`` tests ``k`` against the tuple of keys, and ``for`` over ``d``,
  ``d.keys()``, ``d.values()`` or ``d.items()`` iterates the keys, the list, or
  ``zip(keys, list)``.

Anything else done with such a dict -- passing or returning it, binding it to
another name, adding a key, other methods -- raises :class:`~vmapper.errors.UnsupportedSyntaxError`
naming the line, as does a dict literal anywhere else.
"""
from __future__ import annotations

import ast
import copy

from .primitives.structural import key_index

#: the methods of a record dict that the rewrite handles
DICT_METHODS = ("get", "keys", "values", "items")


def rewrite_dicts(fdef: ast.FunctionDef, error) -> set:
    """Rewrite ``fdef`` (in place) as the module docstring says; ``error(construct, node,
    hint=None)`` makes the exception to raise.  Returns the names of the record dicts."""
    records = _record_keys(fdef, error)
    if not records:
        return set()
    parents = {child: node for node in ast.walk(fdef) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(fdef):
        if isinstance(node, ast.Name) and node.id in records and isinstance(node.ctx, ast.Load):
            _check_use(node, parents, records[node.id], error)
    _Rewrite(records).visit(fdef)
    ast.fix_missing_locations(fdef)
    return set(records)


def _record_keys(fdef, error):
    """``{name: keys}`` of the locals bound only by dict literals with the same constant keys."""
    literal, accepted = {}, set()
    for node in ast.walk(fdef):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.Dict):
            name = node.targets[0].id
            keys = _constant_keys(node.value, error)
            seen = literal.setdefault(name, keys)
            if seen != keys:
                raise error(f"dict '{name}' bound to literals with different keys ({_show(seen)} and "
                            f"{_show(keys)})", node, hint="vmapper holds a local dict as a record with fixed "
                            "keys: give every literal the same keys in the same order")
            accepted.add(id(node.targets[0]))
    args = fdef.args
    other = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    other |= {n.id for n in ast.walk(fdef) if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))
              and id(n) not in accepted}
    for name in sorted(set(literal) & other):
        raise error(f"dict literal bound to '{name}', which is also bound to other values", fdef,
                    hint="a local dict must be bound only by dict literals with the same constant keys")
    return literal


def _constant_keys(node, error):
    keys = []
    for k in node.keys:
        if k is None:
            raise error("'**' in a dict literal", node)
        if not isinstance(k, ast.Constant) or isinstance(k.value, (bytes, type(Ellipsis))):
            raise error("dict literal with a key that is not a constant", k,
                        hint="a local dict needs constant keys (strings, numbers): its keys are fixed "
                             "when the function is compiled")
        keys.append(k.value)
    if len(set(keys)) != len(keys):
        raise error("dict literal with a repeated key", node)
    return tuple(keys)


def _show(keys):
    return "{" + ", ".join(repr(k) for k in keys) + "}"


def _check_use(name, parents, keys, error):
    """Raise unless ``name`` (a record dict read) is one of the uses the rewrite handles."""
    p = parents.get(name)
    d = name.id
    if isinstance(p, ast.Subscript) and p.value is name:
        key = p.slice
        if isinstance(key, ast.Slice):
            raise error(f"dict '{d}' indexed by a slice", p)
        if isinstance(key, ast.Constant) and key.value not in keys and isinstance(p.ctx, ast.Store):
            raise error(f"adding key {key.value!r} to dict '{d}', whose keys are {_show(keys)}", p,
                        hint="a local dict keeps the keys of its literal: list every key there")
        return
    if isinstance(p, ast.Call) and isinstance(p.func, ast.Name) and p.func.id == "len" and p.args == [name]:
        return
    if isinstance(p, ast.Compare) and name in p.comparators and all(isinstance(o, (ast.In, ast.NotIn))
                                                                    for o in p.ops):
        return
    if isinstance(p, (ast.For, ast.comprehension)) and p.iter is name:
        return
    if isinstance(p, ast.Attribute) and p.attr in DICT_METHODS and isinstance(parents.get(p), ast.Call) \
            and parents[p].func is p:
        call = parents[p]
        if p.attr == "get":
            if call.keywords or not 1 <= len(call.args) <= 2 or not isinstance(call.args[0], (ast.Constant, ast.Name)):
                raise error(f"'{d}.get()' with other than a key (a constant or a name) and a default", call)
        elif call.args or call.keywords:
            raise error(f"'{d}.{p.attr}()' with arguments", call)
        elif p.attr == "items" and not isinstance(parents.get(call), (ast.For, ast.comprehension)):
            raise error(f"'{d}.items()' outside a 'for' header or a comprehension", call)
        return
    how = f"'{d}.{p.attr}'" if isinstance(p, ast.Attribute) else "a value"
    raise error(f"dict '{d}' used as {how} (passed, returned, bound to another name or changed)", p or name,
                hint="vmapper supports a local dict as a record: d[key], d[key] = v, len(d), key in d, "
                     "d.get(key, default) and for loops over d, d.keys(), d.values() or d.items()")


class _Rewrite(ast.NodeTransformer):
    def __init__(self, records):
        self.records = records

    def _keys(self, node):
        return self.records.get(node.id) if isinstance(node, ast.Name) else None

    def _const_keys(self, keys, where):
        return ast.copy_location(ast.Tuple(elts=[ast.Constant(k) for k in keys], ctx=ast.Load()), where)

    def visit_Assign(self, node):
        if len(node.targets) == 1 and self._keys(node.targets[0]) is not None and isinstance(node.value, ast.Dict):
            values = [self.visit(v) for v in node.value.values]
            node.value = ast.copy_location(ast.List(elts=values, ctx=ast.Load()), node.value)
            return node
        return self.generic_visit(node)

    def visit_Subscript(self, node):
        keys = self._keys(node.value)
        if keys is None:
            return self.generic_visit(node)
        key = node.slice
        if isinstance(key, ast.Constant) and key.value in keys:
            node.slice = ast.copy_location(ast.Constant(keys.index(key.value)), key)
        else:  # found (or Python's KeyError) per lane when it runs
            storing = ast.Constant(not isinstance(node.ctx, ast.Load))
            node.slice = ast.copy_location(ast.Call(func=ast.Constant(key_index), args=[
                self._const_keys(keys, key), self.visit(key), storing], keywords=[]), key)
        return node

    def visit_Compare(self, node):
        node = self.generic_visit(node)
        node.comparators = [self._const_keys(self._keys(c), c) if self._keys(c) is not None else c
                            for c in node.comparators]
        return node

    def _iterating(self, node):
        """A ``for`` or a comprehension: over a dict itself, its keys (checked before the
        iterable is rewritten, as ``d.values()`` becomes the name ``d``)."""
        keys = self._keys(node.iter)
        node = self.generic_visit(node)
        if keys is not None:
            node.iter = self._const_keys(keys, node.iter)
        return node

    visit_For = visit_comprehension = _iterating

    def visit_Call(self, node):
        f = node.func
        keys = self._keys(f.value) if isinstance(f, ast.Attribute) and f.attr in DICT_METHODS else None
        if keys is None:
            return self.generic_visit(node)
        d = ast.Name(id=f.value.id, ctx=ast.Load())
        if f.attr == "keys":
            out = self._const_keys(keys, node)
        elif f.attr == "values":
            out = d
        elif f.attr == "items":
            out = ast.Call(func=ast.Constant(zip), args=[self._const_keys(keys, node), d], keywords=[])
        else:  # get
            key = node.args[0]
            default = self.visit(copy.deepcopy(node.args[1])) if len(node.args) == 2 else ast.Constant(None)
            if not isinstance(key, ast.Constant):  # looked up per lane, the default where absent
                found = ast.Compare(left=ast.Name(id=key.id, ctx=ast.Load()), ops=[ast.In()],
                                    comparators=[self._const_keys(keys, node)])
                item = ast.Subscript(value=d, slice=ast.Call(func=ast.Constant(key_index), args=[
                    self._const_keys(keys, node), ast.Name(id=key.id, ctx=ast.Load()), ast.Constant(False)],
                    keywords=[]), ctx=ast.Load())
                out = ast.IfExp(test=found, body=item, orelse=default)
            elif key.value in keys:
                out = ast.Subscript(value=d, slice=ast.Constant(keys.index(key.value)), ctx=ast.Load())
            else:
                out = default
        return ast.copy_location(out, node)
