"""Value and gradient of per-sample *adaptive* loops: vmapper against the peers.

Two workloads whose per-sample code is a ``while`` loop with a per-sample trip
count, differentiated with respect to a per-sample input and a shared
parameter ``theta`` (float64 throughout):

* **newton** -- Newton's method on ``x**3 + theta*x - b = 0`` from ``x = 1.0``
  until ``|f(x)| <= 1e-12 * (1 + |b|)`` (at most 100 iterations); returns the
  root.  ``b = +-10**U(-2, 9)``, so lanes need 3 to ~36 iterations.
  Gradient with respect to ``b`` (per sample) and ``theta`` (shared).
* **euler** -- explicit Euler for ``dy/dt = -theta*y + sin(t)`` with step
  ``h = 0.01`` from ``t = 0`` while ``t < T_i``; returns ``y``.  ``T_i ~
  U(0.1, 2.0)``, so lanes take 10 to 200 steps.  Gradient with respect to
  ``y0`` (per sample) and ``theta`` (shared); ``T`` is batched but not
  differentiated.

Each workload is written *once per sample* as plain Python
(:func:`newton_sample`, :func:`euler_sample`); that same function object is
what vmapper batches and what the PyTorch loop runs on torch scalars.  Peers,
all in this one process:

1. ``vmapper``       ``vmapper.value_and_grad(vmapper.batched(fn, in_axes=...),
                     argnums=...)`` on the whole batch.  This is the reference
                     every other row is checked against.
2. ``torch-loop*``   the per-sample function on 0-d float64 torch tensors in a
                     Python loop, ``out.backward()`` per sample (the shared
                     ``theta`` is one leaf whose ``.grad`` accumulates the sum).
                     Timed on a seeded random subset (``--torch-lanes``, default
                     500) and **extrapolated linearly** to the whole batch
                     (marked ``*``).
3. ``jax-scan[L]``   ``jax.jit`` of ``jax.vmap(jax.value_and_grad(f))`` (the
                     shared ``theta``'s per-sample gradients summed inside the
                     jit).  JAX cannot reverse-differentiate ``lax.while_loop``,
                     so ``f`` is a ``lax.scan`` over a FIXED trip count ``L``
                     whose body updates only the still-active lanes
                     (``jnp.where(active, update, x)``).  Compile time (trace +
                     lower + XLA compile, ahead of time) is reported separately
                     as ``compile_s``.  Newton gets two rows: ``L = 100`` (the
                     per-sample code's own cap: the only ``L`` that is right for
                     every input) and ``L`` = the largest trip count observed in
                     this batch (needs the answer in advance; the most
                     favourable case for JAX).  Euler gets ``L`` = the steps
                     needed for the largest possible ``T`` (2.0).
4. ``numpy-manual``  hand-written numpy: a forward pass that compacts to the
                     lanes still running and keeps each step's state, then a
                     hand-derived backward pass over the saved steps.

Every row's values and gradients are compared with vmapper's (``rtol=1e-8``);
the torch subset is compared with the same lanes of vmapper's result, and its
``theta`` gradient (a sum over the subset) with a vmapper run on the subset.

Usage::

    python benchmarks/grad_loops.py                  # n = 100000, both workloads
    python benchmarks/grad_loops.py --quick          # n = 2000 smoke run
    python benchmarks/grad_loops.py --only euler --repeats 3

Exit status 1 if any result disagrees with vmapper's, or vmapper raises.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

try:  # run as ``python -m benchmarks.grad_loops``
    from ._harness import Result, median_time, print_table
except ImportError:  # run as ``python benchmarks/grad_loops.py``
    from _harness import Result, median_time, print_table

# Benchmark the vmapper of this checkout, not some other installed copy.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(1, _REPO_ROOT)

RTOL = 1e-8          # agreement required of every peer with vmapper
NEWTON_CAP = 100     # newton_sample's iteration cap (spelled as a literal there)
EULER_H = 0.01       # euler_sample's step (spelled as a literal there)
EULER_T_MAX = 2.0    # T ~ U(0.1, EULER_T_MAX)
THETA_NEWTON = 0.5
THETA_EULER = 0.7


# ---------------------------------------------------------------------------
# Per-sample functions: the single source of truth for each workload.  They
# use only arithmetic, abs() and math.sin on a non-differentiated float, so the
# very same function runs on Python floats, numpy scalars and torch tensors.
# ---------------------------------------------------------------------------

def newton_sample(b, theta):
    """Root of x**3 + theta*x - b by Newton's method from x = 1.0, to a
    tolerance relative to |b|, at most 100 iterations."""
    x = 1.0
    fx = x * x * x + theta * x - b
    it = 0
    while abs(fx) > 1e-12 * (1.0 + abs(b)) and it < 100:
        x = x - fx / (3.0 * x * x + theta)
        fx = x * x * x + theta * x - b
        it += 1
    return x


def euler_sample(y0, T, theta):
    """y(T) for dy/dt = -theta*y + sin(t), y(0) = y0, by explicit Euler steps
    of 0.01 while t < T (the last step may overshoot T, as written)."""
    y = y0
    t = 0.0
    while t < T:
        y = y + 0.01 * (-theta * y + math.sin(t))
        t = t + 0.01
    return y


def newton_trips(b, theta):
    """Trip count of newton_sample's loop (for the report and the tight JAX L)."""
    x = 1.0
    fx = x * x * x + theta * x - b
    it = 0
    while abs(fx) > 1e-12 * (1.0 + abs(b)) and it < 100:
        x = x - fx / (3.0 * x * x + theta)
        fx = x * x * x + theta * x - b
        it += 1
    return it


def euler_trips(T):
    t = 0.0
    k = 0
    while t < T:
        t = t + 0.01
        k += 1
    return k


# ---------------------------------------------------------------------------
# Hand-written numpy: compacting forward that saves each step, manual backward.
# ---------------------------------------------------------------------------

def newton_numpy_manual(b, theta):
    """Returns (roots, (d roots/d b, d sum(roots)/d theta))."""
    n = b.size
    out = np.empty(n)
    idx = np.arange(n)
    bc = b
    x = np.ones(n)
    fx = x * x * x + theta * x - bc
    saved = []  # (idx, x, fx, d) of each step, for the lanes that took it
    for _ in range(NEWTON_CAP):
        active = np.abs(fx) > 1e-12 * (1.0 + np.abs(bc))
        if not active.all():
            done = ~active
            out[idx[done]] = x[done]
            idx, x, fx, bc = idx[active], x[active], fx[active], bc[active]
            if idx.size == 0:
                break
        d = 3.0 * x * x + theta
        saved.append((idx, x, fx, d))
        x = x - fx / d
        fx = x * x * x + theta * x - bc
    out[idx] = x  # lanes that hit the cap (none here)
    # Backward (np.sum of a product, not np.dot: a multithreaded BLAS dot of
    # ~1e5 elements is erratic on a loaded 2-core machine).  x' = x - f/d with f = x^3 + theta x - b and d = f_x = 3x^2 + theta:
    #   dx'/dx = 6 x f / d^2,  dx'/dtheta = (f - x d) / d^2,  dx'/db = 1/d.
    gx = np.ones(n)
    gb = np.zeros(n)
    gtheta = 0.0
    for idx, x, fx, d in reversed(saved):
        g = gx[idx]
        d2 = d * d
        gb[idx] += g / d
        gtheta += float(np.sum(g * ((fx - x * d) / d2)))
        gx[idx] = g * (6.0 * x * fx / d2)
    return out, (gb, gtheta)


def euler_numpy_manual(y0, T, theta):
    """Returns (y(T), (d y/d y0, d sum(y)/d theta))."""
    n = y0.size
    out = np.empty(n)
    idx = np.arange(n)
    Tc = T
    y = y0.copy()
    t = np.zeros(n)
    saved = []  # (idx, y) of each step, for the lanes that took it
    while True:
        active = t < Tc
        if not active.all():
            done = ~active
            out[idx[done]] = y[done]
            idx, y, t, Tc = idx[active], y[active], t[active], Tc[active]
            if idx.size == 0:
                break
        saved.append((idx, y))
        y = y + 0.01 * (-theta * y + np.sin(t))
        t = t + 0.01
    # Backward (np.sum, not np.dot: see newton_numpy_manual).
    # y' = y + h(-theta y + sin t):  dy'/dy = 1 - h theta,  dy'/dtheta = -h y.
    gy = np.ones(n)
    gtheta = 0.0
    a = 1.0 + 0.01 * -theta
    for idx, y in reversed(saved):
        g = gy[idx]
        gtheta -= 0.01 * float(np.sum(g * y))
        gy[idx] = g * a
    return out, (gy, gtheta)


# ---------------------------------------------------------------------------
# JAX: per-sample ports to a fixed-length, masked lax.scan (reverse-mode
# differentiable, unlike lax.while_loop), batched with vmap.
# ---------------------------------------------------------------------------

def _jax_newton(jax, length):
    import jax.numpy as jnp
    from jax import lax

    def sample(b, theta):
        def body(carry, _):
            x, fx, it = carry
            active = (jnp.abs(fx) > 1e-12 * (1.0 + jnp.abs(b))) & (it < NEWTON_CAP)
            xn = x - fx / (3.0 * x * x + theta)
            fxn = xn * xn * xn + theta * xn - b
            return (jnp.where(active, xn, x), jnp.where(active, fxn, fx), it + active), None

        x0 = jnp.ones_like(b)
        fx0 = x0 * x0 * x0 + theta * x0 - b
        (x, _, _), _ = lax.scan(body, (x0, fx0, jnp.int64(0)), None, length=length)
        return x

    vg = jax.vmap(jax.value_and_grad(sample, argnums=(0, 1)), in_axes=(0, None))

    def run(b, theta):
        v, (gb, gtheta) = vg(b, theta)
        return v, (gb, gtheta.sum())
    return jax.jit(run)


def _jax_euler(jax, length):
    import jax.numpy as jnp
    from jax import lax

    def sample(y0, T, theta):
        def body(carry, _):
            y, t = carry
            active = t < T
            yn = y + 0.01 * (-theta * y + jnp.sin(t))
            return (jnp.where(active, yn, y), jnp.where(active, t + 0.01, t)), None

        (y, _), _ = lax.scan(body, (y0, jnp.zeros_like(y0)), None, length=length)
        return y

    vg = jax.vmap(jax.value_and_grad(sample, argnums=(0, 2)), in_axes=(0, 0, None))

    def run(y0, T, theta):
        v, (gy0, gtheta) = vg(y0, T, theta)
        return v, (gy0, gtheta.sum())
    return jax.jit(run)


# ---------------------------------------------------------------------------
# Workload definitions.
# ---------------------------------------------------------------------------

@dataclass
class Workload:
    name: str
    description: str
    per_sample: Callable[..., Any]
    args: tuple                 # full-batch arguments (arrays and the shared theta)
    in_axes: tuple
    argnums: tuple              # differentiated: (per-sample input, theta)
    trips: np.ndarray           # loop trips per lane
    numpy_manual: Callable[..., Any]
    jax_variants: list = field(default_factory=list)  # (label, builder(jax), note)


def make_newton(n: int, seed: int) -> Workload:
    rng = np.random.default_rng(seed)
    b = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-2.0, 9.0, n)
    trips = np.array([newton_trips(v, THETA_NEWTON) for v in b.tolist()])
    tight = int(trips.max())
    return Workload(
        name="newton",
        description=f"x**3 + theta*x - b = 0 from x0 = 1, b = +-10**U(-2, 9), theta = {THETA_NEWTON}"
                    f" ({n} lanes)",
        per_sample=newton_sample,
        args=(b, THETA_NEWTON),
        in_axes=(0, None),
        argnums=(0, 1),
        trips=trips,
        numpy_manual=newton_numpy_manual,
        jax_variants=[
            (f"jax-scan[{NEWTON_CAP}]", lambda jax: _jax_newton(jax, NEWTON_CAP),
             f"scan L={NEWTON_CAP} (the code's cap)"),
            (f"jax-scan[{tight}]", lambda jax: _jax_newton(jax, tight),
             f"scan L={tight} = max trips seen (oracle)"),
        ],
    )


def make_euler(n: int, seed: int) -> Workload:
    rng = np.random.default_rng(seed + 1)
    y0 = rng.normal(size=n)
    T = rng.uniform(0.1, EULER_T_MAX, n)
    trips = np.array([euler_trips(v) for v in T.tolist()])
    length = euler_trips(EULER_T_MAX)  # enough for any T in the distribution's range
    return Workload(
        name="euler",
        description=f"Euler h={EULER_H} on dy/dt = -theta*y + sin t, t < T ~ U(0.1, {EULER_T_MAX}),"
                    f" theta = {THETA_EULER} ({n} lanes)",
        per_sample=euler_sample,
        args=(y0, T, THETA_EULER),
        in_axes=(0, 0, None),
        argnums=(0, 2),
        trips=trips,
        numpy_manual=euler_numpy_manual,
        jax_variants=[
            (f"jax-scan[{length}]", lambda jax: _jax_euler(jax, length),
             f"scan L={length} (steps for T={EULER_T_MAX})"),
        ],
    )


WORKLOADS = {"newton": make_newton, "euler": make_euler}


# ---------------------------------------------------------------------------
# Checking.
# ---------------------------------------------------------------------------

def _max_rel(a, ref):
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if a.shape != ref.shape:
        return math.inf
    scale = np.maximum(np.abs(ref), 1e-12 * max(float(np.max(np.abs(ref))), 1e-300))
    return float(np.max(np.abs(a - ref) / scale)) if a.size else 0.0


def compare(out, ref) -> tuple[str, bool]:
    """``out`` and ``ref`` are (values, (g_input, g_theta)); relative errors
    against vmapper's, elementwise (with a floor of 1e-12 * max|ref| for
    entries near zero)."""
    errs = [_max_rel(out[0], ref[0]), _max_rel(out[1][0], ref[1][0]), _max_rel(out[1][1], ref[1][1])]
    ok = all(e <= RTOL for e in errs)
    text = "val {:.1e} g_in {:.1e} g_theta {:.1e}".format(*errs)
    return ("ok (" + text + ")" if ok else "MISMATCH (" + text + ")"), ok


def _np_result(res):
    v, (g_in, g_theta) = res
    return np.asarray(v), (np.asarray(g_in), float(np.asarray(g_theta)))


# ---------------------------------------------------------------------------
# Runner.
# ---------------------------------------------------------------------------

def _import_jax():
    try:
        import jax
    except Exception as exc:
        return None, f"jax not importable ({type(exc).__name__}: {exc})"
    jax.config.update("jax_enable_x64", True)
    return jax, None


def _import_torch():
    try:
        import torch
    except Exception as exc:
        return None, f"torch not importable ({type(exc).__name__}: {exc})"
    return torch, None


def _torch_loop(torch, per_sample, lanes, theta):
    """Per-sample autograd: ``lanes`` is a list of per-sample argument tuples
    (Python floats); the first is differentiated per sample, ``theta`` is one
    shared leaf whose ``.grad`` accumulates over the samples."""
    th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    vals, gins = [], []
    for first, *rest in lanes:
        x = torch.tensor(first, dtype=torch.float64, requires_grad=True)
        out = per_sample(x, *rest, th)
        out.backward()
        vals.append(out.item())
        gins.append(x.grad.item())
    return np.array(vals), (np.array(gins), th.grad.item())


def run_workload(wl: Workload, args) -> tuple[list[Result], bool]:
    import vmapper

    n = wl.args[0].shape[0]
    print(f"\n=== {wl.name}: {wl.description} ===")
    t = wl.trips
    print(f"  loop trips per lane: min {t.min()}, mean {t.mean():.1f}, max {t.max()}"
          f" -> mean/max = {t.mean() / max(t.max(), 1):.3f}")
    results: list[Result] = []
    ok = True

    # 1. vmapper: the reference.
    bf = vmapper.batched(wl.per_sample, in_axes=wl.in_axes)
    vg = vmapper.value_and_grad(bf, argnums=wl.argnums)
    try:
        t0 = time.perf_counter()
        ref = _np_result(vg(*wl.args))
        first = time.perf_counter() - t0
        med = median_time(lambda: vg(*wl.args), repeats=args.repeats, warmup=0)
    except Exception as exc:
        print(f"  {'vmapper':<16} FAILED: {type(exc).__name__}: {exc}")
        if args.verbose:
            traceback.print_exc()
        return results, False
    stats = dict(bf.last_stats)
    results.append(Result("vmapper", med, max(first - med, 0.0), "reference",
                          "value_and_grad; first call - median in compile_s"))
    print(f"  {'vmapper':<16} {med:9.4f} s  reference")
    print(f"  {'':<16} last_stats = {stats}")
    fwd = median_time(lambda: bf(*wl.args), repeats=args.repeats, warmup=1)
    print(f"  {'':<16} (forward only, no tape: {fwd:.4f} s; value_and_grad / forward = {med / fwd:.2f})")
    if stats.get("kernel_launches"):
        print(f"  {'':<16} (the function ran as one dual-number kernel: partials stored by the forward pass)")

    def record(method, seconds, res, compile_s=None, note=""):
        nonlocal ok
        check, good = compare(res, ref)
        ok &= good
        results.append(Result(method, seconds, compile_s, check, note))
        print(f"  {method:<16} {seconds:9.4f} s  {check}")

    def record_vmapper_variant(method, vg_variant, note):
        try:
            out = _np_result(vg_variant(*wl.args))
            seconds = median_time(lambda: vg_variant(*wl.args), repeats=args.repeats, warmup=0)
        except Exception as exc:
            print(f"  {method:<16} FAILED: {type(exc).__name__}: {exc}")
            return
        record(method, seconds, out, note=note)

    record_vmapper_variant("vmapper-recomp", vmapper.value_and_grad(bf, argnums=wl.argnums,
                                                                    kernel_partials="recompute"),
                           "kernel_partials='recompute': partials recomputed in the backward")
    bf_np = vmapper.batched(wl.per_sample, in_axes=wl.in_axes, backend="numpy")
    record_vmapper_variant("vmapper-numpy", vmapper.value_and_grad(bf_np, argnums=wl.argnums),
                           "backend='numpy': masked runtime + reverse-mode tape")

    # 2. numpy, hand-written forward + backward.
    out = _np_result(wl.numpy_manual(*wl.args))
    med = median_time(lambda: wl.numpy_manual(*wl.args), repeats=args.repeats, warmup=0)
    record("numpy-manual", med, out, note="compacting forward, hand-derived backward")

    # 3. PyTorch autograd per sample, on a seeded random subset, extrapolated.
    torch, why = _import_torch()
    if torch is None:
        print(f"  {'torch-loop*':<16} SKIPPED: {why}")
    else:
        rng = np.random.default_rng(args.seed)
        k = min(args.torch_lanes, n)
        subset = np.sort(rng.choice(n, size=k, replace=False))
        batched_args = [a for a, ax in zip(wl.args, wl.in_axes) if ax is not None]
        theta = wl.args[-1]  # the shared parameter is the last argument in both workloads
        lanes = list(zip(*[a[subset].tolist() for a in batched_args]))
        call = lambda: _torch_loop(torch, wl.per_sample, lanes, theta)
        t_out = call()
        t_med = median_time(call, repeats=args.repeats, warmup=0)
        # Reference for the subset: the same lanes of vmapper's full result, and
        # a vmapper run on the subset for the theta gradient (a sum over lanes).
        sub_ref_theta = vg(*[a[subset] if ax is not None else a
                             for a, ax in zip(wl.args, wl.in_axes)])[1][1]
        sub_ref = (ref[0][subset], (ref[1][0][subset], float(sub_ref_theta)))
        check, good = compare(t_out, sub_ref)
        ok &= good
        est = t_med * n / k
        results.append(Result("torch-loop*", est, None, check,
                              f"extrapolated: {t_med:.4g} s for {k} lanes x {n}/{k}; torch {torch.__version__}"))
        print(f"  {'torch-loop*':<16} {est:9.4f} s  {check}  (from {k} random lanes, seed {args.seed})")

    # 4. JAX: jit(vmap(value_and_grad(masked fixed-length scan))).
    jax, why = _import_jax()
    if jax is None:
        print(f"  {'jax-scan':<16} SKIPPED: {why}")
    else:
        dev_args = [jax.device_put(a) if isinstance(a, np.ndarray) else a for a in wl.args]
        for label, build, note in wl.jax_variants:
            fn = build(jax)
            t0 = time.perf_counter()
            compiled = fn.lower(*dev_args).compile()
            compile_s = time.perf_counter() - t0
            call = lambda: jax.block_until_ready(compiled(*dev_args))
            res = _np_result(jax.device_get(call()))
            med = median_time(call, repeats=args.repeats, warmup=0)
            record(label, med, res, compile_s, note=f"{note}; jax {jax.__version__}")
    return results, ok


def report(wl_name: str, results: list[Result]) -> dict:
    vm = next((r for r in results if r.method == "vmapper"), None)
    if vm is None:
        return {}
    rows = [
        {
            "method": r.method,
            "median_s": r.seconds,
            "compile_s": r.compile_s,
            "time/vmapper": r.seconds / vm.seconds,
            "check": r.check,
            "note": r.note,
        }
        for r in results
    ]
    print(f"\n--- {wl_name} results (value and gradient, {wl_name}) ---")
    print_table(rows)
    print("\nratios vmapper / B = time(B) / time(vmapper); > 1 means vmapper is faster:")
    ratios = {}
    for b in results:
        if b is not vm:
            ratios[b.method] = b.seconds / vm.seconds
            print(f"  vmapper / {b.method} = {ratios[b.method]:.3g}x")
    return ratios


def targets(all_ratios: dict) -> None:
    """The issue's targets: >= 10x every JAX masked-scan row, >= 100x torch-loop."""
    print("\n--- targets (from the issue) ---")
    for wl, ratios in all_ratios.items():
        for method, r in ratios.items():
            if method.startswith("jax-scan"):
                goal = 10
            elif method.startswith("torch-loop"):
                goal = 100
            else:
                continue
            verdict = "met" if r >= goal else "NOT met"
            print(f"  {wl:<7} vmapper / {method:<14} = {r:8.3g}x  (target >= {goal}x: {verdict})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="batch size (default 100000)")
    p.add_argument("--quick", action="store_true", help="smoke run: n = 2000")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per method (default 5)")
    p.add_argument("--only", choices=sorted(WORKLOADS), help="run a single workload")
    p.add_argument("--torch-lanes", type=int, default=500,
                   help="random lanes timed for the per-sample torch loop (default 500)")
    p.add_argument("--seed", type=int, default=0, help="seed for the data and the torch subset")
    p.add_argument("--verbose", action="store_true", help="print tracebacks of vmapper failures")
    args = p.parse_args(argv)
    n = 2000 if args.quick else args.n

    print(f"python {platform.python_version()}, numpy {np.__version__}; {os.cpu_count()} CPUs;"
          f" n={n}; repeats={args.repeats}{'; QUICK' if args.quick else ''}")
    print("float64; times are medians of one value-and-gradient call on the whole batch;\n"
          "torch-loop* is extrapolated linearly from a random subset of lanes;\n"
          "jax-scan[L]: JAX cannot reverse-differentiate lax.while_loop, so the loop is a\n"
          "  lax.scan of FIXED length L with jnp.where(active, update, x) masking; its\n"
          "  compile_s (trace + lower + XLA compile) is reported separately, not in median_s;\n"
          f"every row's values and gradients are checked against vmapper's (rtol {RTOL:g})")

    all_ok = True
    all_ratios = {}
    for name in ([args.only] if args.only else list(WORKLOADS)):
        wl = WORKLOADS[name](n, args.seed)
        results, ok = run_workload(wl, args)
        all_ratios[name] = report(name, results)
        all_ok &= ok
    targets(all_ratios)
    if not all_ok:
        print("\nERROR: some results differ from vmapper's or vmapper failed (see MISMATCH / FAILED)",
              file=sys.stderr)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
