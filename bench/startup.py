"""What the two files per trained method save: the start-up of listing methods and checking parameters.

Three commands, each in a fresh interpreter, alternated run by run so that a drift of the machine's
speed hits all of them alike:

- ``registry``: ``methods.available()`` and one parameter check, as ``graphimpute methods``, a ``--param``
  refusal and ``check-samplesheet`` do today (registry entries only);
- ``merged``: the same after importing every ``methods/_impl/<name>.py``, which is what the registry
  would load if each method's code lived in its entry (torch and PyG at the top of the module);
- ``cli``: ``python -m graphimpute methods --json``, the command itself.

Wall and CPU time and peak memory come from the kernel (``bench/_child.py``); the median of ``--runs``
is reported.

    PYTHONPATH=src python bench/startup.py --runs 7 --out bench/results/startup.md
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _child import measured  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAINED = sorted(p.stem for p in (REPO / "src" / "graphimpute" / "methods" / "_impl").glob("*.py")
                 if p.stem != "__init__")
REGISTRY = ("from graphimpute import methods; methods.available(); "
            "methods.resolve_params(methods.get('scgnn'), {'max_epochs': '3'})")
COMMANDS = {
    "registry": [sys.executable, "-c", REGISTRY],
    "merged": [sys.executable, "-c", REGISTRY + "; import importlib; "
               + "; ".join(f"importlib.import_module('graphimpute.methods._impl.{m}')" for m in TRAINED)],
    "cli": [sys.executable, "-m", "graphimpute", "methods", "--json"],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "startup.md")
    args = parser.parse_args(argv)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    results: dict[str, list[dict]] = {name: [] for name in COMMANDS}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs + 1):  # the first round warms the file cache and is not counted
            for name, command in COMMANDS.items():
                got = measured(command, math.inf, Path(tmp) / f"{name}.log")
                if got["exit_code"] != 0:
                    raise SystemExit(f"{name} failed: {got['message']}")
                if run:
                    results[name].append(got)
    load.append(os.getloadavg()[0])
    med = {name: {k: statistics.median(r[k] for r in rows) for k in ("wall_s", "cpu_s", "peak_rss_mb")}
           for name, rows in results.items()}
    lines = [
        "# Start-up: the registry entry and the code of a trained method in two files",
        "",
        f"`PYTHONPATH=src python bench/startup.py --runs {args.runs}` on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
        f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
        f"{load[0]:.2f} before and {load[1]:.2f} after. Median of {args.runs} runs of each, alternated, after one "
        "uncounted round. `merged` imports the seven `methods/_impl` modules on top of `registry`: what listing "
        "methods would cost with each trained method in one file.",
        "",
        "| command | wall s | CPU s | peak memory MB |",
        "|---|---|---|---|",
        *(f"| `{name}` | {m['wall_s']:.2f} | {m['cpu_s']:.2f} | {m['peak_rss_mb']:.0f} |" for name, m in med.items()),
        "",
        f"merged / registry: {med['merged']['wall_s'] / med['registry']['wall_s']:.1f}x the wall time, "
        f"{med['merged']['peak_rss_mb'] / med['registry']['peak_rss_mb']:.1f}x the memory.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
