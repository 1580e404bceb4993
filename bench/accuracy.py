"""Accuracy benchmark: every dataset x every registered method x every mask scheme, scored by EVALUATE.

Per dataset and scheme (into OUTDIR/<scheme>/): QC and normalise with the defaults (2,000 highly
variable genes), mask (10% by default), PCA + kNN graph, then each method imputes the masked matrix in
turn (building the graphs it declares itself); a method that fails is logged and left out, the others
go on. EVALUATE scores all outputs of the dataset against the truth and `obs['cell_type']`, and REPORT
renders one MultiQC report per scheme over all datasets (OUTDIR/<scheme>/multiqc/).

Writes RESULTS (long: dataset, scheme, method, metric, value; the times and peak memory are metrics
too, from each output's provenance) and a markdown table beside it. Rows of an earlier RESULTS file
for (dataset, scheme, method) triples this run did not redo are kept, so methods can be added run by run.

    python bench/accuracy.py --data ../shared/data --methods all --schemes uniform,mcv \\
        --outdir bench/_scratch/accuracy --results bench/results/accuracy.tsv

A finished output is reused when its file exists (``--force`` redoes everything). Timings are those
of the machine at the time: the markdown records its load average.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd

from graphimpute import methods, pipeline, report
from graphimpute.evaluate import Settings
from graphimpute.metrics import METRICS
from graphimpute.methods import RunContext

log = logging.getLogger("accuracy")

REPO = Path(__file__).resolve().parents[1]
KEY = ["dataset", "scheme", "method"]
COLUMNS = [*KEY, "seed", "metric", "value"]
# columns of the markdown table, per scheme
SHOWN = {
    "recovery": ["hidden_gene_r", "hidden_zero_auc", "rmse"],
    "mcv": ["mcv_mse", "mcv_poisson", "mcv_poisson_openproblems"],
    "clustering": ["kmeans_ari", "kmeans_nmi", "leiden_ari", "leiden_nmi", "silhouette_labels"],
    "resources": ["wall_time_s", "peak_memory_mb", "epochs"],
}


def run_dataset(path: Path, outdir: Path, *, names: list[str], scheme: str, args) -> tuple[Path | None, list[str]]:
    """One dataset, one scheme: prepare, then per mask seed mask, graph and impute with each method;
    evaluate all seeds together. Returns the evaluate folder (None when no method succeeded) and the
    methods that failed."""
    sample = pipeline.sample_name(path)
    p = {step: outdir / step / f"{sample}.h5ad" for step in ("qc", "normalise")}
    for step, do in [("qc", lambda: pipeline.qc_step(path, p["qc"], label_key=args.label_key)),
                     ("normalise", lambda: pipeline.normalise_step(p["qc"], p["normalise"], n_top_genes=args.n_top_genes))]:
        if args.force or not p[step].exists():
            log.info("%s / %s: %s", sample, scheme, step)
            do()
    done, truths, failed = [], [], []
    for mask_seed in range(args.seed, args.seed + args.mask_seeds):
        # --vary-method-seed: each mask seed's replicate trains with that seed too, so the paired spread
        # holds the methods' own randomness as well as the mask's
        ctx = RunContext(seed=mask_seed if args.vary_method_seed else args.seed, device=args.device, progress=False)
        tag = f"{sample}.seed{mask_seed}"
        masked, truth, graph = (outdir / "mask" / f"{tag}.h5ad", outdir / "mask" / f"{tag}.truth.h5ad",
                                outdir / "graph" / f"{tag}.h5ad")
        if args.force or not truth.exists():
            log.info("%s / %s: mask seed %d", sample, scheme, mask_seed)
            pipeline.mask_step(p["normalise"], masked, truth, scheme=scheme, fraction=args.fraction, seed=mask_seed)
        if args.force or not graph.exists():
            pipeline.graph_step(masked, graph, method_names=["none"], seed=args.seed)
        truths.append(truth)
        for name in names:
            out = outdir / "impute" / f"{tag}.{name}.h5ad"
            if args.force or not out.exists():
                log.info("%s / %s: impute %s (mask seed %d)", sample, scheme, name, mask_seed)
                try:
                    pipeline.impute_step(graph, out, method=name, params=args.params.get(name), ctx=ctx)
                except Exception as err:  # one method failing must not stop the benchmark
                    log.error("%s / %s: %s failed: %s: %s", sample, scheme, name, type(err).__name__, err)
                    failed.append(name)
                    continue
            done.append(out)
    if not done:
        return None, failed
    settings = Settings(seed=args.seed, umap=not args.no_umap)
    pipeline.evaluate_step(done, outdir / "evaluate", truth_path=truths, label_key=args.label_key, sample=sample,
                           settings=settings)
    return outdir / "evaluate", sorted(set(failed))


def collect(evaluate_dirs: dict[tuple[str, str], Path], names: list[str]) -> pd.DataFrame:
    frames = []
    for (dataset, scheme), folder in evaluate_dirs.items():
        long = pd.read_csv(folder / f"{dataset}.metrics.tsv", sep="\t")
        long = long[long["method"].isin(names)]
        frames.append(long.rename(columns={"sample": "dataset"}).assign(scheme=scheme))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def merge_with_previous(results: Path, new: pd.DataFrame) -> pd.DataFrame:
    if not results.exists():
        return new
    old = pd.read_csv(results, sep="\t")
    redone = set(map(tuple, new[KEY].drop_duplicates().to_numpy()))
    keep = old[[tuple(k) not in redone for k in old[KEY].to_numpy()]]
    return pd.concat([keep, new], ignore_index=True)


def markdown(table: pd.DataFrame, *, load: tuple[float, float, float], failures: list[str]) -> str:
    lines = ["# Accuracy benchmark", "",
             f"Written by `bench/accuracy.py` on {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
             f"{os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
             "(1/5/15 min) at the end of this run; rows kept from earlier runs keep the timings (and load) "
             "of their own run.", "",
             "MCV: Binomial(n, 0.9) split, every entry scored (the ranking metric is mcv_poisson). Recovery: "
             "hidden entries and as many held-back true zeros, log1p(10,000 · count / unmasked library), "
             "outputs rescaled to the unmasked library, scored within each gene. `undef.` = undefined, "
             "never 0. Formulas: docs/benchmark.md.", ""]
    for scheme, part in table.groupby("scheme", sort=False):
        stats = part.groupby(["dataset", "method", "metric"], sort=False)["value"].agg(["mean", "std", "count"])
        groups = ["mcv" if scheme == "mcv" else "recovery", "clustering", "resources"]
        present = set(part["metric"])
        cols = [m for g in groups for m in SHOWN[g] if m in present]
        n_seeds = int(part.groupby(["dataset", "method"])["seed"].nunique().max())
        lines += [f"## Scheme: {scheme}", "", f"Mean ± sd over up to {n_seeds} mask seeds.", "",
                  "| dataset | method | seeds | " + " | ".join(cols) + " |",
                  "|---|---|---|" + "---|" * len(cols)]
        for (dataset, method), block in stats.groupby(level=["dataset", "method"], sort=False):
            block = block.droplevel(["dataset", "method"])
            seeds = part[(part["dataset"] == dataset) & (part["method"] == method)]["seed"].nunique()
            cells = [_fmt_stats(block, c) for c in cols]
            lines.append(f"| {dataset} | {method} | {seeds} | " + " | ".join(cells) + " |")
        arrows = ", ".join(f"{c} {'↑' if METRICS[c].higher_is_better else '↓'}" for c in cols
                           if c in METRICS and METRICS[c].higher_is_better is not None)
        lines += ["", f"Better: {arrows}.", ""]
    if failures:
        lines += ["## Failures", ""] + [f"- {f}" for f in failures] + [""]
    return "\n".join(lines)


def _fmt_stats(block: pd.DataFrame, metric: str) -> str:
    if metric not in block.index:
        return "–"
    mean, sd = block.loc[metric, "mean"], block.loc[metric, "std"]
    text = _fmt(mean, metric)
    if metric in METRICS and METRICS[metric].group != "resources" and pd.notna(sd) and pd.notna(mean):
        text += f" ± {_fmt(sd, metric)}"
    return text


def _fmt(value, metric: str) -> str:
    if pd.isna(value):
        return "undef." if metric in METRICS and METRICS[metric].group in ("recovery", "mcv", "clustering") else "–"
    if metric in ("wall_time_s", "peak_memory_mb"):
        return f"{value:.1f}"
    if metric == "epochs":
        return f"{value:.0f}"
    return f"{value:.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", type=Path, default=[REPO.parent / "shared" / "data"],
                        help="h5ad files, or folders of them [default: ../shared/data]")
    parser.add_argument("--datasets", default=None, help="comma-separated dataset names to keep (default: all)")
    parser.add_argument("--methods", default="all", help="comma-separated registered methods, or 'all'")
    parser.add_argument("--schemes", default="mcv,uniform", help="mask schemes: mcv, uniform, low-count")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--outdir", type=Path, default=REPO / "bench" / "_scratch" / "accuracy")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "accuracy_mcv.tsv")
    parser.add_argument("--label-key", default="cell_type")
    parser.add_argument("--n-top-genes", type=int, default=2000)
    parser.add_argument("--param", action="append", default=[], help="METHOD.KEY=VALUE (repeatable)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0, help="training seed and first mask seed")
    parser.add_argument("--mask-seeds", type=int, default=3, help="masks drawn with seeds SEED, SEED+1, ...")
    parser.add_argument("--vary-method-seed", action="store_true",
                        help="train each mask seed's replicate with that seed (default: every replicate with --seed)")
    parser.add_argument("--no-umap", action="store_true", help="skip the UMAP images (faster)")
    parser.add_argument("--no-report", action="store_true", help="skip the MultiQC reports")
    parser.add_argument("--force", action="store_true", help="redo finished steps")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    names = methods.parse_methods(args.methods)
    args.params = {}
    for item in args.param:
        target, value = item.split("=", 1)
        method, key = target.split(".", 1)
        args.params.setdefault(method, {})[key] = value
    datasets = sorted(f for d in args.data for f in (d.glob("*.h5ad") if d.is_dir() else [d]))
    if args.datasets:
        wanted = set(args.datasets.split(","))
        datasets = [d for d in datasets if pipeline.sample_name(d) in wanted]
    if not datasets:
        parser.error(f"no .h5ad datasets found in {', '.join(map(str, args.data))}")
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]

    started = time.perf_counter()
    evaluate_dirs: dict[tuple[str, str], Path] = {}
    failures: list[str] = []
    for scheme in schemes:
        for path in datasets:
            folder, failed = run_dataset(path, args.outdir / scheme, names=names, scheme=scheme, args=args)
            failures += [f"{pipeline.sample_name(path)} / {scheme} / {m}" for m in failed]
            if folder is not None:
                evaluate_dirs[(pipeline.sample_name(path), scheme)] = folder
            table = merge_with_previous(args.results, collect(evaluate_dirs, names))
            args.results.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(args.results, sep="\t", index=False, na_rep="NaN", float_format="%.6g")
            args.results.with_suffix(".md").write_text(markdown(table, load=os.getloadavg(), failures=failures))
        if not args.no_report and report.multiqc_available():
            folders = sorted({f for (_, s), f in evaluate_dirs.items() if s == scheme})
            if folders:
                pipeline.report_step(folders, args.outdir / scheme / "multiqc", title=f"graphimpute accuracy ({scheme})",
                                     render=True)
    log.info("wrote %s and %s in %.0f s", args.results, args.results.with_suffix(".md"), time.perf_counter() - started)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
