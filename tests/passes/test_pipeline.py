"""The pass pipeline: each pass keeps per-lane results and does what its docstring promises."""
import numpy as np
import pytest

import vmapper
from vmapper.frontend import build_function
from vmapper.ir import Branch
from vmapper.passes.cfg_cleanup import cleanup_cfg
from vmapper.passes.if_conversion import definitely_assigned, if_convert
from vmapper.passes.loops import find_loops
from vmapper.passes.manager import PassManager
from vmapper.passes.merge_calls import merge_calls
from vmapper.passes.spmd import LoopStep, spmd_schedule
from vmapper.passes.temporaries import classify_temporaries
from vmapper.program import Program
from vmapper.testing import check_batching
from vmapper.testing.programs import collatz_steps as collatz




def guarded(x, y):
    r = 0
    if y != 0:
        r = x // y
    return r


def largest_or_default(x, n):
    xs = [x] * n
    return max(xs) if n > 0 else -1.0


def running_max(n):
    best = None
    for i in range(n):
        v = (i * 7) % 5
        if best is None or v > best:
            best = v
    return best


def nested_loops(n):
    total = 0
    for i in range(n):
        j = 0
        while j < i:
            if (i + j) % 3 == 0:
                break
            total += j
            j += 1
        if total > 50:
            return -total
    return total


def tree_sum(node):
    if node.is_leaf:
        return node.value
    return tree_sum(node.left) + 2 * tree_sum(node.right)


def scaled_if_given(x, scale=None):
    z = x
    if scale is not None:
        z = x * scale
    return z


def plus_if_given(x, y=None):
    return x if y is None else x + y


def plus_if_pair(x, b):
    return x if b.shape[0] == 2 else x + b


def plus_unless_plain(x, mode):
    if mode != "plain":
        z = x + mode  # (a number where mode is not "plain")
    else:
        z = x * 2
    return z


def shifted_if_named(x, shift):
    return x - shift if shift in ("left", "right") else x + 1


def plus_thousand_if_large(x):
    y = x
    if x > 100:
        y = x + 1000  # (OverflowError for an int8 x, on the lanes that run it)
    return y


def minus_one_if_large(x):
    return x + (-1) if x > 10 else x


def _blocks_after(fn, passes):
    ir = build_function(fn)
    for p in passes:
        ir = p(ir)
    return ir


def test_cleanup_leaves_only_reachable_blocks_and_no_empty_jumps():
    ir = _blocks_after(nested_loops, [cleanup_cfg])
    preds = ir.predecessors()
    for b, blk in ir.blocks.items():
        assert b == ir.entry or preds[b], f"b{b} unreachable"
        assert b == ir.entry or blk.instrs or not hasattr(blk.term, "target"), f"b{b} is an empty jump"


def test_if_conversion_turns_the_collatz_branch_into_one_select():
    ir = _blocks_after(collatz, [cleanup_cfg, if_convert])
    selects = [i for blk in ir.blocks.values() for i in blk.instrs if i.op == "select"]
    assert [s.target for s in selects] == ["n"]
    branches = [blk.term for blk in ir.blocks.values() if isinstance(blk.term, Branch)]
    assert [b.kind for b in branches] == ["while"]


def test_if_conversion_keeps_a_branch_that_guards_a_failing_division():
    ir = _blocks_after(guarded, [cleanup_cfg, if_convert])
    assert any(isinstance(blk.term, Branch) for blk in ir.blocks.values())
    x = np.array([7, 8, 9]); y = np.array([2, 0, -4])
    np.testing.assert_array_equal(vmapper.batched(guarded)(x, y), [3, 0, -3])


def test_if_conversion_keeps_a_branch_that_guards_max_of_a_maybe_empty_sequence():
    # max(()) raises: run on the lanes that skip it, it would fail where Python never calls it
    ir = _blocks_after(largest_or_default, [cleanup_cfg, if_convert])
    assert any(isinstance(blk.term, Branch) for blk in ir.blocks.values())
    f = vmapper.batched(largest_or_default, in_axes=(0, None))
    x = np.array([1.5, -2.0])
    np.testing.assert_array_equal(f(x, 0), [-1.0, -1.0])
    np.testing.assert_array_equal(f(x, 2), x)


def test_if_conversion_keeps_a_comparison_guarded_by_is_none_a_branch():
    # v > best on the lanes where best is still None would raise where Python never compares
    check_batching(vmapper.batched(running_max), (np.array([3, 4, 5, 1]),))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_branch_on_what_a_value_is_stays_a_branch_and_runs_only_its_taken_arm(backend):
    # scale is None: x * scale would raise, on lanes that Python never runs it on
    for fn in (scaled_if_given, plus_if_given, plus_if_pair):
        ir = _blocks_after(fn, [cleanup_cfg, if_convert])
        assert any(isinstance(blk.term, Branch) for blk in ir.blocks.values()), fn.__name__
    x = np.arange(3.0)
    check_batching(scaled_if_given, (x,), backend=backend)
    check_batching(scaled_if_given, (x, 2.0), in_axes=(0, None), backend=backend)
    check_batching(plus_if_given, (x,), backend=backend)
    check_batching(plus_if_given, (x, x), backend=backend)
    check_batching(plus_if_pair, (x, np.ones(2)), in_axes=(0, None), backend=backend)  # (x + b: shapes differ)
    check_batching(plus_if_pair, (x, np.ones(3)), in_axes=(0, None), backend=backend)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_branch_on_a_comparison_with_a_string_stays_a_branch(backend):
    # mode == "plain": x + mode would raise TypeError on lanes Python never runs it on
    for fn in (plus_unless_plain, shifted_if_named):
        ir = _blocks_after(fn, [cleanup_cfg, if_convert])
        assert any(isinstance(blk.term, Branch) for blk in ir.blocks.values()), fn.__name__
    x = np.arange(3.0)
    check_batching(plus_unless_plain, (x, "plain"), in_axes=(0, None), backend=backend)
    check_batching(plus_unless_plain, (x, 1.5), in_axes=(0, None), backend=backend)
    check_batching(shifted_if_named, (x, "up"), in_axes=(0, None), backend=backend)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_an_arm_adding_an_int_constant_that_a_narrow_int_cannot_hold_stays_a_branch(backend):
    for fn in (plus_thousand_if_large, minus_one_if_large):
        ir = _blocks_after(fn, [cleanup_cfg, if_convert])
        assert any(isinstance(blk.term, Branch) for blk in ir.blocks.values()), fn.__name__
    check_batching(plus_thousand_if_large, (np.array([-5, 50, 90], np.int8),), backend=backend)
    check_batching(plus_thousand_if_large, (np.array([-5, 500], np.int64),), backend=backend)
    check_batching(minus_one_if_large, (np.array([5, 7], np.uint8),), backend=backend)
    with pytest.raises(vmapper.LaneError, match="out of bounds for int8") as info:
        vmapper.batched(plus_thousand_if_large, backend=backend)(np.array([5, 120, 7], np.int8))
    assert info.value.lanes == [1]  # (the one lane whose x + 1000 Python runs)


def test_definitely_assigned_excludes_variables_set_on_one_path():
    def one_path(x):
        if x > 0:
            y = 1
        return x
    ir = _blocks_after(one_path, [cleanup_cfg])
    defined = definitely_assigned(ir)
    exit_block = [b for b, blk in ir.blocks.items() if type(blk.term).__name__ == "Return"][0]
    assert "x" in defined[exit_block] and "y" not in defined[exit_block]


def test_loops_are_found_with_nesting():
    ir = _blocks_after(nested_loops, [cleanup_cfg, find_loops])
    loops = ir.annotations["loops"]
    assert len(loops) == 2
    inner = [l for l in loops.values() if l.parent is not None]
    outer = [l for l in loops.values() if l.parent is None]
    assert len(inner) == 1 and len(outer) == 1 and inner[0].blocks < outer[0].blocks


def test_schedule_lists_every_block_once_after_its_forward_predecessors():
    ir = PassManager().run(build_function(nested_loops))
    order = []

    def walk(steps):
        for s in steps:
            if isinstance(s, LoopStep):
                assert s.body[0] == s.header  # a loop step starts at its header
                walk(s.body)
            else:
                order.append(s)
    walk(ir.annotations["schedule"])
    assert sorted(order) == sorted(ir.blocks)
    loops = ir.annotations["loops"]
    pos = {b: i for i, b in enumerate(order)}
    for b, blk in ir.blocks.items():
        for s in blk.successors():
            back = s in loops and b in loops[s].blocks
            if not back:
                assert pos[b] < pos[s], f"b{b} -> b{s} scheduled backwards"


def test_merge_calls_joins_sibling_recursive_calls():
    ir = _blocks_after(tree_sum, [cleanup_cfg, merge_calls])
    calls = [i for blk in ir.blocks.values() for i in blk.instrs if i.op == "call"]
    assert len(calls) == 1 and calls[0].attrs["groups"] == 2


def test_merge_calls_respects_a_dependence_between_calls():
    def chain(n):
        if n <= 0:
            return 0
        a = chain(n - 1)
        return chain(a - 1) + 1
    ir = _blocks_after(chain, [cleanup_cfg, merge_calls])
    calls = [i for blk in ir.blocks.values() for i in blk.instrs if i.op == "call"]
    assert len(calls) == 2 and all("groups" not in c.attrs for c in calls)
    check_batching(chain, (np.arange(0, 9),))


def test_temporaries_that_escape_their_block_become_variables():
    def escaping(x, y):
        return x + (y > 0 and y)
    ir = _blocks_after(escaping, [cleanup_cfg, classify_temporaries])
    for b, blk in ir.blocks.items():
        defs = {i.target for i in blk.instrs if i.target}
        for i in blk.instrs:
            for u in i.uses():
                if u.startswith("$t"):
                    assert u in defs
    check_batching(escaping, (np.array([1, 2, 3]), np.array([-1, 0, 5])))


@pytest.mark.parametrize("fn,args", [
    (collatz, (np.arange(1, 300),)),
    (nested_loops, (np.arange(0, 40),)),
    (guarded, (np.arange(-5, 5), np.arange(10) % 3)),
])
def test_pipeline_output_equals_per_sample_loop(fn, args):
    check_batching(fn, args)


def test_pass_manager_dumps_ir_after_a_pass():
    pm = PassManager(dump_after=["if_convert"])
    pm.run(build_function(collatz))
    assert "select(" in pm.dumps["if_convert"]
    assert Program(PassManager().run(build_function(collatz))).schedule


def halvings_until_small(x):
    n = 0
    while True:
        x = x * 0.5
        n += 1
        if x < 1.0:
            return n


def test_cleanup_folds_a_constant_branch_so_while_true_has_no_return_none():
    fn = cleanup_cfg(build_function(halvings_until_small))
    assert not any(isinstance(b.term, Branch) and not hasattr(b.term.cond, "name") for b in fn.blocks.values())
    f = vmapper.batched(halvings_until_small, backend="numba")
    check_batching(halvings_until_small, (np.array([0.5, 3.0, 1e6]),), backend="numba")
    f(np.array([0.5, 3.0, 1e6]))
    assert f.last_stats["kernel_launches"] == 1 and f.last_stats["launches"] == 1
    assert "returns None" not in f.explain()
