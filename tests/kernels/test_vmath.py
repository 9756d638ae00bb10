"""Accuracy and behaviour of vmapper.kernels.vmath (vectorizable math).

Sweeps of >= 10**6 points per function and dtype (random bit patterns,
uniform and log-uniform ranges, special values) must stay within 4 ulp of
numpy (scipy.special for erf; an extended-precision formula for sigmoid),
and special values must be exact.
"""
import math
import platform
import re

import numpy as np
import pytest
from numba import njit

from vmapper.kernels import vmath as vm
from vmapper.kernels.vmath_common import fma
from vmapper.kernels.vector_width import HAS_FMA

DTYPES = [np.float32, np.float64]
MAX_ULP = 4


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", vm.FUNCTIONS)
def test_accuracy_sweep(name, dtype):
    x = vm.sweep_inputs(name, dtype, n=10 ** 6)
    assert x.size >= 10 ** 6
    with np.errstate(all="ignore"):
        ours = vm.ARRAY_FUNCS[name](x)
        ref = vm.reference(name, x)
    assert ours.dtype == dtype
    err = vm.ulp_error(ours, ref, dtype)
    worst = int(np.argmax(err))
    assert err.max() <= MAX_ULP, (name, x[worst], ours[worst], ref[worst])


INF, NAN = np.inf, np.nan
# (function, argument, exact expected result); -0.0 checks the sign too.
SPECIAL = [
    ("exp", -INF, 0.0), ("exp", INF, INF), ("exp", 0.0, 1.0), ("exp", -0.0, 1.0),
    ("exp", NAN, NAN), ("exp", -1e4, 0.0), ("exp", 1e4, INF),
    ("log", 0.0, -INF), ("log", -0.0, -INF), ("log", -1.0, NAN),
    ("log", -INF, NAN), ("log", INF, INF), ("log", 1.0, 0.0), ("log", NAN, NAN),
    ("log1p", -1.0, -INF), ("log1p", -2.0, NAN), ("log1p", INF, INF),
    ("log1p", 0.0, 0.0), ("log1p", -0.0, -0.0), ("log1p", NAN, NAN),
    ("expm1", -INF, -1.0), ("expm1", INF, INF), ("expm1", 0.0, 0.0),
    ("expm1", -0.0, -0.0), ("expm1", NAN, NAN), ("expm1", -1e4, -1.0),
    ("tanh", INF, 1.0), ("tanh", -INF, -1.0), ("tanh", 0.0, 0.0),
    ("tanh", -0.0, -0.0), ("tanh", NAN, NAN), ("tanh", 30.0, 1.0),
    ("sigmoid", INF, 1.0), ("sigmoid", -INF, 0.0), ("sigmoid", 0.0, 0.5),
    ("sigmoid", NAN, NAN), ("sigmoid", -1e4, 0.0),
    ("erf", INF, 1.0), ("erf", -INF, -1.0), ("erf", 0.0, 0.0),
    ("erf", -0.0, -0.0), ("erf", NAN, NAN), ("erf", 10.0, 1.0),
    ("sin", INF, NAN), ("sin", -INF, NAN), ("sin", NAN, NAN), ("sin", 0.0, 0.0),
    ("sin", -0.0, -0.0), ("cos", INF, NAN), ("cos", NAN, NAN), ("cos", 0.0, 1.0),
    ("cos", -0.0, 1.0),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,arg,expected", SPECIAL)
def test_special_values(name, arg, expected, dtype):
    x = np.array([arg], dtype=dtype)
    with np.errstate(all="ignore"):
        got = vm.ARRAY_FUNCS[name](x)[0]
        scalar = vm.SCALAR_IMPLS[(name, dtype)](dtype(arg))
    assert got.dtype == dtype
    for v in (got, dtype(scalar)):      # numba boxes float32 as a Python float
        if np.isnan(expected):
            assert np.isnan(v)
        else:
            assert v == expected and np.signbit(v) == np.signbit(expected), (v, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_subnormal_results_and_arguments(dtype):
    fi = np.finfo(dtype)
    tiny = np.array([fi.smallest_subnormal, -fi.smallest_subnormal,
                     fi.tiny / 4], dtype)
    # odd functions with f(x) ~ x return subnormal arguments unchanged
    for name in ("tanh", "expm1", "log1p", "sin", "erf"):
        got = vm.ARRAY_FUNCS[name](tiny)
        ref = vm.reference(name, tiny)
        assert np.all(vm.ulp_error(got, ref, dtype) <= 1), name
    # exp into the subnormal range, log of subnormals
    x = np.linspace(math.log(fi.smallest_subnormal), math.log(fi.tiny), 1001).astype(dtype)
    assert vm.ulp_error(vm.vexp(x), np.exp(x), dtype).max() <= MAX_ULP
    sub = (np.arange(1, 1000) * fi.smallest_subnormal).astype(dtype)
    assert vm.ulp_error(vm.vlog(sub), np.log(sub), dtype).max() <= MAX_ULP


def test_sin_cos_huge_arguments_match_mpmath():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 600
    # includes the hardest double for pi/2 reduction (Kahan/McDonald)
    x = np.array([math.ldexp(6381956970095103, 797), 1e22, 1e300, 1.7e308,
                  1e6, 3e6, 2.0 ** 60, -1e200], np.float64)
    for f, mf in ((vm.vsin, mpmath.sin), (vm.vcos, mpmath.cos)):
        truth = np.array([float(mf(mpmath.mpf(float(v)))) for v in x])
        assert vm.ulp_error(f(x), truth, np.float64).max() <= 1
    x32 = np.array([3.4e38, 1e30, 2.0 ** 100, 1.5e6, 7e7], np.float32)
    for f, mf in ((vm.vsin, mpmath.sin), (vm.vcos, mpmath.cos)):
        truth = np.array([float(mf(mpmath.mpf(float(v)))) for v in x32], np.float32)
        assert vm.ulp_error(f(x32), truth, np.float32).max() <= 1


def test_pi_constant_and_reduction_tables():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 450
    assert int(vm._PI4_HEX, 16) == int(mpmath.floor(mpmath.pi / 4 * mpmath.mpf(2) ** 1280))
    half_pi = mpmath.pi / 2
    for col, e in ((0, vm._TEMIN), (300, vm._TEMIN + 300), (1050, vm._TEMAX)):
        exact = mpmath.mpf(2) ** e
        q = mpmath.floor(exact / half_pi)
        rem = exact - q * half_pi
        got = sum(mpmath.mpf(float(vm._PIO2_TAB[j, col])) for j in range(4))
        assert abs(got - rem) < mpmath.mpf(2) ** -140   # need ~2**-125
        assert int(vm._TQ[col]) == int(q) % 4


def test_ulp_error_semantics():
    f = np.float32
    a = np.array([1.0, 0.0, np.nan, np.inf, 1.0, np.nan], f)
    b = np.array([np.nextafter(f(1), f(2)), -0.0, np.nan, np.inf, np.nan, 0.0], f)
    assert list(vm.ulp_error(a, b, f)) == [1, 0, 0, 0, np.inf, np.inf]
    tiny = np.finfo(f).smallest_subnormal
    assert vm.ulp_error(np.array([tiny], f), np.array([-tiny], f), f)[0] == 2


def test_accuracy_table_small():
    tab = vm.accuracy_table(n=3000, funcs=("exp", "sin"))
    assert set(tab) == {("exp", "float32"), ("exp", "float64"),
                        ("sin", "float32"), ("sin", "float64")}
    assert max(tab.values()) <= MAX_ULP


def test_scalar_impls_and_generic_in_njit_code():
    assert set(vm.SCALAR_IMPLS) == set(vm.EXACT_IMPLS)
    assert len(vm.SCALAR_IMPLS) == 2 * len(vm.FUNCTIONS)
    exp32 = vm.SCALAR_IMPLS[("exp", np.float32)]
    exp_generic = vm.exp

    @njit
    def both(x32, x64):
        return exp32(x32), exp_generic(x32), exp_generic(x64), exp_generic(1)

    a, b, c, d = both(np.float32(1.5), 1.5)
    assert a == b and isinstance(a, float)
    assert np.float32(a) == np.exp(np.float32(1.5))
    assert vm.ulp_error(np.array([c, d]), np.exp([1.5, 1.0]), np.float64).max() <= 1
    from_python = vm.exp(np.float32(2.0))
    assert from_python.dtype == np.float32
    assert vm.ulp_error(from_python, np.exp(np.float32(2.0)), np.float32) <= 1
    assert vm.EXACT_IMPLS[("tanh", np.float64)] is math.tanh


def test_array_wrappers_shapes_and_dtypes():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]   # non-contiguous
    y = vm.vtanh(x)
    assert y.shape == (3, 2) and y.dtype == np.float32
    np.testing.assert_array_equal(y, vm.vtanh(np.ascontiguousarray(x)))
    assert vm.vexp(np.arange(3)).dtype == np.float64                # ints -> f64
    assert vm.vsin(np.empty((0, 3))).shape == (0, 3)
    s = vm.vcos(np.float64(0.0))
    assert np.ndim(s) == 0 and s == 1.0


def test_array_wrappers_refuse_complex_and_non_numeric_input():
    # complex input lost its imaginary part (with only numpy's ComplexWarning)
    with pytest.raises(TypeError, match=r"vexp: input of dtype complex128"):
        vm.vexp(np.array([1 + 2j, 0.5j]))
    with pytest.raises(TypeError, match=r"vsin: input of dtype <U1"):
        vm.vsin(np.array(["a"]))
    assert vm.vexp(np.array([True])).dtype == np.float64


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="checks x86 SIMD instructions")
@pytest.mark.parametrize("name", ["exp", "tanh", "erf", "sin"])
def test_loops_vectorize(name):
    fn = vm.SCALAR_IMPLS[(name, np.float32)]

    @njit(error_model="numpy")
    def loop(x, out):
        for k in range(x.shape[0]):
            out[k] = fn(x[k])

    x = np.ones(64, np.float32)
    loop(x, np.empty_like(x))
    asm = loop.inspect_asm(loop.signatures[0])
    packed = re.findall(r"\bv(?:mul|add)p[sd]\s+[^\n]*[yz]mm", asm)  # sin: f64 math
    assert len(packed) >= 4, "loop was not vectorized"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_exact_impls_in_njit_code(dtype):
    fns = tuple(vm.EXACT_IMPLS[(n, dtype)] for n in vm.FUNCTIONS)
    exp_, log_, log1p_, expm1_, tanh_, sig_, erf_, sin_, cos_ = fns

    @njit
    def all_of(x):
        return (exp_(x), log_(x), log1p_(x), expm1_(x), tanh_(x), sig_(x),
                erf_(x), sin_(x), cos_(x))

    for v in (0.75, np.inf, -np.inf, np.nan):
        got = np.array(all_of(dtype(abs(v) if v != -np.inf else v)), dtype)
        fast = np.array([vm.SCALAR_IMPLS[(n, dtype)](dtype(abs(v) if v != -np.inf else v))
                         for n in vm.FUNCTIONS], dtype)
        with np.errstate(invalid="ignore"):
            assert np.all(vm.ulp_error(got, fast, dtype) <= 4), (v, got, fast)


@njit(error_model="numpy")
def _fma_of(a, b, c):
    return fma(a, b, c)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_fma_rounds_once_where_the_cpu_fuses(dtype):
    # (1 + e)(1 - e) - 1 = -e**2 exactly; rounding the product first gives 0
    e = dtype(2.0 ** (-13 if dtype == np.float32 else -30))
    got = _fma_of(dtype(1) + e, dtype(1) - e, dtype(-1))
    assert type(got) in (dtype, float)
    assert got == (-(e * e) if HAS_FMA else 0.0)


def test_fma_without_hardware_support_multiplies_then_adds(monkeypatch):
    from vmapper.kernels import vmath_common
    monkeypatch.setattr(vmath_common, "HAS_FMA", False)   # read when the code is generated

    @njit(error_model="numpy")
    def unfused(a, b, c):
        return fma(a, b, c)
    e = 2.0 ** -30
    assert unfused(1 + e, 1 - e, -1.0) == 0.0
    assert "llvm.fma" not in next(iter(unfused.inspect_llvm().values()))


@njit(error_model="numpy")
def _fractions(x, out):
    for j in range(x.shape[0]):
        p, d, q = vm.sig_frac(x[j])
        t, e, r = vm.tanh_frac(x[j])
        out[0, j], out[1, j], out[2, j], out[3, j] = p / d, q / (d * d), t / e, r / (e * e)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_sigmoid_and_tanh_fractions(dtype):
    # the fused activation kernels' sigmoid/tanh as p/d (no division inside):
    # values and derivative factors against long double, specials exact
    x = np.concatenate([vm.sweep_inputs("tanh", dtype, n=3 * 10 ** 5),
                        vm.sweep_inputs("sigmoid", dtype, n=3 * 10 ** 5)])
    out = np.empty((4, x.size), dtype)
    _fractions(x, out)
    with np.errstate(all="ignore"):
        xl = x.astype(np.longdouble)
        e = np.exp(-np.abs(xl))
        refs = [np.where(xl >= 0, 1 / (1 + e), e / (1 + e)), e / (1 + e) ** 2,
                np.tanh(xl), 1 / np.cosh(xl) ** 2]
    for k, (got, ref, bound) in enumerate(zip(out, refs, (2, 4, 4, 4))):
        err = vm.ulp_error(got, ref.astype(dtype), dtype)
        assert err.max() <= bound, (k, x[np.argmax(err)], err.max())
    s = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324 if dtype == np.float64 else 1e-45], dtype)
    sp = np.empty((4, s.size), dtype)
    _fractions(s, sp)
    np.testing.assert_array_equal(sp[0], [0.5, 0.5, 1.0, 0.0, np.nan, 0.5])
    np.testing.assert_array_equal(sp[1][:4], [0.25, 0.25, 0.0, 0.0])
    np.testing.assert_array_equal(sp[2], [0.0, -0.0, 1.0, -1.0, np.nan, s[5]])
    assert np.signbit(sp[2][1]) and not np.signbit(sp[2][0])
    np.testing.assert_array_equal(sp[3][:4], [1.0, 1.0, 0.0, 0.0])
    assert np.all(np.isnan(sp[:, 4]))
