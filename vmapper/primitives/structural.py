"""Structural primitives: copies, tuples, loop bookkeeping, globals and calls."""
from __future__ import annotations

import builtins
import inspect
import operator

import numpy as np

from ..errors import with_article
from ..kernels.typing_rules import INT64_MAX, INT64_MIN, MSG_RANGE_EDGE
from ..runtime.buffers import is_spare
from ..runtime.speculation import Poisoned, is_poisoned
from ..runtime.values import Lanes, Traced, is_varying, select, truth
from .registry import register


@register("copy", elementwise=True, scalar=lambda x: x)
def _copy(ctx, args, attrs):
    return args[0]


@register("tuple")
def _tuple(ctx, args, attrs):
    return tuple(args)


@register("check_len", may_fail=True)
def _check_len(ctx, args, attrs):
    (v,) = args
    if type(v) is Traced:  # (check_len bypasses the tape: it only reads a length)
        v = v.value
    n = attrs["n"]
    if type(v) is tuple and len(v) == n:
        return None
    if isinstance(v, Lanes):
        if v.data.ndim < 2:
            raise ctx.lane_error_all(f"cannot unpack non-iterable {v.data.dtype.name} object", TypeError)
        have = v.data.shape[1]
    else:
        hook = getattr(v, "__vmapper_len__", None)
        if hook is not None:
            have = hook(ctx)
            have = have.data if isinstance(have, Lanes) else np.asarray(have)
            ctx.fail_where(have != n, f"unpacking needs exactly {n} values", ValueError, values=have)
            return None
        try:
            have = len(v)
        except TypeError:
            raise ctx.lane_error_all(f"cannot unpack non-iterable {type(v).__name__} object", TypeError)
    if have != n:
        what = "too many values to unpack" if have > n else "not enough values to unpack"
        raise ctx.lane_error_all(f"{what} (expected {n}, got {have})", ValueError)
    return None


@register("len", callables=(builtins.len,))
def _len(ctx, args, attrs):
    (v,) = args
    hook = getattr(v, "__vmapper_len__", None)
    if hook is not None:
        return hook(ctx)
    if isinstance(v, Lanes):
        if v.data.ndim < 2:
            if v.data.dtype.kind == "U":  # a str per lane
                return Lanes(np.strings.str_len(v.data), True)
            raise ctx.lane_error_all(f"object of type '{v.data.dtype.name}' has no len()", TypeError)
        return v.data.shape[1]
    return ctx.uniform(len, v)


def _is_int(v):
    """An int for ``range()``: Python's bool is one, numpy's bool is not."""
    if isinstance(v, Lanes):
        kind = v.data.dtype.kind
        return (kind in "iu" or kind == "b" and v.weak) and v.data.ndim == 1
    return isinstance(v, (int, np.integer))


@register("range_check", may_fail=True)
def _range_check(ctx, args, attrs):
    for v in args:
        if not _is_int(v):
            what = "numpy.bool" if isinstance(v, Lanes) and v.data.dtype.kind == "b" else ctx.describe(v)
            raise ctx.lane_error_all(f"'{what}' object cannot be interpreted as an integer", TypeError)
    step = args[2]
    if isinstance(step, Lanes):
        ctx.fail_where(step.data == 0, "range() arg 3 must not be zero", ValueError)
    elif step == 0:
        raise ctx.lane_error_all("range() arg 3 must not be zero", ValueError)
    _check_range_edge(ctx, *args)
    return None


def _check_range_edge(ctx, start, stop, step):
    """Refuse lanes whose range stops within one step of int64's limit (``MSG_RANGE_EDGE``)."""
    bounds = [np.asarray(v.data if isinstance(v, Lanes) else v) for v in (start, stop, step)]  # (ints: checked)
    if max(x.dtype.itemsize for x in bounds) < 8:
        return  # (narrower ints cannot come near the limit; the frontend widens them to int64)
    with np.errstate(all="ignore"):
        a, b, s = (x.astype(np.int64) for x in bounds)
        up = (s > 0) & (a < b) & (b - 1 > INT64_MAX - np.maximum(s, 1))
        down = (s < 0) & (a > b) & (b + 1 < INT64_MIN - np.minimum(s, -1))
    bad = up | down
    if isinstance(bad, np.ndarray) and bad.ndim:
        ctx.fail_where(bad, MSG_RANGE_EDGE, OverflowError)
    elif bad:
        raise ctx.lane_error_all(MSG_RANGE_EDGE, OverflowError)


@register("range_cond", elementwise=True,
          scalar=lambda i, stop, step: i < stop if step > 0 else i > stop)
def _range_cond(ctx, args, attrs):
    i, stop, step = args
    if not any(isinstance(v, Lanes) for v in args):
        return i < stop if step > 0 else i > stop
    d = [v.data if isinstance(v, Lanes) else v for v in args]
    return Lanes(np.where(np.asarray(d[2]) > 0, d[0] < d[1], d[0] > d[1]), True)


@register("load_global")
def _load_global(ctx, args, attrs):
    if "cell" in attrs:
        return attrs["cell"].cell_contents
    try:
        return attrs["globals"][attrs["name"]]
    except KeyError:
        raise ctx.lane_error_all(f"name '{attrs['name']}' is not defined", NameError)


@register("call", may_fail=True)
def _call(ctx, args, attrs):
    k = attrs.get("groups", 1)
    size = len(args) // k
    groups = [list(args[j * size:(j + 1) * size]) for j in range(k)]
    results = _limited(ctx, attrs, ctx.call_function, attrs["callee"], groups, memo=attrs.get("memo", False))
    return results[0] if k == 1 else tuple(results)


def _limited(ctx, attrs, call, *args, **kwargs):
    """``call(*args, **kwargs)``, where a ``@batched(max_iters=N)`` callee's loops stop at N trips
    (or the caller's own, smaller limit) while it runs, as when it is called directly."""
    limit, state = attrs.get("max_iters"), ctx.frame.state
    if limit is None or state.max_iters is not None and state.max_iters <= limit:
        return call(*args, **kwargs)
    outer, state.max_iters = state.max_iters, limit
    try:
        return call(*args, **kwargs)
    finally:
        state.max_iters = outer


_NOT_OBJECTS = (Lanes, Traced, np.ndarray, np.generic, tuple, list, dict, set, frozenset, str, bytes,
                int, float, complex, bool, type(None))


def user_method(obj, name):
    """``(function, receiver args, memo)`` behind ``obj.name(...)`` when ``obj`` is a user's
    object (the same on every lane) and the attribute a Python function, a ``staticmethod``, a
    ``classmethod`` or a ``@batched`` function (``memo``: one of ``memo=True``, whose calls run
    in DAG mode wherever they are made); None for anything else (arrays, numbers, builtins,
    C methods)."""
    if isinstance(obj, _NOT_OBJECTS) or hasattr(obj, "__vmapper_method__") \
            or type(obj).__module__ == "builtins":
        return None
    try:
        attr = inspect.getattr_static(obj, name)
    except AttributeError:
        return None
    receiver = () if name in getattr(obj, "__dict__", {}) else (obj,)  # (a function stored on the object: no self)
    if isinstance(attr, staticmethod):
        attr, receiver = attr.__func__, ()
    elif isinstance(attr, classmethod):
        attr, receiver = attr.__func__, (type(obj),)
    memo = False
    if getattr(attr, "__vmapper_batched__", False):
        attr, receiver, memo = attr.function, receiver + attr.receiver, bool(getattr(attr, "memo", False))
    return (attr, receiver, memo) if inspect.isfunction(attr) else None


def call_user_method(ctx, obj, name, groups, kw):
    """``obj.name(*args)`` for each ``args`` of ``groups`` (the last ``len(kw)`` of them by
    keyword) as a call of a plain function: batched over the calling lanes like any helper,
    recursion included, all groups in one call.  Returns the result of each group."""
    fn, receiver, memo = user_method(obj, name)
    bound_groups = []
    for args in groups:
        npos = len(args) - len(kw)
        bound_groups.append(_bound_arguments(ctx, obj, name, fn, receiver, args[:npos], dict(zip(kw, args[npos:]))))
    return ctx.call_function(fn, bound_groups, memo=memo)


def _bound_arguments(ctx, obj, name, fn, receiver, positional, keywords):
    """The positional arguments of ``fn`` for ``obj.name(*positional, **keywords)``, defaults
    filled in (Python's TypeError for a call that does not fit)."""
    try:
        bound = inspect.signature(fn).bind(*receiver, *positional, **keywords)
    except TypeError as exc:
        raise ctx.type_error(f"{type(obj).__name__}.{name}(): {exc}") from None
    bound.apply_defaults()
    if bound.kwargs:
        raise ctx.unsupported(f"method {type(obj).__name__}.{name} with keyword-only or ** parameters")
    return list(bound.args)


@register("map_call", may_fail=True)
def _map_call(ctx, args, attrs):
    """A call hoisted out of a loop over a sequence: one call over every lane's items."""
    seq, *others = args
    return _limited(ctx, attrs, ctx.map_function, attrs["callee"], seq, list(others), attrs["item_pos"],
                    memo=attrs.get("memo", False))


@register("map_method", may_fail=True)
def _map_method(ctx, args, attrs):
    """``obj.name(..., item, ...)`` hoisted out of a loop over a sequence: one call of the
    user's function over every lane's items, or the method itself over all items at once."""
    obj, seq, *others = args
    name, pos = attrs["name"], attrs["item_pos"]
    found = user_method(obj, name)
    if found is None:
        return ctx.map_primitive("method", {"name": name}, seq, [obj, *others], pos + 1)
    fn, receiver, memo = found
    item = object()  # (where the item lands among the bound arguments)
    args = _bound_arguments(ctx, obj, name, fn, receiver, [*others[:pos], item, *others[pos:]], {})
    at = next(k for k, a in enumerate(args) if a is item)
    return ctx.map_function(fn, seq, args[:at] + args[at + 1:], at, memo=memo)


@register("sum", callables=(builtins.sum,))
def _sum(ctx, args, attrs):
    """Python's ``sum``: a left fold of ``+`` from ``start`` (0), in order, as per sample."""
    if len(args) not in (1, 2) or attrs.get("kw"):
        raise ctx.unsupported("sum() with these arguments")
    items = ctx.sequence_items(args[0], "sum() argument")
    acc = args[1] if len(args) == 2 else 0
    for v in items:
        acc = ctx.call_primitive("add", (acc, v))
    return acc


@register("truth", elementwise=True, scalar=operator.truth)
def _truth(ctx, args, attrs):
    t = truth(args[0], ctx.n)
    return Lanes(np.asarray(t), True) if isinstance(t, np.ndarray) else t


@register("select", elementwise=True, scalar=lambda c, a, b: a if c else b)
def _select(ctx, args, attrs):
    """Per lane ``a if c else b`` with ``c`` already a bool (made by if-conversion)."""
    state = ctx.frame.state
    # a dying temporary arm takes the result (never while taping: the tape may hold it)
    spare = None if state.tape is not None else 0 if is_spare(args[1], state.pool) \
        else 1 if is_spare(args[2], state.pool) else None
    c, a, b = args
    ta, tb = type(a), type(b)
    if (ta is Poisoned or tb is Poisoned or ta is tuple or tb is tuple) and (is_poisoned(a) or is_poisoned(b)):
        return b if is_poisoned(a) else a  # (an arm that no active lane takes: runtime/speculation.py)
    if isinstance(c, Lanes):
        # ``x and True`` / ``x or False`` on a bool x whose truth is c: x itself, no pass over it
        if a is True and type(b) is Lanes and b.data is c.data or \
                b is False and type(a) is Lanes and a.data is c.data:
            return b if a is True else a
        if type(a) is tuple and type(b) is tuple and len(a) != len(b):
            from ..runtime.context import LIST_LENGTH_HINT
            raise ctx.unsupported(f"a list or tuple of length {len(a)} on some lanes and {len(b)} on others",
                                  hint=LIST_LENGTH_HINT)
        if attrs.get("merged_call_argument") and differ_in_type(a, b):
            return _one_arms_arguments(ctx, c.data, a, b)
        try:
            return select(c.data, a, b, ctx.n, state.pool, spare)
        except TypeError as exc:
            hint = None
            if attrs.get("merged_call_argument"):
                hint = ("both arms of this if call the same function, and vmapper makes that one call "
                        "whose arguments hold each lane's arm's arguments; here they cannot share one "
                        "value. Call the function after the if with arguments of one kind, or give "
                        "the two arms different functions")
            raise ctx.unsupported(f"choosing per lane between values of different kinds ({exc})",
                                  hint=hint) from None
    return a if c else b


_PROMOTED_AS_DOCUMENTED = {np.dtype(np.int64), np.dtype(np.float64)}


def differ_in_type(a, b):
    """Whether ``a`` and ``b`` are per-lane arrays of dtypes that one array of both would
    change beyond what the README documents (an int in one arm and a float in the other)."""
    ra, rb = (v.value if type(v) is Traced else v for v in (a, b))
    return type(ra) is Lanes and type(rb) is Lanes and ra.data.dtype != rb.data.dtype \
        and not {ra.data.dtype, rb.data.dtype} <= _PROMOTED_AS_DOCUMENTED


def _one_arms_arguments(ctx, taken, a, b):
    """The arguments of one call made for both arms of an ``if`` (``passes/merge_branch_calls.py``)
    when they differ in type: those of the arm every active lane takes.  Where lanes take both
    arms, one call would compute one arm's lanes in the other's type (int8 without its
    wraparound, float32 in float64): refused, naming the types."""
    if ctx.mask is not None:
        taken = taken[ctx.mask]
    if taken.all():
        return a
    if not taken.any():
        return b
    ra, rb = (v.value if type(v) is Traced else v for v in (a, b))
    raise ctx.unsupported(
        f"calling one function in both arms of an if with {with_article(ra.data.dtype)} argument in one arm and "
        f"{with_article(rb.data.dtype)} argument in the other (one call for both would compute both arms in "
        f"{np.result_type(ra.data.dtype, rb.data.dtype)})",
        hint="give the arms' calls arguments of one type (cast one), or call the function after the if")


# ---- lists: held as tuples, appended to as values ----------------------------------------

def _the_list(ctx, v, attrs, method):
    """``v`` if it is the local list (a tuple); else the error the per-sample run raises."""
    if type(v) is tuple:
        return v
    raw = v.value if type(v) is Traced else v
    if isinstance(raw, Lanes):
        kind = ({"b": "bool", "i": "int", "u": "int", "f": "float", "c": "complex"}[raw.data.dtype.kind]
                if raw.weak else "numpy.ndarray" if raw.data.ndim > 1 else f"numpy.{raw.data.dtype.name}")
    else:
        kind = type(raw).__name__
    raise ctx.lane_error_all(f"'{kind}' object has no attribute '{method}' ({attrs.get('how', method)})",
                             AttributeError)


@register("list_append", may_fail=True)
def _list_append(ctx, args, attrs):
    """``r.append(v)``: the longer list (``r`` is rebound to it; the runtime checked that no
    other name reaches the list).  A list whose length would differ per lane cannot merge
    across lanes: the merge raises (``Frame.conflicts``)."""
    lst, item = args
    return _the_list(ctx, lst, attrs, "append") + (item,)


@register("list_setitem", may_fail=True)
def _list_setitem(ctx, args, attrs):
    """``r[i] = v`` on a local list: the list with item ``i`` replaced (``r`` is rebound to it;
    the runtime checked that no other name reaches the list).  A per-lane ``i`` replaces, in
    each item, the lanes whose index points at it; an index out of range on an active lane
    raises Python's IndexError there."""
    lst, item, *ix = args
    lst = _the_list(ctx, lst, attrs, "__setitem__")
    if len(ix) != 1 or type(ix[0]) is slice:
        raise ctx.unsupported(f"{attrs.get('how', 'item assignment')} with other than one integer index",
                              hint="a list must keep its length on every lane: assign item by item")
    (i,) = ix
    n = len(lst)
    raw = i.value if type(i) is Traced else i
    if not isinstance(raw, Lanes):
        if not isinstance(raw, (int, np.integer)):
            raise ctx.type_error(f"list indices must be integers or slices, not {type(raw).__name__}")
        if not -n <= raw < n:
            raise ctx.lane_error_all("list assignment index out of range", IndexError)
        k = int(raw) % n
        return lst[:k] + (item,) + lst[k + 1:]
    d = raw.data
    if d.ndim != 1 or d.dtype.kind not in "iub":
        kind = "float" if d.dtype.kind == "f" else d.dtype.name if d.ndim == 1 else "numpy.ndarray"
        raise ctx.type_error(f"list indices must be integers or slices, not {kind}")
    d = d.astype(np.int64)
    ctx.fail_where((d < -n) | (d >= n), "list assignment index out of range", IndexError, values=d)
    d = np.where(d < 0, d + n, d)
    return tuple(select(d == k, item, old, ctx.n) for k, old in enumerate(lst))


def key_index(keys, key, storing=False):
    """The position of ``key`` among a local dict's ``keys`` (per-sample code calls this where a
    key is not a constant: :mod:`vmapper.frontend_dicts`)."""
    try:
        return {k: i for i, k in enumerate(keys)}[key]
    except KeyError:
        if storing:
            raise NotImplementedError(f"adding key {key!r} to a local dict") from None
        raise


def lane_key_positions(ctx, keys, key):
    """Each lane's position of its key (per-lane ``key``) in ``keys``; -1 where it is missing."""
    out = np.full(ctx.n, -1, dtype=np.int64)
    eq = getattr(key, "__vmapper_eq__", None)
    if eq is not None:  # a tree node per lane: a dict keyed by nodes
        for i, k in enumerate(keys):
            out[(out < 0) & eq(k, ctx.n)] = i
        return out
    d = key.data
    if d.ndim != 1:
        raise ctx.type_error("unhashable type: 'numpy.ndarray'")
    text = d.dtype.kind in "US"
    for i, k in enumerate(keys):
        if isinstance(k, str) == text and isinstance(k, (str, bool, int, float, complex)):
            out[(out < 0) & (d == k)] = i
    return out


@register("key_index", may_fail=True, callables=(key_index,))
def _key_index(ctx, args, attrs):
    """:func:`key_index` per lane: Python's KeyError on the lanes whose key the dict does not
    hold (where a store would add the key: UnsupportedSyntaxError, naming the lanes)."""
    keys, key, storing = args
    raw = key.value if type(key) is Traced else key
    if not is_varying(raw):
        try:
            return key_index(keys, raw, storing)
        except NotImplementedError as exc:
            raise ctx.unsupported(str(exc), hint="a local dict keeps the keys of its literal") from None
        except KeyError:
            raise ctx.lane_error_all(repr(raw), KeyError) from None
        except TypeError as exc:  # an unhashable key
            raise ctx.type_error(str(exc)) from None
    out = lane_key_positions(ctx, keys, raw)
    missing = out < 0
    if storing:
        ctx.unsupported_on(missing, "adding a key to a local dict", hint="a local dict keeps the keys of its literal")
    ctx.fail_where(missing, "key missing from the dict", KeyError, values=getattr(raw, "data", None))
    return Lanes(out, True)


@register("list_extend", may_fail=True)
def _list_extend(ctx, args, attrs):
    """``r.extend(seq)`` and ``r += seq``: ``seq``'s items, each as its own value (a per-sample
    array's items are numpy scalars, as in Python)."""
    lst, seq = args
    lst = _the_list(ctx, lst, attrs, "extend")
    how = attrs.get("how", "extend()")
    if type(seq) is tuple:
        return lst + seq
    if isinstance(seq, (list, str, bytes, dict, set, frozenset, range)):
        return lst + tuple(seq)
    raw = seq.value if type(seq) is Traced else seq
    if isinstance(raw, Lanes) and raw.data.ndim > 1 or isinstance(raw, np.ndarray) and raw.ndim > 0:
        return lst + tuple(ctx.sequence_items(seq, f"the argument of {how}"))
    if hasattr(raw, "__vmapper_len__"):
        raise ctx.unsupported(f"{how} by a sequence whose length may differ per lane",
                              hint="a list must have the same length on every lane")
    raise ctx.type_error(f"'{ctx.describe(raw)}' object is not iterable ({how})")
