"""Write src/graphimpute/data/dropseq_3cl_small.h5ad, the test profile's second sample.

A subset of ../shared/data/mixology_dropseq_3cl.h5ad (CellBench 3 cell lines, Drop-seq; Tian 2019,
GSE118767; github LuyiTian/sc_mixology, MIT): up to 50 cells per cell line (seed 0), the 1,500 genes
with the most counts among those detected in at least 10 of them. Raw integer counts, labels in
obs['cell_type'].

    python scripts/make_dropseq_small.py [SOURCE]
"""
import sys
from pathlib import Path

import anndata as ad
import numpy as np

source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mixology_dropseq_3cl.h5ad")
target = Path(__file__).resolve().parents[1] / "src/graphimpute/data/dropseq_3cl_small.h5ad"

full = ad.read_h5ad(source)
rng = np.random.default_rng(0)
cells = np.sort(np.concatenate([
    rng.choice(np.flatnonzero(full.obs["cell_type"].to_numpy() == label), size=min(50, count), replace=False)
    for label, count in full.obs["cell_type"].value_counts().sort_index().items()
]))
small = full[cells].copy()
detected = np.asarray((small.X > 0).sum(axis=0)).ravel() >= 10
totals = np.asarray(small.X.sum(axis=0)).ravel()
genes = np.sort(np.flatnonzero(detected)[np.argsort(-totals[detected], kind="stable")[:1500]])
small = small[:, genes].copy()
small.uns = {"source": "subset of mixology_dropseq_3cl.h5ad (CellBench 3 cell lines, Drop-seq; github "
                       "LuyiTian/sc_mixology, MIT): up to 50 cells per cell line (seed 0), the 1,500 genes with "
                       "the most counts among those detected in >= 10 of those cells"}
tmp = target.with_name(f".{target.name}.tmp")
small.write_h5ad(tmp, compression="gzip")
tmp.replace(target)
print(f"{target}: {small.n_obs} cells x {small.n_vars} genes, {target.stat().st_size} bytes")
