"""On-disk and in-memory cache of compiled kernels.

numba's ``cache=True`` cannot cache functions created with ``exec``: it needs
a source file.  So each kernel's generated source is written to a file named
by the hash of its content, under :func:`cache_dir` (``$VMAPPER_CACHE_DIR``,
else ``~/.cache/vmapper/kernels``), and imported with :mod:`importlib`; the
``@njit(cache=True)`` functions inside it then keep their machine code in the
``__pycache__`` next to it, so a new process that generates the same source
loads it instead of compiling.  The source header names the codegen version
and the numba/numpy/Python versions and a hash of ``vmath.py`` (whose
functions the kernels call), so a change to any of them gives a new file.

Files are never rewritten (numba keys its cache on the file's mtime), and
are written atomically (temporary file + ``os.replace``), so concurrent
processes may share the directory.

``stats``: ``compiled`` counts kernels numba compiled in this process,
``loaded_from_disk`` kernels whose machine code came from the disk cache,
``memory_hits`` calls of ``compile_kernel`` answered from memory.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading

import numpy as np

__all__ = ["stats", "cache_dir", "clear_memory", "load_module", "ensure_compiled", "environment_tag"]

stats = {"compiled": 0, "loaded_from_disk": 0, "memory_hits": 0}

_memory: dict = {}
#: (id(fn), argument types, options) -> (fn, kernel): the kernels of ``_memory`` found by the IR
#: function's identity, without hashing it (a third of a small batched call's time)
_by_identity: dict = {}
_modules: dict = {}
_lock = threading.RLock()
_env_tag = None


def cache_dir() -> str:
    d = os.environ.get("VMAPPER_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "vmapper",
                                                            "kernels")
    try:
        os.makedirs(d, exist_ok=True)
        if not os.access(d, os.W_OK):
            raise OSError(d)
    except OSError:
        d = os.path.join(tempfile.gettempdir(), f"vmapper-kernels-{os.getuid() if hasattr(os, 'getuid') else 0}")
        os.makedirs(d, exist_ok=True)
    return d


def environment_tag() -> str:
    """What the machine code of a kernel depends on besides its own source."""
    global _env_tag
    if _env_tag is None:
        import numba
        spec = importlib.util.find_spec("vmapper.kernels.vmath")
        try:   # vmath.py re-exports its sibling vmath_*.py modules: hash them all
            d = os.path.dirname(spec.origin)
            h = hashlib.sha256()
            for name in ["vmath.py"] + sorted(n for n in os.listdir(d)
                                              if n.startswith("vmath_") and n.endswith(".py")):
                with open(os.path.join(d, name), "rb") as f:
                    h.update(f.read())
            vm = h.hexdigest()[:16]
        except (OSError, AttributeError, TypeError):
            vm = "none"
        _env_tag = (f"numba {numba.__version__}; numpy {np.__version__}; "
                    f"python {sys.version_info[0]}.{sys.version_info[1]}; vmath {vm}")
    return _env_tag


def memory_get(key):
    k = _memory.get(key)
    if k is not None:
        stats["memory_hits"] += 1
    return k


def memory_put(key, kernel):
    _memory[key] = kernel


def identity_get(key, fn):
    hit = _by_identity.get(key)
    if hit is not None and hit[0] is fn:
        stats["memory_hits"] += 1
        return hit[1]
    return None


def identity_put(key, fn, kernel):
    _by_identity[key] = (fn, kernel)


def clear_memory():
    """Forget the kernels and modules of this process (the disk cache stays)."""
    with _lock:
        _memory.clear()
        _by_identity.clear()
        _modules.clear()


def load_module(source: str):
    """Import the kernel module holding ``source`` (written to the cache directory once)."""
    h = hashlib.sha256(source.encode()).hexdigest()[:32]
    with _lock:
        hit = _modules.get(h)
        if hit is not None:
            return hit
        name = f"vmapper_kernel_{h}"
        path = os.path.join(cache_dir(), name + ".py")
        if not os.path.exists(path):
            fd, tmp = tempfile.mkstemp(prefix=name, suffix=".tmp", dir=os.path.dirname(path))
            with os.fdopen(fd, "w") as f:
                f.write(source)
            try:
                os.link(tmp, path)  # atomic and never replaces an existing file (keeps its mtime)
            except FileExistsError:
                pass
            except OSError:
                if not os.path.exists(path):
                    os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _modules[h] = (module, path)
        return module, path


def ensure_compiled(module, signature, entry="serial"):
    """Compile (or load from numba's disk cache) the module's ``entry`` (``serial``: the
    one-task driver; ``kernel``: the prange driver) for ``signature``."""
    d = getattr(module, entry)
    with _lock:
        if signature in d.overloads or any(tuple(s) == signature for s in d.signatures):
            return
        before_hits = sum(d.stats.cache_hits.values())
        from vmapper.profiler import compiling
        try:
            with compiling(f"numba {entry}"):  # (an open vmapper.profile() books it apart)
                d.compile(signature)
        except BaseException:
            _forget(module)
            raise
        if sum(d.stats.cache_hits.values()) > before_hits:
            stats["loaded_from_disk"] += 1
        else:
            stats["compiled"] += 1


def _forget(module):
    """Drop ``module`` and the kernels built on it.  A compile that did not finish (Ctrl-C
    during a first call) can leave numba's dispatcher half-built, failing every later call
    with numba's ``no compiled object yet``: the next call imports the module afresh."""
    with _lock:
        for h, (m, _) in list(_modules.items()):
            if m is module:
                del _modules[h]
        sys.modules.pop(module.__name__, None)
        for key, k in list(_memory.items()):
            if getattr(k, "module", None) is module:
                del _memory[key]
        for key, (_, k) in list(_by_identity.items()):
            if getattr(k, "module", None) is module:
                del _by_identity[key]
