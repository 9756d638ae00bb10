"""Test-session setup.

The tests multiply tiny matrices, where BLAS worker threads only add overhead
(badly so on a contended 2-core machine): use one thread unless told otherwise.
Set before numpy is first imported by a test module.
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# The language, runtime and autodiff tests pin the numpy reference runtime (a numba
# kernel costs about a second to compile per function); tests/kernels and the backend
# agreement tests select backend="numba" explicitly.
os.environ.setdefault("VMAPPER_BACKEND", "numpy")
