"""Running a command in a child process and reading its cost from the kernel (the benchmarks' one timer).

``os.wait4`` gives a process's CPU time and peak resident memory (``ru_maxrss``). A forked child starts
with its parent's pages counted in that peak, so the command is started by a small launcher (a bare
interpreter of a few MB) that forks and execs it and reports the command's own figures: the
interpreter, the imports and the file I/O of the command are counted, the benchmark's own memory is not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# argv: RESULT_FILE COMMAND...; writes the command's exit status, CPU seconds and peak RSS (KiB) as JSON
# (SIGTERM to the launcher kills the command, so that a timed-out command's figures are still reported)
_LAUNCHER = (
    "import json, os, signal, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(json.dumps({'code': os.waitstatus_to_exitcode(status), "
    "'cpu_s': usage.ru_utime + usage.ru_stime, 'maxrss_kib': usage.ru_maxrss}))\n"
)


def measured(command: list[str], timeout_s: float, log_path: Path) -> dict:
    """Run ``command`` in its own process group; its wall time, CPU time (user + system: the figure to
    compare on a loaded machine), peak RSS (MB), exit code and status."""
    result_file = Path(log_path).with_suffix(".rusage.json")
    result_file.unlink(missing_ok=True)
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, str(result_file), *command], stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        timed_out = threading.Event()

        def stop():
            timed_out.set()
            process.send_signal(signal.SIGTERM)

        timer = threading.Timer(timeout_s, stop) if timeout_s != float("inf") else None
        if timer:
            timer.start()
        process.wait()
        wall = time.perf_counter() - t0
        if timer:
            timer.cancel()
        try:  # what the command started and left behind
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    got = json.loads(result_file.read_text()) if result_file.exists() else {"code": process.returncode,
                                                                           "cpu_s": float("nan"), "maxrss_kib": 0}
    result_file.unlink(missing_ok=True)
    status = "timeout" if timed_out.is_set() else None
    process.returncode = got["code"]
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
    return {"status": status, "exit_code": exit_code, "wall_s": round(wall, 2), "cpu_s": round(got["cpu_s"], 2),
            "peak_rss_mb": round(got["maxrss_kib"] / 1024, 1), "message": message}
