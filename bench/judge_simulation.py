"""The judge on simulated counts with known means (the numbers behind docs/benchmark.md's table):
MCV Poisson, MCV MSE, the true Poisson loss and the log-scale error to μ of outputs of known quality,
mean ± sd over 3 mask seeds. Same outputs as tests/test_judge.py.

    python bench/judge_simulation.py > bench/results/judge_simulation.md
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import numpy as np
from test_judge import _outputs, _true_loss, FRACTION
from graphimpute.simulate import simulate, EXPECTED, TRUE_MEAN
from graphimpute.mask import mask, LIBRARY_MASKED
from graphimpute.evaluate import mcv_metrics, _log_cp
sim = simulate(seed=0)
expected = sim.layers[EXPECTED].astype(np.float64)
lc_true = _log_cp(sim.layers[TRUE_MEAN].astype(np.float64), 1e4)
rows = {}
for seed in (0, 1, 2):
    masked, truth = mask(sim, scheme="mcv", fraction=FRACTION, seed=seed)
    tt = float(truth.obs[LIBRARY_MASKED].sum())
    for name, out in _outputs(masked, expected).items():
        m = mcv_metrics(out, truth.X, tt)
        r = rows.setdefault(name, {"mcv_poisson": [], "mcv_mse": [], "true_loss": [], "log_mse_true_mean": []})
        r["mcv_poisson"].append(m["mcv_poisson"]); r["mcv_mse"].append(m["mcv_mse"])
        r["true_loss"].append(_true_loss(out, expected, tt))
        r["log_mse_true_mean"].append(float(np.mean((_log_cp(np.asarray(out, np.float64), 1e4) - lc_true) ** 2)))
print("# The judge on simulated counts\n\n`python bench/judge_simulation.py`: `simulate(seed=0)` (800 cells x 400 genes, 5 types), MCV split 10%, mask seeds 0-2, mean ± sd. True Poisson loss: the loss of the held-out share of the true observed means; log-scale MSE: log1p CP10k of the output against μ (before dropout).\n")
print("| output | MCV Poisson | MCV MSE | true Poisson loss | log-scale MSE to μ |")
print("|---|---|---|---|---|")
for name, r in rows.items():
    print(f"| {name} | " + " | ".join(f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}" for v in r.values()) + " |")
