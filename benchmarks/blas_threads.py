"""Matrix products and numba's threads: the two machine settings behind the Tree-LSTM step.

1. GEMM throughput, one thread on one CPU: numpy's matmul (OpenBLAS, with the kernels of
   the core type it runs, printed) against ``jax.jit(jnp.matmul)`` (XLA's own kernels),
   float32, the Tree-LSTM's shapes.  ``--blas-core SkylakeX`` (or ``Haswell``...) sets
   ``OPENBLAS_CORETYPE`` before numpy loads; the default keeps OpenBLAS's choice.
2. A GELU of n elements (``vmapper.kernels.activations.gelu``) on numba's threads (its
   parallel driver forced) and on the calling thread: alone, back to back, and alternated
   with a float32 product (475x300 by 300x450), twice a round, OpenBLAS on ``--threads``
   threads.  After a parallel kernel GNU OpenMP's workers spin (``GOMP_SPINCOUNT``) and take
   the cores OpenBLAS's threads need: the rounds show what that costs, and so why the
   activation kernels run on the calling thread below ``activations._SERIAL_BELOW``
   elements.  Try ``OMP_WAIT_POLICY=passive python benchmarks/blas_threads.py``.

Usage::

    python benchmarks/blas_threads.py                 # 2 threads for part 2
    python benchmarks/blas_threads.py --blas-core SkylakeX
    python benchmarks/blas_threads.py --skip-jax

Prints medians and ratios (machines are noisy: compare ratios, not times).
"""
from __future__ import annotations

import argparse
import os
import sys

try:
    from . import _machine
    from ._harness import median_time, print_table
except ImportError:
    import _machine
    from _harness import median_time, print_table


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="OpenBLAS and numba threads in part 2")
    p.add_argument("--blas-core", default="default",
                   help="OpenBLAS core type (OPENBLAS_CORETYPE), 'auto', or 'default' (keep)")
    p.add_argument("--repeats", type=int, default=200, help="timed rounds per row")
    p.add_argument("--skip-jax", action="store_true", help="no JAX row in part 1")
    p.add_argument("--part", choices=["both", "gemm", "alternation"], default="both",
                   help="part 1 runs in a child process of its own, on one CPU")
    return p.parse_args(argv)


ARGS = _args(sys.argv[1:]) if __name__ == "__main__" else None
BLAS_NOTE = ""
if ARGS is not None:
    threads = 1 if ARGS.part == "gemm" else ARGS.threads
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)
    if ARGS.part == "gemm":
        _machine.pin_cpus(1)  # XLA sizes its pool from the CPUs it may use
    BLAS_NOTE = _machine.choose_blas_core(ARGS.blas_core)

import numpy as np  # noqa: E402

SHAPES = [(475, 300, 450), (1000, 300, 750), (40, 300, 750)]
GELU_SIZES = [1 << 15, 1 << 16, 1 << 18, 1 << 19, 1 << 20]


def _median_us(fn, repeats):
    return 1e6 * median_time(fn, repeats=repeats)


def gemm_rows(repeats, skip_jax):
    rows = []
    jit = None
    if not skip_jax:
        try:
            import jax
            import jax.numpy as jnp
            jit = jax.jit(jnp.matmul)
        except ImportError:
            print("[skip] jax not installed")
    for m, k, n in SHAPES:
        rng = np.random.default_rng(0)
        a = rng.random((m, k), dtype=np.float32)
        b = rng.random((k, n), dtype=np.float32)
        gflop = 2 * m * k * n / 1e3
        t_np = _median_us(lambda: np.matmul(a, b), repeats)
        row = {"shape": f"{m}x{k} @ {k}x{n}", "numpy GFLOP/s": round(gflop / t_np)}
        if jit is not None:
            ja, jb = jax.device_put(a), jax.device_put(b)
            t_jx = _median_us(lambda: jit(ja, jb).block_until_ready(), repeats)
            row.update({"jax.jit GFLOP/s": round(gflop / t_jx), "jax time / numpy time": t_jx / t_np})
        rows.append(row)
    return rows


def alternation_rows(repeats):
    from vmapper.kernels import activations as A
    rng = np.random.default_rng(1)
    a = rng.random((475, 300), dtype=np.float32)
    b = rng.random((300, 450), dtype=np.float32)
    rows = []
    serial_below = A._SERIAL_BELOW
    for n in GELU_SIZES:
        x = rng.random(n, dtype=np.float32)

        def round_():
            a @ b
            A.gelu(x)
            a @ b
            A.gelu(x)
        times = {}
        try:
            for where, threshold in (("parallel", 0), ("calling thread", 1 << 62)):
                A._SERIAL_BELOW = threshold
                times[where] = (_median_us(lambda: A.gelu(x), repeats), _median_us(round_, repeats))
        finally:
            A._SERIAL_BELOW = serial_below
        (alone_par, round_par), (alone_ser, round_ser) = times["parallel"], times["calling thread"]
        rows.append({"gelu n": n, "alone: parallel us": alone_par, "alone: calling thread us": alone_ser,
                     "round: parallel us": round_par, "round: calling thread us": round_ser,
                     "round ratio": round_par / round_ser})
    return rows, _median_us(lambda: (a @ b, a @ b), repeats)


def main():
    args = ARGS or _args([])
    if args.part == "gemm":
        print_table(gemm_rows(args.repeats, args.skip_jax))
        return 0
    import numba
    print(f"numpy {np.__version__}, numba {numba.__version__}, {os.cpu_count()} CPUs; "
          f"OpenBLAS core: {_machine.blas_core() or 'unknown'} ({BLAS_NOTE}); "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    if args.part == "both":
        print(f"\n1. float32 GEMM, one thread on one CPU, GFLOP/s (median of {args.repeats} calls)")
        sys.stdout.flush()
        child = [sys.executable, os.path.abspath(__file__), "--part", "gemm",
                 "--blas-core", args.blas_core, "--repeats", str(args.repeats)]
        if args.skip_jax:
            child.append("--skip-jax")
        import subprocess
        subprocess.run(child, check=True)
    from vmapper.kernels import activations as A
    print(f"\n2. a GELU of n elements on {args.threads} threads (its parallel driver forced) and on "
          "the calling thread: alone, and in rounds of a product and a GELU, twice (median us);\n"
          f"   round ratio = parallel / calling thread.  The activation kernels use their threads "
          f"from {A._SERIAL_BELOW} elements.")
    rows, t_mm = alternation_rows(args.repeats)
    print_table(rows)
    print(f"   the two products alone: {t_mm:.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
