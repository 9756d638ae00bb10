"""The CuPy backend's generated CUDA kernels vs hand-written CuPy RawKernels.

Two loop workloads whose per-sample code is a value-dependent ``while`` loop
(the functions of ``benchmarks/loops.py``):

* **mandelbrot** -- escape counts on a 512x512 grid over [-2, 1] x [-1.5, 1.5],
  at most 256 iterations per point;
* **collatz** -- Collatz step counts for n = 1 .. 200000.

Each runs as ``vmapper.batched(f, backend="cupy")`` on CuPy arrays (one
generated CUDA kernel per call, plus vmapper's per-call Python work) and as a
hand-written ``cupy.RawKernel`` of the same loop (compiled with the same
``--fmad=false``) and, where JAX sees the GPU, as ``jax.jit(jax.vmap(f))`` of
``benchmarks/loops.py``'s ``lax.while_loop`` port, timed to completion
(device synchronised).  All are warmed up first (compiles); the median of
``--repeats`` calls is printed with the ratios vmapper / hand-written and
JAX / vmapper, and the results must agree.

Usage::

    python benchmarks/gpu_kernels.py                # needs CuPy and a CUDA GPU
    python benchmarks/gpu_kernels.py --repeats 10

Without CuPy or a GPU the script says so and exits with status 0; it exits
with status 1 if the two results of a workload differ.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)
for _p in (_REPO_ROOT, _HERE):  # benchmark the vmapper of this checkout
    if _p not in sys.path:
        sys.path.insert(0, _p)

# JAX would otherwise take 75% of the device for itself at import
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import vmapper  # noqa: E402
from vmapper.kernels.cuda_codegen import NVRTC_OPTIONS  # noqa: E402
from _harness import cupy_with_gpu  # noqa: E402
from loops import _jax_collatz, _jax_mandelbrot, collatz_sample, mandelbrot_sample  # noqa: E402

HAND_MANDELBROT = r"""
extern "C" __global__ void mandelbrot(long long n, const double* cr, const double* ci, long long* out) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        double zr = 0.0, zi = 0.0, r = cr[i], c = ci[i];
        long long k = 0;
        while (zr * zr + zi * zi <= 4.0 && k < 256) {
            double t = zr * zr - zi * zi + r;
            zi = 2.0 * zr * zi + c;
            zr = t;
            k += 1;
        }
        out[i] = k;
    }
}
"""

HAND_COLLATZ = r"""
extern "C" __global__ void collatz(long long n, const long long* x, long long* out) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long v = x[i], steps = 0;
        while (v != 1) {
            v = (v % 2 == 0) ? v / 2 : 3 * v + 1;
            steps += 1;
        }
        out[i] = steps;
    }
}
"""


def _median_seconds(cp, fn, repeats):
    fn()  # warm-up: NVRTC compile, vmapper's first call
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        cp.cuda.Device().synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _hand(cp, source, name, out_dtype, *arrays):
    kern = cp.RawKernel(source, name, options=NVRTC_OPTIONS)
    n = arrays[0].size
    block = 256
    grid = min((n + block - 1) // block, 65535)

    def run():
        out = cp.empty(n, out_dtype)
        kern((grid,), (block,), (np.int64(n), *arrays, out))
        return out
    return run


def _jax_gpu_or_none():
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        if jax.devices()[0].platform != "gpu":
            return None, f"JAX runs on {jax.devices()[0].platform}"
        return jax, ""
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _jax_peer(jax, make, *host_arrays):
    if jax is None:
        return None
    fn = make(jax)
    args = [jax.device_put(a) for a in host_arrays]
    return lambda: fn(*args).block_until_ready()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per method (median)")
    opts = ap.parse_args(argv)
    cp, why = cupy_with_gpu()
    if cp is None:
        print(f"gpu_kernels: skipped, CuPy with a CUDA GPU is needed ({why})")
        return 0
    ys, xs = np.mgrid[-1.5:1.5:512j, -2.0:1.0:512j]
    cr, ci = cp.asarray(xs.ravel()), cp.asarray(ys.ravel())
    ns = cp.arange(1, 200_001, dtype=cp.int64)
    jax, why_not_jax = _jax_gpu_or_none()
    work = {
        "mandelbrot 512x512/256": (vmapper.batched(mandelbrot_sample, backend="cupy"), (cr, ci),
                                   _hand(cp, HAND_MANDELBROT, "mandelbrot", np.int64, cr, ci),
                                   _jax_peer(jax, _jax_mandelbrot, xs.ravel(), ys.ravel())),
        "collatz 1..200000": (vmapper.batched(collatz_sample, backend="cupy"), (ns,),
                              _hand(cp, HAND_COLLATZ, "collatz", np.int64, ns),
                              _jax_peer(jax, _jax_collatz, np.arange(1, 200_001, dtype=np.int64))),
    }
    print(f"device: {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}, "
          f"median of {opts.repeats}" + ("" if jax else f"; no JAX peer ({why_not_jax})"))
    print(f"{'workload':<24} {'vmapper[cupy]':>14} {'hand RawKernel':>15} {'vm/hand':>8} "
          f"{'jax.jit(vmap)':>14} {'jax/vm':>7}")
    status = 0
    for name, (f, args, hand, jax_run) in work.items():
        if not bool(cp.all(f(*args) == hand())):
            print(f"{name}: vmapper and the hand-written kernel DISAGREE")
            status = 1
        tv = _median_seconds(cp, lambda: f(*args), opts.repeats)
        th = _median_seconds(cp, hand, opts.repeats)
        line = f"{name:<24} {tv * 1e3:>11.3f} ms {th * 1e3:>12.3f} ms {tv / th:>7.2f}x"
        if jax_run is not None:
            if not np.array_equal(np.asarray(jax_run()), cp.asnumpy(hand())):
                print(f"{name}: JAX and the hand-written kernel DISAGREE")
            tj = _median_seconds(cp, jax_run, opts.repeats)
            line += f" {tj * 1e3:>11.3f} ms {tj / tv:>6.2f}x"
        print(line)
    return status


if __name__ == "__main__":
    sys.exit(main())
