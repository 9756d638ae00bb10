"""passes/globals_as_params.py: each data-global read becomes a trailing parameter."""
from vmapper.passes.globals_as_params import globals_as_params
from vmapper.program import get_program

RATE, SHIFT = 0.5, 2.0


def reads_two_globals_three_times(x):
    y = x * RATE + SHIFT
    return y * RATE


def reads_none(x):
    return x + 1.0


def _ops(fn):
    return [ins.op for blk in fn.blocks.values() for ins in blk.instrs]


def test_each_name_becomes_one_trailing_parameter_and_the_input_is_unchanged():
    fn = get_program(reads_two_globals_three_times).ir
    before = _ops(fn)
    out, reads = globals_as_params(fn)
    assert out.params == ["x", "<global RATE>", "<global SHIFT>"]
    assert [r["name"] for r in reads] == ["RATE", "SHIFT"]
    assert "load_global" not in _ops(out) and before.count("load_global") == 3
    assert _ops(fn) == before and fn.params == ["x"]


def test_a_function_without_globals_comes_back_as_it_is():
    fn = get_program(reads_none).ir
    assert globals_as_params(fn) == (fn, [])
