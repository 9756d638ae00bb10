"""Running a kernel region (:class:`~vmapper.passes.kernel_regions.KernelRegionStep`).

The lanes waiting at the region's entry are gathered, the outlined function
runs over them as one compiled kernel (each lane follows its own branches and
loop trips inside it), its outputs are stored back under the entry mask and
each lane is sent on to the block it left the region for.  In a
differentiated run the kernel's dual-number partials go on the tape
(:mod:`vmapper.autodiff.kernel_partials`).  Whenever the kernel cannot serve
-- another backend, an input that is not a per-lane scalar, a variable not
yet bound on some lane, a type the generator cannot compile exactly -- the
region's own steps run on the masked runtime instead: same results.
"""
from __future__ import annotations

import numpy as np

from .frame import Missing, as_mask, blank_like
from .kernel_dispatch import _NOT_RUN, _arg_type, try_kernel
from .values import Lanes, Traced, gather, scatter_into


class RegionProgram:
    """The outlined function of a region, shaped like a Program for :func:`try_kernel`."""

    def __init__(self, program, step):
        self.ir = step.function
        self.name = step.function.name
        self.where = program.where
        self.source_line = program.source_line
        self._kernel_reason = None
        self._returns_tuple = True


def run_region(program, step, stack, frame, run_steps, send):
    """Run region ``step`` for the lanes pending at its entries (kernel, else its steps)."""
    region = stack[-1]
    pending = [e for e in step.entries if e in region.pending]
    if not pending:
        return
    state = frame.state
    if state.backend == "numba" and _run_kernel(program, step, stack, frame, region, pending, state, send):
        return
    run_steps(program, step.steps, stack, frame)


def _entry_masks(step, region, pending, n):
    """The lanes at the region's entries (None: all lanes) and, with several entries, each lane's entry."""
    if len(step.entries) == 1:
        return as_mask(region.pending[pending[0]]), None
    mask = np.zeros(n, dtype=bool)
    which = np.zeros(n, dtype=np.int64)
    for k, e in enumerate(step.entries):
        if e in region.pending:
            m = as_mask(region.pending[e])
            m = np.ones(n, dtype=bool) if m is None else m
            mask |= m
            which[m] = k
    return (None if mask.all() else mask), which


def _run_kernel(program, step, stack, frame, region, pending, state, send):
    mask, which = _entry_masks(step, region, pending, frame.n)
    idx = None if mask is None else np.flatnonzero(mask)
    m = frame.n if idx is None else len(idx)
    if m == 0:
        return False
    args, varying, uniform_in = [], False, set()
    for name in step.params:
        try:
            value = frame.lookup(name)
        except Missing:
            return False
        undef = frame.undef_mask(name)
        if undef is not None and (undef.any() if mask is None else (undef & mask).any()):
            return False
        raw = value.value if isinstance(value, Traced) else value
        if _arg_type(raw) is None:
            return False
        varying |= isinstance(raw, Lanes)
        if not isinstance(value, (Lanes, Traced)):
            uniform_in.add(name)
        args.append(value if idx is None or not isinstance(raw, Lanes) else gather(value, idx))
    if which is not None:
        args.append(Lanes(which if idx is None else which[idx], False))
    if not varying and which is None:
        return False  # all uniform: the runtime runs it as plain Python control flow
    key = tuple(_signature(a) for a in args)
    if key in step.cache.setdefault("failed", set()):
        return False  # this signature could not be compiled before
    if "program" not in step.cache:
        step.cache["program"] = RegionProgram(program, step)
    # lane ids only when a lane fails (the error names it): not on every launch
    ids = frame.lane_ids if idx is None else (lambda: frame.lane_ids()[idx])
    result = try_kernel(state, step.cache["program"], args, m, ids)
    if result is _NOT_RUN:
        step.cache["failed"].add(key)
        return False
    for e in pending:
        region.pending.pop(e)
    exit_index = result[0].data
    for name, value in zip(step.outputs, result[1:]):
        if name in uniform_in:
            value = _uniform_again(value)
        if idx is not None and isinstance(value, (Lanes, Traced)):
            value = scatter_into(blank_like(value, frame.n), value, idx, frame.n)
        frame.store(name, value, mask)
        frame.shared.discard(name)
    for i, target in enumerate(step.exits):
        leaving = exit_index == i
        if idx is not None:
            full = np.zeros(frame.n, dtype=bool)
            full[idx[leaving]] = True
            leaving = full
        if leaving.any():
            send(stack, target, leaving, frame, program)
    return True


def _uniform_again(value):
    """A variable that came in uniform (a loop counter) and leaves with the same bits on every
    lane is uniform again: later steps keep running it as one value (a key of a constant tuple
    indexed by it stays a Python string, which has no per-lane form)."""
    if type(value) is not Lanes or value.data.ndim != 1 or not value.data.size:
        return value
    d = value.data
    if d.dtype.kind not in "biuf":
        return value
    bits = d.view(f"u{d.itemsize}") if d.dtype.kind == "f" else d  # (-0.0 is not 0.0, NaN is NaN)
    if not (bits == bits[0]).all():
        return value
    return d[0].item() if value.weak else d[0]


def _signature(value):
    raw = value.value if isinstance(value, Traced) else value
    if isinstance(raw, Lanes):
        return ("lanes", raw.data.dtype.str, raw.weak, isinstance(value, Traced))
    return ("uniform", type(raw).__name__, isinstance(value, Traced))
