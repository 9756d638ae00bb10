"""The lockstep kernel's driver: :func:`lockstep_kernel` (source lines).

::

    kernel(n, a0.., o0.., codes, [mi,] [stop,] wr, ntask)         # prange over the tasks
    serial(n, a0.., o0.., codes, [mi,] [stop,] wr, ntask)         # one task on this thread
    run_task(n, a0.., o0.., codes, [mi,] [stop,] wr, task, ntask)

``run_task`` runs task ``task`` of ``ntask``: the lanes ``[n*task//ntask,
n*(task+1)//ntask)`` (tasks write disjoint lanes; ``kernel`` runs them all,
one per thread).  A task keeps a chunk of ``W`` slots (``wr`` == ``W``, see
:mod:`.codegen_lockstep`); each slot holds one lane at a time, and the task
repeats:

* **refill**: when at least ``refill`` slots are free (or as many as lanes
  are left), each free slot writes back the lane it held -- its results, or
  its error code if it failed -- and loads the task's next lane: parameters
  from the lane's arguments, every other variable, flag and loop counter
  initialised as the scalar lane function does, ``pc`` at the entry block.
  So lanes that finish early are replaced instead of idling until the
  slowest lane of the chunk is done (trip counts differ per lane).  Which
  lanes share a chunk, and when, never changes a lane's results;
* **pick**: the block of smallest priority among the slots' ``pc`` runs next
  -- except that blocks in the schedule's tail (returns and what leads only
  to them, :mod:`.codegen_lockstep_schedule`) wait until ``refill`` slots
  are free or waiting there (or nothing else is left): then they run for all
  those lanes at once, rather than for one lane at a time while the others
  loop (measured 2.3x on a loop followed by five transcendentals);
* **step**: that block's code runs for the lanes at it (one ``if cur == p``
  arm per block).  A block that jumps back to a loop header is followed, in
  the same step, by the header's code for the lanes now at the header (a
  lane may always run its next block early: its own sequence of blocks is
  unchanged), so a loop trip takes one step, not two.  The task ends when
  every slot is free and no lane is left, or at the first step that finds
  :data:`.interrupt.STOP` set (``stop``, an argument of a function that loops).

A lane's results (``o*[lane]``) are written only if it did not fail, and
``codes[lane]`` only if it failed -- as the scalar kernel does, so
:class:`~vmapper.kernels.codegen.Kernel` reads both the same way (smallest
failing lane first).  Tail lanes need no special case: a task with fewer
lanes than slots just leaves the others free.
"""
from __future__ import annotations

import numpy as np

from vmapper.ir import Jump
from .codegen_helpers import _CTOR
from .codegen_lockstep import LockstepEmitter
from .codegen_lockstep_schedule import schedule_order
from .interrupt import kernel_polls
from .typing import BOOL, KernelUnsupported

# Refill a chunk when this fraction of its slots is free (at least one slot).
REFILL = 0.25


def lockstep_kernel(ft, arg_types, items, exact_math, count_loops, width, refill):
    """``(emitter, source lines of the kernel function)`` for the typed function ``ft``."""
    if width % 32:
        raise KernelUnsupported("lockstep: the chunk width must be a multiple of 32")
    fn = ft.fn
    order, ntail = schedule_order(fn, ft.order)
    if count_loops and "loops" not in fn.annotations:
        raise KernelUnsupported("lockstep: irreducible control flow")
    em = LockstepEmitter(ft, exact_math, count_loops, {b: i for i, b in enumerate(order)})
    if count_loops:
        em.loops = fn.annotations["loops"]
    em.polls = kernel_polls(fn.annotations.get("loops", ()), order)
    dead = em.dead_pc
    code = {b: em.block_code(b, 1) for b in order}
    loops = fn.annotations.get("loops", {})
    steps = []
    for i, b in enumerate(order):
        steps.append(f"{'if' if i == 0 else 'elif'} cur == {i}:")
        steps += code[b][0]
        t = fn.blocks[b].term
        if isinstance(t, Jump) and t.target in loops and b in loops[t.target].blocks \
                and not code[t.target][1]:
            # a back edge: the lanes run the loop header right away, in the same step (any
            # lane may run its next block early; this saves a step per trip)
            steps += em.block_code(t.target, 1, tag=f"x{i}")[0]

    lanes = [spec[0] == "lanes" for spec in arg_types]
    init = []  # slot j takes lane l: the scalar lane function's prologue
    params = set()
    for j, (name, t) in enumerate(zip(fn.params, ft.params)):
        v = em.vname(name, t.dtype)
        params.add(v)
        arg = f"_ls_load(a{j}, l)" if lanes[j] else f"a{j}"
        init.append(f"_ls_store(S{v}, j, {_CTOR[t.dtype] if t.dtype != BOOL else ''}({arg}))")
    for name, dt in sorted(em.typed.items()):
        if name not in params:
            init.append(f"_ls_store(S{name}, j, {em.zero(dt)})")
    for var in sorted(ft.flagged):
        init.append(f"_ls_store(S{em.flag(var)}, j, {'True' if var in fn.params else 'False'})")
    if count_loops:
        for h in sorted(em.loops):
            init.append(f"_ls_store(S{em.counter(h)}, j, -1)")
    for i, t in enumerate(items):  # (results need no initial value: a lane that returns sets them)
        em.state[f"r{i}"] = t.dtype
    errors = bool(em.errors)
    if errors:
        init.append("_ls_store(ecode, j, 0)")
    outs = [f"_ls_store(o{i}, l, _ls_load(Sr{i}, j))" for i in range(len(items))]
    flush = (["if _ls_load(ecode, j) != 0:", "    _ls_store(codes, l, _ls_load(ecode, j))", "else:"]
             + ["    " + o for o in outs]
             if errors else outs)

    arrays = {"S" + name: dt for name, dt in em.lane_state().items()}
    arrays.update(em.scratch)
    arrays.update({"pc": np.dtype(np.int64), "lid": np.dtype(np.int64)})
    if errors:
        arrays["ecode"] = np.dtype(np.int32)
    decls = [f"{name} = _ls_arr_{np.dtype(dt).str[1:]}_{width}()" for name, dt in sorted(arrays.items())]

    kargs = ["n"] + [f"a{j}" for j in range(len(fn.params))] + [f"o{i}" for i in range(len(items))] \
        + ["codes"] + (["mi"] if count_loops else []) + (["stop"] if em.polls else []) + ["wr", "task", "ntask"]
    entry = em.prio[fn.entry]

    def ind(k, lines):
        return ["    " * k + s for s in lines]

    out = ["@njit(**_OPTS)", f"def run_task({', '.join(kargs)}):"]
    # zmm where the CPU has them (vector_width).  wr == width, but LLVM must not know it (it
    # would unroll the loops fully and vectorize nothing); what it may know: wr <= width, so it
    # never picks a vector step (VF x interleave) longer than the chunk, and wr is a multiple
    # of 32 (width is), so the vector loops need no scalar remainder loop.
    out += ind(1, ["_vw_wide_vectors()", f"wr = (min(wr, {width}) >> 5) << 5"] + decls)
    out += ind(1, ["lo = (n * task) // ntask", "hi = (n * (task + 1)) // ntask", "nxt = lo",
                   "for j in range(wr):", f"    _ls_store(pc, j, {dead})", "    _ls_store(lid, j, -1)",
                   "while True:"]
               # Ctrl-C (kernels/interrupt.py): the task gives up, the caller discards the results
               + (["    if _stop_requested(stop):", "        break"] if em.polls else [])
               + [
                   # one pass over the pcs: the smallest outside the tail blocks, the smallest
                   # of all, and how many slots are free or waiting in a tail block
                   f"    cur = {dead}", f"    low = {dead}", "    nwait = 0", "    nfree = 0",
                   "    for j in range(wr):",
                   "        p = _ls_load(pc, j)",
                   "        low = min(low, p)",
                   f"        cur = min(cur, _ls_select(p >= {ntail}, p, {dead}))",
                   f"        nwait += p < {ntail}",
                   f"        nfree += p == {dead}",
                   f"    if nxt < hi and (nfree >= {refill} or nfree >= hi - nxt):",
                   "        for j in range(wr):",
                   f"            if _ls_load(pc, j) == {dead} and nxt < hi:",
                   "                l = _ls_load(lid, j)",
                   "                if l >= 0:"])
    out += ind(6, flush)
    out += ind(5, ["l = nxt", "nxt += 1", "nfree -= 1", "_ls_store(lid, j, l)"] + init
               + [f"_ls_store(pc, j, {entry})"])
    out += ind(3, [f"low = min(low, {entry})"] + ([f"cur = min(cur, {entry})"] if entry >= ntail else []))
    out += ind(1, [f"    if cur == {dead} or (nwait + nfree >= {refill} and nxt < hi):",
                   "        cur = low",  # the tail blocks' turn: their lanes finish, slots free up
                   f"    if cur == {dead}:", "        break"])
    out += ind(2, steps)
    out += ind(1, ["for j in range(wr):", "    l = _ls_load(lid, j)", "    if l >= 0:"])
    out += ind(3, flush)
    # The prange driver only calls the task function: numba's parfor passes then see a one-line
    # loop body (the whole task inside the prange costs seconds more compile time).  prange,
    # not Python threads: OpenMP's worker threads spin for a while after each parallel region
    # of vmapper's other kernels, and slowed threads of our own by up to 2x.  np.int64: the
    # parfor gufunc types its index uint64, which would compile the task a second time.
    call = ", ".join(kargs[:-2] + ["np.int64(task)", "ntask"])
    out += ["", "", "@njit(parallel=_PARALLEL, **_OPTS)",
            f"def kernel({', '.join(kargs[:-2] + ['ntask'])}):",
            "    for task in prange(ntask):", f"        run_task({call})"]
    out += ["", "", "@njit(**_OPTS)", f"def serial({', '.join(kargs[:-2] + ['ntask'])}):",
            f"    run_task({', '.join(kargs[:-2] + ['np.int64(0)', 'np.int64(1)'])})"]
    return em, out
