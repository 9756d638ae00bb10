"""Calls of user functions from batched code: on the compacted calling lanes, merged sibling
calls laid end to end (one batched call for all of them), calls hoisted out of loops over a
sequence (one call over every item of every lane), and DAG mode's evaluation of each shared
node once per batched call."""
from __future__ import annotations

import contextlib

import numpy as np

from .context import Context
from .executor import mixed_results, run_function
from .frame import Frame, blank_like
from .kernel_dispatch import _NOT_RUN, try_kernel
from .memo import table_for
from .nodes import NodeLanes
from .ragged import Ragged
from .values import Lanes, Traced, all_true, concat_sized, gather, is_varying, scatter_into
from ..program import reaches_itself


def call_function(ctx, callee, arg_groups, memo=False):
    """Run a user function on the calling lanes, once for all argument groups.

    Each group is one call site's arguments (merged calls pass several).  The
    calling lanes are compacted when not all are active; the groups'
    arguments are laid end to end so the callee runs once over all of them.
    ``memo``: the callee is a ``@batched(memo=True)`` function, whose calls
    run in DAG mode whoever calls them.  Returns one result per group, over
    the caller's lanes.
    """
    if memo and ctx.frame.state.memo is None:
        with _dag_mode(ctx.frame.state):
            return call_function(ctx, callee, arg_groups)
    state = ctx.frame.state
    state.stats.calls += 1
    program = state.get_program(callee)
    frame = ctx.frame
    idx = None if ctx.mask is None else np.flatnonzero(ctx.mask)
    m = frame.n if idx is None else len(idx)
    if idx is not None:
        arg_groups = [[gather(a, idx) for a in group] for group in arg_groups]
    k = len(arg_groups)
    if k > 1 and all(_memo_applies(state, g) for g in arg_groups):
        joined = _joined_nodes(state, callee, arg_groups)
        if type(joined) is _Cached:  # every group's nodes evaluated already: a lookup per group
            state.stats.memo_hits += m * k
            parts = [joined.table.load(joined.rows[j * m:(j + 1) * m]) for j in range(k)]
        elif joined is not None:  # DAG mode, the same other arguments, nodes to evaluate: one sweep for all
            ids = _resolve_lane_ids((frame, idx))
            result = _run_memo(state, program, callee, joined, m * k, np.concatenate([ids] * k))
            parts = [gather(result, slice(j * m, (j + 1) * m)) for j in range(k)]
        else:  # DAG mode: a lookup per group
            parts = [_run_memo(state, program, callee, g, m, (frame, idx)) for g in arg_groups]
    elif k == 1:
        parts = [run_callee(state, program, callee, arg_groups[0], m, (frame, idx))]
    else:
        # One call over all groups, unless the call sites pass values of other types (which laid
        # end to end would promote: scale(x32), scale(x64)) or of other shapes or kinds
        # (msum(a[:mid]), msum(a[mid:])): then one call per group.
        args = None
        if all(len({_kind(g[p]) for g in arg_groups}) == 1 for p in range(len(arg_groups[0]))):
            try:
                args = [concat_sized([g[p] for g in arg_groups], [m] * k) for p in range(len(arg_groups[0]))]
            except TypeError:
                pass
        if args is None:
            state.stats.calls += k - 1
            parts = [run_callee(state, program, callee, g, m, (frame, idx)) for g in arg_groups]
        else:
            ids = frame.lane_ids() if idx is None else frame.lane_ids()[idx]
            result = run_callee(state, program, callee, args, m * k, np.concatenate([ids] * k))
            parts = [gather(result, slice(j * m, (j + 1) * m)) for j in range(k)]
    if idx is not None:
        parts = [None if r is None else scatter_into(blank_like(r, frame.n), r, idx, frame.n) for r in parts]
    return parts


def _kind(v):
    """What a value's type is, as far as merging calls goes: values of one kind lay end to end
    without promotion (a float32 and a float64 array, an int and a float, would not)."""
    if type(v) is Traced:
        v = v.value
    t = type(v)
    if t is Lanes:
        return t, v.data.dtype, v.weak, v.data.shape[1:]
    if t is np.ndarray:
        return t, v.dtype, v.shape
    if t is tuple:
        return t, tuple(_kind(x) for x in v)
    return (t,)


def map_function(ctx, callee, seq, others, item_pos, memo=False):
    """Call ``callee`` once over every item of every active lane's sequence (a hoisted loop call).

    Returns a :class:`Ragged` over the frame's lanes: lane j's results, in item order.
    """
    if memo and ctx.frame.state.memo is None:
        with _dag_mode(ctx.frame.state):
            return map_function(ctx, callee, seq, others, item_pos)
    def run(args, m, lane_ids):
        state = ctx.frame.state
        state.stats.calls += 1
        return run_callee(state, state.get_program(callee), callee, args, m, lane_ids)
    return _map_items(ctx, seq, others, item_pos, run)


def map_primitive(ctx, name, attrs, seq, others, item_pos):
    """The primitive ``name`` once over every item of every active lane's sequence, as
    :func:`map_function` calls a function (a hoisted ``self.f(item)`` whose ``f`` is not the
    user's)."""
    def run(args, m, lane_ids):
        sub = Context(Frame(m, ctx.frame.state, lane_ids=lane_ids), None, ctx.program)
        sub.line = ctx.line
        return sub.call_primitive(name, args, attrs)
    return _map_items(ctx, seq, others, item_pos, run)


def _map_items(ctx, seq, others, item_pos, run):
    """``run(args, m, lane_ids)`` over the ``m`` (lane, item) pairs of the active lanes'
    sequences, the item at ``item_pos`` among ``others``; its result as a :class:`Ragged`."""
    idx = ctx.active_indices()
    raw_seq = seq.value if isinstance(seq, Traced) else seq
    flatten = getattr(raw_seq, "__vmapper_flatten__", None)
    if flatten is not None:  # items of differing counts, each lane's items contiguous
        items, owner, counts = flatten(idx)
        stride = 1
    else:  # the same count k on every lane: item k of every lane, then item k + 1 ...
        if isinstance(raw_seq, Lanes):
            k = raw_seq.data.shape[1] if raw_seq.data.ndim > 1 else None
        else:
            k = len(raw_seq) if hasattr(raw_seq, "__len__") else None
        if k is None:
            raise ctx.type_error(f"'{ctx.describe(raw_seq)}' object is not iterable")
        parts = [gather(ctx.call_primitive("getitem", (seq, j)), idx) for j in range(k)]
        items = concat_sized(parts, [len(idx)] * k) if k else None
        owner = np.tile(np.arange(len(idx)), k)
        counts = np.full(len(idx), k, dtype=np.int64)
        stride = len(idx)
    frame = ctx.frame
    n, m = frame.n, len(owner)
    offsets = np.zeros(n, dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    strides = np.ones(n, dtype=np.int64)
    offsets[idx] = np.concatenate([[0], np.cumsum(counts)[:-1]]) if stride == 1 else np.arange(len(idx))
    lengths[idx] = counts
    strides[idx] = stride
    if m == 0:
        return Ragged(None, 0, offsets, lengths, strides)
    lanes = idx[owner]
    args = [gather(v, lanes) for v in others]
    args.insert(item_pos, items)
    return Ragged(run(args, m, frame.lane_ids()[lanes]), m, offsets, lengths, strides)


def _resolve_lane_ids(lane_ids):
    if isinstance(lane_ids, tuple):
        frame, idx = lane_ids
        return frame.lane_ids() if idx is None else frame.lane_ids()[idx]
    return lane_ids


def run_callee(state, program, callee, args, m, lane_ids):
    """Run a callee over ``m`` lanes; in DAG mode, each distinct node once per batched call."""
    out = try_kernel(state, program, args, m, lambda: _resolve_lane_ids(lane_ids))
    if out is not _NOT_RUN:
        return out
    if not _memo_applies(state, args):
        return run_function(program, Frame(m, state, lane_ids=lane_ids), args)
    return _run_memo(state, program, callee, args, m, lane_ids)


@contextlib.contextmanager
def _dag_mode(state):
    """DAG mode for one call of a ``memo=True`` function from code that is not in it (and for
    the calls it makes): its memo tables are those of the whole batched call, so that another
    call site finds the nodes an earlier one evaluated."""
    state.memo = state.memo_tables
    try:
        yield
    finally:
        state.memo = None


def _memo_applies(state, args):
    """DAG mode's condition: a node per lane, and every other argument uniform."""
    return state.memo is not None and _node_position(args) is not None


class _Cached:
    """What :func:`_joined_nodes` finds when every group's nodes are in ``table`` already: their
    ``rows``, the groups' end to end."""
    __slots__ = ("table", "rows")

    def __init__(self, table, rows):
        self.table, self.rows = table, rows


def _joined_nodes(state, callee, arg_groups):
    """The arguments of one call over all groups' nodes end to end, when the groups differ in
    their nodes only (the same forest, the very same other arguments) and some node is not in
    the memo table yet; a :class:`_Cached` when none is missing; else None (a lookup per group).
    Evaluating the missing nodes of all groups together sweeps the heights once, not once per
    group."""
    first = arg_groups[0]
    at = _node_position(first)
    if at is None:
        return None
    for g in arg_groups[1:]:
        if len(g) != len(first) or _node_position(g) != at or g[at].forest is not first[at].forest \
                or any(a is not b for p, (a, b) in enumerate(zip(g, first)) if p != at):
            return None
    ids = np.concatenate([g[at].ids for g in arg_groups])
    table = table_for(state, callee, first, at)
    rows = table.rows_of(ids)
    if all_true(rows >= 0):
        return _Cached(table, rows)
    return [*first[:at], NodeLanes(first[at].forest, ids), *first[at + 1:]]


def _node_position(args):
    """The position of the one per-lane argument if it is a tree node (a method's node comes
    after its object), else None."""
    pos = None
    for i, a in enumerate(args):
        if type(a) is NodeLanes:
            if pos is not None:
                return None
            pos = i
        elif is_varying(a):
            return None
    return pos


def _run_memo(state, program, callee, args, m, lane_ids):
    """DAG mode: look the lanes' nodes up in the callee's memo table, evaluating the missing
    ones first (a self-recursive callee: their uncached descendants too, bottom-up by height)."""
    at = _node_position(args)
    table = table_for(state, callee, args, at)
    ids = args[at].ids
    rows = table.rows_of(ids)
    absent = rows < 0
    n_absent = int(np.count_nonzero(absent))
    state.stats.memo_hits += m - n_absent
    if n_absent:
        forest = args[at].forest
        new_ids, first = np.unique(ids[absent], return_index=True)
        new_lanes = _resolve_lane_ids(lane_ids)[np.flatnonzero(absent)[first]]
        batches = [(new_ids, new_lanes)]
        if reaches_itself(program, state.get_program):
            # The missing nodes and their uncached descendants, bottom-up by height, so that
            # each node's own recursive calls (through other functions too: even/odd) find
            # their children cached: one evaluation per node and function, where depth-first
            # evaluation repeated a node once per path length reaching it.  A descendant's
            # errors name the lane of a node above it.
            desc, owner = _descendants(forest, new_ids, table.slot_of)
            keep = (table.rows_of(desc) < 0) & ~np.isin(desc, new_ids)
            todo = np.concatenate([desc[keep], new_ids])
            lanes = np.concatenate([new_lanes[owner[keep]], new_lanes])
            heights = forest.height_of[todo]
            order = np.argsort(heights, kind="stable")
            cuts = np.flatnonzero(np.diff(heights[order])) + 1
            batches = list(zip(np.split(todo[order], cuts), np.split(lanes[order], cuts)))
        table.reserve(sum(len(b) for b, _ in batches))
        for batch_ids, batch_lanes in batches:
            keep = table.rows_of(batch_ids) < 0  # (a batch's run may have evaluated some)
            if not all_true(keep):
                batch_ids, batch_lanes = batch_ids[keep], batch_lanes[keep]
            if not len(batch_ids):
                continue
            state.stats.memo_evaluated += len(batch_ids)
            sub = Frame(len(batch_ids), state, lane_ids=batch_lanes)
            fresh = run_function(program, sub, [*args[:at], NodeLanes(forest, batch_ids), *args[at + 1:]])
            try:
                table.store(batch_ids, fresh)
            except TypeError as exc:  # results of heights that one batched value cannot hold
                raise mixed_results(program, sub, str(exc)) from None
        rows = table.rows_of(ids)
    return table.load(rows)


def _descendants(forest, ids, slot_of):
    """All uncached nodes below the distinct nodes ``ids`` (not ``ids`` themselves), each once,
    and for each the position in ``ids`` of a node it lies below.  The walk stops at cached
    nodes (``slot_of >= 0``): a node is stored only after every node below it was."""
    from ..forest import _concat_ranges
    tree = forest.tree_of[ids]
    ends = forest.tree_ptr[tree + 1]
    if (ends - 1 == ids).all():  # whole trees: every other node of a tree lies below its root
        starts = forest.tree_ptr[tree]
        sizes = ends - 1 - starts
        return _concat_ranges(starts, sizes), np.repeat(np.arange(len(ids)), sizes)
    seen = np.zeros(forest.num_nodes, dtype=bool)
    frontier, owner = ids, np.arange(len(ids))
    out, owners = [], []
    while frontier.size:
        starts = forest.child_ptr[frontier]
        counts = forest.child_ptr[frontier + 1] - starts
        kids = forest.child_idx[_concat_ranges(starts, counts)]
        kids, first = np.unique(kids, return_index=True)
        owner = np.repeat(owner, counts)[first]
        new = ~seen[kids] & (slot_of[kids] < 0)
        kids, owner = kids[new], owner[new]
        seen[kids] = True
        out.append(kids)
        owners.append(owner)
        frontier = kids
    if not out:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out), np.concatenate(owners)
