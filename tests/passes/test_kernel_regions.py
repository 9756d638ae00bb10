"""Kernel regions: elementwise runs inside functions that are not elementwise as a whole
are outlined, run as one numba kernel, and give the per-sample loop's results bitwise."""
import math

import numpy as np
import pytest

import vmapper
from vmapper.passes.kernel_regions import KernelRegionStep
from vmapper.program import get_program
from vmapper.testing import check_batching, check_grads
from vmapper.testing.program_generator import generate_program

pytest.importorskip("numba")
RNG = np.random.default_rng(3)


def regions_of(fn):
    return get_program(fn).ir.annotations["kernel_regions"]


def escape(i, table, maxit):
    c = table[i]  # a gather: the function is not elementwise, its loop is
    cr, ci = c[0], c[1]
    zr = 0.0
    zi = 0.0
    n = 0
    while zr * zr + zi * zi <= 4.0 and n < maxit:
        zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
        n += 1
    return n + np.sum(c) * 0.0


def test_a_loop_after_a_gather_becomes_one_region_with_its_inputs_and_outputs():
    (region,) = regions_of(escape)
    assert isinstance(region, KernelRegionStep)
    assert region.params == ["ci", "cr", "maxit", "n", "zi", "zr"] and len(region.entries) == 1
    assert region.outputs == ["n"]  # zr, zi are dead after the loop
    assert len(region.exits) == 1
    assert "kernel region (lines" in vmapper.batched(escape).explain()


def test_region_kernel_equals_the_per_sample_loop_and_launches_once():
    table = RNG.uniform(-2, 1, (300, 2))
    idx = RNG.integers(0, 300, 500)
    f = vmapper.batched(escape, in_axes=(0, None, None), backend="numba")
    check_batching(f, (idx, table, 64), in_axes=(0, None, None))
    f(idx, table, 64)
    assert f.last_stats["kernel_launches"] == 1


def branches_then_reduce(v, k):
    s = v[0]  # not elementwise
    t = s * 2.0
    if t > 1.0:
        u = t - 1.0
        if k % 3 == 0:
            u = -u
    elif t < -1.0:
        u = t * t
    else:
        u = 0.5
        for j in range(k % 5):
            if j == 2:
                continue
            u = u * 1.5 + j
            if u > 3.0:
                break
    w = u + 1.0  # first assigned in the region, read after it
    return np.sum(v * w) + k


def test_branches_break_continue_and_values_first_assigned_in_the_region():
    v = RNG.normal(size=(200, 3))
    k = RNG.integers(-10, 10, 200)
    f = vmapper.batched(branches_then_reduce, backend="numba")
    check_batching(f, (v, k))
    assert f.last_stats["kernel_launches"] >= 1


def region_in_array_loop(v, n):
    acc = np.zeros(3)
    for i in range(n):
        acc = acc + v  # array work: not elementwise per lane
        x = float(i)
        steps = 0
        while x > 1.0:
            x = x / 3.0 if steps % 2 == 0 else x - 0.5
            steps += 1
        acc[0] = acc[0] + steps
    return np.sum(acc)


def test_a_region_inside_an_array_loop_launches_once_per_trip():
    v = RNG.normal(size=(50, 3))
    n = RNG.integers(0, 6, 50)
    f = vmapper.batched(region_in_array_loop, backend="numba")
    check_batching(f, (v, n))
    assert 1 <= f.last_stats["kernel_launches"] <= 5


def maybe_unbound(v, k):
    s = v[0]
    if k > 0:
        y = s * 2.0
        z = y + 1.0
        z = z * z
        z = z - y
    return np.sum(v) + (z if k > 0 else 0.0)


def test_a_variable_bound_only_on_some_paths_stays_correct():
    v = RNG.normal(size=(40, 2))
    k = RNG.integers(-2, 3, 40)
    check_batching(vmapper.batched(maybe_unbound, backend="numba"), (v, k))


def divides(v, d):
    s = v[0]
    q = 0.0
    for j in range(3):
        q = q + s // d + j
    return q + np.sum(v)


def test_a_lane_error_inside_a_region_names_the_lane_and_line():
    v = RNG.normal(size=(20, 2))
    d = np.ones(20)
    d[13] = 0.0
    # numpy float // 0.0 is inf, no error; use Python-int division to force one
    with pytest.raises(vmapper.LaneError, match=r"\[13\]"):
        vmapper.batched(int_divides, backend="numba")(v, d.astype(np.int64))


def int_divides(v, d):
    s = int(v[0] * 10)
    q = 0
    for j in range(3):
        q = q + s // d + j
    return q + np.sum(v)


def spins(v, k):
    s = v[0]
    while k > 0:
        s = s + 1.0
    return s + np.sum(v)


def test_max_iters_inside_a_region_raises_non_termination():
    v = RNG.normal(size=(10, 2))
    k = np.zeros(10, dtype=np.int64)
    k[4] = 1
    with pytest.raises(vmapper.NonTerminationError):
        vmapper.batched(spins, backend="numba", max_iters=50)(v, k)


def array_inputs(v, w):
    s = v[0]
    x = w * 2.0  # w is a per-sample array here: the region cannot be a scalar kernel
    for _ in range(3):
        x = x * 0.5 + s
    return np.sum(x)


def test_a_region_whose_input_is_an_array_runs_masked_with_the_same_results():
    v = RNG.normal(size=(30, 2))
    w = RNG.normal(size=(30, 4))
    f = vmapper.batched(array_inputs, backend="numba")
    check_batching(f, (v, w))
    assert f.last_stats["kernel_launches"] == 0


def smooth_region(v, w):
    s = np.sum(v * v)
    y = s
    t = 0.0
    while t < w:
        y = y + 0.1 * (math.sin(y) - 0.3 * y)
        t = t + 0.25
    return y * v[0]


def test_gradients_flow_through_a_region_by_dual_numbers():
    v = RNG.normal(size=(12, 3))
    w = RNG.uniform(0.1, 3.0, 12)
    f = vmapper.batched(smooth_region, backend="numba")
    check_grads(f, (v, w), argnums=(0,), rtol=1e-6)
    vals, (g_numba,) = vmapper.value_and_grad(f, (0,))(v, w)
    assert f.last_stats["kernel_launches"] >= 1
    _, (g_numpy,) = vmapper.value_and_grad(vmapper.batched(smooth_region, backend="numpy"), (0,))(v, w)
    np.testing.assert_allclose(g_numba, g_numpy, rtol=1e-11)


def _with_a_gather(prog):
    """The generated program with a non-elementwise first statement, so its body forms regions."""
    lines = prog.source.splitlines()
    lines.insert(1, "    a = a + int(np.sum(np.zeros(2)))")
    return "\n".join(lines) + "\n"


def _generated_with_a_gather(seed):
    import linecache
    prog = generate_program(seed)
    source = _with_a_gather(prog)
    filename = f"<vmapper-region-test-{seed}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"math": math, "np": np}
    exec(compile(source, filename, "exec"), namespace)
    return prog, source, namespace["prog"]


GENERATED_SEEDS = range(24)


def test_most_generated_programs_form_regions():
    with_regions = sum(bool(regions_of(_generated_with_a_gather(seed)[2])) for seed in GENERATED_SEEDS)
    assert with_regions >= len(GENERATED_SEEDS) // 2


@pytest.mark.parametrize("seed", GENERATED_SEEDS)
def test_generated_programs_with_regions_equal_the_per_sample_loop(seed):
    prog, source, fn = _generated_with_a_gather(seed)
    args = prog.make_args(np.random.default_rng(seed), 64)
    try:
        check_batching(fn, args, backend="numba")
    except Exception as exc:
        exc.add_note(source)
        raise


def keys_of_mixed_types(x, y):
    t = (x, y * 2.0, 0.5)
    s = 0.0
    for i, k in enumerate(("a", "b", 3)):
        if k == "b":  # the key stays a Python str: the counter leaves the region uniform
            continue
        s += t[i] if k != 3 else 0.0
    return s


def test_a_loop_counter_that_leaves_a_region_uniform_stays_uniform():
    x, y = RNG.normal(size=9), RNG.normal(size=9)
    f = vmapper.batched(keys_of_mixed_types, backend="numba")
    assert any(isinstance(s, KernelRegionStep) for s in _steps(get_program(keys_of_mixed_types).schedule))
    check_batching(f, (x, y))


def _steps(schedule):
    for s in schedule:
        yield s
        for attr in ("body", "steps"):
            yield from _steps(getattr(s, attr, None) or [])
