"""The primitive registry: every IR operation declares its rules in one place.

A :class:`Primitive` bundles

* ``impl(ctx, args, attrs)`` -- the batching rule: computes the op over all
  lanes of the current frame (varying values are :class:`Lanes`), raising
  :class:`LaneError` through ``ctx`` only for *active* lanes that the
  per-sample run would raise on;
* ``elementwise`` -- the op is scalar work per lane (fusable into a kernel);
* ``scalar`` -- a per-lane Python/numba-compatible implementation, used by the
  kernel code generator;
* ``may_fail`` -- the op can raise on some lanes, so it must not be hoisted or
  if-converted onto lanes that would not run it;
* ``jvp`` / ``vjp`` -- derivative rules (None: no derivative registered);
* ``vjp_refuses(attrs)`` -- for an op whose ``vjp`` covers some of its forms only (the
  methods of arrays): why this form has no derivative (None: it has one), asked when it is
  recorded so that the error names its line;
* ``passes_traced(args, attrs)`` -- where it holds, the op runs on differentiated values
  as they are and records nothing itself (a call of a user's method: the method's own
  operations are recorded).

Python callables that the per-sample code may call (``np.exp``, ``math.sqrt``,
``abs``...) map to primitive names in :data:`CALLABLES`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Primitive:
    name: str
    impl: Callable
    elementwise: bool = False
    may_fail: bool = False
    scalar: Callable | None = None
    jvp: Callable | None = None
    vjp: Callable | None = None
    passes_traced: Callable | None = None
    vjp_refuses: Callable | None = None
    doc: str = ""


PRIMITIVES: dict[str, Primitive] = {}
CALLABLES: dict[int, tuple[Any, str]] = {}  # id(callable) -> (callable, primitive name)
EFFECT_ONLY = {"range_check", "check_len"}


def register(name, impl=None, *, callables=(), **rules):
    """Register primitive ``name``; usable as a decorator of its batching rule."""
    def add(fn):
        PRIMITIVES[name] = Primitive(name, fn, **rules)
        for c in callables:
            CALLABLES[id(c)] = (c, name)
        return fn
    return add(impl) if impl is not None else add


def lookup_callable(obj) -> str | None:
    """The primitive that implements calls to ``obj``, or None."""
    hit = CALLABLES.get(id(obj))
    return hit[1] if hit is not None and hit[0] is obj else None


def get(name) -> Primitive:
    return PRIMITIVES[name]
