"""Kernels of functions that read data globals: the names' current values are uniform
arguments of each launch (vmapper/runtime/kernel_globals.py).  The suite pins the numpy
runtime (conftest.py), so these tests ask for the numba backend."""
import ast
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import vmapper
from vmapper.errors import LaneError
from vmapper.testing import check_batching
from vmapper.testing.program_generator import _exec_source, generate_program

LR, EPS = 0.05, 1e-10
SCALE = 3
TABLE = np.arange(4.0)


def adagrad(p, g, acc):
    acc = acc + g * g
    return p - LR * g / (np.sqrt(acc) + EPS), acc


def scaled_steps(x):
    n = 0
    while x > 1.0:
        x = x / SCALE
        n += 1
    return n


def steps_after_a_gather(x, table):
    base = table[0]  # (a gather: the function is not one kernel, its loop is a kernel region)
    n = 0
    while x > 1.0:
        x = x / SCALE
        n += 1
    return n + base


def reads_table(i):
    return TABLE[i] * LR


BOUND_LATER = 4.0


def reads_bound_later(x):
    return x * BOUND_LATER


floats = st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=1, max_size=40)


@settings(max_examples=25, deadline=None)
@given(floats, floats, floats)
def test_module_constants_keep_an_elementwise_function_one_kernel(p, g, acc):
    n = min(len(p), len(g), len(acc))
    p, g, acc = (np.array(v[:n], np.float32) for v in (p, g, acc))
    acc = np.abs(acc)
    bf = vmapper.batched(adagrad, backend="numba")
    check_batching(bf, (p, g, acc))  # bitwise: + - * / and sqrt are exact in both
    assert bf.last_stats["kernel_launches"] == 1 and bf.last_stats["launches"] == 1


def test_a_new_value_of_a_global_reaches_the_next_call(monkeypatch):
    x = np.array([1.0, 8.0, 100.0, 1e6])
    bf = vmapper.batched(scaled_steps, backend="numba")
    assert bf(x).tolist() == [scaled_steps(v) for v in x] == [0, 2, 5, 13]
    monkeypatch.setitem(globals(), "SCALE", 10)
    assert bf(x).tolist() == [scaled_steps(v) for v in x] == [0, 1, 2, 6]
    assert bf.last_stats["kernel_launches"] == 1


def test_a_kernel_region_reads_the_globals_of_its_blocks_at_each_launch(monkeypatch):
    x, table = np.array([1.0, 8.0, 100.0, 1e6]), np.array([10])
    bf = vmapper.batched(steps_after_a_gather, in_axes=(0, None), backend="numba")
    assert "kernel region" in bf.explain()
    for scale in (3, 10):
        monkeypatch.setitem(globals(), "SCALE", scale)
        assert bf(x, table).tolist() == [steps_after_a_gather(v, table) for v in x]
        assert bf.last_stats["kernel_launches"] == 1
    assert bf(x, table).tolist() == [10, 11, 12, 16]


def test_closure_variables_are_read_at_each_call():
    def make():
        k = 2.0

        def f(x):
            return x * k + 1.0

        def set_k(v):
            nonlocal k
            k = v
        return f, set_k

    f, set_k = make()
    bf = vmapper.batched(f, backend="numba")
    x = np.array([1.0, 2.0, 3.0])
    assert bf(x).tolist() == [3.0, 5.0, 7.0]
    set_k(-1.0)
    assert bf(x).tolist() == [0.0, -1.0, -2.0]
    assert bf.last_stats["kernel_launches"] == 1


def test_a_global_that_is_not_a_scalar_runs_on_the_numpy_runtime():
    bf = vmapper.batched(reads_table, backend="numba")
    check_batching(bf, (np.array([0, 3, 1]),))
    assert bf.last_stats["kernel_launches"] == 0


def test_a_global_deleted_after_compiling_raises_the_per_sample_name_error_at_its_line(monkeypatch):
    bf = vmapper.batched(reads_bound_later, backend="numba")
    assert bf(np.array([1.0, 2.0])).tolist() == [4.0, 8.0]
    assert bf.last_stats["kernel_launches"] == 1
    monkeypatch.delitem(globals(), "BOUND_LATER")
    with pytest.raises(LaneError, match=r"NameError: name 'BOUND_LATER' is not defined on lane\(s\) \[0, 1\] at "
                                        r".*test_kernel_globals.py:\d+\n.*return x \* BOUND_LATER"):
        bf(np.array([1.0, 2.0]))


def test_gradients_through_a_kernel_that_reads_globals_equal_the_numpy_runtime():
    rng = np.random.default_rng(0)
    p, g, acc = rng.normal(size=(3, 50))
    acc = np.abs(acc) + 0.1

    def loss(p, g, acc):
        new_p, new_acc = adagrad(p, g, acc)
        return new_p * new_p + new_acc

    bf = vmapper.batched(loss, backend="numba")
    got = vmapper.value_and_grad(bf, argnums=(0, 1, 2))(p, g, acc)
    assert bf.last_stats["kernel_launches"] == 1  # adagrad's kernel, with its dual-number partials
    want = vmapper.value_and_grad(vmapper.batched(loss, backend="numpy"), argnums=(0, 1, 2))(p, g, acc)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-14)
    for a, b in zip(got[1], want[1]):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_the_dump_names_the_module_instead_of_printing_its_namespace():
    text = vmapper.batched(adagrad, backend="numba").explain()
    assert f"load_global(name='LR', globals=<globals of {__name__}>)" in text
    assert "__builtins__" not in text


# ---- generated programs with every number a module constant ------------------------------------

_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")


def _with_constants_as_globals(prog):
    """``prog``'s function with each numeric literal read from a module global of its value
    (``0.5`` -> ``C_0_5``): the same program, every constant a ``load_global``."""
    names = {}

    def to_global(m):
        name = "C_" + m.group(0).replace(".", "_")
        names[name] = ast.literal_eval(m.group(0))
        return name
    source = _NUMBER.sub(to_global, prog.source)
    assert names, "a generated program without constants"
    return _exec_source(prog, source, f"<vmapper-generated-{prog.seed}-globals>", names)


# (a numba kernel of a generated program takes seconds to compile: few seeds, default size)
@pytest.mark.parametrize("backend, seeds, size", [("numpy", range(40), {"max_depth": 4, "max_stmts": 8}),
                                                 ("numba", range(3), {})])
def test_generated_programs_reading_their_constants_as_globals_equal_the_per_sample_run(backend, seeds, size):
    for seed in seeds:
        prog = generate_program(seed, **size)
        bf = vmapper.batched(_with_constants_as_globals(prog), backend=backend)
        args = prog.make_args(np.random.default_rng(seed), 64)
        try:
            check_batching(bf, args)
            assert bf.last_stats["kernel_launches"] == (1 if backend == "numba" else 0)
        except Exception as exc:
            exc.add_note(f"seed {seed}, backend {backend}:\n{prog.source}")
            raise
