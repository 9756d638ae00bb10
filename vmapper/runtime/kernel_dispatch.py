"""Run a whole elementwise function as one compiled kernel when the backend allows.

A function whose every operation is per-lane scalar work (its ``if``/``while``/
``for`` included) and whose arguments are per-lane scalars (or uniform scalars)
runs as ONE numba kernel in which each lane follows its own control flow --
no masks, no compaction; in a differentiated run its dual-number partials go on
the tape (:mod:`vmapper.autodiff.kernel_partials`).  Anything else stays on the
numpy runtime.  Errors a lane raises in the kernel become the same
:class:`LaneError`/:class:`NonTerminationError` the numpy runtime raises.

A call with CuPy lane arrays, or with ``backend="cupy"``, runs as ONE CUDA
kernel instead (:mod:`vmapper.kernels.cuda_codegen`; see :func:`run_cuda`),
or raises :class:`CupyBackendError`: it never falls back to the runtime,
which would copy the arrays to the host.
"""
from __future__ import annotations

import sys

import numpy as np

from ..errors import CupyBackendError, LaneError, NonTerminationError
from .kernel_globals import kernel_program, with_global_values
from .values import Lanes, Traced, is_cupy_array

_NOT_RUN = object()


def kernel_reason(program):
    """None if ``program`` can be a kernel, else why not (cached on the program)."""
    if not hasattr(program, "_kernel_reason"):
        from ..profiler import compiling
        with compiling("kernel check"):  # (once per function: an open profile() books it apart)
            try:
                from ..kernels.codegen import kernel_eligible
            except Exception as exc:  # numba missing or broken: the numpy runtime serves
                program._kernel_reason = f"kernel backend unavailable ({exc})"
            else:
                program._kernel_reason = kernel_eligible(kernel_program(program).ir)
    return program._kernel_reason


def _arg_type(a):
    if isinstance(a, Lanes):
        d = a.data
        if d.ndim == 1 and (d.dtype.kind in "biu" or d.dtype in (np.float32, np.float64)):
            return ("lanes", d.dtype, a.weak), np.ascontiguousarray(d)
        return None
    if isinstance(a, (bool, int, float, np.bool_, np.integer, np.floating)):
        return ("uniform", a), a
    return None


def _int_out_of_lane_range(args):
    """A shared Python int that some narrower integer lanes of the call cannot hold, or None.

    A kernel gives a uniform Python int the type of the lanes it meets (NEP 50), which
    would wrap ``300`` to an int8's 44 where the per-sample run compares it exactly (or
    raises ``OverflowError`` for arithmetic); the numpy runtime does what numpy does."""
    ints = [a for a in args if type(a) is int]
    if not ints:
        return None
    for a in args:
        d = a.data.dtype if isinstance(a, Lanes) else None
        if d is not None and d.kind in "iu" and d.itemsize < 8 or d == np.uint64:
            info = np.iinfo(d)
            for v in ints:
                if not info.min <= v <= info.max:
                    return v, d
    return None


def try_kernel(state, program, args, n, lane_ids):
    """The kernel's result over ``n`` lanes, or ``_NOT_RUN`` when the numpy runtime must run
    (:func:`_try_kernel`), timed in an open ``vmapper.profile()``."""
    prof = state.profile
    if prof is None or not hasattr(program, "source"):  # (a kernel region is timed as one step)
        return _try_kernel(state, program, args, n, lane_ids)
    t0 = prof.start()
    out = _try_kernel(state, program, args, n, lane_ids)
    prof.stop(t0, "forward", program, program.source.first_line, "kernel" if out is not _NOT_RUN else "kernel check", n)
    return out


def _try_kernel(state, program, args, n, lane_ids):
    """The kernel's result over ``n`` lanes, or ``_NOT_RUN`` when the numpy runtime must run.

    In a differentiated run, traced arguments are differentiated by the
    kernel's dual-number partials (:mod:`vmapper.autodiff.kernel_partials`);
    where forward mode cannot serve, the numpy runtime records the function
    on the tape instead.
    """
    if state.backend == "cupy" or "cupy" in sys.modules and any(_on_device(a) for a in args):
        return run_cuda(state, program, args, n, lane_ids)
    if state.backend != "numba" or kernel_reason(program) is not None:
        return _NOT_RUN
    source_program, program = program, kernel_program(program)
    args, _ = with_global_values(program, args)
    if args is None:
        return _NOT_RUN
    nodes = None
    if state.tape is not None:
        from ..autodiff.tape import unwrap
        pairs = [unwrap(a) for a in args]
        args = [p[0] for p in pairs]
        nodes = [p[1] for p in pairs]
        if any(type(nd) is tuple for nd in nodes):
            return _NOT_RUN
    typed = [_arg_type(a) for a in args]
    if any(t is None for t in typed) or _int_out_of_lane_range(args) is not None:
        return _NOT_RUN
    from ..kernels.typing import KernelUnsupported
    launch = Launcher(state, program, [t[0] for t in typed], [t[1] for t in typed], n, lane_ids, _numba_compiler(state))
    try:
        if nodes is not None and any(nd is not None for nd in nodes):
            from ..autodiff.kernel_partials import NotDifferentiable, run_with_partials
            try:
                return run_with_partials(state.tape, program, args, nodes, n, launch)
            except NotDifferentiable:
                return _NOT_RUN
            finally:
                launch.forget_caller()
        results = launch(program.ir)
    except KernelUnsupported as exc:  # not exactly compilable for these argument types
        source_program.last_kernel_refusal = (tuple(t[0] for t in typed), str(exc))  # (explain() shows it)
        return _NOT_RUN
    if _returns_tuple(program):
        return tuple(Lanes(r, w) for r, w in results)
    return Lanes(*results[0])


class Launcher:
    """Runs kernels of IR functions over one call's arguments: ``launch(fn_ir, extra=(), replace_args=False)``.

    ``extra`` lane arrays follow the call's arguments (or replace them).  The
    tape keeps a launcher for the backward kernels; :meth:`forget_caller`
    drops what refers back to the running call (its frames reach the tape), so
    that a finished differentiated call is freed at once, not by the cycle
    collector (large arrays kept alive that way make every new allocation
    page-fault: measured 5x on a 3M-lane LSTM cell).
    """

    def __init__(self, state, program, types, raw, n, lane_ids, compile_kernel):
        self.stats, self.compile_kernel = state.stats, compile_kernel
        self.program, self.types, self.raw, self.n, self.lane_ids = program, types, raw, n, lane_ids

    def forget_caller(self):
        self.lane_ids = None

    def __call__(self, fn_ir, extra=(), replace_args=False):
        lanes = [("lanes", a.dtype, False) for a in extra]
        kernel = self.compile_kernel(fn_ir, lanes if replace_args else self.types + lanes)
        results, err_lane, err_code = kernel(list(extra) if replace_args else self.raw + list(extra), self.n)
        stats = self.stats
        stats.launches += 1
        stats.kernel_launches += 1
        stats.active_lane_ops += self.n
        stats.processed_lane_ops += self.n
        if err_lane >= 0:
            _raise(self.program, kernel, err_lane, err_code, self.lane_ids)
        if isinstance(results, tuple):
            return list(zip(results, kernel.result_weak))
        return [(results, bool(kernel.result_weak))]


def _numba_compiler(state):
    from ..kernels.codegen import compile_kernel
    exact_math, max_iters = state.exact_math, state.max_iters
    return lambda fn_ir, types: compile_kernel(fn_ir, types, exact_math=exact_math, max_iters=max_iters)


def _cuda_compiler(state):
    from ..kernels.cuda_codegen import compile_cuda_kernel
    max_iters = state.max_iters
    return lambda fn_ir, types: compile_cuda_kernel(fn_ir, types, max_iters=max_iters)


def _returns_tuple(program):
    if not hasattr(program, "_returns_tuple"):
        from ..autodiff.forward_mode import result_count
        program._returns_tuple = result_count(program.ir) is not None
    return program._returns_tuple


def _raise(program, kernel, err_lane, err_code, lane_ids):
    line, exc_type, message = kernel.errors[err_code]
    ids = lane_ids() if callable(lane_ids) else lane_ids
    lane = int(ids[err_lane]) if ids is not None else int(err_lane)
    source = f"    {line} | {program.source_line(line).strip()}"
    where = f"{program.where(line)}\n{source}"
    if exc_type is NonTerminationError:
        limit = message.partition("max_iters")[2]  # ("=N" where the kernel knows it)
        raise NonTerminationError(f"loop at {program.where(line)} passed max_iters{limit} on lane [{lane}] "
                                  f"(the compiled kernel reports the first such lane)\n{source}",
                                  lanes=np.array([lane]), line=line)
    raise LaneError(f"{exc_type.__name__}: {message} on lane(s) [{lane}] at {where}", lanes=np.array([lane]),
                    line=line, operation=message, python_error=exc_type)


# ---- the CuPy backend ---------------------------------------------------------------------------

def _on_device(v) -> bool:
    if isinstance(v, Lanes):
        return is_cupy_array(v.data)
    if isinstance(v, Traced):
        return _on_device(v.value)
    if type(v) is tuple:
        return any(_on_device(x) for x in v)
    if type(v) is dict:
        return any(_on_device(x) for x in v.values())
    return is_cupy_array(v)


class _DeviceOutput:
    """A CuPy result handed to ``to_output`` as it is (no host copy)."""
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data

    def __vmapper_output__(self):
        return self.data


def _cuda_arg(a):
    """``(type spec, raw value)`` of a CUDA kernel argument, or why it cannot be one."""
    if isinstance(a, Lanes):
        d = a.data
        if d.ndim != 1:
            return f"a per-sample array of shape {tuple(d.shape[1:])}"
        if not (d.dtype.kind in "biu" or d.dtype in (np.float32, np.float64)):
            return f"of dtype {d.dtype.name}"
        return ("lanes", d.dtype, a.weak), d
    if isinstance(a, (bool, int, float, np.bool_, np.integer, np.floating)):
        return ("uniform", a), a
    if is_cupy_array(a):
        return "a CuPy array passed with in_axes=None (only uniform scalars are)"
    return f"a {type(a).__name__}"


_cuda_compile_fns = None


def _cuda_compile():
    """``(compile_cuda_kernel, KernelUnsupported)``, imported at the first CUDA call (an
    import statement in ``run_cuda`` would cost each call a lookup)."""
    global _cuda_compile_fns
    if _cuda_compile_fns is None:
        from ..kernels.cuda_codegen import compile_cuda_kernel
        from ..kernels.typing import KernelUnsupported
        _cuda_compile_fns = compile_cuda_kernel, KernelUnsupported
    return _cuda_compile_fns


def run_cuda(state, program, args, n, lane_ids):
    """Run ``program`` over ``n`` lanes as one CUDA kernel (the CuPy backend).

    CuPy lane arrays go to the kernel as they are; NumPy lane arrays (with
    ``backend="cupy"``) are uploaded.  Results are CuPy arrays when an
    argument was one, NumPy arrays otherwise.  A lane error raises the same
    ``LaneError``/``NonTerminationError`` as the other backends.  In a
    differentiated run the kernel's dual-number partials give the gradients,
    as on the numba backend, in CUDA kernels.  Whatever cannot run as one
    kernel -- a function that is not elementwise as a whole, an argument that
    is not a per-lane or uniform scalar, a type the generator cannot compile
    exactly, a differentiated run on NumPy arrays -- raises
    :class:`CupyBackendError` naming the reason.
    """
    def refuse(reason):
        raise CupyBackendError(
            f"{program.name} ({program.where(program.ir.source.first_line)}) cannot run on the CuPy backend: "
            f"{reason}.  The CuPy backend runs only whole elementwise functions so far (per-lane scalar "
            f"work, control flow included, as one CUDA kernel); pass NumPy arrays to run it on the CPU")

    if sys.modules.get("cupy") is None:
        try:
            import cupy  # noqa: F401
        except ImportError as exc:
            raise CupyBackendError(f"backend='cupy' needs CuPy and a CUDA GPU ({exc}): pip install -e '.[gpu]' "
                                   f"(or the cupy-cudaXXx wheel for your CUDA), or use backend='numba'") from None
    nodes = None
    if state.tape is not None:
        from ..autodiff.tape import unwrap
        pairs = [unwrap(a) for a in args]
        args, nodes = [p[0] for p in pairs], [p[1] for p in pairs]
        if any(type(nd) is tuple for nd in nodes):
            refuse("a differentiated tuple argument")
        if not any(_on_device(a) for a in args):
            refuse("a differentiated run needs CuPy arrays as arguments (NumPy arrays with backend='cupy' "
                   "are not differentiated on the GPU)")
    reason = kernel_reason(program)
    if reason is not None:
        refuse(f"it is not elementwise ({reason})")
    program = kernel_program(program)
    on_device = any(_on_device(a) for a in args)
    args, unbound = with_global_values(program, args)
    if args is None:
        refuse(f"the name '{unbound}' it reads is not defined")
    if nodes is not None:
        nodes += [None] * (len(args) - len(nodes))  # (the globals' values: never differentiated)
    specs, raw = [], []
    for name, a in zip(program.ir.params, args):
        t = _cuda_arg(a)
        if isinstance(t, str):
            refuse(f"argument '{name}' is {t}; a CUDA kernel takes per-lane and uniform scalars")
        specs.append(t[0])
        raw.append(t[1])
    wide = _int_out_of_lane_range(args)
    if wide is not None:
        refuse(f"the shared Python int {wide[0]} does not fit its {wide[1].name} lanes (the kernel would wrap it)")
    compile_cuda_kernel, KernelUnsupported = _cuda_compile()
    try:
        kernel = compile_cuda_kernel(program.ir, specs, max_iters=state.max_iters)
        if nodes is not None and any(nd is not None for nd in nodes):
            return _run_cuda_with_partials(state, program, args, nodes, specs, raw, n, lane_ids, refuse)
    except KernelUnsupported as exc:
        refuse(f"the CUDA generator cannot compile it exactly for these types ({exc})")
    results, err_lane, err_code = kernel(raw, n)
    stats = state.stats
    stats.launches += 1
    stats.kernel_launches += 1
    stats.active_lane_ops += n
    stats.processed_lane_ops += n
    if err_lane >= 0:
        _raise(program, kernel, err_lane, err_code, lane_ids)
    weak = kernel.result_weak

    def wrap(arr, w):
        return _DeviceOutput(arr) if on_device else Lanes(kernel.to_host(arr), bool(w))
    if isinstance(results, tuple):
        return tuple(wrap(r, w) for r, w in zip(results, weak))
    return wrap(results, weak)


def _run_cuda_with_partials(state, program, args, nodes, specs, raw, n, lane_ids, refuse):
    """A differentiated call on the CuPy backend: the kernel's dual-number partials, as on the
    numba backend (:mod:`vmapper.autodiff.kernel_partials`), the kernels CUDA ones."""
    from ..autodiff.kernel_partials import NotDifferentiable, run_with_partials
    launch = Launcher(state, program, specs, raw, n, lane_ids, _cuda_compiler(state))
    try:
        return run_with_partials(state.tape, program, args, nodes, n, launch)
    except NotDifferentiable as exc:
        refuse(f"its derivative cannot run as CUDA kernels ({exc})")
    finally:
        launch.forget_caller()
