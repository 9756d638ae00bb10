"""Which IR functions the numba kernel generator accepts (:func:`kernel_eligible`):
no calls, indexing, attributes or other object operations."""
from __future__ import annotations

from vmapper.ir import Branch, Const, Return, is_temp
from . import typing as kt
_FORBIDDEN = {"call", "getitem", "setitem", "getattr", "method", "load_global", "len", "check_len",
              "slice", "is", "is_not", "sum", "matmul"}


# ---- eligibility ---------------------------------------------------------------------------------

def kernel_eligible(fn) -> str | None:
    """None if every operation of ``fn`` can run inside a kernel, else the reason why not."""
    uses_in_term = {}
    for blk in fn.blocks.values():
        t = blk.term
        if t is None:
            return f"block b{blk.id} has no terminator"
        if isinstance(t, Return) and isinstance(t.value, Const) and not (
                kt.is_number_const(t.value.value) or isinstance(t.value.value, tuple)
                and all(kt.is_number_const(v) for v in t.value.value)):
            what = "None" if t.value.value is None else f"a {type(t.value.value).__name__}"
            return f"line {t.line}: the function returns {what}"
        for u in t.uses():
            uses_in_term.setdefault(u, []).append(blk.id)
    uses = {}
    for blk in fn.blocks.values():
        for ins in blk.instrs:
            for u in ins.uses():
                uses.setdefault(u, []).append(blk.id)
    for blk in fn.blocks.values():
        for ins in blk.instrs:
            if ins.op == "tuple":
                t = ins.target
                if t is None or not is_temp(t) or t in uses or \
                        uses_in_term.get(t) != [blk.id] or not isinstance(blk.term, Return):
                    return f"line {ins.line}: a tuple that is not returned directly"
                continue
            reason = instruction_reason(ins)
            if reason is not None:
                return reason
        reason = branch_reason(blk.term)
        if reason is not None:
            return reason
    return None


def instruction_reason(ins) -> str | None:
    """None if instruction ``ins`` (not a ``tuple``) can run inside a kernel, else why not."""
    op = ins.op
    where = f"line {ins.line}"
    if op in _FORBIDDEN or op not in kt.SUPPORTED_OPS or op == "tuple":
        name = ins.attrs.get("name")
        what = {"method": f"method '.{name}()'", "getattr": f"attribute '.{name}'"}.get(op) if name else None
        return f"{where}: {what or f'operation {op!r}'} cannot run in a kernel"
    if ins.attrs.get("kw"):
        return f"{where}: '{op}' with keyword arguments"
    for j, a in enumerate(ins.args):
        if isinstance(a, Const) and not kt.is_number_const(a.value) and not (
                op == "contains" and j == 0 and kt.is_const_collection(a.value)):
            if isinstance(a.value, tuple) and not a.value:
                return f"{where}: a list (lists cannot live in a kernel)"
            return f"{where}: constant of type {type(a.value).__name__} in '{op}'"
    if op == "contains" and not (isinstance(ins.args[0], Const)
                                 and kt.is_const_collection(ins.args[0].value)):
        return f"{where}: 'in' on something other than a literal collection of numbers"
    if op in ("min", "max") and len(ins.args) < 2:
        return f"{where}: {op}() of a sequence"
    if op in ("int", "round") and len(ins.args) != 1:
        return f"{where}: {op}() with two arguments"
    if op == "isin":
        for v in ins.attrs.get("values", ()):
            if not (v is None or isinstance(v, str) or kt.is_number_const(v)):
                return f"{where}: 'in' with a {type(v).__name__} value"
    return None


def branch_reason(t) -> str | None:
    """None if terminator ``t`` can end a kernel block, else why not."""
    if isinstance(t, Branch) and isinstance(t.cond, Const) and not kt.is_number_const(t.cond.value) \
            and t.cond.value is not None:
        return f"line {t.line}: branch on a constant of type {type(t.cond.value).__name__}"
    return None
