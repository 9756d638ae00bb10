"""Expressions in per-sample code: every batched result must equal the per-sample loop.

Each test batches a per-sample function with :func:`vmapper.testing.check_batching`,
which compares with running the function once per sample (bitwise unless a
tolerance is given) and checks that the dtype is the one the per-sample results have.
"""
import math

import numpy as np
import pytest

import vmapper
from vmapper.testing import check_batching
from lane_inputs import N, rng, ints, nonzero_ints, floats  # noqa: F401


# ---- arithmetic ----------------------------------------------------------------------------

def int_arith(a, b):
    return a + b, a - b, a * b, a // b, a % b, a / b


def test_int_arithmetic_including_floor_division_and_modulo_of_negatives():
    a, b = ints(1, -100, 100), nonzero_ints(2)
    check_batching(int_arith, (a, b))


def negated_literals(a, x):
    return a * -2 + (-1), x * -0.5 - (-0.0), -(-3), +4, -2j


def test_negated_literals_are_constants_with_the_per_sample_values():
    # (folded as Python's compiler folds them: no operation, and -0.0 keeps its sign)
    from vmapper.frontend import build_function
    ops = [i.op for blk in build_function(negated_literals).blocks.values() for i in blk.instrs]
    assert ops.count("neg") == 1 and "pos" not in ops  # (-(-3): the outer one remains)
    a = ints(1, -100, 100)
    check_batching(negated_literals, (a, floats(2)))
    check_batching(negated_literals, ((a // 4).astype(np.int8), floats(3).astype(np.float32)))


def uniform_power_of_two_divisors(a):
    return a // 4, a % 8, a // 1, a % 1, a // -4, a % -8, a // 3, a % 3


def test_floor_division_and_modulo_by_uniform_constants_follow_python_floor_semantics():
    check_batching(uniform_power_of_two_divisors, (ints(3, -1000, 1000),))


def floor_div_by_128(x):
    return x // 128


def mod_by_2_to_the_40(x):
    return x % 2**40


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("fn, dtype, big", [(floor_div_by_128, np.int8, 128), (mod_by_2_to_the_40, np.int32, 2**40),
                                            (mod_by_2_to_the_40, np.uint32, 2**40)])
def test_a_power_of_two_divisor_out_of_a_narrow_ints_range_raises_as_numpy_does(fn, dtype, big, backend):
    x = np.array([5, 7, 1], dtype=dtype)
    with pytest.raises(vmapper.LaneError, match=rf"OverflowError: Python integer {big} out of bounds"):
        vmapper.batched(fn, backend=backend)(x)


def python_int_arith(a, b):
    x, y = int(a), int(b)
    return x // y, x % y, x * y - x, -x // y


def test_python_int_arithmetic_gives_int64():
    res = check_batching(python_int_arith, (ints(4), nonzero_ints(5)))
    assert all(r.dtype == np.int64 for r in res)


def float_arith(x, y):
    return x + y, x - y, x * y, x / y, x // y, x % y


def test_float_arithmetic_bitwise_including_floor_division_and_modulo():
    x = floats(6, -10, 10)
    y = np.where(np.abs(floats(7)) < 0.1, 0.5, floats(7))
    x[:4] = [-4.0, 4.0, -0.0, 7.5]
    y[:4] = [2.0, -2.0, 3.0, -2.0]
    check_batching(float_arith, (x, y))


def int_power(a, e):
    return a ** e, 2 ** e, a ** 2, a ** 0


def test_int_power_with_non_negative_exponents():
    res = check_batching(int_power, (ints(8, -10, 10), ints(9, 0, 8)))
    assert res[0].dtype == np.int64


def float_power(x, y):
    return x ** y, x ** 2, x ** 0.5, 2.0 ** y, x ** -1.5


def test_float_power():
    check_batching(float_power, (floats(10, 0.1, 4.0), floats(11, -3.0, 3.0)),
                   exact=False, rtol=1e-14)


def python_float_power(x):
    v = float(x)
    return v ** 2, v ** 0.5, v ** 3


def test_python_float_power_of_positive_bases():
    check_batching(python_float_power, (floats(12, 0.0, 9.0),), exact=False, rtol=1e-14)


# ---- unary operators and comparisons --------------------------------------------------------------

def unary_ops(a):
    return -a, +a, not a, ~a, -(-a)


def test_unary_minus_plus_not_invert():
    a = ints(13, -5, 5)
    res = check_batching(unary_ops, (a,))
    assert res[2].dtype == np.bool_


def comparisons(a, b):
    return a < b, a <= b, a > b, a >= b, a == b, a != b


def test_comparisons_give_bool():
    res = check_batching(comparisons, (ints(14, -3, 3), ints(15, -3, 3)))
    assert all(r.dtype == np.bool_ for r in res)


def python_bools_meet_numpy_bools(x, n):
    seen = False
    for i in range(n):
        seen = seen + (x > i)       # np.bool_ + a Python bool: numpy's logical or
    both = True * (x > 0)           # logical and
    count = True + True + (x > 1) * 1  # Python ints first, then NEP 50 with the int64 product
    return seen, both, count


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_python_bools_meeting_numpy_bools_stay_bools(backend):
    res = check_batching(python_bools_meet_numpy_bools, (floats(16), ints(17, 0, 4)), backend=backend)
    assert res[0].dtype == np.bool_ and res[1].dtype == np.bool_ and res[2].dtype == np.int64


BEYOND_INT64 = 2 ** 64 + 5


def add_beyond_int64(n):
    s = 0
    for _ in range(n):
        s += BEYOND_INT64
    return s


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_python_int_beyond_int64_meeting_lane_ints_wraps_as_they_do(backend):
    n = np.array([1, 2, 3, 0])
    got = vmapper.batched(add_beyond_int64, backend=backend)(n)
    wrapped = [(add_beyond_int64(k) + 2 ** 63) % 2 ** 64 - 2 ** 63 for k in n.tolist()]
    assert got.dtype == np.int64 and got.tolist() == wrapped


def chained(a, b, c):
    return a < b < c, a <= b == c, a < b > c != a


def test_chained_comparisons():
    check_batching(chained, (ints(16, 0, 4), ints(17, 0, 4), ints(18, 0, 4)))


def chain_rhs_short_circuits(x, i):
    # the second comparison must only run where the first one held
    return 0 <= i < 4 and x[i] > 0


def test_chained_comparison_guards_index_on_lanes_where_it_is_false():
    x = floats(19, shape=(4,))
    check_batching(chain_rhs_short_circuits, (x, ints(20, -6, 8)))


# ---- and / or ----------------------------------------------------------------------------

def and_or_values(a, b):
    return a and b, a or b, a and b or 7, (a or b) and a


def test_and_or_return_operand_values():
    res = check_batching(and_or_values, (ints(21, -2, 3), ints(22, -2, 3)))
    assert res[0].dtype == np.int64


def and_short_circuit(x):
    return x != 0 and 10 // x > 1


def or_short_circuit(x):
    return x == 0 or 10 // x > 1


def python_int_short_circuit(x):
    v = int(x)
    return v != 0 and 100 // v


def test_and_right_side_not_evaluated_on_lanes_that_short_circuit():
    x = ints(23, -3, 4)
    x[:3] = 0
    check_batching(and_short_circuit, (x,))
    check_batching(or_short_circuit, (x,))
    check_batching(python_int_short_circuit, (x,))


def or_default(x):
    return x or 0.5


def test_or_mixing_int_and_float_operands_promotes_like_the_per_sample_results():
    check_batching(or_default, (ints(24, -1, 2),))


# ---- conditional expressions -----------------------------------------------------------------

def ifexp(a, b):
    s = -1 if a < 0 else (0 if a == 0 else 1)
    return (a if a > b else b), s, (10 // a if a != 0 else -99)


def test_conditional_expressions_only_evaluate_the_taken_side():
    a = ints(25, -3, 4)
    a[0] = 0
    check_batching(ifexp, (a, ints(26, -3, 4)))


# ---- tuples ---------------------------------------------------------------------------------

def tuple_pack_unpack(a, b):
    t = (a, b, a + b)
    p, q, r = t
    p, q = q, p
    (u, (v, w)) = (p, (q * 2, r))
    return u, v, w, t[2]


def test_tuple_packing_unpacking_and_swaps():
    check_batching(tuple_pack_unpack, (ints(27), ints(28)))


def unpack_array_row(X):
    a, b, c = X
    return c, b, a


def test_unpacking_a_per_sample_array():
    check_batching(unpack_array_row, (floats(29, shape=(3,)),))


# ---- builtins --------------------------------------------------------------------------------

def builtins_mix(a, b, x):
    return (abs(a), min(a, b), max(a, b, 3), int(x), float(a), bool(a), round(x),
            abs(x), min(x, 0.5), max(-x, x))


def test_builtins_abs_min_max_int_float_bool_round():
    x = floats(43, -4, 4)
    x[:6] = [2.5, -2.5, 0.5, 1.5, -0.5, 3.7]  # round half to even; int truncates toward zero
    check_batching(builtins_mix, (ints(44, -5, 5), ints(45, -5, 5), x))


def builtins_sequences(X, a, b):
    return len(X), sum(X), min(X), max(X), sum((a, b, a)), max((a, b)), min([b, a, 2])


def test_builtins_len_sum_min_max_over_sequences():
    check_batching(builtins_sequences, (floats(46, shape=(5,)), ints(47), ints(48)))


def int_of_python_values(x):
    return int(x * 3.0), int(-x), int(True), float(int(x))


def test_int_and_float_casts_of_computed_values():
    check_batching(int_of_python_values, (floats(49, -100, 100),))


# ---- the math module -------------------------------------------------------------------------

def math_exact(x):
    return math.sqrt(x), math.floor(x), math.ceil(x), math.trunc(-x), math.fabs(-x)


def math_transcendental(x):
    return (math.exp(x), math.log(x), math.log(x, 2), math.log1p(x), math.log2(x), math.log10(x),
            math.sin(x), math.cos(x), math.tanh(x), math.atan2(x, 2.0), math.hypot(x, 1.0),
            math.expm1(x))


def test_math_sqrt_floor_ceil_trunc_bitwise_and_integer_results():
    res = check_batching(math_exact, (floats(50, 0.0, 50.0),))
    assert res[1].dtype == np.int64 and res[2].dtype == np.int64


def test_math_transcendental_functions_to_rounding():
    check_batching(math_transcendental, (floats(51, 0.01, 10.0),), exact=False, rtol=1e-13)


def whole_numbers(x, k):
    y = float(x)
    return x.is_integer(), y.is_integer(), (x * 2).is_integer(), k.is_integer()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_is_integer_of_floats_numpy_and_python_and_of_numpy_ints(dtype, backend):
    x = np.array([1.0, 2.5, -0.0, np.inf, -np.inf, np.nan, 1e30, -3.0, 0.5, 2.0 ** 60 + 1], dtype)
    res = check_batching(whole_numbers, (x, np.arange(len(x))), backend=backend)
    assert res[0].tolist() == [v.is_integer() for v in x] and res[0].sum() == 5


def hypot_of_any_count(x, y, k):
    return math.hypot(), math.hypot(x), math.hypot(k), math.hypot(x, y, 1.5), math.hypot(x, y, x, k)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_math_hypot_of_zero_one_or_many_coordinates(backend):
    x, y = floats(52, -1e3, 1e3), floats(53, -1e3, 1e3)
    x[:4], y[:4] = [np.inf, np.nan, 0.0, -0.0], [np.nan, np.inf, -0.0, 1e-310]
    res = check_batching(hypot_of_any_count, (x, y, ints(54)), exact=False, rtol=4e-16, backend=backend)
    assert res[0].dtype == res[2].dtype == np.float64
    assert np.array_equal(res[1], np.abs(x), equal_nan=True) and np.isinf(res[3][:2]).all()  # (inf wins over nan)
    g = vmapper.grad(vmapper.batched(hypot_of_3, backend=backend))(x[4:9])
    np.testing.assert_allclose(g, 2 * x[4:9] / np.sqrt(2 * x[4:9] ** 2 + 4.0), rtol=1e-13)


def hypot_of_3(x):
    return math.hypot(x, x, 2.0)


# ---- dtype preservation -------------------------------------------------------------------------

def float32_ops(x):
    y = x * 2.0
    z = x + 1
    w = -x / 3
    return y, z, w, (x if x > 0 else x * 2.0)


def test_float32_stays_float32_with_python_scalars():
    res = check_batching(float32_ops, (floats(90, dtype=np.float32),))
    assert all(r.dtype == np.float32 for r in res)


def int_ops(a):
    return a * 3, a + 1, a - 7, a // 2, -a


def test_int64_stays_int64():
    res = check_batching(int_ops, (ints(92),))
    assert all(r.dtype == np.int64 for r in res)


def float32_vector_ops(X):
    return X * 2.0, X + 1, X.sum() * 0.5, X[0] + 1.5


def test_float32_vectors_stay_float32():
    res = check_batching(float32_vector_ops, (floats(91, dtype=np.float32, shape=(3,)),),
                         exact=False, rtol=1e-6)
    assert all(r.dtype == np.float32 for r in res)


def int32_ops(A, a):
    return A + 1, A * 2, a + 1, A[0] - 3, a * a


def test_int32_plus_python_int_stays_int32():
    A = ints(93, n=N * 3, dtype=np.int32).reshape(N, 3)
    res = check_batching(int32_ops, (A, ints(94, dtype=np.int32)))
    assert all(r.dtype == np.int32 for r in res)


def narrow_dtypes(x32, a8, u8):
    return (x32 < 0.1, x32 == 0.1, x32 >= 0.1, a8 < 1000, a8 + 1, a8 * 2, -a8, u8 + 200,
            u8 // 3, x32 * a8)


def test_float32_int8_uint8_with_python_scalars_follow_nep50():
    x32 = floats(114, -1, 1, dtype=np.float32)
    x32[:2] = np.float32(0.1)
    a8 = ints(115, -60, 60, dtype=np.int8)
    u8 = ints(116, 0, 50, dtype=np.uint8)
    res = check_batching(narrow_dtypes, (x32, a8, u8))
    assert [r.dtype for r in res[4:]] == [np.int8, np.int8, np.int8, np.uint8, np.uint8, np.float32]


def narrow_or_a_literal(x32, a8, u8):
    y = x32 if x32 > 0.25 else 0.1        # 0.1 is no float32: the lanes that take it keep 0.1
    k = a8 - 1 if a8 > 10 else -200        # -200 is no int8
    m = u8 if u8 > 3 else -1               # -1 is no uint8
    return y, k, m, max(x32, 0.1), min(a8, 300) if a8 > 0 else 300


def narrow_or_a_literal_it_holds(x32):
    return x32 if x32 > 0 else 0.0         # 0.0 is a float32: float32 it stays


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_python_literal_that_a_narrow_type_cannot_hold_promotes_where_lanes_meet(backend):
    x32 = floats(117, -1, 1, dtype=np.float32)
    a8 = ints(118, -60, 60, dtype=np.int8)
    u8 = ints(119, 0, 9, dtype=np.uint8)
    res = check_batching(narrow_or_a_literal, (x32, a8, u8), backend=backend)
    assert [r.dtype for r in res] == [np.float64, np.int64, np.int64, np.float64, np.int64]
    assert res[0][x32 <= 0.25][0] == 0.1 and -200 in res[1]
    z = vmapper.batched(narrow_or_a_literal_it_holds, backend=backend)(x32)
    assert z.dtype == np.float32 and np.array_equal(z, np.where(x32 > 0, x32, 0))


def narrow_against_python_ints(a8, u8, n):
    limit = 1
    for _ in range(n):
        limit = limit * 1000               # a Python int per lane: 1 ... 10**12
    k = int(n) * 100                       # 0 ... 400: beyond int8 on some lanes
    return a8 < limit, a8 >= k, u8 > k - 200, max(a8, k), a8 == k


def narrow_compared_with_python_ints(a8, u64, n):
    limit = 1
    for _ in range(n):
        limit = limit * 1000
    return a8 < limit, u64 > int(n) - 2, a8 != limit


def narrow_plus_python_int(a8, n):
    return a8 + int(n) * 50


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_python_int_per_lane_beyond_a_narrow_type_compares_exactly_and_overflows_in_arithmetic(backend):
    # it was cast to the narrow type and wrapped: 10**12 < an int32 7, 200 < an int8 5
    n = np.arange(5)
    a8 = np.array([5, 7, -3, 100, 5], dtype=np.int8)
    u8 = np.array([0, 250, 1, 7, 3], dtype=np.uint8)
    out = check_batching(narrow_against_python_ints, (a8, u8, n), backend=backend, check_dtype=False)
    np.testing.assert_array_equal(out[0], [False, True, True, True, True])
    np.testing.assert_array_equal(out[3], [5, 100, 200, 300, 400])
    np.testing.assert_array_equal(check_batching(narrow_plus_python_int, (a8, np.array([0, 1, 2, 0, 1])),
                                                 backend=backend), [5, 57, 97, 100, 55])
    u64 = np.array([0, 2**63 + 5, 1, 7, 3], dtype=np.uint64)
    out = check_batching(narrow_compared_with_python_ints, (a8.astype(np.int32), u64, n), backend=backend)
    np.testing.assert_array_equal(out[0], [False, True, True, True, True])
    np.testing.assert_array_equal(out[1], [True, True, True, True, True])
    f = vmapper.batched(narrow_compared_with_python_ints, backend=backend)
    f(a8, u64, n)
    assert f.last_stats["kernel_launches"] == (backend == "numba")
    f = vmapper.batched(narrow_plus_python_int, backend=backend)
    with pytest.raises(vmapper.LaneError, match=r"OverflowError: Python integer out of bounds for int8") as err:
        f(a8, n)  # per sample, numpy's OverflowError for 150 (lane 3) and 200 (lane 4) beside an int8
    assert 3 in err.value.lanes and set(err.value.lanes) <= {3, 4}  # (a kernel names its first lane)
    f(a8, np.array([0, 1, 2, 0, 1]))
    assert f.last_stats["kernel_launches"] == (backend == "numba")  # (the kernel's check, not the runtime's)


def bool_ops(a, b):
    p = a > 0
    q = b > 0
    return p & q, p | q, p ^ q, not p, p == q, bool(a)


def test_bool_results_stay_bool():
    res = check_batching(bool_ops, (ints(95, -2, 3), ints(96, -2, 3)))
    assert all(r.dtype == np.bool_ for r in res)


def python_scalar_results(x):
    return int(x), float(x), bool(x), 1, 2.5


def test_python_scalar_results_map_to_int64_float64_bool():
    res = check_batching(python_scalar_results, (floats(97, dtype=np.float32),))
    assert [r.dtype for r in res] == [np.int64, np.float64, np.bool_, np.int64, np.float64]
    assert all(r.shape == (N,) for r in res)


def test_batch_of_one_lane():
    check_batching(int_arith, (ints(98, n=1), nonzero_ints(99, n=1)))


def test_float_results_are_bitwise_for_plus_minus_times_divide_on_large_batches():
    x, y = floats(101, n=5000), floats(102, n=5000)
    y = np.where(y == 0, 1.0, y)
    check_batching(float_arith, (x, y))
    assert isinstance(vmapper.batched(float_arith)(x, y), tuple)


def bit_ops(a, b):
    return a & 3, a | b, a ^ b, a << 2, a >> 1


def membership_in_literal(a, b):
    return a in (1, 2, 3), b not in (0, -1)


SMALL_PRIMES = (2, 3, 5, 7)


def membership_in_global(a):
    return a in SMALL_PRIMES


def test_bitwise_operators():
    check_batching(bit_ops, (ints(103, -8, 8), ints(104, -3, 4)))


def test_membership_in_a_constant_global_tuple():
    check_batching(membership_in_global, (ints(103, -8, 8),))


def test_membership_in_a_literal_tuple_of_constants():
    check_batching(membership_in_literal, (ints(103, -8, 8), ints(104, -3, 4)))


def membership_among_per_lane_items(x, a, b, s, t):
    return (x in (a, b), x not in [a, 3], 2 in (a, b), s in (t, "x"), x in (s, 1.5), x in (x, 0.5),
            s in (s,), x + 0.5 in (a, x))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_membership_among_per_lane_items_compares_each_lane_with_each_item(backend):
    x, a, b = ints(105, 0, 4), ints(106, 0, 4), ints(107, 0, 4)
    words = np.array(["x", "y", "ab", ""])
    s, t = words[ints(108, 0, 4)], words[ints(109, 0, 4)]
    x = np.where(ints(110, 0, 3) == 0, np.nan, x)  # NaN finds itself (Python's ``in`` tests identity)
    check_batching(membership_among_per_lane_items, (x, a, b, s, t), backend=backend)


def membership_among_per_lane_arrays(x, v):
    return x in (v, v)


def test_membership_among_per_lane_arrays_is_refused_naming_it():
    v = floats(111).reshape(-1, 1) * np.ones(3)
    with pytest.raises(vmapper.UnsupportedSyntaxError, match="'in' on a collection holding per-sample arrays"):
        vmapper.batched(membership_among_per_lane_arrays)(floats(112), v)


def bool_arithmetic(a, b):
    # numpy bools add as logical or; Python bools add as ints
    return (a > 0) + (b > 0), (int(a) > 0) + (int(b) > 0), (a > 0) * 3, True + (int(a) > 1)


def test_arithmetic_on_numpy_bools_and_python_bools():
    check_batching(bool_arithmetic, (ints(108, -3, 4), ints(109, -3, 4)))


def python_float_edges(x, y):
    u, v = float(x), float(y)
    return u // v, u % v, max(u, v), min(v, u), u == u


def test_python_float_floor_division_modulo_min_max_with_inf_nan_and_signed_zero():
    x = np.array([-4.0, 4.0, -0.0, 7.5, 5.0, -5.0, 1.0, np.nan, 0.0])
    y = np.array([2.0, -2.0, 3.0, -2.0, np.inf, np.inf, np.nan, 1.0, -1.0])
    check_batching(python_float_edges, (x, y))


def module_constants(x):
    return x * math.pi, np.pi + x, np.float32(2.0) * x, np.int32(x), np.float32(x) + 1, math.inf > x


def test_module_constants_and_numpy_scalar_casts():
    check_batching(module_constants, (floats(110, -50, 50),))


def to_uint32(x):
    return np.uint32(x)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_float_out_of_uint32s_range_casts_as_the_per_sample_scalar_cast_wraps_it(backend, dtype):
    # numpy's scalar cast goes through int64 (1e10 -> 1410065408); its array cast gives 0
    x = np.array([1e10, -1e10, 4.3e9, -1.5, 3e9, np.nan, np.inf, 7.9], dtype=dtype)
    check_batching(to_uint32, (x,), backend=backend)


# ---- divmod ----------------------------------------------------------------------------------

def divmod_parts(a, b, x, y):
    q, r = divmod(a, b)
    fq, fr = divmod(x, y)
    uq, ur = divmod(7, -2)
    return q, r, fq, fr, uq + ur, divmod(a, 3)[1]


def test_divmod_is_floor_division_and_modulo_with_pythons_signs_bitwise():
    a, b = ints(20, -100, 100), nonzero_ints(21)
    x = floats(22, -10, 10)
    y = np.where(np.abs(floats(23)) < 0.1, -0.5, floats(23))
    check_batching(divmod_parts, (a, b, x, y))


def divmod_by(a, b):
    return divmod(a, b)[0]


def test_divmod_by_zero_on_an_active_lane_is_a_lane_error_naming_the_lane():
    import pytest
    b = nonzero_ints(24)
    b[5] = 0
    with pytest.raises(vmapper.LaneError, match="division or modulo by zero") as info:
        vmapper.batched(divmod_by)(ints(25), b)
    assert info.value.python_error is ZeroDivisionError
    assert list(info.value.lanes) == [5]


# ---- membership in a range -------------------------------------------------------------------

def in_range_with_per_lane_bounds(x, start, stop, step):
    return x in range(start, stop, step), x not in range(stop), x in range(start, stop)


def in_range_in_a_branch(x, n):
    if x in range(n):
        return x * 2
    return -1


def in_range_with_a_float_bound(x, n):
    return x in range(n / 2)


def test_membership_in_a_range_with_per_lane_bounds_and_negative_steps_equals_python():
    import pytest
    for seed, backend in ((30, "numpy"), (31, "numba"), (32, "numpy")):
        r = np.random.default_rng(seed)
        step = r.integers(-4, 5, size=N)
        step[step == 0] = 2
        start, stop = r.integers(-10, 10, size=N), r.integers(-10, 10, size=N)
        check_batching(in_range_with_per_lane_bounds, (r.integers(-12, 12, size=N), start, stop, step), backend=backend)
        # floats are members where they equal one (Python's == search); NaN and inf never are
        x = r.integers(-24, 24, size=N) / 2.0
        x[:3] = np.nan, np.inf, -np.inf
        check_batching(in_range_with_per_lane_bounds, (x, start, stop, step), backend=backend)
        check_batching(in_range_in_a_branch, (r.integers(-3, 9, size=N), r.integers(-2, 8, size=N)), backend=backend)
    big = 2 ** 63 - 1  # the distance from start overflows int64 here: not the answer
    edge = [(big - 1, -big - 1, big, big), (-big, big, -big - 1, -big), (5, 0, 10, 5)]
    got = vmapper.batched(in_range_with_per_lane_bounds)(*map(np.array, zip(*edge)))
    # (Python ints: range's own test is O(1) for them; a numpy int would scan the range)
    want = [in_range_with_per_lane_bounds(*case) for case in edge]
    assert [tuple(bool(g[k]) for g in got) for k in range(3)] == want
    with pytest.raises(vmapper.LaneError, match="must not be zero") as info:
        vmapper.batched(in_range_with_per_lane_bounds)(np.arange(3), np.zeros(3, int), np.full(3, 5), np.array([1, 0, 1]))
    assert list(info.value.lanes) == [1]
    with pytest.raises(vmapper.LaneError, match="cannot be interpreted as an integer") as info:
        vmapper.batched(in_range_with_a_float_bound)(np.arange(3), np.arange(3))
    assert info.value.python_error is TypeError


def tuples_and_lists_compared(a, b):
    return (a, b) == (b, a), [a, b] != [b, a], (a, (b, 1)) == (a, (b, 1)), (a,) == (a, b)


def is_empty_text(s):
    if s:
        return 1
    return 0 if not s else 2


def grown_text(s, n):
    t = s
    for _ in range(n):
        t = t + "ab"
    return t


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_tuples_and_lists_holding_per_lane_values_compare_per_lane(backend):
    check_batching(tuples_and_lists_compared, (ints(18, 0, 3), ints(19, 0, 3)), backend=backend)


def tuples_ordered(a, b):
    return (a, b) < (b, a)


def test_ordering_tuples_of_per_lane_values_names_the_construct():
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=r"ordering comparison \('lt'\) of lists or tuples"):
        vmapper.batched(tuples_ordered, backend="numpy")(ints(20, 0, 3), ints(21, 0, 3))


def str_repeated_per_lane(n):
    s = "ab"
    return s * n


def test_repeating_a_str_a_per_lane_count_names_the_construct_and_the_count():
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=r"repeating a str \(s \* n\) where the str or the count differs"):
        vmapper.batched(str_repeated_per_lane, backend="numpy")(np.array([1, 2, 3]))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_strs_per_lane_are_false_when_empty_and_may_grow_to_different_lengths(backend):
    words = np.array(["", "a", "", "bcd"])
    check_batching(is_empty_text, (words,), backend=backend)
    check_batching(grown_text, (words, np.array([0, 2, 1, 3])), backend=backend)


def suffixed_if(t, flag):
    if flag:
        t = t + "xyz"
    return t


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_str_result_is_as_wide_as_its_longest_lanes_string(backend):
    # (the arm computed for every lane widened all: <U5 where the per-sample strings stack as <U2)
    words = np.array(["a", "bb", ""])
    check_batching(suffixed_if, (words, np.array([False, False, False])), backend=backend)
    check_batching(suffixed_if, (words, np.array([True, False, False])), backend=backend)


def clipped_one_side(v, b):
    return np.clip(v, b, None), np.clip(v, None, b)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_np_clip_with_a_per_lane_bound_and_none_for_the_other(backend):
    v = np.array([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.25]])
    check_batching(clipped_one_side, (v, np.array([0.0, 1.0, 0.0])), backend=backend)


def str_equals_number(s, z):
    return s == z, s != z


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_str_per_lane_never_equals_a_complex_per_lane(backend):
    # (numpy has no str/complex comparison loop: that raised on every lane, where Python says False)
    check_batching(str_equals_number, (np.array(["a", "1"]), np.array([1 + 2j, 1 + 0j])), backend=backend)


def rounded(x):
    return round(x)


def remainder_by_two(x):
    return x % 2


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_round_of_a_complex_per_lane_raises_pythons_type_error(backend):
    # (it cast the complex numbers to int, dropping their imaginary parts)
    z = np.array([1.5 + 2j, 2.5 - 1j])
    with pytest.raises(vmapper.LaneError, match=r"TypeError: type numpy.complex128 doesn't define __round__ method on lane\(s\) \[0, 1\]"):
        vmapper.batched(rounded, backend=backend)(z)
    with pytest.raises(vmapper.LaneError, match=r"TypeError: type str doesn't define __round__ method"):
        vmapper.batched(rounded, backend=backend)(np.array(["a", "b"]))


def rounded_comparisons(x):
    return round(float(x) > 0), round(float(x) > 0, 1)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_round_of_a_numpy_bool_raises_and_of_a_python_bool_is_an_int(backend):
    with pytest.raises(vmapper.LaneError, match=r"TypeError: type numpy.bool doesn't define __round__ method"):
        vmapper.batched(rounded, backend=backend)(np.array([True, False]))
    check_batching(rounded_comparisons, (np.array([1.0, -1.0, 0.0]),), backend=backend)


def test_an_operation_numpy_has_no_loop_for_names_the_operation_and_the_types():
    with pytest.raises(vmapper.LaneError, match=r"TypeError: unsupported operand types for 'mod': complex128 and int on lane\(s\) \[0, 1\]"):
        vmapper.batched(remainder_by_two, backend="numpy")(np.array([1 + 2j, 3j]))
