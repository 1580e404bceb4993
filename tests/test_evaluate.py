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
def _recovery_case():
    # hidden: cell 0 gene 1 = 2 (unmasked library 10), cell 1 gene 0 = 6 (library 20)
    hidden = sp.csr_matrix(np.array([[0, 2, 0], [6, 0, 0]], np.float32))
    library = np.array([10.0, 20.0])
    imputed = np.array([[1, 1, 3], [1, 0, 9]], np.float32)  # cell totals 5 and 10
    return imputed, hidden, library


def test_recovery_metrics_by_hand():
    imputed, hidden, library = _recovery_case()
    # rescaled predictions: 1 * 10/5 = 2 and 1 * 20/10 = 2 counts; log1p(10 * count / library):
    # true = [ln 3, ln 4], pred = [ln 3, ln 2]
    got = recovery_metrics(imputed, hidden, library, target_sum=10, rescale="library")
    assert got["rmse"] == pytest.approx(LN(2) / math.sqrt(2))
    assert got["mae"] == pytest.approx(LN(2) / 2)
    assert got["pearson_r"] == pytest.approx(-1.0)  # two points moving in opposite directions
    cos = (LN(3) * LN(3) + LN(2) * LN(4)) / (math.hypot(LN(3), LN(2)) * math.hypot(LN(3), LN(4)))
    assert got["cosine"] == pytest.approx(cos)
    assert got["median_abs_error_counts"] == pytest.approx(2.0)  # |2-2|, |2-6| -> median 2


def test_recovery_without_rescaling_uses_the_output_as_given():
    imputed, hidden, library = _recovery_case()
    got = recovery_metrics(imputed, hidden, library, target_sum=10, rescale="none")
    # pred counts 1 and 1: log1p(10*1/10) = ln 2, log1p(10*1/20) = ln 1.5
    diffs = np.array([LN(2) - LN(3), LN(1.5) - LN(4)])
    assert got["rmse"] == pytest.approx(float(np.sqrt(np.mean(diffs**2))))
    assert got["median_abs_error_counts"] == pytest.approx(3.0)  # |1-2|, |1-6|


def test_zero_prediction_has_undefined_r_and_cosine_not_zero():
    _, hidden, library = _recovery_case()
    imputed = np.array([[3, 0, 3], [0, 5, 5]], np.float32)  # 0 at both hidden entries, like `none`
    got = recovery_metrics(imputed, hidden, library, target_sum=10)
    assert math.isnan(got["pearson_r"]) and math.isnan(got["cosine"])
    assert got["rmse"] == pytest.approx(math.sqrt((LN(3) ** 2 + LN(4) ** 2) / 2))
    assert got["median_abs_error_counts"] == pytest.approx(4.0)  # |0-2|, |0-6|


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
    outputs = [_output(masked, masked.X.toarray(), "none"), _output(masked, x, "oracle", wall_time_s=7.0)]
    ev = evaluate(outputs, truth=truth, label_key="cell_type", sample="toy",
                  settings=Settings(n_pcs=5, kmeans_seeds=1, umap=False))
    long = ev.metrics.set_index(["method", "metric"])["value"]
    assert list(ev.metrics.columns) == ["sample", "method", "metric", "value"]
    assert long["oracle", "rmse"] == pytest.approx(0.0, abs=1e-6) and long["oracle", "pearson_r"] == pytest.approx(1.0)
    assert long["oracle", "median_abs_error_counts"] == pytest.approx(0.0, abs=1e-4)
    assert math.isnan(long["none", "pearson_r"]) and math.isnan(long["none", "cosine"])
    assert long["oracle", "wall_time_s"] == 7.0 and long["none", "wall_time_s"] == 1.5  # provenance, else history
    assert long["none", "epochs"] == 2 and long["none", "peak_memory_mb"] == 42.0
    assert set(ev.histories["term"]) == {"train_loss", "val_loss"}
    assert ev.embeddings.empty

    written = ev.write(tmp_path)
    assert {p.name for p in written} >= {"toy.metrics.tsv", "toy.summary.tsv", "toy.summary.json"}
    summary = pd.read_csv(tmp_path / "toy.summary.tsv", sep="\t")
    assert list(summary["method"]) == ["none", "oracle"] and "device" in summary and "kmeans_ari" in summary
    assert math.isnan(summary.set_index("method").loc["none", "cosine"])
    as_json = json.loads((tmp_path / "toy.summary.json").read_text())
    assert as_json["methods"]["none"]["pearson_r"] is None  # undefined, not 0
    assert as_json["settings"]["mask"]["scheme"] == "uniform" and as_json["settings"]["rescale"] == "library"


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
