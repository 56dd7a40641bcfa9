# Put first on PYTHONPATH, this stands in for Numba and fails to import, as if Numba were not
# installed: the tests of the NumPy path (DELTAPROP_HIDE_NUMBA=1 in tests/conftest.py, and
# test_kernels.py's subprocesses) run with it.
raise ImportError("Numba is hidden for these tests (tests/hide_numba)")
