"""Tables and the C++ prelude for the CUDA kernel generator: C type names of the
numpy dtypes, typed literals, the math-function name maps, and the
``__device__`` helpers that implement numpy's scalar semantics exactly
(floor division and remainder, shifts by any count, float -> int casts,
integer power by squaring, sign/heaviside/clip with NaNs, logaddexp).

Everything here is plain CUDA C++14 that also compiles as host C++ (through
the shim of :mod:`vmapper.testing.cuda_host`): the helpers use only operators,
C math functions (``fmod``/``fmodf``...) and the four bit-cast intrinsics
``__longlong_as_double``, ``__double_as_longlong``, ``__int_as_float``,
``__float_as_int``.  Signed integer arithmetic that can overflow is done in
``unsigned long long`` (wrapping, as numpy does) so that the C++ source has no
undefined behaviour for the compiler to exploit.
"""
from __future__ import annotations

import math

import numpy as np

from .typing import BOOL, KernelUnsupported

# C type of each supported dtype (typedefs of the prelude)
CTYPE = {np.dtype(np.bool_): "bool", np.dtype(np.int8): "i8", np.dtype(np.int16): "i16",
         np.dtype(np.int32): "i32", np.dtype(np.int64): "i64", np.dtype(np.uint8): "u8",
         np.dtype(np.uint16): "u16", np.dtype(np.uint32): "u32", np.dtype(np.uint64): "u64",
         np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
I64_MIN = -2 ** 63

# numpy function name -> C math function of the float64 version (float32: + "f")
C_MATH = {"exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1", "tanh": "tanh",
          "sin": "sin", "cos": "cos", "erf": "erf", "exp2": "exp2", "log2": "log2",
          "log10": "log10", "sinh": "sinh", "cosh": "cosh", "tan": "tan", "arcsin": "asin",
          "arccos": "acos", "arctan": "atan", "arcsinh": "asinh", "arccosh": "acosh",
          "arctanh": "atanh", "cbrt": "cbrt", "sqrt": "sqrt", "floor": "floor", "ceil": "ceil",
          "trunc": "trunc", "rint": "rint", "arctan2": "atan2", "hypot": "hypot",
          "copysign": "copysign", "nextafter": "nextafter", "fmod": "fmod", "fabs": "fabs"}
# numpy functions implemented by prelude helpers (overloaded for f32 and f64)
C_HELPER_FUNCS = {"signbit": "vm_signbit", "isnan": "vm_isnan", "isinf": "vm_isinf",
                  "isfinite": "vm_isfinite", "logaddexp": "vm_logaddexp",
                  "logaddexp2": "vm_logaddexp2", "pow": "vm_pow"}
# math.<name> -> numpy name (the same table as the numba generator's _MATH_NP)
MATH_TO_NP = {"sqrt": "sqrt", "log2": "log2", "log10": "log10", "tan": "tan", "asin": "arcsin",
              "acos": "arccos", "atan": "arctan", "atan2": "arctan2", "sinh": "sinh",
              "cosh": "cosh", "asinh": "arcsinh", "acosh": "arccosh", "atanh": "arctanh",
              "fabs": "fabs", "hypot": "hypot", "copysign": "copysign", "fmod": "fmod",
              "exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1", "sin": "sin",
              "cos": "cos", "tanh": "tanh", "erf": "erf", "pow": "pow"}
# functions of the numba generator's _NP_SAME that apply to floats only
NP_FLOAT_FUNCS = frozenset(C_MATH) | frozenset(C_HELPER_FUNCS)


def ctype(dtype) -> str:
    dtype = np.dtype(dtype)
    try:
        return CTYPE[dtype]
    except KeyError:
        raise KernelUnsupported(f"dtype {dtype.name} in a CUDA kernel") from None


def c_math(name, dtype) -> str:
    """The C function computing numpy's ``name`` in ``dtype`` (float32: the ``f`` variant)."""
    if name in C_HELPER_FUNCS:
        return C_HELPER_FUNCS[name]
    base = C_MATH[name]
    return base + "f" if np.dtype(dtype) == np.float32 else base


def literal(value, dtype) -> str:
    """A C++ expression of type ``ctype(dtype)`` whose value is exactly ``value`` (already
    converted to ``dtype``).  Finite floats are written with Python's shortest round-trip
    repr (compilers parse decimal literals correctly rounded); inf and NaN by their bits,
    so that a NaN keeps its sign and payload."""
    dtype = np.dtype(dtype)
    if dtype == BOOL:
        return "true" if bool(value) else "false"
    ct = ctype(dtype)
    if dtype.kind == "f":
        v = dtype.type(value)
        if not math.isfinite(float(v)):
            if dtype == np.float32:
                return f"vm_bits_f32(0x{int(np.array(v).view(np.uint32)):08x}U)"
            return f"vm_bits_f64(0x{int(np.array(v).view(np.uint64)):016x}ULL)"
        text = repr(float(v))
        return f"((f32){text})" if dtype == np.float32 else f"({text})"
    v = int(value)
    if dtype.kind == "u":
        return f"{v}ULL" if ct == "u64" else f"(({ct}){v}U)"
    if v == I64_MIN:
        return "(-9223372036854775807LL - 1LL)"
    text = f"{v}LL" if v >= 0 else f"({v}LL)"
    return text if ct == "i64" else f"(({ct}){text})"


# The prelude: typedefs and helpers, shared by every kernel of a translation unit
# (include-guarded, so that many kernels can be compiled together).
PRELUDE = r"""
#ifndef VMAPPER_CUDA_PRELUDE
#define VMAPPER_CUDA_PRELUDE
typedef signed char i8;
typedef short i16;
typedef int i32;
typedef long long i64;
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef float f32;
typedef double f64;
#define VM_FI static __device__ __forceinline__

VM_FI f64 vm_bits_f64(u64 b) { return __longlong_as_double((long long)b); }
// A float choice as one selp instruction that NVVM cannot read back as min/max: it compiled
// `x < 0.0 ? x : 0.0` to min.f64, which gives -0.0 for x = -0.0 where the ternary (and
// Python's min(0.0, x)) give 0.0 (seen on an H100 with CUDA 13).
#ifdef __CUDACC__
VM_FI f64 vm_pick_f64(bool c, f64 a, f64 b) {
    f64 r;
    asm("{ .reg .pred p; setp.ne.u16 p, %3, 0; selp.f64 %0, %1, %2, p; }"
        : "=d"(r) : "d"(a), "d"(b), "h"((unsigned short)c));
    return r;
}
VM_FI f32 vm_pick_f32(bool c, f32 a, f32 b) {
    f32 r;
    asm("{ .reg .pred p; setp.ne.u16 p, %3, 0; selp.f32 %0, %1, %2, p; }"
        : "=f"(r) : "f"(a), "f"(b), "h"((unsigned short)c));
    return r;
}
#else
VM_FI f64 vm_pick_f64(bool c, f64 a, f64 b) { return c ? a : b; }
VM_FI f32 vm_pick_f32(bool c, f32 a, f32 b) { return c ? a : b; }
#endif
VM_FI f64 vm_pick(bool c, f64 a, f64 b) { return vm_pick_f64(c, a, b); }
VM_FI f32 vm_pick(bool c, f32 a, f32 b) { return vm_pick_f32(c, a, b); }
VM_FI f32 vm_bits_f32(u32 b) { return __int_as_float((int)b); }
VM_FI bool vm_isnan(f64 x) { return x != x; }
VM_FI bool vm_isnan(f32 x) { return x != x; }
VM_FI bool vm_isinf(f64 x) { return fabs(x) == vm_bits_f64(0x7ff0000000000000ULL); }
VM_FI bool vm_isinf(f32 x) { return fabsf(x) == vm_bits_f32(0x7f800000U); }
// x - x is 0 for finite x and NaN for inf and NaN
VM_FI bool vm_isfinite(f64 x) { return x - x == 0.0; }
VM_FI bool vm_isfinite(f32 x) { return x - x == 0.0f; }
VM_FI bool vm_signbit(f64 x) { return __double_as_longlong(x) < 0; }
VM_FI bool vm_signbit(f32 x) { return __float_as_int(x) < 0; }
VM_FI f64 vm_fmod(f64 a, f64 b) { return fmod(a, b); }
VM_FI f32 vm_fmod(f32 a, f32 b) { return fmodf(a, b); }
// glibc's pow is correctly rounded and libdevice's (2 ulp) is not: the exponents whose exact
// power is one correctly rounded operation take it (x**2 squares, as numpy does); pow keeps the
// special cases of 0.5 (pow(-0, .5) is +0, pow(-inf, .5) is +inf, where sqrt gives -0 and NaN)
VM_FI f64 vm_pow(f64 a, f64 b) {
    if (b == 2.0) return a * a;
    if (b == -1.0) return 1.0 / a;
    if (b == 0.5 && a > 0.0) return sqrt(a);
    return pow(a, b);
}
VM_FI f32 vm_pow(f32 a, f32 b) {
    if (b == 2.0f) return a * a;
    if (b == -1.0f) return 1.0f / a;
    if (b == 0.5f && a > 0.0f) return sqrtf(a);
    return powf(a, b);
}
VM_FI f64 vm_floor(f64 a) { return floor(a); }
VM_FI f32 vm_floor(f32 a) { return floorf(a); }
VM_FI f64 vm_copysign(f64 a, f64 b) { return copysign(a, b); }
VM_FI f32 vm_copysign(f32 a, f32 b) { return copysignf(a, b); }
VM_FI f64 vm_log1p(f64 a) { return log1p(a); }
VM_FI f32 vm_log1p(f32 a) { return log1pf(a); }
VM_FI f64 vm_exp(f64 a) { return exp(a); }
VM_FI f32 vm_exp(f32 a) { return expf(a); }
VM_FI f64 vm_exp2(f64 a) { return exp2(a); }
VM_FI f32 vm_exp2(f32 a) { return exp2f(a); }

// numpy negative / absolute of signed ints: wrap at the minimum (computed unsigned: no overflow)
template <typename T> VM_FI T vm_neg_i(T a) { return (T)(0ULL - (u64)a); }
template <typename T> VM_FI T vm_abs_i(T a) { return a < 0 ? (T)(0ULL - (u64)a) : a; }
// numpy floor_divide / remainder for int64: b == 0 -> 0, MIN // -1 -> MIN (wraps), like Python
// otherwise (C's / and % truncate; the fix-ups floor)
VM_FI i64 vm_floordiv_i64(i64 a, i64 b) {
    if (b == 0) return 0;
    if (b == -1) return (i64)(0ULL - (u64)a);
    i64 q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0))) q -= 1;
    return q;
}
VM_FI i64 vm_mod_i64(i64 a, i64 b) {
    if (b == 0 || b == -1) return 0;
    i64 r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}
VM_FI u64 vm_floordiv_u64(u64 a, u64 b) { return b == 0 ? 0ULL : a / b; }
VM_FI u64 vm_mod_u64(u64 a, u64 b) { return b == 0 ? 0ULL : a % b; }
// integer power by squaring, wrapping mod 2**64 (b >= 0 was checked where numpy raises)
VM_FI i64 vm_pow_i64(i64 a, i64 b) {
    u64 r = 1, x = (u64)a;
    i64 e = b;
    while (e > 0) { if (e & 1) r *= x; x *= x; e >>= 1; }
    return (i64)r;
}
VM_FI u64 vm_pow_u64(u64 a, u64 b) {
    u64 r = 1, x = a, e = b;
    while (e > 0) { if (e & 1ULL) r *= x; x *= x; e >>= 1; }
    return r;
}
// numpy shifts: a count outside [0, bits) gives 0 (left) or the sign (right)
VM_FI i64 vm_lshift_i64(i64 a, i64 b, i64 bits) { return (b >= 0 && b < bits) ? (i64)((u64)a << b) : 0; }
VM_FI i64 vm_rshift_i64(i64 a, i64 b, i64 bits) {
    return (b >= 0 && b < bits) ? (a >> b) : (a < 0 ? (i64)-1 : (i64)0);
}
VM_FI u64 vm_lshift_u64(u64 a, u64 b) { return b < 64 ? a << b : 0ULL; }
VM_FI u64 vm_rshift_u64(u64 a, u64 b) { return b < 64 ? a >> b : 0ULL; }
// exact three-way comparison of an int64 with a uint64
VM_FI int vm_cmp_iu(i64 a, u64 b) {
    if (a < 0) return -1;
    u64 ua = (u64)a;
    return ua < b ? -1 : (ua > b ? 1 : 0);
}
// float -> int as numpy casts on x86 (a C cast out of range is undefined): NaN or out of
// range -> INT64_MIN / INT32_MIN
VM_FI i64 vm_f2i64(f64 x) {
    if (x >= -9.223372036854775808e18 && x < 9.223372036854775808e18) return (i64)x;
    return (i64)(-9223372036854775807LL - 1LL);
}
VM_FI i64 vm_f2i32(f64 x) {
    if (x > -2147483649.0 && x < 2147483648.0) return (i64)x;
    return (i64)(-2147483647LL - 1LL);
}
VM_FI u64 vm_f2u64(f64 x) {
    if (x >= 9.223372036854775808e18) {
        if (x < 1.8446744073709551616e19) return (u64)x;
        return 0ULL;
    }
    if (x >= -9.223372036854775808e18) return (u64)(i64)x;
    return 9223372036854775808ULL;
}
// numpy's npy_divmod: Python's floor division and modulo for floats
template <typename T> VM_FI T vm_floordiv_f(T a, T b) {
    if (b == (T)0) return a / b;
    T mod = vm_fmod(a, b);
    T div = (a - mod) / b;
    if (mod != (T)0) {
        if ((b < (T)0) != (mod < (T)0)) { mod = mod + b; div = div - (T)1; }
    } else {
        mod = vm_copysign((T)0, b);
    }
    T fd;
    if (div != (T)0) {
        fd = vm_floor(div);
        if (div - fd > (T)0.5) fd = fd + (T)1;
    } else {
        fd = vm_copysign((T)0, a / b);
    }
    return fd;
}
template <typename T> VM_FI T vm_mod_f(T a, T b) {
    if (b == (T)0) return vm_fmod(a, b);
    T mod = vm_fmod(a, b);
    if (mod != (T)0) {
        if ((b < (T)0) != (mod < (T)0)) mod = mod + b;
    } else {
        mod = vm_copysign((T)0, b);
    }
    return mod;
}
template <typename T> VM_FI T vm_sign_f(T x) {
    if (x > (T)0) return (T)1;
    if (x < (T)0) return (T)-1;
    if (x == (T)0) return (T)0;
    return x;
}
template <typename T> VM_FI T vm_heaviside_f(T x, T h0) {
    if (x != x) return (T)vm_bits_f64(0x7ff8000000000000ULL);  /* numpy's NPY_NAN */
    if (x == (T)0) return h0;
    if (x < (T)0) return (T)0;
    return (T)1;
}
// numpy's _NPY_MIN(_NPY_MAX(x, lo), hi) with NaN propagation
template <typename T> VM_FI T vm_clip_f(T x, T lo, T hi) {  // numpy's scalar clip (ties keep x)
    T t = vm_pick(x != x || !(lo > x || lo != lo), x, lo);
    return vm_pick(t != t || !(hi < t || hi != hi), t, hi);
}
// numpy's npy_logaddexp / npy_logaddexp2
template <typename T> VM_FI T vm_logaddexp(T x, T y) {
    if (x == y) return x + (T)0.693147180559945309417232121458176568;
    T d = x - y;
    if (d > (T)0) return x + vm_log1p(vm_exp(-d));
    if (d <= (T)0) return y + vm_log1p(vm_exp(d));
    return d;
}
template <typename T> VM_FI T vm_logaddexp2(T x, T y) {
    if (x == y) return x + (T)1;
    T d = x - y;
    if (d > (T)0) return x + (T)1.442695040888963407359924681001892137 * vm_log1p(vm_exp2(-d));
    if (d <= (T)0) return y + (T)1.442695040888963407359924681001892137 * vm_log1p(vm_exp2(d));
    return d;
}
#endif
"""
