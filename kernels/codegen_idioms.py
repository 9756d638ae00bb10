"""Instruction selection for idioms of per-sample code: several IR instructions
computed as one vmath function.

The only idiom so far is the logistic sigmoid as users write it,
``1 / (1 + np.exp(-x))``: four instructions, two divisions once ``exp`` is
vectorized (the quotient, and the one inside the rational exp), where
:func:`~vmapper.kernels.vmath.logistic_f64` takes one, a shorter polynomial,
and no overflow: the per-sample route of the LSTM cell spent a third of its
forward kernel there (``benchmarks/elementwise.py --route only``).  Its result
is the expression's to 4 ulp (as ``exp`` alone is only to its ulp bound in
kernels: the expression holds a transcendental function, so no bitwise promise
applies), and 0 wherever numpy's ``exp(-x)`` overflows, as the expression
gives.  ``exact_math=True`` keeps the expression as written.

The chain is fused only where it cannot be observed: each intermediate is a
temporary of the block read once, by the next link, ``x`` is not assigned
within the chain, all four results are float64, as ``-x`` is (no casts), and no stop (an instruction that always raises) falls
inside the chain.
"""
from __future__ import annotations

import numpy as np

from vmapper.ir import Const, Var, is_temp

# float32 keeps the expression: vectors twice as wide make its division cheap, and a
# float32 fraction strays 5 ulp from numpy's thrice-rounded float32 expression (one
# evaluated in float64 was 1.6x slower than the expression on the LSTM cell)
_F64 = np.dtype(np.float64)


def _is_one(a) -> bool:
    return isinstance(a, Const) and type(a.value) in (int, float) and a.value == 1


def _f64_result(plan) -> bool:
    dt = getattr(getattr(plan, "result", None), "dtype", None)
    return dt is not None and np.dtype(dt) == _F64


def logistic_chains(blk, b, plans, flagged=frozenset(), stop_index=None):
    """``{k: ("logistic", x, k_neg) for the quotient, k: ("fused",) for the three links before
    it}`` over the instructions of block ``blk`` (id ``b``), for the chains the module
    docstring describes; ``plans[(b, k)]`` are the kernel typing plans, ``flagged`` the
    temporaries with a maybe-unbound flag (never fused)."""
    instrs = blk.instrs
    where = {ins.target: k for k, ins in enumerate(instrs) if ins.target is not None}
    uses = {}
    for ins in instrs:
        for u in ins.uses():
            uses[u] = uses.get(u, 0) + 1
    for u in blk.term.uses():
        uses[u] = uses.get(u, 0) + 1
    out = {}

    def link(a, op):
        """The index of the instruction defining operand ``a`` when ``a`` is a temporary
        read only here, made by ``op``; else None."""
        if not isinstance(a, Var) or not is_temp(a.name) or uses.get(a.name) != 1 or a.name in flagged:
            return None
        k = where.get(a.name)
        return k if k is not None and instrs[k].op == op and k not in out else None

    for k4, ins in enumerate(instrs):
        if ins.op != "truediv" or not _is_one(ins.args[0]) or (stop_index is not None and k4 >= stop_index):
            continue
        plan4 = plans.get((b, k4))
        if plan4 is None or plan4.checks or not _f64_result(plan4):
            continue
        k3 = link(ins.args[1], "add")
        if k3 is None:
            continue
        a, c = instrs[k3].args
        inner = c if _is_one(a) else a if _is_one(c) else None
        k2 = link(inner, "np.exp")
        if k2 is None or instrs[k2].attrs.get("kw") or len(instrs[k2].args) != 1:
            continue
        k1 = link(instrs[k2].args[0], "neg")
        if k1 is None or not k1 < k2 < k3 < k4:
            continue
        x = instrs[k1].args[0]
        if isinstance(x, Var) and any(instrs[m].target == x.name for m in range(k1, k4)):
            continue  # x changes between -x and the quotient
        if not all(_f64_result(plans.get((b, k))) for k in (k1, k2, k3)):
            continue
        neg = plans[(b, k1)]
        if neg.kind != "unary" or np.dtype(neg.loop[0]) != _F64:
            continue
        out[k4] = ("logistic", x, k1)
        out[k1] = out[k2] = out[k3] = ("fused",)
    return out
