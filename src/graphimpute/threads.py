"""How many CPU threads the numerical libraries may use: a Nextflow task's ``cpus`` (``--threads``).

torch, the OpenMP runtime, the BLAS libraries (MKL, OpenBLAS) and numba each start one thread per core
by default; several such tasks on one shared node oversubscribe it. ``limit_threads(n)`` caps all of
them for a block of work.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager

from graphimpute.errors import GraphImputeError

log = logging.getLogger(__name__)

# Read by each library when it is first loaded: OpenMP (torch's and scikit-learn's), MKL, OpenBLAS,
# Apple's Accelerate, numexpr, numba.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")


@contextmanager
def limit_threads(n: int | None):
    """Run the block with at most ``n`` threads in torch, OpenMP, MKL, OpenBLAS and numba.

    The environment variables of ``THREAD_VARIABLES`` are set first, so a library loaded inside the
    block starts with ``n`` threads (the CLI imports numpy, torch and numba only inside its subcommands,
    so in a ``graphimpute`` process every one of them is loaded here). A library that is already loaded
    is limited at run time: ``torch.set_num_threads``, threadpoolctl for the OpenMP and BLAS pools,
    ``numba.set_num_threads``. All of it is restored afterwards (a library first loaded inside the
    block keeps the thread count it was loaded with).
    ``None`` changes nothing."""
    if n is None:
        yield
        return
    if n < 1:
        raise GraphImputeError(f"--threads {n}: give a whole number of at least 1")
    saved_env = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(n) for name in THREAD_VARIABLES})
    undo = []
    try:
        undo = _limit_loaded(n)
        log.debug("threads: at most %d (torch, OpenMP, MKL, OpenBLAS, numba)", n)
        yield
    finally:
        for restore in reversed(undo):
            restore()
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _limit_loaded(n: int) -> list:
    """Limit the libraries loaded already; returns functions that undo each limit."""
    undo = []
    if "torch" in sys.modules:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(n)
        undo.append(lambda: torch.set_num_threads(before))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn's dependency: absent only in a partial install
        threadpool_limits = None
    if threadpool_limits is not None and ("numpy" in sys.modules or "torch" in sys.modules):
        limits = threadpool_limits(limits=n)
        undo.append(limits.restore_original_limits)
    if "numba" in sys.modules:
        import numba

        before_numba = numba.get_num_threads()
        # numba cannot go above the thread count it was loaded with
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        undo.append(lambda: numba.set_num_threads(before_numba))
    return undo
