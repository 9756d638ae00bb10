"""Test-session setup.

The tests multiply tiny matrices, where BLAS worker threads only add overhead
(badly so on a contended 2-core machine): use one thread unless told otherwise.
Set before numpy is first imported by a test module.
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
