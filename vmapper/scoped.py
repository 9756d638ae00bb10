"""Values that hold within a ``with`` block: a context variable set on entry, restored on exit."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def scoped(var, value):
    """Set the context variable ``var`` to ``value`` inside the block; yields ``value``."""
    token = var.set(value)
    try:
        yield value
    finally:
        var.reset(token)
