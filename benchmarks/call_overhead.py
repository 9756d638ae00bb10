"""What one batched call costs beyond its work: an elementwise kernel on small and large batches.

The per-sample function is the Adagrad update of one parameter, with its
learning rate and epsilon as module constants::

    def adagrad(p, g, acc):
        acc = acc + g * g
        return p - LR * g / (np.sqrt(acc) + EPS), acc

vmapper runs it as one numba kernel (the constants are passed at each launch).
Peers, in one process, in rounds of consecutive calls:

``vmapper``      ``vmapper.batched(adagrad)`` called on float32 arrays
``numpy``        the same expressions on the arrays (numpy by hand)
``numba``        a hand-written ``@njit`` loop over the arrays, same results
``jax``          ``jax.jit(jax.vmap(adagrad))``, with ``jnp.sqrt`` (when jax imports)

At n = 10 every peer's time is its per-call overhead; the sizes stay small
enough (10**4 float32: 40 KB) that no peer's outputs come fresh from the OS.
Printed: median microseconds per call and vmapper / peer time ratios (below
1: vmapper is faster).

    python benchmarks/call_overhead.py [--sizes 10,1000,10000] [--repeats 2001]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

# One thread for every peer (set before they are imported).
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(1, _REPO_ROOT)

import vmapper  # noqa: E402

LR, EPS = np.float32(0.05), np.float32(1e-10)
#: each peer's calls run in this many blocks of consecutive calls: interleaved call by call,
#: the threads XLA leaves spinning after each of its calls slowed the next peer's call 2x
ROUNDS = 5


def adagrad(p, g, acc):
    acc = acc + g * g
    return p - LR * g / (np.sqrt(acc) + EPS), acc


def by_hand(p, g, acc):
    acc = acc + g * g
    return p - LR * g / (np.sqrt(acc) + EPS), acc


@njit(cache=True)
def _nb(p, g, acc, out_p, out_acc, lr, eps):
    for i in range(p.shape[0]):
        a = acc[i] + g[i] * g[i]
        out_acc[i] = a
        out_p[i] = p[i] - lr * g[i] / (np.sqrt(a) + eps)


def numba_loop(p, g, acc):
    out_p, out_acc = np.empty_like(p), np.empty_like(acc)
    _nb(p, g, acc, out_p, out_acc, LR, EPS)
    return out_p, out_acc


def peers():
    out = {"vmapper": vmapper.batched(adagrad, backend="numba"), "numpy": by_hand, "numba": numba_loop}
    try:
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_platforms", "cpu")

        def adagrad_jax(p, g, acc):  # (the same function with jnp.sqrt)
            acc = acc + g * g
            return p - LR * g / (jnp.sqrt(acc) + EPS), acc
        jitted = jax.jit(jax.vmap(adagrad_jax))

        def jax_call(p, g, acc):
            r = jitted(p, g, acc)
            return tuple(x.block_until_ready() for x in r)
        out["jax"] = jax_call
    except Exception as exc:  # optional peer
        print(f"[skip] jax: {type(exc).__name__}: {exc}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10,1000,10000", help="batch sizes (comma-separated)")
    ap.add_argument("--repeats", type=int, default=2001, help="timed calls per peer and size")
    args = ap.parse_args(argv)
    fns = peers()
    rng = np.random.default_rng(0)
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, numba threads "
          f"{os.environ['NUMBA_NUM_THREADS']}, XLA one thread; median us per call over {args.repeats} "
          f"calls, in {ROUNDS} rounds of consecutive calls per peer")
    for n in (int(s) for s in args.sizes.split(",")):
        p, g = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
        acc = np.abs(rng.standard_normal(n)).astype(np.float32)
        want = by_hand(p, g, acc)
        notes = {}
        for name, fn in fns.items():
            got = fn(p, g, acc)
            ok = all(np.allclose(np.asarray(a), b, rtol=1e-5, atol=0) for a, b in zip(got, want))
            notes[name] = "" if ok else "MISMATCH"
        samples = {name: [] for name in fns}
        order = list(fns)
        for _ in range(ROUNDS):  # each peer's calls back to back, in rounds of shuffled order
            random.shuffle(order)
            for name in order:
                fn = fns[name]
                for _ in range(args.repeats // ROUNDS):
                    t0 = time.perf_counter()
                    fn(p, g, acc)
                    samples[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(v) for name, v in samples.items()}
        print(f"\nn = {n:,}")
        for name in fns:
            ratio = med["vmapper"] / med[name]
            print(f"  {name:<8} {1e6 * med[name]:10.1f} us   vmapper / {name:<8} = {ratio:5.2f}  {notes[name]}")
        if n == min(int(s) for s in args.sizes.split(",")):
            print(f"  (vmapper: {fns['vmapper'].last_stats['kernel_launches']} kernel launch per call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
