"""Elementwise activation benchmark: vmapper's fused kernels against peers.

Workloads (n elements each, float32 and float64):

* ``gelu_fwd``   y = gelu_tanh(x)                          1 in, 1 out
* ``gelu_bwd``   dx = gelu_tanh'(x) * g                    2 in, 1 out
* ``lstm_fwd``   (h, c) = lstm_cell(i, f, o, u, c_prev)    5 in, 2 out
* ``lstm_bwd``   5 input gradients from the 5 inputs and (gh, gc)
                                                            7 in, 5 out

Peers (each optional; skipped with a message when its import fails):

``vmapper``        vmapper.kernels.activations (vmath, fused, prange)
``vmapper-exact``  the same kernels with ``exact_math=True`` (libm calls)
``numpy``          unfused numpy, hand-written backward
``numexpr``        ``numexpr.evaluate`` of the same expressions
``numba-naive``    a straightforward ``@njit(parallel=True)`` prange kernel
                   calling ``math.tanh``/``math.exp``
``torch``          torch eager (hand-written backward in torch ops)
``torch.compile``  ``torch.compile`` of the torch functions (inductor)
``jax``            ``jax.jit(f)`` / ``jax.jit(lambda *a: jax.vjp(f, ...))``
``copy``           streaming bound: a numba prange kernel that reads every
                   input and writes every output once (no math)

Every callable allocates its outputs, as the library calls do.  By default the
script re-runs itself with glibc tunables that keep large freed blocks in the
heap, for every peer alike, so that outputs do not page-fault on every call
(which otherwise costs as much as the kernels at n = 10**7); ``--fresh-pages``
measures with glibc's defaults.  Timing is
round-robin (one call of each peer per round in shuffled order, ``--repeats``
rounds, median, 50 ms pause before each call so that the previous peer's
spinning thread pool has gone idle), so load changes on a shared machine
affect all peers alike.  Results of
each peer are checked against vmapper's (a mismatch is reported, not fatal).
Columns: median milliseconds, effective GB/s (bytes in + out / time),
``vs vmapper`` = peer time / vmapper time (> 1: vmapper is faster), and for
vmapper the fraction of the streaming bound (copy time / vmapper time).

Usage::

    python benchmarks/elementwise.py                # n = 10**7, 5 repeats
    python benchmarks/elementwise.py --quick        # n = 10**5, smoke run
    python benchmarks/elementwise.py --n 3000000 --repeats 9 --dtype float32
    python benchmarks/elementwise.py --threads 1     # same thread count for all
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time

import numpy as np

try:
    from . import _machine
    from ._harness import median_time, print_table, round_robin_medians
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _machine
    from _harness import median_time, print_table, round_robin_medians

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(1, _REPO_ROOT)

from numba import njit, prange  # noqa: E402

try:
    from vmapper.kernels import activations as A
except ImportError:                       # package not installed: repo layout
    from kernels import activations as A

K, C = math.sqrt(2 / math.pi), 0.044715
ARITY = {"gelu_fwd": (1, 1), "gelu_bwd": (2, 1), "lstm_fwd": (5, 2), "lstm_bwd": (7, 5)}


# ------------------------------------------------------------------ numpy --
def array_fns(xp):
    """The four workloads as unfused array operations of ``xp`` (numpy, or CuPy on a GPU),
    the backward passes written by hand."""
    def sig(x):
        return 1 / (1 + xp.exp(-x))

    def gelu(x):
        return 0.5 * x * (1 + xp.tanh(K * (x + C * x ** 3)))

    def gelu_bwd(x, g):
        t = xp.tanh(K * (x + C * x ** 3))
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * C * x * x))

    def lstm(i, f, o, u, c_prev):
        c = sig(i) * xp.tanh(u) + sig(f) * c_prev
        return sig(o) * xp.tanh(c), c

    def lstm_bwd(i, f, o, u, c_prev, gh, gc):
        si, sf, so, tu = sig(i), sig(f), sig(o), xp.tanh(u)
        tc = xp.tanh(si * tu + sf * c_prev)
        dc = gc + gh * so * (1 - tc * tc)
        return (dc * tu * si * (1 - si), dc * c_prev * sf * (1 - sf),
                gh * tc * so * (1 - so), dc * si * (1 - tu * tu), dc * sf)
    return {"gelu_fwd": gelu, "gelu_bwd": gelu_bwd, "lstm_fwd": lstm, "lstm_bwd": lstm_bwd}


# ---------------------------------------------------------------- numexpr --
def make_numexpr():
    import numexpr as ne
    sg = "(1 / (1 + exp(-{0})))"
    gelu = "0.5 * x * (1 + tanh(K * (x + C * x ** 3)))"
    gelu_b = ("g * (0.5 * (1 + tanh(K * (x + C * x**3))) + 0.5 * x * "
              "(1 - tanh(K * (x + C * x**3))**2) * K * (1 + 3 * C * x * x))")
    c_expr = f"{sg.format('i')} * tanh(u) + {sg.format('f')} * cp"

    def cast(v, like):
        return like.dtype.type(v)

    def fwd(x):
        return ne.evaluate(gelu, local_dict=dict(x=x, K=cast(K, x), C=cast(C, x)))

    def bwd(x, g):
        return ne.evaluate(gelu_b, local_dict=dict(x=x, g=g, K=cast(K, x), C=cast(C, x)))

    def lstm(i, f, o, u, cp):
        c = ne.evaluate(c_expr)
        return ne.evaluate(f"{sg.format('o')} * tanh(c)"), c

    def lstm_b(i, f, o, u, cp, gh, gc):
        # intermediate arrays, as one would write it by hand
        si = ne.evaluate(sg.format("i"))
        sf = ne.evaluate(sg.format("f"))
        so = ne.evaluate(sg.format("o"))
        tu = ne.evaluate("tanh(u)")
        tc = ne.evaluate("tanh(si * tu + sf * cp)")
        dc = ne.evaluate("gc + gh * so * (1 - tc * tc)")
        return (ne.evaluate("dc * tu * si * (1 - si)"), ne.evaluate("dc * cp * sf * (1 - sf)"),
                ne.evaluate("gh * tc * so * (1 - so)"), ne.evaluate("dc * si * (1 - tu * tu)"),
                ne.evaluate("dc * sf"))
    return {"gelu_fwd": fwd, "gelu_bwd": bwd, "lstm_fwd": lstm, "lstm_bwd": lstm_b}


# ------------------------------------------------------------ numba-naive --
@njit(parallel=True, error_model="numpy")
def _nb_gelu(x, y):
    for k in prange(x.size):
        v = x[k]
        y[k] = 0.5 * v * (1.0 + math.tanh(K * (v + C * v * v * v)))


@njit(parallel=True, error_model="numpy")
def _nb_gelu_bwd(x, g, y):
    for k in prange(x.size):
        v = x[k]
        t = math.tanh(K * (v + C * v * v * v))
        y[k] = g[k] * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * K * (1.0 + 3.0 * C * v * v))


@njit(inline="always")
def _nb_sig(x):
    return 1.0 / (1.0 + math.exp(-x))


@njit(parallel=True, error_model="numpy")
def _nb_lstm(i, f, o, u, cp, h, c):
    for k in prange(i.size):
        cc = _nb_sig(i[k]) * math.tanh(u[k]) + _nb_sig(f[k]) * cp[k]
        c[k] = cc
        h[k] = _nb_sig(o[k]) * math.tanh(cc)


@njit(parallel=True, error_model="numpy")
def _nb_lstm_bwd(i, f, o, u, cp, gh, gc, di, df, do, du, dcp):
    for k in prange(i.size):
        si, sf, so, tu = _nb_sig(i[k]), _nb_sig(f[k]), _nb_sig(o[k]), math.tanh(u[k])
        tc = math.tanh(si * tu + sf * cp[k])
        dc = gc[k] + gh[k] * so * (1.0 - tc * tc)
        di[k] = dc * tu * si * (1.0 - si)
        df[k] = dc * cp[k] * sf * (1.0 - sf)
        do[k] = gh[k] * tc * so * (1.0 - so)
        du[k] = dc * si * (1.0 - tu * tu)
        dcp[k] = dc * sf


def _alloc(like, m):
    return [np.empty_like(like) for _ in range(m)]


def make_numba():
    def fwd(x):
        (y,) = _alloc(x, 1)
        _nb_gelu(x, y)
        return y

    def bwd(x, g):
        (y,) = _alloc(x, 1)
        _nb_gelu_bwd(x, g, y)
        return y

    def lstm(*a):
        h, c = _alloc(a[0], 2)
        _nb_lstm(*a, h, c)
        return h, c

    def lstm_b(*a):
        outs = _alloc(a[0], 5)
        _nb_lstm_bwd(*a, *outs)
        return tuple(outs)
    return {"gelu_fwd": fwd, "gelu_bwd": bwd, "lstm_fwd": lstm, "lstm_bwd": lstm_b}


# ------------------------------------------------------- streaming bound --
# Same structure as vmapper's kernels (a prange driver over 2**14-element
# blocks, each block a separate serial njit function indexing its slices
# from 0).  Putting the 12-array loop directly in the prange body measured
# several times slower on this machine, which would flatter vmapper.
_CB = 1 << 14


@njit
def _cblk_1_1(a, o, lo, hi):
    a, o = a[lo:hi], o[lo:hi]
    for j in range(hi - lo):
        o[j] = a[j]


@njit
def _cblk_2_1(a, b, o, lo, hi):
    a, b, o = a[lo:hi], b[lo:hi], o[lo:hi]
    for j in range(hi - lo):
        o[j] = a[j] + b[j]


@njit
def _cblk_5_2(a, b, c, d, e, o1, o2, lo, hi):
    a, b, c, d, e = a[lo:hi], b[lo:hi], c[lo:hi], d[lo:hi], e[lo:hi]
    o1, o2 = o1[lo:hi], o2[lo:hi]
    for j in range(hi - lo):
        o1[j] = a[j] + b[j] + c[j]
        o2[j] = d[j] + e[j]


@njit
def _cblk_7_5(a, b, c, d, e, f, g, o1, o2, o3, o4, o5, lo, hi):
    a, b, c, d, e = a[lo:hi], b[lo:hi], c[lo:hi], d[lo:hi], e[lo:hi]
    f, g = f[lo:hi], g[lo:hi]
    o1, o2, o3, o4, o5 = o1[lo:hi], o2[lo:hi], o3[lo:hi], o4[lo:hi], o5[lo:hi]
    for j in range(hi - lo):
        o1[j] = a[j] + f[j]
        o2[j] = b[j] + g[j]
        o3[j] = c[j]
        o4[j] = d[j]
        o5[j] = e[j]


@njit(parallel=True)
def _copy_1_1(a, o):
    n = a.shape[0]
    for k in prange((n + _CB - 1) // _CB):
        _cblk_1_1(a, o, k * _CB, min(n, (k + 1) * _CB))


@njit(parallel=True)
def _copy_2_1(a, b, o):
    n = a.shape[0]
    for k in prange((n + _CB - 1) // _CB):
        _cblk_2_1(a, b, o, k * _CB, min(n, (k + 1) * _CB))


@njit(parallel=True)
def _copy_5_2(a, b, c, d, e, o1, o2):
    n = a.shape[0]
    for k in prange((n + _CB - 1) // _CB):
        _cblk_5_2(a, b, c, d, e, o1, o2, k * _CB, min(n, (k + 1) * _CB))


@njit(parallel=True)
def _copy_7_5(a, b, c, d, e, f, g, o1, o2, o3, o4, o5):
    n = a.shape[0]
    for k in prange((n + _CB - 1) // _CB):
        _cblk_7_5(a, b, c, d, e, f, g, o1, o2, o3, o4, o5, k * _CB,
                  min(n, (k + 1) * _CB))


def make_copy():
    kern = {(1, 1): _copy_1_1, (2, 1): _copy_2_1, (5, 2): _copy_5_2, (7, 5): _copy_7_5}

    def make(work):
        nin, nout = ARITY[work]

        def run(*a):
            outs = _alloc(a[0], nout)
            kern[(nin, nout)](*a, *outs)
            return outs[0] if nout == 1 else tuple(outs)
        return run
    return {w: make(w) for w in ARITY}


# ---------------------------------------------------------------- vmapper --
def make_vmapper(exact):
    return {
        "gelu_fwd": lambda x: A.gelu(x, exact_math=exact),
        "gelu_bwd": lambda x, g: A.gelu_vjp(x, g, exact_math=exact),
        "lstm_fwd": lambda *a: A.lstm_cell(*a, exact_math=exact),
        "lstm_bwd": lambda *a: A.lstm_cell_vjp(*a, exact_math=exact),
    }


# ------------------------------------------------------------------ torch --
def _torch_fns():
    import torch

    def gelu(x):
        return 0.5 * x * (1 + torch.tanh(K * (x + C * x ** 3)))

    def gelu_b(x, g):
        t = torch.tanh(K * (x + C * x ** 3))
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * C * x * x))

    def lstm(i, f, o, u, cp):
        c = torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f) * cp
        return torch.sigmoid(o) * torch.tanh(c), c

    def lstm_b(i, f, o, u, cp, gh, gc):
        si, sf, so, tu = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), torch.tanh(u)
        tc = torch.tanh(si * tu + sf * cp)
        dc = gc + gh * so * (1 - tc * tc)
        return (dc * tu * si * (1 - si), dc * cp * sf * (1 - sf),
                gh * tc * so * (1 - so), dc * si * (1 - tu * tu), dc * sf)
    return torch, {"gelu_fwd": gelu, "gelu_bwd": gelu_b, "lstm_fwd": lstm, "lstm_bwd": lstm_b}


def _wrap_torch(torch, fn):
    # numpy in, numpy out (zero-copy both ways), as a user of the peer would
    def run(*a):
        with torch.no_grad():
            r = fn(*(torch.from_numpy(v) for v in a))
        return tuple(t.numpy() for t in r) if isinstance(r, tuple) else r.numpy()
    return run


def make_torch():
    torch, fns = _torch_fns()
    return {w: _wrap_torch(torch, f) for w, f in fns.items()}


def make_torch_compile():
    torch, fns = _torch_fns()
    return {w: _wrap_torch(torch, torch.compile(f, dynamic=False)) for w, f in fns.items()}


# -------------------------------------------------------------------- jax --
def jax_fns():
    """``(jax, the four workloads under jax.jit)``; the backward passes are ``jax.vjp``'s."""
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def gelu(x):
        return 0.5 * x * (1 + jnp.tanh(K * (x + C * x ** 3)))

    def lstm(i, f, o, u, c_prev):
        c = jax.nn.sigmoid(i) * jnp.tanh(u) + jax.nn.sigmoid(f) * c_prev
        return jax.nn.sigmoid(o) * jnp.tanh(c), c

    return jax, {"gelu_fwd": jax.jit(gelu),
                 "gelu_bwd": jax.jit(lambda x, g: jax.vjp(gelu, x)[1](g)[0]),
                 "lstm_fwd": jax.jit(lstm),
                 "lstm_bwd": jax.jit(lambda i, f, o, u, c_prev, gh, gc:
                                     jax.vjp(lstm, i, f, o, u, c_prev)[1]((gh, gc)))}


def make_jax():
    jax, fns = jax_fns()

    def wrap(fn):
        def run(*a):
            r = jax.block_until_ready(fn(*a))
            return tuple(np.asarray(t) for t in r) if isinstance(r, tuple) else np.asarray(r)
        return run
    return {w: wrap(f) for w, f in fns.items()}


PEERS = {"vmapper": lambda: make_vmapper(False), "vmapper-exact": lambda: make_vmapper(True),
         "numpy": lambda: array_fns(np),
         "numexpr": make_numexpr, "numba-naive": make_numba, "torch": make_torch,
         "torch.compile": make_torch_compile, "jax": make_jax, "copy": make_copy}


def _inputs(work, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    nin, _ = ARITY[work]
    # normal(0, 2): realistic pre-activations, no subnormal outputs
    return [rng.normal(0.0, 2.0, n).astype(dtype) for _ in range(nin)]


def _agree(a, b, dtype):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    # float32 peers lose digits where the textbook formulas cancel (the gelu
    # tail), so the float32 check only catches wrong formulas, not rounding
    tol = dict(rtol=1e-3, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-12)
    return len(a) == len(b) and all(np.allclose(x, y, **tol) for x, y in zip(a, b))


def _set_threads(k):
    """Same thread count for all peers (before any of them is imported), and the process
    on k CPUs: XLA sizes its thread pool from them and ignores its thread flags."""
    _machine.pin_cpus(k)
    import numba
    numba.set_num_threads(k)
    if k == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_multi_thread_eigen=false")
    os.environ["NUMEXPR_MAX_THREADS"] = os.environ["NUMEXPR_NUM_THREADS"] = str(k)
    os.environ["OMP_NUM_THREADS"] = str(k)
    try:
        import torch
        torch.set_num_threads(k)
    except ImportError:
        pass


# ------------------------------------------------------- per-sample route --
# The same activations written per sample, the way a user would, batched by
# vmapper and differentiated by value_and_grad / vjp: the numba backend runs
# each as one kernel and its gradient as one dual-number backward kernel.
def gelu_sample(x):
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def lstm_sample(i, f, o, u, c_prev):
    c = 1.0 / (1.0 + np.exp(-i)) * np.tanh(u) + 1.0 / (1.0 + np.exp(-f)) * c_prev
    h = 1.0 / (1.0 + np.exp(-o)) * np.tanh(c)
    return h, c


def route_callables(policy):
    """Forward + backward through the per-sample functions, for ``kernel_partials=policy``."""
    import vmapper
    gelu_vg = vmapper.value_and_grad(vmapper.batched(gelu_sample, backend="numba"), kernel_partials=policy)
    lstm_b = vmapper.batched(lstm_sample, backend="numba")

    def lstm(i, f, o, u, cp, gh, gc):
        out, back = vmapper.vjp(lstm_b, i, f, o, u, cp, kernel_partials=policy)
        return out + back((gh, gc))
    return {"gelu": lambda x: gelu_vg(x), "lstm": lstm}


def hand_callables():
    """The same forward + backward by calling the activation kernels by hand."""
    def gelu(x):
        return A.gelu(x), A.gelu_vjp(x, np.ones_like(x))

    def lstm(i, f, o, u, cp, gh, gc):
        return A.lstm_cell(i, f, o, u, cp) + A.lstm_cell_vjp(i, f, o, u, cp, gh, gc)
    return {"gelu": gelu, "lstm": lstm}


def per_sample_route(n, repeats, dtypes, rng):
    """Issue target: the per-sample route within 1.2x of the hand-called kernels."""
    routes = {"kernels by hand": hand_callables(), "per-sample (recompute)": route_callables("recompute"),
              "per-sample (store)": route_callables("store")}
    for dtype in dtypes:
        for work, nin in (("gelu", 1), ("lstm", 7)):
            xs = [np.random.default_rng(1).normal(0.0, 2.0, n).astype(dtype) for _ in range(nin)]
            ref = routes["kernels by hand"][work](*xs)
            notes = {}
            for name, fns in routes.items():
                t0 = time.perf_counter()
                out = fns[work](*xs)
                notes[name] = f"first call {time.perf_counter() - t0:.2f}s"
                if not _agree(tuple(np.asarray(a) for a in out), tuple(ref), dtype):
                    notes[name] += "  RESULT MISMATCH"
            def sample(name):
                time.sleep(0.05)
                return median_time(lambda: routes[name][work](*xs), repeats=1, warmup=0)
            times = round_robin_medians(routes, repeats, rng, sample)
            base = times["kernels by hand"]
            print(f"\n== per-sample route: {work} forward+backward  {np.dtype(dtype).name}  "
                  f"(target: per-sample within 1.2x of the kernels by hand)")
            print_table([{"route": name, "ms": 1e3 * t, "time / by hand": t / base, "note": notes[name]}
                         for name, t in times.items()])


# glibc gives each freed block above M_MMAP_THRESHOLD (at most 32 MiB by default) back to the
# OS, so every call's 40-80 MB outputs page-fault in again: at n = 10**7 that costs as much
# as the kernels (measured 3-4x on GELU), the same for every peer.  With these tunables
# (read by glibc at start-up, hence the re-exec) large blocks stay in the heap for all peers.
_WARM_HEAP_ENV = ("MALLOC_MMAP_THRESHOLD_", str(1 << 30), "MALLOC_TRIM_THRESHOLD_", str(1 << 31))


def _reexec_with_warm_heap():
    env = dict(os.environ)
    env[_WARM_HEAP_ENV[0]], env[_WARM_HEAP_ENV[2]] = _WARM_HEAP_ENV[1], _WARM_HEAP_ENV[3]
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10 ** 7, help="elements per array")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="n = 10**5, 3 repeats")
    ap.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="comma-separated subset of: " + ", ".join(PEERS))
    ap.add_argument("--work", default=",".join(ARITY), help="subset of: " + ", ".join(ARITY))
    ap.add_argument("--route", choices=["yes", "no", "only"], default="yes",
                    help="also time the per-sample route (per-sample GELU/LSTM under "
                         "value_and_grad/vjp vs the kernels called by hand); 'only': just that")
    ap.add_argument("--threads", type=int, default=0,
                    help="threads for every peer (numba, torch, numexpr, XLA); "
                         "0 = each library's default")
    ap.add_argument("--fresh-pages", action="store_true",
                    help="let glibc return every large freed block to the OS, so that each "
                         "call's outputs page-fault (the default keeps them in the heap for all peers)")
    args = ap.parse_args(argv)
    if not args.fresh_pages and argv is None and _WARM_HEAP_ENV[0] not in os.environ:
        _reexec_with_warm_heap()
    if args.threads:
        _set_threads(args.threads)
    if args.quick:
        args.n, args.repeats = 10 ** 5, 3
    names = ["vmapper"] + [p for p in args.peers.split(",") if p != "vmapper"]
    if "copy" not in names:
        names.append("copy")
    peers = {}
    for name in names:
        try:
            peers[name] = PEERS[name]()
        except Exception as exc:            # optional peer: report and go on
            print(f"[skip] {name}: {type(exc).__name__}: {exc}")
    dtypes = [np.float32, np.float64] if args.dtype == "both" else [np.dtype(args.dtype).type]
    import numba
    print(f"n = {args.n:,}  repeats = {args.repeats}  numba threads = "
          f"{numba.get_num_threads()}  cpus = {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}  heap: "
          + ("warm (glibc keeps large freed blocks: no peer's outputs page-fault)"
             if _WARM_HEAP_ENV[0] in os.environ else "default (large outputs page-fault on every call)"))
    rng = random.Random(0)
    for dtype in dtypes if args.route != "only" else []:
        for work in args.work.split(","):
            xs = _inputs(work, args.n, dtype)
            nin, nout = ARITY[work]
            nbytes = (nin + nout) * args.n * np.dtype(dtype).itemsize
            ref = peers["vmapper"][work](*xs)
            notes, live = {}, {}
            for name, fns in peers.items():            # warm-up / compile
                fn = fns[work]
                try:
                    t0 = time.perf_counter()
                    out = fn(*xs)
                    notes[name] = f"first call {time.perf_counter() - t0:.2f}s"
                    if name != "copy" and not _agree(out, ref, dtype):
                        notes[name] += "  RESULT MISMATCH"
                    live[name] = fn
                    del out
                except Exception as exc:
                    notes[name] = f"failed: {type(exc).__name__}: {str(exc)[:60]}"
            # Round-robin: one call of every peer per round (shuffled), so a
            # change in machine load (shared 2-core box) hits all peers
            # alike; a short pause before each call lets the previous peer's
            # thread pool (XLA/Eigen and OpenMP spin-wait) go idle first.
            def sample(name):
                time.sleep(0.05)
                return median_time(lambda: live[name](*xs), repeats=1, warmup=0)
            times = round_robin_medians(live, args.repeats, rng, sample)
            tv = times.get("vmapper")
            rows = []
            for name in peers:
                t = times.get(name)
                rows.append({
                    "peer": name, "ms": None if t is None else 1e3 * t,
                    "GB/s": None if t is None else nbytes / t / 1e9,
                    "vs vmapper": None if (t is None or tv is None) else t / tv,
                    "note": notes.get(name, ""),
                })
            frac = times.get("copy", math.nan) / tv if tv else math.nan
            print(f"\n== {work}  {np.dtype(dtype).name}  ({nin} in, {nout} out, "
                  f"{nbytes / 1e6:.0f} MB moved)  vmapper at {100 * frac:.0f}% of "
                  f"the streaming bound")
            print_table(rows)
    if args.route != "no":
        per_sample_route(args.n, args.repeats, dtypes, rng)


if __name__ == "__main__":
    main()
