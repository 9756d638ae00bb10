"""Which kernel body a function gets: :func:`lockstep_width`.

A lockstep kernel (:mod:`.codegen_lockstep_kernel`) pays a fixed cost per
step -- finding the chunk's next block, a 64-lane loop per block run, masked
loads and stores of the lane variables -- and wins back vector throughput on
the work inside the blocks.  Measured on the 2-core AVX-512 machine (paired
medians, time of the scalar kernel / time of the lockstep kernel, 64 lanes
per chunk, 1e5-2.6e5 lanes; ``benchmarks/kernel_loops_probe.py`` for the
named workloads):

==============================================  ==========
function                                        lockstep
==============================================  ==========
Euler step with ``math.sin`` (value, JVP)       3.3-3.9x
Newton (9 float ops and a division; JVP)        2.0-2.8x
``math.exp`` per trip, 1-40 trips               2.0x
Mandelbrot (11 float ops), float64 / float32    1.6-2.3x / 1.9x
40 trips over a constant range, 7 float ops     1.75x
no loop, branches with ``exp``/``sin``/...      3.1x
Collatz (integer, shifts)                       1.0-1.3x
integer bit loop / ``//`` ``%`` by variables    0.66x / 0.88x
libm calls (``exact_math``), loop / branches    0.6x / 0.8x
4 trips over a constant range (LLVM unrolls)    0.2x
generated programs (branchy, integer, short)    0.3-1.5x
==============================================  ==========

So the rule: lockstep when some loop -- or, in a function without loops,
the whole function, if it branches -- holds a vmath transcendental or at
least :data:`MIN_FLOAT_OPS` float operations (one trip of each of its
blocks), and nothing that stays scalar code in a vectorized loop (integer
division or modulo by a variable, integer powers, float floor
division/modulo, float ``**``, libm functions: ``exact_math``
transcendentals, ``tan``, ``atan2`` ...).  Loops over a short constant range
do not count (LLVM unrolls them in the scalar kernel), and a function
without branches keeps the scalar kernel: LLVM already vectorizes a
straight-line lane function across lanes.

``compile_kernel(..., lockstep=True/False)`` or ``$VMAPPER_LOCKSTEP``
(``1``/``0``) override the rule; the argument wins over the variable.
"""
from __future__ import annotations

import os

import numpy as np

from vmapper.ir import Branch, Const

#: Lanes per chunk (a multiple of 32).  Per-step costs dominate narrow chunks: with
#: 8 / 16 lanes (float64 AVX-512: one / two vectors) Mandelbrot ran at 0.9 / 1.4x the scalar
#: kernel and Collatz at 0.5 / 0.7x; with 32 / 64 / 128 lanes Mandelbrot 1.8 / 2.8 / 2.7x,
#: Collatz 1.2 / 1.5 / 1.6x, the Euler JVP 3.7 / 3.9 / 3.9x, the Newton JVP 3.6 / 3.3 / 3.5x.
#: 64 lanes keep a chunk's state in L1 (512 bytes per float64 lane variable).
WIDTH = 64
#: Float operations per loop (all its blocks, one trip each) from which lockstep pays.
MIN_FLOAT_OPS = 6
#: Loops over a constant range this short do not count (see _short_constant_loops).
MAX_UNROLLED_TRIPS = 16

_TRANSCENDENTAL = {"exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "erf"}
# compiled to vector instructions (or selects) by LLVM
_VECTOR_FUNCS = {"sqrt", "floor", "ceil", "trunc", "rint", "fabs", "abs", "absolute", "negative",
                 "positive", "square", "reciprocal", "minimum", "maximum", "fmin", "fmax", "clip",
                 "where", "copysign", "sign", "isnan", "isinf", "isfinite", "signbit",
                 "degrees", "radians", "deg2rad", "rad2deg", "add", "subtract", "multiply",
                 "divide", "true_divide", "logical_not", "logical_and", "logical_or", "logical_xor"}
_memo: dict = {}


def lockstep_width(fn, arg_types, exact_math, force=None):
    """Chunk width of ``fn``'s lockstep kernel, or None for the scalar kernel.

    ``force``: True/False overrides everything; None reads ``$VMAPPER_LOCKSTEP``
    (``1``/``0``), else applies the rule above (memoized per function and
    argument types).
    """
    if force is None:
        env = os.environ.get("VMAPPER_LOCKSTEP", "")
        if env in ("0", "1"):
            force = env == "1"
    if force is not None:
        return WIDTH if force else None
    from .codegen_source import fingerprint, _spec_key
    key = (fingerprint(fn), tuple(_spec_key(s) for s in arg_types), bool(exact_math))
    if key not in _memo:
        _memo[key] = WIDTH if profitable(fn, arg_types, exact_math) else None
    return _memo[key]


def profitable(fn, arg_types, exact_math) -> bool:
    """The rule of this module for ``fn`` with these argument types."""
    from vmapper.passes.loops import find_loops
    from . import typing as kt
    from .codegen_eligible import kernel_eligible
    if kernel_eligible(fn) is not None:
        return False
    try:
        ir = kt.prepare_ir(fn)
        ft = kt.infer_function(ir, arg_types)
        find_loops(ir)
    except (kt.KernelUnsupported, ValueError):
        return False
    live = set(ft.order)
    short = _short_constant_loops(fn)  # (the pipeline's IR: prepare_ir folds range checks away)
    regions = [loop.blocks & live for loop in ir.annotations["loops"].values() if loop.header not in short]
    if not ir.annotations["loops"] and any(isinstance(ir.blocks[b].term, Branch) for b in live):
        regions = [live]   # no loop, but branches: the scalar lane function does not vectorize
    for blocks in regions:
        flops, vector_math, scalar_only = 0, False, False
        for b in blocks:
            for k, ins in enumerate(ir.blocks[b].instrs):
                cost = _cost(ft.plans.get((b, k)), ins, exact_math)
                if cost == "scalar":
                    scalar_only = True
                elif cost == "vmath":
                    vector_math = True
                else:
                    flops += cost
        if not scalar_only and (vector_math or flops >= MIN_FLOAT_OPS):
            return True
    return False


def _short_constant_loops(ir):
    """Headers of ``for`` loops over a constant ``range`` of at most :data:`MAX_UNROLLED_TRIPS`
    trips: LLVM unrolls those in the scalar lane function, which then vectorizes across lanes
    (4 trips of 10 float ops: the scalar kernel 5x faster; 40 trips: lockstep 1.75x)."""
    from vmapper.ir import Jump
    out = set()
    for blk in ir.blocks.values():
        for ins in blk.instrs:
            if ins.op == "range_check" and all(isinstance(a, Const) and type(a.value) is int
                                               for a in ins.args) and isinstance(blk.term, Jump):
                start, stop, step = (a.value for a in ins.args)
                if step != 0 and len(range(start, stop, step)) <= MAX_UNROLLED_TRIPS:
                    out.add(blk.term.target)
    return out


def _cost(plan, ins, exact_math):
    """Float operations of one instruction, ``"vmath"``, or ``"scalar"`` (stays scalar code)."""
    if plan is None:
        return 0
    kind = plan.kind
    loop = [np.dtype(d) for d in plan.loop]
    is_float = any(d.kind == "f" for d in loop)
    if kind == "binary":
        op = plan.extra["op"]
        if op in ("floordiv", "mod"):
            divisor = ins.args[1]
            if is_float or not isinstance(divisor, Const) or divisor.value in (0, -1):
                return "scalar"  # numpy's helpers: a branch around a division (or fmod)
            return 0
        if op == "pow":
            return "scalar"
        return 1 if is_float else 0
    if kind in ("compare", "unary", "minmax"):
        return 1 if is_float else 0
    if kind in ("math", "numpy"):
        name = plan.extra["name"]
        if name in _TRANSCENDENTAL:
            return "scalar" if exact_math else "vmath"
        if kind == "math" and name in ("degrees", "radians", "fabs", "sqrt"):
            return 1
        return 1 if name in _VECTOR_FUNCS else "scalar"
    return 0
