"""``value_and_grad``, ``grad`` and ``vjp`` of batched functions."""
from __future__ import annotations

import inspect
import numbers

import numpy as np

from .. import profiler
from ..api import BatchedFunction, _signature, batched, collector_paused
from ..errors import BatchError, BatchingError
from ..runtime.values import Lanes, Traced, array_module, is_cupy_array
from .kernel_partials import DEFAULT_POLICY, POLICIES
from .sparse import RowSparse
from .memory import held_bytes, measuring, report
from .tape import Tape, backward, current_tape


def _as_batched(f):
    if getattr(f, "__vmapper_gradient__", False):
        raise BatchingError("differentiating a function that vmapper.grad, value_and_grad or vjp returned: "
                            "second-order gradients are not supported yet")
    return f if isinstance(f, BatchedFunction) else batched(f)


def _kind(out):
    """What a non-float scalar result is, in a message: "an int", "a bool" (per sample)."""
    return {"b": "a bool", "i": "an int", "u": "an unsigned int", "U": "a str"}.get(np.asarray(out).dtype.kind,
                                                                                   f"a {np.asarray(out).dtype}")


def _argnums(argnums):
    """``argnums`` as a tuple of distinct ints (an int or a non-empty tuple/list of them)."""
    nums = (argnums,) if isinstance(argnums, (int, np.integer)) and not isinstance(argnums, bool) else argnums
    if not isinstance(nums, (tuple, list)) or not nums or \
            not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in nums):
        raise TypeError(f"argnums must be an int or a non-empty tuple of ints, not {argnums!r}")
    if len(set(nums)) != len(nums):
        raise ValueError(f"argnums {tuple(nums)} names an argument twice")
    return tuple(int(k) for k in nums)


def _is_float_leaf(v):
    if isinstance(v, Lanes):
        return v.data.dtype.kind in "fc"
    return isinstance(v, (float, np.floating)) or isinstance(v, np.ndarray) and v.dtype.kind in "fc"


def _trace_leaves(value, tape, leaves, path):
    """``value`` with every float leaf a fresh tape leaf; ``leaves`` collects (node, leaf);
    ``path`` names ``value`` in errors (``params['W']``)."""
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*[_trace_leaves(v, tape, leaves, f"{path}.{field}")
                             for field, v in zip(value._fields, value)])
    if isinstance(value, tuple):
        return tuple(_trace_leaves(v, tape, leaves, f"{path}[{i}]") for i, v in enumerate(value))
    if isinstance(value, dict):
        return {k: _trace_leaves(v, tape, leaves, f"{path}[{k!r}]") for k, v in value.items()}
    if _is_float_leaf(value):
        if (value.data if isinstance(value, Lanes) else np.asarray(value)).dtype.kind == "c":
            raise BatchError(f"cannot differentiate with respect to argument '{path}', which is complex: "
                             f"no complex convention (JAX's or PyTorch's) is implemented; pass its real and "
                             f"imaginary parts as two float arguments")
        t = tape.leaf(value)
        leaves.append((t.node, value))
        return t
    if _opaque(value):
        raise TypeError(
            f"cannot differentiate with respect to argument '{path}', a {type(value).__name__} object: "
            f"vmapper differentiates floats and float arrays, alone or in tuples, lists, dicts and "
            f"namedtuples; pass the parameters themselves (a dict of arrays, say) as the argument")
    return value


def _opaque(value):
    """Whether ``value`` is an object whose floats (attributes, say) vmapper cannot see: its
    gradient would be silently missing, not None as an int's is."""
    from ..runtime.nodes import _IdLanes
    from ..forest import Node, NodeBatch
    return not isinstance(value, (Lanes, np.ndarray, np.generic, numbers.Number, str, bytes, type(None),
                                  _IdLanes, Node, NodeBatch))


def _grad_tree(original, bound, grads, in_axis, sparse):
    """The gradient, shaped like the user's argument ``original``."""
    if isinstance(original, tuple) and hasattr(original, "_fields"):
        return type(original)(*[_grad_tree(o, b, grads, _sub_axis(in_axis, i), sparse)
                                for i, (o, b) in enumerate(zip(original, bound))])
    if isinstance(original, (tuple, list)):
        return type(original)(_grad_tree(o, b, grads, _sub_axis(in_axis, i), sparse)
                              for i, (o, b) in enumerate(zip(original, bound)))
    if isinstance(original, dict):
        return {k: _grad_tree(original[k], bound[k], grads, _sub_axis(in_axis, k), sparse) for k in original}
    if not isinstance(bound, Traced):
        return None
    g = grads.get(bound.node)
    raw = bound.value
    if isinstance(raw, Lanes):
        xp = array_module(raw.data)  # (a CuPy argument's gradient stays on the device)
        g = xp.zeros(raw.data.shape, raw.data.dtype) if g is None else xp.asarray(g, raw.data.dtype)
        if xp is np and not g.flags.writeable:  # the unit seed itself (f(x) = x): the user's own array
            g = g.copy()
        if in_axis not in (0, None):
            g = xp.moveaxis(g, 0, in_axis)
        return g
    if is_cupy_array(g):  # a shared host scalar's gradient, summed over lanes on the device
        g = g.get()
    arr = np.asarray(raw)
    if isinstance(g, RowSparse):  # a table the code only gathered rows from
        return g.astype(arr.dtype) if sparse else g.to_dense().astype(arr.dtype)
    g = np.zeros(arr.shape, arr.dtype) if g is None else np.asarray(g, arr.dtype).reshape(arr.shape)
    return g if isinstance(original, np.ndarray) else type(original)(g) if np.ndim(g) == 0 else g


def _sub_axis(axis, key):
    if isinstance(axis, (tuple, list)) and isinstance(key, int):
        return axis[key]
    if isinstance(axis, dict):
        return axis[key]
    return axis


def _check_checkpoint(k):
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"checkpoint_loops must be None or a positive int (trips per stretch), not {k!r}")
    return None if k is None else int(k)


def _run_traced(bf, args, kwargs, argnums, kernel_partials=None, checkpoint_loops=None):
    kernel_partials = DEFAULT_POLICY if kernel_partials is None else kernel_partials
    if kernel_partials not in POLICIES:
        raise ValueError(f"kernel_partials must be one of {POLICIES}, not {kernel_partials!r}")
    values, n = bf.bind(args, kwargs)
    tape = Tape(checkpoint_loops)
    tape.kernel_partials = kernel_partials
    tape.profile = profiler.active()
    token = current_tape.set(tape)
    try:
        leaves = []
        r = len(bf.receiver)  # (a bound method's object comes first, never differentiated)
        names = bf.program.ir.params
        for k in argnums:
            name = names[r + k] if r + k < len(names) else f"#{k}"
            values[r + k] = _trace_leaves(values[r + k], tape, leaves, name)
        result = bf.execute(values, n, tape=tape)
    finally:
        current_tape.reset(token)
    return values[len(bf.receiver):], n, tape, result


def value_and_grad(f, argnums=0, *, has_aux=False, sparse_tables=True, kernel_partials=None,
                   checkpoint_loops=None):
    """``g(*args) -> (values, grads)``: per-sample values and the gradient of their sum.

    ``f`` is a batched function (or a per-sample function, batched with defaults)
    whose per-sample result is a float scalar.  With ``has_aux=True`` (as in JAX)
    it returns a pair ``(value, aux)`` per sample instead: ``g`` then returns
    ``((values, aux), grads)``, with ``aux`` batched as ``f`` returns it and not
    differentiated (accuracies, predictions, ...).  ``grads`` has the structure of
    ``args[argnums]`` (a tuple of them if ``argnums`` is a tuple): a batched
    argument's gradient keeps its batch axis, a broadcast one's is summed over
    the batch.  Integer and bool leaves get ``None``.  A shared table that the
    code only gathers rows from (an embedding) gets a
    :class:`~vmapper.autodiff.sparse.RowSparse` gradient (``.indices``,
    ``.values``, ``.to_dense()``, ``.apply_to(table, -lr)``) unless
    ``sparse_tables=False``.

    A function (or helper) that runs as one compiled kernel (``backend="numba"``)
    is differentiated by dual numbers, each result's partial derivatives with
    respect to its differentiated inputs.  ``kernel_partials="recompute"``:
    the backward kernel recomputes them from the saved inputs and contracts
    them with the gradients in the same pass; ``"store"``: the forward kernel
    computes and keeps them; ``None``/``"auto"``: "store" for a function with
    a loop or a single result, "recompute" otherwise; see
    :mod:`vmapper.autodiff.kernel_partials`.

    ``checkpoint_loops=K`` (an int): a loop whose test runs more than K times
    keeps its values on the tape only every K trips; the backward sweep
    recomputes each stretch of K trips from there (:mod:`vmapper.autodiff.checkpoint`).
    Same gradients, bitwise; the tape holds about K/trips of a long loop's
    values, for about one more forward run of the loops.

    The returned function's ``last_stats`` (also merged into ``f.last_stats``)
    has the last call's ``tape_entries`` and ``tape_stretches``, and inside
    ``with vmapper.autodiff.tape_stats():`` the bytes the tape held
    (:func:`vmapper.autodiff.memory.tape_stats`).
    """
    bf = _as_batched(f)
    nums = _argnums(argnums)
    checkpoint_loops = _check_checkpoint(checkpoint_loops)

    def value_and_grad_f(*args, **kwargs):
        value_and_grad_f.last_stats = None  # (until this call's sweep reports)
        for k in nums:
            if not -len(args) <= k < len(args):
                raise BatchError(_argnums_error(bf, k, args, kwargs))
        ks = tuple(k % len(args) for k in nums)  # (values also holds the parameters left to defaults)
        if len(set(ks)) != len(ks):  # (-1 and len(args) - 1 name one argument)
            raise ValueError(f"argnums {nums} names an argument twice (with {len(args)} positional arguments)")
        # The collector stays paused from the forward run to the end of the sweep: re-enabled
        # in between, its first collection would walk every object the tape holds (~3% of a
        # Tree-LSTM step).  The tape is dropped before it resumes.
        with collector_paused():
            values, n, tape, result = _run_traced(bf, args, kwargs, ks, kernel_partials, checkpoint_loops)
            out = bf.finish(result, n, (args, kwargs))
            if has_aux:
                result, out, aux = _split_aux(bf, result, out)
            # An int or bool on every lane that depends on no differentiated value (a hinge loss
            # whose batch took only its ``return 0``) has zero gradients, as a float would.
            constant_int = not isinstance(out, tuple) and not isinstance(result, Traced) \
                and _dtype(out).kind in "biu"
            if isinstance(out, tuple) or np.shape(out) != (n,) or _dtype(out).kind != "f" and not constant_int:
                what = "the value of (value, aux)" if has_aux else bf.per_sample.__qualname__
                raise BatchError(f"value_and_grad needs a float scalar per sample; {what} "
                                 f"{'is' if has_aux else 'returns'} "
                                 f"{'a tuple' if isinstance(out, tuple) else np.shape(out)[1:] or _kind(out)} "
                                 f"per sample (use vmapper.vjp for other results"
                                 f"{'' if has_aux else ', or has_aux=True for a pair (value, aux)'})")
            seeds = {}
            if isinstance(result, Traced):
                # d(sum)/d(value) = 1 on every lane, as a read-only broadcast: no n-element fill,
                # and a kernel's stored partials are the gradient itself (kernel_partials._group_vjp)
                seeds[result.node] = np.broadcast_to(np.ones((), _dtype(out)), (n,)) \
                    if isinstance(result.value, Lanes) else _summed_over_lanes(np.ones(n, _dtype(out)))
            grads = _backward_with_stats(tape, seeds, bf, value_and_grad_f)
            del tape, result
            axes = bf.arg_axes(len(args))
            gs = tuple(_grad_tree(args[k], values[k], grads, axes[k], sparse_tables) for k in ks)
            del grads, values
        gs = gs[0] if isinstance(argnums, (int, np.integer)) else gs
        return ((out, aux) if has_aux else out), gs

    value_and_grad_f.__name__ = f"value_and_grad({bf.per_sample.__name__})"
    value_and_grad_f.__vmapper_gradient__ = True
    value_and_grad_f.last_stats = None
    return value_and_grad_f


def _split_aux(bf, result, out):
    """``(result, out, aux)`` of a function that returns ``(value, aux)`` per sample."""
    if type(result) is not tuple or len(result) != 2:
        got = f"a tuple of {len(result)}" if type(result) is tuple else "one value"
        raise BatchError(f"has_aux=True needs a pair (value, aux) per sample; {bf.per_sample.__qualname__} "
                         f"returns {got} per sample")
    return result[0], out[0], out[1]


def _argnums_error(bf, k, args, kwargs):
    """The message for an ``argnums`` entry with no positional argument: argnums counts the
    call's positional arguments, so a parameter passed by keyword must be passed by position."""
    msg = f"argnums={k} but {bf.per_sample.__qualname__} got {len(args)} positional argument(s)"
    try:
        params = list(_signature(bf.per_sample)[0].parameters.values())
    except (TypeError, ValueError):
        return msg
    if 0 <= k < len(params) and params[k].name in kwargs:
        if params[k].kind is inspect.Parameter.KEYWORD_ONLY:
            msg += (f"; argnums counts positional arguments, and '{params[k].name}' is keyword-only: make it a "
                    f"positional parameter (before the *) to differentiate it")
        else:
            msg += (f"; argnums counts positional arguments, and '{params[k].name}' was passed by keyword: "
                    f"pass it by position to differentiate it")
    return msg


def _dtype(out):
    return out.dtype if hasattr(out, "dtype") else np.asarray(out).dtype


def _backward_with_stats(tape, seeds, bf, holder):
    """The backward sweep; records what the tape held in ``holder.last_stats`` and ``bf.last_stats``."""
    tape.measure = measuring()
    held = held_bytes(tape) if tape.measure else None
    grads = backward(tape, seeds)
    report(tape, held, holder, bf)
    return grads


def grad(f, argnums=0, *, has_aux=False, sparse_tables=True, kernel_partials=None, checkpoint_loops=None):
    """``g(*args) -> grads``: like :func:`value_and_grad` without the values (with
    ``has_aux=True``, ``(grads, aux)``, as in JAX)."""
    vg = value_and_grad(f, argnums, has_aux=has_aux, sparse_tables=sparse_tables,
                        kernel_partials=kernel_partials, checkpoint_loops=checkpoint_loops)

    def grad_f(*args, **kwargs):
        grad_f.last_stats = None
        values, grads = vg(*args, **kwargs)
        grad_f.last_stats = vg.last_stats
        return (grads, values[1]) if has_aux else grads
    grad_f.last_stats = None
    grad_f.__vmapper_gradient__ = True
    return grad_f


def vjp(f, *args, sparse_tables=False, kernel_partials=None, checkpoint_loops=None, **kwargs):
    """``(outputs, vjp_fn)``: ``vjp_fn(cotangents)`` gives gradients for every argument.

    ``cotangents`` has the structure of the outputs (arrays over the batch);
    the gradients are a tuple with one entry per positional argument.
    ``checkpoint_loops`` and ``vjp_fn.last_stats``: as in :func:`value_and_grad`
    (``vjp_fn`` may be called again: each call recomputes the stretches).
    """
    bf = _as_batched(f)
    nums = tuple(range(len(args)))
    values, n, tape, result = _run_traced(bf, args, kwargs, nums, kernel_partials,
                                          _check_checkpoint(checkpoint_loops))
    out = bf.finish(result, n, (args, kwargs))
    return out, _VJPFunction(bf, tape, result, args, values, nums, sparse_tables, out)


class _VJPFunction:
    """``vjp_fn(cotangents)``; an object rather than a closure that names itself, which
    would be a reference cycle keeping the tape (and every array it holds) alive until
    the cycle collector runs."""

    def __init__(self, bf, tape, result, args, values, nums, sparse_tables, out):
        self.bf, self.tape, self.result, self.args, self.values = bf, tape, result, args, values
        self.nums, self.sparse_tables = nums, sparse_tables
        self.out = out  # (the outputs, whose structure and shapes the cotangents must have)
        self.last_stats = None

    def __call__(self, cotangents):
        seeds = {}
        _seed(self.result, cotangents, self.bf.out_axes, seeds, self.out)
        grads = _backward_with_stats(self.tape, seeds, self.bf, self)
        axes = self.bf.arg_axes(len(self.args))
        return tuple(_grad_tree(self.args[k], self.values[k], grads, axes[k], self.sparse_tables)
                     for k in self.nums)


def _summed_over_lanes(c):
    """The seed of a result that is the same on every lane (it depends on broadcast values
    only): the lanes' cotangents summed, as the gradient of anything broadcast is."""
    return c.sum(axis=0)


def _seed(result, cot, out_axes, seeds, out, path="cotangents"):
    """The backward sweep's seeds from ``cot``, which must have the structure and the shapes of
    the outputs ``out`` (a BatchError naming the part that does not)."""
    if type(result) is tuple:
        if not isinstance(cot, (tuple, list)) or len(cot) != len(result):
            raise BatchError(f"{path} must be a tuple of {len(result)} like the outputs, not "
                             f"{type(cot).__name__}{f' of {len(cot)}' if isinstance(cot, (tuple, list)) else ''}")
        axes = out_axes if isinstance(out_axes, (tuple, list)) else [out_axes] * len(result)
        for k, (r, c, a, o) in enumerate(zip(result, cot, axes, out)):
            _seed(r, c, a, seeds, o, f"{path}[{k}]")
        return
    if cot is None:  # (a zero cotangent: this output contributes nothing)
        return
    if np.shape(cot) != np.shape(out):
        raise BatchError(f"{path} has shape {np.shape(cot)}; the output it goes with has shape {np.shape(out)}")
    cot_dtype = cot.dtype if hasattr(cot, "dtype") else np.asarray(cot).dtype
    if cot_dtype.kind == "c" and getattr(out, "dtype", np.dtype(float)).kind != "c":
        raise BatchError(f"{path} is complex ({cot_dtype}) for a real output: gradients of real "
                         f"values are real (pass the real part, or differentiate it and the "
                         f"imaginary part separately)")
    if isinstance(result, Traced):
        c = cot if is_cupy_array(cot) else np.asarray(cot)
        if out_axes not in (0, None):
            c = array_module(c).moveaxis(c, out_axes, 0)
        if not isinstance(result.value, Lanes):
            c = _summed_over_lanes(c)
        # the cotangent itself, not a copy (two 40 MB copies were 18 ms of an LSTM cell's vjp):
        # the backward sweep adds in place only into arrays it allocated itself
        seeds[result.node] = c if result.node not in seeds else seeds[result.node] + c
