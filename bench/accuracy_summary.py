"""Method x dataset views of the accuracy benchmark's long tables, for the README and the closing notes.

For each (scheme, metric) asked for: one row per method, one column per dataset, the best value of
each column in bold, how many datasets the method beats `none` and `knn_average` on (a tie is not
a win; a missing or undefined value is neither), and by how much: the median over datasets of the
method's value minus the reference's (signed; where both are defined). "undef." is a value the metric
does not define (e.g. Pearson r of an all-zero prediction), "not run" a pair absent from the table.
`none` has no Pearson r (it predicts 0 at every hidden entry): there "beats none" counts every
defined value.

    python bench/accuracy_summary.py bench/results/accuracy_uniform.tsv bench/results/accuracy_mcv.tsv \\
        --out bench/results/accuracy_summary.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from graphimpute import methods
from graphimpute.evaluate import METRICS

VIEWS = [("uniform", "rmse"), ("uniform", "pearson_r"), ("uniform", "kmeans_ari"),
         ("mcv", "mcv_poisson"), ("mcv", "mcv_mse")]
REFERENCES = ("none", "knn_average")


def view(long: pd.DataFrame, scheme: str, metric: str) -> pd.DataFrame | None:
    part = long[(long["scheme"] == scheme) & (long["metric"] == metric)]
    if part.empty:
        return None
    wide = part.pivot_table(index="method", columns="dataset", values="value", aggfunc="first", dropna=False)
    order = [m for m in methods.names() if m in wide.index] + [m for m in wide.index if m not in methods.names()]
    wide = wide.loc[order]
    wide.attrs["measured"] = set(zip(part["method"], part["dataset"]))  # NaN there = undefined, else not run
    return wide


def wins(wide: pd.DataFrame, reference: str, higher: bool) -> pd.Series:
    if reference not in wide.index:
        return pd.Series("–", index=wide.index)
    ref = wide.loc[reference]
    better = wide.gt(ref, axis=1) if higher else wide.lt(ref, axis=1)
    counted = wide.notna()
    undefined = pd.DataFrame([ref.isna().to_numpy()] * len(wide), index=wide.index, columns=wide.columns)
    better = better | undefined  # an undefined reference (none's r): any defined value wins
    return (better & counted).sum(axis=1).astype(int).astype(str) + "/" + counted.sum(axis=1).astype(str)


def median_difference(wide: pd.DataFrame, reference: str) -> pd.Series:
    if reference not in wide.index:
        return pd.Series(float("nan"), index=wide.index)
    return wide.sub(wide.loc[reference], axis=1).median(axis=1, skipna=True)


def markdown(wide: pd.DataFrame, scheme: str, metric: str) -> list[str]:
    higher = METRICS[metric].higher_is_better
    best = wide.max() if higher else wide.min()
    cols = list(wide.columns)
    lines = [f"### {metric} ({'higher' if higher else 'lower'} is better), scheme {scheme}", "",
             "| method | " + " | ".join(cols) + " | beats none | beats knn_average | median Δ none | median Δ knn_average |",
             "|---|" + "---|" * (len(cols) + 4)]
    beat = {ref: wins(wide, ref, higher) for ref in REFERENCES}
    delta = {ref: median_difference(wide, ref) for ref in REFERENCES}
    for method, row in wide.iterrows():
        cells = [("undef." if (method, c) in wide.attrs["measured"] else "not run") if pd.isna(v)
                 else (f"**{v:.3f}**" if v == best[c] else f"{v:.3f}") for c, v in row.items()]
        refs = ["–" if method == ref else str(beat[ref][method]) for ref in REFERENCES]
        refs += ["–" if method == ref or pd.isna(delta[ref][method]) else f"{delta[ref][method]:+.3f}"
                 for ref in REFERENCES]
        lines.append(f"| {method} | " + " | ".join(cells) + " | " + " | ".join(refs) + " |")
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", nargs="+", type=Path, help="long TSVs written by bench/accuracy.py")
    parser.add_argument("--out", type=Path, default=Path("bench/results/accuracy_summary.md"))
    args = parser.parse_args(argv)
    long = pd.concat([pd.read_csv(t, sep="\t") for t in args.tables], ignore_index=True)
    lines = ["# Accuracy benchmark: method x dataset", "",
             f"From {', '.join(f'`{t}`' for t in args.tables)} (full tables and protocol in the .md beside each);"
             " written by `bench/accuracy_summary.py`. Bold: best in the column.", ""]
    for scheme, metric in VIEWS:
        wide = view(long, scheme, metric)
        if wide is not None:
            lines += markdown(wide, scheme, metric)
    args.out.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
