"""graphMCV on the judge's simulated counts (known means): does its MCV gain hold on the true loss?

The same simulation, masks and reference outputs as bench/judge_simulation.py (tests/test_judge.py):
800 cells x 400 genes, negative binomial (θ = 5) around known means with dropout, MCV split 10%, mask
seeds 0-2. graphMCV is run at its defaults and with ``calibrate=false`` (no own-count weight): on
overdispersed counts the two halves of a molecular split share the cell's noise, so weighting the
observed counts can lower MCV Poisson while raising the true loss (docs/benchmark.md).

    PYTHONPATH=src python bench/graphmcv_simulation.py > bench/results/graphmcv_simulation.md
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import numpy as np  # noqa: E402
from test_judge import FRACTION, _outputs, _true_loss  # noqa: E402

from graphimpute import methods  # noqa: E402
from graphimpute.evaluate import mcv_metrics  # noqa: E402
from graphimpute.mask import LIBRARY_MASKED, mask  # noqa: E402
from graphimpute.methods import RunContext  # noqa: E402
from graphimpute.simulate import EXPECTED, simulate  # noqa: E402

VARIANTS = {"graphmcv": {}, "graphmcv calibrate=false": {"calibrate": False}}

sim = simulate(seed=0)
expected = sim.layers[EXPECTED].astype(np.float64)
rows, weights = {}, {}
for seed in (0, 1, 2):
    masked, truth = mask(sim, scheme="mcv", fraction=FRACTION, seed=seed)
    tt = float(truth.obs[LIBRARY_MASKED].sum())
    outputs = _outputs(masked, expected)
    method = methods.get("graphmcv")
    for name, params in VARIANTS.items():
        result = method.impute(masked, methods.resolve_params(method, params), RunContext(seed=0, progress=False))
        outputs[name] = result.imputed
        weights.setdefault(name, []).append(result.info["own_weight"])
    for name, out in outputs.items():
        m = mcv_metrics(out, truth.X, tt)
        r = rows.setdefault(name, {"mcv_poisson": [], "mcv_mse": [], "true_loss": []})
        r["mcv_poisson"].append(m["mcv_poisson"])
        r["mcv_mse"].append(m["mcv_mse"])
        r["true_loss"].append(_true_loss(out, expected, tt))
print("# graphMCV on the judge's simulated counts\n")
print("`PYTHONPATH=src python bench/graphmcv_simulation.py`: `simulate(seed=0)` (800 cells x 400 genes, 5 types, NB θ = 5, "
      "dropout), MCV split 10%, mask seeds 0-2, mean ± sd. True Poisson loss: the loss of the held-out share of the true "
      "observed means (bench/judge_simulation.py). Own-count weight a chosen by graphMCV's calibration: "
      + ", ".join(f"{k}: {', '.join(f'{w:.2f}' for w in v)}" for k, v in weights.items()) + ".\n")
print("| output | MCV Poisson | MCV MSE | true Poisson loss |")
print("|---|---|---|---|")
for name, r in rows.items():
    print(f"| {name} | " + " | ".join(f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}" for v in r.values()) + " |")
