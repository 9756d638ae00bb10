"""The numpy runtime's per-lane select kernel: bitwise ``np.where`` on the lanes it serves."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import vmapper
from vmapper.kernels import lane_select

DTYPES = ["bool", "int8", "uint16", "int32", "int64", "uint64", "float32", "float64", "complex128"]


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
@settings(max_examples=20, deadline=None)
def test_select_into_equals_where_bitwise(dtype, data):
    n = data.draw(st.integers(0, 300))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(2, n * np.dtype(dtype).itemsize), dtype=np.uint8)
    if dtype == "bool":
        new, old = raw % 2 == 1
    else:
        new, old = (r.view(dtype) for r in raw)  # every bit pattern: NaN payloads, -0.0, subnormals
    mask = rng.random(n) < data.draw(st.sampled_from([0.0, 0.5, 1.0]))
    want = np.where(mask, new, old).tobytes()
    assert lane_select.select_into(mask, new, old, np.empty(n, dtype)).tobytes() == want
    for into_new in (True, False):
        a, b = new.copy(), old.copy()
        out = lane_select.select_in_place(mask, a, b, into_new)
        assert out is (a if into_new else b) and out.tobytes() == want


def test_fits_refuses_what_the_kernel_cannot_serve():
    m = np.ones(4, bool)
    a = np.zeros(4)
    assert lane_select.fits(m, a, a)
    assert not lane_select.fits(m, a, a.astype(np.float32))            # dtypes differ
    assert not lane_select.fits(m, a.reshape(2, 2), a.reshape(2, 2))   # per-sample arrays
    assert not lane_select.fits(m.astype(np.int8), a, a)               # not a bool mask
    assert not lane_select.fits(m, a.astype(object), a.astype(object))


def _branchy(x, y):
    if x > 0.0:
        r = x * y
    else:
        r = y - x
    return r


def test_if_converted_float_branch_keeps_nan_payload_and_signed_zero():
    x = np.array([1.0, -1.0, 2.0, -0.0, 0.0, np.inf, -np.inf] * 20000)
    payload = np.array([0x7FF8000000001234], dtype=np.uint64).view(np.float64)[0]
    y = np.resize(np.array([payload, -0.0, 3.0, np.nan, -0.0, 0.0, 1.0]), x.size)
    got = vmapper.batched(_branchy, backend="numpy")(x, y)
    want = np.array([_branchy(a, b) for a, b in zip(x.tolist(), y.tolist())])
    assert got.tobytes() == want.tobytes()


def _halve_above_one(x):
    if x > 1:
        x = x - 0.5
    return x


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_float16_lanes_merge_through_np_where(backend):
    # numba cannot compile float16: the select falls back to np.where (it raised a LaneError)
    from vmapper.testing import check_batching
    x = np.linspace(0, 2, 101).astype(np.float16)
    assert not lane_select.fits(x > 1, x, x)
    check_batching(vmapper.batched(_halve_above_one, backend=backend), (x,))
