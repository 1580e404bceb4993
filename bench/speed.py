"""Speed and memory of each method at its defaults: one dataset, each method in its own process.

The dataset is prepared once (QC, normalise to the --n-top-genes most variable genes, PCA + kNN graph;
not timed). Then every method runs `graphimpute impute` in a fresh process, so its memory is its own:
the row gets the process's wall time, CPU time and peak resident memory (from the kernel, wait4), and
from the result's provenance the impute step's own wall time, epochs, device, phases and warnings.

    python bench/speed.py --data ../shared/data/scdcc_cbmc_citeseq_top2000.h5ad --min-genes 0 --n-mads none \\
        --methods scgnn,scvgae,graphsci,cnnimpute,gnnimpute --results bench/results/speed.tsv

Targets (issues 3 and 4): under 10 minutes and 8 GB on this 2-core machine. A row is appended per run;
the load average before and after is in it, because timings on a busy machine mean little.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import math
import sys
import time
from pathlib import Path

import anndata

from graphimpute import methods, pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _child import measured  # noqa: E402

log = logging.getLogger("speed")
TARGET_S, TARGET_MB = 600, 8192
COLUMNS = ["date", "dataset", "cells", "genes", "method", "params", "device", "exit", "wall_s", "cpu_s",
           "max_rss_mb", "impute_wall_s", "epochs", "phases", "meets_target", "load_before", "load_after",
           "threads", "machine", "note"]


def prepare(data: Path, outdir: Path, args) -> Path:
    sample = pipeline.sample_name(data)
    qc, norm, graph = (outdir / f"{sample}.{step}.h5ad" for step in ("qc", "normalise", "graph"))
    if not graph.exists():
        n_mads = None if args.n_mads == "none" else float(args.n_mads)
        pipeline.qc_step(data, qc, min_genes=args.min_genes, n_mads=n_mads)
        pipeline.normalise_step(qc, norm, n_top_genes=args.n_top_genes)
        pipeline.graph_step(norm, graph, method_names=["none"], seed=args.seed)
    return graph


def run_one(graph: Path, method: str, overrides: list[str], outdir: Path, args) -> dict:
    """One method in a child process; resources from wait4, the rest from the output's provenance."""
    out = outdir / f"{graph.name.split('.')[0]}.{method}.h5ad"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "graphimpute", "impute", str(graph), "-o", str(out), "--method", method,
           "--device", args.device, "--seed", str(args.seed), "--quiet",
           "--log-file", str(outdir / f"{method}.log")]
    for item in overrides:
        cmd += ["--param", item]
    load_before = os.getloadavg()[0]
    run = measured(cmd, math.inf, outdir / f"{method}.stdout")
    row = {"date": time.strftime("%Y-%m-%d %H:%M"), "method": method, "params": " ".join(overrides) or "defaults",
           "exit": run["exit_code"], "wall_s": run["wall_s"], "cpu_s": run["cpu_s"],
           "max_rss_mb": round(run["peak_rss_mb"]),
           "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
           "threads": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count())),
           "machine": f"{platform.machine()} {os.cpu_count()} CPUs", "note": args.note}
    if row["exit"] == 0:
        result = anndata.read_h5ad(out, backed="r")
        prov = result.uns["graphimpute"]["impute"]
        history = prov.get("history") or {}
        info = prov.get("info") or {}
        phases = info.get("timing") or {}
        row.update(cells=result.n_obs, genes=result.n_vars, device=prov.get("device", "cpu"),
                   impute_wall_s=round(float(prov["wall_time_s"]), 1),
                   epochs=history.get("n_epochs", "") if isinstance(history, dict) else "",
                   phases=json.dumps({k: round(float(v), 1) for k, v in phases.items()}) if phases else "")
        result.file.close()
        row["meets_target"] = row["wall_s"] < TARGET_S and row["max_rss_mb"] < TARGET_MB
        if not args.keep:
            out.unlink()
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--methods", required=True, help="comma-separated registered methods, or 'all'")
    parser.add_argument("--param", action="append", default=[], help="METHOD.KEY=VALUE (repeatable)")
    parser.add_argument("--results", type=Path, default=Path("bench/results/speed.tsv"))
    parser.add_argument("--outdir", type=Path, default=Path("bench/_scratch/speed"))
    parser.add_argument("--n-top-genes", type=int, default=2000)
    parser.add_argument("--min-genes", type=int, default=200, help="QC: fewest detected genes per cell")
    parser.add_argument("--n-mads", default="5", help="QC: library outlier cut in MADs, or 'none'")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="free text kept in the row (e.g. why parameters differ)")
    parser.add_argument("--keep", action="store_true", help="keep the imputed outputs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    overrides: dict[str, list[str]] = {}
    for item in args.param:
        target, value = item.split("=", 1)
        method, key = target.split(".", 1)
        overrides.setdefault(method, []).append(f"{key}={value}")
    outdir = args.outdir / pipeline.sample_name(args.data)
    outdir.mkdir(parents=True, exist_ok=True)
    graph = prepare(args.data, outdir, args)
    new = not args.results.exists()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    failed = 0
    for method in methods.parse_methods(args.methods):
        log.info("%s: %s", graph.name, method)
        row = run_one(graph, method, overrides.get(method, []), outdir, args)
        row["dataset"] = pipeline.sample_name(args.data)
        failed += row["exit"] != 0
        log.info("%s", row)
        with args.results.open("a", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS, delimiter="\t")
            if new:
                writer.writeheader()
                new = False
            writer.writerow(row)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
