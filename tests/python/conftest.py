"""Python test settings: single-threaded BLAS for numpy/scipy references.

On this shared 2-core machine a multi-threaded OpenBLAS spins against the other processes:
the dense references of test_exact_convergence.py ran 40× slower with its default threads. Set
before numpy is first imported (pytest loads conftest files before the test modules).
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
