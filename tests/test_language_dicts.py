"""Local dicts with constant keys (``d = {"h": h, "c": c}``): records, held as local lists.

Every supported use must equal the per-sample run bitwise, on both backends, with gradients;
every other use must raise naming the line, and a missing key Python's KeyError on its lanes.
"""
import numpy as np
import pytest

import vmapper
from vmapper.testing import check_batching, check_grads
from source_lines import line_of

RNG = np.random.default_rng(11)


def record_ops(x, y):
    d = {"a": x, "b": y * 2, 3: 0.5}
    d["a"] += 1.0
    if x > 0:
        d["b"] = d["a"] * d[3]  # on the lanes that take the branch
    s = 0.0
    for k in d:
        if k == "b":
            continue
        s += d[k] if k != 3 else 0.0  # a key that is not a constant: looked up when it runs
    for k, v in d.items():
        s = s * 0.5 + v
    n = len(d) + ("a" in d) + ("z" not in d)
    return s + n + sum(d.values()) + d.get("a", 0.0) + d.get("zz", -2.0) \
        + sum(v for v in d.values() if v > 0) + len([k for k in d.keys() if k != 3])


def rebound_in_a_loop(x, n):
    state = {"h": 0.0, "c": x}
    for i in range(n):
        state = {"h": state["h"] * 0.5 + state["c"], "c": state["c"] - 1.0}
    return state["h"]


def per_lane_key(x, k):
    d = {0: x, 1: x * x, 2: -x}
    d[k] = d[k] + 1.0  # marker-per-lane-key
    return d[0] + 10 * d[1] + 100 * d[2]


def string_keys_per_lane(x, k):
    d = {"a": x, "b": 2.0 * x, 0: -x}
    key = "a" if k % 2 else "b"
    d[key] = d[key] * 3.0 + d.get(k, 0.5)  # a per-lane str key, then a per-lane int one (or the default)
    return d["a"] + 10 * d["b"] + d.get(key, -1.0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_record_dict_equals_the_per_sample_run_bitwise(backend):
    x, y = RNG.normal(size=40), RNG.normal(size=40)
    check_batching(record_ops, (x, y), backend=backend)
    check_batching(rebound_in_a_loop, (x, RNG.integers(0, 5, size=40)), backend=backend)
    check_batching(per_lane_key, (x, RNG.integers(0, 3, size=40)), backend=backend)
    check_batching(string_keys_per_lane, (x, RNG.integers(-1, 3, size=40)), backend=backend)


def test_gradients_flow_through_a_record_dict():
    x, y = RNG.normal(size=9), RNG.normal(size=9)
    check_grads(vmapper.batched(record_ops), (x, y), argnums=(0, 1))
    check_grads(vmapper.batched(rebound_in_a_loop), (x, np.arange(9) % 4), argnums=0)
    check_grads(vmapper.batched(per_lane_key), (x, np.arange(9) % 3), argnums=0)
    check_grads(vmapper.batched(string_keys_per_lane), (x, np.arange(9) % 4 - 1), argnums=0)


def missing_key(x):
    d = {"a": x}
    if x > 0:
        return d["b"]  # marker-missing
    return d["a"]


def test_reading_a_key_the_dict_never_holds_is_pythons_key_error_on_those_lanes():
    with pytest.raises(vmapper.LaneError, match="KeyError: 'b'") as info:
        vmapper.batched(missing_key)(np.array([-1.0, 2.0, -3.0, 4.0]))
    assert list(info.value.lanes) == [1, 3] and info.value.python_error is KeyError
    assert str(line_of(missing_key, "marker-missing")) in str(info.value)
    with pytest.raises(vmapper.LaneError, match="KeyError") as info:
        vmapper.batched(per_lane_key)(np.ones(3), np.array([0, 5, 2]))
    assert list(info.value.lanes) == [1]


def returned(x):
    d = {"a": x}
    return d  # marker-returned


def aliased(x):
    d = {"a": x}
    e = d  # marker-aliased
    return e["a"]


def passed(x):
    d = {"a": x}
    return len(str(d))  # marker-passed


def adds_a_key(x):
    d = {"a": x}
    d["b"] = 1.0  # marker-adds
    return d["a"]


def different_keys(x):
    d = {"a": x}
    if x > 0:
        d = {"b": x}  # marker-different
    return 0.0


def literal_elsewhere(x):
    return {"a": x}["a"]  # marker-elsewhere


def key_not_a_constant_literal(x):
    d = {x: 1.0}  # marker-key
    return d[x]


def items_kept(x):
    d = {"a": x}
    pairs = d.items()  # marker-items
    return len(pairs)


def get_by_an_expression(x):
    d = {0: x}
    return d.get(int(x) % 2, 0.0)  # marker-get


def repeated_key(x):
    d = {"a": x, "a": 2.0}  # marker-repeated  # noqa: F601
    return d["a"]


def double_star(x):
    d = {"a": x, **{"b": 1.0}}  # marker-star
    return d["a"]


def sliced(x):
    d = {0: x, 1: x}
    return d[0:1]  # marker-slice


@pytest.mark.parametrize("fn, marker, construct", [
    (items_kept, "marker-items", r"'d.items\(\)' outside a 'for' header"),
    (get_by_an_expression, "marker-get", r"'d.get\(\)' with other than a key"),
    (repeated_key, "marker-repeated", "repeated key"),
    (double_star, "marker-star", "'\\*\\*' in a dict literal"),
    (sliced, "marker-slice", "indexed by a slice"),
    (returned, "marker-returned", "dict 'd' used as a value"),
    (aliased, "marker-aliased", "dict 'd' used as a value"),
    (passed, "marker-passed", "dict 'd' used as a value"),
    (adds_a_key, "marker-adds", "adding key 'b'"),
    (different_keys, "marker-different", "literals with different keys"),
    (literal_elsewhere, "marker-elsewhere", "dict literal other than the value of a local"),
    (key_not_a_constant_literal, "marker-key", "key that is not a constant"),
])
def test_other_uses_of_a_dict_raise_naming_the_construct_and_line(fn, marker, construct):
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=construct) as info:
        vmapper.batched(fn)(np.ones(3))
    assert str(line_of(fn, marker)) in str(info.value)


def store_through_a_per_lane_key(x, k):
    d = {0: x, 1: x}
    d[k] = 2.0  # Python adds the key where the dict does not hold it
    return d[0] + d[1]


def test_storing_through_a_per_lane_key_the_dict_does_not_hold_is_refused_naming_the_lanes():
    check_batching(store_through_a_per_lane_key, (np.ones(3), np.array([0, 1, 1])))
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=r"adding a key to a local dict, on lane\(s\) 1"):
        vmapper.batched(store_through_a_per_lane_key)(np.ones(3), np.array([0, 7, 1]))


def str_per_lane(x, s):
    word = "pos" if x > 0 else "negative"
    return len(word), word + "!", word == "pos", word < "p", word != 3, s == "a", s + word


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_strs_that_differ_per_lane_compare_concatenate_and_have_a_length(backend):
    x = np.array([1.0, -1.0, 2.0, 0.0])
    s = np.array(["a", "b", "a", "cc"])
    check_batching(str_per_lane, (x, s), backend=backend)


def upper_per_lane(x):
    word = "pos" if x > 0 else "negative"
    return word.upper()


def test_a_method_of_a_str_that_differs_per_lane_is_named_unsupported():
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=r"method '\.upper\(\)' of a str that differs per lane"):
        vmapper.batched(upper_per_lane)(np.array([1.0, -1.0]))


def first_char_per_lane(s):
    return s[0]  # marker-str-index


def tail_per_lane(s):
    return s[1:]  # marker-str-slice


def letter_in_str_per_lane(s):
    return "b" in s  # marker-str-in


@pytest.mark.parametrize("fn, marker, construct", [
    (first_char_per_lane, "marker-str-index", "indexing or slicing a str that differs per lane"),
    (tail_per_lane, "marker-str-slice", "indexing or slicing a str that differs per lane"),
    (letter_in_str_per_lane, "marker-str-in", "'in' on a str that differs per lane"),
])
def test_indexing_slicing_or_in_on_a_str_that_differs_per_lane_is_named_unsupported(fn, marker, construct):
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=construct) as info:
        vmapper.batched(fn)(np.array(["ab", "a", "abc"]))
    assert str(line_of(fn, marker)) in str(info.value)


def looks_up_a_shared_dict(k, table):
    return table[k] * 2


def test_a_shared_dict_is_looked_up_with_a_key_per_lane():
    table = {0: 1.0, 1: 2.5, "two": -1.0}
    check_batching(looks_up_a_shared_dict, (np.array([0, 1, 1, 0]), table), in_axes=(0, None))
    check_batching(looks_up_a_shared_dict, (np.array(["two", "two"]), table), in_axes=(0, None))
    with pytest.raises(vmapper.LaneError) as info:
        vmapper.batched(looks_up_a_shared_dict, in_axes=(0, None))(np.array([0, 3]), table)
    assert info.value.python_error is KeyError and np.asarray(info.value.lanes).tolist() == [1]


def looks_up_a_shared_dict_if_it_holds_the_key(k, table):
    if k in table:
        return table[k] * 2.0
    return -1.0 if k not in table else 0.0


def test_in_on_a_shared_dict_with_a_key_per_lane_tests_its_keys():
    table = {1: 0.5, 3: 1.5, 7: -2.0}
    check_batching(looks_up_a_shared_dict_if_it_holds_the_key, (np.arange(10), table), in_axes=(0, None))
    check_batching(looks_up_a_shared_dict_if_it_holds_the_key, (np.arange(10) * 0.5, table), in_axes=(0, None))


VOCAB = {"the": 1, "cat": 2, "sat": 3, "<unk>": 0}


def word_ids_with_a_default(w, vocab):
    return vocab.get(w, vocab["<unk>"]), VOCAB.get(w, -1) * 10, vocab.get(w, 0.5)


def word_ids_without_a_default(w):
    return VOCAB.get(w)


def scaled_by_a_shared_dict_get(k, x, weights):
    return x * weights.get(k, 1.0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_get_of_a_shared_dict_with_a_key_per_lane_falls_back_to_the_default(backend):
    words = np.array(["the", "dog", "sat", "", "cat", "the"])
    check_batching(word_ids_with_a_default, (words, VOCAB), in_axes=(0, None), backend=backend)
    check_batching(word_ids_without_a_default, (np.array(["cat", "the"]),), backend=backend)
    with pytest.raises(vmapper.UnsupportedSyntaxError, match=r"d.get\(key\) where the dict lacks the key.*lane\(s\) 1"):
        vmapper.batched(word_ids_without_a_default, backend=backend)(words[:2])


def test_gradients_flow_through_a_shared_dict_get():
    weights = {0: 2.0, 3: -1.5}
    k, x = np.array([0, 1, 3, 3, 2]), RNG.normal(size=5)
    f = vmapper.batched(scaled_by_a_shared_dict_get, in_axes=(0, 0, None))
    check_batching(f, (k, x, weights))
    g = vmapper.grad(f, argnums=1)(k, x, weights)
    np.testing.assert_array_equal(g, [2.0, 1.0, -1.5, -1.5, 1.0])
