"""Start-up cost: listing methods and refusing a bad parameter must not load the heavy libraries.

`graphimpute methods`, `--help` and parameter errors have to answer in about 2 s; importing torch,
scanpy or anndata alone takes seconds on a busy node. These tests check which modules a fresh
interpreter has loaded (a timing test could not fail reliably; this can).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
BUNDLED = SRC / "graphimpute" / "data" / "pbmc3k_small.h5ad"
HEAVY = ("torch", "torch_geometric", "scanpy", "anndata", "sklearn", "pandas", "h5py", "numba")


def _loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; return its printed result and the heavy modules it loaded."""
    script = f"""
import json, sys
{code}
print(json.dumps({{"result": result, "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_and_registry_load_no_heavy_library():
    out = _loaded_after(
        "import graphimpute, graphimpute.cli\n"
        "from graphimpute import methods\n"
        "entries = methods.available()\n"
        "methods.resolve_params(entries['gnnimpute'], {'max_epochs': '5'})\n"
        "result = sorted(entries)")
    assert "gnnimpute" in out["result"] and "scvgae" in out["result"]
    assert out["heavy"] == []


def test_methods_command_loads_no_heavy_library():
    out = _loaded_after(
        "from click.testing import CliRunner\n"
        "from graphimpute.cli import main\n"
        "r = CliRunner().invoke(main, ['methods', '--json'])\n"
        "result = [r.exit_code, sorted(json.loads(r.output))]")
    code, names = out["result"]
    assert code == 0 and {"scgnn", "gnnimpute", "none", "gene_mean"} <= set(names)
    assert out["heavy"] == []


@pytest.mark.parametrize("command", [
    ["impute", str(BUNDLED), "-o", "{tmp}/out.h5ad", "--method", "scgnn", "--param", "lr=-1"],
    ["impute", str(BUNDLED), "-o", "{tmp}/out.h5ad", "--method", "scgnn", "--param", "no_such=1"],
    ["run", "-i", str(BUNDLED), "-o", "{tmp}/out", "--methods", "gnnimpute", "--param", "max_epochs=0"],
])
def test_parameter_errors_come_before_the_heavy_libraries(command, tmp_path):
    argv = [part.format(tmp=tmp_path) for part in command]
    out = _loaded_after(
        "from click.testing import CliRunner\n"
        "from graphimpute.cli import main\n"
        f"r = CliRunner().invoke(main, {argv!r} + ['--log-file', {str(tmp_path / 'x.log')!r}])\n"
        "result = [r.exit_code, r.output]")
    code, message = out["result"]
    assert code == 2 and "parameter" in message
    assert out["heavy"] == []
    assert not (tmp_path / "out.h5ad").exists() and not (tmp_path / "out").exists()


def test_a_method_still_loads_its_code_when_it_runs():
    out = _loaded_after(
        "from graphimpute import methods\n"
        "import numpy as np, anndata as ad\n"
        "x = np.random.default_rng(0).poisson(2.0, (30, 12)).astype('float32')\n"
        "res = methods.get('dca').impute(ad.AnnData(X=x), methods.resolve_params(methods.get('dca'), "
        "{'max_epochs': 1}), methods.RunContext(progress=False))\n"
        "result = list(res.imputed.shape)")
    assert out["result"] == [30, 12] and "torch" in out["heavy"]


def test_every_library_the_package_imports_is_declared():
    """nf-core's and PyPA's habit: a module imported directly is a declared dependency, not one that
    happens to come with scanpy (optional baselines are imported by name, through ``import_required``)."""
    import ast
    import tomllib

    declared = {re.split(r"[<>=!~ ;\[]", d)[0].lower() for d in
                tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]["dependencies"]}
    distribution = {"sklearn": "scikit-learn", "torch_geometric": "torch-geometric", "umap": "umap-learn", "yaml": "pyyaml"}
    imported = set()
    for path in (SRC / "graphimpute").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            imported.update(n.split(".")[0] for n in names)
    third_party = {n for n in imported if n not in sys.stdlib_module_names and n not in ("graphimpute", "__future__")}
    assert sorted(n for n in third_party if distribution.get(n, n).lower() not in declared) == []
