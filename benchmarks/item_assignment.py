"""A DP table filled item by item: Levenshtein distance written per pair of strings.

The per-sample function fills a ``(la + 1) x (lb + 1)`` table of one pair
(codes in ``a``/``b``, padded to ``--width``, real lengths ``la``/``lb``) with
``d[i, j] = ...``: every assignment of every lane updates a per-sample array,
under per-lane trip counts.  Peers, in one process, in shuffled rounds:

``vmapper``         ``vmapper.batched(levenshtein)`` (default backend: the table is
                    a per-sample array, so the numpy runtime runs it, masked)
``vmapper-numpy``   the same with ``backend="numpy"``
``python``          the per-sample function in a Python loop over the pairs
``numba-prange``    the same per-sample code under ``@njit``, a ``prange`` over the pairs
                    (the compiled per-sample limit)

All results are checked against the Python loop.  Printed: median ms per
batch and vmapper / peer time ratios (below 1: vmapper is faster).

    python benchmarks/item_assignment.py [--pairs 5000] [--width 24] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (os.path.dirname(_HERE), _HERE):  # benchmark the vmapper of this checkout
    if _p not in sys.path:
        sys.path.insert(0, _p)

import vmapper  # noqa: E402
from _harness import print_table, round_robin_medians  # noqa: E402

WIDTH = 24  # the table's static shape (a per-sample array's shape is the same on every lane)


def levenshtein(a, b, la, lb):
    d = np.zeros((WIDTH + 1, WIDTH + 1))
    for i in range(la + 1):
        d[i, 0] = i
    for j in range(lb + 1):
        d[0, j] = j
    for i in range(1, la + 1):
        for j in range(1, lb + 1):
            cost = 0.0 if a[i - 1] == b[j - 1] else 1.0
            d[i, j] = min(d[i - 1, j] + 1.0, d[i, j - 1] + 1.0, d[i - 1, j - 1] + cost)
    return d[la, lb]


def _numba_peer():
    from numba import njit, prange
    inner = njit(levenshtein)

    @njit(parallel=True)
    def all_pairs(a, b, la, lb):
        out = np.empty(len(la))
        for k in prange(len(la)):
            out[k] = inner(a[k], b[k], la[k], lb[k])
        return out
    return all_pairs


def main(argv=None):
    global WIDTH
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5000, help="pairs of strings per batch")
    ap.add_argument("--width", type=int, default=24, help="longest string (the table is width+1 square)")
    ap.add_argument("--repeats", type=int, default=5, help="shuffled rounds (median)")
    args = ap.parse_args(argv)
    if min(args.pairs, args.width, args.repeats) < 1:
        ap.error("--pairs, --width and --repeats must be >= 1")
    WIDTH = args.width
    rng = np.random.default_rng(0)
    n = args.pairs
    a, b = rng.integers(0, 4, (n, WIDTH)), rng.integers(0, 4, (n, WIDTH))
    la, lb = rng.integers(WIDTH // 2, WIDTH + 1, n), rng.integers(WIDTH // 2, WIDTH + 1, n)
    want = np.array([levenshtein(*s) for s in zip(a, b, la.tolist(), lb.tolist())])
    numba_all = _numba_peer()
    peers = {
        "vmapper": vmapper.batched(levenshtein),
        "vmapper-numpy": vmapper.batched(levenshtein, backend="numpy"),
        "python": lambda *xs: np.array([levenshtein(*s) for s in zip(xs[0], xs[1], xs[2].tolist(), xs[3].tolist())]),
        "numba-prange": numba_all,
    }
    first = {}
    for name, f in peers.items():  # warm up (compiles), and check
        t0 = time.perf_counter()
        got = f(a, b, la, lb)
        first[name] = time.perf_counter() - t0
        if not np.array_equal(got, want):
            sys.exit(f"{name}: results differ from the per-sample loop")

    def sample(name):
        t0 = time.perf_counter()
        peers[name](a, b, la, lb)
        return time.perf_counter() - t0
    med = round_robin_medians(list(peers), args.repeats, random.Random(0), sample)
    print(f"{n} pairs, strings of {WIDTH // 2}-{WIDTH} symbols, median of {args.repeats} shuffled rounds")
    print_table([{"peer": k, "median_ms": v * 1e3, "first_call_s": first[k],
                  "vmapper / peer": med["vmapper"] / v} for k, v in med.items()])
    print(f"last_stats: {peers['vmapper'].last_stats}")


if __name__ == "__main__":
    main()
