"""What a Nextflow task gives the tool: its cpus (--threads) and its memory (--memory-gb)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from graphimpute import pipeline
from graphimpute.cli import EXIT_NEEDS_MEMORY, EXIT_USER_ERROR, main
from graphimpute.threads import THREAD_VARIABLES, limit_threads

SRC = Path(__file__).resolve().parents[1] / "src"

# Loads numpy, torch, scikit-learn and numba inside limit_threads(n), as a graphimpute subcommand does, and
# reports what each library then uses.
PROBE = """
import json, sys
from graphimpute.threads import limit_threads
with limit_threads(int(sys.argv[1])):
    import numpy, torch, sklearn.cluster, numba
    from threadpoolctl import threadpool_info
    numpy.ones((64, 64)) @ numpy.ones((64, 64))
    found = {"torch": torch.get_num_threads(), "numba": numba.get_num_threads(),
             "pools": {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}}
print(json.dumps(found))
"""


def test_libraries_loaded_inside_the_limit_start_with_that_many_threads():
    env = {name: value for name, value in os.environ.items() if name not in THREAD_VARIABLES}
    done = subprocess.run([sys.executable, "-c", PROBE, "2"], capture_output=True, text=True, timeout=300,
                          env={**env, "PYTHONPATH": str(SRC)})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["torch"] == 2 and found["numba"] == 2
    assert found["pools"] and set(found["pools"].values()) == {2}, found  # OpenBLAS/MKL and OpenMP pools


def test_loaded_libraries_are_limited_and_restored(monkeypatch):
    import torch
    from threadpoolctl import threadpool_info

    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1
        assert {pool["num_threads"] for pool in threadpool_info()} == {1}
        assert all(os.environ[name] == "1" for name in THREAD_VARIABLES)
    assert torch.get_num_threads() == before
    assert not any(name in os.environ for name in THREAD_VARIABLES)
    with limit_threads(None):  # no --threads: nothing changes
        assert torch.get_num_threads() == before


def test_every_subcommand_that_runs_work_takes_threads():
    skipped = {"methods"}  # lists the registry, runs nothing
    for name, command in main.commands.items():
        if name not in skipped:
            assert "--threads" in {opt for param in command.params for opt in getattr(param, "opts", [])}, name


@pytest.fixture(scope="module")
def normalised(tmp_path_factory, bundled_path) -> Path:
    folder = tmp_path_factory.mktemp("normalised")
    pipeline.qc_step(bundled_path, folder / "qc.h5ad")
    return pipeline.normalise_step(folder / "qc.h5ad", folder / "normalised.h5ad", n_top_genes=300)


def test_a_run_over_the_task_memory_exits_with_the_retry_code(normalised, tmp_path):
    """IMPUTE refuses before training when its estimate exceeds the task's memory: exit code 75, which
    conf/base.config retries with more memory; nothing is written."""
    out = tmp_path / "out.h5ad"
    args = ["impute", str(normalised), "-o", str(out), "--method", "gnnimpute", "--threads", "1", "--quiet",
            "--param", "max_epochs=1"]
    refused = CliRunner().invoke(main, [*args, "--memory-gb", "0.001"])
    assert refused.exit_code == EXIT_NEEDS_MEMORY, refused.output
    assert "more than the 0.0 GiB this run was given (--memory-gb); give it more memory" in refused.output
    assert not out.exists()
    # a method's own limit is a parameter to change, not memory to add: the user-error code
    over_limit = CliRunner().invoke(main, [*args, "--memory-gb", "64", "--param", "max_memory_gb=0.0001"])
    assert over_limit.exit_code == EXIT_USER_ERROR and "above the limit" in over_limit.output
    assert not out.exists()
