"""``vmapper/allocator.py``: the opt-in malloc tuning applies on glibc and refuses sizes
outside glibc's dynamic thresholds."""
import sys

import pytest

import vmapper
from vmapper import allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc")
def test_tune_allocator_applies_on_glibc():
    assert vmapper.tune_allocator() is True
    assert vmapper.tune_allocator(block=1 << 20) is True


def test_tune_allocator_without_glibc_changes_nothing_and_says_so(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert vmapper.tune_allocator() is False


@pytest.mark.parametrize("block", [-1, 0, 128 << 10, (32 << 20) + 1, 1.5e6])
def test_tune_allocator_refuses_blocks_outside_glibcs_dynamic_range(block):
    with pytest.raises(ValueError, match="block must be an int of bytes"):
        vmapper.tune_allocator(block)
