"""Kernel regions: maximal single-entry runs of elementwise steps, outlined to run as one kernel.

Guarantees, for ``fn.annotations['schedule']`` (rewritten in place of the steps it groups):

* every maximal run of consecutive schedule steps, at any loop level, whose
  blocks are all elementwise (each instruction can run in a numba kernel, or
  reads a data global, whose value the launch passes; no block ends in
  ``return``) becomes one :class:`KernelRegionStep`; the steps
  that lanes may reach from outside the run are its ``entries`` (the first
  step, the arms of a branch taken before it...); the enclosing loop's header
  is never part of a region, so edges back to it leave the region;
* the step keeps the original steps (``steps``): the runtime runs them as
  they are whenever the kernel cannot serve, so a region never changes
  semantics, only speed;
* ``function`` is the region outlined as an IR function of ``params`` (and,
  with several entries, the lane's entry index :data:`ENTRY_PARAM`) that
  returns ``(exit index, *outputs)``: ``exits[exit index]`` is the block the
  lane leaves the region for, ``outputs`` the variables the region assigns
  that are live where some lane goes next.  ``params`` are the variables the
  region may read before assigning them, plus any output that is not
  assigned on every path to every exit (so every returned value is defined);
* runs with fewer than :data:`MIN_INSTRUCTIONS` instructions and no loop are
  left alone (a kernel launch costs more than it saves);
* ``fn.annotations['kernel_regions']`` lists the regions.

Functions that are elementwise as a whole already run as one kernel, so the
pass leaves them alone.  Without the kernel generator (numba missing) the
pass does nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Block, Branch, Const, Function, Instr, Jump, Return, Var, is_temp
from .globals_as_params import globals_as_params
from .spmd import LoopStep
from .taint import tainted_targets

#: A region without a loop needs at least this many instructions.
MIN_INSTRUCTIONS = 4
#: The outlined function's last parameter when lanes enter a region at several steps.
ENTRY_PARAM = "$region_entry"


@dataclass
class KernelRegionStep:
    entries: list
    steps: list
    blocks: frozenset
    params: list
    outputs: list
    exits: list
    function: Function
    lines: tuple = (0, 0)
    cache: dict = field(default_factory=dict, repr=False)  # runtime: compiled program, failures


def find_kernel_regions(fn: Function) -> Function:
    try:
        from ..kernels.codegen_eligible import branch_reason, instruction_reason, kernel_eligible
    except Exception:  # no kernel generator: nothing to outline
        fn.annotations["kernel_regions"] = []
        return fn
    regions = []
    if kernel_eligible(globals_as_params(fn)[0]) is not None:
        arrays = _may_be_arrays(fn, instruction_reason)

        def block_ok(b):
            blk = fn.blocks[b]
            return not isinstance(blk.term, Return) and branch_reason(blk.term) is None and \
                all(_in_kernel(ins, instruction_reason) and not (set(ins.uses()) & arrays) for ins in blk.instrs)
        ok = {b: block_ok(b) for b in fn.blocks}
        preds = fn.predecessors()
        fn.annotations["schedule"] = _group(fn, fn.annotations["schedule"], None, ok, preds, regions)
    fn.annotations["kernel_regions"] = regions
    return fn


def _in_kernel(ins, instruction_reason):
    """Whether a region's kernel can run ``ins``: a read of a global becomes a uniform
    argument of each launch (globals_as_params.py, runtime/kernel_globals.py)."""
    return ins.op == "load_global" or instruction_reason(ins) is None


#: Operations whose result is an array per lane (a kernel takes per-lane scalars only).
ARRAY_MAKERS = frozenset({"np.zeros", "np.ones", "np.empty", "np.arange", "np.eye", "np.identity",
                          "np.linspace", "np.full", "np.concatenate", "np.stack", "np.array", "np.asarray",
                          "matmul", "linear", "np.dot",
                          # scans, sorts and outer products (primitives/array_scans.py)
                          "np.cumsum", "np.cumprod", "np.diff", "np.sort", "np.argsort", "np.outer",
                          # reshaping, gathers and rounding of arrays (primitives/array_misc.py)
                          "np.reshape", "np.take", "np.round",
                          # contractions and solves (primitives/linalg_ops.py)
                          "np.einsum", "np.tensordot", "np.linalg.solve", "np.linalg.inv"})


def _may_be_arrays(fn, instruction_reason):
    """Variables that may hold an array per lane: made by an array constructor, a slice or a
    matrix product, or computed elementwise from such a variable.  (Parameters may be arrays
    too; the runtime checks those when the region runs.)"""
    slices = {ins.target for blk in fn.blocks.values() for ins in blk.instrs if ins.op in ("slice", "tuple")}

    def spreads(ins, arrays):
        uses = set(ins.uses())
        return ins.op in ARRAY_MAKERS or ins.op == "getitem" and bool(uses & slices) or \
            (instruction_reason(ins) is None or ins.op in ("method", "getattr")) and bool(uses & arrays)
    return tainted_targets(fn, (), spreads)


def _step_blocks(step):
    return step.blocks if isinstance(step, LoopStep) else frozenset((step,))


def _step_entry(step):
    return step.header if isinstance(step, LoopStep) else step


def _group(fn, steps, header, ok, preds, regions):
    out, run = [], []

    def flush():
        if run:
            out.extend(_make_region(fn, run, header, preds, regions) or run)
            run.clear()
    for step in steps:
        if step != header and all(ok[b] for b in _step_blocks(step)):
            run.append(step)
            continue
        flush()
        if isinstance(step, LoopStep):
            step = LoopStep(step.header, step.blocks, _group(fn, step.body, step.header, ok, preds, regions),
                            step.line)
        out.append(step)
    flush()
    return out


def _make_region(fn, run, header, preds, regions):
    """The region step for ``run`` (a list of steps), or None when it is not worth a kernel."""
    blocks = frozenset().union(*(_step_blocks(s) for s in run))
    n_instrs = sum(len(fn.blocks[b].instrs) for b in blocks)
    if n_instrs < MIN_INSTRUCTIONS and not any(isinstance(s, LoopStep) for s in run):
        return None
    # lanes may arrive from outside at several steps (the arms of a branch taken before
    # the region): each such step is an entry, and the kernel starts each lane at its own
    entries = [_step_entry(s) for s in run
               if _step_entry(s) == fn.entry or any(p not in blocks for p in preds[_step_entry(s)])]

    def leaves(s):
        return s not in blocks or s == header
    exits = sorted({s for b in blocks for s in fn.blocks[b].successors() if leaves(s)})
    assigned_in = _must_assigned(fn, blocks, entries, leaves)
    defined = {ins.target for b in blocks for ins in fn.blocks[b].instrs
               if ins.target is not None and not is_temp(ins.target)}
    live_in = fn.annotations.get("live_in")
    params, outputs, at_exit = set(), set(), []
    for b in blocks:
        have = set(assigned_in[b])
        blk = fn.blocks[b]
        for ins in blk.instrs:
            params.update(u for u in ins.uses() if not is_temp(u) and u not in have)
            if ins.target is not None:
                have.add(ins.target)
        params.update(u for u in blk.term.uses() if not is_temp(u) and u not in have)
        for s in blk.successors():
            if leaves(s):
                outputs |= defined if live_in is None else defined & live_in[s]
                at_exit.append(have)
    # every exit returns every output, so one not assigned on the way to some exit must come in
    for have in at_exit:
        params |= outputs - have
    params, outputs = sorted(params), sorted(outputs)
    function = _outline(fn, blocks, entries, leaves, exits, params, outputs)
    lines = [ins.line for b in blocks for ins in fn.blocks[b].instrs if ins.line]
    step = KernelRegionStep(entries, list(run), blocks, params, outputs, exits, function,
                            (min(lines), max(lines)) if lines else (0, 0))
    regions.append(step)
    return [step]


def _must_assigned(fn, blocks, entries, leaves):
    """Variables assigned on every path from an entry to the start of each block of ``blocks``."""
    universe = {ins.target for b in blocks for ins in fn.blocks[b].instrs if ins.target is not None}
    gen = {b: {ins.target for ins in fn.blocks[b].instrs if ins.target is not None} for b in blocks}
    inside_preds = {b: [] for b in blocks}
    for b in blocks:
        for s in fn.blocks[b].successors():
            if not leaves(s):
                inside_preds[s].append(b)
    ins_ = {b: set() if b in entries else set(universe) for b in blocks}
    changed = True
    while changed:
        changed = False
        for b in blocks:
            if b in entries:
                continue
            new = set(universe)
            for p in inside_preds[b]:
                new &= ins_[p] | gen[p]
            if new != ins_[b]:
                ins_[b] = new
                changed = True
    return ins_


def _outline(fn, blocks, entries, leaves, exits, params, outputs):
    """The region as a function ``(*params[, entry index]) -> (exit index, *outputs)``."""
    next_id = max(fn.blocks) + 1
    exit_block = {}
    out_blocks = {}
    # the blocks the outline adds take a real source line (an exit: the first line of a jump or
    # branch leaving for it; the entry dispatch: the first entry's), so that no lane error in
    # their code (or in code generated from them: tangents, adjoints) names line 0
    first = _first_line(fn, blocks)
    leaving = {}
    for b in sorted(blocks):
        t = fn.blocks[b].term
        for s in t.successors():
            if leaves(s) and t.line:
                leaving[s] = min(leaving.get(s, t.line), t.line)
    for i, target in enumerate(exits):
        bid = next_id + i
        exit_block[target] = bid
        ret = f"$t_region_exit{i}"
        line = leaving.get(target, first)
        instrs = [Instr("tuple", ret, (Const(i),) + tuple(Var(v) for v in outputs), {}, line)]
        out_blocks[bid] = Block(bid, instrs, Return(Var(ret), line), f"region exit to b{target}")

    def to(s):
        return exit_block[s] if leaves(s) else s
    for b in blocks:
        blk = fn.blocks[b]
        t = blk.term
        if isinstance(t, Jump):
            t = Jump(to(t.target), t.line)
        elif isinstance(t, Branch):
            t = Branch(t.cond, to(t.if_true), to(t.if_false), t.line, t.kind)
        out_blocks[b] = Block(b, list(blk.instrs), t, blk.label)
    params = list(params)
    entry = entries[0]
    if len(entries) > 1:  # dispatch on the entry index: b_k tests "entry == k"
        params.append(ENTRY_PARAM)
        bid = next_id + len(exits)
        for k, e in enumerate(entries[:-1]):
            test = f"$t_region_entry{k}"
            nxt = bid + 1 if k < len(entries) - 2 else entries[-1]
            line = _first_line(fn, [e])
            out_blocks[bid] = Block(bid, [Instr("eq", test, (Var(ENTRY_PARAM), Const(k)), {}, line)],
                                    Branch(Var(test), e, nxt, line, "if"), f"region entry {k}")
            bid += 1
        entry = next_id + len(exits)
    return Function(f"{fn.name}$region_b{entries[0]}", params, out_blocks, entry, fn.source, fn.python_function)


def _first_line(fn, blocks):
    """The smallest source line of ``blocks``' instructions and terminators, else the ``def`` line."""
    lines = [ins.line for b in blocks for ins in fn.blocks[b].instrs if ins.line]
    lines += [fn.blocks[b].term.line for b in blocks if fn.blocks[b].term.line]
    return min(lines) if lines else max(1, fn.source.first_line)


__all__ = ["find_kernel_regions", "KernelRegionStep", "MIN_INSTRUCTIONS", "ENTRY_PARAM"]
