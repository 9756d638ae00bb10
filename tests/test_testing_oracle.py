"""vmapper.testing.check_batching: what it compares and how strictly."""
import numpy as np
import pytest

from vmapper.testing import check_batching
from vmapper.testing.oracle import _compare


def log_of(x):
    return np.log(x)


def test_a_nans_sign_bit_is_payload_but_the_sign_of_zero_counts():
    with np.errstate(invalid="ignore"):
        check_batching(log_of, (np.array([1.0, -1.0, np.nan]),), backend="numba")  # its NaN's sign may differ
    _compare(np.array([np.nan, 1.0]), np.array([-np.nan, 1.0]), True, 0.0, 0.0, "result")
    with pytest.raises(AssertionError, match="1 mismatching element"):
        _compare(np.array([0.0, 1.0]), np.array([-0.0, 1.0]), True, 0.0, 0.0, "result")
