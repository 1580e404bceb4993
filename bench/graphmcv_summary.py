"""graphMCV against every peer, and its ablations, from `bench/accuracy.py` long tables.

    python bench/graphmcv_summary.py --peers bench/results/accuracy_mcv.tsv --own bench/results/graphmcv_mcv.tsv \\
        --out bench/results/graphmcv.md
    python bench/graphmcv_summary.py --peers bench/results/accuracy_mcv.tsv --own bench/results/graphmcv_mcv.tsv \\
        --ablation bench/results/graphmcv_ablations.tsv --out bench/results/graphmcv_ablations.md

Per dataset and metric: graphMCV's mean ± sd over mask seeds, each peer's mean, and graphMCV's paired
outcome against the peer (graphimpute.verdict.compare: better / tie / worse; a difference counts only
when a two-sided paired t-test over the seeds finds it at 0.05; a tie is not a win); then the counts over
datasets. The ablation table (``--ablation``: rows whose ``method`` names a variant, e.g.
``graphmcv_nograph``) compares each variant with the full method and with knn_average the same way.
Only (dataset, seed) pairs present for both sides are compared (the masks of a seed are the same in
every run: `graphimpute mask` is deterministic).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from graphimpute import verdict
from graphimpute.metrics import METRICS

OWN = "graphmcv"
PEERS = ["none", "gene_mean", "knn_average", "magic", "alra", "dca", "scvi", "scvgae", "graphsci", "cnnimpute",
         "scgnn", "gnnimpute"]
TARGET_PEERS = ["knn_average", "magic", "alra", "dca", "scvi"]
LETTER = {"better": "**b**", "tie": "t", "worse": "w"}


def load(paths: list[Path]) -> pd.DataFrame:
    frames = [pd.read_csv(p, sep="\t") for p in paths]
    long = pd.concat(frames, ignore_index=True)
    return long[long["scheme"] == "mcv"].rename(columns={"dataset": "sample"})


def outcome(long: pd.DataFrame, metric: str, a: str, b: str) -> tuple[str, float]:
    part = long[long["metric"] == metric]
    have = {m: set(part.loc[part["method"] == m, "seed"]) for m in (a, b)}
    if not have[a] or not have[b]:
        return "not run", float("nan")
    seeds = have[a] & have[b]
    part = part[part["seed"].isin(seeds)]
    c = verdict.compare(part, metric, a, b)
    return c.outcome, c.mean_diff


def fmt(v: float, digits: int = 4) -> str:
    return "–" if pd.isna(v) else f"{v:.{digits}g}"


def peer_tables(long: pd.DataFrame, datasets: list[str]) -> list[str]:
    lines = []
    for metric in ("mcv_poisson", "mcv_mse", "kmeans_ari"):
        higher = METRICS[metric].higher_is_better
        peers = [p for p in PEERS if p in set(long["method"])]
        lines += [f"### {metric} ({'higher' if higher else 'lower'} is better)", "",
                  "graphMCV's mean ± sd over the mask seeds; each peer's mean and graphMCV's paired outcome "
                  "against it (**b** better, t tie, w worse).", "",
                  "| dataset | graphmcv | " + " | ".join(peers) + " |", "|---|---|" + "---|" * len(peers)]
        counts = {p: {"better": 0, "tie": 0, "worse": 0} for p in peers}
        for d in datasets:
            g = long[long["sample"] == d]
            own = g[(g["method"] == OWN) & (g["metric"] == metric)]["value"]
            cells = []
            for p in peers:
                v = g[(g["method"] == p) & (g["metric"] == metric)]["value"].mean()
                out, _ = outcome(g, metric, OWN, p)
                if out in counts[p]:
                    counts[p][out] += 1
                cells.append(f"{fmt(v)} {LETTER.get(out, '(' + out + ')')}" if not pd.isna(v) else "not run")
            lines.append(f"| {d} | {fmt(own.mean())} ± {fmt(own.std(), 2)} | " + " | ".join(cells) + " |")
        lines.append("| **graphmcv better / tie / worse** | | " + " | ".join(
            f"{c['better']}/{c['tie']}/{c['worse']}" for c in counts.values()) + " |")
        lines.append("")
    return lines


def time_table(long: pd.DataFrame, datasets: list[str]) -> list[str]:
    shown = [m for m in ["graphmcv", "none", "knn_average", "magic", "alra", "dca", "scvi"] if m in set(long["method"])]
    lines = ["### Time per imputation (wall_time_s, mean over seeds; peak memory of graphMCV in MB)", "",
             "Timings are those of each run's machine load (the peers' rows come from the earlier runs).", "",
             "| dataset | " + " | ".join(shown) + " | graphmcv peak MB | graphmcv epochs |",
             "|---|" + "---|" * (len(shown) + 2)]
    for d in datasets:
        g = long[long["sample"] == d]
        t = g[g["metric"] == "wall_time_s"].groupby("method")["value"].mean()
        mem = g[(g["method"] == OWN) & (g["metric"] == "peak_memory_mb")]["value"].mean()
        ep = g[(g["method"] == OWN) & (g["metric"] == "epochs")]["value"].mean()
        lines.append(f"| {d} | " + " | ".join(fmt(t.get(m), 3) for m in shown)
                     + f" | {fmt(mem, 4)} | {fmt(ep, 3)} |")
    return lines + [""]


def ablation_tables(long: pd.DataFrame, variants: list[str], datasets: list[str]) -> list[str]:
    lines = []
    for metric in ("mcv_poisson", "kmeans_ari"):
        higher = METRICS[metric].higher_is_better
        refs = [OWN, "knn_average", "scvi"]
        lines += [f"### {metric} ({'higher' if higher else 'lower'} is better)", "",
                  "Mean over the mask seeds; each variant's paired outcome against the full method, "
                  "knn_average and scvi (**b** better, t tie, w worse).", "",
                  "| dataset | graphmcv | knn_average | scvi | " + " | ".join(variants) + " |",
                  "|---|---|---|---|" + "---|" * len(variants)]
        for d in datasets:
            g = long[long["sample"] == d]
            mean = g[g["metric"] == metric].groupby("method")["value"].mean()
            cells = []
            for v in variants:
                outs = [LETTER.get(outcome(g, metric, v, r)[0], "–") for r in refs]
                cells.append(f"{fmt(mean.get(v))} ({'/'.join(outs)})")
            lines.append(f"| {d} | {fmt(mean.get(OWN))} | {fmt(mean.get('knn_average'))} | {fmt(mean.get('scvi'))} | "
                         + " | ".join(cells) + " |")
        lines += ["", "In brackets: against graphmcv / knn_average / scvi.", ""]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=Path, nargs="+", required=True)
    parser.add_argument("--own", type=Path, nargs="+", required=True)
    parser.add_argument("--ablation", type=Path, nargs="*", default=[])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--intro", type=Path, default=None, help="markdown put after the title (the reading)")
    args = parser.parse_args(argv)
    own = load(args.own)
    peers = load(args.peers)
    peers = peers[~peers["method"].isin(set(own["method"]))]
    long = pd.concat([peers, own], ignore_index=True)
    datasets = sorted(set(own["sample"]))
    intro = [args.intro.read_text().rstrip("\n"), ""] if args.intro else []
    if args.ablation:
        abl = load(args.ablation)
        variants = sorted(set(abl["method"]) - {OWN})
        long = pd.concat([long, abl[abl["method"].isin(variants)]], ignore_index=True)
        datasets = sorted(set(abl["sample"]))
        lines = ["# graphMCV ablations", "", *intro, *ablation_tables(long, variants, datasets)]
    else:
        lines = ["# graphMCV against every peer", "", *intro, *peer_tables(long, datasets), *time_table(long, datasets)]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
