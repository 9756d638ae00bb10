"""Kernel partials through loops that lanes leave at different trips (``break``/``continue``).

Such a loop over a per-sample array runs its body as a kernel region
(passes/kernel_regions.py) whose loop-carried variables are the region's
parameters: uniform (not differentiated) on the first trip, assigned from
differentiated values inside.  Their tangents must be bound wherever the
variables are -- on entry, as zero -- or a lane that leaves early reads an
unbound tangent (``UnboundLocalError: local variable 'acc$d0'``).  The numba
backend's gradients must equal the numpy runtime's reverse-mode tape under
every ``kernel_partials`` policy, and generated code never reports line 0.
"""
import math

import numpy as np
import pytest

import vmapper
from vmapper.autodiff.forward_mode import (contraction_function, jvp_function, result_count,
                                           vjp_kernel_function)
from vmapper.autodiff.kernel_partials import POLICIES
from vmapper.autodiff.reverse_kernel import adjoint_function
from vmapper.errors import LaneError
from vmapper.ir import Block, Branch, Const, Function, Instr, Jump, Return, Var
from vmapper.testing import check_grads

SEEDS = range(4)
LANES, LENGTH = 23, 7


def break_before_update(v):
    acc = 0.0
    for x in v:
        if x > 1.0:
            break
        acc = acc * 0.9 + x
    return acc


def continue_then_break_after_update(v):
    acc = 0.0
    for x in v:
        if x < 0:
            continue
        acc = acc + x
        if acc > 2:
            break
    return acc


def reversed_break(v):
    acc = 0.0
    for x in reversed(v):
        if x < 0:
            break
        acc = acc * 2 + x
    return acc


def continue_and_break_before_update(v):
    acc = 1.0
    prod = 1.0
    for x in v:
        if x < 0:
            continue
        if x > 1.2:
            break
        acc = acc * x + 0.5
        prod = prod * (1.0 + x * x)
    return acc + prod


def nested_break(v):
    acc = 0.0
    for x in v:
        t = x
        for y in v:
            if y > 1.0:
                break
            t = t * 0.5 + y * x
        if t > 3.0:
            break
        acc = acc + t
    return acc


def _staggered(rng, trigger, lo, hi, reverse=False):
    """Random rows in [lo, hi) where row i meets ``trigger`` at iteration i % (LENGTH + 1)
    (never, for the last residue): lanes leave the loop at every trip count."""
    v = rng.uniform(lo, hi, size=(LANES, LENGTH))
    for i in range(LANES):
        stop = i % (LENGTH + 1)
        if stop < LENGTH:
            v[i, LENGTH - 1 - stop if reverse else stop] = trigger + rng.uniform(-0.2, 0.2)
    return v


INPUTS = {
    break_before_update: lambda rng: _staggered(rng, 1.5, -0.5, 1.0),
    continue_then_break_after_update: lambda rng: rng.uniform(-0.6, 1.2, size=(LANES, LENGTH)),
    reversed_break: lambda rng: _staggered(rng, -0.5, 0.0, 1.0, reverse=True),
    continue_and_break_before_update: lambda rng: _staggered(rng, 1.6, -0.5, 1.2),
    nested_break: lambda rng: rng.uniform(-0.5, 1.3, size=(LANES, LENGTH)),
}
SHAPES = list(INPUTS)


def _value_and_grad(fn, backend, policy, *args, argnums=0):
    f = vmapper.batched(fn, backend=backend)
    out = vmapper.value_and_grad(f, argnums, kernel_partials=policy)(*args)
    return f, out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("fn", SHAPES, ids=[f.__name__ for f in SHAPES])
def test_loop_exits_numba_gradients_equal_the_tape(fn, policy, seed):
    v = INPUTS[fn](np.random.default_rng(seed))
    f, (value, grad) = _value_and_grad(fn, "numba", policy, v)
    assert f.last_stats["kernel_launches"] >= 1, "expected the loop body to run as a kernel region"
    _, (ref_value, ref_grad) = _value_and_grad(fn, "numpy", policy, v)
    np.testing.assert_allclose(value, ref_value, rtol=1e-13)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-11, atol=1e-12)
    np.testing.assert_array_equal(value, f(v))  # the forward value is the plain kernel's


@pytest.mark.parametrize("policy", POLICIES)
def test_the_reported_example(policy):
    v = np.array([[0.5, 2.0]])
    f = vmapper.batched(break_before_update, backend="numba")
    value, grad = vmapper.value_and_grad(f, kernel_partials=policy)(v)
    np.testing.assert_array_equal(value, [0.5])
    np.testing.assert_array_equal(grad, [[1.0, 0.0]])
    out, vjp_fn = vmapper.vjp(f, v, kernel_partials=policy)
    np.testing.assert_array_equal(out, [0.5])
    np.testing.assert_array_equal(vjp_fn(np.full(1, 2.0))[0], [[2.0, 0.0]])


@pytest.mark.parametrize("fn", SHAPES, ids=[f.__name__ for f in SHAPES])
def test_loop_exits_numba_gradients_match_finite_differences(fn):
    v = INPUTS[fn](np.random.default_rng(11))
    check_grads(vmapper.batched(fn, backend="numba"), (v,), rtol=1e-5, atol=1e-7)


def reassigned_parameter(a, b):
    if b > 0:
        a = a * b
    return a


@pytest.mark.parametrize("policy", POLICIES)
def test_a_parameter_not_differentiated_but_reassigned_from_one_that_is(policy):
    # the whole function is one kernel: ``a`` is active (assigned a * b) but not differentiated,
    # so its tangent is zero on entry; lanes where b <= 0 return it unassigned
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=17), rng.normal(size=17)
    f, (value, gb) = _value_and_grad(reassigned_parameter, "numba", policy, a, b, argnums=1)
    assert f.last_stats["kernel_launches"] >= 1
    np.testing.assert_array_equal(value, np.where(b > 0, a * b, a))
    np.testing.assert_array_equal(gb, np.where(b > 0, a, 0.0))
    _, (_, (ga, gb)) = _value_and_grad(reassigned_parameter, "numba", policy, a, b, argnums=(0, 1))
    _, (_, (ref_ga, ref_gb)) = _value_and_grad(reassigned_parameter, "numpy", policy, a, b, argnums=(0, 1))
    np.testing.assert_array_equal(ga, ref_ga)
    np.testing.assert_array_equal(gb, ref_gb)


def test_active_parameters_get_tangent_seeds():
    # d a / d b on entry is 0, d b / d b is 1; both bound before the function's first block
    ir = vmapper.batched(reassigned_parameter).program.ir
    dual = jvp_function(ir, [1])
    seeds = {ins.target: ins.args[0].value for ins in dual.blocks[dual.entry].instrs}
    assert seeds == {"a$d0": 0.0, "b$d0": 1.0}


def _regions(fn):
    f = vmapper.batched(fn, backend="numba")
    regions = f.program.ir.annotations["kernel_regions"]
    assert regions, "expected a kernel region"
    return [r.function for r in regions]


def _lines(fn_ir):
    for blk in fn_ir.blocks.values():
        for ins in blk.instrs:
            yield blk.label, str(ins), ins.line
        yield blk.label, str(blk.term), blk.term.line


@pytest.mark.parametrize("fn", SHAPES, ids=[f.__name__ for f in SHAPES])
def test_generated_code_of_a_region_never_has_line_0(fn):
    for region in _regions(fn):
        floats = [k for k in range(len(region.params)) if not region.params[k].startswith("$")]
        m = result_count(region) or 1
        built = [region, jvp_function(region, floats), vjp_kernel_function(region, floats),
                 contraction_function(m, len(floats), region.source)]
        adjoint = adjoint_function(region, floats)
        built += [] if adjoint is None else [adjoint]
        for ir in built:
            zero = [(label, text) for label, text, line in _lines(ir) if not line]
            assert not zero, f"{ir.name}: code without a source line: {zero}"


def test_a_kernel_error_in_code_without_a_line_names_a_real_line():
    # generated code that still has no line (hand-built here) reports the function's first
    # line, never "line 0" with an empty source line
    source = vmapper.batched(break_before_update).program.ir.source
    first = 30
    blocks = {0: Block(0, [Instr("gt", "$c", (Var("x"), Const(0.0)), {}, first)],
                       Branch(Var("$c"), 1, 2, first, "if")),
              1: Block(1, [Instr("copy", "y", (Var("x"),), {}, first + 1)], Jump(2, first + 1)),
              2: Block(2, [Instr("add", "$r", (Var("y"), Var("x")), {}, 0)], Return(Var("$r"), 0))}
    fn = Function("no_line", ["x"], blocks, 0, source)
    from vmapper.kernels.codegen import compile_kernel
    kernel = compile_kernel(fn, [("lanes", np.dtype(np.float64), False)])
    lines = {line for line, _, _ in kernel.errors.values()}
    assert lines and 0 not in lines
    _, err_lane, err_code = kernel([np.zeros(3)], 3)
    assert err_lane == 0
    line, exc_type, message = kernel.errors[err_code]
    assert exc_type is UnboundLocalError and "'y'" in message and line == first


def test_lane_errors_in_a_differentiated_loop_still_name_the_users_line():
    def fails_late(v):
        acc = 0.0
        for x in v:
            if x > 1.0:
                break
            acc = acc + math.log(x)
        return acc
    import inspect
    line = inspect.getsourcelines(fails_late)[1] + 5
    v = np.array([[0.5, 0.0, 2.0], [0.3, 2.0, 0.0]])
    for policy in POLICIES:
        f = vmapper.batched(fails_late, backend="numba")
        with pytest.raises(LaneError) as info:
            vmapper.value_and_grad(f, kernel_partials=policy)(v)
        assert info.value.line == line and "math" in str(info.value) and "$d" not in str(info.value)
