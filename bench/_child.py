"""Running a command in a child process and reading its cost from the kernel (the benchmarks' one timer).

``os.wait4`` gives the child's own CPU time and peak resident memory (``ru_maxrss``: the process and the
children it waited for), so the interpreter, the imports and the file I/O are counted, and nothing of
the benchmark's own process is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def measured(command: list[str], timeout_s: float, log_path: Path) -> dict:
    """Run ``command`` in its own process group; its wall time, CPU time (user + system: the figure to
    compare on a loaded machine), peak RSS (MB), exit code and status."""
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        status = None
        while True:
            pid, code, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout_s:
                os.killpg(process.pid, signal.SIGKILL)
                pid, code, usage = os.wait4(process.pid, 0)
                status = "timeout"
                break
            time.sleep(0.2)
        wall = time.perf_counter() - t0
    process.returncode = os.waitstatus_to_exitcode(code)
    exit_code = process.returncode
    if status is None:
        status = ("ok" if exit_code == 0 else "refused" if exit_code in (2, 75)
                  else "killed" if exit_code < 0 else "failed")
    message = ""
    if status != "ok":
        text = log_path.read_text(errors="replace").replace("\x00", "")  # a log cut back by the CLI leaves NULs
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("Error:")]
        message = (errors or lines or [""])[-1][:300]
    return {"status": status, "exit_code": exit_code, "wall_s": round(wall, 2),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "message": message}
