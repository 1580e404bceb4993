"""Each step's and each method's wall time and peak memory at 10k, 30k and 100k cells, one process per run.

The input at each size: ``--cells`` resampled with replacement from a real dataset (default CBMC,
8,617 cells x 2,000 genes) with fresh Poisson noise per cell (``graphmcv_scale.resample``). Then, as a
user runs them, each in its own process: ``graphimpute qc``, ``normalise``, ``graph --methods <all
of --methods>`` (PCA, kNN and every method's declared graphs), and ``graphimpute impute --method M`` on
the graph step's output for each method, MAGIC included as the reference of the same run. A run
longer than ``--timeout-min`` is stopped and recorded as ``timeout``; exit 2 or 75 is a refusal (the
memory guard's line is kept); a signal (137: the kernel's out-of-memory killer) is ``killed``.

Peak memory is the process's maximum resident set (``os.wait4``'s ru_maxrss: the process and the
children it waited for), so the Python interpreter, the AnnData and the libraries are included. The
method's own memory estimate (``uns['graphimpute']['impute']['info']['memory_estimate_gb']``) is read
back from its output next to it, with its epochs.

    PYTHONPATH=src python bench/scale.py --cells 10000,30000,100000 --workdir /tmp/scale \\
        --results bench/results/scale.tsv --markdown bench/results/scale.md

The TSV has one row per (cells, run); re-running with the same ``--results`` adds or replaces rows,
so sizes and methods can be measured in separate sessions. The markdown table and the growth
exponents (least-squares slope of log time and log peak memory against log cells) are rebuilt from
the whole TSV. Each method's time is also given as a multiple of the MAGIC row at the same size in the
same TSV (the reference of the same run when the two were measured together).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _child import measured  # noqa: E402
from graphmcv_scale import resample  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIELDS = ["cells", "run", "n_obs", "status", "exit_code", "wall_s", "cpu_s", "peak_rss_mb", "memory_estimate_gb", "epochs",
          "epoch_s", "steps_per_epoch", "default_max_epochs", "params", "threads", "load_before", "date", "message",
          "method_start_rss_mb"]
STEPS = ("qc", "normalise", "graph")
# one history per model, several models per run: no projection from a median epoch
SEVERAL_MODELS = ("cnnimpute",)


def method_record(path: Path) -> dict:
    """Epochs and the memory estimate a method wrote into its output's provenance."""
    import anndata as ad

    if not path.exists():
        return {}
    record = ad.read_h5ad(path, backed="r").uns.get("graphimpute", {}).get("impute", {})
    info, history = record.get("info", {}), record.get("history", {}) or {}
    out = {}
    if "memory_estimate_gb" in info:
        out["memory_estimate_gb"] = round(float(info["memory_estimate_gb"]), 3)
    if record.get("memory_before_mb"):  # the process's RSS when the method began: what its estimate leaves out
        out["method_start_rss_mb"] = round(float(record["memory_before_mb"]), 1)
    if "n_epochs" in history:
        out["epochs"] = int(history["n_epochs"])
    if "steps_per_epoch" in info:  # mini-batch: max_epochs counts optimiser steps (train.schedule_in_steps)
        out["steps_per_epoch"] = int(info["steps_per_epoch"])
    times = (history.get("epochs") or {}).get("time_s")
    if times is not None and len(times):
        out["epoch_s"] = round(float(np.median(times)), 2)
    return out


def n_obs(path: Path) -> int:
    import anndata as ad

    return ad.read_h5ad(path, backed="r").n_obs


def default_max_epochs(name: str) -> int | str:
    from graphimpute import methods

    return methods.get(name).defaults.get("max_epochs", "")


def measure_size(n_cells: int, names: list[str], args) -> list[dict]:
    import anndata as ad

    folder = args.workdir / f"{n_cells}"
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "input.h5ad"
    if not data.exists():
        resample(ad.read_h5ad(args.data), n_cells, args.seed).write_h5ad(data)
    gi = [sys.executable, "-m", "graphimpute"]
    common = ["--threads", str(args.threads), "--quiet", "--seed", str(args.seed)]
    commands = {
        "qc": [*gi, "qc", str(data), "-o", str(folder / "qc.h5ad"), "--min-genes", str(args.min_genes)],
        "normalise": [*gi, "normalise", str(folder / "qc.h5ad"), "-o", str(folder / "normalise.h5ad")],
        "graph": [*gi, "graph", str(folder / "normalise.h5ad"), "-o", str(folder / "graph.h5ad"),
                  "--methods", ",".join(names)],
    }
    for name in names:
        commands[name] = [*gi, "impute", str(folder / "graph.h5ad"), "-o", str(folder / f"{name}.h5ad"),
                          "--method", name, "--memory-gb", str(args.memory_gb),
                          *[p for param in args.param if param.startswith(f"{name}.")
                            for p in ("--param", param.split(".", 1)[1])]]
    rows = []
    for run in [s for s in STEPS if s in args.runs] + [n for n in names if n in args.runs]:
        output = folder / ("graph.h5ad" if run == "graph" else f"{run}.h5ad")
        if output.exists() and run in names:
            output.unlink()  # a method's output from an earlier try must not be read back as this one's
        load = os.getloadavg()[0]
        print(f"{n_cells} cells: {run} ...", flush=True)
        # the capture is <run>.stdout: the CLI writes its own log, <output>.log, and cuts it back when it fails
        result = measured([*commands[run], *common], args.timeout_min * 60, folder / f"{run}.stdout")
        row = {"cells": n_cells, "run": run, **result, "threads": args.threads, "load_before": round(load, 1),
               "date": time.strftime("%Y-%m-%d %H:%M")}
        if result["status"] == "ok":
            row["n_obs"] = n_obs(output)
        if run in names:
            row["params"] = " ".join(p.split(".", 1)[1] for p in args.param if p.startswith(f"{run}."))
            row["default_max_epochs"] = default_max_epochs(run)
            if result["status"] == "ok":
                row.update(method_record(output))
        print("   ", {k: row.get(k) for k in ("status", "wall_s", "peak_rss_mb", "memory_estimate_gb", "epochs",
                                                "message")}, flush=True)
        rows.append(row)
        if run in STEPS and result["status"] != "ok":
            break  # later steps need this one's output
    return rows


def merge(path: Path, rows: list[dict]) -> list[dict]:
    old = list(csv.DictReader(open(path), delimiter="\t")) if path.exists() else []
    new_keys = {(str(r["cells"]), r["run"]) for r in rows}
    merged = [r for r in old if (r["cells"], r["run"]) not in new_keys] + [{k: r.get(k, "") for k in FIELDS} for r in rows]
    merged.sort(key=lambda r: (int(r["cells"]), r["run"]))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS, delimiter="\t", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(merged)
    return merged


def exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log y against log x over at least two sizes."""
    if len({x for x, _ in points}) < 2:
        return None
    lx, ly = [math.log(x) for x, _ in points], [math.log(max(y, 1e-9)) for _, y in points]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def markdown(rows: list[dict]) -> str:
    sizes = sorted({int(r["cells"]) for r in rows})
    runs = list(dict.fromkeys([s for s in STEPS if any(r["run"] == s for r in rows)]
                              + sorted({r["run"] for r in rows} - set(STEPS))))
    by = {(int(r["cells"]), r["run"]): r for r in rows}
    head = ("| run | " + " | ".join(f"{n:,} cells" for n in sizes)
            + " | time exponent (per epoch, one pass over the cells, where one is recorded) | peak memory exponent |")
    lines = [head, "|" + "---|" * (len(sizes) + 3)]
    for run in runs:
        cells, ok = [], []
        for n in sizes:
            r = by.get((n, run))
            if r is None:
                cells.append("not run")
                continue
            text = f"{float(r['wall_s']):.0f} s, {float(r['peak_rss_mb']) / 1024:.2f} GB"
            if r.get("memory_estimate_gb"):
                text += f" (est. {float(r['memory_estimate_gb']):.2f}"
                if r.get("method_start_rss_mb"):  # the method's own part of the peak, what it estimates
                    text += f"; {(float(r['peak_rss_mb']) - float(r['method_start_rss_mb'])) / 1024:.2f} over its start"
                text += ")"
            if r.get("epochs"):
                text += f", {r['epochs']} ep"
            if r.get("params"):
                text += f" [{r['params']}]"
            if r.get("epoch_s") and run not in SEVERAL_MODELS:
                text += f"; {float(r['epoch_s']):.3g} s/ep"
                if r.get("steps_per_epoch") and int(r["steps_per_epoch"]) > 1:
                    text += f" of {r['steps_per_epoch']} steps"
                if r.get("default_max_epochs") and "max_epochs" in (r.get("params") or ""):  # cut short: project
                    most = int(r["default_max_epochs"])
                    epochs = math.ceil(most / max(int(r.get("steps_per_epoch") or 1), 1))
                    text += f" → ≤ {float(r['epoch_s']) * epochs / 60:.3g} min of epochs at max_epochs {most}"
            magic = by.get((n, "magic"))
            if run not in (*STEPS, "magic") and magic is not None and magic["status"] == "ok":
                text += f", {float(r['wall_s']) / float(magic['wall_s']):.2g}x MAGIC"  # the same run's reference
            if run == "qc" and r.get("n_obs"):
                text += f", {int(r['n_obs']):,} cells kept"
            if r["status"] != "ok":
                text = f"**{r['status']}** after {float(r['wall_s']):.0f} s, {float(r['peak_rss_mb']) / 1024:.2f} GB"
            else:  # a method's time grows as its epochs do: compare the cost of one epoch across sizes
                time_s = float(r["epoch_s"]) if r.get("epoch_s") and run not in SEVERAL_MODELS else float(r["wall_s"])
                ok.append((n, time_s, float(r["peak_rss_mb"])))
            cells.append(text)
        t_exp = exponent([(n, t) for n, t, _ in ok])
        m_exp = exponent([(n, m) for n, _, m in ok])
        fmt = (lambda e: "–" if e is None else f"{e:.2f}")
        lines.append(f"| {run} | " + " | ".join(cells) + f" | {fmt(t_exp)} | {fmt(m_exp)} |")
    notes = [f"- {r['cells']} cells, {r['run']}: {r['status']} (exit {r['exit_code']}): {r['message']}"
             for r in rows if r["status"] != "ok"]
    return "\n".join(lines) + ("\n\nNot completed:\n" + "\n".join(notes) if notes else "") + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scdcc_cbmc_citeseq_top2000.h5ad")
    parser.add_argument("--cells", default="10000,30000,100000", help="comma-separated sizes")
    parser.add_argument("--methods", default="magic,scgnn,scvgae,graphsci,gnnimpute,cnnimpute")
    parser.add_argument("--runs", default=None, help="subset of qc,normalise,graph and the methods to (re)measure "
                        "(default: all; the steps' outputs from an earlier call are reused)")
    parser.add_argument("--workdir", type=Path, required=True, help="inputs and outputs (several GB at 100k)")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "scale.tsv")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table here (default: print it)")
    parser.add_argument("--timeout-min", type=float, default=60.0)
    parser.add_argument("--memory-gb", type=float, default=16.0, help="the memory guard's bound (--memory-gb)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-genes", type=int, default=20,
                        help="QC's --min-genes: the CBMC file holds only its top 2,000 genes (median 113 detected per "
                             "cell), so the default 200 would keep ~4%% of the cells")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--param", action="append", default=[], help="METHOD.KEY=VALUE (repeatable; recorded in the log)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    args.runs = set(args.runs.split(",")) if args.runs else set(STEPS) | set(names)
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, threads {args.threads}", flush=True)
    rows = []
    for n_cells in [int(c) for c in args.cells.split(",")]:
        rows += measure_size(n_cells, names, args)
        merged = merge(args.results, rows)
    table = markdown(merged)
    if args.markdown:
        args.markdown.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
