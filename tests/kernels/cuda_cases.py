"""Per-sample functions and inputs shared by the CUDA backend's tests.

``CASES`` lists (id, function, arguments, uniform argument positions,
max_iters, kind): ``bitwise`` cases must equal the numpy runtime bit for bit
(dtype included; NaN equals NaN whatever its payload), ``ulp`` cases (math
functions) within a few ulp, ``error`` cases must fail on the runtime's
smallest failing lane with its line, type and message.  Inputs include the
values where exactness is hard: int64 and uint64 extremes, shift counts out of
range, inf, NaN, signed zeros, subnormals, halves (rounding ties).
``test_cuda_codegen.py`` runs them on the host (g++), ``test_cupy_backend.py``
on a GPU.
"""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

import vmapper
from vmapper.testing.programs import collatz_steps as collatz, escape_time

RNG = np.random.default_rng(20250611)
I64 = np.iinfo(np.int64)


def floats(n, scale=10.0, dtype=np.float64, specials=False):
    x = RNG.normal(0, scale, n)
    x[::17] = 0.0
    x[5::23] = -0.0
    x[3::11] = np.round(x[3::11])
    if specials:  # infinities, NaN, huge, subnormal, and halves (rounding ties)
        x[1::13] = np.resize([np.inf, -np.inf, np.nan, 1e300, -5e-324, 2.5, -2.5], len(x[1::13]))
    return x.astype(dtype)


def ints(n, lo=-50, hi=50, dtype=np.int64):
    return RNG.integers(lo, hi, n).astype(dtype)


def full_range(n, dtype):
    info = np.iinfo(dtype)
    x = RNG.integers(info.min, info.max, n, endpoint=True, dtype=dtype)
    x[:6] = [info.min, info.max, 0, 1, info.max // 2, info.min + 1 if info.min else 2]
    if info.min:
        x[6] = -1
    return x


# ---- per-sample functions ----------------------------------------------------------------------

def mandelbrot(cr, ci):
    zr = 0.0
    zi = 0.0
    i = 0
    while i < 256 and zr * zr + zi * zi <= 4.0:
        t = zr * zr - zi * zi + cr
        zi = 2.0 * zr * zi + ci
        zr = t
        i += 1
    return i


def nested_loops(a, b):
    total = 0
    for i in range(a % 7):
        if i == 3:
            continue
        j = 0
        while True:
            j += 1
            if j > b % 5:
                break
            if i * j > 12:
                return -total
            total += i * j
    return total


def elif_chain(x):
    if x < -1.0:
        y = -2
    elif x < 0.0:
        y = -1
    elif x == 0.0:
        y = 0
    elif x < 1.5:
        y = 1
    else:
        y = 2
    return y * 10 + (1 if x > 0.25 else 0)


def int_float_mix(a, b, x):
    q = a // 3 + a % 5 - (-a) // 4 + (-a) % 6 + a // (abs(b) + 1) + a % (abs(b) % 7 + 1)
    r = x // 0.7 + x % 0.7 + (-x) % 2.5 + x // -1.5
    s = a / 4 + x * a - 2 ** (abs(a) % 5) + x ** 2 + (a % 9) ** 3
    t = ((a << 3) + (a >> 2) ^ (a & 5)) | 8
    return q + r + s + t + abs(a) + abs(x) + min(a, x, 3) + max(x, 0.5, b)


def float32_work(x, y):
    z = x * 2.0 + y * 0.1 - 1
    if z > 0.1:
        z = z / 3.0
    w = np.float32(1.5) * z + np.sqrt(abs(z))
    if w < 10:
        return w
    return z // 2.5 + z % 0.75


def bool_result(x, y):
    return (x > 0 and y < 1) or x == y


def casts(a, x):
    i = int(x * 3.0) + round(x) + int(a > 2)
    f = float(a) + float(i) * 0.5 + float(x > 1.0)
    k = 1 if bool(x) else 0
    return i + f + k + np.float32(x) * 2 + np.int32(a) * 3


def narrow_ints(a, b):
    return (a + b) ^ (a * b) ^ (a - b) ^ (a // (b | 1)) ^ (a % (b | 1)) ^ (-a) ^ (a << 2) ^ (b >> 1) ^ ~a


def int_wrap(a, b):
    d = b | 1  # odd: never zero; -1 included (MIN // -1 wraps)
    s = (a * b) ^ (a + b) ^ (a - b) ^ (-a) ^ abs(a) ^ (a // d) ^ (a % d)
    return s ^ (a << (b % 130 - 65)) ^ (a >> (b % 130 - 65)) ^ (a ** 3)


def unsigned_ops(a, b):
    d = b | 1
    return (a * b) ^ (a + b) ^ (a - b) ^ (a // d) ^ (a % d) ^ (a << (b % 70)) ^ (a >> (b % 70)) ^ (a ** 3)


def mixed_sign_compare(u, i):
    return (u < i) + 2 * (u == i) + 4 * (i >= u) + 8 * (u != i)


def float_division(x, y):
    return x // y, x % y, x / y, x * y - x


def float_to_int(x):
    return np.int64(x), np.int32(x), np.int16(x), np.int8(x)


def float_to_unsigned(x):
    return np.uint8(x), np.uint32(x), np.uint64(x), np.uint16(x)


def numpy_exact(x, y):
    return (np.maximum(x, y), np.minimum(x, y), np.fmax(x, y), np.fmin(x, y), np.clip(x, -1.0, y),
            np.sign(x), np.heaviside(x, 0.5), np.copysign(x, y), np.where(x > y, x, y),
            np.square(x) - np.reciprocal(y) + np.abs(x) - np.negative(y),
            np.floor(x) + np.ceil(y) + np.trunc(x) + np.rint(y), np.signbit(x), np.isnan(y) | np.isinf(x))


def signed_zero_choices(x):
    # a choice between x and a constant zero is the choice, never the min/max instruction
    return (min(0.0, x), x if x < 0.0 else 0.0, max(-0.0, x), np.minimum(x, 0.0), np.where(x < 0.0, x, 0.0),
            np.clip(x, 0.0, 1.0))


def half_powers(x, p):
    return x ** 0.5, x ** p, np.power(x, 0.5), np.power(x, p)


def numpy_ints(a, b):
    return np.maximum(a, b) * 3 + np.minimum(a, b) + np.clip(a, -3, b) * 7 + np.sign(b) + np.abs(a)


def bool_ops(p, q):
    return (p & q) ^ (p | q), p + q, p * q, ~p, np.logical_xor(p, q), p < q, p == q


def promoted_variable(x):
    if x > 0:
        y = 1
    else:
        y = 2.5
    return y


def membership(a, x):
    r = 0
    if a in (1, 2, 3):
        r += 1
    if a not in (5, 7):
        r += 10
    if x in (0.0, 1.5):
        r += 100
    return r


def tuple_result(a, x):
    if a > 0:
        return a, x
    return a * 2, x + 1.0


def constant_tuple(a):
    if a > 0:
        return (1, 2.5)
    return a, 0.5


def comparisons_and_logic(a, x):
    return (a < x) + (a <= 3) * 2 + (x >= 0.5) * 4 + (x != a) * 8 + (not (a == 2)) * 16 + (3 < a < 9) * 32


def with_uniform(x, scale, offset):
    y = x * scale + offset
    if y > scale:
        y = y - offset * 2
    return y


def flag_arg(x, flag):
    if flag:
        return x + 1
    return x - 1


def fma_candidate(a, b, c):
    return a * b + c - a * c


def math_functions(x):
    y = math.sqrt(abs(x)) + math.exp(x / 10) + math.log(abs(x) + 1) + math.sin(x) + math.cos(x)
    y += math.atan2(x, 2.0) + math.floor(x) + math.ceil(x / 3) + math.hypot(x, 1.0) + math.tanh(x)
    y += math.fabs(x) + math.copysign(1.0, x) + math.fmod(x, 1.5) + math.degrees(x) + math.radians(x)
    y += math.log1p(abs(x)) + math.expm1(x / 20) + math.erf(x / 4) + math.log(abs(x) + 2, 3.0)
    y += np.exp(x / 20) + np.log(abs(x) + 1) + np.tanh(x) + np.sqrt(abs(x)) + np.cbrt(x)
    y += np.arctan(x) + np.hypot(x, 2.0) + np.logaddexp(x, 1.0) + np.logaddexp2(x, -1.0) + np.exp2(x / 9)
    return y + (1.0 if math.isnan(x) else 0.0) + (2.0 if np.isfinite(x) else 0.0)


def float32_math(x):
    return np.exp(x / 8) + np.sin(x) + np.log(abs(x) + 1) + np.sqrt(abs(x)) + np.tanh(x) + np.arctan2(x, 3)


def numpy_unary(x):
    """Every one-argument numpy function the generator supports on floats (x in (-1, 1))."""
    a = abs(x) + 1
    return (np.exp(x), np.exp2(x), np.log(a), np.log2(a), np.log10(a), np.log1p(a), np.expm1(x), np.tanh(x),
            np.sinh(x), np.cosh(x), np.sqrt(a), np.cbrt(x), np.sin(x), np.cos(x), np.tan(x), np.arcsin(x),
            np.arccos(x), np.arctan(x), np.arcsinh(x), np.arccosh(a), np.arctanh(x), np.deg2rad(x),
            np.rad2deg(x), np.fabs(x), np.absolute(x))


def numpy_binary(x, y):
    """Every two-argument numpy function the generator supports on floats."""
    return (np.arctan2(x, y), np.hypot(x, y), np.power(abs(x), y), np.float_power(abs(x), y),
            np.logaddexp(x, y), np.logaddexp2(x, y), np.nextafter(x, y), np.add(x, y), np.subtract(x, y),
            np.multiply(x, y), np.divide(x, y), np.true_divide(x, y), np.logical_and(x, y),
            np.logical_or(x, y), np.logical_xor(x, y), np.logical_not(x))


def math_module(x):
    """Every math function the generator supports (x in (-1, 1))."""
    a = abs(x) + 1.5
    return (math.tan(x), math.asin(x), math.acos(x), math.atan(x), math.sinh(x), math.cosh(x),
            math.asinh(x), math.acosh(a), math.atanh(x), math.log2(a), math.log10(a), math.pow(a, x),
            math.trunc(x * 7), math.isinf(x), math.isfinite(x))


# errors

def divide(a, b):
    return a // b + 1


def float_divide(x, y):
    return float(x) / float(y)


def sqrt_of(x):
    return math.sqrt(x * 2.0)


def to_int(x):
    return int(x)


def to_round(x):
    return round(x)


def asserts(x):
    assert x < 5.0, "x too big"
    return x * 2


def raises(a):
    if a > 3:
        raise ValueError("a is more than three")
    return a


def maybe_unbound(x):
    if x > 0:
        y = x
    return y


def range_with_step(a, s):
    t = 0
    for i in range(0, a, s):
        t += i
    return t


def int_power(a, b):
    return a ** b


def python_float_power(x, y):
    return float(x) ** float(y)


def exp_of(x):
    return math.exp(x)


def range_of_float(x):
    t = 0
    for i in range(x):
        t += i
    return t


def never_ends_for_odd(x):
    while x != 0:  # the loop
        x -= 2
    return x


def nested_spin(a):
    t = 0
    for i in range(3):
        j = 0
        while j < a + i:  # the inner loop
            j += 1
            t += 1
    return t


# ---- the cases ----------------------------------------------------------------------------------

Case = namedtuple("Case", "id fn args uniform max_iters kind")


def case(id, fn, *args, uniform=(), max_iters=None, kind="bitwise"):
    return Case(id, fn, args, tuple(uniform), max_iters, kind)


def _error_lanes(n, lanes, value, base):
    base = base.copy()
    base[list(lanes)] = value
    return base


def _make_cases():
    n = 300
    x, y = floats(n, specials=True), floats(n, specials=True)
    y[::7] = x[::7]
    xs, ys = np.meshgrid(np.linspace(-2, 1, 40), np.linspace(-1.5, 1.5, 30))
    p, q = RNG.random(n) < 0.5, RNG.random(n) < 0.5
    unit = np.concatenate([RNG.uniform(-0.99, 0.99, n), [0.0, -0.0, 0.5, -0.5]])
    cs = [
        case("collatz", collatz, np.arange(1, 2001, dtype=np.int64)),
        case("escape-time-uniform", escape_time, xs.ravel(), ys.ravel(), 64, uniform=(2,)),
        case("mandelbrot", mandelbrot, xs.ravel(), ys.ravel()),
        case("nested-loops", nested_loops, ints(n, 0, 30), ints(n, -20, 20)),
        case("elif-chain", elif_chain, floats(n, 2.0)),
        case("int-float-mix", int_float_mix, ints(n), ints(n), floats(n)),
        case("float32", float32_work, floats(n, dtype=np.float32), floats(n, dtype=np.float32)),
        case("bool-result", bool_result, floats(n, 1.0), floats(n, 1.0)),
        case("casts", casts, ints(n), floats(n)),
        case("int64-wrap", int_wrap, full_range(n, np.int64), full_range(n, np.int64)),
        case("uint64", unsigned_ops, full_range(n, np.uint64), full_range(n, np.uint64)),
        case("mixed-sign-compare", mixed_sign_compare, full_range(n, np.uint64), full_range(n, np.int64)),
        case("float64-division", float_division, x, y),
        case("float32-division", float_division, x.astype(np.float32), y.astype(np.float32)),
        case("float-to-int", float_to_int, np.concatenate([floats(n, 1e10, specials=True), [3e9, -3e9, 1e20]])),
        case("float32-to-int", float_to_int, floats(n, 1e10, np.float32, specials=True)),
        case("float-to-unsigned", float_to_unsigned, np.abs(floats(n, 60.0))),
        case("numpy-exact", numpy_exact, x, y),
        case("numpy-exact-f32", numpy_exact, x.astype(np.float32), y.astype(np.float32)),
        case("numpy-ints", numpy_ints, ints(n), ints(n)),
        case("half-powers", half_powers, np.array([-np.inf, -0.0, 0.0, 4.0, 2.0, np.inf, 2.0, 3.0, 7.0] * 4),
             np.array([0.5, 0.5, 0.5, 0.5, 1.5, 0.5, 0.5, -1.0, -1.0] * 4)),
        case("signed-zero-choices", signed_zero_choices, np.array([-0.0, 0.0, -1.5, 2.0, np.nan, -np.inf] * 4)),
        case("signed-zero-choices-f32", signed_zero_choices,
             np.array([-0.0, 0.0, -1.5, 2.0, np.nan, -np.inf] * 4, dtype=np.float32)),
        case("bool-ops", bool_ops, p, q),
        case("promoted-variable", promoted_variable, floats(100)),
        case("membership", membership, ints(n, 0, 9), np.where(RNG.random(n) < 0.3, 1.5, floats(n, 1.0))),
        case("tuple-result", tuple_result, ints(n), floats(n)),
        case("constant-tuple", constant_tuple, ints(100)),
        case("comparisons", comparisons_and_logic, ints(n, 0, 12), np.round(floats(n, 3.0))),
        case("uniform-args", with_uniform, floats(n), 2.5, 1, uniform=(1, 2)),
        case("uniform-f32", with_uniform, floats(n, dtype=np.float32), np.float32(0.25), 3, uniform=(1, 2)),
        case("uniform-bool", flag_arg, floats(50), True, uniform=(1,)),
        case("fma-f64", fma_candidate, *(RNG.normal(0, 1e3, 2000) for _ in range(3))),
        case("fma-f32", fma_candidate, *(RNG.normal(0, 1e3, 2000).astype(np.float32) for _ in range(3))),
        case("max-iters-ok", never_ends_for_odd, np.array([0, 4, 10, 2, 60, 100]), max_iters=50),
        case("nested-spin-ok", nested_spin, np.array([5, 7, 2, 6, 0]), max_iters=9),
        case("math", math_functions, floats(800), kind="ulp"),
        case("math-f32", float32_math, floats(2000, dtype=np.float32), kind="ulp"),
        case("numpy-unary", numpy_unary, unit, kind="ulp"),
        case("numpy-unary-f32", numpy_unary, unit.astype(np.float32), kind="ulp"),
        case("numpy-binary", numpy_binary, x, y, kind="ulp"),
        case("numpy-binary-f32", numpy_binary, x.astype(np.float32), y.astype(np.float32), kind="ulp"),
        case("math-module", math_module, unit, kind="ulp"),
    ]
    for w in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32):
        cs.append(case(f"narrow-{np.dtype(w).name}", narrow_ints, full_range(n, w), full_range(n, w)))
    b0 = ints(50, 1, 9)
    x30 = floats(30, 1.0)
    cs += [
        case("err-divide", divide, ints(50, 1, 9), _error_lanes(50, [17, 33], 0, b0), kind="error"),
        case("err-float-divide", float_divide, floats(40), _error_lanes(40, [9, 30], 0.0, floats(40) + 100),
             kind="error"),
        case("err-sqrt", sqrt_of, _error_lanes(60, [11, 40], -1.0, np.abs(floats(60)) + 1), kind="error"),
        case("err-int-nan", to_int, _error_lanes(30, [13], np.nan, floats(30)), kind="error"),
        case("err-int-inf", to_int, _error_lanes(30, [20], -np.inf, floats(30)), kind="error"),
        case("err-round-nan", to_round, _error_lanes(30, [8], np.nan, floats(30)), kind="error"),
        case("err-int-uint64", to_int, _error_lanes(30, [6, 21], 2 ** 63, np.arange(30, dtype=np.uint64)),
             kind="error"),
        case("err-round-uint64", to_round, _error_lanes(30, [9], 2 ** 64 - 1, np.arange(30, dtype=np.uint64)),
             kind="error"),
        case("err-assert", asserts, _error_lanes(30, [4, 9], 7.0, x30), kind="error"),
        case("err-raise", raises, ints(30, 0, 6), kind="error"),
        case("err-unbound", maybe_unbound, _error_lanes(30, [6, 8], -1.0, np.abs(floats(30, 1.0)) + 1),
             kind="error"),
        case("err-range-step", range_with_step, ints(30, 0, 20), _error_lanes(30, [12], 0, ints(30, 1, 4)),
             kind="error"),
        case("err-int-power", int_power, ints(30, 1, 5), _error_lanes(30, [3, 7], -1, ints(30, 0, 5)),
             kind="error"),
        # positive bases elsewhere: one failing lane each (the runtime reports the first failing
        # operation's lanes, the kernel the first failing lane)
        case("err-pow-zero", python_float_power, _error_lanes(40, [7], 0.0, np.abs(floats(40, 2.0)) + 5),
             _error_lanes(40, [7], -1.0, floats(40, 1.0)), kind="error"),
        case("err-pow-domain", python_float_power, _error_lanes(40, [5], -2.0, np.abs(floats(40, 2.0)) + 9),
             _error_lanes(40, [5], 0.5, floats(40, 1.0)), kind="error"),
        case("err-pow-overflow", python_float_power, _error_lanes(40, [7], 10.0, np.abs(floats(40, 1.0)) + 5),
             _error_lanes(40, [7], 400.0, floats(40, 1.0)), kind="error"),
        case("err-math-range", exp_of, _error_lanes(30, [21], 1000.0, floats(30)), kind="error"),
        case("err-range-float", range_of_float, floats(10) + 100, kind="error"),
        case("err-max-iters", never_ends_for_odd, np.array([0, 100, 2, 3, 8]), max_iters=49, kind="error"),
        case("err-max-iters-nested", nested_spin, np.array([5, 7, 2, 6, 0]), max_iters=8, kind="error"),
    ]
    return cs


with np.errstate(over="ignore"):  # float32 copies of huge float64 inputs are inf: wanted
    CASES = _make_cases()
BY_ID = {c.id: c for c in CASES}


def arg_types(c):
    return [("uniform", a) if j in c.uniform else ("lanes", np.asarray(a).dtype, False)
            for j, a in enumerate(c.args)]


def lanes_of(c):
    return next(len(a) for j, a in enumerate(c.args) if j not in c.uniform)


def run_runtime(c):
    in_axes = tuple(None if j in c.uniform else 0 for j in range(len(c.args)))
    return vmapper.batched(c.fn, in_axes=in_axes, max_iters=c.max_iters, backend="numpy")(*c.args)


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(f"u{a.itemsize}") if a.dtype.kind == "f" else a


def assert_bitwise(got, want):
    """Same dtypes and bits (the sign of zero counts; NaN equals NaN whatever its payload)."""
    gots = got if isinstance(got, tuple) else (got,)
    wants = want if isinstance(want, tuple) else (want,)
    assert len(gots) == len(wants)
    for g, w in zip(gots, wants):
        w = np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        same = _bits(g) == _bits(w)
        if g.dtype.kind == "f":
            same |= np.isnan(g) & np.isnan(w)
        bad = np.flatnonzero(~same)
        assert bad.size == 0, f"lanes {bad[:8]}: CUDA kernel {g[bad[:8]]} vs runtime {w[bad[:8]]}"


def ulps(a, b):
    a, b = np.asarray(a), np.asarray(b)
    it = np.int32 if a.dtype == np.float32 else np.int64
    ia, ib = a.view(it).astype(np.int64), b.view(it).astype(np.int64)
    ia = np.where(ia < 0, -(ia & np.iinfo(it).max), ia)
    ib = np.where(ib < 0, -(ib & np.iinfo(it).max), ib)
    d = np.abs(ia - ib).astype(np.float64)
    d[np.isnan(a) & np.isnan(b)] = 0
    return d


def assert_within_ulps(got, want, max_ulps):
    """Same dtypes; floats within ``max_ulps`` (a result that is a sum of many terms: relative to
    the terms' magnitude), integers and bools equal."""
    gots = got if isinstance(got, tuple) else (got,)
    wants = want if isinstance(want, tuple) else (want,)
    assert len(gots) == len(wants)
    for j, (g, w) in enumerate(zip(gots, wants)):
        w = np.asarray(w)
        assert g.dtype == w.dtype, (j, g.dtype, w.dtype)
        if g.dtype.kind != "f":
            assert np.array_equal(g, w), j
        elif g.dtype == np.float32:
            assert np.max(ulps(g, w)) <= max_ulps or np.allclose(g, w, rtol=1e-5, atol=1e-6, equal_nan=True), j
        else:
            assert np.max(ulps(g, w)) <= max_ulps or np.allclose(g, w, rtol=1e-13, atol=1e-12, equal_nan=True), j


def result_key(v):
    if isinstance(v, tuple):
        return tuple(result_key(x) for x in v)
    return ("float", float(v).hex()) if isinstance(v, float) else ("int", int(v))


def sums_an_array(v):
    return v[0] + v[1]
