"""Minimal timing/reporting helpers shared by the benchmark scripts.

Deliberately tiny (two functions) so that several benchmark scripts can
share it without coordinating on anything beyond these signatures:

    median_time(fn, repeats=5, warmup=1) -> float   # seconds
    print_table(rows)                               # rows: list of dicts
"""
from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

__all__ = ["median_time", "round_robin_medians", "print_table", "cupy_with_gpu"]


@dataclass
class Result:
    """One row of a benchmark table: a method's median time and how it checked out."""
    method: str
    seconds: float
    compile_s: Optional[float] = None
    check: str = ""
    note: str = ""


def median_time(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` timed calls.

    ``warmup`` untimed calls run first so that JIT compilation, caches and
    lazy imports are not counted.  The median (not the mean or the minimum)
    is reported because it is robust to the occasional scheduler hiccup on a
    small shared machine while still reflecting a typical run.  The garbage
    collector is paused during each timed call (as ``timeit`` does) so a
    collection triggered by earlier allocations is not billed to ``fn``.
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        finally:
            if gc_was_enabled:
                gc.enable()
    return statistics.median(times)


def round_robin_medians(names, repeats, rng, sample) -> dict:
    """``{name: median of sample(name)}`` over ``repeats`` rounds, each round one sample of
    every name in a shuffled order (``rng.shuffle``), so that a change in the machine's load
    hits every peer alike."""
    order, samples = list(names), {name: [] for name in names}
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            samples[name].append(sample(name))
    return {name: statistics.median(v) for name, v in samples.items()}


def print_table(rows: Sequence[Mapping[str, Any]]) -> None:
    """Print ``rows`` (dicts sharing the keys of the first row) as an aligned
    plain-text table.  Floats are shown with 4 significant digits; ``None``
    is shown as ``-``.  Numeric-looking columns are right-aligned."""
    if not rows:
        return
    headers = list(rows[0].keys())

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [[fmt(r.get(h)) for h in headers] for r in rows]
    numeric = [
        all(isinstance(r.get(h), (int, float)) or r.get(h) is None for r in rows)
        for h in headers
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric)
        ).rstrip()

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print(line(c))


def cupy_with_gpu():
    """``(cupy, "")`` where CuPy imports and sees a CUDA device, else ``(None, why not)``."""
    try:
        import cupy as cp
        if cp.cuda.runtime.getDeviceCount() < 1:
            return None, "no CUDA device"
        return cp, ""
    except Exception as exc:  # ImportError, or CUDA driver/runtime errors
        return None, f"{type(exc).__name__}: {exc}"
