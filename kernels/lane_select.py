"""Per-lane select for the numpy runtime: ``out[i] = new[i] if mask[i] else old[i]``.

``np.where`` branches on every lane: with a mask that is true on a random half of
the lanes it mispredicts half the time and runs ~12x slower than an add over the
same arrays (60000 float64 lanes: 224 us against 17 us, measured on the CI
machine). The arithmetic form ``old + (new - old) * mask`` is exact for integers
only, and takes three passes plus a bool-to-int cast (67 us). This loop compiles
to vector blends: one pass, bitwise copies of the selected values (NaN payloads
and signed zeros kept), any mask pattern.

When one arm is a temporary that nothing else holds, the result goes into its
array (:func:`select_in_place`): no fresh buffer enters the cache, which on
Collatz's 200000 lanes (int64, out of L2) made the blend of an if-converted
branch and its arms 15% faster.

The runtime stays unfused: this is one primitive operation per launch, like the
ufuncs around it.
"""
import contextlib

import numpy as np
from numba import njit

#: dtypes the kernel serves; others (float16, which numba cannot compile, objects, strings,
#: datetimes) use ``np.where``.
SUPPORTED_DTYPES = frozenset(np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float32, np.float64, np.complex64, np.complex128))


@njit(nogil=True, cache=True, error_model="numpy")
def _select_into(mask, new, old, out):
    # Both loads before the store: with ``out[i] = new[i] if mask[i] else old[i]``
    # LLVM left one-byte dtypes scalar (bool, int8: 117 us against 7 us on 200000
    # lanes) and the in-place forms below unvectorized on int64.
    for i in range(mask.shape[0]):
        a = new[i]
        b = old[i]
        out[i] = a if mask[i] else b
    return out


@njit(nogil=True, cache=True, error_model="numpy")
def _keep_where(mask, keep_if, dest, src):
    # dest[i] stays where mask[i] == keep_if, else takes src[i]; a kernel of its own
    # (not _select_into with out=dest): LLVM's runtime alias check of that call finds
    # the overlap and runs the scalar loop, 3x slower
    for i in range(mask.shape[0]):
        a = dest[i]
        b = src[i]
        dest[i] = a if mask[i] == keep_if else b
    return dest


_READY = set()  # (kernel, dtype) pairs loaded or compiled in this process


def _booked(kernel, dtype):
    """A context that books the first call of ``kernel`` for ``dtype`` (numba loads or compiles
    it then) under ``(compile)`` in an open ``vmapper.profile()``, not under the user's line."""
    if (kernel, dtype) in _READY:
        return contextlib.nullcontext()
    _READY.add((kernel, dtype))
    from vmapper.profiler import compiling
    return compiling(f"numba lane select ({dtype.name})")


def select_in_place(mask: np.ndarray, new: np.ndarray, old: np.ndarray, into_new: bool) -> np.ndarray:
    """:func:`select_into` with ``out`` the array of ``new`` (``into_new``) or of ``old``,
    which the caller owns (no other value sees it)."""
    with _booked(_keep_where, new.dtype):
        return _keep_where(mask, True, new, old) if into_new else _keep_where(mask, False, old, new)


def select_into(mask: np.ndarray, new: np.ndarray, old: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out`` holding ``new`` where ``mask`` else ``old``; all four one-dimensional
    and of one length, ``new``/``old``/``out`` of one supported dtype, ``mask`` bool."""
    with _booked(_select_into, new.dtype):
        return _select_into(mask, new, old, out)


def fits(mask: np.ndarray, new: np.ndarray, old: np.ndarray) -> bool:
    """Whether :func:`select_into` serves these operands."""
    return (mask.ndim == 1 and new.ndim == 1 and mask.dtype == np.bool_
            and new.dtype == old.dtype and new.dtype in SUPPORTED_DTYPES
            and new.shape == old.shape == mask.shape)
