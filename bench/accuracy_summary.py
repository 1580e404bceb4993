"""Method x dataset views of the accuracy benchmark's long tables, for the README and the closing notes.

For each (scheme, metric): one row per method, one column per dataset holding the mean over mask seeds;
in each column the best mean is bold and the methods tied with it (paired seeds, graphimpute.verdict)
carry "≈". Then, per baseline (`none`, `knn_average`, `gene_mean`): on how many datasets the method is
better / ties / is worse by the paired t-test at 0.05 (graphimpute.verdict; a tie is not a win; a pair that was not run, or has one seed
only on one side, is left out of the count), and the median over datasets of the method's mean minus
the baseline's. "undef." is a value the metric does not define, "not run" a pair absent from the table.

    python bench/accuracy_summary.py bench/results/accuracy_mcv.tsv bench/results/accuracy_uniform.tsv \\
        --out bench/results/accuracy_summary.md

``--carry OLD.tsv``: rows of an earlier single-seed table (no seed column: mask seed 0) for the
(dataset, scheme, method) triples the new tables lack; those cells are marked ¹ (one seed, an earlier
run on the same seed-0 masks) and compare with the others on seed 0 alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from graphimpute import methods, verdict
from graphimpute.metrics import METRICS

VIEWS = [("mcv", "mcv_poisson"), ("mcv", "mcv_mse"), ("mcv", "kmeans_ari"),
         ("uniform", "hidden_gene_r"), ("uniform", "hidden_zero_auc"), ("uniform", "kmeans_ari")]
REFERENCES = verdict.BASELINES


def view(long: pd.DataFrame, scheme: str, metric: str) -> tuple[pd.DataFrame, dict] | None:
    part = long[(long["scheme"] == scheme) & (long["metric"] == metric)]
    if part.empty:
        return None
    wide = part.pivot_table(index="method", columns="dataset", values="value", aggfunc="mean", dropna=False)
    order = [m for m in methods.names() if m in wide.index] + [m for m in wide.index if m not in methods.names()]
    wide = wide.loc[order]
    wide.attrs["measured"] = set(zip(part["method"], part["dataset"]))  # NaN there = undefined, else not run
    carried = part[part.get("carried", pd.Series(False, index=part.index)).astype(bool)]
    wide.attrs["carried"] = set(zip(carried["method"], carried["dataset"]))
    per_dataset = {d: g.rename(columns={"dataset": "sample"}) for d, g in part.groupby("dataset")}
    return wide, per_dataset


def markdown(wide: pd.DataFrame, per_dataset: dict, scheme: str, metric: str) -> list[str]:
    higher = METRICS[metric].higher_is_better
    cols = list(wide.columns)
    tied, best = {}, {}
    for d, g in per_dataset.items():
        table = verdict.ranking(g, metric)
        if not table.empty:
            best[d] = table.iloc[0]["method"]
            tied[d] = set(table.loc[table["vs_best"] == "tie", "method"])
    refs = [r for r in REFERENCES if r in wide.index]
    seeds = int(pd.concat(per_dataset.values()).groupby(["sample", "method"])["seed"].nunique().max())
    lines = [f"### {metric} ({'higher' if higher else 'lower'} is better), scheme {scheme}", "",
             f"Mean over up to {seeds} mask seeds; **bold** = best mean, ≈ = tied with it.", "",
             "| method | " + " | ".join(cols) + " | " + " | ".join(f"vs {r}: better/tie/worse" for r in refs)
             + " | " + " | ".join(f"median Δ {r}" for r in refs) + " |",
             "|---|" + "---|" * (len(cols) + 2 * len(refs))]
    for method, row in wide.iterrows():
        cells = []
        for d, v in row.items():
            if pd.isna(v):
                cells.append("undef." if (method, d) in wide.attrs["measured"] else "not run")
            else:
                mark = "¹" if (method, d) in wide.attrs["carried"] else ""
                text = f"**{v:.4g}**{mark}" if best.get(d) == method else f"{v:.4g}{mark}"
                cells.append(text + (" ≈" if method in tied.get(d, ()) else ""))
        counts, deltas = [], []
        for ref in refs:
            if method == ref:
                counts.append("–")
                deltas.append("–")
                continue
            outcomes = [verdict.compare(g, metric, method, ref).outcome for g in per_dataset.values()]
            counts.append(f"{outcomes.count('better')}/{outcomes.count('tie')}/{outcomes.count('worse')}")
            delta = (wide.loc[method] - wide.loc[ref]).median(skipna=True)
            deltas.append("–" if pd.isna(delta) else f"{delta:+.4g}")
        lines.append(f"| {method} | " + " | ".join(cells) + " | " + " | ".join(counts) + " | " + " | ".join(deltas) + " |")
    return lines + [""]


def winners(long: pd.DataFrame, scheme: str = "mcv", metric: str = "mcv_poisson") -> list[str]:
    """Per dataset: the winner, the methods tied with it, and which of the five papers' methods beat
    gene_mean and knn_average (the closing notes' list)."""
    papers = [m for m in methods.names() if methods.get(m).kind == "method"]
    out = [f"### Winner per dataset ({metric}, scheme {scheme})", "",
           "| dataset | winner | tied with it | papers' methods better than gene_mean | better than knn_average |",
           "|---|---|---|---|---|"]
    part = long[(long["scheme"] == scheme) & (long["metric"] == metric)]
    for d, g in part.groupby("dataset"):
        g = g.rename(columns={"dataset": "sample"})
        v = verdict.verdict(g, metric)
        beat = {ref: [m for m in papers if m in set(g["method"]) and verdict.compare(g, metric, m, ref).outcome == "better"]
                for ref in ("gene_mean", "knn_average")}
        out.append(f"| {d} | {v['winner']} | {', '.join(v['tied_with_winner']) or '–'} | "
                   f"{', '.join(beat['gene_mean']) or 'none'} | {', '.join(beat['knn_average']) or 'none'} |")
    return out + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", nargs="+", type=Path, help="long TSVs written by bench/accuracy.py")
    parser.add_argument("--out", type=Path, default=Path("bench/results/accuracy_summary.md"))
    parser.add_argument("--carry", type=Path, default=None, help="an earlier single-seed long TSV (see above)")
    args = parser.parse_args(argv)
    long = pd.concat([pd.read_csv(t, sep="\t") for t in args.tables], ignore_index=True)
    if "seed" not in long:
        long["seed"] = 0
    long["carried"] = False
    if args.carry is not None:
        old = pd.read_csv(args.carry, sep="\t").assign(seed=0, carried=True)
        have = set(map(tuple, long[["dataset", "scheme", "method"]].drop_duplicates().to_numpy()))
        old = old[[tuple(k) not in have for k in old[["dataset", "scheme", "method"]].to_numpy()]]
        long = pd.concat([long, old[long.columns]], ignore_index=True)
    lines = ["# Accuracy benchmark: method x dataset", "",
             f"From {', '.join(f'`{t}`' for t in args.tables)} (full tables and protocol in the .md beside each);"
             " written by `bench/accuracy_summary.py`. Better / tie / worse: paired over mask seeds, a difference "
             "counts only when a two-sided paired t-test over the seeds finds it at 0.05 (at 3 seeds: |mean| > 2.48 sd; "
             "docs/benchmark.md)."
             + (f" ¹: one seed, carried from `{args.carry}` (an earlier run on the same seed-0 masks); it compares "
                "with the others on seed 0 alone, by sign." if args.carry else ""), ""]
    if {"scheme", "metric"} <= set(long) and ((long["scheme"] == "mcv") & (long["metric"] == "mcv_poisson")).any():
        lines += winners(long)
    for scheme, metric in VIEWS:
        found = view(long, scheme, metric)
        if found is not None:
            lines += markdown(*found, scheme, metric)
    args.out.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
