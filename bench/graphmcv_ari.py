"""Why graphMCV's k-means ARI falls below `none` or `knn_average` on some datasets (issue 26, item 5).

For each dataset and mask seed (the masked graph files `bench/accuracy.py` leaves in OUTDIR/mcv/graph/),
the outputs of `none`, `knn_average` and graphMCV (its defaults, and calibrate=false) are clustered
exactly as EVALUATE clusters them (graphimpute.evaluate.clustering_metrics: PCA of log1p CP10k, k-means
with k = number of labels); per label the table gives the share of its cells in its most frequent
k-means cluster and the labels that cluster also takes most of, so splits and merges show.

    PYTHONPATH=src python bench/graphmcv_ari.py --graphs /tmp/floor/out/mcv/graph \\
        --datasets pbmc3k_seurat,klein2015_subset_tmscc --out bench/results/graphmcv_ari.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from graphimpute import _keys, graphs, methods, runner
from graphimpute.evaluate import Settings, _log_cp, clustering_metrics
from graphimpute.methods import RunContext

VARIANTS = {"none": ("none", {}), "knn_average": ("knn_average", {}), "graphmcv": ("graphmcv", {}),
            "graphmcv calibrate=false": ("graphmcv", {"calibrate": False})}


def kmeans_labels(imputed: np.ndarray, k: int, settings: Settings) -> np.ndarray:
    rep = ad.AnnData(X=_log_cp(np.asarray(imputed, np.float64), settings.target_sum).astype(np.float32))
    graphs.pca(rep, n_comps=settings.n_pcs, layer=None, seed=settings.seed)
    return KMeans(n_clusters=k, n_init=settings.kmeans_n_init, random_state=settings.seed).fit(rep.obsm[_keys.PCA]).labels_


def label_table(labels: np.ndarray, clusters: np.ndarray) -> dict[str, str]:
    """label -> its share in its most frequent cluster, and the other labels more than half of whose
    cells are in that cluster (a merge); a label whose share is low is split."""
    frame = pd.crosstab(labels, clusters)
    out = {}
    for label, row in frame.iterrows():
        main = row.idxmax()
        mates = [str(o) for o in frame.index if o != label and frame.loc[o, main] > 0.5 * frame.loc[o].sum()]
        out[str(label)] = f"{row.max() / row.sum():.2f}" + (f" (with {', '.join(mates)})" if mates else "")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=Path, required=True)
    parser.add_argument("--datasets", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--label-key", default="cell_type")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = Settings(umap=False)
    lines = ["# k-means ARI: graphMCV against none and knn_average", "", f"`{' '.join(sys.argv)}`", ""]
    for dataset in args.datasets.split(","):
        scores, tables = {}, {}
        for seed in map(int, args.seeds.split(",")):
            adata = ad.read_h5ad(args.graphs / f"{dataset}.seed{seed}.h5ad")
            labels = adata.obs[args.label_key].astype(str).to_numpy()
            kept = labels != "nan"
            for name, (method, over) in VARIANTS.items():
                entry = methods.get(method)
                imputed, _ = runner.impute_adata(adata, entry, methods.resolve_params(entry, over),
                                                 RunContext(seed=seed, progress=False))
                found, _ = clustering_metrics(imputed[kept], labels[kept], settings=settings)
                scores.setdefault(name, []).append({k: found[k] for k in ("kmeans_ari", "leiden_ari", "silhouette_labels")})
                if seed == int(args.seeds.split(",")[0]):
                    tables[name] = label_table(labels[kept], kmeans_labels(imputed[kept], len(set(labels[kept])), settings))
        lines += [f"## {dataset}", "", "| output | k-means ARI | Leiden ARI | label silhouette |", "|---|---|---|---|"]
        for name, rows in scores.items():
            frame = pd.DataFrame(rows)
            lines.append(f"| {name} | " + " | ".join(f"{frame[c].mean():.3f} ± {frame[c].std():.3f}" for c in frame) + " |")
        lines += ["", f"Per label, mask seed {args.seeds.split(',')[0]}: share of its cells in its most frequent k-means "
                  "cluster (with: other labels more than half of whose cells are in that cluster).", "",
                  "| label | " + " | ".join(tables) + " |", "|---|" + "---|" * len(tables)]
        for label in next(iter(tables.values())):
            lines.append(f"| {label} | " + " | ".join(t[label] for t in tables.values()) + " |")
        lines.append("")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
