"""Differentiating a kernel: dual-number partials from the forward kernel, one tape entry per result.

When a differentiated call reaches a function that runs as one compiled
kernel, the tape does not record the kernel's scalar operations one by one.
Instead the kernel of the function's forward-mode derivative
(:func:`~vmapper.autodiff.forward_mode.jvp_function`) computes, per lane and
following the lane's own branches and loop trips, each result's partial
derivative with respect to each differentiated input.  The reverse sweep then
only multiplies: ``grad input_k += sum_j g_j * d result_j / d input_k``, summed
over lanes for a uniform (broadcast) input.  No masks are involved: the kernel
ran on exactly the lanes that made the call, so no inactive lane's value can
meet a gradient.

Two policies (``Tape.kernel_partials``):

* ``"store"`` (default) -- the forward kernel computes values and partials in
  one pass; the tape keeps the partials: ``n_results * n_inputs`` floats per
  lane, whatever the trip counts;
* ``"recompute"`` -- the forward pass runs the plain kernel; the tape keeps the
  inputs, and the reverse sweep runs the dual kernel on them.

``benchmarks/grad_loops.py --kernel-partials recompute`` measures the two.
"""
from __future__ import annotations

import numpy as np

from ..runtime.values import Lanes
from .forward_mode import NotDifferentiable, jvp_function, result_count

POLICIES = ("store", "recompute")


def jvp_ir(program, wrt):
    """The cached forward-mode IR of ``program`` for inputs ``wrt`` (raises NotDifferentiable)."""
    cache = program.__dict__.setdefault("_jvp_ir", {})
    if wrt not in cache:
        try:
            cache[wrt] = jvp_function(program.ir, wrt)
        except NotDifferentiable as exc:
            cache[wrt] = exc
    hit = cache[wrt]
    if isinstance(hit, NotDifferentiable):
        raise hit
    return hit


def run_with_partials(tape, program, raw_args, nodes, n, launch):
    """Run ``program``'s kernel on ``raw_args`` and record its partials on ``tape``.

    ``nodes[i]`` is the tape node of argument ``i`` (None: not differentiated);
    ``launch(fn_ir) -> [(data, weak), ...]`` compiles and runs a kernel of an
    IR function over the same arguments (raising the lanes' errors).  Returns the traced
    results, or raises NotDifferentiable when forward mode cannot serve.
    """
    wrt = tuple(i for i, nd in enumerate(nodes) if nd is not None)
    dual = jvp_ir(program, wrt)
    count = result_count(program.ir)
    m = 1 if count is None else count
    policy = getattr(tape, "kernel_partials", "store")
    if policy == "store":
        results = launch(dual)
        values, partials = results[:m], [data for data, _ in results[m:]]
        get_partials = lambda: partials  # noqa: E731
    else:
        values = launch(program.ir)
        cached = []

        def get_partials():
            if not cached:
                cached.append([data for data, _ in launch(dual)[m:]])
            return cached[0]
    k = len(wrt)
    inputs = [raw_args[i] for i in wrt]
    parents = [nodes[i] for i in wrt]
    out = []
    for j, (value, weak) in enumerate(values):
        lanes = Lanes(value, weak)
        if value.dtype.kind != "f":
            out.append(lanes)
            continue
        out.append(tape.record("kernel", _result_vjp(get_partials, j, k, value.dtype), inputs, lanes, {},
                               parents, None, n))
    return out[0] if count is None else tuple(out)


def _result_vjp(get_partials, j, k, dtype):
    def vjp(g, out, args, attrs, n):
        partials = get_partials()
        grads = []
        for i, arg in enumerate(args):
            d = g * partials[j * k + i].astype(dtype, copy=False)
            grads.append(d if isinstance(arg, Lanes) else d.sum())
        return grads
    return vjp


__all__ = ["run_with_partials", "jvp_ir", "POLICIES", "NotDifferentiable"]
