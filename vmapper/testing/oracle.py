"""``check_batching``: compare a batched run with the per-sample Python loop."""
from __future__ import annotations

import numpy as np


def _slice_arg(x, axis, i):
    if axis is None:
        return x
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*[_slice_arg(v, axis[j] if isinstance(axis, tuple) else axis, i)
                         for j, v in enumerate(x)])
    if isinstance(x, (tuple, list)):
        items = [_slice_arg(v, axis[j] if isinstance(axis, (tuple, list)) else axis, i)
                 for j, v in enumerate(x)]
        return type(x)(items)
    if isinstance(x, dict):
        return {k: _slice_arg(v, axis[k] if isinstance(axis, dict) else axis, i) for k, v in x.items()}
    if hasattr(x, "__vmapper_lanes__"):
        return x[i]
    return np.take(np.asarray(x), i, axis=axis)


def _batch_size(x, axis):
    if axis is None:
        return None
    if isinstance(x, dict):
        for k, v in x.items():
            n = _batch_size(v, axis[k] if isinstance(axis, dict) else axis)
            if n is not None:
                return n
        return None
    if isinstance(x, (tuple, list)):
        for j, v in enumerate(x):
            n = _batch_size(v, axis[j] if isinstance(axis, (tuple, list)) else axis)
            if n is not None:
                return n
        return None
    if hasattr(x, "__vmapper_lanes__"):
        return len(x)
    return np.shape(x)[axis]


def per_sample_results(fn, args, in_axes=0):
    """Run ``fn`` once per sample (the reference) and return the list of results."""
    from ..api import per_sample_mode
    axes = in_axes if isinstance(in_axes, (tuple, list)) else [in_axes] * len(args)
    n = next(s for s in (_batch_size(a, ax) for a, ax in zip(args, axes)) if s is not None)
    with per_sample_mode():
        return [fn(*[_slice_arg(a, ax, i) for a, ax in zip(args, axes)]) for i in range(n)]


def _compare(ref, got, exact, rtol, atol, where):
    ref_arr = np.asarray(ref)
    got_arr = np.asarray(got)
    if ref_arr.shape != got_arr.shape:
        raise AssertionError(f"{where}: shape {got_arr.shape} batched vs {ref_arr.shape} per sample")
    if exact:
        same = (ref_arr == got_arr) | (np.isnan(ref_arr) & np.isnan(got_arr)
                                        if ref_arr.dtype.kind in "fc" else False)
        if ref_arr.dtype.kind == "f" and got_arr.dtype.kind == "f":
            # the sign of zero counts; a NaN's sign bit is payload, as IEEE 754 leaves it
            same &= (np.signbit(ref_arr) == np.signbit(got_arr)) | (np.isnan(ref_arr) & np.isnan(got_arr))
    else:
        same = np.isclose(got_arr, ref_arr, rtol=rtol, atol=atol, equal_nan=True)
    if not np.all(same):
        bad = np.argwhere(~np.asarray(same))
        first = tuple(bad[0])
        raise AssertionError(f"{where}: {len(bad)} mismatching element(s); first at lane {first[0]}"
                             f"{list(first[1:]) if len(first) > 1 else ''}: batched {got_arr[first]!r}"
                             f" vs per-sample {ref_arr[first]!r}")


_UNSET = object()


def check_batching(f, args, in_axes=_UNSET, *, exact=True, rtol=1e-12, atol=0.0, check_dtype=True,
                   **batched_kwargs):
    """Assert that the batched run of ``f`` equals the per-sample Python loop.

    ``f`` is a per-sample function (batched here with ``in_axes``, default 0, and
    ``batched_kwargs``) or a :class:`~vmapper.BatchedFunction`, which runs with its own
    options (an ``in_axes`` that differs from them, or other options, raise ``ValueError``).
    With ``exact`` (the default) results must match bitwise (NaN matches NaN,
    and the sign of zero counts); otherwise within ``rtol``/``atol``.  Dtypes
    must match the per-sample results' (numpy's promotion of their values)
    when ``check_dtype``.  Tuples of results (nested too) are compared
    leaf by leaf, each with the batch axis where ``out_axes`` puts it.  Returns the
    batched result.
    """
    from ..api import BatchedFunction, batched
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"check_batching: args must be a tuple of the function's arguments, got "
                        f"{type(args).__name__} (one argument x is args=(x,))")
    if isinstance(f, BatchedFunction):
        own = f.arg_axes(len(args))
        if in_axes is not _UNSET and _axes_list(in_axes, len(args)) != own:
            raise ValueError(f"check_batching: in_axes={in_axes!r}, but {f.__name__} is batched with "
                             f"in_axes={f.in_axes!r}, which its run uses; pass the per-sample function "
                             f"to check other axes")
        if batched_kwargs:
            raise ValueError(f"check_batching: {sorted(batched_kwargs)} apply when f is a per-sample function; "
                             f"{f.__name__} is already batched with its own options")
        bf = f
    else:
        bf = batched(f, in_axes=0 if in_axes is _UNSET else in_axes, **batched_kwargs)
    bf.bind(args, {})  # (arguments the batched call refuses: its BatchError, before the loop trips on them)
    refs = per_sample_results(bf.per_sample, args, bf.arg_axes(len(args)))
    got = bf(*args)
    _compare_results(refs, got, bf.out_axes, exact, rtol, atol, check_dtype, "result")
    return got


def _axes_list(in_axes, nargs):
    return list(in_axes) if isinstance(in_axes, (tuple, list)) else [in_axes] * nargs


def _compare_results(refs, got, out_axes, exact, rtol, atol, check_dtype, where):
    """Compare the per-sample results ``refs`` with the batched ``got``, leaf by leaf."""
    first = refs[0]
    if isinstance(first, (tuple, list)):  # (a returned list comes back batched as a tuple)
        if not isinstance(got, tuple) or len(got) != len(first):
            raise AssertionError(f"{where}: per-sample result is a {len(first)}-item {type(first).__name__}, "
                                 f"batched is {type(got).__name__}")
        for k in range(len(first)):
            axis = out_axes[k] if isinstance(out_axes, (tuple, list)) else out_axes
            _compare_results([r[k] for r in refs], got[k], axis, exact, rtol, atol, check_dtype, f"{where}[{k}]")
    elif first is None:
        if got is not None:
            raise AssertionError(f"{where}: per-sample result is None, batched is not")
    else:
        ref = np.array(refs)
        if isinstance(out_axes, (int, np.integer)) and out_axes != 0 and ref.ndim:
            ref = np.moveaxis(ref, 0, out_axes)
        _compare(ref, got, exact, rtol, atol, where)
        _check_dtype(ref, got, check_dtype, where)


def _check_dtype(ref, got, check, where):
    if check and np.asarray(got).dtype != ref.dtype:
        raise AssertionError(f"{where}: dtype {np.asarray(got).dtype} batched vs {ref.dtype} per sample")
