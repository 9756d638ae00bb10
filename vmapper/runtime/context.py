"""What a primitive's batching rule sees while it runs: the lanes, the mask,
the user's line, and helpers that raise precise errors."""
from __future__ import annotations

import numpy as np

from ..errors import LaneError, UnsupportedSyntaxError
from .frame import MERGED_ARGUMENT, Missing
from .values import Lanes


#: Why a list (or tuple) whose length differs per lane cannot be batched, and what to do.
LIST_LENGTH_HINT = ("a list or tuple must have the same length on every lane: append to it (or extend, "
                    "or +) on every lane, not under an 'if' on a per-sample value or in a loop whose trip "
                    "count differs per lane; collect such values in a preallocated array (np.zeros(n)) "
                    "instead")


def describe_conflict(why, shapes_hint="give the differently shaped values different names, or make the "
                                      "shapes equal"):
    """``(what the variable holds, the hint)`` for a variable whose lanes hold values that one
    batched value cannot (``Frame.conflicts``: ``why`` is the merge's reason); ``shapes_hint``:
    the hint when the values differ in shape or kind rather than in length."""
    if "tuple" in why:
        return "a list or tuple whose length differs per lane", LIST_LENGTH_HINT
    return "per-sample values of different shapes or kinds on different lanes", shapes_hint


def lane_text(lanes, limit=10):
    """``"3, 7, 9"``: the first ``limit`` lane ids, and ``", ..."`` when there are more."""
    return ", ".join(str(int(x)) for x in lanes[:limit]) + (", ..." if len(lanes) > limit else "")


class Context:
    __slots__ = ("frame", "mask", "program", "line", "_active")

    def __init__(self, frame, mask, program):
        self.frame = frame
        self.mask = mask  # None: all lanes of the frame are active
        self.program = program
        self.line = 0
        self._active = None

    @property
    def n(self):
        return self.frame.n

    def active_indices(self):
        if self._active is None:
            self._active = np.arange(self.frame.n) if self.mask is None else np.flatnonzero(self.mask)
        return self._active

    # ---- errors ---------------------------------------------------------------------------
    def _where(self):
        p = self.program
        return f"{p.where(self.line)}\n    {self.line} | {p.source_line(self.line).strip()}"

    def fail_where(self, bad, message, exc_type, values=None):
        """Raise LaneError if any *active* lane has ``bad`` set (``bad`` is one bool per lane)."""
        bad = np.asarray(bad)
        if bad.ndim == 0:
            bad = np.broadcast_to(bad, (self.frame.n,))
        if self.mask is not None:
            bad = bad & self.mask
        if not bad.any():
            return
        pos = np.flatnonzero(bad)
        lanes = self.frame.lane_ids()[pos]
        detail = ""
        if values is not None:
            value = np.asarray(values)[pos[0]]
            value = value.item() if isinstance(value, np.generic) else value  # (3, not np.int64(3))
            detail = f" (value {value!r} on lane {int(lanes[0])})"
        lanes = np.unique(lanes)  # (a recursive call's lanes: one sample may fail at several nodes)
        shown = lane_text(lanes)
        raise LaneError(f"{exc_type.__name__}: {message}{detail} on lane(s) [{shown}] at {self._where()}",
                        lanes=lanes, line=self.line, operation=message, python_error=exc_type)

    def lane_error_all(self, message, exc_type):
        """A LaneError for every active lane (the failure does not depend on lane values)."""
        try:
            self.fail_where(np.ones(self.frame.n, dtype=bool), message, exc_type)
        except LaneError as exc:
            return exc
        return LaneError(f"{exc_type.__name__}: {message} at {self._where()}", lanes=np.array([], int),
                         line=self.line, operation=message, python_error=exc_type)

    def type_error(self, message):
        return self.lane_error_all(message, TypeError)

    def unsupported(self, construct, hint=None):
        p = self.program
        return UnsupportedSyntaxError(construct, p.source.filename, self.line, p.source_line(self.line), hint)

    def unsupported_on(self, bad, construct, hint=None):
        """Raise :meth:`unsupported` for ``construct``, naming the lanes, if an *active* lane
        has ``bad`` set (one bool per lane): a case the batched form cannot compute."""
        if self.mask is not None:
            bad = bad & self.mask
        if bad.any():
            lanes = self.frame.lane_ids()[np.flatnonzero(bad)]
            raise self.unsupported(f"{construct}, on lane(s) {lane_text(lanes)}", hint=hint)

    def unbound(self, name, bad):
        shown = name if not name.startswith("$") else "a temporary"
        if name in self.frame.conflicts:
            why = self.frame.conflicts[name]
            if name.startswith(MERGED_ARGUMENT):
                return self.unsupported(f"calling one function in both arms of an if with {why}",
                                        hint="give the arms' calls arguments of one type (cast one), "
                                             "or call the function after the if")
            what, hint = describe_conflict(why)
            # (the frontend names a comprehension's list _vm_listcomp_N: frontend_comprehensions)
            reading = "the list comprehension" if name.startswith("_vm_listcomp_") else f"'{shown}'"
            if name.startswith("_vm_listcomp_") and hint == LIST_LENGTH_HINT:
                hint += ("; or, for sum(), min(), max(), any() or all() of it, pass a generator expression "
                         "(no brackets), which runs as a loop")
            return self.unsupported(f"reading {reading}, which holds {what} ({why})", hint=hint)
        msg = f"local variable '{shown}' referenced before assignment"
        if bad is None:
            return self.lane_error_all(msg, UnboundLocalError)
        try:
            self.fail_where(bad, msg, UnboundLocalError)
        except LaneError as exc:
            return exc
        return self.lane_error_all(msg, UnboundLocalError)

    @staticmethod
    def describe(v):
        if isinstance(v, Lanes):
            if v.data.dtype.kind == "U":
                return "str"
            kind = "Python " if v.weak else ""
            return f"{kind}{v.data.dtype.name}{list(v.data.shape[1:]) if v.data.ndim > 1 else ''}"
        return getattr(v, "__vmapper_type_name__", None) or type(v).__name__

    # ---- evaluation helpers ----------------------------------------------------------------
    def uniform(self, fn, *args):
        """Run ``fn`` on uniform values as the per-sample code would; its errors become LaneErrors."""
        try:
            return fn(*args)
        except (ArithmeticError, ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:
            raise self.lane_error_all(str(exc) or type(exc).__name__, type(exc)) from exc

    def call_primitive(self, name, args, attrs=None):
        from ..primitives import PRIMITIVES
        prim = PRIMITIVES[name]
        if self.frame.state.tape is not None:
            from ..autodiff.tape import apply_traced, has_traced
            if any(has_traced(a) for a in args):
                return apply_traced(prim, self, list(args), attrs or {})
        return prim.impl(self, list(args), attrs or {})

    def call_function(self, callee, arg_groups, memo=False):
        from .calls import call_function
        return call_function(self, callee, arg_groups, memo)

    def map_function(self, callee, seq, others, item_pos, memo=False):
        from .calls import map_function
        return map_function(self, callee, seq, others, item_pos, memo)

    def map_primitive(self, name, attrs, seq, others, item_pos):
        from .calls import map_primitive
        return map_primitive(self, name, attrs, seq, others, item_pos)

    def sequence_items(self, v, what):
        """The items of a per-sample sequence whose length is the same on every lane."""
        from .values import Traced
        if isinstance(v, Traced):  # items of a differentiated array, each traced
            raw = v.value
            count = raw.data.shape[1] if isinstance(raw, Lanes) and raw.data.ndim > 1 else len(raw)
            return [self.call_primitive("getitem", (v, k)) for k in range(count)]
        if isinstance(v, (tuple, list)):
            return list(v)
        if isinstance(v, Lanes):
            if v.data.ndim < 2:
                raise self.type_error(f"{what} is not iterable")
            return [Lanes(v.data[:, k], False) for k in range(v.data.shape[1])]
        try:
            return list(v)
        except TypeError:
            raise self.type_error(f"{what} is not iterable")

    def read_var(self, name):
        """The value of variable ``name``, which every active lane must have bound."""
        frame = self.frame
        try:
            value = frame.lookup(name)
        except Missing:
            raise self.unbound(name, None)
        u = frame.undef_mask(name)
        if u is not None:
            bad = u if self.mask is None else (u & self.mask)
            if bad.any():
                raise self.unbound(name, bad)
        return value
