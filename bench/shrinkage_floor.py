"""graphMCV against the shrinkage floors (issue 26), from `bench/accuracy.py` long tables.

    python bench/shrinkage_floor.py --runs bench/results/shrinkage_floor.tsv \\
        --variant "calibrate=false"=bench/results/shrinkage_floor_calibrate_false.tsv \\
        --variant "30 epochs"=bench/results/shrinkage_floor_30_epochs.tsv --out bench/results/shrinkage_floor_summary.md

``--runs``: the floors (none, gene_mean, knn_average, shrink_gene_mean, shrink_knn) and graphMCV at its
defaults; each ``--variant NAME=TSV``: graphMCV rows of another setting, shown as ``graphmcv NAME``.
Per dataset: MCV Poisson mean ± sd over mask seeds, the floors' own-count weights where recorded, and
each graphMCV setting's paired outcome against shrink_gene_mean, shrink_knn and the bar (the best floor
on that dataset; graphimpute.verdict.compare), then the counts over datasets; the same for k-means ARI
against none and knn_average.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from graphimpute import verdict

FLOORS = list(verdict.BASELINES)
AGAINST = {"mcv_poisson": ["shrink_gene_mean", "shrink_knn", "bar"], "kmeans_ari": ["none", "knn_average"]}
SHORT = {"better": "better", "tie": "tie", "worse": "**worse**", "not run": "–", "undefined": "–"}


def load(runs: Path, variants: list[str]) -> pd.DataFrame:
    long = pd.read_csv(runs, sep="\t")
    for spec in variants:
        name, _, path = spec.rpartition("=")  # the name may hold "=" (calibrate=false), the path not
        extra = pd.read_csv(path, sep="\t")
        extra = extra[extra["method"] == "graphmcv"].assign(method=f"graphmcv {name}")
        long = pd.concat([long, extra], ignore_index=True)
    return long[long["scheme"] == "mcv"].rename(columns={"dataset": "sample"})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--variant", action="append", default=[], help="NAME=TSV (graphMCV rows of another setting)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    long = load(args.runs, args.variant)
    own = sorted(m for m in long["method"].unique() if m.startswith("graphmcv"))
    lines = ["# graphMCV against the shrinkage floors", "",
             f"`python bench/shrinkage_floor.py --runs {args.runs} "
             + " ".join(f'--variant "{v}"' for v in args.variant) + f" --out {args.out}`.", "",
             "Outcomes are paired over the mask seeds (graphimpute.verdict.compare); the bar is the best floor on the "
             "dataset.", ""]
    counts = {(m, metric, ref): {"better": 0, "tie": 0, "worse": 0} for m in own for metric in AGAINST
              for ref in AGAINST[metric]}
    for metric, refs in AGAINST.items():
        part = long[long["metric"] == metric]
        shown = [m for m in FLOORS + own if m in set(part["method"])]
        lines += [f"## {metric} ({'lower' if metric == 'mcv_poisson' else 'higher'} is better)", "",
                  "| dataset | " + " | ".join(shown) + " | " + " | ".join(f"{m} vs {r}" for m in own for r in refs) + " |",
                  "|---|" + "---|" * (len(shown) + len(own) * len(refs))]
        for sample, g in part.groupby("sample"):
            stats = g.groupby("method")["value"].agg(["mean", "std"])
            cells = [f"{stats.loc[m, 'mean']:.4f} ± {stats.loc[m, 'std']:.4f}" if m in stats.index else "–"
                     for m in shown]
            table = verdict.ranking(g, metric)
            bar = next((m for m in table["method"] if m in FLOORS), None)
            outcomes = []
            for m in own:
                for ref in refs:
                    other = bar if ref == "bar" else ref
                    c = verdict.compare(g, metric, m, other)
                    if c.outcome in counts[(m, metric, ref)]:
                        counts[(m, metric, ref)][c.outcome] += 1
                    label = f" ({other})" if ref == "bar" else ""
                    outcomes.append(f"{SHORT[c.outcome]} {c.mean_diff:+.4f}{label}")
            lines.append(f"| {sample} | " + " | ".join(cells) + " | " + " | ".join(outcomes) + " |")
        lines += ["", "| setting | against | better / tie / worse (datasets) |", "|---|---|---|"]
        lines += [f"| {m} | {r} | {c['better']} / {c['tie']} / {c['worse']} |" for (m, mt, r), c in counts.items()
                  if mt == metric]
        lines.append("")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
