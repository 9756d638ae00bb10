"""Python's own number semantics where numpy's differ, per lane: ``pow(a, b, m)`` (modular
exponentiation of Python ints), ``round(x, ndigits)`` (decimal rounding of the exact binary
value of a Python float) and ``math.isclose``.  Each is exact or raises: an element that
double precision or int64 cannot decide exactly is an error naming its lanes, never a
per-element call of Python."""
from __future__ import annotations

import math
import operator

import numpy as np

from ..runtime.values import Lanes, is_weak
from .registry import register
from .scalar_ops import _round, _scalar_lanes

# ---- pow(a, b, m): Python's modular exponentiation of Python ints --------------------------

_MULMOD_MAX = 3037000499  # the largest modulus whose products of residues (< m**2) fit in int64
_INT64_MIN = np.iinfo(np.int64).min


def _pow_mod_operand(ctx, v, args):
    """Lane values (int64) of a Python int or bool operand of three-argument pow, as Python
    allows it; TypeError for anything else, with Python's message."""
    if isinstance(v, Lanes) and v.weak and v.data.ndim == 1 and v.data.dtype.kind in "biu" \
            or type(v) in (int, bool):
        return v.data.astype(np.int64) if isinstance(v, Lanes) else np.int64(v)
    if all(type(a) in (int, bool, float) or isinstance(a, Lanes) and a.weak and a.data.ndim == 1
           for a in args):
        raise ctx.type_error("pow() 3rd argument not allowed unless all arguments are integers")
    kinds = ", ".join(f"'{ctx.describe(a)}'" for a in args)
    raise ctx.type_error(f"unsupported operand type(s) for ** or pow(): {kinds} (three-argument pow "
                         f"takes Python ints: convert numpy integers with int())")


def _modular_inverse(a, m):
    """Per lane ``(a**-1 mod m, whether it exists)`` for ``0 <= a < m`` (extended Euclid)."""
    r0, r1 = m.copy(), a.copy()
    t0, t1 = np.zeros_like(m), np.ones_like(m)
    while True:
        live = r1 != 0
        if not live.any():
            return t0 % m, r0 == 1
        q = r0 // np.where(live, r1, 1)
        r0, r1 = np.where(live, r1, r0), np.where(live, r0 - q * r1, r1)
        t0, t1 = np.where(live, t1, t0), np.where(live, t0 - q * t1, t1)


def _modular_power(base, e, m):
    """Per lane ``base**e mod m`` for ``0 <= base < m <= _MULMOD_MAX`` and ``e >= 0``."""
    result = np.ones_like(m) % m
    while e.any():
        odd = (e & 1).astype(bool)
        result = np.where(odd, result * base % m, result)
        e = e >> 1
        base = base * base % m
    return result


@register("pow_mod", may_fail=True)
def _pow_mod(ctx, args, attrs):
    """``pow(a, b, m)``: Python's modular exponentiation of Python ints, a Python int per lane.
    ``m == 0`` raises ValueError; a negative ``b`` takes the inverse of ``a`` modulo ``m``
    (ValueError where there is none); the result has the sign of ``m``.  A modulus whose
    residues' products do not fit in int64 (``|m| > 3037000499``) raises UnsupportedSyntaxError."""
    a, b, m = args
    if m is None:
        return ctx.call_primitive("pow", (a, b))
    if not any(isinstance(v, Lanes) for v in args):
        return ctx.uniform(pow, a, b, m)
    if type(m) is int and not _INT64_MIN <= m <= -(_INT64_MIN + 1):
        raise ctx.unsupported("pow() with a modulus beyond int64",
                              hint="vmapper holds Python ints as int64; the result may not fit")
    try:
        A, B, M = (np.broadcast_to(_pow_mod_operand(ctx, v, args), (ctx.n,)) for v in (a, b, m))
    except OverflowError:
        raise ctx.unsupported("pow() with an operand beyond int64",
                              hint="vmapper holds Python ints as int64") from None
    ctx.fail_where(M == 0, "pow() 3rd argument cannot be 0", ValueError)
    unsafe = (M > _MULMOD_MAX) | (M < -_MULMOD_MAX) | (B == _INT64_MIN)
    # products of residues would overflow int64: not batched (yet)
    ctx.unsupported_on(unsafe, f"pow(a, b, m) with |m| > {_MULMOD_MAX} (or b = -2**63)",
                       hint="the batched modular power multiplies residues in int64")
    out = np.zeros(ctx.n, dtype=np.int64)
    failed = {}  # Python's ValueError message -> the lanes that raise it
    if not unsafe.all():  # (inactive lanes' unsafe operands are replaced, never computed with)
        mod = np.where(unsafe | (M == 0), 2, np.abs(M))
        neg = B < 0
        base = A % mod
        if neg.any():
            inv, ok = _modular_inverse(base, mod)
            failed["base is not invertible for the given modulus"] = neg & ~ok & ~unsafe & (mod != 1) & (M != 0)
            base = np.where(neg, inv, base)
        small = _modular_power(base, np.abs(np.where(unsafe, 0, B)), mod)
        out = np.where((M < 0) & (small != 0), small + M, small)
    for message, bad in failed.items():
        ctx.fail_where(bad, message, ValueError)
    return Lanes(out, True)


# =====================================================================================================
# ---- round(number, ndigits) and math.isclose --------------------------------------------------------
# (``round`` is registered here: the rule serves round(number, ndigits) and hands round(number)
# to ``_round`` above.)

_POW10 = np.array([float(10 ** k) for k in range(23)])  # 10**k, exact in float64 up to 10**22
_SPLITTER = 134217729.0  # 2**27 + 1: Veltkamp's split of a double into two 26-bit halves
_NDIGITS_MAX, _NDIGITS_MIN = 323, -308  # CPython's: beyond them a float rounds to itself / to +-0.0


def _two_product(a, b):
    """``(p, e)``: ``p = fl(a * b)`` and ``p + e == a * b`` exactly (Dekker; no overflow, and
    no underflow where the result matters)."""
    p = a * b
    t = _SPLITTER * a
    ah = t - (t - a)
    al = a - ah
    t = _SPLITTER * b
    bh = t - (t - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _half_even(n0, above, below):
    """The integer nearest ``t``, ties to even, from ``n0`` (an integer within 1 of it) and the
    signs of ``above = t - (n0 + 1/2)`` and ``below = t - (n0 - 1/2)``."""
    n = n0 + (above > 0) - (below < 0)
    tie = (above == 0) | (below == 0)
    if tie.any():
        low = np.where(above == 0, n0, n0 - 1)  # the tie lies between low and low + 1
        n = np.where(tie, np.where(np.fmod(low, 2) == 0, low, low + 1), n)
    return n


def python_round_floats(x, ndigits):
    """``round(x, ndigits)`` of Python floats, elementwise and bitwise Python's; returns
    ``(result, unbatched)``, ``unbatched`` marking the elements it cannot round exactly (their
    ``result`` is garbage: the caller raises on the active ones).

    CPython rounds the exact binary value of ``x`` half-to-even at ``ndigits`` decimals and
    returns the float nearest that decimal (``round(2.675, 2) == 2.67``: 2.675 is stored a
    little below).  Here, for ``0 <= ndigits <= 22``, ``N = round_half_even(x * 10**ndigits)``
    is decided from the exact product (``_two_product``), and the result ``N / 10**ndigits``
    is the correctly rounded quotient of two exact doubles; for ``-22 <= ndigits < 0``,
    ``N = round_half_even(x / 10**-ndigits)`` is decided by comparing ``x`` with the
    halfway points exactly, and ``N * 10**-ndigits`` is correctly rounded.  Values that round
    to themselves (``|x| / 10**-ndigits >= 2**53``: the change is below half an ulp) or to
    zero are recognised by their magnitude.  What is left (products or quotients between
    2**51 and 2**54, more than 22 digits either way) would need more than double precision:
    ``unbatched``."""
    with np.errstate(all="ignore"):  # huge products overflow: those elements round to themselves
        return _round_floats(np.asarray(x, dtype=np.float64), ndigits)


def _round_floats(x, ndigits):
    nd = np.broadcast_to(np.asarray(ndigits, dtype=np.int64), x.shape)
    out = x.copy()  # NaN, infinities, ndigits > 323, and |x| far above 10**-ndigits round to x
    unbatched = np.zeros(x.shape, dtype=bool)
    todo = np.isfinite(x) & (nd <= _NDIGITS_MAX)
    tiny = todo & (nd < _NDIGITS_MIN)
    out[tiny] = 0.0 * x[tiny]
    todo &= ~tiny
    sel = np.flatnonzero(todo & (nd >= 0) & (nd <= 22))
    if sel.size:
        xs = x[sel]
        p = _POW10[nd[sel]]
        y, e = _two_product(xs, p)
        ok = np.abs(y) < 2.0 ** 52
        n0 = np.rint(y)
        a = y - n0  # exact
        n = _half_even(n0, (a - 0.5) + e, (a + 0.5) + e)
        out[sel[ok]] = np.copysign(n / p, xs)[ok]
        # From 2**55 on, x rounds to itself; so it does below when the product is exact (an
        # integer from 2**52 on: out holds x already).
        unbatched[sel[~ok & (np.abs(y) < 2.0 ** 55) & (e != 0)]] = True
    sel = np.flatnonzero(todo & (nd < 0) & (nd >= -22))
    if sel.size:
        xs = x[sel]
        p = _POW10[-nd[sel]]
        q = xs / p
        ok = np.abs(q) < 2.0 ** 51
        n0 = np.where(ok, np.rint(q), 0.0)
        half = 0.5 * p
        h, l = _two_product(2.0 * n0 + 1.0, half)
        above = (xs - h) - l  # the sign of x - (n0 + 1/2) * 10**-ndigits
        h, l = _two_product(2.0 * n0 - 1.0, half)
        below = (xs - h) - l
        n = _half_even(n0, above, below)
        out[sel[ok]] = np.copysign(n * p, xs)[ok]
        unbatched[sel[~ok & (np.abs(q) < 2.0 ** 54)]] = True  # (a computed q >= 2**54: x/p >= 2**53)
    sel = np.flatnonzero(todo & ((nd > 22) | (nd < -22)))
    if sel.size:
        xs, scale = np.abs(x[sel]), np.power(10.0, -nd[sel].astype(np.float64))
        zero = xs < 0.4 * scale  # |x| * 10**ndigits < 1/2: +-0.0
        itself = (nd[sel] > 0) & (xs >= 2.0 ** 56 * scale)
        out[sel[zero]] = 0.0 * x[sel[zero]]
        unbatched[sel[~zero & ~itself]] = True
    return out, unbatched


_INT64_MAX = np.iinfo(np.int64).max
_POW10_INT = np.array([10 ** k for k in range(19)], dtype=np.int64)
_QUOTIENT_MAX = np.array([_INT64_MAX // 10 ** k for k in range(19)], dtype=np.int64)
_QUOTIENT_MIN = np.array([-(2 ** 63 // 10 ** k) for k in range(19)], dtype=np.int64)


def python_round_ints(x, ndigits):
    """``round(x, ndigits)`` of Python ints held as int64: ``x`` for ``ndigits >= 0``, else the
    multiple of ``10**-ndigits`` nearest ``x``, ties to even; returns ``(result, beyond)``
    (``beyond``: where Python's result does not fit in int64)."""
    x = np.asarray(x, dtype=np.int64)
    nd = np.broadcast_to(np.asarray(ndigits, dtype=np.int64), x.shape)
    out = x.copy()
    beyond = np.zeros(x.shape, dtype=bool)
    big = nd < -18  # 10**-ndigits > 2**63: 0, or +-10**19 beyond int64
    out[big] = 0
    beyond |= (nd == -19) & ((x > 5 * 10 ** 18) | (x < -5 * 10 ** 18))
    sel = np.flatnonzero((nd < 0) & ~big)
    if sel.size:
        k = -nd[sel]
        xs, p = x[sel], _POW10_INT[k]
        q = xs // p
        r = xs - q * p  # 0 <= r < p
        q = q + ((2 * r > p) | (2 * r == p) & (q % 2 != 0))
        beyond[sel] = (q > _QUOTIENT_MAX[k]) | (q < _QUOTIENT_MIN[k])
        out[sel] = q * p
    return out, beyond


def _ndigits_lanes(ctx, nd):
    """Per-lane ``ndigits`` as int64 (Python's TypeError for a float)."""
    d = nd.data
    if d.ndim != 1:
        raise ctx.type_error("'numpy.ndarray' object cannot be interpreted as an integer")
    if d.dtype.kind not in "biu":
        name = "float" if nd.weak and d.dtype.kind == "f" else \
            ("complex" if nd.weak else f"numpy.{d.dtype.name}")
        raise ctx.type_error(f"'{name}' object cannot be interpreted as an integer")
    return d.astype(np.int64)


@register("round", callables=(round,), elementwise=True, may_fail=True, scalar=round)
def _round_ndigits(ctx, args, attrs):
    """``round(number)`` (``_round`` above) and ``round(number, ndigits)``: Python's decimal
    rounding of a Python float (:func:`python_round_floats`, a Python float per lane) or int
    (an int); a numpy value's ``__round__``, ``np.round`` (its dtype kept).  ``ndigits`` may
    differ per lane."""
    kw = attrs.get("kw") or ()
    npos = len(args) - len(kw)
    if npos > 2:
        raise ctx.type_error(f"round() takes at most 2 arguments ({npos} given)")
    b = dict(zip(("number", "ndigits"), args[:npos]))
    for k, v in zip(kw, args[npos:]):
        if k not in ("number", "ndigits"):
            raise ctx.type_error(f"'{k}' is an invalid keyword argument for round()")
        if k in b:
            raise ctx.type_error(f"argument for round() given by name ('{k}') and position "
                                 f"({1 if k == 'number' else 2})")
        b[k] = v
    if "number" not in b:
        raise ctx.type_error("round() missing required argument 'number' (pos 1)")
    x, nd = b["number"], b.get("ndigits")
    if nd is None:
        return _round(ctx, [x], {})
    if not isinstance(x, Lanes) and not isinstance(nd, Lanes):
        return ctx.uniform(round, x, nd)
    x = materialize_scalar(x, ctx.n)
    d = x.data
    if isinstance(nd, Lanes):
        digits = _ndigits_lanes(ctx, nd)
    else:
        try:
            digits = operator.index(nd)
        except TypeError:
            raise ctx.type_error(f"'{type(nd).__name__}' object cannot be interpreted as an integer") from None
    if x.weak:
        kind = d.dtype.kind
        if kind == "c":
            raise ctx.type_error("type complex doesn't define __round__ method")
        clipped = np.clip(digits, -10 ** 6, 10 ** 6) if isinstance(digits, np.ndarray) else \
            min(max(digits, -10 ** 6), 10 ** 6)  # (Python clips ndigits to a Py_ssize_t)
        if kind == "f":
            res, unbatched = python_round_floats(d, clipped)
            ctx.unsupported_on(unbatched, "round(x, ndigits) of a float that double precision cannot round "
                                          "exactly (|ndigits| > 22, or |x| * 10**ndigits between 2**51 and 2**55)",
                               hint="round with at most 22 digits, or with np.round (numpy's scaled rounding)")
            return Lanes(res, True)
        res, beyond = python_round_ints(d.astype(np.int64), clipped)
        bad = beyond if ctx.mask is None else beyond & ctx.mask
        if bad.any():
            raise ctx.unsupported("round() of an int whose result is beyond int64",
                                  hint="vmapper holds Python ints as int64")
        return Lanes(res, True)
    if d.ndim == 1 and d.dtype.kind in "bc":  # (numpy arrays of them round, their scalars do not)
        raise ctx.type_error(f"type numpy.{d.dtype.name} doesn't define __round__ method")
    # a numpy scalar or array: its __round__ is np.round, which keeps the dtype
    try:
        if not isinstance(digits, np.ndarray):
            return Lanes(np.asarray(np.round(d, digits)), False)
        out = np.empty(d.shape, dtype=np.round(d[:0], 0).dtype)
        for v in np.unique(digits):
            sel = digits == v
            out[sel] = np.round(d[sel], int(v))
        return Lanes(out, False)
    except (OverflowError, ValueError, TypeError) as exc:
        raise ctx.lane_error_all(str(exc), type(exc)) from None


def materialize_scalar(v, n):
    """``v`` as Lanes over ``n`` lanes (a uniform number broadcast, weak if a Python scalar)."""
    if isinstance(v, Lanes):
        return v
    arr = np.asarray(v)
    return Lanes(np.broadcast_to(arr, (n,) + arr.shape), is_weak(v))


_REAL = (bool, int, float, np.bool_, np.integer, np.floating)


@register("math.isclose", callables=(math.isclose,), may_fail=True, scalar=math.isclose)
def _isclose(ctx, args, attrs):
    """``math.isclose(a, b, *, rel_tol=1e-09, abs_tol=0.0)``, Python's test per lane:
    ``a == b``, else False if either is infinite, else ``|b - a| <= |rel_tol * b|`` or
    ``<= |rel_tol * a|`` or ``<= abs_tol`` (in float64, as CPython computes it); ValueError
    on lanes whose tolerances are negative.  A Python bool per lane.  Not elementwise to the
    kernel generator (it has no isclose), so it never runs inside a kernel."""
    kw = attrs.get("kw") or ()
    npos = len(args) - len(kw)
    if npos > 2:
        raise ctx.type_error(f"isclose() takes exactly 2 positional arguments ({npos} given)")
    b = dict(zip(("a", "b"), args[:npos]))
    b.setdefault("rel_tol", 1e-09)
    b.setdefault("abs_tol", 0.0)
    for k, v in zip(kw, args[npos:]):
        if k not in ("a", "b", "rel_tol", "abs_tol"):
            raise ctx.type_error(f"isclose() got an unexpected keyword argument '{k}'")
        if k in ("a", "b") and k in b:
            raise ctx.type_error(f"argument for isclose() given by name ('{k}') and position "
                                 f"({1 if k == 'a' else 2})")
        b[k] = v
    for k, pos in (("a", 1), ("b", 2)):
        if k not in b:
            raise ctx.type_error(f"isclose() missing required argument '{k}' (pos {pos})")
    values = [b[k] for k in ("a", "b", "rel_tol", "abs_tol")]
    if not any(isinstance(v, Lanes) for v in values):
        return ctx.uniform(lambda: math.isclose(values[0], values[1], rel_tol=values[2], abs_tol=values[3]))
    conv = []
    for v in values:
        if isinstance(v, Lanes):
            if v.data.dtype.kind in "cUS":
                raise ctx.type_error("must be real number, not "
                                     + {"c": "complex", "U": "str", "S": "bytes"}[v.data.dtype.kind])
            conv.append(_scalar_lanes(ctx, v, "isclose()").astype(np.float64))
        elif isinstance(v, _REAL) or isinstance(v, np.ndarray) and v.size == 1 and v.dtype.kind in "biuf":
            conv.append(np.float64(float(v)))
        else:
            raise ctx.type_error(f"must be real number, not {type(v).__name__}")
    a, c, rel, tol = conv
    ctx.fail_where(np.broadcast_to((rel < 0.0) | (tol < 0.0), (ctx.n,)), "tolerances must be non-negative",
                   ValueError)
    diff = np.abs(c - a)
    close = (diff <= np.abs(rel * c)) | (diff <= np.abs(rel * a)) | (diff <= tol)
    res = (a == c) | ~(np.isinf(a) | np.isinf(c)) & close
    return Lanes(np.broadcast_to(res, (ctx.n,)).copy(), True)
