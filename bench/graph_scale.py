"""The GRAPH step's wall time and peak memory against the number of cells, each CLI step in its own process.

The input: ``--cells`` cells resampled with replacement from a real dataset (default
scdcc_cbmc_citeseq_top2000, 8,617 cells x 2,000 genes) with fresh Poisson noise on every resampled cell
(``graphmcv_scale.resample``), so that no two cells are copies. QC's ``--min-genes`` is 10 (``--qc``):
at the default 200, 95% of these cells go (the median CBMC cell detects 78 of the 2,000 genes). For each size the CLI runs, one process
per step, as the pipeline does:

    graphimpute qc RAW -o qc.h5ad --min-genes 10 ; graphimpute normalise qc.h5ad -o norm.h5ad
    graphimpute graph norm.h5ad -o none.h5ad --methods none   (PCA + the general kNN-15 graph)
    graphimpute graph norm.h5ad -o all.h5ad --methods all     (every method's graphs)

Each with ``--threads 1``. Wall time is measured around the process; peak RSS is the process's own
``ru_maxrss`` (os.wait4), so imports and reading/writing the h5ad are included. The QC and normalise
outputs are kept in ``--workdir`` and reused (``--steps graph`` runs only the GRAPH steps), so a later
code version is measured on the same files. Rows are appended to ``--tsv``; ``--md`` is rewritten from
the whole TSV with the log-log slope of time and memory against cells (between the smallest and the
largest size measured, per label and step).

The graphimpute that runs is the one on PYTHONPATH: for 'before', an exported copy of the older commit
(its hash in a COMMIT file beside its src, which the TSV records). bench/results/graph_scale.tsv was made
with the two interleaved per size, so that both meet similar load:

    git archive 5871bfb src | tar -x -C /tmp/gs_before && echo 5871bfb > /tmp/gs_before/COMMIT
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1
    for n in 10000 30000 100000; do
      PYTHONPATH=/tmp/gs_before/src python bench/graph_scale.py --label before --cells $n
      PYTHONPATH=src python bench/graph_scale.py --label after --steps graph --cells $n
    done
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _child import measured  # noqa: E402

FIELDS = ["label", "cells", "step", "methods", "wall_s", "cpu_s", "peak_mb", "load1_before", "commit", "rc"]


def commit() -> str:
    src = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] or str(REPO / "src")
    marker = Path(src).parent / "COMMIT"
    if marker.exists():
        return marker.read_text().strip()
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "src"], capture_output=True, text=True)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def prepare(n: int, workdir: Path, data: Path, seed: int) -> Path:
    raw = workdir / f"raw_{n}.h5ad"
    if not raw.exists():
        import anndata as ad
        from graphmcv_scale import resample

        resample(ad.read_h5ad(data), n, seed).write_h5ad(raw)
    return raw


def write_md(tsv: Path, md: Path) -> None:
    rows = list(csv.DictReader(open(tsv), delimiter="\t"))
    latest: dict[tuple, dict] = {}
    for row in rows:  # the last measurement of each (label, step, methods, cells) counts
        if row["rc"] == "0":
            latest[(row["label"], row["step"], row["methods"], int(row["cells"]))] = row
    groups: dict[tuple, list] = {}
    for (label, step, methods, cells), row in sorted(latest.items()):
        groups.setdefault((label, step, methods), []).append(
            (cells, float(row["wall_s"]), float(row["cpu_s"]), float(row["peak_mb"])))
    intro = md.with_name(md.stem + "_intro.md")  # hand-written: what the labels are, what was concluded
    lines = ["# GRAPH step at scale: wall time and peak memory against cells", "",
             *([intro.read_text().strip(), ""] if intro.exists() else []),
             "Written by `bench/graph_scale.py` from `graph_scale.tsv` (one CLI process per step, `--threads 1`; "
             "CPU = user + system seconds of the process, less sensitive than wall time to other work on the "
             "machine; peak = the process's ru_maxrss, imports and h5ad I/O included). `cells`: the resampled "
             "cells before QC (about 92% pass). Exponent: slope of log(value) against log(cells) between the "
             "smallest and the largest size.", "",
             "| label | step | methods | cells | wall s | CPU s | peak MB |", "|---|---|---|---:|---:|---:|---:|"]
    for (label, step, methods), points in groups.items():
        for cells, wall, cpu, peak in points:
            lines.append(f"| {label} | {step} | {methods} | {cells:,} | {wall:.1f} | {cpu:.1f} | {peak:.0f} |")
    lines += ["", "| label | step | methods | cells | wall exponent | CPU exponent | memory exponent |",
              "|---|---|---|---|---:|---:|---:|"]
    for (label, step, methods), points in groups.items():
        if len(points) < 2:
            continue
        (c0, w0, u0, m0), (c1, w1, u1, m1) = points[0], points[-1]
        span = np.log(c1 / c0)
        lines.append(f"| {label} | {step} | {methods} | {c0:,}–{c1:,} | {np.log(w1 / w0) / span:.2f} | "
                     f"{np.log(u1 / u0) / span:.2f} | {np.log(m1 / m0) / span:.2f} |")
    lines += ann_table(md.parent)
    md.write_text("\n".join(lines) + "\n")


def ann_table(folder: Path) -> list[str]:
    """The accuracy and cost of the large-size paths from ``bench/graph_ann.py``'s records, if any."""
    import json

    records = sorted((json.loads(p.read_text()) for p in folder.glob("graph_ann_*k.json")), key=lambda r: r["cells"])
    if not records:
        return []
    lines = ["", "## The large-size paths against the exact ones (`bench/graph_ann.py`, `graph_ann_*.json`)", "",
             "Same normalised file, one process, one thread; kNN-15 on 50 PCs. Recall: share of each cell's exact "
             "15 neighbours that pynndescent finds (directed lists); Jaccard: of the symmetrised graphs' edges. "
             "PCA overlap: share of the exact 15-NN lists that are the same on the sparse and the dense PCA. "
             "pynndescent's time is after a warm-up; its numba compilation (once per process, not cached) is "
             "the 'compile' column. Wall seconds on a shared 2-core machine (load in the last column).", "",
             "| cells after QC | PCA dense s | PCA sparse s | min abs r of the 50 PCs | PCA 15-NN overlap | exact kNN s | "
             "pynndescent s | compile s | recall | Jaccard | same seed, same graph | load |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in records:
        lines.append(
            f"| {r['cells']:,} | {r['pca_dense_s']} | {r.get('pca_sparse_s', '')} | {r.get('pca_component_abs_corr_min', '')} | "
            f"{r.get('knn_overlap_sparse_vs_dense_pca', '')} | {r.get('knn_exact_s', '')} | {r['knn_pynndescent_s']} | "
            f"{r['pynndescent_first_call_s']} | {r.get('recall', '')} | {r.get('symmetrised_edge_jaccard', '')} | "
            f"{'yes' if r['pynndescent_same_seed_identical'] else 'NO'} | {r['load1']:.1f} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scdcc_cbmc_citeseq_top2000.h5ad")
    parser.add_argument("--cells", default="10000,30000,100000")
    parser.add_argument("--label", required=True, help="e.g. before / after (a column of the TSV)")
    parser.add_argument("--steps", choices=["all", "graph"], default="all",
                        help="graph: reuse the QC and normalise outputs already in --workdir")
    parser.add_argument("--graph-methods", default="none;all", help="';'-separated --methods values of the GRAPH runs")
    parser.add_argument("--qc", default="--min-genes 10", help="options of the QC step (space-separated)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/graph_scale"))
    parser.add_argument("--tsv", type=Path, default=REPO / "bench" / "results" / "graph_scale.tsv")
    parser.add_argument("--md", type=Path, default=REPO / "bench" / "results" / "graph_scale.md")
    parser.add_argument("--keep-outputs", action="store_true", help="keep the GRAPH outputs (for comparisons)")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "graphimpute"]
    rev = commit()
    new = not args.tsv.exists()
    with open(args.tsv, "a", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS, delimiter="\t")
        if new:
            writer.writeheader()
        for n in [int(c) for c in args.cells.split(",")]:
            raw = prepare(n, args.workdir, args.data, args.seed)
            qc, norm = args.workdir / f"qc_{n}.h5ad", args.workdir / f"norm_{n}.h5ad"
            log = args.workdir / f"{args.label}_{n}.log"
            steps = []
            if args.steps == "all":
                steps += [("qc", "", [*cli, "qc", str(raw), "-o", str(qc), *args.qc.split()], qc),
                          ("normalise", "", [*cli, "normalise", str(qc), "-o", str(norm)], norm)]
            elif not norm.exists():
                raise SystemExit(f"{norm} is missing: run once with --steps all")
            for spec in args.graph_methods.split(";"):
                out = args.workdir / f"{args.label}_graph_{spec.replace(',', '+')}_{n}.h5ad"
                steps.append(("graph", spec, [*cli, "graph", str(norm), "-o", str(out), "--methods", spec], out))
            for step, spec, cmd, out in steps:
                if out.exists():
                    out.unlink()
                load = os.getloadavg()[0]
                run = measured([*cmd, "--threads", "1", "--seed", str(args.seed), "--log-file", str(log)],
                               math.inf, log.with_suffix(".stdout"))
                rc = run["exit_code"]
                row = {"label": args.label, "cells": n, "step": step, "methods": spec, "wall_s": run["wall_s"],
                       "cpu_s": run["cpu_s"], "peak_mb": round(run["peak_rss_mb"]), "load1_before": round(load, 2),
                       "commit": rev, "rc": rc}
                writer.writerow(row)
                handle.flush()
                print("\t".join(str(row[f]) for f in FIELDS), flush=True)
                if step == "graph" and not args.keep_outputs and out.exists():
                    out.unlink()
                if rc:
                    raise SystemExit(f"{step} failed (exit {rc}); see {log}")
    write_md(args.tsv, args.md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
