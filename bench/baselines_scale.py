"""What the baselines' shared output policy (rescale to each cell's input library) does to recovery.

Runs baselines on the masked matrix of an earlier `bench/recovery.py` run twice, once as registered and
once with the rescaling switched off (the exact back-transform only), and scores both on the hidden
entries with recovery.py's own scorer.

    PYTHONPATH=src python bench/baselines_scale.py --run bench/_scratch/pbmc3k --methods magic,alra
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import anndata
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recovery import hidden_scores  # noqa: E402

from graphimpute import methods  # noqa: E402
from graphimpute.methods import RunContext  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="outdir of a bench/recovery.py run")
    parser.add_argument("--methods", default="magic,alra")
    parser.add_argument("--sample", default="pbmc3k_seurat")
    args = parser.parse_args(argv)
    masked = anndata.read_h5ad(args.run / "graph" / f"{args.sample}.seed0.h5ad")
    truth = anndata.read_h5ad(args.run / "mask" / f"{args.sample}.seed0.truth.h5ad")
    print("method\trescaled\thidden_gene_r\thidden_zero_auc\trmse\tlibrary_ratio_median")
    for name in methods.parse_methods(args.methods):
        method = methods.get(name)
        module = sys.modules[method.impute.__module__]
        for rescaled in (True, False):
            patch = (mock.patch.object(module, "to_input_library", lambda e, lib: np.asarray(e, np.float32))
                     if not rescaled else mock.patch.object(module, "to_input_library", module.to_input_library))
            with patch:
                result = method.impute(masked, methods.resolve_params(method), RunContext(progress=False))
            scores = hidden_scores(result.imputed, truth)
            library = np.asarray(masked.X.sum(axis=1)).ravel()
            ratio = np.median(result.imputed.sum(axis=1) / library)
            print(f"{name}\t{rescaled}\t{scores['hidden_gene_r']:.4f}\t{scores['hidden_zero_auc']:.4f}\t{scores['rmse']:.4f}"
                  f"\t{ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
