"""Static types for compiling an elementwise IR function into one numba kernel.

The numpy runtime decides dtypes at run time, lane group by lane group; a
kernel must decide them once, when it is generated.  This module infers, for
every variable at every program point, a :class:`ST` (numpy dtype + NEP 50
``weak`` flag) with the rules of :mod:`vmapper.runtime.values` and
:mod:`vmapper.primitives.scalar_ops`:

* operands are *prepared* as ``scalar_ops.prepare`` does: weak bools become
  weak int64 in arithmetic, and weak operands are cast to the NEP 50 result
  type of the operand list when a strong operand is present;
* the ufunc loop is then chosen by numpy itself (``ufunc.resolve_dtypes``), so
  the kernel computes in exactly the dtype numpy would;
* a result is weak iff all (prepared) operands are weak, except for the ops
  that say otherwise (``np.*`` functions: strong; ``int()``/``float()``/
  ``math.*``/comparisons of weak values: weak...);
* a variable that reaches a block with different types on different paths is
  merged as ``values._merge_dtype`` merges lanes (``np.promote_types``, or the
  NEP 50 result type when a weak value meets a strong one; weak iff weak on
  every path), as ``values.select`` / masked stores do.

Types are flow-sensitive: within a block an assignment replaces the
variable's type; joins promote.  The runtime can give a narrower dtype when
no lane of a batch takes one of the paths (it only promotes what it sees);
the kernel promotes statically.

Uniform computations whose operands are all literal constants are folded
here with Python semantics (as the runtime computes uniform values), and a
fold that raises turns into an unconditional error at that point.

Anything whose batched semantics the kernel cannot reproduce exactly raises
:class:`KernelUnsupported`; the caller then uses the numpy runtime, which
also produces the precise error message for type errors.

The code lives in sibling modules (re-exported here): :mod:`.typing_rules`
(types, dtype rules, operation tables, messages), :mod:`.typing_ops`
(per-instruction plans), :mod:`.typing_prepare` (the IR copy kernels are
generated from) and :mod:`.typing_infer` (whole-function CFG inference).
"""
from __future__ import annotations

from .typing_rules import (  # noqa: F401
    KernelUnsupported, SUPPORTED_DTYPES, BOOL, I64, F64, ST, TT, check_dtype, const_type,
    is_number_const, is_const_collection, arg_type, promote, result_dtype, prepare, resolve,
    ARITH_BINARY, BIT_BINARY, COMPARE, UNARY, MATH_FUNCS, MATH_INT_FUNCS, MATH_PRED_FUNCS,
    NUMPY_UNARY, NUMPY_BINARY, CAST_OPS, SUPPORTED_OPS, MSG_DIV, MSG_POW_INT, MSG_POW_ZERO,
    MSG_POW_DOMAIN, MSG_POW_OVERFLOW, MSG_INT_NAN, MSG_INT_INF, MSG_INT_BIG, MSG_SHIFT,
    MSG_ROUND_BIG, MSG_INT_UINT_BIG, MSG_MATH_DOMAIN, MSG_MATH_RANGE, MSG_LOG_BASE_ONE, MSG_RANGE_STEP, MSG_RANGE_EDGE,
    INT64_MAX, INT64_MIN, CONTAINER,
    math_inf_error, int_big_message)
from .typing_ops import (  # noqa: F401
    Plan, plan_binary, plan_unary, plan_numpy, plan_math, plan_fold_extreme, plan_contains,
    infer_op)
from .typing_prepare import prepare_ir  # noqa: F401
from .typing_infer import FunctionTypes, infer_function  # noqa: F401

__all__ = ["KernelUnsupported", "ST", "TT", "Plan", "FunctionTypes", "const_type", "arg_type",
           "promote", "infer_function", "SUPPORTED_OPS", "MATH_FUNCS", "NUMPY_UNARY",
           "NUMPY_BINARY", "CAST_OPS", "prepare_ir"]

