"""The public entry point: :func:`batched` and :class:`BatchedFunction`."""
from __future__ import annotations

import contextlib
import gc
import os
import contextvars
import functools
import inspect
import sys
import weakref

import numpy as np

from .errors import BatchError, RecursionDepthError, UnsupportedSyntaxError, with_article
from .program import get_program
from .runtime.executor import ExecState, run_function
from .runtime.frame import Frame
from .runtime.kernel_dispatch import _NOT_RUN, is_cupy_array, try_kernel
from .runtime.values import LANE_KINDS, Lanes, to_output


_per_sample_mode = contextvars.ContextVar("vmapper_per_sample_mode", default=False)


@contextlib.contextmanager
def collector_paused():
    """Pause the cyclic garbage collector while a batched call runs.

    A run (and its gradient tape) creates many small objects without cycles;
    generational collections would repeatedly walk them all (measured: half
    of a Tree-LSTM training step).  Reference counting still frees everything.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def per_sample_mode():
    """Within this context, calling a batched function calls its per-sample function.

    Per-sample code that calls a ``@batched`` function by its decorated name
    (recursion, helpers) then runs as plain Python, one sample at a time: the
    reference semantics that :func:`vmapper.testing.check_batching` compares with.
    """
    token = _per_sample_mode.set(True)
    try:
        yield
    finally:
        _per_sample_mode.reset(token)


def default_backend():
    """``$VMAPPER_BACKEND`` if set, else ``"numba"`` when numba imports, else ``"numpy"``."""
    env = os.environ.get("VMAPPER_BACKEND")
    if env:
        return env
    try:
        import numba  # noqa: F401
    except Exception:
        return "numpy"
    return "numba"


BACKENDS = ("numpy", "numba", "cupy")


def batched(fn=None, *, in_axes=0, out_axes=0, max_iters=None, memo=False, backend=None,
            exact_math=False):
    """Batch a per-sample function: ``batched(f)(xs)[i] == f(xs[i])`` for every lane ``i``.

    ``in_axes`` (as in ``jax.vmap``): an int or None for every positional
    argument, or a tuple with one entry per argument (None: broadcast, the
    same value for every sample).  Arguments may be pytrees (tuple, list,
    dict, NamedTuple) whose array leaves are batched along that axis.
    ``out_axes``: where the batch axis goes in the results.  ``max_iters``:
    a loop that runs more trips raises :class:`NonTerminationError`.
    ``backend``: ``"numba"`` (the default when numba imports; ``$VMAPPER_BACKEND``
    overrides) runs each function whose work is all per-lane scalar operations --
    its loops and branches included -- as one compiled kernel, and everything
    else on the numpy runtime; ``"numpy"`` uses the numpy runtime only;
    ``"cupy"`` runs a whole elementwise function as one CUDA kernel and raises
    for anything else.  CuPy arrays as arguments select ``"cupy"`` whatever
    the backend; their results are CuPy arrays.
    ``exact_math``: kernels call libm instead of the vectorizable approximations.
    ``memo``: DAG mode -- a call whose only per-lane argument is a tree node
    is evaluated once per node per batched call, however many parents share
    the node (results are reused; the per-sample function must be pure).
    Usable as ``@batched`` or ``@batched(in_axes=(0, None))``.
    """
    if fn is None:
        return lambda f: batched(f, in_axes=in_axes, out_axes=out_axes, max_iters=max_iters, memo=memo,
                                 backend=backend, exact_math=exact_math)
    return BatchedFunction(fn, in_axes=in_axes, out_axes=out_axes, max_iters=max_iters, memo=memo,
                           backend=backend, exact_math=exact_math)


def _how_it_runs(program, backend) -> str:
    """The last line of ``explain()`` for one program: which backend runs it, and why not as a kernel."""
    from .runtime.kernel_dispatch import kernel_reason
    if backend == "numba":
        reason = kernel_reason(program)
        if reason is not None:
            return f"backend numba, numpy runtime for this function: {reason}"
        refused = getattr(program, "last_kernel_refusal", None)
        return ("backend numba: runs as ONE compiled kernel when its arguments are per-lane scalars "
                "(each lane follows its own control flow; the masked program above is the fallback)"
                + ("" if refused is None else
                   f"; with the argument types {_types_text(refused[0])} it ran on the numpy runtime: {refused[1]}"))
    if backend == "cupy":
        reason = kernel_reason(program)
        return ("backend cupy: runs as ONE CUDA kernel when its arguments are per-lane scalars "
                "(each lane follows its own control flow; there is no masked fallback)"
                if reason is None else f"backend cupy: calling it raises, it is not elementwise: {reason}")
    return "backend numpy: the masked program above runs as array operations"


def _types_text(specs) -> str:
    """``(float32 per lane, int uniform)``: the kernel argument types of a call."""
    return "(" + ", ".join(f"{np.dtype(s[1]).name} per lane" if s[0] == "lanes" else f"{type(s[1]).__name__} uniform"
                           for s in specs) + ")"


def _not_a_function_hint(fn) -> str:
    """What to batch instead of ``fn``, which has no Python source of its own."""
    if isinstance(fn, functools.partial):
        return (f" of {getattr(fn.func, '__name__', fn.func)!r}: batch that function and pass the bound "
                "arguments as arguments, with in_axes None for those shared by every sample")
    if isinstance(fn, (staticmethod, classmethod)):
        return (f": put @vmapper.batched below @{type(fn).__name__} (nearer the def), or batch the "
                "method looked up on its class or object")
    if isinstance(fn, np.ufunc) or inspect.isbuiltin(fn) and (getattr(fn, "__module__", None) or "").startswith("numpy"):
        return ": it has no Python source to batch, and works on whole arrays already"
    if inspect.isbuiltin(fn):
        return ": it is built in, with no Python source to batch"
    if callable(fn) and inspect.ismethod(getattr(fn, "__call__", None)):
        return ": batch its method, vmapper.batched(obj.__call__)"
    return ""


class BatchedFunction:
    """A per-sample function that runs over whole batches (see :func:`batched`)."""

    __vmapper_batched__ = True

    def __init__(self, fn, *, in_axes=0, out_axes=0, max_iters=None, memo=False, backend=None,
                 exact_math=False):
        if isinstance(fn, BatchedFunction):
            fn = fn.per_sample
        # A bound method: its object is an argument broadcast to every sample (``self.W`` is
        # shared), and ``in_axes`` describes the other arguments.
        self.function = fn.__func__ if inspect.ismethod(fn) else fn
        self.receiver = (fn.__self__,) if inspect.ismethod(fn) else ()
        if not inspect.isfunction(self.function):
            raise TypeError(f"vmapper.batched needs a Python function or method, got {type(fn).__name__}"
                            + _not_a_function_hint(fn))
        self.per_sample = fn
        self.in_axes = _checked_in_axes(in_axes)
        self.out_axes = _checked_out_axes(out_axes)
        if max_iters is not None and (not isinstance(max_iters, (int, np.integer)) or isinstance(max_iters, bool)
                                      or max_iters < 1):
            raise BatchError(f"max_iters must be a positive int or None, not {max_iters!r}")
        self.max_iters = None if max_iters is None else int(max_iters)
        if not isinstance(memo, bool):
            raise BatchError(f"memo must be True or False, not {memo!r}")
        self.memo = memo
        self.backend = default_backend() if backend is None else backend
        if self.backend not in BACKENDS:
            where = "$VMAPPER_BACKEND" if backend is None else "backend"
            raise BatchError(f"{where} must be one of {BACKENDS}, not {self.backend!r}")
        if not isinstance(exact_math, (bool, np.bool_)):
            raise BatchError(f"exact_math must be True or False, not {exact_math!r}")
        self.exact_math = bool(exact_math)
        self._stats_owner = self
        self._last_stats = None
        self._method_of = None  # the class whose body defined this method (__set_name__)
        functools.update_wrapper(self, fn)

    @property
    def program(self):
        """The compiled program (compiles on first use; raises UnsupportedSyntaxError)."""
        return get_program(self.function)

    def bind(self, args, kwargs):
        """``(values of every parameter, batch size)`` for a call with ``args``/``kwargs``
        (a bound method's object first, broadcast).  Clears ``last_stats``: a call refused
        here ran nothing, and must not show the previous call's counters."""
        self.last_stats = None
        if not _signature(self.function)[1] and self.function.__code__.co_flags & _VARARGS:
            self.program  # (*args or **kwargs: refused at compile time, naming the line)
        receiver = self.receiver
        if not receiver and self._method_of is not None and args:  # Model.fwd(obj, x): obj.fwd(x)
            receiver, args = (args[0],), args[1:]
        return bind_arguments(self.function, receiver + tuple(args), kwargs, self.in_axes,
                              receiver=bool(receiver))

    def __set_name__(self, owner, name):
        """``@batched`` on a method in a class body: called through the class,
        ``Model.fwd(obj, x)``, its first argument is the object, broadcast as in ``obj.fwd(x)``
        (a batched function merely stored on a class, ``square = batched(f)``, is not a method)."""
        if self.function.__qualname__ == f"{owner.__qualname__}.{name}":
            self._method_of = owner

    def arg_axes(self, nargs):
        """``in_axes`` for ``nargs`` positional arguments, one entry each (a bound method's
        tuple may start with its object's ``None``: dropped; a method called through its class
        gets the object's ``None`` first)."""
        if not self.receiver and self._method_of is not None and nargs:
            return [None] + self._arg_axes(nargs - 1, True)
        return self._arg_axes(nargs, bool(self.receiver))

    def _arg_axes(self, nargs, receiver):
        ax = self.in_axes
        if isinstance(ax, (tuple, list)):
            if receiver and ax and ax[0] is None:  # (as bind_arguments reads it)
                ax = _without_object_entry(ax, nargs, len(_signature(self.function)[0].parameters) - 1)
            return list(ax)
        return [ax] * nargs

    def explain(self, callees=True) -> str:
        """A readable dump of the program after the SPMD pass, and how it will run.

        ``callees``: also dump every function it calls, directly or not (each once,
        after it), each with how it runs."""
        from .explain import called_programs, explain_program
        program = self.program
        params = program.ir.params
        r = len(self.receiver) or int(self._method_of is not None)  # (the object: broadcast)
        broadcast = [p for p, ax in zip(params[r:], self._arg_axes(len(params) - r, bool(r))) if ax is None] \
            + list(params[:r])
        text = f"{explain_program(program, broadcast)}\n\n  {_how_it_runs(program, self.backend)}"
        called = called_programs(program, get_program, self.receiver[0] if self.receiver else None) if callees else []
        if called:
            text += "\n\n  the functions it calls, directly or not:"
            text += "".join(f"\n\n{explain_program(callee)}\n\n  {_how_it_runs(callee, self.backend)}"
                            for callee in called)
        return text

    def __call__(self, *args, **kwargs):
        if _per_sample_mode.get():
            return self.per_sample(*args, **kwargs)
        values, n = self.bind(args, kwargs)
        return self.finish(self.execute(values, n), n, (args, kwargs))

    def execute(self, values, n, tape=None):
        """Run the compiled program on bound per-lane values; returns the raw per-lane result."""
        program = self.program
        state = ExecState(get_program, n, self.max_iters, tape, self.memo, self.backend, self.exact_math)
        frame = Frame(n, state)
        limit = sys.getrecursionlimit()
        if limit < 20000:
            sys.setrecursionlimit(20000)
        try:
            with np.errstate(all="ignore"), collector_paused():
                out = try_kernel(state, program, values, n, frame.lane_ids)
                if out is not _NOT_RUN:
                    return out
                return run_function(program, frame, values)
        except RecursionError as exc:
            raise _too_deep(exc, self.per_sample.__qualname__, program, self.memo) from None
        finally:
            if limit < 20000:
                sys.setrecursionlimit(limit)
            self.last_stats = state.stats.as_dict()

    def finish(self, result, n, inputs=()):
        """Batched output arrays (batch axis at ``out_axes``) from a raw per-lane result; an
        output that shares memory with an input or an earlier output is copied, as the
        per-sample loop stacks its results into new arrays (``return x`` must not hand the
        caller its own array back)."""
        try:
            out = to_output(result, n)
        except TypeError as exc:
            src = self.program.source
            raise UnsupportedSyntaxError(f"{exc} ({self.per_sample.__qualname__})",
                                         src.filename, src.first_line) from None
        out = move_out_axes(out, self.out_axes)
        if not _holds_ndarray(out):  # (a CuPy result: nothing to compare with the inputs)
            return out
        return _unshared(out, _array_leaves(inputs, []))

    def __repr__(self):
        return f"<vmapper.batched {self.per_sample.__qualname__}>"

    def __get__(self, obj, objtype=None):
        """``@batched`` on a method: ``obj.method`` is the method bound to ``obj`` and batched
        alike, ``obj`` broadcast; its ``last_stats`` are the function's."""
        if obj is None:
            return self
        bound = BatchedFunction(self.per_sample.__get__(obj, objtype), in_axes=self.in_axes,
                                out_axes=self.out_axes, max_iters=self.max_iters, memo=self.memo,
                                backend=self.backend, exact_math=self.exact_math)
        bound._stats_owner = self._stats_owner  # (``obj.method.last_stats`` reads the last call's)
        return bound

    @property
    def last_stats(self):
        """Counters of the last call (see the README): launches, lane utilization..."""
        return self._stats_owner._last_stats

    @last_stats.setter
    def last_stats(self, value):
        self._stats_owner._last_stats = value


# ---- arguments --------------------------------------------------------------------------------


def _is_leaf(x):
    return isinstance(x, (np.ndarray, np.generic, bool, int, float, complex))


def _is_node_batch(x):
    return hasattr(x, "__vmapper_lanes__")


_signatures = weakref.WeakKeyDictionary()  # fn -> ((code, defaults, kwdefaults), signature, plain)
_PLAIN_KINDS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


_VARARGS = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS


def _signature(fn):
    """``(inspect.signature(fn), plain)``, made once per function (the signature costs ~15 us,
    about what a small batched call costs otherwise), again if the function's code or defaults
    are replaced; ``plain``: every parameter can take one positional argument (no ``*args``,
    ``**kwargs`` or keyword-only ones)."""
    key = (getattr(fn, "__code__", None), getattr(fn, "__defaults__", None), getattr(fn, "__kwdefaults__", None))
    hit = _signatures.get(fn)
    if hit is not None and all(a is b for a, b in zip(hit[0], key)):
        return hit[1], hit[2]
    sig = inspect.signature(fn)
    plain = all(p.kind in _PLAIN_KINDS for p in sig.parameters.values())
    try:
        _signatures[fn] = (key, sig, plain)
    except TypeError:  # (not weakly referable: made again next time)
        pass
    return sig, plain


def _array_leaves(tree, found):
    """The numpy arrays in ``tree`` (tuples, lists, dict values), appended to ``found``; of
    every ndarray subclass too (a memmap: a result viewing it would write through to its file)."""
    if isinstance(tree, np.ndarray):
        found.append(tree)
    elif isinstance(tree, (tuple, list)):
        for v in tree:
            _array_leaves(v, found)
    elif isinstance(tree, dict):
        for v in tree.values():
            _array_leaves(v, found)
    return found


def _holds_ndarray(out):
    return isinstance(out, np.ndarray) or isinstance(out, tuple) and any(map(_holds_ndarray, out))


def _unshared(out, taken):
    """``out`` with each array that may share memory with one of ``taken`` (then with an
    earlier output) copied."""
    if isinstance(out, tuple):
        return tuple(_unshared(v, taken) for v in out)
    if isinstance(out, np.ndarray):
        if any(np.may_share_memory(out, t) for t in taken):
            out = out.copy()
        taken.append(out)
    return out


def _unexpected_keyword(sig, kwargs):
    """Python's own message for the first keyword that names no parameter (``Signature.bind``
    reports a missing argument first, which points at the wrong name)."""
    params = sig.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    by_keyword = {p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    for name in kwargs:
        if name not in by_keyword:
            return f"got an unexpected keyword argument {name!r}"
    return None


def _without_object_entry(in_axes, nargs, nparams):
    """A bound method's ``in_axes`` tuple without its object's leading ``None``, where it has
    one: one entry more than the parameters, or than the positional arguments where that is not
    also one entry per parameter (which it then is, as documented)."""
    if in_axes and in_axes[0] is None and (len(in_axes) == nparams + 1
                                           or len(in_axes) == nargs + 1 and len(in_axes) != nparams):
        return in_axes[1:]
    return in_axes


def bind_arguments(fn, args, kwargs, in_axes, receiver=False):
    """Varying/uniform values of the per-sample parameters, and the batch size.

    ``receiver``: ``args[0]`` is a bound method's object, broadcast; ``in_axes`` is for the
    arguments after it (a tuple may also start with the object's ``None``)."""
    sig, plain = _signature(fn)
    names = list(sig.parameters)
    if plain and not kwargs and len(args) == len(names):
        arguments = dict(zip(names, args))  # (what sig.bind gives here, in a third of the time)
    else:
        try:
            arguments = sig.bind(*args, **kwargs).arguments
        except TypeError as exc:
            raise BatchError(f"arguments of {fn.__qualname__}: {_unexpected_keyword(sig, kwargs) or exc}") from None
    nargs = len(args) - receiver
    if isinstance(in_axes, (tuple, list)):
        nparams = len(names) - receiver
        if receiver:
            in_axes = _without_object_entry(in_axes, nargs, nparams)
        if len(in_axes) == nparams and not any(
                p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
                for p in sig.parameters.values()):
            # one entry per parameter, however each is passed (by keyword, or left to its default)
            axes = [None] * receiver + list(in_axes)
        elif len(in_axes) == nargs:
            axes = [None] * receiver + list(in_axes) + [0] * (nparams - nargs)
        else:
            entries = f"{len(in_axes)} entr{'y' if len(in_axes) == 1 else 'ies'}"
            raise BatchError(f"in_axes has {entries}, but {fn.__qualname__} has {nparams} "
                             f"parameter(s) and was called with {nargs} positional argument(s): give one "
                             f"entry per parameter (keyword arguments and defaults included), or one per "
                             f"positional argument (keyword arguments are then batched along axis 0)")
    elif in_axes is None or isinstance(in_axes, int):
        axes = [None] * receiver + [in_axes] * (len(names) - receiver)
    else:
        raise BatchError(f"in_axes must be an int, None, or a tuple, not {type(in_axes).__name__}")
    sizes = []  # (size, description)
    values = []
    for k, (name, axis, param) in enumerate(zip(names, axes, sig.parameters.values())):
        if name in arguments:
            try:
                values.append(_convert(arguments[name], axis, name, sizes))
            except BatchError as exc:
                if k < len(args) or axis is None:
                    raise
                entries = ", ".join("None" if j == k else repr(axes[j]) for j in range(receiver, len(names)))
                raise BatchError(f"{exc} (for an argument passed by keyword, give in_axes one entry per "
                                 f"parameter: in_axes=({entries}))") from None
        elif param.default is not inspect.Parameter.empty:
            values.append(param.default)
        else:
            raise BatchError(f"missing argument '{name}'")
    distinct = {s for s, _ in sizes}
    if not sizes:
        defaulted = [name for name, axis in zip(names, axes) if axis is not None and name not in arguments]
        hollow = [f"'{name}' (a {type(arguments[name]).__name__})" for name, axis in zip(names, axes)
                  if axis is not None and name in arguments]
        raise BatchError(f"{fn.__qualname__}: no argument is batched " + (
            f"(the parameters whose in_axes entry is not None, {', '.join(map(repr, defaulted))}, were left "
            f"to their defaults, which are broadcast: pass them)" if defaulted else
            f"({', '.join(hollow)} holds no array to batch)" if hollow else
            "(every in_axes entry is None)"))
    if len(distinct) > 1:
        listing = ", ".join(f"{_describe(d)} has {s}" for s, d in sizes)
        raise BatchError(f"batch sizes disagree: {listing}")
    n = sizes[0][0]
    if n == 0:
        raise BatchError("empty batch (size 0): the per-sample result type is unknown")
    return values, n


def _describe(d):
    """A batch size's source: ``(path, axis, shape)`` of an array (formatted only for an
    error message), or a description."""
    if isinstance(d, tuple):
        path, axis, shape = d
        return f"argument '{path}' (axis {axis}, shape {shape})"
    return d


def _checked_in_axes(in_axes):
    """``in_axes``: None, an int, or tuples, lists and dicts of them (numpy ints become ints;
    a bool or a float is refused, where it would count as axis 1 or 0)."""
    def checked(a):
        if a is None:
            return None
        if isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)):
            return int(a)
        if isinstance(a, tuple) and hasattr(a, "_fields"):  # (a NamedTuple of axes)
            return type(a)(*[checked(x) for x in a])
        if isinstance(a, (tuple, list)):
            return type(a)(checked(x) for x in a)
        if isinstance(a, dict):
            return {k: checked(v) for k, v in a.items()}
        raise BatchError(f"in_axes entries must be ints or None (or tuples, lists and dicts of them), not {a!r}")
    return checked(in_axes)


def _checked_out_axes(out_axes):
    """``out_axes``: an int (where the batch axis goes in the result), or a tuple or list of
    them for a tuple of results."""
    def ok(a):
        return isinstance(a, (int, np.integer)) and not isinstance(a, bool) or \
            isinstance(a, (tuple, list)) and all(map(ok, a))
    if not ok(out_axes):
        raise BatchError(f"out_axes must be an int, or a tuple of ints for a tuple of results, not {out_axes!r} "
                         f"(every result has a batch axis)")
    return out_axes


def _convert(x, axis, path, sizes):
    if type(x) is np.ndarray and axis == 0 and x.ndim and x.dtype.kind in LANE_KINDS:  # (the usual leaf)
        sizes.append((x.shape[0], (path, axis, x.shape)))
        return Lanes(x, False)
    if (axis is None or type(axis) is int) and is_cupy_array(x):
        return _convert_device(x, axis, path, sizes)
    if isinstance(axis, dict) and not isinstance(x, dict) or isinstance(axis, (tuple, list)) \
            and not isinstance(x, (tuple, list)):
        raise BatchError(f"in_axes entry for argument '{path}' is {with_article(type(axis).__name__)} ({axis!r}), but "
                         f"the argument is {with_article(type(x).__name__)}: give an int or None, or a structure "
                         f"matching the argument's")
    if isinstance(axis, (tuple, list)) and isinstance(x, (tuple, list)) and len(axis) != len(x):
        raise BatchError(f"in_axes for argument '{path}' has {len(axis)} entries for {len(x)} items")
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # NamedTuple
        items = [_convert(v, axis[i] if isinstance(axis, (tuple, list)) else axis, f"{path}.{f}", sizes)
                 for i, (f, v) in enumerate(zip(x._fields, x))]
        return type(x)(*items)
    if isinstance(x, (tuple, list)):
        items = [_convert(v, axis[i] if isinstance(axis, (tuple, list)) else axis, f"{path}[{i}]", sizes)
                 for i, v in enumerate(x)]
        return tuple(items)
    if isinstance(x, dict):
        if isinstance(axis, dict) and axis.keys() != x.keys():
            missing, extra = [k for k in x if k not in axis], [k for k in axis if k not in x]
            raise BatchError(f"in_axes for argument '{path}' " + (
                f"has no entry for key {missing[0]!r}" if missing else
                f"has an entry for key {extra[0]!r}, which the argument does not have"))
        return {k: _convert(v, axis[k] if isinstance(axis, dict) else axis, f"{path}[{k!r}]", sizes)
                for k, v in x.items()}
    if _is_node_batch(x):
        if axis is None:
            return x
        if axis != 0:
            raise BatchError(f"argument '{path}': a batch of nodes is batched along axis 0 only")
        lanes = x.__vmapper_lanes__()
        sizes.append((len(x), f"argument '{path}'"))
        return lanes
    if x is None or isinstance(x, str) or callable(x) and not hasattr(x, "shape"):
        if axis is not None:
            raise BatchError(f"argument '{path}' is {with_article(type(x).__name__)}, which has no batch axis; "
                             f"pass in_axes=None for it")
        return x
    if isinstance(x, np.ma.MaskedArray):  # (batched or broadcast, its mask would be lost)
        raise BatchError(f"argument '{path}' is a numpy masked array, whose mask vmapper does not "
                         f"carry: pass its data with the masked entries filled (x.filled(value)), or the "
                         f"data and the mask (np.ma.getmaskarray(x)) as two arrays")
    if axis is None:  # broadcast as it is: an array, a number, or any object (a model's ``self``)
        return x
    if not _is_leaf(x):
        if type(x).__name__ == "Node" and hasattr(x, "forest"):
            raise BatchError(f"argument '{path}' is one Node: pass a batch of nodes (forest.roots, or "
                             f"forest.roots[i:i + 1]) to run over trees, or call the per-sample function "
                             f"(.per_sample) on a node inside vmapper.api.per_sample_mode()")
        if type(x).__name__ == "Forest" and hasattr(x, "roots"):
            raise BatchError(f"argument '{path}' is a Forest: pass forest.roots (one lane per tree), or "
                             f"a slice of it (forest.roots[i:j])")
        raise BatchError(f"argument '{path}' is {with_article(type(x).__name__)}: batched leaves must be numpy "
                         f"arrays or scalars (or tuples, lists, dicts, NamedTuples of them)")
    arr = np.asarray(x)
    if arr.dtype == object:
        raise BatchError(f"argument '{path}' has dtype object; batched leaves must be numeric arrays")
    if arr.dtype.kind not in LANE_KINDS:
        raise BatchError(f"argument '{path}' has dtype {arr.dtype}: batched leaves must be arrays of "
                         f"numbers, bools or str (a bytes array: decode it, np.char.decode(a))")
    if not isinstance(axis, int):
        raise BatchError(f"in_axes entry for argument '{path}' must be an int or None, not {axis!r}")
    if arr.ndim == 0:
        if "[" in path:  # an item of a list or tuple argument: each item is batched on its own
            raise BatchError(f"argument '{path}' is a scalar and has no axis {axis} to batch along: a list "
                             f"or tuple argument is a structure whose items are batched each; for one "
                             f"number per sample pass an array (np.asarray(...)), for a list of trees "
                             f"vmapper.Forest.from_nested(trees).roots, for a shared item in_axes=None")
        raise BatchError(f"argument '{path}' is a scalar and has no axis {axis} to batch along; pass an "
                         f"array of one value per sample, or in_axes=None for a value shared by all samples")
    if not -arr.ndim <= axis < arr.ndim:
        raise BatchError(f"in_axes={axis} is out of range for argument '{path}' with shape {arr.shape}")
    if axis != 0:
        arr = np.moveaxis(arr, axis, 0)
    sizes.append((arr.shape[0], (path, axis, np.shape(x))))
    return Lanes(arr, False)


def _convert_device(x, axis, path, sizes):
    """A CuPy leaf: batched along ``axis`` on the device (no host copy; ``np.moveaxis`` only
    transposes it), or passed as it is with ``in_axes=None``."""
    if axis is None:
        return x
    if not isinstance(axis, int):
        raise BatchError(f"in_axes entry for argument '{path}' must be an int or None, not {axis!r}")
    if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
        raise BatchError(f"in_axes={axis} is out of range for argument '{path}' with shape {x.shape}")
    arr = np.moveaxis(x, axis, 0) if axis not in (0, -x.ndim) else x
    sizes.append((arr.shape[0], (path, axis, tuple(x.shape))))
    return Lanes(arr, False)


def move_out_axes(out, out_axes, path=""):
    """``out`` with each result's batch axis moved from 0 to its ``out_axes`` entry; ``path``
    (``[1][0]``) names a nested result in errors."""
    if out is None or out_axes == 0:
        return out
    which = f" for result {path}" if path else ""
    if isinstance(out, tuple):
        axes = out_axes if isinstance(out_axes, (tuple, list)) else [out_axes] * len(out)
        if len(axes) != len(out):
            raise BatchError(f"out_axes{which} has {len(axes)} entries for {len(out)} results")
        return tuple(move_out_axes(o, a, f"{path}[{i}]") for i, (o, a) in enumerate(zip(out, axes)))
    if not isinstance(out_axes, (int, np.integer)):
        raise BatchError(f"out_axes{which} has {len(out_axes)} entries, but {'that' if path else 'the'} result is "
                         f"not a tuple (an array of shape {tuple(out.shape)})")
    if not -out.ndim <= out_axes < out.ndim:
        raise BatchError(f"out_axes={out_axes}{which} is out of range for a result with {out.ndim} "
                         f"dimension(s) (shape {tuple(out.shape)})")
    return np.moveaxis(out, 0, out_axes)


def _too_deep(exc, name, program, memo):
    """The RecursionDepthError for ``exc``, naming the function and line that recursed deepest
    (the ``ctx`` of a generated block in the traceback) and the lanes still recursing there."""
    from .runtime.context import Context, lane_text
    contexts, tb = [], exc.__traceback__
    while tb is not None:
        c = tb.tb_frame.f_locals.get("ctx")
        if type(c) is Context and c.line and (not contexts or contexts[-1] is not c):
            contexts.append(c)
        tb = tb.tb_next
    # The deepest block was running whatever came first in its function when the stack ran
    # out; the one that called into it stands at the recursive call.
    ctx = contexts[-2] if len(contexts) > 1 else contexts[-1] if contexts else None
    if ctx is None:
        return RecursionDepthError(f"recursion deeper than Python's stack allows in {name}",
                                   program.source.filename, program.source.first_line)
    where = ctx.program
    lanes = np.unique(ctx.frame.lane_ids()[ctx.active_indices()])
    inner = where.name if where.name == name else f"{where.name} (called from {name})"
    hint = "a recursion that never ends on those lanes fails per sample too (RecursionError)"
    if not memo:
        hint += ("; a deep recursion over trees or DAGs runs with batched(..., memo=True), which "
                 "evaluates the nodes bottom-up by height")
    return RecursionDepthError(
        f"recursion deeper than Python's stack allows in {inner}, "
        f"on lane(s) [{lane_text(lanes)}]",
        where.source.filename, ctx.line, where.source_line(ctx.line), hint=hint)
