"""vmapper's compiled kernels (``vmapper.kernels``).

Submodules load on first use, so ``vmapper.kernels.losses.cross_entropy`` and
``vmapper.kernels.activations.gelu`` work after a plain ``import vmapper``, in per-sample
code too (importing them brings in numba, which is slow to import).
"""
import importlib

_LAZY = {"activations", "losses", "packed_cells", "vmath", "cache"}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
