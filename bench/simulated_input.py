"""A simulated count matrix as an input file (graphimpute.simulate; the truth layers dropped, the cell
types kept in ``obs['cell_type']``), for runs that need more cells or more detected genes than the
shared datasets have: dense enough that scVGAE's 5% detection filter keeps ~1,880 of 2,000 genes.

    PYTHONPATH=src python bench/simulated_input.py --cells 10000 --out /tmp/sim/sim10k.h5ad
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from graphimpute.simulate import simulate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, required=True)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--library-mean", type=float, default=20000.0)
    parser.add_argument("--dropout-midpoint", type=float, default=-2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    adata = simulate(n_cells=args.cells, n_genes=args.genes, library_mean=args.library_mean,
                     dropout_midpoint=args.dropout_midpoint, seed=args.seed)
    for key in list(adata.layers):
        del adata.layers[key]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(args.out)
    print(f"wrote {args.out}: {adata.n_obs} cells x {adata.n_vars} genes, {adata.X.nnz} non-zeros")
    return 0


if __name__ == "__main__":
    sys.exit(main())
