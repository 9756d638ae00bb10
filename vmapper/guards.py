"""Guards: what a compiled program took from outside its function as a constant.

Compiling binds modules, functions, classes, callables and ``None`` read from globals,
closure cells and attributes (``np``, a helper function, ``cfg.LR``, ``Cls.k``) into the
program as constants: calls need their callee when the program is built, and kernels
fold constants.  Each such read is recorded as a guard ``(kind, where, key, value)``;
:func:`guards_hold` tells whether every one still reads the same value, and the program
cache compiles the function again when one does not, so that a rebound global, a
redefined helper or a changed class attribute is never computed with its old value.
"""
from __future__ import annotations

import types

#: the value of a guard on a global name that was absent (a builtin that it did not shadow)
MISSING = object()

# Values equal without being the same object: a bound method is made anew at each attribute
# read, and numbers and strings assigned again are often new objects of the same value.
_EQUAL_TYPES = (types.MethodType, int, float, complex, str, bytes, bool)


def guards_hold(guards) -> bool:
    """Whether every guard's ``where[key]`` still holds its value."""
    for kind, where, key, value in guards:
        try:
            if kind == "global":
                now = where.get(key, MISSING)
            elif kind == "cell":
                now = where.cell_contents
            else:
                now = getattr(where, key, None)
        except Exception:  # (an emptied cell, an attribute that raises now)
            return False
        if now is not value and not (type(now) is type(value) and type(now) in _EQUAL_TYPES and now == value):
            return False
    return True
