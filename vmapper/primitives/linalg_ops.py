"""Linear algebra of per-sample arrays: ``np.einsum``, ``np.tensordot``, ``np.linalg.solve``,
``np.linalg.inv`` and ``np.linalg.det``.

**einsum, tensordot.**  The per-sample subscripts are read as numpy reads them (spaces
skipped, implicit output in numpy's order, ``...`` broadcast dimensions) and written out
with one letter per axis: each ``...`` becomes fresh letters, right-aligned as numpy
broadcasts them.  Every per-lane operand then gets one more fresh letter for its lane
axis, first, and so does the output; a shared operand keeps its subscripts, so it is
broadcast over the lanes.  ``np.tensordot(a, b, axes)`` is the einsum whose subscripts
pair the summed axes.  A contraction of two operands runs as one matrix product: a
shared matrix with per-lane vectors is one GEMM over all the lanes (as ``matmul``), two
per-lane operands one stacked product; an operand's axes that appear nowhere else are
summed first, and repeated subscripts (diagonals), broadcast size-1 axes or options
(``dtype=``, ``casting=``, ``order=``) go to ``np.einsum`` itself.  Three or more operands
are contracted by ``np.einsum`` with a greedy contraction order (``optimize=`` given: that
one).  So results equal the per-sample call to rounding (the summation order differs,
as for matmul), and bitwise for integers and bools; dtypes are numpy's.

**solve, inv, det.**  numpy's stacked versions run over the lane axis at once (per-sample
stacks of matrices are stacks too, aligned as numpy broadcasts them); a shared matrix
with per-lane right-hand sides is one solve with all of them as columns.  A singular
matrix on an active lane raises :class:`~vmapper.LaneError` naming the lane
(``LinAlgError: Singular matrix``, what the per-sample call raises); a matrix on a lane
that is masked off never raises: numpy fails the whole stack, so on its ``LinAlgError``
the singular lanes are found (``slogdet`` sign 0: the same LU with an exact zero pivot
that made numpy fail), the active ones raise, and the others are solved with the
identity in their place.

Errors are the per-sample call's: when the per-sample shapes or subscripts do not fit,
numpy's own call on stand-ins of the per-sample shapes and dtypes raises the per-sample
error (``ValueError``, ``LinAlgError``, ``TypeError``, ``IndexError``), on every active
lane.  Only operands may differ per sample (not the subscripts, ``axes`` or options);
``out=`` and einsum's interleaved form (``np.einsum(a, [0, 1], b, [1])``) with per-sample
operands are unsupported.
"""
from __future__ import annotations

import functools
import math
import operator
import string

import numpy as np

from ..runtime.values import Lanes
from .array_ops import _contains_lanes
from .array_scans import _varying
from .registry import register
from .signatures import bind_call

LinAlgError = np.linalg.LinAlgError

#: Letters einsum accepts, in the order fresh ones are taken (lane axis, ellipsis axes).
LETTERS = string.ascii_letters
_FRESH = string.ascii_uppercase[::-1] + string.ascii_lowercase[::-1]


# ---- binding ---------------------------------------------------------------------------------

SIGNATURES = {
    "tensordot": (["a", "b", "axes"], {"axes": 2}),
    "solve": (["a", "b"], {}),
    "inv": (["a"], {}),
    "det": (["a"], {}),
}


def bind(name, args, kwnames):
    """``{parameter: value}`` for a call of ``np.<name>``, or the ``TypeError`` message."""
    return bind_call(name, args, kwnames, *SIGNATURES[name])


def _bound(ctx, name, args, attrs):
    """The call's arguments bound to ``np.<name>``'s parameters, or the per-sample run's TypeError."""
    b = bind(name, args, attrs.get("kw") or ())
    if isinstance(b, str):
        raise ctx.type_error(b)
    return b


def einsum_bind(args, kwnames):
    """``(operands, options)`` of an ``np.einsum`` call: the positional arguments (the
    subscripts first) and the keyword ones."""
    npos = len(args) - len(kwnames)
    return list(args[:npos]), dict(zip(kwnames, args[npos:]))


def lane_flags(values):
    """Which of ``values`` are per lane (a Lanes, or a list or tuple holding one)."""
    return [_contains_lanes(v) for v in values]


class _ListCtx:
    """What ``np.array`` of a list holding per-lane values needs of a context, for the
    backward pass (the forward conversion succeeded: nothing raises)."""

    def __init__(self, n):
        self.n = n

    @staticmethod
    def uniform(fn, *args):
        return fn(*args)


def computed(v, n=None, ctx=None):
    """The array an operand enters the batched computation as: a per-lane array (lanes
    first; a list holding per-lane values as ``np.array`` makes it, per lane), or the shared
    value as numpy converts it."""
    if isinstance(v, Lanes):
        return v.data
    if _contains_lanes(v):
        return _varying(ctx if ctx is not None else _ListCtx(n), v).data
    return np.asarray(v)


# ---- errors: numpy's per-sample call on stand-ins ----------------------------------------------

def _standin(v, lane, unit_diagonal):
    """A value of ``v``'s per-sample shape and dtype (zeros; with ``unit_diagonal`` ones on
    the diagonal of the last two axes, so that no stand-in matrix is singular)."""
    if not lane:
        return v
    d = v.data if isinstance(v, Lanes) else None
    if d is None:
        return [_standin(x, _contains_lanes(x), unit_diagonal) for x in v]
    if isinstance(v, Lanes) and v.weak:
        return d.dtype.type(0).item()
    z = np.zeros(d.shape[1:], d.dtype)
    if unit_diagonal and z.ndim >= 2 and z.size:
        k = np.arange(min(z.shape[-2:]))
        z[..., k, k] = 1
    return z


def per_sample_error(ctx, label, fn, values, kw=None, unit_diagonal=False):
    """The LaneError of numpy's per-sample call ``fn(*values, **kw)`` (run on stand-ins of
    the per-lane values), or None when it does not raise."""
    stand = [_standin(v, lane, unit_diagonal) for v, lane in zip(values, lane_flags(values))]
    try:
        with np.errstate(all="ignore"):
            fn(*stand, **(kw or {}))
    except Exception as exc:  # whatever numpy raises, the per-sample run raises
        return ctx.lane_error_all(f"{label}: {exc}", type(exc))
    return None


def _fail(ctx, label, fn, values, kw=None, unit_diagonal=False, exc=None, construct=None):
    """Raise the per-sample error; ``exc``: what the batched call raised, for a call the
    per-sample stand-ins pass (this should not happen)."""
    err = per_sample_error(ctx, label, fn, values, kw, unit_diagonal)
    if err is not None:
        raise err
    if exc is not None:
        raise ctx.lane_error_all(f"{label}: {exc}", type(exc))
    raise ctx.unsupported(construct or f"this call of {label}")


def _no_lanes_in(ctx, label, options):
    if options.get("out") is not None:
        raise ctx.unsupported(f"{label}() with out=", hint="use the returned array instead")
    for k, v in options.items():
        if _contains_lanes(v):
            raise ctx.unsupported(f"{label}() with a per-sample value for '{k}'",
                                  hint="only the arrays may differ per sample: the shape of the result must "
                                       "be the same on every lane")


# ---- einsum subscripts -----------------------------------------------------------------------------

ELLIPSIS = "..."


def _labels(part):
    """The labels of one operand's (or the output's) subscripts: letters and ELLIPSIS, or
    None for anything numpy rejects (or that this reader does not know)."""
    out, i = [], 0
    while i < len(part):
        c = part[i]
        if c in LETTERS:
            out.append(c)
        elif c == ".":
            if part[i:i + 3] != ELLIPSIS or ELLIPSIS in out:
                return None
            out.append(ELLIPSIS)
            i += 2
        elif c != " ":
            return None
        i += 1
    return out


def parse_subscripts(subscripts, ndims):
    """numpy's reading of einsum ``subscripts`` for operands of (per-sample) ``ndims``
    dimensions (see :func:`_parse`); None when numpy would raise."""
    if not isinstance(subscripts, str):
        return None
    return _parse(subscripts, tuple(ndims))


@functools.lru_cache(maxsize=1024)
def _parse(subscripts, ndims):
    """``(inputs, output, free)``, the subscripts of each operand and of the result
    with every axis a letter of its own (``...`` expanded into fresh letters, right-aligned
    as numpy broadcasts it; the implicit output in numpy's order), and the letters still
    free (tuples).  None when numpy would raise (its own call then gives the error)."""
    if "->" in subscripts:
        ins, outs = subscripts.split("->", 1)
        output = _labels(outs)
        if output is None:
            return None
    else:
        ins, output = subscripts, None
    parts = [_labels(p) for p in ins.split(",")]
    if len(parts) != len(ndims) or any(p is None for p in parts):
        return None
    extra = []
    for p, nd in zip(parts, ndims):
        k = len(p) - (ELLIPSIS in p)
        if k > nd or (ELLIPSIS not in p and k != nd):
            return None
        extra.append(nd - k)
    used = {c for p in parts for c in p if c != ELLIPSIS}
    counts = {}
    for p in parts:
        for c in p:
            if c != ELLIPSIS:
                counts[c] = counts.get(c, 0) + 1
    n_ell = max([e for p, e in zip(parts, extra) if ELLIPSIS in p], default=0)
    if output is None:
        output = ([ELLIPSIS] if n_ell else []) + sorted(c for c, k in counts.items() if k == 1)
    else:
        letters = [c for c in output if c != ELLIPSIS]
        if len(set(letters)) != len(letters) or not set(letters) <= used:
            return None
        if n_ell and ELLIPSIS not in output:
            return None
    free = [c for c in _FRESH if c not in used]
    if len(free) < n_ell + 1:
        return None
    ell, free = "".join(free[:n_ell][::-1]), free[n_ell:]

    def expand(p, e):
        return "".join(ell[n_ell - e:] if c == ELLIPSIS else c for c in p)
    inputs = tuple(expand(p, e) for p, e in zip(parts, extra))
    return inputs, expand(output, n_ell), tuple(free)


def batched_subscripts(inputs, output, free, lanes):
    """The subscripts with a lane letter first on each per-lane operand and on the result."""
    if not any(lanes):
        return list(inputs), output
    lane = free[0]
    return [lane + s if v else s for s, v in zip(inputs, lanes)], lane + output


# ---- contraction ----------------------------------------------------------------------------------

def _sizes(subs, arrays):
    """``{letter: size}``, or None where a letter's sizes differ (numpy broadcasts size 1)."""
    sizes = {}
    for s, a in zip(subs, arrays):
        for c, k in zip(s, a.shape):
            if sizes.setdefault(c, k) != k:
                return None
    return sizes


def contract(subs, output, arrays, optimize=None, options=None):
    """``np.einsum`` of explicit subscripts (no ellipsis): two operands as one matrix
    product where the subscripts allow it, numpy's einsum otherwise."""
    spec = ",".join(subs) + "->" + output
    if options:
        return np.einsum(spec, *arrays, optimize=False if optimize is None else optimize, **options)
    simple = all(len(set(s)) == len(s) for s in subs) and _sizes(subs, arrays) is not None
    if len(arrays) == 2 and simple:
        return _contract2(subs[0], subs[1], output, arrays[0], arrays[1])
    if optimize is None:
        optimize = "greedy" if len(arrays) > 2 and simple else False
    return np.einsum(spec, *arrays, optimize=optimize)


def _reduce_own(s, a, others, output):
    """Sum the axes of ``a`` whose letter is neither in ``others`` nor in ``output``."""
    axes = tuple(i for i, c in enumerate(s) if c not in others and c not in output)
    if not axes:
        return s, a
    return "".join(c for c in s if c in others or c in output), np.add.reduce(a, axis=axes, dtype=a.dtype)


def _contract2(sa, sb, output, A, B):
    """``np.einsum(f"{sa},{sb}->{output}", A, B)`` as one (stacked) matrix product; every
    letter once per operand, the same size wherever it appears."""
    dt = np.result_type(A, B)
    A, B = np.asarray(A).astype(dt, copy=False), np.asarray(B).astype(dt, copy=False)
    batch = [c for c in output if c in sa and c in sb]
    rest = [c for c in output if c not in batch]
    if rest and rest[0] in sb and rest[0] not in sa:  # the result's leading free axis from b: b @ a
        sa, sb, A, B = sb, sa, B, A
    sa, A = _reduce_own(sa, A, sb, output)
    sb, B = _reduce_own(sb, B, sa, output)
    fa = [c for c in output if c in sa and c not in sb]
    fb = [c for c in output if c in sb and c not in sa]
    con = [c for c in sa if c in sb and c not in output]
    size = dict(zip(sa, A.shape))
    size.update(zip(sb, B.shape))
    bs = tuple(size[c] for c in batch)
    A2 = A.transpose([sa.index(c) for c in batch + fa + con]).reshape(
        bs + (math.prod(size[c] for c in fa), math.prod(size[c] for c in con)))
    B2 = B.transpose([sb.index(c) for c in batch + con + fb]).reshape(
        bs + (math.prod(size[c] for c in con), math.prod(size[c] for c in fb)))
    R = np.matmul(A2, B2).reshape(bs + tuple(size[c] for c in fa) + tuple(size[c] for c in fb))
    have = batch + fa + fb
    perm = [have.index(c) for c in output]
    return R.transpose(perm) if perm != list(range(len(perm))) else R


# ---- einsum ---------------------------------------------------------------------------------------------

@register("np.einsum", callables=(np.einsum,))
def _einsum(ctx, args, attrs):
    ops, options = einsum_bind(args, attrs.get("kw") or ())
    lanes = lane_flags(ops)
    if any(lane_flags(list(options.values()))):
        _no_lanes_in(ctx, "np.einsum", options)
    if not any(lanes):
        return ctx.uniform(lambda: np.einsum(*ops, **options))
    _no_lanes_in(ctx, "np.einsum", options)
    subscripts, operands = ops[0], ops[1:]
    if not isinstance(subscripts, str):
        raise ctx.unsupported("np.einsum() in the interleaved form (operand, sublist, ...) with per-sample "
                              "operands", hint="write the subscripts as a string: np.einsum('ij,j->i', A, x)")
    arrays = [computed(v, ctx=ctx) for v in operands]
    parsed = parse_subscripts(subscripts, [a.ndim - lane for a, lane in zip(arrays, lanes[1:])])
    if parsed is None:
        _fail(ctx, "np.einsum", np.einsum, ops, options,
              construct=f"np.einsum() with subscripts {subscripts!r} (more distinct letters than einsum has "
                        f"with one added for the lane axis)")
    subs, output = batched_subscripts(*parsed, lanes[1:])
    rest = dict(options)
    optimize = rest.pop("optimize", None)
    try:
        res = contract(subs, output, arrays, optimize, rest)
    except (ValueError, TypeError) as exc:
        _fail(ctx, "np.einsum", np.einsum, ops, options, exc=exc)
    return Lanes(np.asarray(res), False)


# ---- tensordot ----------------------------------------------------------------------------------------

def _axis_list(x):
    """numpy's reading of one side of tensordot's ``axes``: a sequence, or one axis."""
    try:
        len(x)
    except TypeError:
        return [x]
    return list(x)


def tensordot_subscripts(nda, ndb, axes):
    """The einsum subscripts of ``np.tensordot`` of operands of ``nda`` and ``ndb``
    dimensions (numpy's reading of ``axes``), or None where numpy raises."""
    try:
        iter(axes)
    except Exception:
        try:
            k = operator.index(axes)
        except TypeError:
            return None
        axes_a, axes_b = list(range(-k, 0)), list(range(k))
    else:
        try:
            axes_a, axes_b = axes
        except (TypeError, ValueError):
            return None
    axes_a, axes_b = _axis_list(axes_a), _axis_list(axes_b)
    if len(axes_a) != len(axes_b):
        return None
    try:
        axes_a = [operator.index(x) for x in axes_a]
        axes_b = [operator.index(x) for x in axes_b]
    except TypeError:
        return None
    if not all(-nda <= x < nda for x in axes_a) or not all(-ndb <= x < ndb for x in axes_b):
        return None
    axes_a = [x % nda for x in axes_a]
    axes_b = [x % ndb for x in axes_b]
    if len(set(axes_a)) != len(axes_a) or len(set(axes_b)) != len(axes_b) or nda + ndb > len(LETTERS) - 1:
        return None
    sa = LETTERS[:nda]
    sb = list(LETTERS[nda:nda + ndb])
    for x, y in zip(axes_a, axes_b):
        sb[y] = sa[x]
    sb = "".join(sb)
    out = "".join(sa[i] for i in range(nda) if i not in axes_a) + \
        "".join(sb[i] for i in range(ndb) if i not in axes_b)
    used = set(sa) | set(sb)
    return (sa, sb), out, tuple(c for c in _FRESH if c not in used)


@register("np.tensordot", callables=(np.tensordot,))
def _tensordot(ctx, args, attrs):
    b = _bound(ctx, "tensordot", args, attrs)
    a, c, axes = b["a"], b["b"], b["axes"]
    lanes = lane_flags([a, c])
    if not any(lanes):
        return ctx.uniform(lambda: np.tensordot(a, c, axes))
    _no_lanes_in(ctx, "np.tensordot", {"axes": axes})
    arrays = [computed(v, ctx=ctx) for v in (a, c)]
    shapes = [x.shape[lane:] for x, lane in zip(arrays, lanes)]
    parsed = tensordot_subscripts(len(shapes[0]), len(shapes[1]), axes)
    if parsed is not None:
        (sa, sb), out, _ = parsed
        sizes = dict(zip(sa, shapes[0]))
        if any(sizes.get(ch, k) != k for ch, k in zip(sb, shapes[1])):
            parsed = None  # numpy's shape-mismatch for sum
    if parsed is None:
        _fail(ctx, "np.tensordot", lambda x, y: np.tensordot(x, y, axes), [a, c],
              construct=f"np.tensordot() with axes={axes!r}")
    subs, output = batched_subscripts(*parsed, lanes)
    return Lanes(np.asarray(contract(subs, output, arrays)), False)


# ---- solve, inv, det ----------------------------------------------------------------------------------

def linalg_dtype(dt):
    """Whether numpy's linalg takes arrays of dtype ``dt`` (it computes in float64 or
    complex128 for bools and integers, and raises for float16 or long doubles)."""
    return dt.kind in "biu" or dt in (np.float32, np.float64, np.complex64, np.complex128)


def _square_stack(shape):
    return len(shape) >= 2 and shape[-1] == shape[-2]


def solve_layout(a, b, n):
    """``(A, B, vector)``: the arrays numpy's stacked solve runs on for per-sample (or shared)
    ``a`` and ``b`` (per-lane ones lanes first, their stacks padded with axes of 1 to the same
    depth, so that numpy broadcasts them as it broadcasts the per-sample stacks), and whether
    ``b`` is a vector per sample (then ``B`` has a trailing axis of one column)."""
    la, lb = lane_flags([a, b])
    A, B = computed(a, n), computed(b, n)
    sa, sb = A.shape[la:], B.shape[lb:]
    vector = len(sb) == 1
    if vector:
        B = B[..., None]
        sb = sb + (1,)
    d = max(len(sa), len(sb)) - 2
    if la:
        A = A.reshape(A.shape[:1] + (1,) * (d - len(sa) + 2) + sa)
    if lb:
        B = B.reshape(B.shape[:1] + (1,) * (d - len(sb) + 2) + sb)
    return A, B, vector


def stacked_solve(A, B):
    """``np.linalg.solve(A, B)`` (``B`` a stack of matrices); a shared matrix ``A`` with
    per-lane right-hand sides is one solve with all of them as columns."""
    if A.ndim == 2 and B.ndim > 2:
        m = A.shape[0]
        cols = np.moveaxis(B, -2, 0)
        X = np.linalg.solve(A, cols.reshape(m, -1))
        return np.moveaxis(X.reshape((X.shape[0],) + cols.shape[1:]), 0, -2)
    return np.linalg.solve(A, B)


def singular(A):
    """Which matrices of the stack ``A`` numpy's LU finds singular (an exact zero pivot)."""
    with np.errstate(all="ignore"):
        return np.linalg.slogdet(A)[0] == 0


def with_identity(A, bad):
    """``A`` with the identity in place of the matrices where ``bad`` (the stack's shape) is set."""
    eye = np.eye(A.shape[-1], dtype=A.dtype)
    return np.where(bad[..., None, None], eye, A)


def _lane_singular(A, la):
    """One flag per lane: some matrix of the lane's stack is singular (a shared one: all)."""
    bad = singular(A)
    if not la:
        return bad.any()
    return bad.reshape(bad.shape[0], -1).any(axis=1)


def _linalg_checked(ctx, name, run, A, la):
    """``run(A)``; on numpy's LinAlgError the singular matrices of active lanes raise
    (naming the lanes), and the others are replaced by the identity and run again."""
    try:
        with np.errstate(all="ignore"):
            return run(A)
    except LinAlgError:
        pass
    label = f"np.linalg.{name}"
    if not la:
        raise ctx.lane_error_all(f"{label}: Singular matrix", LinAlgError)
    ctx.fail_where(_lane_singular(A, la), f"{label}: Singular matrix", LinAlgError)
    try:
        with np.errstate(all="ignore"):
            return run(with_identity(A, singular(A)))  # the singular lanes are inactive
    except LinAlgError:
        pass
    # numpy's LU failed where slogdet's did not (it does not happen): find the lanes one by one
    bad = np.zeros(A.shape[0], dtype=bool)
    for i in ctx.active_indices():
        try:
            with np.errstate(all="ignore"):
                run(A[i:i + 1])
        except LinAlgError:
            bad[i] = True
    ctx.fail_where(bad, f"{label}: Singular matrix", LinAlgError)
    raise ctx.lane_error_all(f"{label}: Singular matrix", LinAlgError)


def _matrix_arg(ctx, name, values, lanes, unit_diagonal=True):
    """Raise numpy's per-sample error unless the per-sample ``a`` is a (stack of) square matrices."""
    A = computed(values[0], ctx=ctx)
    shape = A.shape[lanes[0]:]
    if not _square_stack(shape) or not linalg_dtype(A.dtype):
        fn = getattr(np.linalg, name)
        _fail(ctx, f"np.linalg.{name}", fn, values, unit_diagonal=unit_diagonal,
              construct=f"np.linalg.{name}() of a per-sample {A.dtype.name} array of shape {shape}")
    return A


@register("np.linalg.solve", callables=(np.linalg.solve,), may_fail=True)
def _solve(ctx, args, attrs):
    b = _bound(ctx, "solve", args, attrs)
    a, rhs = b["a"], b["b"]
    lanes = lane_flags([a, rhs])
    if not any(lanes):
        return ctx.uniform(lambda: np.linalg.solve(a, rhs))
    values = [a, rhs]
    A = _matrix_arg(ctx, "solve", values, lanes)
    a = Lanes(A) if lanes[0] else A
    Bd = computed(rhs, ctx=ctx)
    rhs = Lanes(Bd) if lanes[1] else Bd
    sb = Bd.shape[lanes[1]:]
    m = A.shape[-1]
    ok = linalg_dtype(Bd.dtype) and len(sb) >= 1 and (sb[0] == m if len(sb) == 1 else sb[-2] == m)
    if ok:
        Al, Bl, vector = solve_layout(a, rhs, ctx.n)
        try:
            np.broadcast_shapes(Al.shape[:-2], Bl.shape[:-2])
        except ValueError:
            ok = False
    if not ok:
        _fail(ctx, "np.linalg.solve", np.linalg.solve, values, unit_diagonal=True,
              construct="np.linalg.solve() of these per-sample shapes")
    X = _linalg_checked(ctx, "solve", lambda M: stacked_solve(M, Bl), Al, lanes[0])
    return Lanes(X[..., 0] if vector else X, False)


@register("np.linalg.inv", callables=(np.linalg.inv,), may_fail=True)
def _inv(ctx, args, attrs):
    b = _bound(ctx, "inv", args, attrs)
    a = b["a"]
    if not _contains_lanes(a):
        return ctx.uniform(lambda: np.linalg.inv(a))
    A = _matrix_arg(ctx, "inv", [a], [True])
    return Lanes(_linalg_checked(ctx, "inv", np.linalg.inv, A, True), False)


@register("np.linalg.det", callables=(np.linalg.det,))
def _det(ctx, args, attrs):
    b = _bound(ctx, "det", args, attrs)
    a = b["a"]
    if not _contains_lanes(a):
        return ctx.uniform(lambda: np.linalg.det(a))
    A = _matrix_arg(ctx, "det", [a], [True])
    with np.errstate(all="ignore"):
        return Lanes(np.asarray(np.linalg.det(A)), False)


__all__ = ["parse_subscripts", "batched_subscripts", "contract", "tensordot_subscripts", "solve_layout",
           "stacked_solve", "singular", "with_identity", "einsum_bind", "bind", "computed", "lane_flags"]
