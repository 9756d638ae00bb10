"""The public API: ``batched`` forms, in_axes/out_axes, pytrees, results, explain(),
last_stats and concurrent calls."""
import functools
import threading
from typing import NamedTuple

import numpy as np
import pytest

import vmapper
from vmapper import BatchedFunction, batched
from vmapper.testing import check_batching
from source_lines import line_of


def test_testing_and_kernels_are_reachable_after_a_plain_import_vmapper():
    import subprocess
    import sys
    code = ("import sys, vmapper; assert 'vmapper.testing' not in sys.modules; "
            "print(vmapper.testing.check_batching.__name__, vmapper.kernels.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["check_batching", "vmapper.kernels"]
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        vmapper.no_such_thing


# ---- the three forms ------------------------------------------------------------------------

@batched
def deco_plain(x):
    return x * 2 + 1


@batched(in_axes=(0, None))
def deco_args(x, k):
    return x * k


def plain(x):
    if x > 0:
        return x - 1
    return -x


def test_decorator_without_arguments():
    assert isinstance(deco_plain, BatchedFunction)
    x = np.arange(-3, 4)
    assert np.array_equal(deco_plain(x), x * 2 + 1)
    check_batching(deco_plain, (x,))


def test_decorator_with_arguments():
    assert isinstance(deco_args, BatchedFunction)
    assert deco_args.in_axes == (0, None)
    x = np.arange(5)
    assert np.array_equal(deco_args(x, 3), x * 3)
    check_batching(deco_args, (x, 3))


def test_plain_function_form_and_per_sample_is_the_original():
    f = batched(plain)
    assert f.per_sample is plain
    assert f.__name__ == "plain"
    assert batched(f).per_sample is plain  # re-wrapping keeps the original function
    x = np.arange(-4, 5)
    assert np.array_equal(f(x), [plain(v) for v in x])
    assert deco_plain.per_sample(3) == 7  # the per-sample function runs on one sample


def test_batched_rejects_things_that_are_not_functions():
    with pytest.raises(TypeError):
        batched(len)
    with pytest.raises(TypeError):
        batched(3)


def test_batching_a_wrapper_without_source_says_what_to_batch_instead():
    with pytest.raises(TypeError, match="partial of 'affine': batch that function"):
        batched(functools.partial(affine, w=2.0))
    with pytest.raises(TypeError, match="below @staticmethod"):
        batched(staticmethod(plain))
    with pytest.raises(TypeError, match="works on whole arrays already"):
        batched(np.sin)

    class Model:
        def __call__(self, x):
            return x

    with pytest.raises(TypeError, match=r"vmapper.batched\(obj.__call__\)"):
        batched(Model())


# ---- in_axes ---------------------------------------------------------------------------------

def affine(x, w, b):
    return x @ w + b


def colsum(X):
    return X.sum() + X[0]


def test_in_axes_int_for_every_argument():
    X = np.arange(24.0).reshape(4, 6)  # batch along axis 1: six samples of length 4
    res = check_batching(colsum, (X,), in_axes=1)
    assert res.shape == (6,)
    assert np.array_equal(res, X.sum(axis=0) + X[0])
    res = check_batching(colsum, (X.T.copy(),), in_axes=0)
    check_batching(colsum, (X,), in_axes=-1)


def test_in_axes_tuple_with_none_broadcasts():
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(9, 3)), rng.normal(size=(3, 2)), rng.normal(size=(9, 2))
    res = check_batching(affine, (x, w, b), in_axes=(0, None, 0), exact=False)
    assert res.shape == (9, 2)
    res = check_batching(affine, (x, w, 1.5), in_axes=(0, None, None), exact=False)
    assert np.allclose(res, x @ w + 1.5)


def scale_shift(x, factor=2.0, *, shift=0.0):
    return x * factor + shift


def test_in_axes_with_an_entry_per_parameter_covers_keywords_and_defaults():
    x = np.arange(4.0)
    f = vmapper.batched(scale_shift, in_axes=(0, None, None), backend="numpy")
    assert f(x, 3.0, shift=1.0).tolist() == [1.0, 4.0, 7.0, 10.0]
    assert f(x=x, factor=3.0).tolist() == [0.0, 3.0, 6.0, 9.0]
    assert f(x).tolist() == [0.0, 2.0, 4.0, 6.0]
    shifts = np.array([1.0, 0.0, 1.0, 0.0])
    g = vmapper.batched(scale_shift, in_axes=(0, None, 0), backend="numpy")
    assert g(x, 3.0, shift=shifts).tolist() == [1.0, 3.0, 7.0, 9.0]


def test_a_shared_keyword_argument_under_a_positional_in_axes_says_how_to_share_it():
    f = vmapper.batched(scale_shift, in_axes=(0, None), backend="numpy")
    with pytest.raises(vmapper.BatchError, match=r"argument 'shift' .* in_axes=\(0, None, None\)"):
        f(np.arange(4.0), 3.0, shift=1.0)
    with pytest.raises(vmapper.BatchError, match="3 parameter"):
        f(np.arange(4.0))


def test_an_unknown_keyword_is_named_before_the_missing_argument_it_leaves():
    # Python's own order: the stray keyword is the mistake, not the parameter it failed to fill
    f = vmapper.batched(affine, backend="numpy")
    with pytest.raises(vmapper.BatchError, match="unexpected keyword argument 'bias'"):
        f(np.ones((2, 3)), np.ones((3, 2)), bias=0.0)
    g = vmapper.batched(scale_shift, backend="numpy")
    with pytest.raises(vmapper.BatchError, match="unexpected keyword argument 'offset'"):
        g(np.arange(4.0), offset=1.0)


def test_in_axes_none_everywhere_is_rejected():
    with pytest.raises(vmapper.BatchError):
        batched(affine, in_axes=None)(np.ones((2, 3)), np.ones((3, 2)), 0.0)


def test_in_axes_tuple_with_batch_along_different_axes_per_argument():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 8))  # batched along axis 1
    b = rng.normal(size=(8, 2))  # batched along axis 0
    w = rng.normal(size=(3, 2))
    check_batching(affine, (x, w, b), in_axes=(1, None, 0), exact=False)


# ---- pytrees ---------------------------------------------------------------------------------

class Point(NamedTuple):
    x: np.ndarray
    y: np.ndarray


def tuple_arg(p):
    a, b = p
    return a * b + p[0]


def list_arg(p):
    return p[0] - p[1]


def dict_arg(d):
    if d["flag"]:
        return d["a"] + d["b"]
    return d["a"] * d["b"]


def namedtuple_arg(p):
    r2 = p.x * p.x + p.y * p.y
    return r2, p[0]


def nested_tree(t):
    (a, b), d = t
    return a + b * d["c"]


def test_a_namedtuples_in_axes_has_one_entry_per_field_as_a_tuple_or_a_list():
    p = Point(np.arange(3.0), np.arange(3.0))
    for axes in ((0,), (0, 0, 0)):
        with pytest.raises(vmapper.BatchError, match=rf"argument 'p' has {len(axes)} entries for 2 items"):
            vmapper.batched(namedtuple_arg, in_axes=(axes,))(p)
    r2, x = vmapper.batched(namedtuple_arg, in_axes=([0, None],))(Point(np.arange(3.0), np.float64(2.0)))
    np.testing.assert_array_equal(r2, np.arange(3.0) ** 2 + 4.0)


def test_tuple_argument():
    check_batching(tuple_arg, ((np.arange(5), np.arange(5) * 3),))


def test_list_argument():
    check_batching(list_arg, ([np.arange(6), np.arange(6) ** 2],))


def test_dict_argument():
    d = {"a": np.arange(6), "b": np.arange(6) + 2, "flag": np.array([1, 0, 1, 0, 0, 1], dtype=bool)}
    check_batching(dict_arg, (d,))


def test_dict_argument_with_per_key_in_axes():
    d = {"a": np.arange(6), "b": 10, "flag": np.array([1, 0, 1, 0, 0, 1], dtype=bool)}
    check_batching(dict_arg, (d,), in_axes=({"a": 0, "b": None, "flag": 0},))


def test_namedtuple_argument_with_attribute_access():
    p = Point(np.arange(5.0), np.arange(5.0) - 2.0)
    res = check_batching(namedtuple_arg, (p,))
    assert np.array_equal(res[0], p.x ** 2 + p.y ** 2)


def test_nested_pytree_with_nested_in_axes():
    t = ((np.arange(4), np.arange(4) * 2), {"c": np.array(3)})
    check_batching(nested_tree, (t,), in_axes=(((0, 0), {"c": None}),))


# ---- out_axes and results -------------------------------------------------------------------------

def vector_result(x):
    return np.array([x, x * 2, x * 3])


def two_vectors(x):
    return np.array([x, -x]), np.array([x, x + 1, x + 2])


def test_out_axes_moves_the_batch_axis():
    x = np.arange(5)
    expected = np.stack([vector_result(v) for v in x])
    assert np.array_equal(batched(vector_result)(x), expected)
    assert np.array_equal(batched(vector_result, out_axes=1)(x), expected.T)
    assert np.array_equal(batched(vector_result, out_axes=-1)(x), expected.T)


def test_out_axes_per_tuple_result():
    x = np.arange(4)
    a, b = batched(two_vectors, out_axes=(1, 0))(x)
    assert a.shape == (2, 4) and b.shape == (4, 3)
    assert np.array_equal(a, np.stack([two_vectors(v)[0] for v in x], axis=1))
    assert np.array_equal(b, np.stack([two_vectors(v)[1] for v in x]))


def several(x, y):
    return x + y, x * 1.5, x > y


def test_tuple_results_come_back_as_a_tuple_of_arrays():
    x, y = np.arange(7), np.arange(7)[::-1].copy()
    res = batched(several)(x, y)
    assert type(res) is tuple and len(res) == 3
    assert all(isinstance(r, np.ndarray) and r.shape == (7,) for r in res)
    assert [r.dtype for r in res] == [np.int64, np.float64, np.bool_]


def uniform_result(x):
    return 42


def test_a_result_that_is_the_same_on_every_lane_still_has_the_batch_axis():
    res = batched(uniform_result)(np.arange(3))
    assert isinstance(res, np.ndarray) and res.shape == (3,) and res.dtype == np.int64


def test_keyword_arguments_bind_by_name():
    x, y = np.arange(4), np.arange(4) + 1
    res = batched(several)(x, y=y)
    assert np.array_equal(res[0], x + y)


# ---- explain ----------------------------------------------------------------------------------

def loopy(x):
    s = 0
    while x > 0:  # explain-loop
        if x % 2 == 0:  # explain-if
            s += x
        x -= 1
    return s  # explain-return


def test_explain_names_user_lines_masks_and_loops():
    text = batched(loopy).explain()
    assert isinstance(text, str)
    for marker in ("explain-loop", "explain-if", "explain-return"):
        assert str(line_of(loopy, marker)) in text
    assert "mask" in text and "loop" in text
    assert "while x > 0" in text


def _explain_leaf(x):
    return x * 2  # explain-leaf


def _explain_middle(x):
    if x > 0:
        return _explain_leaf(x) + _explain_middle(x - 1)
    return _explain_leaf(x)


def _explain_top(x):
    return _explain_middle(x) + _explain_leaf(x)


def test_explain_dumps_every_called_function_once():
    text = batched(_explain_top).explain()
    assert text.count("batched program _explain_top(") == 1
    assert text.count("batched program _explain_middle(") == 1  # recursive: still once
    assert text.count("batched program _explain_leaf(") == 1   # called from two functions
    assert text.index("_explain_middle(") < text.index("batched program _explain_leaf(")
    assert "x * 2" in text
    assert "batched program _explain_middle(" not in batched(_explain_top).explain(callees=False)


# ---- last_stats -------------------------------------------------------------------------------

def simple_while(n):
    i = 0
    while i < n:
        i += 1
    return i


def test_last_stats_is_none_before_the_first_call():
    assert batched(simple_while).last_stats is None


def test_last_stats_is_none_after_a_call_refused_at_its_arguments():
    # the refused call ran nothing: the previous call's counters would describe another call
    f = batched(simple_while)
    vg = vmapper.value_and_grad(batched(identity))
    f(np.array([0, 3]))
    vg(np.array([1.0, 2.0]))
    assert f.last_stats is not None and vg.last_stats is not None
    with pytest.raises(vmapper.BatchError, match="too many positional arguments"):
        f(np.array([0, 3]), 1)
    with pytest.raises(vmapper.BatchError, match="too many positional arguments"):
        vg(np.array([1.0, 2.0]), 1)
    assert f.last_stats is None and vg.last_stats is None


def test_last_stats_launches_and_lane_utilization():
    f = batched(simple_while)
    f(np.array([0, 3, 10, 1]))
    st = f.last_stats
    assert isinstance(st["launches"], int) and st["launches"] > 0
    assert 0 < st["lane_utilization"] <= 1


def identity(x):
    return x


def test_a_call_that_launches_nothing_wasted_nothing():
    f = vmapper.batched(identity, backend="numpy")
    f(np.arange(3.0))
    assert f.last_stats["launches"] == 0 and f.last_stats["lane_utilization"] == 1.0


def test_lane_utilization_is_one_when_no_lane_diverges():
    f = batched(deco_plain.per_sample)
    f(np.arange(10))
    assert f.last_stats["lane_utilization"] == pytest.approx(1.0)
    g = batched(simple_while)
    g(np.array([0, 0, 50, 0, 0, 0]))
    assert g.last_stats["lane_utilization"] < 0.6


def test_max_loop_trips_equals_the_largest_per_sample_trip_count():
    f = batched(simple_while)
    n = np.array([0, 3, 10, 1, 7])
    f(n)
    assert f.last_stats["max_loop_trips"] == 10
    f(np.array([2, 2]))
    assert f.last_stats["max_loop_trips"] == 2  # stats are of the last call only


# ---- threads ---------------------------------------------------------------------------------

def branchy(x, k):
    acc = 0
    while x > 0:
        if x % k == 0:
            acc += x
        x -= 1
    return acc


def test_two_threads_calling_the_same_batched_function_get_their_own_results():
    f = batched(branchy)
    rng = np.random.default_rng(3)
    inputs = [(rng.integers(0, 60, size=300), rng.integers(1, 5, size=300)),
              (rng.integers(0, 90, size=517), rng.integers(1, 7, size=517))]
    expected = [np.array([branchy(a, b) for a, b in zip(*args)]) for args in inputs]
    results = [[], []]
    errors = []
    barrier = threading.Barrier(2)

    def worker(k):
        try:
            barrier.wait()
            for _ in range(15):
                results[k].append(f(*inputs[k]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for k in range(2):
        assert len(results[k]) == 15
        for r in results[k]:
            assert np.array_equal(r, expected[k])


def test_threads_with_different_max_iters_instances_do_not_interfere():
    ok = batched(simple_while, max_iters=1000)
    strict = batched(simple_while, max_iters=3)
    out, errs = [], []
    barrier = threading.Barrier(2)

    def run_ok():
        barrier.wait()
        for _ in range(10):
            out.append(ok(np.arange(50)))

    def run_strict():
        barrier.wait()
        for _ in range(10):
            try:
                strict(np.arange(50))
            except vmapper.NonTerminationError as exc:
                errs.append(exc)

    threads = [threading.Thread(target=run_ok), threading.Thread(target=run_strict)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(out) == 10 and all(np.array_equal(o, np.arange(50)) for o in out)
    assert len(errs) == 10


def _scaled(x, k=2):
    return x * k


def test_a_replaced_default_is_seen_on_the_next_call():
    import types
    fn = types.FunctionType(_scaled.__code__, _scaled.__globals__, "scaled", _scaled.__defaults__)
    b = vmapper.batched(fn)
    np.testing.assert_array_equal(b(np.arange(3.0)), [0.0, 2.0, 4.0])
    fn.__defaults__ = (5,)  # the parameters' signature is cached per function, until this changes
    np.testing.assert_array_equal(b(np.arange(3.0)), [0.0, 5.0, 10.0])


def scaled_by_entry(x, d):
    return x * d["w"]




def test_an_in_axes_dict_must_have_the_arguments_keys():
    x, d = np.arange(2.0), {"w": np.arange(2.0)}
    with pytest.raises(vmapper.BatchError, match="argument 'd' has no entry for key 'w'"):
        vmapper.batched(scaled_by_entry, in_axes=(0, {"v": 0}))(x, d)
    with pytest.raises(vmapper.BatchError, match="entry for key 'z', which the argument does not have"):
        vmapper.batched(scaled_by_entry, in_axes=(0, {"w": 0, "z": 0}))(x, d)
    np.testing.assert_array_equal(vmapper.batched(scaled_by_entry, in_axes=(0, {"w": 0}))(x, d), [0.0, 1.0])


@pytest.mark.parametrize("out_axes", ["x", None, 1.5, True, (0, "x")])
def test_out_axes_that_are_not_ints_are_refused_when_decorating(out_axes):
    with pytest.raises(ValueError, match="out_axes must be an int"):
        vmapper.batched(identity, out_axes=out_axes)


def test_out_axes_with_more_entries_than_results_names_both():
    with pytest.raises(vmapper.BatchError, match=r"out_axes has 2 entries, but the result is not a tuple \(an array of shape \(3,\)\)"):
        vmapper.batched(identity, out_axes=(0, 0))(np.arange(3.0))


def test_an_in_axes_of_the_wrong_length_counts_its_entries():
    with pytest.raises(vmapper.BatchError, match="in_axes has 1 entry, but"):
        vmapper.batched(identity_twice_of_two, in_axes=(0,))(np.arange(3.0), np.arange(3.0))


def identity_twice_of_two(x, y):
    return x, y


def test_a_nested_out_axes_error_names_the_result():
    x = np.ones((3, 2))
    with pytest.raises(vmapper.BatchError, match=r"out_axes for result \[1\] has 2 entries, but that result is not a tuple"):
        vmapper.batched(identity_twice, out_axes=(0, (1, 0)))(x)
    with pytest.raises(vmapper.BatchError, match=r"out_axes=5 for result \[0\] is out of range .* \(shape \(3, 2\)\)"):
        vmapper.batched(identity_twice, out_axes=(5, 0))(x)


@pytest.mark.parametrize("max_iters", ["x", 0, -1, True, 2.5])
def test_max_iters_must_be_a_positive_int(max_iters):
    with pytest.raises(ValueError, match="max_iters must be a positive int"):
        vmapper.batched(identity, max_iters=max_iters)


@pytest.mark.parametrize("exact_math", ["yes", 1, None])
def test_exact_math_must_be_a_bool(exact_math):
    # (anything was accepted, and a truthy str turned exact math on)
    with pytest.raises(ValueError, match="exact_math must be True or False"):
        vmapper.batched(identity, exact_math=exact_math)


def scaled_when_weight_is_large(x, w):
    k = w * 2
    if k > 1:
        return x * k
    return x


def test_explain_counts_arguments_given_in_axes_none_and_what_follows_from_them_as_uniform():
    text = vmapper.batched(scaled_when_weight_is_large, in_axes=(0, None)).explain()
    assert "varying (differ per lane): x\n" in text
    text = vmapper.batched(scaled_when_weight_is_large).explain()
    assert "varying (differ per lane): k, w, x\n" in text


def _doubled(g):
    @functools.wraps(g)
    def wrapper(x):
        return g(x) * 2
    return wrapper


@_doubled
def plus_one_doubled(x):
    return x + 1


def test_a_functools_wraps_wrapper_is_batched_itself_not_the_function_it_wraps():
    x = np.arange(4.0)
    np.testing.assert_array_equal(check_batching(plus_one_doubled, (x,)), 2 * (x + 1))


def test_a_comment_at_column_zero_inside_a_method_or_nested_function_is_read_past(tmp_path, monkeypatch):
    # (the source's dedent stopped at it: an IndentationError from the parser)
    (tmp_path / "column_zero.py").write_text(
        "class Model:\n    def fwd(self, x):\n        y = x * 2.0\n#       y = y + 1\n        return y\n\n\n"
        "def make():\n    def step(x):\n# a note\n        s = '''a\nb'''\n        return x + len(s)\n    return step\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    mod = importlib.import_module("column_zero")
    x = np.arange(3.0)
    check_batching(mod.Model().fwd, (x,), backend="numpy")
    check_batching(mod.make(), (x,), backend="numpy")


def test_a_source_file_edited_after_import_is_refused_rather_than_batched(tmp_path, monkeypatch):
    module = tmp_path / "edited_after_import.py"
    module.write_text("def f(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    mod = importlib.import_module("edited_after_import")
    module.write_text("def g(x, y):\n    return x * y\n")
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=r"'def g\(x, y\)', not the running function f"):
        vmapper.batched(mod.f)(np.arange(3.0))


def test_a_source_file_whose_function_body_was_edited_after_import_is_refused(tmp_path, monkeypatch):
    # (same name and parameters: the batched call ran the new body, x * 100, silently)
    module = tmp_path / "body_edited_after_import.py"
    module.write_text("import math\n\n\ndef f(x):\n    return math.floor(x) + 1\n\n\ndef g(x):\n    return -math.fabs(x)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    mod = importlib.import_module("body_edited_after_import")
    check_batching(mod.g, (np.arange(3.0),), backend="numpy")  # (an unedited file batches)
    module.write_text("import math\n\n\ndef f(x):\n    return math.floor(x) * 100\n\n\ndef g(x):\n    return -math.fabs(x)\n")
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=r"that is not the running function f's code"):
        vmapper.batched(mod.f, backend="numpy")(np.arange(3.0))


def first_column(x):
    return x[0]


def identity_twice(x):
    return x, x


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_results_never_share_memory_with_the_inputs_or_each_other(backend):
    a = np.arange(6.0).reshape(3, 2)
    kept = a.copy()
    r = vmapper.batched(first_column, backend=backend)(a)
    r[:] = -1.0
    np.testing.assert_array_equal(a, kept)
    v = np.arange(3.0)
    p, q = vmapper.batched(identity_twice, backend=backend)(v)
    assert not np.shares_memory(p, v) and not np.shares_memory(p, q)
    out, _ = vmapper.vjp(vmapper.batched(identity_twice, backend=backend), v)
    assert not np.shares_memory(out[0], v) and not np.shares_memory(out[0], out[1])


def test_results_never_share_memory_with_an_ndarray_subclass_argument(tmp_path):
    # (a memmap: a result viewing it wrote through to the caller's file)
    mm = np.memmap(tmp_path / "data.bin", dtype=np.float64, mode="w+", shape=(3, 2))
    mm[:] = 1.0
    for fn in (first_column, identity_twice):
        out = vmapper.batched(fn, backend="numpy")(mm)
        assert not any(np.shares_memory(r, mm) for r in (out if isinstance(out, tuple) else (out,)))


def test_python_dash_O_leaves_asserts_out_as_python_does(tmp_path):
    import subprocess
    import sys
    (tmp_path / "asserting.py").write_text("def f(x):\n    assert x < 2, 'x too big'\n    return x * 2\n")
    script = ("import numpy as np, vmapper, asserting\n"
              "print(vmapper.batched(asserting.f, backend='numpy')(np.arange(4.0)).tolist())\n")
    run = subprocess.run([sys.executable, "-O", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "[0.0, 2.0, 4.0, 6.0]", run.stderr
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode != 0 and "AssertionError: x too big" in run.stderr


@pytest.mark.parametrize("in_axes", [True, (0.0, 0), (0, [1.5]), {"a": "0"}])
def test_in_axes_entries_other_than_ints_and_none_are_refused_when_decorating(in_axes):
    with pytest.raises(vmapper.BatchError, match="in_axes entries must be ints or None"):
        vmapper.batched(tuple_arg, in_axes=in_axes)


def test_numpy_ints_are_in_axes_entries_at_every_level():
    x = np.arange(6.0).reshape(2, 3)
    for in_axes in (np.int64(1), (np.int64(1),), [np.int32(1)]):
        np.testing.assert_array_equal(vmapper.batched(first_column, in_axes=in_axes)(x), x[0])


def star_args(x, *rest):
    return x


def star_kwargs(x, **kw):
    return x


@pytest.mark.parametrize("fn, call", [(star_args, lambda f, x: f(x)), (star_args, lambda f, x: f(x, x, x)),
                                      (star_kwargs, lambda f, x: f(x, y=x))])
def test_star_parameters_are_refused_naming_them_before_arguments_are_bound(fn, call):
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=r"\*args/\*\*kwargs parameters"):
        call(vmapper.batched(fn, in_axes=0), np.arange(3.0))
