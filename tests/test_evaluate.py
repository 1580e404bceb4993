"""EVALUATE: each metric against a value computed by hand on tiny inputs, and the per-sample tables."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from scipy.special import gammaln

from graphimpute import _keys
from graphimpute.errors import GraphImputeError
from graphimpute.evaluate import (Settings, clustering_accuracy, clustering_metrics, cluster_entropy, evaluate,
                                  mcv_metrics, partition_scores, purity, recovery_metrics)
from graphimpute.mask import mask

LN = math.log


# ------------------------------------------------------------------------------------ hidden entries
# 4 cells with unmasked library 10, gene 0 hidden in cells 0-2 (counts 1, 2, 4), a held-back true zero
# at cell 3; target_sum 10, so true = log1p(count) = [ln 2, ln 3, ln 5] and 0 at the zero.
HIDDEN = sp.csr_matrix(np.array([[1, 0], [2, 0], [4, 0], [0, 0]], np.float32))
ZEROS = sp.csr_matrix(np.array([[0, 0], [0, 0], [0, 0], [1, 0]], np.float32))
LIBRARY = np.full(4, 10.0)


def _cells_output(gene0):
    """Each cell's output sums to 10 (its library), so rescaling changes nothing."""
    gene0 = np.asarray(gene0, np.float32)
    return np.stack([gene0, 10 - gene0], axis=1)


def _recovery(gene0, **kwargs):
    return recovery_metrics(_cells_output(gene0), HIDDEN, LIBRARY, held_zeros=ZEROS, target_sum=10, min_entries=1,
                            **kwargs)


def test_recovery_metrics_by_hand():
    got = _recovery([1, 2, 4, 0.5])  # exact at the hidden entries, log1p(0.5) at the zero
    assert got["hidden_gene_r"] == pytest.approx(1.0)
    assert got["hidden_zero_auc"] == pytest.approx(1.0)  # the zero is below every hidden entry
    assert got["rmse"] == pytest.approx(LN(1.5) / 2)  # sqrt(ln(1.5)^2 / 4)
    reversed_ = _recovery([4, 2, 1, 5])
    assert reversed_["hidden_gene_r"] < -0.9
    assert reversed_["hidden_zero_auc"] == pytest.approx(0.0)  # the zero is above every hidden entry


def test_ties_count_half_in_the_auc():
    assert _recovery([1, 2, 4, 2])["hidden_zero_auc"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_recovery_without_rescaling_uses_the_output_as_given():
    halved = _cells_output([1, 2, 4, 0.5]) / 2  # totals 5: rescaling would restore the exact values
    got = recovery_metrics(halved, HIDDEN, LIBRARY, held_zeros=ZEROS, target_sum=10, min_entries=1, rescale="none")
    true = [LN(2), LN(3), LN(5), 0.0]
    pred = [LN(1.5), LN(2), LN(3), LN(1.25)]
    assert got["rmse"] == pytest.approx(float(np.sqrt(np.mean((np.array(pred) - true) ** 2))))
    assert _recovery([1, 2, 4, 0.5], rescale="library")["rmse"] == pytest.approx(
        recovery_metrics(halved, HIDDEN, LIBRARY, held_zeros=ZEROS, target_sum=10, min_entries=1)["rmse"])


@pytest.mark.parametrize("gene0", [[2, 2, 2, 2], [0, 0, 0, 0]], ids=["flat", "zero like none"])
def test_an_output_that_cannot_tell_cells_apart_scores_nothing(gene0):
    got = _recovery(gene0)
    assert got["hidden_gene_r"] == 0.0
    assert got["hidden_zero_auc"] == pytest.approx(0.5)


def test_a_flat_output_ranks_last_or_tied_last_on_hidden_entry_recovery(bundled):
    """On a masked real sample, the reformulated metrics put every cell-agnostic output at the bottom."""
    from graphimpute.methods import RunContext, get

    adata = _prepared(bundled)
    masked, truth = mask(adata, scheme="uniform", fraction=0.1, seed=0)
    library = masked.X.sum(axis=1).A1
    outputs = {
        "flat": np.repeat(library[:, None] / masked.n_vars, masked.n_vars, axis=1),
        "gene_mean": get("gene_mean").impute(masked, {}, RunContext()).imputed,
        "none": masked.X.toarray(),
        "truth_informed": masked.X.toarray() + truth.X.toarray(),  # knows the hidden counts
        "smoothed": _neighbour_mean(masked),
    }
    scores = {name: recovery_metrics(out, truth.X, truth.obs["library_unmasked"].to_numpy(),
                                     held_zeros=truth.layers["held_zeros"]) for name, out in outputs.items()}
    for metric in ("hidden_gene_r", "hidden_zero_auc"):
        flat = scores["flat"][metric]
        assert flat <= min(s[metric] for s in scores.values()) + 1e-9, (metric, scores)
        assert scores["truth_informed"][metric] > flat + 0.1
        assert scores["smoothed"][metric] > flat  # neighbours carry information about the cell
    assert scores["gene_mean"]["hidden_gene_r"] == scores["flat"]["hidden_gene_r"] == 0.0


def _prepared(adata):
    from graphimpute import normalise, qc

    return normalise.normalise(qc.run_qc(adata, source="bundled"), n_top_genes=500)


def _neighbour_mean(masked):
    from sklearn.neighbors import NearestNeighbors

    counts = masked.X.toarray()
    shares = np.log1p(1e4 * counts / counts.sum(axis=1, keepdims=True))
    _, idx = NearestNeighbors(n_neighbors=10).fit(shares).kneighbors(shares)
    return counts[idx].mean(axis=1)


# ------------------------------------------------------------------------------------------------ MCV
def test_mcv_metrics_by_hand():
    imputed = np.array([[1.0, 3.0]])
    test = sp.csr_matrix(np.array([[1.0, 0.0]]))
    got = mcv_metrics(imputed, test, train_total=8.0, target_sum=10)
    rate = np.array([1.0, 3.0]) / 8  # rescaled by test total 1 / train total 8
    assert got["mcv_poisson"] == pytest.approx((rate[0] - LN(rate[0] + 1e-6) + rate[1]) / 2)
    assert got["mcv_poisson_openproblems"] == pytest.approx(
        (1 - rate[0] * LN(1 + 1e-6) - rate[1] * LN(1e-6)) / 2)
    # CP10 of the output: [2.5, 7.5]; of the test counts: [10, 0]
    assert got["mcv_mse"] == pytest.approx(((LN(3.5) - LN(11)) ** 2 + LN(8.5) ** 2) / 2)


# ----------------------------------------------------------------------------------------- clustering
LABELS = ["a", "a", "a", "b", "b", "c"]
CLUSTERS = [0, 0, 1, 1, 1, 1]  # contingency (labels x clusters): a [2, 1], b [0, 2], c [0, 1]


def _comb2(n):
    return n * (n - 1) / 2


def test_partition_scores_by_hand():
    got = partition_scores(LABELS, CLUSTERS)
    assert got["accuracy"] == pytest.approx(4 / 6)  # a->0 (2 cells), b->1 (2 cells)
    assert got["purity"] == pytest.approx(4 / 6)  # cluster 0: 2 a; cluster 1: 2 b
    # cluster 1 holds a, b, b, c: -(ln 1/4 + 2 ln 1/2 + ln 1/4) = 6 ln 2; / (N ln l) = 6 ln 3
    assert got["entropy"] == pytest.approx(LN(2) / LN(3))
    index = _comb2(2) + _comb2(2)
    rows, cols, total = _comb2(3) + _comb2(2), _comb2(2) + _comb2(4), _comb2(6)
    expected = rows * cols / total
    assert got["ari"] == pytest.approx((index - expected) / ((rows + cols) / 2 - expected))
    mi = LN(2) / 6 + LN(1.5) / 2
    h_labels = -(0.5 * LN(0.5) + LN(1 / 3) / 3 + LN(1 / 6) / 6)
    h_clusters = -(LN(1 / 3) / 3 + 2 / 3 * LN(2 / 3))
    assert got["nmi"] == pytest.approx(mi / ((h_labels + h_clusters) / 2))
    emi = _expected_mi([3, 2, 1], [2, 4], 6)
    assert got["ami"] == pytest.approx((mi - emi) / ((h_labels + h_clusters) / 2 - emi))


def _expected_mi(a, b, n):
    """Expected mutual information of two random partitions with sizes a and b (hypergeometric)."""
    total = 0.0
    for ai in a:
        for bj in b:
            for nij in range(max(1, ai + bj - n), min(ai, bj) + 1):
                log_p = (gammaln(ai + 1) + gammaln(bj + 1) + gammaln(n - ai + 1) + gammaln(n - bj + 1)
                         - gammaln(n + 1) - gammaln(nij + 1) - gammaln(ai - nij + 1) - gammaln(bj - nij + 1)
                         - gammaln(n - ai - bj + nij + 1))
                total += nij / n * LN(n * nij / (ai * bj)) * math.exp(log_p)
    return total


def test_perfect_and_extra_clusters():
    labels = ["x", "x", "y", "y"]
    assert clustering_accuracy(labels, [5, 5, 7, 7]) == 1.0 and purity(labels, [5, 5, 7, 7]) == 1.0
    assert cluster_entropy(labels, [5, 5, 7, 7]) == 0.0
    # four singleton clusters: pure, zero entropy, but only two can be matched one-to-one
    assert purity(labels, [0, 1, 2, 3]) == 1.0 and cluster_entropy(labels, [0, 1, 2, 3]) == 0.0
    assert clustering_accuracy(labels, [0, 1, 2, 3]) == 0.5


def _separated(n_per=30, n_genes=40, seed=0):
    """Three groups of cells with disjoint highly expressed genes."""
    rng = np.random.default_rng(seed)
    blocks = []
    for g in range(3):
        mean = np.full(n_genes, 1.0)
        mean[g * 10:(g + 1) * 10] = 30.0
        blocks.append(rng.poisson(mean, size=(n_per, n_genes)))
    return np.vstack(blocks).astype(np.float32), np.repeat(["g0", "g1", "g2"], n_per)


def test_clustering_recovers_separated_groups_and_is_deterministic():
    x, labels = _separated()
    scores, emb = clustering_metrics(x, labels, settings=Settings(n_pcs=10, kmeans_seeds=2, umap=False))
    assert emb is None
    noisy = x + np.random.default_rng(3).poisson(8.0, size=x.shape)
    first = clustering_metrics(noisy, labels, settings=Settings(n_pcs=10, kmeans_seeds=2, umap=False))[0]
    again = clustering_metrics(noisy, labels, settings=Settings(n_pcs=10, kmeans_seeds=2, umap=False))[0]
    assert first == again
    for method in ("kmeans", "leiden"):
        assert scores[f"{method}_ari"] == pytest.approx(1.0)
        assert scores[f"{method}_accuracy"] == pytest.approx(1.0)
        assert scores[f"{method}_entropy"] == pytest.approx(0.0, abs=1e-12)
    assert scores["leiden_n_clusters"] == 3
    assert scores["silhouette_labels"] > 0.3
    shuffled = np.random.default_rng(1).permutation(labels)
    worse, _ = clustering_metrics(x, shuffled, settings=Settings(n_pcs=10, kmeans_seeds=2, umap=False))
    assert worse["kmeans_ari"] < 0.1 and worse["silhouette_labels"] < 0.05


# -------------------------------------------------------------------------------------- end to end
def _output(masked, imputed, method, **prov):
    out = masked.copy()
    out.layers[_keys.IMPUTED] = np.asarray(imputed, np.float32)
    # bookkeeping columns (lr, cnnImpute's block) must not be plotted as loss terms
    history = {"device": "cpu", "epochs": [{"train_loss": 2.0, "val_loss": 3.0, "lr": 0.1, "block": 0},
                                           {"train_loss": 1.0, "val_loss": 2.5, "lr": 0.1, "block": 1}],
               "best_epoch": 2, "n_epochs": 2, "wall_time_s": 1.5, "peak_memory_mb": 42.0}
    out.uns[_keys.UNS]["impute"] = {"method": method, "device": "cpu", "seed": 0, "history": history,
                                    "versions": {"torch": "9.9"}, **prov}
    return out


def test_evaluate_end_to_end(tmp_path):
    x, labels = _separated(n_per=20)
    adata = AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame({"cell_type": labels}, index=[f"c{i}" for i in range(len(x))]))
    masked, truth = mask(adata, scheme="uniform", seed=0)
    outputs = [_output(masked, masked.X.toarray(), "none"), _output(masked, x, "oracle", wall_time_s=7.0,
                                                                    nondefault_params={"k": 3})]
    ev = evaluate(outputs, truth=truth, label_key="cell_type", sample="toy",
                  settings=Settings(n_pcs=5, kmeans_seeds=1, umap=False))
    long = ev.metrics.set_index(["method", "metric"])["value"]
    assert list(ev.metrics.columns) == ["sample", "method", "seed", "metric", "value"]
    assert long["oracle", "rmse"] == pytest.approx(0.0, abs=1e-6) and long["oracle", "hidden_gene_r"] > 0.99
    assert long["oracle", "hidden_zero_auc"] == pytest.approx(1.0)
    assert long["none", "hidden_gene_r"] == 0.0 and long["none", "hidden_zero_auc"] == pytest.approx(0.5)
    assert long["oracle", "wall_time_s"] == 7.0 and long["none", "wall_time_s"] == 1.5  # provenance, else history
    assert long["none", "epochs"] == 2 and long["none", "peak_memory_mb"] == 42.0
    # what a run changed from the paper's defaults comes from its own record, not from the registry
    assert ev.runs.set_index("method")["nondefault_params"].to_dict() == {"none": "{}", "oracle": '{"k": 3}'}
    assert set(ev.histories["term"]) == {"train_loss", "val_loss"}
    assert ev.embeddings.empty

    written = ev.write(tmp_path)
    assert {p.name for p in written} >= {"toy.metrics.tsv", "toy.summary.tsv", "toy.summary.json", "toy.ranking.tsv"}
    summary = pd.read_csv(tmp_path / "toy.summary.tsv", sep="\t")
    # best first by the primary metric (hidden_gene_r without MCV); one seed: no spread
    assert list(summary["method"]) == ["oracle", "none"] and "device" in summary and "kmeans_ari" in summary
    assert summary["n_seeds"].tolist() == [1, 1] and summary["hidden_gene_r_sd"].isna().all()
    as_json = json.loads((tmp_path / "toy.summary.json").read_text())
    assert as_json["methods"]["none"]["hidden_gene_r_sd"] is None  # undefined, not 0
    assert as_json["settings"]["mask"]["scheme"] == "uniform" and as_json["settings"]["rescale"] == "library"
    assert as_json["verdict"]["winner"] == "oracle" and as_json["verdict"]["metric"] == "hidden_gene_r"


def test_each_output_is_scored_against_the_truth_of_its_own_mask_seed(tmp_path):
    x, labels = _separated(n_per=20)
    adata = AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame({"cell_type": labels}, index=[f"c{i}" for i in range(len(x))]))
    outputs, truths = [], []
    for seed in (3, 4, 5):
        masked, truth = mask(adata, scheme="mcv", seed=seed)
        truths.append(truth)
        outputs += [_output(masked, masked.X.toarray(), "none"), _output(masked, x, "oracle")]
    ev = evaluate(outputs, truth=truths[::-1], sample="toy")  # any order: paired by the recorded seed
    poisson = ev.metrics[ev.metrics["metric"] == "mcv_poisson"]
    assert sorted(poisson["seed"].unique()) == [3, 4, 5] and len(poisson) == 6
    for seed, truth in zip((3, 4, 5), truths):
        alone = evaluate([outputs[2 * (seed - 3)]], truth=truth).metrics.set_index("metric")["value"]
        assert poisson[(poisson["seed"] == seed) & (poisson["method"] == "none")]["value"].item() == \
            pytest.approx(alone["mcv_poisson"])
    summary = ev.summary().set_index("method")
    assert summary.loc["oracle", "n_seeds"] == 3 and summary.loc["oracle", "mcv_poisson_sd"] > 0
    with pytest.raises(GraphImputeError, match="no truth file for that seed"):
        evaluate(outputs, truth=truths[:2])
    with pytest.raises(GraphImputeError, match="appears twice"):
        evaluate(outputs + outputs[:1], truth=truths)


@pytest.mark.slow  # UMAP's first call compiles numba code (~20 s)
def test_umap_embedding_of_each_output_and_of_the_unimputed_counts():
    x, labels = _separated(n_per=15)
    adata = AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame({"cell_type": labels}, index=[f"c{i}" for i in range(len(x))]))
    masked, truth = mask(adata, scheme="uniform", seed=0)
    ev = evaluate([_output(masked, x, "oracle")], truth=truth, label_key="cell_type",
                  settings=Settings(n_pcs=5, kmeans_seeds=1, umap=True))
    emb = ev.embeddings
    assert set(emb["method"]) == {"oracle", "unimputed"}  # no `none` output: the input counts stand in
    assert len(emb) == 2 * len(x) and np.isfinite(emb[["umap1", "umap2"]].to_numpy()).all()
    assert list(emb.loc[emb["method"] == "oracle", "label"]) == list(labels)


def test_evaluate_mcv_and_contract_checks():
    x, labels = _separated(n_per=10)
    adata = AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame({"cell_type": labels}, index=[f"c{i}" for i in range(len(x))]))
    masked, truth = mask(adata, scheme="mcv", seed=0)
    ev = evaluate([_output(masked, masked.X.toarray(), "none")], truth=truth, sample="s")
    got = set(ev.metrics["metric"])
    assert {"mcv_mse", "mcv_poisson", "mcv_poisson_openproblems"} <= got and "rmse" not in got
    with pytest.raises(GraphImputeError, match="non-negative"):
        evaluate([_output(masked, -np.ones(x.shape), "bad")], truth=truth)
    with pytest.raises(GraphImputeError, match="same order"):
        evaluate([_output(masked[::-1].copy(), x[::-1], "flipped")], truth=truth)


def test_the_verdict_names_the_methods_below_gene_mean_not_the_other_bars():
    from graphimpute import verdict

    means = {"none": 0.50, "knn_average": 0.45, "gene_mean": 0.40, "weak": 0.43, "strong": 0.30}  # lower is better
    rows = [{"sample": "s", "method": m, "seed": seed, "metric": "mcv_poisson", "value": v + 0.001 * seed}
            for m, v in means.items() for seed in range(3)]
    result = verdict.verdict(pd.DataFrame(rows))
    assert result["winner"] == "strong" and result["lose_to_gene_mean"] == ["weak"]
    assert "Lose to the cell-agnostic gene_mean: weak." in result["lines"]


def test_a_difference_counts_only_when_the_paired_t_test_finds_it_at_the_stated_level():
    from scipy import stats

    from graphimpute import verdict

    noise = np.array([-1.0, 0.0, 1.0])  # sd 1 over 3 seeds

    def table(mean_diff):
        rows = [{"method": "a", "seed": s, "metric": "mcv_poisson", "value": 0.5 + mean_diff + noise[s]} for s in range(3)]
        rows += [{"method": "b", "seed": s, "metric": "mcv_poisson", "value": 0.5} for s in range(3)]
        return pd.DataFrame(rows)

    assert verdict.tie_threshold(3) == pytest.approx(stats.t.ppf(0.975, 2) / np.sqrt(3)) == pytest.approx(2.484, abs=1e-3)
    # 2 sd lower (p 0.18): the old one-sd rule called it better, the test does not; 3 sd lower (p 0.03) is better
    assert verdict.compare(table(-2.0), "mcv_poisson", "a", "b").outcome == "tie"
    better = verdict.compare(table(-3.0), "mcv_poisson", "a", "b")
    assert better.outcome == "better" and verdict.compare(table(3.0), "mcv_poisson", "a", "b").outcome == "worse"
    a, b = 0.5 - 3.0 + noise, np.full(3, 0.5)
    assert better.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue) and better.p_value < verdict.LEVEL
