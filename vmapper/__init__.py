"""vmapper: automatic batching of per-sample Python with value-dependent control flow.

``@vmapper.batched`` captures a per-sample function, turns its control flow
into masks and compaction over the batch, and runs it as array operations.
"""
from .errors import (BatchingError, UnsupportedSyntaxError, BatchError,
                     NonTerminationError, LaneError, ForestError, CupyBackendError, RecursionDepthError)
from .api import batched, BatchedFunction
from .forest import Forest, Node, NodeBatch
from .autodiff import rules as _rules, array_rules as _array_rules, scan_rules as _scan_rules  # noqa: F401  (VJP rules)
from .autodiff import misc_rules as _misc_rules, linalg_rules as _linalg_rules  # noqa: F401  (VJP rules)
from .autodiff.api import value_and_grad, grad, vjp
from .profiler import profile
from .allocator import tune_allocator

__version__ = "0.1.0"

__all__ = ["batched", "BatchedFunction", "Forest", "Node", "NodeBatch", "value_and_grad", "grad", "vjp", "profile",
           "tune_allocator", "BatchingError", "UnsupportedSyntaxError", "BatchError",
           "NonTerminationError", "LaneError", "ForestError", "CupyBackendError",
           "RecursionDepthError"]

_SUBMODULES = ("testing", "kernels")


def __getattr__(name):
    # ``vmapper.testing.check_batching`` and ``vmapper.kernels.activations`` work after a plain
    # ``import vmapper``; imported on first use (``kernels`` imports numba, which is slow).
    if name in _SUBMODULES:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
