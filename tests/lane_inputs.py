"""Inputs shared by the language tests: seeded arrays, and hypothesis-drawn lanes."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


SIZES = (1, 7, 1000)

CF_SETTINGS = settings(max_examples=20, deadline=None,
                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

sizes = pytest.mark.parametrize("n", SIZES)

N = 61  # odd, not a power of two


def lane_test(fn):
    """Run ``fn(n, data)`` at every batch size with inputs drawn by hypothesis."""
    return sizes(CF_SETTINGS(given(data=st.data())(fn)))


@st.composite
def int_lanes(draw, n, lo, hi):
    """n ints in [lo, hi]: up to 40 drawn by hypothesis (it shrinks these), the rest seeded random."""
    k = min(n, 40)
    head = draw(st.lists(st.integers(lo, hi), min_size=k, max_size=k))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rest = np.random.default_rng(seed).integers(lo, hi + 1, size=n - k)
    return np.concatenate([np.array(head, dtype=np.int64), rest.astype(np.int64)])


@st.composite
def float_lanes(draw, n, lo, hi, shape=()):
    size = n * int(np.prod(shape, dtype=np.int64))
    k = min(size, 40)
    head = draw(st.lists(st.floats(lo, hi, allow_nan=False), min_size=k, max_size=k))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rest = np.random.default_rng(seed).uniform(lo, hi, size=size - k)
    return np.concatenate([np.array(head, dtype=np.float64), rest]).reshape((n,) + shape)


def draw_ints(data, n, lo, hi):
    return data.draw(int_lanes(n, lo, hi))


def rng(seed):
    return np.random.default_rng(seed)


def ints(seed, lo=-50, hi=50, n=N, dtype=np.int64):
    return rng(seed).integers(lo, hi, size=n).astype(dtype)


def nonzero_ints(seed, lo=-9, hi=10, n=N):
    v = ints(seed, lo, hi, n)
    return np.where(v == 0, 3, v)


def floats(seed, lo=-5.0, hi=5.0, n=N, dtype=np.float64, shape=()):
    return rng(seed).uniform(lo, hi, size=(n,) + shape).astype(dtype)


def random_binary_forest(seed, trees=12, depth=7):
    """Random binary trees of int leaves 0..8, at most ``depth`` levels below the root."""
    import vmapper
    rng = np.random.default_rng(seed)

    def tree(d):
        if d == 0 or rng.random() < 0.3:
            return int(rng.integers(0, 9))
        return (tree(d - 1), tree(d - 1))
    return vmapper.Forest.from_nested([tree(depth) for _ in range(trees)])


def random_nary_forest(seed, trees=50, depth=6):
    """A ``vmapper.Forest`` of random trees of 1 to 3 children per node and integer leaves."""
    import vmapper
    rng = np.random.default_rng(seed)

    def nary(d):
        if d == 0 or rng.random() < 0.3:
            return int(rng.integers(0, 9))
        return tuple(nary(d - 1) for _ in range(int(rng.integers(1, 4))))
    return vmapper.Forest.from_nested([nary(depth) for _ in range(trees)])
