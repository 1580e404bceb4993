"""Where graphMCV's wall time goes: cProfile of one run on the scale benchmark's input
(bench/graphmcv_scale.py's resampling of CBMC to ``--cells`` cells), after the same 500-cell warm-up.

    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/graphmcv_profile.py --cells 10000 [--param max_epochs=6]

Prints the functions with the largest cumulative time (graphMCV's own steps, torch's forward/backward,
scipy's sparse work) and the run's per-epoch times."""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import anndata as ad

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graphmcv_scale import REPO, resample  # noqa: E402

from graphimpute import methods  # noqa: E402
from graphimpute.methods import RunContext  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scdcc_cbmc_citeseq_top2000.h5ad")
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--param", action="append", default=[], help="graphmcv KEY=VALUE (repeatable)")
    args = parser.parse_args(argv)
    source = ad.read_h5ad(args.data)
    adata = resample(source, args.cells, args.seed)
    method = methods.get("graphmcv")
    method.impute(resample(source, 500, args.seed + 1), methods.resolve_params(method, {"max_epochs": 1}),
                  RunContext(seed=args.seed, device="cpu", progress=False))
    params = methods.resolve_params(method, dict(p.split("=", 1) for p in args.param))
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    result = method.impute(adata, params, RunContext(seed=args.seed, device="cpu", progress=False))
    profiler.disable()
    print(f"wall {time.perf_counter() - t0:.1f} s, epochs {result.history['n_epochs']}, "
          f"best {result.history['best_epoch']}, own_weight {result.info.get('own_weight')}")
    print("epoch times:", [round(e["time_s"], 2) for e in result.history["epochs"]])
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.top)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
