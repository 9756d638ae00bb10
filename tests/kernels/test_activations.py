"""vmapper.kernels.activations: forward against numpy float64 references,
input gradients against central finite differences and analytic formulas,
exact_math mode, shapes/dtypes, the parallel path, and the CuPy backend."""
import math

import numpy as np
import pytest
from numba import njit

import vmapper
from vmapper.kernels import activations as A
from vmapper.kernels.packed_cells import tree_lstm_cell_packed_vjp
from vmapper.testing import check_batching, check_grads

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-6, atol=2e-7), np.float64: dict(rtol=1e-14, atol=1e-15)}
K, C = math.sqrt(2 / math.pi), 0.044715


def _erf(x):
    try:
        from scipy.special import erf
        return erf(x)
    except ImportError:                                   # pragma: no cover
        return np.vectorize(math.erf)(x)


def _sig(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


# name -> (call forward, call vjp, numpy f64 forward, numpy f64 derivative)
REF = {
    "sigmoid": (A.sigmoid, A.sigmoid_vjp, _sig, lambda x: _sig(x) * (1 - _sig(x))),
    "tanh": (A.tanh, A.tanh_vjp, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "relu": (A.relu, A.relu_vjp, lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    "silu": (A.silu, A.silu_vjp, lambda x: x * _sig(x),
             lambda x: _sig(x) * (1 + x * (1 - _sig(x)))),
    "softplus": (A.softplus, A.softplus_vjp,
                 lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))), _sig),
    "gelu_tanh": (lambda x, **k: A.gelu(x, **k), lambda x, g, **k: A.gelu_vjp(x, g, **k),
                  lambda x: 0.5 * x * (1 + np.tanh(K * (x + C * x ** 3))),
                  lambda x: 0.5 * (1 + np.tanh(K * (x + C * x ** 3)))
                  + 0.5 * x * (1 - np.tanh(K * (x + C * x ** 3)) ** 2) * K * (1 + 3 * C * x * x)),
    "gelu_erf": (lambda x, **k: A.gelu(x, "erf", **k),
                 lambda x, g, **k: A.gelu_vjp(x, g, "erf", **k),
                 lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
                 lambda x: 0.5 * (1 + _erf(x / math.sqrt(2)))
                 + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)),
}
NAMES = list(REF)
X = np.concatenate([np.linspace(-12, 12, 2401), [-40.0, 30.0, 1e-30, -1e-30]])
X = X[np.abs(X) > 1e-9]                    # keep FD away from relu's kink


def _tol(dt, scale=1.0):
    t = TOL[dt]
    return dict(rtol=t["rtol"] * scale, atol=t["atol"] * scale)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_numpy(name, dtype):
    fwd, _, ref, _ = REF[name]
    x = X.astype(dtype)
    y = fwd(x)
    assert y.dtype == dtype and y.shape == x.shape
    # the reference sees the same (rounded) inputs; gelu_erf's 1 + erf(x)
    # cancels for x << 0, so its absolute tolerance scales with |x|
    scale = 20.0 if name == "gelu_erf" else 1.0
    np.testing.assert_allclose(y, ref(x.astype(np.float64)), **_tol(dtype, scale))


@pytest.mark.parametrize("name", NAMES)
def test_vjp_matches_central_differences(name):
    fwd, vjp, _, _ = REF[name]
    x = X
    g = np.random.default_rng(1).normal(size=x.shape)
    h = 1e-6 * np.maximum(1.0, np.abs(x))
    fd = (fwd(x + h) - fwd(x - h)) / (2 * h) * g
    np.testing.assert_allclose(vjp(x, g), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_vjp_matches_analytic(name, dtype):
    _, vjp, _, dref = REF[name]
    x = X.astype(dtype)
    g = np.random.default_rng(2).normal(size=x.shape).astype(dtype)
    d = vjp(x, g)
    assert d.dtype == dtype
    np.testing.assert_allclose(d, dref(x.astype(np.float64)) * g, **_tol(dtype, 8.0))


@pytest.mark.parametrize("name", NAMES)
def test_exact_math_mode_f64(name):
    fwd, vjp, ref, _ = REF[name]
    g = np.ones_like(X)
    np.testing.assert_allclose(fwd(X, exact_math=True), ref(X), rtol=1e-13, atol=1e-14 * 20)
    np.testing.assert_allclose(vjp(X, g, exact_math=True), vjp(X, g), rtol=1e-13, atol=1e-15)


def test_exact_math_mode_f32():
    x = X.astype(np.float32)
    y = A.gelu(x, exact_math=True)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, A.gelu(x), rtol=1e-6, atol=1e-7)


def test_special_values():
    inf, nan = np.inf, np.nan
    x = np.array([inf, -inf, nan, 0.0])
    np.testing.assert_array_equal(A.gelu(x), [inf, -0.0, nan, 0.0])
    np.testing.assert_array_equal(A.gelu(x, "erf"), [inf, -0.0, nan, 0.0])
    np.testing.assert_array_equal(A.silu(x), [inf, -0.0, nan, 0.0])
    np.testing.assert_array_equal(A.softplus(x), [inf, 0.0, nan, math.log(2)])
    np.testing.assert_array_equal(A.sigmoid(x), [1.0, 0.0, nan, 0.5])
    np.testing.assert_array_equal(A.relu(x), [inf, 0.0, nan, 0.0])
    g = np.full(4, 2.0)
    np.testing.assert_array_equal(A.gelu_vjp(x, g), [2.0, 0.0, nan, 1.0])
    np.testing.assert_array_equal(A.silu_vjp(x, g), [2.0, 0.0, nan, 1.0])
    np.testing.assert_array_equal(A.gelu_vjp(x, g, "erf"), [2.0, 0.0, nan, 1.0])
    np.testing.assert_array_equal(A.relu_vjp(x, g), [2.0, 0.0, 0.0, 0.0])  # torch's and JAX's: 0 at NaN
    for big in (1e30, -1e30):       # x**3 overflows; the gradient must not
        assert np.isfinite(A.gelu_vjp(np.float32(big), np.float32(1.0)))


def test_shapes_dtypes_and_layouts():
    s = A.tanh(np.float32(0.5))
    assert np.ndim(s) == 0 and s.dtype == np.float32
    assert A.sigmoid(np.empty((0, 4))).shape == (0, 4)
    x = np.arange(24, dtype=np.float64).reshape(4, 6) / 7 - 1.5
    nc = x[:, ::2]                                     # non-contiguous view
    np.testing.assert_array_equal(A.gelu(nc), A.gelu(np.ascontiguousarray(nc)))
    np.testing.assert_array_equal(A.gelu(x.T), A.gelu(x).T)
    assert A.relu(np.arange(3)).dtype == np.float64    # ints compute in f64
    assert A.silu_vjp(x, 1.0).shape == x.shape         # scalar g broadcasts
    np.testing.assert_allclose(A.tanh_vjp(0.3, np.ones(5)), 5 * (1 - math.tanh(0.3) ** 2))
    with pytest.raises(ValueError):
        A.gelu(x, approximate="quadratic")


def test_parallel_path_equals_serial():
    n = A._SERIAL_BELOW + 3 * A._BLOCK + 5             # several blocks + a tail
    x = np.random.default_rng(3).normal(size=n).astype(np.float32)
    big = A.gelu_vjp(x, x)
    small = np.concatenate([A.gelu_vjp(x[k:k + 1000], x[k:k + 1000])
                            for k in range(0, n, 1000)])
    np.testing.assert_array_equal(big, small)
    h, c = A.lstm_cell(x, x, x, x, x)
    h2, c2 = A.lstm_cell(x[:100], x[:100], x[:100], x[:100], x[:100])
    np.testing.assert_array_equal(h[:100], h2)


def _lstm_ref(i, f, o, u, cp):
    c = _sig(i) * np.tanh(u) + _sig(f) * cp
    return _sig(o) * np.tanh(c), c


def _tree_ref(i, fl, fr, o, u, cl, cr):
    c = _sig(i) * np.tanh(u) + _sig(fl) * cl + _sig(fr) * cr
    return _sig(o) * np.tanh(c), c


CELLS = {"lstm": (A.lstm_cell, A.lstm_cell_vjp, _lstm_ref, 5),
         "tree": (A.tree_lstm_cell, A.tree_lstm_cell_vjp, _tree_ref, 7)}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_forward(cell, dtype):
    fwd, _, ref, nin = CELLS[cell]
    ins = [a.astype(dtype) for a in np.random.default_rng(4).normal(0, 2, (nin, 3, 50))]
    h, c = fwd(*ins)
    assert h.dtype == c.dtype == dtype and h.shape == (3, 50)
    rh, rc = ref(*[a.astype(np.float64) for a in ins])
    np.testing.assert_allclose(h, rh, **_tol(dtype, 4.0))
    np.testing.assert_allclose(c, rc, **_tol(dtype, 4.0))
    eh, ec = fwd(*ins, exact_math=True)
    np.testing.assert_allclose(eh, h, **_tol(dtype, 4.0))


@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_vjp_matches_central_differences(cell):
    fwd, vjp, ref, nin = CELLS[cell]
    rng = np.random.default_rng(5)
    ins = list(rng.normal(0, 2, (nin, 200)))
    gh, gc = rng.normal(size=(2, 200))
    grads = vjp(*ins, gh, gc)
    assert len(grads) == nin

    def loss(args):            # elementwise: d loss / d arg_k lane by lane
        h, c = fwd(*args)
        return gh * h + gc * c
    for k in range(nin):
        step = 1e-6 * np.maximum(1, np.abs(ins[k]))
        up = [a + step if j == k else a for j, a in enumerate(ins)]
        dn = [a - step if j == k else a for j, a in enumerate(ins)]
        fd = (loss(up) - loss(dn)) / (2 * step)
        np.testing.assert_allclose(grads[k], fd, rtol=1e-6, atol=1e-8)
    exact = vjp(*ins, gh, gc, exact_math=True)
    for a, b in zip(exact, grads):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_cell_broadcasting_and_unbroadcast_gradients():
    rng = np.random.default_rng(6)
    i, f, o, u = rng.normal(size=(4, 8, 16))
    c_prev = rng.normal(size=(16,))                   # broadcast over the batch
    gh, gc = rng.normal(size=(2, 8, 16))
    h, c = A.lstm_cell(i, f, o, u, c_prev)
    assert h.shape == (8, 16)
    di, df, do, du, dcp = A.lstm_cell_vjp(i, f, o, u, c_prev, gh, gc)
    assert dcp.shape == (16,) and di.shape == (8, 16)
    full = A.lstm_cell_vjp(i, f, o, u, np.broadcast_to(c_prev, (8, 16)), gh, gc)[4]
    np.testing.assert_allclose(dcp, full.sum(axis=0), rtol=1e-13)
    h0, c0 = A.tree_lstm_cell(*[np.float32(v) for v in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)])
    assert np.ndim(h0) == 0 and h0.dtype == np.float32


def test_scalar_versions_in_njit_code():
    sig, gelu, lstm = A.sigmoid_scalar, A.gelu_scalar, A.lstm_cell_scalar
    gvjp = A.gelu_vjp_scalar

    @njit
    def per_sample(x):
        h, c = lstm(x, x, x, x, x)
        return sig(x), gelu(x), gelu(x, False, True), gvjp(x, 1.0), h, c

    out = per_sample(0.7)
    np.testing.assert_allclose(out[0], A.sigmoid(0.7), rtol=1e-15)
    np.testing.assert_allclose(out[1], A.gelu(0.7), rtol=1e-15)
    np.testing.assert_allclose(out[2], A.gelu(0.7, "erf"), rtol=1e-14)
    np.testing.assert_allclose(out[3], A.gelu_vjp(0.7, 1.0), rtol=1e-15)
    np.testing.assert_allclose(out[4:], A.lstm_cell(*[0.7] * 5), rtol=1e-15)
    assert set(A.SCALAR_FUNCTIONS) >= {"sigmoid", "gelu", "lstm_cell_vjp"}


def _cupy_or_skip():
    cp = pytest.importorskip("cupy")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as exc:                               # pragma: no cover
        pytest.skip(f"no CUDA device: {exc}")
    return cp


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_cupy_matches_numpy(dtype):
    cp = _cupy_or_skip()
    x = X.astype(dtype)
    g = np.random.default_rng(7).normal(size=x.shape).astype(dtype)
    xd, gd = cp.asarray(x), cp.asarray(g)
    tol = _tol(dtype, 50.0)
    for name in NAMES:
        fwd, vjp, _, _ = REF[name]
        y = fwd(xd)
        assert isinstance(y, cp.ndarray) and y.dtype == dtype
        np.testing.assert_allclose(cp.asnumpy(y), fwd(x), **tol)
        np.testing.assert_allclose(cp.asnumpy(vjp(xd, gd)), vjp(x, g), **tol)
    for cell, (fwd, vjp, _, nin) in CELLS.items():
        ins = [a.astype(dtype) for a in np.random.default_rng(8).normal(size=(nin + 2, 64))]
        dev = [cp.asarray(a) for a in ins]
        for a, b in zip(fwd(*dev[:nin]), fwd(*ins[:nin])):
            np.testing.assert_allclose(cp.asnumpy(a), b, **tol)
        for a, b in zip(vjp(*dev), vjp(*ins)):
            np.testing.assert_allclose(cp.asnumpy(a), b, **tol)


@pytest.mark.gpu
def test_cupy_broadcast_strided_and_empty_inputs_match_numpy():
    # contiguous same-shape inputs take the unrolled RawKernel; these take the ElementwiseKernel
    cp = _cupy_or_skip()
    rng = np.random.default_rng(9)
    x = rng.normal(size=(6, 8))
    g_row = rng.normal(size=8)
    xd = cp.asarray(x)
    np.testing.assert_allclose(cp.asnumpy(A.gelu_vjp(xd, cp.asarray(g_row))), A.gelu_vjp(x, g_row), **_tol(np.float64))
    np.testing.assert_allclose(cp.asnumpy(A.tanh(xd[:, ::3])), A.tanh(x[:, ::3]), **_tol(np.float64))
    ins = [rng.normal(size=(3, 5)) for _ in range(5)]
    ins[4] = ins[4][:1]                                     # c_prev broadcast over rows
    for a, b in zip(A.lstm_cell(*map(cp.asarray, ins)), A.lstm_cell(*ins)):
        np.testing.assert_allclose(cp.asnumpy(a), b, **_tol(np.float64))
    empty = A.sigmoid(cp.zeros((0, 4), np.float32))
    assert empty.shape == (0, 4) and empty.dtype == np.float32


def test_gelu_tanh_tail_is_accurate_in_float32():
    # x*sigmoid(2u) keeps full relative accuracy where 1 + tanh(u) cancels
    x = np.linspace(-9, -2, 1401).astype(np.float32)
    xd = x.astype(np.float64)
    z = 2 * K * (xd + C * xd ** 3)
    sp, sn = 1 / (1 + np.exp(-z)), 1 / (1 + np.exp(z))
    np.testing.assert_allclose(A.gelu(x), xd * sp, rtol=1e-5)
    d = sp + xd * 2 * K * (1 + 3 * C * xd * xd) * sp * sn
    np.testing.assert_allclose(A.gelu_vjp(x, np.ones_like(x)), d, rtol=1e-4)


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_tanh_vjps_keep_full_precision_where_they_saturate(dtype, exact):
    # sigmoid(x) sigmoid(-x) and 1 - tanh(x)**2 from exp(-|x|): s*(1 - s) and 1 - t*t cancel
    x = (np.linspace(4, 30, 521) * np.resize([1, -1], 521)).astype(dtype)
    xl = x.astype(np.longdouble)
    e = np.exp(-np.abs(xl))
    dsig = e / (1 + e) ** 2
    e2 = np.exp(-2 * np.abs(xl))
    dtanh = 4 * e2 / (1 + e2) ** 2
    rtol = 8 * np.finfo(dtype).eps
    g = np.ones_like(x)
    np.testing.assert_allclose(A.sigmoid_vjp(x, g, exact_math=exact), dsig.astype(dtype), rtol=rtol, atol=0)
    np.testing.assert_allclose(A.tanh_vjp(x, g, exact_math=exact), dtanh.astype(dtype), rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_erf_tail_is_accurate(dtype):
    # 0.5 x erfc(-x/sqrt2) where 1 + erf(x/sqrt2) would cancel and flush to 0
    x = np.linspace(-12, -0.1, 1191).astype(dtype)
    # (erfc's argument rounded in the input's type, as the kernel rounds it: deep in the tail
    # erfc amplifies that rounding ~z**2 times, whichever way erfc itself is computed)
    z = (x * dtype(math.sqrt(0.5))).astype(float)
    want = np.array([0.5 * v * math.erfc(-w) for v, w in zip(x.astype(float), z)])
    dwant = np.array([0.5 * math.erfc(-w) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)
                      for v, w in zip(x.astype(float), z)])
    keep = np.abs(want) > np.finfo(dtype).tiny  # (float32 underflows below x ~ -13)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(A.gelu(x, approximate="erf")[keep], want[keep].astype(dtype), rtol=4 * eps, atol=0)
    # (the derivative's exp(-x**2/2) amplifies the rounding of x**2 ~x**2/2 times: <= 162 eps here)
    np.testing.assert_allclose(A.gelu_vjp(x, np.ones_like(x), approximate="erf")[keep], dwant[keep].astype(dtype),
                               rtol=256 * eps, atol=0)


def test_cupy_kernel_sources_compile_and_agree_on_cpu(tmp_path, monkeypatch):
    """Without a GPU: compile the CUDA kernel bodies of cupy_activations as
    plain C++ (same templates, <cmath> overloads) and compare with numpy."""
    import importlib.util
    import shutil
    import subprocess
    import sys
    import types
    cxx = shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setitem(sys.modules, "cupy", types.ModuleType("cupy"))
    path = A.__file__.replace("activations.py", "cupy_activations.py")
    spec = importlib.util.spec_from_file_location("_cupy_src", path)
    ca = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ca)
    kernels = []
    for op, (fwd_body, vjp_body) in ca._UNARY.items():
        kernels += [(op, ["x"], ["y"], fwd_body), (op + "_vjp", ["x", "g"], ["y"], vjp_body)]
    gates5, gates7 = ["gi", "gf", "go", "gu", "c_prev"], ["gi", "gfl", "gfr", "go", "gu", "cl", "cr"]
    kernels += [("lstm", gates5, ["h", "c"], ca._LSTM),
                ("lstm_vjp", gates5 + ["gh", "gc"], ["di", "df", "d_o", "du", "dc_prev"], ca._LSTM_VJP),
                ("tree", gates7, ["h", "c"], ca._TREE),
                ("tree_vjp", gates7 + ["gh", "gc"],
                 ["di", "dfl", "dfr", "d_o", "du", "dcl", "dcr"], ca._TREE_VJP)]
    vals = {"gi": 0.3, "gf": -0.4, "gfl": -0.4, "gfr": 0.9, "go": 1.1, "gu": -0.7,
            "c_prev": 0.5, "cl": 0.5, "cr": -1.5, "gh": 0.8, "gc": -0.6, "x": -1.3, "g": 0.7}
    src = ["#include <cmath>", "#include <cstdio>", "using namespace std;",
           ca._PREAMBLE.replace("__device__ __forceinline__", "inline")]
    main = ["int main() {"]
    for name, ins, outs, body in kernels:
        params = ", ".join([f"T {p}" for p in ins] + [f"T& {p}" for p in outs])
        src.append(f"template <typename T> void k_{name}({params}) {{ {body} }}")
        args = ", ".join(repr(vals[p]) for p in ins)
        decl = " ".join(f"double o{j};" for j in range(len(outs)))
        res = ", ".join(f"o{j}" for j in range(len(outs)))
        fmt = " ".join(["%.17g"] * len(outs))
        main.append(f'{{ {decl} k_{name}<double>({args}, {res}); '
                    f'printf("{name} {fmt}\\n", {res}); }}')
    for op in ("sigmoid", "tanh", "gelu_erf"):  # saturated: derivative factors without cancellation
        main.append(f'{{ double o0; k_{op}_vjp<double>(-15.0, 1.0, o0); printf("{op}_sat %.17g\\n", o0); }}')
    (tmp_path / "k.cpp").write_text("\n".join(src + main + ["return 0; }"]))
    subprocess.run([cxx, "-std=c++17", "-O1", "-o", str(tmp_path / "k"),
                    str(tmp_path / "k.cpp")], check=True)
    out = subprocess.run([str(tmp_path / "k")], check=True, capture_output=True, text=True)
    got = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in out.stdout.splitlines()}
    x, g = vals["x"], vals["g"]
    for name in NAMES:
        fwd, vjp, _, _ = REF[name]
        np.testing.assert_allclose(got[name], [fwd(x)], rtol=1e-13)
        np.testing.assert_allclose(got[name + "_vjp"], [vjp(x, g)], rtol=1e-13)
    saturated = {"sigmoid": A.sigmoid_vjp(-15.0, 1.0), "tanh": A.tanh_vjp(-15.0, 1.0),
                 "gelu_erf": A.gelu_vjp(-15.0, 1.0, approximate="erf")}
    for op, want in saturated.items():
        np.testing.assert_allclose(got[op + "_sat"], [want], rtol=1e-12)
    l5 = [vals[p] for p in gates5]
    t7 = [vals[p] for p in gates7]
    np.testing.assert_allclose(got["lstm"], A.lstm_cell(*l5), rtol=1e-13)
    np.testing.assert_allclose(got["lstm_vjp"], A.lstm_cell_vjp(*l5, vals["gh"], vals["gc"]), rtol=1e-13)
    np.testing.assert_allclose(got["tree"], A.tree_lstm_cell(*t7), rtol=1e-13)
    np.testing.assert_allclose(got["tree_vjp"], A.tree_lstm_cell_vjp(*t7, vals["gh"], vals["gc"]),
                               rtol=1e-13)


_SPECIAL = [-np.inf, -800.0, -30.0, -0.7, -1e-300, -0.0, 0.0, 5e-324, 0.3, 30.0, 800.0, np.inf, np.nan]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_special_values_match_exact_math(cell, dtype):
    # the vmath cells share one division between several gates
    # (activation_scalars._lstm_fast): every combination of special inputs
    # must give what the libm formulas give (NaN where they give NaN, same infs)
    import itertools
    fwd, vjp, _, nin = CELLS[cell]
    vals = _SPECIAL if nin == 5 else _SPECIAL[::2]
    grid = np.array(list(itertools.product(vals, repeat=nin)), dtype=dtype).T
    gh, gc = np.full(grid.shape[1], 0.7, dtype), np.full(grid.shape[1], -1.0, dtype)
    tol = dict(rtol=3e-5, atol=1e-30) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-300)
    with np.errstate(all="ignore"):
        pairs = list(zip(fwd(*grid), fwd(*grid, exact_math=True)))
        pairs += list(zip(vjp(*grid, gh, gc), vjp(*grid, gh, gc, exact_math=True)))
    for k, (a, b) in enumerate(pairs):
        assert a.dtype == dtype
        if k < 2:                                   # h, c: the same NaNs
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"output {k}")
        else:
            # gradients: no NaN that libm has not.  The reverse can happen: in
            # float32 libm's 1 - sigmoid(30) rounds to 0 and 0 * inf gives
            # NaN, where exp(-30)/(1 + exp(-30))**2 * inf is the true inf.
            assert not np.any(np.isnan(a) & ~np.isnan(b)), f"output {k}"
        keep = ~np.isnan(b)
        np.testing.assert_array_equal(np.isinf(a[keep]), np.isinf(b[keep]), err_msg=f"output {k}")
        ok = np.isfinite(b)
        # c = s(i)tanh(u) + s(f)c_prev cancels for some combinations: compare
        # against the size of the terms there.  Gradients: libm's 1 - sigmoid(30)
        # has lost 12 digits (float64), so only a loose check here (the tails
        # test below checks them against mpmath).
        scale = np.maximum(np.abs(b[ok]), 1.0 if dtype == np.float32 else 0.0)
        rtol, atol = (tol["rtol"], tol["atol"]) if k < 2 else (1e-2, 1e-12)
        assert np.all(np.abs(a[ok] - b[ok]) <= atol + rtol * scale), f"output {k}"


@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_gradients_keep_full_precision_in_the_tails(cell):
    # sigma(x)(1 - sigma(x)) and 1 - tanh(x)**2 come from exp(-|x|), not from
    # 1 - s: no cancellation where the gates saturate (8 <= |x| <= 30)
    _, vjp, _, nin = CELLS[cell]
    rng = np.random.default_rng(9)
    x = rng.uniform(8, 30, 400) * rng.choice([-1, 1], 400)
    ins = [x if k == 0 or k == 4 else rng.normal(0, 0.5, 400) for k in range(nin)]
    ins[4 if nin == 5 else 6] = rng.normal(0, 1, 400)         # c_prev / cr: ordinary
    if nin == 5:
        ins[3] = x[::-1].copy()                                # u saturates too
    else:
        ins[4] = x[::-1].copy()
    gh, gc = rng.normal(size=(2, 400))
    grads = vjp(*ins, gh, gc)
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    sig = lambda v: 1 / (1 + mp.exp(-v))                       # noqa: E731
    for lane in range(0, 400, 7):
        a = [mp.mpf(float(v[lane])) for v in ins]
        if nin == 5:
            i, f, o, u, cp = a
            c = sig(i) * mp.tanh(u) + sig(f) * cp
            dc = gc[lane] + gh[lane] * sig(o) / mp.cosh(c) ** 2
            exact = [dc * mp.tanh(u) * sig(i) * sig(-i), dc * sig(i) / mp.cosh(u) ** 2]
            got = [grads[0][lane], grads[3][lane]]
        else:
            i, fl, fr, o, u, cl, cr = a
            c = sig(i) * mp.tanh(u) + sig(fl) * cl + sig(fr) * cr
            dc = gc[lane] + gh[lane] * sig(o) / mp.cosh(c) ** 2
            exact = [dc * mp.tanh(u) * sig(i) * sig(-i), dc * sig(i) / mp.cosh(u) ** 2]
            got = [grads[0][lane], grads[4][lane]]
        for g, e in zip(got, exact):
            assert abs(g - float(e)) <= 1e-12 * abs(float(e)) + 1e-300, (lane, g, float(e))


def test_arrays_under_half_a_million_elements_stay_on_the_calling_thread(monkeypatch):
    # numba's OpenMP workers spin after a parallel kernel and stall the next multi-threaded
    # matrix product by milliseconds (benchmarks/blas_threads.py); a Tree-LSTM level's
    # 10^4-10^5 cells gain microseconds from threads, so they must not get them.
    from vmapper.kernels import packed_cells as PC
    used = []
    fixed = A._fixed
    monkeypatch.setattr(A, "_fixed", lambda fn, nargs, consts: used.append(fn) or fixed(fn, nargs, consts))
    x = np.random.default_rng(0).normal(size=(1 << 19) - 1).astype(np.float32)
    A.gelu(x)
    assert used == [A._fwd_block]
    assert PC._FAST_MAX == A._SERIAL_BELOW == 1 << 19


@pytest.mark.parametrize("call, message", [
    (lambda: A.sigmoid(None), "x must hold real numbers.*object"),
    (lambda: A.sigmoid([1.0, None]), "x must hold real numbers.*object"),
    (lambda: A.tanh(np.array([1 + 2j])), "x must hold real numbers.*complex128"),
    (lambda: A.gelu(np.array(["2020-01-01"], "datetime64[D]")), "x must hold real numbers.*datetime64"),
    (lambda: A.sigmoid_vjp(np.ones(2), None), "g must hold real numbers"),
    (lambda: A.lstm_cell(np.ones(2), 1.0, 1.0, 1.0, None), "c_prev must hold real numbers"),
    (lambda: A.tree_lstm_cell_vjp(*[np.ones(2)] * 7, None, np.ones(2)), "gh must hold real numbers"),
])
def test_inputs_that_are_not_real_numbers_are_refused_naming_the_argument(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_shapes_that_do_not_broadcast_are_named_with_their_arguments():
    with pytest.raises(ValueError, match=r"i \(3,\), f \(3,\), o \(\), u \(\), c_prev \(4,\)"):
        A.lstm_cell(np.ones(3), np.ones(3), 1.0, 1.0, np.ones(4))
    with pytest.raises(ValueError, match=r"x \(2,\), g \(3,\)"):
        A.relu_vjp(np.ones(2), np.ones(3))


def gelu_erf_by_position(x):
    return A.gelu(x, "erf").sum()


def options_by_keyword_and_position(x):
    h, c = A.lstm_cell(x, x, x, x, x, True)
    return A.gelu(x, approximate="erf", exact_math=True).sum() + A.sigmoid(x, True).sum() + (h + c).sum()


@pytest.mark.parametrize("fn", [gelu_erf_by_position, options_by_keyword_and_position])
def test_per_sample_code_passes_options_by_position_or_keyword(fn):
    x = np.random.default_rng(0).normal(size=(6, 4))
    check_batching(fn, (x,), exact=False, rtol=1e-12)
    check_grads(vmapper.batched(fn), (x,))


def sigmoid_vjp_per_sample(x, g):
    return A.sigmoid_vjp(x, g)


def packed_vjp_per_sample(g, cl):
    return tree_lstm_cell_packed_vjp(g, cl, cl, cl, cl)


@pytest.mark.parametrize("fn", [sigmoid_vjp_per_sample, packed_vjp_per_sample])
def test_a_vjp_function_in_per_sample_code_is_refused_at_the_users_line(fn):
    # vmapper tried to batch the library's source and failed on a line of activations.py
    x = np.ones((4, 5))
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=r"_vjp\(\) in per-sample code") as err:
        vmapper.batched(fn)(x, x)
    assert "test_activations.py" in str(err.value) and "activations.py:" not in str(err.value).replace(
        "test_activations.py", "")


def lstm_with_a_wider_state(i, c_prev):
    return A.lstm_cell(i, i, i, i, c_prev)


def test_batched_cells_name_the_per_sample_shapes_that_do_not_broadcast():
    f = vmapper.batched(lstm_with_a_wider_state)
    with pytest.raises(vmapper.LaneError, match=r"i \(4,\), f \(4,\), o \(4,\), u \(4,\), c_prev \(5,\)"):
        f(np.ones((3, 4)), np.ones((3, 5)))
