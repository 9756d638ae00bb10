"""A readable text of a program after the SPMD pass (``BatchedFunction.explain()``)."""
from __future__ import annotations

import copy

from .ir import Branch, Jump, Raise, Return, Var, is_temp
from .passes.uniformity import analyze_uniformity
from .passes.kernel_regions import KernelRegionStep
from .passes.spmd import LoopStep
from .primitives.structural import user_method


def called_programs(program, get_program, obj=None):
    """The programs of every function ``program`` calls, directly or not, in the order
    first reached (breadth first), each once; ``program`` itself is not among them.
    ``obj``: the object ``program``'s first parameter is bound to (a method's ``self``), whose
    methods its ``self.helper(...)`` calls reach."""
    seen = {program.ir.python_function}
    out, queue = [], [(program, obj)]
    while queue:
        prog, self_obj = queue.pop(0)
        params = prog.ir.params
        for blk in prog.blocks.values():
            for ins in blk.instrs:
                callee = ins.attrs.get("callee") if ins.op in ("call", "map_call") else None
                callee_obj = None
                if ins.op == "method" and self_obj is not None and params and ins.args \
                        and isinstance(ins.args[0], Var) and ins.args[0].name == params[0]:
                    found = user_method(self_obj, ins.attrs["name"])
                    if found is not None:
                        callee, receiver, _ = found
                        callee_obj = self_obj if receiver[:1] == (self_obj,) else None
                if callee is not None and callee not in seen:
                    seen.add(callee)
                    callee_program = get_program(callee)
                    out.append(callee_program)
                    queue.append((callee_program, callee_obj))
    return out


def explain_program(program, broadcast=()) -> str:
    """The dump of one program; ``broadcast``: its parameters known to be the same on every lane
    (``in_axes=None``), so that what is computed from them alone shows as uniform."""
    fn = program.ir
    if broadcast:  # (the analysis again, on a copy: the program's own annotations assume any call)
        fn = copy.copy(fn)
        fn.annotations = dict(fn.annotations)
        analyze_uniformity(fn, [p for p in fn.params if p not in broadcast])
    varying = fn.annotations.get("varying", set())
    vbranch = fn.annotations.get("varying_branches", set())
    preds = fn.predecessors()
    src = fn.source
    user_vars = sorted(v for v in varying if not v.startswith("$"))
    out = [f"batched program {fn.name}({', '.join(fn.params)})  # {src.filename}:{src.first_line}",
           f"  varying (differ per lane): {', '.join(user_vars) or '-'}",
           "  masks: m_bN = OR over edges into bN of (source mask AND edge condition); "
           "a block runs once for all lanes in its mask, and is skipped when it is empty",
           ""]

    def block_text(b, indent):
        blk = fn.blocks[b]
        pad = "  " * indent
        label = f"  ; {blk.label}" if blk.label else ""
        incoming = " | ".join(f"b{p}" for p in sorted(preds[b])) or "entry: all lanes"
        out.append(f"{pad}b{b}:{label}")
        out.append(f"{pad}  mask m_b{b} <- {incoming}")
        last_line = None
        for ins in blk.instrs:
            tag = "" if ins.target is None or is_temp(ins.target) else \
                ("  [varying]" if ins.target in varying else "  [uniform]")
            line_note = ""
            if ins.line != last_line:
                line_note = f"  # {ins.line}: {src.line(ins.line).strip()}"
                last_line = ins.line
            out.append(f"{pad}    {str(ins)}{tag}{line_note}")
        t = blk.term
        if isinstance(t, Branch):
            how = "splits lanes: masks" if b in vbranch else "uniform: whole mask goes one way"
            out.append(f"{pad}    if {t.cond}: -> b{t.if_true} else -> b{t.if_false}   "
                       f"[{t.kind}; {how}]  # {t.line}")
        elif isinstance(t, Jump):
            out.append(f"{pad}    -> b{t.target}")
        elif isinstance(t, Return):
            out.append(f"{pad}    return {t.value}  (lanes finish; masked store of the result)  # {t.line}")
        elif isinstance(t, Raise):
            out.append(f"{pad}    raise {t.exc_type.__name__}  (any lane here is a LaneError)  # {t.line}")

    def steps_text(steps, indent):
        for s in steps:
            if isinstance(s, LoopStep):
                pad = "  " * indent
                out.append(f"{pad}loop at line {s.line}: {src.line(s.line).strip()}")
                out.append(f"{pad}  runs while any lane is at b{s.header}; lanes leave through "
                           f"exits, compacting when few remain")
                steps_text(s.body, indent + 2)
                out.append(f"{pad}end loop (line {s.line})")
            elif isinstance(s, KernelRegionStep):
                pad = "  " * indent
                out.append(f"{pad}kernel region (lines {s.lines[0]}-{s.lines[1]}): with backend='numba' one "
                           f"compiled kernel, each lane following its own control flow")
                out.append(f"{pad}  inputs {', '.join(s.params) or '-'}; outputs {', '.join(s.outputs) or '-'}; "
                           f"lanes leave to {', '.join(f'b{e}' for e in s.exits)}")
                out.append(f"{pad}  (otherwise, or when an input is not a per-lane scalar, these steps run masked:)")
                steps_text(s.steps, indent + 2)
                out.append(f"{pad}end kernel region")
            else:
                block_text(s, indent)

    steps_text(fn.annotations["schedule"], 1)
    return "\n".join(out)
