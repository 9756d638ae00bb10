"""Where a batched call spends its time: ``with vmapper.profile() as prof: ...``, then ``print(prof)``.

While a ``profile`` block is open, every batched call made in it times each
operation it runs and adds the time to one row per (phase, function, line,
operation):

- ``forward``: the instructions of every function that ran in the masked
  runtime, whole functions that ran as one compiled kernel (op ``kernel``),
  and kernel regions (op ``kernel region``); op ``kernel check`` is deciding
  that a function does not run as one kernel (on its first call, that includes
  the analysis behind the decision, at the function's ``def`` line);
- ``backward``: the rules of the backward sweep of ``value_and_grad``/``vjp``,
  each under the line whose operation recorded it; the runtime's own moves of
  lanes (gathers, scatters, selects of merged calls and compaction) under the
  function ``(runtime)``, and the final products that sum the gradients of
  shared matrices under ``(gradients of shared arrays)``;
- ``compile``: numba compiling (or loading from its disk cache) a kernel during
  the block, under ``(compile)``, so that a first call's one-off cost is not
  charged to the line whose kernel it is.

Times are exclusive: an operation's row does not hold the rows timed inside
it.  So a call's row holds the call's own work (laying merged calls' arguments
end to end, splitting their results) and the callee's runtime bookkeeping
that has no row of its own (running its blocks, masks, merging branches); a
block that runs on a subframe of its active lanes adds a ``compaction`` row at
its first line (the subframe, the gathers of what it reads first, the
write-back).  ``launches`` counts how often a row ran, ``mean_lanes`` the
lanes it ran on.

Profiling runs blocks through the executor's generic loop instead of their
generated functions and reads the clock twice per operation, so a profiled
call is slower than an unprofiled one: read the table for proportions.

A ``profile`` opened inside another one records the calls of its own block,
and adds its rows to the outer one's when it closes.
"""
from __future__ import annotations

import contextlib
import contextvars
from time import perf_counter
from typing import NamedTuple

from .scoped import scoped

_current = contextvars.ContextVar("vmapper_profile", default=None)


class ProfileRow(NamedTuple):
    phase: str       # "forward", "backward" or "compile"
    function: str    # the per-sample function's name, or "(runtime)"
    filename: str
    line: int        # 0 where no user line applies
    op: str          # the operation (``matmul``, ``call``, ``kernel``...)
    launches: int
    mean_lanes: float
    seconds: float   # exclusive
    source: str      # the user's source line, stripped


class Profile:
    """The rows of a ``profile`` block (see the module docstring)."""

    def __init__(self):
        self._acc = {}         # (phase, function, filename, line, op) -> [launches, lanes, seconds]
        self._sources = {}     # (filename, line) -> source text
        self._nested = [0.0]   # time of the timed operations running inside each open one

    # ---- recording (the runtime calls these) -----------------------------------------------
    def start(self):
        self._nested.append(0.0)
        return perf_counter()

    def stop(self, t0, phase, program, line, op, lanes, label="(runtime)"):
        """End the operation started at ``t0``; ``program`` None: the runtime's own work, under ``label``."""
        dt = perf_counter() - t0
        inner = self._nested.pop() if len(self._nested) > 1 else 0.0
        self._nested[-1] += dt
        if program is None:
            key = (phase, label, "", 0, op)
        else:
            src = program.source
            key = (phase, program.name, src.filename, line, op)
            if (src.filename, line) not in self._sources:
                self._sources[src.filename, line] = src.line(line).strip() if line else ""
        row = self._acc.get(key)
        if row is None:
            row = self._acc[key] = [0, 0, 0.0]
        row[0] += 1
        row[1] += lanes
        row[2] += dt - inner

    def merge(self, other):
        """Add ``other``'s rows to this profile's."""
        for key, (n, lanes, sec) in other._acc.items():
            row = self._acc.setdefault(key, [0, 0, 0.0])
            row[0] += n
            row[1] += lanes
            row[2] += sec
        self._sources.update(other._sources)

    def begin_call(self):
        """A batched call starts: forget what an aborted one left open."""
        del self._nested[1:]

    # ---- reading ----------------------------------------------------------------------------
    @property
    def rows(self):
        """Every row, the most expensive first."""
        out = [ProfileRow(*key, n, lanes / n if n else 0.0, sec, self._sources.get((key[2], key[3]), ""))
               for key, (n, lanes, sec) in self._acc.items()]
        return sorted(out, key=lambda r: -r.seconds)

    @property
    def total_seconds(self):
        return sum(r[2] for r in self._acc.values())

    def by_line(self):
        """``[(phase, function, line, seconds, source)]``: the rows summed per source line."""
        acc = {}
        for (phase, fn, filename, line, _op), (_n, _lanes, sec) in self._acc.items():
            key = (phase, fn, filename, line)
            acc[key] = acc.get(key, 0.0) + sec
        return sorted(((phase, fn, line, sec, self._sources.get((filename, line), ""))
                       for (phase, fn, filename, line), sec in acc.items()), key=lambda t: -t[3])

    def table(self, top=25):
        """The ``top`` most expensive rows as text."""
        total = self.total_seconds or 1.0
        lines = [f"{'ms':>9} {'%':>5} {'launches':>8} {'lanes':>8}  {'phase':<8} {'where':<28} {'op':<16} source"]
        for r in self.rows[:top]:
            where = f"{r.function}:{r.line}" if r.line else r.function
            lines.append(f"{1e3 * r.seconds:9.3f} {100 * r.seconds / total:5.1f} {r.launches:8d} "
                         f"{r.mean_lanes:8.1f}  {r.phase:<8} {where:<28} {r.op:<16} {r.source}")
        lines.append(f"{1e3 * self.total_seconds:9.3f} total over {len(self._acc)} rows")
        return "\n".join(lines)

    __str__ = table


@contextlib.contextmanager
def profile():
    """Profile the batched calls made inside the block (see the module docstring).  A profile
    opened inside another one hands its rows on to it when it closes: the outer one has every
    call made in its block."""
    outer = _current.get()
    try:
        with scoped(_current, Profile()) as prof:
            yield prof
    finally:
        if outer is not None:
            outer.merge(prof)


def active():
    """The open ``profile``'s :class:`Profile`, or None."""
    return _current.get()


class compiling:
    """``with compiling(op): ...``: in an open ``profile``, the block's time is a ``compile``
    row under ``(compile)`` (and not part of the operation that needed the kernel)."""
    __slots__ = ("op", "prof", "t0")

    def __init__(self, op):
        self.op = op

    def __enter__(self):
        self.prof = _current.get()
        self.t0 = self.prof.start() if self.prof is not None else None

    def __exit__(self, *exc):
        if self.prof is not None:
            self.prof.stop(self.t0, "compile", None, 0, self.op, 0, label="(compile)")
