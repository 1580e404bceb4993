"""Turn EVALUATE's files into MultiQC custom content, and render it into one HTML report.

The report computes nothing: every number comes from EVALUATE's tables (``<sample>.metrics.tsv``,
``.runs.tsv``, ``.histories.tsv``, ``.embeddings.tsv``, ``.versions.json``, ``.summary.json``);
the UMAP coordinates are EVALUATE's too, the report only draws them. Files written (MultiQC picks
up anything named ``*_mqc.*``):

- ``graphimpute_<group>_mqc.tsv``: one table per metric group (recovery, mcv, clustering), a row per
  sample and method, coloured by whether higher or lower is better;
- ``graphimpute_<group>_bars_mqc.yaml``: a bar graph per metric of that group (one button each);
- ``graphimpute_resources_mqc.tsv``: device, wall time, peak memory, epochs;
- ``graphimpute_loss_<method>_mqc.yaml``: the training loss curves, one line per sample and split,
  one button per loss term;
- ``graphimpute_umap_<sample>_mqc.png``: UMAP of the unimputed counts and of each method's output;
- ``graphimpute_mqc_versions.yml``: software versions (MultiQC's own versions table);
- ``multiqc_config.yaml``: title, section order, no version check;
- ``graphimpute_report.css``: hides MultiQC's welcome box.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from graphimpute._version import __version__
from graphimpute.io import write_text
from graphimpute.errors import GraphImputeError
from graphimpute.metrics import METRICS
from graphimpute.verdict import BASELINES

log = logging.getLogger(__name__)

GROUPS = {
    "recovery": ("Hidden-entry recovery",
                 "Scores at the masked entries only, on log1p(10,000 · count / unmasked library), each method's "
                 "output rescaled to the cell's unmasked library. NaN = undefined (a prediction that is 0 at "
                 "every hidden entry has no Pearson r or cosine), not 0."),
    "mcv": ("Molecular cross-validation",
            "Counts split by Binomial(n, 0.9) into train (the methods' input) and test. MSE: log1p CP10k of "
            "output vs test (Open Problems). Poisson: mean(rate - test · log(rate + 1e-6)) with the output "
            "rescaled by test total / train total; the Open Problems column swaps the two arguments, as "
            "their metric does. MSE favours sparse outputs: read it next to the Poisson loss."),
    "clustering": ("Clustering",
                   "On the PCA of each output's own log1p CP10k values (not the imputation graph): k-means with "
                   "k = number of labels (mean over seeds) and Leiden on that PCA's kNN graph, scored against "
                   "the labels; and the silhouette of the labels on the PCA."),
}
RESOURCE_COLUMNS = ("device", "wall_time_s", "peak_memory_mb", "epochs", "best_epoch", "nondefault_params")
_FORMATS = {"wall_time_s": "{:,.1f}", "peak_memory_mb": "{:,.0f}", "epochs": "{:,.0f}", "best_epoch": "{:,.0f}"}


def load(inputs: Iterable[str | Path]) -> dict[str, Any]:
    """Read EVALUATE's files from the given files or directories (several samples are concatenated)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(path.iterdir()))
        elif path.exists():
            files.append(path)
        else:
            raise GraphImputeError(f"{path}: no such file or directory")

    def tables(suffix: str) -> pd.DataFrame:
        found = [pd.read_csv(f, sep="\t") for f in files if f.name.endswith(suffix)]
        return pd.concat(found, ignore_index=True) if found else pd.DataFrame()

    versions: dict[str, dict[str, str]] = {}
    settings: dict[str, Any] = {}
    verdicts: dict[str, Any] = {}
    for f in files:
        if f.name.endswith(".versions.json"):
            for method, pkgs in json.loads(f.read_text()).items():
                versions.setdefault(method, {}).update(pkgs)
        elif f.name.endswith(".summary.json"):
            summary = json.loads(f.read_text())
            settings[summary["sample"]] = summary.get("settings", {})
            verdicts[summary["sample"]] = summary.get("verdict") or {}
    data = {"metrics": tables(".metrics.tsv"), "runs": tables(".runs.tsv"),
            "histories": tables(".histories.tsv"), "embeddings": tables(".embeddings.tsv"),
            "rankings": tables(".ranking.tsv"), "versions": versions, "settings": settings, "verdicts": verdicts}
    if "seed" not in data["metrics"]:  # tables written before mask seeds: one seed
        data["metrics"] = data["metrics"].assign(seed=0)
    if data["metrics"].empty:
        raise GraphImputeError("no EVALUATE metrics (*.metrics.tsv) among the report's inputs")
    return data


def write_custom_content(data: dict[str, Any], outdir: str | Path, *, title: str = "graphimpute benchmark") -> list[Path]:
    """Write the MultiQC custom content files for ``data`` (from ``load``) into ``outdir``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    metrics = data["metrics"].copy()
    metrics["row"] = metrics["sample"].astype(str) + " · " + metrics["method"].astype(str)
    samples = list(dict.fromkeys(metrics["sample"].astype(str)))
    embedded = data["embeddings"]["sample"].unique() if not data["embeddings"].empty else []
    trained = data["histories"]["method"].unique() if not data["histories"].empty else []
    order = _section_order(samples, embedded, trained)

    rankings = data.get("rankings", pd.DataFrame())
    ranked = _rank_order(rankings, samples)
    if not rankings.empty:
        written.append(_ranking_table(rankings, outdir, order))
        for sample in samples:
            part = rankings[rankings["sample"].astype(str) == sample] if "sample" in rankings else rankings
            if not part.empty:
                written.append(_bars_png(metrics[metrics["sample"].astype(str) == sample], sample,
                                         outdir / f"graphimpute_bars_{_safe(sample)}_mqc.png"))

    for group, (name, description) in GROUPS.items():
        names = [m for m, spec in METRICS.items() if spec.group == group and m in set(metrics["metric"])]
        if not names:
            continue
        part = metrics[metrics["metric"].isin(names)]
        mean = part.pivot_table(index="row", columns="metric", values="value", aggfunc="mean", dropna=False,
                                sort=False)[names]
        sd = part.pivot_table(index="row", columns="metric", values="value", aggfunc="std", dropna=False,
                              sort=False).reindex(index=mean.index, columns=names)
        wide = pd.concat({**{m: mean[m] for m in names}, **{f"{m}_sd": sd[m] for m in names}}, axis=1)
        wide = wide[[c for m in names for c in (m, f"{m}_sd")]]
        wide = wide.loc[sorted(wide.index, key=ranked)]
        headers = {}
        for m in names:
            headers[m] = _header(m)
            headers[f"{m}_sd"] = {"title": f"{m} sd", "description": f"standard deviation of {m} over mask seeds",
                                  "format": "{:,.4f}", "scale": False, "hidden": True}
        written.append(_write_table(outdir / f"graphimpute_{group}_mqc.tsv", wide, id=f"graphimpute_{group}",
                                    section_name=name, description=description + " Mean over mask seeds (sd in the "
                                    "hidden columns: 'Configure columns').", headers=headers, order=order))

    runs = data["runs"]
    if not runs.empty:
        runs = runs.drop_duplicates(["sample", "method"])
        runs = runs.assign(row=runs["sample"].astype(str) + " · " + runs["method"].astype(str)).set_index("row")
        if "nondefault_params" in runs:
            runs = runs.assign(nondefault_params=runs["nondefault_params"].map(_changed_text))
        runs = runs.loc[sorted(runs.index, key=ranked)]
        cols = [c for c in RESOURCE_COLUMNS if c in runs.columns]
        headers = {c: _header(c) if c in METRICS else {"title": c, "description": _RUN_COLUMNS.get(c, c)}
                   for c in cols}
        written.append(_write_table(outdir / "graphimpute_resources_mqc.tsv", runs[cols], id="graphimpute_resources",
                                    section_name="Runtime and memory",
                                    description="From each output's provenance (first mask seed); timings depend on "
                                                "the machine and its load at the time. Peak memory is the resident "
                                                "memory of the process while the method ran, libraries and loaded "
                                                "data included (freed memory is returned to the system before each "
                                                "method; the Nextflow pipeline runs each method in its own task). "
                                                "'changed parameters' lists what differs from the paper's defaults.",
                                    headers=headers, order=order))

    histories = data["histories"]
    if not histories.empty:
        if "model" not in histories:
            histories = histories.assign(model="")
        histories = histories.assign(model=histories["model"].fillna("").astype(str))
        for method, hist in histories.groupby("method", sort=False):
            written.append(_loss_yaml(method, hist, outdir, order))

    embeddings = data["embeddings"]
    if not embeddings.empty:
        for sample, emb in embeddings.groupby("sample", sort=False):
            written.append(_umap_png(emb, outdir / f"graphimpute_umap_{_safe(str(sample))}_mqc.png", str(sample)))

    written.append(_write_versions(data["versions"], outdir / "graphimpute_mqc_versions.yml"))
    images = {f"graphimpute_umap_{_safe(str(s))}": (f"UMAP: {s}", "UMAP of each output's evaluation PCA (kNN graph of "
                                                    "that PCA), coloured by label.") for s in embedded}
    images.update({f"graphimpute_bars_{_safe(s)}": (
        f"Scores: {s}", "Each metric's mean over mask seeds (error bars: sd), methods sorted best first; dashed "
        "lines mark the floors: none (the observed counts), knn_average (the neighbour average), gene_mean (the "
        "cell-agnostic profile) and the own counts shrunk towards either (shrink_gene_mean, shrink_knn); the best "
        "of them is the bar every method must clear.") for s in samples
        if (outdir / f"graphimpute_bars_{_safe(s)}_mqc.png").exists()})
    written.append(write_text(REPORT_CSS, outdir / CSS_NAME))
    config = {"title": title, "subtitle": "imputation benchmark: metrics from graphimpute evaluate",
              "intro_text": _intro(data), "no_version_check": True, "show_analysis_paths": False,
              "custom_css_files": [CSS_NAME],  # found next to this config
              "report_section_order": order,
              "custom_data": {key: {"section_name": name, "description": text} for key, (name, text) in images.items()},
              "sp": {key: {"fn": f"{key}_mqc.png"} for key in images}}
    written.append(_write_yaml(outdir / "multiqc_config.yaml", config))
    return written


# MultiQC shows every report a "Welcome! Not sure where to start? Watch a tutorial video" box (no setting
# turns it off; its script shows it unless the browser saved "don't show again"): a stylesheet hides it.
CSS_NAME = "graphimpute_report.css"
REPORT_CSS = "#mqc_welcome { display: none !important; }\n"

_RUN_COLUMNS = {"device": "device the method ran on",
                "nondefault_params": "parameters changed from the method's (paper) defaults"}
EPOCH_PARAMS = ("epochs", "max_epochs")


def _intro(data: dict[str, Any]) -> str:
    """The report's own introduction: what was measured, the demo banner, and each sample's verdict."""
    parts = ["<p>graphimpute ranks imputation methods by <b>molecular cross-validation</b> (MCV): each cell's "
             "molecules are split into an input part and a held-out part, every method imputes from the input "
             "part, and the Poisson loss of the held-out molecules under its output (every entry, zeros "
             "included) measures how well it predicts molecules it has not seen. Every score is the mean over "
             "several mask seeds; a difference smaller than its seed-to-seed spread is a tie. The floors: "
             "<code>none</code> (the observed counts), <code>knn_average</code> (the neighbour average), "
             "<code>gene_mean</code> (the same profile for every cell: a method that does not beat it has shown "
             "nothing the metric can see), and each cell's own counts shrunk towards either "
             "(<code>shrink_gene_mean</code>, <code>shrink_knn</code>: MCV rewards such shrinkage without any "
             "imputation). The best floor that ran is the bar. Formulas: docs/benchmark.md.</p>"]
    demo = _demo_runs(data["runs"])
    if demo:
        parts.insert(0, "<div class='alert alert-warning'><b>Not the methods' default settings.</b> "
                        + "; ".join(demo) + ". Scores of these runs say nothing about the methods as published "
                        "(this is what the demo and the test profile do, to finish in minutes).</div>")
    for sample, verdict in data.get("verdicts", {}).items():
        lines = verdict.get("lines") or []
        if lines:
            parts.append(f"<p><b>{_html(sample)}</b>:</p><ul>" + "".join(f"<li>{_html(l.strip())}</li>" for l in lines)
                         + "</ul>")
        auto = data.get("settings", {}).get(sample, {}).get("winner")
        if auto:
            parts.append(f"<p><b>{_html(sample)}</b> was imputed with <b>{_html(auto)}</b>, chosen by "
                         "<code>--methods auto</code> on the ranking below.</p>")
    return "".join(parts)


def _changed_text(value) -> str:
    """``{"max_epochs": 3}`` as ``max_epochs=3`` (JSON in a TSV cell came out with doubled quotes)."""
    try:
        changed = json.loads(value) if isinstance(value, str) else {}
    except ValueError:
        return str(value)
    return ", ".join(f"{k}={v}" for k, v in changed.items()) if isinstance(changed, dict) and changed else "defaults"


def _demo_runs(runs: pd.DataFrame) -> list[str]:
    if runs.empty or "nondefault_params" not in runs:
        return []
    found = []
    for (sample, method), changed in runs.drop_duplicates(["sample", "method"]).set_index(["sample", "method"])[
            "nondefault_params"].items():
        try:
            changed = json.loads(changed) if isinstance(changed, str) else {}
        except ValueError:
            continue
        epochs = {k: v for k, v in changed.items() if k in EPOCH_PARAMS}
        if epochs:
            found.append(f"{method} ({sample}) ran with " + ", ".join(f"{k}={v}" for k, v in epochs.items()))
    return found


def _rank_order(rankings: pd.DataFrame, samples: list[str]):
    """Sort key of a ``sample · method`` row: samples in their order, then methods by the ranking's rank
    (best first); rows the ranking lacks keep their place after the ranked ones."""
    rank = {}
    if not rankings.empty and {"sample", "method", "rank"} <= set(rankings.columns):
        rank = {f"{s} · {m}": float(r) for s, m, r in zip(rankings["sample"].astype(str),
                                                          rankings["method"].astype(str), rankings["rank"])}
    position = {s: i for i, s in enumerate(samples)}
    seen: dict[str, int] = {}

    def key(row: str) -> tuple:
        sample = row.split(" · ", 1)[0]
        return position.get(sample, len(position)), rank.get(row, math.inf), seen.setdefault(row, len(seen))

    return key


def _ranking_table(rankings: pd.DataFrame, outdir: Path, order) -> Path:
    table = rankings.assign(row=rankings["sample"].astype(str) + " · " + rankings["method"].astype(str)).set_index("row")
    cols = [c for c in ("rank", "metric", "mean", "sd", "n_seeds", "vs_best", "vs_bar",
                        *(f"vs_{b}" for b in BASELINES)) if c in table]
    headers = {c: {"title": c, "description": _RANK_COLUMNS.get(c, c), "scale": False} for c in cols}
    headers["mean"]["format"] = headers["sd"]["format"] = "{:,.4f}"
    return _write_table(outdir / "graphimpute_ranking_mqc.tsv", table[cols], id="graphimpute_ranking",
                        section_name="Ranking",
                        description="Methods best first on the ranking metric (MCV Poisson loss when the benchmark "
                                    "ran molecular cross-validation). vs_*: the method against the best and against "
                                    "each baseline, on paired mask seeds: better or worse only when a two-sided "
                                    "paired t-test over the seeds finds the difference at 0.05, else a tie.",
                        headers=headers, order=order)


_RANK_COLUMNS = {"rank": "position by mean", "metric": "the ranking metric", "mean": "mean over mask seeds",
                 "sd": "standard deviation over mask seeds", "n_seeds": "mask seeds scored",
                 "vs_best": "against the best method", "vs_bar": "against the bar: the best floor that ran",
                 "vs_none": "against none (no imputation)", "vs_knn_average": "against the neighbour average",
                 "vs_gene_mean": "against the cell-agnostic profile",
                 "vs_shrink_gene_mean": "against the own counts shrunk towards gene_mean",
                 "vs_shrink_knn": "against the own counts shrunk towards the neighbour average"}


def _bars_png(metrics: pd.DataFrame, sample: str, path: Path) -> Path:
    """One panel per headline metric: methods sorted best first, mean ± sd over seeds, the baselines as
    dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    shown = [m for m in BAR_METRICS if m in set(metrics["metric"]) and metrics.loc[metrics["metric"] == m, "value"].notna().any()]
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 0.32 * metrics["method"].nunique() + 1.6),
                             squeeze=False)
    styles = dict(zip(BASELINES, ("tab:red", "tab:blue", "tab:gray", "tab:orange", "tab:green")))
    for ax, metric in zip(axes[0], shown):
        stats = metrics[metrics["metric"] == metric].groupby("method")["value"].agg(["mean", "std"]).dropna(subset=["mean"])
        stats = stats.sort_values("mean", ascending=not METRICS[metric].higher_is_better)
        y = np.arange(len(stats))[::-1]
        ax.barh(y, stats["mean"], xerr=stats["std"].fillna(0), color=["#bbbbbb" if m in BASELINES else "#4c72b0"
                                                                       for m in stats.index], capsize=2)
        ax.set_yticks(y, stats.index, fontsize=8)
        for base, colour in styles.items():
            if base in stats.index:
                ax.axvline(stats.loc[base, "mean"], color=colour, ls="--", lw=1, label=base)
        lo, hi = stats["mean"].min(), stats["mean"].max()
        pad = 0.15 * (hi - lo) if hi > lo else abs(hi) * 0.1 + 1e-9
        ax.set_xlim(min(lo - pad, 0) if lo >= 0 and lo - pad < 0 else lo - pad, hi + pad)
        ax.set_title(f"{metric} ({'higher' if METRICS[metric].higher_is_better else 'lower'} is better)", fontsize=9)
    handles = [plt.Line2D([], [], color=c, ls="--", lw=1, label=b) for b, c in styles.items()
               if b in set(metrics["method"])]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(sample, fontsize=10)
    fig.tight_layout(rect=(0, 0.08 if handles else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


BAR_METRICS = ("mcv_poisson", "mcv_mse", "hidden_gene_r", "hidden_zero_auc", "kmeans_ari")


SPLITS = {"train": "train", "val": "validation"}  # a loss term's prefix (evaluate.LOSS_PREFIXES) -> its line's label


def _loss_yaml(method: str, hist: pd.DataFrame, outdir: Path, order) -> Path:
    """Loss curves of one method: one line per sample, model (cnnImpute trains one per cluster and
    block) and split; one button per loss term."""
    hist = hist.assign(split=hist["term"].str.split("_", n=1).str[0], base=hist["term"].str.split("_", n=1).str[-1])
    terms = list(dict.fromkeys(hist["base"]))
    datasets = []
    for term in terms:
        part = hist[hist["base"] == term]
        datasets.append({" · ".join(str(k) for k in (sample, model, SPLITS.get(split, split)) if str(k)):
                         {int(e): float(v) for e, v in zip(g["epoch"], g["value"]) if _finite(v)}
                         for (sample, model, split), g in part.groupby(["sample", "model", "split"], sort=False)})
    content = {"id": f"graphimpute_loss_{_safe(method)}", "section_name": f"Training: {method}",
               "description": f"Loss terms of {method} per epoch: one line per sample and split, each labelled "
                              "'train' (the epoch's training batches) or 'validation' (the held-back entries the "
                              "early stopping watches), and per model where the method trains several; one button "
                              "per term. First mask seed.",
               "plot_type": "linegraph",
               "pconfig": {"id": f"graphimpute_loss_{_safe(method)}_plot", "title": f"{method}: training history",
                           "xlab": "epoch", "ylab": "loss", "data_labels": [{"name": t, "ylab": t} for t in terms]},
               "data": datasets}
    return _write_yaml(outdir / f"graphimpute_loss_{_safe(method)}_mqc.yaml", content)


def _html(text: str) -> str:
    import html

    return html.escape(str(text))


def multiqc_available() -> bool:
    return importlib.util.find_spec("multiqc") is not None or shutil.which("multiqc") is not None


def render(content_dir: str | Path, outdir: str | Path, *, filename: str = "multiqc_report.html") -> Path:
    """Run MultiQC on ``content_dir`` with its multiqc_config.yaml; returns the HTML path."""
    content_dir, outdir = Path(content_dir), Path(outdir)
    if importlib.util.find_spec("multiqc") is not None:
        command = [sys.executable, "-m", "multiqc"]
    elif shutil.which("multiqc"):
        command = [shutil.which("multiqc")]
    else:
        raise GraphImputeError("MultiQC is not installed here: the custom content files are written, but no HTML "
                               "report (install multiqc, or use --no-render)")
    command += [str(content_dir), "--config", str(content_dir / "multiqc_config.yaml"), "--outdir", str(outdir),
                "--filename", filename, "--force", "--no-ansi"]
    done = subprocess.run(command, capture_output=True, text=True)
    html = outdir / filename
    if done.returncode != 0 or not html.exists():
        raise GraphImputeError(f"MultiQC failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return html


def report(inputs: Iterable[str | Path], outdir: str | Path, *, title: str = "graphimpute benchmark",
           render_html: bool = True) -> list[Path]:
    """Custom content into ``outdir/custom_content``; with ``render_html``, the MultiQC report into ``outdir``."""
    outdir = Path(outdir)
    content_dir = outdir / "custom_content"
    written = write_custom_content(load(inputs), content_dir, title=title)
    if render_html:
        written.append(render(content_dir, outdir))
    return written


# -------------------------------------------------------------------------------------------- helpers
def _section_order(samples: Iterable[str] = (), embedded: Iterable[str] = (), trained: Iterable[str] = ()
                   ) -> dict[str, dict[str, int]]:
    """MultiQC puts higher ``order`` first: the ranking, the sorted bars, the metric tables, resources,
    UMAPs, training, versions."""
    ids = ["graphimpute_ranking"] + [f"graphimpute_bars_{_safe(str(s))}" for s in samples]
    ids += [f"graphimpute_{g}" for g in GROUPS] + ["graphimpute_resources"]
    ids += [f"graphimpute_umap_{_safe(str(s))}" for s in embedded] + [f"graphimpute_loss_{_safe(str(m))}" for m in trained]
    order = {i: {"order": 10000 - 10 * n} for n, i in enumerate(ids)}
    order["software_versions"] = {"order": -1000}
    return order


def _header(metric: str) -> dict[str, Any]:
    spec = METRICS[metric]
    header: dict[str, Any] = {"title": metric, "description": spec.description,
                              "format": _FORMATS.get(metric, "{:,.4f}")}
    if spec.higher_is_better is not None:
        header["scale"] = "RdYlGn" if spec.higher_is_better else "RdYlGn-rev"
    else:
        header["scale"] = False
    return header


def _write_table(path: Path, table: pd.DataFrame, *, id: str, section_name: str, description: str,
                 headers: dict[str, Any], order: Any) -> Path:
    head = {"id": id, "section_name": section_name, "description": description, "plot_type": "table",
            "pconfig": {"id": f"{id}_table", "title": section_name, "sort_rows": False}, "headers": headers}
    lines = [f"# {key}: {json.dumps(value, ensure_ascii=False)}" for key, value in head.items()]
    body = table.copy()
    body.index.name = "sample · method"
    text = "\n".join(lines) + "\n" + body.to_csv(sep="\t", na_rep="NaN", float_format="%.6g")
    return write_text(text, path)


def _write_versions(versions: dict[str, dict[str, str]], path: Path) -> Path:
    """MultiQC's Software Versions: every package once (a package that differed between the methods'
    runs lists each version)."""
    found: dict[str, list[str]] = {"graphimpute": [str(__version__)]}
    for pkgs in versions.values():
        for package, value in (pkgs or {}).items():
            seen = found.setdefault(str(package), [])
            if str(value) not in seen:
                seen.append(str(value))
    lines = ["graphimpute:", *(f"  {json.dumps(k)}: {json.dumps(' / '.join(v))}" for k, v in sorted(found.items()))]
    return write_text("\n".join(lines) + "\n", path)


def _umap_png(emb: pd.DataFrame, path: Path, sample: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = list(dict.fromkeys(emb["method"]))
    methods = sorted(seen, key=lambda m: (m not in ("unimputed", "none"), seen.index(m)))
    labels = sorted(emb["label"].astype(str).unique())
    colours = dict(zip(labels, plt.get_cmap("tab20")(np.linspace(0, 1, max(len(labels), 2)))))
    cols = min(4, len(methods))
    rows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 1.8, 3.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, method in zip(axes.ravel(), methods):
        part = emb[emb["method"] == method]
        ax.scatter(part["umap1"], part["umap2"], s=3, c=[colours[str(l)] for l in part["label"]], linewidths=0)
        ax.set_title("unimputed (none)" if method == "none" else method, fontsize=10)
    handles = [plt.Line2D([], [], marker="o", ls="", color=colours[l], label=l) for l in labels]
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
    fig.suptitle(sample, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1 - 1.6 / (3.2 * cols + 1.8), 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_yaml(path: Path, obj: Any) -> Path:
    """PyYAML (MultiQC's own dependency) writes it; numpy scalars become plain numbers first, integer keys
    (a loss plot's epochs) stay integers."""
    import yaml

    return write_text(yaml.safe_dump(_plain(obj), sort_keys=False, allow_unicode=True, width=10_000), path)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {(int(k) if isinstance(k, np.integer) else k if isinstance(k, int) else str(k)): _plain(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
