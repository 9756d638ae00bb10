"""Failures of instructions that if-conversion runs on lanes that would not run them.

``passes/if_conversion.py`` moves only instructions that cannot fail for a
lane's *value* out of their arm; one may still fail for its operands' *type*
(numpy refuses ``-`` and ``-`` between bools, ``~`` of a float), and a type is
the same on every lane, so it fails on every lane alike.  The per-sample run
fails only where a lane takes the arm.  :func:`speculation_failed` reports the
failure on those lanes; where no active lane takes the arm, the instruction's
value is :data:`POISONED`, which the arm's later instructions pass on (every
use of it fails, and fails the same way) and which ``select`` never picks:
its condition sends every active lane to the other arm.
"""
from __future__ import annotations

import numpy as np

from ..errors import BatchingError, LaneError
from .values import Lanes


class Poisoned:
    """The value of an instruction whose arm no active lane takes, that failed (see above)."""
    __slots__ = ()

    def _refuse(self, *args, **kwargs):
        raise TypeError("the value of an operation that failed on lanes that do not run it")

    __bool__ = __len__ = __iter__ = __index__ = __float__ = __int__ = __getitem__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __hash__ = None

    def __repr__(self):
        return "<poisoned>"


POISONED = Poisoned()


def is_poisoned(v) -> bool:
    return type(v) is Poisoned or type(v) is tuple and any(map(is_poisoned, v))


def speculation_failed(ctx, temps, guards, exc):
    """The value of a guarded instruction that raised ``exc``: :data:`POISONED` where no active
    lane takes its arm; else the failure, raised on the lanes that do (a ``LaneError``'s own
    lanes among them)."""
    taken = _taking_lanes(ctx, temps, guards)
    if isinstance(exc, LaneError) and exc.lanes is not None and len(exc.lanes):
        taken &= np.isin(ctx.frame.lane_ids(), exc.lanes)
    if not taken.any():
        return POISONED
    if isinstance(exc, LaneError):
        ctx.fail_where(taken, exc.operation or str(exc), exc.python_error or TypeError)
    if isinstance(exc, BatchingError):  # (not a lane's failure: as it is, now that a lane runs it)
        raise exc
    ctx.fail_where(taken, str(exc), type(exc))
    raise exc  # (unreachable: some lane takes the arm)


def _taking_lanes(ctx, temps, guards):
    """The active lanes on which every guard's condition has its arm's truth value."""
    n = ctx.frame.n
    taken = np.ones(n, dtype=bool) if ctx.mask is None else np.array(ctx.mask, dtype=bool)
    for cond, want in guards:
        c = temps.get(cond)
        if type(c) is Lanes:
            taken &= c.data if want else ~c.data
        elif type(c) in (bool, np.bool_):
            if bool(c) != want:
                taken[:] = False
        elif type(c) is Poisoned:  # (an inner if's condition, in an arm that no lane takes)
            taken[:] = False
        # (anything else cannot be: the failure then stays on every active lane, as unguarded)
    return taken
