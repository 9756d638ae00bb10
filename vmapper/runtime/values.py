"""How per-sample values are held during batched execution.

A *varying* value (different per lane) is a :class:`Lanes`: an array whose
axis 0 is the lane axis and whose other axes are the per-sample shape.  A
*uniform* value (the same on every lane) is kept as the plain Python or numpy
object the per-sample code would see; tuples hold either kind.

Python scalars are *weak* (NEP 50): ``np.float32(x) * 2.0`` stays float32.
``Lanes.weak`` records that a varying value holds Python scalars (int, float
or bool per lane), so that mixing it with numpy values promotes exactly as
the per-sample run does.
"""
from __future__ import annotations

import math

import numpy as np

_WEAK_EXAMPLE = {"b": False, "i": 0, "u": 0, "f": 0.0, "c": 0j}
#: The dtype kinds of per-lane values: bool, integers, floats, complex, str, dates and times
#: (bytes, structured records and Python objects have no per-lane operations).
LANE_KINDS = frozenset("biufcUMm")


class Lanes:
    """A varying value: ``data[k]`` is lane k's value."""
    __slots__ = ("data", "weak")

    def __init__(self, data: np.ndarray, weak: bool = False):
        self.data = data
        self.weak = weak

    @property
    def sample_shape(self):
        return self.data.shape[1:]

    @property
    def dtype(self):
        return self.data.dtype

    def __repr__(self):
        return f"Lanes({self.data!r}, weak={self.weak})"


class Traced:
    """A value being differentiated: the raw value and its node on the tape."""
    __slots__ = ("value", "node")

    def __init__(self, value, node):
        self.value = value
        self.node = node

    def __repr__(self):
        return f"Traced({self.value!r}, node={self.node})"


_LAZY = {}


def _structural():
    # imported on first use: autodiff imports this module
    mod = _LAZY.get("structural")
    if mod is None:
        from ..autodiff import structural as mod
        _LAZY["structural"] = mod
    return mod


def is_varying(v) -> bool:
    if isinstance(v, Lanes):
        return True
    if isinstance(v, Traced):
        return is_varying(v.value)
    if type(v) is tuple:
        return any(is_varying(x) for x in v)
    return getattr(v, "__vmapper_varying__", False)


def is_weak(v) -> bool:
    """True for Python scalars and varying values that hold them."""
    if isinstance(v, Lanes):
        return v.weak
    return type(v) in (bool, int, float, complex)


def weak_dtype(v) -> np.dtype:
    """The dtype a Python scalar gets on its own (bool, int64, float64, complex128)."""
    return np.asarray(v).dtype if not isinstance(v, Lanes) else v.data.dtype


def result_dtype(operands) -> np.dtype | None:
    """NEP 50 promotion of operands, weak ones entering as Python scalars."""
    reps = []
    for v in operands:
        if isinstance(v, Lanes):
            reps.append(_WEAK_EXAMPLE[v.data.dtype.kind] if v.weak else v.data.dtype)
        elif isinstance(v, (bool, int, float, complex)):
            reps.append(v)
        elif isinstance(v, (np.ndarray, np.generic)):
            reps.append(v.dtype)
        else:
            return None
    if not reps:
        return None
    return np.result_type(*reps)


def sample_ndim(v) -> int:
    if isinstance(v, Lanes):
        return v.data.ndim - 1
    return np.ndim(v)


def aligned(operands, n):
    """Arrays for an elementwise numpy call whose per-sample shapes broadcast.

    A varying operand's lane axis goes first, and its per-sample axes are
    right-aligned with the other operands' axes, as per-sample broadcasting
    would align them; uniform operands broadcast as they are.
    """
    nd = max(sample_ndim(v) for v in operands)
    out = []
    for v in operands:
        if isinstance(v, Lanes):
            d = v.data
            k = d.ndim - 1
            out.append(d.reshape((d.shape[0],) + (1,) * (nd - k) + d.shape[1:]) if k < nd else d)
        else:
            out.append(v)
    return out


def held(v, n: int):
    """``v`` over ``n`` lanes if it is a uniform object that batched code holds per lane in a
    form of its own (a tree node: ``__vmapper_hold__``); anything else as it is."""
    if type(v) is Lanes:  # (the common case, on the select's hot path: no attribute lookup)
        return v
    hook = getattr(v, "__vmapper_hold__", None)
    return hook(n) if hook is not None and not is_varying(v) else v


def materialize(v, n: int) -> Lanes:
    """A varying form of ``v`` over ``n`` lanes (a read-only broadcast view for uniform values)."""
    if isinstance(v, Lanes):
        return v
    arr = _scalar_array(v)
    if arr.dtype == object:
        raise TypeError(f"a {type(v).__name__} ({_short_repr(v)}) cannot be held per lane")
    return Lanes(np.broadcast_to(arr, (n,) + arr.shape), weak=is_weak(v))


def _scalar_array(v):
    """``np.asarray(v)``, but a Python int beyond int64 wraps into it, as the lanes' ints do (numpy
    would make it a uint64 or an object, and a merge with int64 lanes would promote to float)."""
    if type(v) is int and not -0x8000000000000000 <= v <= 0x7FFFFFFFFFFFFFFF:
        v = (v + 0x8000000000000000) % 0x10000000000000000 - 0x8000000000000000
    return np.asarray(v)


def _short_repr(v):
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _tuple_mismatch(a, b):
    """The TypeError of merging a tuple (a list held as one) with a value it cannot merge with."""
    if type(a) is tuple and type(b) is tuple:
        return TypeError(f"a list or tuple of {len(a)} item{'s' * (len(a) != 1)} on some lanes and of {len(b)} "
                         f"on others")
    return TypeError("a tuple on some lanes and another value on others")


# Types whose values are always uniform (the same on every lane) and have no gather hook.
_SHARED_TYPES = frozenset({int, float, bool, complex, str, dict, type(None), np.ndarray})
_PYTHON_SCALARS = frozenset({int, float, bool})


def gather(v, idx):
    """The value restricted to lanes ``idx`` (an index array)."""
    if type(v) in _SHARED_TYPES:
        return v
    if isinstance(v, Traced):
        return _structural().gather(v, idx)
    if isinstance(v, Lanes):
        return Lanes(take_rows(v.data, idx), v.weak)
    if type(v) is tuple:
        return tuple(gather(x, idx) for x in v)
    g = getattr(v, "__vmapper_gather__", None)
    return g(idx) if g is not None else v


def all_true(mask):
    """``mask.all()`` of a bool array, without the method's Python-level wrapper (a runtime
    test made several times per batched step)."""
    return np.count_nonzero(mask) == mask.size


def take_rows(data, idx):
    """``data[idx]``: ``take`` along the lanes for an integer index array into a per-lane array
    (numpy's ``take`` gathers rows two to three times faster than ``data[idx]`` at tens of
    lanes; the same values, the same errors)."""
    if type(idx) is np.ndarray and data.ndim > 1 and idx.dtype.kind in "iu":
        return data.take(idx, axis=0)
    return data[idx]


def scatter_into(dest, src, idx, n: int):
    """``dest`` with lanes ``idx`` replaced by ``src`` (a value over len(idx) lanes)."""
    if isinstance(dest, Traced) or isinstance(src, Traced):
        return _structural().scatter_into(dest, src, idx, n)
    if type(dest) is tuple or type(src) is tuple:
        if type(dest) is not tuple or type(src) is not tuple or len(dest) != len(src):
            raise _tuple_mismatch(src, dest)
        return tuple(scatter_into(d, s, idx, n) for d, s in zip(dest, src))
    if type(src) is Lanes and type(dest) is Lanes:
        d, s = dest.data, src.data
        if d.dtype == s.dtype and src.weak == dest.weak and d.shape[1:] == s.shape[1:]:
            out = d.copy()
            out[idx] = s
            return Lanes(out, dest.weak)
    if not isinstance(src, Lanes) and not isinstance(dest, Lanes) and _same_uniform(dest, src):
        return dest
    src, dest = held(src, len(idx)), held(dest, n)
    if hasattr(src, "__vmapper_scatter__") or hasattr(dest, "__vmapper_scatter__"):
        return type(src if hasattr(src, "__vmapper_scatter__") else dest).__vmapper_scatter__(dest, src, idx, n)
    if type(dest) in _PYTHON_SCALARS and type(src) is Lanes and src.data.ndim == 1:
        # e.g. ``loss = 0.0`` on one arm of an if, a per-lane loss on the other: filled in
        # one pass (a broadcast view of the scalar would cost more than the copy it feeds)
        d_arr = _scalar_array(dest)
        if d_arr.dtype != object:
            out = np.empty(n, _merge_dtype(Lanes(d_arr, True), src))
            np.copyto(out, d_arr, casting="unsafe")  # (the cast np.array(d, dtype=...) makes)
            out[idx] = src.data
            return Lanes(out, src.weak)
    s = materialize(src, len(idx))
    d = materialize(dest, n)
    dt = _merge_dtype(d, s)
    if d.sample_shape != s.sample_shape:
        raise TypeError(f"shape {s.sample_shape} on some lanes and {d.sample_shape} on others")
    out = np.array(d.data, dtype=dt, copy=True)
    out[idx] = s.data
    return Lanes(out, d.weak and s.weak)


def scatter_blank(src: Lanes, idx, n: int) -> Lanes:
    """``src`` on lanes ``idx`` of ``n``, zeros on the others (made in one pass)."""
    data = src.data
    new = np.zeros((n,) + data.shape[1:], data.dtype)
    new[idx] = data
    return Lanes(new, src.weak)


def select(mask, new, old, n: int, pool=None, spare=None):
    """Per lane: ``new`` where ``mask`` else ``old`` (a masked assignment); ``pool``: a
    :class:`~vmapper.runtime.buffers.BufferPool` the result's array may come from;
    ``spare``: 0 or 1 when the caller owns the array of ``new`` or of ``old`` (see
    :func:`~vmapper.runtime.buffers.is_spare`), which may then hold the result."""
    if isinstance(new, Traced) or isinstance(old, Traced):
        return _structural().select(mask, new, old, n)
    if type(new) is tuple or type(old) is tuple:
        if type(new) is not tuple or type(old) is not tuple or len(new) != len(old):
            raise _tuple_mismatch(new, old)
        return tuple(select(mask, a, b, n) for a, b in zip(new, old))
    if not isinstance(new, Lanes) and not isinstance(old, Lanes) and _same_uniform(new, old):
        return new
    new, old = held(new, n), held(old, n)
    if hasattr(new, "__vmapper_select__") or hasattr(old, "__vmapper_select__"):
        return type(new if hasattr(new, "__vmapper_select__") else old).__vmapper_select__(mask, new, old, n)
    a, b = materialize(new, n), materialize(old, n)
    if a.sample_shape != b.sample_shape:
        raise TypeError(f"shape {a.sample_shape} on some lanes and {b.sample_shape} on others")
    dt = _merge_dtype(a, b)
    if dt != a.data.dtype or dt != b.data.dtype or a.weak != b.weak:
        # Types promote only where lanes hold both: a branch that no lane took (or that
        # every lane took) leaves the other side's type, as the per-sample run has it (a
        # Python float stays one: round(y, 1), y / 0.0 and ~ follow Python's rules for it).
        if not mask.any():
            return old
        if mask.all():
            return new
    ad, bd = a.data.astype(dt, copy=False), b.data.astype(dt, copy=False)
    kernel = _lane_select()
    if kernel.fits(mask, ad, bd):
        if spare is not None:  # (an astype copy is ours too)
            return Lanes(kernel.select_in_place(mask, ad, bd, spare == 0), a.weak and b.weak)
        out = None if pool is None else pool.take(dt, ad.shape)
        out = np.empty(ad.shape, dt) if out is None else out
        return Lanes(kernel.select_into(mask, ad, bd, out), a.weak and b.weak)
    m = mask.reshape(mask.shape + (1,) * len(a.sample_shape))
    return Lanes(np.where(m, ad, bd), a.weak and b.weak)


def _lane_select():
    # imported on first use: numba is slow to import, and ``import vmapper`` should not pay it
    mod = _LAZY.get("lane_select")
    if mod is None:
        from ..profiler import compiling
        with compiling("import numba"):  # (an open vmapper.profile() books it apart)
            from ..kernels import lane_select as mod
        _LAZY["lane_select"] = mod
    return mod


def _merge_dtype(a: Lanes, b: Lanes):
    """The dtype of a variable whose lanes hold values of two types.

    A Python scalar merged with a numpy value takes the numpy value's type where
    that holds its values exactly (``0.0`` with float32 gives float32, as
    ``np.where(c, a, b)`` would under NEP 50); otherwise, ``-200`` with int8 or
    ``0.1`` with float32, types promote as an array of the per-sample results
    would (int64, float64).  Numpy values of two types promote.
    """
    if a.data.dtype == b.data.dtype:
        return a.data.dtype
    if a.data.dtype.kind == b.data.dtype.kind == "U":  # strs of two lengths: the wider width
        return np.promote_types(a.data.dtype, b.data.dtype)
    try:
        if a.weak != b.weak:
            strong, weak = (b, a) if a.weak else (a, b)
            dt = np.result_type(strong.data.dtype, _WEAK_EXAMPLE[weak.data.dtype.kind])
            if dt != weak.data.dtype and not _holds_all(dt, weak.data):
                dt = np.result_type(strong.data.dtype, weak.data.dtype)
            return dt
        return np.promote_types(a.data.dtype, b.data.dtype)
    except (TypeError, KeyError):  # (no common type: a string and a number)
        kinds = [_KIND_NAMES.get(v.data.dtype.kind, v.data.dtype.name) for v in (a, b)]
        a_or_an = ["an" if k[0] in "aeiou" else "a" for k in kinds]
        raise TypeError(f"{a_or_an[0]} {kinds[0]} on some lanes and {a_or_an[1]} {kinds[1]} on others") from None


def _holds_all(dtype, data) -> bool:
    """Whether ``dtype`` holds every value of ``data`` exactly (NaN holds NaN)."""
    if data.ndim and data.strides[0] == 0:  # a scalar broadcast over the lanes
        data = data[:1]
    with np.errstate(all="ignore"):
        back = data.astype(dtype).astype(data.dtype)
    return bool(np.array_equal(back, data, equal_nan=data.dtype.kind in "fc"))


_KIND_NAMES = {"U": "str", "S": "bytes", "b": "bool", "i": "int", "u": "int", "f": "float", "c": "complex"}


def _same_uniform(a, b) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        # bitwise: 0.0 and -0.0 compare equal but are different values (and NaN != NaN)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, complex):
        return _same_uniform(a.real, b.real) and _same_uniform(a.imag, b.imag)
    if isinstance(a, (bool, int, str)):
        return a == b
    return False


def truth(v, n: int):
    """Per-lane ``bool(v)``: a bool array over lanes, or a Python bool when uniform."""
    if isinstance(v, Traced):
        v = v.value
    if isinstance(v, Lanes):
        d = v.data
        if d.ndim > 1:
            if int(np.prod(d.shape[1:])) != 1:
                raise ValueError("the truth value of an array with more than one element is ambiguous")
            d = d.reshape(d.shape[0])
        if d.dtype.kind in "US":  # (str != 0 would be True for "" too)
            return np.char.str_len(d) > 0
        return d if d.dtype == np.bool_ else d != 0
    t = getattr(v, "__vmapper_truth__", None)
    if t is not None:
        return t()
    return bool(v)


def is_cupy_array(x) -> bool:
    """True for a CuPy ndarray (recognised by its type, without importing CuPy)."""
    t = type(x)
    return t.__module__.partition(".")[0] == "cupy" and hasattr(t, "__cuda_array_interface__")


def array_module(a):
    """numpy, or CuPy for a CuPy array (a kernel's results live where the kernel ran)."""
    if is_cupy_array(a):
        import cupy
        return cupy
    return np


def to_output(v, n: int):
    """The batched result array (lane axis first) for a per-sample result ``v``."""
    if isinstance(v, Traced):
        v = v.value
    if isinstance(v, Lanes):
        d = v.data
        if is_cupy_array(d):  # (a differentiated CUDA kernel's result stays on the device)
            return d
        if d.dtype.kind == "U" and d.size and d.dtype.itemsize > 4:
            # as wide as the longest string, as the per-sample results stack (a width grown on
            # lanes whose strings stayed shorter, ``t = t + c.s`` over children, is not theirs)
            width = max(int(np.char.str_len(d).max()), 1)
            if width * 4 < d.dtype.itemsize:
                return d.astype(f"<U{width}")
        return np.ascontiguousarray(d) if not d.flags.writeable else d
    if type(v) is tuple:
        return tuple(to_output(x, n) for x in v)
    out = getattr(v, "__vmapper_output__", None)
    if out is not None:
        return out()
    arr = _scalar_array(v)  # (a Python int beyond int64 wraps, as where it becomes per-lane elsewhere)
    if arr.dtype == object:
        raise TypeError(f"a per-sample result of type {type(v).__name__}")
    return np.array(np.broadcast_to(arr, (n,) + arr.shape))


def concat_sized(values, sizes):
    """Values over ``sizes[k]`` lanes each, laid end to end (a uniform value shared by all stays uniform)."""
    if any(isinstance(v, Traced) for v in values):
        return _structural().concat(values, sizes)
    first = values[0]
    if all(not is_varying(v) for v in values) and all(_same_uniform(first, v) for v in values[1:]):
        return first
    if type(first) is tuple:
        if any(type(v) is not tuple or len(v) != len(first) for v in values):
            raise TypeError("a tuple in one call and another value in another")
        return tuple(concat_sized([v[i] for v in values], sizes) for i in range(len(first)))
    values = [held(v, m) for v, m in zip(values, sizes)]
    hook = next((getattr(type(v), "__vmapper_concat__") for v in values
                 if hasattr(type(v), "__vmapper_concat__")), None)
    if hook is not None:
        return hook(values)
    first = values[0]
    items = [materialize(v, m) for v, m in zip(values, sizes)]
    shapes = {v.sample_shape for v in items}
    if len(shapes) > 1:
        raise TypeError(f"per-sample shapes {sorted(shapes)} in merged calls")
    dt = _concat_dtype(items)
    return Lanes(np.concatenate([v.data.astype(dt, copy=False) for v in items]), all(v.weak for v in items))


def _concat_dtype(items):
    """The dtype of Lanes laid end to end: as ``_merge_dtype`` merges two (a Python scalar's
    lanes take a numpy value's type where it holds them exactly)."""
    weak = [v.data for v in items if v.weak]
    if not weak or len(weak) == len(items):
        return np.result_type(*[v.data.dtype for v in items])
    strong = np.result_type(*[v.data.dtype for v in items if not v.weak])
    held_weak = np.concatenate([w.ravel() for w in weak]) if len(weak) > 1 else weak[0]
    return _merge_dtype(Lanes(np.empty(0, strong), False), Lanes(held_weak, True))
