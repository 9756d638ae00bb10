"""CuPy versions of :mod:`.activations` (CUDA kernels built with CuPy).

Imported lazily by :mod:`.activations` the first time it sees a CuPy array,
so nothing here runs (or needs CuPy) on a machine without a GPU.  Same
names, same formulas and the same conventions as the numpy kernels: float32
stays float32 (the CUDA C++ math overloads ``exp(float)`` etc. are used),
other dtypes are computed in float64, inputs broadcast, and each ``*_vjp``
returns gradients shaped like the corresponding inputs.  There is no
``exact_math`` switch: CUDA's libdevice math is already vectorized.

Every kernel is one fused elementwise pass, built on first use per dtype
(CuPy keeps the compiled code in its disk cache).  Inputs of one shape, all
C-contiguous, the common case, run in a ``RawKernel`` whose threads each
take ``_UNROLL`` elements with their loads issued first, over ``__restrict__``
read-only pointers: on an H100 that reaches 0.93-1.03 of the device-to-device
copy bandwidth where ``cupy.ElementwiseKernel`` (one element a thread, indexed
through CuPy's generic array views) reached 0.71-1.00 of it
(``benchmarks/gpu_elementwise.py``).  Other inputs (broadcast, strided) run
in an ``ElementwiseKernel`` with the same body.
"""
import numpy as np
import cupy as cp

__all__ = ["sigmoid", "tanh", "relu", "gelu", "silu", "softplus",
           "sigmoid_vjp", "tanh_vjp", "relu_vjp", "gelu_vjp", "silu_vjp",
           "softplus_vjp", "lstm_cell", "lstm_cell_vjp", "tree_lstm_cell",
           "tree_lstm_cell_vjp"]

# Device helpers, templated on float/double; T(c) keeps float math in float.
_PREAMBLE = r"""
template <typename T> __device__ __forceinline__ T vm_sigmoid(T x) {
    T e = exp(-fabs(x));                       // never overflows
    return (x >= T(0) ? T(1) : e) / (T(1) + e);
}
template <typename T> __device__ __forceinline__ T vm_gelu_z(T x) {
    // 2u: 0.5*(1 + tanh(u)) == sigmoid(2u), without 1 + tanh cancellation
    return T(1.5957691216057308) * (x + T(0.044715) * x * x * x);
}
template <typename T> __device__ __forceinline__ T vm_dsig(T x) {
    // sigmoid(x) * sigmoid(-x) from exp(-|x|): no 1 - s cancellation where s saturates
    T e = exp(-fabs(x)), d = T(1) + e;
    return e / (d * d);
}
template <typename T> __device__ __forceinline__ T vm_dtanh(T x) {
    // 1 - tanh(x)**2 = 4 e / (1 + e)**2, e = exp(-2|x|): no 1 - t*t cancellation
    T e = exp(-T(2) * fabs(x)), d = T(1) + e;
    return T(4) * e / (d * d);
}
template <typename T> __device__ __forceinline__ T vm_gelu_1pe(T x) {
    // 1 + erf(x/sqrt2), as erfc(-x/sqrt2) in the negative tail where it would cancel
    T z = x * T(0.7071067811865476);
    return (z >= T(-0.35) || z != z) ? T(1) + erf(z) : erfc(-z);
}
template <typename T> __device__ __forceinline__ T vm_clamp(T x, T lim) {
    return x < lim ? (x > -lim ? x : -lim) : lim;
}
"""

_UNARY = {
    # name: (forward body, vjp body); inputs x (and g), output y
    "sigmoid": ("y = vm_sigmoid(x);",
                "y = g * vm_dsig(x);"),
    "tanh": ("y = tanh(x);",
             "y = g * vm_dtanh(x);"),
    "relu": ("y = (x > T(0) || x != x) ? x : T(0);",
             "y = x > T(0) ? g : T(0);"),
    "silu": ("y = (isinf(x) && x < T(0)) ? T(-0.0) : x * vm_sigmoid(x);",
             "T s = vm_sigmoid(x); T xc = vm_clamp(x, T(1e4));"
             "y = g * (s * (T(1) + xc * (T(1) - s)));"),
    "softplus": ("y = (x > T(0) ? x : T(0)) + log1p(exp(-fabs(x)));",
                 "y = g * vm_sigmoid(x);"),
    "gelu_tanh": (
        "y = (isinf(x) && x < T(0)) ? T(-0.0) : x * vm_sigmoid(vm_gelu_z(x));",
        "T z = vm_gelu_z(x); T sp = vm_sigmoid(z), sn = vm_sigmoid(-z);"
        "T xc = vm_clamp(x, T(40));"
        "y = g * (sp + xc * T(1.5957691216057308)"
        " * (T(1) + T(3) * T(0.044715) * xc * xc) * (sp * sn));"),
    "gelu_erf": (
        "y = (isinf(x) && x < T(0)) ? T(-0.0) : T(0.5) * x * vm_gelu_1pe(x);",
        "T xc = vm_clamp(x, T(40));"
        "y = g * (T(0.5) * vm_gelu_1pe(x)"
        " + xc * T(0.3989422804014327) * exp(T(-0.5) * xc * xc));"),
}

_LSTM = ("T si = vm_sigmoid(gi), sf = vm_sigmoid(gf), so = vm_sigmoid(go);"
         "c = si * tanh(gu) + sf * c_prev; h = so * tanh(c);")
_LSTM_VJP = (
    "T si = vm_sigmoid(gi), sf = vm_sigmoid(gf), so = vm_sigmoid(go);"
    "T tu = tanh(gu); T cc = si * tu + sf * c_prev; T tc = tanh(cc);"
    "T dc = gc + gh * so * vm_dtanh(cc);"
    "di = dc * tu * vm_dsig(gi); df = dc * c_prev * vm_dsig(gf);"
    "d_o = gh * tc * vm_dsig(go); du = dc * si * vm_dtanh(gu);"
    "dc_prev = dc * sf;")
_TREE = ("T si = vm_sigmoid(gi), sl = vm_sigmoid(gfl), sr = vm_sigmoid(gfr);"
         "c = si * tanh(gu) + sl * cl + sr * cr; h = vm_sigmoid(go) * tanh(c);")
_TREE_VJP = (
    "T si = vm_sigmoid(gi), so = vm_sigmoid(go);"
    "T sl = vm_sigmoid(gfl), sr = vm_sigmoid(gfr);"
    "T tu = tanh(gu); T cc = si * tu + sl * cl + sr * cr; T tc = tanh(cc);"
    "T dc = gc + gh * so * vm_dtanh(cc);"
    "di = dc * tu * vm_dsig(gi); dfl = dc * cl * vm_dsig(gfl);"
    "dfr = dc * cr * vm_dsig(gfr); d_o = gh * tc * vm_dsig(go);"
    "du = dc * si * vm_dtanh(gu); dcl = dc * sl; dcr = dc * sr;")

# Parameter names: ElementwiseKernel reserves ``i`` and ``n`` (loop index and
# size), so the gate pre-activations are called gi, gf, go, gu, gfl, gfr.
_elementwise_kernels = {}
_raw_kernels = {}
_BLOCK = 256
_UNROLL = 2
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def _raw_source(name, ins, outs, body, ctype):
    """A grid-stride kernel: each thread loads ``_UNROLL`` elements of every input, one
    ``blockDim * gridDim`` apart (coalesced), then computes and stores them."""
    params = ", ".join(["long long vm_n"] + [f"const T* __restrict__ vm_{p}" for p in ins]
                       + [f"T* __restrict__ vm_{p}" for p in outs])
    loads = " ".join(f"vm_in_{p}[k] = __ldg(vm_{p} + vm_j);" for p in ins)
    reads = " ".join(f"T {p} = vm_in_{p}[k];" for p in ins)
    stores = " ".join(f"vm_{p}[vm_j] = {p};" for p in outs)
    return f"""typedef {ctype} T;
{_PREAMBLE}
extern "C" __global__ void vmapper_{name}({params}) {{
    const long long vm_step = (long long)blockDim.x * gridDim.x;
    for (long long vm_base = (long long)blockIdx.x * blockDim.x + threadIdx.x; vm_base < vm_n;
         vm_base += vm_step * {_UNROLL}) {{
        {" ".join(f"T vm_in_{p}[{_UNROLL}];" for p in ins)}
        #pragma unroll
        for (int k = 0; k < {_UNROLL}; ++k) {{
            const long long vm_j = vm_base + k * vm_step;
            if (vm_j < vm_n) {{ {loads} }}
        }}
        #pragma unroll
        for (int k = 0; k < {_UNROLL}; ++k) {{
            const long long vm_j = vm_base + k * vm_step;
            if (vm_j < vm_n) {{
                {reads}
                T {", ".join(outs)};
                {body}
                {stores}
            }}
        }}
    }}
}}
"""


def _kernel(name, ins, outs, body):
    """A callable running ``body`` over the inputs (all of type T, the inputs' float dtype)."""
    def run(*args):
        shape = args[0].shape
        if all(a.shape == shape and a.flags.c_contiguous for a in args):
            return _run_raw(name, ins, outs, body, args)
        k = _elementwise_kernels.get(name)
        if k is None:
            k = _elementwise_kernels[name] = cp.ElementwiseKernel(
                ", ".join(f"T {p}" for p in ins), ", ".join(f"T {p}" for p in outs),
                body, "vmapper_" + name, preamble=_PREAMBLE)
        return k(*args)
    return run


def _run_raw(name, ins, outs, body, args):
    dtype = args[0].dtype
    results = tuple(cp.empty(args[0].shape, dtype) for _ in outs)
    n = args[0].size
    if n:
        key = (name, dtype, cp.cuda.runtime.getDevice())
        k = _raw_kernels.get(key)
        if k is None:
            k = _raw_kernels[key] = cp.RawKernel(_raw_source(name, ins, outs, body, _CTYPES[dtype]),
                                                 "vmapper_" + name)
        grid = min(-(-n // (_BLOCK * _UNROLL)), 2 ** 31 - 1)
        k((grid,), (_BLOCK,), (np.int64(n),) + tuple(args) + results)
    return results if len(results) > 1 else results[0]


def _floats(*xs):
    """Same float dtype for all (float32 only if every input is float32...
    following numpy promotion; integers go to float64)."""
    xs = [cp.asarray(x) for x in xs]
    dt = cp.result_type(*xs)
    if dt not in (cp.float32, cp.float64):
        dt = cp.dtype(cp.float64)
    return [x.astype(dt, copy=False) for x in xs]


def _unbroadcast(grad, shape):
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + k for k, s in enumerate(shape) if s == 1 and grad.shape[lead + k] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _unary(op, x):
    (x,) = _floats(x)
    return _kernel(op, ["x"], ["y"], _UNARY[op][0])(x)


def _unary_vjp(op, x, g):
    shape = cp.shape(x)
    x, g = _floats(x, g)
    return _unbroadcast(_kernel(op + "_vjp", ["x", "g"], ["y"], _UNARY[op][1])(x, g),
                        shape)


def _gelu_op(approximate):
    if approximate == "tanh":
        return "gelu_tanh"
    if approximate in ("erf", "none", None):
        return "gelu_erf"
    raise ValueError(f"approximate must be 'tanh' or 'erf', got {approximate!r}")


def sigmoid(x):
    return _unary("sigmoid", x)


def tanh(x):
    return _unary("tanh", x)


def relu(x):
    return _unary("relu", x)


def silu(x):
    return _unary("silu", x)


def softplus(x):
    return _unary("softplus", x)


def gelu(x, approximate="tanh"):
    return _unary(_gelu_op(approximate), x)


def sigmoid_vjp(x, g):
    return _unary_vjp("sigmoid", x, g)


def tanh_vjp(x, g):
    return _unary_vjp("tanh", x, g)


def relu_vjp(x, g):
    return _unary_vjp("relu", x, g)


def silu_vjp(x, g):
    return _unary_vjp("silu", x, g)


def softplus_vjp(x, g):
    return _unary_vjp("softplus", x, g)


def gelu_vjp(x, g, approximate="tanh"):
    return _unary_vjp(_gelu_op(approximate), x, g)


def lstm_cell(i, f, o, u, c_prev):
    """``(h, c)``; see :func:`vmapper.kernels.activations.lstm_cell`."""
    args = _floats(i, f, o, u, c_prev)
    return _kernel("lstm", ["gi", "gf", "go", "gu", "c_prev"], ["h", "c"], _LSTM)(*args)


def lstm_cell_vjp(i, f, o, u, c_prev, gh, gc):
    """``(di, df, do, du, dc_prev)`` of :func:`lstm_cell`."""
    shapes = [cp.shape(v) for v in (i, f, o, u, c_prev)]
    args = _floats(i, f, o, u, c_prev, gh, gc)
    outs = _kernel("lstm_vjp", ["gi", "gf", "go", "gu", "c_prev", "gh", "gc"],
                   ["di", "df", "d_o", "du", "dc_prev"], _LSTM_VJP)(*args)
    return tuple(_unbroadcast(d, s) for d, s in zip(outs, shapes))


def tree_lstm_cell(i, fl, fr, o, u, cl, cr):
    """``(h, c)``; see :func:`vmapper.kernels.activations.tree_lstm_cell`."""
    args = _floats(i, fl, fr, o, u, cl, cr)
    return _kernel("tree_lstm", ["gi", "gfl", "gfr", "go", "gu", "cl", "cr"],
                   ["h", "c"], _TREE)(*args)


def tree_lstm_cell_vjp(i, fl, fr, o, u, cl, cr, gh, gc):
    """``(di, dfl, dfr, do, du, dcl, dcr)`` of :func:`tree_lstm_cell`."""
    shapes = [cp.shape(v) for v in (i, fl, fr, o, u, cl, cr)]
    args = _floats(i, fl, fr, o, u, cl, cr, gh, gc)
    outs = _kernel("tree_lstm_vjp",
                   ["gi", "gfl", "gfr", "go", "gu", "cl", "cr", "gh", "gc"],
                   ["di", "dfl", "dfr", "d_o", "du", "dcl", "dcr"],
                   _TREE_VJP)(*args)
    return tuple(_unbroadcast(d, s) for d, s in zip(outs, shapes))
