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
import sys

#: glibc raises its mmap threshold to the size of a freed mapped block up to this size
#: (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems), and its trim threshold to twice that.
_MAX_DYNAMIC_THRESHOLD = 32 << 20


def tune_allocator(block: int = 16 << 20) -> bool:
    """Raise glibc's mmap threshold to ``block`` bytes (and its trim threshold to twice
    that) by mapping and freeing one block of that size, untouched (see the module
    docstring).  Process-wide; call it once, at start.

    Returns True when done, False where the C library is not glibc (macOS, Windows, musl),
    where it changes nothing.
    """
    if type(block) is not int or not 128 << 10 < block <= _MAX_DYNAMIC_THRESHOLD:
        raise ValueError(f"tune_allocator: block must be an int of bytes in (128 KiB, 32 MiB], not {block!r}")
    libc = _glibc()
    if libc is None:
        return False
    p = libc.malloc(block)
    if not p:
        return False
    libc.free(p)
    return True


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
