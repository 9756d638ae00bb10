"""Calls of user functions from batched code: on the compacted calling lanes, merged sibling
calls laid end to end (one batched call for all of them), calls hoisted out of loops over a
sequence (one call over every item of every lane), and DAG mode's evaluation of each shared
node once per batched call."""
from __future__ import annotations

import numpy as np

from .executor import run_function
from .frame import Frame, blank_like
from .kernel_dispatch import _NOT_RUN, try_kernel
from .nodes import NodeLanes
from .ragged import Ragged
from .values import Lanes, Traced, concat_sized, gather, is_varying, scatter_into


def call_function(ctx, callee, arg_groups):
    """Run a user function on the calling lanes, once for all argument groups.

    Each group is one call site's arguments (merged calls pass several).  The
    calling lanes are compacted when not all are active; the groups'
    arguments are laid end to end so the callee runs once over all of them.
    Returns one result per group, over the caller's lanes.
    """
    state = ctx.frame.state
    state.stats.calls += 1
    program = state.get_program(callee)
    frame = ctx.frame
    idx = None if ctx.mask is None else np.flatnonzero(ctx.mask)
    m = frame.n if idx is None else len(idx)
    if idx is not None:
        arg_groups = [[gather(a, idx) for a in group] for group in arg_groups]
    k = len(arg_groups)
    if k == 1:
        args = arg_groups[0]
        lane_ids = (frame, idx)
    else:
        try:
            args = [concat_sized([g[p] for g in arg_groups], [m] * k) for p in range(len(arg_groups[0]))]
        except TypeError as exc:
            raise ctx.unsupported(f"merged calls to {callee.__name__} with {exc}") from None
        ids = frame.lane_ids() if idx is None else frame.lane_ids()[idx]
        lane_ids = np.concatenate([ids] * k)
    result = run_callee(state, program, callee, args, m * k, lane_ids)
    parts = [result] if k == 1 else [gather(result, slice(j * m, (j + 1) * m)) for j in range(k)]
    if idx is not None:
        parts = [None if r is None else scatter_into(blank_like(r, frame.n), r, idx, frame.n) for r in parts]
    return parts


def map_function(ctx, callee, seq, others, item_pos):
    """Call ``callee`` once over every item of every active lane's sequence (a hoisted loop call).

    Returns a :class:`Ragged` over the frame's lanes: lane j's results, in item order.
    """
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
    return _call_items(ctx, callee, items, owner, counts, stride, idx, others, item_pos)


def _call_items(ctx, callee, items, owner, counts, stride, idx, others, item_pos):
    frame, state = ctx.frame, ctx.frame.state
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
    state.stats.calls += 1
    program = state.get_program(callee)
    result = run_callee(state, program, callee, args, m, frame.lane_ids()[lanes])
    return Ragged(result, m, offsets, lengths, strides)


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
    if state.memo is None or not args or not isinstance(args[0], NodeLanes) \
            or any(is_varying(a) for a in args[1:]):
        return run_function(program, Frame(m, state, lane_ids=lane_ids), args)
    ids = args[0].ids
    known_ids, known = state.memo.get(callee, (np.zeros(0, np.int64), None))
    uniq, first = np.unique(ids, return_index=True)
    missing = ~np.isin(uniq, known_ids)
    state.stats.memo_hits += m - int(missing.sum())
    if missing.any():
        forest, new_ids = args[0].forest, uniq[missing]
        batches = [(new_ids, lane_ids[first[missing]])]
        if program.self_recursive:
            # Evaluate the uncached descendants first, bottom-up by height, so that each
            # node's own recursive calls find their children cached: one evaluation per node.
            desc = _descendants(forest, new_ids)
            desc = desc[~np.isin(desc, known_ids)]
            heights = forest.height_of[desc]
            batches = [(desc[heights == h], np.full(int((heights == h).sum()), -1))
                       for h in np.unique(heights)] + batches
        for batch_ids, batch_lanes in batches:
            batch_ids = batch_ids[~np.isin(batch_ids, known_ids)]
            if not len(batch_ids):
                continue
            state.stats.memo_evaluated += len(batch_ids)
            sub = Frame(len(batch_ids), state, lane_ids=batch_lanes[:len(batch_ids)])
            fresh = run_function(program, sub, [NodeLanes(forest, batch_ids)] + list(args[1:]))
            known_ids, known = _memo_merge(known_ids, known, batch_ids, fresh)
            state.memo[callee] = (known_ids, known)
    return gather(known, np.searchsorted(known_ids, ids))


def _memo_merge(known_ids, known, new_ids, fresh):
    if known is None:
        order = np.argsort(new_ids, kind="stable")
        return new_ids[order], gather(fresh, order)
    merged = concat_sized([known, fresh], [len(known_ids), len(new_ids)])
    all_ids = np.concatenate([known_ids, new_ids])
    order = np.argsort(all_ids, kind="stable")
    return all_ids[order], gather(merged, order)


def _descendants(forest, ids):
    """All nodes below ``ids`` (not ``ids`` themselves), each once."""
    from ..forest import _concat_ranges
    seen = np.zeros(forest.num_nodes, dtype=bool)
    frontier, out = np.unique(ids), []
    while frontier.size:
        starts = forest.child_ptr[frontier]
        kids = forest.child_idx[_concat_ranges(starts, forest.child_ptr[frontier + 1] - starts)]
        kids = np.unique(kids)
        kids = kids[~seen[kids]]
        seen[kids] = True
        out.append(kids)
        frontier = kids
    return np.concatenate(out) if out else np.zeros(0, np.int64)
