"""Wall time and peak memory of a block of work (what each result's provenance reports), and the
memory guard every method calls before training."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
import time
from contextlib import contextmanager

import psutil

# The memory this process may use, in GB, when a scheduler gave it a fixed amount (a Nextflow task's
# ``memory``, passed as ``--memory-gb``); None: the machine's free memory is what counts.
_budget_gb: float | None = None


@contextmanager
def memory_budget(gb: float | None):
    """Within the block, ``require_memory`` checks estimates against ``gb`` (the memory a scheduler gave
    this task) instead of the machine's free memory, which on a shared node says nothing about what the
    task may use. ``None`` changes nothing."""
    global _budget_gb
    if gb is not None and gb <= 0:
        from graphimpute.errors import GraphImputeError

        raise GraphImputeError(f"--memory-gb {gb:g}: give a positive amount of memory")
    before, _budget_gb = _budget_gb, (gb if gb is not None else _budget_gb)
    try:
        yield
    finally:
        _budget_gb = before


def rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    return psutil.Process().memory_info().rss / 2**20


def release_free_memory() -> None:
    """Collect garbage and hand the C heap's free pages back to the OS (glibc ``malloc_trim``), so that
    memory an earlier step freed does not count as the next step's resident memory."""
    gc.collect()
    libc = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(libc).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl): nothing to trim
        pass


class PeakMemory:
    """Peak memory inside a ``with`` block: the CUDA allocator's peak on a CUDA device, else the
    process RSS sampled every ``interval`` seconds (so it includes numpy and scipy, not only torch);
    ``start_mb``: the RSS when the block began (0 on CUDA), so ``peak_mb - start_mb`` is what the block added."""

    def __init__(self, device=None, interval: float = 0.05):
        self.cuda = device is not None and str(device).startswith("cuda")
        self.interval = interval
        self.peak_mb = 0.0
        self.start_mb = 0.0
        self.wall_s = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakMemory":
        self._t0 = time.perf_counter()
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        else:
            release_free_memory()
            self.peak_mb = self.start_mb = rss_mb()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def __exit__(self, *exc) -> None:
        self.wall_s = time.perf_counter() - self._t0
        if self.cuda:
            import torch

            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self.peak_mb, rss_mb())


def require_memory(needed_gb: float, *, what: str, advice: str, limit_gb: float | None = None,
                   device=None) -> None:
    """Stop before work estimated to need more than ``limit_gb`` (a method's ``max_memory_gb``, when it
    has one) or more than the run may use: the memory given with ``memory_budget`` (a task's
    allocation), else what the device has free now. The first is a ``ResourceError`` (more memory would
    not help: the message names the parameter); the second a ``NotEnoughMemoryError``, which a pipeline
    retries with more memory. Both name the estimate, the bound and what to change, instead of a crash
    (or the OOM killer) part-way through. A CUDA device is checked against its own free memory."""
    from graphimpute.errors import NotEnoughMemoryError, ResourceError

    if limit_gb is not None and needed_gb > limit_gb:
        raise ResourceError(f"{what} needs about {needed_gb:.1f} GiB, above the limit of {limit_gb:g} GiB; "
                            f"{advice}")
    on_cuda = device is not None and str(device).startswith("cuda")
    if _budget_gb is not None and not on_cuda:
        if needed_gb > _budget_gb:
            raise NotEnoughMemoryError(
                f"{what} needs about {needed_gb:.1f} GiB, more than the {_budget_gb:.1f} GiB this run was given "
                f"(--memory-gb); give it more memory (the Nextflow pipeline retries the task with more, up to "
                f"its retry limit, then see 'Memory' in docs/usage.md), or {advice}")
        return
    free_gb = available_mb(device) / 1024
    if needed_gb > free_gb:
        raise NotEnoughMemoryError(f"{what} needs about {needed_gb:.1f} GiB, more than the {free_gb:.1f} GiB free on "
                                   f"{device or 'this machine'}; {advice}")


def available_mb(device=None) -> float:
    """Memory a run can still take, in MB: free memory of a CUDA device, else the system's
    MemAvailable (what a memory estimate is checked against before training)."""
    if device is not None and str(device).startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free / 2**20
    return psutil.virtual_memory().available / 2**20  # Linux: the kernel's MemAvailable
