"""``vmapper.profile()``: per-line, per-operation times of batched calls and backward sweeps."""
import numpy as np
import pytest

import vmapper
from source_lines import line_of

RNG = np.random.default_rng(0)


def layer(x, W):
    h = np.tanh(W @ x)  # profile-matmul
    s = 0.0
    k = 0
    while s < 3.0 and k < 20:  # profile-loop
        s = s + abs(h[0]) + 0.5
        k += 1
    return s * np.sum(h)  # profile-return


def escape(i, table, maxit):
    c = table[i]  # a gather: the loop below is a kernel region, not the whole function
    cr, ci = c[0], c[1]
    zr, zi, n = 0.0, 0.0, 0
    while zr * zr + zi * zi <= 4.0 and n < maxit:  # profile-region
        zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
        n += 1
    return n


def scalar_steps(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def _rows(prof, phase, fn, line=None, op=None):
    return [r for r in prof.rows if r.phase == phase and r.function == fn
            and (line is None or r.line == line) and (op is None or r.op == op)]


def test_forward_rows_name_the_users_lines_and_operations_and_results_are_unchanged():
    x, W = RNG.normal(size=(40, 3)), RNG.normal(size=(3, 3))
    f = vmapper.batched(layer, in_axes=(0, None), backend="numpy")
    plain = f(x, W)
    with vmapper.profile() as prof:
        profiled = f(x, W)
    np.testing.assert_array_equal(profiled, plain)
    (mm,) = _rows(prof, "forward", "layer", line_of(layer, "profile-matmul"), "matmul")
    assert mm.launches == 1 and mm.mean_lanes == 40 and "W @ x" in mm.source
    assert _rows(prof, "forward", "layer", line_of(layer, "profile-loop"))
    assert all(r.seconds >= 0 for r in prof.rows)
    assert prof.total_seconds == pytest.approx(sum(r.seconds for r in prof.rows))
    text = str(prof)
    assert "layer:" in text and "matmul" in text and "total over" in text
    per_line = prof.by_line()
    assert {(p, fn, line) for p, fn, line, _, _ in per_line} >= {
        ("forward", "layer", line_of(layer, "profile-matmul"))}


def test_backward_rows_are_attributed_to_the_line_that_recorded_them():
    x, W = RNG.normal(size=(30, 3)), RNG.normal(size=(3, 3))
    f = vmapper.batched(layer, in_axes=(0, None), backend="numpy")
    vg = vmapper.value_and_grad(f, argnums=1)
    plain = vg(x, W)
    with vmapper.profile() as prof:
        profiled = vg(x, W)
    np.testing.assert_array_equal(profiled[0], plain[0])
    np.testing.assert_array_equal(profiled[1], plain[1])
    assert _rows(prof, "backward", "layer", line_of(layer, "profile-matmul"), "matmul")
    assert _rows(prof, "backward", "(gradients of shared arrays)")
    assert _rows(prof, "forward", "layer", line_of(layer, "profile-matmul"), "matmul")


def test_whole_function_kernels_and_kernel_regions_have_rows():
    with vmapper.profile() as prof:
        vmapper.batched(scalar_steps, backend="numba")(np.arange(1, 300))
        table = RNG.uniform(-2, 1, (50, 2))
        vmapper.batched(escape, in_axes=(0, None, None), backend="numba")(RNG.integers(0, 50, 80), table, 32)
    (kernel,) = _rows(prof, "forward", "scalar_steps", op="kernel")
    assert kernel.launches == 1 and kernel.mean_lanes == 299
    assert _rows(prof, "forward", "escape", line_of(escape, "profile-region"), "kernel region")


def test_building_a_kernel_is_a_compile_row_not_part_of_the_users_line():
    from vmapper.kernels import cache
    cache.clear_memory()  # (this process rebuilds the kernel: from numba's disk cache at least)
    f = vmapper.batched(scalar_steps, backend="numba")
    with vmapper.profile() as prof:
        f(np.arange(1, 200))
    compiled = _rows(prof, "compile", "(compile)")
    assert {r.op for r in compiled} >= {"kernel source", "numba serial"}
    assert _rows(prof, "forward", "scalar_steps", op="kernel")
    with vmapper.profile() as again:  # built: no compile row
        f(np.arange(1, 200))
    assert not _rows(again, "compile", "(compile)") and _rows(again, "forward", "scalar_steps", op="kernel")


def test_calls_outside_the_block_add_nothing_and_an_aborted_call_does_not_skew_the_next():
    f = vmapper.batched(layer, in_axes=(0, None), backend="numpy")
    x, W = RNG.normal(size=(10, 3)), RNG.normal(size=(3, 3))
    with vmapper.profile() as prof:
        with pytest.raises(vmapper.LaneError):
            f(x, np.zeros((2, 2)))  # fails in the matmul, with timed operations still open
        f(x, W)
    before = len(prof.rows), prof.total_seconds
    f(x, W)
    assert (len(prof.rows), prof.total_seconds) == before
    assert all(r.seconds >= 0 for r in prof.rows)


def triples_above_half(x):
    if x > 0.5:
        x = x * 3.0
    return x + 1


def test_loading_the_runtimes_select_kernel_is_a_compile_row_not_the_users_if():
    from vmapper.kernels import lane_select
    lane_select._READY.clear()  # (as in a new process: numba loads or compiles it on first use)
    f = vmapper.batched(triples_above_half, backend="numpy")
    with vmapper.profile() as prof:
        f(RNG.random(1000).astype(np.float32))
    assert {r.op for r in _rows(prof, "compile", "(compile)")} >= {"numba lane select (float32)"}
    with vmapper.profile() as again:
        f(RNG.random(1000).astype(np.float32))
    assert not _rows(again, "compile", "(compile)")


def doubled_sum(v):
    return v.sum() * 2


def test_the_first_kernel_check_is_a_compile_row_and_explain_names_the_method():
    f = vmapper.batched(doubled_sum, backend="numba")
    with vmapper.profile() as prof:
        f(np.ones((10, 3)))
    assert {r.op for r in _rows(prof, "compile", "(compile)")} >= {"kernel check"}
    assert "method '.sum()' cannot run in a kernel" in f.explain()


def squared_plus_one(x):
    return x * x + 1.0


def calls_squared_plus_one(x):
    return squared_plus_one(x) + 1.0


def test_capturing_a_helper_on_first_use_is_booked_under_compile():
    from vmapper import program
    program._cache.pop(squared_plus_one, None)  # (captured afresh inside the profile)
    f = vmapper.batched(calls_squared_plus_one, backend="numpy")
    with vmapper.profile() as prof:
        f(np.arange(4.0))
    ops = {(r.phase, r.op) for r in prof.rows}
    assert ("compile", "capture and passes") in ops


def test_a_nested_profile_records_its_calls_and_hands_them_to_the_outer_one():
    f = vmapper.batched(scalar_steps, backend="numpy")
    n = np.arange(1, 50)
    with vmapper.profile() as solo:
        f(n)
    with vmapper.profile() as outer:
        with vmapper.profile() as inner:
            f(n)
        f(n)

    def launches(p):
        return sum(r.launches for r in p.rows if r.phase == "forward")
    assert launches(solo) > 0
    assert launches(inner) == launches(solo)
    assert launches(outer) == 2 * launches(solo)


@vmapper.batched(memo=True)
def leaf_sum(node):
    if node.is_leaf:
        return node.value
    return leaf_sum(node.left) + leaf_sum(node.right)


def test_the_first_forest_heights_kernel_is_a_compile_row_not_the_users_call(monkeypatch):
    from vmapper import forest
    monkeypatch.setattr(forest, "_HEIGHT_KERNEL", [])  # (a fresh dispatcher: its first call compiles or loads)
    f = vmapper.Forest.from_nested([(1, 2), ((3, 4), 5)])
    with vmapper.profile() as prof:
        assert leaf_sum(f.roots).tolist() == [3, 12]
    assert [r.op for r in _rows(prof, "compile", "(compile)", op="Forest heights kernel")] == ["Forest heights kernel"]
