"""The liveness and last-use analyses, and the runtime behaviour that relies on them."""
import numpy as np

from vmapper.frontend import build_function
from vmapper.ir import Return, is_temp
from vmapper.passes.manager import PassManager
from vmapper.testing import check_batching


def escape(cr, ci):
    zr = 0.0
    zi = 0.0
    n = 0
    while zr * zr + zi * zi <= 4.0 and n < 64:
        t = zr * zr - zi * zi + cr
        zi = 2.0 * zr * zi + ci
        zr = t
        n += 1
    return n


def exits_with_live_values(x, k):
    acc = 0.0
    i = 0
    while i < k:
        acc = acc * 0.5 + x
        if acc > 3.0:
            break
        i += 1
    scratch = acc * 2.0  # acc and i are read after the loop, scratch only here
    return acc + scratch + i


def reuses_dead_temporaries(x, y):
    z = x * 2.0
    w = (x * y + z) + z
    return w - (z * y - x) + x


def _ir(fn):
    return PassManager().run(build_function(fn))


def test_only_values_read_after_the_loop_are_live_at_its_exit():
    ir = _ir(escape)
    live = ir.annotations["live_in"]
    (exit_block,) = [b for b, blk in ir.blocks.items() if isinstance(blk.term, Return)]
    assert live[exit_block] == {"n"}
    loop_header = next(iter(ir.annotations["loops"]))
    assert {"zr", "zi", "n", "cr", "ci"} <= live[loop_header]
    assert "t" not in live[loop_header]  # assigned before read on every trip
    assert not any(is_temp(v) or v == "$ret" for s in live.values() for v in s)


def test_last_use_names_each_temporary_once_at_its_final_read():
    ir = _ir(reuses_dead_temporaries)
    for b, blk in ir.blocks.items():
        dying = ir.annotations["last_use"][b]
        assert len(dying) == len(blk.instrs)
        for i, (ins, names) in enumerate(zip(blk.instrs, dying)):
            for t in names:
                assert t in ins.uses()
                later = [x for j in blk.instrs[i + 1:] for x in j.uses()] + blk.term.uses()
                assert t not in later or any(j.target == t for j in blk.instrs[i + 1:])


def test_lanes_leaving_a_loop_at_different_trips_keep_their_values():
    rng = np.random.default_rng(0)
    n = 300  # enough lanes for the loop to run in a subframe that retires lanes
    cr, ci = rng.uniform(-2, 1, n), rng.uniform(-1.5, 1.5, n)
    check_batching(escape, (cr, ci))
    x = rng.uniform(0.0, 2.5, n)
    k = rng.integers(0, 12, n)
    check_batching(exits_with_live_values, (x, k))


def test_dead_temporary_buffers_never_clobber_variables():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=200), rng.normal(size=200)
    xs, ys = x.copy(), y.copy()
    check_batching(reuses_dead_temporaries, (x, y))
    assert np.array_equal(x, xs) and np.array_equal(y, ys)  # the caller's arrays are untouched
