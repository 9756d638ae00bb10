"""Binding a call's arguments to a numpy function's parameters, as Python would.

The array primitives that take numpy's keyword arguments (``array_scans``, ``array_misc``,
``linalg_ops``) describe each function by its parameter names and defaults and bind a
call with :func:`bind_call`; :func:`check_binding` turns a failed binding into the
per-sample run's ``TypeError`` and refuses what cannot be batched.
"""
from __future__ import annotations

from .array_ops import _contains_lanes


def bind_call(name, args, kwnames, names, defaults, posonly=0, kwonly=()):
    """``{parameter: value}`` for a call of ``name`` (defaults filled in), or the ``TypeError``
    message of a call that does not bind.  ``args``: the positional values then the keyword
    ones, named by ``kwnames``; the first ``posonly`` parameters are positional-only, those
    in ``kwonly`` keyword-only."""
    positional = [k for k in names if k not in kwonly]
    npos = len(args) - len(kwnames)
    if npos > len(positional):
        return f"{name}() takes at most {len(positional)} positional arguments ({npos} given)"
    out = dict(defaults)
    out.update(zip(positional, args[:npos]))
    for k, v in zip(kwnames, args[npos:]):
        if k not in names or k in names[:posonly]:
            return f"{name}() got an unexpected keyword argument '{k}'"
        if k in positional[:npos]:
            return f"{name}() got multiple values for argument '{k}'"
        out[k] = v
    for k in names:
        if k not in out:
            return f"{name}() missing required argument '{k}'"
    return out


def check_binding(ctx, name, b, varying):
    """``b`` (what :func:`bind_call` gave for ``np.<name>``), once it has bound, holds
    per-sample values only in the parameters ``varying`` and no ``out=``; else the error."""
    if isinstance(b, str):
        raise ctx.type_error(b)
    for k, v in b.items():
        if k not in varying and _contains_lanes(v):
            raise ctx.unsupported(f"np.{name}() with a per-sample value for '{k}'",
                                  hint="only the array arguments may differ per sample: the shape of "
                                       "the result must be the same on every lane")
    if b.get("out") is not None:
        raise ctx.unsupported(f"np.{name}() with out=", hint="use the returned array instead")
    return b
