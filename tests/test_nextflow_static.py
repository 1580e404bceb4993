"""The Nextflow layer, checked without Nextflow: commands, params, selectors, includes, DAG, syntax.

Each check runs on the repository (no problem expected) and on a temporary copy with one planted
mistake (that mistake must be reported), so a check that silently stops checking fails here.
The Groovy 4 parse needs Java and the jars from scripts/install_groovy_parser.sh; it skips without them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import nextflow_checks as checks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The pipeline's files (not the Python package) in a temporary folder."""
    for name in checks.NF_TREE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, symlinks=True)
        else:
            shutil.copy2(source, tmp_path / name)
    return tmp_path


def plant(root: Path, relative: str, old: str, new: str, count: int = 1) -> None:
    path = root / relative
    text = path.read_text()
    assert text.count(old) >= count, f"{old!r} not in {relative}: the planted mistake needs updating"
    path.write_text(text.replace(old, new, count))


# ---- process commands -------------------------------------------------------------------------------

def test_processes_call_existing_subcommands_with_existing_options():
    problems, notes = checks.check_process_commands(ROOT)
    assert problems == []
    for note in notes:  # e.g. multiqc not installed here: its options could not be checked
        print("not checked:", note)


def test_the_checks_see_every_pipeline_file():
    """Guards against checks that pass because they read nothing (e.g. a path filter that drops all)."""
    found = {str(p.relative_to(ROOT)) for p in checks.nf_files(ROOT)}
    assert {"main.nf", "workflows/graphimpute.nf", "subworkflows/local/input_check/main.nf",
            "modules/local/impute/main.nf"} <= found
    assert len(found) == 13  # main, workflow, 3 subworkflows, 8 modules
    used = checks.used_params(ROOT)
    assert "modules/local/impute/main.nf" in used["container_gpu"] and "workflows/graphimpute.nf" in used["benchmark"]
    assert len(checks.nf_test_files(ROOT)) == 10


def test_every_step_process_is_checked():
    found = checks.processes(ROOT)
    assert set(found) == {"SAMPLESHEET_CHECK", "QC", "NORMALISE", "MASK", "GRAPH", "IMPUTE", "EVALUATE", "MULTIQC"}
    for name, process in found.items():
        programs = [program for program, _, _ in checks.script_commands(process)]
        if name in checks.THIRD_PARTY:
            assert programs == ["graphimpute_report", checks.THIRD_PARTY[name][0]]
        else:
            assert programs and all(program.startswith("graphimpute_") for program in programs), (name, programs)


@pytest.mark.parametrize("relative, old, new, expected", [
    ("modules/local/qc/main.nf", "--output ${prefix}.h5ad", "--outptu ${prefix}.h5ad",
     "QC: graphimpute_qc is given --outptu"),
    ("modules/local/impute/main.nf", "graphimpute_impute \\", "graphimpute_imputer \\",
     "IMPUTE: graphimpute_imputer is not a bin/ wrapper"),
    ("conf/modules.config", '"--n-pcs ${params.n_pcs}', '"--npcs ${params.n_pcs}',
     "GRAPH: graphimpute_graph is given --npcs"),
    ("modules/local/normalise/main.nf", "graphimpute_normalise \\", "python -m graphimpute normalise \\",
     "NORMALISE: calls 'python'"),
    ("bin/graphimpute_mask", 'main(["mask"', 'main(["masking"',
     "MASK: graphimpute_mask forwards to `graphimpute masking`"),
    ("modules/local/impute/main.nf", '"--param \'${key}', '"--parameter \'${key}',
     "IMPUTE: graphimpute_impute is given --parameter"),
    ("modules/local/multiqc/main.nf", "--no-render", "--no-html", "MULTIQC: graphimpute_report is given --no-html"),
    ("modules/local/multiqc/main.nf", "--force", "--forced", "MULTIQC: multiqc is given --forced"),
])
def test_command_check_catches_planted_mistakes(copy, relative, old, new, expected):
    plant(copy, relative, old, new)
    problems, _ = checks.check_process_commands(copy)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_bin_holds_only_thin_wrappers(copy):
    assert checks.check_bin_wrappers(ROOT) == []
    (copy / "bin" / "helper.py").write_text("print('hello')\n")
    plant(copy, "bin/graphimpute_qc", "import sys\n", "import sys\nimport os\nprint(os.getcwd())\n")
    problems = checks.check_bin_wrappers(copy)
    assert any(p.startswith("bin/helper.py: not executable") for p in problems)
    assert any(p.startswith("bin/graphimpute_qc: not a thin wrapper") for p in problems)


# ---- params -----------------------------------------------------------------------------------------

def test_params_are_defined_and_described_everywhere():
    assert checks.check_params(ROOT) == []


@pytest.mark.parametrize("relative, old, new, expected", [
    ("conf/modules.config", "${params.n_neighbors}", "${params.n_neighbours}",
     "params.n_neighbours (used in conf/modules.config) is not defined"),
    ("nextflow.config", "    seed                 = 0\n", "    seed                 = 0\n    epochs = 3\n",
     "params.epochs is defined in nextflow.config but not described"),
    ("nextflow.config", "    n_pcs                = 50\n", "", "--n_pcs is in nextflow_schema.json but not defined"),
    ("nextflow.config", "n_pcs                = 50", "n_pcs                = 30",
     "--n_pcs: default 30 in nextflow.config, 50 in nextflow_schema.json"),
    ("conf/test.config", "n_pcs         = 20", "n_pc          = 20",
     "conf/test.config sets params.n_pc, which nextflow.config does not define"),
])
def test_params_check_catches_planted_mistakes(copy, relative, old, new, expected):
    plant(copy, relative, old, new)
    assert any(problem.startswith(expected) for problem in checks.check_params(copy)), checks.check_params(copy)


def test_schema_change_without_description_is_caught(copy):
    schema = json.loads((copy / "nextflow_schema.json").read_text())
    del schema["$defs"]["graph_options"]["properties"]["n_pcs"]["description"]
    (copy / "nextflow_schema.json").write_text(json.dumps(schema))
    assert "--n_pcs has no description in nextflow_schema.json" in checks.check_params(copy)


def test_schema_is_draft_2020_12_and_lists_every_group():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert [ref["$ref"] for ref in schema["allOf"]] == [f"#/$defs/{name}" for name in schema["$defs"]]
    defaults = {name: spec["default"] for name, spec in checks.schema_params(ROOT).items() if "default" in spec}
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors({**defaults, "input": "a.csv", "outdir": "out"})) == []
    assert list(validator.iter_errors({**defaults, "input": "a.csv", "outdir": "out", "mask_fraction": 1.5}))
    assert list(validator.iter_errors({**defaults, "outdir": "out"}))  # --input is required


# ---- selectors, includes, emits ---------------------------------------------------------------------

def test_selectors_match_processes_and_labels_have_resources():
    assert checks.check_selectors(ROOT) == []


def test_selector_check_catches_planted_mistakes(copy):
    plant(copy, "conf/modules.config", "withName: 'NORMALISE'", "withName: 'NORMALIZE'")
    plant(copy, "modules/local/graph/main.nf", "label 'process_medium'", "label 'process_medum'")
    problems = checks.check_selectors(copy)
    assert "conf/modules.config: withName 'NORMALIZE' matches no process" in problems
    assert "GRAPH: label 'process_medum' is not configured in conf/base.config" in problems


def test_includes_resolve_and_emits_exist():
    assert checks.check_includes_and_emits(ROOT) == []


def test_include_and_emit_check_catches_planted_mistakes(copy):
    plant(copy, "workflows/graphimpute.nf", "NORMALISE(QC.out.h5ad)", "NORMALISE(QC.out.anndata)")
    plant(copy, "workflows/graphimpute.nf", "include { MASK        } from '../modules/local/mask'",
          "include { MASK        } from '../modules/local/masking'")
    plant(copy, "main.nf", "include { GRAPHIMPUTE             }", "include { GRAPH_IMPUTE            }")
    problems = checks.check_includes_and_emits(copy)
    assert any("QC.out.anndata: QC emits" in p for p in problems)
    assert "workflows/graphimpute.nf: include from '../modules/local/masking': no such module" in problems
    assert "main.nf: 'GRAPH_IMPUTE' is not defined in ./workflows/graphimpute" in problems


def test_calls_pass_every_declared_input():
    assert checks.check_call_arity(ROOT) == []


def test_arity_check_catches_planted_mistakes(copy):
    plant(copy, "main.nf", "PIPELINE_COMPLETION()", "PIPELINE_COMPLETION(GRAPHIMPUTE.out.multiqc_report)")
    plant(copy, "workflows/graphimpute.nf", "GRAPH(ch_graph_input, ch_methods.collect().map { names -> names.join(',') })",
          "GRAPH(ch_graph_input)")
    plant(copy, "modules/local/evaluate/main.nf", "    input:\n", "    input:\n    val labels\n")
    problems = [re.sub(r":\d+:", ":", problem) for problem in checks.check_call_arity(copy)]  # lines vary
    assert problems == ["main.nf: PIPELINE_COMPLETION is called with 1 argument(s), it takes 0",
                        "workflows/graphimpute.nf: GRAPH is called with 1 argument(s), it takes 2",
                        "workflows/graphimpute.nf: EVALUATE is called with 1 argument(s), it takes 2"], problems


# ---- the DAG ----------------------------------------------------------------------------------------

def test_dag_is_qc_normalise_mask_graph_impute_evaluate_multiqc():
    assert checks.check_dag(ROOT) == []
    sources, conditions = checks.workflow_dag(ROOT)
    assert sources["GRAPH"] >= {"NORMALISE", "MASK"} and "QC" not in sources["GRAPH"]
    assert sources["EVALUATE"] == {"IMPUTE", "MASK"}
    assert conditions["MASK"] == conditions["EVALUATE"] == ("params.benchmark",)


@pytest.mark.parametrize("old, new, expected", [
    ("GRAPH(ch_graph_input,", "GRAPH(QC.out.h5ad,", "GRAPH takes input from QC"),
    ("IMPUTE(ch_impute_input)", "IMPUTE(ch_impute_input.mix(EVALUATE.out.tsv))", "IMPUTE takes input from EVALUATE"),
    ("        MASK(NORMALISE.out.h5ad)\n", "", "MASK is not called"),
    ("    if (params.benchmark) {\n        MASK(", "    if (true) {\n        MASK(", "MASK must run only under"),
    ("        ch_graph_input   = MASK.out.h5ad\n", "", "GRAPH does not take input from MASK"),
])
def test_dag_check_catches_planted_mistakes(copy, old, new, expected):
    plant(copy, "workflows/graphimpute.nf", old, new)
    problems = checks.check_dag(copy)
    assert any(problem.startswith(expected) for problem in problems), problems


# ---- the GPU label ----------------------------------------------------------------------------------

def test_gpu_options_are_scoped_to_the_gpu_label():
    assert checks.check_gpu_scoping(ROOT) == []


@pytest.mark.parametrize("relative, old, new, expected", [
    ("conf/base.config", "accelerator      = { params.use_gpu ? 1 : null }", "accelerator      = 1",
     "process_gpu: accelerator must be"),
    ("nextflow.config", "docker.runOptions       = '-u $(id -u):$(id -g)'",
     "docker.runOptions       = '-u $(id -u):$(id -g) --gpus all'", "nextflow.config: GPU options in a global runOptions"),
    ("conf/base.config", "return '--nv'", "return ''", "process_gpu: containerOptions must give"),
    ("modules/local/impute/main.nf", "task.ext.use_gpu ? params.container_gpu : params.container", "params.container",
     "IMPUTE: the container must be"),
])
def test_gpu_check_catches_planted_mistakes(copy, relative, old, new, expected):
    plant(copy, relative, old, new)
    assert any(p.startswith(expected) for p in checks.check_gpu_scoping(copy)), checks.check_gpu_scoping(copy)


# ---- module conventions and layout ------------------------------------------------------------------

def test_modules_follow_nf_core_conventions():
    assert checks.check_module_conventions(ROOT) == []


def test_module_convention_check_catches_planted_mistakes(copy):
    plant(copy, "modules/local/qc/main.nf", "    stub:\n", "    // no stub\n")
    plant(copy, "modules/local/graph/main.nf", "task.ext.when == null || task.ext.when", "true")
    plant(copy, "modules/local/qc/main.nf", "label 'process_medium'", "label 'process_medium'\n    label 'process_gpu'")
    plant(copy, "modules/local/mask/meta.yml", "- truth:", "- truths:")
    problems = checks.check_module_conventions(copy)
    assert any(p.startswith("QC (modules/local/qc/main.nf): no stub") for p in problems)
    assert any(p.startswith("GRAPH (modules/local/graph/main.nf): no `when:") for p in problems)
    assert any("only IMPUTE carries the process_gpu label" in p for p in problems)
    assert "modules/local/mask/meta.yml: output 'truth' is not documented" in problems


def test_steps_publish_where_graphimpute_run_writes():
    assert checks.check_publish_layout(ROOT) == []
    # file names as `graphimpute run` writes them: <step>/<sample>.h5ad, impute/<sample>.<method>.h5ad,
    # mask/<sample>.truth.h5ad
    for name, process in checks.processes(ROOT).items():
        if name in {"QC", "NORMALISE", "MASK", "GRAPH", "IMPUTE"}:
            default = '"${meta.id}.${meta.method}"' if name == "IMPUTE" else '"${meta.id}"'
            assert f"prefix = task.ext.prefix ?: {default}" in process.parts["script"], name
            assert re.search(r'path\("\$\{prefix\}\.h5ad"\)\s*,\s*emit: h5ad', process.parts["output"]), name
    mask_outputs = checks.processes(ROOT)["MASK"].parts["output"]
    assert re.search(r'path\("\$\{prefix\}\.truth\.h5ad"\)\s*,\s*emit: truth', mask_outputs)


def test_publish_check_catches_a_moved_folder(copy):
    plant(copy, "conf/modules.config", '"${params.outdir}/graph"', '"${params.outdir}/graphs"')
    assert checks.check_publish_layout(copy) == ["conf/modules.config: GRAPH does not publish to ${params.outdir}/graph"]


# ---- inputs of the test profile and the samplesheet schema ------------------------------------------

def test_samplesheet_schema_matches_the_python_check():
    from graphimpute import io, samplesheet

    schema = json.loads((ROOT / "assets" / "schema_input.json").read_text())
    items = schema["items"]
    assert tuple(items["properties"]) == samplesheet.COLUMNS
    assert tuple(items["required"]) == samplesheet.REQUIRED
    assert set(items["properties"]["format"]["enum"]) == set(io.FORMATS) | {""}
    assert items["properties"]["sample"]["pattern"] == samplesheet.SAMPLE_NAME.pattern


def test_test_profile_method_params_fit_the_registry():
    from graphimpute import methods

    overrides = json.loads((ROOT / "assets" / "test_method_params.json").read_text())
    for name, params in overrides.items():
        methods.resolve_params(methods.get(name), params)  # unknown method or parameter: GraphImputeError
    for name, method in methods.available().items():
        assert not method.trains or name in overrides, (
            f"{name} trains: give it a few-epoch override in assets/test_method_params.json for -profile test")


# ---- Groovy 4 syntax --------------------------------------------------------------------------------

groovy = pytest.mark.skipif(checks.groovy_unavailable() is not None, reason=str(checks.groovy_unavailable()))


@groovy
def test_every_nf_and_config_file_parses_as_groovy(copy):
    # One parse of a copy with two planted syntax errors: exactly those two files fail, every other
    # .nf and .config file (the same as the repository's) parses.
    plant(copy, "modules/local/graph/main.nf", "    output:\n", "    output: {\n")
    plant(copy, "conf/base.config", "maxRetries    = 2", "maxRetries    = (2")
    plant(copy, "modules/local/qc/tests/main.nf.test", "then {", "then {{")
    problems = checks.check_groovy_syntax(copy)
    assert len(checks.nf_test_files(copy)) == 10  # eight modules, the pipeline, nf-test.config: all parsed
    failed = sorted({p.split(":")[0].removeprefix("ERROR ") for p in problems})
    assert failed == [str(copy / "conf/base.config"), str(copy / "modules/local/graph/main.nf"),
                      str(copy / "modules/local/qc/tests/main.nf.test")], problems
    assert all(p.split(":")[1].isdigit() for p in problems), problems  # each with its line number


@groovy
def test_help_and_parameter_checks_run_as_written():
    """The initialisation subworkflow's own Groovy (help, parameter checks, summary), run with stand-ins
    for Nextflow's file(), error(), log and workflow."""
    schema = ROOT / "nextflow_schema.json"
    method_params = ROOT / "assets" / "test_method_params.json"
    driver = f"""
def schema = readSchema('{schema}')
out.help = helpMessage(schema, true)
out.help_one = helpMessage(schema, 'use_gpu')
out.help_unknown = helpMessage(schema, 'gpus')
def good = [input: '{ROOT / "assets" / "samplesheet_test.csv"}', outdir: 'results', methods: 'none,scvgae',
            seed: 3, mask_fraction: 0.2, n_top_genes: 500, benchmark: true, help: false, nTopGenes: 500]
validateParameters(schema, good)
out.good = 'passed'
def bad = good + [input: null, seed: 'three', mask_fraction: 1.5, n_top_genes: 'lots', benchmark: 'yes',
                  publish_dir_mode: 'teleport', methods: 'a b', unknown_option: 1]
try {{ validateParameters(schema, bad) }} catch (IllegalStateException err) {{ out.bad = err.message }}
out.method_params = readMethodParams('{method_params}')
out.summary = summaryLog(schema, good)
out.summary_mqc = summaryMultiqc(schema, good + [multiqc_title: '<b>&</b>'])
"""
    out = checks.run_groovy_functions(ROOT, "subworkflows/local/pipeline_initialisation/main.nf", driver)
    assert "Methods and benchmark mode:" in out["help"] and "--methods" in out["help"]
    assert "--publish_dir_mode" not in out["help"]  # hidden
    assert out["help_one"].startswith("  --use_gpu") and "process_gpu label" in out["help_one"]
    assert out["help_unknown"].startswith("No parameter --gpus")
    assert out["good"] == "passed"
    bad = out["bad"].splitlines()
    assert bad[0] == "Invalid parameters:"
    for expected in ("--input is required", "--seed must be a whole number, got 'three'",
                     "--mask_fraction must be less than 1, got 1.5", "--n_top_genes 'lots' does not match",
                     "--benchmark is a flag (true or false), got 'yes'",
                     "--publish_dir_mode must be one of symlink, rellink, link, copy, copyNoFollow, move",
                     "--methods 'a b' does not match"):
        assert any(expected in line for line in bad), (expected, bad)
    assert len(bad) == 8
    assert out["warnings"] == ["--unknown_option is not a parameter of this pipeline (see --help); it is ignored"]
    assert out["method_params"] == json.loads(method_params.read_text())  # read as the file says
    assert "methods             : none,scvgae" in out["summary"] and "seed                : 3" in out["summary"]
    assert "outdir" in out["summary"] and "n_pcs" not in out["summary"]  # only what differs from the defaults
    assert "<dd><samp>&lt;b&gt;&amp;&lt;/b&gt;</samp></dd>" in out["summary_mqc"]
