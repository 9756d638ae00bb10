"""Let LLVM vectorize our kernels with the CPU's full vector width.

On many CPUs with AVX-512 (Intel's), LLVM prefers 256-bit vectors (its ``prefer-256-bit``
tuning, meant for code where 512-bit instructions lower the clock more than
they gain), so numba kernels use ``ymm`` registers only.  Our kernels are
arithmetic-bound loops of vectorizable math (:mod:`.vmath`), where 512-bit
vectors do twice the work per instruction.  numba's only switch for it,
``NUMBA_CPU_FEATURES``, is process-wide and would change the user's own numba
code too; instead :func:`wide_vectors`, called inside a kernel's loop,
marks just the function being compiled with LLVM's ``prefer-vector-width``
attribute.

``VMAPPER_VECTOR_WIDTH`` (bits: 128, 256 or 512) overrides the choice,
which is otherwise 512 where the CPU has AVX-512F and nothing (LLVM's own
default) elsewhere.  The width is part of every kernel's cache key
(:data:`WIDTH_TAG`), so changing it never reuses code compiled for another.

Importing this module also makes numba's on-disk cache of the functions
defined in this directory (``cache=True``: the activation and vmath array
kernels) depend on the files they inline and on the width.  numba keys a
cached function on its own source file only, so an edit of
``activation_scalars.py`` or ``vmath_*.py`` alone left ``activations.py``'s
cached machine code in use, computing with the old formulas.
"""
from __future__ import annotations

import hashlib
import os

from numba import types
from numba.extending import intrinsic


def _host_features():
    """The host CPU's feature map (llvmlite), or None where it cannot be queried."""
    try:
        import llvmlite.binding as ll
        return ll.get_host_cpu_features()
    except Exception:
        return None


def _choose_width():
    env = os.environ.get("VMAPPER_VECTOR_WIDTH")
    if env:
        if env not in ("128", "256", "512"):
            raise ValueError(f"VMAPPER_VECTOR_WIDTH must be 128, 256 or 512, not {env!r}")
        return int(env)
    features = _host_features()
    if features is None:  # no feature query: keep LLVM's default
        return None
    return 512 if features.get("avx512f") else None


def _target_has_fma():
    """Whether the CPU numba compiles for fuses multiply-add in hardware: without
    it ``llvm.fma`` becomes a libm call per element, which stops vectorization."""
    from numba.core import config
    if config.CPU_FEATURES:             # NUMBA_CPU_FEATURES: what the code may use
        return "+fma" in config.CPU_FEATURES.split(",")
    if config.CPU_NAME and config.CPU_NAME != "host":
        return False                    # a portable target: assume the least
    import platform
    if platform.machine().lower() in ("aarch64", "arm64", "ppc64le", "ppc64", "s390x"):
        return True
    features = _host_features()
    return bool(features is not None and features.get("fma"))  # unknown: unfused is always right


#: Preferred vector width in bits, or None (LLVM's default for the CPU).
VECTOR_WIDTH = _choose_width()
#: A string that changes whenever the generated machine code would.
WIDTH_TAG = f"vw{VECTOR_WIDTH or 0}"
#: Whether vmath's ``fma`` rounds once (see :func:`.vmath_common.fma`).
HAS_FMA = _target_has_fma()


@intrinsic
def wide_vectors(typingctx):
    """No-op at run time; marks the enclosing compiled function to vectorize at VECTOR_WIDTH."""
    def codegen(context, builder, signature, args):
        if VECTOR_WIDTH is not None:
            # a string attribute, which llvmlite's attribute set does not list
            set.add(builder.function.attributes, f'"prefer-vector-width"="{VECTOR_WIDTH}"')
        return context.get_dummy_value()
    return types.none(), codegen


# ------------------------------------------------------- numba cache stamp --
_KERNEL_DIR = os.path.dirname(os.path.abspath(__file__))


def _inlined_sources_digest():
    """Hash of the files whose code the kernels of this directory inline
    (``@njit(forceinline=True)`` helpers), of the vector width and of :data:`HAS_FMA`."""
    h = hashlib.sha256(f"{WIDTH_TAG} fma={HAS_FMA}".encode())
    for name in sorted(os.listdir(_KERNEL_DIR)):
        if name.endswith(".py") and (name.startswith("vmath")
                                     or name in ("activation_scalars.py", "vector_width.py")):
            h.update(name.encode())
            with open(os.path.join(_KERNEL_DIR, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def _install_cache_stamp():
    try:
        from numba.core import caching
        impl = caching.CacheImpl
        bases = (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator)
    except AttributeError:           # another numba layout: keep numba's own stamp
        return
    if any(getattr(c, "_vmapper_stamp", False) for c in impl._locator_classes):
        return
    digest = _inlined_sources_digest()

    def stamped(base):
        class Locator(base):
            _vmapper_stamp = True

            def get_source_stamp(self):
                return (base.get_source_stamp(self), digest)

            @classmethod
            def from_function(cls, py_func, py_file):
                if os.path.dirname(os.path.abspath(py_file)) != _KERNEL_DIR:
                    return None                 # anyone else's code: numba's locators
                return super().from_function(py_func, py_file)
        Locator.__name__ = Locator.__qualname__ = "Vmapper" + base.__name__
        return Locator
    impl._locator_classes[:0] = [stamped(b) for b in bases]


_install_cache_stamp()
