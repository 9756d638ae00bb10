"""Elementwise activations on the GPU: vmapper's CuPy kernels against peers.

The workloads of ``benchmarks/elementwise.py`` (GELU tanh form and the LSTM
cell, forward and backward, ``--n`` elements, float32 and float64), on
arrays that live on the device:

``vmapper``        ``vmapper.kernels.activations`` on CuPy arrays (one fused
                   CUDA kernel per call)
``batched``        the per-sample functions of ``elementwise.py`` (``gelu_sample``,
                   ``lstm_sample``) under ``vmapper.batched``: one generated CUDA
                   kernel per call; forward only, gradients in ``--route``)
``cupy``           the same formulas as unfused CuPy operations
``torch``          torch eager on CUDA tensors (hand-written backward)
``torch.compile``  ``torch.compile`` of the same functions (inductor, Triton)
``jax``            ``jax.jit(f)`` / ``jax.jit(lambda ...: jax.vjp(f, ...))``
``copy``           the streaming bound: a kernel of vmapper's launcher that reads
                   every input and writes every output once (no math)
``memcpy``         ``cupy.copyto`` of as many bytes (read + write) as the
                   workload moves: the device-to-device copy bandwidth

Each peer allocates its outputs (from its framework's caching allocator).
One sample is ``--calls`` back-to-back calls between two device
synchronisations, divided by ``--calls``, so launch overheads count as they
would in a loop of such calls; the peers take turns (shuffled rounds) and
the median of ``--repeats`` samples is printed with effective GB/s (bytes
in + out / time), ``vs vmapper`` (peer time / vmapper time: > 1 means
vmapper is faster) and vmapper's fraction of the ``memcpy`` bandwidth (the
issue's target: >= 0.7).  Results are checked against vmapper's.

Usage::

    python benchmarks/gpu_elementwise.py                 # needs CuPy and a CUDA GPU
    python benchmarks/gpu_elementwise.py --peers vmapper,cupy,copy --n 1000000

Then (``--route``) the per-sample route with gradients: ``gelu_sample`` under
``value_and_grad`` and ``lstm_sample`` under ``vjp`` on CuPy arrays (their
kernels' dual-number partials, in CUDA kernels, ``kernel_partials`` "store"
and "recompute"), against the activation kernels and their VJPs called by hand.

Without CuPy or a GPU the script says so and exits with status 0.
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
# JAX would otherwise take 75% of the device for itself at import
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from _harness import cupy_with_gpu, print_table, round_robin_medians  # noqa: E402
from elementwise import ARITY, _torch_fns, array_fns, gelu_sample, jax_fns, lstm_sample  # noqa: E402
import vmapper  # noqa: E402
from vmapper.kernels import activations as A  # noqa: E402


def make_vmapper(cp):
    return {"gelu_fwd": A.gelu, "gelu_bwd": A.gelu_vjp,
            "lstm_fwd": A.lstm_cell, "lstm_bwd": A.lstm_cell_vjp}


def make_batched(cp):
    return {"gelu_fwd": vmapper.batched(gelu_sample, backend="cupy"),
            "lstm_fwd": vmapper.batched(lstm_sample, backend="cupy")}


def make_copy(cp):
    from vmapper.kernels import cupy_activations as CA

    def kernel(work):
        nin, nout = ARITY[work]
        ins, outs = [f"a{k}" for k in range(nin)], [f"o{k}" for k in range(nout)]
        # output k sums the inputs k, k+nout, ...: every input read once
        body = " ".join(f"o{k} = " + " + ".join(ins[k::nout]) + ";" for k in range(nout))
        # vmapper's own launcher (unrolled RawKernel): the bound has the kernels' structure
        return CA._kernel("bench_copy_" + work, ins, outs, body)
    return {w: kernel(w) for w in ARITY}


def make_memcpy(cp):
    def make(work):
        nin, nout = ARITY[work]

        def run(*xs):
            # half the moved bytes read, half written, as one copy
            half = (nin + nout) * xs[0].size // 2
            src = _scratch(cp, xs[0].dtype, half)
            dst = cp.empty_like(src)
            cp.copyto(dst, src)
            return dst
        return run
    return {w: make(w) for w in ARITY}


_SCRATCH = {}


def _scratch(cp, dtype, size):
    key = (np.dtype(dtype), size)
    if key not in _SCRATCH:
        _SCRATCH[key] = cp.zeros(size, dtype)
    return _SCRATCH[key]


def _torch_peer(cp, compiled):
    torch, fns = _torch_fns()
    if compiled:
        fns = {w: torch.compile(f, dynamic=False) for w, f in fns.items()}

    def wrap(fn):
        def run(*xs):
            with torch.no_grad():
                return fn(*xs)
        return run
    return {w: wrap(f) for w, f in fns.items()}


def make_jax(cp):
    jax, fns = jax_fns()
    if jax.devices()[0].platform != "gpu":
        raise RuntimeError(f"JAX runs on {jax.devices()[0].platform}, not the GPU")
    return fns


PEERS = {"vmapper": make_vmapper, "batched": make_batched, "cupy": array_fns,
         "torch": lambda cp: _torch_peer(cp, False),
         "torch.compile": lambda cp: _torch_peer(cp, True), "jax": make_jax,
         "copy": make_copy, "memcpy": make_memcpy}


def _device_inputs(name, xs_cupy):
    """The inputs as the peer's own device arrays (zero-copy through DLPack)."""
    if name.startswith("torch"):
        import torch
        return [torch.from_dlpack(x) for x in xs_cupy]
    if name == "jax":
        import jax
        return [jax.device_put(np.asarray(x.get())) for x in xs_cupy]
    return xs_cupy


def _as_cupy(cp, r):
    rs = r if isinstance(r, (tuple, list)) else (r,)
    return tuple(cp.from_dlpack(x) for x in rs)


def _agree(cp, a, b, dtype):
    tol = dict(rtol=1e-3, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-12)
    return len(a) == len(b) and all(bool(cp.allclose(x, y, **tol)) for x, y in zip(a, b))


def _synchronize(cp):
    cp.cuda.Device().synchronize()
    try:
        import torch
        torch.cuda.synchronize()
    except ImportError:
        pass


def _sample(cp, fn, xs, calls):
    _synchronize(cp)
    t0 = time.perf_counter()
    for _ in range(calls):
        r = fn(*xs)
    rs = r if isinstance(r, (tuple, list)) else (r,)
    for x in rs:                    # JAX dispatches asynchronously on its own stream
        if hasattr(x, "block_until_ready"):
            x.block_until_ready()
    _synchronize(cp)
    return (time.perf_counter() - t0) / calls


def route_callables(cp):
    """Forward + backward on the device: the activation kernels called by hand, and the
    per-sample functions under ``value_and_grad``/``vjp`` (dual-number partials in CUDA kernels)."""
    def by_hand(work):
        if work == "gelu":
            return lambda x: (A.gelu(x), A.gelu_vjp(x, cp.ones_like(x)))
        return lambda i, f, o, u, c, gh, gc: A.lstm_cell(i, f, o, u, c) + A.lstm_cell_vjp(i, f, o, u, c, gh, gc)

    def per_sample(work, policy):
        if work == "gelu":
            return vmapper.value_and_grad(vmapper.batched(gelu_sample), kernel_partials=policy)
        lstm = vmapper.batched(lstm_sample)

        def run(i, f, o, u, c, gh, gc):
            out, back = vmapper.vjp(lstm, i, f, o, u, c, kernel_partials=policy)
            return out + back((gh, gc))
        return run
    return {"kernels by hand": by_hand, "per-sample (store)": lambda w: per_sample(w, "store"),
            "per-sample (recompute)": lambda w: per_sample(w, "recompute")}


def per_sample_route(cp, args, rng):
    routes = route_callables(cp)
    for dtype in [np.float32, np.float64] if args.dtype == "both" else [np.dtype(args.dtype).type]:
        for work, nin in (("gelu", 1), ("lstm", 7)):
            host = np.random.default_rng(1).normal(0.0, 2.0, (nin, args.n)).astype(dtype)
            xs = [cp.asarray(h) for h in host]
            fns = {name: make(work) for name, make in routes.items()}
            ref = [cp.asarray(r) for r in _flat(fns["kernels by hand"](*xs))]
            notes = {}
            for name, fn in fns.items():
                t0 = time.perf_counter()
                got = [cp.asarray(r) for r in _flat(fn(*xs))]
                _synchronize(cp)
                notes[name] = f"first call {time.perf_counter() - t0:.2f}s"
                if not _agree(cp, got, ref, dtype):
                    notes[name] += "  RESULT MISMATCH"
            times = round_robin_medians(fns, args.repeats, rng,
                                        lambda name: _sample(cp, fns[name], xs, args.calls))
            base = times["kernels by hand"]
            print(f"\n== per-sample route on the device: {work} forward+backward  {np.dtype(dtype).name}")
            print_table([{"route": name, "us": 1e6 * t, "time / by hand": t / base, "note": notes[name]}
                         for name, t in times.items()])


def _flat(r):
    out = []
    for x in (r if isinstance(r, (tuple, list)) else (r,)):
        out.extend(_flat(x) if isinstance(x, (tuple, list)) else [x])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10 ** 7, help="elements per array")
    ap.add_argument("--repeats", type=int, default=9, help="samples per peer (median)")
    ap.add_argument("--calls", type=int, default=20, help="back-to-back calls per sample")
    ap.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    ap.add_argument("--peers", default=",".join(PEERS), help="subset of: " + ", ".join(PEERS))
    ap.add_argument("--work", default=",".join(ARITY), help="subset of: " + ", ".join(ARITY))
    ap.add_argument("--route", choices=["yes", "no", "only"], default="yes",
                    help="also time the per-sample route with gradients (value_and_grad/vjp of the "
                         "per-sample functions vs the kernels called by hand); 'only': just that")
    args = ap.parse_args(argv)
    cp, why = cupy_with_gpu()
    if cp is None:
        print(f"gpu_elementwise: skipped, CuPy with a CUDA GPU is needed ({why})")
        return 0
    peers = {}
    for name in ["vmapper"] + [p for p in args.peers.split(",") if p not in ("vmapper", "memcpy")] + ["memcpy"]:
        try:
            peers[name] = PEERS[name](cp)
        except Exception as exc:            # optional peer: report and go on
            print(f"[skip] {name}: {type(exc).__name__}: {exc}")
    props = cp.cuda.runtime.getDeviceProperties(0)
    print(f"device: {props['name'].decode()}  n = {args.n:,}  median of {args.repeats} samples "
          f"of {args.calls} calls")
    dtypes = [np.float32, np.float64] if args.dtype == "both" else [np.dtype(args.dtype).type]
    rng = random.Random(0)
    status = 0
    for dtype in dtypes if args.route != "only" else []:
        for work in args.work.split(","):
            nin, nout = ARITY[work]
            host = np.random.default_rng(0).normal(0.0, 2.0, (nin, args.n)).astype(dtype)
            xs = [cp.asarray(h) for h in host]
            nbytes = (nin + nout) * args.n * np.dtype(dtype).itemsize
            ref = _as_cupy(cp, peers["vmapper"][work](*xs))
            live, inputs, notes = {}, {}, {}
            for name, fns in peers.items():
                if work not in fns:
                    notes[name] = "n/a"
                    continue
                try:
                    ins = _device_inputs(name, xs)
                    t0 = time.perf_counter()
                    out = fns[work](*ins)
                    _sample(cp, fns[work], ins, 1)
                    notes[name] = f"first call {time.perf_counter() - t0:.2f}s"
                    if name not in ("copy", "memcpy") and not _agree(cp, _as_cupy(cp, out), ref, dtype):
                        notes[name] += "  RESULT MISMATCH"
                        status = 1 if name == "cupy" else status
                    live[name], inputs[name] = fns[work], ins
                    del out
                except Exception as exc:
                    notes[name] = f"failed: {type(exc).__name__}: {str(exc)[:70]}"
            times = round_robin_medians(live, args.repeats, rng,
                                        lambda name: _sample(cp, live[name], inputs[name], args.calls))
            tv = times.get("vmapper")
            rows = [{"peer": name, "us": None if t is None else 1e6 * t,
                     "GB/s": None if t is None else nbytes / t / 1e9,
                     "vs vmapper": None if t is None or tv is None else t / tv,
                     "note": notes.get(name, "")}
                    for name in peers for t in [times.get(name)]]
            frac = times["memcpy"] / tv if tv and "memcpy" in times else float("nan")
            print(f"\n== {work}  {np.dtype(dtype).name}  ({nin} in, {nout} out, {nbytes / 1e6:.0f} MB "
                  f"moved)  vmapper at {frac:.2f} of the device-to-device copy bandwidth")
            print_table(rows)
            xs = inputs = live = None  # (the device arrays go before the next case allocates)
    if args.route != "no":
        per_sample_route(cp, args, rng)
    return status


if __name__ == "__main__":
    sys.exit(main())
