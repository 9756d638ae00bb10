"""Compile an elementwise IR function into ONE numba kernel over lanes.

::

    from vmapper.kernels.codegen import kernel_eligible, compile_kernel
    reason = kernel_eligible(fn_ir)            # None, or why the function cannot be a kernel
    k = compile_kernel(fn_ir, arg_types, exact_math=False, max_iters=None)
    results, err_lane, err_code = k(args, n)
    k.errors[err_code]  # -> (line, exception type, message)
    k.result_weak       # NEP 50 weakness of the result (a tuple for tuple returns)
    k.result_dtype      # numpy dtype of the result (a tuple for tuple returns)

The kernel comes in two variants (:attr:`Kernel.variant`), with the same
results, lane errors and ``max_iters`` behaviour:

* ``"scalar"``: a loop over lanes calling a per-lane function generated from
  the CFG: every lane runs the function's blocks with its own control flow,
  as a dispatch loop ``while blk >= 0: if blk == 0: ... elif ...`` that LLVM
  jump-threads into the CFG itself (measured within a few percent of
  hand-structured code, see ``benchmarks/kernel_loops_probe.py``).  LLVM
  vectorizes across lanes only a function without control flow; the loop
  runs over slices from 0 (contiguous vector loads, no gathers) and asks for
  the CPU's full vector width (:mod:`.vector_width`), as the activation
  kernels do.  A ``prange`` splits the lanes into one contiguous range per
  thread, except for a function without loops whose estimated work
  (:func:`.codegen_source.lane_cost` x lanes) is below :data:`SERIAL_WORK`:
  that runs on the calling thread (on a loaded machine, waking the other
  threads can cost a scheduler time slice).
* ``"lockstep"`` (:mod:`.codegen_lockstep`, :mod:`.codegen_lockstep_kernel`):
  chunks of 64 lanes run the CFG together, a block at a time for the lanes
  waiting at it, each block a loop over the chunk that LLVM vectorizes; a
  lane that finishes is replaced by the next one.  1.6-3.9x faster on loops
  (and branches) of float or vmath work, slower on integer, libm and short
  branchy code, so :func:`~.codegen_lockstep_policy.lockstep_width` picks it
  per function (``compile_kernel(..., lockstep=True/False)`` or
  ``$VMAPPER_LOCKSTEP=1/0`` force either).

In both, variables carry the dtypes that
:mod:`vmapper.kernels.typing` inferred (a variable whose type changes gets
one numba variable per dtype, converted on the CFG edges), every numpy cast
is spelled out, and numpy's own scalar algorithms are used (floor division
and remainder, shifts by out-of-range counts, min/max/clip with NaNs,
integer power by squaring...), so that results are bitwise equal to the
numpy runtime for integer and ``+ - * /`` float work.  No fastmath: LLVM
does not contract ``a*b + c`` into an FMA.  Transcendental functions use
:mod:`vmapper.kernels.vmath` (vectorizable, within a few ulp) unless
``exact_math`` asks for libm.

A lane that fails (where the per-sample run raises) stops with an error
code; the kernel reports the smallest failing lane and its code, which
:attr:`Kernel.errors` decodes.  The codes cover division/modulo by zero,
integer powers with negative exponents, Python-float ``**`` domain and
overflow errors, ``math.*`` domain/range errors, ``int()``/``round()`` of
NaN/inf/out-of-int64 floats, ``range()`` with step 0 or a float bound,
``assert``/``raise``, reads of unbound variables (a defined flag is kept only
for variables that are not definitely assigned where they are read) and
``max_iters`` (``NonTerminationError``, counted per lane and loop entry).

``compile_kernel`` raises :class:`~vmapper.kernels.typing.KernelUnsupported`
when the function with these argument types cannot be compiled exactly (a
dtype numba or this module does not handle, a type error the runtime would
report, a literal out of range of its NEP 50 type...); fall back to the runtime.

Known differences from the runtime (documented, by design):

* dtypes are inferred statically: a variable assigned an int on one path and
  a float on another is promoted on every lane, while the runtime promotes
  only when lanes of one batch actually take both paths (values are equal);
* computations on uniform values that the runtime does with Python objects
  (arbitrary-precision ints, ``int ** negative int`` giving a float) are done
  in the inferred dtypes unless all their operands are literals (those are
  folded with Python semantics at generation time);
* ``round()`` of a float beyond int64 fails with ``OverflowError`` (the
  runtime returns an unspecified value); out-of-range float -> int casts
  (``np.int32(1e20)``) follow numpy's x86 results for int64/int32 and
  narrower signed types, and are unspecified otherwise (numpy warns);
* numba emits signed ``add/sub/mul`` with LLVM's ``nsw`` flag: results wrap
  like numpy's on overflow in practice, but LLVM may assume they do not.

The generator is split into sibling modules (re-exported here):
:mod:`.codegen_eligible` (eligibility), :mod:`.codegen_helpers` (tables and
emitted helper sources), :mod:`.codegen_ops` (per-operation emission),
:mod:`.codegen_emitter` (blocks and the lane function),
:mod:`.codegen_lockstep*` (the lockstep variant: block bodies, driver,
schedule, policy, run-time intrinsics) and :mod:`.codegen_source` (kernel
module source, fingerprints); this module holds the callable :class:`Kernel`
and :func:`compile_kernel`.
"""
from __future__ import annotations

import os
import threading

import numpy as np

from vmapper.errors import NonTerminationError
from . import cache as _cache
from . import interrupt as _interrupt
from .typing import TT, KernelUnsupported

__all__ = ["kernel_eligible", "compile_kernel", "generate_source", "Kernel", "KernelUnsupported",
           "CODEGEN_VERSION"]

from .codegen_eligible import _FORBIDDEN, kernel_eligible  # noqa: F401
from .codegen_emitter import _Emitter  # noqa: F401
from .codegen_source import (CODEGEN_VERSION, generate_source, fingerprint,  # noqa: F401
                             _spec_key, _result_items)


# ---- the callable kernel ----------------------------------------------------------------------

class Kernel:
    """A compiled kernel: ``results, err_lane, err_code = k(args, n)``.

    ``variant``: ``"scalar"`` or ``"lockstep"``; ``width``: a lockstep kernel's
    lanes per chunk (None for the scalar kernel).  Both run on numba's threads
    (a ``prange``: over lanes, or over up to ``numba.get_num_threads()`` tasks
    of contiguous lanes for a lockstep kernel).
    """

    def __init__(self, module, meta, arg_types, max_iters, source, path):
        self._module = module
        self._serial = module.serial  # one task, on the calling thread
        self._parallel = None         # the prange driver, compiled when a call first needs it
        self.width = meta.get("width")   # lanes per chunk of a lockstep kernel; None: scalar kernel
        self.variant = "scalar" if self.width is None else "lockstep"
        self.lane_cost = meta.get("lane_cost")  # operations per lane (None: the function loops)
        self.polls = meta.get("polls", False)   # takes interrupt.STOP: Ctrl-C stops it (it loops)
        self.module = module
        self.source = source
        self.path = path
        self.arg_types = [tuple(s) if s[0] == "lanes" else s for s in arg_types]
        self.max_iters = max_iters
        items = meta["items"]
        self.result_dtype = tuple(t.dtype for t in items) if isinstance(meta["result"], TT) else items[0].dtype
        self.result_weak = tuple(t.weak for t in items) if isinstance(meta["result"], TT) else items[0].weak
        self._dtypes = [t.dtype for t in items]
        self._tuple = isinstance(meta["result"], TT)
        self.errors = {code: (line, et, f"loop passed max_iters={max_iters}" if et is NonTerminationError
                              else msg) for code, (line, et, msg) in meta["errors"].items()}
        self._lanes = [s[0] == "lanes" for s in arg_types]
        self._arg_dtypes = [np.dtype(s[1]) if s[0] == "lanes" else None for s in arg_types]
        self._uniform_conv = [None if s[0] == "lanes" else _uniform_converter(s[1]) for s in arg_types]

    def signature(self):
        from numba import typeof, types
        sig = [types.int64]
        for lanes, dt, conv, spec in zip(self._lanes, self._arg_dtypes, self._uniform_conv, self.arg_types):
            if lanes:
                sig.append(types.Array(typeof(dt.type(0)), 1, "C"))
            else:
                sig.append(typeof(conv(spec[1])))
        for dt in self._dtypes:
            sig.append(types.Array(typeof(dt.type(0)), 1, "C"))
        sig.append(types.Array(types.int32, 1, "C"))
        if self.max_iters is not None:
            sig.append(types.int64)
        if self.polls:
            sig.append(types.Array(types.int64, 1, "C"))
        if self.width is not None:
            sig += [types.int64, types.int64]  # wr (== width), ntask
        else:
            sig.append(types.int64)  # ntask
        return tuple(sig)

    def __call__(self, args, n):
        n = int(n)
        call = [n]
        for a, lanes, dt, conv in zip(args, self._lanes, self._arg_dtypes, self._uniform_conv):
            if lanes:
                arr = np.ascontiguousarray(a, dtype=dt)
                if arr.shape != (n,):
                    raise ValueError(f"a lane argument of shape {arr.shape} for {n} lanes")
                call.append(arr)
            else:
                call.append(conv(a))
        outs = [np.empty(n, dt) for dt in self._dtypes]
        codes = np.zeros(n if self.errors else 1, np.int32)  # written only by failing lanes
        call += outs
        call.append(codes)
        if self.max_iters is not None:
            call.append(int(self.max_iters))
        if self.width is not None:
            ntask = _task_count(n, self.width)
            tail = [self.width, ntask]
        else:
            ntask = _scalar_task_count(n, self.lane_cost)
            tail = [ntask]
        run = self._serial if ntask <= 1 else self._parallel_driver()
        if self.polls:
            flag = _interrupt.arm()
            try:
                run(*call, flag, *tail)
            finally:
                stopped = _interrupt.disarm(flag)
            if stopped:  # (the lanes gave up: no results, whether or not the handler has raised yet)
                raise KeyboardInterrupt("a compiled kernel was interrupted (SIGINT)")
        else:
            run(*call, *tail)
        err_lane, err_code = -1, 0
        if self.errors and n and codes.any():
            err_lane = int(np.flatnonzero(codes)[0])
            err_code = int(codes[err_lane])
        results = tuple(outs) if self._tuple else outs[0]
        return results, err_lane, err_code

    def _parallel_driver(self):
        # Compiled on first use: numba's parfor passes cost as much again as the rest of a
        # kernel (1.0 s against 1.1 s for the LSTM cell), and batches too small for more than
        # one task never need them.
        if self._parallel is None:
            _cache.ensure_compiled(self._module, self.signature(), entry="kernel")
            self._parallel = self._module.kernel
        return self._parallel

    def __repr__(self):
        return f"<vmapper kernel {self.path}>"


def _task_count(n, width):
    # One task per thread: a task's chunk is refilled from its own lanes and drains (lanes
    # finish, none left to load) only at its end.  A few chunks' worth of lanes per task at
    # least: waking a thread costs more than that much work.
    from numba import get_num_threads
    return max(1, min(n // (8 * width), get_num_threads()))


#: Lanes per thread from which a scalar kernel whose function loops runs on more than one thread.
SCALAR_LANES_PER_TASK = 1024
#: Estimated operations (lanes x operations per lane) below which a scalar kernel of a
#: function without loops runs on the calling thread alone.  On a loaded machine waking the
#: other threads costs up to a scheduler time slice: a 2-task contraction kernel of 10^5 lanes
#: (4 operations per lane) took 16 ms (median) against 0.55 ms on one thread.
SERIAL_WORK = 1 << 21


def _scalar_task_count(n, lane_cost=None):
    # One contiguous range of lanes per thread, as a prange over lanes would split them.
    from numba import get_num_threads
    if lane_cost is not None and n * lane_cost < SERIAL_WORK:
        return 1
    return max(1, min(n // SCALAR_LANES_PER_TASK, get_num_threads()))


def _uniform_converter(example):
    if type(example) is bool:
        return lambda v: bool(v)
    if type(example) is int:
        def conv(v):
            if not -2 ** 63 <= v < 2 ** 63:
                raise KernelUnsupported(f"uniform integer {v} beyond int64")
            return np.int64(v)
        return conv
    if type(example) is float:
        return lambda v: np.float64(v)
    if isinstance(example, np.generic):
        t = type(example)
        return lambda v: t(v)
    raise KernelUnsupported(f"uniform argument of type {type(example).__name__}")


_lock = threading.RLock()


def compile_kernel(fn, arg_types, exact_math=False, max_iters=None, lockstep=None) -> Kernel:
    """The kernel of ``fn`` for these argument types, cached in memory and on disk.

    ``arg_types``: per parameter ``("lanes", dtype, weak)`` or ``("uniform", value)``
    (uniform values are passed to the kernel as arguments, only their type is
    compiled in).  ``max_iters``: a loop header reached more than that many
    times in one entry of its loop fails the lane with ``NonTerminationError``.

    ``lockstep``: which kernel body (:attr:`Kernel.variant`).  True: the
    lockstep kernel (:mod:`.codegen_lockstep_kernel`, chunks of lanes run the
    CFG together, vectorized across lanes); False: the scalar kernel (each
    lane its own control flow); None: ``$VMAPPER_LOCKSTEP`` (``1``/``0``) if
    set, else :func:`.codegen_lockstep_policy.lockstep_width` decides.  Both
    give the same results, lane errors and ``max_iters`` behaviour; a function
    the lockstep generator cannot handle (``KernelUnsupported``, or numba
    failing to compile its source) gets the scalar kernel.
    """
    fast = (id(fn), tuple((s[0], s[1], s[2]) if s[0] == "lanes" else (s[0], type(s[1])) for s in arg_types),
            bool(exact_math), max_iters, lockstep, os.environ.get("VMAPPER_LOCKSTEP", ""),
            _interrupt.polls_enabled())
    k = _cache.identity_get(fast, fn)
    if k is None:
        k = _compile_kernel(fn, arg_types, exact_math, max_iters, lockstep)
        _cache.identity_put(fast, fn, k)
    return k


def _compile_kernel(fn, arg_types, exact_math, max_iters, lockstep):
    from .codegen_lockstep_policy import lockstep_width
    arg_types = [tuple(s) for s in arg_types]
    width = lockstep_width(fn, arg_types, exact_math, lockstep)
    key = (fingerprint(fn), tuple(_spec_key(s) for s in arg_types), bool(exact_math), max_iters, width,
           _interrupt.polls_enabled())
    k = _cache.memory_get(key)
    if k is not None:
        return k
    with _lock:
        k = _cache.memory_get(key)
        if k is not None:
            return k
        if width is None:
            k = _build(fn, arg_types, exact_math, max_iters, None)
        else:
            try:
                k = _build(fn, arg_types, exact_math, max_iters, width)
            except Exception as exc:  # noqa: BLE001 - any lockstep failure: the scalar kernel serves
                from numba.core.errors import NumbaError
                if not isinstance(exc, (KernelUnsupported, NumbaError)):
                    raise
                k = compile_kernel(fn, arg_types, exact_math, max_iters, lockstep=False)
        _cache.memory_put(key, k)
        return k


def _build(fn, arg_types, exact_math, max_iters, width):
    from vmapper.profiler import compiling
    with compiling("kernel source"):
        src, meta = generate_source(fn, arg_types, exact_math, max_iters is not None, width=width)
        module, path = _cache.load_module(src)
        k = Kernel(module, meta, arg_types, max_iters, src, path)
        _cache.ensure_compiled(module, k.signature())
    return k
