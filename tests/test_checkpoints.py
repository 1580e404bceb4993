"""Checkpoints: a resume never loads a checkpoint made for other data, another method, other parameters,
seed or version (it refuses with one line), and methods sharing a workdir never share a checkpoint."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from click.testing import CliRunner

from conftest import synthetic_counts
from graphimpute import methods, normalise, train
from graphimpute.cli import EXIT_USER_ERROR, main
from graphimpute.errors import CheckpointError
from graphimpute.methods import RunContext
from graphimpute.methods._common import checkpoint_dir, run_fingerprint
from graphimpute.runner import build_graph


pytestmark = pytest.mark.usefixtures("one_thread")


# ---- the fingerprint -----------------------------------------------------------------------------

def test_input_fingerprint_sees_every_count_and_name_but_not_the_storage():
    adata = synthetic_counts(n_cells=30, n_genes=20)
    x = adata.X.toarray()
    base = train.input_fingerprint(adata.X, adata.obs_names, adata.var_names)
    assert train.input_fingerprint(x, adata.obs_names, adata.var_names) == base  # dense = sparse
    assert train.input_fingerprint(x.astype(np.int64), adata.obs_names, adata.var_names) == base
    changed = x.copy()
    changed[3, 4] += 1
    assert train.input_fingerprint(changed, adata.obs_names, adata.var_names) != base
    assert train.input_fingerprint(x, adata.obs_names[::-1], adata.var_names) != base  # other cell order
    assert train.input_fingerprint(x, adata.obs_names, [*adata.var_names[1:], "other"]) != base
    graph = sp.random(30, 30, density=0.1, random_state=0, format="csr")
    with_graph = train.input_fingerprint(x, adata.obs_names, adata.var_names, {"knn5": graph})
    assert with_graph != base
    assert train.input_fingerprint(x, adata.obs_names, adata.var_names, {"knn5": graph * 2}) != with_graph


def test_fingerprint_only_when_checkpoints_are_used(tmp_path):
    adata = synthetic_counts(n_cells=30, n_genes=20)
    params = {"lr": 0.1, "max_epochs": 3}
    assert run_fingerprint(adata, "scgnn", params, RunContext(workdir=tmp_path)) is None  # neither saves nor resumes
    assert run_fingerprint(adata, "scgnn", params, RunContext(checkpoint_every=1)) is None  # no workdir
    fp = run_fingerprint(adata, "scgnn", params, RunContext(workdir=tmp_path, checkpoint_every=1, seed=4))
    assert fp["method"] == "scgnn" and fp["seed"] == 4 and fp["params"] == params and fp["version"]
    assert fp == run_fingerprint(adata, "scgnn", params, RunContext(workdir=tmp_path, resume=True, seed=4))


# ---- train.fit refuses a checkpoint of another run -------------------------------------------------

class Line(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))


def _loss(module, _batch):
    return {"loss": (module.w - 3.0) ** 2}


def _fit(tmp_path, fingerprint, *, resume=False, max_epochs=6):
    module = Line()
    config = train.TrainConfig(max_epochs=max_epochs, lr=0.1, checkpoint_every=2, checkpoint_dir=tmp_path,
                               resume=resume, progress=False, desc="line", fingerprint=fingerprint)
    history = train.fit(module, _loss, config=config, device=torch.device("cpu"))
    return module, history


def _fingerprint(**changes):
    fp = train.run_fingerprint(data="abc", method="line", params={"lr": 0.1, "max_epochs": 6}, seed=0)
    return {**fp, **changes}


@pytest.mark.parametrize("changes, named", [
    ({"data": "other"}, "input data"),
    ({"method": "other"}, "method (line)"),
    ({"seed": 1}, "seed (0)"),
    ({"version": "9.9"}, "version"),
    ({"params": {"lr": 0.2, "max_epochs": 6}}, "parameters lr"),
])
def test_resume_refuses_another_fingerprint_and_leaves_the_checkpoint(tmp_path, changes, named):
    _fit(tmp_path, _fingerprint())
    ckpt = tmp_path / train.CHECKPOINT_NAME
    before = ckpt.read_bytes()
    with pytest.raises(CheckpointError, match="cannot resume") as err:
        _fit(tmp_path, _fingerprint(**changes), resume=True)
    message = str(err.value)
    assert named in message and "--workdir" in message and "\n" not in message
    assert ckpt.read_bytes() == before  # nothing trained, nothing written


def test_resume_with_the_same_fingerprint_gives_the_uninterrupted_weights(tmp_path):
    full, _ = _fit(tmp_path / "full", _fingerprint(), max_epochs=6)
    _fit(tmp_path / "cut", _fingerprint(), max_epochs=4)
    # max_epochs may change (RESUMABLE_PARAMS): the cut run is extended to the full one
    resumed, history = _fit(tmp_path / "cut", _fingerprint(params={"lr": 0.1, "max_epochs": 4}), resume=True)
    assert history.resumed_from_epoch == 4 and history.n_epochs == 6
    assert resumed.w.item() == full.w.item()


def test_resume_refuses_a_checkpoint_past_max_epochs_or_without_a_fingerprint(tmp_path):
    _fit(tmp_path / "a", _fingerprint(), max_epochs=6)
    with pytest.raises(CheckpointError, match="trained 6 epochs, more than max_epochs=4"):
        _fit(tmp_path / "a", _fingerprint(), resume=True, max_epochs=4)
    _fit(tmp_path / "b", None)  # e.g. written before checkpoints carried a fingerprint
    with pytest.raises(CheckpointError, match="records nothing about what it was trained on"):
        _fit(tmp_path / "b", _fingerprint(), resume=True)


# ---- the reproduction, end to end ---------------------------------------------------------

def _other_sample(bundled_path, path):
    """Other cells of the bundled data (the last 200, reversed) and its genes in another order."""
    a = ad.read_h5ad(bundled_path)
    b = a[::-1][:200, np.random.default_rng(0).permutation(a.n_vars)].copy()
    b.write_h5ad(path)
    return path


def _run(*args):
    return CliRunner().invoke(main, ["run", *map(str, args), "--quiet"], catch_exceptions=False)


def test_cli_resume_against_other_data_refuses_with_one_line(tmp_path, bundled_path):
    other = _other_sample(bundled_path, tmp_path / "other.h5ad")
    common = ["--methods", "gnnimpute", "--param", "max_epochs=4", "--param", "hidden_dim=16",
              "--checkpoint-every", "2", "--workdir", tmp_path / "w", "--sample", "s"]
    first = _run("-i", bundled_path, "-o", tmp_path / "a", *common)
    assert first.exit_code == 0, first.output
    ckpt = tmp_path / "w" / "gnnimpute" / train.CHECKPOINT_NAME
    before = ckpt.read_bytes()

    refused = _run("-i", other, "-o", tmp_path / "b", *common, "--resume")
    assert refused.exit_code == EXIT_USER_ERROR
    errors = [line for line in refused.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "cannot resume" in errors[0] and "input data" in errors[0]
    assert not (tmp_path / "b" / "impute" / "s.gnnimpute.h5ad").exists()
    assert ckpt.read_bytes() == before

    # the same data resumes, and its result is byte for byte the first run's
    again = _run("-i", bundled_path, "-o", tmp_path / "c", *common, "--resume")
    assert again.exit_code == 0, again.output
    first_out = ad.read_h5ad(tmp_path / "a" / "impute" / "s.gnnimpute.h5ad")
    again_out = ad.read_h5ad(tmp_path / "c" / "impute" / "s.gnnimpute.h5ad")
    assert first_out.layers["imputed"].tobytes() == again_out.layers["imputed"].tobytes()
    assert again_out.uns["graphimpute"]["impute"]["history"]["resumed_from_epoch"] == 4


# ---- one workdir, many methods: never one checkpoint ------------------------------------------------

# every method that trains on the shared engine (scVI trains with its own library and keeps none)
ENGINE_METHODS = [n for n in methods.names() if methods.get(n).trains and n != "scvi"]
FAST = {"scvgae": {"max_epochs": 2, "hidden": 16, "decoder_hidden": 32}, "graphsci": {"max_epochs": 2},
        "scgnn": {"max_epochs": 2}, "gnnimpute": {"max_epochs": 2, "hidden_dim": 16},
        "dca": {"max_epochs": 2}, "graphmcv": {"max_epochs": 2, "hidden": 16, "latent": 8, "n_pcs": 10},
        "cnnimpute": {"max_epochs": 2, "n_targets": 32, "hidden": 32, "tsne_max_iter": 250,
                      "tsne_perplexity": 15.0}}


def test_every_engine_method_is_listed():
    assert sorted(FAST) == sorted(ENGINE_METHODS)


@pytest.fixture(scope="module")
def prepared():
    adata = normalise.normalise(synthetic_counts(n_cells=120, n_genes=60, seed=2), n_top_genes=None)
    for name in ENGINE_METHODS:
        for spec in methods.get(name).graphs:
            build_graph(adata, spec)
    return adata


def test_methods_sharing_a_workdir_keep_their_own_checkpoints(tmp_path, prepared):
    first = {}
    for name in ENGINE_METHODS:
        method = methods.get(name)
        params = methods.resolve_params(method, FAST[name])
        first[name] = method.impute(prepared, params, RunContext(workdir=tmp_path, checkpoint_every=1, progress=False))
    written = sorted(tmp_path.rglob("*.pt"))
    assert written
    for path in written:  # every checkpoint lies in its own method's folder: <workdir>/<method>/...
        assert path.relative_to(tmp_path).parts[0] in ENGINE_METHODS
    for name in ENGINE_METHODS:
        assert list(checkpoint_dir(RunContext(workdir=tmp_path), name).rglob("*.pt")), name

    # each resumes from its own state (not another method's) and gives its first result again
    for name in ENGINE_METHODS:
        method = methods.get(name)
        params = methods.resolve_params(method, FAST[name])
        again = method.impute(prepared, params, RunContext(workdir=tmp_path, resume=True, progress=False))
        np.testing.assert_array_equal(again.imputed, first[name].imputed, err_msg=name)
