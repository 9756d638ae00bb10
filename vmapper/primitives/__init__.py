"""All primitives, registered on import; see :mod:`.registry`."""
from .registry import PRIMITIVES, CALLABLES, EFFECT_ONLY, Primitive, register, lookup_callable, get
from . import scalar_ops, python_numbers, array_ops, linear, norms, array_scans, array_misc, linalg_ops, structural  # noqa: F401  (registration side effects)

__all__ = ["PRIMITIVES", "CALLABLES", "EFFECT_ONLY", "Primitive", "register", "lookup_callable", "get"]
