"""Masked execution of a scheduled program over a batch of lanes.

Each step of the SPMD schedule runs once for all the lanes that reach it: a
block runs its instructions as array operations over the frame's lanes under
its mask (None: every lane), and its terminator moves lanes into the masks of
its successors.  A loop re-runs its body while any lane is at its header;
when the lanes still looping fall below :data:`COMPACT_BELOW` of the frame,
they are compacted into a subframe so that later trips only touch live
lanes.  Calls run on the compacted set of calling lanes (:mod:`.calls`).

All execution state (frames, masks, counters) lives in :class:`ExecState`
and the frames, never in globals, so concurrent calls are independent.
"""
from __future__ import annotations

import numpy as np

from .. import profiler
from ..errors import BatchingError, NonTerminationError
from ..ir import Const, Return
from ..passes.kernel_regions import KernelRegionStep
from ..passes.spmd import LoopStep
from ..autodiff.tape import apply_traced, has_traced
from ..autodiff.checkpoint import loop_stretches
from .buffers import BufferPool
from . import block_compiler
from .block_compiler import (T_BRANCH, T_JUMP, T_NONE, T_RAISE, T_RETURN, TAPE_UNLESS_CONTAINER, UNPACK, _is_array, block_plan,
                             fresh_attrs, generated_rows, store_result)
from .context import Context, describe_conflict, lane_text
from .region_dispatch import run_region
from .speculation import speculation_failed
from .frame import Frame, LaneIndices, Missing, as_mask
from .values import Lanes, Traced, truth

#: A loop compacts to its active lanes when fewer than this fraction remain (0.85 against
#: 0.97: Collatz 8% faster, Mandelbrot unchanged; until then, the lanes that left are dead
#: slots that the body computes in vain).
COMPACT_BELOW = 0.85
#: Frames smaller than this never compact (the bookkeeping costs more).
COMPACT_MIN_LANES = 64
#: A block (of at least BLOCK_COMPACT_MIN_INSTRS operations) whose mask covers at most
#: this fraction of its frame runs in a subframe of just those lanes: the operations
#: then touch only the active lanes, for the price of gathering what it reads and
#: scattering back what it writes.
BLOCK_COMPACT_BELOW = 0.5
BLOCK_COMPACT_MIN_INSTRS = 4
#: The same while differentiating (measured on the Tree-LSTM benchmark: 0.8 beats 0.5 by ~10%),
#: and for a block with matrix products, calls or kernels (``BlockPlan.heavy``), in frames of
#: any size (the Tree-LSTM forward without a tape: 24% faster than 0.5 from 64 lanes up).
BLOCK_COMPACT_BELOW_TAPED = 0.8


class Stats:
    __slots__ = ("launches", "active_lane_ops", "processed_lane_ops", "batch_size",
                 "max_loop_trips", "calls", "compactions", "blocks_run", "blocks_skipped", "memo_hits", "memo_evaluated", "kernel_launches",
                 "shared_row_products")

    def __init__(self, batch_size):
        self.batch_size = batch_size
        self.launches = self.active_lane_ops = self.processed_lane_ops = 0
        self.max_loop_trips = self.calls = self.compactions = self.memo_hits = self.memo_evaluated = 0
        self.kernel_launches = self.shared_row_products = 0
        self.blocks_run = self.blocks_skipped = 0

    def as_dict(self):
        launches = max(self.launches, 1)
        return {
            "launches": self.launches,
            # active / processed lanes over all launches: 1.0 means no lane computed in vain
            # (also when nothing was launched: nothing was wasted)
            "lane_utilization": self.active_lane_ops / self.processed_lane_ops if self.processed_lane_ops else 1.0,
            "mean_active_lanes": self.active_lane_ops / launches,
            "max_loop_trips": self.max_loop_trips,
            "calls": self.calls,
            "compactions": self.compactions,
            "memo_hits": self.memo_hits,
            "memo_evaluated": self.memo_evaluated,
            "kernel_launches": self.kernel_launches,
            "shared_row_products": self.shared_row_products,
            "blocks_run": self.blocks_run,
            "blocks_skipped": self.blocks_skipped,
            "batch_size": self.batch_size,
        }


class ExecState:
    """Everything one batched call needs: programs, limits and counters."""

    def __init__(self, get_program, batch_size, max_iters=None, tape=None, memo=False,
                 backend="numpy", exact_math=False):
        self.get_program = get_program
        self.max_iters = max_iters
        self.backend = backend
        self.exact_math = exact_math
        # DAG mode: callee -> (sorted node ids, their results), so that a node shared
        # by several parents is evaluated once per call.  ``memo_tables``: the tables of the
        # whole call, which a memo function's calls from plain code share (calls._dag_mode).
        self.memo_tables = {}
        self.memo = self.memo_tables if memo else None
        self.tape = tape  # a vmapper.autodiff Tape while differentiating, else None
        self.stats = Stats(batch_size)
        # id -> (shared matrix, its transpose made contiguous) for matmuls with per-lane
        # vectors (primitives.array_ops.matmul_lanes); cleared whenever a method runs on a
        # shared value, the one way per-sample code can change a shared array during a call
        self.transposed = {}
        self.pool = BufferPool()  # arrays of dead temporaries, for later results (runtime.buffers)
        self.profile = profiler.active()  # a vmapper.profile() block's Profile, or None
        if self.profile is not None:
            self.profile.begin_call()


class Region:
    """Masks of the blocks still to run in one level of the schedule."""
    __slots__ = ("frame", "blocks", "header", "pending", "next", "has_next", "entered_body")

    def __init__(self, frame, blocks, header=None):
        self.frame = frame
        self.blocks = blocks
        self.header = header
        self.pending = {}
        self.next = None
        self.has_next = False
        self.entered_body = False  # did any lane pass the loop test into the body this trip


def mask_or(a_present, a, b):
    if not a_present:
        return b
    if a is None or b is None:
        return None
    if type(a) is LaneIndices and type(b) is LaneIndices:
        a.chunks += b.chunks  # a is the pending entry's own: O(1) per trip, not O(trips)
        return a
    return as_mask(a) | as_mask(b)


def convert_mask(mask, frame, target, live=None):
    """Express a mask over ``frame``'s lanes in an ancestor frame's lanes.

    The lanes leave every frame passed on the way for good.  When one of them
    is a loop's subframe, each frame passed retires the lanes (writing back
    at once what ``live``, the variables live where they go, needs; None: all
    that changed), so that the loop may go on storing without masks.
    """
    if frame is target:
        return mask
    f = frame
    retiring = False
    while f is not target:
        retiring = retiring or f.is_loop
        f = f.parent
    lanes = np.arange(frame.n) if mask is None else np.flatnonzero(mask)
    while frame is not target:
        if retiring:
            frame.retire(lanes, live if frame.is_loop else None)
        lanes, frame = frame.idx[lanes], frame.parent
    return LaneIndices(frame.n, [lanes])


def send(stack, target, mask, frame, program=None):
    for region in reversed(stack):
        if region.header == target:
            m = convert_mask(mask, frame, region.frame, _live_in(program, target))
            region.next = mask_or(region.has_next, region.next, m)
            region.has_next = True
            return
        if region.blocks is None or target in region.blocks:
            m = convert_mask(mask, frame, region.frame, _live_in(program, target))
            region.pending[target] = mask_or(target in region.pending, region.pending.get(target), m)
            return
    raise AssertionError(f"edge to b{target} leaves every region")


def _live_in(program, block):
    """The variables live on entry to ``block`` (None when unknown: treat all as live)."""
    if program is None:
        return None
    live = program.ir.annotations.get("live_in")
    return None if live is None else live.get(block)


def run_function(program, frame: Frame, args):
    """Run ``program`` on all lanes of ``frame``; returns the per-lane result."""
    for name, value in zip(program.params, args):
        frame.env[name] = value
        if _is_array(value) or type(value) is tuple:
            frame.shared.add(name)  # the caller's array
    top = Region(frame, None)
    top.pending[program.entry] = None
    run_steps(program, program.schedule, [top], frame)
    if "$ret" in frame.conflicts:  # some lanes' results were dropped: never return the rest
        raise mixed_results(program, frame, frame.conflicts["$ret"])
    try:
        result = frame.lookup("$ret")
    except Missing:
        return None
    return result


def mixed_results(program, frame, why):
    """The error for results that one batched value cannot hold (``why``: the merge's reason)."""
    lines = sorted({blk.term.line for blk in program.blocks.values()
                    if isinstance(blk.term, Return) and blk.term.line})
    ctx = Context(frame, None, program)
    ctx.line = lines[-1] if lines else 0
    what, hint = describe_conflict(why, "return values of the same shape and kind on every lane")
    return ctx.unsupported(
        f"returning {what} ({why}; 'return' at line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))})",
        hint=hint)


def run_steps(program, steps, stack, frame):
    region = stack[-1]
    pending = region.pending
    for step in steps:
        if type(step) is not int:  # (a block is its id)
            if isinstance(step, LoopStep):
                if step.header in pending:
                    run_loop(program, step, stack, frame, as_mask(pending.pop(step.header)))
                continue
            if isinstance(step, KernelRegionStep):
                prof = frame.state.profile
                t0 = prof.start() if prof is not None else None
                run_region(program, step, stack, frame, run_steps, send)
                if prof is not None:
                    prof.stop(t0, "forward", program, step.lines[0], "kernel region", frame.n)
                continue
        if step not in pending:
            frame.state.stats.blocks_skipped += 1
            continue
        mask = pending.pop(step)
        if type(mask) is LaneIndices:
            mask = mask.mask()
        if mask is not None:
            count = int(np.count_nonzero(mask))
            if count == 0:
                frame.state.stats.blocks_skipped += 1
                continue
            if count == frame.n:
                mask = None
        else:
            count = frame.n
        block = program.blocks[step]
        # While taping, a masked block also costs its backward: every entry's rule would run
        # on (or gather) all the frame's lanes, so blocks compact more eagerly, small frames too;
        # so does a heavy block, whose operations on inactive lanes cost more than the gathers.
        plan = block_plan(program, block)
        eager = mask is not None and (frame.state.tape is not None or plan.heavy)
        if mask is not None and count <= (BLOCK_COMPACT_BELOW_TAPED if eager else BLOCK_COMPACT_BELOW) * frame.n \
                and (frame.n >= COMPACT_MIN_LANES or eager) \
                and len(block.instrs) >= BLOCK_COMPACT_MIN_INSTRS:
            prof = frame.state.profile
            t0 = prof.start() if prof is not None else None
            sub = frame.subframe(np.flatnonzero(mask))
            frame.state.stats.compactions += 1
            try:
                run_block(program, block, sub, None, count, stack)
            finally:
                # what the block assigned and no successor reads stays here
                sub.write_back(names=plan.live_out)
            if prof is not None:  # (the gathers on first read and the write-back)
                prof.stop(t0, "forward", program, block.instrs[0].line if block.instrs else block.term.line,
                          "compaction", count)
        elif mask is not None and count + frame.n_dead == frame.n:
            # every lane not in the mask is retired: nothing reads its slots any more
            run_block(program, block, frame, mask, count, stack, store_mask=None)
        else:
            run_block(program, block, frame, mask, count, stack)


def run_loop(program, step, stack, frame, mask):
    state = frame.state
    sub = frame
    trips = 0
    # value_and_grad(..., checkpoint_loops=K): the tape keeps this loop's values every K trips only
    stretches = None if state.tape is None else loop_stretches(state.tape)
    try:
        while True:
            if stretches is not None:
                stretches.trip()
            count = sub.n if mask is None else int(np.count_nonzero(mask))
            if count == 0:
                break
            if mask is not None and count == sub.n:
                mask = None
            if state.max_iters is not None and trips > state.max_iters:
                lanes = sub.lane_ids() if mask is None else sub.lane_ids()[mask]
                raise NonTerminationError(
                    f"loop at {program.where(step.line)} passed max_iters={state.max_iters} with "
                    f"{len(lanes)} lane(s) still running: {_lane_list(lanes)}\n"
                    f"    {step.line} | {program.source_line(step.line)}", lanes=lanes, line=step.line)
            if sub is frame and sub.n >= COMPACT_MIN_LANES and state.tape is None:
                # A subframe from the first trip: lanes that leave retire from it, so
                # the body stores without masks while the loop runs.
                keep = np.arange(sub.n) if mask is None else np.flatnonzero(mask)
                sub = frame.subframe(keep, is_loop=True)
                mask = None
                state.stats.compactions += 1
            elif mask is not None and count < COMPACT_BELOW * sub.n and sub.n >= COMPACT_MIN_LANES:
                keep = np.flatnonzero(mask)
                if sub is frame:
                    sub = frame.subframe(keep, is_loop=state.tape is None)
                else:
                    sub.restrict(keep)
                mask = None
                state.stats.compactions += 1
            region = Region(sub, step.blocks, header=step.header)
            region.pending[step.header] = mask
            stack.append(region)
            try:
                run_steps(program, step.body, stack, sub)
            finally:
                stack.pop()
            trips += region.entered_body
            mask = as_mask(region.next) if region.has_next else np.zeros(sub.n, dtype=bool)
    finally:
        if stretches is not None:
            stretches.close()
        if sub is not frame:
            sub.write_back()
        state.stats.max_loop_trips = max(state.stats.max_loop_trips, trips)


def _lane_list(lanes):
    return f"lanes [{lane_text(lanes)}]"


_LOOP_TESTS = ("while", "for")


def _check_not_shared(ctx, ins, frame, temps):
    name = ins.target if ins.op == "setitem" else ins.attrs["inplace"]
    try:
        value = frame.lookup(name)
    except Missing:
        return
    if _is_array(value):
        raise ctx.unsupported(
            f"in-place update of array '{name}', which another name, a view, a container or the "
            f"caller can also reach (Python would change it there too)",
            hint=f"update a private copy: {name} = {name}.copy() before changing it, "
                 f"or write {name} = {name} + ... to make a new array")
    # Lists are held as tuples: appending makes a new one, which other names would not see.
    # (``t += ...`` may be a list's in-place extend or a tuple's new tuple: vmapper cannot tell.)
    if type(value) is tuple and ins.op in ("list_append", "list_extend", "list_setitem", "setitem", "add", "mul"):
        how = ins.attrs.get("how") or (f"'{name}[...] = ...'" if ins.op == "setitem" else
                                       f"'{name} {'+' if ins.op == 'add' else '*'}= ...'")
        raise ctx.unsupported(
            f"{how} on list '{name}', which another name, a container or the caller can also "
            f"reach (Python would change the list there too)",
            hint=f"build a new list instead: {name} = {name} + [...]")


def run_block(program, block, frame, mask, count, stack, store_mask=False):
    """Run ``block`` on the lanes of ``mask``; ``store_mask`` (if given) masks its
    assignments instead, where lanes outside ``mask`` are known to be dead."""
    if store_mask is False:
        store_mask = mask
    plan = block_plan(program, block)
    state = frame.state
    state.stats.blocks_run += 1
    ctx = Context(frame, mask, program)
    temps = {}
    alias_sources = {}  # temp -> names of variables its (array) value may alias
    if block_compiler.GENERATE and state.profile is None:
        (plan.run or generated_rows(plan))(ctx, frame, temps, alias_sources, store_mask, count)
    else:
        _exec_rows(plan.rows, ctx, frame, temps, alias_sources, store_mask, count, state.profile)
    kind = plan.term_kind
    if kind == T_NONE:
        return
    term = plan.term
    ctx.line = term.line
    if kind == T_JUMP:
        send(stack, term.target, mask, frame, program)
    elif kind == T_BRANCH:
        cond = _read_term(plan, term.cond, frame, temps, ctx)
        try:
            t = truth(cond, frame.n)
        except ValueError as exc:
            raise ctx.lane_error_all(str(exc), ValueError)
        if isinstance(t, np.ndarray):
            tm = t if mask is None else (mask & t)
            fm = ~t if mask is None else (mask & ~t)
            send(stack, term.if_true, tm, frame, program)
            send(stack, term.if_false, fm, frame, program)
            entered = term.kind in _LOOP_TESTS and tm.any()
        else:
            send(stack, term.if_true if t else term.if_false, mask, frame, program)
            entered = t and term.kind in _LOOP_TESTS
        if entered:
            stack[-1].entered_body = True
    elif kind == T_RETURN:
        frame.store("$ret", _read_term(plan, term.value, frame, temps, ctx), mask)
    elif kind == T_RAISE:
        message = term.message or f"{term.exc_type.__name__} raised"
        if term.parts:
            lane = 0 if mask is None else int(np.argmax(mask))
            message = _formatted_message(term.parts, lane, frame, temps, ctx)
            if count > 1:  # (each lane's own message may differ: show whose this is)
                message += f" (the message of lane {int(frame.lane_ids()[lane])})"
        ctx.fail_where(np.ones(frame.n, dtype=bool), message, term.exc_type)


def _formatted_message(parts, lane, frame, temps, ctx):
    """An f-string message as the per-sample run formats it on ``lane`` (of the frame)."""
    out = []
    for p in parts:
        if type(p) is str:
            out.append(p)
            continue
        operand, conversion, spec = p
        v = _read(operand, frame, temps, ctx)
        v = v.value if isinstance(v, Traced) else v
        if isinstance(v, Lanes):
            v = v.data[lane].item() if v.weak else v.data[lane]
        v = {"r": repr, "s": str, "a": ascii}[conversion](v) if conversion else v
        try:
            out.append(format(v, spec))
        except (TypeError, ValueError) as exc:  # (the per-sample run would raise this instead)
            raise ctx.lane_error_all(str(exc), type(exc)) from None
    return "".join(out)


def _exec_rows(rows, ctx, frame, temps, alias_sources, store_mask, count, prof=None):
    """The instructions of a block (or of an unpack row that cannot take its fast path);
    ``prof``: a :class:`~vmapper.profiler.Profile` that times each one."""
    state = frame.state
    read_var = ctx.read_var
    shared = frame.shared
    # (a block never rebinds its frame's dicts: Frame.restrict runs between loop trips only)
    env, undef = frame.env, frame.undef
    taping = state.tape is not None
    done = 0
    try:
        for line, inplace, read, dying, tape, impl, attrs, target, to_temp, alias, ip in rows:
            ctx.line = line
            if prof is not None:
                t0 = prof.start()
            if impl is UNPACK:
                v = temps.get(ip.src)
                if type(v) is tuple and (ip.n is None or len(v) == ip.n) and ip.assign(
                        v, frame, temps, alias_sources, store_mask, shared):
                    done += ip.size
                else:  # not a tuple of that length: the instructions themselves check and raise
                    _exec_rows(ip.rows, ctx, frame, temps, alias_sources, store_mask, count, prof)
                if prof is not None:
                    prof.stop(t0, "forward", ctx.program, line, "unpack", count)
                continue
            if inplace is not None and inplace in shared:
                _check_not_shared(ctx, ip.ins, frame, temps)
            try:
                args = read(temps, env, undef, read_var)
            except KeyError:  # a temporary read before it is set (IR that skipped the passes)
                args = [_read(a, frame, temps, ctx) for a in ip.ins.args]
            value = None  # the previous result: a dying temporary must have no other reference
            for t in dying:  # dead after this: the operation may reuse its buffer
                temps.pop(t, None)
            try:
                if taping and tape:
                    # is some operand (or an element of one) differentiated? (the types are
                    # compared in C: this runs for every operation of a differentiated call)
                    types = tuple(map(type, args))
                    if (Traced in types or tuple in types and any(map(has_traced, args))) and not (
                            tape == TAPE_UNLESS_CONTAINER and isinstance(args[0], (tuple, list, dict))):
                        value = apply_traced(ip.prim, ctx, args, attrs)
                    else:
                        value = impl(ctx, args, attrs)
                else:
                    value = impl(ctx, args, attrs)
            except RecursionError:
                raise
            except Exception as exc:
                if ip.ins.guards:  # (if-converted: run on lanes that may not run it)
                    value = speculation_failed(ctx, temps, ip.ins.guards, exc)
                elif isinstance(exc, BatchingError):
                    raise
                else:  # a numpy/Python error that is not a lane error: name the line
                    raise ctx.lane_error_all(str(exc), type(exc)) from exc  # (it prefixes the type)
            done += 1
            if target is not None:
                # (a node's attribute is a copy of its row: no other name reaches it)
                fresh = alias and ip.op == "getattr" and fresh_attrs(args[0])
                store_result(value, target, to_temp, alias and not fresh, ip.alias_vars, ip.alias_temps, ip.fresh_if_unaliased,
                             ip.op == "setitem", frame, temps, alias_sources, store_mask, shared)
            if prof is not None:
                prof.stop(t0, "forward", ctx.program, line, ip.op, count)
    finally:
        stats = state.stats
        stats.launches += done
        stats.active_lane_ops += count * done
        stats.processed_lane_ops += frame.n * done


def _read_term(plan, operand, frame, temps, ctx):
    try:
        return plan.term_read(temps, frame.env, frame.undef, ctx.read_var)[0]
    except KeyError:
        return _read(operand, frame, temps, ctx)


def _read(op, frame, temps, ctx):
    if isinstance(op, Const):
        return op.value
    name = op.name
    if name in temps:
        return temps[name]
    return ctx.read_var(name)
