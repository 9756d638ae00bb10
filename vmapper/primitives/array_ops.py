"""Array primitives: indexing (gathers), item assignment, reductions over
per-sample axes, matmul with broadcast weights, constructors, attributes and
methods of per-sample arrays.

A per-sample axis ``k`` is axis ``k + 1`` of the batched array (negative axes
already count from the end).  Indices that differ per lane become gathers;
active lanes with an out-of-range index raise :class:`LaneError`, inactive
lanes read index 0 so that nothing is read out of bounds.
"""
from __future__ import annotations

import builtins
import inspect
import operator

import numpy as np

from ..runtime.buffers import is_spare
from ..runtime.values import Lanes, Traced, is_varying, materialize, select
from .registry import register
from .structural import call_user_method, lane_key_positions, user_method

_INT_KINDS = "biu"


# ---- indexing ------------------------------------------------------------------------

def _dims_consumed(ix, ndim):
    """For each index element, the per-sample axis it indexes (None if it consumes none)."""
    explicit = sum(1 for e in ix if e is not None and e is not Ellipsis)
    out, axis = [], 0
    for e in ix:
        if e is None:
            out.append(None)
        elif e is Ellipsis:
            out.append(None)
            axis += max(ndim - explicit, 0)
        else:
            out.append(axis)
            axis += 1
    return out


def normalize_lane_indices(ctx, ix, sample_shape, what="index", container=False):
    """Check per-lane integer indices against their axis; negatives wrap, inactive lanes read 0.
    ``container``: the indices are into a tuple or list (a Python bool indexes as an int
    there; numpy reads a bool as a mask)."""
    if len(ix) <= len(sample_shape):
        for e in ix:
            if type(e) is not slice and type(e) is not int:
                break
        else:
            return tuple(ix)  # uniform slices and integers: nothing to check or rewrite
    if len([e for e in ix if e is not None and e is not Ellipsis]) > len(sample_shape):
        raise ctx.lane_error_all(f"too many indices for a per-sample array of shape {sample_shape}",
                                 IndexError)
    axes = _dims_consumed(ix, len(sample_shape))
    out = []
    for e, axis in zip(ix, axes):
        if isinstance(e, Lanes):
            d = e.data
            if d.ndim != 1 or d.dtype.kind not in _INT_KINDS:
                raise ctx.unsupported(f"{what} by a per-sample {'array' if d.ndim > 1 else d.dtype.name} value",
                                      hint="per-sample indices must be integer scalars")
            size = sample_shape[axis]
            if d.dtype.kind == "b":
                if not container:
                    raise ctx.unsupported(f"{what} by a per-sample bool (numpy reads it as a boolean mask, "
                                          f"which adds an axis)", hint="index by int(b) for an element")
                if not e.weak:
                    raise ctx.lane_error_all("list indices must be integers or slices, not numpy.bool", TypeError)
            elif d.dtype == np.uint64:  # (beyond int64 it would wrap to a negative index)
                huge = d > np.uint64(np.iinfo(np.int64).max)
                ctx.fail_where(huge, f"{what} out of range for axis {axis} with size {size}", IndexError, values=d)
                d = np.where(huge, 0, d)
            d = d.astype(np.int64, copy=False)
            if d.size and 0 <= d.min() and d.max() < size:
                out.append(d)  # every lane in range, none negative (the usual case)
                continue
            bad = (d < -size) | (d >= size)
            ctx.fail_where(bad, f"{what} out of range for axis {axis} with size {size}", IndexError,
                           values=d)
            d = np.where(d < 0, d + size, d)
            out.append(np.where(bad, 0, d))
        elif isinstance(e, np.ndarray) and e.ndim > 0:
            if what != "index" or any(v is not e and type(v) is not slice and v is not Ellipsis for v in ix):
                # (numpy puts the axis of index arrays and integers apart from one another first,
                # where the lanes' axis is)
                raise ctx.unsupported(f"{what} by an index array together with other integer or per-sample "
                                      f"indices", hint="index in two steps: x[i][idx], or x[idx][:, j]")
            out.append(e)  # one shared index array: its axis stays where it is, as per sample
        else:
            out.append(e)
    return tuple(out)


#: What to do instead of an operation vmapper has no batched form for on a str that differs per lane.
STR_HINT = "do that work on the strs before or after the batched call, and pass numbers (codes, lengths) in"

_CONTAINERS = (tuple, list, dict)
_PLAIN_KEYS = (int, str)


@register("getitem", may_fail=True)
def _getitem(ctx, args, attrs):
    if len(args) == 2:  # the common cases, decided without the general machinery below
        base, i = args
        tb, ti = type(base), type(i)
        if tb in _CONTAINERS and ti in _PLAIN_KEYS:
            try:
                return base[i]
            except (IndexError, KeyError, TypeError):
                pass  # the general path raises the per-sample error
        elif tb is Lanes and not base.weak and base.data.ndim > 1:
            if ti is slice:
                return Lanes(base.data[:, i], False)
            if ti is int and -base.data.shape[1] <= i < base.data.shape[1]:
                return Lanes(base.data[:, i], False)
            if ti is Lanes:  # one element per lane (x[label]), every index in range
                d = i.data
                if d.ndim == 1 and d.dtype.kind in "iu" and d.size and 0 <= d.min() \
                        and d.max() < base.data.shape[1]:
                    return Lanes(base.data[np.arange(ctx.n), d], False)
        elif tb is np.ndarray and ti is Lanes and base.ndim and base.dtype.kind != "O":
            d = i.data  # rows of a shared table (an embedding), every index in range
            if d.ndim == 1 and d.dtype.kind in "iu" and d.size and 0 <= d.min() and d.max() < base.shape[0]:
                return Lanes(base[d], False)
    base, *ix = args
    hook = getattr(base, "__vmapper_getitem__", None)
    if hook is not None:
        return hook(ctx, ix)
    varying_index = any(isinstance(e, Lanes) for e in ix)
    if isinstance(base, dict) and len(ix) == 1 and is_varying(ix[0]):
        # a shared dict, a key per lane (a number, a string, a tree node): KeyError where missing
        where = ctx.call_primitive("key_index", (tuple(base), ix[0], False))
        return _choose(ctx, tuple(base.values()), [where])
    if not isinstance(base, Lanes) and not varying_index:
        return ctx.uniform(operator.getitem, base, ix[0] if len(ix) == 1 else tuple(ix))
    if isinstance(base, (tuple, list)):
        return _choose(ctx, base, ix)
    if len(ix) == 1 and isinstance(ix[0], Lanes) and ix[0].data.ndim == 2 and ix[0].data.dtype.kind in "iu":
        # an integer array per lane (table[ids]: rows of a table): np.take along the first axis
        return ctx.call_primitive("np.take", (base, ix[0], 0), {})
    if not isinstance(base, Lanes):
        arr = np.asarray(base)
        if arr.dtype == object or arr.ndim == 0:
            raise ctx.type_error(f"{ctx.describe(base)} is not subscriptable per lane")
        if len(ix) == 1:  # a gather of rows from a shared table
            (i,) = normalize_lane_indices(ctx, ix, arr.shape)
            return Lanes(arr[i], False)
        base = materialize(arr, ctx.n)
    if base.data.dtype.kind == "U":
        raise ctx.unsupported("indexing or slicing a str that differs per lane", hint=STR_HINT)
    if base.weak:
        raise ctx.lane_error_all(f"'{base.data.dtype.name}' object is not subscriptable", TypeError)
    nix = normalize_lane_indices(ctx, ix, base.sample_shape)
    if varying_index:
        key = (np.arange(ctx.n),) + nix
    else:
        key = (slice(None),) + nix
    try:
        return Lanes(base.data[key], False)
    except IndexError as exc:
        if not varying_index and len(base.data):  # the message of one sample (axes as it counts them)
            try:
                base.data[0][nix]
            except IndexError as per_sample:
                exc = per_sample
        raise ctx.lane_error_all(str(exc), IndexError)


def _choose(ctx, seq, ix):
    """``seq[i]`` for a uniform tuple indexed by a per-lane integer."""
    if len(ix) != 1:
        raise ctx.unsupported("multi-dimensional index of a tuple")
    (i,) = normalize_lane_indices(ctx, ix, (len(seq),), container=True)
    if any(type(v) is Traced or hasattr(v, "__vmapper_hold__") for v in seq):
        # differentiated items (selects, each on the tape) or tree nodes (held per lane)
        out = seq[0]
        for k in range(1, len(seq)):
            out = select(i == k, seq[k], out, ctx.n)
        return out
    items = [materialize(v, ctx.n) for v in seq]
    stacked = np.stack([v.data for v in items], axis=1)
    return Lanes(stacked[np.arange(ctx.n), i], all(v.weak for v in items))


@register("setitem", may_fail=True)
def _setitem(ctx, args, attrs):
    """``base[ix] = value`` on the active lanes; returns the updated base: a copy, or ``base``
    itself, written in place, when only the variable being assigned holds it (``a[i] = v``
    then costs the active lanes' items, not a copy of every lane's array)."""
    base, value, *ix = args
    if not isinstance(base, Lanes) and not isinstance(value, Lanes) and not any(isinstance(e, Lanes) for e in ix):
        if ctx.mask is None:
            new = np.array(base, copy=True)
            ctx.uniform(operator.setitem, new, ix[0] if len(ix) == 1 else tuple(ix), value)
            return new
    state = ctx.frame.state
    in_place = state.tape is None and is_spare(base, state.pool, holders=2)  # (before another name holds base)
    arr = materialize(base, ctx.n) if not isinstance(base, Lanes) else base
    if not isinstance(base, (Lanes, np.ndarray)):
        raise ctx.type_error(f"item assignment into {ctx.describe(base)}")
    nix = normalize_lane_indices(ctx, ix, arr.sample_shape, "assignment index")
    data = arr.data if in_place else np.array(arr.data, copy=True)
    lanes = ctx.active_indices()
    sub = [e[lanes] if isinstance(e, np.ndarray) and e.ndim == 1 and isinstance(o, Lanes) else e
           for e, o in zip(nix, ix)]
    region_ndim = np.broadcast_to(np.zeros((), data.dtype), arr.sample_shape)[tuple(nix_uniform(nix, ix))].ndim
    if isinstance(value, Lanes):
        v = value.data[lanes]
        if v.ndim == 1 and data.dtype.kind in "iu":
            _check_int_store(ctx, v, data.dtype, lanes)
        k = value.data.ndim - 1
        v = v.reshape((v.shape[0],) + (1,) * max(region_ndim - k, 0) + v.shape[1:])
    else:
        v = value
    try:
        data[(lanes,) + tuple(sub)] = v
    except (ValueError, IndexError, TypeError) as exc:
        raise ctx.lane_error_all(str(exc), type(exc))
    return base if in_place else Lanes(data, False)


def _check_int_store(ctx, v, dtype, lanes):
    """numpy's checks when a per-sample scalar ``v`` (on the active ``lanes``) is stored into an
    integer array: NaN and the infinities raise, and so does a value beyond the dtype's range
    (never a wrapped one)."""
    info = np.iinfo(dtype)
    failures = []
    if v.dtype.kind == "f":
        finite = np.isfinite(v)
        failures += [(np.isnan(v), "cannot convert float NaN to integer", ValueError),
                     (np.isinf(v), "cannot convert float infinity to integer", OverflowError)]
        whole = np.trunc(np.where(finite, v, 0))
        failures.append(((whole < info.min) | (whole > info.max), f"value out of bounds for {dtype.name}",
                         OverflowError))
    elif v.dtype.kind in "iu":
        failures.append(((v < info.min) | (v > info.max), f"Python integer out of bounds for {dtype.name}",
                         OverflowError))
    for bad, message, error in failures:
        if bad.any():
            on_lanes = np.zeros(ctx.n, dtype=bool)
            on_lanes[lanes[bad]] = True
            ctx.fail_where(on_lanes, message, error)


def nix_uniform(nix, ix):
    """The index with per-lane entries replaced by 0, to compute the per-sample region shape."""
    return [0 if isinstance(o, Lanes) else e for e, o in zip(nix, ix)]


@register("slice")
def _slice(ctx, args, attrs):
    for a in args:
        if type(a) is Lanes:
            raise ctx.unsupported("slice with per-sample bounds",
                                  hint="a per-sample slice length would make per-sample shapes differ; "
                                       "use a mask or np.where instead")
    return slice(*args)


# ---- reductions -----------------------------------------------------------------------

def _lane_axis(axis, sample_ndim, ctx):
    if axis is None:
        return tuple(range(1, sample_ndim + 1))
    if isinstance(axis, tuple):
        return tuple(_lane_axis(a, sample_ndim, ctx) for a in axis)
    axis = operator.index(axis)
    if not -sample_ndim <= axis < sample_ndim:
        raise ctx.lane_error_all(f"axis {axis} is out of bounds for a per-sample array of "
                                 f"dimension {sample_ndim}", np.exceptions.AxisError)
    return axis + 1 if axis >= 0 else axis


def _bind(ctx, args, kwnames, names, defaults, varying=None):
    """Bind positional + keyword operands to ``names`` (a tiny signature binder).

    Only the parameters in ``varying`` (default: the first) may be per-sample values.
    """
    varying = {names[0]} if varying is None else set(varying)
    npos = len(args) - len(kwnames)
    out = dict(defaults)
    for name, v in zip(names, args[:npos]):
        out[name] = v
    for name, v in zip(kwnames, args[npos:]):
        if name not in names:
            raise ctx.type_error(f"unexpected keyword argument '{name}'")
        out[name] = v
    if npos > len(names):
        raise ctx.type_error("too many positional arguments")
    for name, v in out.items():
        if name not in varying and isinstance(v, Lanes):
            raise ctx.unsupported(f"per-sample value for '{name}'")
    return out


#: Reduction parameters computed as numpy does, with their defaults; any other parameter of
#: the function's signature (``out``, ``where``, ``initial``, ...) is refused unless left out.
REDUCTION_OPTIONS = {"axis": None, "dtype": None, "keepdims": False, "ddof": 0}
_NOT_GIVEN = object()


def bind_reduction(ctx, fn, args, kwnames):
    """``(a, options)``: ``np.<fn>``'s array and the options given other than their defaults,
    bound by numpy's own parameter order; a parameter numpy has but the batched form does not
    compute is an UnsupportedSyntaxError naming it."""
    names = reduction_params(fn)
    b = _bind(ctx, args, kwnames, names, {k: REDUCTION_OPTIONS.get(k, _NOT_GIVEN) for k in names[1:]})
    for k in names[1:]:
        if k not in REDUCTION_OPTIONS and not (b[k] is _NOT_GIVEN or k == "out" and b[k] is None
                                               or k == "where" and b[k] is True):
            raise ctx.unsupported(f"np.{fn.__name__}(..., {k}=...)",
                                  hint="the batched form computes axis, dtype, keepdims and ddof")
    return b["a"], {k: b[k] for k in names[1:] if k in REDUCTION_OPTIONS and b[k] is not REDUCTION_OPTIONS[k]}


def reduction_params(fn):
    """The parameter names of the numpy reduction ``fn``, in order."""
    names = _REDUCTION_PARAMS.get(fn)
    if names is None:
        names = _REDUCTION_PARAMS[fn] = list(inspect.signature(fn).parameters)
    return names


_REDUCTION_PARAMS = {}


def make_reduction(fn, flat_arg=False):
    def impl(ctx, args, attrs):
        if len(args) == 1 and type(args[0]) is Lanes and not attrs.get("kw"):
            # np.sum(x) of a per-lane array: over all its per-sample axes (the usual call)
            data = args[0].data
            if data.ndim == 2 and data.shape[1] and data.flags.c_contiguous:
                return Lanes(np.asarray(fn(data, axis=1)), False)
        x, kw = bind_reduction(ctx, fn, args, attrs.get("kw") or ())
        if not isinstance(x, Lanes):
            return ctx.uniform(lambda: fn(x, **kw))
        data = np.ascontiguousarray(x.data)
        if flat_arg and kw.get("axis") is None:
            return Lanes(fn(data.reshape(data.shape[0], -1), axis=1), False)
        kw["axis"] = _lane_axis(kw.get("axis"), data.ndim - 1, ctx)
        if data.shape[1:] and 0 in data.shape[1:] and fn in (np.max, np.min, np.argmax, np.argmin):
            raise ctx.lane_error_all(f"{fn.__name__} of an empty per-sample array", ValueError)
        return Lanes(np.asarray(fn(data, **kw)), False)
    return impl


REDUCTIONS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod,
              "any": np.any, "all": np.all, "std": np.std, "var": np.var, "argmax": np.argmax,
              "argmin": np.argmin, "amax": np.max, "amin": np.min, "nansum": np.nansum,
              "nanmax": np.nanmax, "nanmin": np.nanmin, "nanmean": np.nanmean}
for _n, _f in REDUCTIONS.items():
    register(f"np.{_n}", make_reduction(_f, flat_arg=_n in ("argmax", "argmin")),
             callables=(getattr(np, _n),))


# ---- matmul -----------------------------------------------------------------------------

def matmul_lanes(ctx, a, b):
    """Per-sample ``a @ b`` over lanes; 1-D per-sample operands become row/column matrices."""
    if type(a) is np.ndarray and type(b) is Lanes and a.ndim == 2 and b.data.ndim == 2 \
            and a.shape[1] == b.data.shape[1]:
        # A shared matrix with per-lane vectors (the usual case): one GEMM over the lanes.
        return Lanes(b.data @ _transposed(ctx, a), False)
    if not isinstance(a, Lanes) and not isinstance(b, Lanes):
        return ctx.uniform(operator.matmul, a, b)
    if any(np.ndim(v.data if isinstance(v, Lanes) else v) == (1 if isinstance(v, Lanes) else 0)
           for v in (a, b)):
        raise ctx.lane_error_all("matmul: input operand does not have enough dimensions", ValueError)
    squeeze = []
    ad, bd = (a.data if isinstance(a, Lanes) else np.asarray(a)), (b.data if isinstance(b, Lanes) else np.asarray(b))
    # A shared matrix with per-lane vectors is one GEMM over the lanes, not a stack of GEMVs.
    if not isinstance(a, Lanes) and ad.ndim == 2 and isinstance(b, Lanes) and bd.ndim == 2:
        if ad.shape[1] != bd.shape[1]:
            raise ctx.lane_error_all(f"matmul: shapes {ad.shape} and {bd.shape[1:]} do not align", ValueError)
        return Lanes(bd @ (_transposed(ctx, ad) if ad is a else ad.T), False)
    if isinstance(a, Lanes) and ad.ndim == 2 and not isinstance(b, Lanes) and bd.ndim == 2:
        if ad.shape[1] != bd.shape[0]:
            raise ctx.lane_error_all(f"matmul: shapes {ad.shape[1:]} and {bd.shape} do not align", ValueError)
        return Lanes(ad @ bd, False)
    if isinstance(a, Lanes) and ad.ndim == 2:
        ad = ad[:, None, :]
        squeeze.append(-2)
    if isinstance(b, Lanes) and bd.ndim == 2:
        bd = bd[:, :, None]
        squeeze.append(-1)
    if not isinstance(a, Lanes) and ad.ndim == 1 and isinstance(b, Lanes):
        ad = ad[None, :]
        squeeze.append(-2)
    try:
        out = np.matmul(ad, bd)
    except ValueError as exc:
        msg = str(exc)
        raise ctx.lane_error_all(msg if msg.startswith("matmul") else f"matmul: {msg}", ValueError)
    for ax in sorted(squeeze):
        out = out.squeeze(axis=ax if out.ndim + ax >= 1 else None)
    return Lanes(out, False)


#: Shared matrices at least this large get a contiguous transpose, kept for the call.
_TRANSPOSE_MIN_SIZE = 4096


def _transposed(ctx, a):
    """``a.T``, laid out contiguously when ``a`` is large: BLAS multiplies a few rows by
    a transposed view several times slower than by a contiguous matrix, and the same
    weight matrix meets every level of a recursion."""
    if a.size < _TRANSPOSE_MIN_SIZE or not a.flags.c_contiguous:
        return a.T
    cache = getattr(getattr(getattr(ctx, "frame", None), "state", None), "transposed", None)
    if cache is None:
        return a.T
    hit = cache.get(id(a))
    if hit is None or hit[0] is not a:
        hit = cache[id(a)] = (a, np.ascontiguousarray(a.T))  # holding ``a`` keeps its id unique
    return hit[1]


@register("matmul", callables=(np.matmul,))
def _matmul(ctx, args, attrs):
    a, b = args
    return matmul_lanes(ctx, a, b)


@register("np.dot", callables=(np.dot,))
def _dot(ctx, args, attrs):
    a, b = args
    nd = [v.data.ndim - 1 if isinstance(v, Lanes) else np.ndim(v) for v in (a, b)]
    if 0 in nd:
        from .scalar_ops import ufunc_apply
        return ufunc_apply(ctx, np.multiply, [a, b], weak_result=False)
    if max(nd) > 2:
        raise ctx.unsupported("np.dot of arrays with more than 2 dimensions (use np.matmul)")
    return matmul_lanes(ctx, a, b)


# ---- construction and joining -------------------------------------------------------------

def _uniform_call(fn):
    def impl(ctx, args, attrs):
        kw = attrs.get("kw") or ()
        if any(isinstance(a, Lanes) for a in args):
            raise ctx.unsupported(f"np.{fn.__name__}() with per-sample arguments",
                                  hint="shapes must be the same for every sample")
        npos = len(args) - len(kw)
        return ctx.uniform(lambda: fn(*args[:npos], **dict(zip(kw, args[npos:]))))
    return impl


for _f in (np.zeros, np.ones, np.empty, np.arange, np.eye, np.identity, np.linspace):
    register(f"np.{_f.__name__}", _uniform_call(_f), callables=(_f,))


@register("np.full", callables=(np.full,))
def _full(ctx, args, attrs):
    b = _bind(ctx, args, attrs.get("kw") or (), ["shape", "fill_value", "dtype"], {"dtype": None},
              varying=("fill_value",))
    shape, value, dtype = b["shape"], b.get("fill_value"), b["dtype"]
    if isinstance(shape, Lanes):
        raise ctx.unsupported("np.full() with a per-sample shape")
    if not isinstance(value, Lanes):
        return ctx.uniform(lambda: np.full(shape, value, dtype=dtype))
    d = value.data
    out_dtype = dtype if dtype is not None else (np.asarray(np.full((), 0, dtype=d.dtype)).dtype)
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    return Lanes(np.broadcast_to(d.reshape((d.shape[0],) + (1,) * len(shape)), (d.shape[0],) + shape)
                 .astype(out_dtype), False)


def _join(kind):
    def impl(ctx, args, attrs):
        b = _bind(ctx, args, attrs.get("kw") or (), ["arrays", "axis", "dtype"], {"axis": 0, "dtype": None})
        seq, axis = b["arrays"], b["axis"]
        if not isinstance(seq, (tuple, list)):
            raise ctx.unsupported(f"np.{kind}() of something other than a tuple or list of arrays")
        if not any(isinstance(v, Lanes) for v in seq):
            return ctx.uniform(lambda: getattr(np, kind)(seq, axis=axis))
        items = [materialize(v, ctx.n) for v in seq]
        if kind == "concatenate" and axis is None:  # each lane's arrays flattened, then joined
            out = np.concatenate([v.data.reshape(ctx.n, -1) for v in items], axis=1)
            return Lanes(out if b["dtype"] is None else out.astype(b["dtype"]), False)
        nd = items[0].data.ndim - 1 + (1 if kind == "stack" else 0)
        if kind == "concatenate" and nd == 0:
            raise ctx.lane_error_all("zero-dimensional arrays cannot be concatenated", ValueError)
        ax = _lane_axis(axis, nd, ctx)
        try:
            out = getattr(np, kind)([v.data for v in items], axis=ax)
        except ValueError as exc:
            raise ctx.lane_error_all(f"np.{kind}: {exc}", ValueError)
        if b["dtype"] is not None:
            out = out.astype(b["dtype"])
        return Lanes(out, False)
    return impl


register("np.concatenate", _join("concatenate"), callables=(np.concatenate,))
register("np.stack", _join("stack"), callables=(np.stack,))


def _array(ctx, args, attrs):
    b = _bind(ctx, args, attrs.get("kw") or (), ["object", "dtype"], {"dtype": None})
    obj, dtype = b["object"], b["dtype"]
    if isinstance(obj, Lanes):
        return Lanes(obj.data if dtype is None else obj.data.astype(dtype), False)
    if not _contains_lanes(obj):
        return ctx.uniform(lambda: np.array(obj, dtype=dtype))
    # np.array([x, y]) of per-sample scalars: promote as numpy does for the elements.
    leaves, shape = _flatten_nested(obj)
    items = [materialize(v, ctx.n) for v in leaves]
    # np.array([...]) discovers Python scalars as int64/float64 (not NEP 50 weak).
    dt = dtype if dtype is not None else np.result_type(*[v.data.dtype for v in items])
    out = np.stack([v.data.astype(dt, copy=False) for v in items], axis=1)
    return Lanes(out.reshape((ctx.n,) + shape + items[0].sample_shape), False)


def _contains_lanes(obj):
    if isinstance(obj, Lanes):
        return True
    if isinstance(obj, (tuple, list)):
        return any(_contains_lanes(x) for x in obj)
    return False


def _flatten_nested(obj):
    if isinstance(obj, (tuple, list)):
        parts = [_flatten_nested(x) for x in obj]
        shapes = {p[1] for p in parts}
        if len(shapes) > 1:
            raise ValueError("inhomogeneous nested sequence")
        inner = parts[0][1] if parts else ()
        return [leaf for p in parts for leaf in p[0]], (len(obj),) + inner
    return [obj], ()


register("np.array", _array, callables=(np.array,))
register("np.asarray", _array, callables=(np.asarray, np.asanyarray))


# ---- attributes and methods of per-sample arrays --------------------------------------------------

@register("getattr")
def _getattr(ctx, args, attrs):
    (v,) = args
    name = attrs["name"]
    hook = getattr(v, "__vmapper_getattr__", None)
    if hook is not None:
        return hook(ctx, name)
    if not isinstance(v, Lanes):
        return ctx.uniform(getattr, v, name)
    if v.weak and name not in ("real", "imag"):
        raise ctx.lane_error_all(f"'{v.data.dtype.name}' object has no attribute '{name}'", AttributeError)
    d = v.data
    if name == "shape":
        return tuple(d.shape[1:])
    if name == "ndim":
        return d.ndim - 1
    if name == "size":
        return int(np.prod(d.shape[1:], dtype=np.int64))
    if name == "dtype":
        return d.dtype
    if name == "T":
        return Lanes(d.transpose((0,) + tuple(range(d.ndim - 1, 0, -1))), False)
    if name in ("real", "imag"):
        return Lanes(getattr(d, name), v.weak)
    raise ctx.unsupported(f"attribute '.{name}' of a per-sample array")


def _method_reduction(fn, flat_arg=False):
    red = make_reduction(fn, flat_arg)
    return lambda ctx, v, args, kw: red(ctx, (v,) + tuple(args), {"kw": kw})


def _astype(ctx, v, args, kw):
    if len(args) != 1 or kw:
        raise ctx.unsupported("astype() with options")
    return Lanes(v.data.astype(args[0]), False)


def _reshape(ctx, v, args, kw):
    if kw:
        raise ctx.unsupported("reshape() with keyword arguments")
    shape = args[0] if len(args) == 1 else tuple(args)
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    try:
        return Lanes(v.data.reshape((v.data.shape[0],) + shape), False)
    except ValueError as exc:
        raise ctx.lane_error_all(str(exc), ValueError)


def _item(ctx, v, args, kw):
    if args or kw or int(np.prod(v.sample_shape)) != 1:
        raise ctx.unsupported("item() with arguments or on an array of several elements")
    d = v.data.reshape(v.data.shape[0])
    return Lanes(d.astype({"b": np.bool_, "i": np.int64, "u": np.int64, "f": np.float64,
                           "c": np.complex128}[d.dtype.kind]), True)


METHODS = {name: _method_reduction(fn, name in ("argmax", "argmin"))
           for name, fn in REDUCTIONS.items() if not name.startswith(("a", "nan")) or name in ("any", "all", "argmax", "argmin")}
METHODS.update({
    "astype": _astype,
    "reshape": _reshape,
    "item": _item,
    "copy": lambda ctx, v, args, kw: Lanes(v.data.copy(), v.weak),
    "flatten": lambda ctx, v, args, kw: Lanes(v.data.reshape(v.data.shape[0], -1).copy(), False),
    "ravel": lambda ctx, v, args, kw: Lanes(v.data.reshape(v.data.shape[0], -1), False),
    "transpose": lambda ctx, v, args, kw: Lanes(v.data.transpose(transpose_axes(ctx, v.data.ndim - 1, args, kw)),
                                                False),
    "dot": lambda ctx, v, args, kw: _dot(ctx, (v, args[0]), {}),
    "clip": lambda ctx, v, args, kw: ctx.call_primitive("np.clip", (v,) + tuple(args)),
})


def transpose_axes(ctx, nd, args, kw):
    """The batched array's permutation for ``x.transpose(*axes)`` of a per-sample array with
    ``nd`` axes (no axes: reversed), the batch axis staying first."""
    if kw:
        raise ctx.unsupported("transpose() with keyword arguments")
    axes = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
    if not axes:
        return (0,) + tuple(range(nd, 0, -1))
    if any(isinstance(a, Lanes) for a in axes):
        raise ctx.unsupported("transpose() with per-sample axes")
    try:
        perm = [operator.index(a) for a in axes]
    except TypeError as exc:
        raise ctx.type_error(str(exc)) from None
    if sorted(a % nd if -nd <= a < nd else a + nd * 2 for a in perm) != list(range(nd)):
        raise ctx.lane_error_all("axes don't match array", ValueError)
    return (0,) + tuple(a % nd + 1 for a in perm)


def _shared_dict_get(ctx, d, args, kw):
    """``d.get(key, default)`` of a shared dict with a per-lane key: the key's value where the
    dict holds the key, ``default`` elsewhere (a default of None is refused on those lanes: a
    value cannot be None on some lanes only)."""
    if kw:
        raise ctx.type_error("dict.get() takes no keyword arguments")
    if not 1 <= len(args) <= 2:
        raise ctx.type_error(f"get expected at least 1 argument, got {len(args)}" if not args
                             else f"get expected at most 2 arguments, got {len(args)}")
    key = args[0].value if type(args[0]) is Traced else args[0]
    where = lane_key_positions(ctx, tuple(d), key)
    missing = where < 0
    if len(args) == 1:
        ctx.unsupported_on(missing, "d.get(key) where the dict lacks the key (None on some lanes only)",
                           hint="give a default of the values' type: d.get(key, 0)")
        return _choose(ctx, tuple(d.values()), [Lanes(np.maximum(where, 0), True)])
    where[missing] = len(d)
    return _choose(ctx, tuple(d.values()) + (args[1],), [Lanes(where, True)])


#: The methods that change a Python list in place.
LIST_MUTATORS = frozenset({"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"})


@register("method", may_fail=True, passes_traced=lambda args, attrs: user_method(args[0], attrs["name"]) is not None)
def _method(ctx, args, attrs):
    if "groups" in attrs:  # merged calls ``self.f(a)``, ``self.f(b)``: one batched call if f is the user's
        return _method_groups(ctx, args, attrs)
    v, *rest = args
    name, kw = attrs["name"], attrs.get("kw") or ()
    hook = getattr(v, "__vmapper_method__", None)
    if hook is not None:
        return hook(ctx, name, rest, kw)
    if type(v) is tuple and name in LIST_MUTATORS:
        # a Python list held as a tuple (a caller's list, a helper's result), or a tuple
        raise ctx.unsupported(f"method '.{name}()' of a list or tuple that is not a local list of this function",
                              hint="vmapper supports r.append(v), r.extend(s) and r += s as statements on a list "
                                   "the function builds itself (r = [] or r = [a, b], not a parameter); "
                                   "make a new list instead: r = r + [v]")
    if user_method(v, name) is not None:
        return call_user_method(ctx, v, name, [rest], kw)[0]
    if not isinstance(v, Lanes):
        cache = getattr(getattr(getattr(ctx, "frame", None), "state", None), "transposed", None)
        if cache:
            cache.clear()  # the method may change the shared array (a.fill(0), a.sort()...)
        if any(is_varying(a) for a in rest):
            if name == "dot":
                return _dot(ctx, (v, rest[0]), {})
            if name == "get" and type(v) is dict:
                return _shared_dict_get(ctx, v, rest, kw)
            raise ctx.unsupported(f"method '.{name}()' of a shared value with per-sample arguments")
        npos = len(rest) - len(kw)
        return ctx.uniform(lambda: getattr(v, name)(*rest[:npos], **dict(zip(kw, rest[npos:]))))
    if v.weak:
        py_type = {"b": "bool", "i": "int", "f": "float", "c": "complex"}[v.data.dtype.kind]
        if name == "is_integer" and hasattr(getattr(builtins, py_type), name) and not rest and not kw:
            return _is_integer(v.data)  # (float's; int's and bool's too, from Python 3.12)
        if not hasattr(getattr(builtins, py_type), name):
            raise ctx.lane_error_all(f"'{py_type}' object has no attribute '{name}'", AttributeError)
        raise ctx.unsupported(f"method '.{name}()' of a Python {py_type}")
    if v.data.dtype.kind == "U":
        raise ctx.unsupported(f"method '.{name}()' of a str that differs per lane", hint=STR_HINT)
    if name == "is_integer" and v.data.ndim == 1 and v.data.dtype.kind in "fiu" and not rest and not kw:
        return _is_integer(v.data)  # (numpy's float and int scalars have it, as Python's float has)
    impl = METHODS.get(name)
    if impl is None:
        if not hasattr(np.ndarray, name):  # (r.append(x) on an array: Python's AttributeError)
            kind = "numpy.ndarray" if v.data.ndim > 1 else f"numpy.{v.data.dtype.name}"
            raise ctx.lane_error_all(f"'{kind}' object has no attribute '{name}'", AttributeError)
        raise ctx.unsupported(f"method '.{name}()' of a per-sample array")
    return impl(ctx, v, rest, kw)


def _is_integer(data):
    """``x.is_integer()`` per lane: finite and whole (inf and nan are not)."""
    if data.dtype.kind in "biu":
        return Lanes(np.ones(data.shape, dtype=bool), True)
    with np.errstate(invalid="ignore"):
        return Lanes(np.isfinite(data) & (np.floor(data) == data), True)


def _method_groups(ctx, args, attrs):
    """The tuple of results of ``obj.name(*group)`` for each argument group of a merged
    ``method`` instruction (``args``: the object, then the groups end to end)."""
    obj, rest = args[0], args[1:]
    k = attrs["groups"]
    size = len(rest) // k
    groups = [list(rest[j * size:(j + 1) * size]) for j in range(k)]
    if user_method(obj, attrs["name"]) is not None:
        return tuple(call_user_method(ctx, obj, attrs["name"], groups, attrs.get("kw") or ()))
    single = {key: v for key, v in attrs.items() if key != "groups"}
    return tuple(_method(ctx, [obj, *g], single) for g in groups)
