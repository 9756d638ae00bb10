"""Values compiled into a program as constants (modules, functions, classes, callables, None,
module and class attributes) are checked on every call: a changed one recompiles, so a batched
function always computes what its per-sample function would now (vmapper/guards.py)."""
import types

import numpy as np
import pytest

import vmapper
from vmapper.program import get_program

BACKENDS = ["numpy", "numba"]

settings = types.ModuleType("settings")  # a module whose attributes a program reads
settings.LR = 0.5


class Scale:
    k = 10.0


OFFSET = None


def _double(v):
    return 2.0 * v


activation = _double


class Affine:
    def __init__(self, w):
        self.w = w

    def apply(self, v):
        return v * self.w


net = Affine(2.0)


def reads_everything(x):
    y = x * settings.LR + Scale.k + activation(x) + net.apply(x)
    if OFFSET is not None:
        y = y + OFFSET
    return y


def expected(x):
    return np.array([reads_everything(v) for v in x])


@pytest.fixture
def restore_globals():
    global OFFSET, activation, net
    saved = settings.LR, Scale.k, OFFSET, activation, net
    yield
    settings.LR, Scale.k, OFFSET, activation, net = saved


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_module_or_class_attribute_or_global_rebound_between_calls_is_read_anew(backend, restore_globals):
    global OFFSET, activation, net
    f = vmapper.batched(reads_everything, backend=backend)
    x = np.arange(4.0)
    np.testing.assert_array_equal(f(x), expected(x))
    settings.LR, Scale.k = 4.0, -1.0
    OFFSET = 100.0  # was None: compiled in as None
    activation = np.sin  # another function under the helper's name
    net = Affine(5.0)  # another object, whose method the program calls
    np.testing.assert_array_equal(f(x), expected(x))
    OFFSET = None
    np.testing.assert_array_equal(f(x), expected(x))


def closure_over(value):
    def inner(x):
        return x if value is None else x + value

    def set_value(v):
        nonlocal value
        value = v
    return inner, set_value


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_closure_variable_set_after_the_first_call_is_read_anew(backend):
    inner, set_value = closure_over(None)
    f = vmapper.batched(inner, backend=backend)
    np.testing.assert_array_equal(f(np.arange(3.0)), [0.0, 1.0, 2.0])
    set_value(5.0)
    np.testing.assert_array_equal(f(np.arange(3.0)), [5.0, 6.0, 7.0])


def test_a_program_whose_bindings_are_unchanged_is_not_compiled_again(restore_globals):
    first = get_program(reads_everything)
    vmapper.batched(reads_everything)(np.arange(3.0))
    assert get_program(reads_everything) is first
    settings.LR = 0.5 + 0.0 * settings.LR  # the same value, perhaps another float object
    assert get_program(reads_everything) is first
    settings.LR = 0.25
    assert get_program(reads_everything) is not first
