"""Probe: vmapper's compiled kernels (vmapper.kernels.codegen) on the loop benchmarks.

Times, on Mandelbrot (512x512 grid, maxiter 256) and Collatz (n = 1..200000):

* ``numba-prange``      ``@njit(parallel=True)`` with ``prange`` over samples calling
                        ``njit(per_sample_fn)`` (the same driver as benchmarks/loops.py);
* ``kernel``            ``compile_kernel(get_program(per_sample_fn).ir, ...)``: one numba
                        kernel generated from vmapper's IR (dispatch loop over the CFG),
                        called through its Python wrapper (allocation, error scan included);
* ``kernel-structured`` the same kernel with the per-lane function rewritten by hand as
                        structured ``while``/``if`` code (no dispatch variable), to measure
                        what the dispatch loop costs;

and prints median times and the ratio ``numba-prange time / kernel time`` (>= 1: the
kernel is at least as fast).  Compile times (first call, and a load from the disk
cache in a new process) are printed too.

Usage::

    python benchmarks/kernel_loops_probe.py [--repeats 7] [--quick]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for p in (HERE, REPO):
    if p not in sys.path:
        sys.path.insert(0, p)

from _harness import median_time, print_table  # noqa: E402
from loops import collatz_sample, mandelbrot_sample  # noqa: E402

from numba import njit, prange  # noqa: E402

from vmapper.kernels import cache  # noqa: E402
from vmapper.kernels.codegen import compile_kernel  # noqa: E402
from vmapper.program import get_program  # noqa: E402


# ---- numba prange over the per-sample functions ------------------------------------------------

_mandel_nb = njit(mandelbrot_sample)
_collatz_nb = njit(collatz_sample)


@njit(parallel=True)
def numba_mandelbrot(cr, ci, out):
    for i in prange(cr.shape[0]):
        out[i] = _mandel_nb(cr[i], ci[i])


@njit(parallel=True)
def numba_collatz(n, out):
    for i in prange(n.shape[0]):
        out[i] = _collatz_nb(n[i])


# ---- the generated kernels' lane functions, written structured by hand ---------------------------
# Same operations, same order, same error protocol (a (code, result) tuple) as the generated
# dispatch-loop code, only the control flow is spelled as while/if.

@njit(error_model="numpy")
def _mandel_lane_structured(cr, ci):
    zr = 0.0
    zi = 0.0
    n = np.int64(0)
    while True:
        c = (zr * zr + zi * zi) <= 4.0
        c = (n < 256) if c else c
        if not c:
            break
        t = (zr * zr - zi * zi) + cr
        zi = (2.0 * zr) * zi + ci
        zr = t
        n = n + 1
    return 0, n


@njit(error_model="numpy")
def _collatz_lane_structured(n):
    steps = np.int64(0)
    while n != 1:
        even = (n & 1) == 0
        n = (n >> 1) if even else 3 * n + 1
        steps = steps + 1
    return 0, steps


@njit(parallel=True, error_model="numpy")
def structured_mandelbrot(n, cr, ci, out, codes):
    for i in prange(n):
        r = _mandel_lane_structured(cr[i], ci[i])
        if r[0] != 0:
            codes[i] = r[0]
        else:
            out[i] = r[1]


@njit(parallel=True, error_model="numpy")
def structured_collatz(n, x, out, codes):
    for i in prange(n):
        r = _collatz_lane_structured(x[i])
        if r[0] != 0:
            codes[i] = r[0]
        else:
            out[i] = r[1]


def _cold_load_seconds():
    """Seconds a new process needs to get both kernels (from the disk cache)."""
    code = ("import sys, time, numpy as np; sys.path[:0] = [%r, %r]\n"
            "from loops import collatz_sample, mandelbrot_sample\n"
            "from vmapper.program import get_program\n"
            "from vmapper.kernels.codegen import compile_kernel\n"
            "from vmapper.kernels import cache\n"
            "t = time.perf_counter()\n"
            "compile_kernel(get_program(mandelbrot_sample).ir, [('lanes', np.float64, False)] * 2)\n"
            "compile_kernel(get_program(collatz_sample).ir, [('lanes', np.int64, False)])\n"
            "print(time.perf_counter() - t, cache.stats['compiled'])\n") % (HERE, REPO)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    secs, compiled = out.stdout.split()
    return float(secs), int(compiled)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="128x128 grid, N = 20000")
    args = ap.parse_args(argv)
    side, N = (128, 20000) if args.quick else (512, 200000)

    xs = np.linspace(-2.0, 1.0, side)
    ys = np.linspace(-1.5, 1.5, side)
    CR, CI = np.meshgrid(xs, ys)
    cr, ci = CR.ravel().copy(), CI.ravel().copy()
    nn = np.arange(1, N + 1, dtype=np.int64)

    t0 = time.perf_counter()
    km = compile_kernel(get_program(mandelbrot_sample).ir, [("lanes", np.float64, False)] * 2)
    t1 = time.perf_counter()
    kc = compile_kernel(get_program(collatz_sample).ir, [("lanes", np.int64, False)])
    t2 = time.perf_counter()
    print(f"kernel compile (this process): mandelbrot {t1 - t0:.2f} s, collatz {t2 - t1:.2f} s; "
          f"cache stats {cache.stats}")
    secs, compiled = _cold_load_seconds()
    print(f"new process, both kernels: {secs:.2f} s, compiled={compiled} (loaded from the disk cache)")

    rows = []
    om = np.empty(cr.size, np.int64)
    oc = np.empty(nn.size, np.int64)
    codes_m = np.zeros(cr.size, np.int32)
    codes_c = np.zeros(nn.size, np.int32)

    ref_m = (numba_mandelbrot(cr, ci, om), om.copy())[1]
    ref_c = (numba_collatz(nn, oc), oc.copy())[1]
    got_m, lane_m, _ = km([cr, ci], cr.size)
    got_c, lane_c, _ = kc([nn], nn.size)
    assert lane_m == -1 and lane_c == -1
    assert np.array_equal(got_m, ref_m) and np.array_equal(got_c, ref_c)
    structured_mandelbrot(cr.size, cr, ci, om, codes_m)
    structured_collatz(nn.size, nn, oc, codes_c)
    assert np.array_equal(om, ref_m) and np.array_equal(oc, ref_c)

    for name, peer, kern, struct in (
            ("mandelbrot", lambda: numba_mandelbrot(cr, ci, om), lambda: km([cr, ci], cr.size),
             lambda: structured_mandelbrot(cr.size, cr, ci, om, codes_m)),
            ("collatz", lambda: numba_collatz(nn, oc), lambda: kc([nn], nn.size),
             lambda: structured_collatz(nn.size, nn, oc, codes_c))):
        t_peer = median_time(peer, args.repeats)
        t_kern = median_time(kern, args.repeats)
        t_struct = median_time(struct, args.repeats)
        rows.append({"workload": name, "method": "numba-prange", "median ms": f"{t_peer * 1e3:.2f}",
                     "numba/this": "1.00"})
        rows.append({"workload": name, "method": "kernel (dispatch loop)", "median ms": f"{t_kern * 1e3:.2f}",
                     "numba/this": f"{t_peer / t_kern:.2f}"})
        rows.append({"workload": name, "method": "kernel-structured (by hand)",
                     "median ms": f"{t_struct * 1e3:.2f}", "numba/this": f"{t_peer / t_struct:.2f}"})
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
