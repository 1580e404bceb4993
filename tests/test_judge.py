"""The judge checked against ground truth: on simulated counts with known means, MCV Poisson ranks
outputs as their distance to the true means does, cell-agnostic outputs rank below one that knows
the means, a shrinkage of each cell's own counts (no learning) clears the floors it shrinks towards,
and nothing beats the oracle of each cell's own rates."""

import numpy as np
import pytest

from graphimpute import graphs
from graphimpute.evaluate import mcv_metrics
from graphimpute.mask import LIBRARY_MASKED, mask
from graphimpute.methods import RunContext, get
from graphimpute.methods.knn_average import PCA_KNN5
from graphimpute.simulate import CELL_RATE, EXPECTED, TRUE_MEAN, simulate

FRACTION = 0.1  # MCV's held-out share


def _outputs(masked, expected, rates=None):
    """Outputs of known quality, all computed from the train part (except the oracles'), and the own-count
    weight each shrinkage chose."""
    x = masked.X.toarray().astype(np.float64)
    library = x.sum(axis=1, keepdims=True)
    shares = x / np.maximum(library, 1)
    types = masked.obs["cell_type"].to_numpy()
    type_share = {t: shares[types == t].mean(axis=0) for t in np.unique(types)}
    masked.layers["lognorm"] = np.log1p(1e4 * shares).astype(np.float32)
    graphs.pca(masked, n_comps=20)
    graphs.build(masked, PCA_KNN5.kind, PCA_KNN5.key, dict(PCA_KNN5.params))
    outputs = {
        "oracle": (1 - FRACTION) * expected,  # knows the true means (of what is observed)
        "type_average": np.stack([type_share[t] for t in types]) * library,  # knows the labels
        "knn_average": get("knn_average").impute(masked, {}, RunContext()).imputed,
        "gene_mean": get("gene_mean").impute(masked, {}, RunContext()).imputed,
        "flat": np.repeat(library / x.shape[1], x.shape[1], axis=1),
        "none": x,
    }
    if rates is not None:
        outputs["oracle_rate"] = (1 - FRACTION) * rates  # knows each entry's own (Gamma-drawn) rate
    weights = {}
    for name in ("shrink_gene_mean", "shrink_knn"):
        result = get(name).impute(masked, {"validation_fraction": FRACTION}, RunContext())
        outputs[name], weights[name] = result.imputed, result.info["own_weight"]
    return outputs, weights


def _scores(sim, seeds=(0, 1, 2)):
    """Mean over mask seeds of MCV Poisson and of the true loss, per output; the shrinkages' weights."""
    expected = sim.layers[EXPECTED].astype(np.float64)
    rates = sim.layers[CELL_RATE].astype(np.float64)
    mcv, truth_loss, weights = {}, {}, {}
    for seed in seeds:
        masked, truth = mask(sim, scheme="mcv", fraction=FRACTION, seed=seed)
        train_total = float(truth.obs[LIBRARY_MASKED].sum())
        outputs, chosen = _outputs(masked, expected, rates)
        for name, out in outputs.items():
            mcv.setdefault(name, []).append(mcv_metrics(out, truth.X, train_total)["mcv_poisson"])
            truth_loss.setdefault(name, []).append(_true_loss(out, expected, train_total))
        for name, w in chosen.items():
            weights.setdefault(name, []).append(w)
    mean = lambda d: {k: float(np.mean(v)) for k, v in d.items()}  # noqa: E731
    return mean(mcv), mean(truth_loss), mean(weights)


def _true_loss(output, expected, train_total):
    """What MCV Poisson estimates, computed from the truth: the Poisson loss of the held-out share of
    the true means, m = FRACTION · E[x], under the output rescaled as MCV rescales it."""
    m = FRACTION * expected
    rate = np.asarray(output, np.float64) * (m.sum() / train_total)
    return float(np.mean(rate - m * np.log(rate + 1e-6)))


@pytest.fixture(scope="module")
def scores():
    mcv, truth, _ = _scores(simulate(seed=0))
    return mcv, truth


def test_simulation_has_what_the_judge_needs():
    sim = simulate(n_cells=300, n_genes=120, seed=1)
    x = sim.X.toarray()
    assert x.shape == (300, 120) and np.all(x == np.round(x)) and (x >= 0).all()
    assert 0.2 < (x == 0).mean() < 0.8  # dropout, but not an empty matrix
    assert np.all(sim.layers[EXPECTED] <= sim.layers[TRUE_MEAN] + 1e-6)
    assert sim.obs["cell_type"].nunique() == 5
    assert np.array_equal(simulate(n_cells=300, n_genes=120, seed=1).X.toarray(), x)  # seeded


def test_mcv_poisson_ranks_as_the_distance_to_the_true_means(scores):
    mcv, truth = scores
    ranked = ["oracle", "type_average", "knn_average", "gene_mean", "flat"]
    assert sorted(ranked, key=mcv.get) == ranked, mcv
    assert sorted(ranked, key=truth.get) == ranked, truth
    # `none` is below gene_mean on both; against `flat` MCV is kinder to it than the truth is (the held-out
    # half comes from the same overdispersed molecules as the input half: docs/benchmark.md)
    assert mcv["none"] > mcv["gene_mean"] and truth["none"] > truth["gene_mean"]


def test_cell_agnostic_outputs_rank_below_one_that_knows_the_means(scores):
    mcv, _ = scores
    assert mcv["oracle"] < mcv["gene_mean"] < mcv["flat"]


def test_a_shrinkage_of_the_own_counts_clears_the_floor_it_shrinks_towards(scores):
    """What MCV rewards: on overdispersed counts each cell's own counts carry its own rate, so blending
    them into a prior profile, with no learning, beats both the prior and the counts alone."""
    mcv, truth = scores
    assert mcv["shrink_gene_mean"] < min(mcv["gene_mean"], mcv["none"]), mcv
    assert mcv["shrink_knn"] < min(mcv["knn_average"], mcv["none"]), mcv
    assert mcv["oracle_rate"] < mcv["oracle"]  # the held-out molecules follow each cell's rate, not its type mean


def test_nothing_beats_the_oracle_of_each_cells_own_rates(scores):
    mcv, _ = scores
    assert min(mcv, key=mcv.get) == "oracle_rate", mcv


def test_without_overdispersion_or_dropout_the_neighbour_blend_keeps_no_own_counts():
    """Pure Poisson counts: a cell's neighbours of its own type share its rate exactly, so its own counts
    add only noise. With one type the profile of all cells is the rate and shrink_gene_mean keeps none
    of the own counts; shrink_knn keeps almost none (its average over 5 neighbours still has some noise
    of its own: measured 0.05). No output beats the oracle (here the rates are the means)."""
    poisson = dict(theta=np.inf, dropout_midpoint=-np.inf)
    mcv, _, weights = _scores(simulate(n_cells=600, n_genes=300, de_fold_sd_log=2.0, **poisson, seed=3))
    assert weights["shrink_knn"] <= 0.1 and weights["shrink_gene_mean"] > 0.5, weights  # 5 types: own counts tell them
    assert min(mcv, key=mcv.get) in ("oracle", "oracle_rate"), mcv
    _, _, one_type = _scores(simulate(n_cells=400, n_genes=300, n_types=1, **poisson, seed=4), seeds=(0,))
    assert one_type["shrink_gene_mean"] == 0.0, one_type
