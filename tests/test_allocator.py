"""``vmapper/allocator.py``: the opt-in malloc tuning applies on glibc and refuses sizes
outside glibc's dynamic thresholds."""
import sys

import numpy as np
import pytest

import vmapper
from vmapper import allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc")
def test_tune_allocator_applies_on_glibc():
    assert vmapper.tune_allocator() is True
    assert vmapper.tune_allocator(block=np.int64(1 << 20)) is True


def test_tune_allocator_without_glibc_changes_nothing_and_says_so(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert vmapper.tune_allocator() is False


@pytest.mark.parametrize("block", [-1, 0, 128 << 10, (31 << 20) + 1, 32 << 20])
def test_tune_allocator_refuses_blocks_outside_glibcs_dynamic_range(block):
    with pytest.raises(ValueError, match=r"block must be in \(128 KiB, 31 MiB\]"):
        vmapper.tune_allocator(block)


@pytest.mark.parametrize("block", [1.5e6, "16M", True])
def test_tune_allocator_refuses_a_block_that_is_not_an_int(block):
    with pytest.raises(TypeError, match="block must be an int"):
        vmapper.tune_allocator(block)


def test_tune_allocator_says_it_changes_nothing_where_the_environment_fixes_the_thresholds(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert vmapper.tune_allocator() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072")
    assert vmapper.tune_allocator() is False
