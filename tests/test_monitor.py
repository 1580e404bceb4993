"""Peak memory and wall time of a block, and the memory guard every method calls before training."""

import sys
import time

import numpy as np
import pytest

from graphimpute.errors import GraphImputeError, NotEnoughMemoryError, ResourceError
from graphimpute.monitor import PeakMemory, memory_budget, require_memory, rss_mb


def test_peak_memory_sees_a_transient_allocation():
    before = rss_mb()
    with PeakMemory(interval=0.01) as memory:
        block = np.ones(300 * 2**20 // 8)  # 300 MB, written so that it is resident
        time.sleep(0.1)
        del block
    assert memory.peak_mb > before + 250
    assert memory.wall_s >= 0.1


def test_require_memory():
    require_memory(1.0, limit_gb=2.0, what="x", advice="y")
    with pytest.raises(ResourceError, match=r"training needs about 3\.5 GiB, above the limit of 2 GiB; use fewer genes"):
        require_memory(3.5, limit_gb=2.0, what="training", advice="use fewer genes")


def test_require_memory_refuses_more_than_is_free(monkeypatch):
    from graphimpute import monitor

    monkeypatch.setattr(monitor, "available_mb", lambda device=None: 1024.0)
    monitor.require_memory(0.5, what="x", advice="y")  # no limit given: only what is free counts
    with pytest.raises(NotEnoughMemoryError, match=r"needs about 2\.0 GiB, more than the 1\.0 GiB free on this machine; use fewer"):
        monitor.require_memory(2.0, limit_gb=8.0, what="training", advice="use fewer genes")


def test_a_method_limit_is_not_a_memory_shortage():
    """Over a method's own limit, more memory would not help: a plain ResourceError (not retried)."""
    with pytest.raises(ResourceError) as refusal:
        require_memory(3.5, limit_gb=2.0, what="training", advice="raise max_memory_gb")
    assert not isinstance(refusal.value, NotEnoughMemoryError)


def test_the_task_memory_replaces_the_machines_free_memory(monkeypatch):
    """A scheduler's allocation (--memory-gb) is what a task may use, whatever the node has free."""
    from graphimpute import monitor

    monkeypatch.setattr(monitor, "available_mb", lambda device=None: 1024.0)  # a busy node: 1 GB free
    with memory_budget(8.0):
        monitor.require_memory(2.0, what="x", advice="y")  # fits the task's 8 GB
        with pytest.raises(NotEnoughMemoryError, match=r"needs about 9\.0 GiB, more than the 8\.0 GiB this run was "
                                                       r"given \(--memory-gb\); give it more memory .*, or use fewer"):
            monitor.require_memory(9.0, what="training", advice="use fewer genes")
    with pytest.raises(NotEnoughMemoryError, match="free on this machine"):  # the budget ends with the block
        monitor.require_memory(2.0, what="x", advice="y")
    with pytest.raises(GraphImputeError, match="positive"):
        with memory_budget(0):
            pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_freed_heap_memory_does_not_count_as_the_next_blocks():
    # many small arrays come from the C heap, which keeps freed pages resident until trimmed
    junk = [np.ones(1000) for _ in range(30_000)]  # ~240 MB
    del junk[:-1]
    held = rss_mb()
    with PeakMemory() as memory:
        pass
    assert memory.peak_mb < held - 150
