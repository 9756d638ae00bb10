"""Probe: vmapper's compiled kernels (vmapper.kernels.codegen) on loop workloads.

Times, on Mandelbrot (512x512 grid, maxiter 256), Collatz (n = 1..200000), and the
Euler and Newton workloads of benchmarks/grad_loops.py (100000 lanes: the plain
function and its dual-number JVP, which value_and_grad runs):

* ``numba-prange``      ``@njit(parallel=True)`` with ``prange`` over samples calling
                        ``njit(per_sample_fn)`` (the same driver as benchmarks/loops.py;
                        Mandelbrot, Collatz and Euler);
* ``kernel-scalar``     ``compile_kernel(get_program(per_sample_fn).ir, ..., lockstep=False)``:
                        one numba kernel generated from vmapper's IR, each lane running
                        the CFG as a dispatch loop, called through its Python wrapper
                        (allocation, error scan included);
* ``kernel-lockstep``   the same with ``lockstep=True``: chunks of 64 lanes run the CFG
                        together, each block a vectorized loop over the chunk
                        (vmapper.kernels.codegen_lockstep); ``(auto)`` marks the variant
                        ``compile_kernel`` picks by itself;
* ``kernel-structured`` the scalar kernel with the per-lane function rewritten by hand as
                        structured ``while``/``if`` code (no dispatch variable), to measure
                        what the dispatch loop costs (Mandelbrot and Collatz);

and prints median times, ``numba/this`` (numba-prange time / this time) and
``scalar/this`` (kernel-scalar time / this time).  The two kernels are timed
interleaved (call after call), so that load on a shared machine hits both alike.
Compile times (this process, and loading from the disk cache in a new process) are
printed too.

``--polls`` times instead what Ctrl-C costs (vmapper.kernels.interrupt): each variant
against itself generated without the polls (``VMAPPER_INTERRUPTIBLE=0``), interleaved,
and prints ``with/without``, the time of the kernel with the polls over the time of
the one without (1.05 = 5% slower).

Usage::

    python benchmarks/kernel_loops_probe.py [--repeats 7] [--quick] [--only euler,collatz] [--polls]
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
from grad_loops import euler_sample, newton_sample  # noqa: E402

from numba import njit, prange  # noqa: E402

from vmapper.kernels import cache  # noqa: E402
from vmapper.kernels.codegen import compile_kernel  # noqa: E402
from vmapper.program import get_program  # noqa: E402


# ---- numba prange over the per-sample functions ------------------------------------------------

_mandel_nb = njit(mandelbrot_sample)
_collatz_nb = njit(collatz_sample)
_euler_nb = njit(euler_sample)


@njit(parallel=True)
def numba_mandelbrot(cr, ci, out):
    for i in prange(cr.shape[0]):
        out[i] = _mandel_nb(cr[i], ci[i])


@njit(parallel=True)
def numba_collatz(n, out):
    for i in prange(n.shape[0]):
        out[i] = _collatz_nb(n[i])


@njit(parallel=True)
def numba_euler(y0, T, theta, out):
    for i in prange(y0.shape[0]):
        out[i] = _euler_nb(y0[i], T[i], theta)


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
    """Seconds a new process needs to get the Mandelbrot and Collatz kernels, both variants
    (from the disk cache), and how many it had to compile."""
    code = ("import sys, time, numpy as np; sys.path[:0] = [%r, %r]\n"
            "from loops import collatz_sample, mandelbrot_sample\n"
            "from vmapper.program import get_program\n"
            "from vmapper.kernels.codegen import compile_kernel\n"
            "from vmapper.kernels import cache\n"
            "t = time.perf_counter()\n"
            "for ls in (False, True):\n"
            "    compile_kernel(get_program(mandelbrot_sample).ir, [('lanes', np.float64, False)] * 2,"
            " lockstep=ls)\n"
            "    compile_kernel(get_program(collatz_sample).ir, [('lanes', np.int64, False)], lockstep=ls)\n"
            "print(time.perf_counter() - t, cache.stats['compiled'])\n") % (HERE, REPO)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    secs, compiled = out.stdout.split()
    return float(secs), int(compiled)


def _paired(fa, fb, repeats):
    """Median seconds of ``fa`` and of ``fb``, called alternately (one warm-up call each)."""
    fa(), fb()
    ta, tb = [], []
    for _ in range(repeats):
        for f, t in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter()
            f()
            t.append(time.perf_counter() - t0)
    return float(np.median(ta)), float(np.median(tb))


def _same(a, b):
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b))
    return a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def _workloads(quick):
    """name -> (IR function, argument specs, kernel arguments, n, numba-prange call or None)."""
    from vmapper.autodiff.forward_mode import jvp_function
    side, N, M = (128, 20000, 20000) if quick else (512, 200000, 100000)
    xs = np.linspace(-2.0, 1.0, side)
    ys = np.linspace(-1.5, 1.5, side)
    CR, CI = np.meshgrid(xs, ys)
    cr, ci = CR.ravel().copy(), CI.ravel().copy()
    nn = np.arange(1, N + 1, dtype=np.int64)
    rng = np.random.default_rng(0)
    y0, T = rng.normal(size=M), rng.uniform(0.1, 2.0, M)
    b = rng.choice([-1.0, 1.0], M) * 10.0 ** rng.uniform(-2.0, 9.0, M)
    f64 = ("lanes", np.float64, False)
    om, oc, oe = np.empty(cr.size, np.int64), np.empty(nn.size, np.int64), np.empty(M)
    euler_ir, newton_ir = get_program(euler_sample).ir, get_program(newton_sample).ir
    return {
        "mandelbrot": (get_program(mandelbrot_sample).ir, [f64] * 2, [cr, ci], cr.size,
                       lambda: numba_mandelbrot(cr, ci, om)),
        "collatz": (get_program(collatz_sample).ir, [("lanes", np.int64, False)], [nn], nn.size,
                    lambda: numba_collatz(nn, oc)),
        "euler": (euler_ir, [f64, f64, ("uniform", 0.7)], [y0, T, 0.7], M,
                  lambda: numba_euler(y0, T, 0.7, oe)),
        "euler-jvp": (jvp_function(euler_ir, (0, 2)), [f64, f64, ("uniform", 0.7)], [y0, T, 0.7], M, None),
        "newton-jvp": (jvp_function(newton_ir, (0, 1)), [f64, ("uniform", 0.5)], [b, 0.5], M, None),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="128x128 grid, N = 20000 lanes")
    ap.add_argument("--only", default="", help="comma-separated workloads")
    ap.add_argument("--polls", action="store_true", help="what the Ctrl-C polls cost (see the docstring)")
    args = ap.parse_args(argv)
    if args.polls:
        return _polls_cost(_workloads(args.quick), args)
    from vmapper.kernels.codegen_lockstep_policy import lockstep_width

    work = _workloads(args.quick)
    names = args.only.split(",") if args.only else list(work)
    kernels = {}
    for name in names:
        ir, spec = work[name][:2]
        t0 = time.perf_counter()
        ks = compile_kernel(ir, spec, lockstep=False)
        t1 = time.perf_counter()
        kl = compile_kernel(ir, spec, lockstep=True)
        t2 = time.perf_counter()
        assert kl.variant == "lockstep"
        kernels[name] = (ks, kl, lockstep_width(ir, spec, False) is not None)
        print(f"compile {name}: scalar {t1 - t0:.2f} s, lockstep {t2 - t1:.2f} s")
    print(f"cache stats {cache.stats}")
    if not args.only:
        secs, compiled = _cold_load_seconds()
        print(f"new process, Mandelbrot and Collatz, both variants: {secs:.2f} s, compiled={compiled}")

    rows = []
    for name in names:
        _, _, kargs, n, peer = work[name]
        ks, kl, auto = kernels[name]
        rs, rl = ks(kargs, n), kl(kargs, n)
        assert rs[1] == rl[1] == -1 and _same(rs[0], rl[0]), f"{name}: lockstep result differs"
        t_s, t_l = _paired(lambda: ks(kargs, n), lambda: kl(kargs, n), args.repeats)
        t_peer = median_time(peer, args.repeats) if peer is not None else None

        def row(method, t):
            return {"workload": name, "method": method, "median ms": f"{t * 1e3:.2f}",
                    "numba/this": f"{t_peer / t:.2f}" if t_peer else "-", "scalar/this": f"{t_s / t:.2f}"}
        if t_peer:
            rows.append(row("numba-prange", t_peer))
        rows.append(row("kernel-scalar" + ("" if auto else " (auto)"), t_s))
        rows.append(row("kernel-lockstep" + (" (auto)" if auto else ""), t_l))
        if name in ("mandelbrot", "collatz"):
            cr, ci = (kargs[0], kargs[1]) if name == "mandelbrot" else (None, None)
            out, codes = np.empty(n, np.int64), np.zeros(n, np.int32)
            struct = (lambda: structured_mandelbrot(n, cr, ci, out, codes)) if name == "mandelbrot" else \
                (lambda: structured_collatz(n, kargs[0], out, codes))
            struct()
            assert np.array_equal(out, rs[0])
            rows.append(row("kernel-structured (by hand)", median_time(struct, args.repeats)))
    print_table(rows)
    return 0


def _polls_cost(work, args):
    """Each workload's scalar and lockstep kernels with the Ctrl-C polls against the same
    kernels generated without them, timed interleaved."""
    names = args.only.split(",") if args.only else list(work)
    rows = []
    for name in names:
        ir, spec, kargs, n, _ = work[name]
        for lockstep in (False, True):
            polled = compile_kernel(ir, spec, lockstep=lockstep)
            os.environ["VMAPPER_INTERRUPTIBLE"] = "0"
            try:
                plain = compile_kernel(ir, spec, lockstep=lockstep)
            finally:
                del os.environ["VMAPPER_INTERRUPTIBLE"]
            assert polled.polls and not plain.polls and polled.variant == plain.variant
            assert _same(polled(kargs, n)[0], plain(kargs, n)[0]), f"{name}: the polls changed a result"
            t_with, t_without = _paired(lambda: polled(kargs, n), lambda: plain(kargs, n), args.repeats)
            rows.append({"workload": name, "variant": polled.variant, "with polls ms": f"{t_with * 1e3:.2f}",
                         "without ms": f"{t_without * 1e3:.2f}", "with/without": f"{t_with / t_without:.3f}"})
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
