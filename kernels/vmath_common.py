"""Shared pieces of :mod:`vmapper.kernels.vmath`: the function list, the numba
jit options (no fastmath; ``forceinline`` for scalar functions), the
float<->int bitcast intrinsics and the dtype shorthands."""
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .vector_width import HAS_FMA  # (importing it stamps numba's cache of vmath_*.py)
FUNCTIONS = ("exp", "log", "log1p", "expm1", "tanh", "sigmoid", "erf",
             "sin", "cos")

# error_model='numpy': a float division by zero must not raise (the raise
# branch would stop vectorization).  cache=True: compile once per machine.
_JIT = dict(error_model="numpy", cache=True)
# Scalar functions are marked LLVM ``alwaysinline`` (forceinline): the
# default inliner gives up on the larger ones (tanh/erf/sin with their
# inlined exp/reduction), and a call left in a loop body prevents
# vectorization.  (numba's inline='always' also works but re-types the IR at
# every call site: several times slower to compile.)
_SJIT = dict(_JIT, forceinline=True)


# ----------------------------------------------------------------- bitcasts
def _bitcast(src, dst, lltype):
    @intrinsic
    def cast(typingctx, x):
        if x != src:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], lltype)
        return dst(src), codegen
    return cast


_f32_bits = _bitcast(types.float32, types.int32, ir.IntType(32))
_bits_f32 = _bitcast(types.int32, types.float32, ir.FloatType())
_f64_bits = _bitcast(types.float64, types.int64, ir.IntType(64))
_bits_f64 = _bitcast(types.int64, types.float64, ir.DoubleType())

F, D, I32, I64 = np.float32, np.float64, np.int32, np.int64


@intrinsic
def fma(typingctx, a, b, c):
    """``a*b + c``, rounded once where the CPU has fused multiply-add
    (:data:`.vector_width.HAS_FMA`), else after the multiply and after the add.
    For the polynomial and range-reduction steps of vmath, whose accuracy is
    measured and bounded in ulp; never for the arithmetic of user code, which
    stays bitwise equal to the per-sample run."""
    if not (a == b == c and isinstance(a, types.Float)):
        return None

    def codegen(context, builder, sig, args):
        x, y, z = args
        if not HAS_FMA:
            return builder.fadd(builder.fmul(x, y), z)
        fn = builder.module.declare_intrinsic("llvm.fma", [x.type] * 3)
        return builder.call(fn, args)
    return a(a, b, c), codegen
