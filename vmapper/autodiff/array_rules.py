"""VJP rules of the array primitives: gathers (scatter-add back), item assignment,
matmul, reductions over per-sample axes, joins, reshapes and casts."""
from __future__ import annotations

import numpy as np

from ..primitives import PRIMITIVES
from ..primitives.array_ops import _lane_axis, normalize_lane_indices, reduction_params, transpose_axes
from ..runtime.values import Lanes
from .rules import defvjp, sum_to
from .sparse import OuterSum, Placed, RowSparse


def _raw(v):
    return v.data if isinstance(v, Lanes) else np.asarray(v)


# ---- getitem: the gradient of a gather is a scatter-add ---------------------------------------

class _KeyCtx:
    """A minimal context to rebuild a gather's index (errors were already checked forward)."""

    def __init__(self, n):
        self.n = n
        self.mask = None

    def fail_where(self, *a, **k):
        pass

    def unsupported(self, *a, **k):
        return RuntimeError("unsupported index in backward")

    def lane_error_all(self, *a, **k):
        return RuntimeError("index error in backward")


def _getitem_vjp(g, out, args, attrs, n):
    if len(args) == 2:
        base, k = args
        tk = type(k)
        if tk is Lanes and k.data.ndim == 2 and k.data.dtype.kind in "iu":  # table[ids]: np.take's rows
            return _rows_by_index_arrays_vjp(g, out, base, k, n)
        if type(base) is Lanes:
            if tk is slice:  # a slice of per-lane arrays (a gate)
                return [Placed(base.data.shape, (_ALL, k), g if type(g) is np.ndarray else np.asarray(g)), None]
            bd = base.data
            if tk is Lanes and bd.ndim == 2 and k.data.ndim == 1 and k.data.dtype.kind in "iu" \
                    and type(g) is np.ndarray:
                # x[i] of per-lane vectors and indices (a label's log-probability): one element
                # per lane; numpy wraps a negative index as the forward run did
                full = np.zeros(bd.shape, dtype=g.dtype)
                try:
                    full[np.arange(bd.shape[0]), k.data] = g
                    return [full, None]
                except IndexError:  # an inactive lane's index out of range: the general path
                    pass
        elif tk is Lanes and type(base) is np.ndarray and base.ndim >= 1:
            d = k.data
            if d.ndim == 1 and d.dtype.kind in "iu" and (not d.size or 0 <= d.min() and d.max() < base.shape[0]):
                return [RowSparse(d, g, base.shape), None]  # rows of a shared table: row-sparse
    base, *ix = args
    if isinstance(base, (tuple, list)):
        return [None] * len(args)
    ctx = _KeyCtx(n)
    if not isinstance(base, Lanes):
        arr = np.asarray(base)
        if len(ix) == 1 and isinstance(ix[0], Lanes):  # rows of a shared table: row-sparse
            (i,) = normalize_lane_indices(ctx, ix, arr.shape)
            return [RowSparse(i, g, arr.shape)] + [None] * len(ix)
        full = np.zeros(arr.shape, dtype=g.dtype)
        if not any(isinstance(e, Lanes) for e in ix):
            key = ix[0] if len(ix) == 1 else tuple(ix)
            np.add.at(full, key, g)
        else:
            nix = normalize_lane_indices(ctx, ix, arr.shape)
            view = np.zeros((n,) + arr.shape, dtype=g.dtype)
            np.add.at(view, (np.arange(n),) + nix, g)
            full = view.sum(axis=0)
        return [full] + [None] * len(ix)
    nix = normalize_lane_indices(ctx, ix, base.sample_shape)
    varying = any(isinstance(e, Lanes) for e in ix)
    key = ((np.arange(n),) if varying else (slice(None),)) + nix
    if not varying and all(isinstance(e, (int, np.integer, slice)) for e in nix):
        # basic indexing touches each element at most once: g placed at key, kept lazy so
        # that the gradients of several slices of one array fill one buffer
        return [Placed(base.data.shape, key, np.asarray(g))] + [None] * len(ix)
    full = np.zeros(base.data.shape, dtype=g.dtype)
    # Per-lane indices are one integer per lane, paired with the lane number: no element
    # is reached twice, so neither is one under basic indexing; only index arrays need add.at.
    if varying or all(isinstance(e, (int, np.integer, slice)) or e is None or e is Ellipsis for e in nix):
        full[key] = g
    else:
        np.add.at(full, key, g)
    return [full] + [None] * len(ix)


_ALL = slice(None)


def _rows_by_index_arrays_vjp(g, out, base, ids, n):
    """``base[ids]`` with an integer array per lane (the forward ran ``np.take(base, ids,
    axis=0)``): a shared table's gradient is row-sparse, as for one row per lane."""
    if type(base) is np.ndarray and base.ndim >= 1:
        size = base.shape[0]
        d = ids.data
        d = np.where(d < 0, d + size, d)
        d = np.where((d >= 0) & (d < size), d, 0)  # (out of range only on inactive lanes, where g is 0)
        rows = np.asarray(g).reshape((-1,) + base.shape[1:])
        return [RowSparse(d.reshape(-1), rows, base.shape), None]
    from .misc_rules import _take_vjp
    return _take_vjp(g, out, (base, ids, 0), {}, n)[:2]

defvjp("getitem", _getitem_vjp)


# ---- setitem: ``a[ix] = v`` as a value, ``out = a`` with ``v`` written over a region -----------

_BASIC = (int, np.integer, slice, type(None), type(Ellipsis))


def _unbroadcast(gr, shape):
    """The gradient of a value of ``shape`` that numpy broadcast into ``gr``'s shape
    (right-aligned; leading axes of size 1 beyond ``gr``'s, as numpy's item assignment
    drops them, are put back)."""
    shape = tuple(shape)
    if len(shape) > gr.ndim:
        gr = gr.reshape((1,) * (len(shape) - gr.ndim) + gr.shape)
    return sum_to(gr, shape)


def _float_kind(v):
    return _raw(v).dtype.kind in "fc"


def _holds_lanes(v):
    if isinstance(v, (tuple, list)):
        return any(_holds_lanes(x) for x in v)
    return isinstance(v, Lanes)


def _shaped_like(gv, value):
    """``gv`` split into the structure of a tuple or list ``value`` (``a[:2] = (p, q)``)."""
    if isinstance(value, (tuple, list)):
        return tuple(_shaped_like(gv[k], v) for k, v in enumerate(value))
    return gv


def _setitem_vjp(g, out, args, attrs, n):
    """``out`` is ``base`` with ``base[ix] = value`` on the active lanes: ``base`` gets the
    gradient with the assigned region zeroed, ``value`` the gradient of that region summed
    over the axes it was broadcast along (and over the lanes, for a shared value); the
    indices get none.  Rules run as if every lane were active: the tape restricts an entry
    recorded under a mask to its active lanes (``tape._masked_vjp``), and the masked store
    that follows (a select) passes the other lanes' gradient to the variable's old value."""
    base, value, *ix = args
    res = [None] * len(args)
    g = np.asarray(g)
    if isinstance(value, (tuple, list)) and _holds_lanes(value):
        want_value = False  # (per-lane items: the forward assignment refused them)
    else:
        want_value = _float_kind(value)
    if not isinstance(out, Lanes):
        # every operand shared and no mask: numpy's own item assignment on one array
        key = ix[0] if len(ix) == 1 else tuple(ix)
        gb = np.array(g, copy=True)
        gb[key] = 0
        res[0] = sum_to(gb, np.shape(base)) if _float_kind(np.asarray(base)) else None
        if want_value:
            if all(isinstance(e, _BASIC) for e in (key if type(key) is tuple else (key,))):
                gr = g[key]  # basic indexing reaches each element once
            else:  # index arrays may repeat an element: the value written last owns it
                shape = np.shape(out)
                region = np.empty(shape, dtype=np.int8)[key].shape
                owner = np.full(shape, -1, dtype=np.intp)
                owner[key] = np.arange(int(np.prod(region)), dtype=np.intp).reshape(region)
                hit = owner >= 0
                gr = np.zeros(int(np.prod(region)), dtype=g.dtype)
                gr[owner[hit]] = g[hit]
                gr = gr.reshape(region)
            res[1] = _shaped_like(_unbroadcast(gr, np.shape(value)), value)
        return res
    sample_shape = out.data.shape[1:]
    nix = normalize_lane_indices(_KeyCtx(n), ix, sample_shape, "assignment index")
    varying = any(isinstance(e, Lanes) for e in ix)
    # the forward key: per-lane indices pair with the lane number, so no element is
    # reached twice (index arrays with per-sample arrays raised forward)
    key = ((np.arange(n),) if varying else (_ALL,)) + tuple(nix)
    if isinstance(base, Lanes) and base.data.dtype.kind in "fc" or \
            not isinstance(base, Lanes) and _float_kind(base):
        gb = np.array(g, copy=True)
        gb[key] = 0
        res[0] = gb if isinstance(base, Lanes) else sum_to(gb, np.shape(base))
    if want_value:
        gr = g[key]  # (lanes,) + the per-sample region
        if isinstance(value, Lanes):
            vd = value.data
            k = vd.ndim - 1
            lead = (1,) * max(gr.ndim - 1 - k, 0)
            res[1] = sum_to(gr, (vd.shape[0],) + lead + vd.shape[1:]).reshape(vd.shape)
        else:  # one value for every lane: summed over the lanes too
            res[1] = _shaped_like(_unbroadcast(gr, np.shape(value)), value)
    return res


defvjp("setitem", _setitem_vjp)


# ---- matmul ---------------------------------------------------------------------------------------

def _matmul_vjp(g, out, args, attrs, n):
    a, b = args
    ad, bd = _raw(a), _raw(b)
    va, vb = isinstance(a, Lanes), isinstance(b, Lanes)
    g = np.asarray(g)
    # Shared matrix times per-lane vector (the common case): each gradient is one GEMM
    # over the lanes, never a batch of outer products.
    # The shared matrix's gradient stays a lazy OuterSum: the products of all levels of a
    # recursion become one GEMM over all their lanes at the end.
    if not va and vb and ad.ndim == 2 and bd.ndim == 2:  # out[l] = A @ x[l]
        return [OuterSum([g], [bd], ad.shape) if ad.dtype.kind in "fc" else None,
                g @ ad if bd.dtype.kind in "fc" else None]
    if va and not vb and ad.ndim == 2 and bd.ndim == 2:  # out[l] = x[l] @ B
        return [g @ bd.T if ad.dtype.kind in "fc" else None,
                OuterSum([ad], [g], bd.shape) if bd.dtype.kind in "fc" else None]
    if va and ad.ndim == 2:
        ad = ad[:, None, :]
    elif not va and ad.ndim == 1:
        ad = ad[None, :]
    if vb and bd.ndim == 2:
        bd = bd[:, :, None]
    elif not vb and bd.ndim == 1:
        bd = bd[:, None]
    full = np.matmul(ad, bd)
    ge = np.asarray(g).reshape(full.shape)
    ga = np.matmul(ge, np.swapaxes(bd, -1, -2))
    gb = np.matmul(np.swapaxes(ad, -1, -2), ge)
    res_a = sum_to(ga, ad.shape).reshape(_raw(a).shape)
    res_b = sum_to(gb, bd.shape).reshape(_raw(b).shape)
    return [res_a if _raw(a).dtype.kind in "fc" else None, res_b if _raw(b).dtype.kind in "fc" else None]


defvjp("matmul", _matmul_vjp)


def _dot_vjp(g, out, args, attrs, n):
    from .rules import PRIMITIVES as P
    a, b = args
    nd = [_raw(v).ndim - (1 if isinstance(v, Lanes) else 0) for v in (a, b)]
    if 0 in nd:
        return P["mul"].vjp(g, out, args, attrs, n)
    return _matmul_vjp(g, out, args, attrs, n)


defvjp("np.dot", _dot_vjp)


# ---- reductions --------------------------------------------------------------------------------------

def _reduction_axes(x, attrs_axis):
    d = x.data
    ax = _lane_axis(attrs_axis, d.ndim - 1, _AxisCtx())
    if isinstance(ax, int):
        ax = (ax,)
    return tuple(a % d.ndim for a in ax)


class _AxisCtx:
    def lane_error_all(self, msg, exc):
        return exc(msg)


def _bound(kind, args, kw):
    """The reduction's operands by name (as the primitive bound them: numpy's order)."""
    names = reduction_params(getattr(np, kind))
    npos = len(args) - len(kw)
    b = {"axis": None, "keepdims": False, "ddof": 0}
    b.update(zip(names, args[:npos]))
    b.update(zip(kw, args[npos:]))
    return b


def _reduce_vjp(kind):
    def vjp(g, out, args, attrs, n):
        if len(args) == 1 and type(args[0]) is Lanes and type(out) is Lanes:
            # np.sum(x) of a per-lane array (no axis, no options): over every per-sample axis
            xd = args[0].data
            axes = tuple(range(1, xd.ndim))
            ge = np.asarray(g)
            od = out.data
            if kind in ("max", "min") and xd.ndim == 2 and xd.shape[1] and ge.shape == od.shape \
                    and ge.dtype.kind == "f" and not np.isnan(od).any():
                # the whole gradient to the first extremum of each lane (argmax finds it)
                first = (np.argmax if kind == "max" else np.argmin)(xd, axis=1)
                gx = np.zeros(xd.shape, dtype=ge.dtype)
                gx[np.arange(len(first)), first] = ge
                return [gx]
            ge = ge.reshape(ge.shape + (1,) * len(axes))
            od = od.reshape(od.shape + (1,) * len(axes))
            return [_reduced(kind, ge, od, xd, axes)]
        b = _bound(kind, args, attrs.get("kw") or ())
        x = b["a"]
        if not isinstance(x, Lanes):
            xd = np.asarray(x)
            axes = tuple(range(xd.ndim)) if b["axis"] is None else \
                tuple(a % xd.ndim for a in np.atleast_1d(b["axis"]))
        else:
            xd = x.data
            axes = _reduction_axes(x, b["axis"])
        od = out.data if isinstance(out, Lanes) else np.asarray(out)
        ge = np.asarray(g)
        if not b["keepdims"]:
            ge = np.expand_dims(ge, axes)
            od = np.expand_dims(od, axes)
        return [_reduced(kind, ge, od, xd, axes, b["ddof"])] + [None] * (len(args) - 1)
    return vjp


def _first_hit(hit, axes):
    """Where ``hit`` is true for the first time over ``axes`` (in C order over them, as numpy's
    argmax counts): a reduction's extreme takes the gradient once, on its first occurrence."""
    axes = sorted(a % hit.ndim for a in axes)
    if len(axes) == 1:
        return np.cumsum(hit, axis=axes[0]) == 1
    moved = np.moveaxis(hit, axes, range(hit.ndim - len(axes), hit.ndim))
    flat = moved.reshape(moved.shape[:hit.ndim - len(axes)] + (-1,))
    first = (np.cumsum(flat, axis=-1) == 1).reshape(moved.shape)
    return np.moveaxis(first, range(hit.ndim - len(axes), hit.ndim), axes)


def _reduced(kind, ge, od, xd, axes, ddof=0):
    """The gradient of a reduction of ``xd`` over ``axes`` (``ge``, ``od``: kept dims; ``ddof``:
    of ``var`` and ``std``, the count's delta)."""
    if kind == "sum":
        gx = np.broadcast_to(ge, xd.shape)
    elif kind == "mean":
        count = np.prod([xd.shape[a] for a in axes])
        gx = np.broadcast_to(ge / count, xd.shape)
    elif kind in ("max", "min"):
        hit = xd == od
        gx = np.where(hit & _first_hit(hit, axes), ge, 0.0)
    elif kind == "prod":
        # the product of the other elements: od / x without zeros, else the product of the
        # nonzero ones at a lone zero (and 0 everywhere when there are several)
        zero = xd == 0
        zeros = np.sum(zero, axis=tuple(axes), keepdims=True)
        others = np.prod(np.where(zero, 1, xd), axis=tuple(axes), keepdims=True)
        with np.errstate(all="ignore"):
            gx = ge * np.where(zeros == 0, od / np.where(zero, 1, xd), np.where(zero & (zeros == 1), others, 0))
    elif kind in ("var", "std"):  # var' = 2 (x - mean) / (N - ddof); std' = var' / (2 std)
        count = np.prod([xd.shape[a] for a in axes]) - ddof
        centred = xd - np.mean(xd, axis=tuple(axes), keepdims=True)
        with np.errstate(all="ignore"):
            gx = ge * (2 * centred / count if kind == "var" else centred / (count * od))
    else:
        raise NotImplementedError(kind)
    return np.array(gx, dtype=ge.dtype if ge.dtype.kind == "f" else np.float64)


for _n, _k in (("sum", "sum"), ("mean", "mean"), ("max", "max"), ("min", "min"), ("amax", "max"),
               ("amin", "min"), ("prod", "prod"), ("nansum", "sum"), ("var", "var"), ("std", "std")):
    defvjp(f"np.{_n}", _reduce_vjp(_k))


# ---- joins ----------------------------------------------------------------------------------------------

def _join_vjp(kind):
    def vjp(g, out, args, attrs, n):
        kw = attrs.get("kw") or ()
        npos = len(args) - len(kw)
        b = {"axis": 0}
        b.update(zip(["arrays", "axis", "dtype"], args[:npos]))
        b.update(zip(kw, args[npos:]))
        seq, axis = b["arrays"], b["axis"]
        varying = any(isinstance(v, Lanes) for v in seq)
        if axis is None:  # np.concatenate(..., axis=None) of per-lane arrays: flattened, joined
            sizes = [_raw(v).size // n if isinstance(v, Lanes) else np.size(_raw(v)) for v in seq]
            parts = np.split(np.asarray(g).reshape(n, -1), np.cumsum(sizes)[:-1], axis=1)
            return [tuple(None if _raw(v).dtype.kind not in "fc" else gk.reshape(_raw(v).shape)
                          if isinstance(v, Lanes) else gk.sum(axis=0).reshape(np.shape(_raw(v)))
                          for v, gk in zip(seq, parts))] + [None] * (len(args) - 1)
        nd = max(_raw(v).ndim - (1 if isinstance(v, Lanes) else 0) for v in seq) + (kind == "stack")
        ax = (axis + 1 if axis >= 0 else axis) if varying else axis
        ax = ax % (nd + (1 if varying else 0))
        parts = []
        if kind == "stack":
            for k, v in enumerate(seq):
                gk = np.take(g, k, axis=ax)
                parts.append(_fit(gk, v))
        else:
            sizes = [(_raw(v).shape[ax] if isinstance(v, Lanes) or not varying else np.shape(v)[ax - 1])
                     for v in seq]
            for v, gk in zip(seq, np.split(g, np.cumsum(sizes)[:-1], axis=ax)):
                parts.append(_fit(gk, v))
        return [tuple(parts)] + [None] * (len(args) - 1)
    return vjp


def _fit(gk, v):
    if _raw(v).dtype.kind not in "fc":
        return None
    if isinstance(v, Lanes):
        return gk.reshape(v.data.shape)
    return sum_to(gk, np.shape(v))


defvjp("np.concatenate", _join_vjp("concatenate"))
defvjp("np.stack", _join_vjp("stack"))


def _array_vjp(g, out, args, attrs, n):
    obj = args[0]
    if isinstance(obj, Lanes):
        return [g] + [None] * (len(args) - 1)
    if isinstance(obj, (tuple, list)):
        axis = 1 if isinstance(out, Lanes) else 0  # (the items' axis: after the lanes')

        def split(gk, item):
            if isinstance(item, (tuple, list)):  # nested: its items along the next axis
                return tuple(split(np.take(gk, k, axis=axis), v) for k, v in enumerate(item))
            return _fit(gk, item)
        return [split(np.asarray(g), obj)] + [None] * (len(args) - 1)
    raise NotImplementedError("gradient of np.array of nested sequences")


defvjp("np.array", _array_vjp)
defvjp("np.asarray", _array_vjp)


def _full_vjp(g, out, args, attrs, n):
    kw = attrs.get("kw") or ()
    npos = len(args) - len(kw)
    names = ["shape", "fill_value", "dtype"][:npos] + list(kw)
    res = [None] * len(args)
    k = names.index("fill_value")
    v = args[k]
    if isinstance(v, Lanes):
        res[k] = np.asarray(g).reshape(n, -1).sum(axis=1).reshape(v.data.shape)
    else:
        res[k] = np.asarray(g).sum()
    return res


defvjp("np.full", _full_vjp)


# ---- attributes and methods ------------------------------------------------------------------------------

def _getattr_vjp(g, out, args, attrs, n):
    x = args[0]
    if attrs["name"] == "T":
        if isinstance(x, Lanes):
            return [np.transpose(g, (0,) + tuple(range(g.ndim - 1, 0, -1)))]
        return [np.transpose(g)]
    if attrs["name"] == "real":
        return [g]
    raise NotImplementedError(f"gradient through attribute .{attrs['name']}")


defvjp("getattr", _getattr_vjp)

_METHOD_REDUCTIONS = {"sum": "sum", "mean": "mean", "max": "max", "min": "min", "prod": "prod", "var": "var",
                      "std": "std"}


def _method_vjp(g, out, args, attrs, n):
    name = attrs["name"]
    x = args[0]
    if name in _METHOD_REDUCTIONS:
        return _reduce_vjp(_METHOD_REDUCTIONS[name])(g, out, args, attrs, n)
    if name in ("reshape", "ravel", "flatten", "copy"):
        return [np.asarray(g).reshape(_raw(x).shape)] + [None] * (len(args) - 1)
    if name == "astype":
        return [np.asarray(g).astype(_raw(x).dtype) if _raw(x).dtype.kind in "fc" else None, None]
    if name == "transpose":
        if isinstance(x, Lanes):
            perm = transpose_axes(None, x.data.ndim - 1, args[1:], ())
        else:  # a shared array's own axes (the permutation without its leading batch axis)
            perm = np.subtract(transpose_axes(None, np.ndim(x), args[1:], ())[1:], 1)
        return [np.asarray(g).transpose(np.argsort(perm))] + [None] * (len(args) - 1)
    if name == "item":
        return [np.asarray(g).reshape(_raw(x).shape)]
    if name == "dot":
        return _dot_vjp(g, out, args, {}, n)
    if name == "clip":
        return PRIMITIVES["np.clip"].vjp(g, out, args, {}, n)
    raise NotImplementedError(f"gradient through method .{name}()")


#: The methods of per-sample arrays that have a derivative rule (other rule modules add theirs).
METHOD_VJP_NAMES = set(_METHOD_REDUCTIONS) | {"reshape", "ravel", "flatten", "copy", "astype", "transpose",
                                              "item", "dot", "clip"}


def refuses_method(attrs):
    """Why a traced ``x.name(...)`` cannot be differentiated (None: it can), asked when it is
    recorded so that the error names its line, not the backward sweep."""
    name = attrs.get("name")
    return None if name in METHOD_VJP_NAMES else f"method '.{name}()' (no derivative rule registered)"


PRIMITIVES["method"].vjp_refuses = refuses_method
defvjp("method", _method_vjp)
