"""Process set-up that must happen before numpy, torch or jax load: CPU pinning and the
choice of OpenBLAS's kernels.  Imports nothing numeric.

- ``pin_cpus(n)``: XLA's CPU client sizes its thread pool from the CPUs the process may
  run on and ignores ``--xla_cpu_multi_thread_eigen=false`` for its own pool (measured: a
  jitted 1000x300 by 300x750 product ran at 1.8-1.95 CPU-seconds per second "single
  threaded").  The only thread limit every library obeys is the affinity mask.
- ``choose_blas_core(option)``: numpy's OpenBLAS picks its kernels from the CPU's family,
  unless ``OPENBLAS_CORETYPE`` (read when OpenBLAS loads) names them.  This project's
  machines set it to Haswell (AVX2) on AVX-512 CPUs (AMD family 26): float32 products at
  the Tree-LSTM's shapes then run at about half the speed of the SkylakeX (AVX-512)
  kernels, which are level with XLA's own (``benchmarks/blas_threads.py``).
- ``blas_core()``: the kernels numpy's OpenBLAS is running, asked of the library itself.
"""
from __future__ import annotations

import ctypes
import os
import sys

_AVX512 = ("avx512f", "avx512bw", "avx512dq", "avx512vl")


def pin_cpus(n):
    """Restrict this process (and the threads it starts later) to ``n`` of its CPUs; returns
    the CPUs kept, or None where the platform has no affinity mask."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if n > len(allowed):
        print(f"WARNING: {n} threads asked for on {len(allowed)} CPUs: threads will share CPUs "
              f"(times measure oversubscription)", file=sys.stderr)
    keep = allowed[:max(1, n)]
    os.sched_setaffinity(0, keep)
    return keep


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_blas_core(option):
    """Apply ``--blas-core``: ``"auto"`` sets ``OPENBLAS_CORETYPE=SkylakeX`` on a CPU with
    AVX-512 (F, BW, DQ, VL) when the variable is unset; ``"default"`` leaves OpenBLAS's own
    choice; any other value is passed on as the core type.  Returns a note for the header."""
    if option == "default":
        if "OPENBLAS_CORETYPE" in os.environ:
            return f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} (from the environment)"
        return "OpenBLAS's own choice"
    if option != "auto":
        os.environ["OPENBLAS_CORETYPE"] = option
        return f"OPENBLAS_CORETYPE={option} (--blas-core)"
    if "OPENBLAS_CORETYPE" in os.environ:
        return f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} (from the environment)"
    if all(flag in _cpu_flags() for flag in _AVX512):
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
        return "OPENBLAS_CORETYPE=SkylakeX (--blas-core auto: this CPU has AVX-512)"
    return "OpenBLAS's own choice (no AVX-512 here)"


def blas_core():
    """The core type numpy's OpenBLAS runs (``"Haswell"``, ``"SkylakeX"``...), or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sym in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                    "openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return None
