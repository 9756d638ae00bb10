"""Opt-in tuning of glibc's ``malloc`` for training loops of batched steps.

numpy allocates every array it makes, through ``malloc``.  A batched training step
makes and frees megabytes of temporaries (products over a height's lanes, gradient
buffers, memo tables), and by default glibc hands the freed top of its heap back to
the system as soon as 128 KiB-2 MiB of it is free (``M_TRIM_THRESHOLD``) and maps
each array above a similar size afresh (``M_MMAP_THRESHOLD``): the next step then
takes a page fault for every page it touches again.  Keeping a few megabytes
(:func:`tune_allocator`) made the Tree-LSTM's training step ~13% faster on the
development machine (``benchmarks/trees.py --malloc``).

The setting is process-wide, so vmapper never applies it by itself: an application
(the example trainer, the benchmarks) calls it once at start.
"""
from __future__ import annotations

import ctypes
import sys

# mallopt(3) parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def tune_allocator(mmap_threshold: int = 4 << 20, trim_threshold: int = 32 << 20, top_pad: int = 4 << 20) -> bool:
    """Set glibc's ``malloc`` to keep freed memory for reuse (process-wide; see the module
    docstring): arrays below ``mmap_threshold`` bytes come from the heap, the heap is given
    back to the system only when ``trim_threshold`` bytes at its top are free, and it grows
    by ``top_pad`` extra bytes at a time.  Memory the process freed stays mapped, up to about
    ``trim_threshold``.

    Returns True when applied, False where the C library has no ``mallopt`` (not glibc:
    macOS, Windows, musl), where it changes nothing.
    """
    for name, v in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold), ("top_pad", top_pad)):
        if type(v) is not int or not 0 <= v < 2**31:
            raise ValueError(f"tune_allocator: {name} must be an int in [0, 2**31) (bytes), not {v!r}")
    if mmap_threshold > 32 << 20:  # glibc refuses more (HEAP_MAX_SIZE / 2 on 64-bit)
        raise ValueError(f"tune_allocator: mmap_threshold {mmap_threshold} is above glibc's limit of 32 MiB")
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return all(mallopt(p, v) == 1 for p, v in ((_M_MMAP_THRESHOLD, mmap_threshold),
                                              (_M_TRIM_THRESHOLD, trim_threshold), (_M_TOP_PAD, top_pad)))


def _mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return fn
