"""Fused activation kernels (forward and input-gradient) for numpy arrays.

Every public function takes numpy arrays of any shape (0-d, empty and
non-contiguous included), computes in the input's float dtype (float32 stays
float32; other dtypes go to float64) and makes a single pass over memory with
a numba kernel whose loop LLVM vectorizes, because the transcendental
functions come from :mod:`.vmath` instead of libm.  ``exact_math=True``
switches the kernels to libm (``math.exp`` ...), which is slower but gives
the platform's own rounding.  CuPy arrays are sent to
:mod:`.cupy_activations` (same names, CUDA kernels built with CuPy).

API (``*_vjp`` return the gradient with respect to each input)::

    sigmoid(x)   tanh(x)   relu(x)   silu(x)   softplus(x)
    gelu(x, approximate='tanh')            # or 'erf' ('none' is accepted)
        # tanh form evaluated as x*sigmoid(2u) (identical maths, no
        # cancellation in the x << 0 tail, unlike 1 + tanh(u))
    sigmoid_vjp(x, g) ... gelu_vjp(x, g, approximate='tanh')
    lstm_cell(i, f, o, u, c_prev) -> (h, c)
        c = sigma(i)*tanh(u) + sigma(f)*c_prev,  h = sigma(o)*tanh(c)
    lstm_cell_vjp(i, f, o, u, c_prev, gh, gc) -> (di, df, do, du, dc_prev)
    tree_lstm_cell(i, fl, fr, o, u, cl, cr) -> (h, c)
        c = sigma(i)*tanh(u) + sigma(fl)*cl + sigma(fr)*cr
    tree_lstm_cell_vjp(i, fl, fr, o, u, cl, cr, gh, gc)
        -> (di, dfl, dfr, do, du, dcl, dcr)

The binary Tree-LSTM cell also comes with its gates packed in one vector, as
one matrix product makes them (:mod:`.packed_cells`)::

    tree_lstm_cell_packed(g, cl, cr) -> (h, c)     g = [i | fl | fr | o | u]
    tree_lstm_cell_packed(g) -> (h, c)             a leaf: g = [i | o | u]
    tree_lstm_cell_packed_vjp(g, cl, cr, gh, gc) -> (dg, dcl, dcr)   ((dg,) for a leaf)

The cell functions broadcast their inputs; their vjps sum gradients back to
each input's shape.

Usable in vmapper per-sample code: importing this module registers the
forward functions above as primitives (:mod:`.activation_primitives`), so a
batched function runs each call as one kernel launch over all lanes, with
the ``*_vjp`` kernels as its gradient.  The ``*_vjp`` functions themselves
take whole arrays: per-sample code gets gradients from
``vmapper.value_and_grad`` (a call there raises an error naming its line).

Usable inside per-sample numba code (defined in :mod:`.activation_scalars`
and re-exported here; ``@njit``, inlined, generic over float32/float64,
``exact`` defaults to False)::

    sigmoid_scalar(x, exact)  tanh_scalar  relu_scalar  silu_scalar
    softplus_scalar  gelu_scalar(x, approx_tanh, exact)
    <name>_vjp_scalar(x, g, ...)  (same argument conventions)
    lstm_cell_scalar(i, f, o, u, c_prev, exact) -> (h, c)
    lstm_cell_vjp_scalar(i, f, o, u, c_prev, gh, gc, exact) -> 5-tuple
    tree_lstm_cell_scalar / tree_lstm_cell_vjp_scalar

The cells share divisions (a vector divide costs as much as ~30 multiplies):
sigmoid and tanh come as fractions (``vmath.sig_frac``/``tanh_frac``), the
LSTM cell forward divides twice per element instead of five times, its
backward twice (four reciprocals from one division), and the gradients take
sigma*(1 - sigma) and 1 - tanh**2 from exp(-|x|), without cancellation.

Kernels are ``@njit(cache=True)`` block functions specialised on literal
``op``/``exact`` arguments (``numba.literally``), driven either directly
(small arrays: no thread-pool start-up, ~1 us) or from a ``parallel=True``
``prange`` over blocks.
"""
import numpy as np
from numba import literally, njit, prange

from .vector_width import wide_vectors

from .activation_scalars import (  # noqa: F401  (the *_scalar functions are public here too)
    _th, gelu_scalar, gelu_vjp_scalar, lstm_cell_scalar, lstm_cell_vjp_scalar, relu_scalar,
    relu_vjp_scalar, sigmoid_scalar, sigmoid_vjp_scalar, silu_scalar, silu_vjp_scalar,
    softplus_scalar, softplus_vjp_scalar, tanh_scalar, tanh_vjp_scalar, tree_lstm_cell_scalar,
    tree_lstm_cell_vjp_scalar)

__all__ = ["sigmoid", "tanh", "relu", "gelu", "silu", "softplus",
           "sigmoid_vjp", "tanh_vjp", "relu_vjp", "gelu_vjp", "silu_vjp",
           "softplus_vjp", "lstm_cell", "lstm_cell_vjp", "tree_lstm_cell",
           "tree_lstm_cell_vjp", "SCALAR_FUNCTIONS"]

_BJ = dict(error_model="numpy", cache=True)                    # blocks
_PJ = dict(error_model="numpy", cache=True, parallel=True)     # drivers
_BLOCK = 1 << 14           # elements per prange task
# Below this the calling thread does the work.  Threads save at most ~80 us there, and
# numba's OpenMP workers, spinning after a parallel kernel, can stall the next
# multi-threaded OpenBLAS product by milliseconds (benchmarks/blas_threads.py).
_SERIAL_BELOW = 1 << 19


# --------------------------------------------------------------- kernels --
# Unary activations share one block function; ``op`` (a literal) selects the
# loop at compile time, so each (op, dtype, exact) gets its own machine code.
_OPS = {"sigmoid": 0, "tanh": 1, "relu": 2, "gelu_tanh": 3, "gelu_erf": 4,
        "silu": 5, "softplus": 6}


@njit(**_BJ)
def _fwd_block(x, out, lo, hi, op, exact):
    wide_vectors()
    literally(op)
    literally(exact)
    x, out = x[lo:hi], out[lo:hi]    # loops from 0: indices provably >= 0,
    n = x.shape[0]                   # so loads are contiguous (no gathers)
    if op == 0:
        for j in range(n):
            out[j] = sigmoid_scalar(x[j], exact)
    elif op == 1:
        for j in range(n):
            out[j] = _th(x[j], exact)
    elif op == 2:
        for j in range(n):
            out[j] = relu_scalar(x[j], exact)
    elif op == 3:
        for j in range(n):
            out[j] = gelu_scalar(x[j], True, exact)
    elif op == 4:
        for j in range(n):
            out[j] = gelu_scalar(x[j], False, exact)
    elif op == 5:
        for j in range(n):
            out[j] = silu_scalar(x[j], exact)
    else:
        for j in range(n):
            out[j] = softplus_scalar(x[j], exact)


@njit(**_BJ)
def _vjp_block(x, g, out, lo, hi, op, exact):
    wide_vectors()
    literally(op)
    literally(exact)
    x, g, out = x[lo:hi], g[lo:hi], out[lo:hi]
    n = x.shape[0]
    if op == 0:
        for j in range(n):
            out[j] = sigmoid_vjp_scalar(x[j], g[j], exact)
    elif op == 1:
        for j in range(n):
            out[j] = tanh_vjp_scalar(x[j], g[j], exact)
    elif op == 2:
        for j in range(n):
            out[j] = relu_vjp_scalar(x[j], g[j], exact)
    elif op == 3:
        for j in range(n):
            out[j] = gelu_vjp_scalar(x[j], g[j], True, exact)
    elif op == 4:
        for j in range(n):
            out[j] = gelu_vjp_scalar(x[j], g[j], False, exact)
    elif op == 5:
        for j in range(n):
            out[j] = silu_vjp_scalar(x[j], g[j], exact)
    else:
        for j in range(n):
            out[j] = softplus_vjp_scalar(x[j], g[j], exact)


@njit(**_BJ)
def _lstm_block(i, f, o, u, cp, h, c, lo, hi, exact):
    wide_vectors()
    literally(exact)
    i, f, o, u, cp, h, c = (i[lo:hi], f[lo:hi], o[lo:hi], u[lo:hi], cp[lo:hi],
                            h[lo:hi], c[lo:hi])
    for j in range(hi - lo):
        h[j], c[j] = lstm_cell_scalar(i[j], f[j], o[j], u[j], cp[j], exact)


@njit(**_BJ)
def _lstm_vjp_block(i, f, o, u, cp, gh, gc, di, df, do, du, dcp, lo, hi,
                    exact):
    wide_vectors()
    literally(exact)
    i, f, o, u, cp, gh, gc = (i[lo:hi], f[lo:hi], o[lo:hi], u[lo:hi],
                              cp[lo:hi], gh[lo:hi], gc[lo:hi])
    di, df, do, du, dcp = (di[lo:hi], df[lo:hi], do[lo:hi], du[lo:hi],
                           dcp[lo:hi])
    for j in range(hi - lo):
        di[j], df[j], do[j], du[j], dcp[j] = lstm_cell_vjp_scalar(
            i[j], f[j], o[j], u[j], cp[j], gh[j], gc[j], exact)


@njit(**_BJ)
def _tree_block(i, fl, fr, o, u, cl, cr, h, c, lo, hi, exact):
    wide_vectors()
    literally(exact)
    i, fl, fr, o, u = i[lo:hi], fl[lo:hi], fr[lo:hi], o[lo:hi], u[lo:hi]
    cl, cr, h, c = cl[lo:hi], cr[lo:hi], h[lo:hi], c[lo:hi]
    for j in range(hi - lo):
        h[j], c[j] = tree_lstm_cell_scalar(i[j], fl[j], fr[j], o[j], u[j],
                                           cl[j], cr[j], exact)


@njit(**_BJ)
def _tree_vjp_block(i, fl, fr, o, u, cl, cr, gh, gc, di, dfl, dfr, do, du,
                    dcl, dcr, lo, hi, exact):
    wide_vectors()
    literally(exact)
    i, fl, fr, o, u = i[lo:hi], fl[lo:hi], fr[lo:hi], o[lo:hi], u[lo:hi]
    cl, cr, gh, gc = cl[lo:hi], cr[lo:hi], gh[lo:hi], gc[lo:hi]
    di, dfl, dfr, do = di[lo:hi], dfl[lo:hi], dfr[lo:hi], do[lo:hi]
    du, dcl, dcr = du[lo:hi], dcl[lo:hi], dcr[lo:hi]
    for j in range(hi - lo):
        (di[j], dfl[j], dfr[j], do[j], du[j], dcl[j],
         dcr[j]) = tree_lstm_cell_vjp_scalar(i[j], fl[j], fr[j], o[j], u[j],
                                             cl[j], cr[j], gh[j], gc[j], exact)


@njit(**_PJ)
def _fwd_par(x, out, op, exact):
    literally(op)
    literally(exact)
    n = x.shape[0]
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        _fwd_block(x, out, b * _BLOCK, min(n, (b + 1) * _BLOCK), op, exact)


@njit(**_PJ)
def _vjp_par(x, g, out, op, exact):
    literally(op)
    literally(exact)
    n = x.shape[0]
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        _vjp_block(x, g, out, b * _BLOCK, min(n, (b + 1) * _BLOCK), op, exact)


@njit(**_PJ)
def _lstm_par(i, f, o, u, cp, h, c, exact):
    literally(exact)
    n = i.shape[0]
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        _lstm_block(i, f, o, u, cp, h, c, b * _BLOCK,
                    min(n, (b + 1) * _BLOCK), exact)


@njit(**_PJ)
def _lstm_vjp_par(i, f, o, u, cp, gh, gc, di, df, do, du, dcp, exact):
    literally(exact)
    n = i.shape[0]
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        _lstm_vjp_block(i, f, o, u, cp, gh, gc, di, df, do, du, dcp,
                        b * _BLOCK, min(n, (b + 1) * _BLOCK), exact)


@njit(**_PJ)
def _tree_par(i, fl, fr, o, u, cl, cr, h, c, exact):
    literally(exact)
    n = i.shape[0]
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        _tree_block(i, fl, fr, o, u, cl, cr, h, c, b * _BLOCK,
                    min(n, (b + 1) * _BLOCK), exact)


@njit(**_PJ)
def _tree_vjp_par(i, fl, fr, o, u, cl, cr, gh, gc, di, dfl, dfr, do, du, dcl,
                  dcr, exact):
    literally(exact)
    n = i.shape[0]
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        _tree_vjp_block(i, fl, fr, o, u, cl, cr, gh, gc, di, dfl, dfr, do, du,
                        dcl, dcr, b * _BLOCK, min(n, (b + 1) * _BLOCK), exact)


# -------------------------------------------------------- python wrappers --
def _is_cupy(x):
    return type(x).__module__.startswith("cupy")


def _cupy_impl():
    from . import cupy_activations         # imported lazily: needs cupy
    return cupy_activations


def _prepare(names, *xs):
    """Check, broadcast, pick the float dtype, return flat contiguous arrays (``names``: the
    arguments' names, for the errors)."""
    arrs = [np.asarray(x) for x in xs]
    names = names.split()
    for name, a in zip(names, arrs):
        if a.dtype.kind not in "biuf":  # (complex would lose its imaginary part, None become NaN)
            raise TypeError(f"{name} must hold real numbers (bool, int or float), not {a.dtype}")
    try:
        np.broadcast_shapes(*(a.shape for a in arrs))
    except ValueError:
        raise ValueError("shapes do not broadcast together: "
                         + ", ".join(f"{name} {a.shape}" for name, a in zip(names, arrs))) from None
    # Python scalars are weak (NEP 50): a cell's ``c_prev=0.0`` keeps float32 float32.
    dt = np.result_type(*[x if type(x) in (bool, int, float) else a for x, a in zip(xs, arrs)])
    if dt not in (np.float32, np.float64):
        dt = np.dtype(np.float64)
    shape = np.broadcast_shapes(*(a.shape for a in arrs))
    flat = [np.ascontiguousarray(a if a.shape == shape else np.broadcast_to(a, shape),
                                 dtype=dt).reshape(-1) for a in arrs]
    # numba compiles per read-only flag combination: give it writeable arrays only
    return [f if f.flags.writeable else f.copy() for f in flat], shape, dt


def _finish(flat, shape):
    out = flat.reshape(shape)
    return out[()] if out.ndim == 0 else out


def _unbroadcast(grad, shape):
    """Sum ``grad`` over the axes along which an input of ``shape`` was
    broadcast (so each input gets a gradient of its own shape)."""
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + k for k, s in enumerate(shape) if s == 1 and grad.shape[lead + k] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _run(par, block, arrays, n, exact, *literals):
    if n == 0:
        return
    if n < _SERIAL_BELOW:
        _fixed(block, len(arrays) + 2, literals + (exact,))(*arrays, 0, n)
    else:
        _fixed(par, len(arrays), literals + (exact,))(*arrays)


_FIXED = {}


def _fixed(fn, nargs, consts):
    """``fn`` with its trailing ``literally`` arguments bound as constants.

    Dispatching a call whose arguments must become literals costs numba ~10 ms
    per call (it retypes the call); a jitted wrapper that passes constants
    dispatches like any plain call (~1 us) and compiles once per combination.
    """
    key = (fn, nargs, consts)
    w = _FIXED.get(key)
    if w is None:
        names = ", ".join(f"a{k}" for k in range(nargs))
        ns = {"fn": fn}
        exec(f"def wrapper({names}):\n    fn({names}, {', '.join(map(repr, consts))})\n", ns)
        w = _FIXED[key] = njit(error_model="numpy")(ns["wrapper"])
    return w


def _unary(x, op, exact_math):
    (a,), shape, dt = _prepare("x", x)
    out = np.empty_like(a)
    _run(_fwd_par, _fwd_block, (a, out), a.size, bool(exact_math), op)
    return _finish(out, shape)


def _unary_vjp(x, g, op, exact_math):
    xshape = np.shape(x)
    (a, ga), shape, dt = _prepare("x g", x, g)
    out = np.empty_like(a)
    _run(_vjp_par, _vjp_block, (a, ga, out), a.size, bool(exact_math), op)
    return _finish(_unbroadcast(out.reshape(shape), xshape).reshape(-1), xshape)


def _gelu_op(approximate):
    if approximate == "tanh":
        return "gelu_tanh"
    if approximate in ("erf", "none", None):
        return "gelu_erf"
    raise ValueError(f"approximate must be 'tanh' or 'erf', got {approximate!r}")


def _make_unary(name, doc):
    def fwd(x, exact_math=False):
        if _is_cupy(x):
            return getattr(_cupy_impl(), name)(x)
        return _unary(x, _OPS[name], exact_math)

    def vjp(x, g, exact_math=False):
        if _is_cupy(x):
            return getattr(_cupy_impl(), name + "_vjp")(x, g)
        return _unary_vjp(x, g, _OPS[name], exact_math)
    fwd.__name__ = fwd.__qualname__ = name
    vjp.__name__ = vjp.__qualname__ = name + "_vjp"
    fwd.__doc__ = f"{doc} (elementwise; dtype preserved)."
    vjp.__doc__ = f"Input gradient of :func:`{name}` given output gradient g."
    return fwd, vjp


sigmoid, sigmoid_vjp = _make_unary("sigmoid", "Logistic sigmoid 1/(1+exp(-x))")
tanh, tanh_vjp = _make_unary("tanh", "Hyperbolic tangent")
relu, relu_vjp = _make_unary("relu", "max(x, 0) (NaN propagates; grad 0 at 0)")
silu, silu_vjp = _make_unary("silu", "SiLU / swish x*sigmoid(x)")
softplus, softplus_vjp = _make_unary("softplus", "log(1 + exp(x)), overflow-free")


def gelu(x, approximate="tanh", exact_math=False):
    """GELU: ``0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x**3)))`` for
    ``approximate='tanh'`` (default), ``0.5*x*(1 + erf(x/sqrt(2)))`` for
    ``'erf'`` (``'none'``, torch's name, is accepted too)."""
    op = _gelu_op(approximate)
    if _is_cupy(x):
        return _cupy_impl().gelu(x, approximate=op[5:])
    return _unary(x, _OPS[op], exact_math)


def gelu_vjp(x, g, approximate="tanh", exact_math=False):
    """Input gradient of :func:`gelu` given output gradient ``g``."""
    op = _gelu_op(approximate)
    if _is_cupy(x):
        return _cupy_impl().gelu_vjp(x, g, approximate=op[5:])
    return _unary_vjp(x, g, _OPS[op], exact_math)


def lstm_cell(i, f, o, u, c_prev, exact_math=False):
    """LSTM pointwise step: returns ``(h, c)`` with
    ``c = sigmoid(i)*tanh(u) + sigmoid(f)*c_prev``, ``h = sigmoid(o)*tanh(c)``
    (gate pre-activations in, inputs broadcast)."""
    if _is_cupy(i):
        return _cupy_impl().lstm_cell(i, f, o, u, c_prev)
    ins, shape, dt = _prepare("i f o u c_prev", i, f, o, u, c_prev)
    h, c = np.empty_like(ins[0]), np.empty_like(ins[0])
    _run(_lstm_par, _lstm_block, (*ins, h, c), h.size, bool(exact_math))
    return _finish(h, shape), _finish(c, shape)


def lstm_cell_vjp(i, f, o, u, c_prev, gh, gc, exact_math=False):
    """Gradients ``(di, df, do, du, dc_prev)`` of :func:`lstm_cell` given the
    gradients ``gh``, ``gc`` of its outputs ``h`` and ``c``."""
    if _is_cupy(i):
        return _cupy_impl().lstm_cell_vjp(i, f, o, u, c_prev, gh, gc)
    shapes = [np.shape(v) for v in (i, f, o, u, c_prev)]
    ins, shape, dt = _prepare("i f o u c_prev gh gc", i, f, o, u, c_prev, gh, gc)
    outs = [np.empty_like(ins[0]) for _ in range(5)]
    _run(_lstm_vjp_par, _lstm_vjp_block, (*ins, *outs), outs[0].size,
         bool(exact_math))
    return tuple(_finish(_unbroadcast(d.reshape(shape), s).reshape(-1), s)
                 for d, s in zip(outs, shapes))


def tree_lstm_cell(i, fl, fr, o, u, cl, cr, exact_math=False):
    """Binary Tree-LSTM pointwise step: ``(h, c)`` with
    ``c = sigmoid(i)*tanh(u) + sigmoid(fl)*cl + sigmoid(fr)*cr``,
    ``h = sigmoid(o)*tanh(c)``."""
    if _is_cupy(i):
        return _cupy_impl().tree_lstm_cell(i, fl, fr, o, u, cl, cr)
    ins, shape, dt = _prepare("i fl fr o u cl cr", i, fl, fr, o, u, cl, cr)
    h, c = np.empty_like(ins[0]), np.empty_like(ins[0])
    _run(_tree_par, _tree_block, (*ins, h, c), h.size, bool(exact_math))
    return _finish(h, shape), _finish(c, shape)


def tree_lstm_cell_vjp(i, fl, fr, o, u, cl, cr, gh, gc, exact_math=False):
    """Gradients ``(di, dfl, dfr, do, du, dcl, dcr)`` of
    :func:`tree_lstm_cell` given ``gh``, ``gc``."""
    if _is_cupy(i):
        return _cupy_impl().tree_lstm_cell_vjp(i, fl, fr, o, u, cl, cr, gh, gc)
    shapes = [np.shape(v) for v in (i, fl, fr, o, u, cl, cr)]
    ins, shape, dt = _prepare("i fl fr o u cl cr gh gc", i, fl, fr, o, u, cl, cr, gh, gc)
    outs = [np.empty_like(ins[0]) for _ in range(7)]
    _run(_tree_vjp_par, _tree_vjp_block, (*ins, *outs), outs[0].size,
         bool(exact_math))
    return tuple(_finish(_unbroadcast(d.reshape(shape), s).reshape(-1), s)
                 for d, s in zip(outs, shapes))


# Scalar versions for per-sample numba code (see the module docstring).
SCALAR_FUNCTIONS = {
    "sigmoid": sigmoid_scalar, "tanh": tanh_scalar, "relu": relu_scalar,
    "gelu": gelu_scalar, "silu": silu_scalar, "softplus": softplus_scalar,
    "sigmoid_vjp": sigmoid_vjp_scalar, "tanh_vjp": tanh_vjp_scalar,
    "relu_vjp": relu_vjp_scalar, "gelu_vjp": gelu_vjp_scalar,
    "silu_vjp": silu_vjp_scalar, "softplus_vjp": softplus_vjp_scalar,
    "lstm_cell": lstm_cell_scalar, "lstm_cell_vjp": lstm_cell_vjp_scalar,
    "tree_lstm_cell": tree_lstm_cell_scalar,
    "tree_lstm_cell_vjp": tree_lstm_cell_vjp_scalar,
}

# Calls to these functions in per-sample code become vmapper primitives (with VJPs).
from . import activation_primitives  # noqa: E402,F401  (registration side effect)
