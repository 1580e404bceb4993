"""What a benchmark concludes: methods ranked on one metric, differences within the seed-to-seed
spread called ties, the winner's margin over each floor, and every method against the bar (the best
floor that ran).

A difference between two methods is judged on their paired scores (the same mask seeds) by a
two-sided paired t-test at ``LEVEL`` (0.05): method A is better than B when the mean over seeds of
A - B favours A and |mean| > t(1 - LEVEL/2, n - 1) · sd / √n, the sd being that of A - B over the n
seeds (at 3 seeds: |mean| > 2.48 sd; at 5: 1.24 sd); otherwise the two tie. With one seed there is no
spread: the sign decides, and the verdict says that no tie could be called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from graphimpute.metrics import METRICS

# the metric a verdict ranks by: the first of these that the benchmark measured
PRIMARY = ("mcv_poisson", "hidden_gene_r", "kmeans_ari")
# the floors: no imputation, the neighbour average, the cell-agnostic profile, and the two shrinkages of
# each cell's own counts (towards gene_mean and towards the neighbour average); the best of them that
# ran is the bar every method must clear
BASELINES = ("none", "knn_average", "gene_mean", "shrink_gene_mean", "shrink_knn")
# the paired test's level (two-sided): a difference this likely under no difference is called a tie
LEVEL = 0.05


@dataclass(frozen=True)
class Comparison:
    """A - B on one metric over the seeds both have; ``outcome`` is A's: better, worse or tie;
    ``p_value``: the two-sided paired t-test's (NaN with one seed)."""

    mean_diff: float
    sd_diff: float
    n_seeds: int
    outcome: str
    p_value: float = float("nan")


def tie_threshold(n_seeds: int) -> float:
    """The multiple of the paired sd that |mean difference| must exceed at ``n_seeds`` seeds:
    t(1 - LEVEL/2, n - 1) / √n (2.48 at 3 seeds)."""
    return float(stats.t.ppf(1 - LEVEL / 2, n_seeds - 1) / np.sqrt(n_seeds))


def primary_metric(metrics: pd.DataFrame) -> str | None:
    present = set(metrics["metric"])
    return next((m for m in PRIMARY if m in present and metrics.loc[metrics["metric"] == m, "value"].notna().any()),
                None)


def compare(metrics: pd.DataFrame, metric: str, a: str, b: str) -> Comparison:
    """Paired comparison of methods ``a`` and ``b`` (long table: method, seed, metric, value)."""
    part = metrics[metrics["metric"] == metric]
    values = part.pivot_table(index="seed", columns="method", values="value", aggfunc="first")
    if a not in values or b not in values:
        return Comparison(float("nan"), float("nan"), 0, "not run")
    d = (values[a] - values[b]).dropna().to_numpy(np.float64)
    if d.size == 0:
        return Comparison(float("nan"), float("nan"), 0, "undefined")
    mean, sd = float(d.mean()), float(d.std(ddof=1)) if d.size > 1 else float("nan")
    p_value = float("nan")
    if d.size > 1:
        p_value = 1.0 if mean == 0 else 0.0 if sd == 0 else float(2 * stats.t.sf(abs(mean) / (sd / np.sqrt(d.size)), d.size - 1))
    sign = 1.0 if METRICS[metric].higher_is_better else -1.0
    if mean == 0 or (d.size > 1 and abs(mean) <= tie_threshold(d.size) * sd):
        outcome = "tie"
    else:
        outcome = "better" if sign * mean > 0 else "worse"
    return Comparison(mean, sd, int(d.size), outcome, p_value)


def ranking(metrics: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per method, best first: mean and sd over seeds, and how it compares with the best
    (``best``, ``tie`` or ``worse``) and with each baseline that ran (``vs_<baseline>``)."""
    part = metrics[metrics["metric"] == metric]
    stats = part.groupby("method", sort=False)["value"].agg(["mean", "std", "count"])
    stats = stats[stats["count"] > 0].dropna(subset=["mean"])
    stats = stats.sort_values("mean", ascending=not METRICS[metric].higher_is_better, kind="stable")
    rows = []
    best = stats.index[0] if len(stats) else None
    bar = next((m for m in stats.index if m in BASELINES), None)
    for rank, (method, row) in enumerate(stats.iterrows(), 1):
        versus = "best" if method == best else compare(metrics, metric, method, best).outcome
        entry: dict[str, Any] = {"rank": rank, "method": method, "mean": float(row["mean"]),
                                 "sd": float(row["std"]) if row["count"] > 1 else float("nan"),
                                 "n_seeds": int(row["count"]), "vs_best": versus}
        if bar is not None:
            entry["vs_bar"] = "–" if method in BASELINES else compare(metrics, metric, method, bar).outcome
        for base in BASELINES:
            if base in stats.index:
                entry[f"vs_{base}"] = "–" if base == method else compare(metrics, metric, method, base).outcome
        rows.append(entry)
    return pd.DataFrame(rows)


def verdict(metrics: pd.DataFrame, metric: str | None = None) -> dict[str, Any]:
    """The winner on ``metric`` (default: the primary one), its margin over each baseline, the
    methods tied with it, and the methods that lose to ``gene_mean``; ``lines``: the same in words."""
    metric = metric or primary_metric(metrics)
    if metric is None:
        return {"metric": None, "lines": ["No accuracy metric was measured: nothing to rank (run with --benchmark)."]}
    table = ranking(metrics, metric)
    winner = table.iloc[0]
    direction = "higher" if METRICS[metric].higher_is_better else "lower"
    n = int(table["n_seeds"].max())
    margins = {}
    for base in BASELINES:
        if base in set(table["method"]) and base != winner["method"]:
            c = compare(metrics, metric, winner["method"], base)
            margins[base] = {"mean_diff": c.mean_diff, "sd_diff": c.sd_diff, "outcome": c.outcome}
    tied = table.loc[table["vs_best"] == "tie", "method"].tolist()
    floors = [m for m in table["method"] if m in BASELINES]
    bar = floors[0] if floors else None
    against_bar = {}
    for method in table["method"]:
        if bar is not None and method not in BASELINES:
            c = compare(metrics, metric, method, bar)
            against_bar[method] = {"mean_diff": c.mean_diff, "sd_diff": c.sd_diff, "outcome": c.outcome}
    below = [m for m in _with(table, "vs_gene_mean", "worse") if m not in BASELINES]  # the bars are not the verdict's subject
    spread = (f"mean ± sd over {n} mask seeds; a difference counts when a paired t-test over the seeds "
              f"rejects no difference at {LEVEL:g}, two-sided") if n > 1 else "one mask seed: no spread, so no tie could be called"
    lines = [f"Best by {metric} ({direction} is better; {spread}): {winner['method']}, "
             f"{_num(winner['mean'])}{'' if n < 2 else ' ± ' + _num(winner['sd'])}."]
    for base, m in margins.items():
        lines.append(f"  against {base}: {_signed(m['mean_diff'])}"
                     f"{'' if n < 2 else ' ± ' + _num(m['sd_diff'])} ({_OUTCOME[m['outcome']]}).")
    if tied:
        lines.append(f"  tied with it (no difference at that level): {', '.join(tied)}.")
    if against_bar:
        bar_row = table.loc[table["method"] == bar].iloc[0]
        lines.append(f"The bar, the best of the floors that ran ({', '.join(floors)}): {bar}, {_num(bar_row['mean'])}"
                     f"{'' if n < 2 else ' ± ' + _num(bar_row['sd'])}. Each method against it:")
        lines += [f"  {method}: {_signed(m['mean_diff'])}{'' if n < 2 else ' ± ' + _num(m['sd_diff'])} "
                  f"({_OUTCOME[m['outcome']]})." for method, m in against_bar.items()]
    if "gene_mean" in set(table["method"]):
        lines.append(f"Lose to the cell-agnostic gene_mean: {', '.join(below) or 'none'}.")
    return {"metric": metric, "higher_is_better": bool(METRICS[metric].higher_is_better), "n_seeds": n,
            "winner": winner["method"], "winner_mean": float(winner["mean"]), "winner_sd": float(winner["sd"]),
            "margins": margins, "tied_with_winner": tied, "lose_to_gene_mean": below,
            "bar": bar, "against_bar": against_bar, "clear_bar": [m for m, c in against_bar.items() if c["outcome"] == "better"],
            "beat_none": _with(table, "vs_none", "better"), "beat_gene_mean": _with(table, "vs_gene_mean", "better"), "ranking": table.to_dict(orient="records"), "lines": lines}


def _with(table: pd.DataFrame, column: str, outcome: str) -> list[str]:
    return table.loc[table[column] == outcome, "method"].tolist() if column in table else []


_OUTCOME = {"better": "better", "worse": "worse", "tie": "a tie", "not run": "not run", "undefined": "undefined"}


def _num(v) -> str:
    return "NaN" if not np.isfinite(v) else f"{v:.4g}"


def _signed(v) -> str:
    return "NaN" if not np.isfinite(v) else f"{v:+.4g}"
