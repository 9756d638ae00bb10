"""kernels.vector_width: the preferred vector width is chosen once and marks only our kernels."""
import re

import numpy as np
import pytest
from numba import njit

from vmapper.kernels import vector_width as vw


def test_the_width_override_is_validated(monkeypatch):
    monkeypatch.setenv("VMAPPER_VECTOR_WIDTH", "384")
    with pytest.raises(ValueError, match="VMAPPER_VECTOR_WIDTH"):
        vw._choose_width()
    monkeypatch.setenv("VMAPPER_VECTOR_WIDTH", "256")
    assert vw._choose_width() == 256


def test_the_width_is_part_of_the_cache_tag():
    assert vw.WIDTH_TAG == f"vw{vw.VECTOR_WIDTH or 0}"


@njit
def _scaled_sum(x, y, out):
    vw.wide_vectors()
    for i in range(x.shape[0]):
        out[i] = x[i] * 3.0 + y[i] / 7.0


def test_a_marked_kernel_computes_what_numpy_computes_bit_for_bit():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=1000), rng.normal(size=1000)
    out = np.empty_like(x)
    _scaled_sum(x, y, out)
    np.testing.assert_array_equal(out, x * 3.0 + y / 7.0)


@pytest.mark.skipif(vw.VECTOR_WIDTH != 512, reason="the CPU has no AVX-512 (or the width is overridden)")
def test_a_marked_kernel_uses_512_bit_registers_and_an_unmarked_one_keeps_llvms_choice():
    @njit
    def plain(x, y, out):
        for i in range(x.shape[0]):
            out[i] = x[i] * 3.0 + y[i] / 7.0

    x = np.ones(64)
    out = np.empty_like(x)
    _scaled_sum(x, x, out)
    plain(x, x, out)
    assert re.search(r"\bzmm\d", "\n".join(_scaled_sum.inspect_asm().values()))
    # The mark is per function: the user's own numba code keeps LLVM's default for the CPU
    # (256-bit on Intel's AVX-512 parts, 512-bit on AMD's Zen 4), with no attribute of ours.
    assert '"prefer-vector-width"="512"' in "\n".join(_scaled_sum.inspect_llvm().values())
    assert "prefer-vector-width" not in "\n".join(plain.inspect_llvm().values())


def test_cached_kernels_are_keyed_on_the_files_they_inline():
    # numba's own key is the function's source file only; ours adds the width
    # and vmath_*.py / activation_scalars.py (an edit there must not reuse
    # machine code compiled from the old formulas)
    from vmapper.kernels import activations as A
    from vmapper.kernels import vmath_array
    for fn in (A._lstm_block, vmath_array._map_block):
        loc = fn._cache._impl.locator
        assert getattr(type(loc), "_vmapper_stamp", False)
        own, digest = loc.get_source_stamp()
        assert digest == vw._inlined_sources_digest()

    @njit(cache=False)
    def elsewhere(x):
        return x
    from numba.core import caching
    assert all(c.from_function(elsewhere.py_func, __file__) is None
               for c in caching.CacheImpl._locator_classes if getattr(c, "_vmapper_stamp", False))


def test_fused_multiply_add_follows_numbas_target(monkeypatch):
    # NUMBA_CPU_FEATURES / NUMBA_CPU_NAME say what numba's code may use: llvm.fma on a
    # target without FMA would be a libm call per element (no vectorization)
    from numba.core import config
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+fma,+sse4.2")
    assert vw._target_has_fma() is True
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,-fma,+sse4.2")
    assert vw._target_has_fma() is False
    monkeypatch.setattr(config, "CPU_FEATURES", None)
    monkeypatch.setattr(config, "CPU_NAME", "generic")
    assert vw._target_has_fma() is False


def test_the_fma_choice_is_part_of_the_cached_kernels_stamp(monkeypatch):
    before = vw._inlined_sources_digest()
    monkeypatch.setattr(vw, "HAS_FMA", not vw.HAS_FMA)
    assert vw._inlined_sources_digest() != before
