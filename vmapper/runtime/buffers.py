"""Recycled arrays for the results of elementwise operations within one call.

A batched loop makes the same temporaries trip after trip: ``n % 2``,
``3 * n``, the blend of a select.  Freshly allocated, every such array of a
few hundred KiB or more comes from the operating system again (glibc gives
large freed blocks back to it) and page-faults on first write: 15% of
Collatz on 200000 lanes.  A :class:`BufferPool` keeps the arrays it has made
("slabs") and hands out views of their first ``n`` elements; a slab is free
again as soon as no view of it is alive, which its reference count tells
(every view, and every view of a view, refers to the slab itself).  So no
operation has to say when it is done with an array, and a slab serves the
shrinking lane counts of a compacting loop.

A view is handed out only as ``out=`` of an elementwise operation whose
operands are live values, which are never free slabs: no live value ever
changes.  The pool belongs to one call (:class:`~vmapper.runtime.executor.ExecState`),
so concurrent calls never share slabs; a result that outlives the call keeps
its slab alive like any numpy view.
"""
from __future__ import annotations

import sys

import numpy as np

from .values import Lanes

#: Slabs kept at most per call; past that, arrays are allocated as usual.
POOL_CAPACITY = 12
#: Requests smaller than this are cheap to allocate (no page faults): not pooled.
MIN_POOLED_BYTES = 1 << 16


class BufferPool:
    __slots__ = ("_slabs",)

    def __init__(self):
        self._slabs = []

    def take(self, dtype, shape):
        """A writable C-contiguous array of this dtype and shape whose contents are garbage,
        or None (allocate it yourself) for small or unusual requests."""
        if len(shape) != 1:
            return None
        n = shape[0]
        dtype = np.dtype(dtype)
        if n * dtype.itemsize < MIN_POOLED_BYTES:
            return None
        best = None
        for slab in self._slabs:
            # referenced by our list, the loop variable and getrefcount's argument only:
            # no view of it is alive
            if slab.dtype == dtype and slab.shape[0] >= n and sys.getrefcount(slab) <= 3 \
                    and (best is None or slab.shape[0] < best.shape[0]):
                best = slab
        if best is None:
            if len(self._slabs) >= POOL_CAPACITY:
                return None
            best = np.empty(n, dtype)
            self._slabs.append(best)
        return best[:n]

    def sole_view(self, array) -> bool:
        """Whether ``array`` is a view of one of our slabs through which alone the slab is
        reachable (callers check that nothing else refers to ``array`` itself)."""
        base = array.base
        # refs: our list, array.base, our name, getrefcount's argument
        return base is not None and type(base) is np.ndarray and base.base is None \
            and sys.getrefcount(base) <= 4 and any(s is base for s in self._slabs)


def same_dtype_result(r, other) -> bool:
    """Whether a same-kind arithmetic ufunc of ``r`` and ``other`` has ``r``'s dtype and shape
    (NEP 50: a Python scalar operand takes the array's type)."""
    return r.dtype.kind in "iuf" and (
        type(other) is float and r.dtype == np.float64
        or type(other) is int and r.dtype.itemsize == 8
        or type(other) is np.ndarray and other.dtype == r.dtype and other.shape == r.shape)


def is_spare(value, pool, holders=0) -> bool:
    """Whether ``value`` is a :class:`Lanes` that only the caller's argument list holds (a
    temporary that dies at this operation) and whose array no other value can see, so
    that the operation may write its result into that array. Call it as
    ``is_spare(args[k], pool)``, with no other name bound to the value; ``holders``: the
    references it may have besides (``a[i] = v``, which rebinds ``a`` to its result: the
    frame's variable and the caller's name, 2; never while taping, which the caller checks:
    the tape may hold the old value)."""
    # the list, our name, getrefcount's argument, and the holders
    if type(value) is not Lanes or sys.getrefcount(value) > 3 + holders:
        return False
    r = value.data
    # refs to the array: value.data, our name, getrefcount's argument; a view only of a slab of ours
    return sys.getrefcount(r) <= 3 and r.flags.writeable and (r.base is None or pool.sole_view(r))

