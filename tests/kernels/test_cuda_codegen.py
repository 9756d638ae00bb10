"""The CUDA kernel generator (vmapper.kernels.cuda_codegen) without a GPU.

The generated CUDA C++ is compiled on the host with g++ through the shim of
:mod:`vmapper.testing.cuda_host` (same source, ``-ffp-contract=off`` as
NVRTC's ``--fmad=false``) and run over random lanes on a small grid.
Results must equal the numpy runtime (the per-sample semantics) bitwise --
dtype included -- for integer and ``+ - * /`` float work, and be within a
few ulp for math functions; failing lanes must report the runtime's smallest
failing lane, line, exception type and message; the error table must equal
the numba generator's.  100 default-size and 40 large generated programs are
compared bitwise with per-sample Python.  A stand-in for CuPy
(:func:`~vmapper.testing.cuda_host.fake_cupy`) tests the backend wiring:
argument conversion without host copies, dispatch, results, errors.

Kernels are compiled many to a translation unit (one g++ run per group) and
cached by source hash in the temp directory.  Skipped without g++.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import vmapper
from vmapper import LaneError, NonTerminationError
from vmapper.program import get_program
from vmapper.kernels.cuda_codegen import (NVRTC_OPTIONS, CudaKernel, compile_cuda_kernel,
                                          generate_cuda_source)
from vmapper.kernels.typing import KernelUnsupported
from vmapper.testing.cuda_host import compile_host_kernels, fake_cupy, host_compiler
from vmapper.testing.program_generator import compile_program, generate_program, run_per_sample

from .cuda_cases import (BY_ID, CASES, arg_types, assert_bitwise, bool_result, collatz, divide, escape_time,
                         float_divide, fma_candidate, floats, ints, lanes_of, mandelbrot, never_ends_for_odd,
                         result_key,
                         run_runtime, sums_an_array, tuple_result, assert_within_ulps)

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no g++ to compile CUDA source on the host")


# ---- the suite: one translation unit ------------------------------------------------------------

@pytest.fixture(scope="module")
def suite():
    ks = compile_host_kernels([(get_program(c.fn).ir, arg_types(c), c.max_iters) for c in CASES])
    return dict(zip(BY_ID, ks))


# ---- correctness against the runtime -------------------------------------------------------------

@pytest.mark.parametrize("cid", [c.id for c in CASES if c.kind == "bitwise"])
def test_bitwise_equal_to_the_numpy_runtime(suite, cid):
    c = BY_ID[cid]
    k = suite[cid]
    res, err_lane, err_code = k(list(c.args), lanes_of(c))
    assert err_lane == -1, k.errors.get(err_code)
    assert_bitwise(res, run_runtime(c))


@pytest.mark.parametrize("cid", [c.id for c in CASES if c.kind == "ulp"])
def test_math_functions_within_a_few_ulp(suite, cid):
    c = BY_ID[cid]
    res, err_lane, _ = suite[cid](list(c.args), lanes_of(c))
    assert err_lane == -1
    assert_within_ulps(res, run_runtime(c), 8)


@pytest.mark.parametrize("cid", [c.id for c in CASES if c.kind == "error"])
def test_lane_errors_match_the_runtime(suite, cid):
    """The smallest failing lane, its line, exception type and message, as the runtime reports."""
    c = BY_ID[cid]
    k = suite[cid]
    res, err_lane, err_code = k(list(c.args), lanes_of(c))
    with pytest.raises(NonTerminationError if c.max_iters is not None else LaneError) as info:
        run_runtime(c)
    exc = info.value
    assert err_lane == int(np.min(exc.lanes)), (err_lane, exc.lanes)
    line, etype, message = k.errors[err_code]
    assert line == exc.line
    if c.max_iters is None:
        assert etype is exc.python_error and message == exc.operation
    else:
        assert etype is NonTerminationError and message == f"loop passed max_iters={c.max_iters}"


def test_error_tables_and_result_types_equal_the_numba_generators():
    pytest.importorskip("numba")
    from vmapper.kernels.codegen import generate_source
    for c in CASES:
        ir = get_program(c.fn).ir
        counted = c.max_iters is not None
        _, numba_meta = generate_source(ir, arg_types(c), exact_math=True, count_loops=counted)
        _, cuda_meta = generate_cuda_source(ir, arg_types(c), count_loops=counted)
        assert cuda_meta["errors"] == numba_meta["errors"], c.id
        assert cuda_meta["result"] == numba_meta["result"], c.id


def test_results_do_not_depend_on_the_grid():
    c = BY_ID["nested-loops"]
    [k] = compile_host_kernels([(get_program(c.fn).ir, arg_types(c), None)])
    want, _, _ = k(list(c.args), lanes_of(c))
    for grid, block in [(1, 1), (4, 5), (400, 1)]:  # one thread for all lanes; more threads than lanes
        k.GRID, k.BLOCK = grid, block
        got, _, _ = k(list(c.args), lanes_of(c))
        assert_bitwise(got, want)


def test_uniform_arguments_are_passed_not_baked(suite):
    c = BY_ID["uniform-args"]
    k = suite[c.id]
    for scale, offset in [(-0.5, 7), (3.0, -2)]:
        args = (c.args[0], scale, offset)
        res, _, _ = k(list(args), lanes_of(c))
        assert_bitwise(res, run_runtime(c._replace(args=args)))
    assert "2.5" not in k.source.split("extern")[0].split("namespace")[-1]


def test_zero_lanes_launch_nothing(suite):
    res, lane, _ = suite["collatz"]([np.zeros(0, np.int64)], 0)
    assert res.shape == (0,) and lane == -1


_UBSAN_SCRIPT = """
import numpy as np
from kernels.cuda_cases import CASES, arg_types, lanes_of
from vmapper.program import get_program
from vmapper.testing.cuda_host import compile_host_kernels
from vmapper.testing.program_generator import compile_program, generate_program
specs = [(get_program(c.fn).ir, arg_types(c), c.max_iters) for c in CASES]
runs = [(list(c.args), lanes_of(c)) for c in CASES]
for seed in range(30):
    prog = generate_program(seed, max_depth=4, max_stmts=8)
    args = prog.make_args(np.random.default_rng(seed), 64)
    specs.append((get_program(compile_program(prog)).ir, [("lanes", a.dtype, False) for a in args], None))
    runs.append((list(args), 64))
flags = ("-fsanitize=undefined,float-cast-overflow", "-fno-sanitize-recover=all")
for k, (args, n) in zip(compile_host_kernels(specs, extra_flags=flags), runs):
    k(args, n)
print("clean")
"""


def test_generated_cpp_has_no_undefined_behaviour():
    """UBSan over the suite and 30 large generated programs: no signed overflow, no shift out of
    range, no out-of-range float -> int cast.  nvcc may exploit undefined behaviour as g++ may;
    this is why wrapping arithmetic is spelled in unsigned types and casts go through helpers."""
    runtime = subprocess.run([host_compiler(), "-print-file-name=libubsan.so"], capture_output=True,
                             text=True).stdout.strip()
    if not os.path.isabs(runtime):
        pytest.skip("no libubsan for g++")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", _UBSAN_SCRIPT], cwd=here, capture_output=True, text=True,
                         env=dict(os.environ, LD_PRELOAD=runtime), timeout=600)
    assert out.returncode == 0 and "runtime error" not in out.stderr, out.stderr[-3000:]
    assert out.stdout.strip().endswith("clean")


# ---- generated programs ------------------------------------------------------------------------

GENERATED = [("default", s) for s in range(100)] + [("large", s) for s in range(40)]
_SIZES = {"default": {}, "large": {"max_depth": 4, "max_stmts": 8}}


@pytest.fixture(scope="module")
def generated():
    progs, specs = [], []
    for size, seed in GENERATED:
        prog = generate_program(seed, **_SIZES[size])
        fn = compile_program(prog)
        args = prog.make_args(np.random.default_rng(seed), 64)
        progs.append((prog, fn, args))
        specs.append((get_program(fn).ir, [("lanes", a.dtype, False) for a in args], None))
    return dict(zip(GENERATED, zip(progs, compile_host_kernels(specs))))


@pytest.mark.parametrize("size_seed", GENERATED, ids=lambda c: f"{c[0]}-seed-{c[1]}")
def test_generated_program_bitwise_equal_to_per_sample_python(generated, size_seed):
    (prog, fn, args), k = generated[size_seed]
    res, lane, code = k(list(args), 64)
    assert lane == -1, k.errors.get(code)
    got = list(zip(*[r.tolist() for r in res])) if isinstance(res, tuple) else res.tolist()
    want = run_per_sample(fn, args)
    bad = [j for j, (g, w) in enumerate(zip(got, want)) if result_key(g) != result_key(w)]
    assert not bad, f"lanes {bad[:5]}: {[got[j] for j in bad[:3]]} vs {[want[j] for j in bad[:3]]}\n{prog.source}"


# ---- what the generator refuses, the kernel object -------------------------------------------------

def indexes(x):
    return x[0]


def test_unsupported_functions_and_types_raise_kernel_unsupported():
    with pytest.raises(KernelUnsupported, match="getitem"):
        generate_cuda_source(get_program(indexes).ir, [("lanes", np.float64, False)])
    with pytest.raises(KernelUnsupported, match="complex"):
        generate_cuda_source(get_program(collatz).ir, [("lanes", np.complex128, False)])


def test_source_is_one_global_kernel_without_fma_or_fast_math():
    src, _ = generate_cuda_source(get_program(mandelbrot).ir, [("lanes", np.float64, False)] * 2,
                                  name="mandel")
    assert src.count("__global__") == 1 and 'extern "C" __global__ void mandel(' in src
    # no explicit FMA, no fast-math intrinsics (__expf, __fdividef...)
    assert not re.search(r"\bfmaf?\(|__fmaf?_|__fdividef|__(exp|log|sin|cos|tan|pow)f\(", src)
    assert "--fmad=false" in NVRTC_OPTIONS and not any("fast" in o for o in NVRTC_OPTIONS)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_float_choice_is_a_vm_pick_not_a_ternary(dtype):
    # NVVM compiled `x < 0.0 ? x : 0.0` to min.f64 (-0.0 for x = -0.0; Python's min gives 0.0):
    # min/max, selects, np.where and numpy's extremes choose through vm_pick's selp instead
    c = BY_ID["signed-zero-choices"]
    src, _ = generate_cuda_source(get_program(c.fn).ir, [("lanes", dtype, False)])
    body = src[src.index("VM_FI int lane("):]
    ct = "f64" if dtype == np.float64 else "f32"
    assert body.count(f"vm_pick_{ct}(") == 5 and "?" not in body
    assert re.search(rf"vm_pick_{ct}\(bool c, {ct} a, {ct} b\) {{\s*{ct} r;\s*asm\(.*selp\.{ct}", src)


def test_kernels_are_cached_per_function_types_and_max_iters():
    ir = get_program(collatz).ir
    types = [("lanes", np.int64, False)]
    k = compile_cuda_kernel(ir, types)
    assert isinstance(k, CudaKernel) and compile_cuda_kernel(ir, types) is k
    assert compile_cuda_kernel(ir, types, max_iters=10) is not k
    assert compile_cuda_kernel(ir, [("lanes", np.int32, False)]) is not k


def test_building_a_kernel_does_not_import_cupy():
    code = ("import sys, numpy as np\n"
            "from vmapper.program import get_program\n"
            "from vmapper.testing.programs import collatz_steps\n"
            "from vmapper.kernels.cuda_codegen import compile_cuda_kernel\n"
            "compile_cuda_kernel(get_program(collatz_steps).ir, [('lanes', np.int64, False)])\n"
            "assert 'cupy' not in sys.modules and 'numba' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


# ---- the backend's wiring, with a stand-in for CuPy -------------------------------------------------

@pytest.fixture
def cp(monkeypatch):
    fake = fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    return fake


def test_cupy_arrays_run_as_one_cuda_kernel_and_stay_on_the_device(cp):
    n = np.arange(1, 500, dtype=np.int64)
    f = vmapper.batched(collatz, backend="numpy")  # CuPy arguments select the CuPy backend
    want = f(n)
    out = f(cp.asarray(n))
    assert f.last_stats["launches"] == 1
    assert isinstance(out, cp.ndarray) and out.dtype == np.int64
    assert_bitwise(out.get(), want)


def test_cupy_tuple_results_uniform_args_and_in_axes(cp):
    a, x = ints(64), floats(64)
    out = vmapper.batched(tuple_result)(cp.asarray(a), cp.asarray(x))
    assert isinstance(out, tuple) and all(isinstance(o, cp.ndarray) for o in out)
    assert_bitwise(tuple(o.get() for o in out), vmapper.batched(tuple_result, backend="numpy")(a, x))
    cr, ci = np.linspace(-2, 1, 30), np.linspace(-1, 1, 30)
    got = vmapper.batched(escape_time, in_axes=(-1, 0, None))(cp.asarray(cr), cp.asarray(ci), 32)
    want = vmapper.batched(escape_time, in_axes=(-1, 0, None), backend="numpy")(cr, ci, 32)
    assert isinstance(got, cp.ndarray)
    assert_bitwise(got.get(), want)


def test_backend_cupy_with_numpy_arrays_returns_numpy(cp):
    x, y = floats(50, 1.0), floats(50, 1.0)
    out = vmapper.batched(bool_result, backend="cupy")(x, y)
    assert isinstance(out, np.ndarray)
    assert_bitwise(out, vmapper.batched(bool_result, backend="numpy")(x, y))


CUDA_SCALE = 2.5


def scaled_by_a_global(x):
    return x * CUDA_SCALE + 1.0


def test_cupy_kernels_take_globals_as_uniform_arguments(cp, monkeypatch):
    x = floats(40, 3.0)
    f = vmapper.batched(scaled_by_a_global, backend="cupy")
    for scale in (2.5, -0.75):  # the launch passes the current value: nothing is baked in
        monkeypatch.setitem(globals(), "CUDA_SCALE", scale)
        assert_bitwise(f(x), vmapper.batched(scaled_by_a_global, backend="numpy")(x))
        assert f.last_stats["kernel_launches"] == 1
    monkeypatch.delitem(globals(), "CUDA_SCALE")
    with pytest.raises(vmapper.CupyBackendError, match="the name 'CUDA_SCALE' it reads is not defined"):
        f(x)


def test_cupy_lane_errors_raise_like_the_runtime(cp):
    b = np.array([3, 1, 0, 2, 0], dtype=np.int64)
    with pytest.raises(LaneError) as info:
        vmapper.batched(divide)(cp.asarray(np.arange(5)), cp.asarray(b))
    assert list(info.value.lanes) == [2] and info.value.python_error is ZeroDivisionError
    with pytest.raises(NonTerminationError, match="max_iters"):
        vmapper.batched(never_ends_for_odd, max_iters=20)(cp.asarray(np.array([2, 4, 3])))


def test_cupy_error_word_is_reused_only_while_it_reads_no_error(cp):
    f = vmapper.batched(divide)
    a = cp.asarray(np.arange(5))
    good, bad = cp.asarray(np.array([3, 1, 4, 2, 5])), cp.asarray(np.array([3, 1, 0, 2, 0]))
    f(a, good)
    [kernel] = [k for k in _cuda_kernels() if "// function divide " in k.source]
    spare = kernel._spare_error_words[0]
    word = spare[-1]
    f(a, good)
    assert spare == [word]                          # the same word, taken and given back
    with pytest.raises(LaneError):
        f(a, bad)
    assert spare == []                              # the word that holds an error is dropped
    assert_bitwise(f(a, good).get(), np.arange(5) // np.array([3, 1, 4, 2, 5]) + 1)
    assert len(spare) == 1 and spare[0] is not word


def _cuda_kernels():
    from vmapper.kernels.cuda_codegen import _kernels
    return list(_kernels.values())


def test_what_cannot_run_as_one_cuda_kernel_raises(cp):
    from vmapper import CupyBackendError
    assert issubclass(CupyBackendError, vmapper.BatchingError)
    with pytest.raises(CupyBackendError, match="only whole elementwise functions") as info:
        vmapper.batched(sums_an_array)(cp.asarray(np.ones((4, 2))))
    assert "'getitem'" in str(info.value) and "line" in str(info.value)
    with pytest.raises(CupyBackendError, match="not elementwise"):
        vmapper.batched(sums_an_array, backend="cupy")(np.ones((4, 2)))
    with pytest.raises(CupyBackendError, match="per-sample array"):
        vmapper.batched(collatz)(cp.asarray(np.ones((3, 4), np.int64)))
    with pytest.raises(CupyBackendError, match="complex128"):
        vmapper.batched(collatz)(cp.asarray(np.ones(4, np.complex128)))
    with pytest.raises(CupyBackendError, match="needs CuPy arrays"):
        f = vmapper.batched(fma_candidate, in_axes=(0, None, None), backend="cupy")
        vmapper.value_and_grad(f)(np.ones(3), 1.0, 2.0)


def newton_cube_root(a, x0):
    x = x0
    k = 0
    while abs(x * x * x - a) > 1e-12 * abs(a) and k < 60:
        x = x - (x * x * x - a) / (3.0 * x * x)
        k += 1
    return x * CUDA_SCALE


def gate(x, w):
    if x > 0.5:
        return w * np.tanh(x) + x
    return np.exp(w * x) - 1.0


def two_results(x, y):
    return x * y + 1.0, np.sin(x) / (1.0 + y * y)


@pytest.mark.parametrize("policy", ["store", "recompute"])
def test_cupy_gradients_run_as_cuda_kernels_and_equal_the_numba_backends(cp, policy):
    rng = np.random.default_rng(3)
    a, x0 = rng.uniform(0.5, 30.0, 40), rng.uniform(1.0, 4.0, 40)
    x, y = rng.normal(size=40), rng.normal(size=40)

    def both(fn, args, in_axes=0, argnums=0):
        on_gpu = vmapper.value_and_grad(vmapper.batched(fn, in_axes=in_axes), argnums, kernel_partials=policy)
        on_cpu = vmapper.value_and_grad(vmapper.batched(fn, in_axes=in_axes, backend="numba", exact_math=True),
                                        argnums, kernel_partials=policy)
        device = [cp.asarray(v) if isinstance(v, np.ndarray) else v for v in args]
        return on_gpu(*device), on_cpu(*args)

    (v, g), (v_cpu, g_cpu) = both(newton_cube_root, (a, x0), argnums=(0, 1))  # a loop: its trips differ per lane
    assert isinstance(v, cp.ndarray) and all(isinstance(gi, cp.ndarray) for gi in g)
    np.testing.assert_allclose(v.get(), v_cpu, rtol=1e-14)
    for gi, gi_cpu in zip(g, g_cpu):
        np.testing.assert_allclose(gi.get(), gi_cpu, rtol=1e-12)
    (v, g), (v_cpu, g_cpu) = both(gate, (x, 0.7), in_axes=(0, None), argnums=(0, 1))  # a shared scalar
    np.testing.assert_allclose(g[0].get(), g_cpu[0], rtol=1e-14)
    assert isinstance(g[1], float) and np.isclose(g[1], g_cpu[1], rtol=1e-13)
    out, back = vmapper.vjp(vmapper.batched(two_results), cp.asarray(x), cp.asarray(y), kernel_partials=policy)
    grads = back((cp.asarray(y), cp.asarray(x)))
    out_cpu, back_cpu = vmapper.vjp(vmapper.batched(two_results, backend="numba", exact_math=True), x, y,
                                    kernel_partials=policy)
    for gi, gi_cpu in zip(grads, back_cpu((y, x))):
        np.testing.assert_allclose(gi.get(), gi_cpu, rtol=1e-13)


def test_cupy_gradients_raise_lane_errors_as_the_forward_does(cp):
    vg = vmapper.value_and_grad(vmapper.batched(float_divide))
    with pytest.raises(LaneError, match="ZeroDivisionError") as info:
        vg(cp.asarray(np.array([1.0, 2.0, 3.0])), cp.asarray(np.array([1.0, 0.0, 2.0])))
    assert list(info.value.lanes) == [1]


def test_explain_names_the_cupy_backend():
    assert "backend cupy: runs as ONE CUDA kernel" in vmapper.batched(collatz, backend="cupy").explain()
    assert "calling it raises" in vmapper.batched(sums_an_array, backend="cupy").explain()
    with pytest.raises(ValueError, match="cupy"):
        vmapper.batched(collatz, backend="cuda")
