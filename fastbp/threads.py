"""How many threads fastbp uses.

fastbp's own C loops (activations, losses, optimizer updates, the epoch driver) run on the
calling thread. The only other threads are BLAS's: the matrix products go through scipy's
OpenBLAS (``scipy.linalg.cython_blas``), whose thread pool is process-wide. These functions set
its size through threadpoolctl:

>>> import fastbp as fb
>>> fb.set_num_threads(1)            # from now on, for the whole process
>>> with fb.num_threads(2):          # for a block, then back
...     pass
>>> model = fb.Sequential([fb.Dense(4, 2)], n_threads=1)   # for every call of one model

``fit``, ``evaluate`` and ``predict`` also take ``n_threads=`` for one call. Because the BLAS
pool is shared by the process, models trained in several Python threads at once (an epoch
releases the GIL) should all use the same setting, typically 1 each.
"""
import contextlib

import threadpoolctl

from ._validation import check_int

_controller = None


def _blas():
    """threadpoolctl's view of the BLAS libraries loaded in this process (found once)."""
    global _controller
    if _controller is None:
        _controller = threadpoolctl.ThreadpoolController().select(user_api="blas")
    return _controller


def get_num_threads():
    """The number of BLAS threads matrix products may use now (the largest over the BLAS
    libraries loaded)."""
    return max((lib.num_threads for lib in _blas().lib_controllers), default=1)


def set_num_threads(n):
    """Let BLAS use n threads for the rest of the process (or until set again)."""
    _blas().limit(limits=check_int(n, "n_threads", 1))


def num_threads(n):
    """Within the block (``with num_threads(n):``), BLAS uses n threads (None: leave as is);
    the previous number is restored after."""
    if n is None:
        return contextlib.nullcontext()
    return _limited(check_int(n, "n_threads", 1))


@contextlib.contextmanager
def _limited(n):
    with _blas().limit(limits=n):
        yield
