"""Differentiating a kernel by dual numbers: the forward kernel's partials, contracted in one backward kernel.

When a differentiated call reaches a function that runs as one compiled
kernel, the tape does not record the kernel's scalar operations one by one.
The function's forward-mode derivative
(:func:`~vmapper.autodiff.forward_mode.jvp_function`) gives, per lane and
following the lane's own branches and loop trips, each result's partial
derivative with respect to each differentiated input; the reverse sweep
contracts them with the results' gradients, ``grad input_k = sum_j g_j *
d result_j / d input_k`` (summed over lanes for a uniform, broadcast input),
in one fused kernel.  No masks are involved: the kernel ran on exactly the
lanes that made the call, so no inactive lane's value can meet a gradient.

Two policies (``value_and_grad(..., kernel_partials=...)``), chosen per
function by the default ``"auto"``: ``"store"`` for a function with a loop
(recomputing would run every trip again: measured 1.4-1.9x slower on
``benchmarks/grad_loops.py``) or a single result (its partials are no more
arrays than its inputs: GELU 1.2-1.4x faster stored), ``"recompute"``
otherwise (the LSTM cell's 10 stored partials cost 4-8x more memory traffic
than recomputing them, ``benchmarks/elementwise.py --route only``):

* ``"store"`` -- the forward kernel computes values and partials in one
  pass and the tape keeps the partials (``results x inputs`` floats per lane,
  whatever the trip counts, less those zero on every path: a result that does
  not depend on an input); the backward kernel only contracts them;
* ``"recompute"`` -- the forward pass runs the plain kernel and the
  tape keeps the inputs; the backward kernel
  (:func:`~vmapper.autodiff.forward_mode.vjp_kernel_function`) recomputes the
  duals and contracts them in the same pass.  It moves the fewest bytes (the
  inputs and gradients, as a hand-written backward would).  A function
  without control flow that has more differentiated inputs than results gets
  a reverse-mode backward kernel instead (:mod:`.reverse_kernel`): one
  adjoint sweep, as a hand-written VJP does, rather than one tangent sweep
  per input.

On the tape a kernel call is one entry for all its results (parents: the
differentiated inputs) plus a projection entry per float result
(:func:`~vmapper.autodiff.tape.project_results`), so the backward kernel
runs once, when the gradients of all results are complete.
"""
from __future__ import annotations

import numpy as np

from ..runtime.values import Lanes, array_module
from .forward_mode import (NotDifferentiable, contraction_function, jvp_function, result_count,
                           vjp_kernel_function, zero_partials)
from .reverse_kernel import adjoint_function
from .tape import project_results

POLICIES = ("auto", "recompute", "store")
DEFAULT_POLICY = "auto"


def _cached(program, kind, key, build):
    cache = program.__dict__.setdefault("_dual_ir", {})
    if (kind, key) not in cache:
        try:
            cache[kind, key] = build()
        except NotDifferentiable as exc:
            cache[kind, key] = exc
    hit = cache[kind, key]
    if isinstance(hit, NotDifferentiable):
        raise hit
    return hit


def run_with_partials(tape, program, raw_args, nodes, n, launch):
    """Run ``program``'s kernel on ``raw_args`` and record its derivative on ``tape``.

    ``nodes[i]`` is the tape node of argument ``i`` (None: not differentiated);
    ``launch(fn_ir, extra=()) -> [(data, weak), ...]`` compiles and runs a
    kernel of an IR function over the call's arguments followed by the lane
    arrays ``extra`` (raising the lanes' errors).  Returns the traced results,
    or raises NotDifferentiable when forward mode cannot serve.
    """
    wrt = tuple(i for i, nd in enumerate(nodes) if nd is not None)
    count = result_count(program.ir)
    m, k = (1 if count is None else count), len(wrt)
    policy = getattr(tape, "kernel_partials", DEFAULT_POLICY)
    if policy == "auto":
        policy = "store" if m == 1 or _has_loop(program.ir) else "recompute"
    if policy == "store":
        # partials that are zero on every path (a result that does not depend on an input) are
        # neither computed into arrays nor stored: the contraction leaves them out
        keep = _cached(program, "keep", wrt, lambda: _nonzero_partials(program.ir, wrt, m * k))
        results = launch(_cached(program, "jvp-kept", wrt, lambda: jvp_function(program.ir, wrt, keep)))
        values = results[:m]
        partials = [data for data, _ in results[m:]]
        contraction = _cached(program, "contract", (m, k, tuple(keep)),
                              lambda: contraction_function(m, k, program.ir.source, keep))

        def backward(cots):
            if m == 1 and len(keep) == k and _is_unit(cots[0]):
                # 1 * p == p bit for bit: the stored partials are the gradients
                return [(p, False) for p in partials]
            return launch(contraction, _dense(cots, values) + partials, replace_args=True)
    else:
        backward_ir = _cached(program, "vjp", wrt, lambda: _backward_function(program.ir, wrt, m, k))
        values = launch(program.ir)
        _cached(program, "jvp", wrt, lambda: jvp_function(program.ir, wrt))  # fail now, not in the backward

        def backward(cots):
            return launch(backward_ir, _dense(cots, values))

    inputs = [raw_args[i] for i in wrt]
    lanes = tuple(Lanes(value, weak) for value, weak in values)
    group = tape.record("kernel", _group_vjp(backward, values), inputs, lanes, {},
                        [nodes[i] for i in wrt], None, n)
    out = project_results(tape, group, n)
    return out[0] if count is None else out


def _nonzero_partials(fn, wrt, count):
    zero = set(zero_partials(fn, wrt))
    return [i for i in range(count) if i not in zero]


def _has_loop(fn):
    """Whether ``fn``'s CFG has a cycle (the recompute policy would run its loops twice)."""
    cached = fn.annotations.get("has_loop")
    if cached is None:
        import networkx as nx
        cached = fn.annotations["has_loop"] = not nx.is_directed_acyclic_graph(fn.to_networkx())
    return cached


def _backward_function(fn, wrt, m, k):
    """The recompute policy's backward kernel: adjoints when cheaper, else forward-mode duals."""
    if m < k:  # reverse mode: one adjoint sweep instead of k tangent sweeps
        adjoint = adjoint_function(fn, wrt)
        if adjoint is not None:
            return adjoint
    return vjp_kernel_function(fn, wrt)


def _is_unit(cot):
    """Whether ``cot`` is a cotangent of 1 on every lane held as a broadcast (zero stride)."""
    return type(cot) is np.ndarray and cot.ndim == 1 and cot.strides == (0,) and cot.size and cot[0] == 1


def _dense(cots, values):
    """The cotangents as contiguous arrays where the kernel's ``values`` are (the unit seed of
    ``value_and_grad`` is a host broadcast)."""
    xp = array_module(values[0][0])
    return [xp.ones(c.shape, c.dtype) if xp is not np and _is_unit(c) else xp.ascontiguousarray(xp.asarray(c))
            for c in cots]


def _group_vjp(backward, values):
    xp = array_module(values[0][0])

    def vjp(g, out, args, attrs, n):
        cots = []
        for (value, _), gj in zip(values, g):
            if gj is not None and _is_unit(gj) and gj.dtype == value.dtype:
                cots.append(gj)  # kept a broadcast: the backward may skip the contraction
                continue
            cots.append(xp.zeros(n, value.dtype) if gj is None else
                        xp.ascontiguousarray(xp.broadcast_to(xp.asarray(gj), (n,)), dtype=value.dtype))
        grads = []
        for (data, _), arg in zip(backward(cots), args):
            dtype = arg.data.dtype if isinstance(arg, Lanes) else np.result_type(arg)
            grads.append(data.astype(dtype, copy=False) if isinstance(arg, Lanes) else data.sum(dtype=dtype))
        return grads
    return vjp


__all__ = ["run_with_partials", "POLICIES", "DEFAULT_POLICY", "NotDifferentiable"]
