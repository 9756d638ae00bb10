"""What a gradient tape holds: ``vmapper.autodiff.tape_stats()``.

Every differentiated call reports ``tape_entries`` and ``tape_stretches`` in
its ``last_stats``.  Counting bytes walks the whole tape (several percent of
a backward sweep), so it happens only inside ``with tape_stats() as ts:``,
which adds ``tape_bytes`` and ``tape_recompute_bytes``.
"""
from __future__ import annotations

import contextvars

import numpy as np

from ..runtime.values import Lanes
from ..scoped import scoped

_measuring = contextvars.ContextVar("vmapper_tape_stats", default=None)


def tape_stats():
    """Measure the tapes of the differentiated calls made inside the block.

    Yields a dict that each call fills with its numbers (the last call's win),
    also merged into the gradient function's and the batched function's
    ``last_stats``:

    - ``tape_entries``: operations and moves of lanes recorded;
    - ``tape_bytes``: bytes of array data the tape holds from the forward run
      to the backward sweep, each buffer counted once: the recorded values,
      masks and lane indices (Python objects are not counted);
    - ``tape_recompute_bytes``: with ``checkpoint_loops``, the most bytes that
      recomputed stretches held at once during the backward sweep;
    - ``tape_stretches``: how many stretches were checkpointed.
    """
    return scoped(_measuring, {})


def measuring():
    return _measuring.get() is not None


def report(tape, held, holder, bf):
    """Record a call's numbers in ``holder.last_stats``, ``bf.last_stats`` and an open ``tape_stats``."""
    from .checkpoint import count_stretches
    stats = {"tape_entries": len(tape.entries), "tape_stretches": count_stretches(tape)}
    if held is not None:
        stats["tape_bytes"] = held
        stats["tape_recompute_bytes"] = tape.recompute_peak_bytes
        _measuring.get().update(stats)
    if bf.last_stats is not None:
        bf.last_stats.update(stats)
    holder.last_stats = stats


def note_recompute(tape, chain):
    """Called with the values of the stretches being recomputed at once."""
    seen = set()
    total = sum(_nbytes(v, seen) for m in chain for v in m.values())
    tape.recompute_peak_bytes = max(tape.recompute_peak_bytes, total)


def held_bytes(tape) -> int:
    """Bytes of array data the tape holds (each buffer once): the entries' arguments and
    outputs, masks, and the lane masks and indices their rules keep."""
    seen = set()
    total = 0
    for e in tape.entries:
        if e is None:
            continue
        total += _nbytes(e.args, seen) + _nbytes(e.out, seen) + _nbytes(e.mask, seen)
        for fn in (e.vjp, e.fwd):
            for cell in getattr(fn, "__closure__", None) or ():
                try:
                    total += _nbytes(cell.cell_contents, seen)
                except ValueError:  # an empty cell
                    pass
    return total


def _nbytes(v, seen, depth=0):
    if isinstance(v, Lanes):
        v = v.data
    if isinstance(v, np.ndarray):
        root = v
        while isinstance(root.base, np.ndarray):
            root = root.base
        if id(root) in seen:
            return 0
        seen.add(id(root))
        return root.nbytes
    if type(v) in (tuple, list) and depth < 4:
        return sum(_nbytes(x, seen, depth + 1) for x in v)
    return 0
