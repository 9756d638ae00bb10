"""Loop-heavy benchmarks: vmapper against hand-written and compiled peers.

Two workloads whose per-sample code is a value-dependent ``while`` loop, so
lanes finish after very different numbers of trips:

* **mandelbrot** -- escape counts on a 512x512 grid over [-2, 1] x [-1.5, 1.5],
  at most 256 iterations per point.
* **collatz** -- number of Collatz steps to reach 1, for n = 1 .. 200000.

Each workload is written *once per sample* as plain Python
(:func:`mandelbrot_sample`, and :func:`collatz_sample`, which is
``vmapper.testing.programs.collatz_steps``); that same function is what the
per-sample Python loop, numba and vmapper run.  The peers are:

1. ``python``          the per-sample function called in a Python loop.  Far too
                       slow at full size, so it is timed on a seeded random
                       subset of lanes and extrapolated linearly (marked ``*``).
2. ``numpy-masked``    hand-vectorised numpy: every iteration updates all lanes
                       with ``np.where`` under an "still active" mask.
3. ``numpy-compact``   hand-vectorised numpy that drops finished lanes each
                       iteration, so work shrinks with the active set (the best
                       numpy we know how to write by hand).
4. ``numba-prange``    ``@njit(parallel=True)`` driver with ``prange`` over
                       samples calling ``njit(per_sample_fn)``.
5. ``jax``             ``jax.jit(jax.vmap(f))`` of a ``lax.while_loop`` port.
6. ``vmapper[...]``    ``vmapper.batched(per_sample_fn, backend=...)``.

Compiled peers are warmed up before timing; their compile cost is reported
separately as ``first call - median``.  Every full-size result is checked
against the first one (numpy-masked); the Python subset is checked against the
matching lanes.

Usage::

    python benchmarks/loops.py                 # full size, both workloads
    python benchmarks/loops.py --quick         # 128x128 grid, N = 20000
    python benchmarks/loops.py --only collatz --repeats 3

The process exits with status 1 if any method's result disagrees with the
reference, or if a vmapper variant that could be built raises.  vmapper rows
are merely skipped (status 0) while ``vmapper.batched`` does not exist yet or
a backend option is not supported.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

try:  # run as ``python -m benchmarks.loops``
    from ._harness import Result, median_time, print_table
except ImportError:  # run as ``python benchmarks/loops.py``
    from _harness import Result, median_time, print_table

# Benchmark the vmapper of this checkout, not some other installed copy.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(1, _REPO_ROOT)

from vmapper.testing.programs import collatz_steps  # noqa: E402

try:
    import numba
except ImportError:  # numba is a dependency of vmapper, but keep the peers independent
    numba = None

MAXITER = 256  # Mandelbrot iteration cap; mandelbrot_sample spells it as a literal


# ---------------------------------------------------------------------------
# Per-sample functions: the single source of truth for each workload.
# Kept to the plainest syntax (no tuple assignment, no globals, no default
# arguments) so that any batching front end can take them as they are.
# ---------------------------------------------------------------------------

def mandelbrot_sample(cr, ci):
    """Escape count of c = cr + i*ci: iterations of z <- z*z + c (from z = 0)
    while |z|^2 <= 4, capped at 256 (== MAXITER; a literal, not the global,
    so the function depends on nothing but its arguments)."""
    zr = 0.0
    zi = 0.0
    n = 0
    while zr * zr + zi * zi <= 4.0 and n < 256:
        t = zr * zr - zi * zi + cr
        zi = 2.0 * zr * zi + ci
        zr = t
        n += 1
    return n


# Number of Collatz steps from n (>= 1) down to 1: the program the tests use too.
collatz_sample = collatz_steps


# ---------------------------------------------------------------------------
# Hand-vectorised numpy peers.
# ---------------------------------------------------------------------------

def mandelbrot_numpy_masked(cr, ci):
    """Full-width iteration under an active mask: the straightforward way to
    vectorise a while loop.  Escaped lanes are frozen by ``np.where`` (which
    also keeps them from overflowing); every op still touches every lane."""
    zr = np.zeros_like(cr)
    zi = np.zeros_like(ci)
    counts = np.zeros(cr.shape, dtype=np.int64)
    for _ in range(MAXITER):
        active = zr * zr + zi * zi <= 4.0
        if not active.any():
            break
        new_zr = np.where(active, zr * zr - zi * zi + cr, zr)
        zi = np.where(active, 2.0 * zr * zi + ci, zi)
        zr = new_zr
        counts += active
    return counts


def mandelbrot_numpy_compact(cr, ci):
    """Iterate only the lanes still running.  Instead of incrementing a
    per-lane counter (a scatter every iteration) a lane's count is written
    once, when it escapes: a lane that fails the test before update ``it``
    has done exactly ``it`` updates.  In-place ufuncs avoid temporaries;
    ``zi *= zr; zi *= 2`` equals ``2*zr*zi`` bit for bit (scaling by 2 is
    exact), so the results match the per-sample code exactly."""
    counts = np.full(cr.shape, MAXITER, dtype=np.int64)
    idx = np.arange(cr.size)
    cr_a, ci_a = cr, ci
    zr = np.zeros_like(cr)
    zi = np.zeros_like(ci)
    zr2 = np.empty_like(zr)
    zi2 = np.empty_like(zi)
    for it in range(MAXITER):
        np.multiply(zr, zr, out=zr2)
        np.multiply(zi, zi, out=zi2)
        escaped = zr2 + zi2 > 4.0
        if escaped.any():
            counts[idx[escaped]] = it
            keep = ~escaped
            if not keep.any():
                return counts
            idx, cr_a, ci_a = idx[keep], cr_a[keep], ci_a[keep]
            zr, zi, zr2, zi2 = zr[keep], zi[keep], zr2[keep], zi2[keep]
        zi *= zr  # zi <- 2*zr*zi + ci (uses the old zr, so before zr changes)
        zi *= 2.0
        zi += ci_a
        np.subtract(zr2, zi2, out=zr)  # zr <- zr^2 - zi^2 + cr
        zr += cr_a
    return counts


def collatz_numpy_masked(n0):
    """Full-width Collatz under an active mask (lanes at 1 stay at 1)."""
    n = n0.copy()
    steps = np.zeros(n.shape, dtype=np.int64)
    while True:
        active = n != 1
        if not active.any():
            return steps
        n = np.where(active, np.where(n % 2 == 0, n // 2, 3 * n + 1), n)
        steps += active


def collatz_numpy_compact(n0):
    """Collatz on the still-running lanes only; a lane's step count is
    written once, when it reaches 1.  Uses ``& 1`` / ``>> 1`` instead of
    ``% 2`` / ``// 2`` (same values for n >= 1, much cheaper in numpy):
    this peer is meant to be the best numpy a careful person would write."""
    steps = np.zeros(n0.shape, dtype=np.int64)
    idx = np.arange(n0.size)
    n = n0.copy()
    it = 0
    while True:
        done = n == 1
        if done.any():
            steps[idx[done]] = it
            keep = ~done
            if not keep.any():
                return steps
            idx, n = idx[keep], n[keep]
        n = np.where(n & 1, 3 * n + 1, n >> 1)
        it += 1


# ---------------------------------------------------------------------------
# numba peers: njit of the *same* per-sample function, prange over samples.
# Built lazily so that importing this module never triggers a compile.
# ---------------------------------------------------------------------------

def _numba_mandelbrot():
    sample = numba.njit(mandelbrot_sample)

    @numba.njit(parallel=True)
    def driver(cr, ci):
        out = np.empty(cr.shape[0], dtype=np.int64)
        for i in numba.prange(cr.shape[0]):
            out[i] = sample(cr[i], ci[i])
        return out

    return driver


def _numba_collatz():
    sample = numba.njit(collatz_sample)

    @numba.njit(parallel=True)
    def driver(n):
        out = np.empty(n.shape[0], dtype=np.int64)
        for i in numba.prange(n.shape[0]):
            out[i] = sample(n[i])
        return out

    return driver


# ---------------------------------------------------------------------------
# JAX peers: per-sample ports to lax.while_loop, batched with jax.vmap.
# ---------------------------------------------------------------------------

def _jax_mandelbrot(jax):
    import jax.numpy as jnp
    from jax import lax

    def sample(cr, ci):
        def cond(s):
            zr, zi, n = s
            return (zr * zr + zi * zi <= 4.0) & (n < MAXITER)

        def body(s):
            zr, zi, n = s
            return zr * zr - zi * zi + cr, 2.0 * zr * zi + ci, n + 1

        zero = jnp.zeros_like(cr)
        return lax.while_loop(cond, body, (zero, zero, jnp.int64(0)))[2]

    return jax.jit(jax.vmap(sample))


def _jax_collatz(jax):
    import jax.numpy as jnp
    from jax import lax

    def sample(n):
        def body(s):
            n, steps = s
            # Under vmap a lax.cond with a batched predicate becomes a select
            # that evaluates both branches -- the same thing the masked numpy
            # peer does.  Written as cond to mirror the per-sample ``if``.
            n = lax.cond(n % 2 == 0, lambda m: m // 2, lambda m: 3 * m + 1, n)
            return n, steps + 1

        return lax.while_loop(lambda s: s[0] != 1, body, (n, jnp.int64(0)))[1]

    return jax.jit(jax.vmap(sample))


# ---------------------------------------------------------------------------
# Workload definitions.
# ---------------------------------------------------------------------------

@dataclass
class Workload:
    name: str
    description: str
    per_sample: Callable[..., Any]
    inputs: tuple  # 1-D arrays, one per argument of per_sample
    numpy_masked: Callable[..., np.ndarray]
    numpy_compact: Callable[..., np.ndarray]
    numba_driver: Callable[[], Callable[..., np.ndarray]]
    jax_batched: Callable[[Any], Callable[..., Any]]


def make_mandelbrot(quick: bool) -> Workload:
    side = 128 if quick else 512
    x = np.linspace(-2.0, 1.0, side)
    y = np.linspace(-1.5, 1.5, side)
    cr, ci = np.meshgrid(x, y)
    # Flatten: one lane per grid point, batched along axis 0.
    return Workload(
        name="mandelbrot",
        description=f"{side}x{side} grid over [-2,1]x[-1.5,1.5], maxiter {MAXITER}"
                    f" ({side * side} lanes)",
        per_sample=mandelbrot_sample,
        inputs=(cr.ravel().copy(), ci.ravel().copy()),
        numpy_masked=mandelbrot_numpy_masked,
        numpy_compact=mandelbrot_numpy_compact,
        numba_driver=_numba_mandelbrot,
        jax_batched=_jax_mandelbrot,
    )


def make_collatz(quick: bool) -> Workload:
    n_max = 20_000 if quick else 200_000
    return Workload(
        name="collatz",
        description=f"step counts for n = 1..{n_max} (int64: trajectories exceed 2**31)",
        per_sample=collatz_sample,
        inputs=(np.arange(1, n_max + 1, dtype=np.int64),),
        numpy_masked=collatz_numpy_masked,
        numpy_compact=collatz_numpy_compact,
        numba_driver=_numba_collatz,
        jax_batched=_jax_collatz,
    )


WORKLOADS = {"mandelbrot": make_mandelbrot, "collatz": make_collatz}


# ---------------------------------------------------------------------------
# Runner.
# ---------------------------------------------------------------------------

class Skip(Exception):
    """A peer cannot run in this environment; the message says why."""


class Failed(Exception):
    """A peer that should run here raised; counts as a benchmark failure."""


def _timed_first_call(call):
    t0 = time.perf_counter()
    out = call()
    return time.perf_counter() - t0, out


def _measure(call, repeats: int, compiled: bool):
    """Run ``call`` once (that first call doubles as the warm-up and supplies
    the result to check), then take the median of ``repeats`` more calls.
    For compiled peers, ``first call - median`` estimates the compile cost."""
    first, out = _timed_first_call(call)
    med = median_time(call, repeats=repeats, warmup=0)
    compile_s = max(first - med, 0.0) if compiled else None
    return med, compile_s, np.asarray(out)


def _compare(out: np.ndarray, ref: np.ndarray) -> str:
    if out.shape != ref.shape:
        return f"MISMATCH shape {out.shape} != {ref.shape}"
    bad = int(np.count_nonzero(out != ref))
    return "ok" if bad == 0 else f"MISMATCH ({bad} lanes)"


def _import_jax():
    try:
        import jax
    except Exception as exc:  # ImportError, or a broken jaxlib install
        raise Skip(f"jax not importable ({type(exc).__name__}: {exc})")
    # Collatz trajectories for n <= 200000 peak near 1.7e10 > 2**31, so int64
    # is required; x64 also makes the Mandelbrot floats float64 like numpy's.
    jax.config.update("jax_enable_x64", True)
    return jax


def _vmapper_variants(per_sample):
    """Yield (label, batched_fn) for each vmapper backend that can be built,
    (label, Skip) when a variant is unavailable (no ``batched`` yet, backend
    option not supported), or (label, Failed) when building it raised."""
    try:
        import vmapper
        batched = vmapper.batched
    except (ImportError, AttributeError) as exc:
        yield "vmapper", Skip(f"vmapper.batched not available yet ({type(exc).__name__}: {exc})")
        return
    for backend in ("numpy", "numba"):
        label = f"vmapper[{backend}]"
        try:
            yield label, batched(per_sample, backend=backend)
        except (TypeError, ValueError) as exc:
            if backend == "numpy":
                # No ``backend`` option yet: the default backend is the numpy one.
                try:
                    yield "vmapper[default]", batched(per_sample)
                except Exception as exc2:
                    yield "vmapper[default]", Failed(f"batched() raised {type(exc2).__name__}: {exc2}")
            else:
                yield label, Skip(f"backend={backend!r} not supported ({type(exc).__name__}: {exc})")
        except Exception as exc:
            yield label, Failed(f"batched() raised {type(exc).__name__}: {exc}")


def run_workload(wl: Workload, args) -> tuple[list[Result], bool]:
    n_lanes = wl.inputs[0].shape[0]
    print(f"\n=== {wl.name}: {wl.description} ===")
    results: list[Result] = []
    ref: Optional[np.ndarray] = None
    ok = True

    def record(method, med, compile_s, out, note=""):
        nonlocal ref, ok
        if ref is None:
            ref, check = out, "reference"
        else:
            check = _compare(out, ref)
            ok &= check == "ok"
        results.append(Result(method, med, compile_s, check, note))
        print(f"  {method:<18} {med:9.4f} s  {check}")

    def skip(method, why):
        print(f"  {method:<18} SKIPPED: {why}")

    def fail(method, why):
        nonlocal ok
        ok = False
        print(f"  {method:<18} FAILED: {why}")

    # Full-size hand-written numpy first: masked is the reference result.
    for method, fn in (("numpy-masked", wl.numpy_masked), ("numpy-compact", wl.numpy_compact)):
        record(method, *_measure(lambda: fn(*wl.inputs), args.repeats, compiled=False))

    # 1. Per-sample Python on a seeded random subset, extrapolated linearly.
    # Arguments are converted to Python scalars first: looping over numpy
    # scalars would make this baseline several times slower than it must be.
    rng = np.random.default_rng(args.seed)
    k = min(args.python_lanes, n_lanes)
    subset = np.sort(rng.choice(n_lanes, size=k, replace=False))
    sub_args = [a[subset].tolist() for a in wl.inputs]
    f = wl.per_sample
    py_call = lambda: [f(*xs) for xs in zip(*sub_args)]
    py_med, _, py_out = _measure(py_call, args.repeats, compiled=False)
    py_check = _compare(py_out, ref[subset])
    ok &= py_check == "ok"
    py_est = py_med * n_lanes / k
    results.insert(0, Result("python*", py_est, None, py_check,
                             f"extrapolated: {py_med:.4g} s for {k} lanes x {n_lanes}/{k}"))
    print(f"  {'python*':<18} {py_est:9.4f} s  {py_check}  (from {k} random lanes, seed {args.seed})")

    # 4. numba prange over the njit-compiled per-sample function.
    if numba is None:
        skip("numba-prange", "numba not importable")
    else:
        driver = wl.numba_driver()
        record("numba-prange", *_measure(lambda: driver(*wl.inputs), args.repeats, compiled=True),
               note=f"{numba.get_num_threads()} threads")

    # 5. jax.jit(jax.vmap(while_loop port)).
    try:
        jax = _import_jax()
        fn = wl.jax_batched(jax)
        dev_inputs = [jax.device_put(a) for a in wl.inputs]
        record("jax", *_measure(lambda: fn(*dev_inputs).block_until_ready(), args.repeats,
                                compiled=True), note=f"jax {jax.__version__}")
    except Skip as exc:
        skip("jax", exc)

    # 6. vmapper, on the very same per-sample function.
    for label, bf in _vmapper_variants(wl.per_sample):
        if isinstance(bf, Skip):
            skip(label, bf)
            continue
        if isinstance(bf, Failed):
            fail(label, bf)
            continue
        try:
            med, compile_s, out = _measure(lambda: bf(*wl.inputs), args.repeats, compiled=True)
        except Exception as exc:
            fail(label, f"call raised {type(exc).__name__}: {exc}")
            if args.verbose:
                traceback.print_exc()
            continue
        record(label, med, compile_s, out)
        print(f"  {'':<18} last_stats = {getattr(bf, 'last_stats', '<no last_stats attribute>')}")

    # Context for lane_utilization: a mask-only executor that runs every lane
    # until the slowest one finishes can at best keep mean/max of its lanes busy.
    trips = ref.astype(np.float64)
    print(f"  loop trips per lane: mean {trips.mean():.1f}, max {int(trips.max())}"
          f" -> mean/max = {trips.mean() / max(trips.max(), 1):.3f}")
    return results, ok


def report(wl_name: str, results: list[Result]) -> None:
    t_py = next(r.seconds for r in results if r.method == "python*")
    rows = [
        {
            "method": r.method,
            "median_s": r.seconds,
            "compile_s": r.compile_s,
            "speedup_vs_python": t_py / r.seconds,
            "check": r.check,
            "note": r.note,
        }
        for r in results
    ]
    print(f"\n--- {wl_name} results ---")
    print_table(rows)
    vm = [r for r in results if r.method.startswith("vmapper")]
    if not vm:
        print("(no vmapper rows: see SKIPPED messages above)")
        return
    print("\nthroughput ratios, A / B = time(B) / time(A); > 1 means A (vmapper) is faster:")
    for a in vm:
        for b in results:
            if b is not a:
                print(f"  {a.method} / {b.method} = {b.seconds / a.seconds:.3g}x")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke-run sizes: 128x128 grid, N = 20000")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per method (default 5)")
    p.add_argument("--only", choices=sorted(WORKLOADS), help="run a single workload")
    p.add_argument("--python-lanes", type=int, default=2000,
                   help="random lanes timed for the per-sample Python baseline (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed for the Python subset (default 0)")
    p.add_argument("--verbose", action="store_true", help="print tracebacks of vmapper call failures")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.python_lanes < 1 or args.seed < 0:
        p.error("--repeats and --python-lanes must be >= 1, --seed >= 0")

    versions = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    if numba is not None:
        versions.append(f"numba {numba.__version__} ({numba.get_num_threads()} threads)")
    print(f"{', '.join(versions)}; {os.cpu_count()} CPUs; repeats={args.repeats}"
          f"{'; QUICK sizes' if args.quick else ''}")
    print("times are medians over repeats; compile_s = first call - median (compiled peers only);\n"
          "python* is extrapolated linearly from a random subset of lanes;\n"
          "speedup_vs_python = time(python*) / time(method)")

    all_ok = True
    for name in ([args.only] if args.only else list(WORKLOADS)):
        wl = WORKLOADS[name](args.quick)
        results, ok = run_workload(wl, args)
        report(name, results)
        all_ok &= ok
    if not all_ok:
        print("\nERROR: some results differ from the reference or a vmapper variant failed"
              " (see MISMATCH / FAILED above)", file=sys.stderr)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
