"""The small measurements the docs quote, in one run (a few minutes on 2 cores):

1. ``rmse`` of the three bars on the bundled pbmc3k subset, uniform mask, 3 mask seeds
   (docs/benchmark.md: a cell-agnostic profile can win it, so it is never ranked by);
2. the share of the counts each mask scheme hides on the same subset for the same 10% of entries
   (docs/benchmark.md, low-count weighting);
3. MAGIC's, ALRA's and DCA's median ratio of output total to the cell's library before the baselines
   rescale it (``info['library_ratio_before_rescale_median']``) on pbmc3k, QC'd and normalised as the
   pipeline does (docs/methods.md, docs/benchmark.md); skipped when ``--data`` or a package is missing;
4. how many cells the default QC keeps of the two ``scdcc_*`` files, which hold only their top 2,000 genes
   (README, benchmark caveat).

    PYTHONPATH=src python bench/docs_checks.py --out bench/results/docs_checks.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from graphimpute import methods, pipeline, runner
from graphimpute.mask import mask
from graphimpute.methods import RunContext

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "src" / "graphimpute" / "data" / "pbmc3k_small.h5ad"
BARS = "none,gene_mean,knn_average"


def bars_rmse(workdir: Path) -> pd.DataFrame:
    out = workdir / "bundled"
    subprocess.run([sys.executable, "-m", "graphimpute", "run", "--input", str(BUNDLED), "--outdir", str(out),
                    "--benchmark", "--mask-scheme", "uniform", "--mask-seeds", "3", "--methods", BARS, "--quiet"],
                   check=True)
    summary = pd.read_csv(next((out / "evaluate").glob("*.summary.tsv")), sep="\t")
    return summary.set_index("method")[["rmse", "rmse_sd"]]


def hidden_share(workdir: Path) -> dict[str, float]:
    import anndata as ad

    normalised = ad.read_h5ad(next((workdir / "bundled" / "normalise").glob("*.h5ad")))
    total = float(normalised.X.sum())
    return {scheme: (total - float(mask(normalised, scheme=scheme, fraction=0.1, seed=0)[0].X.sum())) / total
            for scheme in ("uniform", "low-count")}


def library_ratios(data: Path, workdir: Path) -> dict[str, float]:
    import anndata as ad

    qc, norm = workdir / "pbmc3k.qc.h5ad", workdir / "pbmc3k.norm.h5ad"
    pipeline.qc_step(data, qc)
    pipeline.normalise_step(qc, norm)
    adata = ad.read_h5ad(norm)
    ratios = {}
    for name in ("magic", "alra", "dca"):
        entry = methods.get(name)
        if entry.missing():
            continue
        _, provenance = runner.impute_adata(adata, entry, methods.resolve_params(entry), RunContext(seed=0, device="cpu"))
        ratios[name] = float(provenance["info"]["library_ratio_before_rescale_median"])
    return ratios


def qc_kept(data_dir: Path, workdir: Path) -> dict[str, tuple[int, int]]:
    import anndata as ad

    kept = {}
    for name in ("scdcc_cbmc_citeseq_top2000", "scdcc_10x_pbmc_top2000"):
        path = data_dir / f"{name}.h5ad"
        if path.exists():
            before = ad.read_h5ad(path, backed="r").n_obs
            kept[name] = (ad.read_h5ad(pipeline.qc_step(path, workdir / f"{name}.qc.h5ad")).n_obs, before)
    return kept


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "pbmc3k_seurat.h5ad")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "docs_checks.md")
    args = parser.parse_args(argv)
    missing = [m for m in ("magic", "alra", "dca") if methods.get(m).missing()]
    if not args.data.exists() or missing:  # a partial page would replace the committed figures with gaps
        raise SystemExit(f"needs {args.data} and the baselines' packages (missing: {', '.join(missing) or 'none'})")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rmse = bars_rmse(work)
        shares = hidden_share(work)
        ratios = library_ratios(args.data, work)
        kept = qc_kept(args.data.parent, work)
    lines = ["# Small measurements the docs quote (`bench/docs_checks.py`)", "",
             f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}.", "",
             "## rmse of the bars, bundled pbmc3k subset, uniform mask, 3 mask seeds (lower is better)", "",
             "| method | rmse | sd |", "|---|---|---|",
             *(f"| {m} | {r['rmse']:.3f} | {r['rmse_sd']:.3f} |" for m, r in rmse.iterrows()), "",
             "## Share of the counts hidden for 10% of the entries, bundled subset, mask seed 0", "",
             *(f"- `{scheme}`: {100 * share:.1f}%" for scheme, share in shares.items()), "",
             "## Median output total / library before rescaling, pbmc3k (QC and normalise at defaults, seed 0)", ""]
    lines += [f"- {name}: {ratio:.2f}" for name, ratio in ratios.items()] or ["- not measured (no data or package)"]
    lines += ["", "## Cells the default QC keeps", ""]
    lines += [f"- {name}: {n} of {total:,}" for name, (n, total) in kept.items()] or ["- not measured (no data)"]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
