"""Opt-in tuning of glibc's ``malloc`` for training loops of batched steps.

numpy allocates every array it makes, through ``malloc``.  A batched training step
makes and frees megabytes of temporaries (products over a height's lanes, gradient
buffers, memo tables).  glibc maps each allocation above its mmap threshold afresh
and hands the freed top of its heap back to the system above its trim threshold;
both start at 128 KiB and rise only when the process frees a larger mapped block.
Until then every step takes a page fault for each page it touches again.

:func:`tune_allocator` frees one large block at start, which raises both thresholds
as glibc's own rule does (``mallopt(3)``: the dynamic mmap threshold), so that the
steps' arrays come from a heap that stays mapped.  glibc keeps adjusting them as
before; nothing else changes.  Programs that load other large libraries (PyTorch,
JAX) usually reach that state by themselves.
"""
from __future__ import annotations

import ctypes
import os
import sys

import numpy as np

#: glibc raises its mmap threshold to the size of a freed mapped block up to 32 MiB
#: (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems), and its trim threshold to twice that; a
#: block's mapping is a few KiB larger than what was asked for, so the largest block is less.
_MAX_BLOCK = 31 << 20
#: Environment settings that fix glibc's thresholds (they turn its dynamic rule off).
_FIXED_BY = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def tune_allocator(block: int = 16 << 20) -> bool:
    """Raise glibc's mmap threshold to ``block`` bytes (and its trim threshold to twice
    that) by mapping and freeing one block of that size, untouched (see the module
    docstring).  Process-wide; call it once, at start.

    Returns True when done, False where it changes nothing: the C library is not glibc
    (macOS, Windows, musl), or the environment fixes the thresholds (``MALLOC_MMAP_THRESHOLD_``
    and the like, or ``GLIBC_TUNABLES`` setting them).
    """
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)):
        raise TypeError(f"tune_allocator: block must be an int (bytes), not {type(block).__name__}")
    if not 128 << 10 < block <= _MAX_BLOCK:
        raise ValueError(f"tune_allocator: block must be in (128 KiB, 31 MiB], not {block}")
    libc = _glibc()
    if libc is None or _fixed_by_environment():
        return False
    p = libc.malloc(int(block))
    if not p:
        return False
    libc.free(p)
    return True


def _fixed_by_environment():
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(v in os.environ for v in _FIXED_BY) or any(
        t in tunables for t in ("mmap_threshold", "trim_threshold", "top_pad", "mmap_max"))


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # (glibc only: musl has malloc but not this rule)
    except (OSError, AttributeError):
        return None
    libc.malloc.argtypes, libc.malloc.restype = (ctypes.c_size_t,), ctypes.c_void_p
    libc.free.argtypes, libc.free.restype = (ctypes.c_void_p,), None
    return libc
