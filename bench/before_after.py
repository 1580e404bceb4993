"""Before / after tables for a change to one method: the same datasets and mask seeds, paired.

Reads the benchmark's long tables (bench/accuracy.py: dataset, scheme, method, seed, metric, value).
``--before`` holds the method as it was (and the baselines); each ``--after FILE:LABEL`` holds the
method after a change, run with ``bench/accuracy.py --results FILE``. Per dataset and metric: mean ±
sd over seeds before and after, the paired difference after − before (mean ± sd over seeds) and its
outcome by graphimpute.verdict's rule (a difference within its seed spread is a tie), then the same
outcome against the baselines `gene_mean` and `knn_average`. Writes a markdown file.

    python bench/before_after.py --method scgnn --before bench/results/accuracy_mcv.tsv \\
        --after bench/results/scgnn_own_graph.tsv:"own graph" --out bench/results/scgnn_gnnimpute_graphs.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from graphimpute import verdict
from graphimpute.metrics import METRICS

REFERENCES = ("gene_mean", "knn_average")


def paired_table(before: pd.DataFrame, afters: dict[str, pd.DataFrame], method: str, metric: str) -> list[str]:
    """Markdown rows: one per (dataset, after-label), then per label the count of each outcome."""
    rows, outcomes = [], {label: [] for label in afters}
    for dataset in sorted(set().union(*(set(a["dataset"]) for a in afters.values()))):
        old = before[(before["dataset"] == dataset) & (before["metric"] == metric)]
        for label, after in afters.items():
            new = after[(after["dataset"] == dataset) & (after["metric"] == metric) & (after["method"] == method)]
            if new.empty:
                continue
            both = pd.concat([old, new.assign(method=label)])
            change = verdict.compare(both, metric, label, method)
            refs = [verdict.compare(both, metric, label, ref).outcome for ref in REFERENCES]
            outcomes[label].append(change.outcome)
            rows.append(f"| {dataset} | {label} | {_mean_sd(old[old['method'] == method])} | {_mean_sd(new)} | "
                        f"{change.mean_diff:+.4g} ± {change.sd_diff:.2g} | {change.outcome} (n={change.n_seeds}) | "
                        + " | ".join(refs) + " |")
    rows.append("")
    for label, seen in outcomes.items():
        rows.append(f"{label}: better / tie / worse than before on {seen.count('better')} / {seen.count('tie')} / "
                    f"{seen.count('worse')} of {len(seen)} datasets.  ")
    return rows


def _mean_sd(part: pd.DataFrame) -> str:
    values = part["value"].dropna()
    if values.empty:
        return "not run"
    return f"{values.mean():.4g} ± {values.std(ddof=1):.2g}" if len(values) > 1 else f"{values.mean():.4g} (1 seed)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", action="append", required=True, help="FILE:LABEL (repeatable)")
    parser.add_argument("--metrics", default="mcv_poisson,mcv_mse,kmeans_ari")
    parser.add_argument("--scheme", default="mcv")
    parser.add_argument("--title", default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    def read(path: Path) -> pd.DataFrame:
        table = pd.read_csv(path, sep="\t")
        return table[table["scheme"] == args.scheme]

    before = read(args.before)
    afters = {}
    for spec in args.after:
        path, _, label = spec.partition(":")
        afters[label or Path(path).stem] = read(Path(path))
    lines = [f"# {args.title or args.method + ': before and after'}", "",
             f"Written by `bench/before_after.py` from `{args.before}` (before) and "
             + ", ".join(f"`{s.partition(':')[0]}` ({label})" for s, label in zip(args.after, afters)) + ". "
             "Paired over mask seeds; a change counts only when a two-sided paired t-test of after − before "
             "finds it at 0.05 (graphimpute.verdict); the last columns judge the changed method against the baselines the same way.", ""]
    for metric in args.metrics.split(","):
        direction = "higher" if METRICS[metric].higher_is_better else "lower"
        lines += [f"## {metric} ({direction} is better)", "",
                  "| dataset | after | before | after (mean ± sd) | Δ after − before | change | vs gene_mean | vs knn_average |",
                  "|---|---|---|---|---|---|---|---|", *paired_table(before, afters, args.method, metric), ""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
