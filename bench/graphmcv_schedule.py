"""graphMCV's training schedule at 10,000 cells: how many epochs each setting trains before its early
stop, what an epoch costs, and the held-back (validation) loss it reaches, on the scale benchmark's
input (bench/graphmcv_scale.py's resampling of CBMC). Each setting is a list of graphMCV parameters.

    PYTHONPATH=src OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python bench/graphmcv_schedule.py \\
        --out bench/results/graphmcv_schedule_10k.md

The validation loss is graphMCV's own early-stopping loss (Poisson, per entry, without log y!), so it
compares settings on one input; MCV Poisson on the shared datasets is what decides a default.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graphmcv_scale import REPO, resample  # noqa: E402

from graphimpute import methods  # noqa: E402
from graphimpute.methods import RunContext  # noqa: E402

SETTINGS = [
    {},
    {"max_epochs": 30},
    {"lr": 6e-3},
    {"batch_size": 128},
    {"batch_size": 256},
    {"batch_size": 1024, "lr": 4e-3},
    {"batch_size": 2048, "lr": 8e-3},
]


def row(adata, settings: dict, seed: int) -> str:
    entry = methods.get("graphmcv")
    start = time.perf_counter()
    result = entry.impute(adata, methods.resolve_params(entry, settings), RunContext(seed=seed, progress=False))
    wall = time.perf_counter() - start
    epochs = result.history["epochs"]
    val = np.array([e["val_loss"] for e in epochs])
    at = lambda k: f"{val[k - 1]:.5f}" if len(val) >= k else "–"  # noqa: E731
    label = ", ".join(f"{k}={v:g}" for k, v in settings.items()) or "defaults"
    epoch_s = float(np.median([e["time_s"] for e in epochs]))
    return (f"| {label} | {wall:.1f} | {len(epochs)} | {result.history['best_epoch']} | {epoch_s:.3f} | "
            f"{wall - epoch_s * len(epochs):.1f} | {at(10)} | {at(30)} | {val.min():.5f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scdcc_cbmc_citeseq_top2000.h5ad")
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    source = ad.read_h5ad(args.data)
    adata = resample(source, args.cells, args.seed)
    entry = methods.get("graphmcv")  # warm-up: imports and first calls
    entry.impute(resample(source, 500, args.seed + 1), methods.resolve_params(entry, {"max_epochs": 1}),
                 RunContext(seed=args.seed, progress=False))
    rows = [row(adata, settings, args.seed) for settings in SETTINGS]
    lines = ["# graphMCV's schedule at 10,000 cells", "",
             f"Written by `bench/graphmcv_schedule.py` ({args.cells} cells resampled from `{args.data.name}`, seed "
             f"{args.seed}, one thread). Epoch: the median epoch time (training and validation); rest: the wall "
             "time outside the epochs (graph, PCA, features, calibration, inference). Validation loss: the early "
             "stop's (lower is better), at epochs 10 and 30 and its best.", "",
             "| setting | wall (s) | epochs | best epoch | epoch (s) | rest (s) | val @10 | val @30 | val best |",
             "|---|---|---|---|---|---|---|---|---|", *rows, ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
