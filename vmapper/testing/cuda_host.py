"""Run generated CUDA kernels on the host: g++ and ctypes instead of NVRTC and a GPU.

The CUDA backend's source (:mod:`vmapper.kernels.cuda_codegen`) is plain
CUDA C++; with a small shim header (``__global__``/``__device__`` defined
away, ``blockIdx``/``threadIdx``/``blockDim``/``gridDim`` as globals that the
launcher sets, the bit-cast intrinsics and ``atomicMin`` in portable C++,
``<math.h>`` for the math functions) g++ compiles it unchanged into a shared
library.  :class:`HostKernel` is a :class:`~vmapper.kernels.cuda_codegen.CudaKernel`
that runs there on NumPy arrays: the same source, argument marshalling and
error decoding, so tests exercise everything but NVRTC and the device.

What carries over to the GPU: the code path of every lane (control flow,
casts, helpers, error codes, loop counters) and the grid-stride indexing (the
launcher runs a small grid, block by block and thread by thread).  Integer
and ``+ - * /`` float results are bitwise the GPU's: both follow IEEE 754
with round-to-nearest, and g++ is called with ``-ffp-contract=off`` as NVRTC
with ``--fmad=false``.  Math functions come from glibc here and libdevice
there: both within a few ulp, not bitwise.

::

    from vmapper.testing.cuda_host import compile_host_kernels, host_compiler
    [k] = compile_host_kernels([(fn_ir, arg_types, max_iters)])   # many kernels: one g++ run
    results, err_lane, err_code = k([a, b], n)
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np

from vmapper.kernels.cuda_codegen import CudaKernel, generate_cuda_source

__all__ = ["SHIM", "GXX_FLAGS", "host_compiler", "compile_host_kernels", "build_library", "HostKernel",
           "fake_cupy"]

SHIM = r"""
// vmapper: host shim for generated CUDA kernels (see vmapper/testing/cuda_host.py)
#include <math.h>
#include <string.h>
#define __global__
#define __device__
#define __forceinline__ inline
struct vm_dim3 { unsigned int x, y, z; };
static vm_dim3 blockIdx = {0, 0, 0}, threadIdx = {0, 0, 0}, blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
static inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, 8); return d; }
static inline long long __double_as_longlong(double d) { long long v; memcpy(&v, &d, 8); return v; }
static inline float __int_as_float(int v) { float f; memcpy(&f, &v, 4); return f; }
static inline int __float_as_int(float f) { int v; memcpy(&v, &f, 4); return v; }
template <typename T> static inline T __ldg(const T* p) { return *p; }
// the launcher runs one thread at a time: a plain read-modify-write is atomic enough
static inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
    unsigned long long old = *p;
    if (v < old) *p = v;
    return old;
}
extern "C" void vm_host_set_launch(unsigned int block, unsigned int thread, unsigned int block_dim,
                                   unsigned int grid_dim) {
    blockIdx.x = block; threadIdx.x = thread; blockDim.x = block_dim; gridDim.x = grid_dim;
}
"""
# -ffp-contract=off: no FMA contraction (NVRTC: --fmad=false); no -ffast-math; -O1 keeps the
# compile short; x86-64 computes float and double in SSE registers (no excess precision).
GXX_FLAGS = ("-std=c++14", "-O1", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared", "-w")

_CTYPES = {np.dtype(np.bool_): ctypes.c_bool, np.dtype(np.int8): ctypes.c_int8,
           np.dtype(np.int16): ctypes.c_int16, np.dtype(np.int32): ctypes.c_int32,
           np.dtype(np.int64): ctypes.c_int64, np.dtype(np.uint8): ctypes.c_uint8,
           np.dtype(np.uint16): ctypes.c_uint16, np.dtype(np.uint32): ctypes.c_uint32,
           np.dtype(np.uint64): ctypes.c_uint64, np.dtype(np.float32): ctypes.c_float,
           np.dtype(np.float64): ctypes.c_double}


def host_compiler():
    """The path of g++ (``$CXX`` if set), or None when there is none."""
    return shutil.which(os.environ.get("CXX", "g++"))


def build_library(sources, cache_dir=None, extra_flags=()):
    """Compile ``SHIM`` + ``sources`` (one translation unit) into a shared library; its ctypes handle.

    ``extra_flags`` follow :data:`GXX_FLAGS` (e.g. ``-fsanitize=undefined``).
    Libraries are kept under ``cache_dir`` (default: a ``vmapper-cuda-host``
    folder in the temp directory) by a hash of their source and flags, so a
    rerun compiles nothing.  Raises ``RuntimeError`` with g++'s message when
    the source does not compile.
    """
    cxx = host_compiler()
    if cxx is None:
        raise RuntimeError("no host C++ compiler (g++) found")
    flags = tuple(GXX_FLAGS) + tuple(extra_flags)
    text = SHIM + "\n" + "\n".join(sources)
    digest = hashlib.sha256((text + repr(flags)).encode()).hexdigest()[:24]
    cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), "vmapper-cuda-host")
    os.makedirs(cache_dir, exist_ok=True)
    lib = os.path.join(cache_dir, f"k{digest}.so")
    if not os.path.exists(lib):
        src = os.path.join(cache_dir, f"k{digest}.cpp")
        with open(src, "w") as f:
            f.write(text)
        tmp = f"{lib}.{os.getpid()}.tmp"
        out = subprocess.run([cxx, *flags, "-x", "c++", src, "-o", tmp, "-lm"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"g++ failed on {src}:\n{out.stderr[-6000:]}")
        os.replace(tmp, lib)  # atomic: a concurrent run sees the whole library or none
    return ctypes.CDLL(lib)


def compile_host_kernels(specs, unsupported="raise", extra_flags=()):
    """Host kernels for ``specs``: ``(fn_ir, arg_types, max_iters)`` each, compiled by one g++ run.

    ``unsupported="keep"`` puts the ``KernelUnsupported`` exception of a spec
    that cannot be generated in its place instead of raising it;
    ``extra_flags`` go to g++ after :data:`GXX_FLAGS`.
    """
    from vmapper.kernels.typing import KernelUnsupported
    out, sources, built = [], [], []
    for j, (fn, arg_types, max_iters) in enumerate(specs):
        try:
            src, meta = generate_cuda_source(fn, arg_types, count_loops=max_iters is not None,
                                             name=f"vmk{j}")
        except KernelUnsupported as exc:
            if unsupported != "keep":
                raise
            out.append(exc)
            continue
        sources.append(src)
        out.append(HostKernel(src, meta, arg_types, max_iters))
        built.append(out[-1])
    if built:
        lib = build_library(sources, extra_flags=extra_flags)
        for k in built:
            k.bind(lib)
    return out


class HostKernel(CudaKernel):
    """A :class:`CudaKernel` run on the CPU from the g++-compiled library (NumPy arrays)."""

    GRID = 3       # a small grid, so that the grid-stride loop is exercised
    BLOCK = 2

    def bind(self, lib):
        self._lib = lib
        self._fn = getattr(lib, self.name)
        self._fn.restype = None
        self._set_launch = lib.vm_host_set_launch
        self._set_launch.argtypes = [ctypes.c_uint] * 4

    @property
    def xp(self):
        return np

    def to_host(self, arr):
        return arr

    def _device(self):
        return 0

    def _launch(self, n, call):
        conv = [ctypes.c_int64(int(call[0]))]
        for a in call[1:]:
            if isinstance(a, np.ndarray):
                conv.append(ctypes.c_void_p(a.ctypes.data))
            else:
                conv.append(_CTYPES[np.dtype(type(a))](a))
        for b in range(self.GRID):
            for t in range(self.BLOCK):
                self._set_launch(b, t, self.BLOCK, self.GRID)
                self._fn(*conv)


# ---- a stand-in for CuPy ------------------------------------------------------------------------

def fake_cupy():
    """A module that stands in for ``cupy`` (put it in ``sys.modules["cupy"]``): NumPy arrays
    behind a CuPy-like ``ndarray`` type, and a ``RawKernel`` that compiles with g++ and runs the
    whole grid thread by thread on the host.  Just enough of CuPy for vmapper's CuPy backend,
    so that its wiring (argument conversion, dispatch, results, errors, gradients) is tested without
    a GPU.
    Its arrays refuse implicit conversion to NumPy, as CuPy's do: a host copy that the backend
    makes by accident fails.
    """
    import types
    mod = types.ModuleType("cupy")

    class ndarray:
        __module__ = "cupy._core.core"

        def __init__(self, data):
            self._data = data

        shape = property(lambda self: self._data.shape)
        dtype = property(lambda self: self._data.dtype)
        ndim = property(lambda self: self._data.ndim)
        size = property(lambda self: self._data.size)
        flags = property(lambda self: self._data.flags)

        @property
        def __cuda_array_interface__(self):
            return {"shape": self.shape, "typestr": self.dtype.str, "version": 3,
                    "data": (self._data.ctypes.data, False), "strides": None}

        def __len__(self):
            return len(self._data)

        def __array__(self, *args, **kwargs):
            raise TypeError("Implicit conversion to a NumPy array is not allowed (fake cupy)")

        def get(self):
            return self._data.copy()

        # arithmetic and conversions stay on the "device", as CuPy's do
        def astype(self, dtype, copy=True):
            return ndarray(self._data.astype(dtype, copy=copy))

        def sum(self, axis=None, dtype=None):
            return ndarray(np.asarray(self._data.sum(axis=axis, dtype=dtype)))

        def _binary(op, reflected=False):
            def method(self, other):
                a, b = self._data, unwrap(other)
                return ndarray(np.asarray(op(b, a) if reflected else op(a, b)))
            return method

        __add__, __radd__ = _binary(np.add), _binary(np.add, True)
        __sub__, __rsub__ = _binary(np.subtract), _binary(np.subtract, True)
        __mul__, __rmul__ = _binary(np.multiply), _binary(np.multiply, True)
        __truediv__ = _binary(np.true_divide)

        def transpose(self, *axes):
            return ndarray(self._data.transpose(*axes))

        def __getitem__(self, index):
            return ndarray(np.asarray(self._data[index]))

        def __repr__(self):
            return f"fake_cupy.ndarray({self._data!r})"

    def unwrap(a):
        return a._data if isinstance(a, ndarray) else np.asarray(a)

    mod.ndarray = ndarray
    mod.asarray = lambda a, dtype=None: ndarray(np.asarray(unwrap(a), dtype=dtype))
    mod.ascontiguousarray = lambda a, dtype=None: ndarray(np.ascontiguousarray(unwrap(a), dtype=dtype))
    mod.empty = lambda shape, dtype=float: ndarray(np.empty(shape, dtype))
    mod.full = lambda shape, value, dtype=None: ndarray(np.full(shape, value, dtype))
    mod.asnumpy = lambda a: unwrap(a).copy()
    mod.zeros = lambda shape, dtype=float: ndarray(np.zeros(shape, dtype))
    mod.ones = lambda shape, dtype=float: ndarray(np.ones(shape, dtype))
    mod.broadcast_to = lambda a, shape: ndarray(np.broadcast_to(unwrap(a), shape))
    mod.moveaxis = lambda a, source, destination: ndarray(np.moveaxis(unwrap(a), source, destination))
    mod.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDevice=lambda: 0))

    class RawKernel:
        def __init__(self, code, name, options=()):
            self.code, self.name, self.options = code, name, tuple(options)
            self._fn = None

        def __call__(self, grid, block, args):
            if self._fn is None:
                lib = build_library([self.code])
                self._fn = getattr(lib, self.name)
                self._fn.restype = None
                self._set = lib.vm_host_set_launch
                self._set.argtypes = [ctypes.c_uint] * 4
            conv = []
            for a in args:
                if isinstance(a, ndarray):
                    conv.append(ctypes.c_void_p(a._data.ctypes.data))
                else:
                    conv.append(_CTYPES[np.dtype(type(a))](a))
            (g,), (b,) = grid, block
            for bi in range(g):
                for ti in range(b):
                    self._set(bi, ti, b, g)
                    self._fn(*conv)

    mod.RawKernel = RawKernel
    return mod
