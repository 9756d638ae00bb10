"""The builtins ``pow``, ``any``, ``all``, ``min``/``max`` of a generator, ``reversed``,
``range`` after ``in`` and ``enumerate`` in a ``for`` header, in per-sample code.

* ``pow(a, b)`` is ``a ** b`` (the ``pow`` primitive: same dtypes, errors and
  gradients); ``pow(a, b, m)`` is the ``pow_mod`` primitive, Python's modular
  exponentiation of Python ints (``primitives/python_numbers.py``).
* ``any(<generator>)`` and ``all(<generator>)`` run as the loops they stand for
  (:func:`.frontend_comprehensions.search_loops`), with a ``break`` where
  Python's short-circuit stops: the elements after the first truthy (``any``)
  or falsy (``all``) one are never evaluated on that lane.  ``any(x)`` of
  anything else iterates ``x`` as ``any(e for e in x)`` does.  The result is a
  Python bool.
* ``reversed(x)`` is accepted where Python consumes it at once: a ``for``
  header (a comprehension's ``for`` clauses too, and the arguments of
  ``enumerate``/``zip`` there), and the iterable of ``any``, ``all``, ``sum``,
  ``min`` and ``max``.  ``reversed(range(a, b, s))`` becomes the ``range`` of
  the same values in the opposite order, with per-lane bounds; ``reversed(x)``
  of a sequence iterates ``x[::-1]``, a snapshot, as the forward ``for`` does.
  Elsewhere (``r = reversed(x)``: a one-shot iterator) it is an error.
* ``max(<generator>)`` and ``min(<generator>)`` (``default=`` too) run as loops
  (:func:`.frontend_comprehensions.extreme_loops`).
* ``x in range(a, b, s)`` is the ``contains_range`` primitive on the bounds: no
  range is made.
* ``enumerate(seq, start)`` and ``enumerate(zip(...))`` in a ``for`` header, a
  ``range()`` among their sequences included (:func:`range_sequence`).

Everything here is lowered to IR through the :class:`~vmapper.frontend.Builder`,
so errors name the user's file and line.
"""
from __future__ import annotations

import ast
import builtins
import copy
import types

from .frontend_comprehensions import extreme_loops, locate, search_loops
from .guards import MISSING
from .ir import Const, Var


def _reversed_items(seq):
    """Marker of the frontend's rewritten ``reversed(seq)``: the items of ``seq`` in reverse
    order, as a sequence (never called)."""
    raise AssertionError("vmapper's marker for reversed() is not called")  # pragma: no cover


_REVERSED_OK = "a 'for' loop header (also a comprehension's), enumerate()/zip() in one, " \
               "any(), all(), sum(), min() and max()"


def static_value(b, node):
    """The callable that ``node`` names when it is bound at compile time (a builtin, a module's
    function, a global function), else None.  Unlike ``Builder.resolve_constant`` it emits
    nothing (no ``load_global`` of a data global)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        name = node.id
        if name in b.locals:
            return None
        if name in b.closure:
            try:
                return b.bound("cell", b.closure[name], name, b.closure[name].cell_contents)
            except ValueError:
                return None
        g = b.fn.__globals__
        if name in g:
            return b.bound("global", g, name, g[name])
        b.bound("global", g, name, MISSING)
        return getattr(builtins, name, None)
    if isinstance(node, ast.Attribute):
        base = static_value(b, node.value)
        if isinstance(base, (types.ModuleType, type)):
            return b.bound("attr", base, node.attr, getattr(base, node.attr, None))
    return None


def _is_call_of(b, node, fn):
    return isinstance(node, ast.Call) and static_value(b, node.func) is fn


def _one_argument(b, node, name):
    if len(node.args) != 1 or node.keywords:
        raise b.error(f"{name}() with other than one positional argument", node)
    return node.args[0]


# ---- calls ------------------------------------------------------------------------------

def builtin_call(b, node):
    """The value of ``node`` (an ``ast.Call``) if it calls one of this module's builtins, else
    None (the caller lowers the call as usual)."""
    fn = static_value(b, node.func)
    if fn is builtins.pow:
        return _pow(b, node)
    if fn is builtins.len and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.ListComp):
        return _length_of_a_comprehension(b, node.args[0])
    if fn is builtins.any or fn is builtins.all:
        return _any_all(b, node, fn is builtins.any)
    if (fn is builtins.min or fn is builtins.max) and len(node.args) == 1 \
            and isinstance(node.args[0], (ast.GeneratorExp, ast.ListComp)):
        if isinstance(node.args[0], ast.ListComp):  # max([...]): the max of what max(...) sees
            node = copy.copy(node)
            node.args = [as_generator(node.args[0])]
        return _extreme(b, node, fn is builtins.max)
    if fn is builtins.reversed:
        raise b.error(f"reversed() outside {_REVERSED_OK}", node,
                      hint="reversed() returns a one-shot iterator: iterate it where it is made, "
                           "or use x[::-1] for a reversed copy of an array, list or tuple")
    if fn is _reversed_items:
        seq = b.expr(node.args[0])
        b.emit("len", [seq], node)  # Python's TypeError for what is not a sequence
        return b.emit("getitem", [seq, Const(slice(None, None, -1))], node)
    if (fn is builtins.sum or fn is builtins.min or fn is builtins.max) and node.args \
            and _is_call_of(b, node.args[0], builtins.reversed) \
            and (fn is builtins.sum or len(node.args) == 1):
        new = copy.copy(node)
        new.args = [_reversed_sequence(b, node.args[0]), *node.args[1:]]
        return b.expr_Call(new)
    return None


def _length_of_a_comprehension(b, comp):
    """``len([e for t in it if c])``: ``sum((e, 1)[1] for t in it if c)``, each element still
    evaluated (its errors are the list's), no list built (its length may differ per lane)."""
    one = ast.Subscript(value=ast.Tuple(elts=[comp.elt, ast.Constant(1)], ctx=ast.Load()),
                        slice=ast.Constant(1), ctx=ast.Load())
    gen = ast.GeneratorExp(elt=ast.copy_location(one, comp.elt), generators=comp.generators)
    return b.comprehension(ast.copy_location(gen, comp), ast.Constant(0))


def _pow(b, node):
    """``pow(base, exp[, mod])``, its arguments evaluated in the order they are written."""
    names = ("base", "exp", "mod")
    if len(node.args) > 3:
        raise b.error(f"pow() with {len(node.args)} positional arguments (it takes at most 3)", node)
    bound = dict(zip(names, node.args))
    for k in node.keywords:
        if k.arg not in names or k.arg in bound:
            raise b.error(f"pow() with keyword argument '{k.arg}'", node)
        bound[k.arg] = k.value
    if "base" not in bound or "exp" not in bound:
        raise b.error("pow() without its base and exponent", node)
    order = [*node.args, *(k.value for k in node.keywords)]
    values = {id(a): b.expr(a) for a in order}
    base, exp = values[id(bound["base"])], values[id(bound["exp"])]
    mod = values[id(bound["mod"])] if "mod" in bound else Const(None)
    if isinstance(mod, Const) and mod.value is None:
        return b.emit("pow", [base, exp], node)
    return b.emit("pow_mod", [base, exp, mod], node)


def _any_all(b, node, is_any):
    name = "any" if is_any else "all"
    arg = _one_argument(b, node, name)
    if isinstance(arg, ast.GeneratorExp):
        if any(gen.is_async for gen in arg.generators):
            raise b.error("async generator expression", arg)
        gen = arg
    else:  # any(x): any(e for e in x), x evaluated in the function's scope
        e = ast.copy_location(ast.Name(id="_vm_item", ctx=ast.Store()), arg)
        gen = ast.copy_location(ast.GeneratorExp(
            elt=ast.copy_location(ast.Name(id="_vm_item", ctx=ast.Load()), arg),
            generators=[ast.comprehension(target=e, iter=arg, ifs=[], is_async=0)]), arg)
    result, names, stmts = search_loops(gen, b.fresh, is_any)
    b.locals.update(names)
    b.statements(stmts)
    return Var(result)


def _extreme(b, node, is_max):
    """``max(<generator>)`` / ``min(<generator>)``, with ``default=`` if given."""
    name = "max" if is_max else "min"
    gen = node.args[0]
    if any(g.is_async for g in gen.generators):
        raise b.error("async generator expression", gen)
    default = None
    for k in node.keywords:
        if k.arg != "default":
            raise b.error(f"{name}() of a generator with keyword argument '{k.arg}'", node,
                          hint="only default= is supported; for key=, compare the keys in a loop")
        default = k.value
    result, names, stmts = extreme_loops(gen, b.fresh, is_max, default)
    b.locals.update(names)
    b.statements(stmts)
    return Var(result)


def in_range(b, op, item, call, node):
    """``item in range(...)`` without making the range: one ``contains_range`` on the
    bounds (evaluated after ``item``, in the order written, as Python does)."""
    if call.keywords or not 1 <= len(call.args) <= 3 or any(isinstance(a, ast.Starred) for a in call.args):
        raise b.error("range() with other than 1 to 3 positional arguments", call)
    bounds = [b.expr(a) for a in call.args]
    if len(bounds) == 1:
        bounds = [Const(0), bounds[0]]
    if len(bounds) == 2:
        bounds.append(Const(1))
    result = b.emit("contains_range", [item, *bounds], node)
    return b.emit("not", [result], node) if isinstance(op, ast.NotIn) else result


# ---- for headers ----------------------------------------------------------------------------

def for_header(b, node):
    """``node`` (an ``ast.For``), or a copy whose header no longer calls ``reversed``: a
    reversed range becomes a range (its bounds computed here, before the loop), a reversed
    sequence the reversed snapshot of it."""
    it = node.iter
    if _is_call_of(b, it, builtins.reversed):
        arg = _one_argument(b, it, "reversed")
        if _is_call_of(b, arg, builtins.range):
            new_iter = _reversed_range(b, arg, node)
        elif isinstance(arg, ast.Attribute) and arg.attr == "children":
            return _reversed_by_index(b, node, arg)
        else:
            new_iter = _reversed_sequence(b, it)
    elif _is_call_of(b, it, builtins.enumerate) or _is_call_of(b, it, builtins.zip):
        if not any(_is_call_of(b, a, builtins.reversed) for a in it.args):
            return node
        new_iter = copy.copy(it)
        new_iter.args = [_reversed_sequence(b, a) if _is_call_of(b, a, builtins.reversed) else a
                         for a in it.args]
    else:
        return node
    new = copy.copy(node)
    new.iter = new_iter
    return new


def _reversed_by_index(b, node, seq):
    """``for t in reversed(node.children)``: a tree node's children are a sequence whose length
    differs per lane (no reversed copy can hold them), so the loop counts down an index:
    ``s = seq; for j in range(len(s) - 1, -1, -1): t = s[j]; ...``."""
    k = b.fresh("_vm_reversed")
    s, j = f"{k}_seq", f"{k}_j"
    b.locals.update((s, j))
    name = lambda n, ctx=ast.Load: ast.Name(id=n, ctx=ctx())  # noqa: E731
    assign = ast.Assign(targets=[name(s, ast.Store)], value=seq)
    locate(assign, node)
    b.statements([assign])
    first = ast.BinOp(left=ast.Call(func=ast.Constant(builtins.len), args=[name(s)], keywords=[]),
                      op=ast.Sub(), right=ast.Constant(1))
    header = ast.Call(func=ast.Constant(builtins.range), args=[first, ast.Constant(-1), ast.Constant(-1)],
                      keywords=[])
    item = ast.Assign(targets=[node.target], value=ast.Subscript(value=name(s), slice=name(j), ctx=ast.Load()))
    loop = ast.For(target=name(j, ast.Store), iter=header, body=[item, *node.body], orelse=node.orelse)
    locate(loop, node)
    return loop


def _reversed_sequence(b, call):
    """``reversed(x)`` (``call``) as the marker call that the frontend lowers to ``x[::-1]``."""
    arg = _one_argument(b, call, "reversed")
    for fn in (builtins.enumerate, builtins.zip, builtins.range):
        if _is_call_of(b, arg, fn):
            if fn is builtins.range:
                raise b.error("reversed(range(...)) outside a 'for' loop header", call)
            raise b.error(f"reversed() of {fn.__name__}() (Python raises TypeError: "
                          f"'{fn.__name__}' object is not reversible)", call)
    return ast.copy_location(ast.Call(func=ast.Constant(_reversed_items), args=[arg], keywords=[]), call)


def _reversed_range(b, rng, node):
    """``range(a, b, s)`` reversed: ``range(a + (n-1)*s, a - s, -s)`` with ``n = len(range(a, b,
    s)) = max(-((a - b) // s), 0)``, the same values in the opposite order (empty when n is
    0).  The operands are Python ints, as the items of a range are."""
    start, step, count = _range_bounds(b, rng, node)
    last = b.emit("mul", [b.emit("sub", [count, Const(1)], node), step], node)
    k = b.fresh("_vm_reversed")
    bounds = {f"{k}_first": ("add", [start, last]), f"{k}_stop": ("sub", [start, step]),
              f"{k}_step": ("neg", [step])}
    names = []
    for name, (op, operands) in bounds.items():
        b.emit(op, operands, node, target=name)
        b.locals.add(name)
        names.append(ast.copy_location(ast.Name(id=name, ctx=ast.Load()), rng))
    return ast.copy_location(ast.Call(func=rng.func, args=names, keywords=[]), rng)


def range_arguments(b, rng, node):
    """``(start, stop, step)`` of a ``range(...)`` call's per-lane arguments, checked as
    ``range()`` checks them (``range_check``)."""
    if not 1 <= len(rng.args) <= 3 or rng.keywords:
        raise b.error("range() with these arguments", rng)
    args = [b.expr(a) for a in rng.args]
    start, stop, step = (Const(0), args[0], Const(1)) if len(args) == 1 else \
        (args[0], args[1], args[2] if len(args) == 3 else Const(1))
    b.emit("range_check", [start, stop, step], node)
    return start, stop, step


def _range_bounds(b, rng, node):
    """``(start, step, length)`` of ``range(...)``: ``length = max(-((start - stop) // step), 0)``,
    Python ints all."""
    start, stop, step = (b.emit("int", [v], node) for v in range_arguments(b, rng, node))
    quotient = b.emit("floordiv", [b.emit("sub", [start, stop], node), step], node)
    return start, step, b.emit("max", [b.emit("neg", [quotient], node), Const(0)], node)


def range_sequence(b, rng, node, name):
    """``(first, step, length)`` of ``range(a, b, s)`` as one of the sequences of a ``zip()`` or
    an ``enumerate()`` in a ``for`` header (its item k is ``first + k * step``), each kept in a
    variable named after ``name``; the arguments checked as ``range()`` checks them."""
    out = []
    for part, value in zip(("first", "step", "n"), _range_bounds(b, rng, node)):
        b.locals.add(f"{name}_{part}")
        out.append(b.emit("copy", [value], node, target=f"{name}_{part}"))
    return tuple(out)


def enumerate_args(b, call, node):
    """``(start expression or None, the zip() call or None)`` of ``enumerate(seq[, start])``
    in a ``for`` header, where ``seq`` may be ``zip(...)`` of sequences."""
    args = list(call.args)
    for kw in call.keywords:
        if kw.arg != "start" or len(args) != 1:
            raise b.error("enumerate() with these arguments", node)
        args.append(kw.value)
    if not 1 <= len(args) <= 2:
        raise b.error("enumerate() with these arguments", node)
    inner = args[0]
    zipped = None
    if isinstance(inner, ast.Call) and b.resolve_constant(inner.func) is zip:
        if inner.keywords or not inner.args:
            raise b.error("zip() with these arguments", node)
        zipped = inner
    return (args[1] if len(args) == 2 else None), zipped


def as_generator(node):
    """The generator expression of a list comprehension (the same element and clauses), or of
    the numbers of a ``range(...)`` call (``i for i in range(...)``, ``i`` its own variable)."""
    if isinstance(node, ast.ListComp):
        return ast.copy_location(ast.GeneratorExp(elt=node.elt, generators=node.generators), node)
    if isinstance(node, ast.Call):
        item = "$range_item"  # (not a Python name: no user variable can be it)
        loop = ast.comprehension(target=ast.Name(item, ast.Store()), iter=node, ifs=[], is_async=0)
        return ast.copy_location(ast.GeneratorExp(elt=ast.Name(item, ast.Load()), generators=[loop]), node)
    return node
