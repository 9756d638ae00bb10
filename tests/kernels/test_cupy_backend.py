"""The CuPy backend on a real GPU (skipped without CuPy or a CUDA device).

The cases of ``cuda_cases.py``, as ``test_cuda_codegen.py`` (which runs the generated source
on the host with g++), compiled by NVRTC and run on the device: bitwise equal
to the numpy runtime for integer and ``+ - * /`` float work (NaN payloads
aside: a GPU writes its own canonical NaN), within a few ulp for libdevice's
math functions; lane errors as the runtime reports them; generated programs
equal to per-sample Python; and the ``vmapper.batched`` route: CuPy arrays in,
CuPy arrays out, a clear error for what is not one elementwise kernel.
"""
from __future__ import annotations

import numpy as np
import pytest

import vmapper
from vmapper import LaneError, NonTerminationError
from vmapper.program import get_program
from vmapper.kernels.cuda_codegen import compile_cuda_kernel
from vmapper import CupyBackendError
from vmapper.testing.program_generator import compile_program, generate_program, run_per_sample
from vmapper.testing.programs import collatz_steps

cp = pytest.importorskip("cupy")
try:
    if cp.cuda.runtime.getDeviceCount() < 1:
        pytest.skip("no CUDA device", allow_module_level=True)
except Exception as exc:  # pragma: no cover - driver or runtime missing
    pytest.skip(f"no CUDA device: {exc}", allow_module_level=True)

from .cuda_cases import (BY_ID, CASES, arg_types, assert_bitwise, lanes_of, result_key,  # noqa: E402
                         run_runtime, sums_an_array, tuple_result, assert_within_ulps)

pytestmark = pytest.mark.gpu


def run_on_device(c):
    k = compile_cuda_kernel(get_program(c.fn).ir, arg_types(c), max_iters=c.max_iters)
    args = [a if j in c.uniform else cp.asarray(a) for j, a in enumerate(c.args)]
    res, lane, code = k(args, lanes_of(c))
    host = tuple(cp.asnumpy(r) for r in res) if isinstance(res, tuple) else cp.asnumpy(res)
    return k, host, lane, code


@pytest.mark.parametrize("cid", [c.id for c in CASES if c.kind == "bitwise"])
def test_bitwise_equal_to_the_numpy_runtime(cid):
    c = BY_ID[cid]
    k, res, lane, code = run_on_device(c)
    assert lane == -1, k.errors.get(code)
    assert_bitwise(res, run_runtime(c))


@pytest.mark.parametrize("cid", [c.id for c in CASES if c.kind == "ulp"])
def test_libdevice_math_within_a_few_ulp(cid):
    c = BY_ID[cid]
    k, res, lane, _ = run_on_device(c)
    assert lane == -1
    assert_within_ulps(res, run_runtime(c), 8)


@pytest.mark.parametrize("cid", [c.id for c in CASES if c.kind == "error"])
def test_lane_errors_match_the_runtime(cid):
    c = BY_ID[cid]
    k, res, err_lane, err_code = run_on_device(c)
    with pytest.raises(NonTerminationError if c.max_iters is not None else LaneError) as info:
        run_runtime(c)
    assert err_lane == int(np.min(info.value.lanes))
    assert k.errors[err_code][0] == info.value.line


@pytest.mark.parametrize("seed", range(50))
def test_generated_program_bitwise_equal_to_per_sample_python(seed):
    prog = generate_program(seed)
    fn = compile_program(prog)
    args = prog.make_args(np.random.default_rng(seed), 256)
    out = vmapper.batched(fn)(*[cp.asarray(a) for a in args])
    got = list(zip(*[cp.asnumpy(o).tolist() for o in out])) if isinstance(out, tuple) else cp.asnumpy(out).tolist()
    want = run_per_sample(fn, args)
    assert [result_key(g) for g in got] == [result_key(w) for w in want], prog.source


def test_batched_cupy_in_cupy_out_and_the_kernel_is_reused():
    n = np.arange(1, 200_001, dtype=np.int64)
    f = vmapper.batched(collatz_steps)
    out = f(cp.asarray(n))
    assert isinstance(out, cp.ndarray) and f.last_stats["launches"] == 1
    assert_bitwise(cp.asnumpy(out), vmapper.batched(collatz_steps, backend="numba")(n))
    k = compile_cuda_kernel(get_program(collatz_steps).ir, [("lanes", np.int64, False)])
    raw = k._function()
    f(cp.asarray(n[:100]))
    assert compile_cuda_kernel(get_program(collatz_steps).ir, [("lanes", np.int64, False)]) is k
    assert k._function() is raw
    a, x = np.arange(-5, 5), np.linspace(-1, 1, 10)
    r = vmapper.batched(tuple_result)(cp.asarray(a), cp.asarray(x))
    assert all(isinstance(o, cp.ndarray) for o in r)


def test_not_elementwise_functions_raise_on_cupy_arrays():
    with pytest.raises(CupyBackendError, match="only whole elementwise functions"):
        vmapper.batched(sums_an_array)(cp.asarray(np.ones((4, 2))))
    with pytest.raises(LaneError):
        vmapper.batched(_divide)(cp.asarray(np.arange(4)), cp.asarray(np.array([1, 0, 2, 0])))


def _divide(a, b):
    return a // b


def test_cross_entropy_on_cupy_arrays_matches_numpy():
    from vmapper.kernels.losses import cross_entropy, cross_entropy_vjp
    rng = np.random.default_rng(0)
    x, lab, g = rng.normal(size=(64, 5)), rng.integers(0, 5, size=64), rng.normal(size=64)
    np.testing.assert_allclose(cp.asnumpy(cross_entropy(cp.asarray(x), cp.asarray(lab))),
                               cross_entropy(x, lab), rtol=1e-13)
    np.testing.assert_allclose(cp.asnumpy(cross_entropy_vjp(cp.asarray(x), cp.asarray(lab), cp.asarray(g))),
                               cross_entropy_vjp(x, lab, g), rtol=1e-12, atol=1e-15)


def test_packed_tree_lstm_cell_on_cupy_arrays_matches_numpy():
    from vmapper.kernels.packed_cells import tree_lstm_cell_packed, tree_lstm_cell_packed_vjp
    rng = np.random.default_rng(1)
    g, cl, cr, gh, gc = (rng.normal(size=(32, w)) for w in (20, 4, 4, 4, 4))
    dev = [cp.asarray(a) for a in (g, cl, cr, gh, gc)]
    for got, want in zip(tree_lstm_cell_packed(*dev[:3]), tree_lstm_cell_packed(g, cl, cr)):
        np.testing.assert_allclose(cp.asnumpy(got), want, rtol=1e-12, atol=1e-15)
    for got, want in zip(tree_lstm_cell_packed_vjp(*dev), tree_lstm_cell_packed_vjp(g, cl, cr, gh, gc)):
        np.testing.assert_allclose(cp.asnumpy(got), want, rtol=1e-12, atol=1e-15)
    (got,) = tree_lstm_cell_packed_vjp(dev[0][:, :12], None, None, dev[3], dev[4])
    np.testing.assert_allclose(cp.asnumpy(got), tree_lstm_cell_packed_vjp(g[:, :12], None, None, gh, gc)[0],
                               rtol=1e-12, atol=1e-15)


def _adaptive_euler(y0, rate):
    # per-lane trip counts: the stored partials follow each lane's own loop
    y, t, h = y0, 0.0, 0.01
    while t < 1.0:
        y = y + h * (-rate * y + np.sin(t))
        t += h
        if abs(y) > 5.0:
            h = 0.005
    return y


def _lstm_step(i, f, o, u, c_prev):
    c = 1.0 / (1.0 + np.exp(-i)) * np.tanh(u) + 1.0 / (1.0 + np.exp(-f)) * c_prev
    return 1.0 / (1.0 + np.exp(-o)) * np.tanh(c), c


@pytest.mark.parametrize("policy", ["store", "recompute"])
def test_gradients_on_the_device_equal_the_numba_backends(policy):
    rng = np.random.default_rng(2)
    y0, rate = rng.normal(size=512) * 3, rng.uniform(0.1, 2.0, 512)
    vg = vmapper.value_and_grad(vmapper.batched(_adaptive_euler), (0, 1), kernel_partials=policy)
    v, g = vg(cp.asarray(y0), cp.asarray(rate))
    v_cpu, g_cpu = vmapper.value_and_grad(vmapper.batched(_adaptive_euler, backend="numba", exact_math=True), (0, 1),
                                          kernel_partials=policy)(y0, rate)
    assert isinstance(v, cp.ndarray) and all(isinstance(x, cp.ndarray) for x in g)
    np.testing.assert_allclose(cp.asnumpy(v), v_cpu, rtol=1e-12)
    for a, b in zip(g, g_cpu):
        np.testing.assert_allclose(cp.asnumpy(a), b, rtol=1e-11, atol=1e-14)
    ins = [rng.normal(size=1000) for _ in range(7)]
    out, back = vmapper.vjp(vmapper.batched(_lstm_step), *map(cp.asarray, ins[:5]), kernel_partials=policy)
    grads = back((cp.asarray(ins[5]), cp.asarray(ins[6])))
    _, back_cpu = vmapper.vjp(vmapper.batched(_lstm_step, backend="numba", exact_math=True), *ins[:5],
                              kernel_partials=policy)
    for a, b in zip(grads, back_cpu((ins[5], ins[6]))):
        np.testing.assert_allclose(cp.asnumpy(a), b, rtol=1e-12, atol=1e-15)
