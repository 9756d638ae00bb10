"""Linear algebra of per-sample arrays: np.einsum, np.tensordot, np.linalg.solve, np.linalg.inv
and np.linalg.det, with per-sample and shared operands, on both backends.

Each test batches a per-sample function with :func:`vmapper.testing.check_batching` (the
per-sample numpy call is the oracle).  Float results are compared to rounding,
``rtol=1e-12`` (and ``atol=1e-12``, the inputs are of order 1) in float64, not bitwise:
the batched contraction runs as one matrix product over the lanes (a shared matrix with
per-lane vectors is one GEMM, as for matmul), a shared matrix with per-lane right-hand
sides is one solve with many columns, and these sum in another order than the per-sample
call.  Integer and bool contractions are exact, and compared bitwise.  Dtypes are always
checked.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import vmapper
from vmapper.passes import kernel_regions
from vmapper import program as program_cache
from vmapper.program import get_program
from vmapper.autodiff.linalg_rules import adjugate_t
from vmapper.primitives.linalg_ops import parse_subscripts
from vmapper.testing import check_batching, check_grads
from lane_inputs import CF_SETTINGS, N, floats, ints, rng

BACKENDS = pytest.mark.parametrize("backend", ["numpy", "numba"])
CLOSE = dict(exact=False, rtol=1e-12, atol=1e-12)

#: The primitives whose result is an array per lane: the names to list in
#: vmapper.passes.kernel_regions.ARRAY_MAKERS (np.linalg.det of a matrix is a scalar per lane).
ARRAY_RESULTS = frozenset({"np.einsum", "np.tensordot", "np.linalg.solve", "np.linalg.inv"})


def contraction(subscripts, count):
    """``np.einsum(subscripts, ...)`` of ``count`` operands as a per-sample function."""
    if count == 1:
        def per_sample(a):
            return np.einsum(subscripts, a)
    elif count == 2:
        def per_sample(a, b):
            return np.einsum(subscripts, a, b)
    else:
        def per_sample(a, b, c):
            return np.einsum(subscripts, a, b, c)
    return per_sample


def operands(seed, shapes, shared):
    """Random float64 operands: per sample (``N`` lanes first) or shared (``shared[k]``)."""
    return tuple(rng(seed + k).normal(size=s) if sh else rng(seed + k).normal(size=(N,) + s)
                 for k, (s, sh) in enumerate(zip(shapes, shared)))


def axes_of(shared):
    return tuple(None if sh else 0 for sh in shared)


def well_conditioned(seed, shape, n=N):
    """Random matrices (the last two axes) plus ``m`` times the identity: far from singular."""
    m = shape[-1]
    return rng(seed).normal(size=(n,) + shape) + m * np.eye(m)


# ---- einsum ----------------------------------------------------------------------------------------

EINSUM_CASES = [
    ("ij,j->i", [(3, 4), (4,)]),
    ("ij,j", [(3, 4), (4,)]),
    ("i,i", [(5,), (5,)]),
    ("i,i->", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("i,j", [(3,), (4,)]),
    ("i,j->ji", [(3,), (4,)]),
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,kj->ki", [(2, 3), (4, 3)]),
    ("ijk,jk->i", [(2, 3, 4), (3, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 3)]),
    ("ij,ij->i", [(3, 4), (3, 4)]),
    ("ij,i->j", [(3, 4), (3,)]),
    ("ijk,k->", [(2, 3, 4), (4,)]),
    ("Ab,bC->CA", [(2, 3), (3, 4)]),
    (" i j , j -> i ", [(3, 4), (4,)]),
    (",i->i", [(), (4,)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 3)]),
    ("...i,...i", [(2, 3), (3,)]),
    ("i...,i->...", [(3, 2, 2), (3,)]),
    ("ij,jk,k->i", [(2, 3), (3, 4), (4,)]),
    ("i,ij,j", [(3,), (3, 4), (4,)]),
]
SHARINGS = [(False, False), (True, False), (False, True)]


@BACKENDS
@pytest.mark.parametrize("subscripts, shapes", EINSUM_CASES, ids=[c[0].replace(" ", "_") for c in EINSUM_CASES])
@pytest.mark.parametrize("shared", SHARINGS, ids=["per-sample", "first-shared", "second-shared"])
def test_einsum_of_per_sample_and_shared_operands_equals_the_per_sample_loop(subscripts, shapes, shared, backend):
    shared = shared + (False,) * (len(shapes) - 2)
    args = operands(1, shapes, shared)
    check_batching(contraction(subscripts, len(shapes)), args, in_axes=axes_of(shared), backend=backend, **CLOSE)


SINGLE_CASES = [("ij->ji", (3, 4)), ("ij", (3, 4)), ("ji", (3, 4)), ("ii", (3, 3)), ("ii->i", (3, 3)),
                ("ij->", (3, 4)), ("ij->j", (3, 4)), ("ijk->kji", (2, 3, 4)), ("iij->ji", (3, 3, 2)),
                ("...j->...", (2, 3)), ("i...->...i", (2, 3, 4)), ("...", (2, 3)), ("", ())]


@BACKENDS
@pytest.mark.parametrize("subscripts, shape", SINGLE_CASES, ids=[c[0] or "empty" for c in SINGLE_CASES])
def test_einsum_of_one_operand_transposes_traces_and_sums(subscripts, shape, backend):
    check_batching(contraction(subscripts, 1), (floats(2, shape=shape),), backend=backend, **CLOSE)


def integer_contractions(M, v, b):
    return (np.einsum("ij,j->i", M, v), np.einsum("ii", M), np.einsum("i,i", v, v), np.einsum("ij->j", M),
            np.einsum("i,i", b, b), np.einsum("ij,j", M.astype(np.int32), v.astype(np.int8)),
            np.einsum("i,i", v.astype(np.int8), v.astype(np.int8)))


def test_integer_and_bool_contractions_are_exact_with_numpy_dtypes():
    M = ints(3, -9, 9, n=N * 9).reshape(N, 3, 3)
    v = ints(4, -9, 9, n=N * 3).reshape(N, 3)
    res = check_batching(integer_contractions, (M, v, v > 0))  # bitwise
    assert [r.dtype for r in res] == [np.int64, np.int64, np.int64, np.int64, np.bool_, np.int32, np.int8]


def mixed_dtypes(x, y, s):
    return (np.einsum("i,i->i", x, y), np.einsum("i,j", x, x), np.einsum("i,", x, 2.0), np.einsum("i,", x, s),
            np.einsum("i,i", x, np.arange(4)), np.einsum("i,i", x.astype(np.int32), y))


def test_float32_and_promotion_follow_numpy():
    x = floats(5, shape=(4,), dtype=np.float32)
    res = check_batching(mixed_dtypes, (x, floats(6, shape=(4,)), floats(7)), exact=False, rtol=1e-6, atol=1e-6)
    assert [r.dtype for r in res] == [np.float64, np.float32, np.float64, np.float64, np.float64, np.float64]


def python_scalars_and_lists(a, b, v):
    return (np.einsum("i,", v, a * 1.5), np.einsum("i,i", [a, b, a * b], v), np.einsum("ij,j", [[a, 1.0], [b, a]], [b, 2.0]),
            np.einsum(",", a, b))


def test_per_sample_python_scalars_and_lists_are_operands():
    check_batching(python_scalars_and_lists, (floats(8), floats(9), floats(10, shape=(3,))), **CLOSE)


def einsum_options(A, x):
    return (np.einsum("ij,j->i", A, x, optimize=True), np.einsum("ij,jk,k->i", A, A, x, optimize="optimal"),
            np.einsum("ij,j->i", A, x, dtype=np.float32, casting="same_kind"), np.einsum("ij,j->i", A, x, casting="no"),
            np.einsum("ij,j->i", A, x, order="F"), np.einsum("ij,jk,k->i", A, A, x, optimize=False))


def test_einsum_options_are_numpy_s():
    res = check_batching(einsum_options, (floats(11, shape=(3, 3)), floats(12, shape=(3,))), exact=False,
                         rtol=1e-6, atol=1e-6)
    assert res[2].dtype == np.float32


def shared_only(x, W):
    return x * np.einsum("ij,j->i", W, W[0]) + np.einsum("ii", W)


def test_shared_operands_alone_are_computed_once_by_numpy():
    check_batching(shared_only, (floats(13), rng(14).normal(size=(3, 3))), in_axes=(0, None), **CLOSE)


@st.composite
def einsum_problems(draw):
    """A valid einsum: 1 to 3 operands of letters from 'abcd' (repeats: diagonals), some with
    an ellipsis over broadcast axes, an implicit or explicit output, some operands shared."""
    size = {c: draw(st.integers(1, 3)) for c in "abcd"}
    n_ops = draw(st.integers(1, 3))
    ell = draw(st.lists(st.integers(1, 3), max_size=2))  # the ellipsis axes' sizes
    subs, shapes = [], []
    for _ in range(n_ops):
        letters = draw(st.lists(st.sampled_from("abcd"), max_size=3))
        shape = [size[c] for c in letters]
        if ell and draw(st.booleans()):
            k = draw(st.integers(0, len(ell)))
            dims = [d if draw(st.booleans()) else 1 for d in ell[len(ell) - k:]]
            at = draw(st.integers(0, len(letters)))
            letters = letters[:at] + ["..."] + letters[at:]
            shape = shape[:at] + dims + shape[at:]
        subs.append("".join(letters))
        shapes.append(tuple(shape))
    spec = ",".join(subs)
    if draw(st.booleans()):
        used = sorted({c for s in subs for c in s if c != "."})
        out = draw(st.permutations(used))[:draw(st.integers(0, len(used)))]
        has_ell = any("..." in s for s in subs)
        spec += "->" + ("..." if has_ell else "") + "".join(out)
    shared = [draw(st.booleans()) for _ in subs]
    shared[draw(st.integers(0, n_ops - 1))] = False  # at least one operand per sample
    return spec, shapes, shared


@CF_SETTINGS
@given(problem=einsum_problems(), seed=st.integers(0, 1000))
def test_drawn_einsums_equal_the_per_sample_call(problem, seed):
    spec, shapes, shared = problem
    args = operands(seed, shapes, shared)
    try:
        np.einsum(spec, *[a if sh else a[0] for a, sh in zip(args, shared)])
    except ValueError:  # a drawn ellipsis numpy does not broadcast: the batched call raises too
        with pytest.raises(vmapper.LaneError, match="ValueError: np.einsum"):
            vmapper.batched(contraction(spec, len(shapes)), in_axes=axes_of(shared))(*args)
        return
    check_batching(contraction(spec, len(shapes)), args, in_axes=axes_of(shared), **CLOSE)


def squared_contraction(subscripts, count):
    """``np.sum(np.einsum(subscripts, ...) ** 2)`` of ``count`` operands."""
    if count == 1:
        def per_sample(a):
            return np.sum(np.einsum(subscripts, a) ** 2)
    elif count == 2:
        def per_sample(a, b):
            return np.sum(np.einsum(subscripts, a, b) ** 2)
    else:
        def per_sample(a, b, c):
            return np.sum(np.einsum(subscripts, a, b, c) ** 2)
    return per_sample


@CF_SETTINGS
@given(problem=einsum_problems(), seed=st.integers(0, 1000))
def test_drawn_einsum_gradients_match_finite_differences(problem, seed):
    spec, shapes, shared = problem
    args = operands(seed, shapes, shared)
    try:
        np.einsum(spec, *[a if sh else a[0] for a, sh in zip(args, shared)])
    except ValueError:
        return  # (an ellipsis numpy does not broadcast)
    f = vmapper.batched(squared_contraction(spec, len(shapes)), in_axes=axes_of(shared))
    check_grads(f, args, argnums=tuple(range(len(shapes))))


def test_subscripts_are_read_as_numpy_reads_them():
    ins, out, free = parse_subscripts("b,A", [1, 1])  # the implicit output is in numpy's order
    assert (ins, out) == (("b", "A"), "Ab")
    ins, out, free = parse_subscripts("...ij,j...", [4, 2])  # ellipsis: fresh letters, right-aligned
    e1, e2 = ins[0][0], ins[0][1]
    assert ins == (e1 + e2 + "ij", "j" + e2) and out == e1 + e2 + "i"
    assert not set(free) & set(ins[0] + ins[1])
    assert parse_subscripts("ij->ii", [2]) is None and parse_subscripts("i.j", [2]) is None


# ---- tensordot ------------------------------------------------------------------------------------

def tensordot_with(axes):
    def per_sample(a, b):
        return np.tensordot(a, b, axes)
    return per_sample


TENSORDOT_CASES = [(2, (3, 4), (3, 4)), (1, (3, 4), (4, 2)), (0, (3,), (2,)), (1, (2, 3, 4), (4,)),
                   (2, (2, 3, 4), (3, 4, 2)), (([0], [1]), (3, 4), (2, 3)), (([1, 0], [0, 1]), (3, 4), (4, 3)),
                   ((1, 0), (3, 4), (4, 2)), (([-1], [-2]), (2, 3), (3, 2)), (-1, (2,), (3,)),
                   (([0, 2], [2, 0]), (2, 3, 4), (4, 5, 2))]


@BACKENDS
@pytest.mark.parametrize("axes, sa, sb", TENSORDOT_CASES, ids=[str(c[0]) for c in TENSORDOT_CASES])
@pytest.mark.parametrize("shared", SHARINGS, ids=["per-sample", "first-shared", "second-shared"])
def test_tensordot_of_every_axes_form(axes, sa, sb, shared, backend):
    check_batching(tensordot_with(axes), operands(20, [sa, sb], shared), in_axes=axes_of(shared),
                   backend=backend, **CLOSE)


def tensordot_defaults(A, B, v):
    return np.tensordot(A, B), np.tensordot(A, v, axes=1), np.tensordot(a=v, b=v, axes=0), np.tensordot(A > 0, B > 0)


def test_tensordot_defaults_keywords_and_dtypes():
    res = check_batching(tensordot_defaults, (floats(21, shape=(3, 4)), floats(22, shape=(3, 4)),
                                              floats(23, shape=(4,))), **CLOSE)
    assert res[3].dtype == np.bool_


# ---- solve, inv, det --------------------------------------------------------------------------------

def solves(A, b):
    return np.linalg.solve(A, b)


def inverses(A):
    return np.linalg.inv(A)


def determinants(A):
    return np.linalg.det(A)


SOLVE_CASES = [((3, 3), (3,)), ((3, 3), (3, 2)), ((1, 1), (1,)), ((2, 3, 3), (3,)), ((2, 3, 3), (2, 3, 1)),
               ((3, 3), (2, 3, 2)), ((2, 1, 3, 3), (4, 3, 2))]


@BACKENDS
@pytest.mark.parametrize("sa, sb", SOLVE_CASES, ids=[f"{a}-{b}" for a, b in SOLVE_CASES])
@pytest.mark.parametrize("shared", SHARINGS, ids=["per-sample", "matrix-shared", "rhs-shared"])
def test_solve_of_per_sample_and_shared_operands(sa, sb, shared, backend):
    A = well_conditioned(30, sa)
    b = floats(31, shape=sb)
    args = (A[0] if shared[0] else A, b[0] if shared[1] else b)
    check_batching(solves, args, in_axes=axes_of(shared), backend=backend, **CLOSE)


@BACKENDS
@pytest.mark.parametrize("shape", [(3, 3), (1, 1), (5, 5), (2, 3, 3), (0, 0)])
def test_inv_and_det_of_per_sample_matrices_and_stacks(shape, backend):
    A = well_conditioned(32, shape) if shape[-1] else np.zeros((N,) + shape)
    check_batching(inverses, (A,), backend=backend, **CLOSE)
    check_batching(determinants, (A,), backend=backend, **CLOSE)


def linalg_dtypes(A, Ai, b):
    return (np.linalg.solve(A, b), np.linalg.inv(A), np.linalg.det(A), np.linalg.solve(Ai, b), np.linalg.det(Ai),
            np.linalg.inv(Ai), np.linalg.solve(A, b.astype(np.float64)))


def test_dtypes_follow_numpy_float32_stays_float32_and_ints_become_float64():
    A = well_conditioned(33, (3, 3)).astype(np.float32)
    Ai = ints(34, -3, 4, n=N * 9).reshape(N, 3, 3) + 12 * np.eye(3, dtype=np.int64)
    res = check_batching(linalg_dtypes, (A, Ai, floats(35, shape=(3,), dtype=np.float32)), exact=False,
                         rtol=1e-5, atol=1e-5)
    assert [r.dtype for r in res] == [np.float32, np.float32, np.float32, np.float64, np.float64, np.float64,
                                      np.float64]


def lists_of_per_sample_scalars(a, b):
    return np.linalg.solve([[a, 1.0], [0.5, b]], [a, b]), np.linalg.det([[a, b], [b, 2.0]]), np.linalg.inv([[a, 0.0], [1.0, b]])


def test_lists_of_per_sample_scalars_are_matrices():
    check_batching(lists_of_per_sample_scalars, (floats(36, 2.0, 5.0), floats(37, 2.0, 5.0)), **CLOSE)


# ---- masked lanes and singular matrices --------------------------------------------------------------

def solve_where_flagged(A, b, flag):
    if flag:
        x = np.linalg.solve(A, b)
        y = np.linalg.inv(A)
    else:
        x = b * 2.0
        y = A
    return x, y, np.linalg.det(A)


def singular_lanes(seed, lanes):
    """Well-conditioned 3x3 matrices, singular on ``lanes``: zero, and on the second of them
    rows r, r, 2r (numpy's LU meets an exact zero pivot)."""
    A = well_conditioned(seed, (3, 3))
    A[lanes] = 0.0
    if len(lanes) > 1:
        A[lanes[1]] = np.outer([1.0, 1.0, 2.0], rng(seed + 1).normal(size=3))
    return A


@BACKENDS
def test_singular_matrices_on_masked_off_lanes_never_raise_or_warn(backend):
    bad = [1, 4, 7, 30]
    A = singular_lanes(40, bad)
    flag = np.ones(N, dtype=bool)
    flag[bad] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_batching(solve_where_flagged, (A, floats(41, shape=(3,)), flag), backend=backend, **CLOSE)


def solve_in_a_loop(A, b, k):
    x = b
    while k > 0:
        x = np.linalg.solve(A, x)
        A = A * 0.5 + np.eye(3)
        k -= 1
    return x


def test_singular_matrices_of_lanes_that_left_a_loop_never_raise():
    A = well_conditioned(42, (3, 3))
    k = ints(43, 0, 4)
    k[[2, 5]] = 0
    A[[2, 5]] = 0.0  # these lanes never run the loop
    check_batching(solve_in_a_loop, (A, floats(44, shape=(3,)), k), **CLOSE)


def solve_then_inv_when_positive(A, b):
    if b[0] > 0:
        return np.linalg.inv(A)[0] + np.linalg.solve(A, b)
    return b


@pytest.mark.parametrize("fn, name", [(solves, "solve"), (inverses, "inv")])
def test_a_singular_matrix_on_an_active_lane_raises_naming_the_lane(fn, name):
    A = singular_lanes(45, [3, 8])
    args = (A, floats(46, shape=(3,))) if name == "solve" else (A,)
    with pytest.raises(vmapper.LaneError, match=f"LinAlgError: np.linalg.{name}: Singular matrix on lane\\(s\\) "
                                                f"\\[3, 8\\]") as info:
        vmapper.batched(fn)(*args)
    assert list(info.value.lanes) == [3, 8] and info.value.python_error is np.linalg.LinAlgError
    assert fn.__code__.co_firstlineno + 1 == info.value.line
    with pytest.raises(np.linalg.LinAlgError, match="Singular matrix"):
        fn(*[a[3] for a in args])  # the per-sample run raises the same


def test_only_the_active_singular_lanes_are_named():
    A = singular_lanes(47, [2, 6, 9])
    b = floats(48, 0.5, 2.0, shape=(3,))
    b[2, 0] = -1.0  # lane 2 does not take the branch
    with pytest.raises(vmapper.LaneError, match="Singular matrix on lane\\(s\\) \\[6, 9\\]") as info:
        vmapper.batched(solve_then_inv_when_positive)(A, b)
    assert list(info.value.lanes) == [6, 9]


def test_a_shared_singular_matrix_fails_every_active_lane():
    with pytest.raises(vmapper.LaneError, match="Singular matrix on lane\\(s\\) \\[0, 1, 2"):
        vmapper.batched(solves, in_axes=(None, 0))(np.ones((3, 3)), floats(49, shape=(3,)))


def test_a_singular_matrix_has_determinant_zero_and_no_error():
    A = singular_lanes(50, [0, 5])
    res = check_batching(determinants, (A,), **CLOSE)
    assert res[0] == 0.0


# ---- errors ----------------------------------------------------------------------------------------------

def einsum_shape_mismatch(A, x):
    return np.einsum("ij,j->i", A, x[:2])


def einsum_unknown_output(A, x):
    return np.einsum("ij,j->k", A, x)


def einsum_bad_letter(A, x):
    return np.einsum("ij,j$", A, x)


def einsum_too_few_operands(A, x):
    return np.einsum("ij,j,i", A, x)


def einsum_too_many_subscripts(A, x):
    return np.einsum("ijk,j", A, x)


def einsum_lone_dot(A, x):
    return np.einsum("i.j,j", A, x)


def einsum_repeated_output(A, x):
    return np.einsum("ij->ii", A)


def einsum_ellipsis_dropped(A, x):
    return np.einsum("...j->j", A)


def einsum_diagonal_of_a_rectangle(A, x):
    return np.einsum("ii", A[:2])


def einsum_bad_cast(A, x):
    return np.einsum("ij,j", A, x, dtype=np.int64)


def einsum_bad_keyword(A, x):
    return np.einsum("ij,j", A, x, sort=True)


def tensordot_axes_out_of_range(A, x):
    return np.tensordot(A, x, 2)


def tensordot_sizes_differ(A, x):
    return np.tensordot(A, x[:2], 1)


def tensordot_uneven_axes(A, x):
    return np.tensordot(A, x, ([0, 1], [0]))


def tensordot_float_axes(A, x):
    return np.tensordot(A, x, 1.5)


def tensordot_duplicate_axes(A, x):
    return np.tensordot(A, A, ([0, 0], [0, 1]))


def solve_rhs_too_long(A, x):
    return np.linalg.solve(A, np.concatenate([x, x]))


def solve_vector_matrix(A, x):
    return np.linalg.solve(x, x)


def solve_rectangle(A, x):
    return np.linalg.solve(A[:2], x)


def inv_vector(A, x):
    return np.linalg.inv(x)


def inv_scalar(A, x):
    return np.linalg.inv(x[0])


def det_rectangle(A, x):
    return np.linalg.det(A[:, :2])


def det_float16(A, x):
    return np.linalg.det(A.astype(np.float16))


@pytest.mark.parametrize("fn, error, message", [
    (einsum_shape_mismatch, "ValueError", "operands could not be broadcast together with remapped shapes"),
    (einsum_unknown_output, "ValueError", "included output subscript 'k' which never appeared in an input"),
    (einsum_bad_letter, "ValueError", "invalid subscript '\\$' in einstein sum subscripts string"),
    (einsum_too_few_operands, "ValueError", "operands provided to einstein sum function than specified"),
    (einsum_too_many_subscripts, "ValueError", "contains too many subscripts for operand 0"),
    (einsum_lone_dot, "ValueError", "contains a '.' that is not part of an ellipsis"),
    (einsum_repeated_output, "ValueError", "includes output subscript 'i' multiple times"),
    (einsum_ellipsis_dropped, "ValueError", "but no '...' ellipsis provided"),
    (einsum_diagonal_of_a_rectangle, "ValueError", "dimensions in operand 0 for collapsing index 'i' don't match"),
    (einsum_bad_cast, "TypeError", "could not be cast from dtype\\('float64'\\) to dtype\\('int64'\\)"),
    (einsum_bad_keyword, "TypeError", "sort"),
    (tensordot_axes_out_of_range, "IndexError", "tuple index out of range"),
    (tensordot_sizes_differ, "ValueError", "shape-mismatch for sum"),
    (tensordot_uneven_axes, "ValueError", "shape-mismatch for sum"),
    (tensordot_float_axes, "TypeError", "'float' object cannot be interpreted as an integer"),
    (tensordot_duplicate_axes, "ValueError", "duplicate axes are not allowed in tensordot"),
    (solve_rhs_too_long, "ValueError", "mismatch in its core dimension 0"),
    (solve_vector_matrix, "LinAlgError", "1-dimensional array given"),
    (solve_rectangle, "LinAlgError", "Last 2 dimensions of the array must be square"),
    (inv_vector, "LinAlgError", "1-dimensional array given"),
    (inv_scalar, "LinAlgError", "0-dimensional array given"),
    (det_rectangle, "LinAlgError", "Last 2 dimensions of the array must be square"),
    (det_float16, "TypeError", "array type float16 is unsupported in linalg"),
])
def test_bad_arguments_raise_the_per_sample_error_naming_it(fn, error, message):
    A, x = well_conditioned(60, (3, 3)), floats(61, shape=(3,))
    with pytest.raises(vmapper.LaneError, match=f"{error}: .*{message}") as info:
        vmapper.batched(fn)(A, x)
    assert fn.__code__.co_firstlineno + 1 == info.value.line
    assert len(info.value.lanes) == N
    with pytest.raises(Exception) as per_sample:
        fn(A[0], x[0])
    assert type(per_sample.value).__name__ == error  # the per-sample run raises the same


def einsum_with_out(A, x):
    return np.einsum("ij,j->i", A, x, out=np.zeros(3))


def einsum_interleaved(A, x):
    return np.einsum(A, [0, 1], x, [1])


def tensordot_per_sample_axes(A, k):
    return np.tensordot(A, A, k)


@pytest.mark.parametrize("fn, message", [
    (einsum_with_out, "np.einsum\\(\\) with out="),
    (einsum_interleaved, "np.einsum\\(\\) in the interleaved form"),
    (tensordot_per_sample_axes, "np.tensordot\\(\\) with a per-sample value for 'axes'"),
])
def test_unsupported_forms_name_the_construct(fn, message):
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=message):
        vmapper.batched(fn)(well_conditioned(62, (3, 3)), ints(63, 0, 2))


# ---- kernel regions ---------------------------------------------------------------------------------------

def einsum_then_loop(A, x):
    y = np.einsum("ij,j->i", A, x)
    z = y * 2.0
    for _ in range(3):
        z = z * 0.5 + y
    return np.sum(z)


def determinant_then_loop(A, k):
    d = np.linalg.det(A)
    t = 0.0
    while k > 0:
        t = t * 0.5 + d
        k -= 1
    return t


def solve_then_scale(A, b, s):
    x = np.linalg.solve(A, b) + np.tensordot(A, b, 1)
    y = np.linalg.inv(A) * s
    for _ in range(2):
        x = x * s + 1.0
        y = y - s
    return x, y


@pytest.mark.parametrize("listed", [False, True], ids=["as-is", "listed-in-ARRAY_MAKERS"])
def test_results_are_arrays_to_the_kernel_region_pass(listed, monkeypatch):
    """Correct on the numba backend whether or not ARRAY_MAKERS lists these primitives (a region
    over an array per lane falls back to its steps at run time); listed, no region is made."""
    pytest.importorskip("numba")
    monkeypatch.setattr(program_cache, "_cache", {})
    if listed:
        monkeypatch.setattr(kernel_regions, "ARRAY_MAKERS", kernel_regions.ARRAY_MAKERS | ARRAY_RESULTS)
    A, x = well_conditioned(70, (3, 3)), floats(71, shape=(3,))
    check_batching(vmapper.batched(einsum_then_loop, backend="numba"), (A, x), **CLOSE)
    check_batching(vmapper.batched(solve_then_scale, backend="numba"), (A, x, floats(72)), **CLOSE)
    if listed:
        assert get_program(einsum_then_loop).ir.annotations["kernel_regions"] == []
        assert get_program(solve_then_scale).ir.annotations["kernel_regions"] == []
    # a determinant is a scalar per lane: the loop after it is one kernel
    g = vmapper.batched(determinant_then_loop, backend="numba")
    check_batching(g, (A, ints(73, 0, 6)), **CLOSE)
    assert len(get_program(determinant_then_loop).ir.annotations["kernel_regions"]) == 1
    assert g.last_stats["kernel_launches"] == 1


# ---- gradients ---------------------------------------------------------------------------------------------

C = np.arange(1.0, 10.0).reshape(3, 3) / 7.0


def einsum_loss(A, x):
    return (np.sum(np.einsum("ij,j->i", A, x) * C[0]) + np.einsum("ii", A) * 2.0 + np.sum(np.einsum("ii->i", A) ** 2)
            + np.sum(np.einsum("ij->i", A) * x) + np.sum(np.einsum("i,j", x, x) * C) + np.einsum("i,i", x, x)
            + np.sum(np.einsum("...j->...", A) ** 2) + np.sum(np.einsum("ij,jk,k->i", A, C, x) ** 2)
            + np.sum(np.einsum("ji", A) * C) + np.einsum("ij,ij", A, A) + np.einsum(",i->", x[0], x)
            + np.sum(np.einsum("i...,i->...", A, x)))


def tensordot_loss(A, x):
    return (np.sum(np.tensordot(A, x, 1) ** 2) + np.tensordot(A, C) + np.sum(np.tensordot(x, x, 0) * C)
            + np.sum(np.tensordot(A, A, ([0], [1])) * C) + np.tensordot(x, x, 1))


@pytest.mark.parametrize("loss", [einsum_loss, tensordot_loss])
@pytest.mark.parametrize("in_axes", [(0, 0), (None, 0), (0, None)], ids=["per-sample", "A-shared", "x-shared"])
def test_contraction_gradients_of_per_sample_and_shared_operands(loss, in_axes):
    A = rng(80).normal(size=(7, 3, 3))
    x = rng(81).normal(size=(7, 3))
    args = (A[0] if in_axes[0] is None else A, x[0] if in_axes[1] is None else x)
    check_grads(vmapper.batched(loss, in_axes=in_axes), args, argnums=(0, 1))


def broadcast_loss(a, b, s):
    # numpy broadcasts the size-1 axes of an ellipsis: their gradients are summed back
    return np.sum(np.einsum("...i,...i->...", a, b) ** 2) + np.sum(np.einsum("i,...->i...", s, b) * 0.5) \
        + np.einsum("i,i,", [s[0], s[1]], s[:2], s[2])


def test_gradients_through_broadcast_axes_lists_and_scalars():
    check_grads(broadcast_loss, (rng(82).normal(size=(7, 1, 3)), rng(83).normal(size=(7, 2, 3)),
                                 rng(84).normal(size=(7, 3))), argnums=(0, 1, 2))


def linalg_loss(A, b):
    return (np.sum(np.linalg.solve(A, b) * C[0]) + np.sum(np.linalg.inv(A) * C) + np.linalg.det(A)
            + np.sum(np.linalg.solve(A, np.outer(b, b)) * C) + np.linalg.det(A * 0.5) ** 2)


@pytest.mark.parametrize("in_axes", [(0, 0), (None, 0), (0, None)], ids=["per-sample", "A-shared", "b-shared"])
def test_solve_inv_det_gradients(in_axes):
    A = rng(85).normal(size=(7, 3, 3)) + 3.0 * np.eye(3)
    b = rng(86).normal(size=(7, 3))
    args = (A[0] if in_axes[0] is None else A, b[0] if in_axes[1] is None else b)
    check_grads(vmapper.batched(linalg_loss, in_axes=in_axes), args, argnums=(0, 1))


def stacked_loss(A, B):
    return np.sum(np.linalg.solve(A, B) ** 2) + np.sum(np.linalg.det(A)) + np.sum(np.linalg.inv(A) * B[:, :, :1])


def test_gradients_of_stacks_of_matrices():
    A = rng(87).normal(size=(7, 2, 3, 3)) + 3.0 * np.eye(3)
    check_grads(stacked_loss, (A, rng(88).normal(size=(7, 2, 3, 2))), argnums=(0, 1))


def test_the_determinant_gradient_at_singular_matrices_is_the_adjugate():
    A = rng(89).normal(size=(7, 4, 4))
    A[0] = 0.0                       # rank 0: the adjugate is 0
    A[1, 2] = 0.0                    # a zero row: rank 3
    A[2, :, 3] = 0.0                 # a zero column
    A[3, 1] = A[3, 0]                # two equal rows
    check_grads(determinants, (A,))
    M = np.array([[[1.0, 2.0], [2.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]], [[3.0, 1.0], [0.0, 0.0]]])
    np.testing.assert_allclose(adjugate_t(M, np.linalg.det(M)),
                               [[[4.0, -2.0], [-2.0, 1.0]], np.zeros((2, 2)), [[0.0, 0.0], [-1.0, 3.0]]],
                               atol=1e-14)
    Z = np.array([[1.0 + 1j, 2.0], [2.0 + 2j, 4.0]])  # complex, singular: adj^T = [[d, -c], [-b, a]]
    np.testing.assert_allclose(adjugate_t(Z, np.linalg.det(Z)), [[4.0, -2.0 - 2j], [-2.0, 1.0 + 1j]], atol=1e-14)


def guarded_linalg(A, b):
    if b[0] > 0:
        y = np.sum(np.linalg.solve(A, b) * C[1]) + np.sum(np.linalg.inv(A) * C)
    else:
        y = np.sum(b * b) + np.einsum("ij,j", C, b)[0]
    return y + np.linalg.det(A)


@BACKENDS
def test_gradients_with_singular_matrices_on_masked_off_lanes(backend):
    A = rng(90).normal(size=(13, 3, 3)) + 3.0 * np.eye(3)
    b = rng(91).normal(size=(13, 3))
    A[[2, 5]] = 0.0
    b[[2, 5], 0] = -1.0  # the singular lanes do not solve
    b[[3, 4], 0] = 1.0
    f = vmapper.batched(guarded_linalg, backend=backend)
    check_grads(f, (A, b), argnums=(0, 1))
    vals, (gA, gb) = vmapper.value_and_grad(f, (0, 1))(A, b)
    assert np.isfinite(gA).all() and np.isfinite(gb).all()


def shared_weights(x, W, V):
    h = np.tanh(np.einsum("ij,j->i", W, x))
    return np.sum(np.tensordot(V, h, 1) ** 2) + np.sum(np.linalg.solve(W + 4.0 * np.eye(3), x))


def test_shared_weights_get_gradients_summed_over_the_lanes():
    f = vmapper.batched(shared_weights, in_axes=(0, None, None))
    check_grads(f, (rng(92).normal(size=(9, 3)), rng(93).normal(size=(3, 3)), rng(94).normal(size=(2, 3))),
                argnums=(0, 1, 2))


def int_operand(x, M):
    return np.sum(np.einsum("ij,j->i", M, x)) + np.linalg.det(M * 1.0)


def test_integer_operands_get_no_gradient():
    M = ints(95, -3, 3, n=N * 9).reshape(N, 3, 3)
    _, (gx, gM) = vmapper.value_and_grad(vmapper.batched(int_operand), (0, 1))(floats(96, shape=(3,)), M)
    assert gM is None and np.allclose(gx, M.sum(axis=1))
