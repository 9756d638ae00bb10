"""``vmapper/allocator.py``: the opt-in malloc tuning applies on glibc and refuses values
mallopt cannot take."""
import sys

import pytest

import vmapper
from vmapper import allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tune_allocator_applies_through_mallopt_on_linux():
    assert vmapper.tune_allocator() is True
    assert vmapper.tune_allocator(mmap_threshold=1 << 20, trim_threshold=8 << 20, top_pad=0) is True


def test_tune_allocator_without_mallopt_changes_nothing_and_says_so(monkeypatch):
    monkeypatch.setattr(allocator, "_mallopt", lambda: None)
    assert vmapper.tune_allocator() is False


@pytest.mark.parametrize("kw, match", [(dict(mmap_threshold=-1), "mmap_threshold must be an int"),
                                       (dict(trim_threshold=2**31), "trim_threshold must be an int"),
                                       (dict(top_pad=1.5), "top_pad must be an int"),
                                       (dict(mmap_threshold=64 << 20), "above glibc's limit of 32 MiB")])
def test_tune_allocator_refuses_values_mallopt_cannot_take(kw, match):
    with pytest.raises(ValueError, match=match):
        vmapper.tune_allocator(**kw)
