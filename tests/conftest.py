"""Shared test configuration.

Fixtures that start real servers live in ``pg_server.py`` and ``redis_server.py``; test modules
import them by name.
"""

from __future__ import annotations

import os

# Keep test processes single-threaded for BLAS and Numba, as workers are (see ../shared/notes/numba.md).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
